"""Scores: |w g| (SNIP), Taylor (squared by default), movement (-w g accumulated), random scores, slice sums."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refprune.conformance import closed_forms as cf
from refprune.conformance import strategies as cs
from refprune.conformance.report import assert_equal, assert_values, bad_input_params, check_bad_input, compare, fail

protocol = pytest.mark.protocol


def _wg(data, *, max_size=40):
    dtype = data.draw(cs.dtypes(), label="dtype")
    shape = data.draw(cs.shapes(max_size=max_size), label="shape")
    w = data.draw(cs.weights(dtype, shape, kinds=("distinct", "ties", "zeros"), bound=8.0), label="w")
    g = data.draw(cs.weights(dtype, shape, kinds=("distinct", "ties", "constant"), bound=8.0), label="g")
    return dtype, w, g


@protocol("saliency_scores")
@given(data=st.data())
def test_saliency_scores(target, ref, data):
    dtype, w, g = _wg(data)
    out, _ = compare(target, ref, "saliency_scores", w, g)
    assert_values(target.last, out, np.abs(w.astype(np.float64) * g), what="|w * g|")


@protocol("taylor_scores")
@given(data=st.data(), kind=st.sampled_from([None, "squared", "abs"]))
def test_taylor_scores(target, ref, data, kind):
    dtype, w, g = _wg(data)
    kw = {} if kind is None else {"kind": kind}
    out, _ = compare(target, ref, "taylor_scores", w, g, **kw)
    p = w.astype(np.float64) * g
    expected = np.abs(p) if kind == "abs" else p * p
    assert_values(target.last, out, expected, what="(w g)^2 (the default) or |w g|")


@protocol("movement_scores")
@given(data=st.data(), steps=st.integers(1, 4))
def test_movement_scores(target, ref, data, steps):
    dtype = data.draw(cs.dtypes(), label="dtype")
    shape = data.draw(cs.shapes(max_size=30), label="shape")
    previous, total = None, np.zeros(shape)
    for t in range(steps):
        w = data.draw(cs.weights(dtype, shape, kinds=("distinct", "ties"), bound=4.0), label=f"w at step {t}")
        g = data.draw(cs.weights(dtype, shape, kinds=("distinct", "ties"), bound=4.0), label=f"g at step {t}")
        kw = {} if previous is None else {"previous": previous.astype(dtype)}
        out, _ = compare(target, ref, "movement_scores", w, g, **kw)
        total = (0.0 if previous is None else previous.astype(dtype).astype(np.float64)) - w.astype(np.float64) * g
        assert_values(target.last, out, total, what="S - w * g (scores grow when w moves away from 0)")
        previous = out


@protocol("random_scores")
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_random_scores(target, ref, data, seed):
    """With refprune's reference stream the target draws the very numbers NumPy PCG64 draws."""
    dtype = data.draw(cs.dtypes(), label="dtype")
    shape = data.draw(cs.shapes(max_size=30), label="shape")
    w = np.zeros(shape, dtype=dtype)
    out = target("random_scores", w, rng=target.backend.rng(seed, stream="reference"))
    call = target.last
    expected = ref.backend.rng(seed, stream="reference").uniform(shape, "float64").astype(dtype)
    assert_equal(call, out, expected, what="the reference stream's uniform draws, in w's dtype")
    if np.any((out < 0) | (out > 1)):
        fail(call, "scores must lie in [0, 1]", actual=out)


@protocol("structured_mask", "saliency_scores")
@given(data=st.data())
def test_structured_mask_scores(target, ref, data):
    """``structured_mask(scores=)`` sums each slice's scores; the tie rule over slices."""
    dtype = data.draw(cs.dtypes(), label="dtype")
    shape = data.draw(cs.shapes(min_dims=1, max_size=30), label="shape")
    axis = data.draw(cs.axes(len(shape)), label="axis")
    w = data.draw(cs.dyadic_weights(dtype, shape), label="w")
    s = data.draw(cs.dyadic_weights(dtype, shape), label="scores")
    m = shape[axis]
    kw = {"axis": axis, "amount": data.draw(cs.amounts(m), label="amount"), "scores": s}
    out = target("structured_mask", w, **kw)
    call = target.last
    assert_equal(call, out, ref("structured_mask", w, **kw), what="mask")
    others = tuple(i for i in range(len(shape)) if i != axis % len(shape))
    sums = s.astype(np.float64).sum(axis=others) if others else s.astype(np.float64)
    view = [1] * len(shape)
    view[axis % len(shape)] = m
    keep = cf.keep_mask(sums, cf.prune_count(kw["amount"], m))
    assert_equal(call, out, np.broadcast_to(keep.reshape(view), shape).copy(), what="whole slices by the sum of their scores")


@pytest.mark.protocol("structured_mask")
@pytest.mark.parametrize("dtype", cs.FLOAT_DTYPES)
def test_structured_mask_signed_scores_hand_worked(target, dtype):
    w = np.ones((3, 2), dtype=dtype)
    s = np.array([[1.0, 2.0], [0.5, 0.5], [4.0, -1.0]], dtype=dtype)  # sums 3, 1, 3 (|.| would give 3, 1, 5)
    out = target("structured_mask", w, amount=2, axis=0, scores=s)
    assert_equal(target.last, out, np.array([[True, True], [False, False], [False, False]]),
                 what="slices by the signed sum of their scores; the tied later slice pruned first")


@pytest.mark.protocol("movement_scores", "magnitude_mask")
def test_movement_sign_hand_worked(target):
    w = np.array([1.0, 1.0, -1.0, 2.0])
    g = np.array([-0.5, 0.5, -0.5, 0.0])
    s = target("movement_scores", w, g)
    assert_equal(target.last, s, np.array([0.5, -0.5, -0.5, 0.0]), what="-w * g")
    mask = target("magnitude_mask", w, amount=2, scores=s)
    assert_equal(target.last, mask, np.array([True, False, False, True]), what="the weights moving toward 0 pruned first")


_W = np.ones((2, 3))

BAD = [
    ("shapes", "saliency_scores", (_W, np.ones(6)), {}, ValueError),
    ("int-gradient", "saliency_scores", (_W, np.ones((2, 3), dtype=np.int64)), {}, TypeError),
    ("kind-unknown", "taylor_scores", (_W, _W), {"kind": "square"}, ValueError),
    ("shapes", "taylor_scores", (_W, np.ones(6)), {}, ValueError),
    ("previous-shape", "movement_scores", (_W, _W), {"previous": np.ones(3)}, ValueError),
    ("int-weights", "movement_scores", (np.ones((2, 3), dtype=np.int64), _W), {}, TypeError),
    ("not-a-generator", "random_scores", (_W,), {"rng": None}, TypeError),
    ("ord-with-scores", "structured_mask", (_W,), {"amount": 1, "axis": 0, "scores": _W, "ord": 2}, ValueError),
    ("nan-scores", "structured_mask", (_W,), {"amount": 1, "axis": 0, "scores": np.full((2, 3), np.nan)}, ValueError),
    ("inf-and-minus-inf", "structured_mask", (_W,), {"amount": 1, "axis": 0, "scores": np.array([[np.inf, -np.inf, 1.0], [1.0, 1.0, 1.0]])},
     ValueError),
]


@pytest.mark.parametrize("case", bad_input_params(BAD))
def test_bad_input(target, case):
    check_bad_input(target, *case)
