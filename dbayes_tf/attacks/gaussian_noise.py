"""The control every attack table needs: random Gaussian noise of a given L2 size. An attack
that does no better than this at its own distortion has found nothing adversarial."""
from __future__ import annotations

import numpy as np

from .utils import AttackOutput, ModelFn, as_images, as_labels, clip_to_box, margin


def gaussian_noise(model_fn: ModelFn, x, labels, *, l2, seed: int = 0, targeted: bool = False,
                   box: tuple[float, float] = (0.0, 1.0)) -> AttackOutput:
    """x + eta, eta ~ N(0, I) rescaled to ||eta||_2 = l2 (a scalar or one value per image),
    then clipped to the box (which can only shrink it)."""
    x = as_images(x)
    batch = int(x.shape[0])
    labels = as_labels(labels, batch)
    l2 = np.broadcast_to(np.asarray(l2, np.float64), (batch,))
    if np.any(l2 < 0) or not np.all(np.isfinite(l2)):
        raise ValueError("noise L2 sizes must be finite and >= 0")
    eta = np.random.default_rng(seed).standard_normal(x.shape)
    norms = np.sqrt(np.sum(eta.reshape(batch, -1) ** 2, axis=1))
    eta *= (l2 / norms)[:, None, None, None]
    x_adv = clip_to_box(x + eta.astype(np.float32), box)
    found = (margin(model_fn(x_adv), labels, targeted) > 0).numpy()
    return AttackOutput(x_adv=x_adv.numpy(), steps=np.zeros(batch, np.int64),
                        queries=np.ones(batch, np.int64), found=found)
