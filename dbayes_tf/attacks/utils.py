"""Helpers shared by every attack: the result record, margins, norms, box clipping, the binary
search over c, the abort-early test and the confirmation of claims.

Every attack takes ``model_fn(x) -> logits [B, C]`` (the black-box ZOO takes ``log_probs_fn(x)
-> log-probabilities [B, C]`` as numpy instead). For a stochastic model each call may draw
fresh random numbers; the attacks never assume two calls agree, and any decision that must not
hinge on one lucky draw (success, "best so far", abort-early) is taken on the mean logits of
``decision_draws`` calls. An optimiser that tests its iterate at every step and keeps the
smallest one that passed picks, among many near-boundary tests, the luckiest: so before a
candidate becomes "best so far" it must fool most of ``confirm_draws`` fresh draws
(:func:`confirm`).

A :class:`dbayes_tf.victim.Victim` passed as ``model_fn`` carries three more things attacks
use: ``model_fn(x, classes=c)``, the scores of chosen classes only (:func:`class_scores`; a
latent model then computes those classes alone); ``model_fn.decision_logits``, the model's K in
the attacker's arithmetic, for an attack's own checks (:func:`decision_fn`); and
``model_fn.verdict_logits``, the model's own call (its K, float32) that confirmations use
(:func:`verdict_fn`). Any other callable works too.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from ..metrics import judge  # the final verdict's own draws (metrics imports no attack)

ModelFn = Callable[[tf.Tensor], tf.Tensor]


@dataclasses.dataclass
class AttackOutput:
    """What an attack returns for a batch of B inputs.

    ``x_adv`` is the final image for every input (the input itself where nothing was found);
    ``steps`` counts gradient steps or, for black-box attacks, optimisation iterations;
    ``queries`` counts every image the attack sent through the model (forward passes);
    ``found`` is the attack's own verdict (its decision logits), not the final judgement,
    which :func:`dbayes_tf.metrics.judge` makes afresh with R independent draws.
    """

    x_adv: np.ndarray
    steps: np.ndarray
    queries: np.ndarray
    found: np.ndarray
    extras: dict = dataclasses.field(default_factory=dict)


def as_images(x) -> tf.Tensor:
    x = tf.convert_to_tensor(x, tf.float32)
    if x.shape.rank != 4:
        raise ValueError(f"attacks take images [B, H, W, C]; got shape {x.shape}")
    return x


def as_labels(labels, batch: int) -> tf.Tensor:
    labels = tf.convert_to_tensor(labels, tf.int32)
    if labels.shape != (batch,):
        raise ValueError(f"need one label per image ({batch}); got shape {labels.shape}")
    return labels


def margin(logits: tf.Tensor, labels: tf.Tensor, targeted: bool) -> tf.Tensor:
    """How far the attack has got, > 0 exactly when it succeeds: for a target t,
    Z_t - max_{i != t} Z_i; untargeted (labels = original classes), max_{i != y} Z_i - Z_y."""
    one_hot = tf.one_hot(labels, tf.shape(logits)[-1], dtype=logits.dtype)
    own = tf.reduce_sum(one_hot * logits, axis=-1)
    # -inf would make 0 * inf = nan in gradients; a large finite offset removes the own class
    best_other = tf.reduce_max(logits - one_hot * 1e9, axis=-1)
    return own - best_other if targeted else best_other - own


def decision_fn(model_fn: ModelFn) -> ModelFn:
    """The call an attack checks its progress with: the victim's K (not the attacker's K') in
    the attacker's decision precision, where it has one."""
    return getattr(model_fn, "decision_logits", model_fn)


def verdict_fn(model_fn: ModelFn) -> ModelFn:
    """The call a claim is confirmed with: the victim's own (model K, float32) where it has one,
    not the attacker's cheaper K' or bfloat16 one."""
    return getattr(model_fn, "verdict_logits", model_fn)


def class_scores(model_fn: ModelFn, x: tf.Tensor, classes: tf.Tensor | None) -> tf.Tensor:
    """Logits [B, M] of the classes ``classes`` [B, M] (None: all, [B, C]). A victim computes
    only those; any other callable is sliced from its full logits."""
    if classes is None:
        return model_fn(x)
    if getattr(model_fn, "supports_classes", False):
        return model_fn(x, classes=classes)
    return tf.gather(model_fn(x), classes, batch_dims=1)


def top_rivals(logits: tf.Tensor, labels: tf.Tensor, count: int) -> tf.Tensor:
    """[B, 1 + count]: each image's label (or target) first, then its ``count`` highest-scoring
    other classes: all an attack's margin needs while the ranking holds."""
    num_classes = logits.shape[-1]
    others = tf.math.top_k(logits - 1e9 * tf.one_hot(labels, num_classes, dtype=logits.dtype),
                           k=count).indices
    return tf.concat([labels[:, None], tf.cast(others, labels.dtype)], axis=1)


def mean_logits(model_fn: ModelFn, x: tf.Tensor, draws: int) -> tf.Tensor:
    """Average logits of ``draws`` calls: one call on ``draws`` stacked copies of x."""
    if draws == 1:
        return model_fn(x)
    stacked = tf.concat([x] * draws, axis=0)
    logits = model_fn(stacked)
    return tf.reduce_mean(tf.reshape(logits, [draws, -1, tf.shape(logits)[-1]]), axis=0)


def flat_norm(v: tf.Tensor, p: float) -> tf.Tensor:
    """Per-example L_p norm of a batch [B, ...]."""
    v = tf.reshape(v, [tf.shape(v)[0], -1])
    if np.isinf(p):
        return tf.reduce_max(tf.abs(v), axis=-1)
    if p == 2:
        return tf.sqrt(tf.reduce_sum(tf.square(v), axis=-1))
    if p == 1:
        return tf.reduce_sum(tf.abs(v), axis=-1)
    return tf.reduce_sum(tf.abs(v) ** p, axis=-1) ** (1.0 / p)


def clip_to_box(x: tf.Tensor, box: tuple[float, float] = (0.0, 1.0)) -> tf.Tensor:
    return tf.clip_by_value(x, box[0], box[1])


def update_constants(const: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                     succeeded: np.ndarray) -> None:
    """One step of the per-example binary search over the trade-off constant c (Carlini &
    Wagner 2017): success lowers the upper bound, failure raises the lower bound or, with no
    upper bound yet, multiplies c by 10. Arrays are updated in place."""
    upper[succeeded] = np.minimum(upper[succeeded], const[succeeded])
    lower[~succeeded] = np.maximum(lower[~succeeded], const[~succeeded])
    bounded = upper < 1e10
    const[bounded] = (lower[bounded] + upper[bounded]) / 2
    const[~bounded & ~succeeded] *= 10


class LossPlateau:
    """Carlini's abort-early, robust to a noisy loss: stop when the summed loss of the latest
    window of max_iterations / 10 steps is no lower than 99.99% of the window before. A caller
    that goes on after a stall (see ``zoo``) gets the next window compared with this one."""

    def __init__(self, max_iterations: int, enabled: bool = True):
        self.window = max(1, max_iterations // 10)
        self.enabled = enabled
        self.previous, self.current, self.steps = np.inf, 0.0, 0

    def stalled(self, loss) -> bool:
        self.current += float(loss)
        self.steps += 1
        if self.steps % self.window:
            return False
        stalled = self.enabled and self.current > self.previous * 0.9999
        self.previous, self.current = self.current, 0.0
        return stalled


# A bare majority is not enough: among the many near-boundary iterates an optimiser tests, some
# whose true chance of fooling a draw is well under one half still win a majority of ten by
# luck, and the smallest of them becomes "best". Asking for 80% keeps points that a fresh
# majority will also call adversarial (measured on a noisy affine model: tests/test_attacks.py).
CONFIRM_FRACTION = 0.8


def confirm(model_fn: ModelFn, candidates, claimed: np.ndarray, labels, targeted: bool,
            draws: int, queries: np.ndarray) -> np.ndarray:
    """Of the candidates the attack's own decision ``claimed`` adversarial, those that at least
    ``CONFIRM_FRACTION`` of ``draws`` fresh draws also find adversarial (``draws`` = 0: all).
    Counts the queries it spends in ``queries`` (in place).

    The draws come in rounds, and a candidate leaves as soon as its outcome is settled: once
    more draws have missed than the fraction allows, the rest cannot save it, and once enough
    have hit, the rest cannot sink it (curtailed sampling: the same verdict as drawing all of
    them). Near the boundary, where attacks make most of their claims, most candidates fail
    within the first few draws."""
    if draws < 1 or not claimed.any():
        return claimed
    needed = math.ceil(CONFIRM_FRACTION * draws - 1e-9)  # hits that make a confirmation
    index = np.flatnonzero(claimed)
    candidates = tf.gather(tf.convert_to_tensor(candidates, tf.float32), index)
    wanted = np.asarray(labels)[index]
    hits = np.zeros(len(index), np.int64)
    misses = np.zeros(len(index), np.int64)
    open_ = np.ones(len(index), bool)
    while open_.any():
        # the fewest draws after which some open candidate may be settled
        drawn = hits + misses
        to_fail = draws - needed + 1 - misses
        to_pass = needed - hits
        rounds = int(max(1, min(to_fail[open_].min(), to_pass[open_].min(),
                                (draws - drawn)[open_].min())))
        which = np.flatnonzero(open_)
        classes = judge(verdict_fn(model_fn), tf.gather(candidates, which), rounds).draws
        fooled = (classes == wanted[which]) if targeted else (classes != wanted[which])
        hits[which] += fooled.sum(axis=0)
        misses[which] += rounds - fooled.sum(axis=0)
        queries[index[which]] += rounds
        open_ = (hits < needed) & (misses <= draws - needed)
    accepted = np.zeros_like(claimed)
    accepted[index[hits >= needed]] = True
    return accepted


# How many claims an image holds before confirming them early (each costs one image of memory:
# 28 x 28 x 128 floats are 0.4 MB); early or at the end, the outcome is the same.
CLAIMS_KEPT = 128


class DeferredClaims:
    """The claims an optimiser makes during one search step (of a binary search over c), kept
    and confirmed later, smallest first, each image stopping at its first confirmed claim.

    Confirming each claim when it is made, as long as it would become the best so far or the
    step's first success, ends in the same place: the smallest claim that passes its
    confirmation, every smaller one having failed, and the step succeeded if any claim passes.
    The optimiser's path does not depend on confirmations, so deferring them changes only how
    many are made. An attack that claims a shrinking iterate at every check (CW's usual course)
    confirmed it dozens of times per step; deferred, a step needs one confirmation plus one
    per failure below it. An image whose ``kept`` places are full has its claims confirmed
    there and then, which leaves nothing untested behind.

    ``best_l2`` and ``best_x`` (the attack's best so far) are updated in place; ``succeeded``
    says which images have had a claim confirmed in this step.
    """

    def __init__(self, model_fn: ModelFn, labels, targeted: bool, draws: int,
                 queries: np.ndarray, best_l2: np.ndarray, best_x: np.ndarray,
                 kept: int = CLAIMS_KEPT):
        self.model_fn, self.labels, self.targeted = model_fn, labels, targeted
        self.draws, self.queries = draws, queries
        self.best_l2, self.best_x = best_l2, best_x
        batch = len(best_l2)
        self.succeeded = np.zeros(batch, bool)
        kept = kept if draws else 1  # unconfirmed, every claim passes: only the smallest matters
        self.l2 = np.full((batch, kept), np.inf)
        self.x = np.zeros((batch, kept) + best_x.shape[1:], np.float32)

    def add(self, claimed: np.ndarray, l2: np.ndarray, candidates) -> None:
        """Keep the claims that could still matter: smaller than the best so far, or any
        before the step's first success."""
        wanted = claimed & ((l2 < self.best_l2) | ~self.succeeded)
        full = wanted & np.isfinite(self.l2).all(axis=1)
        if full.any():
            self._settle(full)
            wanted &= (l2 < self.best_l2) | ~self.succeeded
        index = np.flatnonzero(wanted)
        if not len(index):
            return
        slot = np.argmax(np.isinf(self.l2[index]), axis=1)  # each image's first free place
        self.l2[index, slot] = l2[index]
        self.x[index, slot] = np.asarray(candidates)[index]

    def settle(self) -> np.ndarray:
        """Confirm every claim still held; returns ``succeeded``."""
        self._settle(np.isfinite(self.l2).any(axis=1))
        return self.succeeded

    def _settle(self, images: np.ndarray) -> None:
        order = np.argsort(self.l2, axis=1)
        rows = np.arange(len(order))
        settled = ~images
        for rank in range(order.shape[1]):
            slot = order[:, rank]
            open_ = ~settled & np.isfinite(self.l2[rows, slot])
            if not open_.any():
                break
            x_try, l2_try = self.x[rows, slot], self.l2[rows, slot]
            passed = confirm(self.model_fn, x_try, open_, self.labels, self.targeted,
                             self.draws, self.queries)
            keep_smallest(self.best_l2, self.best_x, passed, l2_try, x_try)
            self.succeeded |= passed
            settled |= passed
        # a claim that failed is done with, and once one passed the larger ones cannot matter
        self.l2[images] = np.inf


def keep_smallest(best_l2: np.ndarray, best_x: np.ndarray, is_adv: np.ndarray,
                  l2: np.ndarray, candidates) -> None:
    """Best-so-far bookkeeping (in place): where a candidate is adversarial and smaller than the
    best found, it becomes the best. ``candidates`` may be a tensor; it is read only if used."""
    improved = is_adv & (l2 < best_l2)
    if improved.any():
        best_l2[improved] = l2[improved]
        best_x[improved] = np.asarray(candidates)[improved]
