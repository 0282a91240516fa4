"""The model as attacks, metrics and detectors meet it: one object that resolves, once, every
number that depends on whether the classifier is stochastic.

A generative classifier (or an MC-dropout BNN) draws fresh random numbers on every call, so
"is this image adversarial?" is a question about many draws, not one. How many draws each kind
of decision takes is decided here and nowhere else:

- K: importance samples (or dropout passes) per class and call: the caller's, else the model's
  own; a deterministic model has nothing to sample, so K = 1 (:func:`resolve_k`). Verdicts and
  confirmations always use K;
- K', the attacker's samples: the attack's own calls (its gradients and decisions) may use
  fewer samples than the model classifies with, a choice of the attacker that leaves the
  verdict unchanged (default K' = K);
- R, the verdict draws: fresh draws whose majority judges every final image;
- decision draws: draws behind an attack's own "have I succeeded?" tests;
- confirmation draws: fresh draws, 80% of which must be fooled before an attack keeps a claim
  (a deterministic model: none, or its own call once when the attacker computes in bfloat16);
- the verdict cap: with a cap above R, a verdict whose fooled fraction is still a coin toss
  after R draws (metrics.undecided) gets R more, round after round, up to the cap.

The attacker's calls may also run the model's heavy layers in bfloat16 (``precision``); the
verdict and the confirmation are the model's own, in float32. Three kinds of call, then:

- the attacker's steps (``victim(x)``): K' samples in ``precision``;
- the attacker's decisions (``victim.decision_logits(x)``: "have I succeeded?", "which classes
  are the rivals?"): the model's K, in ``decision_precision`` (default: ``precision``). K rather
  than K', because with fewer samples each class's log p(x, y) falls short of the model's by its
  own gap (the importance-weighted bound tightens with K), so a decision at K' judges another
  classifier; bfloat16 moves the logits about 0.03 nats where a fresh draw moves them 2.3;
- verdicts and confirmations (``victim.verdict_logits(x)``): the model's K, float32.

Each call of a :class:`Victim` takes the next seed of a stream the experimenter can replay
(``reset``), so a resumed attack repeats every batch exactly; it sends at most ``max_batch``
images to the model at a time and counts every image it sends (``queries``).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

# TensorFlow loads inside the methods that need it: the command line reads this module's
# defaults for its help and checks options before paying TensorFlow's start-up.

# R: an attack on a stochastic classifier is judged by the majority of this many fresh draws.
DEFAULT_VERDICT_DRAWS = 10
# One draw is a coin toss near the boundary; three average out most of it for the attack's own
# tests at a third of R's cost (the verdict and the confirmation still use R).
STOCHASTIC_DECISION_DRAWS = 3
DEFAULT_MAX_BATCH = 2000
BOX = (0.0, 1.0)
# What a victim is made of: the keyword arguments of Victim, the keys of a plan's ``victim:``
OPTIONS = ("k", "attack_k", "precision", "decision_precision", "verdict_draws", "verdict_cap",
           "decision_draws", "confirm_draws", "max_batch")
# The arithmetic of the attacker's calls. bfloat16 made the gc gradient step 1.9x faster on
# this CPU (AMX-BF16; results/benchmarks/README.md), but CPUs without native bfloat16 emulate
# it, slower than float32, and a default that changed with the hardware would change a seeded
# run's numbers from machine to machine: so float32, and plans ask for bfloat16.
DEFAULT_PRECISION = "float32"


def resolve_precisions(precision: str | None = None,
                       decision_precision: str | None = None) -> tuple[str, str]:
    """The arithmetic of the attacker's steps and of its decisions: the decisions follow the
    steps unless told otherwise."""
    precision = precision or DEFAULT_PRECISION
    return precision, decision_precision or precision


def resolve_k(model, k: int | None = None) -> int:
    """K for ``model``: ``k`` if given, else the model's default; 1 for a deterministic model."""
    if not model.is_stochastic:
        return 1
    return int(k or model.default_k)


def model_label(model, k: int | None = None) -> str:
    """e.g. "gc-cnn, K=10": the K a run actually used, not only the model's default."""
    samples = f", K={resolve_k(model, k)}" if model.is_stochastic else ""
    return f"{model.config.model}-{model.config.arch}{samples}"


@dataclasses.dataclass(frozen=True)
class Draws:
    """The resolved draw counts of a victim, as stored in a run's config.json."""

    k: int
    verdict_draws: int
    decision_draws: int
    confirm_draws: int
    stochastic: bool
    attack_k: int | None = None  # None: K (runs stored before K' existed read the same)
    verdict_cap: int | None = None  # None: R draws for every verdict, as before

    @classmethod
    def resolve(cls, model, *, k: int | None = None, verdict_draws: int | None = None,
                decision_draws: int | None = None, confirm_draws: int | None = None,
                attack_k: int | None = None, verdict_cap: int | None = None,
                exact_attacker: bool = True) -> tuple[Draws, list[str]]:
        """The draw counts for ``model`` from what was asked (None: the default), and a note
        for every asked value that a deterministic model makes meaningless. ``exact_attacker``:
        the attacker computes as the model does (float32), else a deterministic model's claims
        are confirmed by one call of its own."""
        for name, value in (("k", k), ("verdict_draws", verdict_draws),
                            ("decision_draws", decision_draws), ("attack_k", attack_k),
                            ("verdict_cap", verdict_cap)):
            if value is not None and value < 1:
                raise ValueError(f"{name.replace('_', '-')} must be >= 1; got {value}")
        if confirm_draws is not None and confirm_draws < 0:
            raise ValueError(f"confirm-draws must be >= 0; got {confirm_draws}")
        stochastic = bool(model.is_stochastic)
        notes = []
        if stochastic:
            verdict = int(verdict_draws or DEFAULT_VERDICT_DRAWS)
            model_k = resolve_k(model, k)
            resolved = cls(k=model_k, verdict_draws=verdict,
                           decision_draws=int(decision_draws or STOCHASTIC_DECISION_DRAWS),
                           confirm_draws=verdict if confirm_draws is None else int(confirm_draws),
                           stochastic=True,
                           attack_k=None if attack_k in (None, model_k) else int(attack_k),
                           verdict_cap=None if verdict_cap is None or verdict_cap <= verdict
                           else int(verdict_cap))
        else:
            # R equal answers would cost R times as much and say nothing more
            ignored = [f"{name} {value}" for name, value in
                       (("K", k), ("R", verdict_draws), ("decision draws", decision_draws),
                        ("confirmation draws", confirm_draws), ("attack K", attack_k),
                        ("verdict cap", verdict_cap))
                       if value not in (None, 1, 0)]
            if ignored:
                notes.append(f"{model.config.model} is deterministic: {', '.join(ignored)} "
                             "ignored (one draw says everything)")
            # an attacker computing in bfloat16 claims success on the boundary (CW's aim) that
            # the model's float32 call may deny: its own call, once, settles each claim
            confirm = 0 if exact_attacker or confirm_draws == 0 else 1
            resolved = cls(k=1, verdict_draws=1, decision_draws=1, confirm_draws=confirm,
                           stochastic=False)
        return resolved, notes

    @property
    def attacker_k(self) -> int:
        """K': the samples of the attacker's own calls."""
        return self.attack_k or self.k

    def to_dict(self) -> dict[str, Any]:
        # a field at its "as before" value is left out, so a stored run's config stays the same
        values = dataclasses.asdict(self)
        for added in ("attack_k", "verdict_cap"):
            if values[added] is None:
                del values[added]
        return values


class Victim:
    """``model.logits`` behind a replayable draw stream, with the resolved draw counts.

    ``victim(x)`` returns the attacker's logits [B, C] of one fresh draw (K' samples, in
    ``precision``); ``victim(x, classes=c)`` those of the classes c [B, M] only, which a latent
    model computes at a fraction of the cost; ``victim.decision_logits(x)`` the attacker's
    decisions (K samples, in ``decision_precision``); ``victim.verdict_logits(x)`` the model's
    own (K samples, float32) for verdicts and confirmations. All work inside ``tf.function``:
    the call and query counters are variables, not Python ints frozen at trace time.
    """

    supports_classes = True  # attacks may ask for a subset of the classes (attacks.utils)

    def __init__(self, model, *, k: int | None = None, verdict_draws: int | None = None,
                 decision_draws: int | None = None, confirm_draws: int | None = None,
                 attack_k: int | None = None, precision: str | None = None,
                 decision_precision: str | None = None, verdict_cap: int | None = None,
                 max_batch: int = DEFAULT_MAX_BATCH, seed=0,
                 box: tuple[float, float] = BOX):
        import tensorflow as tf

        from . import distributions as dist
        from .configs import PRECISIONS

        if max_batch < 1:
            raise ValueError(f"max-query-batch must be >= 1; got {max_batch}")
        precision, decision_precision = resolve_precisions(precision, decision_precision)
        for name, value in (("precision", precision), ("decision-precision", decision_precision)):
            if value not in PRECISIONS:
                raise ValueError(f"{name} must be one of {', '.join(PRECISIONS)}; got {value!r}")
        self.model = model
        self.precision = precision
        self.decision_precision = decision_precision
        self.draws, self.notes = Draws.resolve(
            model, k=k, verdict_draws=verdict_draws, decision_draws=decision_draws,
            confirm_draws=confirm_draws, attack_k=attack_k, verdict_cap=verdict_cap,
            exact_attacker=precision == decision_precision == "float32")
        self.max_batch = int(max_batch)
        self.box = box
        self._base = tf.Variable(dist.as_seed(seed), trainable=False)
        self._calls = tf.Variable(0, dtype=tf.int32, trainable=False)
        self._queries = tf.Variable(0, dtype=tf.int64, trainable=False)

    # -- what attacks and metrics read --------------------------------------------------------
    @classmethod
    def from_stored(cls, model, settings: dict[str, Any], seed=0) -> Victim:
        """The victim a stored ``settings()`` dict describes. An entry left out is at its "as
        before" value (float32, K' = K), so runs stored before it existed read as they ran."""
        return cls(model, k=settings.get("k"), verdict_draws=settings.get("verdict_draws"),
                   decision_draws=settings.get("decision_draws"),
                   confirm_draws=settings.get("confirm_draws"),
                   attack_k=settings.get("attack_k"), verdict_cap=settings.get("verdict_cap"),
                   precision=settings.get("precision", "float32"),
                   decision_precision=settings.get("decision_precision", "float32"),
                   max_batch=settings.get("max_batch") or DEFAULT_MAX_BATCH, seed=seed)

    @property
    def k(self) -> int:
        return self.draws.k

    @property
    def attack_k(self) -> int:
        return self.draws.attacker_k

    @property
    def stochastic(self) -> bool:
        return self.draws.stochastic

    @property
    def verdict_draws(self) -> int:
        return self.draws.verdict_draws

    @property
    def decision_draws(self) -> int:
        return self.draws.decision_draws

    @property
    def confirm_draws(self) -> int:
        return self.draws.confirm_draws

    @property
    def steps_are_decisions(self) -> bool:
        """Whether the attacker's own call is also its decision call (same K and
        precision), so that an attack may count a step's draw as one of its decision draws."""
        return self.attack_k == self.k and self.precision == self.decision_precision

    @property
    def num_classes(self) -> int:
        return self.model.num_classes

    @property
    def label(self) -> str:
        return model_label(self.model, self.k)

    @property
    def queries(self) -> int:
        """Images sent through the model since the last ``reset`` (every draw counts)."""
        return int(self._queries.numpy())

    # -- calls ---------------------------------------------------------------------------------
    def reset(self, seed) -> None:
        """Restart the draw stream at ``seed`` (and the query count at 0)."""
        from . import distributions as dist

        self._base.assign(dist.as_seed(seed))
        self._calls.assign(0)
        self._queries.assign(0)

    def _one_call(self, x, classes, k, precision):
        import tensorflow as tf

        call_index = self._calls.assign_add(1)
        self._queries.assign_add(tf.cast(tf.shape(x)[0], tf.int64))
        seed = tf.random.experimental.stateless_fold_in(self._base, call_index)
        return self.model.logits(x, k, seed=seed, classes=classes, precision=precision)

    def _calls_of(self, x, classes, k, precision):
        import tensorflow as tf

        x = tf.convert_to_tensor(x, tf.float32)
        n = x.shape[0]
        if n is None or n <= self.max_batch:
            return self._one_call(x, classes, k, precision)
        # a bounded batch per call keeps memory flat; gradients flow through the concatenation
        return tf.concat([self._one_call(x[i:i + self.max_batch],
                                         None if classes is None else classes[i:i + self.max_batch],
                                         k, precision)
                          for i in range(0, n, self.max_batch)], axis=0)

    def __call__(self, x, classes=None):
        """The attacker's call: K' samples in ``precision``; ``classes`` [B, M]: those only."""
        return self._calls_of(x, classes, self.attack_k, self.precision)

    def decision_logits(self, x):
        """The attacker's decisions: the model's K samples in ``decision_precision``."""
        return self._calls_of(x, None, self.k, self.decision_precision)

    def verdict_logits(self, x):
        """The model's own call, which verdicts and confirmations use: K samples, float32."""
        return self._calls_of(x, None, self.k, "float32")

    def log_probabilities(self, x) -> np.ndarray:
        """What a black-box attacker sees: log p(y | x) of one draw of the model as it is (its
        K, float32: K' and bfloat16 are choices of an attacker who holds the model), as plain
        numbers."""
        import tensorflow as tf

        return tf.nn.log_softmax(self.verdict_logits(x), axis=-1).numpy()

    def judge(self, x, batch_size: int | None = None, draws: int | None = None):
        """The verdict: classes of R (or ``draws``) fresh draws and their majority
        (metrics.judge), in batches of ``batch_size`` images (default: as many as fit in one
        call of R copies)."""
        from .metrics import Judgement, judge

        x = np.asarray(x, np.float32)
        draws = draws or self.verdict_draws
        step = batch_size or max(1, self.max_batch // draws)
        if len(x) <= step:
            return judge(self.verdict_logits, x, draws)
        parts = [judge(self.verdict_logits, x[i:i + step], draws)
                 for i in range(0, len(x), step)]
        return Judgement(single=np.concatenate([p.single for p in parts]),
                         majority=np.concatenate([p.majority for p in parts]),
                         draws=np.concatenate([p.draws for p in parts], axis=1),
                         entropy=np.concatenate([p.entropy for p in parts]),
                         mean_probs=np.concatenate([p.mean_probs for p in parts]))

    def judge_until_decided(self, x, aims, targeted: bool):
        """The verdict on attack results: R draws, then, while the cap allows, R more for
        every image whose fooled fraction (class == aim if ``targeted``, else != aim) is still
        undecided (metrics.undecided). Returns the judgement (``draws`` [drawn, B], -1 where an
        image took no more) and the draws each image took."""
        from .inference import predictive_entropy
        from .metrics import Judgement
        from .stats import undecided

        first = self.judge(x)
        used = np.full(len(first.single), self.verdict_draws, np.int64)
        cap = self.draws.verdict_cap
        if not cap:
            return first, used
        aims = np.asarray(aims)
        rows, prob_sum = [first.draws], first.mean_probs * self.verdict_draws
        while True:
            classes = np.concatenate(rows)
            drawn = classes >= 0
            hit = (classes == aims) if targeted else (classes != aims)
            rate = (hit & drawn).sum(axis=0) / used
            pending = undecided(rate, used) & (used < cap)
            if not pending.any():
                break
            # every pending image has drawn alike (each was pending all along)
            more_draws = int(min(self.verdict_draws, cap - used[pending][0]))
            more = self.judge(np.asarray(x)[pending], draws=more_draws)
            block = np.full((more_draws, len(used)), -1, classes.dtype)
            block[:, pending] = more.draws
            rows.append(block)
            prob_sum[pending] += more.mean_probs * more_draws
            used[pending] += more_draws
        classes = np.concatenate(rows)
        num_classes = prob_sum.shape[1]
        votes = np.stack([(classes == c).sum(axis=0) for c in range(num_classes)], axis=-1)
        mean_probs = prob_sum / used[:, None]
        entropy = predictive_entropy(np.log(mean_probs + 1e-30).astype(np.float32)).numpy()
        return Judgement(single=first.single, majority=(votes + 0.5 * mean_probs).argmax(-1),
                         draws=classes, entropy=entropy, mean_probs=mean_probs), used

    def settings(self) -> dict[str, Any]:
        """Everything about the victim that decides a run's numbers (for config.json)."""
        stored = self.draws.to_dict() | {"max_batch": self.max_batch, "box": list(self.box)}
        # left out at float32, as in runs stored before they existed
        for name in ("precision", "decision_precision"):
            if getattr(self, name) != "float32":
                stored[name] = getattr(self, name)
        return stored
