"""Central-difference gradient checks in float64 (CS231n style).

``numeric_grad(f, x)`` estimates ``d sum(f(x) * dy) / dx`` entrywise; ``check_grad``
compares it with an analytic gradient by the symmetric relative error
``|a - n| / max(|a|, |n|, floor)``.
"""

from __future__ import annotations

import numpy as np


def numeric_grad(f, x, dy, *, h=1e-6):
    """Central differences of ``sum(f(x) * dy)`` with respect to host float64 ``x``."""
    x = np.array(x, dtype=np.float64)
    grad = np.zeros_like(x)
    flat = x.reshape(-1)
    out = grad.reshape(-1)
    for i in range(flat.size):
        orig = flat[i]
        flat[i] = orig + h
        plus = np.sum(np.asarray(f(x)) * dy)
        flat[i] = orig - h
        minus = np.sum(np.asarray(f(x)) * dy)
        flat[i] = orig
        out[i] = (plus - minus) / (2 * h)
    return grad


def relative_error(analytic, numeric, *, floor=1e-6):
    """Largest symmetric relative error between two gradients."""
    analytic = np.asarray(analytic, dtype=np.float64)
    numeric = np.asarray(numeric, dtype=np.float64)
    if analytic.size == 0:
        return 0.0
    denom = np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)), floor)
    return float(np.max(np.abs(analytic - numeric) / denom))


def check_grad(f, x, dy, analytic, *, h=1e-6, tol=1e-6, name="gradient"):
    """Assert ``analytic`` matches central differences of ``sum(f(x) * dy)``."""
    numeric = numeric_grad(f, x, dy, h=h)
    err = relative_error(analytic, numeric)
    if not err <= tol:
        msg = f"{name}: relative error {err:.3g} > {tol:g}\nanalytic={np.asarray(analytic)!r}\nnumeric={numeric!r}"
        raise AssertionError(msg)
    return err


def numeric_grads(f, arrays, wrt, dy=None, *, h=1e-6):
    """Central differences of ``sum(f(*arrays) * dy)`` with respect to ``arrays[i]``, ``i in wrt``.

    ``f`` returns a host array (or a scalar when ``dy`` is ``None``); arrays are host float64.
    """
    arrays = [np.array(a, dtype=np.float64) if isinstance(a, np.ndarray) else a for a in arrays]
    grads = []
    for i in wrt:
        def partial(x, i=i):
            args = list(arrays)
            args[i] = x
            return f(*args)

        grads.append(numeric_grad(partial, arrays[i], 1.0 if dy is None else dy, h=h))
    return grads


def autograd_grads(forward, arrays, wrt, dy=None, **kwargs):
    """Gradients of ``sum(forward(*tensors, **kwargs) * dy)`` by ``torch.autograd`` (float64).

    ``forward`` takes torch tensors (e.g. the independent torch implementation in
    ``refprune.conformance.meta_tests.torch_impl``); returns host arrays, zeros for
    inputs the output does not depend on.
    """
    import torch

    tensors = [
        torch.tensor(a, dtype=torch.float64, requires_grad=i in wrt) if isinstance(a, np.ndarray) else a
        for i, a in enumerate(arrays)
    ]
    out = forward(*tensors, **kwargs)
    loss = out.sum() if dy is None else (out * torch.as_tensor(dy, dtype=torch.float64)).sum()
    inputs = [tensors[i] for i in wrt]
    if not loss.requires_grad:
        return [np.zeros(np.shape(arrays[i])) for i in wrt]
    grads = torch.autograd.grad(loss, inputs, allow_unused=True)
    return [np.zeros(t.shape) if g is None else g.detach().numpy() for g, t in zip(grads, inputs)]


def check_target_grad(target, fname, gname, arrays, *, dy=None, where=None, autograd=True, **kwargs):
    """Check the target's ``gname`` against central differences of its ``fname`` (float64).

    ``arrays`` are the forward's array inputs (host float64); the gradient function
    takes them (plus ``dy`` when given) and returns one gradient per array (a tuple
    when several); fewer or more is a failure, never a shorter check. ``where`` (one mask per gradient, or one for all) keeps entries
    away from kinks. When torch is installed the gradients are also compared with
    ``torch.autograd`` through the independent torch implementation's ``fname``.
    """
    from refprune.conformance.report import assert_values

    from refprune.conformance.report import fail

    wrt = list(range(len(arrays)))
    extra = [] if dy is None else [dy]
    analytic = target(gname, *arrays, *extra, **kwargs)
    call = target.last
    analytic = analytic if isinstance(analytic, tuple) else (analytic,)
    if len(analytic) != len(arrays):
        fail(call, f"returned {len(analytic)} gradient(s) for the {len(arrays)} array inputs of {fname}; a _grad "
             "returns one gradient per array input of its forward (a tuple when several)", kind="gradients")
    masks = where if isinstance(where, (tuple, list)) else [where] * len(wrt)
    numeric = numeric_grads(lambda *a: target(fname, *a, **kwargs), arrays, wrt, dy)
    for i, (a, n) in enumerate(zip(analytic, numeric)):
        assert_values(call, a, n, dtype="float64", scale=1e5, where=masks[i], what=f"gradient {i} vs central differences")
    if not autograd:
        return
    try:
        from refprune.conformance.meta_tests import torch_impl
    except ImportError:
        return
    auto = autograd_grads(getattr(torch_impl, fname), arrays, wrt, dy, **kwargs)
    for i, (a, g) in enumerate(zip(analytic, auto)):
        assert_values(call, a, g, dtype="float64", scale=100.0, where=masks[i], what=f"gradient {i} vs torch autograd")
