r"""Importance scores from weights and gradients: the ``scores=`` of every mask.

Each function returns one score per weight (same shape, namespace, device and
floating dtype); every mask (:func:`refprune.magnitude_mask`,
:func:`refprune.global_magnitude_mask`, :func:`refprune.structured_mask`,
:func:`refprune.nm_mask`, :func:`refprune.block_mask`) takes them through
``scores=`` and prunes the **smallest** scores, with the protocol's tie rule.
``g`` is the gradient of the loss with respect to ``w`` (for masked weights: with
respect to the masked weight, as autograd gives it).

==========================  ============================================  ==========================
function                    score                                         from
==========================  ============================================  ==========================
:func:`saliency_scores`     :math:`|w \odot g|`                           SNIP (Lee et al. 2019)
:func:`taylor_scores`       :math:`(w \odot g)^2` or :math:`|w \odot g|`   Molchanov et al. 2019 / 2017
:func:`movement_scores`     :math:`S - w \odot g`, accumulated            Sanh et al. 2020
:func:`random_scores`       uniform noise in [0, 1) from a generator      random pruning, SET's growth
==========================  ============================================  ==========================

NaN or infinite inputs give NaN or infinite scores (the masks then raise on NaN);
nothing here raises on values.

>>> import numpy as np
>>> import refprune as rp
>>> w, g = np.asarray([0.5, -2.0, 1.0, 3.0]), np.asarray([4.0, 0.5, -0.1, 0.0])
>>> rp.magnitude_mask(w, amount=2, scores=rp.saliency_scores(w, g))  # |w*g| = 2, 1, 0.1, 0
array([ True,  True, False, False])
"""

from __future__ import annotations

from ._array import check_same_device, check_same_shape, float_namespace, namespace

__all__ = ["saliency_scores", "taylor_scores", "movement_scores", "random_scores"]

TAYLOR_KINDS = ("squared", "abs")


def _pair(xp, w, g):
    xp = float_namespace(xp, w=w, g=g)
    check_same_shape("w", w, "g", g)
    return xp


def saliency_scores(w, g, /, *, xp=None):
    r"""Connection sensitivity (SNIP): :math:`s = |w \odot g|`.

    Lee, Ajanthan and Torr (2019) rank connections by :math:`|g_i w_i|` normalized
    by :math:`\sum_j |g_j w_j|`; the normalization does not change the ranking and is
    left out. Pass the result as ``scores=`` to any mask; SNIP prunes once, before
    training, with :func:`refprune.global_magnitude_mask` over all layers.

    Parameters
    ----------
    w, g : array
        Real floating weights and the loss gradient, same shape.

    Returns
    -------
    array
        ``|w * g|`` (``inf`` where the product overflows, ``0`` where it underflows).

    Examples
    --------
    >>> import numpy as np
    >>> from refprune import saliency_scores
    >>> saliency_scores(np.asarray([0.5, -2.0, 1.0]), np.asarray([4.0, 0.5, -0.1]))
    array([2. , 1. , 0.1])
    """
    xp = _pair(xp, w, g)
    return xp.abs(w * g)


def taylor_scores(w, g, /, *, kind="squared", xp=None):
    r"""First-order Taylor importance: the loss change from zeroing ``w``, estimated by ``-w g``.

    .. math:: \Delta L_i \approx -g_i w_i, \qquad
              s_i = (g_i w_i)^2 \ (\text{"squared"}), \qquad s_i = |g_i w_i| \ (\text{"abs"})

    ``"squared"`` is the default: it is Molchanov et al. (2019)'s per-parameter
    criterion, and it adds up over a group into a sum of squared contributions,
    which is what :func:`refprune.structured_mask` (``scores=``, a sum per slice) and
    :func:`refprune.block_mask` (``pool="l1"``) compute; ``"abs"`` is the magnitude
    of the estimate (Molchanov et al. 2017) and equals :func:`saliency_scores`. On
    single entries both rank alike (one is the square of the other); they differ
    once summed over groups. Note that Molchanov et al. (2019)'s group criterion is
    :math:`(\sum_{s \in S} g_s w_s)^2`, the square of the summed estimate: pass
    per-slice scores of that form yourself if you want it.

    Parameters
    ----------
    w, g : array
        Real floating weights and the loss gradient, same shape.
    kind : {"squared", "abs"}

    Returns
    -------
    array

    Examples
    --------
    >>> import numpy as np
    >>> from refprune import taylor_scores
    >>> w, g = np.asarray([0.5, -2.0, 1.0]), np.asarray([4.0, 0.5, -0.1])
    >>> taylor_scores(w, g)
    array([4.  , 1.  , 0.01])
    >>> taylor_scores(w, g, kind="abs")
    array([2. , 1. , 0.1])
    """
    if not isinstance(kind, str) or kind not in TAYLOR_KINDS:
        msg = f"kind must be one of {', '.join(map(repr, TAYLOR_KINDS))}, got kind={kind!r}"
        raise ValueError(msg)
    xp = _pair(xp, w, g)
    p = w * g
    return p * p if kind == "squared" else xp.abs(p)


def movement_scores(w, g, /, *, previous=None, xp=None):
    r"""Movement pruning scores (Sanh, Wolf and Rush 2020), accumulated step by step.

    .. math:: S^{(t+1)} = S^{(t)} - w^{(t)} \odot g^{(t)}, \qquad S^{(0)} = 0,

    so that :math:`S = -\sum_t w^{(t)} g^{(t)}`: the paper's
    :math:`S = -\alpha_S \sum_t (\partial L / \partial W)^{(t)} W^{(t)}` with
    :math:`\alpha_S = 1` (scale ``g`` for another rate). Under gradient descent a
    weight moving **away from zero** has :math:`w g < 0` and gains score; the masks
    prune the smallest scores, i.e. the weights moving toward zero. This is the sign
    of the paper and of the straight-through score update in its code
    (:math:`\partial L/\partial S = (\partial L / \partial W') W`, then
    :math:`S \leftarrow S - \alpha_S\, \partial L / \partial S`). Call once per step
    with the previous scores; the scores are signed, so rank them as given (not by
    magnitude).

    Parameters
    ----------
    w, g : array
        Real floating weights and the loss gradient at this step, same shape.
    previous : array, optional
        The scores so far (``w``'s shape); zeros when left out.

    Returns
    -------
    array
        The updated scores, a new array (``previous`` is not modified).

    Examples
    --------
    >>> import numpy as np
    >>> from refprune import movement_scores
    >>> w = np.asarray([1.0, 1.0, -1.0])
    >>> s = movement_scores(w, np.asarray([-0.5, 0.5, -0.5]))  # w grows, shrinks, shrinks
    >>> s
    array([ 0.5, -0.5, -0.5])
    >>> movement_scores(w, np.asarray([-0.5, 0.0, 0.5]), previous=s)
    array([ 1. , -0.5,  0. ])
    """
    xp = _pair(xp, w, g)
    step = -(w * g)
    if previous is None:
        return step
    xp = float_namespace(xp, w=w, previous=previous)
    check_same_shape("w", w, "previous", previous)
    return previous + step


def random_scores(w, /, *, rng, xp=None):
    r"""Random scores for ``w``: uniform noise in [0, 1) drawn from ``rng``, ``w``'s shape and dtype.

    Ranking by these scores prunes a uniformly random subset of exactly ``k``
    entries (random pruning) and, as ``grow_scores`` of :func:`refprune.drop_grow`,
    grows random connections (SET). ``rng`` is a refprune generator
    (``refprune.backends.get(name).rng(seed, stream="reference")``, or any object
    with ``uniform(shape, dtype, low, high)`` returning an array of ``w``'s
    namespace and device): with the ``"reference"`` stream every backend draws the
    same numbers (NumPy PCG64 on the host, in float64, then cast), so a seed gives
    the same mask everywhere, up to the rounding of the cast.

    Parameters
    ----------
    w : array
        Real floating array; only its shape, dtype, namespace and device are used.
    rng : generator
        Where the noise comes from.

    Returns
    -------
    array
        ``rng.uniform(w.shape, w.dtype, 0, 1)``.

    Examples
    --------
    >>> import numpy as np
    >>> from refprune import backends, magnitude_mask, random_scores
    >>> rng = backends.get("numpy").rng(0, stream="reference")
    >>> w = np.ones(6)
    >>> int((~magnitude_mask(w, amount=0.5, scores=random_scores(w, rng=rng))).sum())
    3
    """
    xp = float_namespace(xp, w=w)
    uniform = getattr(rng, "uniform", None)
    if not callable(uniform):
        msg = (
            f"rng must be a generator with uniform(shape, dtype, low, high), got {type(rng).__name__}; "
            "use refprune.backends.get(name).rng(seed, stream='reference')"
        )
        raise TypeError(msg)
    u = uniform(tuple(int(d) for d in w.shape), w.dtype, 0.0, 1.0)
    namespace(xp, w=w, u=u)
    check_same_shape("w", w, "rng.uniform(...)", u)
    check_same_device("w", w, "rng.uniform(...)", u)
    if u.dtype != w.dtype:
        msg = f"rng.uniform returned dtype {u.dtype} for w of dtype {w.dtype}; the generator must honour dtype"
        raise TypeError(msg)
    return u
