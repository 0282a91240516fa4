"""DeepFool (Moosavi-Dezfooli et al. 2016; paper 2, Algorithm 1) for any L_p, p > 1, batched:
the gradients of all candidate classes come from ONE backward pass in which every candidate
class gets its own copy of each image."""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from ..attack_settings import DeepFoolSettings
from .utils import (
    AttackOutput,
    ModelFn,
    as_images,
    as_labels,
    class_scores,
    clip_to_box,
    confirm,
)


def dual_exponent(p: float) -> float:
    """q with 1/p + 1/q = 1 (q = 1 for p = inf)."""
    if p <= 1:
        raise ValueError(f"DeepFool needs p > 1; got {p}")
    return 1.0 if np.isinf(p) else p / (p - 1)


def deepfool(model_fn: ModelFn, x, labels, *, p: float = DeepFoolSettings.p,
             candidates: int = DeepFoolSettings.candidates,
             overshoot: float = DeepFoolSettings.overshoot,
             max_iterations: int = DeepFoolSettings.iterations,
             pairwise: bool = DeepFoolSettings.pairwise, targeted: bool = False,
             confirm_draws: int = 0, box: tuple[float, float] = (0.0, 1.0)) -> AttackOutput:
    """Push each image just past the nearest linearised decision boundary, step by step, until
    the predicted class is no longer ``labels`` (``targeted``: until it is ``labels``).

    Step i: for each candidate class k != y, w_k = grad(Z_k - Z_y), f_k = Z_k - Z_y; take
    l = argmin |f_k| / ||w_k||_q and move by r = (|f_l| + 1e-4) / ||w_l||_q^q * |w_l|^(q-1) *
    sign(w_l) (the minimal L_p step onto the linearised boundary; paper 2's Algorithm 1 prints
    ||w_l||^(q-1) where the per-coordinate |w_l|^(q-1) is meant). The image is
    clip(x + (1 + overshoot) * sum r). ``candidates`` classes are the top ones of the clean
    logits (always including y).

    For a stochastic model the copies are independent draws: the decision "is the class still
    y" uses their mean logits, which costs nothing extra, and is taken afresh at every
    iteration for every image, so an image that drifts back to y is pushed again. With
    ``confirm_draws`` > 0 an image stops only once most of that many fresh draws are fooled
    too (``utils.confirm``); until then it is pushed further, instead of resting on a boundary
    that the next draws put elsewhere.

    ``pairwise``: each copy scores only its candidate class and the label (``utils.
    class_scores``; a latent-variable model computes 2 of its C classes per copy), and an
    image is still classed y while y beats every candidate in that candidate's own copy. On a
    deterministic model with every class a candidate this is the same test and the same step.

    ``targeted`` (paper 2's "one-vs-all" attacks: one per class): ``labels`` are the targets t,
    and each step crosses the linearised boundary between t and its strongest rival r,
    f = Z_t - Z_r, w = grad f (one copy per image; r is the rival of that copy's own draw, so
    the step follows the image into whichever class it enters on the way), until t is the
    class. ``candidates`` and ``pairwise`` do not apply.

    References:
        Moosavi-Dezfooli, Fawzi, Frossard. DeepFool: a simple and accurate method to fool deep
        neural networks. CVPR 2016.
    """
    q = dual_exponent(p)
    if candidates < 2 or max_iterations < 1 or overshoot < 0 or confirm_draws < 0:
        raise ValueError("candidates must be >= 2, max_iterations >= 1, overshoot and "
                         "confirm_draws >= 0")
    x = as_images(x)
    batch = int(x.shape[0])
    labels = as_labels(labels, batch)
    if targeted:
        return _towards(model_fn, x, labels, q=q, overshoot=overshoot,
                        max_iterations=max_iterations, confirm_draws=confirm_draws, box=box)
    logits0 = model_fn(x)
    num_classes = int(logits0.shape[-1])
    candidates = min(candidates, num_classes)
    # top classes of the clean logits, the label forced into the list (it is not a target)
    ranking = tf.argsort(logits0 - 1e9 * tf.one_hot(labels, num_classes), axis=-1,
                         direction="DESCENDING")
    others = ranking[:, :candidates - 1]  # [B, n] candidate classes k != y
    n = candidates - 1
    others_t = tf.transpose(others)  # [n, B]

    # copy k of image b scores (label, candidate k): [n * B, 2], copy-major like the images
    pairs = tf.reshape(tf.stack([tf.tile(labels[None], [n, 1]), others_t], axis=-1), [-1, 2])

    @tf.function(reduce_retracing=True)
    def linearise(x_now):
        tiled = tf.tile(x_now[None], [n, 1, 1, 1, 1])
        flat = tf.reshape(tiled, (-1,) + tuple(x_now.shape[1:]))
        with tf.GradientTape() as tape:
            tape.watch(flat)
            if pairwise:
                scores = tf.reshape(class_scores(model_fn, flat, pairs), [n, batch, 2])
                z_y, z_k = scores[..., 0], scores[..., 1]
            else:
                logits = tf.reshape(model_fn(flat), [n, batch, num_classes])
                z_k = tf.gather(logits, others_t, axis=2, batch_dims=2)
                z_y = tf.gather(logits, tf.tile(labels[None], [n, 1]), axis=2, batch_dims=2)
            f = z_k - z_y  # [n, B], each copy consistent with its own draw
            total = tf.reduce_sum(f)  # copies are independent: d total / d copy k = w_k
        w = tf.reshape(tape.gradient(total, flat), tf.shape(tiled))
        if pairwise:
            still_y = tf.reduce_all(f < 0, axis=0)
        else:
            still_y = tf.argmax(tf.reduce_mean(logits, axis=0), axis=-1,
                                output_type=tf.int32) == labels
        return f, w, still_y

    return _iterate(linearise, _nearest_step(q), model_fn, x, labels, copies=n,
                    targeted=False, overshoot=overshoot, max_iterations=max_iterations,
                    confirm_draws=confirm_draws, box=box)


def _towards(model_fn: ModelFn, x, targets, *, q: float, overshoot: float,
             max_iterations: int, confirm_draws: int, box) -> AttackOutput:
    """Targeted DeepFool (see ``deepfool``): one copy per image, f = Z_t - Z_r."""
    num_classes = int(model_fn(x[:1]).shape[-1])
    is_target = tf.one_hot(targets, num_classes)

    @tf.function(reduce_retracing=True)
    def linearise(x_now):
        with tf.GradientTape() as tape:
            tape.watch(x_now)
            logits = model_fn(x_now)
            z_t = tf.reduce_sum(logits * is_target, axis=-1)
            z_r = tf.reduce_max(logits - 1e9 * is_target, axis=-1)
            f = z_t - z_r  # [B], < 0 until t wins this draw
            total = tf.reduce_sum(f)
        w = tape.gradient(total, x_now)
        return f[None], w[None], f <= 0  # one copy; "still short of t"

    return _iterate(linearise, _nearest_step(q), model_fn, x, targets, copies=1,
                    targeted=True, overshoot=overshoot, max_iterations=max_iterations,
                    confirm_draws=confirm_draws, box=box)


def _nearest_step(q: float):
    """The minimal L_p step onto the nearest of the copies' linearised boundaries."""

    @tf.function(reduce_retracing=True)
    def step(f, w):
        n, batch = tf.shape(f)[0], tf.shape(f)[1]
        w_flat = tf.reshape(w, [n, batch, -1])
        if q == 1.0:
            w_norm = tf.reduce_sum(tf.abs(w_flat), axis=-1)
        else:
            w_norm = tf.reduce_sum(tf.abs(w_flat) ** q, axis=-1) ** (1 / q)
        w_norm = w_norm + 1e-12
        nearest = tf.argmin(tf.abs(f) / w_norm, axis=0, output_type=tf.int32)  # [B]
        f_l = tf.gather(tf.transpose(f), nearest, batch_dims=1)
        norm_l = tf.gather(tf.transpose(w_norm), nearest, batch_dims=1)
        w_l = tf.gather(tf.transpose(w, [1, 0, 2, 3, 4]), nearest, batch_dims=1)  # [B, H, W, C]
        size = (tf.abs(f_l) + 1e-4) / norm_l ** q
        direction = tf.sign(w_l) if q == 1.0 else tf.abs(w_l) ** (q - 1) * tf.sign(w_l)
        return size[:, None, None, None] * direction

    return step


def _iterate(linearise, step, model_fn: ModelFn, x, aim, *, copies: int, targeted: bool,
             overshoot: float, max_iterations: int, confirm_draws: int, box) -> AttackOutput:
    """The DeepFool loop: linearise, step the images not there yet, until none is left."""
    batch = int(x.shape[0])
    total = tf.zeros_like(x)
    x_now = x
    active = np.ones(batch, bool)
    steps = np.zeros(batch, np.int64)
    queries = np.ones(batch, np.int64)

    def not_there_yet(short_by_copies):
        crossed = ~short_by_copies.numpy()
        return ~confirm(model_fn, x_now, crossed, aim, targeted, confirm_draws, queries)

    for _ in range(max_iterations):
        f, w, short = linearise(x_now)
        queries += copies
        active = not_there_yet(short)
        if not active.any():
            break
        r = step(f, w) * tf.constant(active[:, None, None, None], tf.float32)
        total = total + r
        x_now = clip_to_box(x + (1 + overshoot) * total, box)
        steps[active] += 1
    else:
        _, _, short = linearise(x_now)
        queries += copies
        active = not_there_yet(short)
    return AttackOutput(x_adv=x_now.numpy(), steps=steps, queries=queries, found=~active,
                        extras={"perturbation": total.numpy()})
