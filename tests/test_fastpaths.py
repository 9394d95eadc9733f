"""Every registered fast path equals the reference path on the same inputs.

For each op in ``refprune._dispatch`` and each backend that registers it, the public
function is called twice, once normally (fast path on) and once inside
``reference_only()``, and the results must agree: masks bit for bit, floating results
within the tolerance table. The selection's bracketing, chunking and retry are
exercised on small arrays by shrinking its size constants (``band`` fixture). The
fast functions are also called directly on inputs they do not handle, where they must
return ``None`` so that the reference runs.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from array_api_compat import array_namespace

import refprune as rp
from refprune import _dispatch, backends
from refprune._array import clip
from refprune._dispatch import lookup, reference_only
from refprune.backends import _numba_kernels, _numpy_fast, _select, _torch_fast
from refprune.conformance.tolerances import assert_close
from refprune.nn import functional as F
from refprune.nn import optim, train
from refprune.regularizers import l0_penalty_and_grad

OPS = (
    "mask_keep",
    "global_mask_keep",
    "hard_concrete_forward",
    "hard_concrete_backward",
    "conv2d",
    "conv2d_grad",
    "conv2d_vjp",
    "max_pool2d",
    "max_pool2d_grad",
    "max_pool2d_vjp",
    "adam_update",
    "l0_decay_terms",
    "relu_grad",
    "clip",
    "add_scaled",
    "nm_keep",
    "block_keep",
    "sparsegpt_columns",
)


def both(fn, *args, **kwargs):
    """``(fast, reference)`` results of one call."""
    fast = fn(*args, **kwargs)
    with reference_only():
        ref = fn(*args, **kwargs)
    return fast, ref


def _adapter(name):
    reason = backends.unavailable_reason(name)
    if reason is not None:
        pytest.skip(f"backend {name}: {reason}")
    return backends.get(name)


@pytest.fixture(params=[n for n in backends.DEFAULT_TEST_NAMES if n != "array-api-strict"])
def backend(request):
    """The backends that register fast paths (array-api-strict registers none: nothing to compare)."""
    return _adapter(request.param)


@pytest.fixture(params=backends.DEFAULT_TEST_NAMES)
def any_backend(request):
    return _adapter(request.param)


def need(backend, op):
    if lookup(backend.xp, op) is None:
        pytest.skip(f"backend {backend.name} registers no fast path for {op}")


def host(backend, x):
    return np.asarray(backend.to_numpy(x))


@pytest.fixture(params=["direct", "band"])
def band(request, monkeypatch):
    """``band``: force the bracket-and-band selection with tiny chunks on small arrays."""
    if request.param == "band":
        monkeypatch.setattr(_numpy_fast, "_SMALL", 0)
        monkeypatch.setattr(_numpy_fast, "SAMPLE", 64)
        monkeypatch.setattr(_select, "SAMPLE", 64)
        monkeypatch.setattr(_numpy_fast, "_MIN_STRIDE", 1)
        monkeypatch.setattr(_numpy_fast, "_CHUNK_BYTES", 64)
    return request.param


# ----------------------------------------------------------------------------- registry


def test_every_registered_op_is_tested_here():
    ops = {op for _, op in _dispatch.registered()}
    assert ops <= set(OPS), f"untested fast paths: {sorted(ops - set(OPS))}"
    names = {name for name, _ in _dispatch.registered()}
    assert {"array_api_compat.numpy", "array_api_compat.torch"} <= names


def test_register_lookup_unregister_and_switches(monkeypatch):
    NS = types.SimpleNamespace(__name__="test.namespace")

    def fn(*args, **kwargs):
        return "fast"

    assert lookup(NS, "mask_keep") is None
    _dispatch.register("test.namespace", "mask_keep", fn)
    try:
        assert lookup(NS, "mask_keep") is fn
        with reference_only():
            assert lookup(NS, "mask_keep") is None
            with reference_only():
                assert lookup(NS, "mask_keep") is None
            assert lookup(NS, "mask_keep") is None
        assert lookup(NS, "mask_keep") is fn
        monkeypatch.setenv(_dispatch.ENV_VAR, "1")
        assert lookup(NS, "mask_keep") is None
        monkeypatch.setenv(_dispatch.ENV_VAR, "0")
        assert lookup(NS, "mask_keep") is fn
    finally:
        _dispatch.unregister("test.namespace", "mask_keep")
    assert lookup(NS, "mask_keep") is None


def test_register_rejects_bad_arguments():
    with pytest.raises(TypeError, match="namespace_name"):
        _dispatch.register("", "op", print)
    with pytest.raises(TypeError, match="op"):
        _dispatch.register("ns", None, print)
    with pytest.raises(TypeError, match="callable"):
        _dispatch.register("ns", "op", 3)


def test_fast_path_error_propagates_with_reference_message(any_backend):
    """NaN: the fast path declines and the reference raises its documented error."""
    w = any_backend.asarray(np.array([1.0, np.nan, 3.0]))
    for ctx in (reference_only, _nullcontext):
        with ctx(), pytest.raises(ValueError, match="w contains NaN"):
            rp.magnitude_mask(w, amount=1)


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# ----------------------------------------------------------------------------- masks


def _weights(kind, n, dtype, rng):
    if kind == "normal":
        return rng.standard_normal(n).astype(dtype)
    if kind == "ties":
        return rng.integers(-3, 4, n).astype(dtype)
    if kind == "constant":
        return np.full(n, -2.0, dtype=dtype)
    if kind == "sorted":
        return np.sort(rng.standard_normal(n)).astype(dtype)
    if kind == "inf":
        w = rng.standard_normal(n).astype(dtype)
        w[::7] = np.inf
        w[3::11] = -np.inf
        w[5::13] = -0.0
        return w
    if kind == "periodic":  # many sampled positions hold huge values: the bracket misses low, retry
        w = rng.standard_normal(n).astype(dtype) * 1e-3
        w[::16] = 1e3
        return w
    # "sampled-tiny": the sampled positions (every 8th) hold tiny values: the bracket misses high
    w = (rng.standard_normal(n) * 1e-3 + 5).astype(dtype)
    w[::8] = 1e-6
    return w


KINDS = ("normal", "ties", "constant", "sorted", "inf", "periodic", "sampled-tiny")
AMOUNTS = (0, 1, 0.1, 0.5, 0.9, 0.999, 1.0, "n-1")


@pytest.mark.parametrize("kind", KINDS)
def test_magnitude_mask_fast_equals_reference(backend, dtype, band, kind, rng):
    need(backend, "mask_keep")
    w_host = _weights(kind, 517, dtype, rng)
    w = backend.asarray(w_host)
    before = w_host.copy()
    for amount in AMOUNTS:
        amount = w_host.size - 1 if amount == "n-1" else amount
        fast, ref = both(rp.magnitude_mask, w, amount=amount)
        assert np.array_equal(host(backend, fast), host(backend, ref)), (kind, amount)
        assert int(np.count_nonzero(~host(backend, fast))) == rp.prune_count(amount, w_host.size)
    assert np.array_equal(host(backend, w), before, equal_nan=True)


@pytest.mark.parametrize("shape", [(), (0,), (1,), (3, 0), (4, 5, 6)])
def test_magnitude_mask_edge_shapes(backend, band, shape, rng):
    need(backend, "mask_keep")
    w = backend.asarray(rng.standard_normal(shape))
    n = int(np.prod(shape))
    for amount in sorted({0, n, n // 2, 0.5}):
        fast, ref = both(rp.magnitude_mask, w, amount=amount)
        assert tuple(fast.shape) == shape
        assert np.array_equal(host(backend, fast), host(backend, ref))


@pytest.mark.parametrize("kind", ["normal", "ties", "periodic"])
def test_scores_random_and_structured_masks(backend, dtype, band, kind, rng):
    need(backend, "mask_keep")
    w = backend.asarray(_weights(kind, 300, dtype, rng).reshape(20, 15))
    scores = backend.asarray(_weights(kind, 300, dtype, rng).reshape(20, 15))
    u = backend.asarray(rng.integers(0, 5, 300).astype(dtype))
    for amount in (0, 0.3, 0.75, 1.0):
        for fn, args, kw in (
            (rp.magnitude_mask, (w,), {"scores": scores}),
            (rp.random_mask, (u,), {}),
            (rp.structured_mask, (w,), {"axis": 0}),
            (rp.structured_mask, (w,), {"axis": 1, "ord": 1}),
        ):
            fast, ref = both(fn, *args, amount=amount, **kw)
            assert np.array_equal(host(backend, fast), host(backend, ref)), (fn.__name__, kw, amount)


@pytest.mark.parametrize("kind", KINDS)
def test_global_magnitude_mask_fast_equals_reference(backend, dtype, band, kind, rng):
    need(backend, "global_mask_keep")
    hosts = [_weights(kind, n, dtype, rng) for n in (200, 0, 1, 317)]
    hosts[0] = hosts[0].reshape(10, 20)
    ws = [backend.asarray(h) for h in hosts]
    total = sum(h.size for h in hosts)
    for amount in (0, 0.2, 0.5, 0.9, 1.0, total - 1, 3):
        fast, ref = both(rp.global_magnitude_mask, ws, amount=amount)
        for f, r, h in zip(fast, ref, hosts):
            assert tuple(f.shape) == h.shape
            assert np.array_equal(host(backend, f), host(backend, r)), (kind, amount)
    scores = [backend.asarray(np.abs(h) + 1) for h in hosts]
    fast, ref = both(rp.global_magnitude_mask, ws, amount=0.4, scores=scores)
    assert all(np.array_equal(host(backend, f), host(backend, r)) for f, r in zip(fast, ref))


def test_global_ties_across_arrays_prune_the_last_array_first(backend, band):
    need(backend, "global_mask_keep")
    ws = [backend.asarray(np.ones(40)), backend.asarray(np.ones(30))]
    fast, ref = both(rp.global_magnitude_mask, ws, amount=25)
    assert host(backend, fast[0]).all() and np.array_equal(host(backend, fast[1]), np.arange(30) < 5)
    assert all(np.array_equal(host(backend, f), host(backend, r)) for f, r in zip(fast, ref))


def test_global_mixed_dtypes_fall_back(backend, rng):
    need(backend, "global_mask_keep")
    ws = [backend.asarray(rng.standard_normal(50), dtype="float32"), backend.asarray(rng.standard_normal(60))]
    assert lookup(backend.xp, "global_mask_keep")(
        [backend.xp.reshape(w, (-1,)) for w in ws], 10, magnitude=True
    ) is None
    fast, ref = both(rp.global_magnitude_mask, ws, amount=0.5)
    assert all(np.array_equal(host(backend, f), host(backend, r)) for f, r in zip(fast, ref))


@pytest.mark.parametrize("where", [0, 300, 516])
def test_nan_is_reported_by_every_path(backend, band, where, rng):
    need(backend, "mask_keep")
    w_host = rng.standard_normal(517)
    w_host[where] = np.nan
    w = backend.asarray(w_host)
    fn = lookup(backend.xp, "mask_keep")
    for k in (0, 100, 517):
        assert fn(w, k, magnitude=True) is None
    with pytest.raises(ValueError, match="NaN"):
        rp.magnitude_mask(w, amount=0.3)
    with pytest.raises(ValueError, match="NaN"):
        rp.global_magnitude_mask([backend.asarray(np.ones(9)), w], amount=0.3)


def test_unsupported_mask_inputs_fall_back():
    keep = _numpy_fast._np_mask_keep
    assert keep(np.ones(5, dtype=np.float16), 2, magnitude=True) is None
    assert keep(np.ones((2, 2)), 2, magnitude=True) is None
    assert keep(np.arange(5), 2, magnitude=False) is None
    assert _numpy_fast._np_global_mask_keep([np.ones(3), [1.0, 2.0]], 1, magnitude=True) is None
    w16 = np.asarray([3.0, 1.0, 2.0, 1.0], dtype=np.float16)
    assert np.array_equal(rp.magnitude_mask(w16, amount=2), [True, False, True, False])
    torch = pytest.importorskip("torch")
    for dt in (torch.float16, torch.bfloat16):
        wt = torch.tensor([3.0, 1.0, 2.0, 1.0], dtype=dt)
        assert _torch_fast._torch_mask_keep(wt, 2, magnitude=True) is None
        assert rp.magnitude_mask(wt, amount=2).tolist() == [True, False, True, False]


@pytest.mark.parametrize("kind", ["normal", "ties", "periodic", "sampled-tiny", "inf"])
def test_vectorized_selection_for_gpu_libraries(band, kind, rng):
    """The torch-CUDA / CuPy selection, run here on torch CPU and NumPy through array-api-compat."""
    torch = pytest.importorskip("torch")
    import array_api_compat.numpy as xnp
    import array_api_compat.torch as xtorch

    hosts = [_weights(kind, n, "float64", rng) for n in (211, 0, 150)]
    n = sum(h.size for h in hosts)
    for amount in (0, 0.1, 0.5, 0.95, 1.0):
        k = rp.prune_count(amount, n)
        with reference_only():
            ref = rp.global_magnitude_mask([np.asarray(h) for h in hosts], amount=k)
        for xp, conv in ((xtorch, torch.from_numpy), (xnp, np.asarray)):
            got = _select.xp_select_keep([conv(h) for h in hosts], k, True, xp)
            assert all(np.array_equal(np.asarray(g), r) for g, r in zip(got, ref)), (xp.__name__, amount)
    nan = hosts[0].copy()
    nan[7] = np.nan
    assert _select.xp_select_keep([torch.from_numpy(nan)], 10, True, xtorch) is None


# ----------------------------------------------------------------------------- hard concrete


def _gate_inputs(rng, shape_la, shape_u, dtype):
    la = rng.normal(0.0, 3.0, shape_la).astype(dtype)
    u = rng.uniform(0.0, 1.0, shape_u).astype(dtype)
    flat = u.reshape(-1)
    flat[: min(4, flat.size)] = [0.0, 1.0, 0.0, 1.0][: min(4, flat.size)]
    return la, u


SHAPES = [((37,), (37,)), ((37,), (5, 37)), ((1, 37), (4, 37)), ((), (6,)), ((), ()), ((0,), (0,)), ((3, 1), (3, 4))]


@pytest.mark.parametrize(("shape_la", "shape_u"), SHAPES)
def test_hard_concrete_sample_and_grad(backend, dtype, shape_la, shape_u, rng):
    need(backend, "hard_concrete_forward")
    la_h, u_h = _gate_inputs(rng, shape_la, shape_u, dtype)
    la, u = backend.asarray(la_h), backend.asarray(u_h)
    fast, ref = both(rp.hard_concrete_sample, la, u, beta=0.5, gamma=-0.2, zeta=1.3)
    assert tuple(fast.shape) == tuple(ref.shape) and fast.dtype == ref.dtype
    assert_close(host(backend, fast), host(backend, ref), dtype=dtype, context="hard_concrete_sample")
    dz_h = rng.normal(size=tuple(fast.shape)).astype(dtype)
    dz = backend.asarray(dz_h)
    fast, ref = both(rp.hard_concrete_sample_grad, la, u, dz, beta=0.5, gamma=-0.2, zeta=1.3)
    assert tuple(fast.shape) == tuple(la.shape) and fast.dtype == la.dtype
    assert_close(host(backend, fast), host(backend, ref), dtype=dtype, context="hard_concrete_sample_grad")
    assert np.array_equal(host(backend, la), la_h) and np.array_equal(host(backend, u), u_h)
    assert np.array_equal(host(backend, dz), dz_h)


@pytest.mark.parametrize("chunk", [None, 7])
@pytest.mark.parametrize(("shape_la", "shape_u"), [((64,), (8, 64)), ((8, 64), (8, 64))])
def test_numpy_hard_concrete_is_bit_identical(dtype, rng, chunk, shape_la, shape_u, monkeypatch):
    if chunk:  # chunks of 7 over 512 gates: the last one shorter
        monkeypatch.setattr(_numpy_fast, "_NP_CHUNK", chunk)
    la, u = _gate_inputs(rng, shape_la, shape_u, dtype)
    dz = rng.normal(size=(8, 64)).astype(dtype)
    for fn, args in ((rp.hard_concrete_sample, (la, u)), (rp.hard_concrete_sample_grad, (la, u, dz))):
        fast, ref = both(fn, *args)
        assert fast.dtype == ref.dtype and np.array_equal(fast, ref), fn.__name__


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # the reference's inf * 0 under where
def test_hard_concrete_extremes(backend, dtype):
    need(backend, "hard_concrete_forward")
    la = backend.asarray(np.array([-50.0, 50.0, 0.0, 0.0, 3.0]), dtype=dtype)
    u = backend.asarray(np.array([1.0, 0.0, 0.0, 1.0, 0.5]), dtype=dtype)
    fast, ref = both(rp.hard_concrete_sample, la, u)
    assert np.array_equal(host(backend, fast), host(backend, ref))
    assert np.isfinite(host(backend, fast)).all()
    dz = backend.asarray(np.array([1.0, np.inf, -np.inf, np.nan, 2.0]), dtype=dtype)
    fast, ref = both(rp.hard_concrete_sample_grad, la, u, dz)  # non-finite dz where clipped: 0
    assert np.array_equal(host(backend, fast), host(backend, ref), equal_nan=True)
    assert host(backend, fast)[:4].tolist() == [0.0, 0.0, 0.0, 0.0]


@pytest.mark.parametrize("bad", [-0.1, 1.5, np.nan])
def test_hard_concrete_bad_noise_falls_back_to_the_reference_error(backend, bad):
    need(backend, "hard_concrete_forward")
    la = backend.asarray(np.zeros(3))
    u = backend.asarray(np.array([0.5, bad, 0.5]))
    assert lookup(backend.xp, "hard_concrete_forward")(la, u, beta=2 / 3, gamma=-0.1, zeta=1.1) is None
    with pytest.raises(ValueError, match="uniform noise"):
        rp.hard_concrete_sample(la, u)
    with pytest.raises(ValueError, match="uniform noise"):
        rp.hard_concrete_sample_grad(la, u, backend.asarray(np.ones(3)))


def test_unsupported_gate_inputs_fall_back():
    la32, u64 = np.zeros(3, np.float32), np.full(3, 0.5)
    assert _numpy_fast._np_hc_forward(la32, u64, beta=2 / 3, gamma=-0.1, zeta=1.1) is None
    assert _numpy_fast._np_hc_forward(np.zeros(3, np.float16), np.full(3, 0.5, np.float16), beta=1, gamma=-0.1, zeta=1.1) is None
    assert _numpy_fast._np_hc_forward([0.0], [0.5], beta=1, gamma=-0.1, zeta=1.1) is None
    assert _numpy_fast._np_hc_backward(la32, u64, u64, beta=2 / 3, gamma=-0.1, zeta=1.1) is None
    fast, ref = both(rp.hard_concrete_sample, la32, u64)
    assert fast.dtype == ref.dtype and np.array_equal(fast, ref)


# ----------------------------------------------------------------------------- conv and pool


CONV = [
    # (n, c, h, w, o, k, stride, padding)
    (2, 3, 7, 9, 4, 3, 1, 0),
    (3, 2, 8, 8, 5, 3, 2, 1),
    (1, 1, 5, 6, 2, 2, 3, 2),
    (2, 2, 4, 4, 3, 4, 1, 0),
    (2, 3, 6, 5, 2, (3, 1), (2, 1), (0, 1)),
]


def _kernel(k):
    return (k, k) if isinstance(k, int) else k


@pytest.mark.parametrize("geometry", CONV)
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d_and_grad(backend, dtype, geometry, bias, rng):
    need(backend, "conv2d")
    n, c, h, w, o, k, stride, padding = geometry
    x_h = rng.normal(size=(n, c, h, w)).astype(dtype)
    w_h = rng.normal(size=(o, c, *_kernel(k))).astype(dtype)
    b_h = rng.normal(size=o).astype(dtype) if bias else None
    x, wt = backend.asarray(x_h), backend.asarray(w_h)
    b = None if b_h is None else backend.asarray(b_h)
    fast, ref = both(F.conv2d, x, wt, b, stride=stride, padding=padding)
    assert tuple(fast.shape) == tuple(ref.shape)
    assert_close(host(backend, fast), host(backend, ref), dtype=dtype, context="conv2d", scale=10)
    dy = backend.asarray(rng.normal(size=tuple(fast.shape)).astype(dtype))
    fast, ref = both(F.conv2d_grad, x, wt, b, dy, stride=stride, padding=padding)
    for name, f, r in zip(("dx", "dw", "db"), fast, ref):
        if r is None:
            assert f is None
            continue
        assert tuple(f.shape) == tuple(r.shape) and f.dtype == r.dtype
        assert_close(host(backend, f), host(backend, r), dtype=dtype, context=f"conv2d_grad {name}", scale=10)
    without_dx = both(F.conv2d_grad, x, wt, b, dy, stride=stride, padding=padding, input_grad=False)
    for grads in without_dx:  # the first layer's step: no input gradient, the same dw and db
        assert grads[0] is None
        for f, r in zip(grads[1:], fast[1:]):
            assert (f is None) == (r is None)
            if r is not None:
                assert_close(host(backend, f), host(backend, r), dtype=dtype, context="conv2d_grad input_grad=False")
    assert np.array_equal(host(backend, x), x_h) and np.array_equal(host(backend, wt), w_h)


@pytest.mark.parametrize("geometry", CONV)
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d_vjp_equals_conv2d_and_its_grad_bit_for_bit(any_backend, dtype, geometry, bias, rng):
    """The backward that keeps the forward's im2col gives conv2d_grad's results exactly (fast paths on and off)."""
    n, c, h, w, o, k, stride, padding = geometry
    x = any_backend.asarray(rng.normal(size=(n, c, h, w)).astype(dtype))
    wt = any_backend.asarray(rng.normal(size=(o, c, *_kernel(k))).astype(dtype))
    b = any_backend.asarray(rng.normal(size=o).astype(dtype)) if bias else None
    for ctx in (_nullcontext, reference_only):
        with ctx():
            y, backprop = F.conv2d_vjp(x, wt, b, stride=stride, padding=padding)
            assert np.array_equal(host(any_backend, y), host(any_backend, F.conv2d(x, wt, b, stride=stride, padding=padding)))
            dy = any_backend.asarray(rng.normal(size=tuple(y.shape)).astype(dtype))
            for input_grad in (True, False):
                got = backprop(dy, input_grad=input_grad)
                want = F.conv2d_grad(x, wt, b, dy, stride=stride, padding=padding, input_grad=input_grad)
                for name, g, r in zip(("dx", "dw", "db"), got, want):
                    assert (g is None) == (r is None), name
                    if r is not None:
                        assert np.array_equal(host(any_backend, g), host(any_backend, r)), f"{name} {ctx.__name__}"
    with pytest.raises(ValueError, match="dy"):
        backprop(any_backend.asarray(np.ones((1, 1, 1, 1), dtype)))


@pytest.mark.parametrize("shape", [(4, 3, 5, 5), (7,), ()])
def test_relu_grad_fast_equals_reference(backend, dtype, shape, rng):
    """``dy * not(x <= 0)`` equals ``where(x <= 0, 0, dy)``: zeros, NaN in x (passes dy), signed zeros."""
    x_h = rng.normal(size=shape).astype(dtype)
    if x_h.size >= 4:
        x_h.flat[:4] = [0.0, -0.0, np.nan, 1e-30]
    dy_h = rng.normal(size=shape).astype(dtype)
    x, dy = backend.asarray(x_h), backend.asarray(dy_h)
    fast, ref = both(F.relu_grad, x, dy)
    assert fast.dtype == ref.dtype and tuple(fast.shape) == tuple(ref.shape)
    np.testing.assert_array_equal(host(backend, fast), host(backend, ref))
    np.testing.assert_array_equal(host(backend, ref), np.where(x_h <= 0, 0, dy_h).astype(dtype))


@pytest.mark.parametrize("layout", ["C", "batch last", "mixed"])
def test_numpy_relu_grad_kernels_are_bit_identical(numpy_kernel, dtype, layout, rng):
    """Signed zeros of ``dy * 0``, NaN in x, views in the conv fast path's batch-last layout, and two layouts."""
    x = rng.normal(size=(3, 4, 5, 6)).astype(dtype)
    dy = rng.normal(size=x.shape).astype(dtype)
    x.flat[:4], dy.flat[:4] = [0.0, -0.0, np.nan, -1.0], [-2.0, 3.0, -4.0, -0.5]
    if layout != "C":
        x = np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
    if layout == "batch last":
        dy = np.ascontiguousarray(dy.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
    fast, ref = both(F.relu_grad, x, dy)
    chain = np.multiply(dy, ~(x <= 0), dtype=dy.dtype)  # the NumPy fast path's formula
    assert fast.dtype == ref.dtype and np.array_equal(fast.view(f"u{fast.itemsize}"), chain.view(f"u{fast.itemsize}"))
    assert np.array_equal(fast, ref)


@pytest.mark.parametrize("axes", [(0, 1, 2, 3), (3, 0, 1, 2), (1, 0, 3, 2)])
def test_numpy_relu_grad_keeps_the_layout_of_numpys_product(numpy_kernel, axes, rng):
    """The chunked product is laid out as ``dy * (x > 0)`` would be: later reductions read it in the same order."""
    shape = (3, 4, 5, 6)
    x = rng.normal(size=shape).transpose(axes)
    dy = rng.normal(size=shape).transpose(axes)
    got, want = _numpy_fast._np_relu_grad(x, dy), np.multiply(dy, ~(x <= 0), dtype=dy.dtype)
    assert got.strides == want.strides
    assert _bits(got) == _bits(want)


def test_relu_grad_with_a_non_finite_dy_declines_to_the_reference(rng):
    x = np.array([-1.0, 0.0, 2.0, np.nan])
    dy = np.array([np.inf, np.nan, -np.inf, 3.0])
    assert _numpy_fast._np_relu_grad(x, dy) is None
    assert _numpy_fast._np_relu_grad(np.float64(1.0), np.float64(2.0)) is None
    np.testing.assert_array_equal(F.relu_grad(x, dy), np.array([0.0, 0.0, -np.inf, 3.0]))


@pytest.mark.parametrize("shape", [(5, 7), (3,), ()])
@pytest.mark.parametrize("bounds", [(0.0, 1.0), (math.log(1e-2), math.log(1e2)), (1e-6, 1.0 - 1e-6)])
def test_clip_fast_equals_reference(backend, dtype, shape, bounds, rng):
    """NumPy's clip with the bounds cast as NumPy 2 casts a Python float: array-api-compat's values,
    NaN and infinities included (the bounds are the gates' and the log_alpha clamp's)."""
    x_h = (rng.normal(size=shape) * 10).astype(dtype)
    if x_h.size >= 4:
        x_h.flat[:4] = [np.nan, np.inf, -np.inf, bounds[0]]
    x = backend.asarray(x_h)
    fast, ref = both(clip, x, *bounds, backend.xp)
    assert fast.dtype == ref.dtype and tuple(fast.shape) == tuple(ref.shape)
    np.testing.assert_array_equal(host(backend, fast), host(backend, ref))
    lo, hi = (np.asarray(v, dtype=dtype) for v in bounds)
    np.testing.assert_array_equal(host(backend, ref), np.minimum(np.maximum(x_h, lo), hi))


def test_clip_declines_what_it_does_not_handle():
    assert _numpy_fast._np_clip(np.arange(3), 0.0, 1.0) is None  # integers
    assert _numpy_fast._np_clip(np.ones(3), np.zeros(3), 1.0) is None  # an array bound
    assert _numpy_fast._np_clip(np.ones(3), 0, 1.0) is None  # an int bound
    np.testing.assert_array_equal(clip(np.arange(3), 0, 1, array_namespace(np.arange(3))), [0, 1, 1])


def test_conv_chain_on_views(backend, rng):
    """Outputs of one fast op (batch-last views) feed the next: conv - pool - conv and back."""
    need(backend, "conv2d")
    x = backend.asarray(rng.normal(size=(3, 2, 12, 12)))
    w1 = backend.asarray(rng.normal(size=(4, 2, 3, 3)))
    w2 = backend.asarray(rng.normal(size=(5, 4, 2, 2)))

    def run():
        y1 = F.conv2d(x, w1, None)
        p = F.max_pool2d(y1, kernel=2)
        y2 = F.conv2d(p, w2, None, stride=2)
        dy2 = y2 * 0.5
        dp, dw2, _ = F.conv2d_grad(p, w2, None, dy2, stride=2)
        dy1 = F.max_pool2d_grad(y1, dp, kernel=2)
        dx, dw1, _ = F.conv2d_grad(x, w1, None, dy1)
        return y2, dx, dw1, dw2

    fast, ref = both(run)
    for f, r in zip(fast, ref):
        assert_close(host(backend, f), host(backend, r), context="conv chain", scale=10)


POOL = [(2, 2), (3, 2), (2, 1), (3, 3), ((2, 3), (1, 2))]


@pytest.mark.parametrize(("kernel", "stride"), POOL)
@pytest.mark.parametrize("ties", [False, True])
def test_max_pool2d_and_grad(backend, dtype, kernel, stride, ties, rng):
    need(backend, "max_pool2d")
    x_h = rng.normal(size=(2, 3, 7, 8)).astype(dtype)
    if ties:
        x_h = np.round(x_h)  # many equal maxima: the first in row-major order gets dy
    x = backend.asarray(x_h)
    fast, ref = both(F.max_pool2d, x, kernel=kernel, stride=stride)
    assert np.array_equal(host(backend, fast), host(backend, ref))
    dy = backend.asarray(rng.normal(size=tuple(fast.shape)).astype(dtype))
    fast, ref = both(F.max_pool2d_grad, x, dy, kernel=kernel, stride=stride)
    assert_close(host(backend, fast), host(backend, ref), dtype=dtype, context="max_pool2d_grad")
    assert np.array_equal(host(backend, x), x_h)


def test_max_pool2d_grad_nan_falls_back(backend):
    need(backend, "max_pool2d_grad")
    x_h = np.arange(16.0).reshape(1, 1, 4, 4)
    x_h[0, 0, 1, 0] = np.nan
    x = backend.asarray(x_h)
    dy = backend.asarray(np.ones((1, 1, 2, 2)))
    assert lookup(backend.xp, "max_pool2d_grad")(x, dy, kernel=(2, 2), stride=(2, 2)) is None
    fast, ref = both(F.max_pool2d_grad, x, dy, kernel=2)
    assert np.array_equal(host(backend, fast), host(backend, ref))
    x = backend.asarray(np.arange(16.0).reshape(1, 1, 4, 4))
    dy = backend.asarray(np.array([[[[np.inf, 1.0], [-np.inf, np.nan]]]]))
    fast, ref = both(F.max_pool2d_grad, x, dy, kernel=2)  # non-finite dy reaches the maxima only
    assert np.array_equal(host(backend, fast), host(backend, ref), equal_nan=True)
    assert int(np.count_nonzero(host(backend, fast))) == 4


@pytest.mark.parametrize(("kernel", "stride"), POOL)
def test_max_pool2d_vjp_equals_max_pool2d_and_its_grad_bit_for_bit(any_backend, dtype, kernel, stride, rng):
    x_h = np.round(rng.normal(size=(2, 3, 7, 8))).astype(dtype)  # ties: the first maximum gets dy
    x_h[0, 0, 0, 0] = np.nan  # a NaN window: the fast backward declines to the reference
    x = any_backend.asarray(x_h)
    for ctx in (_nullcontext, reference_only):
        with ctx():
            y, backprop = F.max_pool2d_vjp(x, kernel=kernel, stride=stride)
            want_y = F.max_pool2d(x, kernel=kernel, stride=stride)
            assert np.array_equal(host(any_backend, y), host(any_backend, want_y), equal_nan=True)
            dy_h = rng.normal(size=tuple(y.shape)).astype(dtype)
            dy_h[1, 0, 0, 0] = np.inf
            dy = any_backend.asarray(dy_h)
            want = F.max_pool2d_grad(x, dy, kernel=kernel, stride=stride)
            assert np.array_equal(host(any_backend, backprop(dy)), host(any_backend, want), equal_nan=True)


def _bits(a):
    a = np.asarray(a)
    return a.dtype, a.shape, np.ascontiguousarray(a).tobytes()


def _numpy_conv_pool_results(x, w, b, dy_conv, dy_pool, *, stride, padding, kernel, pool_stride):
    """Every NumPy conv/pool/relu fast-path result on these inputs (for a bit-for-bit comparison)."""
    out = [_numpy_fast._np_conv2d(x, w, b, stride=stride, padding=padding)]
    out += _numpy_fast._np_conv2d_grad(x, w, b, dy_conv, stride=stride, padding=padding, input_grad=True)
    y, backprop = _numpy_fast._np_conv2d_vjp(x, w, b, stride=stride, padding=padding)
    out += [y, *backprop(dy_conv, input_grad=True)]
    pooled, pool_backprop = _numpy_fast._np_max_pool2d_vjp(x, kernel=kernel, stride=pool_stride)
    out += [pooled, pool_backprop(dy_pool), _numpy_fast._np_max_pool2d_grad(x, dy_pool, kernel=kernel, stride=pool_stride)]
    out.append(_numpy_fast._np_relu_grad(x, x))  # x: batch-last memory, flat slices
    out.append(_numpy_fast._np_relu_grad(np.ascontiguousarray(x), np.ascontiguousarray(x)))
    return [o for o in out if o is not None]


@pytest.mark.parametrize(("kernel", "pool_stride"), POOL)
@pytest.mark.parametrize("geometry", CONV)
def test_numpy_kernels_split_over_threads_equal_one_thread_bit_for_bit(monkeypatch, geometry, kernel, pool_stride, rng):
    """im2col, col2im, pooling and relu_grad on disjoint slices (three threads, any size) give one thread's bits."""
    n, c, h, w, o, k, stride, padding = geometry
    if (h - _kernel(kernel)[0]) < 0 or (w - _kernel(kernel)[1]) < 0:
        pytest.skip("pool window larger than the input")
    x = np.round(rng.normal(size=(c, h, w, n)) * 2).transpose(3, 0, 1, 2)  # batch-last view; ties and signed zeros
    x[0, 0, 0, :2] = -0.0
    wt, b = rng.normal(size=(o, c, *_kernel(k))), rng.normal(size=o)
    stride, padding = _kernel(stride), _kernel(padding)
    y = _numpy_fast._np_conv2d(x, wt, b, stride=stride, padding=padding)
    pooled = _numpy_fast._np_max_pool2d(x, kernel=_kernel(kernel), stride=_kernel(pool_stride))
    dy_conv, dy_pool = rng.normal(size=y.shape), rng.normal(size=pooled.shape)
    dy_pool[..., 0] = -dy_pool[..., 0] * 0.0  # signed zeros flow through the product
    args = dict(stride=stride, padding=padding, kernel=_kernel(kernel), pool_stride=_kernel(pool_stride))
    monkeypatch.setattr(_numpy_fast, "_NP_PARALLEL_MIN", 0)
    monkeypatch.setitem(_numba_kernels._LOADED, "kernels", None)  # relu_grad's split is NumPy's chunked path
    monkeypatch.setattr(_numpy_fast, "np_threads", lambda: 1)
    one = _numpy_conv_pool_results(x, wt, b, dy_conv, dy_pool, **args)
    monkeypatch.setattr(_numpy_fast, "np_threads", lambda: 3)
    split = _numpy_conv_pool_results(x, wt, b, dy_conv, dy_pool, **args)
    assert len(one) == len(split) == 13
    for i, (a, s) in enumerate(zip(one, split)):
        assert _bits(a) == _bits(s), f"result {i}"
        assert a.strides == s.strides, f"result {i}: the layout the next layer reads"


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("geometry", CONV)
def test_im2col_gather_equals_the_strided_copy(monkeypatch, geometry, batch, rng):
    """Small batches gather the im2col matrix by a cached index: the strided copy's matrix, bit for bit."""
    _, c, h, w, _, k, stride, padding = geometry
    kernel, stride, padding = _kernel(k), _kernel(stride), _kernel(padding)
    xt = rng.normal(size=(c, h + 2 * padding[0], w + 2 * padding[1], batch))
    out_hw = tuple((n - kk) // s + 1 for n, kk, s in zip(xt.shape[1:3], kernel, stride))
    cols = {}
    for how, run in (("copy", 0), ("gather", 10**9)):
        monkeypatch.setattr(_numpy_fast, "_NP_GATHER_RUN", run)
        cols[how] = _numpy_fast._np_cols(xt, kernel, stride, out_hw, np)
        assert cols[how].flags.c_contiguous
    assert _bits(cols["gather"]) == _bits(cols["copy"])
    np.testing.assert_array_equal(cols["copy"], F.conv_patches(xt.transpose(3, 0, 1, 2), kernel=kernel, stride=stride))


@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (3, 2, 7, 9), (1, 1, 2, 2)])
@pytest.mark.parametrize("kernel", [(2, 2), (3, 3), (2, 3)])
def test_tiled_pool_backward_equals_the_windows_path_bit_for_bit(shape, kernel, rng):
    """stride = kernel: one product over (C, Ho, kh, Wo, kw, N) views gives the per-offset loop's bits (ties, cropping, -0)."""
    n, c, h, w = shape
    if h < kernel[0] or w < kernel[1]:
        pytest.skip("window larger than the input")
    xt = np.ascontiguousarray(np.maximum(np.round(rng.normal(size=(c, h, w, n))), 0.0))  # many tied maxima at 0
    out_hw = (h // kernel[0], w // kernel[1])
    m = _numpy_fast._np_pool_max(xt, kernel, kernel, out_hw, np)
    dyt = rng.normal(size=m.shape)
    dyt.flat[::3] = -0.0
    tiled, windows = np.zeros_like(xt), np.zeros_like(xt)
    _numpy_fast._np_pool_grad_tiled(xt, dyt, m, tiled, kernel, kernel, np)
    _numpy_fast._np_pool_grad_windows(xt, dyt, m, windows, kernel, kernel, np)
    assert _bits(tiled) == _bits(windows)
    with reference_only():
        ref = F.max_pool2d_grad(xt.transpose(3, 0, 1, 2), dyt.transpose(3, 0, 1, 2), kernel=kernel)
    np.testing.assert_array_equal(tiled.transpose(3, 0, 1, 2), ref)


def test_numpy_kernel_threads_follow_the_blas_limit():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(1):
        assert _numpy_fast.np_threads() == 1
    with threadpoolctl.threadpool_limits(2):
        assert _numpy_fast.np_threads() in (1, 2)  # 1 where the BLAS was built single-threaded


_FORKED_SPLIT = """
import os, numpy as np
from refprune.backends import _numpy_fast as nf
nf._NP_PARALLEL_MIN = 0
nf.np_threads = lambda: 2
x = np.random.default_rng(0).normal(size=(4, 3, 6, 6))
before = nf._np_relu_grad(x, x)  # the parent's pool has started its thread
pid = os.fork()
if pid == 0:
    import signal
    signal.alarm(30)  # a child that waits on threads it does not have dies instead of hanging
    os._exit(0 if np.array_equal(nf._np_relu_grad(x, x), before) else 3)
print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_thread_split_works_in_a_forked_child():
    """A child forked after the split ran inherits the pool object but not its threads: it must not wait on them."""
    out = subprocess.run([sys.executable, "-c", _FORKED_SPLIT], capture_output=True, text=True, timeout=90,
                         env={**os.environ, "PYTHONPATH": str(Path(rp.__file__).parents[1]),
                              _numba_kernels.ENV_VAR: "0"})  # relu_grad through the NumPy split
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0"


def test_relu_grad_split_declines_when_any_slice_has_a_non_finite_dy(numpy_kernel, monkeypatch, rng):
    monkeypatch.setattr(_numpy_fast, "_NP_PARALLEL_MIN", 0)
    monkeypatch.setattr(_numpy_fast, "np_threads", lambda: 3)
    x, dy = rng.normal(size=(4, 3, 5, 5)), rng.normal(size=(4, 3, 5, 5))
    dy[-1, -1, -1, -1] = np.inf  # the last slice only
    assert _numpy_fast._np_relu_grad(x, dy) is None
    np.testing.assert_array_equal(F.relu_grad(x, dy), np.where(x <= 0, 0.0, dy))


def test_unsupported_conv_inputs_fall_back():
    x = np.zeros((1, 1, 4, 4), np.float16)
    w = np.zeros((1, 1, 2, 2), np.float16)
    assert _numpy_fast._np_conv2d(x, w, None, stride=(1, 1), padding=(0, 0)) is None
    assert _numpy_fast._np_max_pool2d(x, kernel=(2, 2), stride=(2, 2)) is None
    assert _numpy_fast._np_conv2d_grad(x, w, None, np.zeros((1, 1, 3, 3), np.float16), stride=(1, 1), padding=(0, 0)) is None
    assert _numpy_fast._np_conv2d_vjp(x, w, None, stride=(1, 1), padding=(0, 0)) is None
    assert _numpy_fast._np_max_pool2d_vjp(x, kernel=(2, 2), stride=(2, 2)) is None
    x32, w32 = x.astype(np.float32), w.astype(np.float32)
    _, backprop = _numpy_fast._np_conv2d_vjp(x32, w32, None, stride=(1, 1), padding=(0, 0))
    assert backprop(np.zeros((1, 1, 3, 3), np.float64), input_grad=True) is None  # another dtype than the forward's
    fast, ref = both(F.conv2d, x, w, None)
    assert fast.dtype == ref.dtype and np.array_equal(fast, ref)


# ----------------------------------------------------------------------------- Adam


def _adam_inputs(rng, shapes, dtype):
    params = {f"p{i}": rng.normal(size=s).astype(dtype) for i, s in enumerate(shapes)}
    grads = {k: rng.normal(size=v.shape).astype(dtype) for k, v in params.items()}
    state = optim.init_state(params, "adam")
    state["step"] = 4
    for buf in ("exp_avg", "exp_avg_sq"):
        state[buf] = {k: np.abs(rng.normal(size=v.shape)).astype(dtype) * 1e-2 for k, v in params.items()}
    return params, grads, state


@pytest.mark.parametrize("weight_decay", [0.0, 0.3])
def test_adam_fast_equals_reference(backend, dtype, weight_decay, rng):
    need(backend, "adam_update")
    params_h, grads_h, state_h = _adam_inputs(rng, [(5, 7), (7,), (1,), (0,)], dtype)
    conv = lambda d: {k: backend.asarray(v) for k, v in d.items()}  # noqa: E731
    params, grads = conv(params_h), conv(grads_h)
    state = {"step": 4, **{b: conv(state_h[b]) for b in ("exp_avg", "exp_avg_sq")}}
    lr = {"p1": 0.5, "*": 1e-2}
    (p_fast, s_fast), (p_ref, s_ref) = both(
        optim.adam, params, grads, state, lr=lr, betas=(0.8, 0.95), eps=1e-6, weight_decay=weight_decay
    )
    assert s_fast["step"] == s_ref["step"] == 5
    for got, want, what in ((p_fast, p_ref, "params"), (s_fast["exp_avg"], s_ref["exp_avg"], "exp_avg"),
                            (s_fast["exp_avg_sq"], s_ref["exp_avg_sq"], "exp_avg_sq")):
        for k in params_h:
            assert got[k].dtype == want[k].dtype and tuple(got[k].shape) == tuple(want[k].shape)
            assert_close(host(backend, got[k]), host(backend, want[k]), dtype=dtype, context=f"adam {what} {k}")
    for d, d_h in ((params, params_h), (grads, grads_h)) + tuple((state[b], state_h[b]) for b in ("exp_avg", "exp_avg_sq")):
        assert all(np.array_equal(host(backend, d[k]), d_h[k]) for k in d_h)  # inputs untouched


@pytest.mark.parametrize("weight_decay", [0.0, 0.3])
def test_numpy_adam_is_bit_identical_and_returns_new_arrays(dtype, weight_decay, rng):
    params, grads, state = _adam_inputs(rng, [(6, 4), (3,)], dtype)
    (p_fast, s_fast), (p_ref, s_ref) = both(optim.adam, params, grads, state, lr=1e-3, weight_decay=weight_decay)
    for k in params:
        for got, want, old in ((p_fast, p_ref, params), (s_fast["exp_avg"], s_ref["exp_avg"], state["exp_avg"]),
                               (s_fast["exp_avg_sq"], s_ref["exp_avg_sq"], state["exp_avg_sq"])):
            assert got[k].dtype == want[k].dtype and np.array_equal(got[k], want[k]), k
            assert not np.shares_memory(got[k], old[k]) and not np.shares_memory(got[k], grads[k])


@pytest.fixture(params=["numba", "numpy chain"])
def numpy_kernel(request, monkeypatch):
    """The compiled one-pass kernels (skipped without numba) or NumPy's chains of ufuncs."""
    if request.param == "numba":
        if _numba_kernels.kernels() is None:
            pytest.skip("numba is not installed (pip install 'refprune[fast]') or REFPRUNE_NUMBA=0")
    else:
        monkeypatch.setitem(_numba_kernels._LOADED, "kernels", None)
    return request.param


@pytest.mark.parametrize("weight_decay", [0.0, 0.3, 1e-60])
def test_numpy_adam_kernels_are_bit_identical_on_every_value(numpy_kernel, dtype, weight_decay, rng, monkeypatch):
    """Several chunks, signed zeros, NaN, infinities, huge and tiny values: the reference's bits, each kernel."""
    monkeypatch.setattr(_numpy_fast, "_CHUNK_BYTES", 256)
    params, grads, state = _adam_inputs(rng, [(37, 29)], dtype)
    special = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 1e30, -1e-30, 3e-39, 1.0], dtype)
    for d in (params, grads, state["exp_avg"]):
        d["p0"].flat[: special.size] = rng.permutation(special)
    state["exp_avg_sq"]["p0"].flat[:3] = [0.0, np.inf, np.nan]
    with np.errstate(all="ignore"):
        (p_fast, s_fast), (p_ref, s_ref) = both(optim.adam, params, grads, state, lr=0.3, weight_decay=weight_decay)
    for got, want in ((p_fast, p_ref), (s_fast["exp_avg"], s_ref["exp_avg"]), (s_fast["exp_avg_sq"], s_ref["exp_avg_sq"])):
        assert got["p0"].dtype == want["p0"].dtype
        bits, nan = f"u{np.dtype(dtype).itemsize}", np.isnan(want["p0"])
        assert np.array_equal(np.isnan(got["p0"]), nan)  # a NaN's sign bit is the hardware's choice: not compared
        assert np.array_equal(got["p0"][~nan].view(bits), want["p0"][~nan].view(bits))  # signed zeros included


def test_numba_kernels_switch_off_with_the_environment_variable(monkeypatch):
    monkeypatch.setenv(_numba_kernels.ENV_VAR, "0")
    assert _numba_kernels._compile() is None
    monkeypatch.setitem(_numba_kernels._LOADED, "kernels", None)
    ones = np.ones(3, np.float32)
    assert _numba_kernels.relu_grad(ones, ones, np.empty(3, np.float32)) is None
    params, grads = {"w": ones}, {"w": ones * 0.5}
    (p_fast, _), (p_ref, _) = both(optim.adam, params, grads, optim.init_state(params, "adam"), lr=0.1)
    assert np.array_equal(p_fast["w"], p_ref["w"])  # NumPy's chain


def test_unsupported_adam_inputs_fall_back():
    kw = {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0, "bias1": 0.1, "bias2_sqrt": 0.5}
    a32, a64 = np.ones(3, np.float32), np.ones(3)
    assert _numpy_fast._np_adam_update(a32, a64, a32, a32, **kw) is None  # mixed dtypes
    assert _numpy_fast._np_adam_update(a32, np.ones(4, np.float32), a32, a32, **kw) is None  # shapes
    assert _numpy_fast._np_adam_update(np.ones((), np.float32), *(np.ones((), np.float32),) * 3, **kw) is None  # 0-d
    h = np.ones(3, np.float16)
    assert _numpy_fast._np_adam_update(h, h, h, h, **kw) is None
    assert _numpy_fast._np_adam_update([1.0], [1.0], [0.0], [0.0], **kw) is None
    params, grads = {"w": a32}, {"w": a64}
    (p_fast, _), (p_ref, _) = both(optim.adam, params, grads, optim.init_state(params, "adam"), lr=0.1)
    assert p_fast["w"].dtype == p_ref["w"].dtype and np.array_equal(p_fast["w"], p_ref["w"])


# ----------------------------------------------------------------------------- weight decay inside the L0 penalty

DECAY_CASES = [((9, 5), 0), ((6, 3, 2, 2), 0), ((1, 4), 0), ((5, 7), 1), ((7,), 0), ((0, 3), 0)]


@pytest.mark.parametrize(("shape", "axis"), DECAY_CASES)
@pytest.mark.parametrize("w_grad", [True, False])
def test_l0_penalty_with_weight_decay_fast_equals_reference(any_backend, dtype, shape, axis, w_grad, rng):
    """``l0_penalty_and_grad`` with weight decay > 0: the same value and gradients with and without fast paths."""
    w_h = rng.normal(size=shape).astype(dtype)
    la_h = rng.uniform(-3.0, 3.0, size=shape[axis]).astype(dtype)
    w, la = any_backend.asarray(w_h), any_backend.asarray(la_h)
    fast, ref = both(l0_penalty_and_grad, la, w, lam=0.3, weight_decay=0.7, axis=axis, w_grad=w_grad)
    for got, want, what in zip(fast, ref, ("R", "d_log_alpha", "d_w")):
        if want is None:
            assert got is None, what
            continue
        assert got.dtype == want.dtype and tuple(got.shape) == tuple(want.shape), what
        assert_close(host(any_backend, got), host(any_backend, want), dtype=dtype, context=f"l0 {what} {shape}")
    assert np.array_equal(host(any_backend, w), w_h) and np.array_equal(host(any_backend, la), la_h)


@pytest.mark.parametrize("chunk", [None, 7, 1])
@pytest.mark.parametrize("shape", [(11, 6), (7, 3, 2, 2)])
@pytest.mark.parametrize("value_only", [False, True])
def test_numpy_l0_decay_terms_are_bit_identical(numpy_kernel, dtype, chunk, shape, value_only, rng, monkeypatch):
    """Row chunks of one row, of one row and a bit (7 elements), and all rows."""
    if chunk:
        monkeypatch.setattr(_numpy_fast, "_NP_CHUNK", chunk)
    w = rng.normal(size=shape).astype(dtype)
    la = rng.uniform(-3.0, 3.0, size=shape[0]).astype(dtype)
    kw = {"lam": 0.3, "weight_decay": 5e-4, "grad": not value_only}
    assert _numpy_fast._np_l0_decay_terms(w, la, weight_decay=5e-4, axis=0, grad=True) is not None
    fast, ref = both(l0_penalty_and_grad, la, w, **kw)
    for got, want in zip(fast, ref):
        assert (got is None and want is None) or (got.dtype == want.dtype and np.array_equal(got, want))


@pytest.mark.parametrize("shape", [(37, 29), (5,), (3, 4, 5, 6)])
def test_add_scaled_is_bit_identical(numpy_kernel, any_backend, dtype, shape, rng):
    """``a + s * b`` (a gradient plus the scaled penalty gradient): signed zeros, NaN and infinities kept."""
    a_h, b_h = (rng.normal(size=shape).astype(dtype) for _ in range(2))
    a_h.flat[:3], b_h.flat[:3] = [-0.0, np.inf, 1.0], [0.0, 1.0, np.nan]
    a, b = any_backend.asarray(a_h), any_backend.asarray(b_h)
    fast, ref = both(train._add_scaled, a, 1.0 / 3.0, b)
    assert fast.dtype == ref.dtype and tuple(fast.shape) == tuple(ref.shape)
    bits = f"u{np.dtype(dtype).itemsize}"
    got, want = host(any_backend, fast), host(any_backend, ref)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    assert np.array_equal(got[~np.isnan(want)].view(bits), want[~np.isnan(want)].view(bits))


def test_add_scaled_declines_what_it_does_not_handle():
    a = np.ones((4, 3), np.float32)
    assert _numpy_fast._np_add_scaled(a, 0.5, a.astype(np.float64)) is None  # dtypes
    assert _numpy_fast._np_add_scaled(a, np.float64(0.5), a) is None  # a NumPy scalar would promote
    assert _numpy_fast._np_add_scaled(a, 0.5, np.ones((3, 4), np.float32).T) is None  # not contiguous
    assert _numpy_fast._np_add_scaled(a, 0.5, np.ones(3, np.float32)) is None  # broadcasting


def test_unsupported_decay_inputs_fall_back():
    w, p = np.ones((4, 3), np.float32), np.full(4, 0.5, np.float32)
    decay = _numpy_fast._np_l0_decay_terms
    assert decay(w, p, weight_decay=0.1, axis=0, grad=True) is not None
    assert decay(w, p, weight_decay=0.1, axis=1, grad=True) is None  # groups along another axis
    assert decay(np.ones((3, 4), np.float32).T, p, weight_decay=0.1, axis=0, grad=True) is None  # not contiguous
    assert decay(np.ones(4, np.float32), p, weight_decay=0.1, axis=0, grad=True) is None  # 1-d: one weight a group
    assert decay(w, p.astype(np.float64), weight_decay=0.1, axis=0, grad=True) is None  # mixed dtypes
    assert decay(w, p, weight_decay=np.float64(0.1), axis=0, grad=True) is None  # would promote to float64
    assert decay(w.astype(np.float16), p.astype(np.float16), weight_decay=0.1, axis=0, grad=True) is None
    assert decay([[1.0]], [0.5], weight_decay=0.1, axis=0, grad=True) is None
    la64 = np.array([0.3, -1.0, 2.0, 0.0])  # float64 gates on float32 weights: the reference path, same result
    fast, ref = both(l0_penalty_and_grad, la64, w, lam=0.1, weight_decay=0.5)
    assert all(a.dtype == b.dtype and np.array_equal(a, b) for a, b in zip(fast, ref))


def test_trusted_steps_skip_the_checks_and_compute_the_same(any_backend):
    """The engine's steps run inside ``trusted()``: no argument checks, the same numbers; outside, checks run."""
    from refprune import engine
    from refprune._array import trusted
    from refprune.nn import build_model, train

    def run(trust):
        rng = any_backend.rng(0, stream="reference")
        model = build_model("mlp-300-100", input_shape=(6,), num_classes=3, backend=any_backend, rng=rng, l0=True)
        opt = engine.adam(lr=1e-2)
        state = opt.init(model.params())
        x, y = rng.uniform((8, 6), "float32"), any_backend.asarray(np.array([0, 1, 2, 0, 1, 2, 0, 1]))
        for _ in range(3):
            if trust:
                with trusted():
                    _, state = train.train_step(model, opt.update, state, x, y, rng=rng, penalty_scale=0.1)
            else:
                _, state = train.train_step(model, opt.update, state, x, y, rng=rng, penalty_scale=0.1)
        return {k: any_backend.to_numpy(v) for k, v in model.params().items()}

    checked, skipped = run(False), run(True)
    for k in checked:
        np.testing.assert_array_equal(checked[k], skipped[k], err_msg=k)
    bad = any_backend.asarray(np.array([np.nan, 1.0]))
    with trusted():
        rp.magnitude_mask(bad, amount=1)  # not checked: the caller vouched for it
    with pytest.raises(ValueError, match="NaN"):
        rp.magnitude_mask(bad, amount=1)


# ----------------------------------------------------------------------------- N:M and block masks


@pytest.mark.parametrize("kind", ["normal", "ties", "constant", "inf"])
def test_nm_mask_fast_equals_reference(backend, dtype, band, kind, rng):
    need(backend, "nm_keep")
    for shape, axis, nms in [((6, 16), -1, [(2, 4), (1, 4), (3, 8), (5, 16), (0, 2), (4, 4)]), ((12, 5, 3), 0, [(2, 4), (1, 3), (7, 12)]),
                             ((4, 18, 3), 1, [(1, 2), (3, 9)]), ((40,), 0, [(2, 4), (9, 10)])]:
        w_host = _weights(kind, int(np.prod(shape)), dtype, rng).reshape(shape)
        w = backend.asarray(w_host)
        s = backend.asarray(_weights("ties", int(np.prod(shape)), dtype, rng).reshape(shape))
        for n, m in nms:
            for kw in ({}, {"scores": s}):
                fast, ref = both(rp.nm_mask, w, n=n, m=m, axis=axis, **kw)
                assert np.array_equal(host(backend, fast), host(backend, ref)), (kind, shape, axis, n, m, kw)
        assert np.array_equal(host(backend, w), w_host)


@pytest.mark.parametrize("kind", ["normal", "ties", "constant", "inf", "sorted"])
@pytest.mark.parametrize("pool", ["l1", "l2", "max", "mean"])
def test_block_mask_fast_equals_reference(backend, dtype, band, kind, pool, rng):
    need(backend, "block_keep")
    for shape, block in [((16, 24), (4, 4)), ((17, 23), (4, 5)), ((9, 10), (1, 1)), ((5, 7), (8, 8)), ((30,), (4,)), ((6, 9), (2, 9))]:
        w_host = _weights(kind, int(np.prod(shape)), dtype, rng).reshape(shape)
        w = backend.asarray(w_host)
        s = backend.asarray(_weights("normal", int(np.prod(shape)), dtype, rng).reshape(shape))
        for amount in (0, 1, 0.3, 0.5, 0.99, 1.0):
            for kw in ({}, {"scores": s}):
                fast, ref = both(rp.block_mask, w, block=block, amount=amount, pool=pool, **kw)
                assert np.array_equal(host(backend, fast), host(backend, ref)), (kind, shape, block, amount, kw)


def test_nm_and_block_nan_and_huge_values_fall_back(backend):
    need(backend, "nm_keep")
    w = backend.asarray(np.array([[1.0, np.nan, 2.0, 3.0]]))
    assert lookup(backend.xp, "nm_keep")(backend.xp.reshape(w, (1, 4, 1)), 2, magnitude=True) is None
    assert lookup(backend.xp, "block_keep")(w, (1, 2), "l1", 1, magnitude=True) is None
    with pytest.raises(ValueError, match="w contains NaN"):
        rp.nm_mask(w, n=2, m=4)
    with pytest.raises(ValueError, match="w contains NaN"):
        rp.block_mask(w, block=(1, 2), amount=1)
    huge = backend.asarray(np.array([[1e300, 1e300, 1.0, 2e300]]))  # float64 sums that would overflow: the reference scales
    assert lookup(backend.xp, "block_keep")(huge, (1, 2), "l2", 1, magnitude=True) is None
    np.testing.assert_array_equal(host(backend, rp.block_mask(huge, block=(1, 2), amount=1, pool="l2")), [[False, False, True, True]])  # 1.41e300 < 2e300
    mixed = backend.asarray(np.array([[np.inf, -np.inf, 1.0, 1.0]]))
    ones = backend.asarray(np.ones((1, 4)))
    with pytest.raises(ValueError, match="inf and -inf"):
        rp.block_mask(ones, block=(1, 2), amount=1, pool="mean", scores=mixed)


def test_unsupported_nm_and_block_inputs_fall_back():
    assert _numpy_fast.np_nm_keep(np.ones((2, 4, 1), np.float16), 2, magnitude=True) is None
    assert _numpy_fast.np_nm_keep(np.ones((2, 4)), 2, magnitude=True) is None  # groups are 3-d
    assert _numpy_fast.np_block_keep(np.ones((2, 2, 2)), (1, 1, 1), "l1", 1, magnitude=True) is None
    assert _numpy_fast.np_block_keep(np.ones((4, 4), np.float16), (2, 2), "l1", 1, magnitude=True) is None
    w16 = np.asarray([[3.0, 1.0, 2.0, 1.0]], dtype=np.float16)
    fast, ref = both(rp.nm_mask, w16, n=2, m=4)
    assert np.array_equal(fast, ref) and fast.tolist() == [[True, False, True, False]]
    fast, ref = both(rp.block_mask, np.arange(24.0).reshape(2, 3, 4), block=(1, 2, 2), amount=0.5)
    assert np.array_equal(fast, ref)
    torch = pytest.importorskip("torch")
    wt = torch.tensor([[3.0, 1.0, 2.0, 1.0]], dtype=torch.bfloat16)
    assert _torch_fast._torch_nm_keep(wt.reshape(1, 4, 1), 2, magnitude=True) is None
    assert rp.nm_mask(wt, n=2, m=4).tolist() == [[True, False, True, False]]


# ----------------------------------------------------------------------------- one-shot (protocol v2)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sparsegpt_columns_equal_the_reference_path(backend, dtype):
    """The in-place column loop gives the reference's masks and weights bit for bit (same operations)."""
    need(backend, "sparsegpt_columns")
    rng = np.random.default_rng(3)
    for rows, cols, tokens in ((7, 24, 50), (33, 64, 20)):
        w = backend.asarray(rng.normal(size=(rows, cols)), dtype=dtype)
        h = rp.hessian(backend.asarray(rng.normal(size=(tokens, cols)), dtype=dtype))
        for kwargs in ({"amount": 0.5, "block": 5}, {"amount": 0.3, "block": 16}, {"n": 2, "m": 4, "block": 6},
                       {"n": 1, "m": 4, "block": 128}, {"n": 3, "m": 8, "block": 7}):
            (w_fast, m_fast), (w_ref, m_ref) = both(rp.sparsegpt_prune, w, h, **kwargs)
            np.testing.assert_array_equal(host(backend, m_fast), host(backend, m_ref), err_msg=str(kwargs))
            np.testing.assert_array_equal(host(backend, w_fast), host(backend, w_ref), err_msg=str(kwargs))


def test_sparsegpt_columns_decline_what_they_do_not_handle():
    u = np.eye(4)
    assert _numpy_fast._np_sparsegpt_columns(np.ones((2, 4), np.float32), u, block=2, counts=[2, 2], nm=None) is None
    assert _numpy_fast._np_sparsegpt_columns(np.ones((2, 4), np.float16), u.astype(np.float16), block=2,
                                             counts=[2, 2], nm=None) is None
    nan = np.full((2, 4), np.nan)
    assert _numpy_fast._np_sparsegpt_columns(nan, u, block=2, counts=[2, 2], nm=None) is None
    assert _numpy_fast._np_sparsegpt_columns(nan, u, block=2, counts=None, nm=(2, 4)) is None


@pytest.mark.parametrize("cols", [65, 257])
def test_long_row_groups_equal_the_reference_path(backend, cols, monkeypatch):
    """nm_keep with one long group per row (Wanda's per-row masks): ties, several chunks."""
    need(backend, "nm_keep")
    monkeypatch.setattr(_numpy_fast, "_CHUNK_BYTES", 64 * cols)
    rng = np.random.default_rng(4)
    for levels in (3, 1000):
        s = backend.asarray(rng.integers(0, levels, size=(40, cols, 1)).astype(np.float64))
        for n in (0, 1, cols // 2, cols - 1, cols):
            fast = lookup(backend.xp, "nm_keep")(s, n, magnitude=False)
            with reference_only():
                ref = rp.patterns.nm_keep(s, n, backend.xp, magnitude=False, name="s")
            np.testing.assert_array_equal(host(backend, fast), host(backend, ref))
