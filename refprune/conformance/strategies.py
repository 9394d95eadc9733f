"""Every hypothesis strategy of the conformance suite (and only here).

Inputs are drawn as host NumPy arrays in the dtype under test, so float32 draws are
exactly representable and the float64 reference sees the very same numbers. The
strategies lean on the places where implementations go wrong: empty and one-element
shapes, ``log_alpha`` at the clamp and clip edges and at +-50, noise ``u`` of exactly
0 and 1, weights with ties (equal magnitudes, ``w`` and ``-w``, all equal, all zero),
amounts of 0 and 1 and on the half-way rounding case, and schedule steps on the
begin/end/frequency boundaries. Tests draw with labels (``data.draw(s, label=...)``)
so that a failure prints what each drawn value was.
"""

from __future__ import annotations

import functools
import math
from decimal import Decimal

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

# fixed values shared with edges.py and vectors.py, which must not need hypothesis
from refprune.conformance.closed_forms import DECIMAL_TRAPS, DEFAULTS, log_alpha_edges  # noqa: F401

FLOAT_DTYPES = ("float32", "float64")
ROUNDINGS = ("half-even", "floor", "ceil")

#: Hard-concrete defaults (docs/protocol.md): beta, gamma, zeta, eps.
GATE_DEFAULTS = DEFAULTS

#: Python floats that are exactly representable in float32 (thresholds, bounds).
EXACT_SMALL = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 0.125)


def dtypes():
    """``'float32'`` or ``'float64'``."""
    return st.sampled_from(FLOAT_DTYPES)


def shapes(*, min_dims=0, max_dims=3, max_side=5, max_size=40):
    """Array shapes, size 0 and size 1 first (they are where code breaks)."""
    special = [s for s in [(), (0,), (1,), (1, 1), (3,), (2, 0), (4, 1)] if min_dims <= len(s) <= max_dims]
    general = hnp.array_shapes(min_dims=max(min_dims, 1), max_dims=max_dims, min_side=0, max_side=max_side)
    return st.one_of(st.sampled_from(special), general.filter(lambda s: math.prod(s) <= max_size))


def nonempty_shapes(*, min_dims=1, max_dims=3, max_side=5, max_size=40):
    return shapes(min_dims=min_dims, max_dims=max_dims, max_side=max_side, max_size=max_size).filter(
        lambda s: math.prod(s) > 0
    )


def _floats(dtype, lo, hi, **kw):
    """Floats in ``[lo, hi]`` exactly representable in ``dtype``, never subnormal.

    Subnormal numbers are left out of every random draw (the protocol's subnormal rule:
    a flush-to-zero device may treat them as 0); they are checked in one edge class,
    ``subnormal``, only where the device keeps them (``edges.py``).
    """
    return st.floats(lo, hi, width=32 if dtype == "float32" else 64, allow_nan=False, allow_subnormal=False, **kw)


def _array(draw, dtype, shape, elements):
    return draw(hnp.arrays(np.dtype(dtype), shape, elements=elements))


# --------------------------------------------------------------------------- gates


def gate_constants(names=("beta", "gamma", "zeta", "eps")):
    """Keyword arguments for the hard-concrete constants a function takes.

    Half the draws pass nothing (the defaults must be right), the rest pass some or
    all constants with values away from the defaults (each must be used).
    """
    values = {
        "beta": st.one_of(st.sampled_from([2.0 / 3.0, 0.5, 1.0, 0.1]), st.floats(0.05, 3.0)),
        "gamma": st.one_of(st.sampled_from([-0.1, -0.5]), st.floats(-0.8, -0.01)),
        "zeta": st.one_of(st.sampled_from([1.1, 1.5]), st.floats(1.01, 1.8)),
        "eps": st.sampled_from([1e-6, 1e-3, 0.0, 1e-9]),
    }
    each = st.fixed_dictionaries({}, optional={n: values[n] for n in names})
    return st.one_of(st.just({}), each)


def log_alphas(dtype, shape, constants=None):
    """``log_alpha`` over a wide range, with the edges for ``constants`` mixed in."""
    edges = log_alpha_edges(**{**GATE_DEFAULTS, **(constants or {})})
    near = [np.nextafter(e, s) for e in edges for s in (-np.inf, np.inf)]
    elements = st.one_of(
        _floats(dtype, -8.0, 8.0),
        st.sampled_from(edges + near).map(lambda v: float(np.dtype(dtype).type(v))),
        _floats(dtype, -60.0, 60.0),
    )
    return hnp.arrays(np.dtype(dtype), shape, elements=elements)


def noise(dtype, shape):
    """Uniform noise ``u`` in [0, 1], with exactly 0, exactly 1 and their neighbours."""
    one_minus = float(np.nextafter(np.dtype(dtype).type(1), np.dtype(dtype).type(0)))
    elements = st.one_of(
        _floats(dtype, 0.0, 1.0),
        st.sampled_from([0.0, 1.0, 0.5, one_minus, 1e-30, 1e-7]).map(
            lambda v: float(np.dtype(dtype).type(v))
        ),
    )
    return hnp.arrays(np.dtype(dtype), shape, elements=elements)


def cdf_points(dtype, constants=None):
    """Points ``x`` for the CDF: inside (gamma, zeta), at 0 and 1, at and beyond the ends."""
    c = {**GATE_DEFAULTS, **(constants or {})}
    g, z = c["gamma"], c["zeta"]
    return st.one_of(
        st.sampled_from([0.0, 0.5, 1.0, g, z, g - 1.0, z + 1.0]),
        st.floats(g, z).filter(lambda x: g < x < z),
    )


# --------------------------------------------------------------------------- weights

WEIGHT_KINDS = ("distinct", "ties", "constant", "zeros")
_TIE_POOL = (0.0, -0.0, 0.5, -0.5, 1.0, -1.0, 2.0, -2.0, 3.0)


@st.composite
def weights(draw, dtype, shape, *, kinds=WEIGHT_KINDS, bound=10.0, allow_inf=False):
    """Weights: distinct values, a small pool (many ties, ``w`` and ``-w``), all equal, all zero."""
    kind = draw(st.sampled_from(kinds), label="weights kind")
    if kind == "distinct":
        return _array(draw, dtype, shape, _floats(dtype, -bound, bound))
    if kind == "ties":
        pool = list(_TIE_POOL) + ([np.inf, -np.inf] if allow_inf else [])
        return _array(draw, dtype, shape, st.sampled_from(pool))
    if kind == "constant":
        c = draw(st.sampled_from([1.0, -2.5, 0.5]) | _floats(dtype, -bound, bound), label="constant")
        return np.full(shape, c, dtype=dtype)
    return np.zeros(shape, dtype=dtype)


@st.composite
def slice_weights(draw, dtype, shape, axis):
    """Weights whose slices along ``axis`` tie only exactly: copies with per-entry sign flips.

    A few distinct base slices are drawn and each index along ``axis`` takes one of
    them, so equal norms are bit-for-bit equal in any summation order; or slices whose
    ranking differs between norm orders (``rankings``); or the whole array is zero or
    constant (every slice tied).
    """
    kind = draw(st.sampled_from(["copies", "rankings", "zeros", "constant"]), label="slices kind")
    if kind == "zeros":
        return np.zeros(shape, dtype=dtype)
    if kind == "constant":
        return np.full(shape, draw(st.sampled_from([1.0, -0.5, 3.0]), label="constant"), dtype=dtype)
    m = shape[axis]
    rest = tuple(d for i, d in enumerate(shape) if i != axis)
    if kind == "rankings" and math.prod(rest) >= 2:
        # slices c*e_0 and (1, 1, 0, ...): the norm of the second is 2**(1/p), so which of them
        # ranks higher depends on the order p (1.1, 1.3, 1.8, 3 lie between the orders' values)
        r = math.prod(rest)
        pool = [np.eye(1, r, 0)[0] * c for c in (1.1, 1.3, 1.5, 1.8, 3.0)] + [np.eye(1, r, 0)[0] + np.eye(1, r, 1)[0]]
        picks = draw(st.lists(st.integers(0, len(pool) - 1), min_size=m, max_size=m), label="ranking slices")
        signs = _array(draw, "float64", (m, r), st.sampled_from([1.0, -1.0]))
        stacked = (np.stack([pool[p] for p in picks]) * signs).reshape((m, *rest)) if m else np.zeros((0, *rest))
        return np.moveaxis(stacked.astype(dtype), 0, axis)
    n_bases = draw(st.integers(1, max(1, m)), label="distinct slices")
    bases = [_array(draw, dtype, rest, _floats(dtype, -5.0, 5.0)) for _ in range(n_bases)]
    picks = draw(st.lists(st.integers(0, n_bases - 1), min_size=m, max_size=m), label="slice picks")
    signs = _array(draw, dtype, (m, *rest), st.sampled_from([1.0, -1.0]))
    stacked = np.stack([bases[p] for p in picks]) * signs if m else np.zeros((0, *rest), dtype=dtype)
    return np.moveaxis(stacked.astype(dtype), 0, axis)


def scores(dtype, shape):
    """Importance scores (any sign, ties, infinities)."""
    return hnp.arrays(
        np.dtype(dtype), shape, elements=st.one_of(st.sampled_from([0.0, 1.0, -1.0, np.inf, -np.inf]), _floats(dtype, -5, 5))
    )


def masks(shape):
    return hnp.arrays(np.bool_, shape)


# --------------------------------------------------------------------------- amounts


@functools.lru_cache(maxsize=None)
def _halfway(n):
    found = []
    for m in range(1, 2 * n, 2):
        a = m / (2 * n)
        if Decimal(repr(a)) * n == Decimal(m) / 2:
            found.append(a)
    return tuple(found)


def halfway_amounts(n):
    """Float amounts whose exact decimal product with ``n`` ends in .5 (the half-way case)."""
    found = _halfway(n) if n <= 2000 else ()
    return st.sampled_from(found) if found else st.nothing()


def amounts(n):
    """Amounts for ``n`` candidates: int counts, fractions, 0 and 1, half-way and decimal cases."""
    return st.one_of(
        st.sampled_from([0, 0.0, 1.0, n]),
        st.integers(0, n),
        halfway_amounts(n),
        st.integers(0, 20).map(lambda i: i / 20),
        st.integers(0, 100).map(lambda i: i / 100),
        st.floats(0.0, 1.0),
    )


def roundings():
    return st.sampled_from(ROUNDINGS)


def counts():
    """``n`` for :func:`prune_count`: small, on powers of two and ten, and large."""
    return st.one_of(st.sampled_from([0, 1, 2, 4, 10, 20, 100, 1000]), st.integers(0, 64), st.integers(0, 10**12))


def count_cases():
    """``(amount, n)`` for :func:`prune_count`: the decimal traps, then any amount for any ``n``."""
    return st.one_of(st.sampled_from(DECIMAL_TRAPS), counts().flatmap(lambda n: st.tuples(amounts(n), st.just(n))))


def axes(ndim):
    return st.integers(-ndim, ndim - 1)


def norm_orders():
    """Norm orders of :func:`structured_mask`: 2 (default), 1, inf, -inf, other p > 0."""
    return st.sampled_from([2, 1, math.inf, 3, 0.5, -math.inf, 1.5])


def lams():
    return st.one_of(st.sampled_from([0.0, 1.0, 0.5]), st.floats(0.0, 10.0))


def thresholds(dtype):
    """Thresholds exactly representable in ``dtype`` (so float32 compares as float64 does)."""
    return st.one_of(st.sampled_from(EXACT_SMALL), _floats("float32", 0.0, 5.0)).map(float)


# --------------------------------------------------------------------------- schedules


@st.composite
def schedule_spans(draw, *, allow_no_end=False):
    """``(begin, end, frequency)`` with ``end > begin`` (or ``end == -1`` when allowed)."""
    begin = draw(st.one_of(st.sampled_from([0, 1, 100]), st.integers(0, 5000)), label="begin")
    if allow_no_end and draw(st.booleans(), label="no end"):
        end = -1
    else:
        end = begin + draw(st.one_of(st.sampled_from([1, 100, 1000]), st.integers(1, 5000)), label="end - begin")
    frequency = draw(st.one_of(st.sampled_from([1, 100, 7]), st.integers(1, 400)), label="frequency")
    return begin, end, frequency


def steps(begin, end, frequency):
    """Steps around ``begin``, ``end`` and the frequency boundaries, and anywhere."""
    last = end if end != -1 else begin + 10 * frequency
    special = [0, begin - 1, begin, begin + 1, end - 1, end, end + 1, (begin + end) // 2]
    special += [begin + frequency - 1, begin + frequency, begin + frequency + 1]
    multiples = st.integers(0, max(0, (last - begin) // frequency + 1)).map(lambda j: begin + j * frequency)
    off_by_one = st.tuples(multiples, st.sampled_from([-1, 1])).map(sum)
    anywhere = st.integers(0, last + 2 * frequency)
    return st.one_of(st.sampled_from([s for s in special if s >= 0]), multiples, off_by_one, anywhere)


def sparsities():
    return st.one_of(st.sampled_from([0.0, 1.0, 0.5, 0.9]), st.floats(0.0, 1.0))


def powers():
    return st.one_of(st.sampled_from([3, 1, 2]), st.floats(0.1, 6.0))


# --------------------------------------------------------------------------- v1: patterns, budgets, scores, DST

#: Dyadic values: exact in float32, and their sums are exact in float64 in any order, so
#: tile scores either tie exactly or differ clearly (float32 and float64 rank tiles alike).
DYADIC_POOL = (0.0, -0.0, 0.125, -0.125, 0.5, -0.5, 1.0, -1.0, 1.5, -2.0, 2.0, 3.0, -4.0, 8.0)


def nm_params():
    """``(n, m)``: 2:4 and its neighbours first, then any ``0 <= n <= m <= 16``."""
    common = [(2, 4), (1, 4), (3, 4), (1, 2), (4, 8), (2, 8), (1, 1), (0, 4), (4, 4)]
    return st.one_of(st.sampled_from(common), st.integers(1, 16).flatmap(lambda m: st.tuples(st.integers(0, m), st.just(m))))


@st.composite
def nm_shapes(draw, m, *, max_dims=3):
    """``(shape, axis)`` with ``shape[axis]`` a multiple of ``m`` (no group, one, several)."""
    ndim = draw(st.integers(1, max_dims), label="ndim")
    axis = draw(axes(ndim), label="axis")
    shape = [draw(st.integers(0, 3), label=f"dim {i}") for i in range(ndim)]
    shape[axis % ndim] = m * draw(st.sampled_from([1, 2, 0, 3]), label="groups along the axis")
    return tuple(shape), axis


@st.composite
def block_shapes(draw, *, max_dims=3, max_size=60):
    """``(shape, block)``: whole tiles, partial edge tiles, blocks larger than the axis, 1x1."""
    shape = draw(shapes(min_dims=1, max_dims=max_dims, max_side=7, max_size=max_size), label="shape")
    block = tuple(draw(st.one_of(st.sampled_from([1, 2, max(1, d)]), st.integers(1, d + 2)), label=f"block[{i}]")
                  for i, d in enumerate(shape))
    return shape, block


def pools():
    return st.sampled_from(("l1", "l2", "max", "mean"))


@st.composite
def dyadic_weights(draw, dtype, shape):
    """Weights from :data:`DYADIC_POOL` (many ties), all equal, or all zero."""
    kind = draw(st.sampled_from(["pool", "constant", "zeros"]), label="dyadic kind")
    if kind == "zeros":
        return np.zeros(shape, dtype=dtype)
    if kind == "constant":
        return np.full(shape, draw(st.sampled_from(DYADIC_POOL[2:]), label="constant"), dtype=dtype)
    return _array(draw, dtype, shape, st.sampled_from(DYADIC_POOL))


@st.composite
def layer_shapes(draw, *, min_dims=1, max_layers=6):
    """Lists of layer shapes: conv ``(out, in, kh, kw)``, dense, vectors; small and lopsided ones."""
    one = st.one_of(
        st.sampled_from([(4, 4), (784, 300), (300, 100), (100, 10), (64, 3, 3, 3), (128, 64, 3, 3), (10,), (3, 1)]),
        st.lists(st.integers(1, 40), min_size=max(1, min_dims), max_size=4).map(tuple),
    )
    return draw(st.lists(one.filter(lambda s: len(s) >= min_dims), min_size=1, max_size=max_layers), label="shapes")


def densities():
    """Densities in [0, 1], never subnormal: at ``5e-324`` the per-layer densities are subnormal too and
    lose the digits that the shared-epsilon check compares (issue 20: it failed refprune itself)."""
    return st.one_of(st.sampled_from([0.0, 1.0, 0.5, 0.1, 0.01, 0.9, 0.99, 0.05]),
                     st.floats(0.0, 1.0, allow_subnormal=False))


def power_scales():
    return st.one_of(st.sampled_from([1.0, 0.5, 0.0, 2.0]), st.floats(0.0, 3.0))


@st.composite
def dst_cases(draw, dtype):
    """``(w, mask, grow_scores)``: ties in weights and scores, any density, infinities."""
    shape = draw(shapes(max_size=40), label="shape")
    w = draw(weights(dtype, shape, allow_inf=True), label="w")
    mask = draw(st.one_of(masks(shape), st.just(np.ones(shape, dtype=bool)), st.just(np.zeros(shape, dtype=bool))), label="mask")
    grow = draw(st.one_of(scores(dtype, shape), weights(dtype, shape, kinds=("ties", "constant", "zeros"))), label="grow_scores")
    return w, mask, grow


# --------------------------------------------------------------------------- v2: one-shot, layer-wise pruning
# ``w`` is (out, in) like a torch Linear, ``x`` (tokens, in). Layers are small (a SparseGPT or
# OBC reference call is a few milliseconds) and drawn so that float32 and float64 rank alike:
# weights and norms from small dyadic pools (their products are exact in float32) or distinct.

#: Activation norms: exact in float32, products with DYADIC_POOL weights exact too.
NORM_POOL = (0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 0.25)

LAYER_KINDS = ("distinct", "ties", "zeros", "dead", "equal-norms")


def layer_sides(*, max_out=5, max_in=9):
    """``(out, in)``: one row, one column, 8 inputs (2:4 and 4:8 fit), empty, and any."""
    out = st.one_of(st.sampled_from([1, 2, 4]), st.integers(0, max_out))
    return st.tuples(out, st.one_of(st.sampled_from([1, 2, 8]), st.integers(0, max_in)))


def wanda_norms(dtype, cols, *, equal=False):
    """Activation norms ``(in,)``: from :data:`NORM_POOL` (ties, zeros: dead inputs), or all equal."""
    if equal:
        return st.sampled_from(NORM_POOL[1:]).map(lambda c: np.full(cols, c, dtype=dtype))
    return hnp.arrays(np.dtype(dtype), (cols,), elements=st.sampled_from(NORM_POOL))


@st.composite
def oneshot_weights(draw, dtype, shape):
    """``w`` (out, in): distinct values, the dyadic pool (ties, zeros, ``w`` and ``-w``), or all zero."""
    kind = draw(st.sampled_from(["distinct", "dyadic", "zeros"]), label="w kind")
    if kind == "distinct":
        return _array(draw, dtype, shape, _floats(dtype, -4.0, 4.0).filter(lambda v: v == 0 or abs(v) > 1e-3))
    if kind == "zeros":
        return np.zeros(shape, dtype=dtype)
    return _array(draw, dtype, shape, st.sampled_from(DYADIC_POOL))


@st.composite
def calibration(draw, dtype, cols, *, full_rank=True):
    """Calibration inputs ``x`` (tokens, in): random rows, then (``full_rank``) a diagonal block
    with nonzero entries so that ``X^T X`` is positive definite; kinds ``dead`` (some input
    features always 0: positive definite once the dead ones are set aside) and ``equal-norms``
    (every column a signed copy of one, plus ``c I``)."""
    kind = draw(st.sampled_from(["random", "dead", "equal-norms", "dyadic"]), label="x kind")
    tokens = draw(st.integers(0, 6), label="random tokens")
    if kind == "equal-norms":
        base = _array(draw, "float64", (tokens + 2,), st.sampled_from([1.0, -1.0, 2.0, 0.5, -0.5]))
        signs = _array(draw, "float64", (tokens + 2, cols), st.sampled_from([1.0, -1.0]))
        x = base[:, None] * signs
        if full_rank and cols:  # c^2 more in every squared norm: still equal, and X^T X positive definite
            x = np.concatenate([x, np.eye(cols) * draw(st.sampled_from([0.5, 1.0, 2.0]), label="diagonal")])
        return x.astype(dtype)
    elements = _floats(dtype, -2.0, 2.0) if kind != "dyadic" else st.sampled_from(DYADIC_POOL[:10])
    x = _array(draw, dtype, (tokens, cols), elements)
    if full_rank:
        diag = _array(draw, dtype, (cols,), st.sampled_from([0.5, 1.0, 2.0, -1.0, 1.5]))
        x = np.concatenate([x, np.diag(diag).astype(dtype)]) if cols else x
    if kind == "dead" and cols:
        dead = _array(draw, "bool", (cols,), st.booleans())
        x = np.where(dead[None, :], np.zeros_like(x), x)
    return x


def nm_pairs():
    """``(n, m)`` with ``n`` kept of every ``m``: 2:4 first, then 1:4, 3:4, 1:2, 4:8, 0 and m kept."""
    return st.sampled_from([(2, 4), (1, 4), (3, 4), (1, 2), (4, 8), (2, 8), (0, 2), (2, 2), (1, 3), (1, 1)])


def sparsegpt_blocks():
    """Block sizes: 1, 2, 3 (not a multiple of 2 or 4), 128 (the default: one block), and any."""
    return st.one_of(st.sampled_from([1, 2, 3, 5, 128]), st.integers(1, 12))


def damps():
    return st.sampled_from([0.01, 0.0, 0.1, 1.0, 1e-3])


def outlier_scores(dtype):
    """Scores of one layer: dyadic (exact sums, so ``s > m * mean`` is decided alike in both dtypes), a
    few large outliers among many small ones, or all equal."""
    small = st.sampled_from([0.0, 0.125, 0.25, 0.5, 1.0, 1.5, 2.0])
    big = st.sampled_from([16.0, 32.0, 64.0, 24.0])
    shape = st.one_of(st.sampled_from([(1,), (4,), (2, 3)]), hnp.array_shapes(min_dims=1, max_dims=2, max_side=6))
    return st.one_of(
        shape.flatmap(lambda s: hnp.arrays(np.dtype(dtype), s, elements=st.one_of(small, small, small, big))),
        shape.map(lambda s: np.full(s, 0.5, dtype=dtype)),
    )


def outlier_multiples():
    """``m`` of OWL's outlier ratio: 5 (its scripts), and others."""
    return st.sampled_from([5.0, 1.0, 2.0, 3.0, 0.0, 7.0, 0.5])


def owl_ratios():
    return st.one_of(st.sampled_from([0.0, 0.01, 0.05, 0.1]), st.floats(0.0, 0.2))


def owl_lams():
    return st.one_of(st.sampled_from([0.08, 0.0, 0.02, 0.1, 0.2]), st.floats(0.0, 0.25))
