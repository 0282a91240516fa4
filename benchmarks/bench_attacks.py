"""Cross-check of this project's attacks against foolbox 3 and ART on the same model and images.

Not a test: for every (model, attack, tool) it attacks the same N test images (those the model
classifies correctly by majority over R fresh draws) and judges every tool's final images the
same way (majority over R draws, ``dbayes_tf.metrics.judge``; L2 from
``dbayes_tf.metrics.distortions``). The table goes to ``results/benchmarks/README.md`` between the
"bench_attacks" markers (that section is replaced, the rest of the file is kept) and is
re-written after every attack. Within an attack the batches are the outer loop and the tools the
inner one, so a run stopped part-way has every tool's finished batches on the same images. Every
finished batch's adversarial images are kept under ``--cache-dir`` (one ``.npz`` per batch,
written atomically): ``--resume`` reuses them, so a run that needs hours (ART's CW: 30-45 s per
image; ZOO on a K = 10 generative classifier: about 100 s) can be done in pieces, and the images
stay for later analysis.

    DBAYES_DATA=... python benchmarks/bench_attacks.py \\
        --model-dir results/models/mnist_cnn_cosine \\
        --model-dir results/models/mnist_gc_mlp_iwae5 \\
        [--k 1] [--n-images 100] [--note TEXT]

A stochastic model costs about K times more per query (``--k`` lowers it); CW and ZOO at their
defaults (5 x 1000 steps, 200 ZOO iterations) take hours per tool on a CPU.

Attacks and tools: DeepFool L2 (ours, foolbox, ART), CW-L2 untargeted (ours, foolbox, ART),
ZOO (ours, ART; foolbox has none). Every tool sees the model through the same
``dbayes_tf.victim.Victim`` (fresh randomness per call from a replayable stream), restarted at
the same seed for every batch and tool. The settings every tool gets are the attacks' own
defaults (``dbayes_tf.attacks.DeepFoolSettings``, ``CarliniWagnerL2Settings`` and its presets,
``ZooSettings``), overridden only by this script's options. The images are those the committed
caches were made on (``common.bench_images``), not those ``dbayes attack`` draws today.
"""
from __future__ import annotations

import argparse
import functools
import os
import shlex
import sys
import time
import traceback
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import warnings

import numpy as np
import pandas as pd
import tensorflow as tf
from common import bench_images, markers, short_float, write_section

from dbayes_tf import attacks, metrics, reporting
from dbayes_tf.attack_settings import DEFAULT_BATCH_SIZE
from dbayes_tf.data import load_dataset
from dbayes_tf.runs.train import load_model
from dbayes_tf.victim import DEFAULT_MAX_BATCH, DEFAULT_VERDICT_DRAWS, Victim

DEFAULT_MODEL_DIR = "results/models/mnist_cnn_cosine"
ATTACK_NAMES = ("deepfool", "cw_l2", "zoo")
TOOL_NAMES = ("ours", "foolbox", "art")
SUPPORTED = {("deepfool", "ours"), ("deepfool", "foolbox"), ("deepfool", "art"),
             ("cw_l2", "ours"), ("cw_l2", "foolbox"), ("cw_l2", "art"),
             ("zoo", "ours"), ("zoo", "art")}
BASE_COLUMNS = ["model", "attack", "tool", "images", "success_rate", "l2_median", "l2_mean",
                "seconds_per_image"]
# DeepFool settings shared by the three tools (foolbox: steps / candidates / overshoot; ART:
# max_iter / nb_grads / epsilon; ART applies the overshoot once at the end, not every step):
# the attack's defaults, in the L2 norm, the only one foolbox's and ART's DeepFool share.
DEEPFOOL = attacks.DeepFoolSettings.build({"p": 2.0})
CW_DEFAULT_PRESET = "cleverhans"  # CleverHans' defaults, as foolbox's and ART's are close to


def cw_settings(args) -> attacks.CarliniWagnerL2Settings:
    """CW-L2 for all three tools: the preset, overridden by the --cw-* options that were given."""
    return attacks.CarliniWagnerL2Settings.build(
        {name: value for name, value in (
            ("binary_steps", args.cw_binary_steps), ("iterations", args.cw_iterations),
            ("lr", args.cw_learning_rate), ("initial_const", args.cw_initial_const))
         if value is not None}, preset=args.cw_preset)


def zoo_options(args) -> attacks.ZooSettings:
    """ZooSettings' defaults overridden by the --zoo-* options that were given; the step and
    the queries per point may still depend on the victim (``ByVictim``)."""
    return attacks.ZooSettings.build(
        {name: value for name, value in (
            ("iterations", args.zoo_iterations), ("fd_step", args.zoo_fd_step),
            ("queries_per_point", args.zoo_queries_per_point)) if value is not None})


def zoo_settings(args, stochastic: bool) -> attacks.ZooSettings:
    """As ``dbayes attack --attack zoo`` chooses them (a bigger step and more queries per point
    for a stochastic model) unless overridden; ART gets the same step, and the same averaging
    through its model."""
    return zoo_options(args).resolve(stochastic)


def by_victim_text(value, fmt=str) -> str:
    """A ByVictim default as the report writes it: "1e-4 (deterministic) / 1e-2 (stochastic)"."""
    return f"{fmt(value.deterministic)} (deterministic) / {fmt(value.stochastic)} (stochastic)"


class PeerModel:
    """The victim as foolbox's and ART's models call it where they need more than the Victim
    itself: accepts (and ignores) ART's ``training`` keyword, and averages the logits of
    ``draws`` fresh draws in one call (``attacks.mean_logits``; ART's ZOO averages this way what
    ours averages per point)."""

    def __init__(self, victim: Victim, draws: int = 1):
        self.victim, self.draws = victim, draws

    def __call__(self, x, training: bool = False):
        x = tf.convert_to_tensor(x, tf.float32)
        return attacks.mean_logits(self.victim, x, self.draws)


def run_ours(attack, victim, x, y, args, batch_seed):
    # decision and confirmation draws as the options say (default 1 and 0, like the peers), not
    # as the victim would resolve them for `dbayes attack`
    if attack == "deepfool":
        out = attacks.deepfool(victim, x, y, p=DEEPFOOL.p, candidates=DEEPFOOL.candidates,
                               overshoot=DEEPFOOL.overshoot, max_iterations=DEEPFOOL.iterations,
                               confirm_draws=args.confirm_draws)
    elif attack == "cw_l2":
        cw = cw_settings(args)
        out = attacks.carlini_wagner_l2(
            victim, x, y, targeted=False, confidence=cw.confidence,
            binary_search_steps=cw.binary_steps, max_iterations=cw.iterations,
            learning_rate=cw.lr, initial_const=cw.initial_const, abort_early=cw.abort_early,
            decision_draws=args.decision_draws, confirm_draws=args.confirm_draws)
    else:
        zs = zoo_settings(args, victim.stochastic)
        out = attacks.zoo(
            victim.log_probabilities, x, y, targeted=False, confidence=zs.confidence,
            max_iterations=zs.iterations, coordinates_per_iteration=zs.coordinates,
            learning_rate=zs.lr, finite_difference_step=zs.fd_step,
            queries_per_point=zs.queries_per_point, initial_const=zs.initial_const,
            binary_search_steps=zs.binary_steps, abort_early=zs.abort_early,
            confirm_draws=args.confirm_draws, seed=batch_seed)
    return out.x_adv, {}


def run_foolbox(attack, victim, x, y, args, batch_seed):
    import foolbox

    fmodel = foolbox.TensorFlowModel(victim, bounds=(0, 1))  # foolbox calls it as model(x)
    criterion = foolbox.criteria.Misclassification(tf.constant(y, tf.int64))
    if attack == "deepfool":
        fb_attack = foolbox.attacks.L2DeepFoolAttack(
            steps=DEEPFOOL.iterations, candidates=DEEPFOOL.candidates,
            overshoot=DEEPFOOL.overshoot)
    elif attack == "cw_l2":
        cw = cw_settings(args)
        fb_attack = foolbox.attacks.L2CarliniWagnerAttack(
            binary_search_steps=cw.binary_steps, steps=cw.iterations, stepsize=cw.lr,
            confidence=cw.confidence, initial_const=cw.initial_const,
            abort_early=cw.abort_early)
    else:
        raise ValueError(f"foolbox has no {attack}")
    _, x_adv, _ = fb_attack(fmodel, tf.constant(x), criterion, epsilons=None)
    x_adv = np.asarray(x_adv.numpy(), np.float32)
    counts = {}
    if attack == "cw_l2":
        # foolbox's CW starts its "best adversarial" at an all-zero image and returns that where
        # it found nothing; a blank image is then judged like an attack. Give back the input.
        blank = ~x_adv.reshape(len(x), -1).any(axis=1) & x.reshape(len(x), -1).any(axis=1)
        x_adv[blank] = x[blank]
        counts["blank"] = int(blank.sum())
    return x_adv, counts


def art_classifier(victim: Victim, draws: int = 1):
    from art.estimators.classification import TensorFlowV2Classifier

    return TensorFlowV2Classifier(
        model=PeerModel(victim, draws), nb_classes=victim.num_classes,
        input_shape=(28, 28, 1), clip_values=(0.0, 1.0),
        loss_object=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))


def run_art(attack, victim, x, y, args, batch_seed):
    from art.attacks.evasion import CarliniL2Method, DeepFool, ZooAttack

    np.random.seed(batch_seed % 2**32)  # ZOO draws its coordinates from numpy's global RNG
    if attack == "deepfool":
        art_attack = DeepFool(art_classifier(victim), max_iter=DEEPFOOL.iterations,
                              epsilon=DEEPFOOL.overshoot, nb_grads=DEEPFOOL.candidates,
                              batch_size=len(x), verbose=False)
        return art_attack.generate(x), {}
    if attack == "cw_l2":
        cw = cw_settings(args)
        art_attack = CarliniL2Method(
            art_classifier(victim), confidence=cw.confidence, targeted=False,
            learning_rate=cw.lr, binary_search_steps=cw.binary_steps,
            max_iter=cw.iterations, initial_const=cw.initial_const, batch_size=len(x),
            verbose=False)
        return art_attack.generate(x, y=y), {}
    zs = zoo_settings(args, victim.stochastic)
    # batch_size=1: ART's batched ZOO sizes its Adam state for one image and fails on more.
    # No resizing or importance sampling: ours has neither, and 28x28 needs no resizing.
    art_attack = ZooAttack(
        art_classifier(victim, draws=zs.queries_per_point), confidence=zs.confidence,
        targeted=False, learning_rate=zs.lr, max_iter=zs.iterations,
        binary_search_steps=zs.binary_steps, initial_const=zs.initial_const,
        abort_early=zs.abort_early, use_resize=False, use_importance=False,
        nb_parallel=zs.coordinates, batch_size=1, variable_h=zs.fd_step, verbose=False)
    return art_attack.generate(x, y=y), {}


RUNNERS = {"ours": run_ours, "foolbox": run_foolbox, "art": run_art}
# What the tools do differently, read in their installed source (foolbox 3.3.4, ART 1.20.1).
FIXED_NOTES = {
    ("cw_l2", "art"): "no abort early; gradient descent with line search, not Adam",
    ("zoo", "art"): "ART bug: x_t = x_t-1 + noise_t and noise clipped to [0, 1] (see text); "
                    "L2 not comparable",
}
COUNT_NOTES = {
    "blank": "foolbox returned {} blank images (nothing found): given back the input, failures",
    "clipped": "{} images outside [0, 1] clipped",
}


def split_list(text: str, allowed: tuple[str, ...], what: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    bad = [item for item in items if item not in allowed]
    if bad or not items:
        raise SystemExit(f"--{what}: choose from {','.join(allowed)}; got {text!r}")
    return items


def budget_column(budget: float) -> str:
    return f"success_l2<={budget:g}"


def table_markdown(rows: list[dict], budgets: list[float] = ()) -> str:
    columns = BASE_COLUMNS + [budget_column(b) for b in budgets] + ["note"]
    frame = pd.DataFrame(rows, columns=columns)
    return reporting.to_markdown(frame, float_format=".4f") if len(frame) else "(no rows yet)"


def section_title(args) -> str:
    """Names what a section measured, so the file's sections can be told apart at a glance."""
    models = ", ".join(Path(d).name for d in (args.model_dir or [DEFAULT_MODEL_DIR]))
    attack_names = [a.strip() for a in args.attacks.split(",") if a.strip()]
    tools = [t.strip() for t in args.tools.split(",")
             if any((a, t.strip()) in SUPPORTED for a in attack_names)]
    return (f"Cross-check: {', '.join(attack_names)} on {models}, N = {args.n_images} "
            f"(tools: {', '.join(tools)})")


def make_section(args, rows, models_info, env, finished: bool) -> str:
    command = getattr(args, "command_line", "python benchmarks/bench_attacks.py")
    cw, zoo = cw_settings(args), zoo_options(args)
    models_text = "; ".join(f"`{d}` ({info})" for d, info in models_info.items()) or "none yet"
    begin, end = markers(args.section)
    cw_abort = ("abort early (ours and foolbox; ART has no abort early and uses gradient "
                "descent with line search instead of Adam)" if cw.abort_early else
                "no abort early (ART uses gradient descent with line search instead of Adam)")
    zoo_steps = ("one binary-search step" if zoo.binary_steps == 1
                 else f"{zoo.binary_steps} binary-search steps")
    fd_step, queries = zoo.fd_step, zoo.queries_per_point
    if isinstance(fd_step, attacks.ByVictim):
        fd_step = by_victim_text(fd_step, short_float)
    if isinstance(queries, attacks.ByVictim):
        queries = by_victim_text(queries)
    status = "" if finished else "\n\n**Incomplete: the run was still going (or stopped) when " \
        "this was written.**"
    return (
        f"{begin}\n## {section_title(args)}\n\n"
        f"Made by: `{command}`{status}\n\n"
        f"N = {args.n_images} MNIST test images drawn with seed {args.seed} (as `dbayes attack "
        f"--seed {args.seed}` draws them); only those the model classifies correctly by "
        f"majority over R = {args.draws} draws are attacked (`images`). Models and K: "
        f"{models_text}. Every tool calls the model through the same `DrawStream`, restarted "
        f"at seed ({args.seed}, batch) for each batch of {args.batch_size} images and each "
        f"tool; the clean and adversarial verdicts use a second stream restarted at seed "
        f"({args.seed + 1}, batch), the same for every tool. Success: majority class over "
        f"R = {args.draws} fresh draws differs from the label; L2 median and mean over "
        f"successes; `success_l2<=b`: fraction of attacked images fooled with L2 <= b (success "
        f"at a fixed budget, which compares tools that trade distortion for success rate "
        f"differently); seconds per attacked image, wall clock of the attack calls only "
        f"(summed over the pieces of a resumed run).\n\n"
        f"Settings. DeepFool L2: {DEEPFOOL.iterations} steps, {DEEPFOOL.candidates} "
        f"candidate classes, overshoot {DEEPFOOL.overshoot} (ART: `max_iter`, `nb_grads`, "
        f"`epsilon`, overshoot applied once at the end). CW-L2 untargeted, preset "
        f"`{args.cw_preset}` with overrides: {cw.binary_steps} binary-search steps x "
        f"{cw.iterations} iterations, learning rate {cw.lr}, initial c "
        f"{cw.initial_const}, confidence {cw.confidence:g}, {cw_abort}; ours decides "
        f"success on {args.decision_draws} draw(s)"
        f"{f'; ours confirms with {args.confirm_draws} fresh draws' if args.confirm_draws else ''}"
        f". ZOO: {zoo.iterations} iterations, "
        f"{zoo.coordinates} coordinates per iteration, ADAM learning rate {zoo.lr}, "
        f"c = {zoo.initial_const}, {zoo_steps}, finite-difference step {fd_step}, "
        f"{queries} queries averaged per point (ART: the same "
        f"step as `variable_h`, the averaging inside its model, `batch_size=1`, no resizing "
        f"or importance sampling). foolbox has no ZOO.\n\n"
        f"Read in the tools' source: foolbox's CW returns an all-zero image where it found "
        f"nothing (its \"best so far\" starts at zeros); those are given back the input, so they "
        f"count as failures. ART's ZOO (1.20.1, `_generate_bss`/`_optimizer`) sets x_t = "
        f"x_t-1 + noise_t, where noise_t is already the whole accumulated perturbation, so the "
        f"change grows quadratically, and it clips the noise, not the image, to [0, 1], so no "
        f"pixel can darken: its rows measure that code, not ZOO. ART's and foolbox's DeepFool "
        f"re-decide at every step, on one draw, which images are still classified as at the "
        f"start and push those again; ours re-decides at every step too, on the mean logits "
        f"of its per-class copies (several draws at no extra cost).\n\n"
        f"{table_markdown(rows, args.budget_list)}\n\n"
        f"{reporting.machine_text(env)}; "
        f"foolbox {env.get('foolbox', '?')}, ART {env.get('art', '?')}"
        f"{'; TF threads ' + str(args.threads) if args.threads else ''}."
        f"{' ' + args.note if args.note else ''}\n{end}\n")


def settings_of(args, model_dir: str, k: int, stochastic: bool, attack: str, tool: str) -> dict:
    """What decides a batch's images: resuming is only allowed when all of it is unchanged.
    Written under the names the committed caches' settings.json use (the attack functions'
    keywords), so that --resume and --cached-only still accept those caches."""
    cw, zoo = cw_settings(args), zoo_settings(args, stochastic)
    return {"model_dir": str(model_dir), "k": k, "attack": attack, "tool": tool,
            "n_images": args.n_images, "seed": args.seed, "batch_size": args.batch_size,
            "draws": args.draws,
            "deepfool": {"max_iterations": DEEPFOOL.iterations,
                         "candidates": DEEPFOOL.candidates, "overshoot": DEEPFOOL.overshoot},
            "cw": {"binary_search_steps": cw.binary_steps, "max_iterations": cw.iterations,
                   "learning_rate": cw.lr, "initial_const": cw.initial_const,
                   "abort_early": cw.abort_early} if attack == "cw_l2" else None,
            "decision_draws": args.decision_draws, "confirm_draws": args.confirm_draws,
            "zoo": {"max_iterations": zoo.iterations, "fd_step": zoo.fd_step,
                    "queries_per_point": zoo.queries_per_point} if attack == "zoo" else None}


def summarise(model_label, attack, tool, x, labels, x_adv, majority, seconds, notes,
              budgets=()) -> dict:
    success = majority != labels
    all_l2 = metrics.distortions(x, x_adv)["l2"]
    l2 = all_l2[success]
    row = {"model": model_label, "attack": attack, "tool": tool, "images": len(x),
           "success_rate": float(success.mean()) if len(x) else float("nan"),
           "l2_median": float(np.median(l2)) if len(l2) else float("nan"),
           "l2_mean": float(l2.mean()) if len(l2) else float("nan"),
           "seconds_per_image": seconds / len(x) if len(x) else float("nan"),
           "note": "; ".join(notes)}
    for budget in budgets:
        row[budget_column(budget)] = (float((success & (all_l2 <= budget)).mean()) if len(x)
                                      else float("nan"))
    return row


class BatchCache:
    """One attack's finished batches on disk: ``batch_NNNN.npz`` (x_adv, seconds, counts)
    beside ``settings.json``. Resuming with other settings is refused, not silently mixed."""

    def __init__(self, folder: Path, settings: dict, resume: bool):
        self.folder = folder
        marker = folder / "settings.json"
        if folder.exists() and not resume:
            for old in folder.glob("batch_*.npz"):
                old.unlink()
        elif resume and marker.exists() and reporting.read_json(marker) != settings:
            raise SystemExit(f"--resume: {folder} was made with other settings "
                             f"({marker}); remove it or drop --resume")
        reporting.write_json(marker, settings)

    def path(self, batch: int) -> Path:
        return self.folder / f"batch_{batch:04d}.npz"

    def load(self, batch: int):
        if not self.path(batch).exists():
            return None
        with np.load(self.path(batch)) as saved:
            counts = {key[len("count_"):]: int(saved[key]) for key in saved.files
                      if key.startswith("count_")}
            return saved["x_adv"], float(saved["seconds"]), counts

    def save(self, batch: int, x_adv: np.ndarray, seconds: float, counts: dict) -> None:
        with reporting.atomic_path(self.path(batch)) as tmp, open(tmp, "wb") as handle:
            np.savez_compressed(handle, x_adv=x_adv, seconds=seconds,
                                **{f"count_{key}": value for key, value in counts.items()})


class ToolRun:
    """One tool's attack on one model, batch by batch: finished batches come from (and go to)
    the ``BatchCache``; with ``--cached-only`` the first missing batch ends it ("partial"); a
    tool that raises stops there and its row reports the error, the other tools go on."""

    def __init__(self, attack: str, tool: str, label: str, model_dir: str, victim: Victim,
                 args, n_batches: int):
        self.attack, self.tool, self.label, self.args = attack, tool, label, args
        self.victim, self.n_batches = victim, n_batches
        self.cache = BatchCache(
            Path(args.cache_dir) / args.section / Path(model_dir).name / f"{attack}_{tool}",
            settings_of(args, model_dir, victim.k, victim.stochastic, attack, tool),
            args.resume or args.cached_only)
        self.seconds, self.counts, self.batches = 0.0, {}, []
        self.done: int | None = None  # images covered when stopped early; None: all of them
        self.notes: list[str] = []
        self.error: Exception | None = None

    @property
    def active(self) -> bool:
        return self.done is None and self.error is None

    def attack_batch(self, b: int, start: int, xb, yb) -> None:
        if not self.active:
            return
        try:
            cached = self.cache.load(b)
            if cached is None and self.args.cached_only:
                self.done = start  # the row covers the finished batches only
                self.notes.append(f"partial: {b} of {self.n_batches} batches")
                return
            if cached is None:
                self.victim.reset([self.args.seed, b])
                began = time.perf_counter()
                x_adv, found = RUNNERS[self.tool](self.attack, self.victim, xb, yb, self.args,
                                                  self.args.seed * 100_003 + b)
                batch_seconds = time.perf_counter() - began
                x_adv = np.asarray(x_adv, np.float32).reshape(xb.shape)
                outside = np.abs(np.clip(x_adv, 0, 1) - x_adv).reshape(
                    len(xb), -1).max(axis=1) > 1e-6
                found["clipped"] = int(outside.sum())
                x_adv = np.clip(x_adv, 0, 1)
                self.cache.save(b, x_adv, batch_seconds, found)
                # a log line per batch: ZOO on a stochastic model runs for hours
                print(f"  {self.attack} / {self.tool}: batch {b + 1} of {self.n_batches} in "
                      f"{batch_seconds:.0f} s", file=sys.stderr, flush=True)
            else:
                x_adv, batch_seconds, found = cached
        except Exception as err:  # noqa: BLE001 (a tool's failure is a result)
            traceback.print_exc(file=sys.stderr)
            self.error = err
            return
        self.seconds += batch_seconds
        for key, value in found.items():
            self.counts[key] = self.counts.get(key, 0) + value
        self.batches.append(x_adv)

    def row(self, x, y, verdict_of) -> dict:
        if self.error is not None:
            # one line, and no "|" that would break the Markdown table
            message = " ".join(str(self.error).split())[:200].replace("|", "/")
            return {"model": self.label, "attack": self.attack, "tool": self.tool,
                    "images": len(x), "success_rate": float("nan"),
                    "l2_median": float("nan"), "l2_mean": float("nan"),
                    "seconds_per_image": float("nan"),
                    "note": f"error after {len(self.batches)} batches: "
                            f"{type(self.error).__name__}: {message}"}
        notes = self.notes + [COUNT_NOTES[key].format(n) for key, n in self.counts.items() if n]
        if (self.attack, self.tool) in FIXED_NOTES:
            notes.append(FIXED_NOTES[(self.attack, self.tool)])
        if not self.batches and not self.notes:
            notes.append("no correctly classified image to attack")
        done = len(x) if self.done is None else self.done
        x_row, y_row = x[:done], y[:done]
        x_adv = np.concatenate(self.batches) if self.batches else x_row.copy()
        return summarise(self.label, self.attack, self.tool, x_row, y_row, x_adv,
                         verdict_of(x_adv) if len(x_row) else y_row, self.seconds, notes,
                         self.args.budget_list)


def verdicts(judge: Victim, x_all: np.ndarray, args) -> np.ndarray:
    """Majority class over R = --draws draws, batch b judged by ``judge`` restarted at seed
    (seed + 1, b). ``metrics.judge`` with R, not ``judge.judge``: R draws for a deterministic
    model too, and one call per batch, as the committed sections were judged."""
    parts = []
    for b, start in enumerate(range(0, len(x_all), args.batch_size)):
        judge.reset([args.seed + 1, b])
        parts.append(metrics.judge(judge, x_all[start:start + args.batch_size],
                                   args.draws).majority)
    return np.concatenate(parts)


def build_parser() -> argparse.ArgumentParser:
    cw_default = attacks.CarliniWagnerL2Settings.build(preset=CW_DEFAULT_PRESET)
    zoo_default = attacks.ZooSettings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", action="append", default=None,
                        help=f"trained run directory (repeatable; default {DEFAULT_MODEL_DIR})")
    parser.add_argument("--n-images", type=int, default=100,
                        help="test images drawn with --seed (default 100)")
    parser.add_argument("--k", type=int, default=None,
                        help="importance samples for stochastic models (default: the model's K)")
    parser.add_argument("--draws", type=int, default=DEFAULT_VERDICT_DRAWS,
                        help=f"R draws that judge every image (default {DEFAULT_VERDICT_DRAWS})")
    parser.add_argument("--attacks", default=",".join(ATTACK_NAMES),
                        help=f"comma-separated (default {','.join(ATTACK_NAMES)})")
    parser.add_argument("--tools", default=",".join(TOOL_NAMES),
                        help=f"comma-separated (default {','.join(TOOL_NAMES)})")
    parser.add_argument("--cw-preset", choices=sorted(attacks.CarliniWagnerL2Settings.presets),
                        default=CW_DEFAULT_PRESET,
                        help=f"CW-L2 settings for all three tools (default {CW_DEFAULT_PRESET}: "
                             f"{cw_default.binary_steps} x {cw_default.iterations}, lr "
                             f"{cw_default.lr:g}, c0 {cw_default.initial_const:g})")
    parser.add_argument("--cw-iterations", type=int, default=None,
                        help="override the preset's iterations per binary-search step")
    parser.add_argument("--cw-binary-steps", type=int, default=None,
                        help="override the preset's binary-search steps")
    parser.add_argument("--cw-learning-rate", type=float, default=None,
                        help="override the preset's learning rate")
    parser.add_argument("--cw-initial-const", type=float, default=None,
                        help="override the preset's initial constant c")
    parser.add_argument("--decision-draws", type=int, default=1,
                        help="draws behind our CW's own success decisions (foolbox and ART "
                             "use one; default 1)")
    parser.add_argument("--confirm-draws", type=int, default=0,
                        help="fresh draws, 80%% of which must be fooled before our attacks "
                             "count an image as done (dbayes attack: R for stochastic models; "
                             "the peers have none; default 0)")
    parser.add_argument("--zoo-iterations", type=int, default=zoo_default.iterations,
                        help=f"ZOO iterations, ours and ART (default {zoo_default.iterations})")
    parser.add_argument("--zoo-fd-step", type=float, default=None,
                        help=f"default {zoo_default.fd_step.deterministic:g}, or "
                             f"{zoo_default.fd_step.stochastic:g} for stochastic models")
    parser.add_argument("--zoo-queries-per-point", type=int, default=None,
                        help=f"default {zoo_default.queries_per_point.deterministic}, or "
                             f"{zoo_default.queries_per_point.stochastic} for stochastic models")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                        help=f"images per attack call (default {DEFAULT_BATCH_SIZE})")
    parser.add_argument("--max-query-batch", type=int, default=DEFAULT_MAX_BATCH,
                        help="largest batch sent to the model in one call (memory bound; "
                             f"default {DEFAULT_MAX_BATCH})")
    parser.add_argument("--seed", type=int, default=0,
                        help="chooses the images and seeds every draw stream (default 0)")
    parser.add_argument("--threads", type=int, default=0,
                        help="TensorFlow intra- and inter-op threads (0: TensorFlow's choice)")
    parser.add_argument("--out", default="results/benchmarks/README.md",
                        help="Markdown file whose bench_attacks section is (re)written")
    parser.add_argument("--section", default="bench_attacks",
                        help="name of this run's section in --out (default bench_attacks)")
    parser.add_argument("--note", default="", help="how the machine was loaded, for the report")
    parser.add_argument("--budgets", default="1,2,3",
                        help="L2 budgets b for the success_l2<=b columns (default 1,2,3)")
    parser.add_argument("--cache-dir", default="results/benchmarks/bench_attacks",
                        help="where each finished batch's images are kept, under SECTION/MODEL/"
                             "ATTACK_TOOL (default results/benchmarks/bench_attacks)")
    parser.add_argument("--resume", action="store_true",
                        help="reuse the finished batches in --cache-dir (same settings only)")
    parser.add_argument("--cached-only", action="store_true",
                        help="attack nothing: report the batches already in --cache-dir (a "
                             "long run stopped part-way gets a row marked partial)")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.budget_list = [float(b) for b in args.budgets.split(",") if b.strip()]
    except ValueError:
        parser.error(f"--budgets: comma-separated numbers, got {args.budgets!r}")
    args.command_line = "python " + shlex.join(
        ["benchmarks/bench_attacks.py"] + (sys.argv[1:] if argv is None else list(argv)))
    attack_list = split_list(args.attacks, ATTACK_NAMES, "attacks")
    tool_list = split_list(args.tools, TOOL_NAMES, "tools")
    model_dirs = args.model_dir or [DEFAULT_MODEL_DIR]
    for name in ("n_images", "draws", "batch_size", "max_query_batch", "zoo_iterations",
                 "decision_draws"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.k is not None and args.k < 1:
        parser.error("--k must be >= 1")
    try:  # the attacks' own checks, before any model is loaded
        cw_settings(args)
        zoo_options(args)
    except ValueError as err:
        parser.error(str(err))
    tf.get_logger().setLevel("ERROR")  # ART's persistent-tape advice, foolbox's deprecations
    warnings.filterwarnings("ignore", message="PyTorch not found")  # ART, on import
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)

    env = reporting.environment()
    for package, module in (("foolbox", "foolbox"), ("art", "art")):
        try:
            env[package] = __import__(module).__version__
        except Exception as err:  # noqa: BLE001 (report, do not crash: that tool's rows fail)
            env[package] = f"not importable ({type(err).__name__})"
    out = Path(args.out)
    dataset = load_dataset("mnist", allow_download=False)
    images, labels = bench_images(dataset.test, args.n_images, args.seed)
    rows: list[dict] = []
    models_info: dict[str, str] = {}

    for model_dir in model_dirs:
        model = load_model(model_dir)
        # two streams: the one the attacks query, and the one that judges (K as the Victim
        # resolves it); the draw counts of every decision are this script's options, passed
        # explicitly, not the victim's defaults for `dbayes attack`
        victim = Victim(model, k=args.k, max_batch=args.max_query_batch, seed=args.seed)
        judge = Victim(model, k=args.k, max_batch=args.max_query_batch, seed=args.seed)
        k = victim.k
        label = f"{Path(model_dir).name} (K={k})" if victim.stochastic else Path(model_dir).name
        verdict_of = functools.partial(verdicts, judge, args=args)
        correct = verdict_of(images) == labels
        x, y = images[correct], labels[correct].astype(np.int32)
        starts = range(0, len(x), args.batch_size)
        kind = f"stochastic, K={k}" if victim.stochastic else "deterministic"
        models_info[model_dir] = (f"{model.config.model}-{model.config.arch}, {kind}, clean "
                                  f"{int(correct.sum())}/{len(correct)} correct")
        print(f"{label}: {int(correct.sum())} of {len(correct)} images correct by majority",
              file=sys.stderr)
        for attack in attack_list:
            runs = [ToolRun(attack, tool, label, model_dir, victim, args, len(starts))
                    for tool in tool_list if (attack, tool) in SUPPORTED]
            for run in runs:
                print(f"  {attack} / {run.tool} ...", file=sys.stderr, flush=True)
            # Batches outer, tools inner: a run stopped part-way (hours into ZOO on a stochastic
            # model) leaves every tool's finished batches on the same images.
            for b, start in enumerate(starts):
                xb, yb = x[start:start + args.batch_size], y[start:start + args.batch_size]
                for run in runs:
                    run.attack_batch(b, start, xb, yb)
            for run in runs:
                row = run.row(x, y, verdict_of)
                rows.append(row)
                print(f"  {attack} / {run.tool}: success {row['success_rate']:.3f}, median L2 "
                      f"{row['l2_median']:.3f}, {row['seconds_per_image']:.2f} s/image "
                      f"{row['note']}", file=sys.stderr, flush=True)
            write_section(out, make_section(args, rows, models_info, env, finished=False),
                          args.section)

    section = make_section(args, rows, models_info, env, finished=True)
    write_section(out, section, args.section)
    print(table_markdown(rows, args.budget_list))
    print(f"\nwrote the {args.section} section of {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
