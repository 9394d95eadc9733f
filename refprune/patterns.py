"""Structured sparsity patterns: N:M groups and whole tiles (True = keep).

Both follow the protocol's tie rule (``refprune.masks``): rank by score descending,
equal scores by lower index first, so among equal scores the *higher* index is
pruned first; within an N:M group the index is the position in the group, between
tiles it is the row-major tile index. Counts are exact. NaN scores raise
``ValueError``.

* :func:`nm_mask` keeps exactly ``n`` entries of every ``m`` consecutive ones along
  an axis (2:4 is the pattern of sparse tensor cores);
* :func:`block_mask` prunes exactly ``k = prune_count(amount, number of tiles)``
  whole tiles of a block shape, ranked by a pooled score.

>>> import numpy as np
>>> from refprune import nm_mask
>>> nm_mask(np.asarray([[0.1, -3.0, 2.0, 0.5, 1.0, 1.0, 1.0, 0.0]]), n=2, m=4)
array([[False,  True,  True, False,  True,  True, False, False]])

Fast paths: the selection steps ``"nm_keep"`` and ``"block_keep"`` may be delegated
to a backend (``refprune._dispatch``); they return the same masks bit for bit.
"""

from __future__ import annotations

import math

from ._array import (
    check_int,
    check_no_nan,
    device_of,
    flat_size,
    float_namespace,
    index_dtype,
    is_int,
    namespace,
    normalize_axis,
    values_checkable,
)
from ._dispatch import delegate
from .masks import check_scores, keep_flat, prune_count

__all__ = ["nm_mask", "nm_violations", "block_mask"]

#: The pooled scores of :func:`block_mask`, on the entries' scores ``s`` (``|w|`` by default).
BLOCK_POOLS = ("l1", "l2", "max", "mean")


# --------------------------------------------------------------------------- N:M


def check_nm(n, m):
    m = check_int("m", m, minimum=1)
    n = check_int("n", n, minimum=0)
    if n > m:
        msg = f"n must be <= m (keep n of every m entries), got n={n}, m={m}"
        raise ValueError(msg)
    return n, m



def _check_nm_groups(func, name, x, *, n, m, axis):
    """``(axis, n, m)`` validated for N:M groups of ``m`` whole entries along ``axis`` of ``x``."""
    if x.ndim == 0:
        msg = f"{func} needs an array with at least one axis, got a 0-d array"
        raise ValueError(msg)
    axis = normalize_axis(axis, x.ndim)
    n, m = check_nm(n, m)
    length = int(x.shape[axis])
    if length % m:
        msg = (
            f"{name}.shape[{axis}]={length} is not a multiple of m={m}: N:M groups must be whole; "
            f"pad {name} along axis {axis} to a multiple of {m} or choose another m"
        )
        raise ValueError(msg)
    return axis, n, m

def nm_keep(groups, n, xp, *, magnitude, name):
    """Keep mask of an ``(A, m, B)`` array of groups (each ``groups[a, :, b]`` is one group).

    The ``n`` best of each group by the tie rule. With ``magnitude`` the scores are
    ``|groups|`` (a NaN is a ``ValueError`` naming ``name``). The step a backend may
    replace: ``delegate("nm_keep", xp, groups, n, magnitude=...)``. Reference: the
    ``n``-th largest score ``t`` of each group (one sort along the group axis); scores
    above ``t`` are kept, and of those equal to ``t`` the first ones in the group fill
    the remaining places (a cumulative sum along the group axis).
    """
    keep = delegate("nm_keep", xp, groups, n, magnitude=magnitude)
    if keep is not None:
        return keep
    if magnitude:
        check_no_nan(name, groups, xp)
        groups = xp.abs(groups)
    m = groups.shape[1]
    if n == 0 or n == m:
        fill = xp.zeros if n == 0 else xp.ones
        return fill(tuple(groups.shape), dtype=xp.bool, device=device_of(groups))
    t = xp.sort(groups, axis=1)[:, m - n : m - n + 1, :]  # the n-th largest of each group
    above = groups > t
    eq = groups == t
    needed = n - xp.sum(xp.astype(above, xp.int64), axis=1, keepdims=True)
    rank = xp.cumulative_sum(xp.astype(eq, xp.int64), axis=1)
    return above | (eq & (rank <= needed))


def nm_mask(w, /, *, n, m, axis=-1, scores=None, xp=None):
    r"""N:M sparsity: in every group of ``m`` consecutive entries along ``axis`` keep exactly ``n``.

    The entries of ``w`` along ``axis`` are split into consecutive groups
    :math:`g = \{jm, \ldots, jm+m-1\}`; in each group the ``n`` entries with the
    largest score :math:`s_i` (``|w_i|`` or ``scores``) are kept:

    .. math:: \text{mask}_i = [\, \#\{ l \in g : s_l > s_i \ \text{or}\ (s_l = s_i,\ l < i) \} < n \,]

    so among equal scores the lower position in the group is kept first (the higher
    one pruned first), and every group keeps exactly ``n`` and prunes ``m - n``.
    2:4 (``n=2, m=4``) is the pattern of NVIDIA's sparse tensor cores, which group
    along the reduction dimension: ``axis=-1`` for a torch ``Linear`` weight
    ``(out, in)``, ``axis=0`` for a ``refprune.nn`` dense weight ``(in, out)``.

    Parameters
    ----------
    w : array
        Real floating weights with at least one axis.
    n : int
        Entries kept per group, ``0 <= n <= m``.
    m : int
        Group size, ``>= 1``; ``w.shape[axis]`` must be a multiple of ``m``.
    axis : int
        The axis along which the groups run (negative counts from the end).
    scores : array, optional
        Real floating scores of ``w``'s shape, used instead of ``|w|`` (the largest
        are kept), e.g. :func:`refprune.saliency_scores`.

    Returns
    -------
    array of bool
        ``w``'s shape; True = keep. Exactly ``n`` True in every group.

    Raises
    ------
    TypeError
        Non-array or non-floating input; ``n`` or ``m`` not an int.
    ValueError
        ``w`` is 0-d, ``w.shape[axis]`` is not a multiple of ``m`` (pad ``w`` or pick
        another ``m``: there is no silent policy for a partial group), ``n > m``,
        ``m < 1``, ``n < 0``, NaN in the scores, mismatched shapes.

    Examples
    --------
    >>> import numpy as np
    >>> from refprune import nm_mask
    >>> w = np.asarray([[0.1, -3.0, 2.0, 0.5], [1.0, 1.0, 1.0, 0.0]])
    >>> nm_mask(w, n=2, m=4)  # second row: three tied 1.0s, the last one is pruned
    array([[False,  True,  True, False],
           [ True,  True, False, False]])
    >>> nm_mask(w, n=1, m=2, axis=0)  # groups of 2 down each column
    array([[False,  True,  True,  True],
           [ True, False, False, False]])
    """
    xp = float_namespace(xp, w=w)
    axis, n, m = _check_nm_groups("nm_mask", "w", w, n=n, m=m, axis=axis)
    if scores is None:
        s, magnitude = w, True
    else:
        s, magnitude = check_scores(xp, w, scores), False
    shape = tuple(int(d) for d in w.shape)
    inner = math.prod(shape[axis + 1 :])
    groups = xp.reshape(s, (math.prod(shape[:axis]) * (shape[axis] // m), m, inner))  # no copy, no moved axis
    keep = nm_keep(groups, n, xp, magnitude=magnitude, name="w")
    return xp.reshape(keep, shape)


def nm_violations(mask_or_w, /, *, n, m, axis=-1, xp=None):
    r"""The number of N:M groups with more than ``n`` nonzeros: the groups a sparse kernel would reject.

    ``mask_or_w`` is cut along ``axis`` into groups of ``m`` consecutive entries starting
    at index 0 (as :func:`nm_mask` cuts them); a group violates ``n``:``m`` when it holds
    more than ``n`` True entries (a bool mask) or nonzero entries (weights; NaN counts as
    nonzero). A group with fewer is valid: a 2:4 kernel stores it with explicit zeros.

    .. math:: V = \#\{ g : |\{ i \in g : x_i \ne 0 \}| > n \}

    Parameters
    ----------
    mask_or_w : array
        A bool mask (True = keep) or real weights, at least one axis.
    n : int
        Nonzeros allowed per group, ``0 <= n <= m``.
    m : int
        Group size; ``mask_or_w.shape[axis]`` must be a multiple of ``m``.
    axis : int
        The axis along which the groups run (the input axis ``-1`` of an ``(out, in)`` weight).

    Returns
    -------
    int

    Examples
    --------
    >>> import numpy as np
    >>> from refprune import nm_violations
    >>> nm_violations(np.asarray([[1.0, 2.0, 0.0, 3.0, 0.0, 0.0, 0.0, 4.0]]), n=2, m=4)
    1
    >>> nm_violations(np.asarray([[True, False, True, False]]), n=2, m=4)
    0
    """
    xp = namespace(xp, mask_or_w=mask_or_w)
    x = mask_or_w
    if not xp.isdtype(x.dtype, ("bool", "real floating", "integral")):
        msg = f"mask_or_w must be a bool mask or real weights, got dtype {x.dtype}"
        raise TypeError(msg)
    axis, n, m = _check_nm_groups("nm_violations", "mask_or_w", x, n=n, m=m, axis=axis)
    nonzero = x if xp.isdtype(x.dtype, "bool") else x != 0
    shape = tuple(int(d) for d in x.shape)
    groups = xp.reshape(nonzero, (math.prod(shape[:axis]) * (shape[axis] // m), m, math.prod(shape[axis + 1 :])))
    per_group = xp.sum(xp.astype(groups, index_dtype(xp)), axis=1)
    return int(xp.count_nonzero(per_group > n))


# --------------------------------------------------------------------------- blocks


def _check_block(block, ndim):
    if is_int(block):
        block = (int(block),) * ndim
    if not isinstance(block, (tuple, list)):
        msg = f"block must be an int or a tuple of ints (one per axis of w), got {type(block).__name__} {block!r}"
        raise TypeError(msg)
    if len(block) != ndim:
        msg = f"block must have one size per axis of w ({ndim}), got block={tuple(block)!r}"
        raise ValueError(msg)
    return tuple(check_int(f"block[{i}]", b, minimum=1) for i, b in enumerate(block))


def _tile_counts(shape, block):
    """Tiles per axis: ``ceil(n_a / b_a)``, the last tile of an axis partial when ``b_a`` does not divide ``n_a``."""
    return tuple(-(-int(n) // b) for n, b in zip(shape, block))


def _take(x, axis, i):
    """``x[..., i, ...]`` with the integer index at ``axis``."""
    return x[(slice(None),) * axis + (i, ...)]


def _tile_pool(s, block, pool, xp):
    """Pooled score of every tile, in float64, in the row-major tile grid's shape.

    Entry transform first (``l1``: ``|s|``, ``l2``: ``s*s``, ``max``/``mean``: ``s``), then
    axis by axis (axis 0 first): pad the axis to a multiple of its block size (0 for
    the sums, ``-inf`` for the max), split it into ``(tiles, block)`` and reduce the
    block offsets **in order** (``((x_0 + x_1) + x_2) + ...``), so that the sums are
    reproducible bit for bit. ``mean`` divides by each tile's number of real entries.
    """
    a = xp.astype(s, xp.float64)
    if pool == "l1":
        a = xp.abs(a)
    if pool != "max" and s.dtype == xp.float64:
        a = a * _overflow_scale(a, pool, xp)
    if pool == "l2":
        a = a * a
    dev = device_of(a)
    for axis, b in enumerate(block):
        size = int(a.shape[axis])
        tiles = -(-size // b)
        pad = tiles * b - size
        if pad:
            fill = -math.inf if pool == "max" else 0.0
            shape = tuple(pad if i == axis else int(d) for i, d in enumerate(a.shape))
            a = xp.concat([a, xp.full(shape, fill, dtype=xp.float64, device=dev)], axis=axis)
        split = tuple(a.shape[:axis]) + (tiles, b) + tuple(a.shape[axis + 1 :])
        a = xp.reshape(a, split)
        acc = _take(a, axis + 1, 0)
        for o in range(1, b):
            nxt = _take(a, axis + 1, o)
            acc = xp.maximum(acc, nxt) if pool == "max" else acc + nxt
        a = acc
    if pool == "mean":
        a = a / _tile_sizes(tuple(s.shape), block, xp, dev)
    return a


#: Largest finite |entry| for which the float64 tile sums cannot overflow (tiles below 2^60 entries).
_SAFE = {"l1": 2.0**960, "mean": 2.0**960, "l2": 2.0**448}


def _overflow_scale(a, pool, xp):
    """1.0, or the power of two that brings float64 entries this large to at most 1 (an exact scaling).

    Only float64 weights can be this large; scaling every entry by one power of two
    changes no ranking, so the tile sums rank as the exact ones would.
    """
    finite = xp.where(xp.isfinite(a), xp.abs(a), xp.zeros_like(a))
    big = float(xp.max(finite)) if flat_size(a) else 0.0
    if big < _SAFE[pool]:
        return 1.0
    return 2.0 ** -math.frexp(big)[1]


def _tile_sizes(shape, block, xp, dev):
    """Number of real entries of each tile (float64, the tile grid's shape): outer product of per-axis sizes."""
    sizes = None
    for axis, (n, b) in enumerate(zip(shape, block)):
        tiles = -(-int(n) // b)
        per = [float(min(b, int(n) - t * b)) for t in range(tiles)]
        v = xp.asarray(per, dtype=xp.float64, device=dev)
        v = xp.reshape(v, tuple(tiles if i == axis else 1 for i in range(len(shape))))
        sizes = v if sizes is None else sizes * v
    return sizes


def _expand_tiles(keep_tiles, block, shape, xp):
    """The entry mask of a tile mask: each tile's value over its entries (edge tiles cut to ``shape``)."""
    grid = tuple(keep_tiles.shape)
    inter = tuple(d for t in grid for d in (t, 1))
    full = tuple(d for t, b in zip(grid, block) for d in (t, b))
    big = xp.reshape(keep_tiles, inter) & xp.ones(full, dtype=xp.bool, device=device_of(keep_tiles))
    big = xp.reshape(big, tuple(t * b for t, b in zip(grid, block)))
    return big[tuple(slice(0, int(n)) for n in shape)]


def _check_no_mixed_inf(s, block, xp):
    """``ValueError`` when a tile holds both ``inf`` and ``-inf`` (its mean is undefined); checked before summing."""
    if not values_checkable(s) or not (bool(xp.any(s == math.inf)) and bool(xp.any(s == -math.inf))):
        return
    both = (_tile_pool(s, block, "max", xp) == math.inf) & (_tile_pool(-s, block, "max", xp) == math.inf)
    if bool(xp.any(both)):
        msg = "scores: a tile holds both inf and -inf, so its mean is undefined; clip the scores to finite values"
        raise ValueError(msg)


def block_mask(w, /, *, block, amount, pool="l1", scores=None, rounding="half-even", xp=None):
    r"""Block sparsity: prune exactly ``k`` whole ``block``-shaped tiles with the smallest pooled score.

    ``w`` is cut into tiles of shape ``block`` from index 0 along every axis; tile
    :math:`T` holds the entries with :math:`\lfloor i_a / b_a \rfloor = T_a`. Where
    ``b_a`` does not divide ``w.shape[a]`` the last tile along that axis is
    **partial**: it is a tile of its own, pooled over its real entries only (no
    padding enters a score). With :math:`s = |w|` (or ``scores``) each tile gets

    ========  ===================================================================
    ``l1``    :math:`\sum_{i \in T} |s_i|` (the tile's l1 norm; the default)
    ``l2``    :math:`\sqrt{\sum_{i \in T} s_i^2}` (l2 norm; ranked by the sum of squares)
    ``max``   :math:`\max_{i \in T} s_i`
    ``mean``  :math:`\frac{1}{|T|}\sum_{i \in T} s_i`, :math:`|T|` the tile's real entries
    ========  ===================================================================

    so a partial tile's ``l1`` and ``l2`` count fewer entries (they favour pruning
    it) while ``mean`` is normalized by its size. Then exactly
    :math:`k = \mathrm{prune\_count}(\text{amount}, \#\text{tiles})` tiles are
    pruned: tiles ranked by score descending, equal scores by lower row-major tile
    index first, the first ``#tiles - k`` kept (among ties the later tile is pruned
    first). Sums are accumulated in float64 in a fixed order (axis 0's block
    offsets first, each axis in increasing offset), so a float32 and a float64 copy
    of the same weights give the same mask.

    Parameters
    ----------
    w : array
        Real floating weights with at least one axis (2-D: ``(rows, cols)``).
    block : int or tuple of int
        Tile shape, one size ``>= 1`` per axis of ``w``; an int is used for every axis.
    amount : int or float
        Count or fraction of the tiles to prune, see :func:`refprune.prune_count`.
    pool : {"l1", "l2", "max", "mean"}
        How a tile's entries become its score.
    scores : array, optional
        Real floating scores of ``w``'s shape pooled instead of ``|w|`` (``max`` and
        ``mean`` keep their sign; ``l1`` and ``l2`` rank by size).
    rounding : {"half-even", "floor", "ceil"}
        See :func:`refprune.prune_count`.

    Returns
    -------
    array of bool
        ``w``'s shape, constant on every tile; True = keep.

    Raises
    ------
    TypeError
        Non-array or non-floating input; a block size that is not an int.
    ValueError
        ``w`` is 0-d, ``block`` has the wrong length or a size below 1, an unknown
        ``pool``, bad ``amount``/``rounding``, NaN in the scores, a tile whose
        ``scores`` hold both ``inf`` and ``-inf`` under ``mean`` (its sum is
        undefined), mismatched shapes.

    Examples
    --------
    >>> import numpy as np
    >>> from refprune import block_mask
    >>> w = np.asarray([[1.0, 1.0, 0.1, 0.1, 5.0],
    ...                 [1.0, 1.0, 0.1, 0.1, 5.0]])
    >>> block_mask(w, block=(2, 2), amount=1)  # tiles l1 = 4, 0.4, 10 (a 2x1 edge tile)
    array([[ True,  True, False, False,  True],
           [ True,  True, False, False,  True]])
    >>> block_mask(w, block=(2, 2), amount=2, pool="mean")  # means 1, 0.1, 5
    array([[False, False, False, False,  True],
           [False, False, False, False,  True]])
    """
    xp = float_namespace(xp, w=w)
    if w.ndim == 0:
        msg = "block_mask needs an array with at least one axis, got a 0-d array; use magnitude_mask"
        raise ValueError(msg)
    block = _check_block(block, w.ndim)
    if not isinstance(pool, str) or pool not in BLOCK_POOLS:
        msg = f"pool must be one of {', '.join(map(repr, BLOCK_POOLS))}, got pool={pool!r}"
        raise ValueError(msg)
    grid = _tile_counts(tuple(w.shape), block)
    k = prune_count(amount, math.prod(grid), rounding=rounding)
    if scores is None:
        s, magnitude = w, True
    else:
        s, magnitude = check_scores(xp, w, scores), False
    keep = delegate("block_keep", xp, s, block, pool, k, magnitude=magnitude)
    if keep is not None:
        return keep
    if magnitude:
        check_no_nan("w", w, xp)
        s = xp.abs(w)
    if flat_size(w) == 0:
        return xp.ones(tuple(w.shape), dtype=xp.bool, device=device_of(w))
    if pool == "mean" and not magnitude:
        _check_no_mixed_inf(s, block, xp)
    tile_scores = _tile_pool(s, block, pool, xp)
    keep_tiles = xp.reshape(keep_flat(xp.reshape(tile_scores, (-1,)), k, xp), grid)
    return _expand_tiles(keep_tiles, block, tuple(w.shape), xp)
