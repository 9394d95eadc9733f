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
    from refprune.backends import _cupy, _jax, _torch

    reference = _public_methods(_base.Generator)
    assert set(GENERATOR) <= set(reference)
    for cls in (_base.ReferenceGenerator, _torch.TorchGenerator, _cupy.CupyGenerator, _jax.JaxGenerator):
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
