"""A small JAX implementation of some oracle-protocol functions, written as a JAX user would.

Written from docs/protocol.md alone, never calling refprune: thresholds, the hard-concrete
sample and its probability of being nonzero, the L1 penalty, and magnitude / structured
masks. Gradients come from ``jax.vjp`` / ``jax.grad`` of the forwards, not by hand. It is
the target of ``refprune check --target refprune.conformance.meta_tests.jax_impl
--target-backend jax``; where it deviates from the protocol is recorded, with the reason,
in ``conformance/xfails/jax_impl.txt`` (the meta-tests check the file stays exact).
"""

from __future__ import annotations

import decimal
import math
import numbers

import jax
import jax.numpy as jnp

BETA, GAMMA, ZETA, EPS = 2.0 / 3.0, -0.1, 1.1, 1e-6

__all__ = [
    "hard_threshold", "hard_threshold_grad", "soft_threshold", "soft_threshold_grad",
    "hard_concrete_sample", "hard_concrete_sample_grad", "hard_concrete_prob_nonzero",
    "l1_penalty", "l1_penalty_grad", "magnitude_mask", "structured_mask",
]


# --------------------------------------------------------------------------- checks


def _array(name, x):
    if not isinstance(x, jax.Array):
        raise TypeError(f"{name} must be a jax.Array, got {type(x).__name__}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{name} must be floating, got {x.dtype}")
    return x


def _number(name, v, *, lo=None, positive=False):
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(v).__name__}")
    v = float(v)
    if not math.isfinite(v) or (lo is not None and v < lo) or (positive and v <= 0):
        raise ValueError(f"{name}={v} is out of range")
    return v


def _same_shape(a, b, names):
    if a.shape != b.shape:
        raise ValueError(f"{names[0]} {a.shape} and {names[1]} {b.shape} differ in shape")


# --------------------------------------------------------------------------- thresholds


def hard_threshold(w, *, threshold):
    _array("w", w)
    t = _number("threshold", threshold, lo=0.0)
    return jnp.where(jnp.abs(w) > t, w, jnp.zeros_like(w))


def hard_threshold_grad(w, dy, *, threshold):
    _array("w", w), _array("dy", dy)
    _same_shape(w, dy, ("w", "dy"))
    _, vjp = jax.vjp(lambda x: hard_threshold(x, threshold=threshold), w)
    return vjp(dy)[0]


def soft_threshold(w, *, threshold):
    _array("w", w)
    t = _number("threshold", threshold, lo=0.0)
    return jnp.sign(w) * jnp.maximum(jnp.abs(w) - t, 0)


def soft_threshold_grad(w, dy, *, threshold):
    _array("w", w), _array("dy", dy)
    _same_shape(w, dy, ("w", "dy"))
    _, vjp = jax.vjp(lambda x: soft_threshold(x, threshold=threshold), w)
    return vjp(dy)[0]


# --------------------------------------------------------------------------- gates


def _constants(beta, gamma, zeta):
    return _number("beta", beta, positive=True), _number("gamma", gamma), _number("zeta", zeta)


def hard_concrete_sample(log_alpha, u, *, beta=BETA, gamma=GAMMA, zeta=ZETA):
    _array("log_alpha", log_alpha), _array("u", u)
    beta, gamma, zeta = _constants(beta, gamma, zeta)
    if gamma >= 0 or zeta <= 1:
        raise ValueError("gamma < 0 < 1 < zeta is needed")
    jnp.broadcast_shapes(log_alpha.shape, u.shape)
    if not isinstance(u, jax.core.Tracer) and bool(jnp.any((u < 0) | (u > 1) | jnp.isnan(u))):
        raise ValueError("u must lie in [0, 1]")
    s = jax.nn.sigmoid((jnp.log(u) - jnp.log1p(-u) + log_alpha) / beta)
    return jnp.clip(s * (zeta - gamma) + gamma, 0.0, 1.0)


def hard_concrete_sample_grad(log_alpha, u, dz, *, beta=BETA, gamma=GAMMA, zeta=ZETA):
    _array("dz", dz)
    out, vjp = jax.vjp(lambda a: hard_concrete_sample(a, u, beta=beta, gamma=gamma, zeta=zeta), log_alpha)
    _same_shape(out, dz, ("the sample", "dz"))
    return vjp(dz)[0]


def hard_concrete_prob_nonzero(log_alpha, *, beta=BETA, gamma=GAMMA, zeta=ZETA, eps=EPS):
    _array("log_alpha", log_alpha)
    beta, gamma, zeta = _constants(beta, gamma, zeta)
    eps = _number("eps", eps, lo=0.0)
    if eps >= 0.5:
        raise ValueError("eps must be < 0.5")
    return jnp.clip(jax.nn.sigmoid(log_alpha - beta * math.log(-gamma / zeta)), eps, 1 - eps)


# --------------------------------------------------------------------------- L1


def l1_penalty(w, *, lam=1.0):
    _array("w", w)
    return _number("lam", lam, lo=0.0) * jnp.sum(jnp.abs(w))


def l1_penalty_grad(w, *, lam=1.0):
    _array("w", w)
    _number("lam", lam, lo=0.0)
    return jax.grad(lambda x: l1_penalty(x, lam=lam))(w)


# --------------------------------------------------------------------------- masks

_ROUNDING = {"half-even": decimal.ROUND_HALF_EVEN, "floor": decimal.ROUND_FLOOR, "ceil": decimal.ROUND_CEILING}


def _count(amount, n, rounding):
    if rounding not in _ROUNDING:
        raise ValueError(f"unknown rounding {rounding!r}")
    if isinstance(amount, bool) or not isinstance(amount, numbers.Real):
        raise TypeError("amount must be an int or a float")
    if isinstance(amount, numbers.Integral):
        if not 0 <= amount <= n:
            raise ValueError(f"amount must be in [0, {n}]")
        return int(amount)
    if not 0.0 <= float(amount) <= 1.0:
        raise ValueError("amount must be in [0, 1]")
    return int((decimal.Decimal(repr(float(amount))) * n).to_integral_value(rounding=_ROUNDING[rounding]))


def _keep(scores, k):
    """Keep the n - k highest scores; among equal scores the lower index ranks first."""
    n = scores.shape[0]
    order = jnp.argsort(-scores, stable=True)  # descending, ties in index order
    return jnp.zeros(n, dtype=bool).at[order[: n - k]].set(True)


def magnitude_mask(w, *, amount, scores=None, rounding="half-even"):
    _array("w", w)
    s = jnp.abs(w) if scores is None else _array("scores", scores)
    if scores is not None:
        _same_shape(w, scores, ("w", "scores"))
    if not isinstance(s, jax.core.Tracer) and bool(jnp.any(jnp.isnan(s))):
        raise ValueError("NaN scores")
    k = _count(amount, w.size, rounding)
    return _keep(s.reshape(-1), k).reshape(w.shape)


def structured_mask(w, *, amount, axis, ord=2, rounding="half-even"):
    _array("w", w)
    if w.ndim == 0:
        raise ValueError("structured_mask needs at least one axis")
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise TypeError("axis must be an int")
    if not -w.ndim <= axis < w.ndim:
        raise ValueError(f"axis={axis} is out of range")
    axis %= w.ndim
    if isinstance(ord, bool) or not isinstance(ord, numbers.Real):
        raise TypeError("ord must be a real number")
    if not (ord > 0 or ord == -math.inf):
        raise ValueError("ord must be > 0, inf or -inf")
    if bool(jnp.any(jnp.isnan(w))):
        raise ValueError("NaN weights")
    moved = jnp.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
    norms = jnp.linalg.norm(moved, ord=ord, axis=1) if moved.shape[1] else jnp.zeros(w.shape[axis], w.dtype)
    keep = _keep(norms, _count(amount, w.shape[axis], rounding))
    shape = [1] * w.ndim
    shape[axis] = w.shape[axis]
    return jnp.broadcast_to(keep.reshape(shape), w.shape)
