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

    def _fit_mask(self, x, labels):
        predicted = []
        for b, start in enumerate(range(0, len(x), self.batch_size)):
            logits = self.model.logits(np.asarray(x[start:start + self.batch_size], np.float32),
                                       self.k, seed=tf.constant([self.seed, 10_000 + b]))
            predicted.append(np.argmax(logits.numpy(), axis=1))
        return np.concatenate(predicted) == labels
