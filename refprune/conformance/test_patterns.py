"""N:M and block masks: n kept in every group, whole tiles, exact counts, the tie rule, edge tiles, bad inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refprune.conformance import closed_forms as cf
from refprune.conformance import strategies as cs
from refprune.conformance.report import assert_equal, bad_input_params, check_bad_input, fail

protocol = pytest.mark.protocol


def nm_keep(scores, n, m, axis):
    """The tie rule inside every group of ``m`` consecutive entries along ``axis``."""
    s = np.moveaxis(np.asarray(scores, dtype=np.float64), axis, -1)
    groups = s.reshape(-1, m) if s.size else s.reshape(0, m)
    keep = np.stack([cf.keep_mask(g, m - n) for g in groups]) if groups.shape[0] else np.zeros((0, m), dtype=bool)
    return np.moveaxis(keep.reshape(s.shape), -1, axis)


def tile_scores(s, block, pool):
    """Each tile's pooled score over its real entries (float64, row-major grid)."""
    s = np.asarray(s, dtype=np.float64)
    grid = tuple(-(-n // b) for n, b in zip(s.shape, block))
    out = np.zeros(grid)
    for t in np.ndindex(grid):
        tile = s[tuple(slice(i * b, (i + 1) * b) for i, b in zip(t, block))]
        out[t] = {"l1": lambda x: np.abs(x).sum(), "l2": lambda x: (x * x).sum(), "max": np.max, "mean": np.mean}[pool](tile)
    return out


def expand(tiles, block, shape):
    out = tiles
    for axis, b in enumerate(block):
        out = np.repeat(out, b, axis=axis)
    return out[tuple(slice(0, n) for n in shape)]


# --------------------------------------------------------------------------- N:M


@protocol("nm_mask")
@given(data=st.data())
def test_nm_mask(target, ref, data):
    dtype = data.draw(cs.dtypes(), label="dtype")
    n, m = data.draw(cs.nm_params(), label="(n, m)")
    shape, axis = data.draw(cs.nm_shapes(m), label="(shape, axis)")
    w = data.draw(cs.weights(dtype, shape, allow_inf=True), label="w")
    kw = {"n": n, "m": m}
    if axis != -1 or data.draw(st.booleans(), label="pass axis"):
        kw["axis"] = axis
    if data.draw(st.booleans(), label="pass scores"):
        kw["scores"] = data.draw(cs.scores(dtype, shape), label="scores")
    out = target("nm_mask", w, **kw)
    call = target.last
    assert_equal(call, out, ref("nm_mask", w, **kw), what="mask")
    per_group = np.moveaxis(out, axis, -1).reshape(-1, m).sum(axis=1) if out.size else np.zeros(0)
    if np.any(per_group != n):
        fail(call, f"every group of m={m} must keep exactly n={n}; kept {sorted(set(per_group.tolist()))}", actual=out)
    assert_equal(call, out, nm_keep(kw.get("scores", np.abs(w)), n, m, axis),
                 what="mask vs the tie rule in every group (score descending, lower position first)")


def _a(*v):
    return np.array(v, dtype=np.float64)


PATTERN_CASES = {
    # id: (function, args, kwargs)  -- worked by hand from the protocol's rules
    "nm-2-4": ("nm_mask", (_a(0.1, -3, 2, 0.5, 1, 1, 1, 0).reshape(1, 8),), {"n": 2, "m": 4}),
    "nm-ties-same-magnitude": ("nm_mask", (_a(1, -1, 1, 1),), {"n": 2, "m": 4}),
    "nm-all-equal": ("nm_mask", (np.ones((3, 8)),), {"n": 2, "m": 4}),
    "nm-1-4": ("nm_mask", (_a(0, 0, 0, 5, 3, 3, 0, 0),), {"n": 1, "m": 4}),
    "nm-3-4": ("nm_mask", (_a(4, 3, 2, 1),), {"n": 3, "m": 4}),
    "nm-axis0": ("nm_mask", (_a(0.1, -3, 2, 0.5, 1, 1, 1, 0).reshape(2, 4),), {"n": 1, "m": 2, "axis": 0}),
    "nm-axis1-of-3d": ("nm_mask", (np.arange(24.0).reshape(2, 4, 3)[:, ::-1].copy(),), {"n": 2, "m": 4, "axis": 1}),
    "nm-scores": ("nm_mask", (np.ones(8),), {"n": 2, "m": 4, "scores": _a(-1, 5, 0, 5, 2, -np.inf, np.inf, 2)}),
    "nm-inf": ("nm_mask", (_a(np.inf, -np.inf, 1, 0),), {"n": 1, "m": 2}),
    "nm-keep-all": ("nm_mask", (_a(1, 2, 3, 4),), {"n": 4, "m": 4}),
    "nm-keep-none": ("nm_mask", (_a(1, 2, 3, 4),), {"n": 0, "m": 2}),
    "nm-empty": ("nm_mask", (np.zeros((0, 8)),), {"n": 2, "m": 4}),
    "block-edge-l1": ("block_mask", (_a(1, 1, 0.1, 0.1, 5, 1, 1, 0.1, 0.1, 5).reshape(2, 5),), {"block": (2, 2), "amount": 1}),
    # the 2x1 edge tile: l1 2.4 < 4 (pruned) but mean 1.2 > 1 (kept)
    "block-edge-l1-counts": ("block_mask", (_a(1, 1, 1.2, 1, 1, 1.2).reshape(2, 3),), {"block": 2, "amount": 1}),
    "block-edge-l2": ("block_mask", (_a(1, 1, 1.2, 1, 1, 1.2).reshape(2, 3),), {"block": 2, "amount": 1, "pool": "l2"}),
    "block-edge-mean": ("block_mask", (_a(1, 1, 1.2, 1, 1, 1.2).reshape(2, 3),), {"block": 2, "amount": 1, "pool": "mean"}),
    "block-edge-max": ("block_mask", (_a(1, 1, 1.2, 1, 1, 1.2).reshape(2, 3),), {"block": 2, "amount": 1, "pool": "max"}),
    "block-ties-later-first": ("block_mask", (np.ones((4, 6)),), {"block": 2, "amount": 3}),
    "block-halfway": ("block_mask", (np.ones((4, 6)),), {"block": 2, "amount": 0.25}),  # 1.5 -> 2
    "block-1d": ("block_mask", (_a(3, 1, 2, 0.5, 4),), {"block": 2, "amount": 1}),
    "block-bigger-than-w": ("block_mask", (_a(3, 1, 2, 0.5, 4),), {"block": 10, "amount": 1}),
    "block-3d": ("block_mask", (np.arange(24.0).reshape(2, 3, 4)[::-1].copy(),), {"block": (1, 2, 3), "amount": 0.5}),
    "block-scores-signed-mean": ("block_mask", (np.ones((2, 6)),), {"block": 2, "amount": 1, "pool": "mean",
                                                                     "scores": np.tile(_a(-3, -3, 1, 1, 0.5, 0.5), (2, 1))}),
    "block-scores-signed-l1": ("block_mask", (np.ones((2, 6)),), {"block": 2, "amount": 1,
                                                                   "scores": np.tile(_a(-3, -3, 1, 1, 0.5, 0.5), (2, 1))}),
    "block-huge-float32": ("block_mask", (_a(3e38, 3e38, 1, 1, 3e38, 3e38, 2, 2).reshape(2, 4),), {"block": 2, "amount": 1}),
    "block-empty": ("block_mask", (np.zeros((0, 5)),), {"block": 2, "amount": 0.5}),
}


def _case_params():
    return [pytest.param(k, id=k, marks=pytest.mark.protocol(v[0])) for k, v in PATTERN_CASES.items()]


@pytest.mark.parametrize("case", _case_params())
@pytest.mark.parametrize("dtype", cs.FLOAT_DTYPES)
def test_pattern_cases(target, ref, case, dtype):
    fname, args, kwargs = PATTERN_CASES[case]
    args = tuple(a.astype(dtype) for a in args)
    kwargs = {k: v.astype(dtype) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    out = target(fname, *args, **kwargs)
    assert_equal(target.last, out, ref(fname, *args, **kwargs), what="mask")


# --------------------------------------------------------------------------- blocks


@protocol("block_mask")
@given(data=st.data())
def test_block_mask(target, ref, data):
    dtype = data.draw(cs.dtypes(), label="dtype")
    shape, block = data.draw(cs.block_shapes(), label="(shape, block)")
    w = data.draw(cs.dyadic_weights(dtype, shape), label="w")
    grid = tuple(-(-n // b) for n, b in zip(shape, block))
    tiles = math.prod(grid)
    kw = {"block": block, "amount": data.draw(cs.amounts(tiles), label="amount")}
    if data.draw(st.booleans(), label="pass rounding"):
        kw["rounding"] = data.draw(cs.roundings(), label="rounding")
    pool = data.draw(st.one_of(st.none(), cs.pools()), label="pool")
    if pool is not None:
        kw["pool"] = pool
    if data.draw(st.booleans(), label="pass scores"):
        kw["scores"] = data.draw(cs.dyadic_weights(dtype, shape), label="scores")
    out = target("block_mask", w, **kw)
    call = target.last
    assert_equal(call, out, ref("block_mask", w, **kw), what="mask")
    k = cf.prune_count(kw["amount"], tiles, kw.get("rounding", "half-even"))
    if w.size:
        s = kw["scores"] if "scores" in kw else np.abs(w)
        expected_tiles = cf.keep_mask(tile_scores(s, block, pool or "l1").reshape(-1), k).reshape(grid)
        assert_equal(call, out, expand(expected_tiles, block, shape),
                     what="mask vs whole tiles pruned by the tie rule on the pooled scores (row-major tile order)")
        pruned = sum(not out[tuple(slice(i * b, (i + 1) * b) for i, b in zip(t, block))].any() for t in np.ndindex(grid))
        if pruned != k:
            fail(call, f"pruned {pruned} whole tiles, expected exactly k = {k}", actual=out)


# --------------------------------------------------------------------------- bad inputs

_W = np.ones((2, 8))

BAD = [
    ("length-not-multiple", "nm_mask", (_W,), {"n": 1, "m": 3}, ValueError),
    ("axis0-not-multiple", "nm_mask", (_W,), {"n": 2, "m": 4, "axis": 0}, ValueError),
    ("n-above-m", "nm_mask", (_W,), {"n": 5, "m": 4}, ValueError),
    ("m-zero", "nm_mask", (_W,), {"n": 0, "m": 0}, ValueError),
    ("n-negative", "nm_mask", (_W,), {"n": -1, "m": 4}, ValueError),
    ("n-float", "nm_mask", (_W,), {"n": 2.0, "m": 4}, TypeError),
    ("m-bool", "nm_mask", (_W,), {"n": 1, "m": True}, TypeError),
    ("0d", "nm_mask", (np.array(1.0),), {"n": 1, "m": 1}, ValueError),
    ("axis-out-of-range", "nm_mask", (_W,), {"n": 1, "m": 2, "axis": 2}, ValueError),
    ("nan-weights", "nm_mask", (np.array([1.0, np.nan, 2.0, 3.0]),), {"n": 2, "m": 4}, ValueError),
    ("nan-scores", "nm_mask", (np.ones(4),), {"n": 2, "m": 4, "scores": np.array([1.0, np.nan, 2.0, 3.0])}, ValueError),
    ("scores-shape", "nm_mask", (_W,), {"n": 2, "m": 4, "scores": np.ones(8)}, ValueError),
    ("int-weights", "nm_mask", (np.ones((2, 8), dtype=np.int64),), {"n": 2, "m": 4}, TypeError),
    ("block-length", "block_mask", (_W,), {"block": (2,), "amount": 1}, ValueError),
    ("block-zero", "block_mask", (_W,), {"block": (2, 0), "amount": 1}, ValueError),
    ("block-float", "block_mask", (_W,), {"block": 2.0, "amount": 1}, TypeError),
    ("pool-unknown", "block_mask", (_W,), {"block": 2, "amount": 1, "pool": "l3"}, ValueError),
    ("count-above-tiles", "block_mask", (_W,), {"block": 2, "amount": 5}, ValueError),
    ("amount-above-1", "block_mask", (_W,), {"block": 2, "amount": 1.5}, ValueError),
    ("rounding-unknown", "block_mask", (_W,), {"block": 2, "amount": 0.5, "rounding": "up"}, ValueError),
    ("0d", "block_mask", (np.array(1.0),), {"block": (), "amount": 0}, ValueError),
    ("nan-weights", "block_mask", (np.array([[1.0, np.nan], [1.0, 1.0]]),), {"block": 1, "amount": 1}, ValueError),
    ("nan-scores", "block_mask", (_W,), {"block": 2, "amount": 1, "scores": np.full((2, 8), np.nan)}, ValueError),
    ("mean-of-inf-and-minus-inf", "block_mask", (np.ones((1, 4)),),
     {"block": (1, 2), "amount": 1, "pool": "mean", "scores": np.array([[np.inf, -np.inf, 1.0, 1.0]])}, ValueError),
    ("scores-shape", "block_mask", (_W,), {"block": 2, "amount": 1, "scores": np.ones((2, 2))}, ValueError),
]


@pytest.mark.parametrize("case", bad_input_params(BAD))
def test_bad_input(target, case):
    check_bad_input(target, *case)
