"""``dbayes attack``: one attack against one trained model over a planned set of attempts,
batch by batch, saving as it goes and resuming where it stopped; and the FGSM step-size sweep.

Batch b draws its model randomness from seed (seed, b) and its noise from the same pair, so a
run interrupted and resumed gives the same table as one that ran straight through. The run's
config.json holds fully resolved settings (the attack's, the victim's draw counts and the test
images), so a resumed run compares like with like and an old run stays readable.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .. import attacks, metrics, reporting
from ..attack_settings import DEFAULT_BATCH_SIZE, settings_type
from ..attacks import AttackSettings
from ..data import Split
from ..inference import predictive_entropy
from ..victim import DEFAULT_MAX_BATCH, Victim
from . import store
from .store import RunError

# what must match for --resume to continue a run (the rest, e.g. the command, may change)
RUN_IDENTITY = ("model_dir", "attack", "targeted", "settings", "victim", "image_ids",
                "batch_size", "seed")


@dataclasses.dataclass(frozen=True)
class AttackPlan:
    """Everything about an attack run that is not the attack's own settings."""

    targeted: str
    image_ids: tuple[int, ...]
    seed: int = 0
    batch_size: int = DEFAULT_BATCH_SIZE

    def __post_init__(self):
        if self.targeted not in attacks.TARGETING:
            raise ValueError(f"--targeted must be one of {attacks.TARGETING}; got "
                             f"{self.targeted!r}")
        if not self.image_ids:
            raise ValueError("an attack needs at least one test image")
        if self.batch_size < 1:
            raise ValueError("batch-size must be >= 1")


def plan_attempts(split: Split, plan: AttackPlan) -> pd.DataFrame:
    """Which test image and target each attempt has: 'all' gives every other class (paper 1:
    200 images x 9 = 1,800 attempts), 'random' one other class, 'none' target -1."""
    ids = np.asarray(plan.image_ids, np.int64)
    if ids.min() < 0 or ids.max() >= len(split):
        raise ValueError(f"test image ids must lie in [0, {len(split)}); got "
                         f"{ids.min()}..{ids.max()}")
    labels = split.labels[ids]
    num_classes = split.num_classes
    rng = np.random.default_rng([plan.seed, 7])
    rows = []
    for image_id, label in zip(ids, labels, strict=True):
        if plan.targeted == "all":
            rows += [(image_id, label, t) for t in range(num_classes) if t != label]
        elif plan.targeted == "random":
            rows.append((image_id, label, (label + rng.integers(1, num_classes)) % num_classes))
        else:
            rows.append((image_id, label, -1))
    frame = pd.DataFrame(rows, columns=["image_id", "label", "target"]).astype(np.int64)
    frame.insert(0, "attempt", np.arange(len(frame)))
    return frame


def attack_config(victim: Victim, model_dir, dataset: str, settings: AttackSettings,
                  plan: AttackPlan, command: str | None, out_dir) -> dict[str, Any]:
    """What an attack run stores: every number resolved, the model's folder relative to the
    run's."""
    return {"model_dir": store.portable(model_dir, out_dir), "model": victim.label,
            "dataset": dataset, "attack": settings.name, "targeted": plan.targeted,
            "settings": settings.resolve(victim.stochastic).to_dict(),
            "victim": victim.settings(), "image_ids": list(plan.image_ids),
            "n_images": len(plan.image_ids), "batch_size": plan.batch_size, "seed": plan.seed,
            "command": command, "environment": reporting.environment()}


def read_attack_config(run_dir) -> dict[str, Any]:
    """An attack run's config in today's form. Runs written before configs named their kind
    stored unresolved draw counts; they are read with the values they ran with where the
    config says them (K was resolved; R and the others are resolved again from the victim)."""
    config = store.read_config(run_dir, "attack")
    config["model_dir"] = str(store.located(config["model_dir"], run_dir))
    if "kind" in config:
        config["settings"] = settings_type(config["attack"]).completed(config["settings"])
        return config
    legacy = config.get("settings", {})
    return {**config, "attack": legacy.get("attack"), "targeted": legacy.get("targeted"),
            "settings": legacy.get("params", {}), "seed": legacy.get("seed", 0),
            "batch_size": legacy.get("batch_size"), "n_images": legacy.get("n_images"),
            "victim": {"k": legacy.get("k"), "verdict_draws": legacy.get("draws"),
                       "decision_draws": legacy.get("decision_draws"),
                       "confirm_draws": legacy.get("confirm_draws"),
                       "max_batch": legacy.get("max_query_batch", DEFAULT_MAX_BATCH)},
            "legacy": True}


def victim_of(config: dict[str, Any], model, seed) -> Victim:
    """The victim an attack run attacked, with the draw counts it stored."""
    return Victim.from_stored(model, config["victim"], seed=seed)


def run_attack(victim: Victim, model_dir: str | Path, split: Split, settings: AttackSettings,
               plan: AttackPlan, out_dir: str | Path, *, dataset: str, resume: bool = False,
               overwrite: bool = False, progress: bool = True, command: str | None = None,
               log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run (or resume) an attack; returns the summary row (also written to summary.csv/md)."""
    out_dir = Path(out_dir)
    settings = settings.resolve(victim.stochastic)
    type(settings).check_targeting(plan.targeted)
    asked = attack_config(victim, model_dir, dataset, settings, plan, command, out_dir)
    attempts_plan = plan_attempts(split, plan)
    resuming = store.guard(out_dir, "attack", resume=resume, overwrite=overwrite)
    done = pd.DataFrame()
    if resuming:
        saved = store.read_config(out_dir, "attack")
        if "kind" not in saved:
            raise RunError(f"{out_dir} was written by an earlier version of dbayes whose "
                           "settings cannot be compared; start again with --overwrite")
        saved["settings"] = type(settings).completed(saved.get("settings", {}))
        store.check_resumable(out_dir, saved, asked, RUN_IDENTITY)
        done = store.read_attempts(out_dir, attempts_plan)
        if len(done) and "verdict_draws" not in done:  # written before the column: R each
            done["verdict_draws"] = asked["victim"]["verdict_draws"]
        finished = _finished_summary(out_dir, attempts_plan, settings, done)
        if finished is not None:
            # a finished run keeps the command and machine that made it
            log(f"{out_dir}: all {len(attempts_plan)} attempts already done; nothing to "
                "resume")
            return finished
        if len(done):
            store.read_images(out_dir, done)  # every recorded attempt must have its image
    elif overwrite:
        store.remove_outputs(out_dir)
    store.write_config(out_dir, "attack", asked)
    finished_ids = set(done["attempt"]) if len(done) else set()
    rows = done.to_dict("records") if len(done) else []
    targeted = plan.targeted != "none"
    if finished_ids:
        log(f"resuming {out_dir}: {len(finished_ids)} of {len(attempts_plan)} attempts done")
    bar = tqdm(total=len(attempts_plan), initial=len(finished_ids), desc=settings.name,
               unit="attempt", disable=not progress)
    summary = None
    for batch_index, start in enumerate(range(0, len(attempts_plan), plan.batch_size)):
        batch = attempts_plan.iloc[start:start + plan.batch_size]
        if set(batch["attempt"]) <= finished_ids:
            continue
        x = split.images[batch["image_id"].to_numpy()]
        labels = batch["label"].to_numpy()
        aim = batch["target"].to_numpy() if targeted else labels
        victim.reset([plan.seed, batch_index])
        clean = victim.judge(x)
        began = time.perf_counter()
        output = settings.run(victim, x, aim, targeted=targeted,
                              seed=plan.seed * 100_003 + batch_index)
        seconds = (time.perf_counter() - began) / len(batch)
        verdict, verdict_draws = victim.judge_until_decided(output.x_adv, aim, targeted)
        rows += _attempt_rows(batch, x, output, clean, verdict, labels,
                              aim if targeted else None, seconds, verdict_draws)
        extra = {}
        if "path_logits" in output.extras:
            extra["path_logits"] = output.extras["path_logits"].astype(np.float32)
        # the images first: an attempts.csv row always has its image on disk
        store.write_images(out_dir, batch_index, batch["attempt"].to_numpy(), output.x_adv,
                           **extra)
        store.write_attempts(out_dir, rows)
        finished_ids |= set(batch["attempt"])
        # the summary too, so that a long run stopped early still says what it has so far
        summary = _write_summary(out_dir, rows, asked, len(attempts_plan))
        bar.update(len(batch))
    bar.close()
    if summary is None:
        summary = _write_summary(out_dir, rows, asked, len(attempts_plan))
    if settings.name == "ifgsm":
        write_ifgsm_path(out_dir, attempts_plan, _provenance(asked, len(rows),
                                                             len(attempts_plan)))
    return summary


JUDGE_BATCH = 30  # images judged per call round (R copies each)


def judge_again(run_dir, out_dir, *, verdict_cap: int, seed: int = 1, command: str = "",
                progress: bool = False, log: Callable[[str], None] = print) -> dict[str, Any]:
    """An attack run's final images judged afresh, with sequential verdicts up to
    ``verdict_cap`` draws (``Victim.judge_until_decided``) on a draw stream of its own
    (``seed``), into a new attack run directory: the same attempts, images and settings, new
    verdict columns. The original run is left as it is."""
    from ..data import load_dataset
    from .train import load_model

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    config = read_attack_config(run_dir)
    if config.get("legacy"):
        raise RunError(f"{run_dir} was written by an earlier version of dbayes; attack again")
    attempts = store.read_attempts(run_dir)
    saved = store.read_images(run_dir, attempts)
    if len(attempts) == 0:
        raise RunError(f"{run_dir}: no finished attempts to judge")
    store.guard(out_dir, "attack", resume=False, overwrite=False)
    model = load_model(config["model_dir"])
    victim = Victim.from_stored(model, {**config["victim"], "verdict_cap": verdict_cap},
                                seed=seed)
    if not victim.stochastic:
        log(f"note: {victim.label} is deterministic: one draw decides every verdict")
    split = load_dataset(config["dataset"]).test
    targeted = config["targeted"] != "none"
    asked = {**config, "model_dir": store.portable(config["model_dir"], out_dir),
             "victim": victim.settings(), "judged_from": store.portable(run_dir, out_dir),
             "judge_seed": seed, "command": command, "environment": reporting.environment()}
    rows = []
    bar = tqdm(total=len(attempts), desc="judge", unit="attempt", disable=not progress)
    for batch_index, start in enumerate(range(0, len(attempts), JUDGE_BATCH)):
        part = attempts.iloc[start:start + JUDGE_BATCH]
        x = split.images[part["image_id"].to_numpy()]
        x_adv = saved["x_adv"][start:start + JUDGE_BATCH]
        labels = part["label"].to_numpy()
        aim = part["target"].to_numpy() if targeted else labels
        victim.reset([seed, batch_index])
        verdict, draws = victim.judge_until_decided(x_adv, aim, targeted)
        flags = metrics.success_flags(verdict, labels, aim if targeted else None)
        changed = metrics.distortions(x, x_adv)["l2"] > 0
        for i, row in enumerate(part.to_dict("records")):
            rows.append(row | {
                "pred_adv_single": int(verdict.single[i]),
                "pred_adv": int(verdict.majority[i]),
                "success_single": bool(flags["success_single"][i] & changed[i]),
                "success": bool(flags["success"][i] & changed[i]),
                "fooled_rate": float(flags["fooled_rate"][i]),
                "entropy_adv": float(verdict.entropy[i]), "verdict_draws": int(draws[i])})
        bar.update(len(part))
    bar.close()
    out_dir.mkdir(parents=True, exist_ok=True)
    store.write_images(out_dir, 0, attempts["attempt"].to_numpy(), saved["x_adv"])
    store.write_attempts(out_dir, rows)
    store.write_config(out_dir, "attack", asked)
    per_image = split.num_classes - 1 if config["targeted"] == "all" else 1
    return _write_summary(out_dir, rows, asked, len(config["image_ids"]) * per_image)


def _attempt_rows(batch, x, output, clean, verdict, labels, targets, seconds,
                  verdict_draws) -> list[dict]:
    flags = metrics.success_flags(verdict, labels, targets)
    sizes = metrics.distortions(x, output.x_adv)
    # an unchanged image that a noisy model happens to misread is no adversarial example
    changed = sizes["l2"] > 0
    flags["success"] &= changed
    flags["success_single"] &= changed
    rows = []
    for i, attempt in enumerate(batch.itertuples(index=False)):
        rows.append({
            "attempt": attempt.attempt, "image_id": attempt.image_id,
            "label": attempt.label, "target": attempt.target,
            "pred_clean": int(clean.majority[i]),
            "clean_correct": bool(clean.majority[i] == attempt.label),
            "pred_adv_single": int(verdict.single[i]), "pred_adv": int(verdict.majority[i]),
            "success_single": bool(flags["success_single"][i]),
            "success": bool(flags["success"][i]),
            "fooled_rate": float(flags["fooled_rate"][i]),
            "attack_found": bool(output.found[i]),
            "l2": float(sizes["l2"][i]), "linf": float(sizes["linf"][i]),
            "rel_l2": float(sizes["rel_l2"][i]),
            "steps": int(output.steps[i]), "queries": int(output.queries[i]),
            "seconds": seconds, "entropy_clean": float(clean.entropy[i]),
            "entropy_adv": float(verdict.entropy[i]),
            "verdict_draws": int(verdict_draws[i]),
        })
    return rows


def _write_summary(out_dir: Path, rows: list[dict], asked: dict, planned: int
                   ) -> dict[str, Any]:
    attempts = pd.DataFrame(rows).sort_values("attempt")
    summary = {"model": asked["model"], "model_dir": asked["model_dir"],
               "attack": asked["attack"], "targeted": asked["targeted"],
               "k": asked["victim"]["k"], "draws": asked["victim"]["verdict_draws"],
               "planned": planned}
    summary.update(metrics.summarize_attempts(attempts, asked["victim"]))
    reporting.write_table(pd.DataFrame([summary]), out_dir, "summary",
                          _provenance(asked, len(attempts), planned))
    return summary


def _provenance(asked: dict, done: int, planned: int) -> str:
    env = asked["environment"]
    victim = asked["victim"]
    progress = (f"{planned} attempts" if done == planned
                else f"{done} of {planned} planned attempts done (unfinished)")
    return (f"Made by: `{asked.get('command') or 'dbayes attack'}`\n\n"
            f"Model run `{asked['model_dir']}` ({asked['model']}, {asked['dataset']}), attack "
            f"{asked['attack']}, targeted={asked['targeted']}, {progress} on "
            f"{asked['n_images']} test images (seed {asked['seed']}); success judged by "
            f"majority over R={victim['verdict_draws']} fresh draws (decisions on "
            f"{victim['decision_draws']}, confirmation by {victim['confirm_draws']}); "
            f"settings {asked['settings']}.\n{reporting.machine_text(env)}")


def _finished_summary(out_dir: Path, plan: pd.DataFrame, settings: AttackSettings,
                      done: pd.DataFrame) -> dict[str, Any] | None:
    """The saved summary row if every planned attempt is done and every table written (an
    interruption can fall between attempts.csv and summary.csv, or before the ifgsm path),
    else None."""
    summary_path = out_dir / store.SUMMARY_FILE
    if not (len(done) == len(plan) and summary_path.is_file()
            and (settings.name != "ifgsm" or (out_dir / "ifgsm_path.csv").is_file())):
        return None
    summary = pd.read_csv(summary_path).iloc[0].to_dict()
    return summary if int(summary["attempts"]) == len(plan) else None


def write_ifgsm_path(out_dir: Path, plan: pd.DataFrame, provenance: str) -> pd.DataFrame:
    """Accuracy to the original class, to the target, and predictive entropy after every
    iteration of iterative FGSM (paper 1 Fig. 1b), over every saved batch."""
    saved = store.read_images(out_dir, extra=("path_logits",))
    logits = saved["path_logits"]  # [T + 1, N, C], in attempt order
    info = plan.set_index("attempt").loc[saved["attempt"]]
    classes = logits.argmax(-1)
    frame = pd.DataFrame({
        "iteration": np.arange(len(logits)),
        "accuracy": (classes == info["label"].to_numpy()).mean(axis=1),
        "target_accuracy": (classes == info["target"].to_numpy()).mean(axis=1),
        "entropy": predictive_entropy(logits.reshape(-1, logits.shape[-1])).numpy()
        .reshape(logits.shape[:2]).mean(axis=1),
    })
    reporting.write_table(frame, out_dir, "ifgsm_path", provenance)
    reporting.plot_curves(frame, "iteration", out_dir / "ifgsm_path.png",
                          title="Iterative targeted FGSM (single draw per step)")
    return frame


def fgsm_sweep(victim: Victim, model_dir, split: Split, eps_values: list[float], *,
               image_ids: tuple[int, ...], seed: int, batch_size: int, out_dir: str | Path,
               dataset: str, resume: bool = False, overwrite: bool = False,
               command: str | None = None, progress: bool = True,
               log: Callable[[str], None] = print) -> pd.DataFrame:
    """Accuracy and predictive entropy against untargeted FGSM step size (paper 1 Fig. 1a).
    A run of its own kind ("sweep"), with the same guard and config.json as every run."""
    out_dir = Path(out_dir)
    asked = {"model_dir": store.portable(model_dir, out_dir), "model": victim.label,
             "dataset": dataset, "attack": "fgsm", "eps": list(eps_values),
             "victim": victim.settings(), "image_ids": list(image_ids),
             "n_images": len(image_ids), "batch_size": batch_size, "seed": seed,
             "command": command, "environment": reporting.environment()}
    if store.guard(out_dir, "sweep", resume=resume, overwrite=overwrite):
        saved = store.read_config(out_dir, "sweep")
        store.check_resumable(out_dir, saved, asked, ("model_dir", "eps", "victim",
                                                      "image_ids", "batch_size", "seed"))
        if (out_dir / store.SWEEP_FILE).is_file():
            log(f"{out_dir}: the sweep is already done; nothing to resume")
            return pd.read_csv(out_dir / store.SWEEP_FILE)
    elif overwrite:
        store.remove_outputs(out_dir)
    store.write_config(out_dir, "sweep", asked)
    ids = np.asarray(image_ids)
    labels_all = split.labels[ids]
    rows = []
    for eps in tqdm(eps_values, desc="fgsm sweep", unit="eps", disable=not progress):
        correct_single, correct, entropy, l2, relative = [], [], [], [], []
        started = time.perf_counter()
        for batch_index, start in enumerate(range(0, len(ids), batch_size)):
            x = split.images[ids[start:start + batch_size]]
            labels = labels_all[start:start + batch_size]
            victim.reset([seed, batch_index])
            out = attacks.fast_gradient_sign(victim, x, labels, eps=eps, box=victim.box)
            verdict = victim.judge(out.x_adv)
            correct_single.append(verdict.single == labels)
            correct.append(verdict.majority == labels)
            entropy.append(verdict.entropy)
            sizes = metrics.distortions(x, out.x_adv)
            l2.append(sizes["l2"])
            relative.append(sizes["rel_l2"])
        correct_all, relative_all = np.concatenate(correct), np.concatenate(relative)
        rows.append({"eps": eps, "accuracy": correct_all.mean(),
                     "accuracy_single_draw": np.concatenate(correct_single).mean(),
                     "correct": int(correct_all.sum()), "images": len(ids),
                     "entropy": np.concatenate(entropy).mean(),
                     "l2_mean": np.concatenate(l2).mean(),
                     # paper 2's rho, over the images the step misclassifies
                     "rho": relative_all[~correct_all].mean() if (~correct_all).any()
                     else float("nan"),
                     "seconds_per_image": (time.perf_counter() - started) / len(ids)})
    frame = pd.DataFrame(rows)
    frame.insert(0, "model", victim.label)
    provenance = (f"Made by: `{command or 'dbayes attack --attack fgsm --eps ...'}`\n\n"
                  f"{len(ids)} test images (seed {seed}), K={victim.k}, "
                  f"R={victim.verdict_draws} draws per image.")
    reporting.write_table(frame, out_dir, "fgsm_sweep", provenance)
    reporting.plot_curves(frame[["model", "eps", "accuracy", "entropy"]], "eps",
                          out_dir / "fgsm_sweep.png", title="Untargeted FGSM")
    return frame
