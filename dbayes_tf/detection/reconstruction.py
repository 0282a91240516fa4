"""Reconstruction distance (paper 1, section 3): an adversarial x labelled y_adv lies far from
the manifold of y_adv, so its reconstruction under y_adv is far from x."""
from __future__ import annotations

import tensorflow as tf

from .base import Detector


class ReconstructionDetector(Detector):
    """Raw score d(x, r(x, y)) = ||x - mu_x(mu_z(x, y), y)||_2 (encoder mean, then decoder
    mean; no sampling). Paper 1 flags d > the mean distance on legitimate training inputs:
    ``use_paper_threshold()``; ``calibrate(fpr)`` gives an FPR-based threshold instead."""

    name = "recon"
    larger_is_suspicious = True

    def __init__(self, model, **kwargs):
        kwargs.setdefault("per_class", False)  # paper 1 uses one global mean
        super().__init__(model, **kwargs)

    def _raw_batch(self, x, labels, seed):
        recon = self.model.reconstruct(x, labels)
        return tf.sqrt(tf.reduce_sum(tf.square(x - recon), axis=[1, 2, 3]))

    def reconstruct(self, x, labels):
        return self.model.reconstruct(tf.constant(x, tf.float32), tf.constant(labels)).numpy()

    def use_paper_threshold(self) -> float:
        """d > mean training distance (per class with per_class=True): statistic > 0."""
        self.threshold = 0.0
        return self.threshold

    def statistic(self, raw, labels):
        # distances stay in their own units (centred, not scaled) so that the paper's
        # threshold "d > mean" is statistic > 0 and ROC curves are in distance units
        if self.center is None:
            raise RuntimeError("recon detector used before fit()")
        index = labels if self.per_class else [0] * len(raw)
        return raw - self.center[index]
