"""Pruning masks with exact counts and one tie rule (True = keep).

Every mask function prunes exactly ``k = prune_count(amount, n, rounding=...)``
entries (or slices): an ``int`` amount is that count, a ``float`` amount in [0, 1] a
fraction of ``n``.

**Tie rule.** Rank by score descending, equal scores by lower flat index first, and
keep the first ``n - k``. So among equal scores the *higher* index is pruned first.
Global masks rank over the arrays in list order, then by flat index. NaN scores
raise ``ValueError``; ``inf`` is an ordinary (largest or smallest) score.

>>> import numpy as np
>>> from refprune import magnitude_mask
>>> magnitude_mask(np.asarray([3.0, 1.0, 1.0, 1.0, 2.0]), amount=2)
array([ True,  True, False, False,  True])

Peers differ: ``torch.nn.utils.prune`` leaves the choice among ties unspecified and
applies a second amount to the weights that remain (``tests/test_torch_prune_agreement.py``
shows both with small examples).

Masks are applied with ``where(mask, w, 0)``, never ``w * mask`` (``0 * inf`` is NaN).

The selection under the tie rule is written once, here, and shared with
:mod:`refprune.patterns`, :mod:`refprune.dst` and :mod:`refprune.oneshot`:
:func:`kth_smallest`, :func:`keep_given_threshold`, :func:`keep_flat` and the checks
:func:`check_scores`, :func:`check_mask` (helpers, not part of the protocol: not in
``__all__``).
"""

from __future__ import annotations

import decimal
import math
import numbers

from ._array import (
    check_float,
    check_int,
    check_no_nan,
    check_same_device,
    check_same_shape,
    count_true,
    device_of,
    flat_size,
    float_namespace,
    index_dtype,
    is_real,
    is_traced,
    namespace,
    normalize_axis,
    values_checkable,
)
from ._dispatch import delegate

__all__ = [
    "prune_count",
    "magnitude_mask",
    "global_magnitude_mask",
    "structured_mask",
    "random_mask",
    "mask_from_weights",
    "apply_mask",
    "sparsity",
]

_ROUNDING = {
    "half-even": decimal.ROUND_HALF_EVEN,
    "floor": decimal.ROUND_FLOOR,
    "ceil": decimal.ROUND_CEILING,
}


# --------------------------------------------------------------------------- counts


def prune_count(amount, n, *, rounding="half-even"):
    r"""Number of entries to prune out of ``n``.

    * ``int`` amount: the count itself, ``0 <= amount <= n``.
    * ``float`` amount in [0, 1]: :math:`\operatorname{round}(\text{amount} \cdot n)`
      with the chosen rounding rule.

    The product is computed **exactly in decimal arithmetic on the float's shortest
    repr**, ``decimal.Decimal(repr(amount)) * n``, so the amount means what it looks
    like: with ``amount=0.07, n=100`` the binary product ``0.07 * 100`` is
    ``7.000000000000001`` (so ``math.ceil`` would give 8) and ``0.29 * 100`` is
    ``28.999999999999996`` (``math.floor`` would give 28), while here ``0.07`` gives 7
    and ``0.29`` gives 29 under every rule. Half-way cases are exact too:
    ``0.25 * 10 = 2.5`` rounds to 2 under ``"half-even"``, ``0.35 * 10 = 3.5`` to 4,
    and ``0.07 * 150 = 10.5`` to 10 (the binary product ``10.500000000000002`` would
    round to 11, which is what ``torch.nn.utils.prune`` does: it rounds the binary
    product with Python's ``round``, so the two differ only where the binary product
    falls on the other side of a half). A NumPy or other
    non-Python float amount is converted with ``float()`` first, so a float32
    ``0.7`` is ``0.699999988079071``.

    Parameters
    ----------
    amount : int or float
        Count in ``[0, n]`` or fraction in ``[0, 1]``. ``bool`` is rejected.
    n : int
        Number of candidates, ``>= 0``.
    rounding : {"half-even", "floor", "ceil"}
        How a fractional ``amount * n`` becomes a count.

    Returns
    -------
    int
        ``k`` with ``0 <= k <= n``.

    Raises
    ------
    TypeError
        ``amount`` is a bool or not a real number; ``n`` is not an int.
    ValueError
        A float amount outside [0, 1] or not finite, an int amount outside [0, n],
        a negative ``n``, or an unknown ``rounding``.

    Examples
    --------
    >>> from refprune import prune_count
    >>> prune_count(0.07, 100, rounding="ceil"), prune_count(0.29, 100, rounding="floor")
    (7, 29)
    >>> prune_count(0.25, 10), prune_count(0.35, 10)
    (2, 4)
    >>> prune_count(0.25, 10, rounding="ceil"), prune_count(3, 10)
    (3, 3)
    """
    if not isinstance(rounding, str) or rounding not in _ROUNDING:
        msg = f"rounding must be one of {', '.join(map(repr, _ROUNDING))}, got rounding={rounding!r}"
        raise ValueError(msg)
    n = check_int("n", n, minimum=0)
    if not is_real(amount):
        msg = (
            f"amount must be an int count or a float fraction in [0, 1], got "
            f"{type(amount).__name__} {amount!r}"
        )
        raise TypeError(msg)
    if isinstance(amount, numbers.Integral):
        count = int(amount)
        if not 0 <= count <= n:
            msg = (
                f"an int amount is a count and must be in [0, {n}], got amount={count}; "
                f"pass a float in [0, 1] for a fraction"
            )
            raise ValueError(msg)
        return count
    fraction = float(amount)
    if not (math.isfinite(fraction) and 0.0 <= fraction <= 1.0):
        msg = f"amount must be in [0, 1] or an int count, got amount={amount!r}"
        raise ValueError(msg)
    with decimal.localcontext() as ctx:
        ctx.prec = 64  # 17 significant digits times an int of up to ~40 digits: exact
        exact = decimal.Decimal(repr(fraction)) * n
        return int(exact.to_integral_value(rounding=_ROUNDING[rounding]))


# --------------------------------------------------------------------------- selection


def kth_smallest(flat, k, xp):
    """The value at ascending rank ``k`` (0-based) of the 1-D array ``flat``.

    The one "find the k-th value" step of every mask; a backend may replace it with a
    native partition (the result is a value, so any correct selection agrees).
    """
    return xp.sort(flat)[k]


def keep_given_threshold(flats, t, n_keep, xp, among=None):
    """Keep masks for 1-D score arrays, given the value ``t`` at rank ``n_keep`` from the top.

    Everything above ``t`` is kept; among the entries equal to ``t`` the first ones
    (array order, then index) fill the remaining budget. One cumulative sum per array,
    no scatter, no in-place writes. With ``among`` (one bool array per score array)
    only those entries are candidates: the others are never kept, and ``t`` must then
    be the value at rank ``n_keep`` from the top among the candidates.
    """
    above = [f > t for f in flats]
    if among is not None:
        above = [a & c for a, c in zip(above, among)]
    needed = n_keep - sum(count_true(a, xp) for a in above)
    offset = 0
    keeps = []
    for i, (f, a) in enumerate(zip(flats, above)):
        eq = f == t
        if among is not None:
            eq = eq & among[i]
        rank = xp.cumulative_sum(xp.astype(eq, index_dtype(xp))) + offset
        keeps.append(a | (eq & (rank <= needed)))
        offset = offset + count_true(eq, xp)
    return keeps


def keep_flat(flat, k, xp, *, magnitude=False, name="w"):
    """Keep mask of a 1-D score array that prunes exactly ``k`` entries by the tie rule.

    With ``magnitude`` the scores are ``|flat|`` (and a NaN in ``flat`` is a
    ``ValueError`` naming ``name``). The selection step a backend may replace:
    ``delegate("mask_keep", xp, flat, k, magnitude=...)`` (see ``refprune._dispatch``).
    """
    keep = delegate("mask_keep", xp, flat, k, magnitude=magnitude)
    if keep is not None:
        return keep
    if magnitude:
        check_no_nan(name, flat, xp)
        flat = xp.abs(flat)
    n = flat.shape[0]
    if k == 0:
        return xp.ones((n,), dtype=xp.bool, device=device_of(flat))
    if k == n:
        return xp.zeros((n,), dtype=xp.bool, device=device_of(flat))
    return keep_given_threshold([flat], kth_smallest(flat, k, xp), n - k, xp)[0]


def _global_kth_smallest(flats, k, xp):
    """The value at ascending rank ``k`` over several 1-D arrays, without concatenating them.

    Exact two-pass selection. Pass 1 sorts each array on its own and keeps a sample
    every ``r ~ sqrt(n/L)`` ranks (plus its last), whose known positions bound how
    many entries of that array lie below any value. From the merged samples it takes
    ``lo`` (largest sample with at most ``k`` entries certainly below it) and ``hi``
    (smallest sample with at least ``k + 1`` entries certainly at or below it), so the
    answer lies in ``[lo, hi]``. Pass 2 counts the entries ``<= lo`` and ``< hi`` and,
    unless the answer is ``lo`` or ``hi`` itself, selects among the entries strictly
    between them: at most about ``3 L r`` of them whatever the ties. Extra memory is
    one array's sorted copy plus ``O(sqrt(n L))``, instead of the ``2 n`` of
    concatenate-and-sort.
    """
    flats = [f for f in flats if f.shape[0] > 0]
    if len(flats) == 1:
        return kth_smallest(flats[0], k, xp)
    if is_traced(*flats):  # under jax.jit / vmap the counts below cannot be read: select in one sort
        return kth_smallest(xp.concat(flats), k, xp)
    n = sum(f.shape[0] for f in flats)
    stride = max(1, math.isqrt(n // len(flats)))
    dev = device_of(flats[0])
    index = index_dtype(xp)
    samples, upper_pos, lower_pos = [], [], []
    for f in flats:
        m = f.shape[0]
        pos = xp.arange(0, m, stride, dtype=index, device=dev)
        if (m - 1) % stride != 0:
            pos = xp.concat([pos, xp.asarray([m - 1], dtype=index, device=dev)])
        samples.append(xp.take(xp.sort(f), pos))
        upper_pos.append(xp.concat([pos, xp.asarray([m], dtype=index, device=dev)]))
        lower_pos.append(xp.concat([xp.asarray([0], dtype=index, device=dev), pos + 1]))
    merged = xp.sort(xp.concat(samples))
    # at_most_below[j] >= #{x < merged[j]}; at_least_upto[j] <= #{x <= merged[j]}; both nondecreasing
    at_most_below = sum(
        xp.take(up, xp.searchsorted(s, merged, side="left")) for s, up in zip(samples, upper_pos)
    )
    at_least_upto = sum(
        xp.take(low, xp.searchsorted(s, merged, side="right")) for s, low in zip(samples, lower_pos)
    )
    lo = merged[int(count_true(at_most_below <= k, xp)) - 1]  # merged[0] is the global minimum
    hi = merged[int(count_true(at_least_upto <= k, xp))]  # merged[-1] is the global maximum
    upto_lo = int(sum(count_true(f <= lo, xp) for f in flats))
    if upto_lo > k:
        return lo
    if int(sum(count_true(f < hi, xp) for f in flats)) <= k:
        return hi
    between = xp.concat([f[(f > lo) & (f < hi)] for f in flats])
    return kth_smallest(between, k - upto_lo, xp)


# --------------------------------------------------------------------------- validation


def check_scores(xp, w, scores, *, w_name="w", s_name="scores"):
    """The ranking scores: ``|w|`` or the given ``scores``, checked against ``w``."""
    if scores is None:
        check_no_nan(w_name, w, xp)
        return xp.abs(w)
    namespace(xp, **{w_name: w, s_name: scores})
    check_float(s_name, scores, xp)
    check_same_shape(w_name, w, s_name, scores)
    check_same_device(w_name, w, s_name, scores)
    check_no_nan(s_name, scores, xp)
    return scores


def _mask_from_scores(score, amount, rounding, xp):
    k = prune_count(amount, flat_size(score), rounding=rounding)
    keep = keep_flat(xp.reshape(score, (-1,)), k, xp)
    return xp.reshape(keep, tuple(score.shape))


def _check_ord(ord):
    if not is_real(ord):
        msg = f"ord must be a real number > 0 or inf or -inf, got {type(ord).__name__} {ord!r}"
        raise TypeError(msg)
    p = float(ord)
    if math.isinf(p):
        return p
    if not p > 0:  # also NaN
        msg = f"ord must be > 0 or inf or -inf, got ord={ord!r}"
        raise ValueError(msg)
    return p


def _slice_norms(w, axis, p, xp):
    """One ranking score per index along ``axis``: the ``p``-norm of that slice.

    Finite ``p`` is computed as ``m * (sum (|w|/m)^p)^(1/p)`` with ``m`` the slice's
    largest magnitude, so it neither overflows nor underflows; for ``p < 1`` the
    logarithm of that norm is returned instead (same order, no overflow of the
    ``1/p`` power).
    """
    m = w.shape[axis]
    others = tuple(i for i in range(w.ndim) if i != axis)
    if flat_size(w) == 0:
        return xp.zeros((m,), dtype=w.dtype, device=device_of(w))
    a = xp.abs(w)
    if not others:
        return a
    if p == math.inf:
        return xp.max(a, axis=others)
    if p == -math.inf:
        return xp.min(a, axis=others)
    big = xp.max(a, axis=others, keepdims=True)
    scale = xp.where((big > 0) & xp.isfinite(big), big, xp.ones_like(big))
    total = xp.sum((a / scale) ** p, axis=others)
    scale = xp.reshape(scale, (m,))
    if p >= 1:
        return scale * total ** (1.0 / p)
    positive = total > 0
    log_total = xp.log(xp.where(positive, total, xp.ones_like(total)))
    return xp.where(positive, xp.log(scale) + log_total / p, xp.full_like(total, -math.inf))


def _slice_sums(scores, axis, xp):
    """One score per index along ``axis``: the float64 sum of that slice's scores.

    A slice whose sum is NaN (it holds both ``inf`` and ``-inf``) is a ``ValueError``.
    """
    s = xp.astype(scores, xp.float64)
    others = tuple(i for i in range(s.ndim) if i != axis)
    if not others:
        return s
    if values_checkable(s) and flat_size(s) and bool(xp.any(s == math.inf)) and bool(xp.any(s == -math.inf)):
        both = (xp.max(s, axis=others) == math.inf) & (xp.min(s, axis=others) == -math.inf)
        if bool(xp.any(both)):
            msg = "scores: a slice holds both inf and -inf, so its sum is undefined; clip the scores to finite values"
            raise ValueError(msg)
    return xp.sum(s, axis=others)


# --------------------------------------------------------------------------- masks


def magnitude_mask(w, /, *, amount, scores=None, rounding="half-even", xp=None):
    r"""Unstructured magnitude pruning: prune exactly ``k`` entries with the smallest ``|w|``.

    .. math:: k = \mathrm{prune\_count}(\text{amount}, \text{size}(w)), \quad
              \text{mask}_i = [\, i \text{ is among the } n-k \text{ highest-ranked} \,]

    ranked by ``|w|`` (or ``scores``) descending, equal scores by lower flat index
    first (the module's tie rule).

    Parameters
    ----------
    w : array
        Real floating weights, any shape (0-d and empty included).
    amount : int or float
        Count or fraction to prune, see :func:`prune_count`.
    scores : array, optional
        Real floating importance scores of ``w``'s shape, used instead of ``|w|``
        (the smallest are pruned).
    rounding : {"half-even", "floor", "ceil"}
        See :func:`prune_count`.

    Returns
    -------
    array of bool
        ``w``'s shape; True = keep.

    Raises
    ------
    TypeError
        Non-array or non-floating input, mixed namespaces.
    ValueError
        Bad ``amount``/``rounding``, NaN in the scores, mismatched shapes.

    Examples
    --------
    >>> import numpy as np
    >>> from refprune import magnitude_mask
    >>> magnitude_mask(np.asarray([[0.5, -3.0], [0.1, 2.0]]), amount=0.5)
    array([[False,  True],
           [False,  True]])
    >>> magnitude_mask(np.asarray([3.0, 1.0, 1.0, 1.0, 2.0]), amount=2)  # ties: higher index pruned first
    array([ True,  True, False, False,  True])
    """
    xp = float_namespace(xp, w=w)
    if scores is None:  # |w| is ranked inside the selection step (one pass less)
        k = prune_count(amount, flat_size(w), rounding=rounding)
        return xp.reshape(keep_flat(xp.reshape(w, (-1,)), k, xp, magnitude=True), tuple(w.shape))
    score = check_scores(xp, w, scores)
    return _mask_from_scores(score, amount, rounding, xp)


def random_mask(u, /, *, amount, rounding="half-even", xp=None):
    r"""Random pruning: prune exactly ``k`` entries with the smallest noise ``u``.

    With ``u`` i.i.d. uniform this prunes a uniformly random subset of size ``k``;
    the noise is an input, so the mask is reproducible. Equal noise values follow
    the tie rule (higher index pruned first). ``u`` is ranked as given, not by
    magnitude.

    Examples
    --------
    >>> import numpy as np
    >>> from refprune import random_mask
    >>> random_mask(np.asarray([0.9, 0.1, 0.5, 0.3]), amount=0.5)
    array([ True, False,  True, False])
    """
    xp = float_namespace(xp, u=u)
    check_no_nan("u", u, xp)
    return _mask_from_scores(u, amount, rounding, xp)


def global_magnitude_mask(ws, /, *, amount, scores=None, rounding="half-even", xp=None):
    r"""Global magnitude pruning: one budget ``k`` over all the arrays of ``ws``.

    .. math:: k = \mathrm{prune\_count}(\text{amount}, \textstyle\sum_i \text{size}(w_i))

    The ``k`` smallest ``|w|`` (or ``scores``) over all arrays are pruned, ranked as
    if the arrays were flattened and concatenated in list order: equal scores keep
    the earlier array first, then the lower flat index, so among ties the last
    array's highest index is pruned first. Computed without concatenating the arrays
    (an exact two-pass selection; extra memory about one array's sorted copy).

    Parameters
    ----------
    ws : list of arrays
        Real floating arrays of any shapes, one namespace and device. Different
        floating dtypes are ranked in their common (promoted) dtype.
    amount : int or float
        Count over all entries or fraction of all entries, see :func:`prune_count`.
    scores : list of arrays, optional
        One score array per weight array, same shapes, used instead of ``|w|``.
    rounding : {"half-even", "floor", "ceil"}

    Returns
    -------
    list of bool arrays
        One mask per array, True = keep.

    Examples
    --------
    >>> import numpy as np
    >>> from refprune import global_magnitude_mask
    >>> a, b = np.asarray([4.0, 1.0, 2.0]), np.asarray([[1.0, 5.0], [0.5, 2.0]])
    >>> global_magnitude_mask([a, b], amount=2)  # prunes 0.5, then of the two 1.0s the later one
    [array([ True,  True,  True]), array([[False,  True],
           [False,  True]])]
    """
    if not isinstance(ws, (list, tuple)):
        msg = f"ws must be a list of arrays, got {type(ws).__name__}; wrap a single array as [w]"
        raise TypeError(msg)
    if scores is not None:
        if not isinstance(scores, (list, tuple)):
            msg = f"scores must be None or a list of arrays, got {type(scores).__name__}"
            raise TypeError(msg)
        if len(scores) != len(ws):
            msg = f"scores must hold one array per array of ws, got {len(scores)} for {len(ws)}"
            raise ValueError(msg)
    if not ws:
        prune_count(amount, 0, rounding=rounding)
        return []
    names = {f"ws[{i}]": w for i, w in enumerate(ws)}
    xp = float_namespace(xp, **names)
    if scores is None:  # |w| is ranked inside the selection step
        flats = [xp.reshape(w, (-1,)) for w in ws]
    else:
        flats = []
        for i, w in enumerate(ws):
            s = check_scores(xp, w, scores[i], w_name=f"ws[{i}]", s_name=f"scores[{i}]")
            flats.append(xp.reshape(s, (-1,)))
    k = prune_count(amount, sum(f.shape[0] for f in flats), rounding=rounding)
    keeps = _global_keep(flats, k, xp, magnitude=scores is None)
    return [xp.reshape(keep, tuple(w.shape)) for keep, w in zip(keeps, ws)]


def _global_keep(flats, k, xp, *, magnitude):
    """Keep masks of 1-D score arrays (of ``|flats|`` when ``magnitude``) under one budget ``k``.

    The selection step a backend may replace: ``delegate("global_mask_keep", xp, flats, k,
    magnitude=...)`` (see ``refprune._dispatch``).
    """
    keeps = delegate("global_mask_keep", xp, flats, k, magnitude=magnitude)
    if keeps is not None:
        return keeps
    if magnitude:
        for i, f in enumerate(flats):
            check_no_nan(f"ws[{i}]", f, xp)
        flats = [xp.abs(f) for f in flats]
    dtype = xp.result_type(*flats) if len(flats) > 1 else flats[0].dtype
    flats = [f if f.dtype == dtype else xp.astype(f, dtype) for f in flats]
    n = sum(f.shape[0] for f in flats)
    dev = device_of(flats[0])
    if k == 0 or k == n:
        fill = xp.ones if k == 0 else xp.zeros
        return [fill((f.shape[0],), dtype=xp.bool, device=dev) for f in flats]
    t = _global_kth_smallest(flats, k, xp)
    return keep_given_threshold(flats, t, n - k, xp)


def structured_mask(w, /, *, amount, axis, ord=None, scores=None, rounding="half-even", xp=None):
    r"""Structured pruning: prune whole slices along ``axis`` with the smallest ``ord``-norm.

    Each index ``i`` along ``axis`` gets one score, the norm of the slice
    ``w[..., i, ...]`` over all other axes,

    .. math:: s_i = \Big(\sum_{j} |w_{\ldots i \ldots}|^p\Big)^{1/p}, \qquad
              s_i = \max_j |w_{\ldots i \ldots}| \ (p=\infty), \qquad
              s_i = \min_j |w_{\ldots i \ldots}| \ (p=-\infty),

    and exactly ``k = prune_count(amount, w.shape[axis])`` slices are pruned, ties
    by the tie rule over slice indices (the higher index pruned first). For a torch
    conv weight ``(out, in, kh, kw)``, ``axis=0`` prunes output channels; this is
    ``torch.nn.utils.prune.ln_structured(..., n=ord, dim=axis)``.

    With ``scores`` (one per entry of ``w``, e.g. :func:`refprune.taylor_scores`) a
    slice's score is the **sum** of its entries' scores, accumulated in float64,
    :math:`s_i = \sum_j \text{scores}_{\ldots i \ldots}` (the group importance of
    Molchanov et al. 2019); ``ord`` then does not apply and must be left out.

    Parameters
    ----------
    w : array
        Real floating array with at least one dimension.
    amount : int or float
        Count or fraction of the ``w.shape[axis]`` slices.
    axis : int
        The axis whose indices are pruned (negative counts from the end).
    ord : float, optional
        Any real ``p > 0`` (``p < 1`` is allowed though not a norm), ``math.inf``
        or ``-math.inf``; 2 when left out.
    scores : array, optional
        Real floating scores of ``w``'s shape, summed per slice instead of the norm
        of ``w`` (the smallest sums are pruned). NaN is a ``ValueError``, and so is a
        slice holding both ``inf`` and ``-inf`` (its sum is undefined).
    rounding : {"half-even", "floor", "ceil"}

    Returns
    -------
    array of bool
        ``w``'s shape, constant along every axis but ``axis``.

    Examples
    --------
    >>> import numpy as np
    >>> from refprune import structured_mask
    >>> w = np.asarray([[1.0, 1.0], [3.0, 0.0], [0.5, 0.5]])
    >>> structured_mask(w, amount=1, axis=0)  # row norms 1.41, 3, 0.71
    array([[ True,  True],
           [ True,  True],
           [False, False]])
    >>> structured_mask(w, amount=1, axis=0, ord=1)  # row sums 2, 3, 1
    array([[ True,  True],
           [ True,  True],
           [False, False]])
    >>> structured_mask(w, amount=1, axis=1, ord=float("inf"))  # column maxima 3, 0.5
    array([[ True, False],
           [ True, False],
           [ True, False]])
    >>> structured_mask(w, amount=1, axis=0, scores=np.asarray([[1.0, 2.0], [0.5, 0.5], [4.0, -1.0]]))  # sums 3, 1, 3
    array([[ True,  True],
           [False, False],
           [ True,  True]])
    """
    xp = float_namespace(xp, w=w)
    if w.ndim == 0:
        msg = "structured_mask needs an array with at least one axis, got a 0-d array; use magnitude_mask"
        raise ValueError(msg)
    axis = normalize_axis(axis, w.ndim)
    m = w.shape[axis]
    if scores is None:
        p = _check_ord(2 if ord is None else ord)
        check_no_nan("w", w, xp)
        k = prune_count(amount, m, rounding=rounding)
        slice_scores = _slice_norms(w, axis, p, xp)
    else:
        if ord is not None:
            msg = f"ord applies to the norm of w; with scores a slice's score is the sum of its scores, got ord={ord!r}"
            raise ValueError(msg)
        score = check_scores(xp, w, scores)
        k = prune_count(amount, m, rounding=rounding)
        slice_scores = _slice_sums(score, axis, xp)
    keep = keep_flat(slice_scores, k, xp)
    shape = tuple(m if i == axis else 1 for i in range(w.ndim))
    return xp.reshape(keep, shape) & xp.ones(tuple(w.shape), dtype=xp.bool, device=device_of(w))


# --------------------------------------------------------------------------- using masks


def check_mask(name, mask, xp):
    """A ``TypeError`` naming ``name`` unless ``mask`` is a bool array (True = keep)."""
    if not xp.isdtype(mask.dtype, "bool"):
        msg = f"{name} must be a bool array (True = keep), got dtype {mask.dtype}; use {name} != 0"
        raise TypeError(msg)


def mask_from_weights(w, /, *, xp=None):
    """The mask of the nonzero entries, ``w != 0`` (NaN counts as nonzero).

    Examples
    --------
    >>> import numpy as np
    >>> from refprune import mask_from_weights
    >>> mask_from_weights(np.asarray([0.0, -0.0, 2.0]))
    array([False, False,  True])
    """
    xp = namespace(xp, w=w)
    if not xp.isdtype(w.dtype, ("real floating", "integral")):
        msg = f"w must be a real numeric array, got dtype {w.dtype}"
        raise TypeError(msg)
    return w != 0


def apply_mask(w, mask, /, *, xp=None):
    """Zero the pruned entries: ``where(mask, w, 0)``.

    Never ``w * mask``: a pruned ``inf`` (or NaN) weight becomes exactly 0 instead of
    NaN. Returns a new array; ``w`` is not modified.

    Examples
    --------
    >>> import numpy as np
    >>> from refprune import apply_mask
    >>> apply_mask(np.asarray([1.0, np.inf, 3.0]), np.asarray([True, False, True]))
    array([1., 0., 3.])
    """
    xp = namespace(xp, w=w, mask=mask)
    check_mask("mask", mask, xp)
    check_same_shape("w", w, "mask", mask)
    check_same_device("w", w, "mask", mask)
    return xp.where(mask, w, xp.zeros_like(w))


def sparsity(mask, /, *, xp=None):
    """The pruned fraction of a mask, ``#False / size``, as a Python float (0.0 when empty).

    Under JAX tracing (``jax.jit``, ``vmap``) the count cannot be read back to Python:
    the fraction is then a 0-d floating array.

    Examples
    --------
    >>> import numpy as np
    >>> from refprune import sparsity
    >>> sparsity(np.asarray([True, False, False, True]))
    0.5
    """
    xp = namespace(xp, mask=mask)
    check_mask("mask", mask, xp)
    n = flat_size(mask)
    if n == 0:
        return 0.0
    if is_traced(mask):
        return (n - count_true(mask, xp)) / n
    return (n - int(count_true(mask, xp))) / n
