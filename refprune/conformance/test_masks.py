"""Masks: exact counts, the tie rule, whole-slice pruning, applying masks, bad inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from refprune.conformance import closed_forms as cf
from refprune.conformance import strategies as cs
from refprune.conformance.target import Host
from refprune.conformance.report import assert_equal, assert_values, bad_input_params, check_bad_input, fail

protocol = pytest.mark.protocol


def _amount_kw(data, n):
    kw = {"amount": data.draw(cs.amounts(n), label="amount")}
    if data.draw(st.booleans(), label="pass rounding"):
        kw["rounding"] = data.draw(cs.roundings(), label="rounding")
    return kw


def _k(kw, n):
    return cf.prune_count(kw["amount"], n, kw.get("rounding", "half-even"))


def _check_mask(target, actual, expected, scores, k):
    """Same mask as the reference, exactly ``k`` pruned, and the tie rule on ``scores``."""
    call = target.last
    assert_equal(call, actual, expected, what="mask", kind="values")
    pruned = int(np.size(actual) - np.count_nonzero(actual))
    if pruned != k:
        fail(call, f"pruned {pruned} entries, expected exactly k = {k}", actual=actual)
    assert_equal(call, actual, cf.keep_mask(scores, k), what="mask vs the tie rule (score descending, lower index first)")


# --------------------------------------------------------------------------- counts


@protocol("prune_count")
@given(case=cs.count_cases(), rounding=st.one_of(st.none(), cs.roundings()))
def test_prune_count(target, ref, case, rounding):
    amount, n = case
    kw = {} if rounding is None else {"rounding": rounding}
    out = target("prune_count", amount, n, **kw)
    call = target.last
    assert_equal(call, out, ref("prune_count", amount, n, **kw))
    assert_equal(call, out, cf.prune_count(amount, n, rounding or "half-even"), what="round(Decimal(repr(amount)) * n)")


COUNT_CASES = [
    # amount, n, rounding, k   (hand-worked: decimal product of the shortest repr)
    (0.25, 10, "half-even", 2),
    (0.35, 10, "half-even", 4),
    (0.25, 10, "ceil", 3),
    (0.25, 10, "floor", 2),
    (0.5, 1, "half-even", 0),
    (0.5, 3, "half-even", 2),
    (0.125, 4, "half-even", 0),
    (0.7, 45, "half-even", 32),
    (0.14, 75, "half-even", 10),
    (0.07, 100, "ceil", 7),
    (0.28, 25, "ceil", 7),
    (0.58, 50, "floor", 29),
    (0.0, 7, "ceil", 0),
    (1.0, 7, "floor", 7),
    (1, 7, "half-even", 1),
    (7, 7, "half-even", 7),
    (0, 0, "half-even", 0),
    (1.0, 0, "ceil", 0),
]


@protocol("prune_count")
@pytest.mark.parametrize("case", COUNT_CASES, ids=[f"{a!r}-{n}-{r}" for a, n, r, _ in COUNT_CASES])
def test_prune_count_cases(target, case):
    amount, n, rounding, k = case
    out = target("prune_count", amount, n, rounding=rounding)
    assert_equal(target.last, out, k)


# --------------------------------------------------------------------------- masks


@protocol("magnitude_mask", checks="values,properties")
@given(data=st.data())
def test_magnitude_mask(target, ref, data):
    dtype = data.draw(cs.dtypes(), label="dtype")
    shape = data.draw(cs.shapes(), label="shape")
    w = data.draw(cs.weights(dtype, shape, allow_inf=True), label="w")
    kw = _amount_kw(data, w.size)
    if data.draw(st.booleans(), label="pass scores"):
        kw["scores"] = data.draw(cs.scores(dtype, shape), label="scores")
    out = target("magnitude_mask", w, **kw)
    expected = ref("magnitude_mask", w, **kw)
    _check_mask(target, out, expected, kw.get("scores", np.abs(w)), _k(kw, w.size))


@protocol("random_mask", checks="values,properties")
@given(data=st.data())
def test_random_mask(target, ref, data):
    dtype = data.draw(cs.dtypes(), label="dtype")
    shape = data.draw(cs.shapes(), label="shape")
    u = data.draw(st.one_of(cs.noise(dtype, shape), cs.weights(dtype, shape, kinds=("ties",)).map(lambda a: np.asarray(np.abs(a)))), label="u")
    kw = _amount_kw(data, u.size)
    out = target("random_mask", u, **kw)
    _check_mask(target, out, ref("random_mask", u, **kw), u, _k(kw, u.size))


@protocol("global_magnitude_mask", checks="values,properties")
@given(data=st.data())
def test_global_magnitude_mask(target, ref, data):
    dtype = data.draw(cs.dtypes(), label="dtype")
    count = data.draw(st.integers(1, 3), label="number of arrays")
    ws = [data.draw(cs.weights(dtype, data.draw(cs.shapes(max_size=12), label=f"shape {i}"), allow_inf=True), label=f"ws[{i}]")
          for i in range(count)]
    n = sum(w.size for w in ws)
    kw = _amount_kw(data, n)
    out = target("global_magnitude_mask", ws, **kw)
    call = target.last
    expected = ref("global_magnitude_mask", ws, **kw)
    if not isinstance(out, list) or len(out) != len(ws):
        fail(call, f"returned {type(out).__name__} of length {len(out) if hasattr(out, '__len__') else '?'}, expected a list of {len(ws)} masks")
    k = _k(kw, n)
    flat = cf.keep_mask(np.concatenate([np.abs(w.astype(np.float64)).reshape(-1) for w in ws]), k)
    pos = 0
    for i, (a, e, w) in enumerate(zip(out, expected, ws)):
        assert_equal(call, a, e, what=f"mask {i}", kind="values")
        assert_equal(call, a, flat[pos : pos + w.size].reshape(w.shape), what=f"mask {i} vs the global tie rule (list order, then flat index)")
        pos += w.size
    pruned = sum(int(a.size - np.count_nonzero(a)) for a in out)
    if pruned != k:
        fail(call, f"pruned {pruned} entries in all, expected exactly k = {k}")


@protocol("structured_mask", checks="values,properties")
@given(data=st.data())
def test_structured_mask(target, ref, data):
    dtype = data.draw(cs.dtypes(), label="dtype")
    shape = data.draw(cs.shapes(min_dims=1, max_size=30), label="shape")
    axis = data.draw(cs.axes(len(shape)), label="axis")
    w = data.draw(cs.slice_weights(dtype, shape, axis % len(shape)), label="w")
    kw = {"axis": axis, **_amount_kw(data, shape[axis])}
    ord = data.draw(st.one_of(st.none(), cs.norm_orders()), label="ord")
    if ord is not None:
        kw["ord"] = ord
    norms = cf.slice_norms(w, axis % w.ndim, 2 if ord is None else ord)
    distinct = np.unique(norms)
    # only exact ties (copies of a slice) may tie; a near tie would make float32 ambiguous
    assume(distinct.size < 2 or np.min(np.diff(distinct) / np.maximum(distinct[1:], 1e-300)) > 1e-4)
    out = target("structured_mask", w, **kw)
    call = target.last
    k = _k(kw, shape[axis])
    expected_slices = cf.keep_mask(norms, k)
    view = [1] * w.ndim
    view[axis % w.ndim] = shape[axis]
    assert_equal(call, out, ref("structured_mask", w, **kw), what="mask", kind="values")
    assert_equal(call, out, np.broadcast_to(expected_slices.reshape(view), w.shape).copy(),
                 what="mask vs whole slices pruned by the tie rule on the slices' norms")


@protocol("mask_from_weights", checks="values,properties")
@given(data=st.data())
def test_mask_from_weights(target, ref, data):
    dtype = data.draw(cs.dtypes(), label="dtype")
    w = data.draw(cs.weights(dtype, data.draw(cs.shapes(), label="shape"), allow_inf=True), label="w")
    out = target("mask_from_weights", w)
    assert_equal(target.last, out, ref("mask_from_weights", w), kind="values")
    assert_equal(target.last, out, w != 0, what="w != 0")


@protocol("apply_mask", checks="values,properties")
@given(data=st.data())
def test_apply_mask(target, ref, data):
    dtype = data.draw(cs.dtypes(), label="dtype")
    shape = data.draw(cs.shapes(), label="shape")
    w = data.draw(cs.weights(dtype, shape, allow_inf=True), label="w")
    mask = data.draw(cs.masks(shape), label="mask")
    out = target("apply_mask", w, mask)
    assert_equal(target.last, out, ref("apply_mask", w, mask).astype(dtype), kind="values")
    assert_equal(target.last, out, np.where(mask, w, np.zeros_like(w)), what="where(mask, w, 0) (never w*mask: 0*inf is NaN)")


@protocol("sparsity")
@given(mask=cs.shapes().flatmap(cs.masks))
def test_sparsity(target, ref, mask):
    out = target("sparsity", mask)
    call = target.last
    expected = ref("sparsity", mask)
    if not isinstance(out, float):
        fail(call, f"returned {type(out).__name__}, expected a Python float", expected=expected, actual=out)
    assert_values(call, out, expected, dtype="float64")
    assert_values(call, out, (mask.size - np.count_nonzero(mask)) / mask.size if mask.size else 0.0, dtype="float64",
                  what="#False / size (0.0 when empty)")


# --------------------------------------------------------------------------- hand-worked cases


def _a(*v):
    return np.array(v, dtype=np.float64)


MASK_CASES = {
    # id: (function, args, kwargs)  -- ties and counts worked by hand in the protocol's rule (docs/protocol.md)
    "magnitude-ties-1d": ("magnitude_mask", (_a(3, 1, 1, 1, 2),), {"amount": 2}),
    "magnitude-sign-ties": ("magnitude_mask", (_a(-1, 1, -1, 1),), {"amount": 2}),
    "magnitude-all-equal": ("magnitude_mask", (np.full(10, 0.5),), {"amount": 0.3}),
    "magnitude-all-zero": ("magnitude_mask", (np.zeros((2, 2)),), {"amount": 0.5}),
    "magnitude-ties-2d": ("magnitude_mask", (_a(2, 1, 1, 2, 1, 2).reshape(2, 3),), {"amount": 4}),
    "magnitude-distinct": ("magnitude_mask", (_a(0.5, -3, 0.1, 2, -0.7),), {"amount": 0.4}),
    "magnitude-halfway-down": ("magnitude_mask", (_a(5, 4, 3, 2),), {"amount": 0.125}),
    "magnitude-halfway-up": ("magnitude_mask", (_a(1, 2, 3, 4),), {"amount": 0.375}),
    "magnitude-halfway-even": ("magnitude_mask", (_a(1, 2, 3, 4),), {"amount": 0.625}),
    "magnitude-floor": ("magnitude_mask", (_a(1, 2, 3, 4, 5),), {"amount": 0.5, "rounding": "floor"}),
    "magnitude-ceil": ("magnitude_mask", (_a(1, 2, 3, 4, 5),), {"amount": 0.5, "rounding": "ceil"}),
    "magnitude-scores": ("magnitude_mask", (_a(1, 2, 3, 4),), {"amount": 2, "scores": _a(4, -1, 3, -1)}),
    "magnitude-negative-scores": ("magnitude_mask", (_a(1, 2, 3, 4),), {"amount": 1, "scores": _a(4, -5, 3, 1)}),
    "magnitude-decimal-trap": ("magnitude_mask", (np.arange(1.0, 46.0),), {"amount": 0.7}),
    "magnitude-inf": ("magnitude_mask", (_a(np.inf, 1, -np.inf, 0),), {"amount": 3}),
    "magnitude-0d": ("magnitude_mask", (np.array(2.0),), {"amount": 1}),
    "magnitude-empty": ("magnitude_mask", (np.zeros((0, 3)),), {"amount": 0.5}),
    "magnitude-all": ("magnitude_mask", (_a(1, 2, 3),), {"amount": 1.0}),
    "magnitude-none": ("magnitude_mask", (_a(1, 2, 3),), {"amount": 0}),
    "random-ties": ("random_mask", (_a(0.5, 0.5, 0.1, 0.5),), {"amount": 2}),
    "random-order": ("random_mask", (_a(0.9, 0.1, 0.5, 0.3),), {"amount": 0.5}),
    "global-ties": ("global_magnitude_mask", ([_a(1, 2, 1), _a(1, 3).reshape(1, 2)],), {"amount": 2}),
    "global-order": ("global_magnitude_mask", ([_a(4, 1, 2), _a(1, 5, 0.5, 2).reshape(2, 2)],), {"amount": 3}),
    "global-empty-member": ("global_magnitude_mask", ([np.zeros(0), _a(3, 1)],), {"amount": 0.5}),
    "structured-ties": ("structured_mask", (_a(1, 1, -1, 1, 1, -1, 2, 2).reshape(4, 2),), {"amount": 2, "axis": 0}),
    "structured-axis1": ("structured_mask", (_a(1, 3, 0.5, 1, 3, 0.5).reshape(2, 3),), {"amount": 1, "axis": 1}),
    # rows [3,0] and [2,2]: the 1-norm prunes the first, the 2-norm (and inf) the second
    "structured-ord1": ("structured_mask", (_a(3, 0, 2, 2, 5, 5).reshape(3, 2),), {"amount": 1, "axis": 0, "ord": 1}),
    "structured-ord2": ("structured_mask", (_a(3, 0, 2, 2, 5, 5).reshape(3, 2),), {"amount": 1, "axis": 0}),
    "structured-inf": ("structured_mask", (_a(3, 0, 2, 2.5, 5, 5).reshape(3, 2),), {"amount": 1, "axis": 0, "ord": math.inf}),
    "structured-minus-inf": ("structured_mask", (_a(3, 0, 2, 2, 5, 5).reshape(3, 2),), {"amount": 1, "axis": 0, "ord": -math.inf}),
    "structured-ord-half": ("structured_mask", (_a(3, 0, 2, 2, 5, 5).reshape(3, 2),), {"amount": 1, "axis": 0, "ord": 0.5}),
    "structured-decimal-trap": ("structured_mask", (np.arange(1.0, 46.0).reshape(45, 1),), {"amount": 0.7, "axis": 0}),
    "structured-1d": ("structured_mask", (_a(3, 1, 2),), {"amount": 1, "axis": 0}),
    "structured-negative-axis": ("structured_mask", (np.arange(24.0).reshape(2, 3, 4),), {"amount": 0.5, "axis": -1}),
    "structured-conv": ("structured_mask", (np.arange(24.0).reshape(4, 3, 1, 2)[::-1].copy(),), {"amount": 0.25, "axis": 0}),
}


def _case_params():
    return [pytest.param(k, id=k, marks=pytest.mark.protocol(v[0])) for k, v in MASK_CASES.items()]


@pytest.mark.parametrize("case", _case_params())
@pytest.mark.parametrize("dtype", cs.FLOAT_DTYPES)
def test_mask_cases(target, ref, case, dtype):
    fname, args, kwargs = MASK_CASES[case]

    def cast(x):
        if isinstance(x, list):
            return [cast(v) for v in x]
        return x.astype(dtype) if isinstance(x, np.ndarray) else x

    args = tuple(cast(a) for a in args)
    kwargs = {k: cast(v) for k, v in kwargs.items()}
    out = target(fname, *args, **kwargs)
    call = target.last
    expected = ref(fname, *args, **kwargs)
    if isinstance(expected, list):
        if not isinstance(out, list) or len(out) != len(expected):
            fail(call, f"expected a list of {len(expected)} masks", actual=out)
        for i, (a, e) in enumerate(zip(out, expected)):
            assert_equal(call, a, e, what=f"mask {i}")
    else:
        assert_equal(call, out, expected, what="mask")


# --------------------------------------------------------------------------- bad inputs

_W = np.array([[1.0, -2.0], [0.5, 3.0]])

BAD = [
    ("amount-above-1", "prune_count", (1.5, 10), {}, ValueError),
    ("amount-negative", "prune_count", (-0.1, 10), {}, ValueError),
    ("amount-nan", "prune_count", (float("nan"), 10), {}, ValueError),
    ("count-above-n", "prune_count", (11, 10), {}, ValueError),
    ("count-negative", "prune_count", (-1, 10), {}, ValueError),
    ("amount-bool", "prune_count", (True, 10), {}, TypeError),
    ("amount-str", "prune_count", ("0.5", 10), {}, TypeError),
    ("rounding-unknown", "prune_count", (0.5, 10), {"rounding": "up"}, ValueError),
    ("n-negative", "prune_count", (0.5, -1), {}, ValueError),
    ("n-float", "prune_count", (0.5, 10.0), {}, TypeError),
    ("amount-above-1", "magnitude_mask", (_W,), {"amount": 1.5}, ValueError),
    ("count-above-size", "magnitude_mask", (_W,), {"amount": 5}, ValueError),
    ("rounding-unknown", "magnitude_mask", (_W,), {"amount": 0.5, "rounding": "nearest"}, ValueError),
    ("nan-weights", "magnitude_mask", (np.array([1.0, np.nan]),), {"amount": 1}, ValueError),
    ("nan-scores", "magnitude_mask", (_W,), {"amount": 1, "scores": np.array([[1.0, np.nan], [0.0, 1.0]])}, ValueError),
    ("scores-shape", "magnitude_mask", (_W,), {"amount": 1, "scores": np.ones(4)}, ValueError),
    ("int-weights", "magnitude_mask", (np.array([1, 2, 3]),), {"amount": 1}, TypeError),
    ("list-weights", "magnitude_mask", ([1.0, 2.0],), {"amount": 1}, TypeError),
    ("nan-noise", "random_mask", (np.array([0.5, np.nan]),), {"amount": 1}, ValueError),
    ("amount-negative", "random_mask", (np.array([0.5, 0.2]),), {"amount": -1}, ValueError),
    ("not-a-list", "global_magnitude_mask", (_W,), {"amount": 1}, TypeError),
    ("count-above-total", "global_magnitude_mask", ([_W, _W],), {"amount": 9}, ValueError),
    ("nan-weights", "global_magnitude_mask", ([_W, np.array([np.nan])],), {"amount": 1}, ValueError),
    ("0d", "structured_mask", (np.array(1.0),), {"amount": 1, "axis": 0}, ValueError),
    ("axis-out-of-range", "structured_mask", (_W,), {"amount": 1, "axis": 2}, ValueError),
    ("ord-zero", "structured_mask", (_W,), {"amount": 1, "axis": 0, "ord": 0}, ValueError),
    ("ord-negative", "structured_mask", (_W,), {"amount": 1, "axis": 0, "ord": -1}, ValueError),
    ("count-above-slices", "structured_mask", (_W,), {"amount": 3, "axis": 0}, ValueError),
    ("nan-weights", "structured_mask", (np.array([[1.0, np.nan], [1.0, 2.0]]),), {"amount": 1, "axis": 0}, ValueError),
    ("float-mask", "apply_mask", (_W, np.ones((2, 2))), {}, TypeError),
    ("shapes", "apply_mask", (_W, np.ones(4, dtype=bool)), {}, ValueError),
    ("float-mask", "sparsity", (np.ones(3),), {}, TypeError),
    ("bool-weights", "mask_from_weights", (np.array([True, False]),), {}, TypeError),
    ("mixed-namespaces", "apply_mask", (_W, Host(np.ones((2, 2), dtype=bool))), {}, TypeError),
    ("mixed-namespaces", "magnitude_mask", (_W,), {"amount": 1, "scores": Host(np.ones((2, 2)))}, TypeError),
]


@pytest.mark.parametrize("case", bad_input_params(BAD))
def test_bad_input(target, case):
    check_bad_input(target, *case)


# --------------------------------------------------------------------------- large arrays


def _large(kind, n):
    rng = np.random.default_rng(7)
    if kind == "distinct":
        return rng.normal(size=n)
    if kind == "ties":
        return rng.integers(-3, 4, size=n).astype(np.float64)
    return np.full(n, 0.25)


LARGE = [("distinct", 0.3), ("ties", 0.5), ("ties", 0.0001), ("constant", 0.9)]


@pytest.mark.parametrize("kind,amount", LARGE, ids=[f"{k}-{a}" for k, a in LARGE])
@protocol("magnitude_mask")
def test_large_masks(target, ref, kind, amount):
    """Arrays past the size where native selection paths switch strategy (sampling, chunks)."""
    w = _large(kind, 300_003)
    out = target("magnitude_mask", w, amount=amount)
    assert_equal(target.last, out, ref("magnitude_mask", w, amount=amount), what="mask")


@pytest.mark.parametrize("kind,amount", LARGE, ids=[f"{k}-{a}" for k, a in LARGE])
@protocol("global_magnitude_mask")
def test_large_global_masks(target, ref, kind, amount):
    """The global selection past the sizes where it samples and chunks."""
    w = _large(kind, 300_003)
    parts = [w[:100_000].reshape(1000, 100), w[100_000:100_001], w[100_001:]]
    outs = target("global_magnitude_mask", parts, amount=amount)
    for i, (a, e) in enumerate(zip(outs, ref("global_magnitude_mask", parts, amount=amount))):
        assert_equal(target.last, a, e, what=f"mask {i}")
