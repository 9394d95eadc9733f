"""Compiled elementwise kernels for the NumPy fast paths, when numba is installed (``pip install 'refprune[fast]'``).

A kernel is one loop over the elements doing the reference's operations in the same order
and in the arrays' dtype. IEEE multiplication, addition, subtraction, division and square
root are correctly rounded, and numba without ``fastmath`` neither reorders them nor
contracts them into fused multiply-adds, so a kernel equals NumPy's chain of ufuncs bit for
bit (``tests/test_fastpaths.py`` pins each one against the NumPy chain and the reference;
a NaN result is NaN in both, its sign bit being whichever operand's NaN the hardware passed on).
What a kernel saves is passes over memory: Adam's chain reads and writes a 784x300 weight
eleven times, its kernel reads each input once and writes each output once.

Only exactly rounded operations go here: the gates' ``exp``, ``log`` and ``log1p`` stay in
NumPy, whose vectorized implementations numba's do not reproduce bit for bit.

:func:`kernels` is None when numba is not installed or ``REFPRUNE_NUMBA=0`` is set (read
once, at the first call); the NumPy chains run then. The kernels compile on their first
call for each dtype (about a second, cached on disk by numba afterwards) and release the GIL.
"""

from __future__ import annotations

import os
import types

import numpy as np

ENV_VAR = "REFPRUNE_NUMBA"
_LOADED = {}  # "kernels": the namespace of compiled kernels, or None


def kernels():
    """The compiled kernels (``adam``, ``relu_grad``, ``add_scaled``, ``decay_grad``), or None.

    None without numba or with ``REFPRUNE_NUMBA=0``.
    """
    try:
        return _LOADED["kernels"]
    except KeyError:
        _LOADED["kernels"] = _compile()
        return _LOADED["kernels"]


def _compile():
    if os.environ.get(ENV_VAR, "").strip().lower() in ("0", "false", "no", "off"):
        return None
    try:
        import numba
    except ImportError:
        return None
    jit = numba.njit(cache=True, nogil=True, error_model="numpy")  # numpy: no zero-division branch per element
    return types.SimpleNamespace(adam=jit(_adam_loop), relu_grad=jit(_relu_grad_loop), add_scaled=jit(_add_scaled_loop),
                                 decay_grad=jit(_decay_grad_loop), version=numba.__version__)


def _adam_loop(p, g, m, v, new_p, new_m, new_v, decay, wd, beta1, c1, beta2, c2, bias2_sqrt, eps, lr_bias1):
    # the scalars arrive in the arrays' dtype, as NumPy 2 casts a Python float operand
    for i in range(p.size):
        gi = g[i]
        if decay:
            gi = gi + p[i] * wd
        mi = m[i] * beta1 + gi * c1
        vi = v[i] * beta2 + (gi * gi) * c2
        new_m[i] = mi
        new_v[i] = vi
        new_p[i] = p[i] - (mi / (np.sqrt(vi) / bias2_sqrt + eps)) * lr_bias1


def adam(p, g, m, v, new_p, new_m, new_v, *, lr, beta1, beta2, eps, weight_decay, bias1, bias2_sqrt):
    r"""One Adam step of 1-d arrays of one float dtype in one pass, written into ``new_p``, ``new_m``, ``new_v``.

    .. math::

        g' = g + \text{wd}\,p,\quad m' = \beta_1 m + (1-\beta_1) g',\quad
        v' = \beta_2 v + (1-\beta_2)\,g'^2,\quad
        p' = p - \frac{m'}{\sqrt{v'}/\sqrt{1-\beta_2^t} + \epsilon}\,\frac{\eta}{1-\beta_1^t}

    each operation rounded where ``refprune.nn.optim._adam_update``'s is. Needs :func:`kernels`.
    """
    t = p.dtype.type
    kernels().adam(p, g, m, v, new_p, new_m, new_v, bool(weight_decay), t(weight_decay), t(beta1), t(1.0 - beta1),
                   t(beta2), t(1.0 - beta2), t(bias2_sqrt), t(eps), t(lr / bias1))


def _relu_grad_loop(x, dy, dx, zero, one):
    nonfinite = False
    for i in range(x.size):
        d = dy[i]
        nonfinite |= (d - d) != 0  # NaN for inf and NaN: an integer or-reduction, which vectorizes
        dx[i] = d * (zero if x[i] <= zero else one)
    return nonfinite


def relu_grad(xf, dyf, out):
    r"""``out = dyf * not(xf <= 0)`` over 1-d arrays of one float dtype, in one pass; whether ``dyf`` was finite.

    .. math:: dx = dy \cdot \mathbb 1[\lnot (x \le 0)]

    what NumPy's fast path computes (a NaN in ``x`` passes ``dy``); False when ``dyf`` holds an
    inf or NaN (``0 * inf`` would be NaN: the caller declines then), None without the kernels.
    """
    k = kernels()
    if k is None or xf.dtype.char not in "fd":
        return None
    t = xf.dtype.type
    return not k.relu_grad(xf, dyf, out, t(0), t(1))


def _add_scaled_loop(a, s, b, out):
    for i in range(a.size):
        out[i] = a[i] + s * b[i]


def add_scaled(a, s, b):
    r"""``a + s * b`` of two C-contiguous arrays of one float dtype and shape in one pass, ``s`` a Python float.

    .. math:: \text{out} = a + s\,b

    (``s`` in the arrays' dtype, as NumPy 2 casts a Python float operand): a training step
    adds the scaled penalty gradient to a weight's gradient. None without the kernels.
    """
    k = kernels()
    if k is None:
        return None
    out = np.empty_like(a)
    k.add_scaled(a.reshape(-1), a.dtype.type(s), b.reshape(-1), out.reshape(-1))
    return out


def _decay_grad_loop(w, wd, p, out):
    cols = w.shape[1]
    for i in range(w.shape[0]):
        for j in range(cols):
            out[i, j] = (w[i, j] * wd) * p[i]


def decay_grad(w, weight_decay, p):
    r"""``(wd * w) * p`` with one ``p`` per row of a C-contiguous ``(rows, cols)`` ``w``, in one pass.

    .. math:: \frac{\partial R}{\partial w_{ij}} = (\text{wd}\, w_{ij})\, p_i

    the weight-decay gradient of the L0 penalty. None without the kernels.
    """
    k = kernels()
    if k is None:
        return None
    out = np.empty_like(w)
    k.decay_grad(w, w.dtype.type(weight_decay), p, out)
    return out
