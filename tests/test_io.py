"""refprune.io: atomic writes, JSON / CSV results, and pickle-free checkpoints."""

from __future__ import annotations

import csv
import io as stdio
import json
import os
import pickle

import numpy as np
import pytest

from refprune import backends, data
from refprune import io as rio

# --------------------------------------------------------------------------------------
# atomic_write_bytes
# --------------------------------------------------------------------------------------


def test_atomic_write_creates_and_replaces(tmp_path):
    path = tmp_path / "f.bin"
    rio.atomic_write_bytes(path, b"one")
    assert path.read_bytes() == b"one"
    rio.atomic_write_bytes(str(path), b"two, longer")
    assert path.read_bytes() == b"two, longer"
    assert sorted(os.listdir(tmp_path)) == ["f.bin"]
    assert (path.stat().st_mode & 0o777) == 0o644


def test_atomic_write_keeps_the_mode_of_the_file_it_replaces(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")
    path.chmod(0o600)
    rio.atomic_write_bytes(path, b"new")
    assert (path.stat().st_mode & 0o777) == 0o600


@pytest.mark.parametrize("fail_at", ["replace", "fsync", "chmod"])
def test_atomic_write_failure_leaves_old_file_and_no_temp(tmp_path, monkeypatch, fail_at):
    path = tmp_path / "f.bin"
    rio.atomic_write_bytes(path, b"old contents")

    def boom(*args, **kwargs):
        raise OSError(f"simulated failure in {fail_at}")

    monkeypatch.setattr(rio.os, fail_at, boom)
    with pytest.raises(OSError, match="simulated failure"):
        rio.atomic_write_bytes(path, b"new contents")
    monkeypatch.undo()
    assert path.read_bytes() == b"old contents"
    assert sorted(os.listdir(tmp_path)) == ["f.bin"]


def test_atomic_write_of_a_non_bytes_object_leaves_no_temp(tmp_path):
    with pytest.raises(TypeError):
        rio.atomic_write_bytes(tmp_path / "f.bin", "a str, not bytes")
    assert os.listdir(tmp_path) == []


def test_atomic_write_into_missing_directory_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        rio.atomic_write_bytes(tmp_path / "nope" / "f.bin", b"x")


# --------------------------------------------------------------------------------------
# JSON and CSV
# --------------------------------------------------------------------------------------


def test_json_round_trip_with_numpy_values(tmp_path):
    path = tmp_path / "result.json"
    obj = {
        "zeta": 1,
        "alpha": np.float32(0.5),
        "count": np.int64(7),
        "flag": np.bool_(True),
        "curve": np.array([1.0, 2.5]),
        "nested": {"grid": np.arange(4).reshape(2, 2), "path": tmp_path},
    }
    rio.write_json(path, obj)
    text = path.read_text()
    assert text.startswith('{\n  "zeta": 1,\n  "alpha": 0.5')  # indent 2, given key order
    assert text.endswith("\n")
    back = rio.read_json(path)
    assert back == {
        "zeta": 1,
        "alpha": 0.5,
        "count": 7,
        "flag": True,
        "curve": [1.0, 2.5],
        "nested": {"grid": [[0, 1], [2, 3]], "path": str(tmp_path)},
    }
    assert type(back["count"]) is int and type(back["flag"]) is bool


def test_json_unserializable_is_type_error_and_writes_nothing(tmp_path):
    path = tmp_path / "result.json"
    with pytest.raises(TypeError, match="cannot write object"):
        rio.write_json(path, {"x": object()})
    assert os.listdir(tmp_path) == []


def test_read_json_malformed_names_the_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"a": ')
    with pytest.raises(ValueError, match="not valid JSON") as info:
        rio.read_json(path)
    assert str(path) in str(info.value)


def test_write_csv_header_union_and_values(tmp_path):
    path = tmp_path / "metrics.csv"
    rows = [
        {"step": 0, "loss": np.float64(2.5)},
        {"step": 1, "loss": 1.25, "acc": np.float32(0.5)},
        {"acc": 0.75, "step": 2, "note": None},
    ]
    rio.write_csv(path, rows)
    text = path.read_text()
    assert text.splitlines()[0] == "step,loss,acc,note"
    got = list(csv.DictReader(stdio.StringIO(text)))
    assert got == [
        {"step": "0", "loss": "2.5", "acc": "", "note": ""},
        {"step": "1", "loss": "1.25", "acc": "0.5", "note": ""},
        {"step": "2", "loss": "", "acc": "0.75", "note": ""},
    ]


def test_write_csv_empty_and_wrong_rows(tmp_path):
    path = tmp_path / "m.csv"
    rio.write_csv(path, [])
    assert path.read_bytes() == b""
    with pytest.raises(TypeError, match="rows must be dicts"):
        rio.write_csv(path, [{"a": 1}, [1, 2]])


# --------------------------------------------------------------------------------------
# Checkpoints: round trip
# --------------------------------------------------------------------------------------


def _example(rng_state=None):
    r = np.random.default_rng(0)
    params = {
        "0.weight": r.standard_normal((5, 4)).astype(np.float32),
        "0.bias": r.standard_normal(4),
        "gate/log_alpha": r.standard_normal(3).astype(np.float16),
        "counts": np.arange(6, dtype=np.int64).reshape(2, 3),
        "scalar": np.array(3.25),
        "empty": np.zeros((0, 3), np.float32),
        "fortran": np.asfortranarray(r.standard_normal((3, 2))),
        "big_endian": np.arange(3, dtype=">i4"),
    }
    masks = {"0.weight": r.uniform(size=(5, 4)) > 0.5}
    optimizer_state = {
        "m": {k: np.full_like(v, 0.5) for k, v in params.items() if k != "counts"},
        "v": {"0.weight": np.full((5, 4), 1e-8, np.float32)},
        "t": 17,
        "lr": 0.001,
        "nesterov": False,
        "name": "adam",
        "eps": np.float32(1e-7),
        "best": float("-inf"),
        "loss_scale": None,
        "momentum_buffer": np.ones(3),
    }
    config = {"method": "l0", "lr": 0.1, "layers": [300, 100], "nested": {"beta": 2 / 3, "ok": True}, "none": None}
    return {
        "params": params,
        "masks": masks,
        "optimizer_state": optimizer_state,
        "rng_state": rng_state,
        "step": 1234,
        "config": config,
    }


def _assert_same_arrays(got, expected):
    assert list(got) == list(expected)
    for key, value in expected.items():
        if isinstance(value, dict):
            _assert_same_arrays(got[key], value)
            continue
        g = got[key]
        assert type(g) is type(value), key
        if isinstance(value, (np.ndarray, np.generic)):
            assert g.dtype == value.dtype and g.shape == value.shape, key
            assert g.tobytes() == value.tobytes(), key
        else:
            assert g == value, key


def test_checkpoint_round_trips_exactly(tmp_path):
    be = backends.get("numpy")
    gen = be.rng(3, "reference")
    gen.uniform((4,))
    spec = _example(rng_state=gen.state())
    path = tmp_path / "ckpt.npz"
    rio.save_checkpoint(path, **spec)
    ckpt = rio.load_checkpoint(path)
    assert isinstance(ckpt, rio.Checkpoint)
    _assert_same_arrays(ckpt.params, spec["params"])
    _assert_same_arrays(ckpt.masks, spec["masks"])
    _assert_same_arrays(ckpt.optimizer_state, spec["optimizer_state"])
    assert ckpt.step == 1234 and type(ckpt.step) is int
    assert ckpt.config == spec["config"]
    assert ckpt.version == rio.VERSION
    # The generator state brings the stream back.
    expected_next = be.to_numpy(gen.normal((5,)))
    restored = be.rng(0, "reference")
    restored.set_state(ckpt.rng_state)
    np.testing.assert_array_equal(be.to_numpy(restored.normal((5,))), expected_next)
    assert sorted(os.listdir(tmp_path)) == ["ckpt.npz"]


def test_checkpoint_optional_parts_stay_none_or_empty(tmp_path):
    path = tmp_path / "c.npz"
    rio.save_checkpoint(path, params={"w": np.ones(2)})
    ckpt = rio.load_checkpoint(path)
    assert ckpt.masks is None and ckpt.optimizer_state is None and ckpt.rng_state is None and ckpt.config is None
    assert ckpt.step == 0
    rio.save_checkpoint(path, params={}, masks={}, optimizer_state={"m": {}}, config={})
    ckpt = rio.load_checkpoint(path)
    assert ckpt.params == {} and ckpt.masks == {} and ckpt.optimizer_state == {"m": {}} and ckpt.config == {}


def test_checkpoint_is_a_plain_npz_with_readable_member_names(tmp_path):
    path = tmp_path / "c.npz"
    rio.save_checkpoint(path, params={"w": np.ones(2)}, optimizer_state={"m": {"w": np.zeros(2)}, "t": 1})
    with np.load(path, allow_pickle=False) as npz:
        assert set(npz.files) == {"__refprune_checkpoint__", "params/w", "optimizer_state/m/w"}
        assert npz["__refprune_checkpoint__"].dtype == np.uint8
        manifest = json.loads(npz["__refprune_checkpoint__"].tobytes())
    assert manifest["format"] == "refprune-checkpoint" and manifest["version"] == rio.VERSION


def test_checkpoint_path_is_used_as_given(tmp_path):
    path = tmp_path / "state.ckpt"
    rio.save_checkpoint(path, params={"w": np.ones(2)})
    assert os.listdir(tmp_path) == ["state.ckpt"]
    assert rio.load_checkpoint(path).params["w"].tolist() == [1.0, 1.0]


# --------------------------------------------------------------------------------------
# Checkpoints: bad input on save
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "err", "match"),
    [
        ({"params": {"w": np.array([object()])}}, TypeError, "object arrays"),
        ({"params": {"w": np.ones(2)}, "masks": {"w": [None, 1]}}, TypeError, "object arrays"),
        ({"params": {"w": np.ones(2)}, "config": {"f": object()}}, TypeError, "JSON"),
        ({"params": {"w": np.ones(2)}, "config": [1, 2]}, TypeError, "config must be a dict"),
        ({"params": {"w": np.ones(2)}, "step": -1}, ValueError, "step"),
        ({"params": {"w": np.ones(2)}, "step": 1.5}, ValueError, "step"),
        ({"params": {"w": np.ones(2)}, "rng_state": {"a": 1}}, TypeError, "rng_state"),
        ({"params": {"w": np.ones(2)}, "optimizer_state": {"m/x": np.ones(2)}}, ValueError, "may not contain"),
        ({"params": {"": np.ones(2)}}, TypeError, "non-empty str"),
        ({"params": [np.ones(2)]}, TypeError, "params must be a dict"),
    ],
)
def test_save_checkpoint_rejects_bad_input_and_writes_nothing(tmp_path, kwargs, err, match):
    with pytest.raises(err, match=match):
        rio.save_checkpoint(tmp_path / "c.npz", **kwargs)
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------------------
# Checkpoints: failure midway keeps the older one
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("fail_at", ["replace", "fsync"])
def test_failed_checkpoint_write_keeps_the_older_checkpoint(tmp_path, monkeypatch, fail_at):
    path = tmp_path / "ckpt.npz"
    rio.save_checkpoint(path, params={"w": np.arange(3.0)}, step=1)

    def boom(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(rio.os, fail_at, boom)
    with pytest.raises(OSError, match="disk full"):
        rio.save_checkpoint(path, params={"w": np.arange(3.0) * 10}, step=2)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["ckpt.npz"]
    ckpt = rio.load_checkpoint(path)
    assert ckpt.step == 1
    np.testing.assert_array_equal(ckpt.params["w"], np.arange(3.0))


def test_interrupted_checkpoint_write_keeps_the_older_checkpoint(tmp_path, monkeypatch):
    """A KeyboardInterrupt while the bytes are written cleans up too."""
    path = tmp_path / "ckpt.npz"
    rio.save_checkpoint(path, params={"w": np.arange(3.0)}, step=1)
    real_fdopen = os.fdopen

    class Interrupting:
        def __init__(self, f):
            self._f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._f.close()

        def write(self, b):
            self._f.write(b[: len(b) // 2])
            raise KeyboardInterrupt

    monkeypatch.setattr(rio.os, "fdopen", lambda fd, mode: Interrupting(real_fdopen(fd, mode)))
    with pytest.raises(KeyboardInterrupt):
        rio.save_checkpoint(path, params={"w": np.arange(3.0) * 10}, step=2)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["ckpt.npz"]
    assert rio.load_checkpoint(path).step == 1


# --------------------------------------------------------------------------------------
# Checkpoints: corrupted and foreign files
# --------------------------------------------------------------------------------------


def _raw_npz(path, **members):
    buf = stdio.BytesIO()
    np.savez(buf, **members)
    path.write_bytes(buf.getvalue())
    return path


def _manifest_member(**overrides):
    manifest = {
        "format": "refprune-checkpoint",
        "version": 1,
        "step": 0,
        "rng_state": None,
        "config": None,
        "params": ["w"],
        "masks": None,
        "optimizer_state": None,
    }
    manifest.update(overrides)
    return np.frombuffer(json.dumps(manifest).encode(), dtype=np.uint8)


def _saved(tmp_path):
    path = tmp_path / "ckpt.npz"
    rio.save_checkpoint(
        path,
        params={"w": np.linspace(0.0, 1.0, 4096).astype(np.float64)},
        optimizer_state={"m": {"w": np.zeros(4096)}, "t": 3},
        step=9,
    )
    return path


def _corrupt(tmp_path, kind):
    path = _saved(tmp_path)
    raw = path.read_bytes()
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("this is not a checkpoint\n")
    elif kind == "npy":
        buf = stdio.BytesIO()
        np.save(buf, np.ones(3))
        path.write_bytes(buf.getvalue())
    elif kind == "pickle":
        path.write_bytes(pickle.dumps({"w": [1, 2]}))
    elif kind.startswith("truncated"):
        keep = {"truncated-half": len(raw) // 2, "truncated-tail": len(raw) - 10, "truncated-head": 30}[kind]
        path.write_bytes(raw[:keep])
    elif kind == "flipped-data":
        offset = raw.find(np.linspace(0.0, 1.0, 4096).tobytes()[8000:8016])
        assert offset > 0
        payload = bytearray(raw)
        payload[offset] ^= 0xFF
        path.write_bytes(bytes(payload))
    elif kind == "foreign-npz":
        _raw_npz(path, w=np.ones(3), b=np.zeros(2))
    elif kind == "missing-marker":
        _raw_npz(path, __refprune_checkpoint__=_manifest_member(format="something-else"), **{"params/w": np.ones(2)})
    elif kind == "bad-version":
        _raw_npz(path, __refprune_checkpoint__=_manifest_member(version=99), **{"params/w": np.ones(2)})
    elif kind == "version-not-int":
        _raw_npz(path, __refprune_checkpoint__=_manifest_member(version="1"), **{"params/w": np.ones(2)})
    elif kind == "manifest-not-json":
        _raw_npz(path, __refprune_checkpoint__=np.frombuffer(b"{not json", np.uint8), **{"params/w": np.ones(2)})
    elif kind == "missing-member":
        _raw_npz(path, __refprune_checkpoint__=_manifest_member(params=["w", "b"]), **{"params/w": np.ones(2)})
    elif kind == "extra-member":
        _raw_npz(path, __refprune_checkpoint__=_manifest_member(), **{"params/w": np.ones(2), "params/x": np.ones(1)})
    elif kind == "bad-step":
        _raw_npz(path, __refprune_checkpoint__=_manifest_member(step=-3), **{"params/w": np.ones(2)})
    elif kind == "bad-optimizer-entry":
        entry = [{"key": "t", "kind": "mystery"}]
        _raw_npz(path, __refprune_checkpoint__=_manifest_member(optimizer_state=entry), **{"params/w": np.ones(2)})
    else:
        raise AssertionError(kind)
    return path


CORRUPTIONS = {
    "empty": "not an .npz",
    "text": "not an .npz",
    "npy": "not an .npz",
    "pickle": "not an .npz",
    "truncated-half": "corrupted or truncated",
    "truncated-tail": "corrupted or truncated",
    "truncated-head": "corrupted or truncated",
    "flipped-data": "corrupted or truncated",
    "foreign-npz": "__refprune_checkpoint__",
    "missing-marker": "marker",
    "bad-version": "newer",
    "version-not-int": "version",
    "manifest-not-json": "manifest",
    "missing-member": "'params/b'",
    "extra-member": "unexpected members",
    "bad-step": "step",
    "bad-optimizer-entry": "mystery",
}


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_corrupted_or_foreign_checkpoint_is_value_error_naming_the_file(tmp_path, kind):
    path = _corrupt(tmp_path, kind)
    with pytest.raises(ValueError, match=CORRUPTIONS[kind]) as info:
        rio.load_checkpoint(path)
    assert str(path) in str(info.value)
    assert "not a readable refprune checkpoint" in str(info.value)


def test_missing_checkpoint_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        rio.load_checkpoint(tmp_path / "none.npz")


def test_object_array_is_refused_without_unpickling(tmp_path, monkeypatch):
    path = tmp_path / "evil.npz"
    # A well-formed manifest whose listed member is an object array (np.savez pickles it).
    _raw_npz(path, __refprune_checkpoint__=_manifest_member(), **{"params/w": np.array([{"a": 1}, None], dtype=object)})

    def no_pickle(*args, **kwargs):
        raise AssertionError("load_checkpoint unpickled something")

    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(pickle, "loads", no_pickle)
    with pytest.raises(ValueError, match="[Oo]bject arrays") as info:
        rio.load_checkpoint(path)
    assert str(path) in str(info.value)


# --------------------------------------------------------------------------------------
# Resume: batches + reference stream + checkpoint continue the same trajectory
# --------------------------------------------------------------------------------------


def _sgd_epochs(params, rng, ds, epochs, lr=0.5):
    """Softmax regression by hand on NumPy: one full pass of shuffled minibatches an epoch."""
    be = backends.get("numpy")
    w, b = params["w"], params["b"]
    for _ in range(epochs):
        for xb, yb in data.batches(ds.x_train, ds.y_train, 32, backend=be, rng=rng, dtype="float64"):
            x = xb.reshape(xb.shape[0], -1)
            logits = x @ w + b
            logits = logits - logits.max(axis=1, keepdims=True)
            p = np.exp(logits)
            p /= p.sum(axis=1, keepdims=True)
            p[np.arange(len(yb)), yb] -= 1.0
            p /= len(yb)
            w = w - lr * (x.T @ p)
            b = b - lr * p.sum(axis=0)
    return {"w": w, "b": b}


def test_resume_from_checkpoint_equals_straight_through(tmp_path):
    ds = data.load("synthetic", n_synthetic=200)
    be = backends.get("numpy")
    init = {"w": np.zeros((784, 10)), "b": np.zeros(10)}

    straight = _sgd_epochs(dict(init), be.rng(1, "reference"), ds, epochs=4)

    rng = be.rng(1, "reference")
    half = _sgd_epochs(dict(init), rng, ds, epochs=2)
    path = tmp_path / "ckpt.npz"
    rio.save_checkpoint(path, params=half, rng_state=rng.state(), step=2, config={"lr": 0.5})
    ckpt = rio.load_checkpoint(path)
    resumed_rng = be.rng(999, "reference")
    resumed_rng.set_state(ckpt.rng_state)
    resumed = _sgd_epochs(ckpt.params, resumed_rng, ds, epochs=4 - ckpt.step)

    for key in straight:
        assert resumed[key].tobytes() == straight[key].tobytes(), key
    assert not np.array_equal(straight["w"], half["w"])


def test_extra_section_round_trips_and_version_1_files_still_read(tmp_path):
    path = tmp_path / "ckpt.npz"
    extra = {"rewind": {"fc1.w": np.arange(6.0).reshape(2, 3)}, "round": 3, "best": float("inf"), "order": np.arange(4)}
    rio.save_checkpoint(path, params={"w": np.ones(2)}, extra=extra)
    ckpt = rio.load_checkpoint(path)
    np.testing.assert_array_equal(ckpt.extra["rewind"]["fc1.w"], extra["rewind"]["fc1.w"])
    np.testing.assert_array_equal(ckpt.extra["order"], np.arange(4))
    assert ckpt.extra["round"] == 3 and ckpt.extra["best"] == float("inf")
    # a version-1 file (written before ``extra`` existed) has no "extra" in its manifest
    with np.load(path, allow_pickle=False) as npz:
        members = {k: np.array(npz[k]) for k in npz.files if not k.startswith("extra/")}
    manifest = json.loads(members["__refprune_checkpoint__"].tobytes().decode())
    manifest.pop("extra")
    manifest["version"] = 1
    members["__refprune_checkpoint__"] = np.frombuffer(json.dumps(manifest).encode(), dtype=np.uint8)
    old = tmp_path / "v1.npz"
    np.savez(old, **members)
    assert rio.load_checkpoint(old).extra is None
    with pytest.raises(ValueError, match="keys may not contain"):
        rio.save_checkpoint(path, params={"w": np.ones(2)}, extra={"a/b": 1})
