"""KL detector (Li, Bradshaw, Sharma, ICML 2019): an adversarial input's class probabilities
look unlike those of legitimate inputs of the class it is given. Score
KL(p_bar_c || p(y | x)) with p_bar_c the mean p(y | x) over correctly classified training
inputs of class c = F(x); reject when above mu_c + alpha sigma_c."""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from .logit import LogitDetector


class KLDetector(LogitDetector):
    name = "kl"
    larger_is_suspicious = True

    def __init__(self, model, **kwargs):
        kwargs["per_class"] = True  # p_bar_c is per class by definition
        super().__init__(model, **kwargs)
        self.mean_probs: np.ndarray | None = None  # [C, C]

    def _prepare(self, x, labels):
        probs = self._probabilities(x)
        missing = [c for c in range(self.model.num_classes) if not np.any(labels == c)]
        if missing:
            raise ValueError(f"no correctly classified fitting inputs of class(es) {missing}")
        self.mean_probs = np.stack([probs[labels == c].mean(axis=0)
                                    for c in range(self.model.num_classes)])

    def _probabilities(self, x):
        return tf.nn.softmax(self._batched_logits(x, 20_000)).numpy()

    def _raw_batch(self, x, labels, seed):
        log_q = tf.nn.log_softmax(self.model.logits(x, self.k, seed=seed), axis=-1)
        p_bar = tf.gather(tf.constant(self.mean_probs, tf.float32), tf.cast(labels, tf.int32))
        return tf.reduce_sum(p_bar * (tf.math.log(p_bar + 1e-30) - log_q), axis=-1)
