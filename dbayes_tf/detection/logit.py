"""Logit detector (paper 2, III.3; Li, Bradshaw, Sharma, ICML 2019): reject x when the
generative classifier finds the pair (x, F(x)) unlikely: log p(x, F(x)) < mu_c - alpha sigma_c,
with mu_c, sigma_c from correctly classified training inputs of class c."""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from .base import Detector


class LogitDetector(Detector):
    name = "logit"
    larger_is_suspicious = False  # low log p(x, y) is suspicious

    def _raw_batch(self, x, labels, seed):
        logits = self.model.logits(x, self.k, seed=seed)  # log p(x, y_c), K samples
        return tf.gather(logits, tf.cast(labels, tf.int32), batch_dims=1)

    def _batched_logits(self, x, seed_domain: int) -> np.ndarray:
        """The model's logits for x in batches; batch b uses seed (seed, seed_domain + b), a
        stream of its own apart from the scoring seeds (seed, b)."""
        return np.concatenate([
            self.model.logits(np.asarray(x[start:start + self.batch_size], np.float32), self.k,
                              seed=tf.constant([self.seed, seed_domain + b])).numpy()
            for b, start in enumerate(range(0, len(x), self.batch_size))])

    def _fit_mask(self, x, labels):
        return np.argmax(self._batched_logits(x, 10_000), axis=1) == labels
