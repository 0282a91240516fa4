"""ZOO with coordinate-wise ADAM (Chen et al. 2017): a black-box attack that only ever sees the
model's output (log-)probabilities. Gradients are symmetric finite differences, one batch of
coordinates per iteration, all of whose queries go to the model in ONE call."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from ..attack_settings import ZooSettings
from .utils import AttackOutput, LossPlateau, confirm, keep_smallest, update_constants

# Log-probabilities, not probabilities: the same information for a black box, but a generative
# classifier's class scores log p(x, y) can differ by hundreds of nats, where probabilities
# underflow and every finite difference would be zero.
LogProbsFn = Callable[[np.ndarray], np.ndarray]

_BETA1, _BETA2, _EPS = 0.9, 0.999, 1e-8


def log_prob_gap(log_p: np.ndarray, labels: np.ndarray, targeted: bool) -> np.ndarray:
    """log F_y - max_{i != y} log F_i untargeted (labels = original classes),
    max_{i != t} log F_i - log F_t targeted: < 0 exactly when the attack has succeeded.
    ZOO's loss is max(gap, -kappa)."""
    log_p = np.asarray(log_p, np.float64)
    own = np.take_along_axis(log_p, labels[..., None], axis=-1)[..., 0]
    masked = log_p.copy()
    np.put_along_axis(masked, labels[..., None], -np.inf, axis=-1)
    best_other = masked.max(axis=-1)
    return best_other - own if targeted else own - best_other


def estimate_coordinate_gradients(objective: Callable, current: np.ndarray,
                                  coords: np.ndarray, step: float
                                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Symmetric finite differences of ``objective`` along chosen coordinates, for a batch.

    current: [B, D] points; coords: [B, n] coordinate indices per point. ``objective`` gets
    every query point at once, [B * (1 + 2n), D] image-major (each point itself, then its n
    "+step" and n "-step" neighbours), and returns (loss, aux) per point. Returns the gradient
    estimates [B, n] and the loss and aux at each current point [B].
    """
    batch, n = coords.shape
    rows, cols = np.arange(batch)[:, None], np.arange(n)[None]
    plus = np.repeat(current[:, None], n, axis=1)
    minus = plus.copy()
    plus[rows, cols, coords] += step
    minus[rows, cols, coords] -= step
    points = np.concatenate([current[:, None], plus, minus], axis=1)
    loss, aux = objective(points.reshape(batch * (1 + 2 * n), -1))
    loss, aux = loss.reshape(batch, 1 + 2 * n), aux.reshape(batch, 1 + 2 * n)
    return (loss[:, 1:1 + n] - loss[:, 1 + n:]) / (2 * step), loss[:, 0], aux[:, 0]


def zoo(log_probs_fn: LogProbsFn, x, labels, *, targeted: bool = False,
        confidence: float = ZooSettings.confidence,
        max_iterations: int = ZooSettings.iterations,
        coordinates_per_iteration: int = ZooSettings.coordinates,
        learning_rate: float = ZooSettings.lr,
        finite_difference_step: float = ZooSettings.fd_step.deterministic,
        queries_per_point: int = ZooSettings.queries_per_point.deterministic,
        initial_const: float = ZooSettings.initial_const, confirm_draws: int = 0,
        binary_search_steps: int = ZooSettings.binary_steps,
        abort_early: bool = ZooSettings.abort_early,
        box: tuple[float, float] = (0.0, 1.0), seed: int = 0,
        progress: bool = False) -> AttackOutput:
    """Minimise ||x' - x||_2^2 + c * f(x'), x' = clip(x + delta), by coordinate-wise ADAM on
    delta, where ``log_probs_fn`` maps a numpy batch of images to numpy log-probabilities:
    each iteration picks ``coordinates_per_iteration`` coordinates per image at random,
    estimates d/d delta_j by (L(delta + h e_j) - L(delta - h e_j)) / 2h, and takes one ADAM step
    on each. The box is enforced by clipping the image, not the noise.

    For a stochastic model, set ``finite_difference_step`` well above the noise's effect and
    ``queries_per_point`` > 1: every +/- point (and the current point, used to judge success)
    is then the mean loss of that many queries, and ``confirm_draws`` > 0 makes a new best
    point fool most of that many fresh queries first (see ``utils.confirm``). Every query is
    counted.

    ``abort_early`` stops a binary-search step when the batch's loss stops falling (Carlini's
    test, ``utils.LossPlateau``), but only once every image of the batch has an adversarial:
    it ends the refinement of the distortion, never the search itself.

    References:
        Chen, Zhang, Sharma, Yi, Hsieh. ZOO: Zeroth order optimization based black-box attacks
        to deep neural networks without training substitute models. AISec 2017.
    """
    if min(max_iterations, coordinates_per_iteration, queries_per_point,
           binary_search_steps) < 1:
        raise ValueError("iteration, coordinate, query and search counts must be >= 1")
    if finite_difference_step <= 0 or learning_rate <= 0 or initial_const <= 0:
        raise ValueError("finite_difference_step, learning_rate and initial_const must be > 0")
    if confirm_draws < 0:
        raise ValueError("confirm_draws must be >= 0")
    x = np.asarray(x, np.float32)
    labels = np.asarray(labels, np.int64)
    batch, shape = x.shape[0], x.shape[1:]
    dims = int(np.prod(shape))
    n = min(coordinates_per_iteration, dims)
    h, r = finite_difference_step, queries_per_point
    rng = np.random.default_rng(seed)
    x_flat = x.reshape(batch, dims)
    rows = np.arange(batch)[:, None]

    def objective(points: np.ndarray, label_rows: np.ndarray, const_rows: np.ndarray):
        """Loss of each point in [P, D] (images = clip(points)) and its log-prob gap, both the
        mean over r queries. Points come image-major: P / B consecutive points per image."""
        images = np.clip(points, *box)
        log_p = log_probs_fn(np.repeat(images, r, axis=0).reshape((-1,) + shape))
        gap = log_prob_gap(log_p, np.repeat(label_rows, r), targeted).reshape(-1, r).mean(1)
        origin = np.repeat(x_flat, len(points) // batch, axis=0)
        distance = np.sum(np.square(images - origin), axis=1)
        # max(gap + kappa, 0) = max(gap, -kappa) + kappa: same gradient, never negative, so
        # abort-early's "no longer falling" test keeps its meaning for kappa > 0
        return distance + const_rows * np.maximum(gap + confidence, 0.0), gap

    def black_box_logits(images):  # log-probabilities are logits: softmax gives them back
        return tf.constant(log_probs_fn(np.asarray(images)), tf.float32)

    const = np.full(batch, initial_const)
    lower, upper = np.zeros(batch), np.full(batch, 1e10)
    best_l2 = np.full(batch, np.inf)
    best_x = x_flat.copy()
    steps = np.zeros(batch, np.int64)
    queries = np.zeros(batch, np.int64)
    bar = tqdm(total=binary_search_steps * max_iterations, desc="zoo", disable=not progress,
               leave=False, unit="it")
    for _ in range(binary_search_steps):
        delta = np.zeros((batch, dims))
        m, v = np.zeros_like(delta), np.zeros_like(delta)
        t = np.zeros_like(delta)
        succeeded = np.zeros(batch, bool)
        plateau = LossPlateau(max_iterations, abort_early)
        for iteration in range(max_iterations):
            coords = np.argsort(rng.random((batch, dims)), axis=1)[:, :n]  # [B, n], distinct
            current = x_flat + delta
            grad, loss_now, gap_now = estimate_coordinate_gradients(
                lambda points: objective(points, np.repeat(labels, 1 + 2 * n),
                                         np.repeat(const, 1 + 2 * n)), current, coords, h)
            queries += (1 + 2 * n) * r
            steps += 1
            # judge the current point before moving it
            image = np.clip(current, *box)
            l2 = np.sum(np.square(image - x_flat), axis=1)
            is_adv = confirm(
                black_box_logits, image.reshape((-1,) + shape),
                (gap_now < -confidence) & ((l2 < best_l2) | ~succeeded), labels, targeted,
                confirm_draws, queries)
            keep_smallest(best_l2, best_x, is_adv, l2, image)
            succeeded |= is_adv
            m_c = _BETA1 * m[rows, coords] + (1 - _BETA1) * grad
            v_c = _BETA2 * v[rows, coords] + (1 - _BETA2) * grad ** 2
            t_c = t[rows, coords] + 1
            m[rows, coords], v[rows, coords], t[rows, coords] = m_c, v_c, t_c
            update = learning_rate * (m_c / (1 - _BETA1 ** t_c)) / (
                np.sqrt(v_c / (1 - _BETA2 ** t_c)) + _EPS)
            delta[rows, coords] -= update
            # project back into the box: a coordinate left outside it would clip to the same
            # value at +h and -h, estimate a zero gradient and never come back
            delta = np.clip(x_flat + delta, *box) - x_flat
            bar.update(1)
            # Abort early ends the refinement of adversarials already found, never the search
            # for one: on a stochastic model the loss falls by far less per window than its
            # noise, so before success "no longer falling" is a coin toss (it gave up on the gc
            # VAE-MLP after 40 of 200 iterations with nothing found).
            if plateau.stalled(loss_now.sum()) and succeeded.all():
                bar.update(max_iterations - iteration - 1)
                break
        update_constants(const, lower, upper, succeeded)
    bar.close()
    return AttackOutput(x_adv=best_x.reshape(x.shape), steps=steps, queries=queries,
                        found=np.isfinite(best_l2), extras={"const": const})
