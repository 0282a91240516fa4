"""What a decision on a generative classifier costs: a gc input-gradient step and a CW
attempt-iteration against a dense-matmul reference, in one run (issue #16).

Not a test: it measures, and writes its section of ``results/benchmarks/README.md``.

    python benchmarks/bench_decisions.py [--repeats 3] [--batch 20] [--iterations 50] \\
        [--model-dir results/models/mnist_gc_cnn_z16_c128_bias_iwae5_cosine25] \\
        [--cnn-dir results/models/mnist_cnn_cosine] [--deepfool-images 4]
    python benchmarks/bench_decisions.py --paired FULL_RUN CHEAP_RUN [CHEAP_RUN ...]

``--paired`` compares attack runs made on the same attempts (image, target): success and median
L2 with their 95% intervals, and the recorded seconds per attempt; it trains and times nothing.
A run given as ``DIR+DIR`` is the union of runs made with the same settings on other images.

The machine is shared and noisy, so every figure is timed interleaved with the others and with
the reference (round after round), and reported as min and median over the rounds; the ratios
(speed-ups, fraction of the matmul reference) are what carry over between runs.

- Reference: a 2048 x 2048 float32 matmul, in GFLOP/s.
- gc gradient step: the input gradient of the cross-entropy of the K = 10 logits for a batch,
  float32 and bfloat16; its FLOPs as TensorFlow's profiler counts them on the frozen graph.
- CW iteration: ``carlini_wagner_l2`` for a fixed number of Adam steps (abort-early and the
  confirmation off, so that every variant does the same work), per step and image: the
  attack as the committed tables ran it (K = 10 everywhere, every step tested on 3 draws)
  against the attacker's K', class subsets (``rivals``, checked every ``check_every`` steps on
  every class at K = 10) and bfloat16 for the steps and for the checks; and the CNN's CW step
  in float32 and bfloat16 (each claim then confirmed by one float32 call).
- DeepFool: a whole untargeted attack on GC-10 per image, with and without the confirmation of
  each stop by R fresh draws, plain and ``pairwise``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from dbayes_tf import attacks, data  # noqa: E402
from dbayes_tf import distributions as dist  # noqa: E402
from dbayes_tf.attack_settings import DeepFoolSettings  # noqa: E402
from dbayes_tf.runs.train import load_model  # noqa: E402
from dbayes_tf.victim import Victim  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from common import machine_line, write_section  # noqa: E402

DEFAULT_MODEL_DIR = "results/models/mnist_gc_cnn_z16_c128_bias_iwae5_cosine25"
DEFAULT_CNN_DIR = "results/models/mnist_cnn_cosine"
# the CNN's CW step (every step tested, as paper 1's Table 1 runs it) in either arithmetic; in
# bfloat16 each claim that would become the best is confirmed by one float32 call
CNN_PRECISIONS = ("float32", "bfloat16")
MATMUL_SIZE = 2048
# (label, attack_k, rivals, check_every, precision, decision_precision[, decision_draws]); the
# first is the cost of the committed tables
CW_VARIANTS = (
    ("as the committed tables (K = 10, all classes, every step)", None, 0, 1, "float32",
     "float32"),
    ("K' = 1, checks every 10", 1, 0, 10, "float32", "float32"),
    ("K' = 1, 2 rivals, checks every 10", 1, 2, 10, "float32", "float32"),
    ("K' = 1, 2 rivals, bfloat16 steps, float32 checks every 10", 1, 2, 10, "bfloat16",
     "float32"),
    ("K' = 1, 2 rivals, bfloat16, checks every 10", 1, 2, 10, "bfloat16", "bfloat16"),
    ("K' = 1, 2 rivals, bfloat16, checks every 20", 1, 2, 20, "bfloat16", "bfloat16"),
    ("K' = 2, 2 rivals, bfloat16 steps, float32 checks every 10", 2, 2, 10, "bfloat16",
     "float32"),
    ("K' = 2, 2 rivals, bfloat16, checks every 10", 2, 2, 10, "bfloat16", "bfloat16"),
    ("K' = 5, 2 rivals, bfloat16, checks every 10", 5, 2, 10, "bfloat16", "bfloat16"),
    ("K' = 2, 2 rivals, bfloat16, checks every 10 on 1 draw", 2, 2, 10, "bfloat16",
     "bfloat16", 1),
    ("K' = 2, 2 rivals, checks every 10", 2, 2, 10, "float32", "float32"),
)


def graph_flops(fn, *specs) -> float:
    """FLOPs of one call of the tf.function ``fn`` as TensorFlow's profiler counts them."""
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    frozen = convert_variables_to_constants_v2(fn.get_concrete_function(*specs))
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return float(tf.compat.v1.profiler.profile(graph=frozen.graph, options=options)
                 .total_float_ops)


def _union(run: str):
    """The config and the attempts of ``DIR`` or of ``DIR+DIR+...`` (runs made with the same
    settings; the config is the first's)."""
    import pandas as pd

    from dbayes_tf.attack_settings import settings_type
    from dbayes_tf.runs import store

    parts = run.split("+")
    configs = [store.read_config(d) for d in parts]
    same = {json.dumps([c["attack"], c["targeted"], c["victim"],
                        settings_type(c["attack"]).completed(c["settings"])], sort_keys=True)
            for c in configs}
    if len(same) > 1:
        raise SystemExit(f"{run}: the runs differ in attack, targets, victim or settings")
    frames = []
    for part, config in zip(parts, configs, strict=True):
        frame = store.read_attempts(part)
        if "verdict_draws" not in frame:  # a run stored before the column: R for every verdict
            frame["verdict_draws"] = config["victim"]["verdict_draws"]
        frames.append(frame)
    return configs[0], pd.concat(frames, ignore_index=True)


def _against_first(kept, base) -> str:
    """The paired comparison of a run's attempts with the first run's (both as
    ``paired.shared`` gives them): discordant successes, and the median L2 of each where both
    succeeded."""
    from dbayes_tf.runs import paired
    from dbayes_tf.stats import format_median

    if kept is base:
        return "(the reference)"
    found = paired.against(kept, base)
    both = len(found.l2_both_won)
    medians = (f"{format_median(found.l2_both_won)} and "
               f"{format_median(found.reference_l2_both_won)}" if both > 1 else "n/a")
    return (f"{found.only_here} / {found.only_reference}; (n={both}) {medians}; both found "
            f"(n={found.both_claimed}): {found.larger_where_both_claimed:.0%} larger here")


def _host(config: dict) -> str:
    """The kind of CPU a run's seconds were recorded on: its ``cpu_bfloat16``, or for runs
    made before that was recorded, the platform (this machine's two hosts differ in it)."""
    environment = config.get("environment") or {}
    kernel = "-".join(environment.get("platform", "?").split("-")[1:4])  # e.g. 6.18.44-fc-v1252
    return environment.get("cpu_bfloat16") or f"not recorded ({kernel})"


def paired_section(run_dirs: list[str], name: str | None = None) -> tuple[str, str]:
    """Success and median L2 of attack runs on their common attempts, the first as reference;
    and the section's name (one per attack)."""
    from dbayes_tf.runs import paired, store
    from dbayes_tf.stats import format_median, format_rate

    runs = {d: _union(d) for d in run_dirs}
    common = set.intersection(*(paired.keys(a) for _, a in runs.values()))
    kept_runs = paired.shared([attempts for _, attempts in runs.values()])
    rows = []
    base_seconds = None
    base = kept_runs[0]
    first = runs[run_dirs[0]][0]
    attack, model = first["attack"], first["model"]
    for (run_dir, (config, _)), kept in zip(runs.items(), kept_runs, strict=True):
        victim, settings = config["victim"], config["settings"]
        seconds = kept.drop_duplicates("seconds")["seconds"].mean()  # one value per batch
        base_seconds = base_seconds or seconds
        wins = kept[kept["success"]]
        levers = (f"rivals {settings.get('rivals', 0)}, check every "
                  f"{settings.get('check_every', 1)} in "
                  f"{victim.get('decision_precision', 'float32')} on "
                  f"{victim.get('decision_draws', 1)} draw(s)" if attack == "cw_l2" else
                  f"pairwise {settings.get('pairwise', False)}")
        names = " + ".join(f"`{Path(part).name}`" for part in run_dir.split("+"))
        rows.append(
            f"| {names} | K' = {victim.get('attack_k', victim['k'])}, "
            f"{victim.get('precision', 'float32')}, {levers} | "
            f"{victim['confirm_draws']} | R = {victim['verdict_draws']}"
            f"{', up to ' + str(victim['verdict_cap']) if victim.get('verdict_cap') else ''} | "
            f"{format_rate(int(kept['success'].sum()), len(kept))} (n={len(kept)}) | "
            f"{store.undecided_among(kept, victim)} | "
            f"{format_median(wins['l2']) if len(wins) else 'n/a'} | "
            f"{_against_first(kept, base)} | {seconds:.1f} | {base_seconds / seconds:.1f}x | "
            f"{_host(config)} |")
    option = f"--section {name} " if name else ""
    name = name or f"bench_decisions_{attack}"
    return (f"<!-- {name}:begin -->\n"
            f"## Cheaper {attack} on {model}: strength on the same {len(common)} attempts "
            "(issue #16)\n\n"
            f"Made by: `python benchmarks/bench_decisions.py {option}--paired "
            f"{' '.join(run_dirs)}`. Each run attacked the same attempts (image, target) with "
            f"`dbayes attack ... --attack {attack}` and the same settings but the "
            "attacker's levers (each run's command, seed and machine are in its "
            "config.json); every verdict by the model's own call (its K, float32) (a run made by "
            "`dbayes judge` judged another's images again, drawing until decided or at the "
            "cap). Success over attempts on correctly "
            "classified images, 95% Wilson interval; median L2 of the successes, 95% bootstrap "
            "interval; seconds per attempt as each run recorded them (runs made at different "
            "times on the shared machine: the same-run ratios are in \"What a decision on the gc "
            "VAE-CNN costs\"). Where verdicts are coin tosses two runs succeed on different "
            "attempts, so their medians over successes compare different images; \"against the "
            "first\" pairs them: the attempts only this run / only the first won; on the "
            "attempts both won, the median L2 of this run and of the first (95% bootstrap "
            "intervals); and of the attempts where both attacks claimed an adversarial "
            "(before the verdict), the share where this run's is larger.\n\n"
            "| run | attacker's calls | confirmation draws | verdict draws | success | "
            "undecided | median L2 | against the first: won only here / only there; where "
            "both won (n), median L2 here and there; where both claimed, larger here | "
            "s / attempt | speed vs the first | host's bfloat16 |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|\n"
            + "\n".join(rows)
            + f"\n<!-- {name}:end -->\n"), name


def _deepfool_label(pairwise: bool, confirm_draws) -> str:
    return (f"DeepFool on GC-10{', pairwise' if pairwise else ''}, "
            f"{'unconfirmed' if confirm_draws == 0 else 'stops confirmed'}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", default=DEFAULT_MODEL_DIR)
    parser.add_argument("--cnn-dir", default=DEFAULT_CNN_DIR)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--batch", type=int, default=20, help="images per call / attack batch")
    parser.add_argument("--iterations", type=int, default=50,
                        help="CW steps timed per round (a subset run checks once before the first)")
    parser.add_argument("--deepfool-images", type=int, default=4,
                        help="images of the DeepFool rows (a whole untargeted attack each)")
    parser.add_argument("--out", default="results/benchmarks/README.md")
    parser.add_argument("--section", default=None,
                        help="--paired: the section's name (default bench_decisions_ATTACK)")
    parser.add_argument("--paired", nargs="+", default=None, metavar="RUN",
                        help="compare attack runs on their common attempts (first: reference)")
    args = parser.parse_args(argv)
    if args.paired:
        section, name = paired_section(args.paired, args.section)
        write_section(Path(args.out), section, name)
        print(section)
        return 0

    mnist = data.load_dataset("mnist", allow_download=False)
    model = load_model(args.model_dir)
    x = tf.constant(mnist.test.images[:args.batch])
    labels = tf.constant(mnist.test.labels[:args.batch].astype(np.int32))
    targets = (labels + 1) % model.num_classes

    a = tf.random.normal([MATMUL_SIZE, MATMUL_SIZE])
    matmul = tf.function(lambda: tf.linalg.matmul(a, a))
    matmul_flops = 2.0 * MATMUL_SIZE ** 3

    def gradient_step(precision):
        @tf.function
        def step(images, seed):
            with tf.GradientTape() as tape:
                tape.watch(images)
                logits = model.logits(images, k=10, seed=seed, precision=precision)
                loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(
                    labels=labels, logits=logits))
            return tape.gradient(loss, images)
        return step

    gradient = {p: gradient_step(p) for p in ("float32", "bfloat16")}
    step_flops = graph_flops(gradient["float32"], tf.TensorSpec(x.shape, tf.float32),
                             tf.TensorSpec([2], tf.int32))

    def cw_round(attack_k, rivals, check_every, precision, decision_precision,
                 decision_draws=None):
        victim = Victim(model, attack_k=attack_k, precision=precision,
                        decision_precision=decision_precision, decision_draws=decision_draws,
                        seed=0)
        return lambda: attacks.carlini_wagner_l2(
            victim, x, targets, targeted=True, max_iterations=args.iterations,
            abort_early=False, rivals=rivals, check_every=check_every,
            decision_draws=victim.decision_draws, confirm_draws=0)

    jobs = {"matmul": lambda: matmul().numpy(),
            "gradient float32": lambda: gradient["float32"](x, dist.as_seed(1)).numpy(),
            "gradient bfloat16": lambda: gradient["bfloat16"](x, dist.as_seed(1)).numpy()}
    for label, *variant in CW_VARIANTS:
        jobs[label] = cw_round(*variant)
    cnn = load_model(args.cnn_dir)
    for precision in CNN_PRECISIONS:
        victim = Victim(cnn, precision=precision, seed=0)
        jobs[f"cnn {precision}"] = lambda victim=victim: attacks.carlini_wagner_l2(
            victim, x, targets, targeted=True, max_iterations=args.iterations,
            abort_early=False, confirm_draws=victim.confirm_draws)
    # DeepFool on GC-10 with and without the confirmation of its stops, plain and pairwise:
    # the confirmation's price in the same run (issue #16 asks at most 2x)
    df_x, df_labels = x[:args.deepfool_images], labels[:args.deepfool_images]
    for pairwise in (False, True):
        settings = DeepFoolSettings.build({"pairwise": pairwise})
        for confirm_draws in (0, None):  # None: the victim's default, R fresh draws
            victim = Victim(model, confirm_draws=confirm_draws, seed=0)
            jobs[_deepfool_label(pairwise, confirm_draws)] = (
                lambda settings=settings, victim=victim: settings.run(
                    victim, df_x, df_labels, targeted=False, seed=0))
    for job in jobs.values():  # trace and warm up
        job()
    times = {name: [] for name in jobs}
    for _ in range(args.repeats):
        for name, job in jobs.items():
            started = time.perf_counter()
            job()
            times[name].append(time.perf_counter() - started)

    def stats(name, per=1.0):
        return min(times[name]) / per, statistics.median(times[name]) / per

    ref_min, ref_median = stats("matmul")
    ref_gflops = matmul_flops / ref_median / 1e9
    rows = [f"| dense matmul {MATMUL_SIZE}^3 (reference) | {ref_min * 1e3:.1f} | "
            f"{ref_median * 1e3:.1f} | {ref_gflops:.0f} GFLOP/s | 1 |"]
    fp32_median = stats("gradient float32")[1]
    for precision in ("float32", "bfloat16"):
        low, median = stats(f"gradient {precision}")
        rows.append(f"| gc input-gradient step, K = 10, batch {args.batch}, {precision} | "
                    f"{low * 1e3:.0f} | {median * 1e3:.0f} | "
                    f"{step_flops / median / 1e9:.0f} GFLOP/s = "
                    f"{step_flops / median / 1e9 / ref_gflops:.0%} of the reference | "
                    f"{fp32_median / median:.2f}x |")
    per = args.iterations * args.batch
    base = stats(CW_VARIANTS[0][0], per)[1]
    for label, *_ in CW_VARIANTS:
        low, median = stats(label, per)
        rows.append(f"| CW step, {label} | {low * 1e3:.1f} | {median * 1e3:.1f} | "
                    f"per step and image | {base / median:.1f}x |")
    cnn_base = stats(f"cnn {CNN_PRECISIONS[0]}", per)[1]
    for precision in CNN_PRECISIONS:
        low, median = stats(f"cnn {precision}", per)
        rows.append(f"| CW step on the CNN, {precision} | {low * 1e3:.2f} | "
                    f"{median * 1e3:.2f} | per step and image | {cnn_base / median:.1f}x |")
    for pairwise in (False, True):
        unconfirmed = stats(_deepfool_label(pairwise, 0), args.deepfool_images)[1]
        for confirm_draws in (0, None):
            low, median = stats(_deepfool_label(pairwise, confirm_draws), args.deepfool_images)
            rows.append(f"| {_deepfool_label(pairwise, confirm_draws)} | {low * 1e3:.0f} | "
                        f"{median * 1e3:.0f} | per image | "
                        f"{median / unconfirmed:.2f}x the unconfirmed time |")

    table = ("| what | min (ms) | median (ms) | rate | speed-up |\n|---|---|---|---|---|\n"
             + "\n".join(rows))
    section = (
        "<!-- bench_decisions:begin -->\n"
        "## What a decision on the gc VAE-CNN costs (issue #16)\n\n"
        f"Made by: `python benchmarks/bench_decisions.py --model-dir {args.model_dir} "
        f"--cnn-dir {args.cnn_dir} "
        f"--repeats {args.repeats} --batch {args.batch} --iterations {args.iterations} "
        f"--deepfool-images {args.deepfool_images}`: "
        f"{args.repeats} interleaved rounds after a warm-up, the first {args.batch} MNIST test "
        "images (targets: label + 1). The gradient step's "
        f"{step_flops / 1e9:.1f} GFLOP are TensorFlow's profiler's count; speed-ups are of "
        "medians, against the first row of their group. The CW rows time "
        f"{args.iterations} Adam steps (abort-early and confirmation off) and include the "
        "checks on every class at K = 10 (3 draws) every `check_every` steps, in bfloat16, "
        "unless said otherwise. The CNN rows test every step (as paper 1's Table 1 runs it); "
        "in bfloat16 each claim that would become the best is confirmed by one float32 "
        f"call. The DeepFool rows attack the first {args.deepfool_images} images untargeted "
        "at K = 10 with its defaults, each stop confirmed by R = 10 fresh draws or not; "
        "their last column is the time against the same DeepFool unconfirmed.\n\n"
        f"{table}\n\n"
        f"{machine_line()}\n"
        "<!-- bench_decisions:end -->\n")
    write_section(Path(args.out), section, "bench_decisions")
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
