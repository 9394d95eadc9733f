"""Private helpers shared by the core: namespace inference, validation, stable functions.

Everything here uses the Array API through the namespace it is handed; nothing imports
an array library directly (docs/protocol.md, "refprune's own implementation").
"""

from __future__ import annotations

import contextlib
import math
import numbers
import threading

from array_api_compat import array_namespace, is_array_api_obj
from array_api_compat import device as device_of

from ._dispatch import delegate

__all__ = [
    "namespace",
    "check_float",
    "check_same_shape",
    "check_finite_scalar",
    "check_no_nan",
    "values_checkable",
    "trusted",
    "checking",
    "is_traced",
    "known_true",
    "sigmoid",
    "log_sigmoid",
    "device_of",
    "check_same_device",
    "as_float_scalar",
    "is_int",
    "is_real",
    "check_int",
    "normalize_axis",
    "flat_size",
    "index_dtype",
    "count_true",
    "float_namespace",
    "clip",
]


_NAMESPACE_OF_TYPE = {}  # array type -> its namespace: array_namespace decides by type alone


def _namespace_of(name, x):
    ns = _NAMESPACE_OF_TYPE.get(type(x))
    if ns is not None:
        return ns
    if not is_array_api_obj(x):
        msg = (
            f"{name} must be an array (numpy, torch, cupy, array-api-strict, ...), "
            f"got {type(x).__name__}; wrap it with xp.asarray(...)"
        )
        raise TypeError(msg)
    ns = _NAMESPACE_OF_TYPE[type(x)] = array_namespace(x)
    return ns


def namespace(xp=None, /, **arrays):
    """Return the Array API namespace shared by ``arrays``, or ``xp`` when given.

    Each keyword names an argument of the public function, so that a message can say
    which argument was wrong. Non-arrays and mixed namespaces are a ``TypeError``.
    """
    found = None
    found_name = None
    for name, x in arrays.items():
        ns = _namespace_of(name, x)
        if found is None:
            found, found_name = ns, name
        elif ns is not found:
            msg = (
                f"{name} and {found_name} come from different array libraries "
                f"({ns.__name__} vs {found.__name__}); convert both to one library"
            )
            raise TypeError(msg)
    if xp is not None:
        return xp
    if found is None:
        msg = "no array argument to infer the namespace from; pass xp="
        raise TypeError(msg)
    return found


_REAL_FLOAT = {}  # (namespace, dtype) -> is it real floating


def check_float(name, x, xp):
    """Raise ``TypeError`` unless ``x`` has a real floating dtype."""
    if not checking():
        return
    key = (xp, x.dtype)
    ok = _REAL_FLOAT.get(key)
    if ok is None:
        ok = _REAL_FLOAT[key] = bool(xp.isdtype(x.dtype, "real floating"))
    if not ok:
        msg = (
            f"{name} must have a real floating dtype (float32 or float64), got "
            f"{x.dtype}; convert it with xp.astype({name}, xp.float64)"
        )
        raise TypeError(msg)


def check_same_shape(name_a, a, name_b, b):
    """Raise ``ValueError`` unless ``a`` and ``b`` have the same shape."""
    if checking() and tuple(a.shape) != tuple(b.shape):
        msg = (
            f"{name_a} and {name_b} must have the same shape, got "
            f"{tuple(a.shape)} and {tuple(b.shape)}"
        )
        raise ValueError(msg)


def check_same_device(name_a, a, name_b, b):
    """Raise ``ValueError`` unless ``a`` and ``b`` live on the same device.

    Skipped inside :func:`trusted` and when either is traced (:func:`is_traced`): a JAX
    tracer has no device yet.
    """
    if not checking() or is_traced(a, b):
        return
    da, db = device_of(a), device_of(b)
    if da != db:
        msg = f"{name_a} is on {da} but {name_b} is on {db}; move both to one device"
        raise ValueError(msg)


_TRUST = threading.local()  # per-thread depth of trusted() blocks


@contextlib.contextmanager
def trusted():
    """Inside the block the primitives skip their argument checks: the caller vouches for the inputs.

    The checks (kinds, dtypes, devices, shapes, finite constants, and the value checks
    that read arrays back to the host: NaN scores, noise outside [0, 1], labels out of
    range) run once per call of a public primitive; in a training step they are a
    large part of the time of small networks, and each value check a device
    synchronization. The training engine runs its steps inside this block because it
    built those arrays itself (and its NaN guard watches the results); everything else
    keeps validating. Nests; applies to the calling thread only.
    """
    _TRUST.depth = getattr(_TRUST, "depth", 0) + 1
    try:
        yield
    finally:
        _TRUST.depth -= 1


def checking():
    """False inside :func:`trusted`: whether argument checks run."""
    return not getattr(_TRUST, "depth", 0)


def _is_tracer(x):
    """True for a placeholder whose values are not known yet (a JAX tracer under jit, grad or vmap)."""
    return any(c.__name__ == "Tracer" and c.__module__.startswith("jax") for c in type(x).__mro__)


def is_traced(*arrays):
    """Whether any of ``arrays`` is a traced placeholder (JAX under ``jit``, ``grad`` or ``vmap``).

    Its values cannot be read back (no ``bool(...)``, ``int(...)``) and it has no device;
    code that needs either takes another path for it.
    """
    return any(_is_tracer(a) for a in arrays)


def known_true(x):
    """``bool(x)`` of a 0-d bool array, or ``False`` when it is traced.

    Inside ``jax.jit`` every result is traced, even one computed from concrete inputs,
    so a value check reads its verdict through this and is skipped there.
    """
    return not is_traced(x) and bool(x)


def values_checkable(*arrays):
    """Whether checks that read the values of ``arrays`` may run.

    False inside :func:`trusted` and when any array is a traced placeholder
    (JAX under ``jit``, ``grad`` or ``vmap``), whose values cannot be read: those
    checks are then skipped, and the documented ``ValueError`` for bad values is only
    raised on concrete arrays.
    """
    if not checking():
        return False
    return not is_traced(*arrays)


def check_no_nan(name, x, xp):
    """Raise ``ValueError`` if ``x`` holds a NaN (when its values can be read, see :func:`values_checkable`)."""
    if flat_size(x) != 0 and values_checkable(x) and known_true(xp.any(xp.isnan(x))):
        msg = f"{name} contains NaN; replace or drop NaN entries before ranking"
        raise ValueError(msg)


def check_finite_scalar(name, value, *, positive=False, nonnegative=False):
    """Return ``value`` as a Python float, checking it is finite (and its sign)."""
    if not checking():
        return float(value)
    value = as_float_scalar(name, value)
    if not math.isfinite(value):
        msg = f"{name} must be finite, got {name}={value!r}"
        raise ValueError(msg)
    if positive and not value > 0:
        msg = f"{name} must be > 0, got {name}={value!r}"
        raise ValueError(msg)
    if nonnegative and not value >= 0:
        msg = f"{name} must be >= 0, got {name}={value!r}"
        raise ValueError(msg)
    return value


def as_float_scalar(name, value):
    """Return a real number as a Python float; a ``TypeError`` naming ``name`` otherwise."""
    if not is_real(value):
        msg = f"{name} must be a real number, got {type(value).__name__} {value!r}"
        raise TypeError(msg)
    return float(value)


def is_int(value):
    """True for an integer that is not a bool: a Python ``int`` or a NumPy integer scalar."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value):
    """True for a real number that is not a bool (Python, NumPy or ``fractions`` scalars)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_int(name, value, *, minimum=None, what=""):
    """``value`` as a Python int, else a ``TypeError`` naming ``name`` (a bool is not an int); ``>= minimum``.

    ``what`` follows "must be an int" in the message: what the number counts,
    ``" (parameters per gate)"``.
    """
    if not is_int(value):
        msg = f"{name} must be an int{what}, got {type(value).__name__} {value!r}"
        raise TypeError(msg)
    value = int(value)
    if minimum is not None and value < minimum:
        msg = f"{name} must be >= {minimum}, got {name}={value}"
        raise ValueError(msg)
    return value


def index_dtype(xp):
    """The namespace's default indexing dtype: int64 (int32 in JAX's default 32-bit mode)."""
    info = getattr(xp, "__array_namespace_info__", None)
    return info().default_dtypes()["indexing"] if info is not None else xp.int64


def count_true(x, xp):
    """Number of True entries of a bool array, as a 0-d integer array (no host sync)."""
    return xp.sum(xp.astype(x, index_dtype(xp)))


def sigmoid(x, xp):
    """Logistic function without overflow: ``1/(1+exp(-x))`` for either sign of ``x``."""
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def clip(x, lo, hi, xp):
    """``xp.clip(x, lo, hi)``: ``min(max(x, lo), hi)`` elementwise, NaN kept, ``x``'s dtype.

    The backend's own clip where it has a fast path (op ``"clip"``; array-api-compat's
    NumPy wrapper costs 9 us a call, 2 for NumPy's, and a training step clamps every gated layer
    twice), else ``xp.clip``: the same values either way.
    """
    out = delegate("clip", xp, x, lo, hi)
    return xp.clip(x, lo, hi) if out is None else out


def log_sigmoid(x, xp):
    """``log(sigmoid(x)) = min(x, 0) - log1p(exp(-|x|))`` without overflow."""
    return xp.minimum(x, xp.zeros_like(x)) - xp.log1p(xp.exp(-xp.abs(x)))


def normalize_axis(axis, ndim, *, name="axis"):
    """Return ``axis`` in ``[0, ndim)``; a ``ValueError`` naming the valid range otherwise."""
    axis = check_int(name, axis)
    if not -ndim <= axis < ndim:
        msg = f"{name}={axis} is out of range for an array with {ndim} dimensions; use -{ndim}..{ndim - 1}"
        raise ValueError(msg)
    return axis % ndim


def flat_size(x):
    """Number of elements of ``x`` as a Python int (torch's ``size`` is a method)."""
    return math.prod(int(d) for d in x.shape)


def float_namespace(xp=None, /, **arrays):
    """Namespace of ``arrays`` after checking each is a real-floating array on one device.

    The usual first line of a primitive::

        xp = float_namespace(xp, log_alpha=log_alpha, u=u)
    """
    if not checking():
        return xp if xp is not None else _namespace_of("", next(iter(arrays.values())))
    xp = namespace(xp, **arrays)
    first = None
    for name, x in arrays.items():
        check_float(name, x, xp)
        if first is None:
            first = (name, x)
        else:
            check_same_device(first[0], first[1], name, x)
    return xp
