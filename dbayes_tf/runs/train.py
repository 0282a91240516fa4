"""``dbayes train``: the training loop with seeded, resumable epochs and atomic checkpoints.

A training run directory holds (layout in :mod:`dbayes_tf.runs.store`)::

    config.json            model config, training config, data source, machine, command
    weights.weights.h5     model weights after the last finished epoch (what others load)
    optimizer.npz          the optimiser's state, only for --resume (never committed)
    state.json             epochs done and per-epoch history (loss, validation accuracy, seconds)
    metrics.json           clean test metrics after the last epoch

Epoch e shuffles with seed (seed, e) and step s draws its noise with seed (seed, s), so a run
interrupted and resumed goes through the same batches and random numbers as one that was not.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from .. import data as data_lib
from .. import inference, reporting
from ..configs import DECODER_BIAS_INITS, LR_SCHEDULES, ModelConfig, TrainConfig  # noqa: F401
from ..models import Classifier, build_model
from .store import (
    CONFIG_FILE,
    METRICS_FILE,
    OPTIMIZER_FILE,
    STATE_FILE,
    WEIGHTS_FILE,
    RunError,
    guard,
    read_config,
    read_yaml_mapping,
    remove_outputs,
    write_config,
)


def mean_pixel_logit(images: np.ndarray) -> float:
    """logit of the mean pixel value: the decoder output whose sigmoid is the average image
    intensity (MNIST: 0.13 -> -1.90). Rounded, so that config.json holds a readable number."""
    mean = float(np.clip(np.mean(images, dtype=np.float64), 1e-3, 1 - 1e-3))
    return round(float(np.log(mean) - np.log1p(-mean)), 4)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _save_checkpoint(model: Classifier, run_dir: Path) -> None:
    """The weights alone (what evaluation, attacks and detectors load, a third of the size with
    Adam's moments) and, apart, the optimiser state that only --resume needs. The optimiser
    file records a digest of the weights it goes with, so a crash between the two files leaves
    a pair that --resume recognises as not belonging together."""
    bare = build_model(model.config).build_for_input()
    bare.set_weights(model.get_weights())
    with reporting.atomic_path(run_dir / WEIGHTS_FILE) as tmp:
        bare.save_weights(str(tmp))
    moments = {f"v{i}": v.numpy() for i, v in enumerate(model.optimizer.variables)}
    with reporting.atomic_path(run_dir / OPTIMIZER_FILE) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, weights_sha256=np.array(_digest(run_dir / WEIGHTS_FILE)), **moments)


def _restore_checkpoint(model: Classifier, run_dir: Path) -> None:
    optimizer_file, weights = run_dir / OPTIMIZER_FILE, run_dir / WEIGHTS_FILE
    with warnings.catch_warnings():
        # a weights-only file has no optimiser in it; its state comes from optimizer.npz
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        if not optimizer_file.is_file():
            # runs saved before the split keep the optimiser state inside the weights file
            model.optimizer.build(model.trainable_weights)
            model.load_weights(str(weights))
            if int(model.optimizer.iterations.numpy()) == 0:
                raise RunError(f"{run_dir} keeps its weights only (no {OPTIMIZER_FILE}), so it "
                               "cannot be resumed; train a new run into another --out")
            return
        model.load_weights(str(weights))
    model.optimizer.build(model.trainable_weights)
    with np.load(optimizer_file) as saved:
        values = {key: saved[key] for key in saved.files}
    if str(values.pop("weights_sha256", "")) != _digest(weights):
        raise RunError(f"{run_dir}: {OPTIMIZER_FILE} does not go with {WEIGHTS_FILE} (the run "
                       "stopped between writing the two); start again with --overwrite")
    variables = model.optimizer.variables
    if len(values) != len(variables):
        raise RunError(f"{optimizer_file} does not match the model ({len(values)} arrays for "
                       f"{len(variables)} optimiser variables); start again with --overwrite")
    for index, variable in enumerate(variables):
        variable.assign(values[f"v{index}"])


# Training settings that may change between a run and its resumption; the rest must match.
_RESUMABLE_CHANGES = ("epochs", "test_size", "eval_batch_size", "validate_every_epoch")


def _check_resumable(run_dir: Path, saved: dict[str, Any], model_config: ModelConfig,
                     train_config: TrainConfig) -> None:
    # through from_dict, so that runs saved before a config field existed compare on its default
    saved_model = saved.get("model")
    if saved_model is None or ModelConfig.from_dict(saved_model).to_dict() \
            != model_config.to_dict():
        raise RunError(f"{run_dir}: --resume with a different model config than the saved "
                       f"one ({CONFIG_FILE}); use the same options or another --out")
    asked = dataclasses.asdict(train_config)
    known = {field.name for field in dataclasses.fields(TrainConfig)}
    saved_train = dataclasses.asdict(TrainConfig(**{
        key: value for key, value in (saved.get("train") or {}).items() if key in known}))
    free = _RESUMABLE_CHANGES if train_config.lr_schedule == "constant" else tuple(
        key for key in _RESUMABLE_CHANGES if key != "epochs")
    changed = sorted(key for key, value in saved_train.items()
                     if key not in free and asked.get(key) != value)
    if changed:
        details = ", ".join(f"{key}: saved {saved_train[key]!r}, asked {asked.get(key)!r}"
                            for key in changed)
        raise RunError(f"{run_dir}: --resume with different training settings ({details}); "
                       "use the same options or another --out")


def load_run_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    """A training run's config.json."""
    return read_config(run_dir, "train")


def validation_size_of(saved: dict[str, Any]) -> int:
    """The validation carve-out a run was trained with (runs from before the option existed
    used 5,000), so that re-loading its data keeps those images unseen."""
    return int(saved["train"].get("validation_size", 5000))


def load_model(run_dir: str | os.PathLike) -> Classifier:
    """Rebuild a trained model from its run directory."""
    run_dir = Path(run_dir)
    saved = load_run_config(run_dir)
    weights = run_dir / WEIGHTS_FILE
    if not weights.is_file():
        raise RunError(f"{run_dir}: no weights ({WEIGHTS_FILE}); the run has not finished an "
                       "epoch yet, resume it with 'dbayes train --resume'")
    model = build_model(ModelConfig.from_dict(saved["model"]))
    try:
        model.load_weights(str(weights))
    except Exception as err:  # h5py / keras raise several types for a damaged or foreign file
        raise RunError(f"{weights}: cannot load weights ({type(err).__name__}: {err})") from None
    return model


def train(model_config: ModelConfig, train_config: TrainConfig, run_dir: str | os.PathLike, *,
          data_dir: str | os.PathLike | None = None, resume: bool = False,
          overwrite: bool = False, progress: bool = True, command: str | None = None,
          dataset: data_lib.Dataset | None = None,
          log: Callable[[str], None] = lambda message: print(message, file=sys.stderr),  # noqa: T201
          ) -> tuple[dict[str, Any], Classifier]:
    """Train (or resume) a model into ``run_dir``; returns the final metrics and the model."""
    run_dir = Path(run_dir)
    state_path = run_dir / STATE_FILE
    resuming = guard(run_dir, "train", resume=resume, overwrite=overwrite)
    if dataset is None:
        dataset = data_lib.load_dataset(train_config.dataset, data_dir=data_dir,
                                        validation_size=train_config.validation_size)
    train_split = dataset.train.take(train_config.train_size)
    test_split = dataset.test.take(train_config.test_size)
    saved = load_run_config(run_dir) if resuming and state_path.exists() else None

    if train_config.decoder_bias_init == "data-mean":
        if not model_config.is_latent:
            raise RunError(f"--decoder-bias-init data-mean is for models with a decoder (gc, "
                           f"gfz, dfz), not {model_config.model}")
        # a resumed run keeps the number it started with, whatever the data's mean rounds to now
        bias = saved["model"].get("decoder_bias") if saved else None
        model_config = dataclasses.replace(
            model_config, decoder_bias=mean_pixel_logit(train_split.images) if bias is None
            else bias)
    # Initial weights come from Keras' global seed: fix it so the same seed builds the same model.
    keras.utils.set_random_seed(train_config.seed)
    model = build_model(model_config)
    steps_per_epoch = -(-len(train_split) // train_config.batch_size)
    learning_rate = train_config.lr
    if train_config.lr_schedule == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(
            train_config.lr, decay_steps=train_config.epochs * steps_per_epoch)
    optimizer = keras.optimizers.Adam(learning_rate)
    model.compile(optimizer=optimizer)
    history: list[dict[str, Any]] = []
    earlier_commands: list[str | None] = []
    start_epoch = 0
    if saved is not None:
        _check_resumable(run_dir, saved, model_config, train_config)
        _restore_checkpoint(model, run_dir)
        history = list(reporting.read_json(state_path)["history"])
        # The weights file knows how far training got: if a crash fell between saving the
        # weights and saving state.json, the weights are one epoch ahead and win.
        start_epoch = int(optimizer.iterations.numpy()) // steps_per_epoch
        history = history[:start_epoch]
        if start_epoch > train_config.epochs:
            raise RunError(f"{run_dir} has done {start_epoch} epochs; --epochs "
                           f"{train_config.epochs} would go backwards")
        log(f"resuming {run_dir} after epoch {start_epoch}")
        earlier_commands = saved.get("earlier_commands", []) + [saved.get("command")]
    elif overwrite:
        remove_outputs(run_dir)
    write_config(run_dir, "train", {
        "model": model_config.to_dict(),
        "train": dataclasses.asdict(train_config),
        "data": {"name": dataset.name, "source": dataset.source, "train": len(train_split),
                 "validation": len(dataset.validation), "test": len(test_split)},
        "environment": reporting.environment(),
        "command": command,
        "earlier_commands": earlier_commands,  # the runs this one resumed
    })

    step_fn = tf.function(model.train_step, reduce_retracing=True)
    seed = train_config.seed
    for epoch in range(start_epoch, train_config.epochs):
        started = time.perf_counter()
        model.loss_tracker.reset_state()
        order = np.random.default_rng([seed, epoch]).permutation(len(train_split))
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{train_config.epochs}",
                   disable=not progress, unit="step")
        for step in bar:
            index = order[step * train_config.batch_size:(step + 1) * train_config.batch_size]
            global_step = epoch * steps_per_epoch + step
            logs = step_fn((train_split.images[index], train_split.labels[index],
                            tf.constant([seed, global_step], tf.int32)))
            if step % 20 == 0 or step == steps_per_epoch - 1:
                bar.set_postfix(loss=f"{float(logs['loss']):.4f}")
        loss = float(model.loss_tracker.result())
        if not np.isfinite(loss):
            raise RunError(f"training diverged at epoch {epoch + 1} (loss {loss}); "
                           "lower --lr and start again")
        record = {"epoch": epoch + 1, "loss": loss, "seconds": time.perf_counter() - started}
        if train_config.validate_every_epoch and len(dataset.validation):
            # K = 1 keeps validation cheap; the final test uses the model's K.
            val = inference.evaluate(model, dataset.validation, k=1, seed=seed,
                                     batch_size=train_config.eval_batch_size,
                                     progress=progress, description="validate")
            record["val_accuracy_k1"] = val.accuracy
        history.append(record)
        log("epoch {epoch}: loss {loss:.4f}".format(**record)
            + (f", val acc (K=1) {record['val_accuracy_k1']:.4f}"
               if "val_accuracy_k1" in record else "")
            + f", {record['seconds']:.1f}s")
        # Weights (with the optimiser state) and state are each replaced atomically, state last:
        # a crash in between leaves the previous epoch's state, and resuming redoes one epoch.
        _save_checkpoint(model, run_dir)
        reporting.write_json(state_path, {"epochs_done": epoch + 1, "history": history})

    result = inference.evaluate(model, test_split, k=model.default_k, seed=seed,
                                batch_size=train_config.eval_batch_size, progress=progress,
                                description="test")
    metrics = {
        "model": model_config.model, "arch": model_config.arch, "dataset": dataset.name,
        "k": result.k, "test_accuracy": result.accuracy, "test_entropy": result.mean_entropy,
        "test_nll": result.nll, "n_test": result.n, "epochs": train_config.epochs,
        "final_loss": history[-1]["loss"] if history else None, "seed": seed,
    }
    reporting.write_json(run_dir / METRICS_FILE, metrics)
    return metrics, model


# -- presets and options (shared by `dbayes train` and `dbayes reproduce`) ---------------------
MODEL_OPTIONS = ("k", "train_k", "likelihood", "gaussian_scale", "latent_dim", "vae_channels",
                 "vae_kernel_size", "dropout", "hidden")
TRAIN_OPTIONS = tuple(f.name for f in dataclasses.fields(TrainConfig))


def read_preset(path: str | os.PathLike, model: str | None = None,
                default_model: str | None = None) -> dict[str, Any]:
    """A training preset (configs/*.yaml): its ``train:`` section, with the per-model values of
    its ``models:`` section on top, for ``model``, else the preset's own ``model``, else
    ``default_model``."""
    values = read_yaml_mapping(path, "config")
    section = values.get("train", values)
    per_model = section.get("models", {}) or {}
    merged = {key: value for key, value in section.items() if key != "models"}
    merged.update(per_model.get(model or merged.get("model") or default_model, {}) or {})
    return {key.replace("-", "_"): value for key, value in merged.items()}


def configs_from_options(options: dict[str, Any]) -> tuple[ModelConfig, TrainConfig]:
    """Model and training configs from option names as `dbayes train` takes them (None or
    absent: the library's default); unknown names are refused."""
    from ..configs import resolve_config

    known = {"model", "arch", "seed", *MODEL_OPTIONS, *TRAIN_OPTIONS}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"unknown training option(s) {unknown}; known: {sorted(known)}")
    given = {key: value for key, value in options.items() if value is not None}
    model_config = resolve_config(given.get("model", ModelConfig.model), given.get("arch"),
                                  seed=given.get("seed", TrainConfig.seed),
                                  **{key: given[key] for key in MODEL_OPTIONS if key in given})
    train_config = TrainConfig(**{key: given[key] for key in TRAIN_OPTIONS if key in given})
    return model_config, train_config


def drop_optimizer_state(run_dir: str | os.PathLike) -> bool:
    """Rewrite a finished run's weights file without the optimiser state that runs saved before
    weights and optimiser were split (Adam's two moments: two thirds of the file). Such a run
    can no longer be resumed. Returns whether the file changed."""
    run_dir = Path(run_dir)
    model = load_model(run_dir)
    path = run_dir / WEIGHTS_FILE
    with tempfile.TemporaryDirectory(dir=run_dir, prefix=".strip") as scratch:
        candidate = Path(scratch) / WEIGHTS_FILE
        model.save_weights(str(candidate))
        if candidate.stat().st_size >= path.stat().st_size:
            return False  # already weights only: keep the file as it is
        os.replace(candidate, path)  # one file system: atomic
    return True
