"""Hard-concrete gates: values against the reference, properties, gradients, the law, bad inputs."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refprune.conformance import closed_forms as cf
from refprune.conformance import strategies as cs
from refprune.conformance.gradcheck import autograd_grads, numeric_grads
from refprune.conformance.target import Host
from refprune.conformance.report import assert_values, bad_input_params, check_bad_input, compare, fail

protocol = pytest.mark.protocol
needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")

SAMPLER = ("beta", "gamma", "zeta")
ALL = ("beta", "gamma", "zeta", "eps")


def _sampler(c):
    return {k: v for k, v in c.items() if k in SAMPLER}


def _draw_gate(data, names, *, batch=True, dtype=None, shape=None):
    dtype = dtype or data.draw(cs.dtypes(), label="dtype")
    c = data.draw(cs.gate_constants(names), label="constants")
    shape = data.draw(cs.shapes(), label="shape") if shape is None else shape
    la = data.draw(cs.log_alphas(dtype, shape, c), label="log_alpha")
    lead = data.draw(st.sampled_from([(), (2,)]), label="noise batch") if batch else ()
    u = data.draw(cs.noise(dtype, lead + shape), label="u")
    return dtype, c, la, u


def _margin(dtype):
    return 1e-4 if dtype == "float32" else 1e-9


# --------------------------------------------------------------------------- values


@protocol("hard_concrete_quantile", checks="values,properties")
@given(data=st.data())
def test_quantile(target, ref, data):
    dtype, c, la, u = _draw_gate(data, SAMPLER)
    out, _ = compare(target, ref, "hard_concrete_quantile", la, u, **c)
    g, z = c.get("gamma", -0.1), c.get("zeta", 1.1)
    if out.size and not (np.all(out >= g - 1e-6) and np.all(out <= z + 1e-6)):
        fail(target.last, f"s_bar must lie in [gamma, zeta] = [{g}, {z}]", actual=out)


@protocol("hard_concrete_sample", checks="values,properties")
@given(data=st.data())
def test_sample(target, ref, data):
    dtype, c, la, u = _draw_gate(data, SAMPLER)
    z, _ = compare(target, ref, "hard_concrete_sample", la, u, **c)
    call = target.last
    if z.size and not (np.all(z >= 0) and np.all(z <= 1)):
        fail(call, "samples must lie in [0, 1]", actual=z)
    if not target.has("hard_concrete_quantile"):
        return
    s_bar = target("hard_concrete_quantile", la, u, **c)
    assert_values(call, z, np.clip(s_bar, 0, 1), dtype=dtype, what="sample vs clip(quantile, 0, 1) of the target")


@protocol("hard_concrete_sample_grad")
@given(data=st.data())
def test_sample_grad(target, ref, data):
    dtype, c, la, u = _draw_gate(data, SAMPLER)
    shape = np.broadcast_shapes(la.shape, u.shape)
    dz = data.draw(cs.weights(dtype, shape, kinds=("distinct", "constant")), label="dz")
    s_bar = ref("hard_concrete_quantile", la, u, **c)
    compare(target, ref, "hard_concrete_sample_grad", la, u, dz, **c, where=cf.away_from_clip(s_bar, la.shape, _margin(dtype)))


@protocol("hard_concrete_mode", checks="values,properties")
@given(data=st.data())
def test_mode(target, ref, data):
    dtype, c, la, _ = _draw_gate(data, ("gamma", "zeta"), batch=False)
    out, _ = compare(target, ref, "hard_concrete_mode", la, **c)
    if out.size and not (np.all(out >= 0) and np.all(out <= 1)):
        fail(target.last, "the mode must lie in [0, 1]", actual=out)
    order = np.argsort(la.reshape(-1), kind="stable")
    if np.any(np.diff(out.reshape(-1)[order]) < 0):
        fail(target.last, "the mode must be nondecreasing in log_alpha", actual=out)


@protocol("hard_concrete_cdf", checks="values,properties")
@given(data=st.data())
def test_cdf(target, ref, data):
    dtype, c, la, _ = _draw_gate(data, ALL, batch=False)
    if data.draw(st.booleans(), label="x is an array"):
        x = data.draw(cs.noise(dtype, la.shape), label="x01") * np.asarray(1.6, dtype) - np.asarray(0.3, dtype)
    else:
        x = data.draw(cs.cdf_points(dtype, c), label="x")
    out, _ = compare(target, ref, "hard_concrete_cdf", la, x, **c)
    eps = c.get("eps", 1e-6)
    if out.size and not (np.all(out >= eps * (1 - 1e-6)) and np.all(out <= 1 - eps * (1 - 1e-6))):
        fail(target.last, f"the cdf must lie in [eps, 1-eps] with eps={eps}", actual=out)


@protocol("hard_concrete_cdf", checks="properties")
@given(data=st.data())
def test_cdf_monotone(target, data):
    """Nondecreasing in ``x`` for fixed ``log_alpha``, nonincreasing in ``log_alpha`` for fixed ``x``."""
    dtype, c, la, _ = _draw_gate(data, ALL, batch=False, shape=(5,))
    g, z = c.get("gamma", -0.1), c.get("zeta", 1.1)
    xs = np.sort(np.concatenate([[g - 0.5, g, 0.0, 1.0, z, z + 0.5], np.linspace(g, z, 9)])).astype(dtype)
    for a in la[:2]:
        out = target("hard_concrete_cdf", np.full(xs.shape, a, dtype=dtype), xs, **c)
        if np.any(np.diff(out) < 0):
            fail(target.last, "the cdf must be nondecreasing in x", actual=out)
    x = data.draw(cs.cdf_points(dtype, c), label="x")
    lad = np.sort(la)
    out = target("hard_concrete_cdf", lad, x, **c)
    if np.any(np.diff(out) > 0):
        fail(target.last, "the cdf must be nonincreasing in log_alpha", actual=out)


@protocol("hard_concrete_prob_nonzero", checks="values,properties")
@given(data=st.data())
def test_prob_nonzero(target, ref, data):
    dtype, c, la, _ = _draw_gate(data, ALL, batch=False)
    p, _ = compare(target, ref, "hard_concrete_prob_nonzero", la, **c)
    call = target.last
    eps = c.get("eps", cs.GATE_DEFAULTS["eps"])
    closed = np.clip(cf.prob_nonzero_unclamped(la, c), eps, 1 - eps)
    assert_values(call, p, closed, dtype=dtype, what="P(z != 0) vs sigmoid(log_alpha - beta*log(-gamma/zeta)), clamped",
                  kind="values")
    if not target.has("hard_concrete_cdf"):
        return
    one_minus_cdf0 = 1.0 - target("hard_concrete_cdf", la, 0.0, **c)
    assert_values(call, p, one_minus_cdf0, dtype=dtype, scale=10.0, what="P(z != 0) vs 1 - cdf(0) of the target")


@protocol("hard_concrete_prob_nonzero_grad")
@given(data=st.data())
def test_prob_nonzero_grad(target, ref, data):
    dtype, c, la, _ = _draw_gate(data, ALL, batch=False)
    dp = data.draw(cs.weights(dtype, la.shape, kinds=("distinct", "constant")), label="dp")
    compare(target, ref, "hard_concrete_prob_nonzero_grad", la, dp, **c, where=_away_from_clamp(la, c, dtype))


def _away_from_clamp(la, c, dtype):
    return cf.away_from_clamp(la, c, 1e-4 if dtype == "float32" else 1e-9)


@protocol("expected_l0", checks="values,properties")
@given(data=st.data())
def test_expected_l0(target, ref, data):
    dtype, c, la, _ = _draw_gate(data, ALL, batch=False)
    group_size = data.draw(st.one_of(st.just(None), st.sampled_from([0, 1, 3]), st.integers(0, 10**4)), label="group_size")
    kw = dict(c) if group_size is None else {**c, "group_size": group_size}
    out, _ = compare(target, ref, "expected_l0", la, **kw, scale=max(1.0, la.size / 4))
    gs = 1 if group_size is None else group_size
    if not (-1e-9 <= float(out) <= gs * la.size * (1 + 1e-6)):
        fail(target.last, f"expected_l0 must lie in [0, group_size*n] = [0, {gs * la.size}]", actual=out)


#: float32 inputs where ``u`` is within ~1e-5 (relative) of ``exp(-log_alpha)``: ``log u - log(1-u)
#: + log_alpha`` cancels, so a correctly rounded float32 evaluation is off by far more than the
#: table's tolerance; the comparison widens it by the computation's condition (tolerances.condition_atol).
ILL_CONDITIONED = [
    (57.83118, 7.660139e-26, {"beta": 0.05}),
    (53.206352, 7.8122426e-24, {}),
    (-0.0, 0.5, {"beta": 0.05}),
]


@protocol("hard_concrete_quantile")
@pytest.mark.parametrize("case", range(len(ILL_CONDITIONED)), ids=[f"cancel{i}" for i in range(len(ILL_CONDITIONED))])
def test_quantile_ill_conditioned(target, ref, case):
    la, u, c = ILL_CONDITIONED[case]
    la = np.array([la, la, -la], dtype=np.float32)
    u = np.array([u, np.nextafter(np.float32(u), np.float32(1)), u], dtype=np.float32)
    compare(target, ref, "hard_concrete_quantile", la, u, **c)


# Edge classes of every gate function (every edge log_alpha against every edge u, the
# clamps, huge and tiny values, empty and 0-d arrays) are in edges.py / test_edges.py.


# --------------------------------------------------------------------------- gradients


def _grad_inputs(data, names, *, batch=True):
    c = data.draw(cs.gate_constants(names), label="constants")
    shape = data.draw(cs.nonempty_shapes(max_dims=2, max_size=6), label="shape")
    la = data.draw(cs.log_alphas("float64", shape, c).filter(lambda a: np.all(np.abs(a) < 20)), label="log_alpha")
    lead = data.draw(st.sampled_from([(), (2,)]), label="noise batch") if batch else ()
    u = data.draw(cs.noise("float64", lead + shape), label="u")
    return c, la, u


@protocol("hard_concrete_sample_grad", "hard_concrete_sample")
@given(data=st.data())
def test_sample_grad_central_differences(target, ref, data):
    c, la, u = _grad_inputs(data, SAMPLER)
    dz = data.draw(cs.weights("float64", np.broadcast_shapes(la.shape, u.shape), kinds=("distinct",)), label="dz")
    analytic = target("hard_concrete_sample_grad", la, u, dz, **c)
    call = target.last
    (numeric,) = numeric_grads(lambda a, b: target("hard_concrete_sample", a, b, **c), [la, u], [0], dz)
    s_bar = ref("hard_concrete_quantile", la, u, **c)
    assert_values(call, analytic, numeric, dtype="float64", scale=1e5,
                  where=cf.away_from_clip(s_bar, la.shape, 1e-5), what="gradient vs central differences")


@needs_torch
@protocol("hard_concrete_sample_grad")
@given(data=st.data())
def test_sample_grad_autograd(target, ref, data):
    from refprune.conformance.meta_tests import torch_impl

    c, la, u = _grad_inputs(data, SAMPLER)
    dz = data.draw(cs.weights("float64", np.broadcast_shapes(la.shape, u.shape), kinds=("distinct",)), label="dz")
    analytic = target("hard_concrete_sample_grad", la, u, dz, **c)
    call = target.last
    (auto,) = autograd_grads(torch_impl.hard_concrete_sample, [la, u], [0], dz, **c)
    s_bar = ref("hard_concrete_quantile", la, u, **c)
    assert_values(call, analytic, auto, dtype="float64", scale=100.0,
                  where=cf.away_from_clip(s_bar, la.shape, 1e-9), what="gradient vs torch autograd")


@protocol("hard_concrete_prob_nonzero_grad", "hard_concrete_prob_nonzero")
@given(data=st.data())
def test_prob_nonzero_grad_central_differences(target, data):
    c, la, _ = _grad_inputs(data, ALL, batch=False)
    dp = data.draw(cs.weights("float64", la.shape, kinds=("distinct",)), label="dp")
    analytic = target("hard_concrete_prob_nonzero_grad", la, dp, **c)
    call = target.last
    (numeric,) = numeric_grads(lambda a: target("hard_concrete_prob_nonzero", a, **c), [la], [0], dp)
    where = _away_from_clamp(la, c, "float64") & _away_from_clamp(la, c, "float32")
    assert_values(call, analytic, numeric, dtype="float64", scale=1e5, where=where, what="gradient vs central differences")


@needs_torch
@protocol("hard_concrete_prob_nonzero_grad")
@given(data=st.data())
def test_prob_nonzero_grad_autograd(target, data):
    from refprune.conformance.meta_tests import torch_impl

    c, la, _ = _grad_inputs(data, ALL, batch=False)
    dp = data.draw(cs.weights("float64", la.shape, kinds=("distinct",)), label="dp")
    analytic = target("hard_concrete_prob_nonzero_grad", la, dp, **c)
    (auto,) = autograd_grads(torch_impl.hard_concrete_prob_nonzero, [la], [0], dp, **c)
    assert_values(target.last, analytic, auto, dtype="float64", scale=100.0,
                  where=_away_from_clamp(la, c, "float64"), what="gradient vs torch autograd")


# --------------------------------------------------------------------------- the law


LAW_CASES = [(0.0, {}), (-2.0, {}), (2.5, {}), (1.0, {"beta": 0.3, "gamma": -0.3, "zeta": 1.4})]


@protocol("hard_concrete_quantile", checks="properties")
@pytest.mark.parametrize("case", range(len(LAW_CASES)), ids=[f"law{i}" for i in range(len(LAW_CASES))])
def test_sampler_law(target, case):
    """The sampler's distribution against its analytic CDF (Kolmogorov-Smirnov, fixed seed);
    then, where the target has them, the sample's atoms at 0 and 1 and the cdf against the draws."""
    from scipy import stats

    log_alpha, c = LAW_CASES[case]
    k = {**cs.GATE_DEFAULTS, **c}
    n = 4000
    u = np.random.default_rng(1234 + case).uniform(size=n)
    la = np.full(n, log_alpha)
    s_bar = target("hard_concrete_quantile", la, u, **c)
    call = target.last
    inside = np.clip(s_bar, np.nextafter(k["gamma"], 1), np.nextafter(k["zeta"], 0))
    ks = stats.kstest(inside, lambda x: cf.concrete_cdf(x, log_alpha, c))
    if ks.pvalue < 1e-3:
        fail(call, f"quantile draws do not follow the hard-concrete law: KS statistic {ks.statistic:.4f}, p={ks.pvalue:.2e}")
    if not (target.has("hard_concrete_sample") and target.has("hard_concrete_cdf")):
        return
    z = target("hard_concrete_sample", la, u, **c)
    p0 = cf.concrete_cdf(0.0, log_alpha, c)
    p1 = 1 - cf.concrete_cdf(1.0, log_alpha, c)
    for name, frac, p in (("P(z = 0)", np.mean(z == 0), p0), ("P(z = 1)", np.mean(z == 1), p1)):
        zscore = abs(frac - p) / math.sqrt(max(p * (1 - p), 1e-12) / n)
        if zscore > 5:
            fail(target.last, f"{name}: sampled {frac:.4f}, analytic {p:.4f} (z-score {zscore:.1f})")
    grid = np.linspace(k["gamma"] + 0.01, k["zeta"] - 0.01, 7)
    cdf = np.array([float(target("hard_concrete_cdf", np.array([log_alpha]), float(x), **c)[0]) for x in grid])
    empirical = np.array([np.mean(s_bar <= x) for x in grid])
    if np.max(np.abs(cdf - empirical)) > 1.95 / math.sqrt(n) * 1.5:
        fail(target.last, "the cdf disagrees with the sampler's empirical distribution", expected=empirical, actual=cdf)


# --------------------------------------------------------------------------- bad inputs

_F = np.array([0.0, 1.0])
_U = np.array([0.2, 0.7])

BAD = [
    ("int-log_alpha", "hard_concrete_sample", (np.array([0, 1]), _U), {}, TypeError),
    ("bool-u", "hard_concrete_quantile", (_F, np.array([True, False])), {}, TypeError),
    ("list-log_alpha", "hard_concrete_sample", ([0.0, 1.0], _U), {}, TypeError),
    ("u-above-1", "hard_concrete_sample", (_F, np.array([0.5, 1.5])), {}, ValueError),
    ("u-below-0", "hard_concrete_quantile", (_F, np.array([-0.1, 0.5])), {}, ValueError),
    ("u-nan", "hard_concrete_sample", (_F, np.array([np.nan, 0.5])), {}, ValueError),
    ("shapes", "hard_concrete_sample", (_F, np.array([0.1, 0.2, 0.3])), {}, ValueError),
    ("beta-0", "hard_concrete_sample", (_F, _U), {"beta": 0.0}, ValueError),
    ("gamma-positive", "hard_concrete_quantile", (_F, _U), {"gamma": 0.1}, ValueError),
    ("zeta-below-1", "hard_concrete_mode", (_F,), {"zeta": 0.9}, ValueError),
    ("dz-shape", "hard_concrete_sample_grad", (_F, _U, np.ones(3)), {}, ValueError),
    ("dp-shape", "hard_concrete_prob_nonzero_grad", (_F, np.ones(3)), {}, ValueError),
    ("cdf-x-nan", "hard_concrete_cdf", (_F, float("nan")), {}, ValueError),
    ("eps-half", "hard_concrete_prob_nonzero", (_F,), {"eps": 0.5}, ValueError),
    ("int-log_alpha-l0", "expected_l0", (np.array([1, 2]),), {}, TypeError),
    ("group_size-negative", "expected_l0", (_F,), {"group_size": -1}, ValueError),
    ("group_size-float", "expected_l0", (_F,), {"group_size": 2.5}, TypeError),
    ("mixed-namespaces", "hard_concrete_sample", (_F, Host(_U)), {}, TypeError),
]


@pytest.mark.parametrize("case", bad_input_params(BAD))
def test_bad_input(target, case):
    check_bad_input(target, *case)
