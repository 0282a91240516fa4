"""Adversarial attacks on the common ``logits(x) -> [B, C]`` callable; one attack per file.

White box (gradients): :func:`fast_gradient_sign`, :func:`iterative_fgsm` (CleverHans 4),
:func:`carlini_wagner_l2`, :func:`deepfool`, :func:`truncated_deepfool`.
Black box (output probabilities only): :func:`zoo`. Control: :func:`gaussian_noise`.

Their settings types and the registry live in :mod:`dbayes_tf.attack_settings`, which loads
without TensorFlow (the command line builds its options from it).
"""
from ..attack_settings import (
                               REGISTRY,
                               TARGETING,
                               AttackSettings,
                               ByVictim,
                               CarliniWagnerL2Settings,
                               DeepFoolSettings,
                               FastGradientSignSettings,
                               GaussianNoiseSettings,
                               IterativeFGSMSettings,
                               TruncatedDeepFoolSettings,
                               ZooSettings,
                               settings_type,
)
from .carlini_wagner_l2 import carlini_wagner_l2
from .deepfool import deepfool
from .fast_gradient_sign import fast_gradient_sign
from .gaussian_noise import gaussian_noise
from .iterative_fgsm import iterative_fgsm
from .truncated_deepfool import truncated_deepfool
from .utils import AttackOutput, ModelFn, margin, mean_logits
from .zoo import estimate_coordinate_gradients, log_prob_gap, zoo

__all__ = ["REGISTRY", "TARGETING", "AttackOutput", "AttackSettings", "ByVictim",
           "CarliniWagnerL2Settings", "DeepFoolSettings", "FastGradientSignSettings",
           "GaussianNoiseSettings", "IterativeFGSMSettings", "ModelFn", "TruncatedDeepFoolSettings",
           "ZooSettings", "carlini_wagner_l2", "deepfool", "estimate_coordinate_gradients",
           "fast_gradient_sign", "gaussian_noise", "iterative_fgsm", "log_prob_gap", "margin",
           "mean_logits", "settings_type", "truncated_deepfool", "zoo"]
