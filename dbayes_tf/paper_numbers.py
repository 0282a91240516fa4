"""Published numbers the project compares itself with (facts from the two source papers).

Keys are (dataset, model, arch, K). Only numbers printed in the papers are here; each carries
where it comes from, so every table that shows one can cite it.
"""
from __future__ import annotations

CLEAN_ACCURACY: dict[tuple[str, str, str, int], tuple[float, str]] = {
    # Paper 1 (Li, ICLR 2018 workshop), Table 1: CNN-based models, clean accuracy on the 200
    # test images attacked there.
    ("mnist", "cnn", "cnn", 1): (1.0000, "paper 1, Table 1 (200 test images)"),
    ("mnist", "gc", "cnn", 1): (0.9877, "paper 1, Table 1 (GC-1)"),
    ("mnist", "gc", "cnn", 10): (0.9915, "paper 1, Table 1 (GC-10)"),
    # Paper 2 (Akhannouss, Barbier & Lutt), Table 1: test-set accuracy on Fashion-MNIST.
    ("fashion_mnist", "gfz", "cnn", 10): (0.8081, "paper 2, Table 1"),
    ("fashion_mnist", "dfz", "cnn", 10): (0.8891, "paper 2, Table 1"),
}

# What issue #2 asks of this project's own runs (full test set).
TARGET_ACCURACY: dict[tuple[str, str, str], float] = {
    ("mnist", "gc", "cnn"): 0.990,
    ("mnist", "cnn", "cnn"): 0.993,
    ("mnist", "gc", "mlp"): 0.980,
    ("fashion_mnist", "gfz", "cnn"): 0.81,
    ("fashion_mnist", "dfz", "cnn"): 0.889,
}
