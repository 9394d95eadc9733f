"""JAX: the ``jax`` adapter, and refprune's primitives under ``jax.jit``, ``jax.grad`` and ``jax.vmap``.

JAX is an opt-in backend (``backends.OPT_IN``): the unit tests' ``backend`` fixture
leaves it out, these tests cover it. They run in JAX's default 32-bit mode (they do not
switch the process to 64 bits) and skip when jax is not installed.
"""

from __future__ import annotations

import numpy as np
import pytest

import refprune as rp
from refprune import backends

jax = pytest.importorskip("jax", reason="jax is not installed (pip install jax)")
jnp = jax.numpy

RTOL = 2e-5


@pytest.fixture
def jb():
    return backends.get("jax")


def _close(a, b, rtol=RTOL, atol=1e-6):
    np.testing.assert_allclose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), rtol=rtol, atol=atol)


def test_adapter_round_trip_device_and_reference_stream(jb):
    assert jb.name == "jax" and "jax" in backends.available() and "jax" in backends.OPT_IN
    host = np.arange(6.0, dtype=np.float32).reshape(2, 3).T
    x = jb.asarray(host)
    assert x.dtype == jnp.float32 and str(x.device).startswith("cpu")
    np.testing.assert_array_equal(jb.to_numpy(x), host)
    assert jb.to_numpy(jb.asarray(np.asarray(np.float32(0.5)))).shape == ()
    want = np.random.Generator(np.random.PCG64(7))
    g = jb.rng(7, stream="reference")
    np.testing.assert_array_equal(jb.to_numpy(g.uniform((3, 4), "float32")),
                                  want.uniform(0.0, 1.0, (3, 4)).astype(np.float32))
    np.testing.assert_array_equal(jb.to_numpy(g.permutation(9)), want.permutation(9))
    jb.synchronize()


def test_native_stream_restores_its_state(jb):
    g = jb.rng(3)
    saved = g.state()
    first = jb.to_numpy(g.uniform(4, "float32", 2.0, 3.0))
    g.set_state(saved)
    np.testing.assert_array_equal(jb.to_numpy(g.uniform(4, "float32", 2.0, 3.0)), first)
    assert np.all((first >= 2.0) & (first <= 3.0))


def test_float64_without_64_bit_mode_says_how(jb):
    if jax.config.jax_enable_x64:
        pytest.skip("JAX's 64-bit mode is on in this process")
    with pytest.raises(ValueError, match="JAX_ENABLE_X64=1"):
        jb.asarray(np.ones(3))


LA = np.array([0.5, -1.0, 2.0, 9.0], dtype=np.float32)
U = np.array([0.3, 0.9, 0.5, 0.0], dtype=np.float32)
W = np.array([[1.0, -2.0, 0.5, 0.0], [0.1, 3.0, -0.2, -0.7]], dtype=np.float32)

#: name -> (function of one array and its namespace, the array). Each runs on NumPy (the
#: reference: refprune's conformance suite checks eager JAX against it), under jax.jit, and
#: under jax.jit(jax.vmap(...)) over a batch of two (compiled once; eager JAX would compile
#: every operation separately).
CASES = {
    "hard_concrete_sample": (lambda a, xp: rp.hard_concrete_sample(a, xp.asarray(U)), LA),
    "hard_concrete_sample_grad": (lambda a, xp: rp.hard_concrete_sample_grad(a, xp.asarray(U), xp.ones(4)), LA),
    "hard_concrete_cdf": (lambda a, xp: rp.hard_concrete_cdf(a, xp.asarray(U)), LA),
    "hard_concrete_prob_nonzero_grad": (lambda a, xp: rp.hard_concrete_prob_nonzero_grad(a, xp.ones(4)), LA),
    "expected_l0": (lambda a, xp: rp.expected_l0(a, group_size=3), LA),
    "l0_penalty": (lambda w, xp: rp.l0_penalty(xp.asarray(LA[:2]), w, lam=0.1, weight_decay=0.1), W),
    "group_lasso_penalty": (lambda w, xp: rp.group_lasso_penalty(w, axis=0), W),
    "rvsm_penalty": (lambda w, xp: rp.rvsm_penalty(w, xp.zeros_like(w), beta=2.0), W),
    "soft_threshold": (lambda w, xp: rp.soft_threshold(w, threshold=0.5), W),
    "binarize_grad": (lambda w, xp: rp.binarize_grad(w, xp.ones_like(w), clip=(-1.0, 1.0)), W),
    "magnitude_mask": (lambda w, xp: rp.magnitude_mask(w, amount=0.5), W),
    "global_magnitude_mask": (lambda w, xp: rp.global_magnitude_mask([w, w[0]], amount=0.5)[0], W),
    "structured_mask": (lambda w, xp: rp.structured_mask(w, amount=1, axis=1, ord=3), W),
    "random_mask": (lambda w, xp: rp.random_mask(xp.abs(w) / 4, amount=3), W),
    "apply_mask": (lambda w, xp: rp.apply_mask(w, w > 0), W),
    "sparsity": (lambda w, xp: rp.sparsity(w > 0.2), W),
}


def _reference(f, x):
    out = f(np.asarray(x), np)
    return out if isinstance(out, float) else np.asarray(out)


@pytest.mark.parametrize("name", list(CASES))
def test_primitive_under_jit_and_vmap(name):
    f, x = CASES[name]
    g = lambda a: f(a, jnp)  # noqa: E731
    _close(jax.jit(g)(jnp.asarray(x)), _reference(f, x))
    batch = jax.jit(jax.vmap(g))(jnp.stack([jnp.asarray(x), jnp.asarray(x) * 0.5]))
    _close(batch[0], _reference(f, x))
    _close(batch[1], _reference(f, x * 0.5))


GRADS = {
    # forward of one array -> the hand-written gradient of sum(forward)
    "hard_concrete_sample": (lambda a: jnp.sum(rp.hard_concrete_sample(a, jnp.asarray(U))),
                             lambda a: rp.hard_concrete_sample_grad(a, jnp.asarray(U), jnp.ones(4)), LA),
    "hard_concrete_prob_nonzero": (lambda a: jnp.sum(rp.hard_concrete_prob_nonzero(a)),
                                   lambda a: rp.hard_concrete_prob_nonzero_grad(a, jnp.ones(4)), LA),
    "l0_penalty": (lambda w: rp.l0_penalty(jnp.asarray(LA[:2]), w, lam=0.1, weight_decay=0.3),
                   lambda w: rp.l0_penalty_grad(jnp.asarray(LA[:2]), w, lam=0.1, weight_decay=0.3)[1], W),
    "group_lasso_penalty": (lambda w: rp.group_lasso_penalty(w, axis=0, lam=0.5),
                            lambda w: rp.group_lasso_penalty_grad(w, axis=0, lam=0.5), W),
    "soft_threshold": (lambda w: jnp.sum(rp.soft_threshold(w, threshold=0.4)),
                       lambda w: rp.soft_threshold_grad(w, jnp.ones_like(w), threshold=0.4), W),
}


@pytest.mark.parametrize("name", list(GRADS))
def test_jax_grad_matches_the_hand_written_gradient(name):
    """jax.grad through refprune's forward equals refprune's own ``_grad`` (both compiled with jit)."""
    forward, hand, x = GRADS[name]
    x = jnp.asarray(x)
    _close(jax.jit(jax.grad(forward))(x), jax.jit(hand)(x))


def test_value_checks_are_skipped_for_tracers():
    """Eagerly, noise outside [0, 1] is the documented ValueError; under jit its values are unknown,
    so the check is skipped (documented in refprune._array.values_checkable)."""
    la, bad = jnp.asarray(LA), jnp.asarray(np.array([0.5, 1.5, 0.2, 0.1], dtype=np.float32))
    with pytest.raises(ValueError, match=r"uniform noise in \[0, 1\]"):
        rp.hard_concrete_sample(la, bad)
    out = jax.jit(rp.hard_concrete_sample)(la, bad)
    assert out.shape == (4,)
    with pytest.raises(ValueError, match="contains NaN"):
        rp.magnitude_mask(jnp.asarray(np.array([1.0, np.nan], dtype=np.float32)), amount=1)
    jax.jit(lambda w: rp.magnitude_mask(w, amount=1))(jnp.asarray(np.array([1.0, np.nan], dtype=np.float32)))


def test_device_check_is_skipped_for_tracers_only():
    """A tracer has no device: the check that used to say 'log_alpha is on None but u is on cpu:0' is skipped."""
    la, u = jnp.asarray(LA), jnp.asarray(U)  # u stays concrete (on cpu:0) while log_alpha is traced
    g = jax.jit(jax.grad(lambda a: jnp.sum(rp.hard_concrete_sample(a, u))))(la)
    assert g.shape == (4,)
    from refprune._array import is_traced

    assert not is_traced(la, np.zeros(2))
    seen = []
    jax.jit(lambda a: seen.append(is_traced(a)) or a)(la)
    assert seen == [True]


def test_sparsity_is_a_float_eagerly_and_an_array_under_jit():
    mask = jnp.asarray(np.array([True, False, False, True]))
    assert rp.sparsity(mask) == 0.5 and isinstance(rp.sparsity(mask), float)
    out = jax.jit(rp.sparsity)(mask)
    assert out.shape == () and float(out) == 0.5
