"""Bayes-rule classification with any :class:`~dbayes_tf.models.Classifier`.

``model.logits(x, k)`` is the one callable; this module adds what is built on it: class
probabilities, predictive entropy, and clean-accuracy evaluation over a data split.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from . import distributions as dist
from .data import Split


def predictive_entropy(logits: tf.Tensor) -> tf.Tensor:
    """H[p(y | x)] in nats for logits [B, C] (the uncertainty measure of paper 1, Fig. 1)."""
    log_p = tf.nn.log_softmax(logits, axis=-1)
    return -tf.reduce_sum(tf.exp(log_p) * log_p, axis=-1)


def iw_log_joint(model, x, k: int | None = None, seed=None) -> tf.Tensor:
    """log p(x, y_c) for every class (latent models only): the logits themselves."""
    if not model.config.is_latent:
        raise TypeError(f"model {model.config.model!r} has no generative model of x; "
                        "log p(x, y) needs gc, gfz or dfz")
    return model.logits(x, k, seed)


def iw_log_marginal(model, x, k: int | None = None, seed=None) -> tf.Tensor:
    """log p(x) = logsumexp_c log p(x, y_c)."""
    return tf.reduce_logsumexp(iw_log_joint(model, x, k, seed), axis=-1)


@dataclasses.dataclass
class Evaluation:
    accuracy: float
    mean_entropy: float
    nll: float  # mean -log p(y_true | x)
    n: int
    k: int
    predictions: np.ndarray
    logits: np.ndarray


def evaluate(model, split: Split, *, k: int | None = None, batch_size: int = 100,
             seed: int = 0, progress: bool = True, description: str = "eval") -> Evaluation:
    """Clean accuracy, predictive entropy and NLL over ``split``; batch b uses seed (seed, b),
    so the same seed gives the same numbers."""
    k = int(k or model.default_k) if model.is_stochastic else 1  # K means nothing to a plain net
    all_logits = []
    starts = range(0, len(split), batch_size)
    for batch_index, start in enumerate(tqdm(starts, desc=description, disable=not progress,
                                             unit="batch", leave=False)):
        x = split.images[start:start + batch_size]
        all_logits.append(model.logits(x, k, seed=tf.constant([seed, batch_index], tf.int32))
                          .numpy())
    logits = np.concatenate(all_logits) if all_logits else np.zeros((0, model.num_classes))
    predictions = logits.argmax(axis=-1)
    log_probs = tf.nn.log_softmax(logits).numpy()
    labels = split.labels[:len(logits)]
    return Evaluation(
        accuracy=float(np.mean(predictions == labels)),
        mean_entropy=float(np.mean(predictive_entropy(logits).numpy())),
        nll=float(-np.mean(log_probs[np.arange(len(labels)), labels])),
        n=len(labels), k=k, predictions=predictions, logits=logits)


class DrawStream:
    """``model.logits`` as an attacker meets it: every call draws fresh randomness (fresh z,
    fresh dropout masks), from a stream the experimenter can replay. ``reset(seed)`` restarts
    the stream, so a resumed attack run repeats each batch exactly. Works inside
    ``tf.function``: the call counter is a variable, not a Python int frozen at trace time."""

    def __init__(self, model, k: int | None = None, seed=0):
        self.model = model
        self.k = int(k or model.default_k)
        self._base = tf.Variable(dist.as_seed(seed), trainable=False)
        self._calls = tf.Variable(0, dtype=tf.int32, trainable=False)

    def reset(self, seed) -> None:
        self._base.assign(dist.as_seed(seed))
        self._calls.assign(0)

    def __call__(self, x) -> tf.Tensor:
        call_index = self._calls.assign_add(1)
        seed = tf.random.experimental.stateless_fold_in(self._base, call_index)
        return self.model.logits(x, self.k, seed=seed)

    def probabilities(self, x) -> np.ndarray:
        """What a black-box attacker sees: output probabilities as plain numbers."""
        return tf.nn.softmax(self(x), axis=-1).numpy()
