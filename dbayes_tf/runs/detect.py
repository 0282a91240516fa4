"""``dbayes detect``: fit a detector on clean training data, calibrate its threshold, and score
the clean test inputs and the successful adversarial examples of one or more attack runs.

The clean images are held-out test images that no listed attack run attacked, one set for all
runs; each victim classifies them once, with the draw counts its attack run used, in bounded
batches (a K = 10 generative victim judging 1,000 images with R = 10 draws is 100,000 decoder
passes per class: minutes on 2 cores, shown with a progress bar).
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .. import metrics, reporting
from ..data import Dataset
from ..detection import make_detector
from . import store
from .attack import read_attack_config, victim_of
from .store import RunError
from .train import load_model, load_run_config

# images per victim call when re-judging clean images: bounds memory for K x C decoder passes
JUDGE_IMAGES_PER_CALL = 200


RAW_NAMES = {"recon": "distance", "logit": "log_p_x_y", "marginal": "log_p_x", "kl": "kl"}


def _mean_std(values) -> str:
    values = np.asarray(values, np.float64)
    if len(values) == 0:
        return "n/a"
    return f"{values.mean():.3f} ± {values.std():.3f}"


def run_detection(method: str, detector_dir: str | Path, attack_dirs: list[str | Path],
                  dataset: Dataset, out_dir: str | Path, *, fpr: float = 0.05,
                  threshold: str | None = None, per_class: bool | None = None,
                  k: int | None = None, n_fit: int = 5000, n_clean: int = 1000, seed: int = 0,
                  fit_split: str = "validation", overwrite: bool = False,
                  progress: bool = True, command: str | None = None,
                  log: Callable[[str], None] = print) -> pd.DataFrame:
    out_dir = Path(out_dir)
    store.guard(out_dir, "detect", resume=False, overwrite=overwrite,
                resumable=False)
    detector_config = load_run_config(detector_dir)
    detector_dataset = detector_config["train"]["dataset"]
    if detector_dataset != dataset.name:
        raise ValueError(f"detector {detector_dir} was trained on {detector_dataset}, "
                         f"not {dataset.name}")
    threshold = threshold or ("paper" if method == "recon" else "fpr")
    if threshold == "paper" and method != "recon":
        raise ValueError("--threshold paper (mean training distance) is for --method recon; "
                         "the other detectors calibrate alpha to --fpr")
    runs = []
    for attack_dir in attack_dirs:
        config = read_attack_config(attack_dir)
        if config.get("dataset") != dataset.name:
            raise ValueError(f"attack run {attack_dir} is on {config.get('dataset')}, but the "
                             f"detector {detector_dir} models {dataset.name}")
        attempts = store.read_attempts(attack_dir)
        if not len(attempts):
            raise RunError(f"{attack_dir}: no finished attempts")
        saved = store.read_images(attack_dir, attempts)
        runs.append((Path(attack_dir), config, attempts.set_index("attempt").loc[
            saved["attempt"]], saved["x_adv"]))
    # one clean set for every run: held-out test images that none of them attacked
    attacked = set().union(*(set(attempts["image_id"]) for _, _, attempts, _ in runs))
    rng = np.random.default_rng([seed, 11])
    pool = np.array([i for i in range(len(dataset.test)) if i not in attacked])
    clean_ids = np.sort(rng.choice(pool, size=min(n_clean, len(pool)), replace=False))
    clean_x = dataset.test.images[clean_ids]

    if overwrite:
        for stale in [*out_dir.glob("detect_*.*"), *out_dir.glob("roc_*.png"),
                      *out_dir.glob("grid_*.png")]:
            stale.unlink()
    store.write_config(out_dir, "detect", {
        "method": method, "detector_dir": store.portable(detector_dir, out_dir),
        "attack_dirs": [store.portable(d, out_dir) for d in attack_dirs],
        "settings": {"fpr": fpr, "threshold": threshold, "per_class": per_class, "k": k,
                     "n_fit": n_fit, "n_clean": n_clean, "seed": seed, "fit_split": fit_split},
        "command": command, "environment": reporting.environment()})
    model = load_model(detector_dir)
    kwargs = dict(k=k, seed=seed, progress=progress)
    if per_class is not None and method in ("recon", "logit"):
        kwargs["per_class"] = per_class
    detector = make_detector(method, model, **kwargs)
    # The detector model's own training images score too well (an overfit model gives them
    # higher log p and smaller distances), so alpha fitted there under-rejects unseen clean
    # inputs; the validation images are clean training-distribution data it never trained on.
    fitting = getattr(dataset, fit_split).take(n_fit)
    if len(fitting) < 10:
        raise ValueError(f"the {fit_split} split has {len(fitting)} images; too few to fit on "
                         "(use --fit-split train)")
    log(f"fitting {method} on {len(fitting)} {fit_split} images")
    detector.fit(fitting.images, fitting.labels)
    level = detector.use_paper_threshold() if threshold == "paper" else detector.calibrate(fpr)

    rows, curves, judged = [], [], {}
    for attack_dir, config, attempts, images in runs:
        key = json.dumps([config["model_dir"], config["victim"]], sort_keys=True)
        if key not in judged:  # several attacks on one victim share its clean verdicts
            predicted = _judge_clean(config, clean_x, seed, progress, log)
            raw = detector.raw_scores(clean_x, predicted)
            judged[key] = (predicted, raw, detector.statistic(raw, predicted))
        clean_pred, clean_raw, clean_scores = judged[key]
        settings = {"attack": config["attack"], "targeted": config["targeted"]}
        won = (attempts["success"] & attempts["clean_correct"]).to_numpy()
        adv_x, adv_pred = images[won], attempts["pred_adv"].to_numpy()[won]
        adv_raw = detector.raw_scores(adv_x, adv_pred)
        adv_scores = detector.statistic(adv_raw, adv_pred)
        label = f"{config['model']} / {settings['attack']}"
        row = {
            "detector": method, "victim": config["model"], "attack": settings["attack"],
            "targeted": settings["targeted"], "attack_run": store.portable(attack_dir, out_dir),
            "n_adv": int(won.sum()), "n_clean": len(clean_ids),
            "distortion_l2": _mean_std(attempts["l2"][won]),
            f"{RAW_NAMES[method]}_clean": _mean_std(clean_raw),
            f"{RAW_NAMES[method]}_adv": _mean_std(adv_raw),
            "score_clean": _mean_std(clean_scores), "score_adv": _mean_std(adv_scores),
            "detection_rate": float(np.mean(adv_scores > level)) if won.any() else np.nan,
            "fpr_clean_test": float(np.mean(clean_scores > level)),
            "roc_auc": metrics.roc_auc(clean_scores, adv_scores) if won.any() else np.nan,
            "threshold": level,
        }
        rows.append(row)
        if won.any():
            curves.append((label, *metrics.roc_curve(clean_scores, adv_scores)[:2]))
            _grid(detector, dataset, attempts[won], adv_x, out_dir / f"grid_{_slug(label)}.png",
                  label)
    frame = pd.DataFrame(rows)
    rule = ("mean training distance (paper 1)" if threshold == "paper"
            else f"alpha for {fpr:.0%} FPR on the fitting data")
    provenance = (f"Made by: `{command or 'dbayes detect'}`\n\nDetector {method} on "
                  f"`{detector_dir}` (K={detector.k}), fitted on the first {len(fitting)} "
                  f"{fit_split} images; threshold: "
                  f"{rule}"
                  f"; clean = {n_clean} held-out test images (seed {seed}); adversarial = "
                  "successful attempts on correctly classified images. The raw score "
                  f"({RAW_NAMES[method]}) is under the victim's label F(x); 'score' is its "
                  "standardised form (larger = more suspicious; recon: distance minus the mean "
                  "training distance), which the threshold applies to.")
    reporting.write_table(frame, out_dir, f"detect_{method}", provenance)
    if curves:
        _roc_plot(curves, out_dir / f"roc_{method}.png", f"{method} detector")
    return frame


def _judge_clean(config: dict, clean_x: np.ndarray, seed: int, progress: bool,
                 log: Callable[[str], None]) -> np.ndarray:
    """The victim's verdict on the clean images, with the draws its attack run used."""
    victim = victim_of(config, load_model(config["model_dir"]), seed=[seed, 12])
    log(f"classifying {len(clean_x)} clean images with {victim.label}, "
        f"R = {victim.verdict_draws} draws")
    step = max(1, JUDGE_IMAGES_PER_CALL // victim.verdict_draws)
    majority = [victim.judge(clean_x[s:s + step]).majority
                for s in tqdm(range(0, len(clean_x), step), desc="victim on clean images",
                              unit="batch", leave=False, disable=not progress)]
    return np.concatenate(majority)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text).strip("_").lower()


def _roc_plot(curves, path: Path, title: str) -> None:
    plt = reporting._pyplot()
    figure, axis = plt.subplots(figsize=(4.5, 4.5))
    for label, fpr, tpr in curves:
        axis.plot(fpr, tpr, label=f"{label} (AUC {np.trapezoid(tpr, fpr):.3f})")
    axis.plot([0, 1], [0, 1], ls=":", color="grey")
    axis.set_xlabel("false-positive rate (clean test)")
    axis.set_ylabel("detection rate (successful adversarial)")
    axis.set_title(title)
    axis.legend(fontsize=7, loc="lower right")
    reporting.save_figure(figure, path)


def _grid(detector, dataset: Dataset, attempts: pd.DataFrame, adv_x: np.ndarray, path: Path,
          title: str, columns: int = 8) -> None:
    """Paper 1 Fig. 2: clean image, adversarial image, reconstruction under the adversarial
    label, for the first few successful attempts."""
    n = min(columns, len(adv_x))
    clean = dataset.test.images[attempts["image_id"].to_numpy()[:n]]
    adv_labels = attempts["pred_adv"].to_numpy()[:n]
    recon = detector.model.reconstruct(adv_x[:n], adv_labels).numpy()
    plt = reporting._pyplot()
    figure, axes = plt.subplots(3, n, figsize=(1.2 * n, 4), squeeze=False)
    for j in range(n):
        row_labels = [f"clean {attempts['label'].iloc[j]}", f"adv {adv_labels[j]}",
                      f"r(x, {adv_labels[j]})"]
        for i, image in enumerate((clean[j], adv_x[j], recon[j])):
            axes[i, j].imshow(image[..., 0], cmap="gray", vmin=0, vmax=1)
            axes[i, j].set_title(row_labels[i], fontsize=7)
            axes[i, j].axis("off")
    figure.suptitle(title, fontsize=9)
    reporting.save_figure(figure, path)
