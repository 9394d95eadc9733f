"""Edge classes: every protocol function on fixed inputs of every edge class (``edges.py``),
in float32 and float64, against the float64 reference.

These run whatever the profile, so a forward-only bug (a missing ``abs``, a dropped
sign, a wrong norm order) fails the ``ci`` profile even when random examples miss it
and the target has no ``_grad`` functions to give it away.
"""

from __future__ import annotations

import numpy as np
import pytest

from refprune.conformance import closed_forms as cf
from refprune.conformance import edges
from refprune.conformance import strategies as cs
from refprune.conformance.config import PROTOCOL_NAMES
from refprune.conformance.report import CheckFailure, assert_matches, call_target, compare, fail

protocol = pytest.mark.protocol


def _margin(dtype):
    return 1e-4 if dtype == "float32" else 1e-9


def _where(ref, fname, args, kwargs, dtype):
    """Entries away from a jump, where float32 and float64 may land on different sides."""
    if fname == "hard_concrete_sample_grad":
        s_bar = ref("hard_concrete_quantile", args[0], args[1], **kwargs)
        return cf.away_from_clip(s_bar, args[0].shape, _margin(dtype))
    if fname == "hard_concrete_prob_nonzero_grad":
        return cf.away_from_clamp(args[0], kwargs, _margin(dtype))
    if fname == "l0_penalty_grad":
        c = {k: kwargs[k] for k in ("beta", "gamma", "zeta", "eps") if k in kwargs}
        return (cf.away_from_clamp(args[0], c, _margin(dtype)), None)
    return None


def _is_float_result(x):
    if isinstance(x, tuple):
        return bool(x) and all(_is_float_result(v) for v in x)
    return isinstance(x, np.ndarray) and x.dtype.kind == "f"


def check_case(target, ref, fname, args, kwargs, dtype):
    """The target's result on one fixed input equals the reference's (or raises as it does)."""
    try:
        expected = ref(fname, *args, **kwargs)
    except (TypeError, ValueError) as exc:
        try:
            target(fname, *args, **kwargs)
        except type(exc):
            return
        except Exception as other:  # noqa: BLE001 - the wrong kind of error is the finding
            fail(target.last, f"raised {type(other).__name__}: {other}; the reference raises {type(exc).__name__}")
        fail(target.last, f"accepted this input; the reference raises {type(exc).__name__}: {exc}")
    if _is_float_result(expected):
        compare(target, ref, fname, *args, where=_where(ref, fname, args, kwargs, dtype), **kwargs)
        return
    actual = call_target(target, fname, *args, check_kind="values", **kwargs)
    call = target.last
    dtypes = call.dtypes
    assert_matches(call, actual, expected, dtype=dtypes.pop() if len(dtypes) == 1 else "float64", kind="values")


@pytest.mark.parametrize("fname", [pytest.param(n, id=n, marks=protocol(n)) for n in PROTOCOL_NAMES])
@pytest.mark.parametrize("dtype", cs.FLOAT_DTYPES)
def test_edge_classes(target, ref, fname, dtype):
    """``fname`` on every input of every edge class; the first mismatch names its class."""
    cases = edges.cases(fname, dtype)
    if not cases:
        pytest.skip(f"{fname} takes no floating array: its edge cases run once, under float64")
    flushes = None
    for cls, args, kwargs in cases:
        if edges.has_subnormal(args, kwargs):
            if flushes is None:
                flushes = edges.flushes_subnormals(target.backend, dtype)
            if flushes:
                continue  # the protocol's subnormal rule: a flush-to-zero device may treat them as 0
        try:
            check_case(target, ref, fname, args, kwargs, dtype)
        except CheckFailure as exc:
            raise CheckFailure(f"edge class {cls!r}: {exc}", exc.kind) from None
