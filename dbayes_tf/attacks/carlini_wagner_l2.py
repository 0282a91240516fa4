"""Carlini-Wagner L2, batched, with one trade-off constant per example.

Written for this project: CleverHans 4.0.0's tf2 version fails under Keras 3, shares one
constant across a batch's pixels in a way that mis-scales c on one-channel images (upstream
#1205) and ignores ``targeted`` (#1228).
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from ..attack_settings import CarliniWagnerL2Settings
from .utils import (
    AttackOutput,
    DeferredClaims,
    LossPlateau,
    ModelFn,
    as_images,
    as_labels,
    class_scores,
    decision_fn,
    margin,
    mean_logits,
    top_rivals,
    update_constants,
)

_DEFAULT = CarliniWagnerL2Settings

_ADAM_BETA1, _ADAM_BETA2, _ADAM_EPS = 0.9, 0.999, 1e-8


def carlini_wagner_l2(model_fn: ModelFn, x, labels, *, targeted: bool = False,
                      confidence: float = _DEFAULT.confidence,
                      binary_search_steps: int = _DEFAULT.binary_steps,
                      max_iterations: int = _DEFAULT.iterations,
                      learning_rate: float = _DEFAULT.lr,
                      initial_const: float = _DEFAULT.initial_const,
                      abort_early: bool = _DEFAULT.abort_early,
                      rivals: int = _DEFAULT.rivals, check_every: int = _DEFAULT.check_every,
                      decision_draws: int = 1, confirm_draws: int = 0,
                      box: tuple[float, float] = (0.0, 1.0),
                      progress: bool = False) -> AttackOutput:
    """Minimise ||x' - x||_2^2 + c * f(x') over x' = box(tanh(w)) with Adam, where
    f = max(kappa - margin(x'), 0) (margin > 0 iff x' is adversarial), and binary-search c per
    example. Returns the smallest adversarial found for each input (or the input itself).

    For a stochastic model every Adam step sees one fresh draw; whether x' counts as
    adversarial (for "best so far" and for the binary search) is decided on the mean logits of
    ``decision_draws`` draws, and abort-early compares the mean loss of successive windows of
    max_iterations / 10 steps, so neither hinges on one lucky draw. With ``confirm_draws`` > 0
    an iterate that would become the best so far (or the first success at this c) must also
    fool most of that many fresh draws (``utils.confirm``): a thousand near-boundary tests
    otherwise let the smallest lucky iterate through, and on a K = 10 generative classifier the
    attack then claimed every image while a fresh majority upheld 10-75% of them. The claims
    are confirmed when the search step at that c ends, smallest first
    (``utils.DeferredClaims``): the same outcome as confirming each as it comes, with one
    confirmation per step instead of one per improving check.

    With ``check_every`` = 1 and no ``rivals`` (Carlini's way) every step's iterate is tested,
    its own draw being one of the decision draws when the step's call is the decision call
    (a victim's ``steps_are_decisions``). Otherwise the test is a check made every
    ``check_every`` steps (and after the last): all classes at the model's K in the attacker's
    decision precision (``utils.decision_fn``), ``decision_draws`` draws; the steps in between
    only move. ``rivals`` > 0: each check also picks, per image, the ``rivals`` strongest classes
    besides the target (untargeted: besides the label), and the steps score the target and those
    rivals only (``utils.class_scores``), which on a latent-variable model costs (1 + rivals) / C
    of a step on every class; the margin only needs the strongest rival, so while the ranking
    holds the steps are the full ones. Together with an attacker's K' < K (``Victim``) this is
    what makes a CW attempt on a K = 10 generative classifier affordable
    (``benchmarks/bench_decisions.py``).

    References:
        Carlini, Wagner. Towards evaluating the robustness of neural networks. IEEE S&P 2017.
    """
    if binary_search_steps < 1 or max_iterations < 1 or decision_draws < 1:
        raise ValueError("binary_search_steps, max_iterations and decision_draws must be >= 1")
    if confirm_draws < 0 or rivals < 0 or check_every < 1:
        raise ValueError("confirm_draws and rivals must be >= 0, check_every >= 1")
    if learning_rate <= 0 or initial_const <= 0 or confidence < 0:
        raise ValueError("learning_rate and initial_const must be > 0, confidence >= 0")
    x = as_images(x)
    labels = as_labels(labels, x.shape[0])
    batch = int(x.shape[0])
    low, high = box
    scale, offset = (high - low) / 2, (high + low) / 2
    # tanh space; shrink a hair so that arctanh stays finite at the box edges
    w_start = tf.atanh(tf.clip_by_value((x - offset) / scale, -1, 1) * 0.999999)
    # a step's own draw may count as a decision draw only where the attacker's call is the
    # decision call: with K' < K or another precision every step is checked at K instead
    every_step = (check_every == 1 and rivals == 0
                  and getattr(model_fn, "steps_are_decisions", True))
    aim_first = tf.zeros_like(labels)  # with a class subset, the aim is its first column

    def to_image(w):
        return tf.tanh(w) * scale + offset

    def margin_of(logits, classes):
        return margin(logits, labels if classes is None else aim_first, targeted)

    @tf.function(reduce_retracing=True)
    def adam_step(w, m, v, t, const, classes):
        with tf.GradientTape() as tape:
            tape.watch(w)
            x_new = to_image(w)
            l2 = tf.reduce_sum(tf.square(x_new - x), axis=[1, 2, 3])
            logits = class_scores(model_fn, x_new, classes)
            # Carlini's max(-margin, -kappa), shifted by kappa: same gradient, never negative,
            # so abort-early's "no longer falling" test keeps its meaning for kappa > 0
            hinge = tf.maximum(confidence - margin_of(logits, classes), 0.0)
            loss_each = l2 + const * hinge
            total = tf.reduce_sum(loss_each)
        grad = tape.gradient(total, w)
        m = _ADAM_BETA1 * m + (1 - _ADAM_BETA1) * grad
        v = _ADAM_BETA2 * v + (1 - _ADAM_BETA2) * tf.square(grad)
        m_hat = m / (1 - _ADAM_BETA1 ** t)
        v_hat = v / (1 - _ADAM_BETA2 ** t)
        w = w - learning_rate * m_hat / (tf.sqrt(v_hat) + _ADAM_EPS)
        return w, m, v, x_new, l2, logits, tf.reduce_sum(loss_each)

    @tf.function(reduce_retracing=True)
    def step_margin(x_new, logits_of_step):
        """Carlini's every-step test: the step's own draw and decision_draws - 1 more."""
        if decision_draws == 1:
            return margin(logits_of_step, labels, targeted)
        extra = tf.concat([x_new] * (decision_draws - 1), axis=0)
        more = tf.reshape(model_fn(extra), [decision_draws - 1, batch, -1])
        mean = (tf.reduce_sum(more, axis=0) + logits_of_step) / decision_draws
        return margin(mean, labels, targeted)

    def check(x_now):
        """All classes at the model's K: the mean logits of decision_draws draws."""
        queries[:] += decision_draws
        return mean_logits(decision_fn(model_fn), x_now, decision_draws)

    subsets = False
    if rivals > 0:  # a victim knows its classes; any other callable is asked once
        num_classes = getattr(model_fn, "num_classes", None) or int(model_fn(x[:1]).shape[-1])
        subsets = rivals < num_classes - 1  # else there is nothing to leave out

    const = np.full(batch, initial_const, np.float64)
    lower, upper = np.zeros(batch), np.full(batch, 1e10)
    best_l2 = np.full(batch, np.inf)
    best_x = x.numpy().copy()
    steps = np.zeros(batch, np.int64)
    queries = np.zeros(batch, np.int64)
    bar = tqdm(total=binary_search_steps * max_iterations, desc="cw_l2", disable=not progress,
               leave=False, unit="step")
    for search_step in range(binary_search_steps):
        # Carlini: on the last of many steps, retry with the upper bound
        if binary_search_steps >= 10 and search_step == binary_search_steps - 1:
            const = np.where(upper < 1e10, upper, const)
        w = tf.identity(w_start)
        m, v = tf.zeros_like(w), tf.zeros_like(w)
        claims = DeferredClaims(model_fn, labels, targeted, confirm_draws, queries, best_l2,
                                best_x)
        c_tensor = tf.constant(const, tf.float32)
        plateau = LossPlateau(max_iterations, abort_early)
        classes = top_rivals(check(x), labels, rivals) if subsets else None
        for iteration in range(max_iterations):
            w, m, v, x_new, l2, logits, loss = adam_step(w, m, v, tf.constant(
                iteration + 1, tf.float32), c_tensor, classes)
            steps += 1
            stalled = plateau.stalled(loss)
            last = stalled or iteration == max_iterations - 1
            if every_step:
                is_adv = (step_margin(x_new, logits) > confidence).numpy()
                queries += decision_draws
            else:
                queries += 1  # the step's own call (check() counts its draws)
                is_adv = np.zeros(batch, bool)
                if (iteration + 1) % check_every == 0 or last:
                    mean = check(x_new)
                    is_adv = (margin(mean, labels, targeted) > confidence).numpy()
                    if subsets:
                        classes = top_rivals(mean, labels, rivals)
            if is_adv.any():
                claims.add(is_adv, l2.numpy(), x_new)
            bar.update(1)
            if stalled:
                bar.update(max_iterations - iteration - 1)
                break
        update_constants(const, lower, upper, claims.settle())
    bar.close()
    return AttackOutput(x_adv=best_x, steps=steps, queries=queries,
                        found=np.isfinite(best_l2), extras={"const": const})
