"""Oracle protocol v2, one-shot layer-wise pruning: activation norms, Wanda, RIA, the layer
Hessian, masked least squares, the reconstruction error, SparseGPT, OBC, N:M violations.

``w`` is (out, in) like a torch Linear, ``x`` (tokens, in), ``h`` the Hessian ``(in, in)``.
Values against the float64 reference on random layers (and on the edge classes of
``edges.py``, run by ``test_edges.py``), laws that need no reference (exact counts per
comparison group, no N:M violation, Wanda with equal norms is a per-row magnitude mask,
the least-squares lower bound, amount 0, scale invariance, OBC with ``damp=0`` on its
own mask), hand-worked cases, and bad inputs.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refprune.conformance import closed_forms as cf
from refprune.conformance import strategies as cs
from refprune.conformance.report import (
    assert_equal, assert_matches, assert_values, bad_input_params, call_target, check_bad_input, compare, fail,
)

protocol = pytest.mark.protocol


# --------------------------------------------------------------------------- host-side laws (float64 NumPy)


def hessian_host(x):
    """``H = 2/T X^T X`` (the protocol's scale: the Hessian of the mean squared output error)."""
    cols = np.shape(x)[-1]
    x64 = np.asarray(x, dtype=np.float64).reshape(-1, cols) if cols else np.zeros((0, 0))
    return 2.0 / max(1, x64.shape[0]) * (x64.T @ x64)


def error(w, w_hat, h):
    """``1/2 trace((w - w_hat) H (w - w_hat)^T)``: the layer's output error."""
    d = np.asarray(w, dtype=np.float64) - np.asarray(w_hat, dtype=np.float64)
    return 0.5 * float(np.sum((d @ np.asarray(h, dtype=np.float64)) * d))


def least_squares(w, h, mask):
    """Row by row, the exact optimum of the output error with the pruned entries held at 0:
    ``w_S + H_SS^+ H_SP w_P`` (of all optima the closest to ``w``)."""
    w, h = np.asarray(w, dtype=np.float64), np.asarray(h, dtype=np.float64)
    out = np.zeros_like(w)
    for i in range(w.shape[0]):
        kept, pruned = np.flatnonzero(mask[i]), np.flatnonzero(~np.asarray(mask[i]))
        if kept.size:
            out[i, kept] = w[i, kept] + np.linalg.pinv(h[np.ix_(kept, kept)], hermitian=True) @ (h[np.ix_(kept, pruned)]
                                                                                                  @ w[i, pruned])
    return out


def groups_over(mask, n, m):
    """Kept entries per group of ``m`` consecutive entries along the last axis."""
    return np.asarray(mask).reshape(-1, m).sum(axis=1) if np.asarray(mask).size else np.zeros(0, dtype=int)


def check_nm(call, mask, n, m):
    """Exactly ``n`` kept in every group of ``m`` (so no group a 2:4 kernel would reject)."""
    per = groups_over(mask, n, m)
    if np.any(per != n):
        fail(call, f"every group of m={m} consecutive inputs must keep exactly n={n}; kept {sorted(set(per.tolist()))}",
             actual=mask, kind="properties")


def check_row_counts(call, mask, k):
    pruned = (~np.asarray(mask)).sum(axis=1)
    if np.any(pruned != k):
        fail(call, f"every output row must prune exactly k = {k}; pruned {pruned.tolist()}", actual=mask,
             kind="properties")


def check_zero_where_pruned(call, w_hat, mask):
    if np.any(np.asarray(w_hat)[~np.asarray(mask)] != 0):
        fail(call, "w_hat must be exactly 0 where the mask prunes", actual=w_hat, kind="properties")


def pruned_pair(target, ref, fname, *args, **kwargs):
    """``(w_hat, mask)`` of the target, checked against the reference: ``w_hat`` within the
    dtype's tolerance (and in the input's dtype), the mask exactly."""
    actual = call_target(target, fname, *args, check_kind="values", **kwargs)
    call = target.last
    expected = ref(fname, *args, **kwargs)
    dtypes = call.dtypes
    assert_matches(call, actual, expected, dtype=dtypes.pop() if len(dtypes) == 1 else "float64", kind="values")
    return actual, call


def _dtype_layer(data, *, norms=None):
    """``(dtype, w, x)``, or ``(dtype, w, norms)`` with ``norms="drawn"`` or ``"equal"``."""
    dtype = data.draw(cs.dtypes(), label="dtype")
    rows, cols = data.draw(cs.layer_sides(), label="(out, in)")
    w = data.draw(cs.oneshot_weights(dtype, (rows, cols)), label="w")
    if norms is not None:
        return dtype, w, data.draw(cs.wanda_norms(dtype, cols, equal=norms == "equal"), label="norms")
    return dtype, w, data.draw(cs.calibration(dtype, cols), label="x")


# --------------------------------------------------------------------------- norms, scores, Hessian


@protocol("activation_norms")
@given(data=st.data())
def test_activation_norms(target, ref, data):
    dtype, _, x = _dtype_layer(data)
    out, _ = compare(target, ref, "activation_norms", x)
    assert_values(target.last, out, np.sqrt((x.astype(np.float64) ** 2).sum(axis=0)),
                  what="the l2 norm of each input feature over the tokens")


@protocol("hessian", checks="values,properties")
@given(data=st.data(), batch=st.sampled_from([None, 2]))
def test_hessian(target, ref, data, batch):
    _, _, x = _dtype_layer(data)
    x = x if x.shape[0] else np.zeros((1, x.shape[1]), dtype=x.dtype)  # no tokens: a ValueError (test_bad_input)
    if batch and x.shape[0] % batch == 0 and x.shape[1]:  # leading axes count as tokens
        x = x.reshape(batch, -1, x.shape[1])
    out, _ = compare(target, ref, "hessian", x)
    assert_values(target.last, out, hessian_host(x), what="2/T X^T X")
    if not np.array_equal(out, out.T):
        fail(target.last, "the Hessian must be exactly symmetric", actual=out, kind="properties")


@protocol("wanda_scores")
@given(data=st.data())
def test_wanda_scores(target, ref, data):
    _, w, norms = _dtype_layer(data, norms="drawn")
    out, _ = compare(target, ref, "wanda_scores", w, norms)
    assert_values(target.last, out, np.abs(w.astype(np.float64)) * norms, what="|w_ij| * norms_j")


def ria_host(w, norms, a):
    """RIA: ``(|w_ij| / sum_k |w_ik| + |w_ij| / sum_k |w_kj|) * norms_j**a``, a zero row or column sum giving 0."""
    aw = np.abs(np.asarray(w, dtype=np.float64))
    rows, cols = aw.sum(axis=1, keepdims=True), aw.sum(axis=0, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.where(rows > 0, aw / rows, 0.0) + np.where(cols > 0, aw / cols, 0.0)
    return rel * np.asarray(norms, dtype=np.float64) ** a


@protocol("ria_scores")
@given(data=st.data(), a=st.sampled_from([None, 0.5, 1.0, 0.0, 2.0]))
def test_ria_scores(target, ref, data, a):
    _, w, norms = _dtype_layer(data, norms="drawn")
    kw = {} if a is None else {"a": a}
    out, _ = compare(target, ref, "ria_scores", w, norms, **kw)
    assert_values(target.last, out, ria_host(w, norms, 0.5 if a is None else a),
                  what="(|w|/row sum + |w|/column sum) * norms**a")


# --------------------------------------------------------------------------- OWL


@protocol("outlier_ratio", checks="values,properties")
@given(data=st.data())
def test_outlier_ratio(target, ref, data):
    dtype = data.draw(cs.dtypes(), label="dtype")
    parts = data.draw(st.lists(cs.outlier_scores(dtype), min_size=1, max_size=3), label="scores")
    scores = parts if len(parts) > 1 or data.draw(st.booleans(), label="as a list") else parts[0]
    kw = {} if data.draw(st.booleans(), label="default m") else {"m": data.draw(cs.outlier_multiples(), label="m")}
    flat = np.concatenate([p.reshape(-1).astype(np.float64) for p in parts])
    m = kw.get("m", 5.0)
    if not flat.size or np.any(flat * flat.size == m * flat.sum()):
        return  # no scores (a ValueError, test_bad_input), or one exactly at m * mean: the edge class 'threshold'
    out = call_target(target, "outlier_ratio", scores, check_kind="values", **kw)
    call = target.last
    assert_matches(call, out, ref("outlier_ratio", scores, **kw), kind="values")
    if not isinstance(out, float):
        fail(call, f"returns a Python float, got {type(out).__name__}", actual=out)
    assert_values(call, out, float(np.mean(flat * flat.size > m * flat.sum())), dtype="float64", kind="properties",
                  what="the fraction of all the scores above m times their mean")


def owl_host(counts, ratios, density, lam):
    """OWL with the exact weighted budget: ``c + 2 lam (D - min D) / (max D - min D)``, ``sum d N = density * total``."""
    from fractions import Fraction

    lo, hi, total = min(ratios), max(ratios), sum(counts)
    spread = [Fraction(0) if hi == lo or not total else 2 * Fraction(lam) * (Fraction(r) - Fraction(lo)) /
              (Fraction(hi) - Fraction(lo)) for r in ratios]
    c = (Fraction(density) * total - sum(t * n for t, n in zip(spread, counts))) / total if total else Fraction(density)
    return [float(c + t) for t in spread]


@protocol("owl_densities", checks="values,properties")
@given(data=st.data())
def test_owl_densities(target, ref, data):
    shapes = data.draw(cs.layer_shapes(), label="shapes")
    ratios = data.draw(st.lists(cs.owl_ratios(), min_size=len(shapes), max_size=len(shapes)), label="outlier_ratios")
    kw = {"density": data.draw(cs.densities(), label="density")}
    if data.draw(st.booleans(), label="pass lam"):
        kw["lam"] = data.draw(cs.owl_lams(), label="lam")
    counts = [int(np.prod(s)) for s in shapes]
    expected = owl_host(counts, ratios, kw["density"], kw.get("lam", 0.08))
    try:
        reference = ref("owl_densities", shapes, ratios, **kw)
    except ValueError:
        check_bad_input(target, "owl_densities", (shapes, ratios), kw, ValueError)
        if all(0.0 <= d <= 1.0 for d in expected):
            fail(target.last, f"the reference refused densities that lie in [0, 1]: {expected}", kind="properties")
        return
    out = call_target(target, "owl_densities", shapes, ratios, check_kind="values", **kw)
    call = target.last
    if not isinstance(out, list) or not all(isinstance(d, float) for d in out):
        fail(call, f"must return a list of {len(shapes)} Python floats", actual=out)
    assert_values(call, out, reference, dtype="float64", what="densities")
    assert_values(call, out, expected, dtype="float64", what="c + 2 lam (D - min D) / (max D - min D)",
                  kind="properties")
    kept, total = float(np.dot(out, counts)), sum(counts)
    if abs(kept - kw["density"] * total) > 1e-9 * max(1.0, total):
        fail(call, f"the layers keep {kept} weights; the budget is density * total = {kw['density'] * total}",
             actual=out, kind="properties")


@protocol("owl_densities")
def test_owl_densities_mapping(target, ref):
    """Names in, names out: a mapping of shapes and one of ratios (any key order) give a mapping of densities."""
    shapes, ratios = {"q": (4, 4), "k": (8,), "v": (2, 6)}, {"v": 0.3, "k": 0.2, "q": 0.1}
    out = call_target(target, "owl_densities", shapes, ratios, density=0.3, lam=0.05, check_kind="values")
    call = target.last
    expected = ref("owl_densities", shapes, ratios, density=0.3, lam=0.05)
    if not isinstance(out, dict) or set(out) != set(shapes):
        fail(call, f"must return a dict with the keys of shapes, got {out!r}", actual=out)
    assert_values(call, [out[k] for k in shapes], [expected[k] for k in shapes], dtype="float64", what="densities")


# --------------------------------------------------------------------------- Wanda masks


def _budget(data, cols, rows):
    """Keyword arguments for a mask budget: amount (per row or per layer) or N:M."""
    kind = data.draw(st.sampled_from(["row", "layer", "nm"]), label="budget")
    if kind == "nm":
        n, m = data.draw(cs.nm_pairs().filter(lambda p: cols % p[1] == 0), label="(n, m)")
        return {"n": n, "m": m}
    kw = {"amount": data.draw(cs.amounts(cols if kind == "row" else cols * rows), label="amount")}
    if kind == "layer":
        kw["group"] = "layer"
    elif data.draw(st.booleans(), label="pass group"):
        kw["group"] = "row"
    if data.draw(st.booleans(), label="pass rounding"):
        kw["rounding"] = data.draw(cs.roundings(), label="rounding")
    return kw


@protocol("wanda_mask", checks="values,properties")
@given(data=st.data())
def test_wanda_mask(target, ref, data):
    dtype, w, norms = _dtype_layer(data, norms="drawn")
    kw = _budget(data, w.shape[1], w.shape[0])
    out = call_target(target, "wanda_mask", w, norms, check_kind="values", **kw)
    call = target.last
    assert_equal(call, out, ref("wanda_mask", w, norms, **kw), what="mask", kind="values")
    s = np.abs(w.astype(np.float64)) * norms  # dyadic: exact in both dtypes
    if "n" in kw:
        check_nm(call, out, kw["n"], kw["m"])
        expected = np.stack([cf.keep_mask(g, kw["m"] - kw["n"]) for g in s.reshape(-1, kw["m"])]).reshape(w.shape) \
            if w.size else np.ones(w.shape, dtype=bool)
    elif kw.get("group") == "layer":
        expected = cf.keep_mask(s, cf.prune_count(kw["amount"], w.size, kw.get("rounding", "half-even")))
    else:
        k = cf.prune_count(kw["amount"], w.shape[1], kw.get("rounding", "half-even"))
        check_row_counts(call, out, k)
        expected = np.stack([cf.keep_mask(r, k) for r in s]) if w.shape[0] else np.ones(w.shape, dtype=bool)
    assert_equal(call, out, expected, kind="properties",
                 what="mask vs the tie rule in every comparison group (score |w| * norm descending, lower index first)")


@protocol("wanda_mask", checks="properties")
@given(data=st.data())
def test_wanda_equal_norms_is_magnitude_per_row(target, data):
    """With equal activation norms, Wanda's row mask is the magnitude mask of each row."""
    _, w, norms = _dtype_layer(data, norms="equal")
    amount = data.draw(cs.amounts(w.shape[1]), label="amount")
    out = call_target(target, "wanda_mask", w, norms, amount=amount, check_kind="properties")
    k = cf.prune_count(amount, w.shape[1])
    expected = np.stack([cf.keep_mask(np.abs(r.astype(np.float64)), k) for r in w]) if w.shape[0] \
        else np.ones(w.shape, dtype=bool)
    assert_equal(target.last, out, expected, what="mask vs the magnitude mask of each row", kind="properties")


# --------------------------------------------------------------------------- least squares and the error


@protocol("masked_least_squares", checks="values,properties")
@given(data=st.data())
def test_masked_least_squares(target, ref, data):
    dtype, w, x = _dtype_layer(data)
    h = hessian_host(x).astype(dtype)
    mask = data.draw(st.one_of(cs.masks(w.shape), st.just(np.ones(w.shape, dtype=bool))), label="mask")
    out, _ = compare(target, ref, "masked_least_squares", w, h, mask)
    call = target.last
    check_zero_where_pruned(call, out, mask)
    if dtype == "float64":
        best = least_squares(w, h, mask)
        e_out, e_best, e_plain = error(w, out, h), error(w, best, h), error(w, np.where(mask, w, 0), h)
        slack = 1e-9 * max(1.0, e_plain)
        if e_out > e_best + slack or e_out > e_plain + slack:
            fail(call, f"the error {e_out} must be the least over w_hat with this mask (host optimum {e_best}, "
                       f"plain masking {e_plain})", actual=out, kind="properties")


@protocol("reconstruction_error", checks="values,properties")
@given(data=st.data())
def test_reconstruction_error(target, ref, data):
    dtype, w, x = _dtype_layer(data)
    h = hessian_host(x).astype(dtype)
    w_hat = data.draw(cs.oneshot_weights(dtype, w.shape), label="w_hat")
    out, _ = compare(target, ref, "reconstruction_error", w, w_hat, h)
    call = target.last
    if np.ndim(out) != 0:
        fail(call, f"the error is a 0-d array, got shape {np.shape(out)}", actual=out)
    same = call_target(target, "reconstruction_error", w, w, h, check_kind="properties")
    if float(same) != 0.0 or float(out) < 0:
        fail(call, f"error(w, w, h) must be 0 (got {float(same)}) and every error >= 0 (got {float(out)})",
             actual=out, kind="properties")


# --------------------------------------------------------------------------- SparseGPT


def _sparsegpt_kwargs(data, cols, rows):
    kind = data.draw(st.sampled_from(["amount", "nm"]), label="budget")
    if kind == "nm":
        n, m = data.draw(cs.nm_pairs().filter(lambda p: cols % p[1] == 0), label="(n, m)")
        kw = {"n": n, "m": m}
    else:
        kw = {"amount": data.draw(cs.amounts(rows * min(cols, 3)).filter(lambda a: isinstance(a, float)),
                                  label="amount (a fraction of every column block)")}
    if data.draw(st.booleans(), label="pass block"):
        kw["block"] = data.draw(cs.sparsegpt_blocks(), label="block")
    if data.draw(st.booleans(), label="pass damp"):
        kw["damp"] = data.draw(cs.damps(), label="damp")
    return kw


def _block_counts(call, mask, amount, block):
    """Exactly ``prune_count(amount, out * block columns)`` pruned in every column block."""
    cols = mask.shape[1]
    for i in range(0, cols, block):
        part = mask[:, i:i + block]
        k = cf.prune_count(amount, part.size)
        if int((~part).sum()) != k:
            fail(call, f"columns {i}:{min(i + block, cols)} must prune exactly k = prune_count(amount, {part.size}) = {k}"
                       f"; pruned {int((~part).sum())}", actual=mask, kind="properties")


@protocol("sparsegpt_prune", checks="values,properties")
@given(data=st.data())
def test_sparsegpt_prune(target, ref, data):
    dtype, w, x = _dtype_layer(data)
    h = hessian_host(x).astype(dtype)
    kw = _sparsegpt_kwargs(data, w.shape[1], w.shape[0])
    (w_hat, mask), call = pruned_pair(target, ref, "sparsegpt_prune", w, h, **kw)
    check_zero_where_pruned(call, w_hat, mask)
    if "n" in kw:
        check_nm(call, mask, kw["n"], kw["m"])
    else:
        _block_counts(call, mask, kw["amount"], kw.get("block", 128))
    if dtype == "float64":
        e_hat, e_ls = error(w, w_hat, h), error(w, least_squares(w, h, mask), h)
        if e_ls > e_hat + 1e-9 * max(1.0, e_hat):
            fail(call, f"the least-squares optimum on SparseGPT's own mask ({e_ls}) must not exceed SparseGPT's "
                       f"error ({e_hat})", actual=w_hat, kind="properties")


@protocol("sparsegpt_prune", checks="properties")
@given(data=st.data(), c=st.sampled_from([2.0, 0.5, 4.0]))
def test_sparsegpt_scale(target, data, c):
    """``x`` times ``c`` leaves the result unchanged; ``w`` times ``c`` scales ``w_hat`` by ``c`` (same mask).
    ``c`` is a power of two, so the scaled inputs are exact. With dead inputs only for ``damp=0``: the
    documented dead-input fix (``H_jj = 1`` before ``damp * mean(diag H)``) does not scale with ``x``
    (findings F2)."""
    dtype, w, x = _dtype_layer(data)
    h = hessian_host(x).astype(dtype)
    kw = _sparsegpt_kwargs(data, w.shape[1], w.shape[0])
    if h.size and np.any(np.diag(h) == 0):
        kw["damp"] = 0.0
    w_hat, mask = call_target(target, "sparsegpt_prune", w, h, check_kind="properties", **kw)
    call = target.last
    w_x, mask_x = call_target(target, "sparsegpt_prune", w, (h * c * c).astype(dtype), check_kind="properties", **kw)
    assert_equal(call, mask_x, mask, what="mask with x scaled by c", kind="properties")
    assert_values(call, w_x, w_hat, what="w_hat with x scaled by c", kind="properties")
    w_w, mask_w = call_target(target, "sparsegpt_prune", (w * c).astype(dtype), h, check_kind="properties", **kw)
    assert_equal(call, mask_w, mask, what="mask with w scaled by c", kind="properties")
    assert_values(call, w_w, w_hat.astype(np.float64) * c, what="w_hat with w scaled by c", kind="properties")


@pytest.mark.parametrize("fname", [pytest.param(f, id=f, marks=protocol(f, checks="properties"))
                                   for f in ("sparsegpt_prune", "obc_prune")])  # one each: a target may have only one
@given(data=st.data())
def test_nothing_to_prune_keeps_w(target, data, fname):
    """``amount=0`` (SparseGPT: or ``n == m``) returns ``w`` unchanged, dead inputs included, and keeps every entry."""
    dtype, w, x = _dtype_layer(data)
    h = hessian_host(x).astype(dtype)
    if fname == "sparsegpt_prune" and w.shape[1] and data.draw(st.booleans(), label="n == m"):
        kw = {"n": w.shape[1], "m": w.shape[1]}
    else:
        kw = {"amount": 0.0 if fname == "sparsegpt_prune" else data.draw(st.sampled_from([0, 0.0]), label="amount")}
    w_hat, mask = call_target(target, fname, w, h, check_kind="properties", **kw)
    assert_equal(target.last, mask, np.ones(w.shape, dtype=bool), what="mask", kind="properties")
    assert_equal(target.last, w_hat, w, what="w_hat", kind="properties")


# --------------------------------------------------------------------------- OBC


@protocol("obc_prune", checks="values,properties")
@given(data=st.data())
def test_obc_prune(target, ref, data):
    dtype, w, x = _dtype_layer(data)
    h = hessian_host(x).astype(dtype)
    amount = data.draw(cs.amounts(w.shape[1]), label="amount")
    kw = {"amount": amount}
    if data.draw(st.booleans(), label="pass damp"):
        kw["damp"] = data.draw(cs.damps(), label="damp")
    (w_hat, mask), call = pruned_pair(target, ref, "obc_prune", w, h, **kw)
    check_zero_where_pruned(call, w_hat, mask)
    check_row_counts(call, mask, cf.prune_count(amount, w.shape[1]))


@protocol("obc_prune", checks="properties")
@given(data=st.data())
def test_obc_is_least_squares_on_its_mask(target, data):
    """With ``damp=0`` (and a positive definite ``H``) OBC's exact OBS updates end at the least-squares
    optimum of its own mask."""
    _, w, x = _dtype_layer(data)
    w, x = w.astype(np.float64), x.astype(np.float64)
    x = x[:, np.any(x != 0, axis=0)] if x.size else x
    w = w[:, : x.shape[1]]
    h = hessian_host(x)
    amount = data.draw(cs.amounts(w.shape[1]), label="amount")
    w_hat, mask = call_target(target, "obc_prune", w, h, amount=amount, damp=0.0, check_kind="properties")
    call = target.last
    best = least_squares(w, h, mask)
    scale = max(1.0, float(np.abs(w).max(initial=0.0))) * max(1.0, np.linalg.cond(h) if h.size else 1.0)
    if not np.allclose(w_hat, best, rtol=1e-8, atol=1e-12 * scale):
        fail(call, "with damp=0, w_hat must be masked_least_squares(w, h, mask) on OBC's own mask",
             expected=best, actual=w_hat, kind="properties")


# --------------------------------------------------------------------------- N:M violations


@protocol("nm_violations", checks="values,properties")
@given(data=st.data())
def test_nm_violations(target, ref, data):
    n, m = data.draw(cs.nm_pairs(), label="(n, m)")
    shape, axis = data.draw(cs.nm_shapes(m, max_dims=2), label="(shape, axis)")
    if data.draw(st.booleans(), label="a mask"):
        a = data.draw(cs.masks(shape), label="mask")
    else:
        a = data.draw(cs.oneshot_weights(data.draw(cs.dtypes(), label="dtype"), shape), label="w")
    kw = {"n": n, "m": m}
    if axis != -1:
        kw["axis"] = axis
    out = call_target(target, "nm_violations", a, check_kind="values", **kw)
    call = target.last
    assert_equal(call, out, ref("nm_violations", a, **kw), what="violations", kind="values")
    nz = np.moveaxis(np.asarray(a) != 0, axis, -1)
    expected = int((groups_over(nz, n, m) > n).sum())
    assert_equal(call, out, expected, what=f"groups of {m} consecutive entries with more than {n} nonzero",
                 kind="properties")


@pytest.mark.parametrize("fname", [pytest.param(f, id=f, marks=protocol(f)) for f in ("activation_norms", "hessian")])
def test_no_input_features(target, fname):
    """A layer with no inputs: ``x`` of shape ``(tokens, 0)`` gives empty norms ``(0,)`` and an empty Hessian ``(0, 0)``."""
    out = call_target(target, fname, np.zeros((5, 0)), check_kind="values")
    assert_equal(target.last, np.asarray(out).shape, (0,) if fname == "activation_norms" else (0, 0), what="shape")


# --------------------------------------------------------------------------- hand-worked cases


def _a(*rows):
    return np.array(rows, dtype=np.float64)


#: id -> (function, args, kwargs, expected), worked by hand from the protocol's rules.
HAND = {
    # Wanda per row: scores [[2, 3, 0.5, 8], [1, 1.5, 1, 1]] (norms 1, 3, 0.5, 2); 50%: two per row, ties prune later
    "wanda-row": ("wanda_mask", (_a([2.0, -1.0, 1.0, 4.0], [1.0, 0.5, 2.0, 0.5]), np.array([1.0, 3.0, 0.5, 2.0])),
                  {"amount": 0.5}, np.array([[False, True, False, True], [True, True, False, False]])),
    "wanda-layer": ("wanda_mask", (_a([2.0, -1.0, 1.0, 4.0], [1.0, 0.5, 2.0, 0.5]), np.array([1.0, 3.0, 0.5, 2.0])),
                    {"amount": 4, "group": "layer"}, np.array([[True, True, False, True], [False, True, False, False]])),
    # 1:2 keeps the larger score of each pair: n is the number KEPT
    "wanda-1-2": ("wanda_mask", (_a([2.0, -1.0, 1.0, 4.0]), np.array([1.0, 3.0, 0.5, 2.0])), {"n": 1, "m": 2},
                  np.array([[False, True, False, True]])),
    # RIA a=1: |w| = [[1, 3], [1, 0]]; row sums 4, 1; column sums 2, 3
    "ria": ("ria_scores", (_a([1.0, -3.0], [-1.0, 0.0]), np.array([2.0, 1.0])), {"a": 1.0},
            _a([(1 / 4 + 1 / 2) * 2, (3 / 4 + 3 / 3) * 1], [(1 / 1 + 1 / 2) * 2, 0.0])),
    "norms": ("activation_norms", (_a([3.0, 0.0, 1.0], [4.0, 0.0, -1.0]),), {}, np.array([5.0, 0.0, np.sqrt(2.0)])),
    # one group of 4 with three nonzeros, one with two: a 2:4 kernel rejects one
    "violations": ("nm_violations", (_a([1.0, 0.0, 2.0, -1.0, 0.0, 3.0, 0.0, 1.0]),), {"n": 2, "m": 4}, 1),
    "violations-axis0": ("nm_violations", (np.array([[True, False], [True, True]]),), {"n": 1, "m": 2, "axis": 0}, 1),
    # H = I: the error is the squared Frobenius norm of the difference
    "error-identity": ("reconstruction_error", (_a([1.0, 2.0]), _a([1.0, 0.0]), np.eye(2)), {}, np.array(2.0)),
    # H = 2/T X^T X: T = 2 tokens
    "hessian": ("hessian", (_a([1.0, 2.0], [3.0, 0.0]),), {}, _a([10.0, 2.0], [2.0, 4.0])),
    # kept input 0 absorbs the pruned one: 1 + H_01 / H_00 * 1
    "least-squares": ("masked_least_squares", (_a([1.0, 1.0]), _a([2.0, 1.0], [1.0, 2.0]), np.array([[True, False]])),
                      {}, _a([1.5, 0.0])),
    # OBC: saliencies 1 / (2/3) tie, so the higher index goes; w_0 += 1 / (2/3) * (-1/3) * (-1)
    "obc-tie": ("obc_prune", (_a([1.0, 1.0]), _a([2.0, 1.0], [1.0, 2.0])), {"amount": 1},
                (_a([1.5, 0.0]), np.array([[True, False]]))),
}


@pytest.mark.parametrize("case", [pytest.param(k, id=k, marks=protocol(v[0])) for k, v in HAND.items()])
@pytest.mark.parametrize("dtype", cs.FLOAT_DTYPES)
def test_hand_worked(target, case, dtype):
    fname, args, kwargs, expected = HAND[case]
    args = tuple(a.astype(dtype) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a for a in args)
    out = call_target(target, fname, *args, check_kind="values", **kwargs)
    assert_matches(target.last, out, _cast(expected, dtype), dtype=dtype)


def _cast(expected, dtype):
    if isinstance(expected, tuple):
        return tuple(_cast(e, dtype) for e in expected)
    return expected.astype(dtype) if isinstance(expected, np.ndarray) and expected.dtype.kind == "f" else expected


# --------------------------------------------------------------------------- bad inputs

_W = np.ones((2, 8))
_N = np.ones(8)
_H = np.eye(8)

BAD = [
    ("x-1d", "activation_norms", (np.ones(4),), {}, ValueError),
    ("x-int", "activation_norms", (np.ones((2, 4), dtype=np.int64),), {}, TypeError),
    ("x-1d", "hessian", (np.ones(4),), {}, ValueError),
    ("norms-shape", "wanda_scores", (_W, np.ones(4)), {}, ValueError),
    ("w-1d", "wanda_scores", (np.ones(8), _N), {}, ValueError),
    ("norms-negative", "wanda_scores", (_W, -_N), {}, ValueError),
    ("nm-not-multiple", "wanda_mask", (_W, _N), {"n": 2, "m": 3}, ValueError),
    ("n-above-m", "wanda_mask", (_W, _N), {"n": 5, "m": 4}, ValueError),
    ("n-without-m", "wanda_mask", (_W, _N), {"n": 2}, ValueError),
    ("amount-and-nm", "wanda_mask", (_W, _N), {"amount": 0.5, "n": 2, "m": 4}, ValueError),
    ("no-budget", "wanda_mask", (_W, _N), {}, ValueError),
    ("group-unknown", "wanda_mask", (_W, _N), {"amount": 0.5, "group": "column"}, ValueError),
    ("layer-with-nm", "wanda_mask", (_W, _N), {"n": 2, "m": 4, "group": "layer"}, ValueError),
    ("amount-above-1", "wanda_mask", (_W, _N), {"amount": 1.5}, ValueError),
    ("count-above-row", "wanda_mask", (_W, _N), {"amount": 9}, ValueError),
    ("m-float", "wanda_mask", (_W, _N), {"n": 2, "m": 4.0}, TypeError),
    ("rounding-unknown", "wanda_mask", (_W, _N), {"amount": 0.5, "rounding": "up"}, ValueError),
    ("nan-w", "wanda_mask", (np.array([[1.0, np.nan]]), np.ones(2)), {"amount": 1}, ValueError),
    ("norms-shape", "ria_scores", (_W, np.ones(3)), {}, ValueError),
    ("empty", "outlier_ratio", (np.zeros(0),), {}, ValueError),
    ("no-arrays", "outlier_ratio", ([],), {}, ValueError),
    ("nan", "outlier_ratio", (np.array([1.0, np.nan]),), {}, ValueError),
    ("m-negative", "outlier_ratio", (np.ones(3),), {"m": -1.0}, ValueError),
    ("lengths", "owl_densities", ([(10,), (10,)], [0.1]), {"density": 0.5}, ValueError),
    ("nan-ratio", "owl_densities", ([(10,), (10,)], [0.1, float("nan")]), {"density": 0.5}, ValueError),
    ("density-above-1", "owl_densities", ([(10,), (10,)], [0.1, 0.2]), {"density": 1.5}, ValueError),
    ("lam-negative", "owl_densities", ([(10,), (10,)], [0.1, 0.2]), {"density": 0.5, "lam": -1.0}, ValueError),
    ("lam-bool", "owl_densities", ([(10,), (10,)], [0.1, 0.2]), {"density": 0.5, "lam": True}, TypeError),
    ("outside-0-1", "owl_densities", ([(10,), (10,)], [0.1, 0.3]), {"density": 0.99}, ValueError),
    ("keys", "owl_densities", ({"a": (2,), "b": (3,)}, {"a": 0.1, "c": 0.2}), {"density": 0.5}, ValueError),
    ("h-shape", "masked_least_squares", (_W, np.eye(4), np.ones((2, 8), dtype=bool)), {}, ValueError),
    ("mask-shape", "masked_least_squares", (_W, _H, np.ones((2, 4), dtype=bool)), {}, ValueError),
    ("mask-float", "masked_least_squares", (_W, _H, np.ones((2, 8))), {}, TypeError),
    ("shapes", "reconstruction_error", (_W, np.ones((2, 4)), _H), {}, ValueError),
    ("h-shape", "reconstruction_error", (_W, _W, np.eye(3)), {}, ValueError),
    ("nm-not-multiple", "sparsegpt_prune", (_W, _H), {"n": 2, "m": 3}, ValueError),
    ("amount-and-nm", "sparsegpt_prune", (_W, _H), {"amount": 0.5, "n": 2, "m": 4}, ValueError),
    ("no-budget", "sparsegpt_prune", (_W, _H), {}, ValueError),
    ("block-zero", "sparsegpt_prune", (_W, _H), {"amount": 0.5, "block": 0}, ValueError),
    ("block-float", "sparsegpt_prune", (_W, _H), {"amount": 0.5, "block": 2.0}, TypeError),
    ("damp-negative", "sparsegpt_prune", (_W, _H), {"amount": 0.5, "damp": -0.1}, ValueError),
    ("h-shape", "sparsegpt_prune", (_W, np.eye(4)), {"amount": 0.5}, ValueError),
    ("h-nan", "sparsegpt_prune", (_W, np.full((8, 8), np.nan)), {"amount": 0.5}, ValueError),
    ("amount-above-1", "sparsegpt_prune", (_W, _H), {"amount": 2.0}, ValueError),
    ("amount-int", "sparsegpt_prune", (_W, _H), {"amount": 1}, TypeError),
    ("no-tokens", "hessian", (np.zeros((0, 4)),), {}, ValueError),
    ("h-shape", "obc_prune", (_W, np.eye(4)), {"amount": 0.5}, ValueError),
    ("amount-above-1", "obc_prune", (_W, _H), {"amount": 1.5}, ValueError),
    ("damp-negative", "obc_prune", (_W, _H), {"amount": 0.5, "damp": -1.0}, ValueError),
    ("singular-h", "obc_prune", (_W, np.ones((8, 8))), {"amount": 0.5}, ValueError),
    ("not-multiple", "nm_violations", (np.ones((2, 6), dtype=bool),), {"n": 2, "m": 4}, ValueError),
    ("n-above-m", "nm_violations", (np.ones((2, 8), dtype=bool),), {"n": 5, "m": 4}, ValueError),
    ("0d", "nm_violations", (np.array(True),), {"n": 1, "m": 1}, ValueError),
    ("axis-out-of-range", "nm_violations", (np.ones((2, 8), dtype=bool),), {"n": 1, "m": 2, "axis": 2}, ValueError),
]


@pytest.mark.parametrize("case", bad_input_params(BAD))
def test_bad_input(target, case):
    check_bad_input(target, *case)
