"""Dynamic sparse training: as many grown as dropped, growth only among the previously pruned, ties, cosine decay."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refprune.conformance import closed_forms as cf
from refprune.conformance import strategies as cs
from refprune.conformance.report import assert_equal, assert_values, bad_input_params, check_bad_input, fail

protocol = pytest.mark.protocol


def expected_update(w, mask, k, grow, drop=None):
    """Survivors: the tie rule over the kept entries' drop scores; grown: over the pruned entries' grow scores."""
    flat = mask.reshape(-1)
    kept, pruned = np.flatnonzero(flat), np.flatnonzero(~flat)
    ds = (np.abs(w.astype(np.float64)) if drop is None else drop.astype(np.float64)).reshape(-1)
    new = np.zeros(flat.size, dtype=bool)
    new[kept[cf.keep_mask(ds[kept], k)]] = True
    gs = grow.astype(np.float64).reshape(-1)[pruned]
    new[pruned[cf.keep_mask(gs, pruned.size - k)]] = True  # the k best grow scores
    return new.reshape(mask.shape)


@protocol("drop_grow")
@given(data=st.data())
def test_drop_grow(target, ref, data):
    dtype = data.draw(cs.dtypes(), label="dtype")
    w, mask, grow = data.draw(cs.dst_cases(dtype), label="(w, mask, grow_scores)")
    n_kept, n_pruned = int(mask.sum()), int((~mask).sum())
    kw = {"drop_fraction": data.draw(cs.amounts(n_kept), label="drop_fraction"), "grow_scores": grow}
    if data.draw(st.booleans(), label="pass rounding"):
        kw["rounding"] = data.draw(cs.roundings(), label="rounding")
    if data.draw(st.booleans(), label="pass drop_scores"):
        kw["drop_scores"] = data.draw(cs.scores(dtype, w.shape), label="drop_scores")
    out = target("drop_grow", w, mask, **kw)
    call = target.last
    assert_equal(call, out, ref("drop_grow", w, mask, **kw), what="new mask")
    k = min(cf.prune_count(kw["drop_fraction"], n_kept, kw.get("rounding", "half-even")), n_pruned)
    dropped, grown = int((mask & ~out).sum()), int((~mask & out).sum())
    if dropped != k or grown != k:
        fail(call, f"dropped {dropped} and grew {grown}; both must be k = min(prune_count(drop_fraction, {n_kept}), {n_pruned}) = {k}",
             actual=out)
    assert_equal(call, out, expected_update(w, mask, k, grow, kw.get("drop_scores")),
                 what="new mask vs the tie rule (drop among kept, grow among the previously pruned only)")


CASES = {
    # id: (args, kwargs)  -- worked by hand
    "module-example": ((np.array([0.9, 0.0, -0.2, 0.0, 0.5, 0.0]), np.array([True, False, True, False, True, False])),
                       {"drop_fraction": 1 / 3, "grow_scores": np.array([0.0, 0.1, 9.0, 0.7, 0.0, 0.3])}),
    "no-regrowth": ((np.array([0.5, 0.1, 0.0, 0.0]), np.array([True, True, False, False])),
                    {"drop_fraction": 0.5, "grow_scores": np.array([0.0, 9.0, 1.0, 2.0])}),
    "ties": ((np.ones(6), np.array([True, True, True, False, False, False])), {"drop_fraction": 2, "grow_scores": np.zeros(6)}),
    "cap-at-pruned": ((np.arange(1.0, 7.0), np.array([True, True, True, True, True, False])),
                      {"drop_fraction": 0.6, "grow_scores": np.arange(1.0, 7.0)}),
    "dense-layer": ((np.arange(1.0, 7.0), np.ones(6, dtype=bool)), {"drop_fraction": 0.5, "grow_scores": np.ones(6)}),
    "floor-like-rigl": ((np.arange(1.0, 11.0), np.arange(10) < 5), {"drop_fraction": 0.3, "grow_scores": np.arange(10.0), "rounding": "floor"}),
    "half-even": ((np.arange(1.0, 11.0), np.arange(10) < 5), {"drop_fraction": 0.3, "grow_scores": np.arange(10.0)}),
    "drop-scores": ((np.array([1.0, 2.0, 3.0, 0.0]), np.array([True, True, True, False])),
                    {"drop_fraction": 1, "grow_scores": np.ones(4), "drop_scores": np.array([5.0, -1.0, 0.0, 9.0])}),
    "2d": ((np.array([[0.3, 0.0], [-0.1, 0.2]]), np.array([[True, False], [True, True]])),
           {"drop_fraction": 0.34, "grow_scores": np.array([[0.0, 5.0], [0.0, 0.0]])}),
}


@pytest.mark.protocol("drop_grow")
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("dtype", cs.FLOAT_DTYPES)
def test_drop_grow_cases(target, ref, case, dtype):
    (w, mask), kw = CASES[case]
    kw = {k: v.astype(dtype) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
    out = target("drop_grow", w.astype(dtype), mask, **kw)
    assert_equal(target.last, out, ref("drop_grow", w.astype(dtype), mask, **kw), what="new mask")


@protocol("cosine_drop_fraction")
@given(end=st.one_of(st.sampled_from([1, 2, 100, 25000]), st.integers(1, 10**6)), data=st.data(),
       initial=st.one_of(st.sampled_from([0.3, 0.5, 1.0, 0.0]), st.floats(0.0, 1.0)))
def test_cosine_drop_fraction(target, ref, end, data, initial):
    step = data.draw(st.one_of(st.sampled_from([0, 1, end // 2, end - 1, end, end + 1, 3 * end]), st.integers(0, 2 * end)), label="step")
    out = target("cosine_drop_fraction", step, initial=initial, end=end)
    call = target.last
    if not isinstance(out, float):
        fail(call, f"returned {type(out).__name__}, expected a Python float", actual=out)
    assert_values(call, out, ref("cosine_drop_fraction", step, initial=initial, end=end), dtype="float64")
    closed = 0.0 if step >= end else initial / 2 * (1 + math.cos(math.pi * step / end))
    assert_values(call, out, closed, dtype="float64", what="initial/2 * (1 + cos(pi * step / end)), 0 from end on")
    if step >= end and out != 0.0:
        fail(call, "the fraction is exactly 0 from step end on", actual=out)


_W = np.ones(4)
_M = np.array([True, False, True, False])

BAD = [
    ("float-mask", "drop_grow", (_W, np.ones(4)), {"drop_fraction": 0.5, "grow_scores": _W}, TypeError),
    ("mask-shape", "drop_grow", (_W, np.array([True, False])), {"drop_fraction": 0.5, "grow_scores": _W}, ValueError),
    ("grow-shape", "drop_grow", (_W, _M), {"drop_fraction": 0.5, "grow_scores": np.ones(3)}, ValueError),
    ("fraction-above-1", "drop_grow", (_W, _M), {"drop_fraction": 1.5, "grow_scores": _W}, ValueError),
    ("count-above-kept", "drop_grow", (_W, _M), {"drop_fraction": 3, "grow_scores": _W}, ValueError),
    ("nan-grow-among-pruned", "drop_grow", (_W, _M), {"drop_fraction": 0.5, "grow_scores": np.array([1.0, np.nan, 1.0, 1.0])}, ValueError),
    ("nan-weights-among-kept", "drop_grow", (np.array([np.nan, 1.0, 1.0, 1.0]), _M), {"drop_fraction": 0.5, "grow_scores": _W}, ValueError),
    ("int-weights", "drop_grow", (np.ones(4, dtype=np.int64), _M), {"drop_fraction": 0.5, "grow_scores": _W}, TypeError),
    ("step-negative", "cosine_drop_fraction", (-1,), {"initial": 0.3, "end": 10}, ValueError),
    ("step-float", "cosine_drop_fraction", (1.0,), {"initial": 0.3, "end": 10}, TypeError),
    ("end-zero", "cosine_drop_fraction", (1,), {"initial": 0.3, "end": 0}, ValueError),
    ("initial-above-1", "cosine_drop_fraction", (1,), {"initial": 1.5, "end": 10}, ValueError),
]


@pytest.mark.parametrize("case", bad_input_params(BAD))
def test_bad_input(target, case):
    check_bad_input(target, *case)
