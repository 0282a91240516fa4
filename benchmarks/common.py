"""What the benchmark scripts share: the test images they attack and measure, and the way each
writes its own section of ``results/benchmarks/README.md``."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from dbayes_tf import reporting
from dbayes_tf.data import Split


def bench_images(split: Split, n_images: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n_images`` test images (and their labels, int64) drawn with ``seed``.

    This is the image choice the committed caches in ``results/benchmarks/bench_attacks/`` and the
    committed sections of ``results/benchmarks/README.md`` were made with: ``dbayes attack``'s
    (untargeted) choice of its day, a sorted draw without replacement from
    ``default_rng([seed, 7])``. ``dbayes attack`` now takes the first n of a seeded
    permutation (``dbayes_tf.data.sample_test_images``), which picks other images; the
    benchmarks keep this one so that their caches, and the numbers made from them, stay valid.
    """
    if not 1 <= n_images <= len(split):
        raise ValueError(f"--n-images must be between 1 and the test set's {len(split)}; got "
                         f"{n_images}")
    rng = np.random.default_rng([seed, 7])
    ids = np.sort(rng.choice(len(split), size=n_images, replace=False))
    return split.images[ids], split.labels[ids].astype(np.int64)


def short_float(value: float) -> str:
    """1e-4 as "1e-4", not "0.0001": how the reports have always written ZOO's steps."""
    mantissa, exponent = f"{value:e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def markers(section: str) -> tuple[str, str]:
    """Comment lines around a script's section; --section lets runs with different attacks or
    models keep their own sections side by side."""
    return f"<!-- {section}:begin -->", f"<!-- {section}:end -->"


def write_section(out: Path, section: str, name: str) -> None:
    """Replace the section between ``name``'s markers in ``out`` (or append it); the rest of
    the file is kept."""
    begin, end = markers(name)
    old = out.read_text() if out.exists() else "# Benchmarks\n\n"
    if begin in old and end in old.split(begin, 1)[1]:
        head, rest = old.split(begin, 1)
        new = head + section + rest.split(end, 1)[1].lstrip("\n")
    else:
        new = old.rstrip("\n") + "\n\n" + section
    reporting.write_text(out, new)


def machine_line() -> str:
    """Where a benchmark ran. Timings compare only within one kind of host: this machine has
    run on hosts with and without AMX, where a bfloat16 gradient step ran 1.75x and 0.76x as
    fast as float32."""
    env = reporting.environment()
    return (f"Machine: {env['platform']} (bfloat16: {env['cpu_bfloat16']}), {env['cpu_count']} "
            f"CPUs, {env['gpus']} GPUs; TensorFlow {env['tensorflow']}, Keras {env['keras']}, "
            f"TFP {env['tensorflow_probability']}, Python {env['python']}.")
