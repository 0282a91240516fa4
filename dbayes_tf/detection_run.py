"""``dbayes detect``: fit a detector on clean training data, calibrate its threshold, and score
the clean test inputs and the successful adversarial examples of one or more attack runs."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from . import attack_run, metrics, reporting
from .data import Dataset
from .detection import make_detector
from .inference import DrawStream
from .training import RunError, load_model, load_run_config


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
                  fit_split: str = "validation",
                  progress: bool = True, command: str | None = None,
                  log: Callable[[str], None] = print) -> pd.DataFrame:
    out_dir = Path(out_dir)
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
        config = load_run_config(attack_dir) if (Path(attack_dir) / "config.json").is_file() \
            else None
        if config is None or "settings" not in config:
            raise RunError(f"{attack_dir}: not a 'dbayes attack' run directory (no attack "
                           "config.json)")
        if config.get("dataset") != dataset.name:
            raise ValueError(f"attack run {attack_dir} is on {config.get('dataset')}, but the "
                             f"detector {detector_dir} models {dataset.name}")
        attempts = attack_run.load_attempts(attack_dir)
        if not len(attempts):
            raise RunError(f"{attack_dir}: no finished attempts")
        ids, images = attack_run.load_adversarial(attack_dir)
        runs.append((Path(attack_dir), config, attempts.set_index("attempt").loc[ids], images))

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

    rows, curves = [], []
    for attack_dir, config, attempts, images in runs:
        attacked = set(attempts["image_id"])
        rng = np.random.default_rng([seed, 11])
        pool = np.array([i for i in range(len(dataset.test)) if i not in attacked])
        clean_ids = np.sort(rng.choice(pool, size=min(n_clean, len(pool)), replace=False))
        victim = load_model(config["model_dir"])
        settings = config["settings"]
        victim_fn = DrawStream(victim, settings.get("k"), seed=[seed, 12])
        clean_x = dataset.test.images[clean_ids]
        clean_pred = np.concatenate([
            metrics.judge(victim_fn, clean_x[s:s + 100], settings.get("draws", 10)).majority
            for s in range(0, len(clean_x), 100)])
        clean_raw = detector.raw_scores(clean_x, clean_pred)
        clean_scores = detector.statistic(clean_raw, clean_pred)
        won = (attempts["success"] & attempts["clean_correct"]).to_numpy()
        adv_x, adv_pred = images[won], attempts["pred_adv"].to_numpy()[won]
        adv_raw = detector.raw_scores(adv_x, adv_pred)
        adv_scores = detector.statistic(adv_raw, adv_pred)
        label = f"{config['model']} / {settings['attack']}"
        row = {
            "detector": method, "victim": config["model"], "attack": settings["attack"],
            "targeted": settings["targeted"], "attack_run": str(attack_dir),
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
