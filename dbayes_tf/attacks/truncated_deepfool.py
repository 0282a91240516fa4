"""Truncated-DeepFool: paper 2 names it (and reports it finds smaller perturbations than
DeepFool) but does not define it. Here it is DeepFool followed by a bisection along DeepFool's
perturbation eta for the smallest scale t in (0, 1] at which clip(x + t * eta) is still not
classed as y; so it is never larger than DeepFool's result. On a stochastic model "not classed
as y" is a claim about fresh draws: with ``confirm_draws`` > 0 each trial must fool most of them
(``utils.confirm``), so the cut stops where the image is still adversarial under re-drawing, not
on the noisy boundary itself."""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from ..attack_settings import DeepFoolSettings, TruncatedDeepFoolSettings
from .deepfool import deepfool
from .utils import AttackOutput, ModelFn, as_images, as_labels, clip_to_box, confirm, mean_logits


def truncated_deepfool(model_fn: ModelFn, x, labels, *, p: float = DeepFoolSettings.p,
                       candidates: int = DeepFoolSettings.candidates,
                       overshoot: float = DeepFoolSettings.overshoot,
                       max_iterations: int = DeepFoolSettings.iterations,
                       bisection_steps: int = TruncatedDeepFoolSettings.bisection_steps,
                       pairwise: bool = DeepFoolSettings.pairwise,
                       decision_draws: int = 1,
                       confirm_draws: int = 0,
                       box: tuple[float, float] = (0.0, 1.0)) -> AttackOutput:
    """DeepFool, then ``bisection_steps`` halvings of [0, 1] along its perturbation; each test
    classifies on the mean logits of ``decision_draws`` draws, and with ``confirm_draws`` > 0
    a trial that passes must also fool most of that many fresh draws."""
    if bisection_steps < 1 or decision_draws < 1 or confirm_draws < 0:
        raise ValueError("bisection_steps and decision_draws must be >= 1, confirm_draws >= 0")
    x = as_images(x)
    labels = as_labels(labels, int(x.shape[0]))
    first = deepfool(model_fn, x, labels, p=p, candidates=candidates, overshoot=overshoot,
                     max_iterations=max_iterations, pairwise=pairwise,
                     confirm_draws=confirm_draws, box=box)
    eta = first.x_adv - x.numpy()
    low = np.zeros(len(eta))
    high = np.ones(len(eta))  # scale 1 (DeepFool's own point) is adversarial where found
    queries = first.queries.copy()
    for _ in range(bisection_steps):
        middle = (low + high) / 2
        trial = clip_to_box(x + tf.constant(middle[:, None, None, None] * eta, tf.float32), box)
        still_y = tf.argmax(mean_logits(model_fn, trial, decision_draws), axis=-1,
                            output_type=tf.int32).numpy() == labels.numpy()
        queries += decision_draws
        still_y = ~confirm(model_fn, trial, ~still_y, labels, False, confirm_draws, queries)
        high = np.where(first.found & ~still_y, middle, high)
        low = np.where(first.found & still_y, middle, low)
    scale = np.where(first.found, high, 1.0)
    x_adv = clip_to_box(x + tf.constant(scale[:, None, None, None] * eta, tf.float32), box)
    return AttackOutput(x_adv=x_adv.numpy(), steps=first.steps + bisection_steps * first.found,
                        queries=queries, found=first.found, extras={"scale": scale})
