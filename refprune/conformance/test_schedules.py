"""Schedules: update steps on the begin/end/frequency boundaries, the decay's shape, bad inputs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from refprune.conformance import strategies as cs
from refprune.conformance.report import assert_equal, assert_values, bad_input_params, check_bad_input, fail

protocol = pytest.mark.protocol


def _schedule(impl, reference, fname, step, /, **kw):
    """``(update, sparsity)``: a bool and a Python float, equal to the reference's."""
    out = impl(fname, step, **kw)
    call = impl.last
    expected = reference(fname, step, **kw)
    if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], bool) and isinstance(out[1], float)):
        fail(call, "must return (update: bool, sparsity: float)", expected=expected, actual=out)
    assert_equal(call, out[0], expected[0], what="update")
    assert_values(call, out[1], expected[1], dtype="float64", what="sparsity")
    return out


def _updates(step, begin, end, frequency):
    return begin <= step and (end == -1 or step <= end) and (step - begin) % frequency == 0


def _span_kw(data, begin, end, frequency, *, optional):
    kw = {}
    for name, value, default in (("begin", begin, 0), ("end", end, -1), ("frequency", frequency, 100)):
        if not optional or value != default or data.draw(st.booleans(), label=f"pass {name}"):
            kw[name] = value
    return kw


@protocol("constant_sparsity", checks="values,properties")
@given(data=st.data())
def test_constant_sparsity(target, ref, data):
    begin, end, frequency = data.draw(cs.schedule_spans(allow_no_end=True), label="span")
    step = data.draw(cs.steps(begin, end, frequency), label="step")
    goal = data.draw(cs.sparsities(), label="target")
    update, s = _schedule(target, ref, "constant_sparsity", step, target=goal,
                          **_span_kw(data, begin, end, frequency, optional=True))
    if update != _updates(step, begin, end, frequency):
        fail(target.last, f"update must be begin <= step <= end (or end == -1) and (step - begin) % frequency == 0, got {update}")
    if s != goal:
        fail(target.last, f"the constant schedule returns target={goal!r}, got {s!r}")


@protocol("polynomial_sparsity", checks="values,properties")
@given(data=st.data())
def test_polynomial_sparsity(target, ref, data):
    begin, end, frequency = data.draw(cs.schedule_spans(), label="span")
    step = data.draw(cs.steps(begin, end, frequency), label="step")
    initial = data.draw(cs.sparsities(), label="initial")
    final = data.draw(cs.sparsities(), label="final")
    kw = {"initial": initial, "final": final, "begin": begin, "end": end}
    if frequency != 100 or data.draw(st.booleans(), label="pass frequency"):
        kw["frequency"] = frequency
    power = data.draw(st.one_of(st.none(), cs.powers()), label="power")
    if power is not None:
        kw["power"] = power
    update, s = _schedule(target, ref, "polynomial_sparsity", step, **kw)
    call = target.last
    p = min(1.0, max(0.0, (step - begin) / (end - begin)))
    closed = final + (initial - final) * (1.0 - p) ** (3 if power is None else power)
    assert_values(call, s, closed, dtype="float64", what="final + (initial - final) * (1 - p)^power")
    if update != _updates(step, begin, end, frequency):
        fail(call, f"update must be begin <= step <= end and (step - begin) % frequency == 0, got {update}")
    if step <= begin and abs(s - initial) > 1e-12 or step >= end and abs(s - final) > 1e-12:
        fail(call, f"the sparsity is initial={initial} up to begin and final={final} from end on, got {s}")
    later = target("polynomial_sparsity", step + max(1, frequency), **kw)[1]
    if (final - initial) * (later - s) < -1e-15:
        fail(target.last, f"the sparsity must move monotonically from initial to final: {s} then {later}")


@protocol("imp_sparsity", checks="values,properties")
@given(r=st.one_of(st.sampled_from([0, 1, 2, 10]), st.integers(0, 200)), rate=st.one_of(st.none(), cs.sparsities()))
def test_imp_sparsity(target, ref, r, rate):
    kw = {} if rate is None else {"rate": rate}
    out = target("imp_sparsity", r, **kw)
    call = target.last
    if not isinstance(out, float):
        fail(call, f"returned {type(out).__name__}, expected a Python float", actual=out)
    assert_values(call, out, ref("imp_sparsity", r, **kw), dtype="float64")
    assert_values(call, out, 1 - (1 - (0.2 if rate is None else rate)) ** r, dtype="float64", what="1 - (1 - rate)^round")
    if not 0.0 <= out <= 1.0:
        fail(call, "the sparsity must lie in [0, 1]", actual=out)


SCHEDULE_CASES = [
    # fname, step, kwargs, (update, sparsity)  -- TFMOT's rule, boundaries included
    ("constant_sparsity", 9, {"target": 0.5, "begin": 10, "end": 30, "frequency": 10}, (False, 0.5)),
    ("constant_sparsity", 10, {"target": 0.5, "begin": 10, "end": 30, "frequency": 10}, (True, 0.5)),
    ("constant_sparsity", 15, {"target": 0.5, "begin": 10, "end": 30, "frequency": 10}, (False, 0.5)),
    ("constant_sparsity", 30, {"target": 0.5, "begin": 10, "end": 30, "frequency": 10}, (True, 0.5)),
    ("constant_sparsity", 40, {"target": 0.5, "begin": 10, "end": 30, "frequency": 10}, (False, 0.5)),
    ("constant_sparsity", 10**6, {"target": 0.5}, (True, 0.5)),
    ("constant_sparsity", 150, {"target": 0.8}, (False, 0.8)),
    ("polynomial_sparsity", 50, {"initial": 0.0, "final": 0.5, "begin": 0, "end": 100, "frequency": 10}, (True, 0.4375)),
    ("polynomial_sparsity", 105, {"initial": 0.0, "final": 0.5, "begin": 0, "end": 100, "frequency": 10}, (False, 0.5)),
    ("polynomial_sparsity", 100, {"initial": 0.0, "final": 0.5, "begin": 0, "end": 100, "frequency": 30}, (False, 0.5)),
    ("polynomial_sparsity", 5, {"initial": 0.2, "final": 0.9, "begin": 10, "end": 20}, (False, 0.2)),
    ("polynomial_sparsity", 15, {"initial": 0.0, "final": 1.0, "begin": 10, "end": 20, "power": 1, "frequency": 5}, (True, 0.5)),
    ("polynomial_sparsity", 12, {"initial": 0.0, "final": 0.8, "begin": 10, "end": 20, "power": 2, "frequency": 1}, (True, 0.288)),
    ("imp_sparsity", 3, {}, (None, 0.488)),
    ("imp_sparsity", 2, {"rate": 0.5}, (None, 0.75)),
]


@pytest.mark.parametrize(
    "case",
    [pytest.param(c, id=f"{c[0]}-{i}", marks=pytest.mark.protocol(c[0])) for i, c in enumerate(SCHEDULE_CASES)],
)
def test_schedule_cases(target, case):
    fname, step, kw, (update, s) = case
    out = target(fname, step, **kw)
    call = target.last
    if update is None:
        assert_values(call, out, s, dtype="float64")
        return
    assert_equal(call, out[0], update, what="update")
    assert_values(call, out[1], s, dtype="float64", what="sparsity")


BAD = [
    ("end-equals-begin", "polynomial_sparsity", (5,), {"initial": 0.0, "final": 0.5, "begin": 10, "end": 10}, ValueError),
    ("end-minus-1", "polynomial_sparsity", (5,), {"initial": 0.0, "final": 0.5, "begin": 0, "end": -1}, ValueError),
    ("final-above-1", "polynomial_sparsity", (5,), {"initial": 0.0, "final": 1.5, "begin": 0, "end": 10}, ValueError),
    ("power-0", "polynomial_sparsity", (5,), {"initial": 0.0, "final": 0.5, "begin": 0, "end": 10, "power": 0}, ValueError),
    ("frequency-0", "polynomial_sparsity", (5,), {"initial": 0.0, "final": 0.5, "begin": 0, "end": 10, "frequency": 0}, ValueError),
    ("step-float", "constant_sparsity", (1.5,), {"target": 0.5}, TypeError),
    ("target-above-1", "constant_sparsity", (1,), {"target": 1.5}, ValueError),
    ("target-nan", "constant_sparsity", (1,), {"target": float("nan")}, ValueError),
    ("begin-negative", "constant_sparsity", (1,), {"target": 0.5, "begin": -5}, ValueError),
    ("end-before-begin", "constant_sparsity", (1,), {"target": 0.5, "begin": 10, "end": 5}, ValueError),
    ("frequency-0", "constant_sparsity", (1,), {"target": 0.5, "frequency": 0}, ValueError),
    ("round-negative", "imp_sparsity", (-1,), {}, ValueError),
    ("round-float", "imp_sparsity", (1.0,), {}, TypeError),
    ("rate-above-1", "imp_sparsity", (2,), {"rate": 1.5}, ValueError),
]


@pytest.mark.parametrize("case", bad_input_params(BAD))
def test_bad_input(target, case):
    check_bad_input(target, *case)
