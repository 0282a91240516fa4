"""What a new user's trial found: damaged run files are refused with a clear message, every
run kind has the same --out guard, interrupted runs say what they hold and exit 130, and usage
mistakes answer before TensorFlow loads."""
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from dbayes_cli.main import main
from dbayes_tf import attacks


@pytest.fixture
def runner():
    return CliRunner()


def _attack(runner, run, out, *args):
    return runner.invoke(main, ["attack", str(run), "--out", str(out), "--quiet", *args])


DEEPFOOL = ["--attack", "deepfool", "--n-images", "6", "--batch-size", "2", "--iterations", "5"]


def test_a_damaged_attempts_file_is_refused_on_resume_and_by_detect(runner, trained_runs,
                                                                     tmp_path):
    out = tmp_path / "df"
    assert _attack(runner, trained_runs["mlp"], out, *DEEPFOOL).exit_code == 0
    path = out / "attempts.csv"
    text = path.read_text()
    path.write_text(text[: len(text) - 40])  # cut mid-row, as a crash of a plain write would
    result = _attack(runner, trained_runs["mlp"], out, *DEEPFOOL, "--resume")
    assert result.exit_code == 1 and "attempts.csv is damaged" in result.output
    assert "Traceback" not in result.output
    detect = runner.invoke(main, ["detect", "--method", "logit", "--detector-model",
                                  str(trained_runs["gc"]), "--adv", str(out), "--out",
                                  str(tmp_path / "det"), "--quiet"])
    assert detect.exit_code == 1 and "damaged" in detect.output, detect.output
    # rows listed twice are damage too, not attempts done twice
    path.write_text(text + text.splitlines()[1] + "\n")
    result = _attack(runner, trained_runs["mlp"], out, *DEEPFOOL, "--resume")
    assert result.exit_code == 1 and "attempts listed twice" in result.output


def test_a_damaged_image_file_is_refused(runner, trained_runs, tmp_path):
    out = tmp_path / "df"
    assert _attack(runner, trained_runs["mlp"], out, *DEEPFOOL).exit_code == 0
    (out / "adversarial" / "00001.npz").write_bytes(b"PK\x03\x04 not a zip")
    result = _attack(runner, trained_runs["mlp"], out, *DEEPFOOL[:-2], "--iterations", "6",
                     "--resume")
    assert result.exit_code == 1 and "iterations: saved 5, asked 6" in result.output
    detect = runner.invoke(main, ["detect", "--method", "logit", "--detector-model",
                                  str(trained_runs["gc"]), "--adv", str(out), "--out",
                                  str(tmp_path / "det"), "--quiet"])
    assert detect.exit_code == 1 and "00001.npz is damaged" in detect.output
    assert "BadZipFile" in detect.output and "Traceback" not in detect.output
    # an unfinished run whose recorded attempts lost their images cannot be resumed
    (out / "summary.csv").unlink()
    result = _attack(runner, trained_runs["mlp"], out, *DEEPFOOL, "--resume")
    assert result.exit_code == 1 and "damaged" in result.output


def test_every_run_kind_has_the_same_out_guard(runner, trained_runs, tmp_path):
    attack_dir, sweep_dir = tmp_path / "df", tmp_path / "sweep"
    assert _attack(runner, trained_runs["mlp"], attack_dir, *DEEPFOOL).exit_code == 0
    sweep = ["--attack", "fgsm", "--eps", "0:0.2:0.1", "--n-images", "4"]
    result = _attack(runner, trained_runs["mlp"], attack_dir, *sweep)
    assert result.exit_code == 1 and "holds an attack run" in result.output
    assert _attack(runner, trained_runs["mlp"], sweep_dir, *sweep).exit_code == 0
    assert (sweep_dir / "config.json").is_file()
    again = _attack(runner, trained_runs["mlp"], sweep_dir, *sweep)
    assert again.exit_code == 1 and "--overwrite" in again.output
    done = _attack(runner, trained_runs["mlp"], sweep_dir, *sweep, "--resume")
    assert done.exit_code == 0 and "already done" in done.output
    other = _attack(runner, trained_runs["mlp"], sweep_dir, *sweep[:-1], "5", "--resume")
    assert other.exit_code == 1 and "image_ids" in other.output
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "notes.txt").write_text("mine")
    result = _attack(runner, trained_runs["mlp"], tmp_path / "stuff", *DEEPFOOL)
    assert result.exit_code == 1 and "holds no dbayes run" in result.output
    result = runner.invoke(main, ["train", "--model", "mlp", "--out", str(attack_dir)])
    assert result.exit_code == 1 and "choose another --out for a training run" in result.output


def test_an_interrupted_attack_says_what_it_holds_and_exits_130(runner, trained_runs, tmp_path,
                                                                 monkeypatch):
    real, calls = attacks.deepfool, {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(attacks, "deepfool", interrupted)
    out = tmp_path / "df"
    result = _attack(runner, trained_runs["mlp"], out, *DEEPFOOL)
    assert result.exit_code == 130 and "interrupted" in result.output
    assert pd.read_csv(out / "summary.csv").loc[0, "attempts"] == 2
    assert "2 of 6 planned attempts done (unfinished)" in (out / "summary.md").read_text()


def test_a_deterministic_model_says_that_k_and_r_mean_nothing_to_it(runner, trained_runs,
                                                                    tmp_path):
    result = runner.invoke(main, ["eval", str(trained_runs["mlp"]), "--k", "10", "--quiet",
                                  "--test-size", "50", "--out", str(tmp_path)])
    assert result.exit_code == 0 and "mlp is deterministic: K 10 ignored" in result.output
    result = _attack(runner, trained_runs["mlp"], tmp_path / "df", *DEEPFOOL, "--draws", "5")
    assert result.exit_code == 0 and "R 5 ignored" in result.output
    config = pd.read_json(tmp_path / "df" / "config.json", typ="series")
    assert config["victim"]["verdict_draws"] == 1 and config["victim"]["k"] == 1


@pytest.mark.parametrize("args", [
    ["attack", "RUN", "--attack", "bogus", "--out", "x"],
    ["attack", "RUN", "--attack", "fgsm", "--data-dir", "/no/such/folder", "--out", "x"],
    ["attack", "RUN", "--attack", "deepfool", "--p", "1", "--out", "x"],
    ["attack", "RUN", "--attack", "deepfool", "--coordinates", "4", "--out", "x"],
    ["attack", "/no/such/run", "--attack", "fgsm", "--out", "x"],
])
def test_usage_mistakes_answer_before_tensorflow_loads(trained_runs, args):
    args = [str(trained_runs["mlp"]) if a == "RUN" else a for a in args]
    code = (f"import sys\nfrom dbayes_cli.main import main\ntry:\n    main({args!r})\n"
            "except SystemExit as e:\n    print('exit', e.code)\n"
            "print('tensorflow' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.stdout.split()[-3:-1] in (["exit", "1"], ["exit", "2"]), done.stdout
    assert done.stdout.split()[-1] == "False", done.stdout + done.stderr


def test_an_interruption_between_files_keeps_images_and_rows_consistent(trained_runs, tmp_path):
    from dbayes_tf.runs import store

    runner = CliRunner()
    out = tmp_path / "df"
    assert _attack(runner, trained_runs["mlp"], out, *DEEPFOOL).exit_code == 0
    rows = pd.read_csv(out / "attempts.csv")
    rows.iloc[:4].to_csv(out / "attempts.csv", index=False)  # the last rows never written
    saved = store.read_images(out)
    assert saved["attempt"].tolist() == [0, 1, 2, 3]  # an image without its row is not done
    assert np.isfinite(saved["x_adv"]).all()


def test_runs_name_their_model_relative_to_themselves(runner, trained_runs, tmp_path):
    """A committed attack run finds its victim in any clone: the folders move together."""
    import shutil

    from dbayes_tf.runs import store

    first = tmp_path / "clone1"
    shutil.copytree(trained_runs["mlp"], first / "models" / "mlp")
    shutil.copytree(trained_runs["gc"], first / "models" / "gc")
    assert _attack(runner, first / "models" / "mlp", first / "attacks" / "df",
                   *DEEPFOOL).exit_code == 0
    saved = store.read_config(first / "attacks" / "df")
    assert saved["model_dir"] == "../../models/mlp"
    second = tmp_path / "clone2"
    shutil.move(first, second)
    result = runner.invoke(main, ["detect", "--method", "logit", "--detector-model",
                                  str(second / "models" / "gc"), "--adv",
                                  str(second / "attacks" / "df"), "--n-fit", "300",
                                  "--n-clean", "20", "--out", str(tmp_path / "det"), "--quiet"])
    assert result.exit_code == 0, result.output


def test_settings_added_later_read_as_the_stored_run_ran():
    from dbayes_tf.attack_settings import CarliniWagnerL2Settings

    stored = CarliniWagnerL2Settings().to_dict()
    for added in ("rivals", "check_every"):
        del stored[added]
    assert CarliniWagnerL2Settings.completed(stored) == CarliniWagnerL2Settings().to_dict()
    changed = CarliniWagnerL2Settings.build({"rivals": 2, "check_every": 10}).to_dict()
    assert CarliniWagnerL2Settings.completed(changed) == changed


def test_runs_record_how_the_cpu_computes_bfloat16(tmp_path):
    """The attacks' bfloat16 levers pay on AMX hosts only, so every run records which kind of
    host made it."""
    from dbayes_tf import reporting

    def kind(flags):
        path = tmp_path / "cpuinfo"
        path.write_text(f"processor\t: 0\nflags\t\t: fpu sse2 {flags}\nbogomips\t: 1\n")
        return reporting.cpu_bfloat16(path)

    assert kind("avx512f avx512_bf16 amx_bf16 amx_tile") == "amx"
    assert kind("avx512f avx512_bf16") == "avx512_bf16"
    assert kind("avx2") == "none"
    assert reporting.cpu_bfloat16(tmp_path / "absent") == "unknown"
    assert reporting.environment()["cpu_bfloat16"] in ("amx", "avx512_bf16", "none", "unknown")
