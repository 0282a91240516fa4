"""Factories that return ``tfp.distributions`` objects, and the stateless seeds they sample with.

All sampling in dbayes is stateless: a seed is an int32 tensor of shape [2]. A call that is given a
seed is repeatable; a call that is not draws its seed from a per-model counter, so every call sees
fresh random numbers (an attacker cannot fix the model's noise), yet a whole run started from the
same global seed repeats exactly.
"""
from __future__ import annotations

import math

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from .configs import LIKELIHOODS

tfd = tfp.distributions


IMAGE_EVENT_NDIMS = 3  # an image [H, W, C] is one event


def as_seed(seed) -> tf.Tensor:
    """Turn an int, a pair or a tensor into the int32 [2] seed TFP and tf.random expect."""
    if isinstance(seed, (int, np.integer)) or (hasattr(seed, "shape") and seed.shape == ()):
        return tf.stack([tf.cast(seed, tf.int32), tf.constant(0, tf.int32)])
    seed = tf.convert_to_tensor(seed)
    if seed.dtype != tf.int32:
        # Fold the high bits in instead of truncating them, so distinct int64 seeds stay distinct.
        seed = tf.cast(seed % 2147483647, tf.int32)
    return tf.reshape(seed, [2])


def split_seed(seed: tf.Tensor, n: int) -> list[tf.Tensor]:
    return tf.unstack(tf.random.experimental.stateless_split(seed, n))


def standard_normal_prior(latent_dim: int) -> tfd.Distribution:
    """p(z) = N(0, I) with the latent axis as the event."""
    return tfd.Independent(tfd.Normal(tf.zeros([latent_dim]), 1.0), reinterpreted_batch_ndims=1)


def diagonal_gaussian(loc: tf.Tensor, log_scale: tf.Tensor) -> tfd.Distribution:
    """q(z | ...) as a diagonal Gaussian; the log-scale is clipped to keep exp() finite."""
    scale = tf.exp(tf.clip_by_value(log_scale, -10.0, 5.0))
    return tfd.Independent(tfd.Normal(loc, scale), reinterpreted_batch_ndims=1)


def image_likelihood(kind: str, decoder_output: tf.Tensor, gaussian_scale: float
                     ) -> tfd.Distribution:
    """p(x | ...) for images, given the decoder's unconstrained output of shape [..., H, W, C].

    ``gaussian``: N(sigmoid(out), scale^2) per pixel, paper 1's "l2 loss" (log p = -||x - mu||^2 /
    (2 scale^2) + const); ``bernoulli``: Bernoulli(logits=out) on grey levels in [0, 1].
    """
    if kind == "gaussian":
        base = tfd.Normal(tf.sigmoid(decoder_output), gaussian_scale)
    elif kind == "bernoulli":
        # Bernoulli's log_prob on non-binary x is the cross-entropy, the usual choice for MNIST.
        base = tfd.Bernoulli(logits=decoder_output, dtype=decoder_output.dtype)
    else:
        raise ValueError(f"unknown likelihood {kind!r}; choose one of {LIKELIHOODS}")
    return tfd.Independent(base, reinterpreted_batch_ndims=IMAGE_EVENT_NDIMS)


def image_mean(kind: str, decoder_output: tf.Tensor) -> tf.Tensor:
    """E[x | ...] under :func:`image_likelihood`; both families have the sigmoid as their mean."""
    del kind
    return tf.sigmoid(decoder_output)


def categorical_log_prob(logits: tf.Tensor, one_hot: tf.Tensor) -> tf.Tensor:
    return tfd.OneHotCategorical(logits=logits, dtype=one_hot.dtype).log_prob(one_hot)


def log_mean_exp(log_values: tf.Tensor, axis: int = 0) -> tf.Tensor:
    """log (1/K) sum_k exp(v_k): the importance-weighted bound over the sample axis."""
    k = tf.cast(tf.shape(log_values)[axis], log_values.dtype)
    return tf.reduce_logsumexp(log_values, axis=axis) - tf.math.log(k)


def importance_log_weights(proposal: tfd.Distribution, log_joint, k: int, seed: tf.Tensor,
                           *, z: tf.Tensor | None = None) -> tf.Tensor:
    """log p(x, z_k) - log q(z_k), z_k ~ q, for k samples: shape [k, *q.batch_shape].

    ``log_joint(z)`` returns log p(x, z) for z with the sample axis first. ``log_mean_exp`` of the
    result over axis 0 is the importance-weighted estimate of log p(x) (the IWAE bound; its mean
    over k = 1 draws is the ELBO). ``z`` replaces the k samples of q by given ones.
    """
    if z is None:
        z = proposal.sample(k, seed=seed)
    return log_joint(z) - proposal.log_prob(z)


def standard_normal_noise(k: int, batch_shape, latent_dim: int, seed: tf.Tensor) -> tf.Tensor:
    """The unit-normal draws [k, *batch_shape, Z] behind ``q.sample(k, seed)`` of a diagonal
    Gaussian q: sample = loc + scale * noise, exactly (tests/test_models.py checks it), so a
    caller can pick rows of the noise and still reproduce q's own samples on them."""
    shape = tf.concat([[k], tf.cast(batch_shape, tf.int32), [latent_dim]], 0)
    return tf.random.stateless_normal(shape, seed)


LOG_2PI = math.log(2.0 * math.pi)
