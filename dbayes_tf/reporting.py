"""Atomic file output, tables (CSV + Markdown) and run provenance."""
from __future__ import annotations

import contextlib
import json
import os
import platform
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it replaces ``path`` only if the block succeeds,
    so a crash or Ctrl-C never leaves a half-written file behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Keep the full suffix chain (Keras insists on names ending in ".weights.h5").
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix="".join(
        path.suffixes))
    os.close(handle)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp's 0600 would surprise anyone sharing results
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _json_default(value: Any):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_json(path: str | os.PathLike, payload: Any) -> None:
    write_text(path, json.dumps(payload, indent=2, sort_keys=True, default=_json_default) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def to_markdown(frame: pd.DataFrame, float_format: str = ".4f") -> str:
    return frame.to_markdown(index=False, floatfmt=float_format)


def write_table(frame: pd.DataFrame, out_dir: str | os.PathLike, name: str,
                provenance: str | None = None) -> tuple[Path, Path]:
    """Write ``name.csv`` and ``name.md``; the Markdown carries how the numbers were made."""
    out_dir = Path(out_dir)
    csv_path, md_path = out_dir / f"{name}.csv", out_dir / f"{name}.md"
    with atomic_path(csv_path) as tmp:
        frame.to_csv(tmp, index=False)
    text = to_markdown(frame) + "\n"
    if provenance:
        text += "\n" + provenance.strip() + "\n"
    write_text(md_path, text)
    return csv_path, md_path


def cpu_bfloat16(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> str:
    """How this CPU computes bfloat16: "amx" (AMX tiles), "avx512_bf16" (vector instructions
    only), "none", or "unknown" where /proc/cpuinfo cannot be read. The attacks' bfloat16
    levers pay on the first only: this project's machine has run on hosts of both kinds, 1.75x
    faster than float32 on one and 0.76x on the other (results/NOTES.md, 2026-12-03)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return "unknown"
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines()
                  if line.startswith("flags")), None)
    if flags is None:
        return "unknown"
    if "amx_bf16" in flags:
        return "amx"
    return "avx512_bf16" if "avx512_bf16" in flags else "none"


def environment() -> dict[str, str]:
    """Machine and library versions, recorded beside every result."""
    import keras
    import tensorflow as tf
    import tensorflow_probability as tfp

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": str(os.cpu_count()),
        "cpu_bfloat16": cpu_bfloat16(),
        "gpus": str(len(tf.config.list_physical_devices("GPU"))),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "tensorflow_probability": tfp.__version__,
        "numpy": np.__version__,
    }


def machine_text(env: dict[str, str]) -> str:
    """``environment()`` as the one line a results section ends with (no final full stop)."""
    return (f"Machine: {env['platform']}, {env['processor']}, {env['cpu_count']} CPUs, "
            f"{env['gpus']} GPUs; TensorFlow {env['tensorflow']}, Keras {env['keras']}, TFP "
            f"{env['tensorflow_probability']}, NumPy {env['numpy']}, Python {env['python']}")


def save_figure(figure, path: str | os.PathLike) -> Path:
    """Save a matplotlib figure atomically as PNG and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(figure)
    return path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on a server or in CI
    import matplotlib.pyplot as plt

    return plt


def plot_examples(clean: np.ndarray | None, labels: np.ndarray,
                  adversarials: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]],
                  path: str | os.PathLike, *, title: str = "",
                  reconstructions: dict[str, tuple[np.ndarray, np.ndarray]] | None = None
                  ) -> Path:
    """One column per image: the clean image (when given) above each attack's adversarial,
    each captioned below with the class the verdict gave and the L2 of the perturbation.
    ``adversarials``: (attack, images [N, H, W, C], classes [N], L2 [N]) per attack.
    ``reconstructions`` (paper 1 Fig. 2): by row name ("clean" or an attack), the images
    reconstructed under that row's classes and their distances to it, drawn below the row."""
    plt = _pyplot()
    reconstructions = reconstructions or {}
    rows = []
    for name, images, classes, l2 in ([("clean", clean, labels, None)] if clean is not None
                                      else []) + list(adversarials):
        captions = ([f"true {c}" for c in classes] if l2 is None else
                    [f"{c}, L2 {d:.2f}" for c, d in zip(classes, l2, strict=True)])
        rows.append((name, images, captions))
        if name in reconstructions:
            rebuilt, distances = reconstructions[name]
            rows.append((f"{name}: r(x, class)", rebuilt,
                         [f"r at {c}, d {d:.2f}" for c, d in zip(classes, distances,
                                                                   strict=True)]))
    n = len(labels)
    figure, axes = plt.subplots(len(rows), n, figsize=(1.3 * n + 1.2, 1.5 * len(rows)),
                                squeeze=False)
    for i, (name, images, captions) in enumerate(rows):
        for j in range(n):
            axes[i, j].imshow(images[j][..., 0], cmap="gray", vmin=0, vmax=1)
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
            axes[i, j].set_xlabel(captions[j], fontsize=7, labelpad=1)
        axes[i, 0].set_ylabel(name, fontsize=7)
    figure.suptitle(title, fontsize=9)
    return save_figure(figure, path)


def plot_curves(frame: pd.DataFrame, x: str, path: str | os.PathLike, *, title: str = "",
                entropy_column: str = "entropy") -> Path:
    """Accuracy-type columns on the left axis, predictive entropy on the right (paper 1 Fig. 1
    style); one line per model when the frame has a "model" column."""
    plt = _pyplot()
    figure, left = plt.subplots(figsize=(6, 4))
    right = left.twinx()
    groups = frame.groupby("model", sort=False) if "model" in frame else [("", frame)]
    styles = {"accuracy": "-", "accuracy_single_draw": ":", "target_accuracy": "-."}
    for index, (name, group) in enumerate(groups):
        color = f"C{index % 10}"  # one colour per model; the line style tells the measure
        for column in [c for c in group.columns if "accuracy" in c]:
            left.plot(group[x], group[column], color=color, ls=styles.get(column, "-"),
                      marker="o", ms=2, label=f"{name} {column}".strip())
        if entropy_column in group:
            right.plot(group[x], group[entropy_column], color=color, ls="--", marker="x", ms=2,
                       alpha=0.6, label=f"{name} entropy".strip())
    left.set_xlabel(x)
    left.set_ylabel("accuracy")
    left.set_ylim(-0.02, 1.02)
    right.set_ylabel("predictive entropy (nats)")
    handles = left.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    labels = left.get_legend_handles_labels()[1] + right.get_legend_handles_labels()[1]
    left.legend(handles, labels, fontsize=7, loc="best")
    left.set_title(title)
    return save_figure(figure, path)
