"""One calibration and scoring interface for every detector.

A detector turns an input x and the label a victim classifier gave it, F(x), into a raw score
(a distance, log p(x, F(x)), ...). ``fit`` measures the raw score on legitimate training inputs
and keeps its mean and standard deviation, globally or per class; ``statistic`` standardises a
raw score so that larger always means "more suspicious" (e.g. (mu_c - log p(x, c)) / sigma_c);
an input is flagged when its statistic exceeds a threshold. ``calibrate(fpr)`` picks the
threshold (paper 2's alpha) as the (1 - fpr) quantile of the statistic on the fitting data, so
that a fraction fpr of legitimate inputs is rejected.
"""
from __future__ import annotations

import abc

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from ..victim import resolve_k


class Detector(abc.ABC):
    """Subclasses set ``name``, ``larger_is_suspicious`` and implement ``raw_scores``."""

    name: str = ""
    larger_is_suspicious: bool = True

    def __init__(self, model, *, k: int | None = None, per_class: bool = True,
                 batch_size: int = 100, seed: int = 0, progress: bool = False):
        if not getattr(model.config, "is_latent", False):
            raise ValueError(f"the {self.name} detector needs a generative model (gc, gfz or "
                             f"dfz); got {model.config.model!r}")
        self.model = model
        self.k = resolve_k(model, k)
        self.per_class = per_class
        self.batch_size = batch_size
        self.seed = seed
        self.progress = progress
        self.center: np.ndarray | None = None  # [C] (per class) or [1]
        self.spread: np.ndarray | None = None
        self.threshold: float | None = None
        self._fit_statistics: np.ndarray | None = None

    # -- scores -----------------------------------------------------------------------------
    @abc.abstractmethod
    def _raw_batch(self, x: tf.Tensor, labels: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """Raw score of each input in a batch under the label given for it."""

    def raw_scores(self, x, labels) -> np.ndarray:
        """Raw scores, batched; batch b uses seed (seed, b), so repeated calls agree."""
        x = np.asarray(x, np.float32)
        labels = np.asarray(labels, np.int64)
        if len(x) != len(labels):
            raise ValueError(f"{len(x)} inputs but {len(labels)} labels")
        out = []
        starts = range(0, len(x), self.batch_size)
        for b, start in enumerate(tqdm(starts, desc=self.name, disable=not self.progress,
                                       leave=False, unit="batch")):
            seed = tf.constant([self.seed, b], tf.int32)
            out.append(self._raw_batch(tf.constant(x[start:start + self.batch_size]),
                                       tf.constant(labels[start:start + self.batch_size]),
                                       seed).numpy())
        return np.concatenate(out) if out else np.zeros(0)

    def _fit_mask(self, x, labels) -> np.ndarray:
        """Which fitting inputs count as legitimate examples (all, unless a subclass needs the
        model to classify them correctly)."""
        return np.ones(len(labels), bool)

    def _prepare(self, x, labels) -> None:  # noqa: B027 (a hook: most detectors need none)
        """Hook for statistics a raw score needs before it can be computed (KL's p_bar_c)."""

    # -- calibration ------------------------------------------------------------------------
    def fit(self, x, labels) -> Detector:
        """Mean and spread of the raw score on legitimate inputs with their true labels."""
        labels = np.asarray(labels, np.int64)
        keep = self._fit_mask(x, labels)
        x, labels = np.asarray(x)[keep], labels[keep]
        self._prepare(x, labels)
        raw = self.raw_scores(x, labels)
        classes = self.model.num_classes
        if self.per_class:
            missing = [c for c in range(classes) if not np.any(labels == c)]
            if missing:
                raise ValueError(f"no legitimate fitting inputs of class(es) {missing}; fit on "
                                 "more data or use a global threshold")
            self.center = np.array([raw[labels == c].mean() for c in range(classes)])
            self.spread = np.array([raw[labels == c].std() + 1e-12 for c in range(classes)])
        else:
            self.center, self.spread = np.array([raw.mean()]), np.array([raw.std() + 1e-12])
        self._fit_statistics = self.statistic(raw, labels)
        return self

    def statistic(self, raw, labels) -> np.ndarray:
        """Standardised score: larger is more suspicious."""
        if self.center is None:
            raise RuntimeError(f"{self.name} detector used before fit()")
        index = np.asarray(labels, np.int64) if self.per_class else np.zeros(len(raw), int)
        z = (np.asarray(raw) - self.center[index]) / self.spread[index]
        return z if self.larger_is_suspicious else -z

    def score(self, x, labels) -> np.ndarray:
        """Standardised score of inputs under the labels a classifier gave them."""
        return self.statistic(self.raw_scores(x, labels), labels)

    def calibrate(self, fpr: float = 0.05) -> float:
        """Threshold (alpha) flagging a fraction ``fpr`` of the fitting inputs."""
        if not 0 < fpr < 1:
            raise ValueError(f"the false-positive rate must be in (0, 1); got {fpr}")
        if self._fit_statistics is None:
            raise RuntimeError(f"{self.name} detector used before fit()")
        self.threshold = float(np.quantile(self._fit_statistics, 1 - fpr))
        return self.threshold

    def flag(self, x, labels) -> np.ndarray:
        if self.threshold is None:
            raise RuntimeError("call calibrate() (or set threshold) before flag()")
        return self.score(x, labels) > self.threshold
