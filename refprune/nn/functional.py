r"""Pure forward/backward pairs for the layers of a network, on the Array API.

Every forward ``f(x, ...)`` has a backward ``f_grad(x, ..., dy)`` beside it that returns
the gradient of ``sum(f(x) * dy)`` with respect to every array input. Nothing is
cached and nothing is written in place: a layer object that wants to save work keeps
what it needs itself. Layouts follow torch: images are NCHW, convolution weights
``(out, in, kh, kw)``; dense weights are ``(in, out)`` as in the L0 paper's code, so
``dense(x, w, b) = x @ w + b``.

The convolution is im2col: the input windows are gathered by strided slicing, one
slice per kernel offset, stacked into a ``(C*kh*kw, Ho*Wo*N)`` matrix, and multiplied
by the ``(O, C*kh*kw)`` weight matrix in one matmul. Internally the batch axis goes
last (``(C, H, W, N)``), so that every copy moves long contiguous runs; the outputs
are ``(N, C, H, W)`` views of that memory, which the next convolution or pooling
takes without a copy. Its backward scatters the window
gradients back (col2im) by summing zero-padded shifted copies, built with ``concat``,
so that immutable-array libraries work too. The two building blocks, ``_im2col`` and
``_col2im``, are small private functions that a backend fast path may replace.

Examples
--------
>>> import array_api_strict as xp
>>> from refprune.nn import functional as F
>>> x = xp.reshape(xp.arange(16, dtype=xp.float64), (1, 1, 4, 4))
>>> w = xp.ones((1, 1, 2, 2), dtype=xp.float64)
>>> F.conv2d(x, w, None, stride=2)[0, 0, ...]
Array([[10., 18.],
       [42., 50.]], dtype=array_api_strict.float64)
>>> F.max_pool2d(x, kernel=2)[0, 0, ...]
Array([[ 5.,  7.],
       [13., 15.]], dtype=array_api_strict.float64)
"""

from __future__ import annotations

import math
import numbers

from .._array import (
    check_finite_scalar,
    check_same_device,
    checking,
    device_of,
    float_namespace,
    is_int,
    known_true,
    namespace,
    values_checkable,
)
from .._dispatch import delegate

__all__ = [
    "count_correct",
    "dense",
    "dense_grad",
    "conv2d",
    "conv2d_grad",
    "conv2d_vjp",
    "max_pool2d",
    "max_pool2d_grad",
    "max_pool2d_vjp",
    "relu",
    "relu_grad",
    "tanh",
    "tanh_grad",
    "softmax",
    "log_softmax",
    "softmax_cross_entropy",
    "softmax_cross_entropy_grad",
    "softmax_cross_entropy_and_grad",
    "batch_norm",
    "batch_norm_grad",
    "flatten",
    "flatten_grad",
    "feature_index",
    "select_features",
    "select_features_grad",
    "embedding",
    "embedding_grad",
    "layer_norm",
    "layer_norm_grad",
    "gelu",
    "gelu_grad",
    "causal_self_attention",
    "causal_self_attention_grad",
]


# --------------------------------------------------------------------------- checks


def _shape(x):
    return tuple(map(int, x.shape))


def _check_ndim(name, x, ndim, layout):
    if checking() and x.ndim != ndim:
        msg = f"{name} must be {ndim}-D {layout}, got shape {_shape(x)}"
        raise ValueError(msg)


def _check_same_dtype(ref_name, ref, **arrays):
    if not checking():
        return
    for name, a in arrays.items():
        if a is not None and a.dtype != ref.dtype:
            msg = (
                f"{name} has dtype {a.dtype} but {ref_name} has {ref.dtype}; convert both to one "
                f"floating dtype (e.g. xp.astype({name}, {ref_name}.dtype))"
            )
            raise TypeError(msg)


def _float_ns(xp, **arrays):
    """Namespace of the non-``None`` arrays, all real-floating, one device, one dtype."""
    if not checking():  # inside ``trusted``: only the namespace, which the first array decides
        return xp if xp is not None else float_namespace(None, x=next(v for v in arrays.values() if v is not None))
    present = {k: v for k, v in arrays.items() if v is not None}
    xp = float_namespace(xp, **present)
    (ref_name, ref), *rest = present.items()
    _check_same_dtype(ref_name, ref, **dict(rest))
    return xp


def _check_shape(name, a, shape, hint=""):
    if a is not None and checking() and _shape(a) != tuple(shape):
        msg = f"{name} must have shape {tuple(shape)}, got {_shape(a)}{hint}"
        raise ValueError(msg)


def _pair(name, value, *, minimum):
    """``value`` as a pair of Python ints ``>= minimum``; an int means the same on both axes.

    Plain ints (the stride and padding a layer passes at every call) are taken without
    the ``numbers.Integral`` checks, which were a fifth of a small network's forward at
    batch 1; anything else goes through :func:`_pair_checked` and its messages.
    """
    if type(value) is int and value >= minimum:
        return (value, value)
    if type(value) is tuple and len(value) == 2 and all(type(v) is int and v >= minimum for v in value):
        return value
    return _pair_checked(name, value, minimum)


def _pair_checked(name, value, minimum):
    items = (value, value) if not isinstance(value, (tuple, list)) else tuple(value)
    if len(items) != 2 or not all(is_int(v) for v in items):
        msg = f"{name} must be an int or a pair of ints (h, w), got {name}={value!r}"
        raise TypeError(msg)
    items = tuple(int(v) for v in items)
    if min(items) < minimum:
        msg = f"{name} must be >= {minimum} on both axes, got {name}={value!r}"
        raise ValueError(msg)
    return items


def _size(x):
    size = 1
    for d in _shape(x):
        size *= d
    return size


def _zeros(xp, shape, like):
    return xp.zeros(shape, dtype=like.dtype, device=device_of(like))


def _out_size(name, size, kernel, stride, padding=(0, 0)):
    """Output height and width of a sliding window; a ``ValueError`` when it does not fit."""
    out = []
    for axis, n, k, s, p in zip(("height", "width"), size, kernel, stride, padding, strict=True):
        if n + 2 * p < k:
            msg = (
                f"{name}: the kernel {axis} {k} is larger than the padded input {axis} "
                f"{n} + 2*{p} = {n + 2 * p}; use a smaller kernel or more padding"
            )
            raise ValueError(msg)
        out.append((n + 2 * p - k) // s + 1)
    return tuple(out)


# ------------------------------------------------------------------ building blocks


def _pad2d(x, padding, xp):
    """Zero-pad axes 1 and 2 (height, width) of ``(A, H, W, B)`` by ``(ph, pw)`` per side (concat, no writes)."""
    ph, pw = padding
    if ph:
        x = _place(x, 1, ph, int(x.shape[1]) + 2 * ph, xp)
    if pw:
        x = _place(x, 2, pw, int(x.shape[2]) + 2 * pw, xp)
    return x


def _place(x, axis, before, total, xp):
    """Embed ``x`` along ``axis`` at offset ``before`` in a zero array of length ``total``."""
    shape = _shape(x)
    after = total - before - shape[axis]
    parts = []
    if before:
        parts.append(_zeros(xp, (*shape[:axis], before, *shape[axis + 1 :]), x))
    parts.append(x)
    if after:
        parts.append(_zeros(xp, (*shape[:axis], after, *shape[axis + 1 :]), x))
    return parts[0] if len(parts) == 1 else xp.concat(parts, axis=axis)


def _dilate(x, stride, axis, xp):
    """Insert ``stride - 1`` zeros between neighbours along ``axis`` (``axis >= 0``).

    ``[a, b, c]`` with stride 2 becomes ``[a, 0, b, 0, c]``: interleave with zero
    blocks by ``stack`` on a new axis, merge the two axes, drop the trailing zeros.
    """
    if stride == 1:
        return x
    shape = _shape(x)
    n = shape[axis]
    zero = _zeros(xp, shape, x)
    merged = xp.stack([x] + [zero] * (stride - 1), axis=axis + 1)
    merged = xp.reshape(merged, (*shape[:axis], n * stride, *shape[axis + 1 :]))
    keep = (n - 1) * stride + 1 if n else 0
    index = (slice(None),) * axis + (slice(0, keep), ...)
    return merged[index]


def _batch_last(x, xp):
    """``(N, C, H, W) -> (C, H, W, N)``, laid out in that order in memory.

    The windows of ``_im2col`` then copy runs of ``Wo*N`` contiguous numbers instead of
    ``Wo``. Merging axes in ``reshape`` makes libraries with strided views (NumPy, torch,
    CuPy) copy into that order when the memory is not already so; when it is (the
    output of ``conv2d`` or ``max_pool2d`` is), nothing is copied.
    """
    n, c, h, w = _shape(x)
    t = xp.reshape(xp.permute_dims(x, (1, 2, 3, 0)), (c, h * w * n))
    return xp.reshape(t, (c, h, w, n))


def _im2col(x, kernel, stride, xp):
    """Sliding windows of ``x`` ``(A, H, W, B)`` as ``(A, kh*kw, Ho, Wo, B)``.

    Entry ``[a, i*kw + j, p, q, b] = x[a, p*sh + i, q*sw + j, b]``: one strided slice
    per kernel offset ``(i, j)``, stacked once.
    """
    kh, kw = kernel
    sh, sw = stride
    _, h, w, _ = _shape(x)
    ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
    views = [
        x[:, i : i + (ho - 1) * sh + 1 : sh, j : j + (wo - 1) * sw + 1 : sw, :] for i in range(kh) for j in range(kw)
    ]
    return xp.stack(views, axis=1)


def _col2im(cols, kernel, stride, size, xp):
    """Adjoint of ``_im2col``: sum window entries ``(A, kh*kw, Ho, Wo, B)`` back into ``(A, H, W, B)``.

    ``out[a, p*sh + i, q*sw + j, b] += cols[a, i*kw + j, p, q, b]``, built without
    writes: along the width, each kernel column ``j`` is zero-dilated by the stride and
    zero-padded to offset ``j``, and the ``kw`` copies are summed; then the same along
    the height for each kernel row ``i``. Loops run over ``kw + kh`` offsets only.
    """
    kh, kw = kernel
    sh, sw = stride
    h, w = size
    a, _, ho, wo, b = _shape(cols)
    d = xp.reshape(cols, (a, kh, kw, ho, wo, b))
    d = _dilate(d, sw, 4, xp)  # (a, kh, kw, ho, wd, b)
    rows = None
    for j in range(kw):
        part = _place(d[:, :, j, ...], 3, j, w, xp)  # (a, kh, ho, w, b)
        rows = part if rows is None else rows + part
    rows = _dilate(rows, sh, 2, xp)  # (a, kh, hd, w, b)
    out = None
    for i in range(kh):
        part = _place(rows[:, i, ...], 1, i, h, xp)  # (a, h, w, b)
        out = part if out is None else out + part
    return out


def _conv_cols(x, kernel, stride, padding, xp):
    """im2col matrix ``(C*kh*kw, Ho*Wo*N)`` of ``x`` ``(N, C, H, W)`` after zero padding."""
    n, c, _, _ = _shape(x)
    cols = _im2col(_pad2d(_batch_last(x, xp), padding, xp), kernel, stride, xp)  # (C, kh*kw, Ho, Wo, N)
    _, k, ho, wo, _ = _shape(cols)
    return xp.reshape(cols, (c * k, ho * wo * n))


def conv_patches(x, /, *, kernel, stride=1, padding=0, xp=None):
    r"""The im2col matrix of ``x``: the input patch under every window of a 2-D convolution.

    .. math::

        P_{(c,i,j),\,(p,q,n)} = \tilde x_{n,c,\,p s_h + i,\,q s_w + j}

    where :math:`\tilde x` is ``x`` zero-padded by ``padding`` on each side, so that
    ``conv2d(x, w, None)`` is ``reshape(w, (O, C*kh*kw)) @ P`` laid out as ``(N, O, Ho, Wo)``.
    Used for the inputs a conv layer's weights see (one-shot calibration); a helper,
    not part of the protocol (not in ``__all__``).

    Parameters
    ----------
    x : array, shape (N, C, H, W)
    kernel, stride, padding : int or (int, int)
        Window size, its step and the zero padding on each side, per axis (as :func:`conv2d`).

    Returns
    -------
    patches : array, shape (C*kh*kw, Ho*Wo*N)
    """
    xp = namespace(xp, x=x)
    _check_ndim("x", x, 4, "(N, C, H, W)")
    kernel = _pair("kernel", kernel, minimum=1)
    stride = _pair("stride", stride, minimum=1)
    padding = _pair("padding", padding, minimum=0)
    return _conv_cols(x, kernel, stride, padding, xp)


def _conv_args(x, w, b, stride, padding, xp, *, fn):
    xp = _float_ns(xp, x=x, w=w, b=b)
    _check_ndim("x", x, 4, "(N, C, H, W)")
    _check_ndim("w", w, 4, "(out_channels, in_channels, kh, kw)")
    if int(w.shape[1]) != int(x.shape[1]):
        msg = (
            f"w has {int(w.shape[1])} input channels (w.shape[1]) but x has {int(x.shape[1])} "
            f"(x.shape[1]); conv weights are laid out (out, in, kh, kw)"
        )
        raise ValueError(msg)
    _check_shape("b", b, (int(w.shape[0]),), " (one bias per output channel)")
    stride = _pair("stride", stride, minimum=1)
    padding = _pair("padding", padding, minimum=0)
    kernel = _shape(w)[2:]
    out = _out_size(fn, _shape(x)[2:], kernel, stride, padding)
    return xp, kernel, stride, padding, out


# ------------------------------------------------------------------------- dense


def _dense_args(x, w, b, xp):
    xp = _float_ns(xp, x=x, w=w, b=b)
    if not checking():
        return xp
    if x.ndim < 1 or w.ndim != 2:
        msg = f"dense needs x of shape (..., in) and w of shape (in, out), got {_shape(x)} and {_shape(w)}"
        raise ValueError(msg)
    if int(x.shape[-1]) != int(w.shape[0]):
        msg = (
            f"x has {int(x.shape[-1])} features (x.shape[-1]) but w expects {int(w.shape[0])} "
            f"(w.shape[0]); dense weights are laid out (in, out)"
        )
        raise ValueError(msg)
    _check_shape("b", b, (int(w.shape[1]),), " (one bias per output unit)")
    return xp


def dense(x, w, b, /, *, xp=None):
    r"""Fully connected layer.

    .. math:: y = x W + b

    Parameters
    ----------
    x : array, shape (..., in)
        Inputs, one row per example.
    w : array, shape (in, out)
        Weights (the L0 paper's layout, the transpose of ``torch.nn.Linear.weight``).
    b : array of shape (out,), or None
        Bias; ``None`` for none.

    Returns
    -------
    y : array, shape (..., out)
    """
    xp = _dense_args(x, w, b, xp)
    y = xp.matmul(x, w)
    return y if b is None else y + b


def dense_grad(x, w, b, dy, /, *, input_grad=True, xp=None):
    r"""Gradient of :func:`dense`.

    .. math:: dx = dy\,W^\top,\qquad dW = x^\top dy,\qquad db = \textstyle\sum_n dy_n

    (leading axes of ``x`` beyond one are summed over like the batch axis).

    Parameters
    ----------
    x, w, b : array
        As for :func:`dense` (``b`` may be ``None``).
    dy : array
        Upstream gradient, the shape of :func:`dense`'s output.
    input_grad : bool
        False skips ``dx`` (returned as ``None``): the first layer of a network needs
        no gradient for its input, and ``dx`` is a third of the layer's backward.

    Returns
    -------
    dx, dw, db : arrays shaped like ``x``, ``w`` and ``b`` (``db`` is ``None`` when ``b`` is,
        ``dx`` when ``input_grad`` is False).
    """
    xp = _dense_args(x, w, b, xp)
    if checking():
        _float_ns(xp, x=x, dy=dy)
        _check_shape("dy", dy, (*_shape(x)[:-1], int(w.shape[1])), " (the shape of dense's output)")
    dx = xp.matmul(dy, xp.matrix_transpose(w)) if input_grad else None
    rows = 1
    for d in _shape(x)[:-1]:
        rows *= d
    x2 = xp.reshape(x, (rows, int(x.shape[-1]))) if x.ndim != 2 else x
    dy2 = xp.reshape(dy, (rows, int(dy.shape[-1]))) if dy.ndim != 2 else dy
    dw = xp.matmul(xp.matrix_transpose(x2), dy2)
    db = None if b is None else xp.sum(dy2, axis=0)
    return dx, dw, db


# ------------------------------------------------------------------------ conv2d


def conv2d(x, w, b, /, *, stride=1, padding=0, xp=None):
    r"""2-D convolution (cross-correlation, as in every deep-learning library), NCHW.

    .. math::

        y_{n,o,p,q} = b_o + \sum_{c,i,j} w_{o,c,i,j}\,
                      \tilde x_{n,c,\,p s_h + i,\,q s_w + j}

    where :math:`\tilde x` is ``x`` zero-padded by ``padding`` on each side. Output
    size :math:`H_o = \lfloor (H + 2p_h - k_h)/s_h \rfloor + 1` (and likewise the width).

    Parameters
    ----------
    x : array, shape (N, C, H, W)
    w : array, shape (O, C, kh, kw)
    b : array of shape (O,), or None
    stride, padding : int or (int, int)
        Step of the window and zero padding on each side, per axis.

    Returns
    -------
    y : array, shape (N, O, Ho, Wo)
    """
    xp, kernel, stride, padding, (ho, wo) = _conv_args(x, w, b, stride, padding, xp, fn="conv2d")
    # an empty filter bank or input (a compacted layer that lost every channel) takes the reference path
    y = delegate("conv2d", xp, x, w, b, stride=stride, padding=padding) if _size(w) and _size(x) else None
    if y is not None:
        return y
    n, c, o = int(x.shape[0]), int(x.shape[1]), int(w.shape[0])
    cols = _conv_cols(x, kernel, stride, padding, xp)
    y = xp.matmul(xp.reshape(w, (o, c * kernel[0] * kernel[1])), cols)  # (O, Ho*Wo*N): one matmul
    if b is not None:
        y = y + b[:, None]
    return xp.permute_dims(xp.reshape(y, (o, ho, wo, n)), (3, 0, 1, 2))


def conv2d_grad(x, w, b, dy, /, *, stride=1, padding=0, input_grad=True, xp=None):
    r"""Gradient of :func:`conv2d`.

    With the im2col matrix :math:`X_{col}` (``(C k_h k_w, H_o W_o N)``), the weights as
    a matrix :math:`W` (``(O, C k_h k_w)``) and :math:`dY` as ``(O, H_o W_o N)``:

    .. math::

        dW = dY\,X_{col}^\top,\qquad db_o = \sum_{n,p,q} dy_{n,o,p,q},\qquad
        dx = \operatorname{col2im}(W^\top dY)

    where col2im adds every window entry back to the input pixel it came from
    (overlapping windows accumulate) and drops the padding. ``input_grad=False`` skips
    :math:`dx` (the first layer of a network: its input needs no gradient).

    Returns
    -------
    dx, dw, db : arrays shaped like ``x``, ``w`` and ``b`` (``db`` is ``None`` when ``b`` is;
        ``dx`` when ``input_grad`` is False).
    """
    xp, kernel, stride, padding, (ho, wo) = _conv_args(x, w, b, stride, padding, xp, fn="conv2d_grad")
    xp = _float_ns(xp, x=x, dy=dy)
    n, c, h, wd = _shape(x)
    o = int(w.shape[0])
    _check_shape("dy", dy, (n, o, ho, wo), " (the shape of conv2d's output)")
    grads = delegate("conv2d_grad", xp, x, w, b, dy, stride=stride, padding=padding, input_grad=bool(input_grad))
    if grads is not None:
        return grads
    dy2 = xp.reshape(xp.permute_dims(dy, (1, 2, 3, 0)), (o, ho * wo * n))
    w2 = xp.reshape(w, (o, c * kernel[0] * kernel[1]))
    cols = _conv_cols(x, kernel, stride, padding, xp)
    dw = xp.reshape(xp.matmul(dy2, xp.matrix_transpose(cols)), _shape(w))
    db = None if b is None else xp.sum(dy2, axis=1)
    if not input_grad:
        return None, dw, db
    dcols = xp.matmul(xp.matrix_transpose(w2), dy2)  # (C*kh*kw, Ho*Wo*N)
    dcols = xp.reshape(dcols, (c, kernel[0] * kernel[1], ho, wo, n))
    ph, pw = padding
    dxt = _col2im(dcols, kernel, stride, (h + 2 * ph, wd + 2 * pw), xp)  # (C, Hp, Wp, N)
    dx = xp.permute_dims(dxt[:, ph : ph + h, pw : pw + wd, :], (3, 0, 1, 2))
    return dx, dw, db


def conv2d_vjp(x, w, b, /, *, stride=1, padding=0, xp=None):
    r"""``(y, backprop)``: :func:`conv2d` and a function ``dy -> (dx, dw, db)``, its :func:`conv2d_grad`.

    ``backprop(dy, *, input_grad=True)`` returns what ``conv2d_grad(x, w, b, dy, ...)``
    returns, bit for bit; a backend's fast path keeps what the forward built for the
    backward (NumPy: the im2col matrix :math:`X_{col}` of :math:`dW = dY\,X_{col}^\top`)
    instead of building it again. Parameters as for :func:`conv2d`.
    """
    xp, _, stride, padding, _ = _conv_args(x, w, b, stride, padding, xp, fn="conv2d")
    fast = delegate("conv2d_vjp", xp, x, w, b, stride=stride, padding=padding) if _size(w) and _size(x) else None
    y, fast_backprop = fast if fast is not None else (conv2d(x, w, b, stride=stride, padding=padding, xp=xp), None)

    def backprop(dy, *, input_grad=True):
        _float_ns(xp, x=x, dy=dy)
        grads = None
        if fast_backprop is not None and tuple(dy.shape) == tuple(y.shape):
            grads = fast_backprop(dy, input_grad=bool(input_grad))
        if grads is None:  # a dy that the fast path does not take: the reference (and its messages)
            grads = conv2d_grad(x, w, b, dy, stride=stride, padding=padding, input_grad=input_grad, xp=xp)
        return grads

    return y, backprop


# -------------------------------------------------------------------- max_pool2d


def _pool_args(x, kernel, stride, xp, *, fn):
    xp = _float_ns(xp, x=x)
    _check_ndim("x", x, 4, "(N, C, H, W)")
    kernel = _pair("kernel", kernel, minimum=1)
    stride = kernel if stride is None else _pair("stride", stride, minimum=1)
    out = _out_size(fn, _shape(x)[2:], kernel, stride)
    return xp, kernel, stride, out


def _pool_windows(x, kernel, stride, xp):
    return _im2col(_batch_last(x, xp), kernel, stride, xp)  # (C, K, Ho, Wo, N)


def max_pool2d(x, /, *, kernel, stride=None, xp=None):
    r"""2-D max pooling without padding, NCHW.

    .. math:: y_{n,c,p,q} = \max_{0 \le i < k_h,\ 0 \le j < k_w} x_{n,c,\,p s_h + i,\,q s_w + j}

    Parameters
    ----------
    x : array, shape (N, C, H, W)
    kernel : int or (int, int)
        Window size.
    stride : int or (int, int), optional
        Window step; defaults to ``kernel`` (non-overlapping windows). Trailing rows and
        columns that do not fill a window are dropped, as in torch (``ceil_mode=False``).

    Returns
    -------
    y : array, shape (N, C, Ho, Wo) with :math:`H_o = \lfloor (H - k_h)/s_h \rfloor + 1`.
    """
    xp, kernel, stride, _ = _pool_args(x, kernel, stride, xp, fn="max_pool2d")
    y = delegate("max_pool2d", xp, x, kernel=kernel, stride=stride) if _size(x) else None  # empty: reference
    if y is not None:
        return y
    y = xp.max(_pool_windows(x, kernel, stride, xp), axis=1)  # (C, Ho, Wo, N)
    return xp.permute_dims(y, (3, 0, 1, 2))


def max_pool2d_grad(x, dy, /, *, kernel, stride=None, xp=None):
    r"""Gradient of :func:`max_pool2d`.

    .. math:: dx_{n,c,h,w} = \sum_{(p,q)\,:\,a(n,c,p,q) = (h,w)} dy_{n,c,p,q}

    where :math:`a(n,c,p,q)` is the position of the window's maximum. Ties go to one
    element only, the first in the window's row-major scan order (as torch does);
    overlapping windows accumulate.

    Returns
    -------
    dx : array shaped like ``x``.
    """
    xp, kernel, stride, (ho, wo) = _pool_args(x, kernel, stride, xp, fn="max_pool2d_grad")
    xp = _float_ns(xp, x=x, dy=dy)
    n, c, h, w = _shape(x)
    _check_shape("dy", dy, (n, c, ho, wo), " (the shape of max_pool2d's output)")
    dx = delegate("max_pool2d_grad", xp, x, dy, kernel=kernel, stride=stride)
    if dx is not None:
        return dx
    k = kernel[0] * kernel[1]
    first = xp.argmax(_pool_windows(x, kernel, stride, xp), axis=1)  # (C, Ho, Wo, N), first max
    offsets = xp.reshape(xp.arange(k, dtype=first.dtype, device=device_of(x)), (1, k, 1, 1, 1))
    hit = xp.expand_dims(first, axis=1) == offsets  # (C, K, Ho, Wo, N)
    dy5 = xp.expand_dims(xp.permute_dims(dy, (1, 2, 3, 0)), axis=1)  # (C, 1, Ho, Wo, N)
    cols = xp.where(hit, dy5, _zeros(xp, (), x))  # where, not a product: 0*inf would be NaN
    return xp.permute_dims(_col2im(cols, kernel, stride, (h, w), xp), (3, 0, 1, 2))


def max_pool2d_vjp(x, /, *, kernel, stride=None, xp=None):
    r"""``(y, backprop)``: :func:`max_pool2d` and a function ``dy -> dx``, its :func:`max_pool2d_grad`.

    ``backprop(dy)`` equals ``max_pool2d_grad(x, dy, ...)`` bit for bit; a backend's fast
    path keeps the forward's window maxima for it instead of pooling again.
    """
    xp, kernel, stride, _ = _pool_args(x, kernel, stride, xp, fn="max_pool2d")
    fast = delegate("max_pool2d_vjp", xp, x, kernel=kernel, stride=stride) if _size(x) else None
    y, fast_backprop = fast if fast is not None else (max_pool2d(x, kernel=kernel, stride=stride, xp=xp), None)

    def backprop(dy):
        _float_ns(xp, x=x, dy=dy)
        dx = None
        if fast_backprop is not None and tuple(dy.shape) == tuple(y.shape):
            dx = fast_backprop(dy)
        return dx if dx is not None else max_pool2d_grad(x, dy, kernel=kernel, stride=stride, xp=xp)

    return y, backprop


# ------------------------------------------------------------------- activations


def relu(x, /, *, xp=None):
    r"""Rectified linear unit.

    .. math:: y = \max(x, 0)

    NaN stays NaN, as in torch.
    """
    xp = float_namespace(xp, x=x)
    return xp.maximum(x, _zeros(xp, (), x))  # a 0-d zero broadcasts: 5x faster than zeros_like in NumPy


def relu_grad(x, dy, /, *, xp=None):
    r"""Gradient of :func:`relu`.

    .. math:: dx = dy \cdot \mathbb 1[x > 0]

    At exactly ``x = 0`` the gradient is 0 (the subgradient torch uses); a NaN in ``x``
    passes ``dy`` through, as torch's ``threshold_backward`` does.
    """
    xp = _float_ns(xp, x=x, dy=dy)
    _check_shape("dy", dy, _shape(x), " (the shape of x)")
    dx = delegate("relu_grad", xp, x, dy)
    if dx is not None:
        return dx
    return xp.where(x <= 0, _zeros(xp, (), dy), dy)


def tanh(x, /, *, xp=None):
    r"""Hyperbolic tangent.

    .. math:: y = \tanh x
    """
    xp = float_namespace(xp, x=x)
    return xp.tanh(x)


def tanh_grad(x, dy, /, *, xp=None):
    r"""Gradient of :func:`tanh`.

    .. math:: dx = dy\,(1 - \tanh^2 x)
    """
    xp = _float_ns(xp, x=x, dy=dy)
    _check_shape("dy", dy, _shape(x), " (the shape of x)")
    t = xp.tanh(x)
    return dy * (1.0 - t * t)


# ------------------------------------------------------------- softmax and loss


def log_softmax(logits, /, *, axis=-1, xp=None):
    r"""Logarithm of the softmax, computed stably.

    .. math:: \log\operatorname{softmax}(z)_k = (z_k - m) - \log \sum_j e^{z_j - m},
              \qquad m = \max_j z_j
    """
    xp = float_namespace(xp, logits=logits)
    z = logits - xp.max(logits, axis=axis, keepdims=True)
    return z - xp.log(xp.sum(xp.exp(z), axis=axis, keepdims=True))


def softmax(logits, /, *, axis=-1, xp=None):
    r"""Softmax along ``axis``, computed stably.

    .. math:: \operatorname{softmax}(z)_k = \frac{e^{z_k - m}}{\sum_j e^{z_j - m}},
              \qquad m = \max_j z_j
    """
    xp = float_namespace(xp, logits=logits)
    e = xp.exp(logits - xp.max(logits, axis=axis, keepdims=True))
    return e / xp.sum(e, axis=axis, keepdims=True)


def _ce_args(logits, labels, xp):
    """The checked namespace and the one-hot mask ``(N, K)`` of the labels."""
    xp = _checked_labels(logits, labels, xp)
    classes = xp.arange(int(logits.shape[1]), dtype=labels.dtype, device=device_of(labels))
    return xp, labels[:, None] == classes


def _checked_labels(logits, labels, xp):
    xp = float_namespace(xp, logits=logits)
    namespace(xp, logits=logits, labels=labels)
    _check_ndim("logits", logits, 2, "(batch, classes)")
    if not xp.isdtype(labels.dtype, "integral"):
        msg = (
            f"labels must be an integer array of class indices, got dtype {labels.dtype}; "
            f"convert it with xp.astype(labels, xp.int64)"
        )
        raise TypeError(msg)
    check_same_device("logits", logits, "labels", labels)
    n, k = _shape(logits)
    if _shape(labels) != (n,):
        msg = f"labels must have shape (batch,) = ({n},) to match logits {(n, k)}, got {_shape(labels)}"
        raise ValueError(msg)
    if n and values_checkable(labels) and known_true(xp.any((labels < 0) | (labels >= k))):
        lo, hi = int(xp.min(labels)), int(xp.max(labels))
        msg = f"labels must lie in [0, {k - 1}] for {k} classes, got values in [{lo}, {hi}]"
        raise ValueError(msg)
    return xp


def softmax_cross_entropy(logits, labels, /, *, xp=None):
    r"""Mean cross entropy of softmax probabilities against integer labels.

    .. math:: L = -\frac1N \sum_{n=1}^N \log\operatorname{softmax}(z_n)_{y_n}

    computed through :func:`log_softmax`, so logits of :math:`\pm 10^3` are fine.

    Parameters
    ----------
    logits : array, shape (N, K)
    labels : integer array, shape (N,)
        Class indices in ``[0, K)``.

    Returns
    -------
    loss : 0-d array
    """
    xp, onehot = _ce_args(logits, labels, xp)
    logp = log_softmax(logits, axis=-1, xp=xp)
    picked = xp.sum(xp.where(onehot, logp, xp.zeros_like(logp)), axis=-1)
    return xp.asarray(-xp.mean(picked))


def count_correct(logits, labels, /, *, xp=None):
    r"""Number of rows whose largest logit is at the label, as a 0-d integer array on the device.

    .. math:: c = \sum_{n=1}^N \mathbb 1[\operatorname{argmax}_k z_{n,k} = y_n]

    Ties go to the first largest logit (``argmax``). The count has the namespace's default
    integer dtype (int32 under JAX without 64-bit mode), so it never warns of a truncation.
    """
    xp = _checked_labels(logits, labels, xp)
    return xp.count_nonzero(xp.argmax(logits, axis=1) == labels)


def softmax_cross_entropy_grad(logits, labels, dy=1.0, /, *, xp=None):
    r"""Gradient of :func:`softmax_cross_entropy` with respect to the logits.

    .. math:: \frac{\partial L}{\partial z_{n,k}} = \frac{dy}{N}
              \left(\operatorname{softmax}(z_n)_k - \mathbb 1[k = y_n]\right)

    ``dy`` is the upstream gradient of the scalar loss: a number or a 0-d array.
    """
    xp, onehot = _ce_args(logits, labels, xp)
    if isinstance(dy, numbers.Real) or not hasattr(dy, "shape"):
        dy = check_finite_scalar("dy", dy)
    else:
        _float_ns(xp, logits=logits, dy=dy)
        if tuple(dy.shape) != ():
            msg = f"dy must be a number or a 0-d array (the loss is a scalar), got shape {_shape(dy)}"
            raise ValueError(msg)
    n = int(logits.shape[0])
    p = softmax(logits, axis=-1, xp=xp)
    diff = xp.where(onehot, p - 1.0, p)
    return diff * (dy / max(n, 1))


def softmax_cross_entropy_and_grad(logits, labels, /, *, xp=None):
    r"""``(loss, grad)``: :func:`softmax_cross_entropy` and its gradient (``dy = 1``) in one pass.

    .. math::

        e = \exp(z - m), \quad L = -\frac1N \sum_n \Big((z_n - m_n) - \log \sum_k e_{n,k}\Big)_{y_n},
        \quad \frac{\partial L}{\partial z_{n,k}} = \frac1N \left(\frac{e_{n,k}}{\sum_j e_{n,j}}
        - \mathbb 1[k = y_n]\right)

    The exponentials and their sums are computed once, for both: a training step's loss
    and logit gradient, equal bit for bit to the two functions'.

    Examples
    --------
    >>> import numpy as np
    >>> from refprune.nn.functional import softmax_cross_entropy_and_grad
    >>> loss, grad = softmax_cross_entropy_and_grad(np.array([[0.0, 0.0]]), np.array([1]))
    >>> float(loss), grad
    (0.6931471805599453, array([[ 0.5, -0.5]]))
    """
    xp, onehot = _ce_args(logits, labels, xp)
    z = logits - xp.max(logits, axis=-1, keepdims=True)
    e = xp.exp(z)
    total = xp.sum(e, axis=-1, keepdims=True)
    logp = z - xp.log(total)
    picked = xp.sum(xp.where(onehot, logp, xp.zeros_like(logp)), axis=-1)
    p = e / total
    diff = xp.where(onehot, p - 1.0, p)
    return xp.asarray(-xp.mean(picked)), diff * (1.0 / max(int(logits.shape[0]), 1))


# -------------------------------------------------------------------- batch norm


def _bn_args(x, gamma, beta, running_mean, running_var, xp):
    xp = _float_ns(xp, x=x, gamma=gamma, beta=beta, running_mean=running_mean, running_var=running_var)
    if x.ndim < 2:
        msg = f"batch_norm needs x of shape (N, C) or (N, C, H, W), got {_shape(x)}"
        raise ValueError(msg)
    c = int(x.shape[1])
    for name, a in (("gamma", gamma), ("beta", beta), ("running_mean", running_mean), ("running_var", running_var)):
        _check_shape(name, a, (c,), f" (one entry per channel, x.shape[1] = {c})")
    axes = (0, *range(2, x.ndim))
    bshape = (1, c) + (1,) * (x.ndim - 2)
    count = 1
    for a in axes:
        count *= int(x.shape[a])
    return xp, axes, bshape, count


def _bn_stats(x, running_mean, running_var, train, eps, xp, axes, bshape, count):
    """Mean and ``1/sqrt(var + eps)``, broadcastable to ``x``."""
    if train:
        if count <= 1:
            msg = (
                f"batch_norm in training needs more than 1 value per channel, got x of shape "
                f"{_shape(x)}; use a larger batch or train=False"
            )
            raise ValueError(msg)
        mean = xp.mean(x, axis=axes, keepdims=True)
        var = xp.var(x, axis=axes, keepdims=True)
    else:
        if running_mean is None or running_var is None:
            msg = "batch_norm with train=False needs running_mean and running_var"
            raise ValueError(msg)
        mean = xp.reshape(running_mean, bshape)
        var = xp.reshape(running_var, bshape)
    return mean, 1.0 / xp.sqrt(var + eps)


def batch_norm(x, gamma, beta, /, *, running_mean, running_var, train, momentum=0.1, eps=1e-5, xp=None):
    r"""Batch normalization over every axis but the channel axis 1 (torch semantics).

    .. math::

        y = \gamma\,\frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta

    In training :math:`\mu, \sigma^2` are the batch mean and biased variance over the
    :math:`m = N H W` values of each channel, and the running statistics move by

    .. math::

        \hat\mu \leftarrow (1-\text{momentum})\,\hat\mu + \text{momentum}\,\mu,\qquad
        \hat\sigma^2 \leftarrow (1-\text{momentum})\,\hat\sigma^2
            + \text{momentum}\,\tfrac{m}{m-1}\sigma^2

    (the unbiased variance). In evaluation :math:`\mu = \hat\mu,\ \sigma^2 = \hat\sigma^2`.

    Parameters
    ----------
    x : array, shape (N, C) or (N, C, H, W)
    gamma, beta : arrays of shape (C,), or None
        Scale and shift; ``None`` for no affine part.
    running_mean, running_var : arrays of shape (C,), or None
        Running statistics (required when ``train`` is false).
    train : bool
    momentum, eps : float

    Returns
    -------
    y : array shaped like ``x``
    new_running_mean, new_running_var : new arrays in training (``None`` where the input
        was ``None``); the inputs themselves in evaluation. The inputs are never written.
    """
    xp, axes, bshape, count = _bn_args(x, gamma, beta, running_mean, running_var, xp)
    momentum = check_finite_scalar("momentum", momentum, nonnegative=True)
    if momentum > 1:
        msg = f"momentum must be in [0, 1], got momentum={momentum!r}"
        raise ValueError(msg)
    eps = check_finite_scalar("eps", eps, nonnegative=True)
    mean, inv_std = _bn_stats(x, running_mean, running_var, train, eps, xp, axes, bshape, count)
    y = (x - mean) * inv_std
    if gamma is not None:
        y = y * xp.reshape(gamma, bshape)
    if beta is not None:
        y = y + xp.reshape(beta, bshape)
    new_mean, new_var = running_mean, running_var
    if train:
        c = int(x.shape[1])
        if running_mean is not None:
            new_mean = (1.0 - momentum) * running_mean + momentum * xp.reshape(mean, (c,))
        if running_var is not None:
            unbiased = xp.var(x, axis=axes) * (count / (count - 1))
            new_var = (1.0 - momentum) * running_var + momentum * unbiased
    return y, new_mean, new_var


def batch_norm_grad(x, gamma, beta, dy, /, *, running_mean, running_var, train, eps=1e-5, xp=None):
    r"""Gradient of :func:`batch_norm` with respect to ``x``, ``gamma`` and ``beta``.

    With :math:`\hat x = (x - \mu)/\sqrt{\sigma^2+\epsilon}` and :math:`g = dy\,\gamma`,
    means taken per channel over the :math:`m` values:

    .. math::

        d\gamma = \sum dy\,\hat x,\qquad d\beta = \sum dy,\qquad
        dx = \frac{g - \overline{g} - \hat x\,\overline{g\,\hat x}}{\sqrt{\sigma^2+\epsilon}}
        \quad\text{(training)},\qquad
        dx = \frac{g}{\sqrt{\hat\sigma^2+\epsilon}}\quad\text{(evaluation)}.

    The running statistics are buffers, not parameters: they get no gradient.

    Returns
    -------
    dx, dgamma, dbeta : arrays shaped like ``x``, ``gamma`` and ``beta`` (``None`` where
        ``gamma`` or ``beta`` is ``None``).
    """
    xp, axes, bshape, count = _bn_args(x, gamma, beta, running_mean, running_var, xp)
    xp = _float_ns(xp, x=x, dy=dy)
    _check_shape("dy", dy, _shape(x), " (the shape of x)")
    eps = check_finite_scalar("eps", eps, nonnegative=True)
    mean, inv_std = _bn_stats(x, running_mean, running_var, train, eps, xp, axes, bshape, count)
    xhat = (x - mean) * inv_std
    g = dy if gamma is None else dy * xp.reshape(gamma, bshape)
    if train:
        g_mean = xp.mean(g, axis=axes, keepdims=True)
        gx_mean = xp.mean(g * xhat, axis=axes, keepdims=True)
        dx = (g - g_mean - xhat * gx_mean) * inv_std
    else:
        dx = g * inv_std
    dgamma = None if gamma is None else xp.sum(dy * xhat, axis=axes)
    dbeta = None if beta is None else xp.sum(dy, axis=axes)
    return dx, dgamma, dbeta


# ----------------------------------------------------------------------- flatten


def flatten(x, /, *, xp=None):
    r"""Flatten every axis but the batch axis: ``(N, d1, d2, ...) -> (N, d1*d2*...)``.

    .. math:: y_{n, \mathrm{ravel}(i_1, i_2, \dots)} = x_{n, i_1, i_2, \dots}
    """
    xp = namespace(xp, x=x)
    if x.ndim < 1:
        msg = "flatten needs an array with a batch axis, got a 0-d array"
        raise ValueError(msg)
    size = 1
    for d in _shape(x)[1:]:
        size *= d
    return xp.reshape(x, (int(x.shape[0]), size))


def flatten_grad(x, dy, /, *, xp=None):
    r"""Gradient of :func:`flatten`: ``dy`` reshaped back to the shape of ``x``.

    .. math:: dx = \operatorname{reshape}(dy, \operatorname{shape}(x))
    """
    xp = namespace(xp, x=x, dy=dy)
    n = int(x.shape[0]) if x.ndim else 0
    size = 1
    for d in _shape(x)[1:]:
        size *= d
    _check_shape("dy", dy, (n, size), " (the shape of flatten's output)")
    return xp.reshape(dy, _shape(x))


# ----------------------------------------------------------------------- feature selection


def feature_index(index, /, *, n, like, xp=None):
    """``index`` (strictly increasing ints in ``[0, n)``) as an int64 array on ``like``'s device.

    What :func:`select_features` takes; a layer converts its index once and keeps it.
    """
    xp = namespace(xp, like=like)
    index = [int(i) for i in index]
    if any(b <= a for a, b in zip(index, index[1:])) or (index and (index[0] < 0 or index[-1] >= n)):
        shown = f"{index[:8]}{'...' if len(index) > 8 else ''}"
        msg = f"index must be strictly increasing feature numbers in [0, {n}), got index={shown}"
        raise ValueError(msg)
    return xp.asarray(index, dtype=xp.int64, device=device_of(like))


def select_features(x, /, *, index, xp=None):
    r"""The features ``index`` of every example: ``(N, n) -> (N, len(index))``.

    .. math:: y_{n,k} = x_{n, \mathrm{index}_k}

    ``index``: strictly increasing ints in ``[0, n)``, as a sequence or as the int
    array :func:`feature_index` makes of it. A compacted network reads only the
    features that are alive (:mod:`refprune.compaction`).

    Examples
    --------
    >>> import numpy as np
    >>> from refprune.nn import functional as F
    >>> F.select_features(np.array([[1.0, 2.0, 3.0]]), index=[0, 2])
    array([[1., 3.]])
    """
    xp = namespace(xp, x=x)
    _check_ndim("x", x, 2, "(batch, features)")
    if not hasattr(index, "dtype"):
        index = feature_index(index, n=int(x.shape[1]), like=x, xp=xp)
    return xp.take(x, index, axis=1)


def select_features_grad(x, dy, /, *, index, xp=None):
    r"""Gradient of :func:`select_features`: ``dy`` put back at the selected features, 0 elsewhere.

    .. math:: dx_{n,i} = dy_{n,k} \text{ where } i = \mathrm{index}_k, \text{ else } 0

    ``index`` is a sequence of ints here. Written as a ``take`` from ``dy`` with a zero
    column appended (no scatter, so immutable arrays work).

    Examples
    --------
    >>> import numpy as np
    >>> from refprune.nn import functional as F
    >>> F.select_features_grad(np.zeros((1, 3)), np.array([[5.0, 7.0]]), index=[0, 2])
    array([[5., 0., 7.]])
    """
    xp = namespace(xp, x=x, dy=dy)
    _check_ndim("x", x, 2, "(batch, features)")
    n, index = int(x.shape[1]), [int(i) for i in index]
    feature_index(index, n=n, like=x, xp=xp)
    _check_shape("dy", dy, (int(x.shape[0]), len(index)), " (the shape of select_features' output)")
    position = {i: k for k, i in enumerate(index)}
    inverse = [position.get(i, len(index)) for i in range(n)]
    padded = xp.concat([dy, _zeros(xp, (int(dy.shape[0]), 1), dy)], axis=1)
    return xp.take(padded, xp.asarray(inverse, dtype=xp.int64, device=device_of(dy)), axis=1)


# ----------------------------------------------------------------------- the transformer's pieces


def _token_ids(ids, name, xp):
    if not xp.isdtype(ids.dtype, "integral"):
        msg = f"{name} must be an integer array of token ids, got dtype {ids.dtype}; convert it with xp.astype({name}, xp.int64)"
        raise TypeError(msg)


def embedding(ids, table, /, *, xp=None):
    r"""Look up one row of ``table`` per token id (``torch.nn.functional.embedding``).

    .. math:: y_{\dots, j} = E_{\mathrm{ids}_{\dots}, j}

    Parameters
    ----------
    ids : integer array, any shape
        Token ids in ``[0, V)``.
    table : array, shape (V, d)

    Returns
    -------
    y : array, shape ``ids.shape + (d,)``
    """
    xp = float_namespace(xp, table=table)
    namespace(xp, ids=ids, table=table)
    _token_ids(ids, "ids", xp)
    _check_ndim("table", table, 2, "(vocabulary, width)")
    v, d = _shape(table)
    if values_checkable(ids) and _size(ids) and known_true(xp.any((ids < 0) | (ids >= v))):
        msg = f"ids must lie in [0, {v - 1}] for a table of {v} rows, got values in [{int(xp.min(ids))}, {int(xp.max(ids))}]"
        raise ValueError(msg)
    rows = xp.take(table, xp.reshape(ids, (-1,)), axis=0)
    return xp.reshape(rows, (*_shape(ids), d))


def embedding_grad(ids, table, dy, /, *, xp=None):
    r"""Gradient of :func:`embedding` with respect to the table (ids get none).

    .. math:: dE_{v,j} = \sum_{n:\ \mathrm{ids}_n = v} dy_{n,j} = (\mathrm{onehot}(\mathrm{ids})^\top dY)_{v,j}

    written as one matmul with the one-hot matrix (no scatter, so immutable arrays work).
    """
    xp = _float_ns(xp, table=table, dy=dy)
    _token_ids(ids, "ids", xp)
    v, d = _shape(table)
    _check_shape("dy", dy, (*_shape(ids), d), " (the shape of embedding's output)")
    flat = xp.reshape(ids, (-1, 1))
    vocab = xp.arange(v, dtype=ids.dtype, device=device_of(ids))
    onehot = xp.astype(flat == vocab, table.dtype)
    return xp.matmul(xp.matrix_transpose(onehot), xp.reshape(dy, (-1, d)))


def _ln_stats(x, eps, xp):
    mean = xp.mean(x, axis=-1, keepdims=True)
    inv_std = 1.0 / xp.sqrt(xp.var(x, axis=-1, keepdims=True) + eps)
    return (x - mean) * inv_std, inv_std


def _ln_args(x, gamma, beta, xp):
    xp = _float_ns(xp, x=x, gamma=gamma, beta=beta)
    if x.ndim < 1:
        msg = "layer_norm needs x of shape (..., features), got a 0-d array"
        raise ValueError(msg)
    d = int(x.shape[-1])
    _check_shape("gamma", gamma, (d,), f" (one entry per feature, x.shape[-1] = {d})")
    _check_shape("beta", beta, (d,), f" (one entry per feature, x.shape[-1] = {d})")
    return xp


def layer_norm(x, gamma, beta, /, *, eps=1e-5, xp=None):
    r"""Layer normalization over the last axis (``torch.nn.functional.layer_norm``).

    .. math:: y = \gamma\,\frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta

    with :math:`\mu, \sigma^2` the mean and biased variance of each row's ``d`` features.
    ``gamma``, ``beta``: shape ``(d,)``, or None for no affine part.
    """
    xp = _ln_args(x, gamma, beta, xp)
    eps = check_finite_scalar("eps", eps, nonnegative=True)
    y, _ = _ln_stats(x, eps, xp)
    if gamma is not None:
        y = y * gamma
    return y if beta is None else y + beta


def layer_norm_grad(x, gamma, beta, dy, /, *, eps=1e-5, xp=None):
    r"""Gradient of :func:`layer_norm`.

    With :math:`\hat x = (x-\mu)/\sqrt{\sigma^2+\epsilon}`, :math:`g = dy\,\gamma` and means
    over each row's features:

    .. math::

        dx = \frac{g - \overline{g} - \hat x\,\overline{g \hat x}}{\sqrt{\sigma^2+\epsilon}},\qquad
        d\gamma = \sum_{\text{rows}} dy\,\hat x,\qquad d\beta = \sum_{\text{rows}} dy

    Returns
    -------
    dx, dgamma, dbeta : arrays shaped like ``x``, ``gamma``, ``beta`` (``None`` where those are).
    """
    xp = _ln_args(x, gamma, beta, xp)
    xp = _float_ns(xp, x=x, dy=dy)
    _check_shape("dy", dy, _shape(x), " (the shape of x)")
    eps = check_finite_scalar("eps", eps, nonnegative=True)
    xhat, inv_std = _ln_stats(x, eps, xp)
    g = dy if gamma is None else dy * gamma
    dx = (g - xp.mean(g, axis=-1, keepdims=True) - xhat * xp.mean(g * xhat, axis=-1, keepdims=True)) * inv_std
    rows = tuple(range(x.ndim - 1))
    dgamma = None if gamma is None else xp.sum(dy * xhat, axis=rows)
    dbeta = None if beta is None else xp.sum(dy, axis=rows)
    return dx, dgamma, dbeta


#: :math:`\sqrt{2/\pi}`, the constant of the tanh approximation of GELU.
_GELU_C = math.sqrt(2.0 / math.pi)


def gelu(x, /, *, xp=None):
    r"""GELU, the **tanh approximation** (GPT-2's; torch's ``gelu(x, approximate="tanh")``).

    .. math:: y = \tfrac12 x\left(1 + \tanh u\right),\qquad u = \sqrt{2/\pi}\,(x + 0.044715\,x^3)

    The Array API has no ``erf``, so the exact GELU (torch's default) is not offered; the
    two differ by less than :math:`10^{-3}` everywhere.
    """
    xp = float_namespace(xp, x=x)
    return 0.5 * x * (1.0 + xp.tanh(_GELU_C * (x + 0.044715 * x * x * x)))


def gelu_grad(x, dy, /, *, xp=None):
    r"""Gradient of :func:`gelu` (tanh approximation).

    .. math:: dx = dy\left(\tfrac12(1 + t) + \tfrac12 x\,(1 - t^2)\sqrt{2/\pi}\,(1 + 3\cdot 0.044715\,x^2)\right),
              \qquad t = \tanh u
    """
    xp = _float_ns(xp, x=x, dy=dy)
    _check_shape("dy", dy, _shape(x), " (the shape of x)")
    x2 = x * x
    t = xp.tanh(_GELU_C * (x + 0.044715 * x2 * x))
    return dy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * _GELU_C * (1.0 + 3.0 * 0.044715 * x2))


def _attention_args(qkv, heads, xp):
    xp = float_namespace(xp, qkv=qkv)
    _check_ndim("qkv", qkv, 3, "(batch, time, 3 * width)")
    if not is_int(heads) or heads < 1:
        msg = f"heads must be an int >= 1, got heads={heads!r}"
        raise ValueError(msg)
    b, t, three_d = _shape(qkv)
    if three_d % (3 * heads):
        msg = (f"qkv's last axis ({three_d}) must be 3 * width with width divisible by heads={heads}; "
               "qkv is the concatenation [q, k, v] along the last axis")
        raise ValueError(msg)
    return xp, b, t, three_d // 3


def _split_heads(a, b, t, heads, xp):
    """``(B, T, d) -> (B, H, T, d/H)``: head ``h`` reads features ``h*d/H .. (h+1)*d/H - 1``."""
    return xp.permute_dims(xp.reshape(a, (b, t, heads, -1)), (0, 2, 1, 3))


def _merge_heads(a, b, t, xp):
    return xp.reshape(xp.permute_dims(a, (0, 2, 1, 3)), (b, t, -1))


def _attention_probs(q, k, t, xp):
    """Causal softmax of the scaled scores ``q k^T / sqrt(d_h)``: ``(B, H, T, T)``, 0 above the diagonal."""
    scores = xp.matmul(q, xp.matrix_transpose(k)) * (1.0 / math.sqrt(int(q.shape[-1])))
    steps = xp.arange(t, device=device_of(q))
    causal = steps[:, None] >= steps[None, :]
    scores = xp.where(causal, scores, xp.asarray(-math.inf, dtype=q.dtype, device=device_of(q)))
    return softmax(scores, axis=-1, xp=xp)


def causal_self_attention(qkv, /, *, heads, xp=None):
    r"""Causal multi-head self-attention of packed queries, keys and values (no projections).

    ``qkv`` is ``[q, k, v]`` concatenated on the last axis (what one dense layer of width
    ``3d`` outputs, as GPT-2's ``c_attn``); each is split into ``heads`` heads of
    :math:`d_h = d/H` consecutive features. Per head,

    .. math::

        P = \operatorname{softmax}\!\Big(\frac{Q K^\top}{\sqrt{d_h}} + M\Big),\qquad
        O = P V,\qquad M_{ij} = \begin{cases} 0 & j \le i \\ -\infty & j > i \end{cases}

    and the heads' outputs are concatenated back to ``(B, T, d)``: the same as
    ``torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)`` on the
    split heads.
    """
    xp, b, t, d = _attention_args(qkv, heads, xp)
    q, k, v = (_split_heads(qkv[..., i * d:(i + 1) * d], b, t, heads, xp) for i in range(3))
    return _merge_heads(xp.matmul(_attention_probs(q, k, t, xp), v), b, t, xp)


def causal_self_attention_grad(qkv, dy, /, *, heads, xp=None):
    r"""Gradient of :func:`causal_self_attention` with respect to ``qkv`` (the probabilities recomputed).

    Per head, with :math:`S` the scaled scores and :math:`dO` the head's slice of ``dy``:

    .. math::

        dV = P^\top dO,\qquad dP = dO\,V^\top,\qquad
        dS = P \odot \big(dP - \textstyle\sum_j (dP \odot P)_{\cdot j}\big),\qquad
        dQ = \frac{dS\,K}{\sqrt{d_h}},\qquad dK = \frac{dS^\top Q}{\sqrt{d_h}}

    (the masked entries have :math:`P = 0`, so they get no gradient). Returns
    ``concat([dQ, dK, dV])`` merged back to ``qkv``'s shape.
    """
    xp, b, t, d = _attention_args(qkv, heads, xp)
    xp = _float_ns(xp, qkv=qkv, dy=dy)
    _check_shape("dy", dy, (b, t, d), " (the shape of the attention's output)")
    q, k, v = (_split_heads(qkv[..., i * d:(i + 1) * d], b, t, heads, xp) for i in range(3))
    p = _attention_probs(q, k, t, xp)
    do = _split_heads(dy, b, t, heads, xp)
    dv = xp.matmul(xp.matrix_transpose(p), do)
    dp = xp.matmul(do, xp.matrix_transpose(v))
    ds = p * (dp - xp.sum(dp * p, axis=-1, keepdims=True)) * (1.0 / math.sqrt(d // heads))
    dq, dk = xp.matmul(ds, k), xp.matmul(xp.matrix_transpose(ds), q)
    return xp.concat([_merge_heads(g, b, t, xp) for g in (dq, dk, dv)], axis=-1)
