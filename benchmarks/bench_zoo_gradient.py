"""How much signal ZOO's finite-difference gradient carries on a model, per setting.

Not a test: a measurement behind the ZOO cells of the peer cross-check (``bench_attacks.py``),
where ZOO fools every CNN image but none of the stochastic gc model's. At N test images (those
the cross-check's committed caches were made on, ``common.bench_images``), for the same random
coordinates per image, it sets
ZOO's estimate of d gap / d x_j (``attacks.zoo.estimate_coordinate_gradients``: symmetric
finite differences of step h, each point the mean of r queries, images clipped to [0, 1])
beside a reference: the autodiff gradient of the expected gap, averaged over
``--reference-draws`` fresh draws, scaled by the share of [x_j - h, x_j + h] left inside the box
(ZOO's estimate at a pixel that sits at 0 sees only the "+h" half). gap = log F_y -
max_{i != y} log F_i, the part of ZOO's loss its gradient comes from at the start.

Per (model, h, r) it reports, medians over images: the cosine between one estimate and the
reference over the chosen coordinates, the fraction of coordinates whose estimated sign is
right, weighted by the reference's magnitude (0.5 = a coin), the relative error
||estimate - reference|| / ||reference|| (at a large h it holds the secant's bias as well as
the noise: even a deterministic model's error grows with h), and the queries one estimate
costs.
``reference_self_cosine`` (the cosine between the references of two halves of the draws) says
how far the reference itself can be trusted.

    DBAYES_DATA=... python benchmarks/bench_zoo_gradient.py \\
        --model-dir results/models/mnist_gc_mlp_iwae5 --model-dir results/models/mnist_cnn_cosine
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pandas as pd
import tensorflow as tf
from tqdm.auto import tqdm

from dbayes_tf import attacks, reporting
from dbayes_tf.attacks import estimate_coordinate_gradients, log_prob_gap
from dbayes_tf.data import load_dataset
from dbayes_tf.runs.train import load_model
from dbayes_tf.victim import Victim

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bench_images, markers, short_float, write_section

SECTION = "bench_zoo_gradient"


def default_settings() -> str:
    """ZOO's own (h, r) for a deterministic and for a stochastic model (``ZooSettings``), then
    bigger steps and more queries per point."""
    zoo = attacks.ZooSettings()
    ours = [(zoo.fd_step.deterministic, zoo.queries_per_point.deterministic),
            (zoo.fd_step.stochastic, zoo.queries_per_point.stochastic)]
    return ",".join([f"{short_float(h)}:{r}" for h, r in ours] + ["1e-1:4", "1e-2:32", "1e-1:32"])


def parse_settings(text: str) -> list[tuple[float, int]]:
    """"h:r,h:r" -> [(h, r)]: finite-difference step and queries averaged per point."""
    settings = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        try:
            step, queries = item.split(":")
            setting = (float(step), int(queries))
        except ValueError:
            raise SystemExit(f"--settings: expected h:r pairs such as 1e-2:4, got {item!r}"
                             ) from None
        if setting[0] <= 0 or setting[1] < 1:
            raise SystemExit(f"--settings: h must be > 0 and r >= 1, got {item!r}")
        settings.append(setting)
    if not settings:
        raise SystemExit("--settings: give at least one h:r pair")
    return settings


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    norm = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / norm) if norm > 0 else float("nan")


def relative_error(estimate: np.ndarray, reference: np.ndarray) -> float:
    norm = np.linalg.norm(reference)
    return float(np.linalg.norm(estimate - reference) / norm) if norm > 0 else float("nan")


def reference_gradients(model_fn, image: np.ndarray, label: int, draws: int,
                        max_batch: int) -> np.ndarray:
    """Autodiff gradients of the gap at ``image``, one row per fresh draw: [draws, D]."""
    rows = []
    for start in range(0, draws, max_batch):
        n = min(max_batch, draws - start)
        x = tf.constant(np.repeat(image[None], n, axis=0), tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(x)
            log_p = tf.nn.log_softmax(model_fn(x), axis=-1)
            # untargeted, the attacks' margin is max_{i != y} - own: the gap with its sign flipped
            gap = -attacks.margin(log_p, tf.fill([n], label), targeted=False)
        rows.append(tape.gradient(gap, x).numpy().reshape(n, -1))
    return np.concatenate(rows).astype(np.float64)


def measure_image(model_fn, image, label, coords, settings, args):
    flat = image.reshape(-1).astype(np.float64)
    per_draw = reference_gradients(model_fn, image, label, args.reference_draws,
                                   args.max_query_batch)[:, coords]
    half = len(per_draw) // 2
    self_cosine = cosine(per_draw[:half].mean(0), per_draw[half:].mean(0))
    rows = []
    for step, queries in settings:
        # the share of [x - h, x + h] inside the box: what ZOO's clipped difference estimates
        inside = (np.minimum(flat[coords] + step, 1) - np.maximum(flat[coords] - step, 0)) / (
            2 * step)
        reference = per_draw.mean(0) * inside
        # weighted by |reference|: a wrong sign on a coordinate that hardly matters
        # (most background pixels) costs ZOO nothing
        weight = np.abs(reference)
        at_box_edge = float(np.mean((flat[coords] < step) | (flat[coords] > 1 - step)))

        def objective(points, queries=queries):
            images = np.clip(points, 0.0, 1.0)
            log_p = tf.nn.log_softmax(model_fn(tf.constant(
                np.repeat(images, queries, axis=0).reshape((-1,) + image.shape), tf.float32)),
                axis=-1).numpy()
            gap = log_prob_gap(log_p, np.full(len(log_p), label), targeted=False)
            gap = gap.reshape(-1, queries).mean(1)
            return gap, gap

        for _ in range(args.repeats):
            estimate = estimate_coordinate_gradients(objective, flat[None], coords[None],
                                                     step)[0][0]
            rows.append({"h": step, "r": queries,
                         "cosine": cosine(estimate, reference),
                         "sign_agreement": float(
                             weight @ (np.sign(estimate) == np.sign(reference)) / weight.sum()),
                         "relative_error": relative_error(estimate, reference),
                         "queries": (1 + 2 * len(coords)) * queries,
                         "reference_self_cosine": self_cosine,
                         "at_box_edge": at_box_edge})
    return rows


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", action="append", required=True,
                        help="trained model directory (repeatable)")
    parser.add_argument("--n-images", type=int, default=10)
    parser.add_argument("--coordinates", type=int, default=attacks.ZooSettings().coordinates,
                        help="coordinates per image, as ZOO picks per iteration (default "
                             "%(default)s)")
    parser.add_argument("--settings", default=default_settings(),
                        help="h:r pairs: finite-difference step and queries per point (default "
                             "%(default)s)")
    parser.add_argument("--repeats", type=int, default=8,
                        help="independent estimates per image and setting")
    parser.add_argument("--reference-draws", type=int, default=256)
    parser.add_argument("--k", type=int, default=None, help="importance samples (stochastic)")
    parser.add_argument("--max-query-batch", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="results/benchmarks/README.md")
    parser.add_argument("--note", default="", help="how the machine was loaded, for the report")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    settings = parse_settings(args.settings)
    if min(args.n_images, args.coordinates, args.repeats) < 1 or args.reference_draws < 2:
        raise SystemExit("--n-images, --coordinates and --repeats must be >= 1, "
                         "--reference-draws >= 2")
    if args.k is not None and args.k < 1:
        raise SystemExit("--k must be >= 1")
    for model_dir in args.model_dir:
        if not Path(model_dir).is_dir():
            raise SystemExit(f"--model-dir {model_dir}: no such directory")
    dataset = load_dataset("mnist", allow_download=False)
    images, labels = bench_images(dataset.test, args.n_images, args.seed)
    rng = np.random.default_rng(args.seed)
    dims = int(np.prod(images.shape[1:]))
    if args.coordinates > dims:
        raise SystemExit(f"--coordinates: at most {dims} (the image's pixels)")
    coords = np.stack([rng.permutation(dims)[:args.coordinates] for _ in images])

    summary, started = [], time.time()
    for model_dir in args.model_dir:
        model = load_model(model_dir)
        model_fn = Victim(model, k=args.k, max_batch=args.max_query_batch, seed=args.seed)
        name = (f"{Path(model_dir).name} (K={model_fn.k})" if model_fn.stochastic
                else Path(model_dir).name)
        rows = []
        for image, label, image_coords in tqdm(list(zip(images, labels, coords)), desc=name):
            rows += measure_image(model_fn, image, int(label), image_coords, settings, args)
        frame = pd.DataFrame(rows)
        table = frame.groupby(["h", "r"], sort=False).median().reset_index()
        table.insert(0, "model", name)
        summary.append(table)
        print(reporting.to_markdown(table, float_format=".4f"), flush=True)

    table = pd.concat(summary, ignore_index=True)
    table["queries"] = table["queries"].astype(int)
    env = reporting.environment()
    begin, end = markers(SECTION)
    command = "python benchmarks/bench_zoo_gradient.py " + shlex.join(
        argv if argv is not None else sys.argv[1:])
    section = (
        f"{begin}\n## ZOO's finite-difference gradient against autodiff, per setting\n\n"
        f"Made by: `{command}`\n\n"
        f"{args.n_images} MNIST test images drawn with seed {args.seed} (as `dbayes attack` "
        f"draws them), {args.coordinates} random coordinates each, {args.repeats} independent "
        f"estimates per image and setting. h: finite-difference step; r: queries averaged per "
        f"point; the estimate is `attacks.zoo.estimate_coordinate_gradients` of the gap "
        f"log F_y - max_(i != y) log F_i on clipped images, the reference the autodiff gradient "
        f"of the gap averaged over {args.reference_draws} fresh draws (times the share of "
        f"[x - h, x + h] inside the box). Medians over images and repeats: `cosine` between "
        f"estimate and reference, `sign_agreement` (the share of coordinates with the right "
        f"sign, weighted by |reference|; 0.5 = a coin), `relative_error` = "
        f"||estimate - reference|| / ||reference|| (noise and, at a large h, the secant's "
        f"bias), `queries` per estimate (one ZOO "
        f"iteration), `reference_self_cosine` between the references of the two halves of the "
        f"draws, `at_box_edge` the share of coordinates whose +/- h leaves the box.\n\n"
        f"{reporting.to_markdown(table, float_format='.4f')}\n\n"
        f"{reporting.machine_text(env)}; "
        f"{time.time() - started:.0f} s in all.{' ' + args.note if args.note else ''}\n{end}\n")
    write_section(Path(args.out), section, SECTION)
    print(f"wrote the {SECTION} section of {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
