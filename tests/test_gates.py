"""Hard-concrete gates: closed forms, limits, gradients, sampling, bad input.

Every test runs on every backend (the ``backend`` fixture) and, where values are
compared, in float32 and float64 against a float64 NumPy reference computed from the
same (rounded) inputs.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate
from scipy.special import expit

import refprune as rp
from refprune.conformance.gradcheck import check_grad

BETA, GAMMA, ZETA, EPS = 2.0 / 3.0, -0.1, 1.1, 1e-6


# --------------------------------------------------------------------------- references


def ref_quantile(la, u, beta=BETA, gamma=GAMMA, zeta=ZETA):
    """``s_bar`` in float64 NumPy; ``log(0) = -inf`` gives the limits through expit."""
    la, u = np.broadcast_arrays(np.asarray(la, np.float64), np.asarray(u, np.float64))
    with np.errstate(divide="ignore"):
        s = expit((np.log(u) - np.log1p(-u) + la) / beta)
    return s * (zeta - gamma) + gamma


def ref_sample(la, u, **kw):
    return np.clip(ref_quantile(la, u, **kw), 0.0, 1.0)


def ref_cdf(la, x, beta=BETA, gamma=GAMMA, zeta=ZETA, eps=EPS):
    la, x = np.broadcast_arrays(np.asarray(la, np.float64), np.asarray(x, np.float64))
    xn = np.clip((x - gamma) / (zeta - gamma), 0.0, 1.0)
    with np.errstate(divide="ignore"):
        c = expit(beta * (np.log(xn) - np.log1p(-xn)) - la)
    return np.clip(c, eps, 1 - eps)


def ref_prob_nonzero(la, beta=BETA, gamma=GAMMA, zeta=ZETA, eps=EPS):
    """The paper's route: ``1 - clamp(cdf(0))``."""
    return 1.0 - ref_cdf(la, 0.0, beta=beta, gamma=gamma, zeta=zeta, eps=eps)


def ref_mode(la, gamma=GAMMA, zeta=ZETA):
    return np.clip(expit(np.asarray(la, np.float64)) * (zeta - gamma) + gamma, 0.0, 1.0)


def noise_for(la, s_bar, beta=BETA, gamma=GAMMA, zeta=ZETA):
    """The ``u`` that gives the stretched sample ``s_bar`` (inverse of the quantile)."""
    s = (np.asarray(s_bar) - gamma) / (zeta - gamma)
    return expit(beta * (np.log(s) - np.log1p(-s)) - la)


def kink_free_noise(rng, la, shape, margin=0.02):
    """Noise whose ``s_bar`` stays at least ``margin`` from the clip's kinks 0 and 1."""
    lo = rng.uniform(GAMMA + margin / 2, -margin, size=shape)
    mid = rng.uniform(margin, 1 - margin, size=shape)
    hi = rng.uniform(1 + margin, ZETA - margin / 2, size=shape)
    pick = rng.integers(0, 4, size=shape)  # mostly the differentiable middle
    s_bar = np.where(pick == 0, lo, np.where(pick == 3, hi, mid))
    return noise_for(np.broadcast_to(la, shape), s_bar)


def scalar(backend, value, dtype="float64"):
    """A 0-d backend array (built by reshape: it does not rely on asarray keeping 0-d)."""
    return backend.xp.reshape(backend.asarray(np.array([value]), dtype), ())


def host(x, dtype):
    """Round a host array to ``dtype`` and back to float64: the reference's input."""
    return np.asarray(x, dtype=dtype).astype(np.float64)


# --------------------------------------------------------------------------- values


def test_quantile_and_sample_values(backend, dtype, rng, close):
    la = np.concatenate([rng.normal(0.0, 3.0, size=7), [-50.0, 50.0]])
    u = rng.uniform(size=(5, 9))
    la_b, u_b = backend.asarray(la, dtype), backend.asarray(u, dtype)
    q = rp.hard_concrete_quantile(la_b, u_b)
    z = rp.hard_concrete_sample(la_b, u_b)
    for name, out in (("quantile", q), ("sample", z)):
        assert tuple(out.shape) == (5, 9)
        assert out.dtype == la_b.dtype, name
    close(q, ref_quantile(host(la, dtype), host(u, dtype)), dtype, "hard_concrete_quantile", scale=4)
    close(z, ref_sample(host(la, dtype), host(u, dtype)), dtype, "hard_concrete_sample", scale=4)
    z_np = backend.to_numpy(z)
    assert np.all((z_np >= 0) & (z_np <= 1))


def test_non_default_constants(backend, rng, close):
    la, u = rng.normal(size=6), rng.uniform(size=6)
    kw = {"beta": 0.3, "gamma": -0.5, "zeta": 1.7}
    q = rp.hard_concrete_quantile(backend.asarray(la), backend.asarray(u), **kw)
    close(q, ref_quantile(la, u, **kw), context="quantile, custom constants")
    c = rp.hard_concrete_cdf(backend.asarray(la), 0.2, eps=1e-3, **kw)
    close(c, ref_cdf(la, 0.2, eps=1e-3, **kw), context="cdf, custom constants")
    p = rp.hard_concrete_prob_nonzero(backend.asarray(la), eps=1e-3, **kw)
    close(p, ref_prob_nonzero(la, eps=1e-3, **kw), context="prob_nonzero, custom constants")


@pytest.mark.parametrize(
    ("la_shape", "u_shape", "out_shape"),
    [((4,), (4,), (4,)), ((4,), (3, 4), (3, 4)), ((2, 1), (3,), (2, 3)), ((), (5,), (5,)), ((3,), (), (3,))],
)
def test_broadcast_shapes(backend, rng, close, la_shape, u_shape, out_shape):
    """One gate vector per minibatch (same shape) or per example (leading batch axis)."""
    la, u = rng.normal(size=la_shape), rng.uniform(size=u_shape)
    z = rp.hard_concrete_sample(backend.asarray(la), backend.asarray(u))
    assert tuple(z.shape) == out_shape
    close(z, ref_sample(la, u), context=f"sample {la_shape} x {u_shape}")


def test_noise_limits(backend, dtype):
    """u of exactly 0 or 1 gives s = 0 or 1 exactly: no NaN, no warning."""
    la = np.array([0.0, 0.0, -50.0, 50.0, 50.0, -50.0, 3.0, -3.0])
    u = np.array([0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0])
    la_b, u_b = backend.asarray(la, dtype), backend.asarray(u, dtype)
    q = backend.to_numpy(rp.hard_concrete_quantile(la_b, u_b))
    expected = np.where(u == 0, GAMMA, ZETA)
    np.testing.assert_allclose(q, expected, rtol=1e-6, atol=0)
    z = backend.to_numpy(rp.hard_concrete_sample(la_b, u_b))
    np.testing.assert_array_equal(z, u)
    g = backend.to_numpy(rp.hard_concrete_sample_grad(la_b, u_b, backend.asarray(np.ones(8), dtype)))
    np.testing.assert_array_equal(g, np.zeros(8))


def test_extreme_log_alpha(backend, dtype):
    """log_alpha of +-50 saturates the gate for every u strictly inside (0, 1)."""
    u = np.array([1e-7, EPS, 0.25, 0.5, 0.75, 1 - EPS, 1 - 1e-7])
    for la, gate in ((50.0, 1.0), (-50.0, 0.0)):
        la_b = backend.asarray(np.full(u.shape, la), dtype)
        u_b = backend.asarray(u, dtype)
        q = backend.to_numpy(rp.hard_concrete_quantile(la_b, u_b))
        assert np.all(np.isfinite(q))
        np.testing.assert_array_equal(backend.to_numpy(rp.hard_concrete_sample(la_b, u_b)), np.full(u.shape, gate))
        np.testing.assert_array_equal(backend.to_numpy(rp.hard_concrete_mode(la_b)), np.full(u.shape, gate))
        dz = backend.asarray(np.ones(u.shape), dtype)
        np.testing.assert_array_equal(backend.to_numpy(rp.hard_concrete_sample_grad(la_b, u_b, dz)), np.zeros(u.shape))


def test_empty_and_0d(backend, dtype):
    e = backend.asarray(np.zeros(0), dtype)
    assert tuple(rp.hard_concrete_sample(e, e).shape) == (0,)
    assert tuple(rp.hard_concrete_quantile(e, backend.asarray(np.zeros((3, 0)), dtype)).shape) == (3, 0)
    g = rp.hard_concrete_sample_grad(
        e, backend.asarray(np.zeros((3, 0)), dtype), backend.asarray(np.zeros((3, 0)), dtype)
    )
    assert tuple(g.shape) == (0,)
    assert tuple(rp.hard_concrete_mode(e).shape) == (0,)
    assert tuple(rp.hard_concrete_cdf(e, 0.0).shape) == (0,)
    assert tuple(rp.hard_concrete_cdf(e, e).shape) == (0,)
    assert tuple(rp.hard_concrete_prob_nonzero(e).shape) == (0,)
    assert tuple(rp.hard_concrete_prob_nonzero_grad(e, e).shape) == (0,)
    l0 = rp.expected_l0(e, group_size=5)
    assert tuple(l0.shape) == () and float(backend.to_numpy(l0)) == 0.0

    la0, u0, one0 = (scalar(backend, v, dtype) for v in (0.7, 0.3, 1.0))
    z0 = rp.hard_concrete_sample(la0, u0)
    assert tuple(z0.shape) == ()
    np.testing.assert_allclose(backend.to_numpy(z0), ref_sample(0.7, 0.3), rtol=1e-5)
    assert tuple(rp.hard_concrete_sample_grad(la0, u0, one0).shape) == ()
    assert tuple(rp.hard_concrete_mode(la0).shape) == ()
    assert tuple(rp.hard_concrete_cdf(la0, 0.0).shape) == ()
    assert tuple(rp.hard_concrete_prob_nonzero_grad(la0, la0).shape) == ()
    assert tuple(rp.expected_l0(la0).shape) == ()


def test_mode_values(backend, dtype, rng, close):
    la = np.concatenate([rng.normal(0.0, 3.0, size=20), [-50.0, 50.0, 0.0]])
    out = rp.hard_concrete_mode(backend.asarray(la, dtype))
    assert out.dtype == backend.asarray(la, dtype).dtype
    close(out, ref_mode(host(la, dtype)), dtype, "hard_concrete_mode")


def test_cdf_values(backend, dtype, rng, close):
    la = np.concatenate([rng.normal(0.0, 3.0, size=6), [-50.0, 50.0]])
    la_b = backend.asarray(la, dtype)
    x = np.array([-0.5, GAMMA, -0.05, 0.0, 0.3, 0.5, 0.999, 1.0, ZETA, 2.0])[:, None]
    out = rp.hard_concrete_cdf(la_b, backend.asarray(x, dtype))
    assert tuple(out.shape) == (10, 8)
    close(out, ref_cdf(host(la, dtype), host(x, dtype)), dtype, "hard_concrete_cdf (array x)", scale=4)
    for xf in (-0.5, GAMMA, 0.0, 0.5, 1.0, ZETA, 2.0, 0, -math.inf, math.inf):
        close(
            rp.hard_concrete_cdf(la_b, xf), ref_cdf(host(la, dtype), xf), dtype, f"hard_concrete_cdf(x={xf})", scale=4
        )
    c = backend.to_numpy(out)
    assert np.all(np.diff(c, axis=0) >= 0), "the CDF must be non-decreasing in x"
    assert np.all((c >= np.float32(EPS) * (1 - 1e-6)) & (c <= 1 - EPS + 1e-7))


def test_cdf_without_clamp(backend):
    la_b = backend.asarray(np.array([-2.0, 0.0, 2.0]))
    np.testing.assert_array_equal(backend.to_numpy(rp.hard_concrete_cdf(la_b, GAMMA - 1e-3, eps=0.0)), np.zeros(3))
    np.testing.assert_array_equal(backend.to_numpy(rp.hard_concrete_cdf(la_b, 1.5, eps=0.0)), np.ones(3))
    c = backend.to_numpy(rp.hard_concrete_cdf(la_b, 0.5, eps=0.0))
    np.testing.assert_allclose(c, expit(-np.array([-2.0, 0.0, 2.0])), rtol=1e-12)


def test_prob_nonzero_values(backend, dtype, rng, close):
    la = np.concatenate([rng.normal(0.0, 5.0, size=30), [-50.0, -15.5, -15.3, 12.1, 12.3, 50.0]])
    la_b = backend.asarray(la, dtype)
    p = rp.hard_concrete_prob_nonzero(la_b)
    assert p.dtype == la_b.dtype
    close(p, ref_prob_nonzero(host(la, dtype)), dtype, "hard_concrete_prob_nonzero")
    # closed form: sigmoid(log_alpha - beta*log(-gamma/zeta)), clamped
    direct = np.clip(expit(host(la, dtype) - BETA * math.log(-GAMMA / ZETA)), EPS, 1 - EPS)
    close(p, direct, dtype, "hard_concrete_prob_nonzero closed form")
    one_minus_cdf = 1 - backend.to_numpy(rp.hard_concrete_cdf(la_b, 0.0))
    np.testing.assert_allclose(backend.to_numpy(p), one_minus_cdf, rtol=0, atol=1e-6 if dtype == "float32" else 1e-14)
    p_np = backend.to_numpy(p)
    assert p_np[-6] == pytest.approx(EPS, rel=1e-6) and p_np[-1] == pytest.approx(1 - EPS, rel=1e-6)


def test_expected_l0(backend, dtype, rng, close):
    la = rng.normal(0.0, 3.0, size=12)
    out = rp.expected_l0(backend.asarray(la, dtype), group_size=7)
    assert tuple(out.shape) == () and out.dtype == backend.asarray(la, dtype).dtype
    close(out, 7 * np.sum(ref_prob_nonzero(host(la, dtype))), dtype, "expected_l0")
    close(rp.expected_l0(backend.asarray(la, dtype)), np.sum(ref_prob_nonzero(host(la, dtype))), dtype, "group_size=1")
    assert float(backend.to_numpy(rp.expected_l0(backend.asarray(la, dtype), group_size=0))) == 0.0


# --------------------------------------------------------------------------- gradients


def _host_fn(backend, fn, *args, **kw):
    """``la -> fn(la, *args)`` on host float64 arrays, through the backend."""
    return lambda la: backend.to_numpy(fn(backend.asarray(la, "float64"), *args, **kw))


@pytest.mark.parametrize(("la_shape", "u_shape"), [((8,), (8,)), ((6,), (4, 6)), ((3, 1), (3, 5))])
def test_sample_grad_central_differences(backend, rng, la_shape, u_shape):
    la = rng.normal(0.0, 2.0, size=la_shape)
    out_shape = np.broadcast_shapes(la_shape, u_shape)
    u = kink_free_noise(rng, la, out_shape)
    dz = rng.normal(size=out_shape)
    u_b = backend.asarray(u, "float64")
    analytic = backend.to_numpy(rp.hard_concrete_sample_grad(backend.asarray(la), u_b, backend.asarray(dz)))
    assert analytic.shape == la_shape
    check_grad(_host_fn(backend, rp.hard_concrete_sample, u_b), la, dz, analytic, name="hard_concrete_sample_grad")


def test_prob_nonzero_grad_central_differences(backend, rng):
    # away from the clamp's edges (-15.41, 12.22), where p(1-p) is large enough for
    # central differences to resolve it; the autograd test below covers the edges
    la = rng.uniform(-8.0, 6.0, size=20)
    dp = rng.normal(size=20)
    analytic = backend.to_numpy(rp.hard_concrete_prob_nonzero_grad(backend.asarray(la), backend.asarray(dp)))
    check_grad(_host_fn(backend, rp.hard_concrete_prob_nonzero), la, dp, analytic, name="prob_nonzero_grad")


def _autograd_inputs(rng, dtype):
    """Gate locations, noise (0 and 1 included) and ``dz`` for the autograd tests, rounded to ``dtype``."""
    la = host(rng.normal(0.0, 2.0, size=6), dtype)
    u = host(kink_free_noise(rng, la, (4, 6)), dtype)
    u[0, :2] = [0.0, 1.0]
    return la, u, host(rng.normal(size=(4, 6)), dtype)


def _torch_sample_and_grad(la, u, dz):
    """The sample and its gradient by torch autograd, in float64."""
    torch = pytest.importorskip("torch")
    la_t = torch.tensor(la, dtype=torch.float64, requires_grad=True)
    with np.errstate(divide="ignore"):
        logit_u = torch.tensor(np.log(u) - np.log1p(-u))
    z = torch.clamp(torch.sigmoid((logit_u + la_t) / BETA) * (ZETA - GAMMA) + GAMMA, 0.0, 1.0)
    (z * torch.tensor(dz)).sum().backward()
    return z.detach().numpy(), la_t.grad.numpy()


def test_sample_grad_vs_torch_autograd(backend, dtype, rng, close):
    la, u, dz = _autograd_inputs(rng, dtype)
    _, want = _torch_sample_and_grad(la, u, dz)
    ours = rp.hard_concrete_sample_grad(*(backend.asarray(a, dtype) for a in (la, u, dz)))
    assert ours.dtype == backend.asarray(la, dtype).dtype
    close(ours, want, dtype, "hard_concrete_sample_grad vs autograd", scale=4)


# --------------------------------------------------------------------------- fused sample and gradient


FUSED_SHAPES = [((8,), (8,)), ((6,), (4, 6)), ((3, 1), (3, 5)), ((), (5,)), ((0,), (0,))]


@pytest.mark.parametrize(("la_shape", "u_shape"), FUSED_SHAPES)
def test_sample_and_grad_equal_the_two_functions_bit_for_bit(backend, dtype, rng, la_shape, u_shape):
    la = host(rng.normal(0.0, 2.0, size=la_shape), dtype)
    out_shape = np.broadcast_shapes(la_shape, u_shape)
    u = host(rng.uniform(0.0, 1.0, size=out_shape), dtype)
    u.reshape(-1)[:2] = [0.0, 1.0][: u.size]
    dz = host(rng.normal(size=out_shape), dtype)
    la_b, u_b, dz_b = (backend.asarray(a, dtype) for a in (la, u, dz))
    z, g = rp.hard_concrete_sample_and_grad(la_b, u_b, dz_b, beta=0.5, gamma=-0.2, zeta=1.3)
    z_vjp, backprop = rp.hard_concrete_sample_vjp(la_b, u_b, beta=0.5, gamma=-0.2, zeta=1.3)
    want_z = backend.to_numpy(rp.hard_concrete_sample(la_b, u_b, beta=0.5, gamma=-0.2, zeta=1.3))
    want_g = backend.to_numpy(rp.hard_concrete_sample_grad(la_b, u_b, dz_b, beta=0.5, gamma=-0.2, zeta=1.3))
    for got, want, what in ((z, want_z, "z"), (z_vjp, want_z, "vjp z"), (g, want_g, "grad"),
                            (backprop(dz_b), want_g, "vjp grad")):
        got = backend.to_numpy(got)
        assert got.dtype == want.dtype and got.shape == want.shape, what
        assert np.array_equal(got, want), f"{what} on {backend.name} {dtype}: {got} != {want}"
    assert tuple(g.shape) == la_shape


def test_sample_and_grad_central_differences(backend, rng):
    la = rng.normal(0.0, 2.0, size=(3, 1))
    u = kink_free_noise(rng, la, (3, 5))
    dz = rng.normal(size=(3, 5))
    u_b = backend.asarray(u, "float64")
    z, g = rp.hard_concrete_sample_and_grad(backend.asarray(la), u_b, backend.asarray(dz))
    np.testing.assert_array_equal(backend.to_numpy(z), backend.to_numpy(rp.hard_concrete_sample(backend.asarray(la), u_b)))
    check_grad(_host_fn(backend, rp.hard_concrete_sample, u_b), la, dz, backend.to_numpy(g), name="hard_concrete_sample_and_grad")


def test_sample_and_grad_vs_torch_autograd(backend, dtype, rng, close):
    la, u, dz = _autograd_inputs(rng, dtype)
    want_z, want_g = _torch_sample_and_grad(la, u, dz)
    z, g = rp.hard_concrete_sample_and_grad(*(backend.asarray(a, dtype) for a in (la, u, dz)))
    close(z, want_z, dtype, "hard_concrete_sample_and_grad z vs torch")
    close(g, want_g, dtype, "hard_concrete_sample_and_grad vs autograd", scale=4)


def test_sample_vjp_checks_dz(backend):
    la, u = backend.asarray(np.zeros(3)), backend.asarray(np.full(3, 0.5))
    _, backprop = rp.hard_concrete_sample_vjp(la, u)
    with pytest.raises(ValueError, match=r"dz must have the sample's shape \(3,\)"):
        backprop(backend.asarray(np.ones(4)))
    with pytest.raises(TypeError, match="dz"):
        backprop([1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="dz must have the sample's shape"):
        rp.hard_concrete_sample_and_grad(la, u, backend.asarray(np.ones(2)))


def test_prob_nonzero_grad_vs_torch_autograd(backend, dtype, rng, close):
    torch = pytest.importorskip("torch")
    la = host(np.concatenate([rng.normal(0.0, 4.0, size=20), [-50.0, -20.0, 20.0, 50.0]]), dtype)
    dp = host(rng.normal(size=la.shape), dtype)
    la_t = torch.tensor(la, requires_grad=True)
    logit0 = math.log(-GAMMA / ZETA)
    p = 1 - torch.clamp(torch.sigmoid(BETA * logit0 - la_t), EPS, 1 - EPS)
    (p * torch.tensor(dp)).sum().backward()
    ours = rp.hard_concrete_prob_nonzero_grad(backend.asarray(la, dtype), backend.asarray(dp, dtype))
    close(ours, la_t.grad.numpy(), dtype, "hard_concrete_prob_nonzero_grad vs autograd")
    assert np.all(backend.to_numpy(ours)[-4:] == 0), "no gradient where the clamp is active"


# --------------------------------------------------------------------------- distribution


def test_sample_distribution_matches_analytic_moments(backend, dtype):
    """Sample mean, P(z=0) and P(z=1) against the analytic CDF (the KS test is in conformance/)."""
    la = np.array([-2.0, 0.0, 1.5, 3.0])
    n = 200_000
    u = backend.rng(0, stream="reference").uniform((n, 4), dtype)
    z = backend.to_numpy(rp.hard_concrete_sample(backend.asarray(la, dtype), u)).astype(np.float64)
    for j, a in enumerate(la):
        cdf = lambda x, a=a: float(ref_cdf(a, x, eps=0.0))  # noqa: E731
        mean, _ = integrate.quad(lambda x, cdf=cdf: 1.0 - cdf(x), 0.0, 1.0)  # E[z] = int_0^1 P(z > x) dx
        tol = 5 * 0.5 / math.sqrt(n)
        assert abs(z[:, j].mean() - mean) < tol, (a, z[:, j].mean(), mean)
        assert abs(np.mean(z[:, j] == 0) - cdf(0.0)) < tol
        assert abs(np.mean(z[:, j] == 1) - (1 - cdf(1.0))) < tol
        p_nonzero = float(backend.to_numpy(rp.hard_concrete_prob_nonzero(backend.asarray(la[j : j + 1], dtype)))[0])
        assert abs(np.mean(z[:, j] != 0) - p_nonzero) < tol


# --------------------------------------------------------------------------- purity


def test_inputs_not_mutated(backend, rng):
    la, u, dz = rng.normal(size=(3, 5)), rng.uniform(size=(3, 5)), rng.normal(size=(3, 5))
    u[0, 0], u[0, 1] = 0.0, 1.0
    arrays = [backend.asarray(a) for a in (la, u, dz)]
    rp.hard_concrete_quantile(arrays[0], arrays[1])
    rp.hard_concrete_sample(arrays[0], arrays[1])
    rp.hard_concrete_sample_grad(*arrays)
    rp.hard_concrete_mode(arrays[0])
    rp.hard_concrete_cdf(arrays[0], arrays[1])
    rp.hard_concrete_prob_nonzero_grad(arrays[0], arrays[2])
    for before, after in zip((la, u, dz), arrays, strict=True):
        np.testing.assert_array_equal(backend.to_numpy(after), before)


# --------------------------------------------------------------------------- bad input


def _all_gate_calls(la, u):
    return [
        lambda: rp.hard_concrete_quantile(la, u),
        lambda: rp.hard_concrete_sample(la, u),
        lambda: rp.hard_concrete_sample_grad(la, u, u),
        lambda: rp.hard_concrete_mode(la),
        lambda: rp.hard_concrete_cdf(la, 0.0),
        lambda: rp.hard_concrete_prob_nonzero(la),
        lambda: rp.hard_concrete_prob_nonzero_grad(la, u),
        lambda: rp.expected_l0(la),
    ]


@pytest.mark.parametrize("bad_dtype", ["int64", "int32", "bool"])
def test_non_float_log_alpha_raises_type_error(backend, bad_dtype):
    la = backend.asarray(np.array([1, 0, 1]).astype(bad_dtype))
    u = backend.asarray(np.array([0.2, 0.5, 0.7]))
    for call in _all_gate_calls(la, u):
        with pytest.raises(TypeError, match="log_alpha"):
            call()


def test_non_arrays_raise_type_error(backend):
    u = backend.asarray(np.array([0.2, 0.5]))
    with pytest.raises(TypeError, match="log_alpha must be an array"):
        rp.hard_concrete_sample([0.0, 1.0], u)
    with pytest.raises(TypeError, match="u must be an array"):
        rp.hard_concrete_sample(u, [0.3, 0.4])
    with pytest.raises(TypeError, match="x must be"):
        rp.hard_concrete_cdf(u, "0")
    with pytest.raises(TypeError, match="u"):
        rp.hard_concrete_sample(u, backend.asarray(np.array([1, 0])))


def test_mixed_namespaces_raise_type_error(backend):
    if backend.name == "numpy":
        pytest.skip("needs a second array library")
    with pytest.raises(TypeError, match="different array libraries"):
        rp.hard_concrete_sample(np.zeros(2), backend.asarray(np.array([0.2, 0.5])))


@pytest.mark.parametrize("bad", [-0.1, 1.1, float("nan")])
def test_noise_outside_unit_interval_raises(backend, bad):
    la = backend.asarray(np.zeros(3))
    u = backend.asarray(np.array([0.5, bad, 0.5]))
    for fn in (rp.hard_concrete_quantile, rp.hard_concrete_sample):
        with pytest.raises(ValueError, match=r"u must hold uniform noise in \[0, 1\]"):
            fn(la, u)
    with pytest.raises(ValueError, match="u must hold"):
        rp.hard_concrete_sample_grad(la, u, la)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"beta": 0.0}, "beta must be > 0"),
        ({"beta": -1.0}, "beta must be > 0"),
        ({"beta": float("nan")}, "beta must be finite"),
        ({"beta": float("inf")}, "beta must be finite"),
        ({"gamma": 0.0}, "gamma must be < 0"),
        ({"gamma": 0.2}, "gamma must be < 0"),
        ({"gamma": float("-inf")}, "gamma must be finite"),
        ({"zeta": 1.0}, "zeta must be > 1"),
        ({"zeta": 0.5}, "zeta must be > 1"),
        ({"eps": -1e-6}, r"eps must be in \[0, 0.5\)"),
        ({"eps": 0.5}, r"eps must be in \[0, 0.5\)"),
        ({"eps": float("nan")}, "eps must be finite"),
    ],
)
def test_bad_constants_raise_value_error(backend, kw, match):
    la = backend.asarray(np.zeros(3))
    u = backend.asarray(np.full(3, 0.5))
    name = next(iter(kw))
    calls = {
        "quantile": lambda: rp.hard_concrete_quantile(la, u, **kw),
        "sample": lambda: rp.hard_concrete_sample(la, u, **kw),
        "sample_grad": lambda: rp.hard_concrete_sample_grad(la, u, u, **kw),
        "mode": lambda: rp.hard_concrete_mode(la, **kw),
        "cdf": lambda: rp.hard_concrete_cdf(la, 0.0, **kw),
        "cdf_array": lambda: rp.hard_concrete_cdf(la, u, **kw),
        "prob_nonzero": lambda: rp.hard_concrete_prob_nonzero(la, **kw),
        "prob_nonzero_grad": lambda: rp.hard_concrete_prob_nonzero_grad(la, u, **kw),
        "expected_l0": lambda: rp.expected_l0(la, **kw),
    }
    not_taken = {"beta": {"mode"}, "eps": {"quantile", "sample", "sample_grad", "mode"}}
    for fname, call in calls.items():
        if fname in not_taken.get(name, ()):
            continue  # this function does not take that constant
        with pytest.raises(ValueError, match=match):
            call()


def test_constant_of_wrong_type_raises_type_error(backend):
    la = backend.asarray(np.zeros(3))
    with pytest.raises(TypeError, match="beta"):
        rp.hard_concrete_prob_nonzero(la, beta="2/3")
    with pytest.raises(TypeError, match="gamma"):
        rp.hard_concrete_mode(la, gamma=None)


def test_constants_not_taken_are_rejected(backend):
    la = backend.asarray(np.zeros(3))
    with pytest.raises(TypeError):
        rp.hard_concrete_mode(la, beta=0.5)
    with pytest.raises(TypeError):
        rp.hard_concrete_sample(la, la, eps=1e-6)


def test_shape_mismatches_raise_value_error(backend):
    la = backend.asarray(np.zeros(4))
    with pytest.raises(ValueError, match="do not broadcast"):
        rp.hard_concrete_sample(la, backend.asarray(np.full(3, 0.5)))
    with pytest.raises(ValueError, match="do not broadcast"):
        rp.hard_concrete_cdf(la, backend.asarray(np.zeros(3)))
    with pytest.raises(ValueError, match=r"dz must have the sample's shape \(2, 4\)"):
        rp.hard_concrete_sample_grad(la, backend.asarray(np.full((2, 4), 0.5)), la)
    with pytest.raises(ValueError, match="same shape"):
        rp.hard_concrete_prob_nonzero_grad(la, backend.asarray(np.zeros(3)))


def test_nan_x_in_cdf_raises(backend):
    la = backend.asarray(np.zeros(2))
    with pytest.raises(ValueError, match="x must not"):
        rp.hard_concrete_cdf(la, float("nan"))
    with pytest.raises(ValueError, match="x must not contain NaN"):
        rp.hard_concrete_cdf(la, backend.asarray(np.array([0.0, np.nan])))


def test_bad_group_size(backend):
    la = backend.asarray(np.zeros(2))
    with pytest.raises(ValueError, match="group_size must be >= 0"):
        rp.expected_l0(la, group_size=-1)
    for bad in (1.5, True, "3"):
        with pytest.raises(TypeError, match="group_size must be an int"):
            rp.expected_l0(la, group_size=bad)
