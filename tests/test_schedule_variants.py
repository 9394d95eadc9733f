"""The schedule variants people confuse: relative vs absolute counting, one-shot, JaxPruner's polynomial.

``jaxpruner_like`` re-states JaxPruner's ``PolynomialSchedule`` (``sparsity_schedules.py``):
progress ``clip(step + 1 - start, 0, end - start) / (end - start)`` (1 when end == start),
sparsity ``target * (1 - (1 - progress)^power)``, update at ``step % freq == 0`` inside
``[start, end]``.
"""

from __future__ import annotations

import pytest

import refprune as rp


def jaxpruner_like(step, target, start, end, power, freq):
    progress = 1.0 if end == start else min(max(step + 1 - start, 0), end - start) / (end - start)
    update = step % freq == 0 and step >= start and step <= end
    return update, target * (1.0 - (1.0 - progress) ** power)


def first_step_at_target(fn, goal, last, /, **kw):
    """The first update step whose returned sparsity equals the target (None if none up to ``last``)."""
    for step in range(last + 1):
        update, s = fn(step, **kw)
        if update and abs(s - goal) < 1e-15:
            return step
    return None


# ---------------------------------------------------------------- counting


@pytest.mark.parametrize(("begin", "end", "frequency"), [(0, -1, 1), (150, 450, 100), (3, 50, 7), (10, 10, 5), (0, 99, 10), (12, 30, 12)])
def test_is_update_step_relative_and_absolute(begin, end, frequency):
    last = 500 if end == -1 else end
    rel = [s for s in range(-3, 520) if rp.is_update_step(s, begin=begin, end=end, frequency=frequency)]
    absolute = [s for s in range(-3, 520) if rp.is_update_step(s, begin=begin, end=end, frequency=frequency, counting="absolute")]
    stop = 519 if end == -1 else end
    assert rel == list(range(begin, stop + 1, frequency))
    assert absolute == [s for s in range(begin, stop + 1) if s % frequency == 0]
    assert rel[:1] == [begin] and all(s <= last or end == -1 for s in rel)


def test_counting_keeps_the_defaults():
    for step in range(0, 400, 7):
        assert rp.constant_sparsity(step, target=0.5, begin=30, end=300, frequency=50) == rp.constant_sparsity(
            step, target=0.5, begin=30, end=300, frequency=50, counting="relative")
        kw = {"initial": 0.1, "final": 0.9, "begin": 30, "end": 300, "frequency": 50}
        assert rp.polynomial_sparsity(step, **kw) == rp.polynomial_sparsity(step, **kw, counting="relative")
        assert rp.constant_sparsity(step, target=0.5, begin=30, end=300, frequency=50)[0] == rp.is_update_step(
            step, begin=30, end=300, frequency=50)


def test_absolute_counting_hand_worked():
    got = [s for s in range(500) if rp.constant_sparsity(s, target=0.5, begin=150, end=450, frequency=100, counting="absolute")[0]]
    assert got == [200, 300, 400]
    kw = {"initial": 0.0, "final": 0.8, "begin": 150, "end": 450, "frequency": 100}
    got = [s for s in range(500) if rp.polynomial_sparsity(s, **kw, counting="absolute")[0]]
    assert got == [200, 300, 400]
    # no multiple of the frequency in [begin, end]: never updates
    assert not any(rp.is_update_step(s, begin=101, end=199, frequency=100, counting="absolute") for s in range(300))


# ---------------------------------------------------------------- when the target is reached


def test_tfmot_polynomial_reaches_final_only_when_end_is_on_the_grid():
    kw = {"initial": 0.0, "final": 0.8, "begin": 0, "end": 1000, "frequency": 300}
    assert first_step_at_target(rp.polynomial_sparsity, 0.8, 2000, **kw) is None
    updates = [(s, rp.polynomial_sparsity(s, **kw)[1]) for s in range(2000) if rp.polynomial_sparsity(s, **kw)[0]]
    assert [s for s, _ in updates] == [0, 300, 600, 900]
    assert updates[-1][1] == pytest.approx(0.8 * (1 - 0.1**3))  # the last applied sparsity: 0.999 * final
    kw["frequency"] = 250
    assert first_step_at_target(rp.polynomial_sparsity, 0.8, 2000, **kw) == 1000


def test_jaxpruner_polynomial_matches_its_restatement():
    for start, end, power, freq in [(0, 100, 3, 10), (150, 450, 3, 100), (7, 8, 1, 1), (5, 5, 3, 5), (0, 1000, 2, 300)]:
        for step in range(0, end + 2 * freq + 3):
            got = rp.jaxpruner_polynomial_sparsity(step, target=0.8, begin=start, end=end, power=power, frequency=freq)
            want = jaxpruner_like(step, 0.8, start, end, power, freq)
            assert got[0] == want[0] and got[1] == pytest.approx(want[1], abs=1e-15), (start, end, step)


def test_jaxpruner_reaches_the_target_one_step_before_tfmot():
    kw = {"begin": 0, "end": 100, "power": 3, "frequency": 1}
    jax = [rp.jaxpruner_polynomial_sparsity(s, target=0.8, **kw)[1] for s in range(102)]
    tfmot = [rp.polynomial_sparsity(s, initial=0.0, final=0.8, **kw)[1] for s in range(102)]
    assert jax.index(0.8) == 99 and tfmot.index(0.8) == 100
    assert jax[:-1] == pytest.approx(tfmot[1:], abs=1e-15)  # JaxPruner's s(step) is TFMOT's s(step + 1)
    assert jax[0] > 0.0 == tfmot[0]
    assert first_step_at_target(rp.jaxpruner_polynomial_sparsity, 0.8, 200, target=0.8, **kw) == 99
    assert first_step_at_target(rp.jaxpruner_polynomial_sparsity, 0.8, 2000, target=0.8, begin=0, end=1000, frequency=300) is None
    assert first_step_at_target(rp.jaxpruner_polynomial_sparsity, 0.8, 2000, target=0.8, begin=0, end=1000, frequency=333) == 999


def test_one_shot():
    assert [rp.one_shot_sparsity(s, target=0.9, at=100) for s in (0, 99, 100, 101)] == [
        (False, 0.9), (False, 0.9), (True, 0.9), (False, 0.9)]
    for s in range(0, 300, 13):
        assert rp.one_shot_sparsity(s, target=0.3, at=130) == rp.constant_sparsity(s, target=0.3, begin=130, end=130)
    assert first_step_at_target(rp.one_shot_sparsity, 0.9, 300, target=0.9, at=123) == 123


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("fn", "step", "kwargs", "error"),
    [
        (rp.is_update_step, 1, {"counting": "global"}, ValueError),
        (rp.is_update_step, 1, {"frequency": 0}, ValueError),
        (rp.is_update_step, 1, {"begin": 5, "end": 2}, ValueError),
        (rp.is_update_step, 1.5, {}, TypeError),
        (rp.constant_sparsity, 1, {"target": 0.5, "counting": None}, ValueError),
        (rp.polynomial_sparsity, 1, {"initial": 0, "final": 0.5, "begin": 0, "end": 9, "counting": "abs"}, ValueError),
        (rp.one_shot_sparsity, 1, {"target": 0.5, "at": -1}, ValueError),
        (rp.one_shot_sparsity, 1, {"target": 1.5, "at": 3}, ValueError),
        (rp.one_shot_sparsity, 1, {"target": 0.5, "at": 3.0}, TypeError),
        (rp.jaxpruner_polynomial_sparsity, 1, {"target": 0.5, "begin": 10, "end": 5}, ValueError),
        (rp.jaxpruner_polynomial_sparsity, 1, {"target": 0.5, "begin": -1, "end": 5}, ValueError),
        (rp.jaxpruner_polynomial_sparsity, 1, {"target": 0.5, "begin": 0, "end": 5, "power": 0}, ValueError),
        (rp.jaxpruner_polynomial_sparsity, 1, {"target": 0.5, "begin": 0, "end": 5, "frequency": 0}, ValueError),
        (rp.jaxpruner_polynomial_sparsity, 1, {"target": -0.5, "begin": 0, "end": 5}, ValueError),
    ],
)
def test_bad_input(fn, step, kwargs, error):
    with pytest.raises(error):
        fn(step, **kwargs)
