r"""Hard-concrete gates (Louizos, Welling & Kingma 2018, "Learning Sparse Neural
Networks through L0 Regularization").

A gate :math:`z \in [0, 1]` is a stretched and clipped binary-concrete variable with
location :math:`\log\alpha`, temperature :math:`\beta` and stretch :math:`(\gamma, \zeta)`.
From uniform noise :math:`u \in [0, 1]`:

.. math::

    s = \sigma\!\left(\frac{\log u - \log(1-u) + \log\alpha}{\beta}\right), \qquad
    \bar s = s(\zeta - \gamma) + \gamma, \qquad
    z = \min(1, \max(0, \bar s)).

Constants and their defaults: ``beta`` = 2/3, ``gamma`` = -0.1, ``zeta`` = 1.1,
``eps`` = 1e-6 (the clamp of the CDF, as in the paper's code). Every function takes
the constants it uses as keyword parameters.

Shapes. ``log_alpha`` and ``u`` broadcast against each other by the standard rules
and the sample has the broadcast shape. One gate vector per minibatch is
``u.shape == log_alpha.shape``; one per example is ``u.shape == (batch, *log_alpha.shape)``.
The gradient with respect to ``log_alpha`` is summed back to ``log_alpha``'s shape.

Noise of exactly ``u = 0`` or ``u = 1`` gives the limits ``s = 0`` or ``s = 1``
(so ``z = 0`` or ``z = 1``) without NaN, and ``log_alpha`` of any finite size is fine.
Noise outside [0, 1] (or NaN) is a ``ValueError``; that check reads one boolean back
from the device per call.

Errors: a non-array or a non-floating array is a ``TypeError``; shapes that do not
broadcast, ``beta <= 0``, ``gamma >= 0``, ``zeta <= 1``, ``eps`` outside [0, 0.5) or a
non-finite constant is a ``ValueError``.
"""

from __future__ import annotations

import math

from ._array import (
    as_float_scalar,
    check_finite_scalar,
    check_float,
    check_int,
    check_same_device,
    check_same_shape,
    checking,
    clip,
    flat_size,
    float_namespace,
    is_real,
    known_true,
    namespace,
    sigmoid,
    values_checkable,
)
from ._dispatch import delegate

__all__ = [
    "hard_concrete_quantile",
    "hard_concrete_sample",
    "hard_concrete_sample_grad",
    "hard_concrete_sample_and_grad",
    "hard_concrete_sample_vjp",
    "hard_concrete_mode",
    "hard_concrete_cdf",
    "hard_concrete_prob_nonzero",
    "hard_concrete_prob_nonzero_grad",
    "expected_l0",
]

BETA = 2.0 / 3.0
GAMMA = -0.1
ZETA = 1.1
EPS = 1e-6


# --------------------------------------------------------------------------- checks


def _check_beta(beta):
    return check_finite_scalar("beta", beta, positive=True)


def _check_stretch(gamma, zeta):
    gamma = check_finite_scalar("gamma", gamma)
    zeta = check_finite_scalar("zeta", zeta)
    if not gamma < 0:
        msg = f"gamma must be < 0 (the stretch's lower end, below 0), got gamma={gamma!r}; the paper uses -0.1"
        raise ValueError(msg)
    if not zeta > 1:
        msg = f"zeta must be > 1 (the stretch's upper end, above 1), got zeta={zeta!r}; the paper uses 1.1"
        raise ValueError(msg)
    return gamma, zeta


def _check_eps(eps):
    eps = check_finite_scalar("eps", eps)
    if not 0 <= eps < 0.5:
        msg = f"eps must be in [0, 0.5) (the clamp of the CDF), got eps={eps!r}; the paper uses 1e-6"
        raise ValueError(msg)
    return eps


def check_constants(beta, gamma, zeta, eps):
    """Validate and return the four hard-concrete constants as Python floats."""
    if not checking():
        return float(beta), float(gamma), float(zeta), float(eps)
    return _check_beta(beta), *_check_stretch(gamma, zeta), _check_eps(eps)


def _broadcast_shape(name_a, a, name_b, b):
    """The broadcast shape of ``a`` and ``b``; a ``ValueError`` naming both otherwise."""
    sa, sb = tuple(a.shape), tuple(b.shape)
    n = max(len(sa), len(sb))
    pa, pb = (1,) * (n - len(sa)) + sa, (1,) * (n - len(sb)) + sb
    out = []
    for da, db in zip(pa, pb, strict=True):
        if da != db and da != 1 and db != 1:
            msg = (
                f"{name_a} with shape {sa} and {name_b} with shape {sb} do not broadcast; "
                f"give {name_b} the shape of {name_a}, or a leading batch dimension before it"
            )
            raise ValueError(msg)
        out.append(db if da == 1 else da)
    return tuple(out)


def _check_unit_interval(name, u, xp):
    if flat_size(u) != 0 and values_checkable(u) and known_true(xp.any(xp.logical_not((u >= 0) & (u <= 1)))):
        msg = f"{name} must hold uniform noise in [0, 1] (no NaN); draw it with rng.uniform(shape)"
        raise ValueError(msg)


def _sum_to_shape(g, shape, xp):
    """Sum ``g`` over the axes along which an array of ``shape`` was broadcast."""
    lead = g.ndim - len(shape)
    if lead > 0:
        g = xp.sum(g, axis=tuple(range(lead)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    if axes:
        g = xp.sum(g, axis=axes, keepdims=True)
    return g


def _stretched(log_alpha, u, beta, xp):
    """``s = sigmoid((logit(u) + log_alpha) / beta)`` on the broadcast shape.

    ``logit(u)`` is taken on ``u`` with 0 and 1 replaced by 1/2, and the exact limits
    ``s = 0`` (``u = 0``) and ``s = 1`` (``u = 1``) are put back with ``where``: no
    ``log(0)``, no warning, no NaN.
    """
    inside = (u > 0) & (u < 1)
    safe = xp.where(inside, u, xp.full_like(u, 0.5))
    logit = xp.log(safe) - xp.log1p(-safe)
    s = sigmoid((logit + log_alpha) / beta, xp)
    s = xp.where(u <= 0, xp.zeros_like(s), s)
    return xp.where(u >= 1, xp.ones_like(s), s)


def _prob_nonzero_logit(log_alpha, beta, gamma, zeta):
    """``log_alpha - beta*log(-gamma/zeta)``: the logit of ``P(z != 0)``."""
    return log_alpha - beta * math.log(-gamma / zeta)


# --------------------------------------------------------------------------- sampling


def hard_concrete_quantile(log_alpha, u, /, *, beta=BETA, gamma=GAMMA, zeta=ZETA, xp=None):
    r"""Stretched concrete quantile (inverse CDF) :math:`\bar s`, before clipping.

    .. math::

        \bar s = \sigma\!\left(\frac{\log u - \log(1-u) + \log\alpha}{\beta}\right)
                 (\zeta - \gamma) + \gamma

    Parameters
    ----------
    log_alpha : array
        Gate locations, real floating.
    u : array
        Uniform noise in [0, 1], broadcastable against ``log_alpha``; ``u = 0`` gives
        exactly ``gamma`` and ``u = 1`` exactly ``zeta``.
    beta, gamma, zeta : float
        Temperature (> 0) and stretch (``gamma < 0``, ``zeta > 1``).
    xp : namespace, optional
        Array namespace; inferred from the inputs when ``None``.

    Returns
    -------
    array
        :math:`\bar s` with the broadcast shape of ``log_alpha`` and ``u``.

    Raises
    ------
    TypeError
        ``log_alpha`` or ``u`` is not a real-floating array, or they mix libraries.
    ValueError
        ``u`` outside [0, 1] or NaN; shapes that do not broadcast; a bad constant.

    Examples
    --------
    >>> import numpy as np
    >>> from refprune import hard_concrete_quantile
    >>> hard_concrete_quantile(np.zeros(3), np.array([0.0, 0.5, 1.0]))
    array([-0.1,  0.5,  1.1])
    """
    xp = float_namespace(xp, log_alpha=log_alpha, u=u)
    beta = _check_beta(beta)
    gamma, zeta = _check_stretch(gamma, zeta)
    _broadcast_shape("log_alpha", log_alpha, "u", u)
    _check_unit_interval("u", u, xp)
    return _stretched(log_alpha, u, beta, xp) * (zeta - gamma) + gamma


def hard_concrete_sample(log_alpha, u, /, *, beta=BETA, gamma=GAMMA, zeta=ZETA, xp=None):
    r"""Hard-concrete gate sample :math:`z = \min(1, \max(0, \bar s))`.

    .. math::

        z = \min\!\left(1, \max\!\left(0,
            \sigma\!\left(\tfrac{\log u - \log(1-u) + \log\alpha}{\beta}\right)
            (\zeta - \gamma) + \gamma\right)\right)

    Parameters
    ----------
    log_alpha : array
        Gate locations, real floating.
    u : array
        Uniform noise in [0, 1] (0 and 1 included), broadcastable against
        ``log_alpha``: same shape for one gate vector per minibatch, a leading batch
        dimension for one per example.
    beta, gamma, zeta : float
        Temperature (> 0) and stretch (``gamma < 0``, ``zeta > 1``).
    xp : namespace, optional
        Array namespace; inferred from the inputs when ``None``.

    Returns
    -------
    array
        Gates in [0, 1] with the broadcast shape.

    Raises
    ------
    TypeError, ValueError
        As for :func:`hard_concrete_quantile`.

    Examples
    --------
    >>> import numpy as np
    >>> from refprune import hard_concrete_sample
    >>> hard_concrete_sample(np.array([0.0, 0.0, 50.0]), np.array([0.0, 1.0, 0.5]))
    array([0., 1., 1.])
    """
    xp = float_namespace(xp, log_alpha=log_alpha, u=u)
    beta = _check_beta(beta)
    gamma, zeta = _check_stretch(gamma, zeta)
    _broadcast_shape("log_alpha", log_alpha, "u", u)
    return _sample_forward(log_alpha, u, beta, gamma, zeta, xp)[0]


def hard_concrete_sample_grad(log_alpha, u, dz, /, *, beta=BETA, gamma=GAMMA, zeta=ZETA, xp=None):
    r"""Gradient of :func:`hard_concrete_sample` with respect to ``log_alpha``.

    .. math::

        \frac{\partial L}{\partial \log\alpha} = \sum_{\text{batch}}
            dz \cdot 1[0 < \bar s < 1] \cdot (\zeta - \gamma)\,\frac{s(1-s)}{\beta}

    The clip's kinks (``s_bar`` exactly 0 or 1) take gradient 0, as does ``u`` of 0 or 1.

    Parameters
    ----------
    log_alpha, u : array
        As for :func:`hard_concrete_sample`.
    dz : array
        Upstream gradient, with the sample's (broadcast) shape.
    beta, gamma, zeta : float
        As for :func:`hard_concrete_sample`.
    xp : namespace, optional
        Array namespace; inferred from the inputs when ``None``.

    Returns
    -------
    array
        Gradient with ``log_alpha``'s shape and dtype: summed over the axes along which
        ``log_alpha`` was broadcast (e.g. the batch axis of per-example noise).

    Examples
    --------
    >>> import numpy as np
    >>> from refprune import hard_concrete_sample_grad
    >>> g = hard_concrete_sample_grad(np.zeros(2), np.array([0.5, 0.0]), np.ones(2))
    >>> g  # (zeta-gamma) * 1/4 / beta = 1.2 * 0.25 * 1.5; u=0 is clipped: 0
    array([0.45, 0.  ])
    """
    return hard_concrete_sample_and_grad(log_alpha, u, dz, beta=beta, gamma=gamma, zeta=zeta, xp=xp)[1]


def hard_concrete_sample_and_grad(log_alpha, u, dz, /, *, beta=BETA, gamma=GAMMA, zeta=ZETA, xp=None):
    r"""``(z, d log_alpha)``: :func:`hard_concrete_sample` and :func:`hard_concrete_sample_grad` in one pass.

    The stretched sigmoid :math:`s` is computed once, for the sample and for the gradient

    .. math::

        z = \min(1, \max(0, \bar s)), \qquad
        \frac{\partial L}{\partial \log\alpha} = \sum_{\text{batch}}
            dz \cdot 1[0 < \bar s < 1] \cdot (\zeta - \gamma)\,\frac{s(1-s)}{\beta},

    and both results equal those of the two functions, bit for bit. Parameters, errors
    and shapes as for :func:`hard_concrete_sample_grad`.

    Examples
    --------
    >>> import numpy as np
    >>> from refprune import hard_concrete_sample_and_grad
    >>> z, g = hard_concrete_sample_and_grad(np.zeros(2), np.array([0.5, 0.0]), np.ones(2))
    >>> z, g
    (array([0.5, 0. ]), array([0.45, 0.  ]))
    """
    xp = float_namespace(xp, log_alpha=log_alpha, u=u, dz=dz)
    z, backprop = hard_concrete_sample_vjp(log_alpha, u, beta=beta, gamma=gamma, zeta=zeta, xp=xp)
    return z, backprop(dz)


def hard_concrete_sample_vjp(log_alpha, u, /, *, beta=BETA, gamma=GAMMA, zeta=ZETA, xp=None):
    r"""``(z, backprop)``: the gate sample and a function ``dz -> d log_alpha``.

    ``z`` is :func:`hard_concrete_sample`; ``backprop(dz)`` is
    :func:`hard_concrete_sample_grad` at the same ``log_alpha`` and ``u`` (bit for bit),
    computed from the stretched sigmoid :math:`s` that the sample kept, not recomputed:
    the shape a layer needs between its forward and its backward. Parameters and errors as
    for :func:`hard_concrete_sample_grad`; ``dz`` must have the sample's shape.

    Examples
    --------
    >>> import numpy as np
    >>> from refprune import hard_concrete_sample_vjp
    >>> z, backprop = hard_concrete_sample_vjp(np.zeros(2), np.array([0.5, 0.0]))
    >>> backprop(np.ones(2))
    array([0.45, 0.  ])
    """
    xp = float_namespace(xp, log_alpha=log_alpha, u=u)
    beta = _check_beta(beta)
    gamma, zeta = _check_stretch(gamma, zeta)
    shape = _broadcast_shape("log_alpha", log_alpha, "u", u)
    z, s = _sample_forward(log_alpha, u, beta, gamma, zeta, xp)

    def backprop(dz):
        float_namespace(xp, log_alpha=log_alpha, dz=dz)
        if tuple(dz.shape) != shape:
            msg = f"dz must have the sample's shape {shape}, got {tuple(dz.shape)}"
            raise ValueError(msg)
        return _sample_backward(log_alpha, s, dz, beta, gamma, zeta, xp)

    return z, backprop


def _sample_forward(log_alpha, u, beta, gamma, zeta, xp):
    """``(z, s)``: the gate sample and the stretched sigmoid ``s`` that its gradient needs.

    The backend's fast path (``refprune._dispatch`` op ``"hard_concrete_forward"``, same
    signature, same operations in the same order) when there is one, else these lines.
    The arguments are already checked.
    """
    out = delegate("hard_concrete_forward", xp, log_alpha, u, beta=beta, gamma=gamma, zeta=zeta)
    if out is not None:
        return out
    _check_unit_interval("u", u, xp)
    s = _stretched(log_alpha, u, beta, xp)
    return clip(s * (zeta - gamma) + gamma, 0.0, 1.0, xp), s


def _sample_backward(log_alpha, s, dz, beta, gamma, zeta, xp):
    """``d log_alpha`` from the forward's ``s`` and the gates' gradient ``dz`` (op ``"hard_concrete_backward"``)."""
    g = delegate("hard_concrete_backward", xp, log_alpha, s, dz, beta=beta, gamma=gamma, zeta=zeta)
    if g is not None:
        return g
    s_bar = s * (zeta - gamma) + gamma
    inside = (s_bar > 0) & (s_bar < 1)
    g = xp.where(inside, dz * ((zeta - gamma) / beta) * (s * (1 - s)), xp.zeros_like(s))
    g = _sum_to_shape(g, tuple(log_alpha.shape), xp)
    return xp.astype(xp.reshape(g, tuple(log_alpha.shape)), log_alpha.dtype)


def hard_concrete_mode(log_alpha, /, *, gamma=GAMMA, zeta=ZETA, xp=None):
    r"""Deterministic test-time gate.

    .. math::

        \hat z = \min(1, \max(0, \sigma(\log\alpha)(\zeta - \gamma) + \gamma))

    Parameters
    ----------
    log_alpha : array
        Gate locations, real floating.
    gamma, zeta : float
        Stretch (``gamma < 0``, ``zeta > 1``).
    xp : namespace, optional
        Array namespace; inferred from ``log_alpha`` when ``None``.

    Returns
    -------
    array
        Gates in [0, 1], ``log_alpha``'s shape.

    Examples
    --------
    >>> import numpy as np
    >>> from refprune import hard_concrete_mode
    >>> hard_concrete_mode(np.array([-50.0, 0.0, 50.0]))
    array([0. , 0.5, 1. ])
    """
    xp = float_namespace(xp, log_alpha=log_alpha)
    gamma, zeta = _check_stretch(gamma, zeta)
    return clip(sigmoid(log_alpha, xp) * (zeta - gamma) + gamma, 0.0, 1.0, xp)


# --------------------------------------------------------------------------- CDF and L0


def hard_concrete_cdf(log_alpha, x, /, *, beta=BETA, gamma=GAMMA, zeta=ZETA, eps=EPS, xp=None):
    r"""CDF of the stretched concrete :math:`P(\bar s \le x)`, clamped to [eps, 1-eps].

    .. math::

        x_n = \frac{x - \gamma}{\zeta - \gamma}, \qquad
        Q(x) = \operatorname{clip}\!\left(\sigma\!\left(\beta(\log x_n - \log(1 - x_n))
               - \log\alpha\right), \epsilon, 1 - \epsilon\right)

    For ``x <= gamma`` the unclamped value is 0 and for ``x >= zeta`` it is 1 (so the
    result is ``eps`` or ``1 - eps``). For the clipped gate :math:`z`,
    :math:`P(z \le x) = Q(x)` on ``[0, 1)``; in particular :math:`P(z = 0) = Q(0)`.
    The clamp is the paper's code's (``cdf_qz``); pass ``eps=0`` for the exact CDF.

    Parameters
    ----------
    log_alpha : array
        Gate locations, real floating.
    x : float or array
        Where to evaluate; an array broadcasts against ``log_alpha``. No NaN.
    beta, gamma, zeta, eps : float
        Temperature, stretch and clamp (``0 <= eps < 0.5``).
    xp : namespace, optional
        Array namespace; inferred from the inputs when ``None``.

    Returns
    -------
    array
        The clamped CDF, ``log_alpha``'s shape (broadcast with ``x`` when ``x`` is an array).

    Examples
    --------
    >>> import numpy as np
    >>> from refprune import hard_concrete_cdf
    >>> hard_concrete_cdf(np.zeros(3), 0.5)  # the median of s_bar is 0.5 when log_alpha = 0
    array([0.5, 0.5, 0.5])
    """
    beta, gamma, zeta, eps = check_constants(beta, gamma, zeta, eps)
    if is_real(x):
        xp = float_namespace(xp, log_alpha=log_alpha)
        x = as_float_scalar("x", x)
        if math.isnan(x):
            msg = "x must not be NaN; pass the point at which to evaluate the CDF"
            raise ValueError(msg)
        xn = (x - gamma) / (zeta - gamma)
        if xn <= 0:
            c = xp.zeros_like(log_alpha)
        elif xn >= 1:
            c = xp.ones_like(log_alpha)
        else:
            c = sigmoid(beta * (math.log(xn) - math.log1p(-xn)) - log_alpha, xp)
        return clip(c, eps, 1.0 - eps, xp)
    xp = namespace(xp, log_alpha=log_alpha, x=x)
    check_float("log_alpha", log_alpha, xp)
    check_float("x", x, xp)
    check_same_device("log_alpha", log_alpha, "x", x)
    _broadcast_shape("log_alpha", log_alpha, "x", x)
    if flat_size(x) != 0 and values_checkable(x) and known_true(xp.any(xp.isnan(x))):
        msg = "x must not contain NaN; pass the points at which to evaluate the CDF"
        raise ValueError(msg)
    xn = (x - gamma) / (zeta - gamma)
    inside = (xn > 0) & (xn < 1)
    safe = xp.where(inside, xn, xp.full_like(xn, 0.5))
    c = sigmoid(beta * (xp.log(safe) - xp.log1p(-safe)) - log_alpha, xp)
    c = xp.where(xn <= 0, xp.zeros_like(c), c)
    c = xp.where(xn >= 1, xp.ones_like(c), c)
    return clip(c, eps, 1.0 - eps, xp)


def hard_concrete_prob_nonzero(log_alpha, /, *, beta=BETA, gamma=GAMMA, zeta=ZETA, eps=EPS, xp=None):
    r"""Probability that a gate is non-zero, :math:`1 - Q(0)`, clamped to [eps, 1-eps].

    .. math::

        P(z \ne 0) = \operatorname{clip}\!\left(\sigma\!\left(\log\alpha
                     - \beta \log\frac{-\gamma}{\zeta}\right), \epsilon, 1 - \epsilon\right)

    This is the paper's ``1 - cdf_qz(0)`` (same clamp), computed directly as a sigmoid
    so that a small probability keeps its relative precision.

    Parameters
    ----------
    log_alpha : array
        Gate locations, real floating.
    beta, gamma, zeta, eps : float
        Temperature, stretch and clamp.
    xp : namespace, optional
        Array namespace; inferred from ``log_alpha`` when ``None``.

    Returns
    -------
    array
        Probabilities, ``log_alpha``'s shape.

    Examples
    --------
    >>> import numpy as np
    >>> from refprune import hard_concrete_prob_nonzero
    >>> p = hard_concrete_prob_nonzero(np.array([-50.0, 0.0, 50.0]))
    >>> [round(float(v), 6) for v in p]
    [1e-06, 0.831822, 0.999999]
    """
    xp = float_namespace(xp, log_alpha=log_alpha)
    beta, gamma, zeta, eps = check_constants(beta, gamma, zeta, eps)
    p = sigmoid(_prob_nonzero_logit(log_alpha, beta, gamma, zeta), xp)
    return clip(p, eps, 1.0 - eps, xp)


def hard_concrete_prob_nonzero_grad(log_alpha, dp, /, *, beta=BETA, gamma=GAMMA, zeta=ZETA, eps=EPS, xp=None):
    r"""Gradient of :func:`hard_concrete_prob_nonzero` with respect to ``log_alpha``.

    .. math::

        \frac{\partial L}{\partial \log\alpha} = dp \cdot p(1 - p)
        \quad\text{where } \epsilon \le p \le 1 - \epsilon, \text{ else } 0

    with :math:`p` the unclamped probability (the clamp passes no gradient where it
    is active, as in autograd through the paper's code).

    Parameters
    ----------
    log_alpha : array
        Gate locations, real floating.
    dp : array
        Upstream gradient, ``log_alpha``'s shape.
    beta, gamma, zeta, eps : float
        As for :func:`hard_concrete_prob_nonzero`.
    xp : namespace, optional
        Array namespace; inferred from the inputs when ``None``.

    Returns
    -------
    array
        Gradient with ``log_alpha``'s shape and dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from refprune import hard_concrete_prob_nonzero_grad
    >>> g = hard_concrete_prob_nonzero_grad(np.array([-50.0, 0.0]), np.ones(2))
    >>> [round(float(v), 6) for v in g]
    [0.0, 0.139894]
    """
    xp = float_namespace(xp, log_alpha=log_alpha, dp=dp)
    beta, gamma, zeta, eps = check_constants(beta, gamma, zeta, eps)
    check_same_shape("log_alpha", log_alpha, "dp", dp)
    t = _prob_nonzero_logit(log_alpha, beta, gamma, zeta)
    p = sigmoid(t, xp)
    active = (p < eps) | (p > 1.0 - eps)
    g = xp.where(active, xp.zeros_like(p), dp * (p * sigmoid(-t, xp)))
    return xp.astype(g, log_alpha.dtype)


def expected_l0(log_alpha, /, *, group_size=1, beta=BETA, gamma=GAMMA, zeta=ZETA, eps=EPS, xp=None):
    r"""Expected number of non-zero parameters under the gates.

    .. math::

        \mathbb{E}\,\|\theta\|_0 = g \sum_j P(z_j \ne 0)

    where each gate multiplies ``group_size`` (:math:`g`) parameters: ``out_features``
    for a dense layer gating its input units, ``in_channels*kh*kw`` for a convolution
    gating its output channels. Ungated parameters (e.g. a dense layer's bias) are not
    counted; add them yourself.

    Parameters
    ----------
    log_alpha : array
        Gate locations, real floating.
    group_size : int
        Parameters per gate, >= 0.
    beta, gamma, zeta, eps : float
        As for :func:`hard_concrete_prob_nonzero`.
    xp : namespace, optional
        Array namespace; inferred from ``log_alpha`` when ``None``.

    Returns
    -------
    array
        0-d array of ``log_alpha``'s dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from refprune import expected_l0
    >>> float(expected_l0(np.array([50.0, -50.0]), group_size=10))
    10.0
    """
    xp = float_namespace(xp, log_alpha=log_alpha)
    group_size = check_int("group_size", group_size, minimum=0, what=" (parameters per gate)")
    p = hard_concrete_prob_nonzero(log_alpha, beta=beta, gamma=gamma, zeta=zeta, eps=eps, xp=xp)
    return xp.asarray(xp.sum(p) * group_size)
