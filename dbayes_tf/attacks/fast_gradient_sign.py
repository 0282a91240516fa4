"""FGSM: one signed-gradient step of size eps in L-inf, through CleverHans 4."""
from __future__ import annotations

import numpy as np
from cleverhans.tf2.attacks.fast_gradient_method import fast_gradient_method

from ..attack_settings import FastGradientSignSettings
from .utils import AttackOutput, ModelFn, as_images, as_labels, margin


def fast_gradient_sign(model_fn: ModelFn, x, labels, *,
                       eps: float = FastGradientSignSettings.eps, targeted: bool = False,
                       box: tuple[float, float] = (0.0, 1.0)) -> AttackOutput:
    """Untargeted (labels = true classes) or targeted (labels = targets) FGSM.

    References:
        Goodfellow, Shlens, Szegedy. Explaining and harnessing adversarial examples. ICLR 2015.
    """
    if not 0.0 <= eps <= box[1] - box[0]:
        raise ValueError(f"eps must lie in [0, {box[1] - box[0]}]; got {eps}")
    x = as_images(x)
    labels = as_labels(labels, x.shape[0])
    x_adv = fast_gradient_method(model_fn, x, eps, np.inf, clip_min=box[0], clip_max=box[1],
                                 y=labels, targeted=targeted)
    found = margin(model_fn(x_adv), labels, targeted) > 0
    n = x.shape[0]
    return AttackOutput(x_adv=x_adv.numpy(), steps=np.ones(n, np.int64),
                        queries=np.full(n, 2, np.int64), found=found.numpy())
