import gzip

import numpy as np
import pytest

from dbayes_tf import data


def test_mnist_shapes_dtypes_and_range(mnist):
    assert mnist.train.images.shape == (55000, 28, 28, 1)
    assert mnist.validation.images.shape == (5000, 28, 28, 1)
    assert mnist.test.images.shape == (10000, 28, 28, 1)
    assert mnist.train.images.dtype == np.float32 and mnist.test.labels.dtype == np.int32
    assert mnist.train.images.min() == 0.0 and mnist.train.images.max() == 1.0
    assert set(np.unique(mnist.test.labels)) == set(range(10))


def test_validation_split_is_seeded_and_disjoint():
    first = data.load_dataset("mnist", validation_size=1000, split_seed=7, allow_download=False)
    again = data.load_dataset("mnist", validation_size=1000, split_seed=7, allow_download=False)
    other = data.load_dataset("mnist", validation_size=1000, split_seed=8, allow_download=False)
    np.testing.assert_array_equal(first.validation.images, again.validation.images)
    assert not np.array_equal(first.validation.labels, other.validation.labels)
    # No validation image is also a training image (compare raw bytes of each image).
    train_keys = {img.tobytes() for img in first.train.images}
    overlap = sum(img.tobytes() in train_keys for img in first.validation.images)
    assert overlap <= 5  # MNIST has a handful of exact duplicate images, nothing more


def test_fashion_is_found_and_differs_from_mnist(fashion, mnist):
    assert fashion.train.images.shape == mnist.train.images.shape
    assert not np.array_equal(fashion.test.images[:10], mnist.test.images[:10])


def _write_fixture(folder, n=20, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "t10k"):
        data.write_idx(folder / f"{split}-images-idx3-ubyte.gz",
                       rng.integers(0, 256, size=(n, 28, 28)))
        data.write_idx(folder / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, size=n))
    return folder


def test_explicit_data_dir_beats_environment(tmp_path, monkeypatch):
    explicit = _write_fixture(tmp_path / "explicit", n=30)
    from_env = _write_fixture(tmp_path / "env" / "mnist", n=40)
    monkeypatch.setenv("DBAYES_DATA", str(tmp_path / "env"))
    assert len(data.load_dataset("mnist", validation_size=5).train) == 35
    assert len(data.load_dataset("mnist", data_dir=explicit, validation_size=5).train) == 25
    assert from_env.is_dir()


def test_idx_round_trip(tmp_path, rng):
    images = rng.integers(0, 256, size=(7, 28, 28))
    data.write_idx(tmp_path / "x.gz", images)
    np.testing.assert_array_equal(data.read_idx(tmp_path / "x.gz", "images"), images)


@pytest.mark.parametrize("damage, message", [
    ("truncate", "truncated"),
    ("magic", "wrong magic"),
    ("not_gzip", "not a readable gzip"),
])
def test_damaged_files_give_one_clear_error(tmp_path, damage, message):
    folder = _write_fixture(tmp_path / "mnist")
    target = folder / "train-images-idx3-ubyte.gz"
    raw = gzip.decompress(target.read_bytes())
    if damage == "truncate":
        target.write_bytes(gzip.compress(raw[:-100]))
    elif damage == "magic":
        target.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + raw[4:]))
    else:
        target.write_bytes(b"this is not gzip at all")
    with pytest.raises(data.DatasetError, match=message) as info:
        data.load_dataset("mnist", data_dir=folder, allow_download=False)
    assert "train-images-idx3-ubyte.gz" in str(info.value)


def test_missing_dataset_names_every_place_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(data, "REPO_DATA_DIR", tmp_path / "repo")
    monkeypatch.setattr(data, "DEBIAN_DATA_DIR", tmp_path / "debian")
    monkeypatch.setattr(data, "KERAS_CACHE_DIR", tmp_path / "keras")
    monkeypatch.delenv("DBAYES_DATA", raising=False)
    with pytest.raises(data.DatasetError) as info:
        data.load_dataset("fashion_mnist", allow_download=False)
    text = str(info.value)
    for place in ("repo", "debian", "keras", "download (disabled)", "dataset-fashion-mnist"):
        assert place in text


def test_a_named_folder_that_lacks_the_data_does_not_fall_through(tmp_path, monkeypatch):
    monkeypatch.delenv("DBAYES_DATA", raising=False)
    with pytest.raises(data.DatasetError, match="not a folder"):
        data.load_dataset("mnist", data_dir=tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(data.DatasetError, match="holds no mnist files"):
        data.load_dataset("mnist", data_dir=tmp_path / "empty")
    folder = _write_fixture(tmp_path / "partial")
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(data.DatasetError, match="missing t10k-labels-idx1-ubyte.gz"):
        data.load_dataset("mnist", data_dir=folder)
    monkeypatch.setenv("DBAYES_DATA", str(tmp_path / "empty"))
    with pytest.raises(data.DatasetError, match="DBAYES_DATA points at"):
        data.load_dataset("mnist")


def test_installed_copy_finds_data_in_the_working_directory(tmp_path, monkeypatch):
    # An installed (non-editable) package lives in site-packages, away from the repo's data/;
    # run from the repository's root, it must still find ./data/mnist.
    monkeypatch.setattr(data, "REPO_DATA_DIR", tmp_path / "site-packages" / "data")
    monkeypatch.delenv("DBAYES_DATA", raising=False)
    _write_fixture(tmp_path / "checkout" / "data" / "mnist", n=22)
    monkeypatch.chdir(tmp_path / "checkout")
    loaded = data.load_dataset("mnist", validation_size=2, allow_download=False)
    assert len(loaded.test) == 22


def test_debian_location_is_used(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(data, "REPO_DATA_DIR", tmp_path / "repo")
    monkeypatch.setattr(data, "DEBIAN_DATA_DIR", tmp_path / "debian")
    monkeypatch.delenv("DBAYES_DATA", raising=False)
    _write_fixture(tmp_path / "debian" / "fashion-mnist", n=25)
    loaded = data.load_dataset("fashion_mnist", validation_size=5, allow_download=False)
    assert loaded.source == str(tmp_path / "debian" / "fashion-mnist")
    assert len(loaded.test) == 25


def test_keras_npz_cache_is_used(tmp_path, monkeypatch, rng):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(data, "REPO_DATA_DIR", tmp_path / "repo")
    monkeypatch.setattr(data, "KERAS_CACHE_DIR", tmp_path / "keras")
    monkeypatch.delenv("DBAYES_DATA", raising=False)
    (tmp_path / "keras").mkdir()
    np.savez(tmp_path / "keras" / "mnist.npz",
             x_train=rng.integers(0, 256, (30, 28, 28), dtype=np.uint8),
             y_train=rng.integers(0, 10, 30), x_test=rng.integers(0, 256, (9, 28, 28),
                                                                  dtype=np.uint8),
             y_test=rng.integers(0, 10, 9))
    loaded = data.load_dataset("mnist", validation_size=3, allow_download=False)
    assert loaded.source.endswith("mnist.npz") and len(loaded.test) == 9


def test_unknown_dataset_name():
    with pytest.raises(data.DatasetError, match="unknown dataset"):
        data.load_dataset("cifar10")
