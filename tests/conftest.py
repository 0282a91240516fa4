"""Shared fixtures: small slices of the real datasets, never the network."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from dbayes_tf import data


@pytest.fixture(scope="session")
def mnist():
    return data.load_dataset("mnist", allow_download=False)


@pytest.fixture(scope="session")
def fashion():
    try:
        return data.load_dataset("fashion_mnist", allow_download=False)
    except data.DatasetError as err:  # CI sets DBAYES_DATA; a bare laptop may not have it
        pytest.skip(f"Fashion-MNIST not available locally: {err}")


@pytest.fixture(scope="session")
def mnist_small(mnist):
    """3,000 training and 500 test images: enough to learn, fast enough for a unit test."""
    return data.Dataset(name="mnist", train=mnist.train.take(3000),
                        validation=mnist.validation.take(500), test=mnist.test.take(500),
                        source=mnist.source)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def trained_runs(tmp_path_factory, mnist_small):
    """Small trained run directories shared by the attack and detection tests: an MLP (about
    90% test accuracy) and a tiny stochastic gc VAE-MLP, each saved as 'dbayes train' would."""
    from dbayes_tf import models
    from dbayes_tf.runs import train as training

    root = tmp_path_factory.mktemp("runs")
    specs = {
        "mlp": models.resolve_config("mlp", hidden=128, seed=0),
        "gc": models.resolve_config("gc", "mlp", hidden=128, latent_dim=8, k=5, seed=0),
    }
    runs = {}
    for name, config in specs.items():
        train_config = training.TrainConfig(dataset="mnist", epochs=3, batch_size=50, lr=2e-3,
                                            seed=0)
        training.train(config, train_config, root / name, dataset=mnist_small, progress=False,
                       log=lambda *_: None)
        runs[name] = root / name
    return runs
