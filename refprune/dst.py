"""Dynamic sparse training: drop some kept connections, grow as many pruned ones (SET, RigL).

One update of a layer's mask keeps the number of kept entries constant:

1. **drop** the ``k`` kept entries with the smallest ``|w|`` (or ``drop_scores``),
   ``k = prune_count(drop_fraction, n_kept)``;
2. **grow** the ``k`` entries with the largest ``grow_scores`` among those that were
   pruned **before** this update (an entry dropped in step 1 is never grown back in
   the same update);

ties by the protocol's tie rule (score descending, lower flat index first). SET
(Mocanu et al. 2018) grows at random (``grow_scores=random_scores(w, rng=rng)``),
RigL (Evci et al. 2020) where the dense gradient is largest
(``grow_scores=abs(g)``, ``g`` the gradient of the loss with respect to the masked
weights, pruned entries included). RigL anneals ``drop_fraction`` with
:func:`cosine_drop_fraction`.

Grown weights start at zero: after ``new = drop_grow(w, mask, ...)``, set
``w = apply_mask(w, mask & new)`` (kept and surviving entries keep their value,
dropped and grown ones are 0), and reset their optimizer state the same way.

>>> import numpy as np
>>> import refprune as rp
>>> w = np.asarray([0.9, 0.0, -0.2, 0.0, 0.5, 0.0])
>>> mask = w != 0
>>> new = rp.drop_grow(w, mask, drop_fraction=1 / 3, grow_scores=np.asarray([0.0, 0.1, 9.0, 0.7, 0.0, 0.3]))
>>> new  # drops -0.2 (index 2: its 9.0 cannot bring it back), grows index 3
array([ True, False, False,  True,  True, False])
>>> rp.apply_mask(w, mask & new)
array([0.9, 0. , 0. , 0. , 0.5, 0. ])
"""

from __future__ import annotations

import math

from ._array import (
    check_finite_scalar,
    check_float,
    check_int,
    check_same_device,
    check_same_shape,
    count_true,
    device_of,
    flat_size,
    float_namespace,
    namespace,
    values_checkable,
)
from .masks import check_mask, keep_given_threshold, kth_smallest, prune_count

__all__ = ["drop_grow", "cosine_drop_fraction"]


def _top_among(scores, among, n_top, n_among, xp):
    """Bool mask of the ``n_top`` best entries among the candidates ``among`` (tie rule), 1-D."""
    n = scores.shape[0]
    if n_top == 0:
        return xp.zeros((n,), dtype=xp.bool, device=device_of(scores))
    if n_top == n_among:
        return among
    lowest = xp.full_like(scores, -math.inf)
    t = kth_smallest(xp.where(among, scores, lowest), n - n_top, xp)  # the n_top-th largest candidate
    return keep_given_threshold([scores], t, n_top, xp, among=[among])[0]


def _check_no_nan_among(name, scores, among, xp):
    if flat_size(scores) and values_checkable(scores) and bool(xp.any(xp.isnan(scores) & among)):
        msg = f"{name} contains NaN where it is ranked; replace NaN entries before the update"
        raise ValueError(msg)


def drop_grow(w, mask, /, *, drop_fraction, grow_scores, drop_scores=None, rounding="half-even", xp=None):
    r"""One dynamic-sparse-training update of ``mask``: drop ``k`` kept entries, grow ``k`` pruned ones.

    With :math:`K` the kept set (``mask``), :math:`P` its complement and
    :math:`k = \min(\mathrm{prune\_count}(\text{drop\_fraction}, |K|), |P|)`:

    .. math::
        D = \text{the } k \text{ entries of } K \text{ with the smallest } |w| \ (\text{or drop\_scores}),\\
        G = \text{the } k \text{ entries of } P \text{ with the largest grow\_scores},\\
        \text{new mask} = (K \setminus D) \cup G .

    Both rankings follow the tie rule (score descending, lower flat index first):
    among equal drop scores the higher index is dropped first, among equal grow
    scores the lower index is grown first. :math:`G \subseteq P` is chosen among the
    entries pruned before the update, so a just-dropped entry is never grown back in
    the same update (RigL's code may grow it back), and :math:`|D| = |G| = k`: the
    number of kept entries never changes. ``k`` is capped at :math:`|P|` (a dense
    layer has nothing to grow and is left as it is).

    Grown weights start at zero: set ``w = apply_mask(w, mask & new)``.

    Parameters
    ----------
    w : array
        Real floating weights.
    mask : array of bool
        The current mask, ``w``'s shape (True = kept).
    drop_fraction : float or int
        Fraction of the **kept** entries to drop (RigL's ``drop_fraction``), or an
        int count in ``[0, n_kept]``; see :func:`refprune.prune_count`.
    grow_scores : array
        Real floating scores of ``w``'s shape; the largest among the pruned entries
        are grown (RigL: ``abs(g)``; SET: :func:`refprune.random_scores`).
    drop_scores : array, optional
        Real floating scores used instead of ``|w|`` to choose what to drop (the
        smallest among the kept entries are dropped).
    rounding : {"half-even", "floor", "ceil"}
        How ``drop_fraction * n_kept`` becomes ``k`` (RigL truncates: ``"floor"``).

    Returns
    -------
    array of bool
        The new mask, ``w``'s shape, with as many True entries as ``mask``.

    Raises
    ------
    TypeError
        Non-array or non-floating ``w``/scores, a non-bool ``mask``, mixed namespaces.
    ValueError
        Mismatched shapes or devices, a bad ``drop_fraction``/``rounding``, NaN among
        the ranked scores (``w`` or ``drop_scores`` on the kept entries,
        ``grow_scores`` on the pruned ones).

    Examples
    --------
    >>> import numpy as np
    >>> from refprune import drop_grow
    >>> w = np.asarray([[0.3, 0.0], [-0.1, 0.2]])
    >>> g = np.asarray([[0.0, 5.0], [0.0, 0.0]])
    >>> drop_grow(w, w != 0, drop_fraction=0.34, grow_scores=np.abs(g))  # k = round(1.02) = 1
    array([[ True,  True],
           [False,  True]])
    """
    xp = float_namespace(xp, w=w, grow_scores=grow_scores)
    namespace(xp, w=w, mask=mask)
    check_mask("mask", mask, xp)
    check_same_shape("w", w, "mask", mask)
    check_same_device("w", w, "mask", mask)
    check_same_shape("w", w, "grow_scores", grow_scores)
    if drop_scores is not None:
        namespace(xp, w=w, drop_scores=drop_scores)
        check_float("drop_scores", drop_scores, xp)
        check_same_shape("w", w, "drop_scores", drop_scores)
        check_same_device("w", w, "drop_scores", drop_scores)
    kept = xp.reshape(mask, (-1,))
    pruned = ~kept
    n = flat_size(w)
    n_kept = int(count_true(kept, xp)) if n else 0
    n_pruned = n - n_kept
    k = min(prune_count(drop_fraction, n_kept, rounding=rounding), n_pruned)
    drop = xp.reshape(w if drop_scores is None else drop_scores, (-1,))
    grow = xp.reshape(grow_scores, (-1,))
    _check_no_nan_among("w" if drop_scores is None else "drop_scores", drop, kept, xp)
    _check_no_nan_among("grow_scores", grow, pruned, xp)
    if drop_scores is None:
        drop = xp.abs(drop)
    if k == 0:
        return xp.asarray(mask, copy=True)
    survivors = _top_among(drop, kept, n_kept - k, n_kept, xp)
    grown = _top_among(grow, pruned, k, n_pruned, xp)
    return xp.reshape(survivors | grown, tuple(w.shape))


def cosine_drop_fraction(step, *, initial, end):
    r"""RigL's cosine annealing of the drop fraction (Evci et al. 2020, eq. 1).

    .. math:: f(t) = \frac{\text{initial}}{2}\Big(1 + \cos\frac{\pi \min(t, \text{end})}{\text{end}}\Big)

    ``initial`` at step 0, ``initial/2`` at ``end/2``, and exactly 0 from ``end`` on.
    This is TensorFlow's ``cosine_decay(initial, step, end)`` that RigL's code calls;
    note that it passes ``decay_steps = end_step - begin_step`` with the *absolute*
    global step, so with a ``begin_step > 0`` RigL's fraction reaches 0 at step
    ``end_step - begin_step``, not at ``end_step``: to reproduce it, call this with
    ``end=end_step - begin_step``.

    Parameters
    ----------
    step : int
        Training step, ``>= 0``.
    initial : float
        Drop fraction at step 0, in [0, 1] (RigL: 0.3).
    end : int
        Step at which the fraction reaches 0, ``>= 1``.

    Returns
    -------
    float

    Examples
    --------
    >>> from refprune import cosine_drop_fraction
    >>> [round(cosine_drop_fraction(s, initial=0.3, end=100), 4) for s in (0, 25, 50, 100, 150)]
    [0.3, 0.2561, 0.15, 0.0, 0.0]
    """
    step, end = check_int("step", step, minimum=0), check_int("end", end, minimum=1)
    initial = check_finite_scalar("initial", initial)
    if not 0.0 <= initial <= 1.0:
        msg = f"initial must be a fraction in [0, 1], got initial={initial!r}"
        raise ValueError(msg)
    if step >= end:
        return 0.0
    return initial / 2.0 * (1.0 + math.cos(math.pi * int(step) / int(end)))
