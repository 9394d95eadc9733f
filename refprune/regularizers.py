r"""Regularizers, each with its gradient beside it.

Every penalty returns a 0-d array of the input's floating dtype. Its ``_grad`` takes
no upstream argument: it is the gradient of the penalty itself, so multiply it by
your loss scale (e.g. ``1/N``) yourself.

Groups. ``l0_penalty`` and ``group_lasso_penalty`` group ``w`` into the slices
``w[..., g, ...]`` at index ``g`` along ``axis``. For a dense weight stored
``(in, out)`` as in the L0 paper's code, ``axis=0`` gives one group per input unit
(a row); for a convolution weight ``(out, in, kh, kw)``, ``axis=0`` gives one group
per output channel.
"""

from __future__ import annotations

import math

from ._array import (
    check_finite_scalar,
    device_of,
    check_same_shape,
    flat_size,
    float_namespace,
    normalize_axis,
)
from ._dispatch import delegate
from .gates import (
    BETA,
    EPS,
    GAMMA,
    ZETA,
    check_constants,
    hard_concrete_prob_nonzero,
    hard_concrete_prob_nonzero_grad,
)

__all__ = [
    "l0_penalty",
    "l0_penalty_grad",
    "l2_penalty",
    "l2_penalty_grad",
    "l1_penalty",
    "l1_penalty_grad",
    "group_lasso_penalty",
    "group_lasso_penalty_grad",
    "rvsm_penalty",
    "rvsm_penalty_grad",
]


def _scalar(value, xp):
    """A 0-d array (NumPy's reductions return scalars, not 0-d arrays)."""
    return xp.asarray(value)


def _group_axes(w, axis):
    """``(axis, other_axes, group_size)`` for groups = slices of ``w`` along ``axis``."""
    if w.ndim == 0:
        msg = "w must have at least one dimension (groups are slices of w along axis), got a 0-d array"
        raise ValueError(msg)
    axis = normalize_axis(axis, w.ndim)
    other = tuple(i for i in range(w.ndim) if i != axis)
    return axis, other, math.prod(int(w.shape[i]) for i in other)


def _gate_shape(w, axis):
    """Shape that broadcasts a per-group vector against ``w``."""
    return tuple(int(w.shape[i]) if i == axis else 1 for i in range(w.ndim))


# --------------------------------------------------------------------------- L0


def l0_penalty_and_grad(
    log_alpha, w, /, *, lam, weight_decay=0.0, axis=0, beta=BETA, gamma=GAMMA, zeta=ZETA, eps=EPS, value=True,
    grad=True, w_grad=True, xp=None,
):
    r"""``(R, d_log_alpha, d_w)``: :func:`l0_penalty` and :func:`l0_penalty_grad` in one pass.

    The one implementation behind both and behind the gated layers, which need the
    value and the gradient at every step: the inputs are validated once and
    :math:`p = P(z \ne 0)` and the group costs computed once. ``None`` stands for what
    is not asked (``value=False`` or ``grad=False``). With ``weight_decay = 0`` the
    penalty does not depend on ``w``: ``d_w`` is zeros and the squares of ``w`` are not
    computed. ``w_grad=False`` skips ``d_w`` (``None``): a gated layer asks for it only when
    ``weight_decay`` is not 0. Parameters as for :func:`l0_penalty`.

    Examples
    --------
    >>> import numpy as np
    >>> from refprune.regularizers import l0_penalty_and_grad
    >>> r, da, dw = l0_penalty_and_grad(np.array([50.0, -50.0]), np.ones((2, 3)), lam=1.0)
    >>> float(r), dw.shape
    (3.0, (2, 3))
    """
    xp, axis, weight_decay, size = _l0_setup(log_alpha, w, lam, weight_decay, axis, beta, gamma, zeta, eps, xp)
    kw = {"beta": beta, "gamma": gamma, "zeta": zeta, "eps": eps, "xp": xp}
    p = hard_concrete_prob_nonzero(log_alpha, **kw)
    d_w = None
    if weight_decay:
        sq_g, d_w = _decay_terms(w, p, weight_decay, axis, grad and w_grad, xp)
        cost = lam * size + (0.5 * weight_decay) * sq_g
    else:
        cost = xp.full(log_alpha.shape, lam * size, dtype=w.dtype, device=device_of(w))
    r = _scalar(xp.sum(p * cost), xp) if value else None
    if not grad:
        return r, None, None
    d_log_alpha = hard_concrete_prob_nonzero_grad(log_alpha, xp.astype(cost, log_alpha.dtype, copy=False), **kw)
    if w_grad and not weight_decay:
        d_w = xp.zeros_like(w)
    return r, d_log_alpha, d_w


def _l0_setup(log_alpha, w, lam, weight_decay, axis, beta, gamma, zeta, eps, xp):
    """``(xp, axis, weight_decay, group_size)`` after checking the arguments of :func:`l0_penalty_and_grad`."""
    xp = float_namespace(xp, log_alpha=log_alpha, w=w)
    lam = check_finite_scalar("lam", lam, nonnegative=True)
    weight_decay = check_finite_scalar("weight_decay", weight_decay, nonnegative=True)
    check_constants(beta, gamma, zeta, eps)
    axis, _, size = _group_axes(w, axis)
    if tuple(log_alpha.shape) != (int(w.shape[axis]),):
        msg = (
            f"log_alpha must have shape (w.shape[axis],) = ({int(w.shape[axis])},): one gate per slice "
            f"of w along axis={axis}, got log_alpha.shape={tuple(log_alpha.shape)}, w.shape={tuple(w.shape)}"
        )
        raise ValueError(msg)
    return xp, axis, weight_decay, size


def _decay_terms(w, p, weight_decay, axis, grad, xp):
    r"""``(sq_g, d_w)``: the weight-decay terms of the L0 penalty, one pass over ``w``.

    .. math::

        \text{sq}_g = \sum_{j \in g} w_j^2, \qquad
        \frac{\partial R}{\partial w_j} = (\text{wd}\, w_j)\, p_g \quad (j \in g)

    for every group ``g`` (slice of ``w`` along ``axis``), ``d_w`` in ``w``'s dtype and
    ``None`` unless ``grad``. The backend's fast path (``refprune._dispatch`` op
    ``"l0_decay_terms"``, same operations in the same order) when there is one, else these lines.
    """
    out = delegate("l0_decay_terms", xp, w, p, weight_decay=weight_decay, axis=axis, grad=grad)
    if out is not None:
        return out
    other = tuple(i for i in range(w.ndim) if i != axis)
    sq = w * w
    sq_g = xp.sum(sq, axis=other) if other else sq
    if not grad:
        return sq_g, None
    return sq_g, xp.astype((weight_decay * w) * xp.reshape(p, _gate_shape(w, axis)), w.dtype, copy=False)


def l0_penalty(log_alpha, w, /, *, lam, weight_decay=0.0, axis=0, beta=BETA, gamma=GAMMA, zeta=ZETA, eps=EPS, xp=None):
    r"""Expected L0 (+ L2) penalty under hard-concrete gates, one gate per group.

    .. math::

        R(\log\alpha, w) = \sum_g P(z_g \ne 0) \sum_{j \in g}
            \left(\lambda + \tfrac{\text{weight\_decay}}{2} w_j^2\right)

    with :math:`P(z_g \ne 0)` from :func:`~refprune.hard_concrete_prob_nonzero`
    (clamped to [eps, 1-eps]). This is the negative of the paper's ``_reg_w`` for the
    weights; see the README for how its bias terms map onto this function.

    Parameters
    ----------
    log_alpha : array
        Gate locations, shape ``(w.shape[axis],)``.
    w : array
        Weights, at least 1-d; group ``g`` is the slice at index ``g`` along ``axis``.
    lam : float
        L0 strength per parameter, finite and >= 0.
    weight_decay : float
        L2 strength, finite and >= 0.
    axis : int
        The gated axis of ``w``: 0 for dense ``(in, out)`` (input units) and for
        conv ``(out, in, kh, kw)`` (output channels).
    beta, gamma, zeta, eps : float
        Hard-concrete constants.
    xp : namespace, optional
        Array namespace; inferred from the inputs when ``None``.

    Returns
    -------
    array
        0-d penalty.

    Raises
    ------
    TypeError
        A non-floating ``log_alpha`` or ``w``; a non-int ``axis``.
    ValueError
        ``log_alpha.shape != (w.shape[axis],)``; ``axis`` out of range; a 0-d ``w``;
        negative or non-finite ``lam`` / ``weight_decay``; a bad gate constant.

    Examples
    --------
    >>> import numpy as np
    >>> from refprune import l0_penalty
    >>> w = np.ones((2, 3))  # dense (in=2, out=3): gates on the 2 rows
    >>> float(l0_penalty(np.array([50.0, -50.0]), w, lam=1.0))  # ~ 1 open row of 3
    3.0
    """
    consts = {"beta": beta, "gamma": gamma, "zeta": zeta, "eps": eps, "xp": xp}
    return l0_penalty_and_grad(log_alpha, w, lam=lam, weight_decay=weight_decay, axis=axis, grad=False, **consts)[0]


def l0_penalty_grad(
    log_alpha, w, /, *, lam, weight_decay=0.0, axis=0, beta=BETA, gamma=GAMMA, zeta=ZETA, eps=EPS, xp=None
):
    r"""Gradient of :func:`l0_penalty`: ``(d_log_alpha, d_w)``.

    .. math::

        \frac{\partial R}{\partial \log\alpha_g} = p_g(1 - p_g) \sum_{j \in g}
            \left(\lambda + \tfrac{\text{weight\_decay}}{2} w_j^2\right), \qquad
        \frac{\partial R}{\partial w_j} = p_{g(j)}\, \text{weight\_decay}\, w_j

    with the first 0 where the clamp of :math:`p` is active. No upstream argument:
    multiply by your loss scale.

    Parameters
    ----------
    log_alpha, w, lam, weight_decay, axis, beta, gamma, zeta, eps, xp
        As for :func:`l0_penalty`.

    Returns
    -------
    tuple of array
        ``(d_log_alpha, d_w)``, shapes and dtypes of ``log_alpha`` and ``w``.

    Examples
    --------
    >>> import numpy as np
    >>> from refprune import l0_penalty_grad
    >>> da, dw = l0_penalty_grad(np.array([50.0]), np.array([[2.0, -1.0]]), lam=1.0, weight_decay=0.5)
    >>> da  # p is clamped to 1 - eps: no gradient to log_alpha
    array([0.])
    >>> dw  # p * weight_decay * w, with p = 1 - 1e-6
    array([[ 0.999999 , -0.4999995]])
    """
    consts = {"beta": beta, "gamma": gamma, "zeta": zeta, "eps": eps, "xp": xp}
    _, d_log_alpha, d_w = l0_penalty_and_grad(
        log_alpha, w, lam=lam, weight_decay=weight_decay, axis=axis, value=False, **consts
    )
    return d_log_alpha, d_w


# --------------------------------------------------------------------------- L2, L1


def l2_penalty(w, /, *, lam=1.0, xp=None):
    r"""L2 penalty (weight decay).

    .. math:: R(w) = \frac{\lambda}{2} \sum_j w_j^2

    Parameters
    ----------
    w : array
        Weights, real floating, any shape.
    lam : float
        Strength, finite and >= 0.
    xp : namespace, optional
        Array namespace; inferred from ``w`` when ``None``.

    Returns
    -------
    array
        0-d penalty.

    Examples
    --------
    >>> import numpy as np
    >>> from refprune import l2_penalty
    >>> float(l2_penalty(np.array([3.0, 4.0]), lam=2.0))
    25.0
    """
    xp = float_namespace(xp, w=w)
    lam = check_finite_scalar("lam", lam, nonnegative=True)
    return _scalar(xp.sum(w * w) * (0.5 * lam), xp)


def l2_penalty_grad(w, /, *, lam=1.0, xp=None):
    r"""Gradient of :func:`l2_penalty`: :math:`\lambda w`. No upstream argument.

    Examples
    --------
    >>> import numpy as np
    >>> from refprune import l2_penalty_grad
    >>> l2_penalty_grad(np.array([3.0, -4.0]), lam=2.0)
    array([ 6., -8.])
    """
    xp = float_namespace(xp, w=w)
    lam = check_finite_scalar("lam", lam, nonnegative=True)
    return lam * w


def l1_penalty(w, /, *, lam=1.0, xp=None):
    r"""L1 penalty.

    .. math:: R(w) = \lambda \sum_j |w_j|

    Parameters
    ----------
    w : array
        Weights, real floating, any shape.
    lam : float
        Strength, finite and >= 0.
    xp : namespace, optional
        Array namespace; inferred from ``w`` when ``None``.

    Returns
    -------
    array
        0-d penalty.

    Examples
    --------
    >>> import numpy as np
    >>> from refprune import l1_penalty
    >>> float(l1_penalty(np.array([3.0, -4.0]), lam=0.5))
    3.5
    """
    xp = float_namespace(xp, w=w)
    lam = check_finite_scalar("lam", lam, nonnegative=True)
    return _scalar(xp.sum(xp.abs(w)) * lam, xp)


def l1_penalty_grad(w, /, *, lam=1.0, xp=None):
    r"""Subgradient of :func:`l1_penalty`: :math:`\lambda\,\mathrm{sign}(w)`, 0 at 0.

    No upstream argument.

    Examples
    --------
    >>> import numpy as np
    >>> from refprune import l1_penalty_grad
    >>> l1_penalty_grad(np.array([3.0, 0.0, -4.0]), lam=0.5)
    array([ 0.5,  0. , -0.5])
    """
    xp = float_namespace(xp, w=w)
    lam = check_finite_scalar("lam", lam, nonnegative=True)
    return lam * xp.sign(w)


# --------------------------------------------------------------------------- group lasso


def _scaled_groups(w, axis, xp):
    """``(r, ssq, scale)``: ``r = w / scale_g`` and ``ssq_g = sum r^2`` (keepdims).

    Scaling by the group's largest magnitude keeps the norm free of overflow and
    underflow; an all-zero group has ``scale = 0``, ``r = 0`` and ``ssq = 0``.
    """
    _, other, _ = _group_axes(w, axis)
    a = xp.abs(w)
    if other:
        a = xp.max(a, axis=other, keepdims=True)
    safe = xp.where(a > 0, a, xp.ones_like(a))
    r = w / safe
    ssq = xp.sum(r * r, axis=other, keepdims=True) if other else r * r
    return r, ssq, a


def group_lasso_penalty(w, /, *, axis, lam=1.0, xp=None):
    r"""Group lasso: the sum of the groups' L2 norms.

    .. math:: R(w) = \lambda \sum_g \|w_g\|_2

    with group ``g`` the slice of ``w`` at index ``g`` along ``axis`` (as for
    :func:`l0_penalty`). The norms are computed scaled, so very large or very small
    weights neither overflow nor underflow.

    Parameters
    ----------
    w : array
        Weights, real floating, at least 1-d.
    axis : int
        The grouped axis.
    lam : float
        Strength, finite and >= 0.
    xp : namespace, optional
        Array namespace; inferred from ``w`` when ``None``.

    Returns
    -------
    array
        0-d penalty.

    Examples
    --------
    >>> import numpy as np
    >>> from refprune import group_lasso_penalty
    >>> w = np.array([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0]])
    >>> float(group_lasso_penalty(w, axis=0))  # rows: 5 + 0 + 1
    6.0
    """
    xp = float_namespace(xp, w=w)
    lam = check_finite_scalar("lam", lam, nonnegative=True)
    _group_axes(w, axis)
    if flat_size(w) == 0:
        return _scalar(xp.sum(w), xp)
    _, ssq, a = _scaled_groups(w, axis, xp)
    return _scalar(xp.sum(a * xp.sqrt(ssq)) * lam, xp)


def group_lasso_penalty_grad(w, /, *, axis, lam=1.0, xp=None):
    r"""Gradient of :func:`group_lasso_penalty`: :math:`\lambda\, w_g / \|w_g\|_2`.

    An all-zero group takes the zero subgradient (no NaN). No upstream argument.

    Examples
    --------
    >>> import numpy as np
    >>> from refprune import group_lasso_penalty_grad
    >>> group_lasso_penalty_grad(np.array([[3.0, 4.0], [0.0, 0.0]]), axis=0)
    array([[0.6, 0.8],
           [0. , 0. ]])
    """
    xp = float_namespace(xp, w=w)
    lam = check_finite_scalar("lam", lam, nonnegative=True)
    _group_axes(w, axis)
    if flat_size(w) == 0:
        return xp.zeros_like(w)
    r, ssq, _ = _scaled_groups(w, axis, xp)
    norm = xp.where(ssq > 0, xp.sqrt(ssq), xp.ones_like(ssq))
    return lam * (r / norm)


# --------------------------------------------------------------------------- RVSM


def _rvsm_setup(w, u, beta, xp):
    xp = float_namespace(xp, w=w, u=u)
    beta = check_finite_scalar("beta", beta, nonnegative=True)
    check_same_shape("w", w, "u", u)
    return xp, beta


def rvsm_penalty(w, u, /, *, beta, xp=None):
    r"""Relaxed variable splitting coupling term.

    .. math:: R(w, u) = \frac{\beta}{2} \|w - u\|_2^2

    Parameters
    ----------
    w, u : array
        Weights and their split copy (usually ``u = H(w)``), same shape.
    beta : float
        Coupling strength, finite and >= 0.
    xp : namespace, optional
        Array namespace; inferred from the inputs when ``None``.

    Returns
    -------
    array
        0-d penalty.

    Examples
    --------
    >>> import numpy as np
    >>> from refprune import rvsm_penalty
    >>> float(rvsm_penalty(np.array([1.0, 0.5]), np.array([1.0, 0.0]), beta=4.0))
    0.5
    """
    xp, beta = _rvsm_setup(w, u, beta, xp)
    d = w - u
    return _scalar(xp.sum(d * d) * (0.5 * beta), xp)


def rvsm_penalty_grad(w, u, /, *, beta, xp=None):
    r"""Gradient of :func:`rvsm_penalty`: ``(dw, du)``.

    .. math:: \frac{\partial R}{\partial w} = \beta (w - u), \qquad
              \frac{\partial R}{\partial u} = -\beta (w - u)

    No upstream argument: multiply by your loss scale.

    Examples
    --------
    >>> import numpy as np
    >>> from refprune import rvsm_penalty_grad
    >>> rvsm_penalty_grad(np.array([1.0, 0.5]), np.array([1.0, 0.0]), beta=4.0)
    (array([0., 2.]), array([ 0., -2.]))
    """
    xp, beta = _rvsm_setup(w, u, beta, xp)
    return xp.astype(beta * (w - u), w.dtype), xp.astype(beta * (u - w), u.dtype)
