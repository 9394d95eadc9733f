"""Per-layer budgets: how a global density is spread over layers (plain Python floats).

:func:`layer_densities` returns one density (the kept fraction) per layer such that
the layers together keep exactly ``density * total`` parameters. Each layer is then
pruned on its own, e.g. ``magnitude_mask(w, amount=1 - d)`` (whose count is rounded
per layer, so the kept total can differ from ``density * total`` by up to half a
weight per layer under ``"half-even"``).

>>> from refprune import layer_densities
>>> layer_densities([(4, 4), (8, 8), (16, 16)], density=0.25, distribution="erk")
[0.75, 0.375, 0.1875]
"""

from __future__ import annotations

import decimal
import fractions
import math
from collections.abc import Mapping

from ._array import check_finite_scalar, is_int

__all__ = ["layer_densities", "owl_densities"]

DISTRIBUTIONS = ("uniform", "erk", "er")


def _shape(name, shape):
    if isinstance(shape, (str, bytes)) or not hasattr(shape, "__iter__"):
        msg = f"{name} must be a shape (a tuple of ints), got {type(shape).__name__} {shape!r}"
        raise TypeError(msg)
    dims = tuple(shape)
    for d in dims:
        if not is_int(d):
            msg = f"{name} must be a shape (a tuple of ints), got {dims!r}"
            raise TypeError(msg)
        if d < 0:
            msg = f"{name} has a negative size: {dims!r}"
            raise ValueError(msg)
    return tuple(int(d) for d in dims)


def _check_dims(name, shape, distribution):
    if distribution == "er" and len(shape) < 2:
        msg = f"distribution='er' uses the first two dims of each shape, but {name}={shape!r} has {len(shape)}"
        raise ValueError(msg)
    if distribution == "erk" and len(shape) == 0:
        msg = f"distribution='erk' needs shapes with at least one dim, got {name}=(); leave scalars out"
        raise ValueError(msg)


def _raw_probability(shape, distribution, power_scale):
    """ERK: ``(sum(shape) / prod(shape)) ** power_scale``; ER: the same on the first two dims."""
    dims = shape[:2] if distribution == "er" else shape
    return (sum(dims) / math.prod(dims)) ** power_scale


def layer_densities(shapes, /, *, density, distribution="uniform", power_scale=1.0, dense=()):
    r"""Density (kept fraction) of each layer so that the layers together keep ``density`` of all parameters.

    With :math:`N_l` the parameter count of layer :math:`l` and the budget
    :math:`B = \text{density} \cdot \sum_l N_l` (computed exactly in decimal on the
    density as written, as :func:`refprune.prune_count` does):

    * ``"uniform"``: every layer gets ``density``; with ``dense`` layers, the others
      share the rest, :math:`d = (B - \sum_{l \in D} N_l) / \sum_{l \notin D} N_l`.
    * ``"erk"`` (Erdős–Rényi–Kernel, Evci et al. 2020, RigL): layer :math:`l` keeps
      :math:`d_l = \epsilon\, r_l` with :math:`r_l = (\sum_a n^{(l)}_a / \prod_a n^{(l)}_a)^{p}`
      over all dims of its shape (``p = power_scale``; 1 in RigL; smaller is closer
      to uniform, 0 is uniform).
    * ``"er"`` (Erdős–Rényi, Mocanu et al. 2018): the same with only the first two
      dims, :math:`r_l = ((n_0 + n_1) / (n_0 n_1))^p`. In refprune's layouts those
      are the two channel dims (torch conv ``(out, in, kh, kw)``, dense ``(in, out)``);
      RigL's TensorFlow code takes the *last* two, its kernels being ``(kh, kw, in, out)``.

    :math:`\epsilon` solves :math:`\sum_{l \notin D} \epsilon\, r_l N_l = B - \sum_{l \in D} N_l`
    over the layers not in the dense set :math:`D` (in exact rational arithmetic on the
    float :math:`r_l`; each density is then the correctly rounded :math:`\epsilon r_l`). Every layer whose :math:`\epsilon r_l`
    would exceed 1 is made dense (density 1, added to :math:`D`) and
    :math:`\epsilon` is solved again, until none exceeds 1; since each re-solve only
    raises :math:`\epsilon`, this ends with the same dense set as RigL's one layer at a
    time. :math:`D` starts as ``dense``: layers forced dense **count in the budget**
    (their parameters are part of :math:`B`, as RigL counts the layers it densifies;
    RigL's ``custom_sparsity_map`` instead leaves its layers out of the budget: for
    that, call this on the other layers and set those to 1.0 yourself).
    So :math:`\sum_l d_l N_l = B` up to float rounding, and :math:`0 \le d_l \le 1`.
    A layer without parameters (a 0 in its shape) gets ``density`` under
    ``"uniform"`` and 1.0 under ``"erk"``/``"er"``.

    Parameters
    ----------
    shapes : sequence of shapes, or mapping name -> shape
        One shape (tuple of ints) per layer.
    density : float
        Kept fraction of all parameters, in [0, 1].
    distribution : {"uniform", "erk", "er"}
    power_scale : float
        Exponent ``p >= 0`` of the raw ERK/ER probabilities (RigL's ``erk_power_scale``).
    dense : iterable
        Layers forced dense: indices into ``shapes`` (a sequence) or its keys (a mapping).

    Returns
    -------
    list of float, or dict
        One density per layer, in the order (or with the keys) of ``shapes``.

    Raises
    ------
    TypeError
        ``shapes`` is not a sequence or mapping of shapes; a non-number ``density`` or ``power_scale``.
    ValueError
        ``density`` outside [0, 1], an unknown ``distribution``, ``power_scale < 0``,
        an unknown layer in ``dense``, forced-dense layers holding more parameters than
        the budget, a 0-d shape under ``"erk"`` or a shape with fewer than two dims
        under ``"er"``.

    Examples
    --------
    >>> from refprune import layer_densities
    >>> shapes = [(4, 4), (8, 8), (16, 16)]  # r = 8/16, 16/64, 32/256; sum r N = 56
    >>> layer_densities(shapes, density=0.25, distribution="erk")  # eps = 84 / 56
    [0.75, 0.375, 0.1875]
    >>> d = layer_densities(shapes, density=0.5, distribution="erk")  # eps*r_0 = 1.5 > 1: layer 0 dense
    >>> d[0], round(d[1] * 64 + d[2] * 256, 9)  # the other two keep 168 - 16
    (1.0, 152.0)
    >>> layer_densities({"fc1": (784, 300), "fc2": (300, 10)}, density=0.1, dense=["fc2"])  # (23820 - 3000) / 235200
    {'fc1': 0.08852040816326531, 'fc2': 1.0}
    """
    if isinstance(shapes, Mapping):
        keys = list(shapes)
        values = [shapes[k] for k in keys]
        names = [f"shapes[{k!r}]" for k in keys]
    elif isinstance(shapes, (list, tuple)):
        keys = None
        values = list(shapes)
        names = [f"shapes[{i}]" for i in range(len(values))]
    else:
        msg = f"shapes must be a list of shapes or a mapping name -> shape, got {type(shapes).__name__}"
        raise TypeError(msg)
    dims = [_shape(name, s) for name, s in zip(names, values)]
    density = check_finite_scalar("density", density)
    if not 0.0 <= density <= 1.0:
        msg = f"density must be a kept fraction in [0, 1], got density={density!r}"
        raise ValueError(msg)
    if not isinstance(distribution, str) or distribution not in DISTRIBUTIONS:
        msg = f"distribution must be one of {', '.join(map(repr, DISTRIBUTIONS))}, got distribution={distribution!r}"
        raise ValueError(msg)
    power_scale = check_finite_scalar("power_scale", power_scale, nonnegative=True)
    forced = _dense_indices(dense, keys, len(dims))
    counts = [math.prod(s) for s in dims]
    total = sum(counts)
    with decimal.localcontext() as ctx:
        ctx.prec = 80
        budget = fractions.Fraction(decimal.Decimal(repr(density)) * total)
    forced_count = sum(counts[i] for i in forced)
    if budget < forced_count:
        msg = (
            f"the layers forced dense hold {forced_count} parameters, more than the budget "
            f"density * total = {density} * {total} = {float(budget)}; raise density or force fewer layers dense"
        )
        raise ValueError(msg)
    if distribution == "uniform":
        out = _uniform(counts, forced, density, budget - forced_count)
    else:
        for name, s in zip(names, dims):
            _check_dims(name, s, distribution)
        raw = [_raw_probability(s, distribution, power_scale) if c else None for s, c in zip(dims, counts)]
        out = _erk(counts, raw, forced, budget)
    return out if keys is None else dict(zip(keys, out))


def _dense_indices(dense, keys, count):
    if isinstance(dense, (str, bytes)) or not hasattr(dense, "__iter__"):
        msg = f"dense must be a list of layer {'names' if keys is not None else 'indices'}, got {dense!r}"
        raise TypeError(msg)
    out = set()
    for d in dense:
        if keys is not None:
            if d not in keys:
                msg = f"dense names an unknown layer {d!r}; the layers are {keys!r}"
                raise ValueError(msg)
            out.add(keys.index(d))
        else:
            if not is_int(d):
                msg = f"dense must hold layer indices (ints) for a list of shapes, got {d!r}"
                raise TypeError(msg)
            if not -count <= d < count:
                msg = f"dense holds the index {d}, out of range for {count} layers"
                raise ValueError(msg)
            out.add(int(d) % count)
    return out


def _uniform(counts, forced, density, rest):
    if not forced:
        return [density] * len(counts)
    others = sum(c for i, c in enumerate(counts) if i not in forced)
    return [1.0 if i in forced else (min(1.0, float(rest / others)) if others else 1.0) for i in range(len(counts))]


def _erk(counts, raw, forced, budget):
    """Solve ``eps`` over the non-dense layers; make dense every layer above 1; repeat.

    In exact rational arithmetic on the (float) raw probabilities, so each density is the
    correctly rounded ``eps * r`` and equal raw probabilities give equal, exact densities.
    """
    dense = set(forced) | {i for i, c in enumerate(counts) if c == 0}
    raw = [None if r is None else fractions.Fraction(r) for r in raw]
    eps = fractions.Fraction(0)
    while True:
        live = [i for i in range(len(counts)) if i not in dense]
        if not live:
            break
        rest = max(fractions.Fraction(0), budget - sum(counts[i] for i in dense))
        divisor = sum(raw[i] * counts[i] for i in live)
        eps = rest / divisor if divisor else fractions.Fraction(0)
        over = {i for i in live if eps * raw[i] > 1}
        if not over:
            break
        dense |= over
    return [1.0 if i in dense else float(eps * raw[i]) for i in range(len(counts))]


def owl_densities(shapes, outlier_ratios, /, *, density, lam=0.08):
    r"""OWL's per-layer densities (Yin et al., ICML 2024): more weights kept where more outliers are.

    With :math:`D_l` the outlier ratio of layer :math:`l` (:func:`refprune.outlier_ratio`),
    :math:`N_l` its parameter count and :math:`B = \text{density}\cdot\sum_l N_l`:

    .. math:: d_l = c + 2\lambda\,\frac{D_l - \min D}{\max D - \min D}, \qquad
              \sum_l d_l N_l = B

    so the densities span ``2 * lam`` (OWL's range :math:`[S-\lambda, S+\lambda]` around
    the target sparsity :math:`S`), and :math:`c` is solved so that the layers together
    keep exactly the budget (in exact rational arithmetic, as
    :func:`layer_densities`). OWL's code instead centres the **unweighted** mean,
    :math:`c = \text{density} - \operatorname{mean}_l 2\lambda (D_l-\min D)/(\max D-\min D)`:
    the same when every layer has the same size (OWL's unit is a decoder block, all
    alike), a different total otherwise. Equal ratios give ``density`` everywhere
    (OWL's code divides by zero).

    Parameters
    ----------
    shapes : sequence of shapes, or mapping name -> shape
        One shape per layer (or block: then its total parameter count as a 1-tuple).
    outlier_ratios : sequence of float, or mapping name -> float
        One ratio per layer, in the order (or with the keys) of ``shapes``.
    density : float
        Kept fraction of all parameters, in [0, 1].
    lam : float
        Half the spread of the densities, ``>= 0`` (OWL's ``Lamda``; 0.08 in its scripts).

    Returns
    -------
    list of float, or dict

    Raises
    ------
    ValueError
        A density outside [0, 1] (lower ``lam``), mismatched lengths or keys, NaN ratios.

    Examples
    --------
    >>> from refprune import owl_densities
    >>> owl_densities([(10,), (10,), (20,)], [1.0, 3.0, 2.0], density=0.5, lam=0.1)  # c + 0, 0.2, 0.1
    [0.4, 0.6, 0.5]
    """
    if isinstance(shapes, Mapping):
        keys = list(shapes)
        if not isinstance(outlier_ratios, Mapping) or set(outlier_ratios) != set(keys):
            msg = "outlier_ratios must be a mapping with the keys of shapes when shapes is a mapping"
            raise ValueError(msg)
        ratios = [outlier_ratios[k] for k in keys]
        values = [shapes[k] for k in keys]
    elif isinstance(shapes, (list, tuple)):
        keys, values = None, list(shapes)
        if isinstance(outlier_ratios, (str, bytes, Mapping)) or not hasattr(outlier_ratios, "__len__"):
            msg = f"outlier_ratios must be a list of floats, one per shape, got {type(outlier_ratios).__name__}"
            raise TypeError(msg)
        ratios = list(outlier_ratios)
        if len(ratios) != len(values):
            msg = f"outlier_ratios must hold one ratio per shape, got {len(ratios)} for {len(values)}"
            raise ValueError(msg)
    else:
        msg = f"shapes must be a list of shapes or a mapping name -> shape, got {type(shapes).__name__}"
        raise TypeError(msg)
    counts = [math.prod(_shape(f"shapes[{i}]", s)) for i, s in enumerate(values)]
    ratios = [check_finite_scalar(f"outlier_ratios[{i}]", r) for i, r in enumerate(ratios)]
    density = check_finite_scalar("density", density)
    if not 0.0 <= density <= 1.0:
        msg = f"density must be a kept fraction in [0, 1], got density={density!r}"
        raise ValueError(msg)
    lam = check_finite_scalar("lam", lam, nonnegative=True)
    out = _owl(counts, ratios, density, lam)
    return out if keys is None else dict(zip(keys, out))


def _owl(counts, ratios, density, lam):
    """Solve ``c`` exactly (rationals on the float inputs); check every density lies in [0, 1]."""
    if not counts:
        return []
    lo, hi = min(ratios), max(ratios)
    if hi == lo or lam == 0:
        return [density] * len(counts)
    spread = fractions.Fraction(2) * fractions.Fraction(lam)
    lo, width = fractions.Fraction(lo), fractions.Fraction(hi) - fractions.Fraction(lo)
    offsets = [spread * (fractions.Fraction(r) - lo) / width for r in ratios]
    total = sum(counts)
    if total == 0:
        return [density] * len(counts)
    with decimal.localcontext() as ctx:
        ctx.prec = 80
        budget = fractions.Fraction(decimal.Decimal(repr(density)) * total)
    c = (budget - sum(o * n for o, n in zip(offsets, counts))) / total
    out = [c + o for o in offsets]
    bad = [i for i, d in enumerate(out) if not 0 <= d <= 1]
    if bad:
        i = bad[0]
        msg = (
            f"OWL gives layer {i} the density {float(out[i])!r}, outside [0, 1] (density={density}, lam={lam}); "
            f"lower lam or move density away from 0 and 1"
        )
        raise ValueError(msg)
    return [float(d) for d in out]
