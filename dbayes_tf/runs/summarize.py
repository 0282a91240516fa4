"""``dbayes summarize``: one table from finished runs of one kind; computes nothing new.

Training runs give their metrics.json beside the papers' numbers; attack runs their summary
rows; FGSM sweeps their curves (paper 1 Fig. 1a, drawn together); iterative FGSM runs also
their per-iteration paths (Fig. 1b).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .. import metrics, paper_numbers, reporting
from . import store
from .attack import read_attack_config
from .store import RunError

ATTACK_FRONT = ["run", "model", "attack", "targeted", "attempts", "planned", "clean_accuracy",
                "error_adv", "accuracy_adv", "success_rate", "success_rate_single_draw",
                "l2_mean", "l2_median", "robustness_rho", "seconds_per_attempt"]


def run_kind(run_dir: str | Path) -> str:
    """'train', 'attack' or 'sweep', for a finished run."""
    run_dir = Path(run_dir)
    if not store.has_config(run_dir) and (run_dir / store.SWEEP_FILE).is_file():
        return "sweep"  # sweeps written before every run kind kept a config.json
    kind = store.kind_of(store.read_config(run_dir))
    finished = {"train": store.METRICS_FILE, "attack": store.SUMMARY_FILE,
                "sweep": store.SWEEP_FILE}
    if kind not in finished or not (run_dir / finished[kind]).is_file():
        if kind == "detect":
            raise RunError(f"{run_dir}: detection runs are not summarised; their "
                           "detect_METHOD.md is the table")
        raise RunError(f"{run_dir}: the {kind} run has not finished (no {finished.get(kind)})")
    return kind


def training_rows(run_dirs) -> pd.DataFrame:
    rows = []
    for run_dir in run_dirs:
        saved = store.read_config(run_dir, "train")
        metrics_path = Path(run_dir) / store.METRICS_FILE
        if not metrics_path.is_file():
            raise RunError(f"{run_dir}: no {store.METRICS_FILE}; the run has not finished")
        result = reporting.read_json(metrics_path)
        key = (result["dataset"], result["model"], result["arch"])
        paper = paper_numbers.CLEAN_ACCURACY.get(key + (result["k"],))
        target = paper_numbers.TARGET_ACCURACY.get(key)
        history = reporting.read_json(Path(run_dir) / store.STATE_FILE)["history"]
        rows.append({
            "run": Path(run_dir).name, "dataset": result["dataset"], "model": result["model"],
            "arch": result["arch"], "k": result["k"], "epochs": result["epochs"],
            "test_accuracy": result["test_accuracy"], "n_test": result["n_test"],
            "paper_accuracy": paper[0] if paper else None,
            "paper_source": paper[1] if paper else "",
            "target": target,
            "meets_target": None if target is None else result["test_accuracy"] >= target,
            "train_seconds": round(sum(r["seconds"] for r in history)),
            "seed": result["seed"], "command": saved.get("command") or "",
        })
    return pd.DataFrame(rows)


def _curves(run_dirs, table: str) -> pd.DataFrame:
    frames = []
    for d in run_dirs:
        part = pd.read_csv(Path(d) / table)
        if "model" not in part:
            part.insert(0, "model", store.read_config(d)["model"])  # attack runs' paths
        frames.append(part)
    return pd.concat(frames, ignore_index=True)


def _summary_row(run_dir: Path, first_attempts: int | None) -> pd.DataFrame:
    saved = pd.read_csv(run_dir / store.SUMMARY_FILE).assign(run=run_dir.name)
    if first_attempts is None:
        return saved
    # the same attempts in every run: a run stopped early against one that finished
    attempts = store.read_attempts(run_dir)
    attempts = attempts[attempts["attempt"] < first_attempts]
    done = attempts["attempt"].nunique()
    if done < first_attempts:
        raise RunError(f"{run_dir}: only {done} of the first {first_attempts} attempts are done")
    victim = store.read_config(run_dir).get("victim")
    for key, value in metrics.summarize_attempts(attempts, victim).items():
        saved[key] = value
    return saved


def collect(run_dirs, kind: str, out_dir: str | Path, name: str,
            first_attempts: int | None = None) -> tuple[pd.DataFrame, Path | None]:
    """One table from many attack runs, or the curves of many FGSM sweeps with one combined
    figure (paper 1 Fig. 1a). When every attack run is an iterative FGSM run, their paths are
    also combined into NAME_path.{csv,md,png} (Fig. 1b). ``first_attempts``: each attack run's
    row recomputed from its attempts numbered below that only."""
    out_dir = Path(out_dir)
    if kind == "sweep":
        frame = _curves(run_dirs, store.SWEEP_FILE)
        figure = reporting.plot_curves(frame[["model", "eps", "accuracy", "entropy"]], "eps",
                                       out_dir / f"{name}.png",
                                       title="Untargeted FGSM (paper 1 Fig. 1a)")
        return frame, figure
    if first_attempts is not None:
        # attempt numbers name the same (image, target) pairs only under the same plan
        plans = {(tuple(c.get("image_ids") or ()), c.get("n_images"), c["targeted"],
                  c["seed"]) for c in map(read_attack_config, run_dirs)}
        if len(plans) > 1:
            raise RunError("--first-attempts compares runs on the same attempts, but these runs "
                           "differ in their test images, --targeted or --seed")
    frame = pd.concat([_summary_row(Path(d), first_attempts) for d in run_dirs],
                      ignore_index=True)
    if "planned" not in frame:  # summaries written before runs recorded their plan size
        frame["planned"] = np.nan
    frame["planned"] = frame["planned"].fillna(frame["attempts"]).astype(int)
    frame = frame[ATTACK_FRONT + [c for c in frame.columns
                                  if c not in ATTACK_FRONT + ["model_dir"]]]
    figure = None
    if first_attempts is None and all((Path(d) / "ifgsm_path.csv").is_file() for d in run_dirs):
        path = _curves(run_dirs, "ifgsm_path.csv")
        reporting.write_table(path, out_dir, f"{name}_path",
                              "Per-iteration accuracy to the original class, to the target, "
                              "and predictive entropy, from each run's ifgsm_path.csv.")
        figure = reporting.plot_curves(
            path[["model", "iteration", "accuracy", "target_accuracy", "entropy"]],
            "iteration", out_dir / f"{name}_path.png",
            title="Iterative targeted FGSM (paper 1 Fig. 1b)")
    return frame, figure
