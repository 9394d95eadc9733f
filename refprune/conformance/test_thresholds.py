"""Thresholds: values on and around the boundary, idempotence, gradients, bad inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refprune.conformance import strategies as cs
from refprune.conformance.gradcheck import check_target_grad
from refprune.conformance.report import assert_equal, assert_values, bad_input_params, check_bad_input, compare, fail

protocol = pytest.mark.protocol


def _draw(data, *, dtype=None, kinds=cs.WEIGHT_KINDS, max_size=40):
    """``(dtype, w, threshold)`` with some entries of ``w`` exactly at +-threshold."""
    dtype = dtype or data.draw(cs.dtypes(), label="dtype")
    shape = data.draw(cs.shapes(max_size=max_size), label="shape")
    t = data.draw(cs.thresholds(dtype), label="threshold")
    w = data.draw(cs.weights(dtype, shape, kinds=kinds, bound=4.0), label="w")
    on_edge = data.draw(cs.masks(shape), label="entries set to +-threshold")
    sign = np.where(data.draw(cs.masks(shape), label="negative"), -1.0, 1.0)
    return dtype, np.where(on_edge, sign * t, w).astype(dtype), t


@protocol("hard_threshold", checks="values,properties")
@given(data=st.data())
def test_hard_threshold(target, ref, data):
    dtype, w, t = _draw(data)
    out, _ = compare(target, ref, "hard_threshold", w, threshold=t)
    call = target.last
    if not np.all((out == w) | (out == 0)):
        fail(call, "every entry must be w or 0", actual=out)
    again = target("hard_threshold", out, threshold=t)
    assert_equal(target.last, again, out, what="hard_threshold(hard_threshold(w)) (idempotence)")


@protocol("hard_threshold_grad", "hard_threshold")
@given(data=st.data())
def test_hard_threshold_grad(target, ref, data):
    dtype, w, t = _draw(data)
    dy = data.draw(cs.weights(dtype, w.shape, kinds=("distinct", "constant")), label="dy")
    compare(target, ref, "hard_threshold_grad", w, dy, threshold=t)
    if dtype == "float64":
        check_target_grad(target, "hard_threshold", "hard_threshold_grad", [w], dy=dy,
                          where=np.abs(np.abs(w) - t) > 1e-4, threshold=t)


@protocol("soft_threshold", checks="values,properties")
@given(data=st.data())
def test_soft_threshold(target, ref, data):
    dtype, w, t = _draw(data)
    out, _ = compare(target, ref, "soft_threshold", w, threshold=t)
    call = target.last
    if np.any(np.abs(out) > np.abs(w)) or np.any(out * w < 0):
        fail(call, "soft thresholding shrinks towards 0 and never flips a sign", actual=out)
    t2 = data.draw(cs.thresholds(dtype), label="second threshold")
    twice = target("soft_threshold", out, threshold=t2)
    once = ref("soft_threshold", w, threshold=t + t2)
    assert_values(target.last, twice, once, dtype=dtype, scale=4.0, what="S_a(S_b(w)) vs S_(a+b)(w)")


@protocol("soft_threshold_grad", "soft_threshold")
@given(data=st.data())
def test_soft_threshold_grad(target, ref, data):
    dtype, w, t = _draw(data)
    dy = data.draw(cs.weights(dtype, w.shape, kinds=("distinct", "constant")), label="dy")
    compare(target, ref, "soft_threshold_grad", w, dy, threshold=t)
    if dtype == "float64":
        check_target_grad(target, "soft_threshold", "soft_threshold_grad", [w], dy=dy,
                          where=np.abs(np.abs(w) - t) > 1e-4, threshold=t)


@protocol("rvsm_threshold")
@given(lam=cs.lams(), beta=st.one_of(st.sampled_from([1.0, 4.0]), st.floats(1e-3, 100.0)))
def test_rvsm_threshold(target, ref, lam, beta):
    out = target("rvsm_threshold", lam=lam, beta=beta)
    call = target.last
    expected = ref("rvsm_threshold", lam=lam, beta=beta)
    if not isinstance(out, float):
        fail(call, f"returned {type(out).__name__}, expected a Python float", expected=expected, actual=out)
    assert_values(call, out, expected, dtype="float64")
    assert_values(call, out, math.sqrt(2 * lam / beta), dtype="float64", what="sqrt(2*lam/beta)")


@protocol("binarize", checks="values,properties")
@given(data=st.data())
def test_binarize(target, ref, data):
    dtype, w, t = _draw(data)
    kw = {}
    if data.draw(st.booleans(), label="pass threshold"):
        kw["threshold"] = t
    else:
        w = np.where(np.abs(w) == t, np.asarray(0.5, dtype), w).astype(dtype)
    for name, default in (("on", 1.0), ("off", 0.0)):
        if data.draw(st.booleans(), label=f"pass {name}"):
            kw[name] = data.draw(st.sampled_from([default, 2.5, -1.0, 0.0, 1.0]), label=name)
    out, _ = compare(target, ref, "binarize", w, **kw)
    on, off = kw.get("on", 1.0), kw.get("off", 0.0)
    if not np.all((out == on) | (out == off)):
        fail(target.last, f"every entry must be on={on} or off={off}", actual=out)
    if not kw:
        again = target("binarize", out)
        assert_equal(target.last, again, out, what="binarize(binarize(w)) (idempotence with on=1, off=0)")


@protocol("binarize_grad")
@given(data=st.data())
def test_binarize_grad(target, ref, data):
    dtype, w, t = _draw(data)
    dy = data.draw(cs.weights(dtype, w.shape, kinds=("distinct", "constant")), label="dy")
    if data.draw(st.booleans(), label="pass clip"):
        lo, hi = sorted([t, data.draw(cs.thresholds(dtype), label="other bound") * -1.0])
        clip = (lo, hi)
        w = np.where(data.draw(cs.masks(w.shape), label="on a bound"), np.asarray(hi, dtype), w).astype(dtype)
        out, _ = compare(target, ref, "binarize_grad", w, dy, clip=clip)
        inside = (w >= lo) & (w <= hi)
        assert_values(target.last, out, np.where(inside, dy, 0), dtype=dtype, what="dy inside [lo, hi] (inclusive), 0 outside")
    else:
        out, _ = compare(target, ref, "binarize_grad", w, dy)
        assert_equal(target.last, out, dy, what="straight-through gradient (dy itself)")


_W = np.array([-1.0, 0.5, 2.0])

BAD = [
    ("threshold-negative", "hard_threshold", (_W,), {"threshold": -0.1}, ValueError),
    ("threshold-nan", "soft_threshold", (_W,), {"threshold": float("nan")}, ValueError),
    ("int-w", "hard_threshold", (np.array([1, 2]),), {"threshold": 0.5}, TypeError),
    ("list-w", "soft_threshold", ([1.0, 2.0],), {"threshold": 0.5}, TypeError),
    ("dy-shape", "hard_threshold_grad", (_W, np.ones(2)), {"threshold": 0.5}, ValueError),
    ("dy-shape", "soft_threshold_grad", (_W, np.ones((3, 1))), {"threshold": 0.5}, ValueError),
    ("beta-0", "rvsm_threshold", (), {"lam": 1.0, "beta": 0.0}, ValueError),
    ("lam-negative", "rvsm_threshold", (), {"lam": -1.0, "beta": 1.0}, ValueError),
    ("on-inf", "binarize", (_W,), {"on": float("inf")}, ValueError),
    ("bool-w", "binarize", (np.array([True, False]),), {}, TypeError),
    ("clip-reversed", "binarize_grad", (_W, np.ones(3)), {"clip": (1.0, -1.0)}, ValueError),
    ("clip-not-a-pair", "binarize_grad", (_W, np.ones(3)), {"clip": 1.0}, TypeError),
    ("dy-shape", "binarize_grad", (_W, np.ones(4)), {}, ValueError),
]


@pytest.mark.parametrize("case", bad_input_params(BAD))
def test_bad_input(target, case):
    check_bad_input(target, *case)
