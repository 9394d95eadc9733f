"""Scores (SNIP saliency, Taylor, movement, random) on every backend, and every mask taking them."""

from __future__ import annotations

import numpy as np
import pytest

import refprune as rp


def _host(backend, x):
    return np.asarray(backend.to_numpy(x))


def _pair(backend, rng, shape, dtype):
    w = rng.normal(size=shape).astype(dtype)
    g = rng.normal(size=shape).astype(dtype)
    return w, g, backend.asarray(w, dtype=dtype), backend.asarray(g, dtype=dtype)


@pytest.mark.parametrize("shape", [(7,), (3, 4), (2, 3, 4), (0, 3)])
def test_scores_match_float64_numpy(backend, dtype, close, rng, shape):
    w_h, g_h, w, g = _pair(backend, rng, shape, dtype)
    w64, g64 = w_h.astype(np.float64), g_h.astype(np.float64)
    cases = [
        (rp.saliency_scores(w, g), np.abs(w64 * g64)),
        (rp.taylor_scores(w, g), (w64 * g64) ** 2),
        (rp.taylor_scores(w, g, kind="squared"), (w64 * g64) ** 2),
        (rp.taylor_scores(w, g, kind="abs"), np.abs(w64 * g64)),
        (rp.movement_scores(w, g), -w64 * g64),
    ]
    for out, expected in cases:
        assert type(out) is type(w) and out.dtype == w.dtype and tuple(out.shape) == shape
        close(out, expected, dtype)
    np.testing.assert_array_equal(_host(backend, w), w_h)
    np.testing.assert_array_equal(_host(backend, g), g_h)


def test_movement_scores_accumulate(backend, dtype, close, rng):
    w_hs, g_hs = [], []
    scores = None
    for _ in range(4):
        w_h, g_h, w, g = _pair(backend, rng, (5, 3), dtype)
        w_hs.append(w_h.astype(np.float64))
        g_hs.append(g_h.astype(np.float64))
        prev_host = None if scores is None else _host(backend, scores).copy()
        scores = rp.movement_scores(w, g, previous=scores)
        if prev_host is not None:
            assert not np.shares_memory(_host(backend, scores), prev_host)
    expected = -sum(w * g for w, g in zip(w_hs, g_hs))
    close(scores, expected, dtype, scale=4)


def test_movement_sign_hand_worked(backend):
    # gradient descent moves w by -lr*g: w=1, g=-0.5 moves away from zero (score +0.5);
    # w=1, g=+0.5 and w=-1, g=-0.5 move toward zero (score -0.5) and are pruned first
    w = backend.asarray([1.0, 1.0, -1.0, 2.0])
    g = backend.asarray([-0.5, 0.5, -0.5, 0.0])
    s = rp.movement_scores(w, g)
    np.testing.assert_array_equal(_host(backend, s), [0.5, -0.5, -0.5, 0.0])
    np.testing.assert_array_equal(_host(backend, rp.magnitude_mask(w, amount=2, scores=s)), [True, False, False, True])


def test_taylor_default_is_squared_and_abs_is_saliency(backend, rng):
    _, _, w, g = _pair(backend, rng, (4, 4), "float64")
    np.testing.assert_array_equal(_host(backend, rp.taylor_scores(w, g)), _host(backend, rp.taylor_scores(w, g, kind="squared")))
    np.testing.assert_array_equal(_host(backend, rp.taylor_scores(w, g, kind="abs")), _host(backend, rp.saliency_scores(w, g)))


def test_scores_extreme_values(backend, dtype):
    big, tiny = float(np.finfo(dtype).max), float(np.finfo(dtype).tiny)
    w = backend.asarray([big, tiny, 0.0, np.inf], dtype=dtype)
    g = backend.asarray([2.0, tiny, np.inf, 1.0], dtype=dtype)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):  # NumPy warns; torch does not
        s = _host(backend, rp.saliency_scores(w, g))
        assert s[0] == np.inf and s[1] == 0.0 and np.isnan(s[2]) and s[3] == np.inf
        with pytest.raises(ValueError, match="NaN"):  # 0 * inf: the mask refuses the NaN score
            rp.magnitude_mask(w, amount=1, scores=rp.saliency_scores(w, g))


def test_random_scores_reference_stream_is_the_same_on_every_backend(backend, dtype):
    from refprune import backends

    w = backend.asarray(np.zeros((4, 5)), dtype=dtype)
    u = rp.random_scores(w, rng=backend.rng(7, stream="reference"))
    host = backends.get("numpy").rng(7, stream="reference").uniform((4, 5), "float64")
    assert type(u) is type(w) and u.dtype == w.dtype and tuple(u.shape) == (4, 5)
    np.testing.assert_array_equal(_host(backend, u), host.astype(dtype))
    assert ((_host(backend, u) >= 0) & (_host(backend, u) < 1)).all()
    mask = rp.magnitude_mask(w, amount=0.5, scores=u)
    assert int((~_host(backend, mask)).sum()) == 10


def test_random_scores_bad_generator(backend):
    w = backend.asarray(np.zeros(3))
    with pytest.raises(TypeError, match="generator"):
        rp.random_scores(w, rng=np.random.default_rng(0).random)
    with pytest.raises(TypeError, match="generator"):
        rp.random_scores(w, rng=None)


class _WrongDtype:
    def uniform(self, shape, dtype, low, high):
        return np.zeros(shape, dtype=np.float32)


def test_random_scores_generator_must_honour_dtype():
    with pytest.raises(TypeError, match="dtype"):
        rp.random_scores(np.zeros(3), rng=_WrongDtype())


def test_scores_bad_input(backend):
    w = backend.asarray(np.ones((2, 3)))
    with pytest.raises(ValueError, match="same shape"):
        rp.saliency_scores(w, backend.asarray(np.ones(6)))
    with pytest.raises(ValueError, match="same shape"):
        rp.movement_scores(w, w, previous=backend.asarray(np.ones(3)))
    with pytest.raises(TypeError, match="floating"):
        rp.taylor_scores(w, backend.asarray(np.ones((2, 3), dtype=np.int64)))
    with pytest.raises(ValueError, match="kind"):
        rp.taylor_scores(w, w, kind="square")
    with pytest.raises(TypeError, match="must be an array"):
        rp.saliency_scores([1.0], w)
    if backend.name != "numpy":
        with pytest.raises(TypeError, match="different array libraries"):
            rp.saliency_scores(w, np.ones((2, 3)))


# ---------------------------------------------------------------- every mask takes scores=


def test_every_mask_takes_scores(backend, rng):
    w_h, g_h, w, g = _pair(backend, rng, (4, 8), "float64")
    s_h = np.abs(w_h * g_h)
    s = rp.saliency_scores(w, g)
    order = np.lexsort((np.arange(32), -s_h.reshape(-1)))
    expected = np.zeros(32, dtype=bool)
    expected[order[:16]] = True
    np.testing.assert_array_equal(_host(backend, rp.magnitude_mask(w, amount=16, scores=s)), expected.reshape(4, 8))
    (gm,) = rp.global_magnitude_mask([w], amount=16, scores=[s])
    np.testing.assert_array_equal(_host(backend, gm), expected.reshape(4, 8))
    nm = _host(backend, rp.nm_mask(w, n=2, m=4, scores=s))
    for r in range(4):
        for start in (0, 4):
            group = s_h[r, start : start + 4]
            keep = np.zeros(4, dtype=bool)
            keep[np.lexsort((np.arange(4), -group))[:2]] = True
            np.testing.assert_array_equal(nm[r, start : start + 4], keep)
    blocks = _host(backend, rp.block_mask(w, block=(2, 4), amount=1, scores=s))
    tile_sums = [s_h[i : i + 2, j : j + 4].sum() for i in (0, 2) for j in (0, 4)]
    pruned = int(np.argmin(tile_sums))
    assert not blocks[pruned // 2 * 2 : pruned // 2 * 2 + 2, pruned % 2 * 4 : pruned % 2 * 4 + 4].any()
    assert int((~blocks).sum()) == 8
    rows = _host(backend, rp.structured_mask(w, amount=1, axis=0, scores=s))
    np.testing.assert_array_equal(rows[:, 0], np.arange(4) != int(np.argmin(s_h.sum(axis=1))))


def test_structured_mask_scores_sum_per_slice(backend, dtype):
    w = backend.asarray(np.ones((3, 2)), dtype=dtype)
    s = backend.asarray([[1.0, 2.0], [0.5, 0.5], [4.0, -1.0]], dtype=dtype)  # sums 3, 1, 3
    np.testing.assert_array_equal(_host(backend, rp.structured_mask(w, amount=1, axis=0, scores=s)), [[True, True], [False, False], [True, True]])
    # ties: rows 0 and 2 sum to 3: the higher index goes first
    np.testing.assert_array_equal(_host(backend, rp.structured_mask(w, amount=2, axis=0, scores=s)), [[True, True], [False, False], [False, False]])
    # columns: sums 5.5 and 1.5
    np.testing.assert_array_equal(_host(backend, rp.structured_mask(w, amount=1, axis=1, scores=s)), [[True, False]] * 3)
    v = backend.asarray([3.0, -1.0, 2.0], dtype=dtype)  # 1-d: the slices are single entries, ranked as given
    np.testing.assert_array_equal(_host(backend, rp.structured_mask(v, amount=1, axis=0, scores=v)), [True, False, True])


def test_structured_mask_scores_bad_input(backend):
    w = backend.asarray(np.ones((3, 2)))
    s = backend.asarray(np.ones((3, 2)))
    with pytest.raises(ValueError, match="ord applies"):
        rp.structured_mask(w, amount=1, axis=0, scores=s, ord=2)
    with pytest.raises(ValueError, match="NaN"):
        rp.structured_mask(w, amount=1, axis=0, scores=backend.asarray([[1.0, np.nan], [1.0, 1.0], [1.0, 1.0]]))
    with pytest.raises(ValueError, match="inf and -inf"):
        rp.structured_mask(w, amount=1, axis=0, scores=backend.asarray([[np.inf, -np.inf], [1.0, 1.0], [1.0, 1.0]]))
    ok = rp.structured_mask(w, amount=1, axis=0, scores=backend.asarray([[np.inf, 1.0], [-np.inf, 1.0], [1.0, 1.0]]))
    np.testing.assert_array_equal(_host(backend, ok)[:, 0], [True, False, True])
    with pytest.raises(ValueError, match="same shape"):
        rp.structured_mask(w, amount=1, axis=0, scores=backend.asarray(np.ones(3)))
    assert np.array_equal(_host(backend, rp.structured_mask(w, amount=1, axis=0, ord=None)),
                          _host(backend, rp.structured_mask(w, amount=1, axis=0, ord=2)))
