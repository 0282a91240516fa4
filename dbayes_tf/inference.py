"""Bayes-rule classification with any :class:`~dbayes_tf.models.Classifier`.

``model.logits(x, k)`` is the one callable; this module adds what is built on it: class
probabilities, predictive entropy, and clean-accuracy evaluation over a data split.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from .data import Split
from .victim import resolve_k


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
    k = resolve_k(model, k)
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
