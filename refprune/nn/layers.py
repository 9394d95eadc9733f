r"""Layers: objects that hold parameters and call the functional pairs.

Every layer has

* ``params``: trainable arrays by local name (``"w"``, ``"b"``, ``"log_alpha"``, ...),
* ``state``: non-trainable buffers (batch-norm running statistics),
* ``grads``: the gradients of the last :meth:`Layer.backward`, by the same names,
* ``masks``: optional boolean masks (True = keep) on any parameter.

``forward(x, *, train, rng)`` caches what ``backward(dy)`` needs; ``backward`` returns
the gradient with respect to ``x`` and fills ``grads``. ``backward(dy, input_grad=False)``
says that the caller needs no gradient for ``x`` (the network's first layer): a layer
may then skip it and return ``None``. A masked parameter enters the
forward pass as ``apply_mask(w, mask)`` and its gradient is zero where pruned (the chain
rule through ``where(mask, w, 0)``). Layers are built from arrays (see
``refprune.nn.models`` for initialization), so they run on whichever backend those
arrays live on. Nothing here writes into an array: an update replaces the entry of
``params``.

The gated layers of Louizos, Welling & Kingma (2018), :class:`L0Dense` and
:class:`L0Conv2d`, multiply input units (dense) or output channels (conv) by
hard-concrete gates: sampled from the caller's generator during training (one gate
vector per minibatch, or one per example with ``local_rep=True``), the deterministic
:func:`~refprune.hard_concrete_mode` at test time.

Examples
--------
>>> import numpy as np
>>> from refprune.nn import Dense
>>> layer = Dense(np.array([[1.0, -1.0], [2.0, 0.5]]), np.zeros(2))
>>> layer.forward(np.array([[1.0, 1.0]]), train=True)
array([[ 3. , -0.5]])
>>> layer.backward(np.array([[1.0, 0.0]]))        # dx = dy @ w.T
array([[1., 2.]])
>>> layer.grads["w"]                              # dw = x.T @ dy
array([[1., 0.],
       [1., 0.]])
"""

from __future__ import annotations

import functools
import math

from .. import gates
from .._array import device_of, namespace
from ..masks import apply_mask
from ..regularizers import l0_penalty_and_grad
from . import functional as F
from .constraints import clamp

__all__ = [
    "Layer",
    "Dense",
    "Conv2d",
    "MaxPool2d",
    "ReLU",
    "Tanh",
    "Flatten",
    "SelectFeatures",
    "BatchNorm1d",
    "SoftInvert",
    "HardInvert",
    "L0Dense",
    "L0Conv2d",
    "Embedding",
    "PositionEmbedding",
    "LayerNorm",
    "GELU",
    "CausalSelfAttention",
    "GATE_NOISE_EPS",
    "LOG_ALPHA_RANGE",
]

#: The L0 paper's clamp of ``log_alpha`` after every step: [log 1e-2, log 1e2]
#: (its ``constrain_parameters``), the gated layers' own constraint.
LOG_ALPHA_RANGE = (math.log(1e-2), math.log(1e2))

#: Gate noise is drawn from U(eps, 1 - eps), as the paper's ``get_eps``.
GATE_NOISE_EPS = 1e-6


_DTYPE_NAMES = {}  # (array type, dtype) -> the name: str() of a dtype takes microseconds, per gated layer and step


def dtype_name(x):
    """``"float32"`` / ``"float64"`` for an array of any backend (what generators take)."""
    key = (type(x), x.dtype)  # the type first: array-api-strict warns when its dtypes meet NumPy's in ==
    name = _DTYPE_NAMES.get(key)
    if name is None:
        name = _DTYPE_NAMES[key] = str(x.dtype).rsplit(".", 1)[-1]
    return name


class Layer:
    """Base class: parameter, state, gradient and mask dictionaries, and the mask rule.

    Subclasses set ``params`` (and ``state``) in ``__init__``, implement ``forward`` and
    ``backward``, and read parameters through :meth:`param`, which applies the mask.
    """

    #: ``"dense"`` or ``"conv"`` for layers whose ``"w"`` is a prunable weight, else None.
    kind = None
    #: True for the hard-concrete gated layers.
    gated = False

    def __init__(self):
        self.params = {}
        self.state = {}
        self.grads = {}
        self.masks = {}
        self._cache = None

    def param(self, name):
        """Parameter ``name`` as the forward pass sees it: masked when a mask is set."""
        w = self.params.get(name)
        mask = self.masks.get(name)
        return w if w is None or mask is None else apply_mask(w, mask)

    def effective(self):
        """Parameters as the test-time forward computes with them (masked), by local name."""
        return {k: self.param(k) for k in self.params}

    def _set_grads(self, **grads):
        """Store the gradients, zeroed where a mask prunes (``None`` entries are dropped)."""
        self.grads = {k: self._masked_grad(k, g) for k, g in grads.items() if g is not None}

    def _masked_grad(self, name, g):
        mask = self.masks.get(name)
        return g if mask is None else apply_mask(g, mask)

    def _cached(self):
        if self._cache is None:
            msg = f"{type(self).__name__}.backward called before forward; run forward(x, train=...) first"
            raise RuntimeError(msg)
        return self._cache

    def forward(self, x, *, train=False, rng=None):
        """Output of the layer for input ``x``; caches what ``backward`` needs."""
        raise NotImplementedError

    def backward(self, dy, *, input_grad=True):
        """Gradient with respect to the last forward's input; fills ``grads``.

        With ``input_grad=False`` the caller does not need that gradient, and a layer
        may skip computing it and return ``None``.
        """
        raise NotImplementedError

    def output_shape(self, shape):
        """Per-example output shape for a per-example input ``shape`` (no batch axis)."""
        return tuple(shape)

    def constraints(self):
        """Constraints to apply after each update, by local parameter name (none here)."""
        return {}

    def __repr__(self):
        shapes = ", ".join(f"{k}={tuple(v.shape)}" for k, v in self.params.items())
        return f"{type(self).__name__}({shapes})"


# --------------------------------------------------------------------------- affine


class Dense(Layer):
    r"""Fully connected layer :math:`y = x W + b`, ``W`` of shape ``(in, out)``.

    Parameters
    ----------
    w : array
        Weights ``(in, out)``.
    b : array or None
        Bias ``(out,)``; ``None`` for a layer without bias.
    """

    kind = "dense"

    def __init__(self, w, b=None):
        super().__init__()
        self.params["w"] = w
        if b is not None:
            self.params["b"] = b

    def forward(self, x, *, train=False, rng=None):
        self._cache = x
        return F.dense(x, self.param("w"), self.param("b"))

    def backward(self, dy, *, input_grad=True):
        x = self._cached()
        dx, dw, db = F.dense_grad(x, self.param("w"), self.param("b"), dy, input_grad=input_grad)
        self._set_grads(w=dw, b=db)
        return dx

    def output_shape(self, shape):
        return (*tuple(shape)[:-1], int(self.params["w"].shape[1]))


class Conv2d(Layer):
    """2-d convolution, NCHW, weights ``(out, in, kh, kw)``, zero padding.

    Parameters
    ----------
    w : array
        Filters ``(out, in, kh, kw)``.
    b : array or None
        Bias ``(out,)`` or ``None``.
    stride, padding : int
        As for :func:`refprune.nn.functional.conv2d`.
    """

    kind = "conv"

    def __init__(self, w, b=None, *, stride=1, padding=0):
        super().__init__()
        self.params["w"] = w
        if b is not None:
            self.params["b"] = b
        self.stride = stride
        self.padding = padding

    def forward(self, x, *, train=False, rng=None):
        y, self._cache = _conv_and_backprop(self, x, train)
        return y

    def backward(self, dy, *, input_grad=True):
        dx, dw, db = self._cached()(dy, input_grad=input_grad)
        self._set_grads(w=dw, b=db)
        return dx

    def output_shape(self, shape):
        return conv_output_shape(shape, self.params["w"].shape, self.stride, self.padding)


def _conv_and_backprop(layer, x, train):
    """``(y, backprop)`` of ``layer``'s convolution: training keeps the forward's im2col for the backward
    (:func:`~refprune.nn.functional.conv2d_vjp`); inference keeps only ``x`` (no closure over a large im2col)."""
    w, b, geometry = layer.param("w"), layer.param("b"), {"stride": layer.stride, "padding": layer.padding}
    if train:
        return F.conv2d_vjp(x, w, b, **geometry)

    def backprop(dy, *, input_grad=True):
        return F.conv2d_grad(x, w, b, dy, input_grad=input_grad, **geometry)

    return F.conv2d(x, w, b, **geometry), backprop


def conv_output_shape(shape, w_shape, stride, padding):
    """``(out, h', w')`` of a convolution with filters ``w_shape`` on input ``(c, h, w)``."""
    _, h, w = (int(d) for d in shape)
    out, _, kh, kw = (int(d) for d in w_shape)
    return (out, (h + 2 * padding - kh) // stride + 1, (w + 2 * padding - kw) // stride + 1)


# --------------------------------------------------------------------------- parameter-free


class MaxPool2d(Layer):
    """Max pooling over ``kernel`` x ``kernel`` windows (``stride`` defaults to ``kernel``)."""

    def __init__(self, kernel=2, stride=None):
        super().__init__()
        self.kernel = kernel
        self.stride = kernel if stride is None else stride

    def forward(self, x, *, train=False, rng=None):
        if train:
            y, self._cache = F.max_pool2d_vjp(x, kernel=self.kernel, stride=self.stride)
            return y
        self._cache = functools.partial(F.max_pool2d_grad, x, kernel=self.kernel, stride=self.stride)
        return F.max_pool2d(x, kernel=self.kernel, stride=self.stride)

    def backward(self, dy, *, input_grad=True):
        return self._cached()(dy)

    def output_shape(self, shape):
        c, h, w = (int(d) for d in shape)
        return (c, (h - self.kernel) // self.stride + 1, (w - self.kernel) // self.stride + 1)

    def __repr__(self):
        return f"MaxPool2d(kernel={self.kernel}, stride={self.stride})"


class ReLU(Layer):
    """:math:`\\max(x, 0)`."""

    def forward(self, x, *, train=False, rng=None):
        self._cache = x
        return F.relu(x)

    def backward(self, dy, *, input_grad=True):
        return F.relu_grad(self._cached(), dy)


class Tanh(Layer):
    """:math:`\\tanh(x)`."""

    def forward(self, x, *, train=False, rng=None):
        self._cache = x
        return F.tanh(x)

    def backward(self, dy, *, input_grad=True):
        return F.tanh_grad(self._cached(), dy)


class Flatten(Layer):
    """``(n, ...)`` to ``(n, prod(...))``."""

    def forward(self, x, *, train=False, rng=None):
        self._cache = x
        return F.flatten(x)

    def backward(self, dy, *, input_grad=True):
        return F.flatten_grad(self._cached(), dy)

    def output_shape(self, shape):
        return (math.prod(int(d) for d in shape),)


class SelectFeatures(Layer):
    """Keep the features ``index`` of ``(n, features)``: ``y = x[:, index]``.

    A compacted network (:func:`refprune.compact`) reads through it the features of a
    flattened feature map (or of the input) that are alive; ``index`` is a tuple of
    strictly increasing ints.
    """

    def __init__(self, index):
        super().__init__()
        self.index = tuple(int(i) for i in index)
        self._arrays = {}

    def _index(self, x):
        xp = namespace(None, x=x)
        key = (xp.__name__, str(getattr(x, "device", "")))
        if key not in self._arrays:
            self._arrays[key] = F.feature_index(self.index, n=int(x.shape[1]), like=x, xp=xp)
        return self._arrays[key]

    def forward(self, x, *, train=False, rng=None):
        self._cache = x
        return F.select_features(x, index=self._index(x))

    def backward(self, dy, *, input_grad=True):
        return F.select_features_grad(self._cached(), dy, index=self.index)

    def output_shape(self, shape):
        if len(shape) != 1 or (self.index and self.index[-1] >= int(shape[0])):
            need = max(self.index, default=-1) + 1
            msg = f"SelectFeatures needs (features,) inputs with at least {need} features, got {tuple(shape)}"
            raise ValueError(msg)
        return (len(self.index),)

    def __repr__(self):
        return f"SelectFeatures({len(self.index)} features)"


class HardInvert(Layer):
    """:math:`y = 1 - x` (the binarized-network paper's hard invert normalization)."""

    def forward(self, x, *, train=False, rng=None):
        return 1.0 - x

    def backward(self, dy, *, input_grad=True):
        return -dy


class SoftInvert(Layer):
    r"""Learnable soft inversion :math:`y = x(1-a) + (1-x)a` with scalar ``a`` in [0, 1].

    The forward pass uses ``clip(a, 0, 1)``; the constraint that keeps the stored ``a``
    in [0, 1] after each update is :meth:`constraints` (the notebook clamps the
    parameter in place before every forward, which is the same trajectory). The
    gradients are those of the clipped value:

    .. math::

        \frac{\partial L}{\partial x} = dy\,(1 - 2a), \qquad
        \frac{\partial L}{\partial a} = \textstyle\sum dy\,(1 - 2x)

    Parameters
    ----------
    a : array
        Shape ``(1,)``; the notebook draws it from U(0, 1).
    """

    def __init__(self, a):
        super().__init__()
        self.params["a"] = a

    def _a(self, x):
        xp = namespace(None, x=x)
        return xp, xp.clip(self.param("a"), 0.0, 1.0)

    def forward(self, x, *, train=False, rng=None):
        self._cache = x
        _, a = self._a(x)
        return x * (1.0 - a) + (1.0 - x) * a

    def backward(self, dy, *, input_grad=True):
        x = self._cached()
        xp, a = self._a(x)
        da = xp.reshape(xp.sum(dy * (1.0 - 2.0 * x)), (1,))
        self._set_grads(a=da)
        return dy * (1.0 - 2.0 * a)

    def constraints(self):
        """Keep ``a`` in [0, 1] after each update: ``{"a": clamp(0, 1)}``."""
        return {"a": clamp(0.0, 1.0)}


class BatchNorm1d(Layer):
    """Batch normalization over the batch axis of ``(n, features)``.

    ``gamma``, ``beta`` are trainable; ``running_mean``, ``running_var`` are ``state``,
    updated by every training forward as in :func:`refprune.nn.functional.batch_norm`.
    """

    def __init__(self, gamma, beta, running_mean, running_var, *, momentum=0.1, eps=1e-5):
        super().__init__()
        self.params["gamma"] = gamma
        self.params["beta"] = beta
        self.state = {"running_mean": running_mean, "running_var": running_var}
        self.momentum = momentum
        self.eps = eps

    def forward(self, x, *, train=False, rng=None):
        stats = dict(self.state)
        y, mean, var = F.batch_norm(
            x,
            self.param("gamma"),
            self.param("beta"),
            running_mean=stats["running_mean"],
            running_var=stats["running_var"],
            train=train,
            momentum=self.momentum,
            eps=self.eps,
        )
        self._cache = (x, stats, train)
        if train:
            self.state = {"running_mean": mean, "running_var": var}
        return y

    def backward(self, dy, *, input_grad=True):
        x, stats, train = self._cached()
        dx, dgamma, dbeta = F.batch_norm_grad(
            x, self.param("gamma"), self.param("beta"), dy, train=train, eps=self.eps, **stats
        )
        self._set_grads(gamma=dgamma, beta=dbeta)
        return dx

    def __repr__(self):
        return f"BatchNorm1d({int(self.params['gamma'].shape[0])}, momentum={self.momentum}, eps={self.eps})"


# --------------------------------------------------------------------------- L0 gated layers


class _Gated(Layer):
    """Shared machinery of the hard-concrete gated layers: sampling, penalty settings, counts.

    Subclasses decide where the gate enters (``forward``/``backward``), the penalty and
    the FLOP count. ``temperature`` is the hard-concrete ``beta`` (2/3 in the paper).
    """

    gated = True

    def __init__(self, w, b, log_alpha, *, lam, weight_decay, temperature, local_rep):
        super().__init__()
        self.params["w"] = w
        if b is not None:
            self.params["b"] = b
        self.params["log_alpha"] = log_alpha
        self.lam = lam
        self.weight_decay = weight_decay
        self.temperature = temperature
        self.local_rep = local_rep

    @property
    def n_gates(self):
        return int(self.params["log_alpha"].shape[0])

    def gates(self, x, *, train, rng):
        """``(z, backprop)``: sampled gates and their ``dz -> d log_alpha`` when training, else the mode and None.

        Training draws ``u ~ U(eps, 1-eps)`` of shape ``(n_gates,)`` (one gate vector per
        minibatch) or ``(batch, n_gates)`` with ``local_rep``, from ``rng``; ``backprop`` is
        :func:`~refprune.hard_concrete_sample_vjp`'s, which keeps the sample's stretched sigmoid.
        """
        log_alpha = self.params["log_alpha"]
        if not train:
            return gates.hard_concrete_mode(log_alpha), None
        if rng is None:
            msg = f"{type(self).__name__} samples its gates when train=True: pass rng= (a refprune generator)"
            raise ValueError(msg)
        shape = (int(x.shape[0]), self.n_gates) if self.local_rep else (self.n_gates,)
        u = rng.uniform(shape, dtype_name(log_alpha), GATE_NOISE_EPS, 1.0 - GATE_NOISE_EPS)
        return gates.hard_concrete_sample_vjp(log_alpha, u, beta=self.temperature)

    def _log_alpha_grad(self, backprop, dz):
        """Gradient to ``log_alpha`` from ``dz``, the gradient of the gates.

        ``dz`` has the gates' shape, or a leading batch axis over gates shared by the
        batch (one sample per minibatch in training, the mode at test time), which is
        summed here. At test time (``backprop is None``) it is the gradient through the mode,
        using ``hard_concrete_mode(a) == hard_concrete_sample(a, 1/2, beta=1)``.
        """
        log_alpha = self.params["log_alpha"]
        xp = namespace(None, log_alpha=log_alpha)
        if (backprop is None or not self.local_rep) and dz.ndim > log_alpha.ndim:
            dz = xp.sum(dz, axis=0)
        if backprop is None:
            half = xp.full_like(log_alpha, 0.5)
            return gates.hard_concrete_sample_grad(log_alpha, half, dz, beta=1.0)
        return backprop(dz)

    def prob_nonzero(self):
        """:math:`P(z_g \\ne 0)` per gate (clamped to [eps, 1-eps] like the paper's code)."""
        return gates.hard_concrete_prob_nonzero(self.params["log_alpha"], beta=self.temperature)

    def test_gates(self):
        """The deterministic test-time gates :func:`~refprune.hard_concrete_mode`."""
        return gates.hard_concrete_mode(self.params["log_alpha"])

    def effective(self):
        """Masked parameters with the test-time gates folded into ``w`` (and a gated bias); ``log_alpha`` left out.

        :class:`L0Dense` gates its input units: row ``i`` of ``w`` times :math:`\\hat z_i`.
        :class:`L0Conv2d` gates its output channels: filter and bias ``c`` times :math:`\\hat z_c`.
        """
        z = self.test_gates()
        w = self.param("w")
        xp = namespace(None, w=w)
        out = {"w": w * xp.reshape(z, (-1,) + (1,) * (w.ndim - 1))}
        b = self.param("b")
        if b is not None:
            out["b"] = b * z if self.kind == "conv" else b
        return out

    def open_gates(self):
        """How many test-time gates are nonzero (units or channels kept), a Python int."""
        xp = namespace(None, log_alpha=self.params["log_alpha"])
        return int(xp.count_nonzero(self.test_gates() > 0))

    def _penalty_args(self):
        return {"lam": self.lam, "weight_decay": self.weight_decay, "beta": self.temperature}

    def _l0_terms(self, w, *, value, grads):
        """``(R, d_log_alpha, d_w)`` of the expected L0 penalty of ``w`` under this layer's gates."""
        return l0_penalty_and_grad(
            self.params["log_alpha"], w, axis=0, value=value, grad=grads, w_grad=grads and bool(self.weight_decay),
            **self._penalty_args(),
        )

    def penalty_and_grads(self, *, value=True, grads=True):
        """``(R, grads)``: the penalty and its gradients by parameter name, in one pass.

        ``R`` is a 0-d array (``None`` when ``value`` is False), ``grads`` a dictionary
        (``None`` when ``grads`` is False) masked like ``grads`` and holding only the
        parameters the penalty depends on: ``w`` and ``b`` are left out when
        ``weight_decay`` is 0 (and the bias of :class:`L0Dense`, which only its L2
        term reaches). The subclasses define the penalty here, once.
        """
        raise NotImplementedError

    def penalty(self):
        """The expected L0 + L2 penalty :math:`R` (see the class), a 0-d array."""
        return self.penalty_and_grads(grads=False)[0]

    def penalty_grads(self):
        """Gradients of :meth:`penalty` for every parameter (zeros where it does not depend on one)."""
        grads = self.penalty_and_grads(value=False)[1]
        xp = namespace(None, log_alpha=self.params["log_alpha"])
        return {k: grads[k] if k in grads else xp.zeros_like(v) for k, v in self.params.items()}

    def constraints(self):
        """The paper's clamp of ``log_alpha`` to [log 1e-2, log 1e2] after every step."""
        return {"log_alpha": clamp(*LOG_ALPHA_RANGE)}

    def _expected_open(self):
        xp = namespace(None, log_alpha=self.params["log_alpha"])
        return float(xp.sum(self.prob_nonzero()))


class L0Dense(_Gated):
    r"""Dense layer with one hard-concrete gate per input unit.

    .. math::

        y = (x \odot z)\, W + b, \qquad W \in \mathbb{R}^{\text{in} \times \text{out}},
        \; z \in [0, 1]^{\text{in}}

    (with ``local_rep`` a row of gates per example). Gating the input equals gating the
    rows of ``W``, the paper's ``sample_weights``; the bias is not gated.

    Penalty (what is added to the loss, before the caller's 1/N scaling), as the
    paper's ``_reg_w`` for ``L0Dense``:

    .. math::

        R = \sum_i P(z_i \ne 0) \sum_j \left(\lambda + \tfrac{\text{wd}}{2} W_{ij}^2\right)
            + \tfrac{\text{wd}}{2} \sum_j b_j^2

    Parameters
    ----------
    w : array
        ``(in, out)``.
    b : array or None
        ``(out,)``.
    log_alpha : array
        ``(in,)`` gate locations.
    lam, weight_decay : float
        L0 strength per weight and L2 strength inside the penalty.
    temperature : float
        Hard-concrete temperature ``beta`` (2/3).
    local_rep : bool
        One gate sample per example instead of one per minibatch.
    """

    kind = "dense"

    def __init__(self, w, b, log_alpha, *, lam=1.0, weight_decay=0.0, temperature=gates.BETA, local_rep=False):
        super().__init__(
            w, b, log_alpha, lam=lam, weight_decay=weight_decay, temperature=temperature, local_rep=local_rep
        )

    def forward(self, x, *, train=False, rng=None):
        z, backprop = self.gates(x, train=train, rng=rng)
        xz = x * z
        self._cache = (x, z, backprop, xz)
        return F.dense(xz, self.param("w"), self.param("b"))

    def backward(self, dy, *, input_grad=True):
        r"""Gradients of the gated dense layer.

        With one gate vector for the whole batch, :math:`(x \odot z) W = x\,(\mathrm{diag}(z) W)`,
        so with :math:`G = x^\top dy`:

        .. math::

            dW = \mathrm{diag}(z)\,G, \qquad dz_i = \textstyle\sum_j W_{ij} G_{ij}, \qquad
            dx = (dy\,W^\top) \odot z

        and ``dx`` (the most expensive product of the first layer) is skipped when
        ``input_grad`` is False. With a gate row per example (``local_rep``),
        :math:`dW = (x \odot z)^\top dy` and :math:`dz = (dy\,W^\top) \odot x`.
        """
        x, z, backprop, xz = self._cached()
        w = self.param("w")
        xp = namespace(None, dy=dy)
        if z.ndim == 1:
            dxz, g, db = F.dense_grad(x, w, self.param("b"), dy, input_grad=input_grad)
            dw = g * xp.reshape(z, (-1, 1))
            dz = xp.vecdot(w, g, axis=-1)
        else:
            dxz, dw, db = F.dense_grad(xz, w, self.param("b"), dy)
            dz = dxz * x
        self._set_grads(w=dw, b=db, log_alpha=self._log_alpha_grad(backprop, dz))
        return None if dxz is None else dxz * z

    def penalty_and_grads(self, *, value=True, grads=True):
        r, dla, dw = self._l0_terms(self.param("w"), value=value, grads=grads)
        b, wd = self.param("b"), self.weight_decay
        if value and b is not None and wd:
            xp = namespace(None, b=b)
            r = r + (0.5 * wd) * xp.sum(b * b)
        if not grads:
            return r, None
        out = {"log_alpha": dla}
        if wd:
            out["w"] = self._masked_grad("w", dw)
            if b is not None:
                out["b"] = self._masked_grad("b", wd * b)
        return r, out

    def expected_flops_and_l0(self):
        """``(flops, l0)`` as the paper's ``count_expected_flops_and_l0`` for ``L0Dense``.

        With ``E = sum_i P(z_i != 0)``: flops ``(2E - 1) * out`` (+ ``out`` with a bias),
        L0 ``E * out`` (+ ``out`` with a bias). Python floats.
        """
        out = int(self.params["w"].shape[1])
        e = self._expected_open()
        flops, l0 = (2.0 * e - 1.0) * out, e * out
        if "b" in self.params:
            flops, l0 = flops + out, l0 + out
        return flops, l0

    def output_shape(self, shape):
        return (int(self.params["w"].shape[1]),)


class L0Conv2d(_Gated):
    r"""Convolution with one hard-concrete gate per output channel.

    .. math::

        y_{n,c} = z_c \left(\,(x * W)_{n,c} + b_c\right)

    The gate multiplies the output feature map, as the paper's ``L0Conv2d`` at test
    time and with ``local_rep`` (``z`` then has a row per example). For one gate vector
    per minibatch the paper's code instead scales the filters and drops the bias
    (so its bias never trains and stays 0); here the same output gating is used in
    every mode, which equals ``conv(x, z W, z b)`` and lets the bias train, gated with
    its channel.

    Penalty: the bias belongs to its channel's group,

    .. math::

        R = \sum_c P(z_c \ne 0) \Big(\sum_{j \in c} (\lambda + \tfrac{\text{wd}}{2} W_j^2)
            + \lambda + \tfrac{\text{wd}}{2} b_c^2\Big)

    which is the paper's equation and its ``count_expected_flops_and_l0`` (one more L0
    parameter per open channel). The paper's ``_reg_w`` writes the bias term as
    ``-(1-q0)(wd/2 b^2 - lambda)``, which enters the loss as ``-lambda`` per open
    channel (a reward for open gates); that sign is not reproduced.

    Parameters
    ----------
    w, b, log_alpha : array
        ``(out, in, kh, kw)``, ``(out,)`` or None, ``(out,)``.
    stride, padding : int
        Convolution geometry.
    lam, weight_decay, temperature, local_rep
        As for :class:`L0Dense`.
    input_hw : tuple of int, optional
        Input height and width, for :meth:`expected_flops_and_l0`; recorded by the first
        forward when not given.
    """

    kind = "conv"

    def __init__(
        self,
        w,
        b,
        log_alpha,
        *,
        stride=1,
        padding=0,
        lam=1.0,
        weight_decay=0.0,
        temperature=gates.BETA,
        local_rep=False,
        input_hw=None,
    ):
        super().__init__(
            w, b, log_alpha, lam=lam, weight_decay=weight_decay, temperature=temperature, local_rep=local_rep
        )
        self.stride = stride
        self.padding = padding
        self.input_hw = None if input_hw is None else (int(input_hw[0]), int(input_hw[1]))

    def forward(self, x, *, train=False, rng=None):
        xp = namespace(None, x=x)
        if self.input_hw is None:
            self.input_hw = (int(x.shape[2]), int(x.shape[3]))
        z, backprop = self.gates(x, train=train, rng=rng)
        z4 = xp.reshape(z, (-1, self.n_gates, 1, 1))
        out, conv_backprop = _conv_and_backprop(self, x, train)
        self._cache = (conv_backprop, out, z4, backprop)
        return out * z4

    def backward(self, dy, *, input_grad=True):
        conv_backprop, out, z4, backprop = self._cached()
        xp = namespace(None, dy=dy)
        dx, dw, db = conv_backprop(dy * z4, input_grad=input_grad)
        dla = self._log_alpha_grad(backprop, xp.sum(dy * out, axis=(2, 3)))
        self._set_grads(w=dw, b=db, log_alpha=dla)
        return dx

    def penalty_and_grads(self, *, value=True, grads=True):
        r, dla, dw = self._l0_terms(self.param("w"), value=value, grads=grads)
        b, wd = self.param("b"), self.weight_decay
        db = None
        if b is not None:
            r_b, dla_b, db = self._l0_terms(b, value=value, grads=grads)
            r = r + r_b if value else None
            dla = dla + dla_b if grads else None
        if not grads:
            return r, None
        out = {"log_alpha": dla}
        if wd:
            out["w"] = self._masked_grad("w", dw)
            if db is not None:
                out["b"] = self._masked_grad("b", db)
        return r, out

    def expected_flops_and_l0(self):
        """``(flops, l0)`` as the paper's ``count_expected_flops_and_l0`` for ``L0Conv2d``.

        With ``E = sum_c P(z_c != 0)``, ``n = in*kh*kw`` and ``P`` output positions:
        flops ``P (2n - 1) E`` (+ ``P E`` with a bias), L0 ``n E`` (+ ``E``). ``P`` is the
        true output height times width; the paper's code computes it from the input's
        (channels, height) by an indexing slip, which is not reproduced.
        """
        if self.input_hw is None:
            msg = "L0Conv2d needs its input size for FLOPs: pass input_hw= or run a forward first"
            raise RuntimeError(msg)
        out, cin, kh, kw = (int(d) for d in self.params["w"].shape)
        _, oh, ow = conv_output_shape((cin, *self.input_hw), self.params["w"].shape, self.stride, self.padding)
        n, positions, e = cin * kh * kw, oh * ow, self._expected_open()
        flops, l0 = positions * (2 * n - 1) * e, n * e
        if "b" in self.params:
            flops, l0 = flops + positions * e, l0 + e
        return flops, l0

    def output_shape(self, shape):
        return conv_output_shape(shape, self.params["w"].shape, self.stride, self.padding)


# --------------------------------------------------------------------------- the transformer's layers


class Embedding(Layer):
    r"""Token embedding :math:`y_{b,t} = E_{\mathrm{ids}_{b,t}}`: integer ids ``(B, T)`` to ``(B, T, d)``.

    Parameters
    ----------
    w : array
        The table ``(V, d)`` (``torch.nn.Embedding.weight``). Not prunable: ``kind`` is None.
    """

    def __init__(self, w):
        super().__init__()
        self.params["w"] = w

    def forward(self, x, *, train=False, rng=None):
        self._cache = x
        return F.embedding(x, self.param("w"))

    def backward(self, dy, *, input_grad=True):
        self._set_grads(w=F.embedding_grad(self._cached(), self.param("w"), dy))
        return None  # token ids have no gradient

    def output_shape(self, shape):
        return (*tuple(shape), int(self.params["w"].shape[1]))


class PositionEmbedding(Layer):
    r"""Learned positions added to a sequence: :math:`y_{b,t} = x_{b,t} + P_t` for ``x`` ``(B, T, d)``.

    Parameters
    ----------
    w : array
        The table ``(context, d)``; a sequence may be shorter than ``context``.
    """

    def __init__(self, w):
        super().__init__()
        self.params["w"] = w

    def _positions(self, x):
        xp = namespace(None, x=x)
        return xp.arange(int(x.shape[1]), dtype=xp.int64, device=device_of(x))

    def forward(self, x, *, train=False, rng=None):
        context = int(self.params["w"].shape[0])
        if x.ndim != 3 or int(x.shape[1]) > context:
            msg = f"PositionEmbedding needs (batch, time, width) inputs with time <= {context}, got {tuple(x.shape)}"
            raise ValueError(msg)
        self._cache = x
        return x + F.embedding(self._positions(x), self.param("w"))

    def backward(self, dy, *, input_grad=True):
        xp = namespace(None, dy=dy)
        positions = self._positions(self._cached())
        self._set_grads(w=F.embedding_grad(positions, self.param("w"), xp.sum(dy, axis=0)))
        return dy


class LayerNorm(Layer):
    """Layer normalization over the last axis (:func:`refprune.nn.functional.layer_norm`), ``gamma``, ``beta`` ``(d,)``."""

    def __init__(self, gamma, beta, *, eps=1e-5):
        super().__init__()
        self.params["gamma"] = gamma
        self.params["beta"] = beta
        self.eps = eps

    def forward(self, x, *, train=False, rng=None):
        self._cache = x
        return F.layer_norm(x, self.param("gamma"), self.param("beta"), eps=self.eps)

    def backward(self, dy, *, input_grad=True):
        dx, dgamma, dbeta = F.layer_norm_grad(self._cached(), self.param("gamma"), self.param("beta"), dy,
                                              eps=self.eps)
        self._set_grads(gamma=dgamma, beta=dbeta)
        return dx

    def __repr__(self):
        return f"LayerNorm({int(self.params['gamma'].shape[0])}, eps={self.eps})"


class GELU(Layer):
    """GELU, tanh approximation (:func:`refprune.nn.functional.gelu`; torch's ``approximate="tanh"``)."""

    def forward(self, x, *, train=False, rng=None):
        self._cache = x
        return F.gelu(x)

    def backward(self, dy, *, input_grad=True):
        return F.gelu_grad(self._cached(), dy)


class CausalSelfAttention(Layer):
    """Causal multi-head attention of packed ``[q, k, v]`` ``(B, T, 3d)`` to ``(B, T, d)``; no parameters.

    The projections around it are :class:`Dense` layers (``qkv`` before, ``proj`` after),
    so that a pruner masks them like any dense weight
    (:func:`refprune.nn.functional.causal_self_attention`).
    """

    def __init__(self, heads):
        super().__init__()
        self.heads = int(heads)

    def forward(self, x, *, train=False, rng=None):
        self._cache = x
        return F.causal_self_attention(x, heads=self.heads)

    def backward(self, dy, *, input_grad=True):
        return F.causal_self_attention_grad(self._cached(), dy, heads=self.heads)

    def output_shape(self, shape):
        return (*tuple(shape)[:-1], int(shape[-1]) // 3)

    def __repr__(self):
        return f"CausalSelfAttention(heads={self.heads})"
