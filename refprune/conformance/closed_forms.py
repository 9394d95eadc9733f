"""Closed forms in float64 NumPy that the tests use to locate kinks and check laws.

These are the equations of the oracle protocol (docs/protocol.md) evaluated directly on
the host, independent of any target: where a function jumps (the clamp of P(z != 0), the clip of a gate), a float32
and a float64 evaluation may legitimately land on different sides, so comparisons
leave those entries out.
"""

from __future__ import annotations

import math

import numpy as np

DEFAULTS = {"beta": 2.0 / 3.0, "gamma": -0.1, "zeta": 1.1, "eps": 1e-6}

#: ``(amount, n)`` where the binary product ``amount * n`` falls on the other side of a
#: half or an integer than the decimal one: ``0.7 * 45 = 31.499999999999996`` (31.5 in
#: decimal), ``0.14 * 75 = 10.500000000000002`` (10.5), ``0.07 * 100 = 7.000000000000001`` (7).
DECIMAL_TRAPS = (
    (0.7, 45), (0.14, 75), (0.35, 90), (0.55, 110), (0.07, 150), (0.82, 75),
    (0.07, 100), (0.28, 25), (0.56, 25), (0.58, 50), (0.14, 50),
)


def log_alpha_edges(beta=2.0 / 3.0, gamma=-0.1, zeta=1.1, eps=1e-6):
    """``log_alpha`` values on the edges: clamps of P(z != 0), clips of the mode, +-50."""
    shift = beta * math.log(-gamma / zeta)
    edges = [0.0, 50.0, -50.0, math.log(1e2), math.log(1e-2)]
    edges += [math.log(-gamma / zeta), math.log((1 - gamma) / (zeta - 1))]  # mode hits 0 / 1
    if eps > 0:
        logit = math.log(eps) - math.log1p(-eps)
        edges += [logit + shift, -logit + shift]  # P(z != 0) hits eps / 1 - eps
    return edges


def sigmoid(t):
    return np.exp(-np.logaddexp(0.0, -np.asarray(t, dtype=np.float64)))


def prob_nonzero_unclamped(log_alpha, constants=None):
    """``sigmoid(log_alpha - beta*log(-gamma/zeta))`` in float64, before the clamp."""
    k = {**DEFAULTS, **(constants or {})}
    return sigmoid(np.asarray(log_alpha, dtype=np.float64) - k["beta"] * math.log(-k["gamma"] / k["zeta"]))


def away_from_clamp(log_alpha, constants=None, rel=1e-9):
    """Entries whose P(z != 0) is not within ``rel`` (relative) of the clamp edges."""
    k = {**DEFAULTS, **(constants or {})}
    p = prob_nonzero_unclamped(log_alpha, constants)
    eps = k["eps"]
    return (np.abs(p - eps) > rel * max(eps, 1e-300)) & (np.abs(p - (1 - eps)) > rel)


def concrete_cdf(x, log_alpha, constants=None):
    """P(s_bar <= x), unclamped, for ``x`` strictly inside (gamma, zeta)."""
    k = {**DEFAULTS, **(constants or {})}
    xn = (np.asarray(x, dtype=np.float64) - k["gamma"]) / (k["zeta"] - k["gamma"])
    return sigmoid(k["beta"] * (np.log(xn) - np.log1p(-xn)) - log_alpha)


def away_from_clip(s_bar, shape, margin):
    """Entries of an array of ``shape`` whose every stretched sample is ``margin`` from 0 and 1."""
    s_bar = np.asarray(s_bar, dtype=np.float64)
    ok = (np.abs(s_bar) > margin) & (np.abs(s_bar - 1) > margin)
    while ok.ndim > len(shape):
        ok = ok.all(axis=0)
    return np.broadcast_to(ok, shape) if ok.shape != tuple(shape) else ok


def prune_count(amount, n, rounding="half-even"):
    """``k`` by the protocol: an int is a count; a float's shortest repr times ``n``, rounded exactly."""
    from fractions import Fraction

    if isinstance(amount, int):
        return amount
    exact = Fraction(repr(float(amount))) * n
    floor = exact.numerator // exact.denominator
    if rounding == "floor" or exact == floor:
        return floor
    if rounding == "ceil":
        return floor + 1
    rest = exact - floor
    if rest != Fraction(1, 2):
        return floor + (rest > Fraction(1, 2))
    return floor + (floor % 2)


def keep_mask(scores, k):
    """The tie rule: rank by score descending, lower flat index first; keep the first n-k."""
    flat = np.asarray(scores, dtype=np.float64).reshape(-1)
    n = flat.size
    order = np.lexsort((np.arange(n), -flat))
    keep = np.zeros(n, dtype=bool)
    keep[order[: n - k]] = True
    return keep.reshape(np.shape(scores))


def slice_norms(w, axis, ord):
    """The ``ord``-norm of each slice of ``w`` at index ``i`` along ``axis``, in float64."""
    a = np.abs(np.moveaxis(np.asarray(w, dtype=np.float64), axis, 0))
    a = a.reshape(a.shape[0], math.prod(a.shape[1:]))
    if a.shape[1] == 0:
        return np.zeros(a.shape[0])
    if ord == math.inf:
        return a.max(axis=1)
    if ord == -math.inf:
        return a.min(axis=1)
    big = a.max(axis=1, keepdims=True)
    big = np.where(big > 0, big, 1.0)
    return big[:, 0] * np.sum((a / big) ** ord, axis=1) ** (1.0 / ord)
