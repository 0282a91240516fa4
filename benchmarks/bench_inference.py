"""Speed of the gc VAE-CNN on MNIST: logits throughput, input-gradient step, training epoch.

Not a test: it measures, and writes the figures to ``results/benchmarks/README.md`` (the
section between its "inference" markers is replaced; the rest of the file is kept for other
benchmarks).

    python benchmarks/bench_inference.py [--repeats 5] \\
        [--model-dir results/models/mnist_gc_cnn_z16_c128_bias_iwae5_cosine25]

With ``--model-dir`` the trained weights are used (speed does not depend on them, but it proves
the benchmark runs on the real model); without, a freshly initialised model of the same shape.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf

from dbayes_tf import data, models
from dbayes_tf import distributions as dist
from dbayes_tf.runs.train import load_model

sys.path.insert(0, str(Path(__file__).parent))
from common import machine_line, markers, write_section  # noqa: E402

MARK_BEGIN, MARK_END = markers("bench_inference")


def timed(fn, repeats: int) -> tuple[float, float]:
    fn()  # trace and warm up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), (max(times) - min(times)) / 2


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", default=None)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--epoch-steps", type=int, default=50,
                        help="training steps timed to estimate one epoch")
    parser.add_argument("--out", default="results/benchmarks/README.md")
    parser.add_argument("--note", default="", help="how the machine was loaded, for the report")
    args = parser.parse_args(argv)

    mnist = data.load_dataset("mnist", allow_download=False)
    if args.model_dir:
        model = load_model(args.model_dir)
    else:
        model = models.build_model(models.resolve_config("gc", "cnn"))
    x = tf.constant(mnist.test.images[:args.batch_size])
    y = tf.constant(mnist.test.labels[:args.batch_size])
    rows = []
    for k in (1, 10):
        median, spread = timed(lambda k=k: model.logits(x, k=k).numpy(), args.repeats)
        rows.append((f"logits, K = {k}, batch {args.batch_size}",
                     f"{args.batch_size / median:,.0f} images/s",
                     f"{median * 1000:.0f} ms +- {spread * 1000:.0f} per batch"))

    @tf.function
    def input_gradient(images, labels, seed):
        with tf.GradientTape() as tape:
            tape.watch(images)
            loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=labels, logits=model.logits(images, k=10, seed=seed)))
        return tape.gradient(loss, images)

    median, spread = timed(lambda: input_gradient(x, y, dist.as_seed(1)).numpy(), args.repeats)
    rows.append((f"input gradient of the CE loss, K = 10, batch {args.batch_size}",
                 f"{median:.3f} s per step", f"+- {spread:.3f}"))

    model.compile(optimizer="adam")
    step = tf.function(model.train_step)
    steps_per_epoch = len(mnist.train) // args.batch_size
    images, labels = mnist.train.images, mnist.train.labels

    def some_steps():
        for i in range(args.epoch_steps):
            sl = slice(i * args.batch_size, (i + 1) * args.batch_size)
            step((images[sl], labels[sl], dist.as_seed(i)))

    median, spread = timed(some_steps, max(1, args.repeats // 2))
    per_step = median / args.epoch_steps
    epoch = (f"training epoch (train_k = {model.config.train_k}, batch {args.batch_size}, "
             f"{steps_per_epoch} steps)")
    rows.append((epoch, f"{per_step * steps_per_epoch:.1f} s per epoch",
                 f"from {args.epoch_steps} timed steps"))

    table = "| what | speed | detail |\n|---|---|---|\n" + "\n".join(
        f"| {a} | {b} | {c} |" for a, b, c in rows)
    name = f"{model.config.model} ({model.config.arch})"
    section = (f"{MARK_BEGIN}\n## {name} on MNIST: inference and training speed\n\n"
               f"Made by: `python benchmarks/bench_inference.py"
               f"{' --model-dir ' + args.model_dir if args.model_dir else ''}` "
               f"(median of {args.repeats} runs after one warm-up).\n\n{table}\n\n"
               f"{machine_line()}{' ' + args.note if args.note else ''}\n{MARK_END}\n")
    write_section(Path(args.out), section, "bench_inference")
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
