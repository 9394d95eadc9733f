"""Assertions whose failures say what went wrong and how to reproduce it.

Every failure names the function and its arguments' dtypes and shapes, the target and
backend, the expected and actual values, and ends with a Python snippet that
reproduces the call (see :meth:`refprune.conformance.target.Call.snippet`).
"""

from __future__ import annotations

import numpy as np

from refprune.conformance.tolerances import TOLERANCES, assert_close

__all__ = ["CheckFailure", "fail", "assert_values", "assert_equal", "assert_dtype", "assert_matches", "tolerance"]


class CheckFailure(AssertionError):
    """A failed check; ``kind`` says which column of ``refprune check`` it counts in
    (``values``, ``properties``, ``gradients``, ``errors``; ``None``: the test's own kind)."""

    def __init__(self, message, kind=None):
        super().__init__(message)
        self.kind = kind

_PRINT = {"threshold": 40, "edgeitems": 5, "precision": 17}


def tolerance(dtype):
    """``(rtol, atol)`` of the per-dtype table (float64's for anything else)."""
    return TOLERANCES.get(str(dtype), TOLERANCES["float64"])


def _show(x):
    with np.printoptions(**_PRINT):
        return repr(np.asarray(x))


def fail(call, message, *, expected=None, actual=None, kind=None):
    """Raise :class:`CheckFailure` (an ``AssertionError``): what failed, for which call, the values, a reproducer."""
    parts = [f"{call.fname}: {message}", f"  call:     {call.signature()}", f"  target:   {call.target}"]
    if expected is not None:
        parts.append(f"  expected: {_show(expected)}")
    if actual is not None:
        parts.append(f"  actual:   {_show(actual)}")
    parts.append("Reproduce with:\n" + "\n".join("    " + line for line in call.snippet().splitlines()))
    raise CheckFailure("\n".join(parts), kind)


def assert_dtype(call, actual, dtype, *, what="result", kind=None):
    """The result has the NumPy dtype named ``dtype`` (after ``to_numpy``)."""
    got = np.asarray(actual).dtype.name
    if got != dtype:
        hint = ""
        if got == "float32" and dtype == "float64" and call.target.backend_name == "jax":
            from refprune.backends._jax import X64_HINT

            hint = f"; {X64_HINT}"
        fail(call, f"{what} has dtype {got}, expected {dtype} (outputs keep the input's floating dtype){hint}",
             kind=kind)


def assert_values(call, actual, expected, *, dtype=None, where=None, scale=1.0, what="result", kind=None, atol=None):
    """``actual`` equals ``expected`` within the tolerance of ``dtype``.

    ``dtype`` defaults to the call's floating dtype (float64's tolerance when mixed);
    ``where`` (bool, ``expected``'s shape) limits the comparison to some entries, e.g.
    away from a jump where a float32 and a float64 evaluation may legitimately land on
    different sides. ``scale`` widens the tolerance for long reductions; ``atol`` (an
    array of ``expected``'s shape) raises the absolute tolerance entry by entry where
    the computation is ill-conditioned (``tolerances.condition_atol``).
    """
    if dtype is None:
        dtypes = call.dtypes
        dtype = dtypes.pop() if len(dtypes) == 1 else "float64"
    actual_a = np.asarray(actual, dtype=np.float64)
    expected_a = np.asarray(expected, dtype=np.float64)
    if actual_a.shape != expected_a.shape:
        fail(call, f"{what} has shape {actual_a.shape}, expected {expected_a.shape}", expected=expected, actual=actual,
             kind=kind)
    if where is not None:
        where = np.broadcast_to(np.asarray(where, dtype=bool), expected_a.shape)
        actual_a = np.where(where, actual_a, expected_a)
    try:
        assert_close(actual_a, expected_a, dtype=dtype, context=what, scale=scale, atol=atol)
    except AssertionError as exc:
        fail(call, str(exc), expected=expected, actual=actual, kind=kind)


def _entries(n):
    return f"{n} entr{'y' if n == 1 else 'ies'}"


def assert_equal(call, actual, expected, *, what="result", kind=None):
    """Exact equality (masks, counts, flags): same shape, same values, same kind.

    For bool masks a different number of pruned (False) entries is reported first, as
    ``pruned 150001 entries, expected k = 150002``, then where the masks differ.
    """
    if isinstance(expected, np.ndarray) or isinstance(actual, np.ndarray):
        a, e = np.asarray(actual), np.asarray(expected)
        if a.shape != e.shape:
            fail(call, f"{what} has shape {a.shape}, expected {e.shape}", expected=e, actual=a, kind=kind)
        if a.dtype != e.dtype:
            fail(call, f"{what} has dtype {a.dtype}, expected {e.dtype}", expected=e, actual=a, kind=kind)
        if not np.array_equal(a, e, equal_nan=e.dtype.kind == "f"):
            diff = np.argwhere(a != e)
            where = ", ".join(str(tuple(int(i) for i in d)) for d in diff[:8])
            more = f" and {len(diff) - 8} more" if len(diff) > 8 else ""
            count = ""
            if e.dtype == bool:
                pruned, k = int(a.size - np.count_nonzero(a)), int(e.size - np.count_nonzero(e))
                if pruned != k:
                    count = f"{what} pruned {_entries(pruned)}, expected k = {k}; "
            fail(call, f"{count}{what} differs at {_entries(len(diff))}: {where}{more}", expected=e, actual=a, kind=kind)
        return
    if type(actual) is not type(expected) and not (
        isinstance(actual, (int, float)) and isinstance(expected, (int, float)) and not isinstance(actual, bool)
    ):
        fail(call, f"{what} is a {type(actual).__name__}, expected a {type(expected).__name__}", expected=expected,
             actual=actual, kind=kind)
    if actual != expected:
        fail(call, f"{what} is {actual!r}, expected {expected!r}", expected=expected, actual=actual, kind=kind)


def assert_matches(call, actual, expected, *, dtype="float64", what="result", kind=None):
    """``actual`` matches ``expected`` of any shape of result: floating arrays and floats within
    ``dtype``'s tolerance (and in ``dtype``), bool arrays, ints and bools exactly, tuples and
    lists element by element."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict) or list(actual) != list(expected):
            fail(call, f"{what} must be a dict with the keys {list(expected)} in that order", expected=expected,
                 actual=actual, kind=kind)
        for key, e in expected.items():
            assert_matches(call, actual[key], e, dtype=dtype, what=f"{what}[{key!r}]", kind=kind)
    elif isinstance(expected, (tuple, list)):
        if not isinstance(actual, type(expected)) or len(actual) != len(expected):
            fail(call, f"{what} must be a {type(expected).__name__} of {len(expected)}", expected=expected,
                 actual=actual, kind=kind)
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_matches(call, a, e, dtype=dtype, what=f"{what}[{i}]", kind=kind)
    elif isinstance(expected, np.ndarray) and expected.dtype.kind == "f":
        if not isinstance(actual, np.ndarray):
            fail(call, f"{what} is a {type(actual).__name__}, expected an array", expected=expected, actual=actual,
                 kind=kind)
        assert_dtype(call, actual, dtype, what=what, kind=kind)
        assert_values(call, actual, expected, dtype=dtype, what=what, kind=kind)
    elif isinstance(expected, float) and not isinstance(actual, bool) and isinstance(actual, (int, float)):
        assert_values(call, actual, expected, dtype="float64", what=what, kind=kind)
    else:
        assert_equal(call, actual, expected, what=what, kind=kind)


def call_target(target, fname, /, *args, check_kind=None, **kwargs):
    """``target(fname, ...)``; an exception the target raises fails as a :class:`CheckFailure`
    of ``check_kind`` that names the call and prints a reproducer. (Not ``kind``: that is
    a protocol function's own parameter, ``taylor_scores(w, g, kind=...)``.)"""
    from refprune.conformance.target import Call, MissingFunction

    try:
        return target(fname, *args, **kwargs)
    except (MissingFunction, AssertionError):
        raise
    except Exception as exc:  # noqa: BLE001 - the target's own error is the finding
        call = target.last if target.last is not None and target.last.fname == fname else Call(target, fname, args, kwargs)
        fail(call, f"raised {type(exc).__name__}: {exc}", kind=check_kind)


def compare(target, ref, fname, /, *args, where=None, scale=None, check_kind="values", **kwargs):
    """Call ``fname`` on the target and on the reference; check dtype and values.

    Floating outputs must keep the call's floating dtype; tuples are compared element
    by element. ``scale`` defaults to the function's entry in ``tolerances.SCALES``;
    where the computation is ill-conditioned (``tolerances.condition_atol``) the
    absolute tolerance grows entry by entry. Failures count as ``check_kind`` (``values``).
    Returns ``(actual, expected)`` as host arrays.
    """
    from refprune.conformance.tolerances import condition_atol, scale_for

    actual = call_target(target, fname, *args, check_kind=check_kind, **kwargs)
    call = target.last
    expected = ref(fname, *args, **kwargs)
    dtypes = call.dtypes
    dtype = dtypes.pop() if len(dtypes) == 1 else "float64"
    pairs = zip(actual, expected) if isinstance(expected, tuple) else [(actual, expected)]
    if isinstance(expected, tuple) and (not isinstance(actual, tuple) or len(actual) != len(expected)):
        fail(call, f"returned {type(actual).__name__}, expected a tuple of {len(expected)}", expected=expected,
             actual=actual, kind=check_kind)
    atol = condition_atol(fname, dtype, args, kwargs)
    for i, (a, e) in enumerate(pairs):
        what = f"result[{i}]" if isinstance(expected, tuple) else "result"
        if not isinstance(a, np.ndarray):
            fail(call, f"{what} is a {type(a).__name__}, expected an array", expected=e, actual=a, kind=check_kind)
        assert_dtype(call, a, dtype, what=what, kind=check_kind)
        w = where[i] if isinstance(where, tuple) else where
        s = scale_for(fname, dtype) if scale is None else scale
        assert_values(call, a, e, dtype=dtype, where=w, scale=s, what=what, kind=check_kind,
                      atol=atol if not isinstance(expected, tuple) else None)
    return actual, expected


def bad_input_params(cases):
    """``pytest.param`` per bad-input case ``(label, fname, args, kwargs, exception)``."""
    import pytest

    return [pytest.param(c[1:], id=f"{c[1]}-{c[0]}", marks=pytest.mark.protocol(c[1])) for c in cases]


def check_bad_input(target, fname, args, kwargs, exc):
    """The call raises ``exc`` (the documented ``TypeError``/``ValueError``).

    Cases that mix in a :class:`~refprune.conformance.target.Host` (a NumPy array
    handed over unconverted) test mixed namespaces; they skip on a NumPy target.
    """
    import pytest

    from refprune.conformance.target import Host

    if target.backend_name == "numpy" and any(isinstance(a, Host) for a in (*args, *kwargs.values())):
        pytest.skip("mixing namespaces needs a target whose arrays are not NumPy's")
    target.function(fname)
    try:
        target(fname, *args, **kwargs)
    except exc:
        return
    except Exception as other:  # noqa: BLE001 - the wrong kind of error is the finding
        fail(target.last, f"raised {type(other).__name__}: {other}; the protocol documents {exc.__name__}", kind="errors")
    fail(target.last, f"accepted a bad input; the protocol documents {exc.__name__}", kind="errors")
