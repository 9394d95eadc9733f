"""Regularizers and their gradients: values, closed forms, gradients, bad inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refprune.conformance import closed_forms as cf
from refprune.conformance import strategies as cs
from refprune.conformance.gradcheck import check_target_grad
from refprune.conformance.report import assert_values, bad_input_params, check_bad_input, compare, fail

protocol = pytest.mark.protocol
ALL = ("beta", "gamma", "zeta", "eps")


def _draw_w(data, *, dtype=None, max_size=24, kinds=cs.WEIGHT_KINDS, min_dims=1):
    dtype = dtype or data.draw(cs.dtypes(), label="dtype")
    shape = data.draw(cs.shapes(min_dims=min_dims, max_size=max_size), label="shape")
    w = data.draw(cs.weights(dtype, shape, kinds=kinds), label="w")
    return dtype, w


def _draw_l0(data, *, dtype=None, kinds=cs.WEIGHT_KINDS, max_size=24):
    dtype, w = _draw_w(data, dtype=dtype, kinds=kinds, max_size=max_size)
    axis = data.draw(cs.axes(w.ndim), label="axis")
    c = data.draw(cs.gate_constants(ALL), label="constants")
    la = data.draw(cs.log_alphas(dtype, (w.shape[axis],), c), label="log_alpha")
    kw = {"lam": data.draw(cs.lams(), label="lam"), **c}
    if data.draw(st.booleans(), label="pass weight_decay"):
        kw["weight_decay"] = data.draw(cs.lams(), label="weight_decay")
    if axis != 0 or data.draw(st.booleans(), label="pass axis"):
        kw["axis"] = axis
    return dtype, la, w, kw


def _group_cost(w, axis, lam, wd):
    a = axis % w.ndim
    others = tuple(i for i in range(w.ndim) if i != a)
    size = math.prod(w.shape[i] for i in others)
    sq = np.sum(w.astype(np.float64) ** 2, axis=others) if others else w.astype(np.float64) ** 2
    return lam * size + wd / 2 * sq


# --------------------------------------------------------------------------- L0


@protocol("l0_penalty")
@given(data=st.data())
def test_l0_penalty(target, ref, data):
    dtype, la, w, kw = _draw_l0(data)
    out, _ = compare(target, ref, "l0_penalty", la, w, **kw, scale=max(1.0, w.size / 4))
    if out.shape != ():
        fail(target.last, f"a penalty is a 0-d array, got shape {out.shape}", actual=out)
    eps = kw.get("eps", 1e-6)
    p = np.clip(cf.prob_nonzero_unclamped(la, {k: kw[k] for k in ALL if k in kw}), eps, 1 - eps)
    closed = np.sum(p * _group_cost(w, kw.get("axis", 0), kw["lam"], kw.get("weight_decay", 0.0)))
    assert_values(target.last, out, closed, scale=max(10.0, w.size), what="sum_g p_g * sum_{j in g} (lam + wd/2 w_j^2)")


@protocol("l0_penalty_grad")
@given(data=st.data())
def test_l0_penalty_grad(target, ref, data):
    dtype, la, w, kw = _draw_l0(data)
    c = {k: kw[k] for k in ALL if k in kw}
    rel = 1e-4 if dtype == "float32" else 1e-9
    compare(target, ref, "l0_penalty_grad", la, w, **kw, where=(cf.away_from_clamp(la, c, rel), None),
            scale=max(1.0, w.size / 4))


@protocol("l0_penalty_grad", "l0_penalty")
@given(data=st.data())
def test_l0_penalty_gradients(target, data):
    _, la, w, kw = _draw_l0(data, dtype="float64", kinds=("distinct", "ties"), max_size=12)
    la = np.clip(la, -20, 20)
    c = {k: kw[k] for k in ALL if k in kw}
    away = cf.away_from_clamp(la, c, 1e-4)
    check_target_grad(target, "l0_penalty", "l0_penalty_grad", [la, w], where=(away, None), **kw)


# --------------------------------------------------------------------------- L2, L1, group lasso


def _lam_kw(data):
    lam = data.draw(st.one_of(st.none(), cs.lams()), label="lam")
    return {} if lam is None else {"lam": lam}


@protocol("l2_penalty")
@given(data=st.data())
def test_l2_penalty(target, ref, data):
    dtype, w = _draw_w(data, min_dims=0)
    kw = _lam_kw(data)
    out, _ = compare(target, ref, "l2_penalty", w, **kw, scale=max(1.0, w.size / 4))
    closed = kw.get("lam", 1.0) / 2 * np.sum(w.astype(np.float64) ** 2)
    assert_values(target.last, out, closed, scale=max(10.0, w.size), what="lam/2 * sum w^2")


@protocol("l1_penalty")
@given(data=st.data())
def test_l1_penalty(target, ref, data):
    dtype, w = _draw_w(data, min_dims=0)
    kw = _lam_kw(data)
    out, _ = compare(target, ref, "l1_penalty", w, **kw, scale=max(1.0, w.size / 4))
    closed = kw.get("lam", 1.0) * np.sum(np.abs(w.astype(np.float64)))
    assert_values(target.last, out, closed, scale=max(10.0, w.size), what="lam * sum |w|")


@protocol("group_lasso_penalty")
@given(data=st.data())
def test_group_lasso_penalty(target, ref, data):
    dtype, w = _draw_w(data)
    axis = data.draw(cs.axes(w.ndim), label="axis")
    kw = {"axis": axis, **_lam_kw(data)}
    out, _ = compare(target, ref, "group_lasso_penalty", w, **kw, scale=max(1.0, w.size / 4))
    others = tuple(i for i in range(w.ndim) if i != axis % w.ndim)
    norms = np.sqrt(np.sum(w.astype(np.float64) ** 2, axis=others)) if others else np.abs(w.astype(np.float64))
    assert_values(target.last, out, kw.get("lam", 1.0) * np.sum(norms), scale=max(10.0, w.size), what="lam * sum_g ||w_g||_2")


@protocol("rvsm_penalty", checks="values,properties")
@given(data=st.data())
def test_rvsm_penalty(target, ref, data):
    dtype, w = _draw_w(data, min_dims=0)
    u = data.draw(cs.weights(dtype, w.shape), label="u")
    beta = data.draw(cs.lams(), label="beta")
    out, _ = compare(target, ref, "rvsm_penalty", w, u, beta=beta, scale=max(1.0, w.size / 4))
    closed = beta / 2 * np.sum((w.astype(np.float64) - u) ** 2)
    assert_values(target.last, out, closed, scale=max(10.0, w.size), what="beta/2 * ||w - u||^2", kind="values")
    zero = target("rvsm_penalty", w, w, beta=beta)
    if float(zero) != 0.0:
        fail(target.last, "rvsm_penalty(w, w) must be 0", actual=zero)


def _grad_params(names):
    return [pytest.param(n, id=n, marks=protocol(f"{n}_grad", n)) for n in names]


@pytest.mark.parametrize("fname", [
    pytest.param(n, id=n, marks=protocol(f"{n}_grad")) for n in ("l2_penalty", "l1_penalty", "group_lasso_penalty", "rvsm_penalty")
])
@given(data=st.data())
def test_penalty_grad_values(target, ref, fname, data):
    """Each penalty's ``_grad`` against the reference's (float32 and float64)."""
    dtype, w = _draw_w(data, min_dims=1 if fname == "group_lasso_penalty" else 0)
    if fname == "rvsm_penalty":
        u = data.draw(cs.weights(dtype, w.shape), label="u")
        compare(target, ref, "rvsm_penalty_grad", w, u, beta=data.draw(cs.lams(), label="beta"))
        return
    kw = _lam_kw(data)
    if fname == "group_lasso_penalty":
        kw["axis"] = data.draw(cs.axes(w.ndim), label="axis")
    compare(target, ref, f"{fname}_grad", w, **kw)


@pytest.mark.parametrize("fname", _grad_params(("l2_penalty", "l1_penalty", "rvsm_penalty")))
@given(data=st.data())
def test_elementwise_penalty_gradients(target, fname, data):
    _, w = _draw_w(data, dtype="float64", kinds=("distinct",), max_size=10, min_dims=0)
    if fname == "rvsm_penalty":
        u = data.draw(cs.weights("float64", w.shape, kinds=("distinct", "zeros")), label="u")
        check_target_grad(target, "rvsm_penalty", "rvsm_penalty_grad", [w, u], beta=data.draw(cs.lams(), label="beta"))
        return
    where = np.abs(w) > 1e-4 if fname == "l1_penalty" else None
    check_target_grad(target, fname, f"{fname}_grad", [w], where=where, **_lam_kw(data))


@protocol("group_lasso_penalty_grad", "group_lasso_penalty")
@given(data=st.data())
def test_group_lasso_gradients(target, data):
    _, w = _draw_w(data, dtype="float64", kinds=("distinct", "ties"), max_size=12)
    axis = data.draw(cs.axes(w.ndim), label="axis")
    others = tuple(i for i in range(w.ndim) if i != axis % w.ndim)
    norms = np.sqrt(np.sum(w**2, axis=others, keepdims=True)) if others else np.abs(w)
    check_target_grad(target, "group_lasso_penalty", "group_lasso_penalty_grad", [w],
                      where=np.broadcast_to(norms > 1e-3, w.shape), axis=axis, **_lam_kw(data))


# --------------------------------------------------------------------------- bad inputs

_W = np.ones((2, 3))
_LA = np.zeros(2)

BAD = [
    ("log_alpha-shape", "l0_penalty", (np.zeros(3), _W), {"lam": 1.0}, ValueError),
    ("log_alpha-shape-axis", "l0_penalty_grad", (_LA, _W), {"lam": 1.0, "axis": 1}, ValueError),
    ("w-0d", "l0_penalty", (np.zeros(1), np.array(1.0)), {"lam": 1.0}, ValueError),
    ("axis-out-of-range", "l0_penalty", (_LA, _W), {"lam": 1.0, "axis": 2}, ValueError),
    ("lam-negative", "l0_penalty", (_LA, _W), {"lam": -1.0}, ValueError),
    ("weight_decay-negative", "l0_penalty", (_LA, _W), {"lam": 1.0, "weight_decay": -0.5}, ValueError),
    ("int-w", "l0_penalty", (_LA, np.ones((2, 3), dtype=np.int64)), {"lam": 1.0}, TypeError),
    ("int-w", "l2_penalty", (np.array([1, 2]),), {}, TypeError),
    ("lam-negative", "l2_penalty_grad", (_W,), {"lam": -1.0}, ValueError),
    ("bool-w", "l1_penalty", (np.array([True, False]),), {}, TypeError),
    ("list-w", "l1_penalty_grad", ([1.0, 2.0],), {}, TypeError),
    ("axis-out-of-range", "group_lasso_penalty", (_W,), {"axis": -3}, ValueError),
    ("w-0d", "group_lasso_penalty_grad", (np.array(1.0),), {"axis": 0}, ValueError),
    ("shapes", "rvsm_penalty", (_W, np.ones((3, 2))), {"beta": 1.0}, ValueError),
    ("shapes", "rvsm_penalty_grad", (_W, np.ones(3)), {"beta": 1.0}, ValueError),
    ("beta-negative", "rvsm_penalty", (_W, _W), {"beta": -1.0}, ValueError),
]


@pytest.mark.parametrize("case", bad_input_params(BAD))
def test_bad_input(target, case):
    check_bad_input(target, *case)
