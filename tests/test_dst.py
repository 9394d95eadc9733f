"""Dynamic sparse training: drop_grow's counts, candidates and ties, and RigL's cosine decay."""

from __future__ import annotations

import math

import numpy as np
import pytest

import refprune as rp


def _host(backend, x):
    return np.asarray(backend.to_numpy(x))


def ref_drop_grow(w, mask, drop_fraction, grow, drop=None, rounding="half-even"):
    """Host reference: rank the kept entries by drop score and the pruned ones by grow score,
    each with the sort key (-score, flat index); survivors and grown are the heads."""
    flat = np.asarray(mask).reshape(-1)
    kept_idx, pruned_idx = np.flatnonzero(flat), np.flatnonzero(~flat)
    k = min(rp.prune_count(drop_fraction, kept_idx.size, rounding=rounding), pruned_idx.size)
    ds = np.abs(np.asarray(w, np.float64)).reshape(-1) if drop is None else np.asarray(drop, np.float64).reshape(-1)
    gs = np.asarray(grow, np.float64).reshape(-1)
    survivors = kept_idx[np.lexsort((kept_idx, -ds[kept_idx]))][: kept_idx.size - k]
    grown = pruned_idx[np.lexsort((pruned_idx, -gs[pruned_idx]))][:k]
    new = np.zeros(flat.size, dtype=bool)
    new[survivors] = True
    new[grown] = True
    return new.reshape(np.shape(mask))


def rigl_update(w, mask, drop_fraction, grow):
    """RigL's ``_get_update_op`` restated: keep the n_keep largest |mask*w| over all entries, then grow
    the n_prune largest grow scores among the entries outside that set (just-dropped ones included)."""
    flat_w = np.where(mask, w, 0.0).reshape(-1)
    n = flat_w.size
    n_ones = int(mask.sum())
    n_prune = int(n_ones * drop_fraction)
    mask1 = np.zeros(n, dtype=bool)
    mask1[np.lexsort((np.arange(n), -np.abs(flat_w)))[: n_ones - n_prune]] = True
    lifted = np.where(mask1, grow.reshape(-1).min() - 1, grow.reshape(-1))
    mask2 = np.zeros(n, dtype=bool)
    mask2[np.lexsort((np.arange(n), -lifted))[:n_prune]] = True
    return (mask1 | mask2).reshape(mask.shape)


def _case(rng, shape, density, kind):
    if kind == "ties":
        w = rng.integers(-2, 3, size=shape).astype(np.float64)
        g = rng.integers(0, 3, size=shape).astype(np.float64)
    else:
        w, g = rng.normal(size=shape), np.abs(rng.normal(size=shape))
    mask = rng.random(shape) < density
    return w, mask, g


# ---------------------------------------------------------------- drop_grow


def test_drop_grow_hand_worked(backend, dtype):
    w = backend.asarray([0.9, 0.0, -0.2, 0.0, 0.5, 0.0], dtype=dtype)
    mask = backend.asarray([True, False, True, False, True, False])
    grow = backend.asarray([0.0, 0.1, 9.0, 0.7, 0.0, 0.3], dtype=dtype)
    new = rp.drop_grow(w, mask, drop_fraction=1 / 3, grow_scores=grow)
    np.testing.assert_array_equal(_host(backend, new), [True, False, False, True, True, False])
    new = rp.drop_grow(w, mask, drop_fraction=2, grow_scores=grow)  # an int count: drops -0.2 and 0.5, grows 3 and 5
    np.testing.assert_array_equal(_host(backend, new), [True, False, False, True, False, True])
    np.testing.assert_array_equal(_host(backend, rp.apply_mask(w, mask & new)), np.asarray([0.9, 0, 0, 0, 0, 0], dtype=dtype))


def test_drop_grow_ties(backend):
    w = backend.asarray(np.ones(6))
    mask = backend.asarray([True, True, True, False, False, False])
    grow = backend.asarray(np.zeros(6))
    # equal |w|: drop the higher index (2); equal grow scores: grow the lower index (3)
    new = rp.drop_grow(w, mask, drop_fraction=1, grow_scores=grow)
    np.testing.assert_array_equal(_host(backend, new), [True, True, False, True, False, False])
    new = rp.drop_grow(w, mask, drop_fraction=2, grow_scores=grow)
    np.testing.assert_array_equal(_host(backend, new), [True, False, False, True, True, False])


def test_drop_grow_never_regrows_what_it_just_dropped(backend):
    w = backend.asarray([0.5, 0.1, 0.0, 0.0])
    mask = backend.asarray([True, True, False, False])
    grow = backend.asarray([0.0, 9.0, 1.0, 2.0])  # the dropped entry has the largest grow score
    new = rp.drop_grow(w, mask, drop_fraction=0.5, grow_scores=grow)
    np.testing.assert_array_equal(_host(backend, new), [True, False, False, True])


@pytest.mark.parametrize("kind", ["normal", "ties"])
def test_drop_grow_matches_reference_and_properties(backend, dtype, rng, kind):
    for shape, density in [((10,), 0.5), ((6, 7), 0.3), ((4, 5, 3), 0.8), ((8, 8), 0.05), ((5, 5), 1.0), ((5, 5), 0.0)]:
        w_h, m_h, g_h = _case(rng, shape, density, kind)
        w_h, g_h = w_h.astype(dtype), g_h.astype(dtype)
        w, mask, g = backend.asarray(w_h, dtype=dtype), backend.asarray(m_h), backend.asarray(g_h, dtype=dtype)
        n_kept = int(m_h.sum())
        for fraction in (0.0, 0.1, 0.3, 0.5, 1.0):
            for rounding in ("half-even", "floor"):
                new = _host(backend, rp.drop_grow(w, mask, drop_fraction=fraction, grow_scores=g, rounding=rounding))
                np.testing.assert_array_equal(new, ref_drop_grow(w_h, m_h, fraction, g_h, rounding=rounding))
                dropped, grown = m_h & ~new, ~m_h & new
                k = min(rp.prune_count(fraction, n_kept, rounding=rounding), m_h.size - n_kept)
                assert dropped.sum() == grown.sum() == k
                assert new.sum() == n_kept
        np.testing.assert_array_equal(_host(backend, w), w_h)
        np.testing.assert_array_equal(_host(backend, mask), m_h)


def test_drop_grow_with_drop_scores(backend, dtype, rng):
    w_h, m_h, g_h = _case(rng, (6, 6), 0.5, "normal")
    d_h = rng.normal(size=(6, 6))
    args = [backend.asarray(x, dtype=dtype) for x in (w_h, g_h, d_h)]
    new = rp.drop_grow(args[0], backend.asarray(m_h), drop_fraction=0.25, grow_scores=args[1], drop_scores=args[2])
    expected = ref_drop_grow(w_h.astype(dtype), m_h, 0.25, g_h.astype(dtype), drop=d_h.astype(dtype))
    np.testing.assert_array_equal(_host(backend, new), expected)


def test_drop_grow_inf_scores_rank_as_extremes(backend):
    w = backend.asarray([np.inf, 1.0, np.inf, 0.0, 0.0, 0.0])
    mask = backend.asarray([True, True, True, False, False, False])
    grow = backend.asarray([0.0, 0.0, 0.0, -np.inf, np.inf, np.inf])
    new = rp.drop_grow(w, mask, drop_fraction=2, grow_scores=grow)  # drop 1.0, then the later inf; grow the infs
    np.testing.assert_array_equal(_host(backend, new), [True, False, False, False, True, True])


def test_drop_grow_caps_k_at_the_pruned_count(backend):
    w = backend.asarray(np.arange(1.0, 7.0))
    full = backend.asarray(np.ones(6, dtype=bool))
    np.testing.assert_array_equal(_host(backend, rp.drop_grow(w, full, drop_fraction=0.5, grow_scores=w)), np.ones(6, bool))
    mostly = backend.asarray([True, True, True, True, True, False])
    new = _host(backend, rp.drop_grow(w, mostly, drop_fraction=0.6, grow_scores=w))  # k = min(3, 1) = 1
    np.testing.assert_array_equal(new, [False, True, True, True, True, True])


def test_drop_grow_empty_and_zero_d(backend):
    e = backend.asarray(np.zeros((0, 3)))
    out = rp.drop_grow(e, backend.asarray(np.zeros((0, 3), dtype=bool)), drop_fraction=0.5, grow_scores=e)
    assert tuple(out.shape) == (0, 3)
    s = backend.xp.reshape(backend.asarray([2.0]), ())
    m = backend.xp.reshape(backend.asarray([True]), ())
    out = rp.drop_grow(s, m, drop_fraction=1.0, grow_scores=s)
    assert tuple(out.shape) == () and bool(_host(backend, out))


def test_drop_grow_differs_from_rigl_worked_example():
    """RigL grows among every entry outside the survivors, just-dropped ones included: here it
    grows back the entry it dropped (a no-op update); refprune grows a previously pruned one."""
    w = np.asarray([0.5, 0.1, 0.0, 0.0])
    mask = np.asarray([True, True, False, False])
    grow = np.asarray([0.0, 9.0, 1.0, 2.0])
    np.testing.assert_array_equal(rigl_update(w, mask, 0.5, grow), [True, True, False, False])
    np.testing.assert_array_equal(rp.drop_grow(w, mask, drop_fraction=0.5, grow_scores=grow), [True, False, False, True])


def test_drop_grow_agrees_with_rigl_when_no_dropped_entry_would_be_regrown(rng):
    for _ in range(20):
        w_h, m_h, g_h = _case(rng, (8, 8), 0.4, "normal")
        w_h = np.where(m_h, w_h, 0.0)
        g_h = np.where(m_h, 0.0, g_h)  # dropped entries get grow score 0: never among RigL's top
        g_h[~m_h] += 1.0
        for fraction in (0.1, 0.3, 0.5):
            np.testing.assert_array_equal(
                rp.drop_grow(w_h, m_h, drop_fraction=fraction, grow_scores=g_h, rounding="floor"),
                rigl_update(w_h, m_h, fraction, g_h),
            )


def test_drop_grow_bad_input(backend):
    w = backend.asarray(np.ones(4))
    mask = backend.asarray([True, False, True, False])
    with pytest.raises(TypeError, match="bool"):
        rp.drop_grow(w, backend.asarray(np.ones(4)), drop_fraction=0.5, grow_scores=w)
    with pytest.raises(ValueError, match="same shape"):
        rp.drop_grow(w, backend.asarray([True, False]), drop_fraction=0.5, grow_scores=w)
    with pytest.raises(ValueError, match="same shape"):
        rp.drop_grow(w, mask, drop_fraction=0.5, grow_scores=backend.asarray(np.ones(3)))
    with pytest.raises(ValueError, match="same shape"):
        rp.drop_grow(w, mask, drop_fraction=0.5, grow_scores=w, drop_scores=backend.asarray(np.ones(3)))
    with pytest.raises(ValueError, match="amount"):
        rp.drop_grow(w, mask, drop_fraction=1.5, grow_scores=w)
    with pytest.raises(ValueError, match="count"):
        rp.drop_grow(w, mask, drop_fraction=3, grow_scores=w)  # 2 kept
    with pytest.raises(ValueError, match="rounding"):
        rp.drop_grow(w, mask, drop_fraction=0.5, grow_scores=w, rounding="up")
    with pytest.raises(ValueError, match="grow_scores contains NaN"):
        rp.drop_grow(w, mask, drop_fraction=0.5, grow_scores=backend.asarray([1.0, np.nan, 1.0, 1.0]))
    # NaN where nothing is ranked (a kept entry's grow score) is fine
    rp.drop_grow(w, mask, drop_fraction=0.5, grow_scores=backend.asarray([np.nan, 1.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="w contains NaN"):
        rp.drop_grow(backend.asarray([np.nan, 1.0, 1.0, 1.0]), mask, drop_fraction=0.5, grow_scores=w)
    with pytest.raises(ValueError, match="drop_scores contains NaN"):
        rp.drop_grow(w, mask, drop_fraction=0.5, grow_scores=w, drop_scores=backend.asarray([1.0, 1.0, np.nan, 1.0]))
    with pytest.raises(TypeError, match="floating"):
        rp.drop_grow(backend.asarray(np.ones(4, dtype=np.int64)), mask, drop_fraction=0.5, grow_scores=w)
    with pytest.raises(TypeError, match="floating"):
        rp.drop_grow(w, mask, drop_fraction=0.5, grow_scores=w, drop_scores=backend.asarray(np.ones(4, dtype=np.int64)))


# ---------------------------------------------------------------- cosine_drop_fraction


def test_cosine_drop_fraction_values():
    for end in (1, 7, 100, 25000):
        for step in sorted({0, 1, end // 4, end // 2, end - 1, end, end + 1, 3 * end}):
            got = rp.cosine_drop_fraction(step, initial=0.3, end=end)
            tf_cosine_decay = 0.3 * (0.5 * (1 + math.cos(math.pi * min(step, end) / end)))
            assert got == pytest.approx(tf_cosine_decay, abs=1e-15)
            assert isinstance(got, float) and 0.0 <= got <= 0.3
    assert rp.cosine_drop_fraction(0, initial=0.3, end=10) == 0.3
    assert rp.cosine_drop_fraction(5, initial=0.3, end=10) == pytest.approx(0.15, abs=1e-16)
    assert rp.cosine_drop_fraction(10, initial=0.3, end=10) == 0.0
    assert rp.cosine_drop_fraction(11, initial=0.3, end=10) == 0.0
    values = [rp.cosine_drop_fraction(s, initial=0.5, end=50) for s in range(60)]
    assert all(a >= b for a, b in zip(values, values[1:]))


@pytest.mark.parametrize(
    ("step", "kwargs", "error"),
    [
        (-1, {"initial": 0.3, "end": 10}, ValueError),
        (1.0, {"initial": 0.3, "end": 10}, TypeError),
        (True, {"initial": 0.3, "end": 10}, TypeError),
        (1, {"initial": 0.3, "end": 0}, ValueError),
        (1, {"initial": 1.5, "end": 10}, ValueError),
        (1, {"initial": float("nan"), "end": 10}, ValueError),
        (1, {"initial": "0.3", "end": 10}, TypeError),
    ],
)
def test_cosine_drop_fraction_bad_input(step, kwargs, error):
    with pytest.raises(error):
        rp.cosine_drop_fraction(step, **kwargs)
