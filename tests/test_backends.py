"""The backend adapters: one interface, the registry, and the random streams."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from refprune import backends
from refprune.backends import _base

PUBLIC = ("asarray", "to_numpy", "synchronize", "rng", "dtype")
GENERATOR = ("uniform", "normal", "permutation", "state", "set_state")


def _public_methods(cls):
    return {n: inspect.signature(getattr(cls, n)) for n in dir(cls) if not n.startswith("_") and callable(getattr(cls, n))}


def test_every_adapter_has_the_same_methods_and_signatures():
    """Checked on the classes, so adapters whose library or device is missing count too."""
    classes = {name: backends._adapter_class(name) for name in backends.NAMES}
    reference = _public_methods(_base.Backend)
    assert set(PUBLIC) <= set(reference)
    for name, cls in classes.items():
        assert cls.name == name
        assert _public_methods(cls) == reference, f"adapter {name} differs from the Backend interface"


def test_every_generator_has_the_same_methods_and_signatures():
    """Every Generator class of every registered adapter's module, so a new backend's generator counts too."""
    modules = {inspect.getmodule(backends._adapter_class(name)) for name in backends.NAMES}
    generators = {cls for module in modules | {_base} for cls in vars(module).values()
                  if isinstance(cls, type) and issubclass(cls, _base.Generator) and cls is not _base.Generator}
    assert {"ReferenceGenerator", "TorchGenerator", "CupyGenerator", "JaxGenerator"} <= {c.__name__ for c in generators}
    reference = _public_methods(_base.Generator)
    assert set(GENERATOR) <= set(reference)
    for cls in generators:
        assert _public_methods(cls) == reference, f"{cls.__name__} differs from the Generator interface"


def test_unknown_backend_lists_the_known_names():
    with pytest.raises(ValueError, match="unknown backend 'jaxx'; known backends: numpy, array-api-strict, torch"):
        backends.get("jaxx")


def test_available_lists_numpy_and_only_what_runs():
    names = backends.available()
    assert "numpy" in names
    for name in backends.NAMES:
        assert (name in names) == (backends.unavailable_reason(name) is None)


def test_adapters_round_trip_host_arrays(backend, dtype):
    host = np.arange(6.0).reshape(2, 3).T  # non-contiguous on purpose
    x = backend.asarray(host, dtype=dtype)
    assert str(x.dtype).endswith(dtype)
    np.testing.assert_array_equal(backend.to_numpy(x), host)
    assert backend.to_numpy(backend.asarray(np.asarray(0.5))).shape == ()
    backend.synchronize()


def test_reference_stream_is_identical_on_every_backend(backend):
    want = np.random.Generator(np.random.PCG64(7))
    g = backend.rng(7, stream="reference")
    np.testing.assert_array_equal(backend.to_numpy(g.uniform((3, 4), "float64")), want.uniform(0.0, 1.0, (3, 4)))
    np.testing.assert_array_equal(backend.to_numpy(g.normal(5, "float64")), want.standard_normal(5))
    np.testing.assert_array_equal(backend.to_numpy(g.permutation(9)), want.permutation(9))


@pytest.mark.parametrize("stream", ["reference", "native"])
def test_generator_state_restores_the_stream(backend, stream):
    g = backend.rng(3, stream=stream)
    try:
        saved = g.state()
    except NotImplementedError:
        pytest.skip(f"{backend.name}'s native generator cannot be saved")
    first = backend.to_numpy(g.uniform(4, "float32", 2.0, 3.0))
    g.set_state(saved)
    np.testing.assert_array_equal(backend.to_numpy(g.uniform(4, "float32", 2.0, 3.0)), first)
    assert np.all((first >= 2.0) & (first <= 3.0))


@pytest.mark.parametrize("seed", [-1, 1.5, True, "0"])
def test_bad_seed_is_a_value_error(seed):
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        backends.get("numpy").rng(seed)


def test_bad_stream_and_dtype_name_the_fix():
    b = backends.get("numpy")
    with pytest.raises(ValueError, match="stream must be 'native' or 'reference'"):
        b.rng(0, stream="host")
    with pytest.raises(ValueError, match="unknown dtype 'float8'"):
        b.asarray([1.0], dtype="float8")


# ---------------------------------------------------------------- dtypes, and the CuPy adapter on the CPU


def _dtype_objects():
    """The same dtype as every library spells it: name, NumPy dtype and scalar type, adapters' xp dtypes."""
    objects = ["float32", np.dtype("float32"), np.float32]
    for name in backends.NAMES:
        if backends.unavailable_reason(name) is None:
            objects.append(backends.get(name).dtype("float32"))
    return objects


def test_dtype_name_reads_every_librarys_dtype():
    """``str(np.float32)`` is "<class 'numpy.float32'>": no name (CuPy's dtypes are these types)."""
    for dtype in _dtype_objects():
        assert _base.dtype_name(dtype) == "float32", dtype
    assert _base.dtype_name(np.bool_) == "bool"
    torch = pytest.importorskip("torch")
    assert _base.dtype_name(torch.float64) == "float64"


@pytest.mark.parametrize("dtype", _dtype_objects(), ids=str)
def test_adapters_resolve_any_librarys_dtype(backend, dtype):
    x = backend.asarray([1.0, 2.0], dtype=dtype)
    assert str(x.dtype).endswith("float32")


class _FakeCupy:
    """The pieces of CuPy that the adapter touches, on NumPy, so its code runs on the CPU.

    Like CuPy's, the namespace's dtypes are NumPy scalar types (``array_api_compat.numpy``
    stands in for ``array_api_compat.cupy``). ``current`` is the device in use, as in
    ``with cupy.cuda.Device(1):``; ``made_on`` records it for each generator made.
    """

    def __init__(self, count=2):
        from types import SimpleNamespace

        fake = self
        self.current, self.made_on = 0, []

        class Device:
            def __init__(self, index=0):
                self.id = int(index)

            def __int__(self):
                return self.id

            def __enter__(self):
                self._previous, fake.current = fake.current, self.id
                return self

            def __exit__(self, *exc):
                fake.current = self._previous
                return False

            def synchronize(self):
                pass

        def default_rng(seed):
            fake.made_on.append(fake.current)
            rng = np.random.default_rng(seed)  # CuPy's Generator has distributions only: no permutation
            return SimpleNamespace(random=rng.random, standard_normal=rng.standard_normal, integers=rng.integers)

        self.cuda = SimpleNamespace(Device=Device, runtime=SimpleNamespace(getDeviceCount=lambda: count))
        self.random = SimpleNamespace(default_rng=default_rng)
        self.asarray, self.asnumpy, self.argsort = np.asarray, np.asarray, np.argsort


@pytest.fixture
def fake_cupy(monkeypatch):
    import sys

    import array_api_compat.numpy

    fake = _FakeCupy()
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setitem(sys.modules, "array_api_compat.cupy", array_api_compat.numpy)
    return fake


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cupy_native_generator_takes_dtype_names_and_objects(fake_cupy, dtype):
    """Issue 15: ``normal`` raised ``data type "<class 'numpy.float32'>" not understood``."""
    b = backends.get("cupy")
    for spelled in (dtype, b.dtype(dtype), np.dtype(dtype)):
        g = b.rng(5)
        want = np.random.default_rng(5)
        np.testing.assert_array_equal(g.normal((2, 3), spelled), want.standard_normal((2, 3), dtype=dtype))
        u = g.uniform(4, spelled, 2.0, 3.0)
        assert u.dtype == np.dtype(dtype) and np.all((u >= 2.0) & (u <= 3.0))
        assert sorted(b.to_numpy(g.permutation(5)).tolist()) == [0, 1, 2, 3, 4]
    assert b.asarray([1.0], dtype=dtype).dtype == np.dtype(dtype)


def test_cupy_native_permutation_is_uniform(fake_cupy):
    """CuPy's ``Generator`` has no ``permutation``: the adapter orders uniform keys instead."""
    g = backends.get("cupy").rng(0)
    firsts = np.bincount([int(g.permutation(4)[0]) for _ in range(4000)], minlength=4)
    assert np.all(np.abs(firsts - 1000) < 150), firsts  # each first element ~ Binomial(4000, 1/4): sd 27


def test_cupy_generator_is_made_on_the_backends_device(fake_cupy):
    b = backends.get("cupy", device=1)
    b.rng(0)
    assert fake_cupy.made_on == [1]


@pytest.mark.parametrize(("device", "index"), [(None, 0), (1, 1), ("1", 1), ("cuda", 0), ("cuda:1", 1)])
def test_cupy_device_takes_numbers_and_cuda_names(fake_cupy, device, index):
    assert backends.get("cupy", device=device).device.id == index


@pytest.mark.parametrize("device", ["cpu", "cuda:x", "cuda:2"])
def test_cupy_bad_device_is_a_value_error(fake_cupy, device):
    with pytest.raises(ValueError, match="device="):
        backends.get("cupy", device=device)


def test_torch_cuda_device_names_its_index(monkeypatch):
    """``torch.device("cuda") != torch.device("cuda:0")``: the adapter's device is the arrays' one."""
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert backends.get("torch-cuda").device == torch.device("cuda", 0)
    assert backends.get("torch-cuda", device="cuda:1").device == torch.device("cuda", 1)


def test_a_stream_that_cannot_be_saved_still_finishes_but_does_not_resume(tmp_path, monkeypatch):
    """CuPy's native generator has no state to save: the run finishes; resuming inside a phase is refused."""
    from refprune import methods
    from refprune.backends._base import ReferenceGenerator

    def no_state(self):
        raise NotImplementedError("cannot be saved")

    monkeypatch.setattr(ReferenceGenerator, "state", no_state)
    out = tmp_path / "run"
    settings = {"data": "digits", "subset": 60, "epochs": 2, "batch_size": 30, "quiet": True, "threads": 1,
                "model": "mlp-300-100", "amounts": "0,0.5"}
    methods.run("magnitude", out=str(out), checkpoint_every=1, **settings)
    assert (out / "result.json").exists()
    with pytest.raises(ValueError, match="could not be saved; run with --stream reference"):
        methods.run("magnitude", out=str(out), resume=str(out), **{**settings, "epochs": 3})
