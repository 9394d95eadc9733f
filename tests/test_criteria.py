"""The mask criteria registry: weight and unit by hand, nesting with keep=, global masks, lookup errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from refprune import criteria, prune_count

W = np.asarray([[0.1, -2.0, 0.3], [0.4, 0.05, -0.6]])


def _mask(backend, criterion, w, **kw):
    keep = kw.pop("keep", None)
    keep = None if keep is None else backend.asarray(np.asarray(keep))
    scores = kw.pop("scores", None)
    scores = None if scores is None else backend.asarray(np.asarray(scores, dtype=np.float64), dtype="float64")
    out = criteria.get(criterion)(backend.asarray(w, dtype="float64"), keep=keep, scores=scores, **kw)
    return backend.to_numpy(out)


def test_registry():
    assert list(criteria.CRITERIA) == ["weight", "unit"]
    for name, crit in criteria.CRITERIA.items():
        assert crit.name == name and crit.summary and criteria.get(name) is crit
    assert criteria.get("weight").global_mask is not None and criteria.get("unit").global_mask is None
    with pytest.raises(ValueError, match="unknown criterion 'movement'; choose one of weight, unit"):
        criteria.get("movement")


def test_weight_by_hand(backend):
    # amount 0.5 of 6 -> the 3 smallest |w|: 0.05, 0.1, 0.3
    np.testing.assert_array_equal(_mask(backend, "weight", W, amount=0.5), [[False, True, False], [True, False, True]])
    # an int amount is a count; 0 keeps all, 1.0 prunes all
    np.testing.assert_array_equal(_mask(backend, "weight", W, amount=1), W != 0.05)
    assert _mask(backend, "weight", W, amount=0.0).all() and not _mask(backend, "weight", W, amount=1.0).any()
    # rounding: 0.25 * 6 = 1.5 -> half-even 2, floor 1, ceil 2
    assert (~_mask(backend, "weight", W, amount=0.25)).sum() == 2
    assert (~_mask(backend, "weight", W, amount=0.25, rounding="floor")).sum() == 1
    # scores replace |w| as the ranking
    scores = [[6.0, 5.0, 4.0], [3.0, 2.0, 1.0]]
    np.testing.assert_array_equal(_mask(backend, "weight", W, amount=2, scores=scores),
                                  [[True, True, True], [True, False, False]])


def test_unit_by_hand(backend):
    # column (output unit) L2 norms 0.412, 2.0006, 0.671: amount 1 unit prunes the first column
    np.testing.assert_array_equal(_mask(backend, "unit", W, amount=1), [[False, True, True], [False, True, True]])
    # 0.7 * 3 = 2.1 -> 2 columns (half-even and floor), ceil 3
    np.testing.assert_array_equal(_mask(backend, "unit", W, amount=0.7).any(axis=0), [False, True, False])
    assert not _mask(backend, "unit", W, amount=0.7, rounding="ceil").any()
    # conv (out, in, kh, kw): whole output filters
    rng = np.random.default_rng(1)
    f = rng.normal(size=(4, 3, 3, 3))
    f[2] *= 0.01
    keep = _mask(backend, "unit", f, amount=0.25)
    assert not keep[2].any() and keep[[0, 1, 3]].all()
    assert criteria.unit_axis(f) == 0 and criteria.unit_axis(W) == 1


def test_keep_nests_the_new_mask_and_counts_the_pruned_weights(backend):
    w = np.asarray([0.5, -0.1, 9.0, 0.2, -0.4, 8.0])
    keep = np.asarray([True, True, False, True, True, False])  # 9.0 and 8.0 pruned earlier
    # amount 0.5 of 6 = 3: the 2 pruned before count, plus the smallest survivor (0.1)
    new = _mask(backend, "weight", w, amount=0.5, keep=keep)
    np.testing.assert_array_equal(new, [True, False, False, True, True, False])
    assert not (new & ~keep).any()
    # an amount below what keep prunes already: keep as it is (nothing comes back)
    np.testing.assert_array_equal(_mask(backend, "weight", w, amount=1, keep=keep), keep)
    # unit: a column pruned before has norm 0 and goes first; the result stays within keep
    wu = np.asarray([[5.0, 0.1, 3.0], [5.0, 0.1, 3.0]])
    ku = np.asarray([[False, True, True], [False, True, True]])  # column 0 (the largest) pruned before
    new_u = _mask(backend, "unit", wu, amount=2, keep=ku)
    np.testing.assert_array_equal(new_u, [[False, False, True], [False, False, True]])
    partial = np.asarray([[True, True, False], [True, True, True]])  # one weight of column 2 pruned before
    new_p = _mask(backend, "unit", wu, amount=1, keep=partial)
    np.testing.assert_array_equal(new_p, [[True, False, False], [True, False, True]])
    assert not (new_p & ~partial).any()


def test_global_mask_over_layers(backend):
    rng = np.random.default_rng(3)
    ws = [rng.normal(size=(30, 20)), rng.normal(size=(20, 5)), rng.normal(size=(7,))]
    arrays = [backend.asarray(w, dtype="float64") for w in ws]
    glob = criteria.get("weight").global_mask
    kept = [backend.to_numpy(m) for m in glob(arrays, amount=0.4)]
    flat_kept = np.concatenate([k.ravel() for k in kept])
    mags = np.concatenate([np.abs(w).ravel() for w in ws])
    n = mags.size
    assert (~flat_kept).sum() == prune_count(0.4, n)
    assert mags[~flat_kept].max() < mags[flat_kept].min()  # one threshold over all layers
    fractions = [k.mean() for k in kept]
    assert max(fractions) - min(fractions) > 0.01  # not one rate per layer
    # with keeps: nested, and the earlier pruned weights count towards the amount
    keeps = [backend.asarray(k) for k in kept]
    again = [backend.to_numpy(m) for m in glob(arrays, amount=0.7, keeps=keeps)]
    flat_again = np.concatenate([k.ravel() for k in again])
    assert (~flat_again).sum() == prune_count(0.7, n) and not (flat_again & ~flat_kept).any()
    below = np.concatenate([backend.to_numpy(m).ravel() for m in glob(arrays, amount=0.1, keeps=keeps)])
    np.testing.assert_array_equal(below, flat_kept)  # less than keeps prunes already: nothing comes back
    survivors = flat_kept
    assert mags[survivors & ~flat_again].max() < mags[flat_again].min()
    # scores rank instead of |w|
    scores = [backend.asarray(-np.abs(w), dtype="float64") for w in ws]
    inverted = np.concatenate([backend.to_numpy(m).ravel() for m in glob(arrays, amount=0.4, scores=scores)])
    assert mags[~inverted].min() > mags[inverted].max()
    assert math.isclose(inverted.mean(), flat_kept.mean())
