r"""Optimizers as pure functions over parameter dictionaries.

``new_params, new_state = sgd(params, grads, state, lr=...)``: nothing is updated in
place. ``params`` and ``grads`` map names (``"fc1.w"``) to arrays; a parameter without
a gradient is passed through unchanged. The optimizer state is a dictionary that
``refprune.io`` saves as it is: ``"step"`` (a Python int, the number of updates made)
and one dictionary ``param name -> array`` per buffer, named after torch's buffers:
``{"step": 3, "exp_avg": {...}, "exp_avg_sq": {...}}`` for Adam,
``{"step": 3, "momentum_buffer": {...}}`` for SGD with momentum.

Learning rates. ``lr`` is a float, a callable ``name -> lr``, or a dictionary whose
keys are parameter names or ``fnmatch`` patterns: an exact name wins, otherwise the
first matching pattern in the dictionary's order, so put ``"*"`` last as the
default, e.g. ``{"*.log_alpha": 0.1, "*": 1e-3}`` gives the L0 gates a larger rate.

Constraints applied after a step (clipping to a range) are in
:mod:`refprune.nn.constraints`.

The formulas follow ``torch.optim.SGD`` and ``torch.optim.Adam`` (tests compare them).

Examples
--------
>>> import numpy as np
>>> from refprune.nn import optim
>>> params, grads = {"w": np.array([1.0, -2.0])}, {"w": np.array([0.5, 0.5])}
>>> state = optim.init_state(params, "sgd")
>>> new, state = optim.sgd(params, grads, state, lr=0.1)
>>> new["w"], state["step"]
(array([ 0.95, -2.05]), 1)
"""

from __future__ import annotations

import math
from fnmatch import fnmatchcase

from .._array import namespace
from .._dispatch import delegate

__all__ = [
    "sgd",
    "adam",
    "init_state",
    "resolve",
]


def resolve(spec, name, *, what="lr"):
    """The value of a per-parameter setting ``spec`` for parameter ``name``.

    ``spec`` is a number (for every parameter), a callable ``name -> value``, or a
    dictionary of exact names and ``fnmatch`` patterns (exact name first, then the first
    matching pattern in order). No match is a ``ValueError``.
    """
    if callable(spec):
        return spec(name)
    if isinstance(spec, dict):
        if name in spec:
            return spec[name]
        for pattern, value in spec.items():
            if fnmatchcase(name, pattern):
                return value
        msg = f"no {what} for parameter {name!r} in {what}={spec!r}; add the name or a pattern such as '*'"
        raise ValueError(msg)
    return spec


def _check_grads(params, grads):
    unknown = [k for k in grads if k not in params]
    if unknown:
        msg = f"grads hold names that are not parameters: {unknown}; known: {list(params)}"
        raise ValueError(msg)


def init_state(params, optimizer="adam", *, momentum=0.0):
    """A fresh optimizer state: ``step`` 0 and zero buffers for every parameter.

    Parameters
    ----------
    params : dict
        Parameter arrays by name.
    optimizer : {"adam", "sgd"}
        Which buffers to make: ``exp_avg`` and ``exp_avg_sq`` for Adam,
        ``momentum_buffer`` for SGD with ``momentum > 0`` (none without).
    momentum : float
        SGD momentum.
    """
    if optimizer == "adam":
        buffers = ("exp_avg", "exp_avg_sq")
    elif optimizer == "sgd":
        buffers = ("momentum_buffer",) if momentum else ()
    else:
        msg = f"optimizer must be 'adam' or 'sgd', got optimizer={optimizer!r}"
        raise ValueError(msg)
    state = {"step": 0}
    for buf in buffers:
        state[buf] = {name: namespace(None, p=p).zeros_like(p) for name, p in params.items()}
    return state


def _buffer(state, buf, name, like):
    """``state[buf][name]``, or zeros like ``like`` for a state made without it."""
    value = state.get(buf, {}).get(name)
    return namespace(None, like=like).zeros_like(like) if value is None else value


def _new_state(state, *buffers):
    """A copy of ``state`` with ``step`` advanced and fresh dicts for ``buffers``."""
    new = dict(state)
    new["step"] = int(state.get("step", 0)) + 1
    for buf in buffers:
        new[buf] = dict(state.get(buf, {}))
    return new


def sgd(params, grads, state, *, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
    r"""One step of SGD with momentum (torch's formulation).

    .. math::

        g \leftarrow g + \text{wd}\,p, \quad
        v \leftarrow \mu v + g, \quad
        p \leftarrow p - \eta\,(g + \mu v \text{ if nesterov else } v)

    (``v`` starts at 0, so the first step has ``v = g`` as in torch.)

    Returns ``(new_params, new_state)``.
    """
    _check_grads(params, grads)
    if nesterov and not momentum:
        msg = "nesterov=True needs momentum > 0"
        raise ValueError(msg)
    new_params = dict(params)
    new_state = _new_state(state, *(("momentum_buffer",) if momentum else ()))
    for name, g in grads.items():
        p = params[name]
        if weight_decay:
            g = g + weight_decay * p
        if momentum:
            buf = momentum * _buffer(state, "momentum_buffer", name, p) + g
            new_state["momentum_buffer"][name] = buf
            g = g + momentum * buf if nesterov else buf
        new_params[name] = p - resolve(lr, name) * g
    return new_params, new_state


def adam(params, grads, state, *, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    r"""One step of Adam (torch's formulation, with L2 ``weight_decay`` added to ``g``).

    .. math::

        m \leftarrow \beta_1 m + (1-\beta_1) g, \quad
        v \leftarrow \beta_2 v + (1-\beta_2) g^2, \quad
        p \leftarrow p - \frac{\eta}{1-\beta_1^t}\,
            \frac{m}{\sqrt{v}/\sqrt{1-\beta_2^t} + \epsilon}

    Returns ``(new_params, new_state)``.
    """
    _check_grads(params, grads)
    beta1, beta2 = betas
    new_params = dict(params)
    new_state = _new_state(state, "exp_avg", "exp_avg_sq")
    step = new_state["step"]
    bias1 = 1.0 - beta1**step
    bias2_sqrt = math.sqrt(1.0 - beta2**step)
    for name, g in grads.items():
        p = params[name]
        m, v = _buffer(state, "exp_avg", name, p), _buffer(state, "exp_avg_sq", name, p)
        new_params[name], m, v = _adam_update(
            p, g, m, v, lr=resolve(lr, name), beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay,
            bias1=bias1, bias2_sqrt=bias2_sqrt,
        )
        new_state["exp_avg"][name] = m
        new_state["exp_avg_sq"][name] = v
    return new_params, new_state


def _adam_update(p, g, m, v, *, lr, beta1, beta2, eps, weight_decay, bias1, bias2_sqrt):
    """One parameter's Adam step: ``(new_p, new_m, new_v)``, three new arrays.

    The backend's fused version (``refprune._dispatch`` op ``"adam_update"``, same
    signature, same operations in the same order) when there is one, else these lines.
    """
    xp = namespace(None, p=p)
    out = delegate(
        "adam_update", xp, p, g, m, v, lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay,
        bias1=bias1, bias2_sqrt=bias2_sqrt,
    )
    if out is not None:
        return out
    if weight_decay:
        g = g + weight_decay * p
    m = beta1 * m + (1.0 - beta1) * g
    v = beta2 * v + (1.0 - beta2) * (g * g)
    denom = xp.sqrt(v) / bias2_sqrt + eps
    return p - (lr / bias1) * (m / denom), m, v
