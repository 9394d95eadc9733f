"""Protocol v2 (one-shot pruning): every function on every backend against float64 host references.

The references below are written out here, one row or one column at a time, independent
of refprune's code: sort keys for the masks (score descending, then index ascending),
SparseGPT without the lazy block update (every column updates all the later ones at
once), OBC by re-inverting the Hessian of the remaining inputs at every step, least
squares by a pseudo-inverse per row. A last group re-states the official SparseGPT
(``IST-DASLab/sparsegpt``, ``fasterprune``) in torch float64 and compares on tie-free layers.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import refprune as rp


# ---------------------------------------------------------------- helpers


def _host(backend, x):
    return np.asarray(backend.to_numpy(x))


def _put(backend, host, dtype="float64"):
    host = np.asarray(host)
    return backend.xp.reshape(backend.asarray(host.reshape(-1), dtype=dtype), host.shape)


def _layer(rng, out=6, inp=12, tokens=40):
    """A random layer: weights, calibration inputs with uneven feature scales, and H = 2/T X^T X."""
    w = rng.normal(size=(out, inp))
    x = rng.normal(size=(tokens, inp)) * rng.uniform(0.2, 3.0, size=inp)
    return w, x, 2.0 / tokens * x.T @ x


def ref_keep_top(scores, keep):
    """Keep the ``keep`` best of a 1-D array: sort key (-score, index)."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    out = np.zeros(len(scores), dtype=bool)
    out[order[:keep]] = True
    return out


def ref_wanda(w, norms, *, k_row=None, k_layer=None, nm=None):
    s = np.abs(w) * norms[None, :]
    if k_layer is not None:
        return ref_keep_top(s.reshape(-1), s.size - k_layer).reshape(s.shape)
    keep = np.zeros(s.shape, dtype=bool)
    for i in range(s.shape[0]):
        if nm is None:
            keep[i] = ref_keep_top(s[i], s.shape[1] - k_row)
        else:
            n, m = nm
            for g in range(0, s.shape[1], m):
                keep[i, g : g + m] = ref_keep_top(s[i, g : g + m], n)
    return keep


def _prepare(w, h, damp):
    w, h = w.copy(), h.copy()
    dead = np.diag(h) == 0
    w[:, dead] = 0
    h[dead, dead] = 1
    h += damp * np.mean(np.diag(h)) * np.eye(h.shape[0])
    return w, h


def ref_sparsegpt(w, h, *, amount=None, nm=None, block=128, damp=0.01):
    """SparseGPT with every column's update applied at once to all later columns (no lazy blocks)."""
    w, h = _prepare(w, h, damp)
    u = np.linalg.cholesky(np.linalg.inv(h)).T
    rows, cols = w.shape
    keep = np.ones(w.shape, dtype=bool)
    for j in range(cols):
        if nm is None and j % block == 0:
            b = slice(j, min(j + block, cols))
            s = (w[:, b] ** 2 / np.diag(u)[b] ** 2).reshape(-1)
            k = rp.prune_count(amount, s.size)
            keep[:, b] = ref_keep_top(s, s.size - k).reshape(rows, -1)
        if nm is not None and j % nm[1] == 0:
            g = slice(j, j + nm[1])
            s = w[:, g] ** 2 / np.diag(u)[g] ** 2
            for i in range(rows):
                keep[i, g] = ref_keep_top(s[i], nm[0])
        q = np.where(keep[:, j], w[:, j], 0.0)
        err = (w[:, j] - q) / u[j, j]
        w[:, j:] -= np.outer(err, u[j, j:])
        w[:, j] = q
    return w, keep


def ref_obc(w, h, k, damp=0.0):
    """Greedy OBS per row, re-inverting the Hessian of the remaining inputs at every step."""
    w, h = _prepare(w, h, damp)
    keep = np.ones(w.shape, dtype=bool)
    for i in range(w.shape[0]):
        for _ in range(k):
            live = np.flatnonzero(keep[i])
            hinv = np.linalg.inv(h[np.ix_(live, live)])
            score = w[i, live] ** 2 / np.diag(hinv)
            best = min(range(len(live)), key=lambda a: (score[a], -live[a]))  # ties: the higher index
            w[i, live] -= w[i, live[best]] / hinv[best, best] * hinv[:, best]
            w[i, live[best]] = 0.0
            keep[i, live[best]] = False
    return w, keep


def ref_lsq(w, h, keep):
    out = np.zeros_like(w)
    for i in range(w.shape[0]):
        s, p = np.flatnonzero(keep[i]), np.flatnonzero(~keep[i])
        out[i, s] = w[i, s] + np.linalg.pinv(h[np.ix_(s, s)]) @ h[np.ix_(s, p)] @ w[i, p]
    return out


def ref_error(w, w_hat, h):
    d = w - w_hat
    return 0.5 * np.sum((d @ h) * d)


# ---------------------------------------------------------------- norms, scores, hessian


def test_norms_scores_and_hessian_match_the_reference(backend, dtype, rng, close):
    w, x, h = _layer(rng)
    norms = np.sqrt((x**2).sum(axis=0))
    xb, wb = _put(backend, x, dtype), _put(backend, w, dtype)
    close(rp.activation_norms(xb), norms, dtype, "activation_norms")
    close(rp.hessian(xb), h, dtype, "hessian", scale=10)
    nb = _put(backend, norms, dtype)
    close(rp.wanda_scores(wb, nb), np.abs(w) * norms, dtype, "wanda_scores")
    ria = (np.abs(w) / np.abs(w).sum(axis=0) + np.abs(w) / np.abs(w).sum(axis=1, keepdims=True)) * norms**0.5
    close(rp.ria_scores(wb, nb), ria, dtype, "ria_scores")
    close(rp.ria_scores(wb, nb, a=2.0), ria / norms**0.5 * norms**2, dtype, "ria_scores a=2", scale=10)
    x3 = _put(backend, x.reshape(4, 10, -1), dtype)  # (batch, seq, in): every leading axis counts as tokens
    close(rp.activation_norms(x3), norms, dtype, "activation_norms 3-D")
    close(rp.hessian(x3), h, dtype, "hessian 3-D", scale=10)


def test_ria_zero_rows_and_columns_score_zero(backend):
    w = np.asarray([[0.0, 0.0, 0.0], [1.0, 0.0, 2.0]])
    got = _host(backend, rp.ria_scores(_put(backend, w), _put(backend, np.ones(3))))
    np.testing.assert_allclose(got, [[0, 0, 0], [1 + 1 / 3, 0, 1 + 2 / 3]])


def test_reconstruction_error_is_the_mean_squared_output_error(backend, rng, close):
    w, x, h = _layer(rng)
    w_hat = w * (rng.uniform(size=w.shape) > 0.5)
    expected = np.sum((x @ (w - w_hat).T) ** 2) / x.shape[0]
    got = rp.reconstruction_error(_put(backend, w), _put(backend, w_hat), _put(backend, h))
    assert got.ndim == 0
    close(got, expected, "float64", "reconstruction_error")
    close(got, ref_error(w, w_hat, h), "float64", "reconstruction_error")


# ---------------------------------------------------------------- wanda_mask


def test_wanda_mask_matches_the_reference(backend, dtype, rng):
    w, x, _ = _layer(rng, out=5, inp=16)
    norms = np.sqrt((x**2).sum(axis=0))
    w = w.astype(dtype).astype(np.float64)
    norms = norms.astype(dtype).astype(np.float64)
    wb, nb = _put(backend, w, dtype), _put(backend, norms, dtype)
    for amount in (0.0, 0.3, 0.5, 0.75, 1.0, 3):
        k_row = rp.prune_count(amount, 16)
        got = _host(backend, rp.wanda_mask(wb, nb, amount=amount))
        np.testing.assert_array_equal(got, ref_wanda(w, norms, k_row=k_row))
        assert (got.sum(axis=1) == 16 - k_row).all()
        got = _host(backend, rp.wanda_mask(wb, nb, amount=amount, group="layer"))
        k = rp.prune_count(amount, w.size)
        np.testing.assert_array_equal(got, ref_wanda(w, norms, k_layer=k))
        assert got.sum() == w.size - k
    for n, m in ((2, 4), (1, 4), (3, 8), (0, 2), (4, 4)):
        got = _host(backend, rp.wanda_mask(wb, nb, n=n, m=m))
        np.testing.assert_array_equal(got, ref_wanda(w, norms, nm=(n, m)))
        assert rp.nm_violations(got, n=n, m=m) == 0
        assert (got.reshape(5, -1, m).sum(axis=2) == n).all()


def test_wanda_mask_ties_and_rounding(backend):
    w = _put(backend, [[1.0, 1.0, 1.0, 1.0, 1.0], [5.0, 1.0, 1.0, 1.0, 0.0]])
    norms = _put(backend, np.ones(5))
    got = _host(backend, rp.wanda_mask(w, norms, amount=0.5))  # 2.5 -> 2 per row (half-even): higher index first
    np.testing.assert_array_equal(got, [[True, True, True, False, False], [True, True, True, False, False]])
    got = _host(backend, rp.wanda_mask(w, norms, amount=0.5, rounding="ceil"))
    np.testing.assert_array_equal(got, [[True, True, False, False, False], [True, True, False, False, False]])


@pytest.mark.parametrize("cols", [65, 300])
def test_wanda_long_rows_with_ties_match_the_reference_path(backend, rng, cols, monkeypatch):
    """Rows longer than the fast path's pairwise limit, many ties, several slabs of rows."""
    from refprune import _dispatch, oneshot

    monkeypatch.setattr(oneshot, "_SLAB", 4 * cols)  # 4 rows per slab
    w = rng.integers(-3, 4, size=(10, cols)).astype(np.float64)
    norms = np.ones(cols)
    for amount in (0.3, 0.5, 0.9):
        got = _host(backend, rp.wanda_mask(_put(backend, w), _put(backend, norms), amount=amount))
        with _dispatch.reference_only():
            ref = _host(backend, rp.wanda_mask(_put(backend, w), _put(backend, norms), amount=amount))
        np.testing.assert_array_equal(got, ref)
        np.testing.assert_array_equal(got, ref_wanda(w, norms, k_row=rp.prune_count(amount, cols)))


def test_wanda_with_equal_norms_is_magnitude_per_row(backend, rng):
    w = rng.normal(size=(6, 20))
    wb = _put(backend, w)
    norms = _put(backend, np.full(20, 3.7))
    got = _host(backend, rp.wanda_mask(wb, norms, amount=0.45))
    for i in range(6):
        np.testing.assert_array_equal(got[i], rp.magnitude_mask(w[i], amount=0.45))


# ---------------------------------------------------------------- SparseGPT


@pytest.mark.parametrize("block", [1, 3, 4, 8, 128])
def test_sparsegpt_matches_the_reference(backend, dtype, rng, block, close):
    w, _, h = _layer(rng, out=5, inp=16)
    h[3, :] = h[:, 3] = 0.0  # a dead input
    wb, hb = _put(backend, w, dtype), _put(backend, h, dtype)
    for kwargs, ref_kwargs in (({"amount": 0.5}, {"amount": 0.5}), ({"amount": 0.3}, {"amount": 0.3}),
                               ({"n": 2, "m": 4}, {"nm": (2, 4)}), ({"n": 1, "m": 4}, {"nm": (1, 4)})):
        w_hat, mask = rp.sparsegpt_prune(wb, hb, block=block, **kwargs)
        ref_w, ref_keep = ref_sparsegpt(w, h, block=block, **ref_kwargs)
        np.testing.assert_array_equal(_host(backend, mask), ref_keep, err_msg=f"{kwargs}")
        close(w_hat, ref_w, dtype, f"sparsegpt_prune {kwargs} block={block}", scale=100)
        assert (_host(backend, w_hat)[~ref_keep] == 0).all()
        assert (_host(backend, w_hat)[:, 3] == 0).all()


def test_sparsegpt_exact_count_per_block(backend, rng):
    w, _, h = _layer(rng, out=7, inp=20)
    for amount, block in ((0.5, 8), (0.3, 6), (0.9, 20), (0.07, 3)):
        _, mask = rp.sparsegpt_prune(_put(backend, w), _put(backend, h), amount=amount, block=block)
        mask = _host(backend, mask)
        for b in range(0, 20, block):
            part = mask[:, b : b + block]
            assert (~part).sum() == rp.prune_count(amount, part.size), (amount, block, b)


@pytest.mark.parametrize("block", [1, 2, 3, 5, 6, 7, 13])
def test_sparsegpt_nm_groups_follow_the_global_column_index(backend, rng, block, close):
    w, _, h = _layer(rng, out=4, inp=24)
    wb, hb = _put(backend, w), _put(backend, h)
    w_hat, mask = rp.sparsegpt_prune(wb, hb, n=2, m=4, block=block)
    assert rp.nm_violations(mask, n=2, m=4) == 0
    assert rp.nm_violations(w_hat, n=2, m=4) == 0
    # the lazy update only reorders the arithmetic: N:M results do not depend on the block size
    w_ref, mask_ref = rp.sparsegpt_prune(wb, hb, n=2, m=4, block=24)
    np.testing.assert_array_equal(_host(backend, mask), _host(backend, mask_ref))
    close(w_hat, _host(backend, w_ref), "float64", f"block={block} vs 24", scale=100)


def test_sparsegpt_is_scale_invariant_in_x_and_linear_in_w(backend, rng, close):
    w, _, h = _layer(rng)
    for kwargs in ({"amount": 0.5, "block": 5}, {"n": 2, "m": 4, "block": 5}):
        w_hat, mask = rp.sparsegpt_prune(_put(backend, w), _put(backend, h), **kwargs)
        w2, mask2 = rp.sparsegpt_prune(_put(backend, w), _put(backend, 9.0 * h), **kwargs)  # x scaled by 3
        np.testing.assert_array_equal(_host(backend, mask2), _host(backend, mask))
        close(w2, _host(backend, w_hat), "float64", "x scaled", scale=100)
        w3, mask3 = rp.sparsegpt_prune(_put(backend, -2.5 * w), _put(backend, h), **kwargs)
        np.testing.assert_array_equal(_host(backend, mask3), _host(backend, mask))
        close(w3, -2.5 * _host(backend, w_hat), "float64", "w scaled", scale=100)


def test_least_squares_is_a_lower_bound_for_sparsegpt(backend, rng):
    for trial in range(4):
        w, _, h = _layer(rng, out=4, inp=10, tokens=30)
        wb, hb = _put(backend, w), _put(backend, h)
        w_hat, mask = rp.sparsegpt_prune(wb, hb, amount=0.5, block=4)
        best = rp.masked_least_squares(wb, hb, mask)
        e_sgpt = float(rp.reconstruction_error(wb, w_hat, hb))
        e_best = float(rp.reconstruction_error(wb, best, hb))
        assert e_best <= e_sgpt * (1 + 1e-9), (trial, e_best, e_sgpt)
        np.testing.assert_array_equal(_host(backend, best) != 0, _host(backend, mask))


def test_amount_zero_returns_w_unchanged(backend, rng):
    w, _, h = _layer(rng)
    h[2, :] = h[:, 2] = 0.0
    wb, hb = _put(backend, w), _put(backend, h)
    for w_hat, mask in (rp.sparsegpt_prune(wb, hb, amount=0.0), rp.sparsegpt_prune(wb, hb, n=4, m=4),
                        rp.obc_prune(wb, hb, amount=0.0), rp.obc_prune(wb, hb, amount=0)):
        np.testing.assert_array_equal(_host(backend, w_hat), w)
        assert _host(backend, mask).all()
    np.testing.assert_array_equal(_host(backend, rp.wanda_mask(wb, _put(backend, np.ones(12)), amount=0)), True)


# ---------------------------------------------------------------- OBC and least squares


def test_obc_matches_the_reference(backend, dtype, rng, close):
    w, _, h = _layer(rng, out=4, inp=9, tokens=30)
    wb, hb = _put(backend, w, dtype), _put(backend, h, dtype)
    for amount, damp in ((0.5, 0.0), (3, 0.01), (1.0, 0.0)):
        k = rp.prune_count(amount, 9)
        w_hat, mask = rp.obc_prune(wb, hb, amount=amount, damp=damp)
        ref_w, ref_keep = ref_obc(w, h, k, damp)
        np.testing.assert_array_equal(_host(backend, mask), ref_keep)
        close(w_hat, ref_w, dtype, f"obc amount={amount} damp={damp}", scale=100)
        assert ((~_host(backend, mask)).sum(axis=1) == k).all()


def test_obc_without_damping_is_least_squares_on_its_mask(backend, rng, close):
    w, _, h = _layer(rng, out=5, inp=10, tokens=50)
    wb, hb = _put(backend, w), _put(backend, h)
    w_hat, mask = rp.obc_prune(wb, hb, amount=0.6)
    close(rp.masked_least_squares(wb, hb, mask), _host(backend, w_hat), "float64", "obc vs lsq", scale=100)


def test_obc_ties_prune_the_higher_index(backend):
    h = _put(backend, np.eye(4))
    w_hat, mask = rp.obc_prune(_put(backend, [[1.0, 1.0, 2.0, 1.0]]), h, amount=2)
    np.testing.assert_array_equal(_host(backend, mask), [[True, False, True, False]])


def test_masked_least_squares_matches_the_reference(backend, dtype, rng, close):
    w, _, h = _layer(rng, out=4, inp=8, tokens=30)
    keep = rng.uniform(size=w.shape) > 0.4
    got = rp.masked_least_squares(_put(backend, w, dtype), _put(backend, h, dtype), _put(backend, keep, "bool"))
    close(got, ref_lsq(w, h, keep), dtype, "masked_least_squares", scale=100)
    # rank-deficient H (fewer tokens than inputs): the pseudo-inverse optimum, still a lower bound
    w, _, h = _layer(rng, out=3, inp=8, tokens=4)
    got = rp.masked_least_squares(_put(backend, w), _put(backend, h), _put(backend, keep[:3], "bool"))
    close(got, ref_lsq(w, h, keep[:3]), "float64", "masked_least_squares rank-deficient", scale=1e4)
    assert ref_error(w, _host(backend, got), h) <= ref_error(w, np.where(keep[:3], w, 0), h) + 1e-12


# ---------------------------------------------------------------- nm_violations, OWL


def test_nm_violations_counts_groups_over_n(backend):
    mask = _put(backend, np.asarray([[1, 1, 1, 0, 1, 0, 0, 0], [1, 1, 1, 1, 0, 0, 0, 0]], dtype=bool), "bool")
    assert rp.nm_violations(mask, n=2, m=4) == 2
    assert rp.nm_violations(mask, n=3, m=4) == 1
    assert rp.nm_violations(mask, n=1, m=2) == 3  # [1,1] in row 0; [1,1], [1,1] in row 1
    w = _put(backend, [[0.5, 0.0, -1.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    assert rp.nm_violations(w, n=1, m=2) == 0
    assert rp.nm_violations(w, n=0, m=4) == 1
    assert rp.nm_violations(w, n=1, m=2, axis=0) == 0
    with pytest.raises(ValueError, match="not a multiple of m=3"):
        rp.nm_violations(w, n=1, m=3)


def test_owl_keeps_the_weighted_budget_exactly():
    shapes = [(100, 10), (10, 10), (50, 10)]
    ratios = [0.02, 0.08, 0.05]
    d = rp.owl_densities(shapes, ratios, density=0.4, lam=0.08)
    counts = [1000, 100, 500]
    assert math.isclose(sum(a * b for a, b in zip(d, counts)), 0.4 * 1600, rel_tol=1e-12)
    assert math.isclose(max(d) - min(d), 0.16, rel_tol=1e-12)
    assert d[1] > d[2] > d[0]
    # equal sizes: the published rule (unweighted mean) gives the same densities
    same = rp.owl_densities([(10, 10)] * 3, ratios, density=0.4, lam=0.08)
    r = np.asarray(ratios)
    published = (r - r.min()) / (r.max() - r.min()) * 0.08 * 2
    published = published - published.mean() + 0.4
    np.testing.assert_allclose(same, published, rtol=1e-12)
    assert rp.owl_densities(shapes, [0.1, 0.1, 0.1], density=0.3) == [0.3] * 3
    assert rp.owl_densities({"a": (4,), "b": (4,)}, {"b": 1.0, "a": 0.0}, density=0.5, lam=0.1) == {"a": 0.4, "b": 0.6}
    with pytest.raises(ValueError, match="outside"):
        rp.owl_densities(shapes, ratios, density=0.98, lam=0.08)
    with pytest.raises(ValueError, match="one ratio per shape"):
        rp.owl_densities(shapes, ratios[:2], density=0.5)


def test_outlier_ratio(backend):
    s = [_put(backend, [1.0, 1.0, 1.0]), _put(backend, [[1.0, 1.0, 20.0]])]
    assert rp.outlier_ratio(s, m=3.0) == 1 / 6
    assert rp.outlier_ratio(s[1], m=1.0) == 1 / 3


# ---------------------------------------------------------------- bad input


def test_bad_input(backend):
    w, h, norms = _put(backend, np.ones((2, 8))), _put(backend, np.eye(8)), _put(backend, np.ones(8))
    with pytest.raises(ValueError, match="norms must have shape"):
        rp.wanda_mask(w, _put(backend, np.ones(7)), amount=0.5)
    with pytest.raises(ValueError, match="norms must be >= 0"):
        rp.wanda_scores(w, _put(backend, -np.ones(8)))
    with pytest.raises(ValueError, match="say how much to prune"):
        rp.wanda_mask(w, norms)
    with pytest.raises(ValueError, match="not both"):
        rp.wanda_mask(w, norms, amount=0.5, n=2, m=4)
    with pytest.raises(ValueError, match="needs both n="):
        rp.wanda_mask(w, norms, n=2)
    with pytest.raises(ValueError, match="group must be one of"):
        rp.wanda_mask(w, norms, amount=0.5, group="column")
    with pytest.raises(ValueError, match="group='row'"):
        rp.wanda_mask(w, norms, n=2, m=4, group="layer")
    with pytest.raises(ValueError, match="not a multiple of m=3"):
        rp.wanda_mask(w, norms, n=1, m=3)
    with pytest.raises(ValueError, match="2-D"):
        rp.wanda_mask(_put(backend, np.ones(8)), norms, amount=0.5)
    with pytest.raises(ValueError, match=r"x must have shape \(tokens, in\)"):
        rp.activation_norms(_put(backend, np.ones(8)))
    with pytest.raises(ValueError, match="no tokens"):
        rp.hessian(_put(backend, np.ones((0, 8))))
    with pytest.raises(ValueError, match=r"h must have shape \(in, in\)"):
        rp.sparsegpt_prune(w, _put(backend, np.eye(7)), amount=0.5)
    with pytest.raises(TypeError, match="float fraction"):
        rp.sparsegpt_prune(w, h, amount=1)
    with pytest.raises(ValueError, match=r"amount must be in \[0, 1\]"):
        rp.sparsegpt_prune(w, h, amount=1.5)
    with pytest.raises(ValueError, match="block must be >= 1"):
        rp.sparsegpt_prune(w, h, amount=0.5, block=0)
    with pytest.raises(ValueError, match="damp must be >= 0"):
        rp.sparsegpt_prune(w, h, amount=0.5, damp=-1.0)
    with pytest.raises(ValueError, match="not positive definite"):
        rp.obc_prune(w, _put(backend, np.ones((8, 8))), amount=0.5)
    with pytest.raises(ValueError, match="NaN"):
        rp.sparsegpt_prune(_put(backend, np.full((2, 8), np.nan)), h, amount=0.5)
    with pytest.raises(TypeError, match="mask must be a bool array"):
        rp.masked_least_squares(w, h, w)
    with pytest.raises(ValueError, match="mask must have w's shape"):
        rp.masked_least_squares(w, h, _put(backend, np.ones((8, 2), dtype=bool), "bool"))
    with pytest.raises(TypeError, match="real floating"):
        rp.wanda_scores(backend.asarray(np.ones((2, 8), dtype=np.int64)), norms)


# ---------------------------------------------------------------- the official SparseGPT, re-stated


def official_sparsegpt(w, h, *, sparsity=0.0, prunen=0, prunem=0, blocksize=128, percdamp=0.01):
    """``fasterprune`` of IST-DASLab/sparsegpt re-stated in torch float64 (mask True = pruned there).

    ``prunen`` is the number **pruned** of every ``prunem`` (``topk(..., largest=False)``);
    the unstructured mask of a block prunes the entries at or below its
    ``int(numel * sparsity)``-th smallest score (so ``int(numel * sparsity) + 1`` without ties).
    """
    torch = pytest.importorskip("torch")
    W = torch.tensor(w, dtype=torch.float64)
    H = torch.tensor(h, dtype=torch.float64)
    columns = W.shape[1]
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    damp = percdamp * torch.mean(torch.diag(H))
    idx = torch.arange(columns)
    H[idx, idx] += damp
    H = torch.linalg.cholesky(H)
    H = torch.cholesky_inverse(H)
    Hinv = torch.linalg.cholesky(H, upper=True)
    pruned = torch.zeros_like(W, dtype=torch.bool)
    for i1 in range(0, columns, blocksize):
        i2 = min(i1 + blocksize, columns)
        W1 = W[:, i1:i2].clone()
        Q1 = torch.zeros_like(W1)
        Err1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        if prunen == 0:
            tmp = W1**2 / (torch.diag(Hinv1).reshape((1, -1))) ** 2
            thresh = torch.sort(tmp.flatten())[0][int(tmp.numel() * sparsity)]
            mask1 = tmp <= thresh
        else:
            mask1 = torch.zeros_like(W1, dtype=torch.bool)
        for i in range(i2 - i1):
            col = W1[:, i]
            d = Hinv1[i, i]
            if prunen != 0 and i % prunem == 0:
                tmp = W1[:, i : i + prunem] ** 2 / (torch.diag(Hinv1)[i : i + prunem].reshape((1, -1))) ** 2
                mask1.scatter_(1, i + torch.topk(tmp, prunen, dim=1, largest=False)[1], True)
            q = col.clone()
            q[mask1[:, i]] = 0
            Q1[:, i] = q
            err1 = (col - q) / d
            W1[:, i:] -= err1.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
            Err1[:, i] = err1
        W[:, i1:i2] = Q1
        pruned[:, i1:i2] = mask1
        W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])
    return W.numpy(), ~pruned.numpy()


@pytest.mark.parametrize("block", [4, 8, 16])
def test_agrees_with_the_official_sparsegpt_on_tie_free_layers(rng, block):
    w, _, h = _layer(rng, out=8, inp=32, tokens=80)
    h[5, :] = h[:, 5] = 0.0
    # 2:4 (prunen=2 pruned of 4 = 2 kept of 4), block a multiple of m
    ref_w, ref_keep = official_sparsegpt(w, h, prunen=2, prunem=4, blocksize=block)
    w_hat, keep = rp.sparsegpt_prune(w, h, n=2, m=4, block=block)
    np.testing.assert_array_equal(keep, ref_keep)
    np.testing.assert_allclose(w_hat, ref_w, rtol=1e-9, atol=1e-12)
    # unstructured: the official code prunes int(numel * s) + 1 per block; with numel * s = numel/2 + 0.75
    # (exact in binary) refprune's half-even count is the same number
    numel = 8 * block
    amount = (numel // 2 + 0.75) / numel
    assert rp.prune_count(amount, numel) == int(numel * amount) + 1
    ref_w, ref_keep = official_sparsegpt(w, h, sparsity=amount, blocksize=block)
    w_hat, keep = rp.sparsegpt_prune(w, h, amount=amount, block=block)
    np.testing.assert_array_equal(keep, ref_keep)
    np.testing.assert_allclose(w_hat, ref_w, rtol=1e-9, atol=1e-12)
