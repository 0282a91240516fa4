"""What a model and a training run are made of: :class:`ModelConfig` and :class:`TrainConfig`,
whose field defaults are the library's defaults (the command line shows and takes them from
here). This module loads no TensorFlow, so ``dbayes train --help`` and its usage errors answer
at once.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

from .data import canonical_name

LIKELIHOODS = ("gaussian", "bernoulli")  # p(x | ...) of the latent models

MODEL_NAMES = ("mlp", "bnn", "cnn", "gc", "gfz", "dfz")
LATENT_MODELS = ("gc", "gfz", "dfz")
ARCHS = ("mlp", "cnn")
# Arithmetic of a model's heavy layers on a pass: float32, or bfloat16 (float32 weights, bf16
# matmuls and convolutions; what AMX-BF16 / AVX512-BF16 CPUs and GPUs speed up).
PRECISIONS = ("float32", "bfloat16")
# The detectors (dbayes_tf.detection, one class each) and what each scores; here, without
# TensorFlow, so that the command line can offer them before TensorFlow loads.
DETECTION_METHODS = {
    "recon": "reconstruction distance (paper 1)",
    "logit": "log p(x, F(x)) (paper 2)",
    "marginal": "log p(x)",
    "kl": "KL(p_bar_c || p(y|x))",
}


@dataclasses.dataclass
class ModelConfig:
    """Everything needed to rebuild a model; stored as JSON beside its weights."""

    model: str = "gc"
    arch: str = "mlp"
    num_classes: int = 10
    image_shape: tuple[int, int, int] = (28, 28, 1)
    hidden: int = 500
    latent_dim: int = 32
    likelihood: str = "gaussian"
    gaussian_scale: float = math.sqrt(0.5)  # log p = -||x - mu||^2 + const: paper 1's "l2 loss"
    dropout: float = 0.0
    k: int = 10  # importance samples (latent models) or MC-dropout passes (bnn) at test time
    train_k: int = 1  # importance samples inside the training bound (1 = the ELBO)
    conv_channels: int = 128  # the discriminative CNN's width
    vae_channels: int = 64  # the VAE encoder / decoder convolutions' width
    vae_kernel_size: int = 3  # paper 1: 3 x 3; the DeepBayes reference code uses 5 x 5
    # Initial bias of the decoder's output layer (the pixel logit before the sigmoid).
    # training.train sets it to the logit of the mean training pixel when asked: started at 0
    # (grey), the first Adam steps darken every pixel at once and can saturate the sigmoid.
    decoder_bias: float = 0.0
    seed: int = 0

    def __post_init__(self):
        self.image_shape = tuple(int(v) for v in self.image_shape)
        problems = []
        if self.model not in MODEL_NAMES:
            problems.append(f"model must be one of {MODEL_NAMES}, got {self.model!r}")
        if self.arch not in ARCHS:
            problems.append(f"arch must be one of {ARCHS}, got {self.arch!r}")
        if self.likelihood not in LIKELIHOODS:
            problems.append(f"likelihood must be one of {LIKELIHOODS}, "
                            f"got {self.likelihood!r}")
        if not 0.0 <= self.dropout < 1.0:
            problems.append(f"dropout must be in [0, 1), got {self.dropout}")
        for name in ("k", "train_k", "hidden", "latent_dim", "num_classes", "vae_channels",
                     "vae_kernel_size", "conv_channels"):
            if int(getattr(self, name)) < 1:
                problems.append(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.gaussian_scale <= 0:
            problems.append(f"gaussian_scale must be positive, got {self.gaussian_scale}")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def is_latent(self) -> bool:
        return self.model in LATENT_MODELS

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["image_shape"] = list(self.image_shape)
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        return cls(**values)


# --------------------------------------------------------------------------- building blocks


def resolve_config(model: str, arch: str | None = None, **overrides) -> ModelConfig:
    """Fill in the per-model defaults: mlp and cnn fix their arch, bnn adds dropout 0.5 (paper 1),
    gfz / dfz train with dropout (paper 2)."""
    fixed_arch = {"mlp": "mlp", "cnn": "cnn"}.get(model)
    if fixed_arch and arch not in (None, fixed_arch):
        raise ValueError(f"model {model!r} is always arch {fixed_arch!r}; got arch {arch!r}")
    defaults: dict[str, Any] = {"arch": fixed_arch or arch or "mlp"}
    defaults["dropout"] = {"bnn": 0.5, "gfz": 0.2, "dfz": 0.2}.get(model, 0.0)
    defaults.update({key: value for key, value in overrides.items() if value is not None})
    if model in ("mlp", "cnn"):
        defaults["k"] = 1  # deterministic nets: one pass is all there is
    return ModelConfig(model=model, **defaults)


LR_SCHEDULES = ("constant", "cosine")
DECODER_BIAS_INITS = ("zero", "data-mean")


@dataclasses.dataclass
class TrainConfig:
    dataset: str = "mnist"
    epochs: int = 10
    batch_size: int = 100
    lr: float = 1e-3
    seed: int = 0
    validation_size: int = 5000
    train_size: int | None = None  # use only the first N training images (tests, smoke runs)
    test_size: int | None = None
    eval_batch_size: int = 100
    validate_every_epoch: bool = True
    # "cosine" decays the learning rate from lr to 0 over all epochs' steps (Loshchilov &
    # Hutter 2017); the schedule then depends on --epochs, which --resume may not change.
    lr_schedule: str = "constant"
    # "data-mean": start the decoder's output bias at the logit of the mean training pixel
    # (sets ModelConfig.decoder_bias); "zero": leave ModelConfig.decoder_bias (0 by default).
    decoder_bias_init: str = "zero"

    def __post_init__(self):
        problems = []
        if self.epochs < 1:
            problems.append(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            problems.append(f"batch_size must be >= 1, got {self.batch_size}")
        if not 0 < self.lr < 1:
            problems.append(f"lr must be in (0, 1), got {self.lr}")
        for name in ("train_size", "test_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                problems.append(f"{name} must be positive, got {value}")
        if self.decoder_bias_init not in DECODER_BIAS_INITS:
            problems.append(f"decoder_bias_init must be one of {DECODER_BIAS_INITS}, "
                            f"got {self.decoder_bias_init!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            problems.append(f"lr_schedule must be one of {LR_SCHEDULES}, "
                            f"got {self.lr_schedule!r}")
        if problems:
            raise ValueError("; ".join(problems))
        self.dataset = canonical_name(self.dataset)
