"""``dbayes attack``: the run directory, resume after an interruption, the Fig. 1 curves and
clear errors for bad input."""
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from dbayes_cli.main import main
from dbayes_tf import attacks
from dbayes_tf.runs import attack as attack_run
from dbayes_tf.runs import store
from dbayes_tf.runs.train import load_model
from dbayes_tf.victim import Victim, model_label


@pytest.fixture
def runner():
    return CliRunner()


def _attack(runner, run, out, *args):
    return runner.invoke(main, ["attack", str(run), "--out", str(out), "--quiet", *args])


def test_attack_cli_writes_attempts_images_and_summary(runner, trained_runs, tmp_path):
    out = tmp_path / "df"
    result = _attack(runner, trained_runs["mlp"], out, "--attack", "deepfool", "--n-images",
                     "12", "--batch-size", "5")
    assert result.exit_code == 0, result.output
    attempts = pd.read_csv(out / "attempts.csv")
    assert len(attempts) == 12 and attempts["attempt"].tolist() == list(range(12))
    assert attempts.loc[attempts["clean_correct"], "success"].mean() > 0.8
    saved = store.read_images(out)
    ids, images = saved["attempt"], saved["x_adv"]
    assert ids.tolist() == list(range(12)) and images.shape == (12, 28, 28, 1)
    # the saved image is the one whose distortion the table reports
    from dbayes_tf.data import load_dataset
    clean = load_dataset("mnist").test.images[attempts["image_id"]]
    np.testing.assert_allclose(np.linalg.norm((images - clean).reshape(12, -1), axis=1),
                               attempts["l2"], rtol=1e-5)
    summary = pd.read_csv(out / "summary.csv")
    assert summary.loc[0, "attempts"] == 12 and 0 < summary.loc[0, "l2_median"] < 5
    assert "Made by: `dbayes attack" in (out / "summary.md").read_text()
    # a second run into the same folder is refused rather than mixed in
    again = _attack(runner, trained_runs["mlp"], out, "--attack", "deepfool", "--n-images", "12")
    assert again.exit_code == 1 and "--resume" in again.output


def test_summarize_first_attempts_compares_runs_on_the_same_attempts(runner, trained_runs,
                                                                     tmp_path):
    out = tmp_path / "df"
    result = _attack(runner, trained_runs["mlp"], out, "--attack", "deepfool", "--n-images",
                     "12", "--batch-size", "6")
    assert result.exit_code == 0, result.output
    attempts = pd.read_csv(out / "attempts.csv")
    tables = tmp_path / "tables"
    result = runner.invoke(main, ["summarize", str(out), "--out", str(tables), "--name", "t",
                                  "--first-attempts", "5"])
    assert result.exit_code == 0, result.output
    row = pd.read_csv(tables / "t.csv").iloc[0]
    first = attempts[attempts["attempt"] < 5]
    assert row["attempts"] == 5 and row["planned"] == 12
    assert row["l2_mean"] == pytest.approx(first.loc[first["success"], "l2"].mean())
    whole = pd.read_csv(out / "summary.csv").iloc[0]
    assert row["l2_mean"] != pytest.approx(whole["l2_mean"])  # not the whole run's row
    result = runner.invoke(main, ["summarize", str(out), "--out", str(tables),
                                  "--first-attempts", "13"])
    assert result.exit_code == 1 and "only 12 of the first 13" in result.output
    result = runner.invoke(main, ["summarize", str(trained_runs["mlp"]), "--out", str(tables),
                                  "--first-attempts", "3"])
    assert result.exit_code == 1 and "attack runs only" in result.output
    other = tmp_path / "df7"  # another plan: attempt 3 is another image there
    assert _attack(runner, trained_runs["mlp"], other, "--attack", "deepfool", "--n-images",
                   "7").exit_code == 0
    result = runner.invoke(main, ["summarize", str(out), str(other), "--out", str(tables),
                                  "--first-attempts", "5"])
    assert result.exit_code == 1 and "differ in their test images" in result.output


def test_targeted_all_gives_every_other_class_and_stochastic_judgement(runner, trained_runs,
                                                                       tmp_path):
    out = tmp_path / "cw"
    result = _attack(runner, trained_runs["gc"], out, "--attack", "cw_l2", "--n-images", "2",
                     "--targeted", "all", "--iterations", "20", "--binary-steps", "1",
                     "--draws", "3", "--decision-draws", "2", "--batch-size", "9")
    assert result.exit_code == 0, result.output
    attempts = pd.read_csv(out / "attempts.csv")
    assert len(attempts) == 18
    for _, rows in attempts.groupby("image_id"):
        assert sorted(rows["target"]) == sorted(set(range(10)) - {rows["label"].iloc[0]})
    assert attempts["fooled_rate"].between(0, 1).all()
    assert set(np.round(attempts["fooled_rate"] * 3, 6)) <= {0, 1, 2, 3}  # R = 3 draws


class _Interrupt(Exception):
    pass


def test_resume_after_an_interruption_gives_the_same_table(trained_runs, mnist_small, tmp_path,
                                                           monkeypatch):
    model = load_model(trained_runs["gc"])
    victim = Victim(model, k=2, verdict_draws=3)
    settings = attacks.DeepFoolSettings.build(dict(candidates=4, iterations=5))
    plan = attack_run.AttackPlan(targeted="none", image_ids=tuple(range(0, 90, 10)),
                                 batch_size=3)
    kw = dict(dataset="mnist", progress=False, log=lambda *_: None)

    def run(out, victim=victim, **more):
        return attack_run.run_attack(victim, trained_runs["gc"], mnist_small.test, settings,
                                     plan, tmp_path / out, **kw, **more)

    straight = run("straight")
    real_deepfool, calls = attacks.deepfool, {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_deepfool(*args, **kwargs)

    monkeypatch.setattr(attacks, "deepfool", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run("split")
    assert len(pd.read_csv(tmp_path / "split" / "attempts.csv")) == 3  # batch 1 kept
    assert not list((tmp_path / "split").rglob(".*"))  # no half-written temporary files
    monkeypatch.setattr(attacks, "deepfool", real_deepfool)
    resumed = run("split", resume=True)
    drop = ["seconds"]
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "straight" / "attempts.csv").drop(columns=drop),
        pd.read_csv(tmp_path / "split" / "attempts.csv").drop(columns=drop))
    for key in ("success_rate", "l2_mean", "error_adv"):
        assert straight[key] == resumed[key]
    written = {f.name: f.read_bytes() for f in (tmp_path / "split").iterdir() if f.is_file()}
    again = run("split", resume=True, command="later")
    assert again["success_rate"] == resumed["success_rate"]
    assert written == {f.name: f.read_bytes() for f in (tmp_path / "split").iterdir()
                       if f.is_file()}  # a finished run is left as it was made
    # ...unless an interruption fell between attempts.csv and summary.csv: then the summary is
    # brought up to date
    stale = pd.read_csv(tmp_path / "split" / "summary.csv").assign(attempts=6)
    stale.to_csv(tmp_path / "split" / "summary.csv", index=False)
    run("split", resume=True)
    assert pd.read_csv(tmp_path / "split" / "summary.csv")["attempts"].iloc[0] == 9
    # a resume with other settings names what differs
    with pytest.raises(store.RunError, match="victim.verdict_draws: saved 3, asked 5"):
        run("split", victim=Victim(model, k=2, verdict_draws=5), resume=True)


def test_fgsm_sweep_and_ifgsm_path_write_tables_and_plots(runner, trained_runs, tmp_path):
    result = _attack(runner, trained_runs["mlp"], tmp_path / "sweep", "--attack", "fgsm",
                     "--eps", "0:0.3:0.1", "--n-images", "20")
    assert result.exit_code == 0, result.output
    sweep = pd.read_csv(tmp_path / "sweep" / "fgsm_sweep.csv")
    assert sweep["eps"].tolist() == [0.0, 0.1, 0.2, 0.3]
    assert sweep["accuracy"].iloc[0] > sweep["accuracy"].iloc[-1]  # stronger steps hurt more
    assert (tmp_path / "sweep" / "fgsm_sweep.png").stat().st_size > 1000
    result = _attack(runner, trained_runs["mlp"], tmp_path / "ifgsm", "--attack", "ifgsm",
                     "--n-images", "3", "--iterations", "10", "--step-size", "0.02")
    assert result.exit_code == 0, result.output
    path = pd.read_csv(tmp_path / "ifgsm" / "ifgsm_path.csv")
    assert len(path) == 11 and path["target_accuracy"].iloc[-1] > path["target_accuracy"].iloc[0]
    assert (tmp_path / "ifgsm" / "ifgsm_path.png").is_file()
    # summarize gathers sweeps into one table and figure, attack runs into one table
    result = runner.invoke(main, ["summarize", str(tmp_path / "sweep"), str(tmp_path / "sweep"),
                                  "--out", str(tmp_path / "all"), "--name", "fig1a"])
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(tmp_path / "all" / "fig1a.csv")) == 8
    assert (tmp_path / "all" / "fig1a.png").is_file()
    result = runner.invoke(main, ["summarize", str(tmp_path / "ifgsm"), "--out",
                                  str(tmp_path / "all"), "--name", "attacks"])
    assert result.exit_code == 0, result.output
    assert pd.read_csv(tmp_path / "all" / "attacks.csv").loc[0, "attack"] == "ifgsm"
    assert (tmp_path / "all" / "attacks_path.png").is_file()
    mixed = runner.invoke(main, ["summarize", str(tmp_path / "ifgsm"), str(tmp_path / "sweep"),
                                 "--out", str(tmp_path / "all")])
    assert mixed.exit_code == 1 and "mix kinds" in mixed.output


@pytest.mark.parametrize("args, message", [
    (["--attack", "bogus"], "Invalid value for '--attack'"),
    (["--attack", "fgsm", "--eps", "1.5"], "[0, 1]"),
    (["--attack", "fgsm", "--eps", "0.5:0.1:0.1"], "STOP >= START"),
    (["--attack", "deepfool", "--eps", "0:0.2:0.1"], "fgsm only"),
    (["--attack", "deepfool", "--n-images", "20000"], "between 1 and the test set"),
    (["--attack", "truncated_deepfool", "--targeted", "all"], "supports --targeted none"),
    (["--attack", "deepfool", "--coordinates", "5"], "not a setting of deepfool"),
    (["--attack", "deepfool", "--p", "1"], "> 1"),
    (["--attack", "noise"], "--l2"),
])
def test_bad_attack_arguments_give_clear_errors(runner, trained_runs, tmp_path, args, message):
    result = _attack(runner, trained_runs["mlp"], tmp_path / "out", *args)
    assert result.exit_code != 0
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()  # nothing half-made


def test_attack_on_a_folder_without_weights_is_refused(runner, tmp_path):
    (tmp_path / "empty").mkdir()
    result = _attack(runner, tmp_path / "empty", tmp_path / "out", "--attack", "fgsm")
    assert result.exit_code == 1 and "not a dbayes run" in result.output


def test_tables_name_the_k_a_run_used(trained_runs):
    model = load_model(trained_runs["gc"])
    assert model_label(model) == "gc-mlp, K=5"  # its default
    assert model_label(model, 1) == "gc-mlp, K=1"


def test_cheap_cw_on_a_generative_classifier_stores_its_levers_and_old_runs_still_resume(
        runner, trained_runs, tmp_path):
    out = tmp_path / "cheap"
    args = ("--attack", "cw_l2", "--targeted", "all", "--n-images", "1", "--iterations", "20",
            "--rivals", "2", "--check-every", "5", "--attack-k", "1", "--precision", "bfloat16",
            "--draws", "3", "--verdict-cap", "9", "--batch-size", "9")
    result = _attack(runner, trained_runs["gc"], out, *args)
    assert result.exit_code == 0, result.output
    config = store.read_config(out)
    assert config["victim"]["attack_k"] == 1 and config["victim"]["precision"] == "bfloat16"
    assert config["victim"]["decision_precision"] == "bfloat16"
    assert config["victim"]["verdict_cap"] == 9 and config["settings"]["rivals"] == 2
    attempts = pd.read_csv(out / "attempts.csv")
    assert attempts["verdict_draws"].isin([3, 6, 9]).all()
    summary = pd.read_csv(out / "summary.csv").iloc[0]
    assert 0 <= summary["undecided"] <= summary["valid_attempts"]
    again = _attack(runner, trained_runs["gc"], out, *args, "--resume")
    assert again.exit_code == 0 and "already done" in again.output, again.output
    # a bfloat16 run stored before the checks followed --precision checked in float32: asked
    # again it is refused by name, and resumes when asked as it ran
    config = store.read_config(out)
    del config["victim"]["decision_precision"]
    store.write_config(out, "attack", config)
    refused = _attack(runner, trained_runs["gc"], out, *args, "--resume")
    assert refused.exit_code != 0 and "decision_precision" in refused.output, refused.output
    again = _attack(runner, trained_runs["gc"], out, *args, "--decision-precision", "float32",
                    "--resume")
    assert again.exit_code == 0 and "already done" in again.output, again.output

    # a run written before the levers existed: the same run asked today resumes it
    plain = tmp_path / "plain"
    old_args = ("--attack", "cw_l2", "--targeted", "all", "--n-images", "1", "--iterations",
                "10", "--draws", "3", "--batch-size", "4")
    assert _attack(runner, trained_runs["gc"], plain, *old_args).exit_code == 0
    config = store.read_config(plain)
    for added in ("rivals", "check_every"):
        del config["settings"][added]
    store.write_config(plain, "attack", config)
    frame = pd.read_csv(plain / "attempts.csv")
    frame[frame["attempt"] < 4].drop(columns="verdict_draws").to_csv(plain / "attempts.csv",
                                                                     index=False)
    resumed = _attack(runner, trained_runs["gc"], plain, *old_args, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert "4 of 9 attempts done" in resumed.output
    assert (pd.read_csv(plain / "attempts.csv")["verdict_draws"] == 3).all()


def test_judge_draws_again_until_decided_into_a_new_run(runner, trained_runs, tmp_path):
    out, judged = tmp_path / "df", tmp_path / "judged"
    result = _attack(runner, trained_runs["gc"], out, "--attack", "deepfool", "--n-images",
                     "8", "--iterations", "3", "--draws", "3", "--batch-size", "4")
    assert result.exit_code == 0, result.output
    before = (out / "attempts.csv").read_text()
    result = runner.invoke(main, ["judge", str(out), "--verdict-cap", "12", "--out",
                                  str(judged), "--quiet"])
    assert result.exit_code == 0, result.output
    assert (out / "attempts.csv").read_text() == before  # the original is left alone
    old, new = pd.read_csv(out / "attempts.csv"), pd.read_csv(judged / "attempts.csv")
    assert new["attempt"].tolist() == old["attempt"].tolist()
    np.testing.assert_allclose(new["l2"], old["l2"])
    assert new["verdict_draws"].isin([3, 6, 9, 12]).all()
    from dbayes_tf.stats import undecided
    stopped = new[new["verdict_draws"] < 12]  # those that stopped before the cap were decided
    assert not undecided(stopped["fooled_rate"], stopped["verdict_draws"]).any()
    np.testing.assert_array_equal(store.read_images(judged)["x_adv"],
                                  store.read_images(out)["x_adv"])
    summary = pd.read_csv(judged / "summary.csv").iloc[0]
    assert summary["undecided"] <= summary["valid_attempts"]
    assert store.read_config(judged)["victim"]["verdict_cap"] == 12
    again = runner.invoke(main, ["judge", str(out), "--verdict-cap", "12", "--out",
                                 str(judged), "--quiet"])
    assert again.exit_code != 0 and "Traceback" not in again.output
