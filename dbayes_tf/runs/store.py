"""The layout of run directories: the only code that knows which files a run holds, how they
are written (atomically) and how they are read back (verified, never trusted).

Every run directory holds ``config.json`` with a ``kind`` (train, attack, sweep, detect): what
was asked, fully resolved. What each kind adds:

    train    weights.weights.h5 (weights only), optimizer.npz (optimiser state, for
             --resume; not committed), state.json (epochs done, history), metrics.json
    attack   attempts.csv (one row per finished attempt), adversarial/NNNNN.npz (the final
             images of batch NNNNN, with their attempt ids), summary.{csv,md}
    sweep    fgsm_sweep.{csv,md,png}
    detect   detect_METHOD.{csv,md}, roc_METHOD.png, grid_*.png
"""
from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import reporting
from ..stats import undecided

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.weights.h5"
OPTIMIZER_FILE = "optimizer.npz"
STATE_FILE = "state.json"
METRICS_FILE = "metrics.json"
ATTEMPTS_FILE = "attempts.csv"
IMAGES_DIR = "adversarial"
SUMMARY_FILE = "summary.csv"
SWEEP_FILE = "fgsm_sweep.csv"
KINDS = ("train", "attack", "sweep", "detect")

ATTEMPT_COLUMNS = {
    "attempt": "int", "image_id": "int", "label": "int", "target": "int", "pred_clean": "int",
    "clean_correct": "bool", "pred_adv_single": "int", "pred_adv": "int",
    "success_single": "bool", "success": "bool", "fooled_rate": "float",
    "attack_found": "bool", "l2": "float", "linf": "float", "rel_l2": "float", "steps": "int",
    "queries": "int", "seconds": "float", "entropy_clean": "float", "entropy_adv": "float"}
# Columns added after runs were committed: checked where present; a run without them means
# what it always meant (verdict_draws: R for every verdict, the run's config says R).
ADDED_ATTEMPT_COLUMNS = {"verdict_draws": "int"}


NAMES = {"train": "a training run", "attack": "an attack run", "sweep": "an FGSM sweep",
         "detect": "a detection run", "unknown": "a run of unknown kind"}


class RunError(RuntimeError):
    """A run directory is missing, damaged, or does not match what was asked."""


# -- YAML inputs (training presets, experiment plans) ------------------------------------------
def read_yaml_mapping(path: str | os.PathLike, what: str) -> dict[str, Any]:
    """A YAML file that must hold a mapping, or a RunError that names it."""
    import yaml

    try:
        values = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as err:
        raise RunError(f"cannot read {what} {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise RunError(f"{what} {path} is not valid YAML: {err}") from None
    if not isinstance(values, dict):
        raise RunError(f"{what} {path} must be a mapping")
    return values


# -- paths between runs ---------------------------------------------------------------------
def portable(path: str | os.PathLike, run_dir: str | os.PathLike) -> str:
    """Another run's folder as a config stores it: relative to the run that names it, so a
    committed run still finds its model in any clone."""
    return os.path.relpath(Path(path).resolve(), Path(run_dir).resolve())


def located(stored: str, run_dir: str | os.PathLike) -> Path:
    """A folder a config names, found again (relative to the config's run; runs written before
    configs stored relative paths hold absolute ones)."""
    path = Path(stored)
    return path if path.is_absolute() else (Path(run_dir) / path).resolve()


# -- config.json ------------------------------------------------------------------------------
def has_config(run_dir: str | os.PathLike) -> bool:
    return (Path(run_dir) / CONFIG_FILE).is_file()


def read_config(run_dir: str | os.PathLike, kind: str | None = None) -> dict[str, Any]:
    """A run's config.json; with ``kind``, refuse a run of another kind."""
    run_dir = Path(run_dir)
    path = run_dir / CONFIG_FILE
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: no such run directory")
    if not path.is_file():
        raise RunError(f"{run_dir}: not a dbayes run (no {CONFIG_FILE})")
    try:
        config = reporting.read_json(path)
    except ValueError as err:
        raise RunError(f"{path}: unreadable JSON ({err})") from None
    if not isinstance(config, dict):
        raise RunError(f"{path}: not a run config (a JSON object)")
    found = kind_of(config)
    if kind is not None and found != kind:
        raise RunError(f"{run_dir}: {NAMES.get(found, found)}, not {NAMES[kind]}")
    return config


def kind_of(config: dict[str, Any]) -> str:
    """A config's kind; runs written before configs named their kind are told by their
    fields."""
    if "kind" in config:
        return config["kind"]
    if "settings" in config:
        return "attack"
    if "model" in config and "train" in config:
        return "train"
    return "unknown"


def write_config(run_dir: str | os.PathLike, kind: str, config: dict[str, Any]) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown run kind {kind!r}")
    reporting.write_json(Path(run_dir) / CONFIG_FILE, {"kind": kind, **config})


def guard(run_dir: str | os.PathLike, kind: str, *, resume: bool, overwrite: bool,
          resumable: bool = True) -> bool:
    """The same rule for every kind of run: an --out folder that holds another kind of run, or
    anything that is not a run, is refused; one that holds a run of this kind needs --resume or
    --overwrite. Returns whether there is a run to resume."""
    run_dir = Path(run_dir)
    if resume and overwrite:
        raise RunError("--resume continues a run and --overwrite starts it again: give one")
    if not run_dir.exists():
        return False
    if not run_dir.is_dir():
        raise RunError(f"{run_dir} is a file, not a folder for a run")
    if has_config(run_dir):
        found = kind_of(read_config(run_dir))
        if found != kind:
            raise RunError(f"{run_dir} holds {NAMES.get(found, found)}; choose another --out "
                           f"for {NAMES[kind]}")
        if not (resume or overwrite):
            hint = "--resume to continue it, " if resumable else ""
            raise RunError(f"{run_dir} already holds {NAMES[kind]}; use {hint}--overwrite to "
                           "start again, or another --out")
        return resume
    if any(p for p in run_dir.iterdir() if not p.name.startswith(".")):
        raise RunError(f"{run_dir} is not empty and holds no dbayes run; choose an empty or "
                       "new --out")
    return False


def differences(saved: dict[str, Any], asked: dict[str, Any], prefix: str = "") -> list[str]:
    """Every setting that differs between two (nested) configs, as 'key: saved X, asked Y'."""
    out = []
    for key in sorted(set(saved) | set(asked)):
        name = f"{prefix}{key}"
        a, b = saved.get(key, "<missing>"), asked.get(key, "<missing>")
        if isinstance(a, dict) and isinstance(b, dict):
            out += differences(a, b, f"{name}.")
        elif a != b:
            out.append(f"{name}: saved {a!r}, asked {b!r}")
    return out


def check_resumable(run_dir: Path, saved: dict[str, Any], asked: dict[str, Any],
                    keys: tuple[str, ...]) -> None:
    changed = differences({k: saved.get(k) for k in keys}, {k: asked.get(k) for k in keys})
    if changed:
        raise RunError(f"{run_dir}: --resume with other settings than the saved run: "
                       + "; ".join(changed) + ". Use the same options, or another --out")


# -- attack runs ------------------------------------------------------------------------------
def read_attempts(run_dir: str | os.PathLike, planned: pd.DataFrame | None = None
                  ) -> pd.DataFrame:
    """attempts.csv, verified: every column there with its type, each attempt once, and (given
    the plan) each attempt one of the plan's with the plan's image, label and target. A file cut
    mid-row or edited by hand is refused, never half-read."""
    path = Path(run_dir) / ATTEMPTS_FILE
    if not path.is_file():
        return pd.DataFrame(columns=list(ATTEMPT_COLUMNS))
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise RunError(f"{path} is damaged ({type(err).__name__}); start the run again with "
                       "--overwrite") from None
    problems = []
    missing = [c for c in ATTEMPT_COLUMNS if c not in frame.columns]
    if missing:
        problems.append(f"missing columns {missing}")
    else:
        for column, kind in _attempt_columns(frame).items():
            values = frame[column]
            if values.isna().any():
                problems.append(f"empty cells in {column}")
            elif kind == "bool" and not values.isin([True, False]).all():
                problems.append(f"{column} is not true/false")
            elif kind == "int" and not pd.api.types.is_integer_dtype(values):
                problems.append(f"{column} is not whole numbers")
            elif kind == "float" and not pd.api.types.is_numeric_dtype(values):
                problems.append(f"{column} is not numbers")
        if frame["attempt"].duplicated().any():
            problems.append("attempts listed twice")
        if planned is not None and not problems:
            plan = planned.set_index("attempt")
            unknown = ~frame["attempt"].isin(plan.index)
            if unknown.any():
                problems.append(f"attempts {frame['attempt'][unknown].tolist()[:5]} are not in "
                                "the plan")
            else:
                mine = plan.loc[frame["attempt"], ["image_id", "label", "target"]].to_numpy()
                if not np.array_equal(mine, frame[["image_id", "label", "target"]].to_numpy()):
                    problems.append("image, label or target differ from the plan")
    if problems:
        raise RunError(f"{path} is damaged ({'; '.join(problems)}); start the run again with "
                       "--overwrite")
    for column, kind in _attempt_columns(frame).items():
        frame[column] = frame[column].astype(kind)
    return frame.sort_values("attempt").reset_index(drop=True)


def undecided_among(attempts: pd.DataFrame, victim: dict | None) -> float:
    """How many of ``attempts`` have an undecided verdict (``stats.undecided``); nan without
    the run's stored victim settings, 0 for a deterministic model. A run without the
    ``verdict_draws`` column drew R for every verdict."""
    if victim is None:
        return float("nan")
    if not victim.get("stochastic", True) or not len(attempts):
        return 0
    draws = (attempts["verdict_draws"].to_numpy() if "verdict_draws" in attempts
             else victim["verdict_draws"])
    return int(undecided(attempts["fooled_rate"].to_numpy(), draws).sum())


def _attempt_columns(frame: pd.DataFrame) -> dict[str, str]:
    return ATTEMPT_COLUMNS | {c: k for c, k in ADDED_ATTEMPT_COLUMNS.items() if c in frame}


def write_attempts(run_dir: str | os.PathLike, rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    frame = frame[list(_attempt_columns(frame))].sort_values("attempt")
    with reporting.atomic_path(Path(run_dir) / ATTEMPTS_FILE) as tmp:
        frame.to_csv(tmp, index=False)
    return frame


def image_file(run_dir: str | os.PathLike, batch_index: int) -> Path:
    return Path(run_dir) / IMAGES_DIR / f"{batch_index:05d}.npz"


def write_images(run_dir: str | os.PathLike, batch_index: int, attempts: np.ndarray,
                 x_adv: np.ndarray, **extra: np.ndarray) -> None:
    with reporting.atomic_path(image_file(run_dir, batch_index)) as tmp:
        np.savez_compressed(tmp, attempt=np.asarray(attempts), x_adv=x_adv.astype(np.float32),
                            **extra)


def _read_npz(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    try:
        with np.load(path) as data:
            missing = [k for k in keys if k not in data.files]
            if missing:
                raise RunError(f"{path} is damaged (no {', '.join(missing)}); start the run "
                               "again with --overwrite")
            return {k: data[k] for k in keys}
    except (zipfile.BadZipFile, zlib.error, OSError, ValueError, EOFError) as err:
        raise RunError(f"{path} is damaged ({type(err).__name__}); start the run again with "
                       "--overwrite") from None


def read_images(run_dir: str | os.PathLike, attempts: pd.DataFrame | None = None,
                extra: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """The final images of an attack run, verified and in attempt order: ``attempt`` ids,
    ``x_adv`` [N, H, W, C] and any ``extra`` arrays (per batch, concatenated on their batch
    axis). Only attempts that attempts.csv records count (a batch cut off between its image
    file and its rows is not done); every recorded attempt must have its image."""
    run_dir = Path(run_dir)
    folder = run_dir / IMAGES_DIR
    files = sorted(folder.glob("[0-9]*.npz")) if folder.is_dir() else []
    if not files:
        raise RunError(f"{run_dir}: no saved adversarial images ({IMAGES_DIR}/*.npz); is it a "
                       "'dbayes attack' run directory?")
    recorded = read_attempts(run_dir) if attempts is None else attempts
    parts = [_read_npz(f, ("attempt", "x_adv") + extra) for f in files]
    ids = np.concatenate([p["attempt"] for p in parts])
    keep = np.isin(ids, recorded["attempt"].to_numpy())
    lost = np.setdiff1d(recorded["attempt"].to_numpy(), ids)
    if len(lost):
        raise RunError(f"{run_dir}: attempts {lost.tolist()[:5]} are recorded but their images "
                       f"are missing from {IMAGES_DIR}/; start the run again with --overwrite")
    order = np.argsort(ids[keep], kind="stable")
    out = {"attempt": ids[keep][order],
           "x_adv": np.concatenate([p["x_adv"] for p in parts])[keep][order]}
    for key in extra:  # e.g. path_logits [T + 1, b, C]: batch on axis 1
        out[key] = np.concatenate([p[key] for p in parts], axis=1)[:, keep][:, order]
    return out


def remove_outputs(run_dir: str | os.PathLike) -> None:
    """What --overwrite clears before a run starts again (its config.json is rewritten)."""
    run_dir = Path(run_dir)
    for name in (ATTEMPTS_FILE, SUMMARY_FILE, "summary.md", STATE_FILE, METRICS_FILE,
                 WEIGHTS_FILE, OPTIMIZER_FILE, SWEEP_FILE, "fgsm_sweep.md", "fgsm_sweep.png",
                 "ifgsm_path.csv", "ifgsm_path.md", "ifgsm_path.png"):
        (run_dir / name).unlink(missing_ok=True)
    for stale in sorted((run_dir / IMAGES_DIR).glob("*.npz")):
        stale.unlink()
