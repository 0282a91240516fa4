"""Adversarial attacks on the common ``logits(x) -> [B, C]`` callable; one attack per file.

White box (gradients): :func:`fast_gradient_sign`, :func:`iterative_fgsm` (CleverHans 4),
:func:`carlini_wagner_l2`, :func:`deepfool`, :func:`truncated_deepfool`.
Black box (output probabilities only): :func:`zoo`. Control: :func:`gaussian_noise`.
"""
from .carlini_wagner_l2 import PRESETS as CW_PRESETS
from .carlini_wagner_l2 import CWSettings, carlini_wagner_l2
from .deepfool import deepfool
from .fast_gradient_sign import fast_gradient_sign
from .gaussian_noise import gaussian_noise
from .iterative_fgsm import iterative_fgsm
from .truncated_deepfool import truncated_deepfool
from .utils import AttackOutput, ModelFn, chunked, margin, mean_logits
from .zoo import estimate_coordinate_gradients, log_prob_gap, zoo

ATTACKS = ("fgsm", "ifgsm", "cw_l2", "deepfool", "truncated_deepfool", "zoo", "noise")

__all__ = ["ATTACKS", "AttackOutput", "CWSettings", "CW_PRESETS", "ModelFn", "carlini_wagner_l2",
           "chunked", "deepfool", "estimate_coordinate_gradients", "fast_gradient_sign",
           "gaussian_noise", "iterative_fgsm", "log_prob_gap", "margin", "mean_logits",
           "truncated_deepfool", "zoo"]
