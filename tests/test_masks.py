"""Masks: exact counts, the tie rule, rounding rules, structured and global masks, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

import refprune as rp

# ---------------------------------------------------------------- helpers


def _host(backend, x):
    return np.asarray(backend.to_numpy(x))


def _zero_d(backend, value, dtype):
    return backend.xp.reshape(backend.asarray([value], dtype=dtype), ())


def _put(backend, host, dtype):
    """``backend.asarray`` that also keeps 0-d shapes (torch's adapter makes them 1-d)."""
    host = np.asarray(host)
    return backend.xp.reshape(backend.asarray(host.reshape(-1), dtype=dtype), host.shape)


def reference_keep(scores, k):
    """The tie rule written out with a sort key: score descending, then (array, flat index) ascending.

    ``scores`` is a list of host arrays ranked as one sequence; returns one keep mask each.
    """
    flat = np.concatenate([np.ravel(np.asarray(s, dtype=np.float64)) for s in scores]) if scores else np.zeros(0)
    n = flat.size
    order = np.lexsort((np.arange(n), -flat))
    keep = np.zeros(n, dtype=bool)
    keep[order[: n - k]] = True
    out, start = [], 0
    for s in scores:
        size = np.size(s)
        out.append(keep[start : start + size].reshape(np.shape(s)))
        start += size
    return out


def _check_mask(backend, mask, like, expected):
    assert type(mask) is type(like)
    assert backend.xp.isdtype(mask.dtype, "bool")
    assert rp._array.device_of(mask) == rp._array.device_of(like)
    got = _host(backend, mask)
    assert got.shape == np.shape(expected)
    np.testing.assert_array_equal(got, expected)


def _tied(rng, shape, levels=4):
    """Host float64 array with many exact ties (and signs, which |w| folds together)."""
    return rng.integers(-levels, levels + 1, size=shape).astype(np.float64) / 2


# ---------------------------------------------------------------- prune_count


@pytest.mark.parametrize(
    ("amount", "n", "rounding", "expected"),
    [
        # counts
        (0, 0, "half-even", 0),
        (3, 10, "half-even", 3),
        (10, 10, "floor", 10),
        (np.int64(4), 10, "ceil", 4),
        # plain fractions
        (0.0, 7, "ceil", 0),
        (1.0, 7, "floor", 7),
        (0.3, 10, "half-even", 3),
        (0.5, 0, "ceil", 0),
        # half-way cases: half-even goes to the even neighbour
        (0.25, 10, "half-even", 2),
        (0.35, 10, "half-even", 4),
        (0.5, 5, "half-even", 2),
        (0.5, 7, "half-even", 4),
        (0.5, 1, "half-even", 0),
        (0.5, 3, "half-even", 2),
        (0.25, 10, "floor", 2),
        (0.25, 10, "ceil", 3),
        (0.5, 5, "floor", 2),
        (0.5, 5, "ceil", 3),
        # exact decimal product: the float's repr means what it says
        (0.7, 10, "floor", 7),
        (0.7, 10, "ceil", 7),
        (0.07, 100, "ceil", 7),  # binary 0.07*100 = 7.000000000000001
        (0.07, 100, "floor", 7),
        (0.29, 100, "floor", 29),  # binary 0.29*100 = 28.999999999999996
        (0.29, 100, "ceil", 29),
        (0.07, 150, "half-even", 10),  # exactly 10.5; binary gives 10.500000000000002
        (0.07, 150, "floor", 10),
        (0.07, 150, "ceil", 11),
        (0.175, 180, "half-even", 32),  # exactly 31.5; binary gives 31.499999999999996
        (np.float64(0.25), 10, "half-even", 2),
        (0.1, 10**18, "half-even", 10**17),  # no loss of precision for huge n
        (0.123456789012345, 10**15, "floor", 123456789012345),
    ],
)
def test_prune_count_table(amount, n, rounding, expected):
    got = rp.prune_count(amount, n, rounding=rounding)
    assert got == expected
    assert type(got) is int


def test_prune_count_decimal_rule_as_documented():
    """floor(0.07*100) and ceil(0.07*100) are both 7, where the binary product would ceil to 8."""
    assert math.ceil(0.07 * 100) == 8
    assert rp.prune_count(0.07, 100, rounding="floor") == rp.prune_count(0.07, 100, rounding="ceil") == 7


def test_prune_count_float32_amount_uses_its_float_value():
    assert rp.prune_count(np.float32(0.7), 10, rounding="floor") == 6  # 0.699999988079071 * 10
    assert rp.prune_count(np.float32(0.5), 10, rounding="floor") == 5


def test_prune_count_rounding_rules_bracket_the_exact_product():
    for d in range(0, 101):
        amount = d / 100
        for n in range(0, 60):
            floor = rp.prune_count(amount, n, rounding="floor")
            ceil = rp.prune_count(amount, n, rounding="ceil")
            even = rp.prune_count(amount, n, rounding="half-even")
            exact = d * n  # amount * n * 100, exactly
            assert floor == exact // 100
            assert ceil == -(-exact // 100)
            assert even in (floor, ceil)
            if exact % 100 != 50:
                assert even == (exact + 50) // 100
            else:
                assert even % 2 == 0


@pytest.mark.parametrize(
    ("amount", "n", "kwargs", "error", "match"),
    [
        (1.5, 10, {}, ValueError, "amount"),
        (-0.1, 10, {}, ValueError, "amount"),
        (math.nan, 10, {}, ValueError, "amount"),
        (math.inf, 10, {}, ValueError, "amount"),
        (11, 10, {}, ValueError, "count"),
        (-1, 10, {}, ValueError, "count"),
        (True, 10, {}, TypeError, "amount"),
        ("0.5", 10, {}, TypeError, "amount"),
        (None, 10, {}, TypeError, "amount"),
        (0.5, -1, {}, ValueError, "n"),
        (0.5, 10.0, {}, TypeError, "n"),
        (0.5, True, {}, TypeError, "n"),
        (0.5, 10, {"rounding": "round"}, ValueError, "half-even.*floor.*ceil"),
        (0.5, 10, {"rounding": None}, ValueError, "rounding"),
        (3, 10, {"rounding": "nearest"}, ValueError, "rounding"),
    ],
)
def test_prune_count_bad_input(amount, n, kwargs, error, match):
    with pytest.raises(error, match=match):
        rp.prune_count(amount, n, **kwargs)


# ---------------------------------------------------------------- magnitude_mask


def test_magnitude_mask_hand_worked_ties(backend, dtype):
    w = backend.asarray([3.0, 1.0, 1.0, 1.0, 2.0], dtype=dtype)
    # amount 2: of the three tied 1.0s, the higher indices 3 and 2 are pruned
    _check_mask(backend, rp.magnitude_mask(w, amount=2), w, [True, True, False, False, True])
    _check_mask(backend, rp.magnitude_mask(w, amount=1), w, [True, True, True, False, True])
    _check_mask(backend, rp.magnitude_mask(w, amount=3), w, [True, False, False, False, True])
    _check_mask(backend, rp.magnitude_mask(w, amount=4), w, [True, False, False, False, False])
    _check_mask(backend, rp.magnitude_mask(w, amount=0.4), w, [True, True, False, False, True])


def test_magnitude_mask_uses_magnitude_and_flat_c_order(backend, dtype):
    w = backend.asarray([[-3.0, 1.0], [-1.0, 0.5], [2.0, -1.0]], dtype=dtype)
    # |w| = [[3, 1], [1, .5], [2, 1]]; prune 0.5 then the last two 1s (flat 5, then 3)
    _check_mask(backend, rp.magnitude_mask(w, amount=3), w, [[True, True], [False, False], [True, False]])


def test_magnitude_mask_signed_zero_and_inf(backend, dtype):
    w = backend.asarray([-0.0, np.inf, 0.0, -np.inf, 1.0], dtype=dtype)
    _check_mask(backend, rp.magnitude_mask(w, amount=1), w, [True, True, False, True, True])
    _check_mask(backend, rp.magnitude_mask(w, amount=4), w, [False, True, False, False, False])


def test_magnitude_mask_all_zero_weights(backend, dtype):
    w = backend.asarray(np.zeros((2, 4)), dtype=dtype)
    expected = np.asarray([[True, True, True, False], [False, False, False, False]])
    _check_mask(backend, rp.magnitude_mask(w, amount=5), w, expected)


def test_magnitude_mask_scores(backend, dtype):
    w = backend.asarray([1.0, 2.0, 3.0, 4.0], dtype=dtype)
    scores = backend.asarray([-1.0, 5.0, 0.0, 5.0], dtype=dtype)  # ranked as given, not by |.|
    _check_mask(backend, rp.magnitude_mask(w, amount=2, scores=scores), w, [False, True, False, True])
    _check_mask(backend, rp.magnitude_mask(w, amount=3, scores=scores), w, [False, True, False, False])


@pytest.mark.parametrize("kind", ["random", "tied", "zeros"])
def test_magnitude_mask_exact_count_every_amount(backend, dtype, rng, kind):
    for shape in [(1,), (7,), (3, 5), (2, 3, 4)]:
        host = {"random": rng.normal(size=shape), "tied": _tied(rng, shape, levels=2), "zeros": np.zeros(shape)}[kind]
        w = backend.asarray(host, dtype=dtype)
        n = host.size
        for k in range(n + 1):
            mask = rp.magnitude_mask(w, amount=k)
            (expected,) = reference_keep([np.abs(host.astype(dtype))], k)
            _check_mask(backend, mask, w, expected)
            assert int(np.sum(~_host(backend, mask))) == k


def test_magnitude_mask_float_amounts_and_rounding(backend, dtype, rng):
    host = _tied(rng, (3, 7))
    w = backend.asarray(host, dtype=dtype)
    for d in range(0, 21):
        amount = d / 20
        for rounding in ("half-even", "floor", "ceil"):
            k = rp.prune_count(amount, 21, rounding=rounding)
            mask = _host(backend, rp.magnitude_mask(w, amount=amount, rounding=rounding))
            np.testing.assert_array_equal(mask, reference_keep([np.abs(host)], k)[0])
    # the half-way case 0.5 * 21 = 10.5: half-even 10, floor 10, ceil 11
    assert int(np.sum(~_host(backend, rp.magnitude_mask(w, amount=0.5)))) == 10
    assert int(np.sum(~_host(backend, rp.magnitude_mask(w, amount=0.5, rounding="ceil")))) == 11


def test_magnitude_mask_empty_and_zero_d(backend, dtype):
    e = backend.asarray(np.zeros((0, 4)), dtype=dtype)
    _check_mask(backend, rp.magnitude_mask(e, amount=0.5), e, np.ones((0, 4), dtype=bool))
    _check_mask(backend, rp.magnitude_mask(e, amount=0), e, np.ones((0, 4), dtype=bool))
    s = _zero_d(backend, -2.0, dtype)
    _check_mask(backend, rp.magnitude_mask(s, amount=0.4), s, np.asarray(True))
    _check_mask(backend, rp.magnitude_mask(s, amount=0.6), s, np.asarray(False))
    _check_mask(backend, rp.magnitude_mask(s, amount=1), s, np.asarray(False))


def test_magnitude_mask_nested_masks(backend, rng):
    """A larger amount prunes a superset: masks at increasing amounts are nested."""
    host = _tied(rng, (40,))
    w = backend.asarray(host, dtype="float64")
    previous = np.ones(40, dtype=bool)
    for k in range(41):
        mask = _host(backend, rp.magnitude_mask(w, amount=k))
        assert np.all(mask <= previous)
        previous = mask


def test_magnitude_mask_after_apply_is_stable(backend, rng):
    """Pruning the masked weights again at the same amount gives the same mask."""
    w = backend.asarray(rng.normal(size=30), dtype="float64")
    mask = rp.magnitude_mask(w, amount=0.4)
    again = rp.magnitude_mask(rp.apply_mask(w, mask), amount=0.4)
    np.testing.assert_array_equal(_host(backend, again), _host(backend, mask))


# ---------------------------------------------------------------- random_mask


def test_random_mask_prunes_smallest_noise(backend, dtype):
    u = backend.asarray([0.9, 0.1, 0.5, 0.3, -1.0], dtype=dtype)  # ranked as given: -1 is the smallest
    _check_mask(backend, rp.random_mask(u, amount=2), u, [True, False, True, True, False])
    ties = backend.asarray([0.5, 0.5, 0.5, 0.2], dtype=dtype)
    _check_mask(backend, rp.random_mask(ties, amount=2), ties, [True, True, False, False])


def test_random_mask_exact_count_and_reference(backend, dtype, rng):
    host = rng.uniform(size=(6, 5))
    u = backend.asarray(host, dtype=dtype)
    for k in range(31):
        mask = rp.random_mask(u, amount=k)
        _check_mask(backend, mask, u, reference_keep([host.astype(dtype)], k)[0])


# ---------------------------------------------------------------- structured_mask


def _reference_norms(host, axis, p):
    a = np.abs(np.moveaxis(host, axis, 0).reshape(host.shape[axis], -1))
    if p == math.inf:
        return a.max(axis=1)
    if p == -math.inf:
        return a.min(axis=1)
    return np.sum(a**p, axis=1) ** (1 / p)


def test_structured_mask_hand_worked(backend, dtype):
    w = backend.asarray([[1.0, 1.0], [3.0, 0.0], [0.5, 0.5]], dtype=dtype)
    rows_pruned_last = [[True, True], [True, True], [False, False]]
    _check_mask(backend, rp.structured_mask(w, amount=1, axis=0), w, rows_pruned_last)
    _check_mask(backend, rp.structured_mask(w, amount=1, axis=0, ord=1), w, rows_pruned_last)
    # inf-norm per row: 1, 3, 0.5; -inf-norm (min |w|) per row: 1, 0, 0.5
    _check_mask(backend, rp.structured_mask(w, amount=2, axis=0, ord=math.inf), w, [[False, False], [True, True], [False, False]])
    expected = [[True, True], [False, False], [False, False]]
    _check_mask(backend, rp.structured_mask(w, amount=2, axis=0, ord=-math.inf), w, expected)
    # columns: 2-norms sqrt(10.25) and sqrt(1.25)
    _check_mask(backend, rp.structured_mask(w, amount=0.5, axis=1), w, [[True, False]] * 3)
    _check_mask(backend, rp.structured_mask(w, amount=0.5, axis=-1), w, [[True, False]] * 3)


def test_structured_mask_ties_prune_the_higher_slice(backend, dtype):
    host = np.asarray([[1.0, 2.0], [2.0, 1.0], [-1.0, 2.0], [5.0, 5.0]])  # rows 0-2 share every p-norm
    w = backend.asarray(host, dtype=dtype)
    for ord in (1, 2, 3.5, math.inf, 0.5):
        expected = [[True] * 2, [False] * 2, [False] * 2, [True] * 2]
        _check_mask(backend, rp.structured_mask(w, amount=2, axis=0, ord=ord), w, expected)


@pytest.mark.parametrize("ord", [1, 2, 3, 0.5, 1.5, math.inf, -math.inf])
def test_structured_mask_matches_reference_norms(backend, dtype, rng, ord):
    for shape, axis in [((6, 4), 0), ((5, 3, 2, 2), 0), ((4, 6, 3), 1), ((3, 2, 7), -1), ((9,), 0)]:
        host = rng.normal(size=shape)
        w = backend.asarray(host, dtype=dtype)
        norms = _reference_norms(host.astype(dtype).astype(np.float64), axis % len(shape), ord)
        m = shape[axis]
        for k in range(m + 1):
            mask = _host(backend, rp.structured_mask(w, amount=k, axis=axis, ord=ord))
            keep = reference_keep([norms], k)[0]
            shape1 = [1] * len(shape)
            shape1[axis] = m
            np.testing.assert_array_equal(mask, np.broadcast_to(keep.reshape(shape1), shape), err_msg=f"{shape} {axis} {ord} {k}")


def test_structured_mask_no_overflow(backend, dtype):
    """Huge and tiny magnitudes rank correctly (scaled norms), also with p < 1 on many entries."""
    big = np.float32(1e30) if dtype == "float32" else 1e300
    host = np.stack([np.full(64, big), np.full(64, big / 2), np.full(64, 1e-30), np.zeros(64)])
    w = backend.asarray(host, dtype=dtype)
    for ord in (2, 4, 0.05, math.inf):
        expected = np.repeat([[True], [True], [False], [False]], 64, axis=1)
        _check_mask(backend, rp.structured_mask(w, amount=2, axis=0, ord=ord), w, expected)
    wide = backend.asarray(np.stack([np.full(10_000, 1.0), np.full(10_000, 0.9)]), dtype=dtype)
    mask = _host(backend, rp.structured_mask(wide, amount=1, axis=0, ord=0.05))  # 10000**20 overflows float64
    np.testing.assert_array_equal(mask[:, 0], [True, False])


def test_structured_mask_empty_and_edge_shapes(backend, dtype):
    e = backend.asarray(np.zeros((0, 3)), dtype=dtype)
    _check_mask(backend, rp.structured_mask(e, amount=0.5, axis=0), e, np.ones((0, 3), dtype=bool))
    # three slices with no entries: all norms 0, the tie rule prunes the last ones
    f = backend.asarray(np.zeros((3, 0)), dtype=dtype)
    _check_mask(backend, rp.structured_mask(f, amount=2, axis=0), f, np.ones((3, 0), dtype=bool))
    g = backend.asarray(np.zeros((3, 0, 2)), dtype=dtype)
    _check_mask(backend, rp.structured_mask(g, amount=1, axis=2), g, np.ones((3, 0, 2), dtype=bool))
    z = backend.asarray(np.zeros((4, 3)), dtype=dtype)
    _check_mask(backend, rp.structured_mask(z, amount=2, axis=0), z, [[True] * 3] * 2 + [[False] * 3] * 2)
    for ord in (0.5, 2, math.inf, -math.inf):
        rp.structured_mask(z, amount=2, axis=0, ord=ord)  # no warning, no NaN


def test_structured_mask_result_is_a_real_array(backend):
    w = backend.asarray(np.arange(12.0).reshape(3, 4), dtype="float64")
    mask = rp.structured_mask(w, amount=1, axis=0)
    assert tuple(mask.shape) == (3, 4)
    if backend.name == "numpy":
        assert mask.flags.writeable and mask.flags.owndata


# ---------------------------------------------------------------- global_magnitude_mask


def test_global_mask_hand_worked_cross_array_ties(backend, dtype):
    a = backend.asarray([4.0, 1.0, 2.0], dtype=dtype)
    b = backend.asarray([[1.0, 5.0], [0.5, 2.0]], dtype=dtype)
    c = backend.asarray([1.0], dtype=dtype)
    # ranked as one sequence [4, 1, 2 | 1, 5, .5, 2 | 1]: the 1.0s are pruned from the last array backwards
    cases = {
        1: ([1, 1, 1], [[1, 1], [0, 1]], [1]),
        2: ([1, 1, 1], [[1, 1], [0, 1]], [0]),
        3: ([1, 1, 1], [[0, 1], [0, 1]], [0]),
        4: ([1, 0, 1], [[0, 1], [0, 1]], [0]),
        5: ([1, 0, 1], [[0, 1], [0, 0]], [0]),
    }
    for k, expected in cases.items():
        masks = rp.global_magnitude_mask([a, b, c], amount=k)
        assert isinstance(masks, list) and len(masks) == 3
        for m, like, e in zip(masks, (a, b, c), expected):
            _check_mask(backend, m, like, np.asarray(e, dtype=bool))


def test_global_mask_fraction_of_total(backend, dtype):
    a = backend.asarray([0.1, 0.2, 0.3], dtype=dtype)
    b = backend.asarray(np.arange(1.0, 8.0), dtype=dtype)
    ma, mb = rp.global_magnitude_mask([a, b], amount=0.5)  # 5 of 10: all of a, then 1 and 2
    _check_mask(backend, ma, a, [False] * 3)
    _check_mask(backend, mb, b, [False, False] + [True] * 5)
    masks = rp.global_magnitude_mask((a, b), amount=0.35, rounding="ceil")
    assert sum(int(np.sum(~_host(backend, m))) for m in masks) == 4


@pytest.mark.parametrize("kind", ["random", "tied", "mixed"])
def test_global_mask_matches_reference(backend, dtype, rng, kind):
    for _ in range(12):
        count = int(rng.integers(1, 6))
        hosts = []
        for _ in range(count):
            shape = tuple(int(d) for d in rng.integers(0, 6, size=int(rng.integers(0, 3))))
            if kind == "random":
                hosts.append(rng.normal(size=shape))
            elif kind == "tied":
                hosts.append(_tied(rng, shape, levels=2))
            else:
                hosts.append(rng.choice([0.0, -0.0, 1.0, -1.0, np.inf, 2.5], size=shape))
        ws = [_put(backend, h, dtype) for h in hosts]
        n = sum(h.size for h in hosts)
        for k in sorted({0, n, *(int(x) for x in rng.integers(0, n + 1, size=4))}):
            masks = rp.global_magnitude_mask(ws, amount=k)
            expected = reference_keep([np.abs(h.astype(dtype)) for h in hosts], k)
            for m, w, e in zip(masks, ws, expected):
                _check_mask(backend, m, w, e)


def test_global_mask_large_with_heavy_ties(backend, rng):
    """Exercises the sampled two-pass selection: many arrays, many equal values."""
    hosts = [rng.integers(0, 6, size=int(s)).astype(np.float64) for s in rng.integers(1, 900, size=7)]
    hosts[2][:] = 0.0
    hosts.append(rng.normal(size=(30, 40)))
    ws = [backend.asarray(h, dtype="float64") for h in hosts]
    n = sum(h.size for h in hosts)
    for k in (1, n // 7, n // 3, n // 2, n - 1, int(0.9 * n)):
        masks = rp.global_magnitude_mask(ws, amount=k)
        for m, e in zip(masks, reference_keep([np.abs(h) for h in hosts], k)):
            np.testing.assert_array_equal(_host(backend, m), e)


def test_global_mask_scores_and_mixed_dtypes(backend, rng):
    a = backend.asarray([1.0, 2.0, 3.0], dtype="float32")
    b = backend.asarray([4.0, 5.0], dtype="float64")
    sa = backend.asarray([0.5, 0.25, 9.0], dtype="float32")
    sb = backend.asarray([0.25, -1.0], dtype="float64")
    ma, mb = rp.global_magnitude_mask([a, b], amount=3, scores=[sa, sb])
    _check_mask(backend, ma, a, [True, False, True])
    _check_mask(backend, mb, b, [False, False])
    ma, mb = rp.global_magnitude_mask([a, b], amount=2)
    _check_mask(backend, ma, a, [False, False, True])
    _check_mask(backend, mb, b, [True, True])


def test_global_mask_agrees_with_single_array_mask(backend, dtype, rng):
    host = _tied(rng, (5, 6))
    w = backend.asarray(host, dtype=dtype)
    for k in range(31):
        (g,) = rp.global_magnitude_mask([w], amount=k)
        np.testing.assert_array_equal(_host(backend, g), _host(backend, rp.magnitude_mask(w, amount=k)))


def test_global_mask_empty_inputs(backend, dtype):
    assert rp.global_magnitude_mask([], amount=0.5) == []
    with pytest.raises(ValueError, match="count"):
        rp.global_magnitude_mask([], amount=1)
    e = backend.asarray(np.zeros(0), dtype=dtype)
    s = _zero_d(backend, 3.0, dtype)
    w = backend.asarray([1.0, 2.0], dtype=dtype)
    masks = rp.global_magnitude_mask([e, s, e, w], amount=2)
    expected = [np.zeros(0, bool), np.asarray(True), np.zeros(0, bool), np.asarray([False, False])]
    for m, like, ex in zip(masks, [e, s, e, w], expected):
        _check_mask(backend, m, like, ex)


# ---------------------------------------------------------------- apply, from weights, sparsity


def test_apply_mask_uses_where_not_multiplication(backend, dtype):
    w = backend.asarray([1.0, np.inf, -np.inf, np.nan, 3.0], dtype=dtype)
    mask = backend.asarray([True, False, False, False, True])
    out = rp.apply_mask(w, mask)
    assert out.dtype == w.dtype
    np.testing.assert_array_equal(_host(backend, out), [1.0, 0.0, 0.0, 0.0, 3.0])


def test_mask_from_weights_and_sparsity(backend, dtype):
    w = backend.asarray([[0.0, -0.0, 2.0], [np.nan, 1e-300, 0.0]], dtype=dtype)
    mask = rp.mask_from_weights(w)
    tiny = dtype == "float64"  # 1e-300 underflows to 0 in float32
    _check_mask(backend, mask, w, [[False, False, True], [True, tiny, False]])
    assert rp.sparsity(mask) == (3.0 if tiny else 4.0) / 6
    assert isinstance(rp.sparsity(mask), float)
    assert rp.sparsity(backend.asarray(np.zeros((0, 2), dtype=bool))) == 0.0
    assert rp.sparsity(backend.asarray(np.ones(4, dtype=bool))) == 0.0
    assert rp.sparsity(backend.asarray(np.zeros(4, dtype=bool))) == 1.0


def test_mask_sparsity_round_trip(backend, rng):
    w = backend.asarray(rng.normal(size=(8, 9)), dtype="float64")
    for amount in (0.0, 0.25, 0.5, 0.9, 1.0):
        mask = rp.magnitude_mask(w, amount=amount)
        assert rp.sparsity(mask) == rp.prune_count(amount, 72) / 72
        pruned = rp.apply_mask(w, mask)
        np.testing.assert_array_equal(_host(backend, rp.mask_from_weights(pruned)), _host(backend, mask))


def test_inputs_not_mutated(backend, rng):
    host = _tied(rng, (6, 5))
    scores_host = rng.normal(size=(6, 5))
    w = backend.asarray(host, dtype="float64")
    s = backend.asarray(scores_host, dtype="float64")
    rp.magnitude_mask(w, amount=0.5)
    rp.magnitude_mask(w, amount=7, scores=s)
    rp.random_mask(s, amount=0.3)
    rp.structured_mask(w, amount=2, axis=1)
    rp.global_magnitude_mask([w, s], amount=0.5)
    mask = rp.magnitude_mask(w, amount=0.5)
    rp.apply_mask(w, mask)
    np.testing.assert_array_equal(_host(backend, w), host)
    np.testing.assert_array_equal(_host(backend, s), scores_host)


# ---------------------------------------------------------------- bad input


def test_mask_bad_amounts(backend):
    w = backend.asarray([1.0, 2.0, 3.0], dtype="float64")
    for fn, kwargs in [
        (rp.magnitude_mask, {}),
        (rp.random_mask, {}),
        (rp.structured_mask, {"axis": 0}),
    ]:
        for amount in (1.5, -0.5, math.nan, 4, -1):
            with pytest.raises(ValueError, match="amount"):
                fn(w, amount=amount, **kwargs)
        with pytest.raises(TypeError, match="amount"):
            fn(w, amount=True, **kwargs)
        with pytest.raises(ValueError, match="rounding"):
            fn(w, amount=0.5, rounding="up", **kwargs)
    with pytest.raises(ValueError, match="amount"):
        rp.global_magnitude_mask([w, w], amount=1.01)
    with pytest.raises(ValueError, match="count"):
        rp.global_magnitude_mask([w, w], amount=7)


def test_mask_nan_scores(backend):
    w = backend.asarray([1.0, np.nan, 3.0], dtype="float64")
    ok = backend.asarray([1.0, 2.0, 3.0], dtype="float64")
    with pytest.raises(ValueError, match="NaN"):
        rp.magnitude_mask(w, amount=1)
    with pytest.raises(ValueError, match="NaN"):
        rp.magnitude_mask(ok, amount=1, scores=w)
    with pytest.raises(ValueError, match="NaN"):
        rp.random_mask(w, amount=1)
    with pytest.raises(ValueError, match="NaN"):
        rp.structured_mask(backend.xp.reshape(w, (3, 1)), amount=1, axis=0)
    with pytest.raises(ValueError, match=r"ws\[1\].*NaN"):
        rp.global_magnitude_mask([ok, w], amount=1)
    with pytest.raises(ValueError, match=r"scores\[0\].*NaN"):
        rp.global_magnitude_mask([ok, ok], amount=1, scores=[w, ok])


def test_mask_bad_kinds_and_shapes(backend):
    w = backend.asarray([1.0, 2.0, 3.0], dtype="float64")
    ints = backend.asarray([1, 2, 3], dtype="int64")
    with pytest.raises(TypeError, match="floating"):
        rp.magnitude_mask(ints, amount=1)
    with pytest.raises(TypeError, match="floating"):
        rp.magnitude_mask(w, amount=1, scores=ints)
    with pytest.raises(TypeError, match="floating"):
        rp.random_mask(ints, amount=1)
    with pytest.raises(TypeError, match="must be an array"):
        rp.magnitude_mask([1.0, 2.0], amount=1)
    with pytest.raises(ValueError, match="same shape"):
        rp.magnitude_mask(w, amount=1, scores=backend.asarray([1.0, 2.0], dtype="float64"))
    with pytest.raises(TypeError, match="list"):
        rp.global_magnitude_mask(w, amount=1)
    with pytest.raises(TypeError, match="floating"):
        rp.global_magnitude_mask([w, ints], amount=1)
    with pytest.raises(ValueError, match="one array per array"):
        rp.global_magnitude_mask([w, w], amount=1, scores=[w])
    with pytest.raises(TypeError, match="scores"):
        rp.global_magnitude_mask([w], amount=1, scores=w)
    with pytest.raises(ValueError, match="same shape"):
        rp.global_magnitude_mask([w], amount=1, scores=[backend.asarray([1.0], dtype="float64")])
    if backend.name != "numpy":
        with pytest.raises(TypeError, match="different array libraries"):
            rp.global_magnitude_mask([w, np.asarray([1.0])], amount=1)
        with pytest.raises(TypeError, match="different array libraries"):
            rp.apply_mask(w, np.asarray([True, True, True]))


def test_structured_mask_bad_input(backend):
    w = backend.asarray(np.ones((3, 2)), dtype="float64")
    with pytest.raises(ValueError, match="0-d"):
        rp.structured_mask(_zero_d(backend, 1.0, "float64"), amount=0, axis=0)
    with pytest.raises(ValueError, match="axis"):
        rp.structured_mask(w, amount=1, axis=2)
    with pytest.raises(ValueError, match="axis"):
        rp.structured_mask(w, amount=1, axis=-3)
    with pytest.raises(TypeError, match="axis"):
        rp.structured_mask(w, amount=1, axis=0.0)
    for ord in (0, -1, -2.5, math.nan):
        with pytest.raises(ValueError, match="ord"):
            rp.structured_mask(w, amount=1, axis=0, ord=ord)
    for ord in ("fro", True):
        with pytest.raises(TypeError, match="ord"):
            rp.structured_mask(w, amount=1, axis=0, ord=ord)
    with pytest.raises(ValueError, match="count"):
        rp.structured_mask(w, amount=4, axis=0)  # counts slices: only 3


def test_apply_mask_and_sparsity_bad_input(backend):
    w = backend.asarray([1.0, 2.0, 3.0], dtype="float64")
    with pytest.raises(TypeError, match="bool"):
        rp.apply_mask(w, backend.asarray([1.0, 0.0, 1.0], dtype="float64"))
    with pytest.raises(ValueError, match="same shape"):
        rp.apply_mask(w, backend.asarray([True, False]))
    with pytest.raises(TypeError, match="bool"):
        rp.sparsity(w)
    with pytest.raises(TypeError, match="must be an array"):
        rp.sparsity([True, False])
    with pytest.raises(TypeError, match="numeric"):
        rp.mask_from_weights(backend.asarray([True, False]))
