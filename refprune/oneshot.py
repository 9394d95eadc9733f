r"""One-shot, layer-wise pruning from calibration inputs (protocol v2).

A trained layer ``y = x w^T`` (``w``: ``(out, in)`` like a torch ``Linear``; ``x``:
calibration inputs, ``(tokens, in)``, any leading axes counting as tokens) is pruned
without retraining, from statistics of ``x``:

* :func:`activation_norms`, :func:`wanda_scores`, :func:`wanda_mask` (Wanda, Sun et al.
  2024) and :func:`ria_scores` (RIA, Zhang et al. 2024) rank weights by ``|w|`` and the
  input norms;
* :func:`hessian`, :func:`masked_least_squares`, :func:`reconstruction_error`,
  :func:`sparsegpt_prune` (SparseGPT, Frantar & Alistarh 2023) and :func:`obc_prune`
  (exact greedy OBS, Frantar et al. 2022) also update the kept weights to
  reconstruct the layer's output;
* :func:`outlier_ratio` feeds the OWL per-layer budget
  (:func:`refprune.owl_densities`), and :func:`refprune.nm_violations` counts the
  N:M groups a 2:4 kernel would reject.

Conventions of the whole protocol: masks are True = keep; counts are exact
(:func:`refprune.prune_count`); ties are broken by one rule (rank by score
descending, equal scores by lower index first, so the higher index is pruned first);
N:M means ``n`` **kept** of every ``m`` consecutive inputs, the groups starting at
input 0. ``docs/protocol.md`` (v2) states every choice and ``docs/differs.md`` where
the official codes differ.

>>> import numpy as np
>>> from refprune import activation_norms, wanda_mask
>>> w = np.asarray([[1.0, -2.0, 0.5, 0.1]])
>>> x = np.asarray([[1.0, 0.1, 4.0, 0.0], [1.0, 0.1, 3.0, 0.0]])
>>> activation_norms(x)
array([1.41421356, 0.14142136, 5.        , 0.        ])
>>> wanda_mask(w, activation_norms(x), amount=0.5)  # scores 1.41, 0.28, 2.5, 0
array([[ True, False,  True, False]])
"""

from __future__ import annotations

import functools
import math
import numbers

from ._array import (
    check_finite_scalar,
    check_int,
    check_no_nan,
    device_of,
    flat_size,
    float_namespace,
    values_checkable,
)
from ._dispatch import delegate
from .masks import keep_flat, prune_count
from .patterns import check_nm, nm_keep

__all__ = [
    "activation_norms",
    "wanda_scores",
    "wanda_mask",
    "ria_scores",
    "hessian",
    "masked_least_squares",
    "reconstruction_error",
    "sparsegpt_prune",
    "obc_prune",
    "outlier_ratio",
]

GROUPS = ("row", "layer")

#: Scores per slab of rows in :func:`wanda_mask` (4 MiB of float32).
_SLAB = 1 << 20

#: Rows handled at once by the batched per-row solvers: at most this many floats in their (rows, in, in) stacks.
_STACK_FLOATS = 1 << 22


# --------------------------------------------------------------------------- validation


def _tokens(x, xp):
    """``x`` as a ``(tokens, in)`` matrix: every leading axis counts as tokens."""
    if x.ndim < 2:
        msg = f"x must have shape (tokens, in) (leading axes count as tokens), got shape {tuple(x.shape)}"
        raise ValueError(msg)
    shape = tuple(int(d) for d in x.shape)
    return xp.reshape(x, (math.prod(shape[:-1]), shape[-1]))  # not (-1, in): in may be 0


def _check_weight(w):
    if w.ndim != 2:
        msg = f"w must be a 2-D (out, in) weight like a torch Linear's, got shape {tuple(w.shape)}; reshape it first"
        raise ValueError(msg)


def _check_norms(w, norms, xp):
    _check_weight(w)
    if tuple(norms.shape) != (int(w.shape[1]),):
        msg = (
            f"norms must have shape (in,) = ({int(w.shape[1])},), one norm per input feature of w, "
            f"got shape {tuple(norms.shape)}; compute them with activation_norms(x)"
        )
        raise ValueError(msg)
    check_no_nan("norms", norms, xp)
    if flat_size(norms) and values_checkable(norms) and bool(xp.any(norms < 0)):
        msg = "norms must be >= 0 (they are l2 norms of the inputs); compute them with activation_norms(x)"
        raise ValueError(msg)


def _check_hessian(w, h, xp):
    _check_weight(w)
    size = int(w.shape[1])
    if tuple(h.shape) != (size, size):
        msg = (
            f"h must have shape (in, in) = ({size}, {size}) for w of shape {tuple(w.shape)}, "
            f"got shape {tuple(h.shape)}; compute it with hessian(x)"
        )
        raise ValueError(msg)
    check_no_nan("w", w, xp)
    check_no_nan("h", h, xp)


def _check_target(amount, n, m, *, group="row"):
    """``("amount", amount)`` or ``("nm", (n, m))``: exactly one way to say how much to prune."""
    if not isinstance(group, str) or group not in GROUPS:
        msg = f"group must be one of {', '.join(map(repr, GROUPS))}, got group={group!r}"
        raise ValueError(msg)
    if amount is None and n is None and m is None:
        msg = "say how much to prune: amount= (a fraction or count), or n= and m= (N:M, n kept of every m)"
        raise ValueError(msg)
    if amount is not None and (n is not None or m is not None):
        msg = f"give either amount= or n= and m=, not both (got amount={amount!r}, n={n!r}, m={m!r})"
        raise ValueError(msg)
    if amount is not None:
        return "amount", amount
    if n is None or m is None:
        msg = f"N:M needs both n= (kept per group) and m= (group size), got n={n!r}, m={m!r}"
        raise ValueError(msg)
    if group != "row":
        msg = "N:M groups run along each row's inputs; leave group='row' with n= and m="
        raise ValueError(msg)
    return "nm", check_nm(n, m)


def _check_nm_width(width, m):
    if width % m:
        msg = (
            f"w has {width} inputs, not a multiple of m={m}: N:M groups must be whole; "
            f"pad w's inputs to a multiple of {m} or choose another m"
        )
        raise ValueError(msg)


def _check_fraction(amount):
    """SparseGPT's amount: a fraction of each column block (an int count has no meaning there)."""
    if isinstance(amount, numbers.Integral) or not isinstance(amount, numbers.Real):  # bool is Integral too
        msg = (
            f"amount must be a float fraction in [0, 1] (it applies to every column block), "
            f"got {type(amount).__name__} {amount!r}; write e.g. amount=0.5"
        )
        raise TypeError(msg)
    prune_count(float(amount), 1)  # the range check and its message
    return float(amount)


def _diagonal(a, xp):
    return xp.linalg.diagonal(a) if hasattr(xp, "linalg") and hasattr(xp.linalg, "diagonal") else xp.diagonal(a)


# --------------------------------------------------------------------------- scores and masks


def activation_norms(x, /, *, xp=None):
    r"""The l2 norm of each input feature over the calibration tokens (Wanda's ``||X_j||_2``).

    .. math:: a_j = \|X_{:,j}\|_2 = \Big(\sum_t x_{tj}^2\Big)^{1/2}

    Parameters
    ----------
    x : array
        Real floating calibration inputs, ``(tokens, in)``; leading axes (``(batch, seq, in)``)
        all count as tokens.

    Returns
    -------
    array
        ``(in,)``, in ``x``'s dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from refprune import activation_norms
    >>> activation_norms(np.asarray([[3.0, 0.0], [4.0, 1.0]]))
    array([5., 1.])
    """
    xp = float_namespace(xp, x=x)
    return xp.linalg.vector_norm(_tokens(x, xp), axis=0)


def wanda_scores(w, norms, /, *, xp=None):
    r"""Wanda's importance: the weight's magnitude times its input's norm.

    .. math:: S_{ij} = |w_{ij}| \cdot \|X_{:,j}\|_2

    Parameters
    ----------
    w : array
        Real floating ``(out, in)`` weights.
    norms : array
        ``(in,)`` input norms, :func:`activation_norms`.

    Returns
    -------
    array
        ``(out, in)`` scores.

    Examples
    --------
    >>> import numpy as np
    >>> from refprune import wanda_scores
    >>> wanda_scores(np.asarray([[1.0, -2.0], [0.5, 3.0]]), np.asarray([2.0, 0.5]))
    array([[2. , 1. ],
           [1. , 1.5]])
    """
    xp = float_namespace(xp, w=w, norms=norms)
    _check_norms(w, norms, xp)
    check_no_nan("w", w, xp)
    return _wanda(w, norms, xp)


def _wanda(w, norms, xp):
    return xp.abs(w) * xp.reshape(norms, (1, -1))


def _row_keep(scores, *, k, xp):
    """Keep mask that prunes exactly ``k`` entries of every row of ``scores`` (the tie rule per row)."""
    rows, cols = (int(d) for d in scores.shape)
    keep = nm_keep(xp.reshape(scores, (rows, cols, 1)), cols - k, xp, magnitude=False, name="scores")
    return xp.reshape(keep, (rows, cols))


def _nm_rows_keep(scores, n, m, xp):
    """Keep mask of the N:M groups along each row of ``scores``."""
    rows, cols = (int(d) for d in scores.shape)
    groups = xp.reshape(scores, (rows * (cols // m), m, 1))
    return xp.reshape(nm_keep(groups, n, xp, magnitude=False, name="scores"), (rows, cols))


def _select(w, norms, target, group, rounding, xp):
    """Wanda's keep mask for a target from :func:`_check_target`.

    Row and N:M masks are computed a slab of rows at a time, so the scores never exist
    in full (extra memory: one slab of scores and the masks).
    """
    rows, cols = (int(d) for d in w.shape)
    kind, value = target
    if kind == "nm":
        n, m = value
        _check_nm_width(cols, m)
        select = functools.partial(_nm_rows_keep, n=n, m=m, xp=xp)
    elif group == "row":
        select = functools.partial(_row_keep, k=prune_count(value, cols, rounding=rounding), xp=xp)
    else:
        k = prune_count(value, rows * cols, rounding=rounding)
        return xp.reshape(keep_flat(xp.reshape(_wanda(w, norms, xp), (-1,)), k, xp), (rows, cols))
    step = max(1, _SLAB // max(1, cols))
    if rows <= step:
        return select(_wanda(w, norms, xp))
    slabs = [select(_wanda(w[r0 : min(r0 + step, rows), :], norms, xp)) for r0 in range(0, rows, step)]
    return xp.concat(slabs, axis=0)


def wanda_mask(w, norms, /, *, amount=None, n=None, m=None, group="row", rounding="half-even", xp=None):
    r"""Wanda's mask: prune the smallest :math:`|w_{ij}|\,\|X_{:,j}\|_2` per output row (or layer, or N:M).

    .. math:: S_{ij} = |w_{ij}|\,\|X_{:,j}\|_2, \qquad
              \text{mask}_{ij} = [\, S_{ij} \text{ is among the } |G| - k \text{ best of its group } G \,]

    * ``group="row"`` (the paper's comparison group): every output row prunes exactly
      ``k = prune_count(amount, in)`` entries (an int ``amount`` is a count per row);
    * ``group="layer"``: the whole matrix prunes ``k = prune_count(amount, out*in)``;
    * ``n=, m=``: in every group of ``m`` consecutive inputs of a row (starting at input
      0) exactly ``n`` are **kept** (``in`` must be a multiple of ``m``).

    Ties: by score descending, equal scores by lower index first (within a row its
    column, over the layer the row-major flat index, within an N:M group its position),
    so the higher index is pruned first.

    Parameters
    ----------
    w : array
        Real floating ``(out, in)`` weights.
    norms : array
        ``(in,)`` input norms, :func:`activation_norms`.
    amount : int or float, optional
        Fraction or count to prune per group, see :func:`refprune.prune_count`.
    n, m : int, optional
        N:M instead of ``amount``: ``n`` kept of every ``m``.
    group : {"row", "layer"}
        The comparison group of ``amount``.
    rounding : {"half-even", "floor", "ceil"}
        How ``amount * size`` becomes a count (Wanda's code floors).

    Returns
    -------
    array of bool
        ``(out, in)``, True = keep.

    Examples
    --------
    >>> import numpy as np
    >>> from refprune import wanda_mask
    >>> w = np.asarray([[4.0, 1.0, 3.0, 2.0], [1.0, 1.0, 1.0, 1.0]])
    >>> norms = np.ones(4)
    >>> wanda_mask(w, norms, amount=0.5)  # per row; the tied row prunes its last two
    array([[ True, False,  True, False],
           [ True,  True, False, False]])
    >>> wanda_mask(w, norms, amount=0.5, group="layer")  # the four 1.0s of the second row
    array([[ True,  True,  True,  True],
           [False, False, False, False]])
    >>> wanda_mask(w, norms, n=1, m=2)
    array([[ True, False,  True, False],
           [ True, False,  True, False]])
    """
    xp = float_namespace(xp, w=w, norms=norms)
    target = _check_target(amount, n, m, group=group)
    _check_norms(w, norms, xp)
    check_no_nan("w", w, xp)
    return _select(w, norms, target, group, rounding, xp)


def ria_scores(w, norms, /, *, a=0.5, xp=None):
    r"""RIA's relative importance and activations (Zhang et al., ICLR 2024).

    .. math:: \mathrm{RIA}_{ij} = \Big(\frac{|w_{ij}|}{\sum_{k} |w_{kj}|}
              + \frac{|w_{ij}|}{\sum_{k} |w_{ik}|}\Big)\, \|X_{:,j}\|_2^{\,a}

    The first term normalizes by the weight's **input column** (the sum over the
    outputs, axis 0), the second by its **output row** (the sum over the inputs,
    axis 1). A row or column whose magnitudes sum to 0 contributes 0 (RIA's code
    divides 0 by 0: NaN). ``0 ** 0 = 1`` for a dead input with ``a = 0``.

    Parameters
    ----------
    w : array
        Real floating ``(out, in)`` weights.
    norms : array
        ``(in,)`` input norms, :func:`activation_norms`.
    a : float
        Exponent of the norms, ``>= 0`` (0.5 in the paper).

    Returns
    -------
    array
        ``(out, in)`` scores; prune the smallest with :func:`wanda_mask`'s rules via
        :func:`refprune.magnitude_mask` (``scores=``) or :func:`refprune.nm_mask`.

    Examples
    --------
    >>> import numpy as np
    >>> from refprune import ria_scores
    >>> ria_scores(np.asarray([[1.0, 3.0], [1.0, 1.0]]), np.asarray([4.0, 1.0]))  # (1/2 + 1/4) * 2, ...
    array([[1.5 , 1.5 ],
           [2.  , 0.75]])
    """
    xp = float_namespace(xp, w=w, norms=norms)
    _check_norms(w, norms, xp)
    check_no_nan("w", w, xp)
    a = check_finite_scalar("a", a, nonnegative=True)
    mag = xp.abs(w)
    col = xp.sum(mag, axis=0, keepdims=True)
    row = xp.sum(mag, axis=1, keepdims=True)
    one = xp.ones_like
    relative = mag / xp.where(col > 0, col, one(col)) + mag / xp.where(row > 0, row, one(row))
    return relative * xp.reshape(norms**a, (1, -1))


def outlier_ratio(scores, /, *, m=5.0, xp=None):
    r"""OWL's layer outlier ratio: the fraction of scores above ``m`` times their mean.

    .. math:: D = \frac{1}{|S|}\,\#\{ s \in S : s > m\,\bar S \}

    over all the scores ``S`` of one unit of the budget (OWL: every ``Linear`` of one
    decoder block, concatenated; the scores are Wanda's). OWL's code returns a
    percentage; :func:`refprune.owl_densities` only uses the ratios' min-max
    normalization, so the scale does not matter.

    Parameters
    ----------
    scores : array or list of arrays
        Real floating scores (e.g. :func:`wanda_scores` of each layer of a block).
    m : float
        The outlier threshold, a multiple of the mean (OWL's ``Hyper_m``; 5 in its scripts).

    Returns
    -------
    float
        In [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> from refprune import outlier_ratio
    >>> outlier_ratio([np.asarray([1.0, 1.0, 1.0]), np.asarray([1.0, 1.0, 20.0])], m=3.0)  # mean 25/6
    0.16666666666666666
    """
    arrays = list(scores) if isinstance(scores, (list, tuple)) else [scores]
    if not arrays:
        msg = "scores must hold at least one array (the scores of one block's layers)"
        raise ValueError(msg)
    xp = float_namespace(xp, **{f"scores[{i}]": s for i, s in enumerate(arrays)})
    m = check_finite_scalar("m", m, nonnegative=True)
    flats = [xp.reshape(xp.astype(s, xp.float64), (-1,)) for s in arrays]
    for i, f in enumerate(flats):
        check_no_nan(f"scores[{i}]", f, xp)
    size = sum(int(f.shape[0]) for f in flats)
    if size == 0:
        msg = "scores are empty: an outlier ratio needs at least one score"
        raise ValueError(msg)
    mean = sum(float(xp.sum(f)) for f in flats) / size
    return sum(int(xp.count_nonzero(f > m * mean)) for f in flats) / size


# --------------------------------------------------------------------------- reconstruction


def hessian(x, /, *, xp=None):
    r"""The Hessian of the layer's mean squared output error: :math:`H = \tfrac{2}{T} X^\top X`.

    For a row :math:`w_i` and its replacement :math:`\hat w_i`, the mean over the
    ``T`` tokens of the squared output error is
    :math:`\tfrac1T \|X (w_i - \hat w_i)^\top\|^2 = \tfrac12 (w_i-\hat w_i) H (w_i-\hat w_i)^\top`,
    whose Hessian is ``H``: the scale SparseGPT accumulates (``2/nsamples``), so
    ``H`` can be compared with its ``H`` entry by entry. SparseGPT's and OBC's
    results do not depend on the scale (its damping is relative).

    Parameters
    ----------
    x : array
        Real floating calibration inputs ``(tokens, in)`` (leading axes count as tokens), ``T >= 1``.

    Returns
    -------
    array
        ``(in, in)``, symmetric positive semi-definite.

    Examples
    --------
    >>> import numpy as np
    >>> from refprune import hessian
    >>> hessian(np.asarray([[1.0, 2.0], [3.0, 0.0]]))  # (2/2) X^T X
    array([[10.,  2.],
           [ 2.,  4.]])
    """
    xp = float_namespace(xp, x=x)
    x2 = _tokens(x, xp)
    tokens = int(x2.shape[0])
    if tokens == 0:
        msg = "x has no tokens: the Hessian needs at least one calibration input"
        raise ValueError(msg)
    return (2.0 / tokens) * (xp.matrix_transpose(x2) @ x2)


def reconstruction_error(w, w_hat, h, /, *, xp=None):
    r"""The layer's output error of ``w_hat`` in place of ``w``: :math:`\tfrac12 \sum_i \delta_i H \delta_i^\top`.

    .. math:: E = \tfrac12 \operatorname{tr}(\Delta H \Delta^\top), \qquad \Delta = w - \hat w

    With ``H = hessian(x)`` this is :math:`\tfrac1T \|X \Delta^\top\|_F^2`, the squared
    output error summed over the outputs and averaged over the tokens.

    Returns
    -------
    array
        0-d, in the promoted dtype of the inputs.

    Examples
    --------
    >>> import numpy as np
    >>> from refprune import hessian, reconstruction_error
    >>> x = np.asarray([[1.0, 2.0], [3.0, 0.0]])
    >>> float(reconstruction_error(np.asarray([[1.0, 1.0]]), np.asarray([[1.0, 0.0]]), hessian(x)))  # (2^2 + 0^2) / 2
    2.0
    """
    xp = float_namespace(xp, w=w, w_hat=w_hat, h=h)
    _check_hessian(w, h, xp)
    if tuple(w_hat.shape) != tuple(w.shape):
        msg = f"w_hat must have w's shape {tuple(w.shape)}, got {tuple(w_hat.shape)}"
        raise ValueError(msg)
    delta = w - w_hat
    return 0.5 * xp.sum((delta @ h) * delta)


def _stack_rows(size):
    """Rows per batch of the per-row solvers, so that a ``(rows, size, size)`` stack stays small."""
    return max(1, _STACK_FLOATS // max(1, size * size))


def masked_least_squares(w, h, mask, /, *, xp=None):
    r"""The kept weights that minimize the layer's output error for a fixed mask, row by row.

    For each row with kept inputs :math:`S` and pruned inputs :math:`P`:

    .. math:: \hat w_{i,S} = \arg\min_{v} (w_i - v) H (w_i - v)^\top \ \text{s.t.}\ v_P = 0
              \;=\; w_{i,S} + H_{SS}^{+} H_{SP}\, w_{i,P}, \qquad \hat w_{i,P} = 0

    with :math:`H_{SS}^{+}` the pseudo-inverse (relative cutoff ``max(in, in) * eps``):
    where :math:`H_{SS}` is singular (fewer tokens than kept inputs, dead inputs) the
    optimum is not unique, and this is the one closest to ``w``. No damping. Cost
    :math:`O(\text{out}\cdot\text{in}^3)` time (one pseudo-inverse per row), rows
    batched so the stacks stay below about 32 MiB.

    Parameters
    ----------
    w : array
        Real floating ``(out, in)`` weights.
    h : array
        ``(in, in)`` symmetric positive semi-definite, :func:`hessian`.
    mask : array of bool
        ``(out, in)``, True = keep.

    Returns
    -------
    array
        ``(out, in)``, 0 where ``mask`` is False.

    Examples
    --------
    >>> import numpy as np
    >>> from refprune import masked_least_squares
    >>> h = np.asarray([[2.0, 1.0], [1.0, 2.0]])
    >>> masked_least_squares(np.asarray([[1.0, 1.0]]), h, np.asarray([[True, False]]))  # 1 + (1/2) * 1
    array([[1.5, 0. ]])
    """
    xp = float_namespace(xp, w=w, h=h)
    _check_hessian(w, h, xp)
    _check_mask_like(w, mask, xp)
    rows, size = (int(d) for d in w.shape)
    dtype = xp.result_type(w.dtype, h.dtype)
    w, h = xp.astype(w, dtype), xp.astype(h, dtype)
    eye = xp.eye(size, dtype=dtype, device=device_of(w))
    rtol = size * xp.finfo(dtype).eps
    out = []
    step = _stack_rows(size)
    for r0 in range(0, rows, step):
        keep, wr = mask[r0 : min(r0 + step, rows), :], w[r0 : min(r0 + step, rows), :]
        kf = xp.astype(keep, dtype)
        system = h * (kf[:, :, None] * kf[:, None, :]) + eye * (1.0 - kf)[:, None, :]
        rhs = kf * (xp.where(keep, xp.zeros_like(wr), wr) @ h)
        correction = (xp.linalg.pinv(system, rtol=rtol) @ rhs[:, :, None])[:, :, 0]
        out.append(xp.where(keep, wr + correction, xp.zeros_like(wr)))
    return xp.concat(out, axis=0) if out else xp.astype(w, dtype)


def _check_mask_like(w, mask, xp):
    if not hasattr(mask, "dtype") or not xp.isdtype(mask.dtype, "bool"):
        got = getattr(mask, "dtype", type(mask).__name__)
        msg = f"mask must be a bool array (True = keep), got {got}; use mask != 0"
        raise TypeError(msg)
    if tuple(mask.shape) != tuple(w.shape):
        msg = f"mask must have w's shape {tuple(w.shape)}, got {tuple(mask.shape)}"
        raise ValueError(msg)


def _prepared(w, h, damp, xp):
    """SparseGPT's preparation: dead inputs (``H_jj = 0``) get ``H_jj = 1`` and ``w[:, j] = 0``;
    then ``damp * mean(diag H)`` is added to the diagonal. Returns ``(w, H)`` in the promoted dtype."""
    dtype = xp.result_type(w.dtype, h.dtype)
    w, h = xp.astype(w, dtype), xp.astype(h, dtype)
    size = int(w.shape[1])
    eye = xp.eye(size, dtype=dtype, device=device_of(w))
    dead = _diagonal(h, xp) == 0
    w = xp.where(xp.reshape(dead, (1, -1)), xp.zeros_like(w), w)
    h = h + eye * xp.astype(dead, dtype)
    if damp:
        h = h + eye * (damp * xp.mean(_diagonal(h, xp)))
    return w, h


def _inverse_factor(h, xp, *, upper):
    """``inv(h)`` and, with ``upper``, its upper Cholesky factor (else ``inv(h)`` again).

    A ``ValueError`` when ``h`` is not positive definite.
    """
    hint = "h (after the dead-input fix and the damping) is not positive definite; raise damp (e.g. damp=0.01)"
    try:
        xp.linalg.cholesky(h)  # the positive-definiteness check: raises or gives NaN
        hinv = xp.linalg.inv(h)
        factor = xp.linalg.cholesky(hinv, upper=True) if upper else hinv
    except (ValueError, RuntimeError, ArithmeticError) as err:
        raise ValueError(hint) from err
    if values_checkable(factor) and not bool(xp.all(xp.isfinite(factor))):
        raise ValueError(hint)
    return hinv, factor


# --------------------------------------------------------------------------- SparseGPT


def sparsegpt_prune(w, h, /, *, amount=None, n=None, m=None, block=128, damp=0.01, xp=None):
    r"""SparseGPT (Frantar & Alistarh 2023): prune column by column, updating the later columns (OBS).

    With :math:`H` prepared (dead inputs :math:`H_{jj}=0` set to :math:`H_{jj}=1`, their
    weights to 0; :math:`\lambda = \text{damp}\cdot\overline{\operatorname{diag} H}`
    added to the diagonal) and :math:`U` the upper Cholesky factor of :math:`H^{-1}`
    (:math:`U^\top U = H^{-1}`; row :math:`j` of :math:`U` is row :math:`j` of the inverse
    Hessian of the inputs :math:`j, j+1, \ldots` divided by the square root of its
    diagonal), the columns :math:`j = 0, 1, \ldots` are processed in order:

    .. math:: q_{:,j} = \text{mask}_{:,j}\, w_{:,j}, \qquad
              e_{:,j} = (w_{:,j} - q_{:,j}) / U_{jj}, \qquad
              w_{:,l} \mathrel{-}= e_{:,j}\, U_{jl} \quad (l > j)

    (the OBS update; its error :math:`(w_{ij}-q_{ij})^2 / U_{jj}^2` is the OBS saliency
    :math:`w_{ij}^2/[H_{F_j}^{-1}]_{jj}`). The later columns of a block of ``block``
    columns are updated one column at a time, the columns after the block once per
    block (the lazy update, :math:`W_{:,\text{after}} \mathrel{-}= E\, U_{\text{block},\text{after}}`).
    The mask:

    * ``amount``: at the start of each column block, from the block's current weights,
      prune exactly ``prune_count(amount, out * block_width)`` of the block's entries
      with the smallest :math:`w_{ij}^2 / U_{jj}^2` (ties: lower row-major index within
      the block kept first);
    * ``n, m``: when column :math:`j` starts an N:M group (:math:`j \bmod m = 0`, the
      **global** column index), keep in each row the ``n`` of the group's ``m`` columns
      with the largest :math:`w_{ij}^2 / U_{jj}^2` (the weights updated by every column
      before :math:`j`, including those of this block not yet lazily applied to the
      next one), so groups never straddle wrongly whatever ``block`` is.

    ``amount=0`` or ``n == m`` returns ``w`` unchanged (dead columns included).

    Parameters
    ----------
    w : array
        Real floating ``(out, in)`` weights.
    h : array
        ``(in, in)`` :func:`hessian` of the layer's calibration inputs (any positive scale).
    amount : float, optional
        Fraction of every column block to prune, in [0, 1].
    n, m : int, optional
        N:M instead: ``n`` kept of every ``m`` inputs (``in`` a multiple of ``m``).
    block : int
        Columns per lazy-update block (128 in the paper).
    damp : float
        Damping relative to the mean diagonal of ``H``, ``>= 0`` (0.01 in the paper).

    Returns
    -------
    (w_hat, mask)
        ``w_hat`` ``(out, in)`` in the promoted dtype, 0 where pruned; ``mask`` bool, True = keep.

    Notes
    -----
    Cost: :math:`O(\text{in}^3)` for the factorizations plus
    :math:`O(\text{out}\cdot\text{in}^2)` for the updates.

    Examples
    --------
    >>> import numpy as np
    >>> from refprune import hessian, sparsegpt_prune, nm_violations
    >>> rng = np.random.default_rng(0)
    >>> x, w = rng.normal(size=(64, 8)), rng.normal(size=(3, 8))
    >>> w_hat, mask = sparsegpt_prune(w, hessian(x), n=2, m=4, block=3)
    >>> int(mask.sum()), nm_violations(mask, n=2, m=4)
    (12, 0)
    """
    xp = float_namespace(xp, w=w, h=h)
    target = _check_target(amount, n, m)
    _check_hessian(w, h, xp)
    block = check_int("block", block, minimum=1)
    damp = check_finite_scalar("damp", damp, nonnegative=True)
    rows, cols = (int(d) for d in w.shape)
    kind, value = target
    if kind == "nm":
        _check_nm_width(cols, value[1])
        nothing = value[0] == value[1]
    else:
        value = _check_fraction(value)
        nothing = value == 0.0
    dtype = xp.result_type(w.dtype, h.dtype)
    if nothing or rows * cols == 0:
        return xp.astype(w, dtype, copy=True), xp.ones((rows, cols), dtype=xp.bool, device=device_of(w))
    w, h = _prepared(w, h, damp, xp)
    _, u = _inverse_factor(h, xp, upper=True)
    return _sparsegpt_columns(w, u, kind, value, block, xp)


def _sparsegpt_columns(w, u, kind, value, block, xp):
    """The column loop of :func:`sparsegpt_prune` on prepared ``w`` and the factor ``u``.

    The step a backend may replace: ``delegate("sparsegpt_columns", xp, w, u, block=...,
    counts=..., nm=...)`` with ``counts`` the pruned count of each column block (``None``
    for N:M) and ``nm`` the pair ``(n, m)`` (``None`` for an amount); it returns
    ``(w_hat, mask)``.
    """
    rows, cols = (int(d) for d in w.shape)
    counts = None
    if kind == "amount":
        counts = [prune_count(value, rows * (min(i1 + block, cols) - i1)) for i1 in range(0, cols, block)]
    out = delegate("sparsegpt_columns", xp, w, u, block=block, counts=counts, nm=value if kind == "nm" else None)
    if out is not None:
        return out
    d = _diagonal(u, xp)
    done_w, done_keep = [], []
    rest = w
    pending = None  # (first column, keep mask (rows, m)) of the current N:M group
    for i1 in range(0, cols, block):
        i2 = min(i1 + block, cols)
        w1, later = rest[:, : i2 - i1], rest[:, i2 - i1 :]
        u1 = u[i1:i2, i1:i2]
        if kind == "amount":
            score = w1 * w1 / xp.reshape(d[i1:i2] * d[i1:i2], (1, -1))
            keep1 = xp.reshape(keep_flat(xp.reshape(score, (-1,)), counts[i1 // block], xp), (rows, i2 - i1))
        qs, errs, keeps = [], [], []
        for j in range(i1, i2):
            i = j - i1
            if kind == "nm":
                n, m = value
                if j % m == 0:
                    pending = (j, _nm_group_keep(w1, later, errs, u, d, j, i1, i2, n, m, xp))
                keep_col = pending[1][:, j - pending[0]]
            else:
                keep_col = keep1[:, i]
            col = w1[:, i]
            q = xp.where(keep_col, col, xp.zeros_like(col))
            err = (col - q) / d[j]
            w1 = w1 - xp.reshape(err, (-1, 1)) * xp.reshape(u1[i, :], (1, -1))
            qs.append(q)
            errs.append(err)
            keeps.append(keep_col)
        if i2 < cols:
            later = later - xp.stack(errs, axis=1) @ u[i1:i2, i2:]
        done_w.append(xp.stack(qs, axis=1))
        done_keep.append(xp.stack(keeps, axis=1))
        rest = later
    return xp.concat(done_w, axis=1), xp.concat(done_keep, axis=1)


def _nm_group_keep(w1, later, errs, u, d, j, i1, i2, n, m, xp):
    """Keep mask ``(rows, m)`` of the N:M group at global columns ``j..j+m-1``.

    The group's current weights: inside the block, ``w1`` (updated by every column
    before ``j``); past the block's end, ``later`` with this block's pending updates
    from columns ``i1..j-1`` applied.
    """
    inside = w1[:, j - i1 : min(j + m, i2) - i1]
    parts = [inside]
    if j + m > i2:
        ahead = later[:, : j + m - i2]
        if errs:
            ahead = ahead - xp.stack(errs, axis=1) @ u[i1:j, i2 : j + m]
        parts.append(ahead)
    vals = xp.concat(parts, axis=1) if len(parts) > 1 else inside
    score = vals * vals / xp.reshape(d[j : j + m] * d[j : j + m], (1, -1))
    rows = int(score.shape[0])
    return xp.reshape(nm_keep(xp.reshape(score, (rows, m, 1)), n, xp, magnitude=False, name="scores"), (rows, m))


# --------------------------------------------------------------------------- OBC


def obc_prune(w, h, /, *, amount, damp=0.0, xp=None):
    r"""Exact greedy OBS per row (OBC, Frantar, Singh & Alistarh 2022): prune one weight at a time.

    For each row, with :math:`H` prepared as in :func:`sparsegpt_prune` and
    :math:`H^{-1}` the inverse over the inputs not pruned yet, ``k = prune_count(amount, in)``
    times: prune the remaining :math:`p` with the smallest
    :math:`w_p^2 / [H^{-1}]_{pp}` (ties: the higher index first), then

    .. math:: w \mathrel{-}= \frac{w_p}{[H^{-1}]_{pp}} H^{-1}_{:,p}, \qquad
              H^{-1} \mathrel{-}= \frac{H^{-1}_{:,p} H^{-1}_{p,:}}{[H^{-1}]_{pp}}

    (the OBS update and the inverse of :math:`H` with input :math:`p` removed). Each step
    is the exact optimum for the pruned set so far: with ``damp=0`` the result is
    :func:`masked_least_squares` on its own mask.

    Cost :math:`O(\text{out}\cdot k\cdot\text{in}^2)` time and :math:`O(\text{in}^2)` memory
    per row (rows batched to about 32 MiB): for small layers (see ``benchmarks/``).

    Parameters
    ----------
    w : array
        Real floating ``(out, in)`` weights.
    h : array
        ``(in, in)``, :func:`hessian`; positive definite after the dead-input fix unless ``damp > 0``.
    amount : int or float
        Fraction (or int count) of every row to prune.
    damp : float
        Damping relative to the mean diagonal, ``>= 0``.

    Returns
    -------
    (w_hat, mask)

    Examples
    --------
    >>> import numpy as np
    >>> from refprune import obc_prune
    >>> w_hat, mask = obc_prune(np.asarray([[1.0, 1.0]]), np.asarray([[2.0, 1.0], [1.0, 2.0]]), amount=1)
    >>> w_hat, mask  # saliencies 1/(2/3) both: the higher index goes; w_0 += 1/(2/3) * (1/3)
    (array([[1.5, 0. ]]), array([[ True, False]]))
    """
    xp = float_namespace(xp, w=w, h=h)
    _check_hessian(w, h, xp)
    damp = check_finite_scalar("damp", damp, nonnegative=True)
    rows, cols = (int(d) for d in w.shape)
    k = prune_count(amount, cols)
    dtype = xp.result_type(w.dtype, h.dtype)
    if k == 0 or rows == 0:
        return xp.astype(w, dtype, copy=True), xp.ones((rows, cols), dtype=xp.bool, device=device_of(w))
    w, h = _prepared(w, h, damp, xp)
    hinv, _ = _inverse_factor(h, xp, upper=False)
    step = _stack_rows(cols)
    parts = [_obc_rows(w[r0 : min(r0 + step, rows), :], hinv, k, xp) for r0 in range(0, rows, step)]
    return xp.concat([p[0] for p in parts], axis=0), xp.concat([p[1] for p in parts], axis=0)


def _obc_rows(w, hinv, k, xp):
    """Greedy OBS on a batch of rows, each with its own copy of the inverse Hessian."""
    rows, cols = (int(d) for d in w.shape)
    dev = device_of(w)
    index = xp.arange(cols, device=dev)
    hinv = xp.broadcast_to(hinv, (rows, cols, cols))
    pruned = xp.zeros((rows, cols), dtype=xp.bool, device=dev)
    inf = xp.full((rows, cols), math.inf, dtype=w.dtype, device=dev)
    for _ in range(k):
        diag = _diagonal(hinv, xp)
        safe = xp.where(pruned, xp.ones_like(diag), diag)
        score = xp.where(pruned, inf, w * w / safe)
        p = (cols - 1) - xp.argmin(xp.flip(score, axis=1), axis=1)  # the highest index among the smallest
        hit = xp.reshape(index, (1, -1)) == xp.reshape(p, (-1, 1))
        onehot = xp.astype(hit, w.dtype)
        d = xp.sum(safe * onehot, axis=1)
        wp = xp.sum(w * onehot, axis=1)
        column = (hinv @ onehot[:, :, None])[:, :, 0]
        w = w - xp.reshape(wp / d, (-1, 1)) * column
        pruned = pruned | hit
        w = xp.where(pruned, xp.zeros_like(w), w)
        hinv = hinv - column[:, :, None] * column[:, None, :] / xp.reshape(d, (-1, 1, 1))
    return w, ~pruned
