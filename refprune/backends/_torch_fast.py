"""torch fast paths: mask selection, hard-concrete chains, native convolution and pooling.

The rules every fast path keeps (same results as the reference path, ``None`` for an
input it does not handle, inputs never written to) are in ``refprune._dispatch``;
``FAST_PATHS`` at the bottom lists this module's (op name -> function).
"""

from __future__ import annotations

from .._array import checking
from ._numpy_fast import Declined, np_block_keep, np_nm_keep, np_select_keep, obs_sweep
from ._select import xp_select_keep


def _torch_select_keep(flats, k, magnitude):
    """CPU tensors: the NumPy selection on the same memory (no copy); CUDA: the vectorized one."""
    import torch

    if not all(isinstance(f, torch.Tensor) and f.dtype in (torch.float32, torch.float64) for f in flats):
        return None
    if all(f.device.type == "cpu" for f in flats):
        keeps = np_select_keep([f.detach().numpy() for f in flats], k, magnitude)
        return None if keeps is None else [torch.from_numpy(keep) for keep in keeps]
    import array_api_compat.torch as xp

    return xp_select_keep(flats, k, magnitude, xp)


def _torch_mask_keep(flat, k, *, magnitude):
    keeps = _torch_select_keep([flat], k, magnitude)
    return None if keeps is None else keeps[0]


def _torch_global_mask_keep(flats, k, *, magnitude):
    return _torch_select_keep(list(flats), k, magnitude)


# ============================================================================ hard concrete: torch


def _torch_gate_inputs(arrays):
    import torch

    dtype = None
    for a in arrays:
        if not isinstance(a, torch.Tensor) or a.dtype not in (torch.float32, torch.float64):
            return None
        if dtype is None:
            dtype = a.dtype
        elif a.dtype != dtype or a.device != arrays[0].device:
            return None
    return dtype


def _torch_stretched(log_alpha, u, beta, torch):
    x = torch.log(u)
    x.sub_(torch.log1p(-u))
    x = x + log_alpha  # broadcasts to the sample's shape
    x.div_(beta)
    return torch.sigmoid(x)  # exactly 0 / 1 at -inf / +inf


def _torch_unit_interval(u):
    """True when every entry of ``u`` is in [0, 1] (False for NaN): one reduction, one sync.

    Skipped inside ``refprune._array.trusted()`` (the engine's steps), where the caller vouches for ``u``.
    """
    if u.numel() == 0:
        return True
    lo, hi = u.aminmax() if u.ndim else (u, u)
    return bool((lo >= 0) & (hi <= 1))


def _torch_hc_forward(log_alpha, u, *, beta, gamma, zeta):
    """``(z, s)`` of ``refprune.gates._sample_forward``, or None."""
    import torch

    if _torch_gate_inputs((log_alpha, u)) is None or (checking() and not _torch_unit_interval(u)):
        return None
    s = _torch_stretched(log_alpha, u, beta, torch)
    return (s * (zeta - gamma)).add_(gamma).clamp_(0.0, 1.0), s


def _torch_hc_backward(log_alpha, s, dz, *, beta, gamma, zeta):
    """``d log_alpha`` of ``refprune.gates._sample_backward``, or None."""
    import torch

    if _torch_gate_inputs((log_alpha, s, dz)) is None or tuple(dz.shape) != tuple(s.shape):
        return None
    s_bar = s * (zeta - gamma) + gamma
    inside = (s_bar > 0) & (s_bar < 1)
    g = s * (1.0 - s)
    g.mul_(dz).mul_((zeta - gamma) / beta)
    g = torch.where(inside, g, torch.zeros((), dtype=g.dtype, device=g.device))
    lead = g.ndim - log_alpha.ndim
    if lead > 0:
        g = g.sum(dim=tuple(range(lead)))
    dims = tuple(i for i, m in enumerate(log_alpha.shape) if m == 1 and g.shape[i] != 1)
    if dims:
        g = g.sum(dim=dims, keepdim=True)
    return g.reshape(log_alpha.shape).to(log_alpha.dtype)


# ============================================================================ conv: torch


def _torch_conv_inputs(x, w, b, dy=None):
    import torch

    arrays = [a for a in (x, w, b, dy) if a is not None]
    if not all(isinstance(a, torch.Tensor) for a in arrays):
        return None
    if x.dtype not in (torch.float32, torch.float64) or any(a.dtype != x.dtype for a in arrays):
        return None
    return torch


def _torch_conv2d(x, w, b, *, stride, padding):
    torch = _torch_conv_inputs(x, w, b)
    if torch is None:
        return None
    return torch.nn.functional.conv2d(x, w, b, stride=stride, padding=padding)


def _torch_conv2d_grad(x, w, b, dy, *, stride, padding, input_grad=True):
    torch = _torch_conv_inputs(x, w, b, dy)
    if torch is None:
        return None
    dx, dw, db = torch.ops.aten.convolution_backward(
        dy, x, w, None if b is None else [int(b.shape[0])], list(stride), list(padding), [1, 1], False, [0, 0], 1,
        [bool(input_grad), True, b is not None],
    )
    return dx, dw, db


def _torch_pool_inputs(x, dy=None):
    """torch for CPU float tensors (torch's CPU kernel takes the first maximum, as the reference)."""
    torch = _torch_conv_inputs(x, None, None, dy)
    if torch is None or x.device.type != "cpu" or (dy is not None and dy.device != x.device):
        return None
    return torch


def _torch_max_pool2d(x, *, kernel, stride):
    torch = _torch_pool_inputs(x)
    if torch is None:
        return None
    return torch.nn.functional.max_pool2d(x, kernel, stride)


def _torch_max_pool2d_grad(x, dy, *, kernel, stride):
    torch = _torch_pool_inputs(x, dy)
    if torch is None:
        return None
    y, index = torch.nn.functional.max_pool2d(x, kernel, stride, return_indices=True)
    if bool(torch.isnan(y).any()):
        return None  # the reference hands dy to the first NaN
    return torch.ops.aten.max_pool2d_with_indices_backward(dy, x, list(kernel), list(stride), [0, 0], [1, 1], False, index)


# ============================================================================ N:M and block masks: torch CPU


def _torch_cpu_float(x):
    import torch

    return isinstance(x, torch.Tensor) and x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)


def _torch_nm_keep(groups, n, *, magnitude):
    """CPU tensors: the NumPy N:M selection on the same memory; other devices run the reference."""
    import torch

    if not _torch_cpu_float(groups):
        return None
    keep = np_nm_keep(groups.detach().numpy(), n, magnitude=magnitude)
    return None if keep is None else torch.from_numpy(keep)


def _torch_block_keep(x, block, pool, k, *, magnitude):
    """CPU tensors: the NumPy block mask on the same memory; other devices run the reference."""
    import torch

    if not _torch_cpu_float(x):
        return None
    keep = np_block_keep(x.detach().numpy(), block, pool, k, magnitude=magnitude)
    return None if keep is None else torch.from_numpy(keep)


# ============================================================================ SparseGPT: torch CPU


def _torch_sparsegpt_columns(w, u, *, block, counts, nm):
    """CPU tensors: the in-place column loop with torch's own arithmetic (its matmul, as the
    reference path on torch uses) and the NumPy selections on the same memory."""
    import torch

    if not (_torch_cpu_float(w) and _torch_cpu_float(u) and u.dtype == w.dtype):
        return None

    def select_flat(flat, k):
        keeps = np_select_keep([flat.numpy()], k, False)
        if keeps is None:
            raise Declined
        return torch.from_numpy(keeps[0])

    def select_nm(groups, n):
        keep = np_nm_keep(groups.numpy(), n, magnitude=False)
        if keep is None:
            raise Declined
        return torch.from_numpy(keep)

    try:
        with torch.no_grad():
            return obs_sweep(w.detach(), u.detach(), block=block, counts=counts, nm=nm, lib=torch,
                             select_flat=select_flat, select_nm=select_nm)
    except Declined:
        return None


FAST_PATHS = {
    "mask_keep": _torch_mask_keep,
    "global_mask_keep": _torch_global_mask_keep,
    "hard_concrete_forward": _torch_hc_forward,
    "hard_concrete_backward": _torch_hc_backward,
    "conv2d": _torch_conv2d,
    "conv2d_grad": _torch_conv2d_grad,
    "max_pool2d": _torch_max_pool2d,
    "max_pool2d_grad": _torch_max_pool2d_grad,
    "nm_keep": _torch_nm_keep,
    "sparsegpt_columns": _torch_sparsegpt_columns,
    "block_keep": _torch_block_keep,
}
