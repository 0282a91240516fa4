"""The settings of every attack: one frozen dataclass per attack, whose field defaults are the
attack's defaults (the attack functions' signatures refer to them), which targeting modes it
supports, and :data:`REGISTRY`, which maps the name a run or a plan uses to its type.

This module loads no TensorFlow, so the command line can build its options from it and answer
a usage mistake at once; ``run`` imports the attack itself when it is called.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, ClassVar

TARGETING = ("none", "all", "random")
DEFAULT_N_IMAGES = 200  # paper 1: 200 test images
DEFAULT_BATCH_SIZE = 20  # attempts per batch; a run saves after every batch


@dataclasses.dataclass(frozen=True)
class ByVictim:
    """A default that depends on the victim: one value for a deterministic model, another for a
    stochastic one (whose outputs move between calls). Settings hold it until ``resolve``."""

    deterministic: Any
    stochastic: Any

    def __str__(self) -> str:
        return f"{self.deterministic} ({self.stochastic} for stochastic models)"


_NOT_LEGACY = object()


def setting(default, help: str, *, legacy=_NOT_LEGACY,  # noqa: A002 (click's word for it)
            **metadata) -> Any:
    """A settings field: its default (the only place that states it) and its help text.
    ``legacy``: for a field added after runs were stored, the value those runs ran with."""
    if legacy is not _NOT_LEGACY:
        metadata["legacy"] = legacy
    return dataclasses.field(default=default, metadata={"help": help, **metadata})


@dataclasses.dataclass(frozen=True)
class AttackSettings:
    """Base of every attack's settings: a frozen dataclass whose field defaults are the
    attack's defaults (the attack function's signature refers to them), plus which targeting
    modes it supports. ``resolve(victim)`` replaces every :class:`ByVictim` default, so a run
    stores numbers, never "the default of its day"."""

    name: ClassVar[str] = ""
    targeting: ClassVar[tuple[str, ...]] = TARGETING  # the first is the default
    presets: ClassVar[dict[str, dict[str, Any]]] = {}

    @classmethod
    def fields(cls) -> tuple[dataclasses.Field, ...]:
        return dataclasses.fields(cls)

    @classmethod
    def field_types(cls) -> dict[str, type]:
        hints = typing.get_type_hints(cls)
        return {f.name: hints[f.name] for f in cls.fields()}

    @classmethod
    def build(cls, values: dict[str, Any] | None = None, preset: str | None = None
              ) -> AttackSettings:
        """Settings from a preset (if any) overridden by ``values``; unknown names and
        wrongly typed values are refused with the attack's name in the message."""
        values = dict(values or {})
        if preset is not None:
            if preset not in cls.presets:
                known = ", ".join(cls.presets) or "none"
                raise ValueError(f"{cls.name} has no preset {preset!r} (presets: {known})")
            values = cls.presets[preset] | values
        known = {f.name for f in cls.fields()}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{cls.name} has no setting(s) {', '.join(unknown)}; its settings: "
                             f"{', '.join(sorted(known)) or 'none'}")
        types = cls.field_types()
        checked = {}
        for key, value in values.items():
            checked[key] = _coerce(cls.name, key, value, types[key])
        settings = cls(**checked)
        settings.validate()
        return settings

    @classmethod
    def completed(cls, stored: dict[str, Any]) -> dict[str, Any]:
        """Stored settings with every field added since filled in with the value the run ran
        with (its ``legacy`` value), so an old run compares equal to the same run asked today."""
        missing = {f.name: f.metadata["legacy"] for f in cls.fields()
                   if "legacy" in f.metadata and f.name not in stored}
        return {**stored, **missing}

    @classmethod
    def check_targeting(cls, targeted: str | None) -> str:
        """The targeting mode asked for, or the attack's default; refused if it cannot."""
        targeted = targeted or cls.targeting[0]
        if targeted not in cls.targeting:
            raise ValueError(f"{cls.name} supports --targeted {' / '.join(cls.targeting)}; got "
                             f"{targeted!r}")
        return targeted

    def validate(self) -> None:
        """Refuse impossible values (overridden where an attack has rules of its own)."""

    def resolve(self, stochastic: bool) -> AttackSettings:
        """These settings with every victim-dependent default replaced by its value."""
        return dataclasses.replace(self, **{
            f.name: getattr(getattr(self, f.name), "stochastic" if stochastic
                            else "deterministic")
            for f in self.fields() if isinstance(getattr(self, f.name), ByVictim)})

    def to_dict(self) -> dict[str, Any]:
        if any(isinstance(getattr(self, f.name), ByVictim) for f in self.fields()):
            raise ValueError(f"{self.name} settings must be resolved before they are stored")
        return dataclasses.asdict(self)

    def run(self, victim, x, aim, *, targeted: bool, seed: int, progress: bool = False
            ) -> Any:
        raise NotImplementedError


def _coerce(attack: str, key: str, value, kind) -> Any:
    """YAML and JSON hand over 1e-3 as text and 2 for 2.0: give each field its own type."""
    if value is None or isinstance(value, ByVictim):
        return value
    base = [t for t in typing.get_args(kind) if t is not type(None)] or [kind]
    target = base[0] if base[0] in (int, float, bool, str) else None
    if target is None:
        return value
    try:
        if target is bool:
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return value.lower() == "true"
            if not isinstance(value, bool):
                raise ValueError
            return value
        if isinstance(value, bool) or (target is int and isinstance(value, float)
                                       and not value.is_integer()):
            raise ValueError
        return target(value)
    except (TypeError, ValueError):
        raise ValueError(f"{attack} setting {key} must be {target.__name__}; got {value!r}"
                         ) from None



@dataclasses.dataclass(frozen=True)
class FastGradientSignSettings(AttackSettings):
    name = "fgsm"
    eps: float = setting(0.1, "L-inf step size")

    def validate(self) -> None:
        if not 0.0 <= self.eps <= 1.0:
            raise ValueError(f"fgsm eps must lie in [0, 1]; got {self.eps}")

    def run(self, victim, x, aim, *, targeted, seed, progress=False):
        from .attacks import fast_gradient_sign

        return fast_gradient_sign(victim, x, aim, eps=self.eps, targeted=targeted,
                                  box=victim.box)


@dataclasses.dataclass(frozen=True)
class IterativeFGSMSettings(AttackSettings):
    name = "ifgsm"
    targeting = ("random", "all", "none")  # paper 1 Fig. 1b: targeted
    step_size: float = setting(0.01, "L-inf size of each step (paper 1: 0.01)")
    iterations: int = setting(100, "steps (paper 1: 100)")
    eps: float | None = setting(None, "L-inf bound on the total change (none: only the box)")

    def validate(self) -> None:
        if self.step_size <= 0 or self.iterations < 1:
            raise ValueError("ifgsm needs step_size > 0 and iterations >= 1")
        if self.eps is not None and not 0 < self.eps <= 1:
            raise ValueError(f"ifgsm eps must lie in (0, 1]; got {self.eps}")

    def run(self, victim, x, aim, *, targeted, seed, progress=False):
        from .attacks import iterative_fgsm

        return iterative_fgsm(victim, x, aim, step_size=self.step_size,
                              iterations=self.iterations, eps=self.eps, targeted=targeted,
                              record_path=True, box=victim.box)


@dataclasses.dataclass(frozen=True)
class CarliniWagnerL2Settings(AttackSettings):
    """Defaults: the ``fast`` preset (one binary-search step, so c0 must already be large
    enough to succeed on most inputs)."""

    name = "cw_l2"
    presets = {
        # Carlini's own "recommended parameters" (nn_robust_attacks/l2_attack.py), paper 1.
        "carlini": dict(binary_steps=9, iterations=10_000, lr=1e-2, initial_const=1e-3),
        # CleverHans' defaults.
        "cleverhans": dict(binary_steps=5, iterations=1_000, lr=5e-3, initial_const=1e-2),
        "fast": {},
    }
    binary_steps: int = setting(1, "binary-search steps over the trade-off constant c")
    iterations: int = setting(1_000, "Adam steps per binary-search step")
    lr: float = setting(1e-2, "Adam learning rate")
    initial_const: float = setting(1.0, "starting trade-off constant c")
    confidence: float = setting(0.0, "margin kappa the attack must win by")
    abort_early: bool = setting(True, "stop a search step once its loss stops falling")
    rivals: int = setting(0, "classes besides the target (or label) that the steps score: the "
                             "strongest at the last check (0: every class)", legacy=0)
    check_every: int = setting(1, "test the iterate every this many steps, on all classes at "
                                  "the model's K (1 without rivals: every step, Carlini's way)",
                               legacy=1)

    def validate(self) -> None:
        if self.binary_steps < 1 or self.iterations < 1:
            raise ValueError("cw_l2 needs binary_steps >= 1 and iterations >= 1")
        if self.rivals < 0 or self.check_every < 1:
            raise ValueError("cw_l2 needs rivals >= 0 and check_every >= 1")
        if self.lr <= 0 or self.initial_const <= 0 or self.confidence < 0:
            raise ValueError("cw_l2 needs lr > 0, initial_const > 0 and confidence >= 0")

    def run(self, victim, x, aim, *, targeted, seed, progress=False):
        from .attacks import carlini_wagner_l2

        return carlini_wagner_l2(
            victim, x, aim, targeted=targeted, confidence=self.confidence,
            binary_search_steps=self.binary_steps, max_iterations=self.iterations,
            learning_rate=self.lr, initial_const=self.initial_const,
            abort_early=self.abort_early, rivals=self.rivals, check_every=self.check_every,
            decision_draws=victim.decision_draws, confirm_draws=victim.confirm_draws,
            box=victim.box, progress=progress)


@dataclasses.dataclass(frozen=True)
class DeepFoolSettings(AttackSettings):
    name = "deepfool"
    targeting = ("none", "random", "all")  # targeted: paper 2's "one-vs-all"
    p: float = setting(2.0, "norm: a number > 1, or inf")
    candidates: int = setting(10, "candidate classes, the label included")
    overshoot: float = setting(0.02, "push this fraction past the boundary")
    iterations: int = setting(50, "at most this many linearisation steps")
    pairwise: bool = setting(False, "each candidate's copy scores that class and the label "
                                    "only (a latent model computes 2 of C classes per copy)",
                             legacy=False)

    def validate(self) -> None:
        if not self.p > 1:  # also refuses nan
            raise ValueError(f"{self.name} needs p > 1 (its dual norm needs it); got {self.p}")
        if self.candidates < 2 or self.iterations < 1 or self.overshoot < 0:
            raise ValueError(f"{self.name} needs candidates >= 2, iterations >= 1 and "
                             "overshoot >= 0")

    def run(self, victim, x, aim, *, targeted, seed, progress=False):
        from .attacks import deepfool

        return deepfool(victim, x, aim, p=self.p, candidates=self.candidates,
                        overshoot=self.overshoot, max_iterations=self.iterations,
                        pairwise=self.pairwise, targeted=targeted,
                        confirm_draws=victim.confirm_draws, box=victim.box)


@dataclasses.dataclass(frozen=True)
class TruncatedDeepFoolSettings(DeepFoolSettings):
    name = "truncated_deepfool"
    targeting = ("none",)
    bisection_steps: int = setting(10, "halvings of DeepFool's perturbation")

    def validate(self) -> None:
        super().validate()
        if self.bisection_steps < 1:
            raise ValueError("truncated_deepfool needs bisection_steps >= 1")

    def run(self, victim, x, aim, *, targeted, seed, progress=False):
        from .attacks import truncated_deepfool

        return truncated_deepfool(
            victim, x, aim, p=self.p, candidates=self.candidates, overshoot=self.overshoot,
            max_iterations=self.iterations, pairwise=self.pairwise,
            bisection_steps=self.bisection_steps,
            decision_draws=victim.decision_draws, confirm_draws=victim.confirm_draws,
            box=victim.box)


@dataclasses.dataclass(frozen=True)
class ZooSettings(AttackSettings):
    name = "zoo"
    iterations: int = setting(200, "coordinate-ADAM iterations per binary-search step")
    coordinates: int = setting(128, "coordinates estimated per iteration")
    lr: float = setting(1e-2, "ADAM learning rate")
    # A stochastic model's outputs move between queries: a step of 1e-4 measures the noise,
    # not the slope, and one query per point is a coin toss (benchmarks/bench_zoo_gradient.py)
    fd_step: float = setting(ByVictim(1e-4, 1e-2), "finite-difference step")
    queries_per_point: int = setting(ByVictim(1, 4), "queries averaged per point")
    initial_const: float = setting(10.0, "starting trade-off constant c")
    binary_steps: int = setting(1, "binary-search steps over c")
    confidence: float = setting(0.0, "margin kappa the attack must win by")
    abort_early: bool = setting(True, "stop refining once every image of a batch is fooled "
                                      "and the loss stops falling")

    def validate(self) -> None:
        counts = (self.iterations, self.coordinates, self.binary_steps)
        if min(counts) < 1:
            raise ValueError("zoo needs iterations, coordinates and binary_steps >= 1")
        if self.lr <= 0 or self.initial_const <= 0 or self.confidence < 0:
            raise ValueError("zoo needs lr > 0, initial_const > 0 and confidence >= 0")
        for name in ("fd_step", "queries_per_point"):
            value = getattr(self, name)
            if not isinstance(value, ByVictim) and not value > 0:
                raise ValueError(f"zoo needs {name} > 0; got {value}")

    def run(self, victim, x, aim, *, targeted, seed, progress=False):
        from .attacks import zoo

        return zoo(victim.log_probabilities, x, aim, targeted=targeted,
                   confidence=self.confidence, max_iterations=self.iterations,
                   coordinates_per_iteration=self.coordinates, learning_rate=self.lr,
                   finite_difference_step=self.fd_step, queries_per_point=self.queries_per_point,
                   initial_const=self.initial_const, binary_search_steps=self.binary_steps,
                   abort_early=self.abort_early, confirm_draws=victim.confirm_draws,
                   box=victim.box, seed=seed, progress=progress)


@dataclasses.dataclass(frozen=True)
class GaussianNoiseSettings(AttackSettings):
    name = "noise"
    targeting = ("none",)
    l2: float | None = setting(None, "L2 size of the Gaussian noise (required)")

    def validate(self) -> None:
        if self.l2 is None:
            raise ValueError("noise needs l2 (the noise's L2 size), e.g. --l2 1.5")
        if not 0 <= self.l2 < float("inf"):
            raise ValueError(f"noise l2 must be finite and >= 0; got {self.l2}")

    def run(self, victim, x, aim, *, targeted, seed, progress=False):
        from .attacks import gaussian_noise

        return gaussian_noise(victim, x, aim, l2=self.l2, seed=seed, box=victim.box)


def parse_eps(text: str | float | None) -> list[float] | None:
    """'0.1' -> [0.1]; '0:0.5:0.05' -> [0, 0.05, ..., 0.5] (end included)."""
    if text is None:
        return None
    if isinstance(text, (int, float)):
        values = [float(text)]
    elif ":" in str(text):
        parts = str(text).split(":")
        try:
            start, stop, step = (float(p) for p in parts)
        except ValueError:
            raise ValueError(f"--eps sweep must be START:STOP:STEP; got {text!r}") from None
        if step <= 0 or stop < start:
            raise ValueError(f"--eps sweep needs STEP > 0 and STOP >= START; got {text!r}")
        count = int(math.floor((stop - start) / step + 1e-9)) + 1
        values = [round(start + i * step, 10) for i in range(count)]
    else:
        try:
            values = [float(text)]
        except ValueError:
            raise ValueError(f"--eps must be a number or START:STOP:STEP; got {text!r}") from None
    bad = [v for v in values if not 0 <= v <= 1]
    if bad:
        raise ValueError(f"--eps values must lie in [0, 1] (images live in [0, 1]); got {bad}")
    return values


REGISTRY: dict[str, type[AttackSettings]] = {settings.name: settings for settings in (
    FastGradientSignSettings, IterativeFGSMSettings, CarliniWagnerL2Settings, DeepFoolSettings,
    TruncatedDeepFoolSettings, ZooSettings, GaussianNoiseSettings)}


def settings_type(name: str) -> type[AttackSettings]:
    if name not in REGISTRY:
        raise ValueError(f"unknown attack {name!r}; choose from {', '.join(REGISTRY)}")
    return REGISTRY[name]
