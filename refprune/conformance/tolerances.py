"""The per-dtype tolerance table and the comparison every test uses."""

from __future__ import annotations

import numpy as np

#: (rtol, atol) for comparing a backend's result with the float64 NumPy reference.
TOLERANCES = {
    "float64": (1e-10, 1e-12),
    "float32": (2e-5, 1e-6),
}


def dtype_name(x):
    """``'float32'`` / ``'float64'`` / ... for an array of any backend."""
    return str(x.dtype).rsplit(".", 1)[-1]


def assert_close(actual, expected, *, dtype="float64", context="", scale=1.0, atol=None):
    """Assert ``actual`` (host array) equals ``expected`` within the table's tolerance.

    ``scale`` widens both tolerances, for results that accumulate many roundings;
    ``atol`` (broadcastable to ``expected``) raises the absolute tolerance entry by
    entry (see :func:`condition_atol`). The message names the context, dtype, shape
    and worst entry.
    """
    rtol, table_atol = TOLERANCES.get(dtype, TOLERANCES["float64"])
    atol = table_atol if atol is None else np.maximum(table_atol, np.asarray(atol, dtype=np.float64) / scale)
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        msg = f"{context}: shape {actual.shape} != expected {expected.shape}"
        raise AssertionError(msg)
    if np.allclose(actual, expected, rtol=rtol * scale, atol=atol * scale, equal_nan=False):
        return
    with np.errstate(invalid="ignore"):
        err = np.abs(actual - expected) - (atol * scale + rtol * scale * np.abs(expected))
    err = np.where(np.isnan(err), np.inf, err)
    worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(err)), err.shape)) if err.ndim else ()
    atol_here = np.broadcast_to(atol, expected.shape)[worst] if np.ndim(atol) else atol
    msg = (
        f"{context}: mismatch ({dtype}, shape {actual.shape}); worst at index {worst}: "
        f"actual {actual[worst]!r}, expected {expected[worst]!r} "
        f"(rtol={rtol * scale:g}, atol={float(atol_here) * scale:g})"
    )
    raise AssertionError(msg)


#: Per-function widening of the whole table, ``(fname, dtype) -> scale``. Empty: where an
#: evaluation is conditioned worse than one rounding per operation, :func:`condition_atol`
#: widens the tolerance only at the entries concerned, by the computation's condition.
SCALES = {}

#: Unit roundoff of each dtype.
EPS = {"float32": float(np.finfo(np.float32).eps), "float64": float(np.finfo(np.float64).eps)}

#: Safety factor on the first-order rounding-error bounds of :func:`condition_atol`.
CONDITION_SAFETY = 8.0


def scale_for(fname, dtype):
    """The tolerance scale for ``fname`` in ``dtype`` (1 unless ``SCALES`` says otherwise)."""
    return SCALES.get((fname, str(dtype)), 1.0)


def _gate_t_error(log_alpha, u, kwargs, dtype):
    """``(s, delta_t)``: the sigmoid ``s`` and a bound on the rounding error of its argument
    ``t = (log u - log(1-u) + log_alpha) / beta`` evaluated in ``dtype``.

    The sum cancels where ``u`` is near ``exp(-log_alpha)`` (``log u ~ -log_alpha``): each
    term carries an error of about ``eps * |term|``, and the sum is small, so the relative
    error of ``t`` is unbounded there although every operation rounds correctly.
    """
    beta = float(kwargs.get("beta", 2.0 / 3.0))
    la = np.asarray(log_alpha, dtype=np.float64)
    u = np.asarray(u, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        lu, l1u = np.log(u), np.log1p(-u)
        t = (lu - l1u + la) / beta
        size = np.abs(lu) + np.abs(l1u) + np.abs(la) + np.abs(t) * beta
    size = np.where(np.isfinite(size), size, 0.0)
    s = np.exp(-np.logaddexp(0.0, -np.where(np.isfinite(t), t, np.sign(t) * 1e300)))
    return s, EPS[dtype] * size / beta


def condition_atol(fname, dtype, args, kwargs):
    """Entry-wise absolute tolerance from the condition of ``fname``'s computation, or ``None``.

    For the hard-concrete quantile and sample (and its gradient), the rounding error of
    ``t`` (see :func:`_gate_t_error`) propagates to ``s_bar`` as ``(zeta-gamma) s(1-s) dt``
    (to the gradient as ``(zeta-gamma)/beta |1-2s| s(1-s) |dz| dt``); the tolerance is
    that first-order bound times :data:`CONDITION_SAFETY`. Everywhere else it is ``None``
    (the table alone).
    """
    dtype = str(dtype)
    if dtype not in EPS or fname not in ("hard_concrete_quantile", "hard_concrete_sample", "hard_concrete_sample_grad"):
        return None
    la, u = args[0], args[1]
    if not (isinstance(la, np.ndarray) and isinstance(u, np.ndarray)):
        return None
    width = float(kwargs.get("zeta", 1.1)) - float(kwargs.get("gamma", -0.1))
    s, dt = _gate_t_error(la, u, kwargs, dtype)
    bound = width * s * (1 - s) * dt
    if fname == "hard_concrete_sample_grad":
        dz = np.abs(np.asarray(args[2], dtype=np.float64))
        bound = bound * np.abs(1 - 2 * s) / float(kwargs.get("beta", 2.0 / 3.0)) * dz
        while bound.ndim > np.ndim(la):  # the gradient is summed over the broadcast axes
            bound = bound.sum(axis=0)
        for i, n in enumerate(np.shape(la)):
            if n == 1 and bound.shape[i] != 1:
                bound = bound.sum(axis=i, keepdims=True)
    return CONDITION_SAFETY * bound
