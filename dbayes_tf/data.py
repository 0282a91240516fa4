"""MNIST and Fashion-MNIST from standard IDX ``.gz`` files.

Images come back as float32 in [0, 1] with shape ``[N, 28, 28, 1]``, labels as int32 in [0, 10).
The loader looks for the four IDX files in this order, and takes the first place that has all of
them:

1. an explicit ``data_dir`` (the CLI's ``--data-dir``), else the ``DBAYES_DATA`` environment
   variable (either the dataset folder itself or a parent holding ``mnist/`` / ``fashion-mnist/``);
2. the repository's own ``data/`` folder (MNIST is committed there): beside the package when it
   runs from a checkout, else ``./data`` in the working directory (an installed copy run from the
   repository's root);
3. Debian's ``/usr/share/datasets/fashion-mnist/`` (package ``dataset-fashion-mnist``);
4. Keras' cache ``~/.keras/datasets/`` (``mnist.npz`` or ``fashion-mnist/*.gz``);
5. Keras' downloader, when ``allow_download`` is true (it needs the network).

A file that is missing, truncated or not IDX raises :class:`DatasetError`, whose message names
every place looked in and how to get the files, instead of a numpy traceback.
"""
from __future__ import annotations

import dataclasses
import gzip
import os
import struct
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

DATASETS = ("mnist", "fashion_mnist")
NUM_CLASSES = 10
IMAGE_SHAPE = (28, 28, 1)

_FOLDER_NAMES = {"mnist": ("mnist",), "fashion_mnist": ("fashion-mnist", "fashion_mnist")}
_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
_IDX_MAGIC = {"images": 0x00000803, "labels": 0x00000801}
_HOW_TO_GET = {
    "mnist": "copy the four MNIST IDX .gz files (train-images-idx3-ubyte.gz, ...) into a folder "
    "and pass it with --data-dir or DBAYES_DATA; the repository ships them under data/mnist/",
    "fashion_mnist": "install Debian's package 'dataset-fashion-mnist' (apt-get install "
    "dataset-fashion-mnist), or pass a folder holding the four Fashion-MNIST IDX .gz files with "
    "--data-dir or DBAYES_DATA",
}

REPO_DATA_DIR = Path(__file__).resolve().parent.parent / "data"
WORKING_DATA_DIR = Path("data")  # relative on purpose: resolved against the working directory
DEBIAN_DATA_DIR = Path("/usr/share/datasets")
KERAS_CACHE_DIR = Path("~/.keras/datasets").expanduser()


class DatasetError(RuntimeError):
    """A dataset could not be found or read; the message says where we looked and what to do."""


@dataclasses.dataclass(frozen=True)
class Split:
    images: np.ndarray  # float32 [N, 28, 28, 1] in [0, 1]
    labels: np.ndarray  # int32 [N]

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, n: int | None) -> Split:
        if n is None or n >= len(self):
            return self
        return Split(self.images[:n], self.labels[:n])

    @property
    def num_classes(self) -> int:
        return NUM_CLASSES


@dataclasses.dataclass(frozen=True)
class Dataset:
    name: str
    train: Split
    validation: Split
    test: Split
    source: str  # where the files were read from, recorded in every run's config

    @property
    def num_classes(self) -> int:
        return NUM_CLASSES


def canonical_name(name: str) -> str:
    key = name.strip().lower().replace("-", "_")
    if key not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return key


def read_idx(path: Path, kind: str) -> np.ndarray:
    """Read one gzip'd IDX file of ``kind`` 'images' or 'labels' into a uint8 array."""
    try:
        with gzip.open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except (OSError, EOFError, zlib.error) as err:
        raise DatasetError(f"{path}: not a readable gzip file ({err}); the file is truncated "
                           "or corrupt, replace it") from None
    ndim = 3 if kind == "images" else 1
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise DatasetError(f"{path}: {len(raw)} bytes is too short for an IDX {kind} header")
    magic = struct.unpack(">I", raw[:4])[0]
    if magic != _IDX_MAGIC[kind]:
        raise DatasetError(f"{path}: wrong magic number 0x{magic:08x} for IDX {kind} "
                           f"(expected 0x{_IDX_MAGIC[kind]:08x}); is this the right file?")
    dims = struct.unpack(">" + "I" * ndim, raw[4:header_size])
    expected = int(np.prod(dims))
    payload = np.frombuffer(raw, dtype=np.uint8, offset=header_size)
    if payload.size != expected:
        raise DatasetError(f"{path}: header promises {expected} bytes of {kind} "
                           f"{tuple(dims)} but the file holds {payload.size}; it is truncated")
    return payload.reshape(dims)


def _explicit_root(data_dir: str | os.PathLike | None) -> tuple[Path, str] | None:
    """The folder the user named, and how (``--data-dir`` beats ``DBAYES_DATA``)."""
    if data_dir is not None:
        return Path(data_dir).expanduser(), "--data-dir"
    from_env = os.environ.get("DBAYES_DATA")
    return (Path(from_env).expanduser(), "DBAYES_DATA") if from_env else None


def _candidate_dirs(name: str, data_dir: str | os.PathLike | None) -> list[Path]:
    folders = _FOLDER_NAMES[name]
    roots: list[Path] = []
    explicit = _explicit_root(data_dir)
    if explicit is not None:
        roots.append(explicit[0])
    roots += [REPO_DATA_DIR, WORKING_DATA_DIR.resolve(), DEBIAN_DATA_DIR, KERAS_CACHE_DIR]
    candidates: list[Path] = []
    for index, root in enumerate(roots):
        if index == 0 and explicit is not None:
            candidates.append(root)  # the folder itself may be the dataset folder
        candidates += [root / folder for folder in folders]
    return list(dict.fromkeys(candidates))


def _has_all_files(folder: Path) -> bool:
    return all((folder / filename).is_file() for filename in _FILES.values())


def _check_explicit_folder(name: str, root: Path, origin: str) -> None:
    """A folder the user named must hold the dataset: falling through to another copy (or the
    network) would silently train on something else."""
    if not root.is_dir():
        raise DatasetError(f"{origin} points at {root}, which is not a folder")
    for folder in [root] + [root / sub for sub in _FOLDER_NAMES[name]]:
        present = [f for f in _FILES.values() if (folder / f).is_file()]
        if len(present) == len(_FILES):
            return
        if present:
            missing = sorted(set(_FILES.values()) - set(present))
            raise DatasetError(f"{folder} ({origin}) holds only part of {name}: missing "
                               f"{', '.join(missing)}. To fix: {_HOW_TO_GET[name]}.")
    raise DatasetError(f"{origin} points at {root}, which holds no {name} files (looked for "
                       f"{', '.join(_FILES.values())} in it and in "
                       f"{', '.join(str(root / sub) for sub in _FOLDER_NAMES[name])}). To fix: "
                       f"{_HOW_TO_GET[name]}.")


def _load_idx_folder(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    arrays = {key: read_idx(folder / filename, key.split("_")[1])
              for key, filename in _FILES.items()}
    for split in ("train", "test"):
        n_images, n_labels = len(arrays[f"{split}_images"]), len(arrays[f"{split}_labels"])
        if n_images != n_labels:
            raise DatasetError(f"{folder}: {split} has {n_images} images but {n_labels} labels")
        if arrays[f"{split}_images"].shape[1:] != IMAGE_SHAPE[:2]:
            raise DatasetError(f"{folder}: {split} images are {arrays[f'{split}_images'].shape[1:]}"
                               f", expected {IMAGE_SHAPE[:2]}")
        if arrays[f"{split}_labels"].size and arrays[f"{split}_labels"].max() >= NUM_CLASSES:
            raise DatasetError(f"{folder}: {split} labels outside 0..{NUM_CLASSES - 1}")
    return (arrays["train_images"], arrays["train_labels"],
            arrays["test_images"], arrays["test_labels"])


def _load_keras_npz(path: Path) -> tuple[np.ndarray, ...]:
    try:
        with np.load(path) as npz:
            return npz["x_train"], npz["y_train"], npz["x_test"], npz["y_test"]
    except Exception as err:  # a bad npz can fail in many numpy/zipfile ways; all mean the same
        raise DatasetError(f"{path}: unreadable Keras cache file ({err}); delete it") from None


def _download_with_keras(name: str) -> tuple[np.ndarray, ...]:
    import keras

    loader = keras.datasets.mnist if name == "mnist" else keras.datasets.fashion_mnist
    (x_train, y_train), (x_test, y_test) = loader.load_data()
    return x_train, y_train, x_test, y_test


def locate_raw(name: str, data_dir: str | os.PathLike | None = None,
               allow_download: bool = True) -> tuple[tuple[np.ndarray, ...], str]:
    """Return the raw uint8 arrays of a dataset and a description of where they came from."""
    name = canonical_name(name)
    explicit = _explicit_root(data_dir)
    if explicit is not None:
        _check_explicit_folder(name, *explicit)
    looked: list[str] = []
    for folder in _candidate_dirs(name, data_dir):
        if _has_all_files(folder):
            return _load_idx_folder(folder), str(folder)
        looked.append(str(folder))
    if name == "mnist":
        npz = KERAS_CACHE_DIR / "mnist.npz"
        if npz.is_file():
            return _load_keras_npz(npz), str(npz)
        looked.append(str(npz))
    if allow_download:
        try:
            return _download_with_keras(name), "keras download"
        except Exception as err:  # network failures surface as many exception types
            looked.append(f"keras download ({type(err).__name__}: {err})")
    else:
        looked.append("keras download (disabled)")
    files = ", ".join(_FILES.values())
    raise DatasetError(
        f"dataset {name!r} not found. Looked for {files} in:\n  - " + "\n  - ".join(looked)
        + f"\nTo fix: {_HOW_TO_GET[name]}.")


def _to_split(images: np.ndarray, labels: np.ndarray) -> Split:
    images = (np.asarray(images, dtype=np.float32) / 255.0).reshape((-1,) + IMAGE_SHAPE)
    return Split(images, np.asarray(labels, dtype=np.int32))


def load_dataset(name: str, *, data_dir: str | os.PathLike | None = None,
                 validation_size: int = 5000, split_seed: int = 0,
                 allow_download: bool = True) -> Dataset:
    """Load a dataset with a validation split carved from train by a fixed-seed permutation."""
    name = canonical_name(name)
    (x_train, y_train, x_test, y_test), source = locate_raw(name, data_dir, allow_download)
    if not 0 <= validation_size < len(y_train):
        raise DatasetError(f"validation_size must be in [0, {len(y_train)}), got {validation_size}")
    order = np.random.default_rng(split_seed).permutation(len(y_train))
    val_idx, train_idx = order[:validation_size], order[validation_size:]
    return Dataset(
        name=name,
        train=_to_split(x_train[train_idx], y_train[train_idx]),
        validation=_to_split(x_train[val_idx], y_train[val_idx]),
        test=_to_split(x_test, y_test),
        source=source,
    )


def batches(split: Split, batch_size: int, *, shuffle_seed: int | None = None
            ) -> Iterable[tuple[np.ndarray, np.ndarray]]:
    """Yield (images, labels) mini-batches; shuffled with ``shuffle_seed`` when given."""
    order = (np.arange(len(split)) if shuffle_seed is None
             else np.random.default_rng(shuffle_seed).permutation(len(split)))
    for start in range(0, len(split), batch_size):
        index = order[start:start + batch_size]
        yield split.images[index], split.labels[index]


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as a gzip'd IDX file (used by tests to make small fixtures)."""
    array = np.asarray(array, dtype=np.uint8)
    magic = _IDX_MAGIC["images" if array.ndim == 3 else "labels"]
    header = struct.pack(">I" + "I" * array.ndim, magic, *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.tobytes())


__all__: Sequence[str] = ("Dataset", "DatasetError", "Split", "load_dataset", "locate_raw",
                          "read_idx", "write_idx", "batches", "canonical_name", "DATASETS")


def sample_test_images(n_test: int, n_images: int, seed: int) -> tuple[int, ...]:
    """``n_images`` test indices drawn with ``seed``, sorted. The first n of one seeded
    permutation, so a smaller sample is part of a larger one with the same seed (a run on 100
    images shares them with a run on 200)."""
    if not 1 <= n_images <= n_test:
        raise ValueError(f"--n-images must be between 1 and the test set's {n_test}; got "
                         f"{n_images}")
    order = np.random.default_rng([seed, 7]).permutation(n_test)
    return tuple(int(i) for i in np.sort(order[:n_images]))
