"""The engine's phase API: ``train(..., setup=)`` and ``once(name, fn)`` under resume.

A toy two-phase method (prune once, train a phase whose setup starts a log, then a
``once`` step that trains a second phase and returns a summary) is interrupted at many
points and resumed; it must end as the run that was never interrupted, with every
setup and every ``once`` function called once over both processes.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from refprune import data, engine, io
from refprune.masks import random_mask
from refprune.nn import build_model, train

BATCH = 40


@pytest.fixture(scope="module")
def digits():
    return data.subset(data.load("digits"), 120)


def _spec(out, **kw):
    settings = {"method": "probe", "model": "mlp-300-100", "epochs": 2, "batch_size": BATCH, "lr": 1e-3,
                "quiet": True, "out": None if out is None else str(out)}
    settings.update(kw)
    return engine.RunSpec(**settings)


def _train(eng, model, phase, **kw):
    return eng.train(model, phase=phase, step=train.train_step, optimizer=engine.adam(lr=1e-3), epochs=2,
                     rng=eng.rng_for(phase), **kw)


def two_phase(eng, calls):
    """prune once -> phase "a" (setup starts a step log) -> once "fit b" (phase "b", setup keeps rewind weights)."""
    ds = eng.dataset
    model = eng.track(build_model("mlp-300-100", input_shape=ds.input_shape, num_classes=ds.num_classes,
                                  backend=eng.backend, rng=eng.rng))

    def prune():
        calls["prune"] += 1
        rng, params = eng.rng_for("masks"), model.params()
        names = model.prunable(include_output=True)
        model.set_masks({n: random_mask(rng.uniform(tuple(params[n].shape), model.dtype), amount=0.5)
                         for n in names})
        return {"pruned": (0.5, len(names))}

    def start_a():
        calls["a"] += 1
        eng.extra["log"] = []

    def start_b():
        calls["b"] += 1
        eng.extra["rewind"] = model.params()

    def fit_b():
        calls["fit b"] += 1
        result = _train(eng, model, "b", setup=start_b)
        return {"steps": result.steps, "val_accuracy": eng.evaluate(model, "val")[1]}

    pruned = eng.once("prune", prune)
    _train(eng, model, "a", setup=start_a, on_step=lambda m, steps: eng.extra["log"].append(steps))
    summary = eng.once("fit b", fit_b)
    return model, pruned, summary


def _calls():
    return {"prune": 0, "a": 0, "b": 0, "fit b": 0}


def _state(eng, model, pruned, summary):
    rows = [{k: v for k, v in row.items() if k != "train_seconds"} for row in eng.rows]
    arrays = {f"p/{k}": np.asarray(v) for k, v in model.params().items()}
    arrays.update({f"m/{k}": np.asarray(v) for k, v in model.masks().items()})
    arrays.update({f"r/{k}": np.asarray(v) for k, v in eng.extra["rewind"].items()})
    return {"rows": rows, "steps": eng.steps, "log": list(eng.extra["log"]), "pruned": pruned,
            "summary": summary}, arrays


def test_setup_runs_before_the_first_epoch_and_not_after_a_resume(tmp_path, digits, monkeypatch, interrupt_after):
    calls, seen = {"setup": 0}, []
    eng = engine.Engine(_spec(tmp_path), dataset=digits)
    model = eng.track(build_model("mlp-300-100", input_shape=digits.input_shape, num_classes=10,
                                  backend=eng.backend, rng=eng.rng))

    def setup():
        calls["setup"] += 1
        seen.append(eng.steps)  # before the phase's first step
        model.set_masks({"fc1.w": model.params()["fc1.w"] > 0})
        eng.extra["note"] = "set up"

    interrupt_after(2)  # Ctrl-C in the second step of the first epoch
    with pytest.raises(engine.Interrupted):
        _train(eng, model, "a", setup=setup)
    monkeypatch.undo()
    assert calls["setup"] == 1 and seen == [0]
    again = engine.Engine(_spec(None, resume=str(tmp_path)), dataset=digits)
    resumed = again.track(build_model("mlp-300-100", input_shape=digits.input_shape, num_classes=10,
                                      backend=again.backend, rng=again.rng))
    assert again.extra["note"] == "set up"  # what setup did to extra is in the checkpoint
    np.testing.assert_array_equal(resumed.masks()["fc1.w"], model.masks()["fc1.w"])  # and what it did to masks
    _train(again, resumed, "a", setup=setup)
    assert calls["setup"] == 1  # not called again: the phase had started
    assert again.steps == 2 * math.ceil(len(digits.y_train) / BATCH)


def test_once_stores_its_value_and_a_checkpoint_and_returns_it_on_resume(tmp_path, digits):
    calls = _calls()
    eng = engine.Engine(_spec(tmp_path), dataset=digits)
    model, pruned, _ = two_phase(eng, calls)
    assert pruned == {"pruned": [0.5, 3]}  # stored as JSON: the tuple comes back as a list, the same both times
    ckpt = io.load_checkpoint(tmp_path / "checkpoint.npz")
    assert ckpt.config["engine"]["once"]["prune"] == pruned
    assert set(ckpt.masks) == {f"model/{n}" for n in model.masks()}
    again = engine.Engine(_spec(None, resume=str(tmp_path)), dataset=digits)
    calls_again = _calls()
    model_again, pruned_again, summary_again = two_phase(again, calls_again)
    assert calls_again == _calls()  # nothing runs again: every phase and step completed before
    assert pruned_again == pruned and again.started("prune") and again.started("fit b")
    for name, mask in model.masks().items():
        np.testing.assert_array_equal(model_again.masks()[name], mask)


def test_once_refuses_a_value_that_is_not_json(tmp_path, digits):
    eng = engine.Engine(_spec(tmp_path), dataset=digits)
    with pytest.raises(TypeError, match=r"once\('w', fn\): fn must return a JSON-able value.*ndarray"):
        eng.once("w", lambda: np.zeros(3))


@pytest.mark.parametrize("polls", [1, 3, 4, 6, 8, 10, 12, 15])
def test_interrupt_and_resume_equals_straight_through(polls, tmp_path, digits, monkeypatch, interrupt_after):
    straight = engine.Engine(_spec(tmp_path / "straight"), dataset=digits)
    expected, expected_arrays = _state(straight, *two_phase(straight, _calls()))

    calls = _calls()
    first = engine.Engine(_spec(tmp_path / "run"), dataset=digits)
    interrupt_after(polls)
    with pytest.raises(engine.Interrupted):
        two_phase(first, calls)
    monkeypatch.undo()
    resumed = engine.Engine(_spec(None, resume=str(tmp_path / "run")), dataset=digits)
    got, arrays = _state(resumed, *two_phase(resumed, calls))

    assert calls == {"prune": 1, "a": 1, "b": 1, "fit b": 1 + (polls > 9)}  # fit b reruns when cut inside it
    assert got == expected
    assert set(arrays) == set(expected_arrays)
    for name, value in expected_arrays.items():
        np.testing.assert_array_equal(arrays[name], value, err_msg=name)
