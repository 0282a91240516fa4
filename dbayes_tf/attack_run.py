"""``dbayes attack``: run one attack against one trained model over a planned set of attempts,
batch by batch, saving as it goes and resuming where it stopped.

Run directory:
    config.json           what was asked (model run, attack, settings, seed, plan size)
    attempts.csv          one row per finished attempt (rewritten atomically after each batch)
    adversarial/NNNNN.npz the final images of batch NNNNN (with attempt ids), for detection
    summary.{csv,md}      the per-model x attack summary row
    fgsm_sweep.*, ifgsm_path.*   the curves of paper 1 Fig. 1 (tables and PNG)

Batch b draws its model randomness from seed (seed, b) and its noise from the same pair, so a
run interrupted and resumed gives the same table as one that ran straight through.
"""
from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import tensorflow as tf
from tqdm.auto import tqdm

from . import attacks, metrics, reporting
from .data import Split
from .inference import DrawStream
from .training import RunError, load_run_config

CONFIG_FILE = "config.json"
ATTEMPTS_FILE = "attempts.csv"
IMAGES_DIR = "adversarial"
TARGETING = ("none", "all", "random")
UNTARGETED_ONLY = ("deepfool", "truncated_deepfool", "noise")


@dataclasses.dataclass
class AttackSettings:
    """Everything that decides an attack run's numbers (stored, and checked on --resume)."""

    attack: str
    targeted: str = "none"
    n_images: int = 200
    k: int | None = None
    seed: int = 0
    batch_size: int = 20
    draws: int = 10  # R: fresh draws that judge every final image
    decision_draws: int | None = None  # draws behind an attack's own decisions
    confirm_draws: int | None = None  # fresh draws that confirm a claimed success
    max_query_batch: int = 2000
    params: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.attack not in attacks.ATTACKS:
            raise ValueError(f"unknown attack {self.attack!r}; choose from "
                             f"{', '.join(attacks.ATTACKS)}")
        if self.targeted not in TARGETING:
            raise ValueError(f"--targeted must be one of {TARGETING}; got {self.targeted!r}")
        if self.attack in UNTARGETED_ONLY and self.targeted != "none":
            raise ValueError(f"{self.attack} is untargeted; use --targeted none")
        for name in ("n_images", "batch_size", "draws", "max_query_batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name.replace('_', '-')} must be >= 1")
        if self.confirm_draws is not None and self.confirm_draws < 0:
            raise ValueError("confirm-draws must be >= 0")


def parse_eps(text: str | float | None) -> list[float] | None:
    """'0.1' -> [0.1]; '0:0.5:0.05' -> [0, 0.05, ..., 0.5] (end included)."""
    if text is None:
        return None
    if isinstance(text, (int, float)):
        values = [float(text)]
    elif ":" in str(text):
        parts = str(text).split(":")
        try:
            start, stop, step = (float(p) for p in parts)
        except ValueError:
            raise ValueError(f"--eps sweep must be START:STOP:STEP; got {text!r}") from None
        if step <= 0 or stop < start:
            raise ValueError(f"--eps sweep needs STEP > 0 and STOP >= START; got {text!r}")
        count = int(math.floor((stop - start) / step + 1e-9)) + 1
        values = [round(start + i * step, 10) for i in range(count)]
    else:
        try:
            values = [float(text)]
        except ValueError:
            raise ValueError(f"--eps must be a number or START:STOP:STEP; got {text!r}") from None
    bad = [v for v in values if not 0 <= v <= 1]
    if bad:
        raise ValueError(f"--eps values must lie in [0, 1] (images live in [0, 1]); got {bad}")
    return values


def plan_attempts(split: Split, n_images: int, targeted: str, seed: int) -> pd.DataFrame:
    """Which test images, and which target for each attempt: 'all' gives every other class
    (paper 1: 200 images x 9 = 1,800 attempts), 'random' one other class, 'none' target -1."""
    if n_images > len(split):
        raise ValueError(f"--n-images {n_images} is larger than the test set ({len(split)})")
    rng = np.random.default_rng([seed, 7])
    image_ids = np.sort(rng.choice(len(split), size=n_images, replace=False))
    labels = split.labels[image_ids]
    num_classes = split.num_classes
    rows = []
    for image_id, label in zip(image_ids, labels, strict=True):
        if targeted == "all":
            rows += [(image_id, label, t) for t in range(num_classes) if t != label]
        elif targeted == "random":
            rows.append((image_id, label, (label + rng.integers(1, num_classes)) % num_classes))
        else:
            rows.append((image_id, label, -1))
    plan = pd.DataFrame(rows, columns=["image_id", "label", "target"]).astype(np.int64)
    plan.insert(0, "attempt", np.arange(len(plan)))
    return plan


def _attack_fn(settings: AttackSettings, model_fn: DrawStream, stochastic: bool,
               progress: bool) -> Callable:
    """The attack as f(x, labels_or_targets, batch_seed) -> AttackOutput."""
    p = dict(settings.params)
    targeted = settings.targeted != "none"
    decision = settings.decision_draws or (3 if stochastic else 1)
    # a deterministic model's decision is already exact; a stochastic one's claims are
    # confirmed with as many fresh draws as the final verdict takes (R)
    confirmation = (settings.confirm_draws if settings.confirm_draws is not None
                    else settings.draws if stochastic else 0)
    fn = attacks.chunked(model_fn, settings.max_query_batch)
    name = settings.attack
    if name == "fgsm":
        return lambda x, y, s: attacks.fast_gradient_sign(fn, x, y, eps=p["eps"],
                                                          targeted=targeted)
    if name == "ifgsm":
        return lambda x, y, s: attacks.iterative_fgsm(
            fn, x, y, step_size=p["step_size"], iterations=p["iterations"], eps=p.get("eps"),
            targeted=targeted, record_path=True)
    if name == "cw_l2":
        return lambda x, y, s: attacks.carlini_wagner_l2(
            fn, x, y, targeted=targeted, confidence=p["confidence"],
            binary_search_steps=p["binary_search_steps"], max_iterations=p["max_iterations"],
            learning_rate=p["learning_rate"], initial_const=p["initial_const"],
            abort_early=p["abort_early"], decision_draws=decision, confirm_draws=confirmation,
            progress=progress)
    if name in ("deepfool", "truncated_deepfool"):
        common = dict(p=p["p"], candidates=p["candidates"], overshoot=p["overshoot"],
                      max_iterations=p["max_iterations"], confirm_draws=confirmation)
        if name == "deepfool":
            return lambda x, y, s: attacks.deepfool(fn, x, y, **common)
        return lambda x, y, s: attacks.truncated_deepfool(
            fn, x, y, bisection_steps=p["bisection_steps"], decision_draws=decision, **common)
    if name == "zoo":
        return lambda x, y, s: attacks.zoo(
            lambda v: tf.nn.log_softmax(fn(v), axis=-1).numpy(), x, y, targeted=targeted,
            confidence=p["confidence"], max_iterations=p["max_iterations"],
            coordinates_per_iteration=p["coordinates"], learning_rate=p["learning_rate"],
            finite_difference_step=p["fd_step"], queries_per_point=p["queries_per_point"],
            initial_const=p["initial_const"], binary_search_steps=p["binary_search_steps"],
            abort_early=p["abort_early"], confirm_draws=confirmation, seed=s,
            progress=progress)
    if name == "noise":
        return lambda x, y, s: attacks.gaussian_noise(fn, x, y, l2=p["l2"], seed=s)
    raise AssertionError(name)


def _check_resumable(run_dir: Path, saved: dict, asked: dict) -> None:
    keys = ("model_dir", "settings")
    changed = [key for key in keys if saved.get(key) != asked.get(key)]
    if changed:
        raise RunError(f"{run_dir}: --resume with different {' and '.join(changed)} than the "
                       f"saved run ({CONFIG_FILE}); use the same options or another --out")


def load_attempts(run_dir: str | Path) -> pd.DataFrame:
    path = Path(run_dir) / ATTEMPTS_FILE
    if not path.is_file():
        return pd.DataFrame()
    return pd.read_csv(path)


def load_adversarial(run_dir: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(attempt ids, final images) saved by an attack run, in attempt order."""
    folder = Path(run_dir) / IMAGES_DIR
    files = sorted(folder.glob("*.npz")) if folder.is_dir() else []
    if not files:
        raise RunError(f"{run_dir}: no saved adversarial images ({IMAGES_DIR}/*.npz); is it a "
                       "'dbayes attack' run directory?")
    ids, images = [], []
    for file in files:
        with np.load(file) as data:
            ids.append(data["attempt"])
            images.append(data["x_adv"])
    ids, images = np.concatenate(ids), np.concatenate(images)
    # a batch cut off between its image file and its attempts.csv rows counts as not done
    recorded = load_attempts(run_dir)
    keep = np.isin(ids, recorded["attempt"]) if len(recorded) else np.zeros(len(ids), bool)
    ids, images = ids[keep], images[keep]
    order = np.argsort(ids)
    return ids[order], images[order]


def run_attack(model, model_dir: str | Path, split: Split, settings: AttackSettings,
               out_dir: str | Path, *, resume: bool = False, overwrite: bool = False,
               progress: bool = True, command: str | None = None,
               log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run (or resume) an attack; returns the summary row (also written to summary.csv/md)."""
    out_dir = Path(out_dir)
    model_config = load_run_config(model_dir)
    stochastic = model.is_stochastic
    k = int(settings.k or model.default_k) if stochastic else 1
    asked = {"model_dir": str(Path(model_dir).resolve()),
             "settings": dataclasses.asdict(settings) | {"k": k},
             "model": model_label(model, k), "dataset": model_config["train"]["dataset"],
             "command": command, "environment": reporting.environment()}
    plan = plan_attempts(split, settings.n_images, settings.targeted, settings.seed)
    existing = out_dir / CONFIG_FILE
    if existing.is_file() and not (resume or overwrite):
        raise RunError(f"{out_dir} already holds an attack run; use --resume to continue it, "
                       "--overwrite to start again, or another --out")
    if resume and existing.is_file():
        _check_resumable(out_dir, reporting.read_json(existing), asked)
        finished = _finished_summary(out_dir, plan, settings)
        if finished is not None:
            # a finished run keeps the command and machine that made it (queue scripts resume
            # every run they list, finished or not)
            log(f"{out_dir}: all {len(plan)} attempts already done; nothing to resume")
            return finished
    elif overwrite and out_dir.exists():
        for stale in [out_dir / ATTEMPTS_FILE, *sorted((out_dir / IMAGES_DIR).glob("*.npz"))]:
            stale.unlink(missing_ok=True)
    reporting.write_json(out_dir / CONFIG_FILE, asked)
    done = load_attempts(out_dir) if resume else pd.DataFrame()
    finished = set(done["attempt"]) if len(done) else set()
    rows = done.to_dict("records") if len(done) else []
    model_fn = DrawStream(model, k, seed=settings.seed)
    attack = _attack_fn(settings, model_fn, stochastic, progress=False)
    targeted = settings.targeted != "none"
    draws = settings.draws if stochastic else 1  # R equal answers would cost R times as much
    starts = range(0, len(plan), settings.batch_size)
    if finished:
        log(f"resuming {out_dir}: {len(finished)} of {len(plan)} attempts already done")
    bar = tqdm(total=len(plan), initial=len(finished), desc=f"{settings.attack}", unit="attempt",
               disable=not progress)
    for batch_index, start in enumerate(starts):
        batch = plan.iloc[start:start + settings.batch_size]
        if set(batch["attempt"]) <= finished:
            continue
        x = split.images[batch["image_id"].to_numpy()]
        labels = batch["label"].to_numpy()
        aim = batch["target"].to_numpy() if targeted else labels
        model_fn.reset([settings.seed, batch_index])
        clean = metrics.judge(model_fn, x, draws)
        began = time.perf_counter()
        output = attack(x, aim, settings.seed * 100_003 + batch_index)
        seconds = (time.perf_counter() - began) / len(batch)
        verdict = metrics.judge(model_fn, output.x_adv, draws)
        flags = metrics.success_flags(verdict, labels, aim if targeted else None)
        sizes = metrics.distortions(x, output.x_adv)
        # an unchanged image that a noisy model happens to misread is no adversarial example
        changed = sizes["l2"] > 0
        flags["success"] &= changed
        flags["success_single"] &= changed
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
            })
        extra = {}
        if "path_logits" in output.extras:
            extra["path_logits"] = output.extras["path_logits"].astype(np.float32)
        with reporting.atomic_path(out_dir / IMAGES_DIR / f"{batch_index:05d}.npz") as tmp:
            np.savez_compressed(tmp, attempt=batch["attempt"].to_numpy(),
                                x_adv=output.x_adv.astype(np.float32), **extra)
        # the images first: an attempts.csv row always has its image on disk
        frame = pd.DataFrame(rows).sort_values("attempt")
        with reporting.atomic_path(out_dir / ATTEMPTS_FILE) as tmp:
            frame.to_csv(tmp, index=False)
        finished |= set(batch["attempt"])
        # the summary too, so that a long run stopped early still says what it has so far
        summary = _write_summary(out_dir, rows, asked, settings, model_dir, k, draws, len(plan))
        bar.update(len(batch))
    bar.close()
    summary = _write_summary(out_dir, rows, asked, settings, model_dir, k, draws, len(plan))
    if settings.attack == "ifgsm":
        write_ifgsm_path(out_dir, plan, _provenance(asked, settings, len(plan), draws))
    return summary


def _write_summary(out_dir: Path, rows: list[dict], asked: dict, settings: AttackSettings,
                   model_dir, k: int, draws: int, planned: int) -> dict[str, Any]:
    attempts = pd.DataFrame(rows).sort_values("attempt")
    summary = {"model": asked["model"], "model_dir": str(model_dir), "attack": settings.attack,
               "targeted": settings.targeted, "k": k, "draws": draws, "planned": planned}
    summary.update(metrics.summarize_attempts(attempts))
    reporting.write_table(pd.DataFrame([summary]), out_dir, "summary",
                          _provenance(asked, settings, planned, draws))
    return summary


def _provenance(asked: dict, settings: AttackSettings, n_attempts: int, draws: int) -> str:
    env = asked["environment"]
    return (f"Made by: `{asked.get('command') or 'dbayes attack'}`\n\n"
            f"Model run `{asked['model_dir']}` ({asked['model']}, {asked['dataset']}), attack "
            f"{settings.attack}, targeted={settings.targeted}, {n_attempts} attempts on "
            f"{settings.n_images} test images chosen with seed {settings.seed}; success judged "
            f"by majority over R={draws} fresh draws; settings {settings.params}.\n"
            f"Machine: {env['cpu_count']} CPUs, {env['gpus']} GPUs, TF {env['tensorflow']}.")


def write_ifgsm_path(out_dir: Path, plan: pd.DataFrame, provenance: str) -> pd.DataFrame:
    """Accuracy to the original class, to the target, and predictive entropy after every
    iteration of iterative FGSM (paper 1 Fig. 1b), over every saved batch."""
    from .inference import predictive_entropy

    ids, logits = [], []
    for file in sorted((out_dir / IMAGES_DIR).glob("*.npz")):
        with np.load(file) as data:
            ids.append(data["attempt"])
            logits.append(data["path_logits"])  # [T + 1, b, C]
    ids = np.concatenate(ids)
    logits = np.concatenate(logits, axis=1)
    info = plan.set_index("attempt").loc[ids]
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


def fgsm_sweep(model, split: Split, eps_values: list[float], *, n_images: int, k: int | None,
               seed: int, draws: int, batch_size: int, out_dir: str | Path,
               command: str | None = None, progress: bool = True) -> pd.DataFrame:
    """Accuracy and predictive entropy against untargeted FGSM step size (paper 1 Fig. 1a)."""
    out_dir = Path(out_dir)
    stochastic = model.is_stochastic
    k = int(k or model.default_k) if stochastic else 1
    plan = plan_attempts(split, n_images, "none", seed)
    model_fn = DrawStream(model, k, seed=seed)
    draws = draws if stochastic else 1
    rows = []
    for eps in tqdm(eps_values, desc="fgsm sweep", unit="eps", disable=not progress):
        correct_single, correct, entropy = [], [], []
        for batch_index, start in enumerate(range(0, len(plan), batch_size)):
            batch = plan.iloc[start:start + batch_size]
            x, labels = split.images[batch["image_id"].to_numpy()], batch["label"].to_numpy()
            model_fn.reset([seed, batch_index])
            out = attacks.fast_gradient_sign(model_fn, x, labels, eps=eps)
            verdict = metrics.judge(model_fn, out.x_adv, draws)
            correct_single.append(verdict.single == labels)
            correct.append(verdict.majority == labels)
            entropy.append(verdict.entropy)
        rows.append({"eps": eps, "accuracy": np.concatenate(correct).mean(),
                     "accuracy_single_draw": np.concatenate(correct_single).mean(),
                     "entropy": np.concatenate(entropy).mean()})
    frame = pd.DataFrame(rows)
    frame.insert(0, "model", model_label(model, k))
    provenance = (f"Made by: `{command or 'dbayes attack --attack fgsm --eps ...'}`\n\n"
                  f"{n_images} test images (seed {seed}), K={k}, R={draws} draws per image.")
    reporting.write_table(frame, out_dir, "fgsm_sweep", provenance)
    reporting.plot_curves(frame, "eps", out_dir / "fgsm_sweep.png", title="Untargeted FGSM")
    return frame


def model_label(model, k: int | None = None) -> str:
    """e.g. "gc-cnn, K=10": the K a run actually used, not only the model's default."""
    samples = f", K={int(k or model.default_k)}" if model.is_stochastic else ""
    return f"{model.config.model}-{model.config.arch}{samples}"


def run_kind(run_dir: str | Path) -> str:
    """'training', 'attack' or 'sweep' (an FGSM sweep)."""
    run_dir = Path(run_dir)
    if (run_dir / "fgsm_sweep.csv").is_file():
        return "sweep"
    if (run_dir / "summary.csv").is_file():
        return "attack"
    if (run_dir / "metrics.json").is_file() or (run_dir / "state.json").is_file():
        return "training"
    raise RunError(f"{run_dir}: neither a finished training run nor a finished attack run")


def _curves(run_dirs, table: str) -> pd.DataFrame:
    frames = []
    for d in run_dirs:
        part = pd.read_csv(Path(d) / table)
        if "model" not in part:
            part.insert(0, "model", reporting.read_json(Path(d) / CONFIG_FILE)["model"])
        frames.append(part)
    return pd.concat(frames, ignore_index=True)


def _finished_summary(out_dir: Path, plan: pd.DataFrame, settings: AttackSettings
                      ) -> dict[str, Any] | None:
    """The saved summary row if every planned attempt is done and every table written (an
    interruption can fall between attempts.csv and summary.csv, or before the ifgsm path),
    else None."""
    done = load_attempts(out_dir)
    summary_path = out_dir / "summary.csv"
    if not (len(done) and set(plan["attempt"]) <= set(done["attempt"])
            and summary_path.is_file()
            and (settings.attack != "ifgsm" or (out_dir / "ifgsm_path.csv").is_file())):
        return None
    summary = pd.read_csv(summary_path).iloc[0].to_dict()
    return summary if int(summary["attempts"]) == len(plan) else None


def _summary_row(run_dir: Path, first_attempts: int | None) -> pd.DataFrame:
    saved = pd.read_csv(run_dir / "summary.csv").assign(run=run_dir.name)
    if first_attempts is None:
        return saved
    # the same attempts in every run: a run stopped early against one that finished
    attempts = load_attempts(run_dir)
    attempts = attempts[attempts["attempt"] < first_attempts]
    done = attempts["attempt"].nunique()
    if done < first_attempts:
        raise RunError(f"{run_dir}: only {done} of the first {first_attempts} attempts are done")
    for key, value in metrics.summarize_attempts(attempts).items():
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
        frame = _curves(run_dirs, "fgsm_sweep.csv")
        figure = reporting.plot_curves(frame[["model", "eps", "accuracy", "entropy"]], "eps",
                                       out_dir / f"{name}.png",
                                       title="Untargeted FGSM (paper 1 Fig. 1a)")
        return frame, figure
    if first_attempts is not None:
        # attempt numbers name the same (image, target) pairs only under the same plan
        plans = {tuple(reporting.read_json(Path(d) / CONFIG_FILE)["settings"][key]
                       for key in ("n_images", "targeted", "seed")) for d in run_dirs}
        if len(plans) > 1:
            raise RunError("--first-attempts compares runs on the same attempts, but these runs "
                           "differ in --n-images, --targeted or --seed: "
                           + "; ".join(map(str, sorted(plans))))
    frames = [_summary_row(Path(d), first_attempts) for d in run_dirs]
    frame = pd.concat(frames, ignore_index=True)
    if "planned" not in frame:  # summaries written before runs recorded their plan size
        frame["planned"] = np.nan
    frame["planned"] = frame["planned"].fillna(frame["attempts"]).astype(int)
    front = ["run", "model", "attack", "targeted", "attempts", "planned", "clean_accuracy",
             "error_adv", "accuracy_adv", "success_rate", "success_rate_single_draw",
             "l2_mean", "l2_median", "robustness_rho", "seconds_per_attempt"]
    frame = frame[front + [c for c in frame.columns if c not in front + ["model_dir"]]]
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
