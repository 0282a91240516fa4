"""Marginal detector: reject x when log p(x) = logsumexp_c log p(x, y_c) is below its training
mean minus alpha standard deviations (one global threshold; the label plays no part)."""
from __future__ import annotations

import tensorflow as tf

from .logit import LogitDetector


class MarginalDetector(LogitDetector):
    name = "marginal"
    larger_is_suspicious = False

    def __init__(self, model, **kwargs):
        kwargs["per_class"] = False
        super().__init__(model, **kwargs)

    def _raw_batch(self, x, labels, seed):
        return tf.reduce_logsumexp(self.model.logits(x, self.k, seed=seed), axis=-1)
