"""Schedule variants: relative vs absolute step counting, one-shot, JaxPruner's polynomial (target at end - 1)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from refprune.conformance import strategies as cs
from refprune.conformance.report import assert_equal, assert_values, bad_input_params, check_bad_input, fail

protocol = pytest.mark.protocol


def _on_grid(step, begin, end, frequency, counting):
    origin = begin if counting == "relative" else 0
    return begin <= step and (end == -1 or step <= end) and (step - origin) % frequency == 0


def _pair(call, out, expected):
    if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], bool) and isinstance(out[1], float)):
        fail(call, "must return (update: bool, sparsity: float)", expected=expected, actual=out)
    assert_equal(call, out[0], expected[0], what="update")
    assert_values(call, out[1], expected[1], dtype="float64", what="sparsity")


@protocol("is_update_step")
@given(data=st.data(), counting=st.sampled_from([None, "relative", "absolute"]))
def test_is_update_step(target, ref, data, counting):
    begin, end, frequency = data.draw(cs.schedule_spans(allow_no_end=True), label="span")
    step = data.draw(st.one_of(cs.steps(begin, end, frequency), st.integers(0, 3 * frequency)), label="step")
    kw = {"begin": begin, "end": end, "frequency": frequency}
    if counting is not None:
        kw["counting"] = counting
    out = target("is_update_step", step, **kw)
    call = target.last
    assert_equal(call, out, ref("is_update_step", step, **kw), what="update")
    rule = _on_grid(step, begin, end, frequency, counting or "relative")
    if out is not rule:
        fail(call, f"{counting or 'relative'} counting: (step - {'begin' if counting != 'absolute' else '0'}) % frequency == 0 "
             f"inside [begin, end]; expected {rule}", actual=out)


@protocol("constant_sparsity", "polynomial_sparsity")
@given(data=st.data(), counting=st.sampled_from(["relative", "absolute"]))
def test_counting_of_the_v0_schedules(target, ref, data, counting):
    begin, end, frequency = data.draw(cs.schedule_spans(), label="span")
    step = data.draw(st.one_of(cs.steps(begin, end, frequency), st.integers(0, 3 * frequency)), label="step")
    span = {"begin": begin, "end": end, "frequency": frequency, "counting": counting}
    out = target("constant_sparsity", step, target=0.5, **span)
    _pair(target.last, out, ref("constant_sparsity", step, target=0.5, **span))
    if out[0] is not _on_grid(step, begin, end, frequency, counting):
        fail(target.last, f"{counting} counting ignored", actual=out)
    out = target("polynomial_sparsity", step, initial=0.1, final=0.9, **span)
    _pair(target.last, out, ref("polynomial_sparsity", step, initial=0.1, final=0.9, **span))
    if out[0] is not _on_grid(step, begin, end, frequency, counting):
        fail(target.last, f"{counting} counting ignored", actual=out)


@protocol("jaxpruner_polynomial_sparsity")
@given(data=st.data())
def test_jaxpruner_polynomial_sparsity(target, ref, data):
    begin = data.draw(st.one_of(st.sampled_from([0, 1, 100]), st.integers(0, 5000)), label="begin")
    end = begin + data.draw(st.one_of(st.sampled_from([0, 1, 100]), st.integers(0, 5000)), label="end - begin")
    frequency = data.draw(st.one_of(st.sampled_from([1, 100, 7]), st.integers(1, 400)), label="frequency")
    step = data.draw(st.one_of(st.sampled_from([0, begin, begin + 1, end - 1, end, end + 1]).filter(lambda s: s >= 0),
                               cs.steps(begin, end, frequency)), label="step")
    goal = data.draw(cs.sparsities(), label="target")
    kw = {"target": goal, "begin": begin, "end": end, "frequency": frequency}
    power = data.draw(st.one_of(st.none(), cs.powers()), label="power")
    if power is not None:
        kw["power"] = power
    out = target("jaxpruner_polynomial_sparsity", step, **kw)
    call = target.last
    _pair(call, out, ref("jaxpruner_polynomial_sparsity", step, **kw))
    p = 1.0 if end == begin else min(max(step + 1 - begin, 0), end - begin) / (end - begin)
    assert_values(call, out[1], goal * (1 - (1 - p) ** (3 if power is None else power)), dtype="float64",
                  what="target * (1 - (1 - p)^power), p = clip((step + 1 - begin) / (end - begin), 0, 1)")
    if out[0] is not _on_grid(step, begin, end, frequency, "absolute"):
        fail(call, "updates at step % frequency == 0 inside [begin, end] (absolute counting)", actual=out)
    if step >= end - 1 and abs(out[1] - goal) > 1e-12:
        fail(call, f"the target {goal} is reached at step end - 1 = {end - 1}", actual=out)


@protocol("one_shot_sparsity")
@given(at=st.integers(0, 10**6), data=st.data(), goal=cs.sparsities())
def test_one_shot_sparsity(target, ref, at, data, goal):
    step = data.draw(st.one_of(st.sampled_from([at, at - 1, at + 1, 0]).filter(lambda s: s >= 0), st.integers(0, 2 * at + 2)), label="step")
    out = target("one_shot_sparsity", step, target=goal, at=at)
    _pair(target.last, out, ref("one_shot_sparsity", step, target=goal, at=at))
    if out[0] is not (step == at) or out[1] != goal:
        fail(target.last, f"(step == at, target) expected, at={at}", actual=out)


CASES = [
    # fname, step, kwargs, expected
    ("is_update_step", 150, {"begin": 150, "end": 450, "frequency": 100}, True),
    ("is_update_step", 150, {"begin": 150, "end": 450, "frequency": 100, "counting": "absolute"}, False),
    ("is_update_step", 200, {"begin": 150, "end": 450, "frequency": 100, "counting": "absolute"}, True),
    ("is_update_step", 450, {"begin": 150, "end": 450, "frequency": 100, "counting": "absolute"}, False),
    ("jaxpruner_polynomial_sparsity", 99, {"target": 0.8, "begin": 0, "end": 100, "frequency": 10}, (False, 0.8)),
    ("jaxpruner_polynomial_sparsity", 0, {"target": 0.8, "begin": 0, "end": 100, "frequency": 10}, (True, 0.8 * (1 - 0.99**3))),
    ("jaxpruner_polynomial_sparsity", 5, {"target": 0.8, "begin": 5, "end": 5, "frequency": 5}, (True, 0.8)),
    ("jaxpruner_polynomial_sparsity", 150, {"target": 0.5, "begin": 150, "end": 450, "frequency": 100}, (False, 0.5 * (1 - (299 / 300) ** 3))),
    ("polynomial_sparsity", 99, {"initial": 0.0, "final": 0.8, "begin": 0, "end": 100, "frequency": 10}, (False, 0.8 * (1 - 0.01**3))),
    ("polynomial_sparsity", 900, {"initial": 0.0, "final": 0.8, "begin": 0, "end": 1000, "frequency": 300}, (True, 0.8 * (1 - 0.1**3))),
    ("polynomial_sparsity", 1000, {"initial": 0.0, "final": 0.8, "begin": 0, "end": 1000, "frequency": 300}, (False, 0.8)),
    ("constant_sparsity", 200, {"target": 0.5, "begin": 150, "frequency": 100, "counting": "absolute"}, (True, 0.5)),
    ("one_shot_sparsity", 100, {"target": 0.9, "at": 100}, (True, 0.9)),
    ("one_shot_sparsity", 101, {"target": 0.9, "at": 100}, (False, 0.9)),
]


@pytest.mark.parametrize(
    "case", [pytest.param(c, id=f"{c[0]}-{i}", marks=pytest.mark.protocol(c[0])) for i, c in enumerate(CASES)]
)
def test_schedule_variant_cases(target, case):
    fname, step, kw, expected = case
    out = target(fname, step, **kw)
    if isinstance(expected, bool):
        assert_equal(target.last, out, expected, what="update")
    else:
        _pair(target.last, out, expected)


BAD = [
    ("counting-unknown", "is_update_step", (1,), {"counting": "global"}, ValueError),
    ("frequency-0", "is_update_step", (1,), {"frequency": 0}, ValueError),
    ("step-float", "is_update_step", (1.5,), {}, TypeError),
    ("counting-unknown", "constant_sparsity", (1,), {"target": 0.5, "counting": "abs"}, ValueError),
    ("counting-unknown", "polynomial_sparsity", (1,), {"initial": 0.0, "final": 0.5, "begin": 0, "end": 9, "counting": "abs"}, ValueError),
    ("at-negative", "one_shot_sparsity", (1,), {"target": 0.5, "at": -1}, ValueError),
    ("target-above-1", "one_shot_sparsity", (1,), {"target": 1.5, "at": 3}, ValueError),
    ("end-before-begin", "jaxpruner_polynomial_sparsity", (1,), {"target": 0.5, "begin": 10, "end": 5}, ValueError),
    ("power-0", "jaxpruner_polynomial_sparsity", (1,), {"target": 0.5, "begin": 0, "end": 5, "power": 0}, ValueError),
    ("frequency-0", "jaxpruner_polynomial_sparsity", (1,), {"target": 0.5, "begin": 0, "end": 5, "frequency": 0}, ValueError),
]


@pytest.mark.parametrize("case", bad_input_params(BAD))
def test_bad_input(target, case):
    check_bad_input(target, *case)
