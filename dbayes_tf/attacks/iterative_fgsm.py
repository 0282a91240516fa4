"""Iterative (basic iterative) FGSM, targeted or not, with the path of each iteration recorded
for paper 1's Fig. 1b. Each step is CleverHans 4's ``fast_gradient_method``; the total change
is kept in the eps ball with CleverHans' ``clip_eta``."""
from __future__ import annotations

import numpy as np
import tensorflow as tf
from cleverhans.tf2.attacks.fast_gradient_method import fast_gradient_method
from cleverhans.tf2.utils import clip_eta

from ..attack_settings import IterativeFGSMSettings
from .utils import AttackOutput, ModelFn, as_images, as_labels, margin


def iterative_fgsm(model_fn: ModelFn, x, labels, *,
                   step_size: float = IterativeFGSMSettings.step_size,
                   iterations: int = IterativeFGSMSettings.iterations,
                   eps: float | None = IterativeFGSMSettings.eps, targeted: bool = True,
                   record_path: bool = False, box: tuple[float, float] = (0.0, 1.0)
                   ) -> AttackOutput:
    """``iterations`` signed-gradient steps of ``step_size`` (paper 1: 100 x 0.01, targeted).

    ``eps`` bounds the total L-inf change (default: no bound beyond the box). With
    ``record_path`` the logits after every step are kept in ``extras["path_logits"]``
    [iterations + 1, B, C] (row 0 = clean), one extra forward pass per step.

    References:
        Kurakin, Goodfellow, Bengio. Adversarial examples in the physical world. ICLR-W 2017.
    """
    if step_size <= 0 or iterations < 1:
        raise ValueError("step_size must be > 0 and iterations >= 1")
    x = as_images(x)
    labels = as_labels(labels, x.shape[0])
    bound = box[1] - box[0] if eps is None else eps
    x_adv = x
    path = [model_fn(x).numpy()] if record_path else []
    for _ in range(iterations):
        x_adv = fast_gradient_method(model_fn, x_adv, step_size, np.inf, y=labels,
                                     targeted=targeted)
        x_adv = tf.clip_by_value(x + clip_eta(x_adv - x, np.inf, bound), box[0], box[1])
        if record_path:
            path.append(model_fn(x_adv).numpy())
    final_logits = model_fn(x_adv)
    n = x.shape[0]
    extras = {"path_logits": np.stack(path)} if record_path else {}
    return AttackOutput(x_adv=x_adv.numpy(), steps=np.full(n, iterations, np.int64),
                        queries=np.full(n, (iterations + 1) * (2 if record_path else 1), np.int64),
                        found=(margin(final_logits, labels, targeted) > 0).numpy(),
                        extras=extras)
