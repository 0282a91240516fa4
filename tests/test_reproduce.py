"""``dbayes reproduce``: a small plan of every step kind, run straight, interrupted and resumed
(the same REPORT.md), a second call that does nothing, and plans that are refused."""
import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from dbayes_cli.main import main
from dbayes_tf import attacks, reporting


def _plan(tmp_path, trained_runs, **changes):
    """A smaller smoke plan: one model trained on the spot, one reused run, one attack of each
    family, one detection, and a table of each kind."""
    plan = {
        "name": "mini", "title": "Mini plan", "default_scale": "smoke", "seed": 0,
        "scales": {"smoke": {"images": 4}, "reduced": {"images": 6}},
        "models": {
            "mlp": {"train": {"model": "mlp", "hidden": 32, "epochs": 1, "train_size": 600,
                              "validation_size": 100, "test_size": 200, "batch_size": 50}},
            "gc": {"run": str(trained_runs["gc"]), "evaluate": ["validation"]},
        },
        "attacks": {
            "sweep_gc": {"model": "gc", "attack": "fgsm", "settings": {"eps": "0:0.2:0.1"},
                         "victim": {"verdict_draws": 3}},
            "ifgsm_mlp": {"model": "mlp", "attack": "ifgsm", "settings": {"iterations": 4}},
            "deepfool_gc": {"model": "gc", "attack": "deepfool", "batch_size": 2,
                            "settings": {"iterations": 5, "candidates": 3},
                            "victim": {"k": 2, "verdict_draws": 3}},
            "cw_mlp": {"model": "mlp", "attack": "cw_l2", "targeted": "all", "images": 2,
                       "settings": {"iterations": 10}, "batch_size": 18},
        },
        "detections": {"logit_gc": {"method": "logit", "detector": "gc",
                                    "attacks": ["deepfool_gc"],
                                    "options": {"n_fit": 400, "n_clean": 20}}},
        "tables": [
            {"id": "acc", "kind": "accuracy", "rows": {"GC": "gc"},
             "columns": ["test_accuracy", "validation_accuracy"]},
            {"id": "sweep", "kind": "sweep", "rows": {"GC": "sweep_gc"},
             "columns": ["accuracy", "rho"]},
            {"id": "path", "kind": "path", "rows": {"MLP": "ifgsm_mlp"}},
            {"id": "paper1_table1", "kind": "attacks", "rows": {"CNN": "cw_mlp"},
             "columns": ["clean_accuracy", "accuracy_adv", "l2_median", "success_rate"]},
            {"id": "grid", "kind": "grid", "measure": "detection_rate",
             "rows": {"GFZ": {"DeepFool": ["logit_gc", "deepfool_gc"]}}},
            {"id": "costs", "kind": "costs", "rows": {"GFZ": {"DeepFool": "deepfool_gc"}}},
            {"id": "examples", "kind": "examples", "rows": {"DeepFool": "deepfool_gc"},
             "images": 3, "reconstruct_with": "gc"},
        ],
    }
    plan.update(changes)
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return path


def _reproduce(*args):
    return CliRunner().invoke(main, ["reproduce", *map(str, args), "--quiet"])


def test_reproduce_straight_interrupted_and_again(tmp_path, trained_runs, monkeypatch):
    plan = _plan(tmp_path, trained_runs)
    straight = _reproduce(plan, "--out", tmp_path / "a")
    assert straight.exit_code == 0, straight.output
    report = (tmp_path / "a" / "REPORT.md").read_text()
    for heading in ("acc", "sweep", "path", "paper1_table1", "grid"):
        assert (tmp_path / "a" / "tables" / f"{heading}.csv").is_file()
    assert "(n=4)" in report and "% [" in report  # every rate with its interval and n
    assert "99.89%" in report  # the paper's number beside ours (paper 1 Table 1, CNN)
    assert (tmp_path / "a" / "figures" / "sweep.png").is_file()
    sweep = pd.read_csv(tmp_path / "a" / "tables" / "sweep.csv")
    assert list(sweep.columns) == ["eps", "GC", "GC: rho"]
    assert sweep["GC: rho"].iloc[0] == "n/a" or float(sweep["GC: rho"].iloc[0]) == 0.0
    assert (sweep["GC: rho"].iloc[1:].astype(float) > 0).all()  # eps > 0 moves the image
    from dbayes_tf.runs.reproduce import recorded_costs

    timed = [c for c in recorded_costs([tmp_path / "a"]) if c["run"].endswith("sweep_gc")]
    assert len(timed) == 1 and timed[0]["attack"] == "fgsm" and timed[0]["seconds"] > 0
    examples = pd.read_csv(tmp_path / "a" / "tables" / "examples.csv")
    deepfool = pd.read_csv(tmp_path / "a" / "attacks" / "deepfool_gc" / "attempts.csv")
    assert list(examples.columns) == ["image", "DeepFool", "clean: d(x, r(x, class))",
                                      "DeepFool: d(x, r(x, class))"] and len(examples) == 3
    assert examples["DeepFool"].tolist() == [f"{p} ({d:.2f})" for p, d in
                                             zip(deepfool["pred_adv"][:3], deepfool["l2"][:3])]
    # paper 1 Fig. 2: the distances are the reconstruction detector's, d(x*, r(x*, F(x*)))
    from dbayes_tf.runs.store import read_images
    from dbayes_tf.runs.train import load_model

    gc = load_model(trained_runs["gc"])
    made = read_images(tmp_path / "a" / "attacks" / "deepfool_gc", deepfool.iloc[:3])
    x_adv = made["x_adv"][:3]
    rebuilt = gc.reconstruct(x_adv, deepfool["pred_adv"][:3].to_numpy()).numpy()
    expected = np.sqrt(((x_adv - rebuilt) ** 2).reshape(3, -1).sum(axis=1))
    assert examples["DeepFool: d(x, r(x, class))"].tolist() == pytest.approx(
        [float(f"{d:.2f}") for d in expected], abs=0.011)
    assert (tmp_path / "a" / "figures" / "examples.png").is_file()
    assert "seconds per attempt" in (tmp_path / "a" / "COSTS.md").read_text()
    # the targeted attack ran on the first 2 of the plan's 4 images, which the others share
    images = pd.read_csv(tmp_path / "a" / "attacks" / "cw_mlp" / "attempts.csv")["image_id"]
    everyone = pd.read_csv(tmp_path / "a" / "attacks" / "deepfool_gc" / "attempts.csv")
    assert images.nunique() == 2 and set(images) <= set(everyone["image_id"])

    again = _reproduce(plan, "--out", tmp_path / "a")
    assert again.exit_code == 0 and "nothing to do" in again.output
    assert (tmp_path / "a" / "REPORT.md").read_text() == report

    # Ctrl-C in the middle of an attack, then the same command: the same report
    real, calls = attacks.deepfool, {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the second batch of deepfool_gc
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(attacks, "deepfool", interrupted)
    cut = _reproduce(plan, "--out", tmp_path / "b")
    assert cut.exit_code == 130, cut.output
    assert len(pd.read_csv(tmp_path / "b" / "attacks" / "deepfool_gc" / "attempts.csv")) == 2
    dry = _reproduce(plan, "--out", tmp_path / "b", "--dry-run", "--costs-from", tmp_path / "a")
    assert dry.exit_code == 0 and "partial  attack   deepfool_gc" in dry.output
    assert "done     sweep    sweep_gc" in dry.output, dry.output
    assert "to do    attack   cw_mlp" in dry.output
    assert "no recorded cost" not in dry.output  # sweeps too record what they cost
    # the costs came from runs made on this CPU a moment ago: no guess across kinds of CPU
    assert f"this CPU's bfloat16: {reporting.cpu_bfloat16()}" in dry.output
    assert "another kind of CPU" not in dry.output
    # each table's share of the time left (the steps its rows name), from costs of the same
    # steps run a moment ago in tmp_path / "a"
    by_table = next(line for line in dry.output.splitlines() if line.startswith("by table:"))
    assert "paper1_table1 " in by_table and "paper1_table1 at least" not in by_table, by_table
    assert "acc " not in by_table  # its model is reused: nothing left to do
    # a model the plan trains is priced by the epochs of a run of the same kind
    fresh = _reproduce(plan, "--out", tmp_path / "c", "--dry-run", "--costs-from",
                       tmp_path / "a")
    line = next(text for text in fresh.output.splitlines() if "model    mlp" in text)
    assert line.startswith("  to do    model    mlp  ~"), line
    assert f"(from {tmp_path / 'a' / 'models' / 'mlp'}: " in line and "s per epoch)" in line
    monkeypatch.setattr(attacks, "deepfool", real)
    resumed = _reproduce(plan, "--out", tmp_path / "b")
    assert resumed.exit_code == 0, resumed.output
    assert (tmp_path / "b" / "REPORT.md").read_text() == report


def test_one_step_runs_alone_with_the_steps_it_reads(tmp_path, trained_runs):
    attacks_ = {"sweep_gc": {"model": "gc", "attack": "fgsm", "settings": {"eps": "0:0.2:0.1"}},
                "deepfool_gc": {"model": "gc", "attack": "deepfool", "batch_size": 2,
                                "settings": {"iterations": 3, "candidates": 3},
                                "victim": {"k": 2, "verdict_draws": 3}}}
    plan = _plan(tmp_path, trained_runs, tables=[], attacks=attacks_,
                 models={"gc": {"run": str(trained_runs["gc"])}})
    result = _reproduce(plan, "--out", tmp_path / "a", "--step", "logit_gc")
    assert result.exit_code == 0, result.output
    made = {path.name for path in (tmp_path / "a" / "attacks").iterdir()}
    assert made == {"deepfool_gc"}  # the detection's attack; not the sweep
    assert (tmp_path / "a" / "detections" / "logit_gc" / "detect_logit.csv").is_file()
    unknown = _reproduce(plan, "--out", tmp_path / "a", "--step", "nope")
    assert unknown.exit_code == 1 and "has no step nope" in unknown.output
    assert "sweep_gc" in unknown.output  # and lists the steps it has


def test_a_changed_plan_is_refused_not_mixed_in(tmp_path, trained_runs):
    plan = _plan(tmp_path, trained_runs, tables=[], detections={},
                 attacks={"sweep_gc": {"model": "gc", "attack": "fgsm",
                                       "settings": {"eps": "0:0.2:0.1"}}})
    assert _reproduce(plan, "--out", tmp_path / "a").exit_code == 0
    changed = _plan(tmp_path, trained_runs, tables=[], detections={},
                    attacks={"sweep_gc": {"model": "gc", "attack": "fgsm",
                                          "settings": {"eps": "0:0.3:0.1"}}})
    result = _reproduce(changed, "--out", tmp_path / "a")
    assert result.exit_code == 1 and "sweep:sweep_gc were made with other settings" in \
        result.output
    # the same attack on another model: its results are stale too
    other_model = _plan(tmp_path, trained_runs, tables=[], detections={},
                        attacks={"sweep_gc": {"model": "gc", "attack": "fgsm",
                                              "settings": {"eps": "0:0.2:0.1"}}},
                        models={"gc": {"run": str(trained_runs["mlp"])}})
    result = _reproduce(other_model, "--out", tmp_path / "a")
    assert result.exit_code == 1 and "sweep:sweep_gc" in result.output


@pytest.mark.parametrize("change, message", [
    ({"attacks": {"x": {"model": "nope", "attack": "fgsm"}}}, "unknown model 'nope'"),
    ({"attacks": {"x": {"model": "gc", "attack": "deepfool", "settings": {"coordinates": 3}}}},
     "deepfool has no setting(s) coordinates"),
    ({"attacks": {"x": {"model": "gc", "attack": "truncated_deepfool",
                        "targeted": "all"}}},
     "supports --targeted none"),
    ({"detections": {"d": {"method": "logit", "detector": "gc", "attacks": ["missing"]}}},
     "unknown attack 'missing'"),
    ({"scales": {"smoke": {}}}, "how many test images"),
    ({"tables": [{"id": "e", "kind": "examples", "rows": {"DeepFool": "deepfool_gc"},
                  "reconstruct_with": "nope"}]}, "reconstruct_with is for an examples table"),
    ({"attacks": {"x": {"model": "gc", "attack": "fgsm", "images": "all"}}},
     "images must be a whole number of test images, at least 1; got 'all'"),
    ({"tables": [{"id": "t", "kind": "attacks", "rows": {"MLP": "cw_mlp"}}]},
     "a table of kind attacks needs columns:"),
    ({"scales": {"smoke": {"images": 4, "tables": []}}}, "a scale says images: and overrides:"),
    ({"attacks": {"x": {"model": "gc", "attack": "deepfool", "victim": {"draws": 3}}}},
     "unknown victim option(s) ['draws']"),
    ({"detections": {"d": {"method": "logit", "detector": "gc", "attacks": [],
                           "options": {"nfit": 3}}}}, "unknown option(s) ['nfit']"),
    ({"attacks": {"x": {"model": "gc", "attack": "ifgsm", "settings": {"eps": "0:0.2:0.1"}}}},
     "an eps sweep is for fgsm only"),
    ({"tables": [{"id": "s", "kind": "sweep", "rows": {"GC": "sweep_gc"},
                  "columns": ["rho"]}]}, "a sweep table's columns are accuracy and then"),
])
def test_bad_plans_are_refused_before_anything_runs(tmp_path, trained_runs, change, message):
    plan = _plan(tmp_path, trained_runs, **change)
    result = _reproduce(plan, "--out", tmp_path / "out")
    assert result.exit_code == 1 and message in result.output, result.output
    assert not (tmp_path / "out").exists()


def test_the_committed_plans_load_at_every_scale():
    from dbayes_tf.runs.reproduce import load_plan

    for name in ("smoke", "paper1", "paper2"):
        for scale in ("smoke", "reduced", "paper"):
            plan = load_plan(f"configs/{name}.yaml", scale)
            assert plan.steps() and plan.n_images >= 1


def test_dry_run_costs_come_from_runs_with_the_same_levers():
    from dbayes_tf.runs.reproduce import _levers, planned_victim

    settings = {"rivals": 2, "check_every": 10}
    planned = _levers(planned_victim({"k": 10, "attack_k": 1, "precision": "bfloat16"}), settings)
    stored = {"k": 10, "attack_k": 1, "precision": "bfloat16", "decision_precision": "bfloat16"}
    assert planned == _levers(stored, settings)
    # a run stored before the checks followed the attacker's precision checked in float32
    older = {key: value for key, value in stored.items() if key != "decision_precision"}
    assert planned != _levers(older, settings)
    assert _levers(planned_victim({"k": 10}), {}) == _levers({"k": 10}, {})


def test_dry_run_costs_come_from_runs_with_as_many_decision_draws():
    from dbayes_tf.runs.reproduce import _same_draws
    from dbayes_tf.victim import STOCHASTIC_DECISION_DRAWS

    one = {"stochastic": True, "decision_draws": 1}
    default = {"stochastic": True, "decision_draws": STOCHASTIC_DECISION_DRAWS}
    assert _same_draws({"decision_draws": 1}, one) and not _same_draws({}, one)
    assert _same_draws({}, default) and not _same_draws({"decision_draws": 1}, default)
    assert _same_draws({}, {"k": 10})  # a run stored before the draws were recorded
    # a deterministic model decides on one call whatever the plan asks
    assert _same_draws({"decision_draws": 5}, {"stochastic": False, "decision_draws": 1})


def test_dry_run_takes_the_cost_recorded_at_the_closest_batch_size():
    from types import SimpleNamespace

    from dbayes_tf.runs.reproduce import Step, _levers, closest_cost

    plan = SimpleNamespace(models={"gc": {"run": "results/models/gc_run"}}, n_images=10)
    step = Step("attack", "cw_gc", {"model": "gc", "attack": "cw_l2", "targeted": "all",
                                    "batch_size": 18})
    levers = _levers({"k": 10}, {})
    recorded = [{"model": "gc_run", "attack": "cw_l2", "k": 10, "work": 1000.0,
                 "levers": levers, "batch_size": size, "seconds": seconds}
                for size, seconds in ((9, 2.0), (18, 1.0), (90, 0.5))]
    # the fast preset: 1 x 1,000 steps; the cost recorded at the plan's batch of 18
    assert closest_cost(plan, step, recorded) == (1.0 * 10 * 9, recorded[1])
    assert closest_cost(plan, step, recorded[:1]) == (2.0 * 10 * 9, recorded[0])  # the only one
    other = [{**recorded[1], "levers": _levers({"k": 10, "attack_k": 1}, {})}]
    assert closest_cost(plan, step, other) is None  # other levers: no estimate
    # a run with the step's targeting is preferred to a closer batch of another targeting
    untargeted = {**recorded[1], "targeted": "none", "seconds": 0.1}
    targeted = {**recorded[2], "targeted": "all"}
    assert closest_cost(plan, step, [untargeted, targeted]) == (0.5 * 10 * 9, targeted)



def test_dry_run_prefers_costs_recorded_on_a_cpu_of_this_kind():
    from types import SimpleNamespace

    from dbayes_tf.runs.reproduce import Step, _levers, closest_cost

    plan = SimpleNamespace(models={"gc": {"run": "results/models/gc_run"}}, n_images=10)
    step = Step("attack", "cw_gc", {"model": "gc", "attack": "cw_l2", "targeted": "all",
                                    "batch_size": 18})
    base = {"model": "gc_run", "attack": "cw_l2", "k": 10, "levers": _levers({"k": 10}, {}),
            "batch_size": 18}
    amx = {**base, "work": 1000.0, "host": "amx", "seconds": 1.0}
    # the same work and batch, but another kind of CPU: chosen over a closer match elsewhere
    vector = {**base, "work": 5000.0, "host": "avx512_bf16", "seconds": 10.0}
    assert closest_cost(plan, step, [amx, vector], host="avx512_bf16") == (2.0 * 90, vector)
    assert closest_cost(plan, step, [amx, vector], host="amx") == (1.0 * 90, amx)
    # none recorded on this kind: the closest of the others still gives an estimate
    assert closest_cost(plan, step, [amx], host="none") == (1.0 * 90, amx)


def _cw_pair_plan(tmp_path, trained_runs, reference_batch=18):
    """Two CW runs on the same 2 images x 9 targets that differ in one setting, and a paired
    table of them; the ablation is added by the reduced scale only."""
    cw = {"model": "mlp", "attack": "cw_l2", "targeted": "all", "images": 2,
          "settings": {"iterations": 100, "lr": 0.1}}
    return _plan(
        tmp_path, trained_runs, detections={},
        models={"mlp": {"run": str(trained_runs["mlp"])}},
        attacks={"cw_mlp": {**cw, "batch_size": reference_batch}},
        tables=[{"id": "table1", "kind": "attacks", "rows": {"MLP": "cw_mlp"},
                 "columns": ["success_rate", "l2_median"]}],
        scales={"smoke": {"images": 4},
                "reduced": {"images": 4, "overrides": {
                    "attacks": {"cw_short": {**cw, "settings": {"iterations": 15, "lr": 0.1},
                                             "batch_size": 18}},
                    "tables": [{"id": "ablation", "kind": "paired",
                                "rows": {"100 steps": "cw_mlp", "15 steps": "cw_short"}}]}}})


def test_a_scale_trains_a_model_the_other_scales_reuse(tmp_path, trained_runs):
    from dbayes_tf.runs.reproduce import load_plan

    retrain = {"run": None, "train": {"model": "mlp", "hidden": 16, "epochs": 2}}
    plan = _plan(tmp_path, trained_runs,
                 scales={"smoke": {"images": 4},
                         "reduced": {"images": 4, "overrides": {"models": {"gc": retrain}}}})
    assert "run" in load_plan(plan, "smoke").models["gc"]
    assert load_plan(plan, "reduced").models["gc"] == {"train": retrain["train"],
                                                      "evaluate": ["validation"]}


def test_a_scale_adds_steps_and_tables_and_a_paired_table_counts_the_same_attempts(
        tmp_path, trained_runs):
    from dbayes_tf import stats
    from dbayes_tf.runs.reproduce import load_plan

    plan = _cw_pair_plan(tmp_path, trained_runs)
    assert "cw_short" not in load_plan(plan, "smoke").attacks
    reduced = load_plan(plan, "reduced")
    assert "cw_short" in reduced.attacks and [t["id"] for t in reduced.tables] == \
        ["table1", "ablation"]
    result = _reproduce(plan, "--out", tmp_path / "a", "--scale", "reduced")
    assert result.exit_code == 0, result.output
    ablation = pd.read_csv(tmp_path / "a" / "tables" / "ablation.csv").set_index("Unnamed: 0")
    # the counts, from the two runs' own attempts
    runs = [pd.read_csv(tmp_path / "a" / "attacks" / name / "attempts.csv")
            .query("clean_correct").set_index(["image_id", "target"]).sort_index()
            for name in ("cw_mlp", "cw_short")]
    long, short = (run["success"] for run in runs)
    only_short, only_long = int((short & ~long).sum()), int((long & ~short).sum())
    assert only_long > 0  # the comparison has something to count
    assert ablation.loc["15 steps", "attempts"] == len(long)
    assert ablation.loc["15 steps", "won only here / only there"] == \
        f"{only_short} / {only_long}"
    low, high = stats.paired_difference_interval(int((long & short).sum()), only_short,
                                                 only_long, int((~long & ~short).sum()))
    column = "difference from 100 steps [95% CI, paired]"
    assert ablation.loc["15 steps", column] == (
        f"{100 * (only_short - only_long) / len(long):+.1f} points [{100 * low:+.1f}, "
        f"{100 * high:+.1f}]")
    assert pd.isna(ablation.loc["100 steps", column])  # the reference row has no difference
    # distortion on the attempts both won: the two means and the mean of the differences
    both = long & short
    assert both.sum() > 0
    l2_long, l2_short = runs[0].loc[both, "l2"], runs[1].loc[both, "l2"]
    shown = ablation.loc["15 steps",
                         "where both won (n): mean L2 here / there, difference [95% CI]"]
    assert shown.startswith(f"({int(both.sum())}) {l2_short.mean():.3f} / {l2_long.mean():.3f}, "
                            f"{(l2_short - l2_long).mean():+.3f} [")


def test_an_attack_may_take_more_images_than_the_plan_a_superset_of_them(tmp_path,
                                                                          trained_runs):
    attack = {"model": "gc", "attack": "fgsm", "victim": {"verdict_draws": 3}}
    plan = _plan(tmp_path, trained_runs, detections={},
                 models={"gc": {"run": str(trained_runs["gc"])}},
                 attacks={"fgsm_plan": attack, "fgsm_more": {**attack, "images": 7},
                          "fgsm_fewer": {**attack, "images": 2}},
                 tables=[{"id": "fgsm", "kind": "attacks",
                          "rows": {"plan": "fgsm_plan", "more": "fgsm_more",
                                   "fewer": "fgsm_fewer"},
                          "columns": ["success_rate"]}])
    dry = _reproduce(plan, "--out", tmp_path / "a", "--dry-run")
    assert dry.exit_code == 0, dry.output
    result = _reproduce(plan, "--out", tmp_path / "a")
    assert result.exit_code == 0, result.output

    def ids(name):
        return set(pd.read_csv(tmp_path / "a" / "attacks" / name / "attempts.csv")["image_id"])

    plan_ids = set(reporting.read_json(tmp_path / "a" / "images.json")["ids"]["mnist"])
    assert len(plan_ids) == 4 and ids("fgsm_plan") == plan_ids
    assert len(ids("fgsm_more")) == 7 and plan_ids < ids("fgsm_more")
    assert len(ids("fgsm_fewer")) == 2 and ids("fgsm_fewer") < plan_ids


def test_a_step_still_running_shows_its_attempts_so_far(tmp_path, trained_runs, monkeypatch):
    plan = _cw_pair_plan(tmp_path, trained_runs, reference_batch=9)
    real, calls = attacks.carlini_wagner_l2, {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the reference's second batch of 9
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(attacks, "carlini_wagner_l2", interrupted)
    cut = _reproduce(plan, "--out", tmp_path / "a", "--scale", "reduced", "--step", "cw_mlp")
    assert cut.exit_code == 130, cut.output
    shown = _reproduce(plan, "--out", tmp_path / "a", "--scale", "reduced", "--report-only")
    assert shown.exit_code == 0, shown.output
    report = (tmp_path / "a" / "REPORT.md").read_text()
    assert "| MLP (9 of 18 so far) |" in report
    assert "**unfinished: 9 of 18 attempts so far**, the rest about" in report
    # the ablation has not run: its paired table waits for it
    assert report.split("## ablation")[1].split("\n\n")[1].count("not run yet") == 1


def test_dry_run_prices_only_the_attempts_a_partial_step_has_left(tmp_path):
    from dbayes_tf.runs.reproduce import Step, _share_left

    step = Step("attack", "cw", {})
    assert _share_left(tmp_path, step) == 1.0  # nothing made yet
    (tmp_path / "attacks" / "cw").mkdir(parents=True)
    pd.DataFrame({"attempts": [54], "planned": [1800]}).to_csv(
        tmp_path / "attacks" / "cw" / "summary.csv", index=False)
    assert _share_left(tmp_path, step) == pytest.approx(1 - 54 / 1800)
