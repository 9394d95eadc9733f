"""The engine's pieces: early stopping, run folders, resume lookup and refusal, phases, random streams,
evaluation, batches that skip, and a zero-epoch run.

The loop's trajectory under resume (mid-epoch, every method, every backend) and the NaN
guard are in ``test_methods_contract.py``; resume of batch-norm, masks and momentum in
``test_resume.py``.
"""

from __future__ import annotations

import csv
import json
import math
import os

import numpy as np
import pytest

from refprune import backends, cli, data, engine, io, methods
from refprune.nn import build_model, train

BATCH = 40


@pytest.fixture(scope="module")
def digits():
    return data.subset(data.load("digits"), 120)


def _spec(out, **kw):
    settings = {"method": "probe", "model": "mlp-300-100", "epochs": 1, "batch_size": BATCH, "lr": 1e-3,
                "quiet": True, "out": None if out is None else str(out)}
    settings.update(kw)
    return engine.RunSpec(**settings)


def _model(eng, rng=None):
    ds = eng.dataset
    return build_model("mlp-300-100", input_shape=ds.input_shape, num_classes=ds.num_classes, backend=eng.backend,
                       rng=eng.rng if rng is None else rng)


def _train(eng, model, epochs=1, **kw):
    return eng.train(model, step=train.train_step, optimizer=engine.adam(lr=1e-3), epochs=epochs, **kw)


def _trained_run(out, dataset, epochs=1, **kw):
    eng = engine.Engine(_spec(out, epochs=epochs, **kw), dataset=dataset)
    model = eng.track(_model(eng))
    _train(eng, model, epochs)
    return eng, model


# ---------------------------------------------------------------------- early stopping


def test_early_stopping_rule():
    stop = engine.EarlyStopping(patience=3, min_delta=0.001)
    assert stop.monitor == "val_loss" and not stop.stop
    losses = [1.0, 0.9, 0.8995, 0.95, 0.7, 0.71, 0.72, 0.73, 0.1]
    improved = []
    for epoch, loss in enumerate(losses, 1):
        improved.append(stop.update(epoch, loss))
        if stop.stop:
            break
    # 0.8995 is lower than 0.9 by less than min_delta: no improvement
    assert improved == [True, True, False, False, True, False, False, False]
    assert stop.best_epoch == 5 and stop.best == 0.7 and epoch == 8


def test_early_stopping_state_round_trips():
    stop = engine.EarlyStopping(patience=2, min_delta=0.0)
    for epoch, loss in enumerate([1.0, 0.5, 0.6], 1):
        stop.update(epoch, loss)
    state = json.loads(json.dumps(stop.state()))  # as a checkpoint stores it
    again = engine.EarlyStopping(patience=2, min_delta=0.0)
    again.set_state(state)
    assert (again.best, again.best_epoch, again.wait) == (0.5, 2, 1)
    assert again.update(4, 0.55) is False and again.stop and stop.update(4, 0.55) is False and stop.stop
    fresh = engine.EarlyStopping(patience=1)
    fresh.set_state(json.loads(json.dumps(fresh.state())))  # an infinite best survives JSON
    assert fresh.best == math.inf and fresh.update(1, 1e30)


def test_train_stops_early_and_restores_the_best_epoch(tmp_path, digits):
    eng = engine.Engine(_spec(tmp_path, epochs=10), dataset=digits)
    model = eng.track(_model(eng))
    scripted = iter([1.0, 0.5, 0.7, 0.8, 0.9])
    snapshots = {}

    def keep(m, row):
        snapshots[row["epoch"]] = {k: np.array(v) for k, v in m.params().items()}

    result = _train(eng, model, epochs=10, measure=lambda m: {"val_loss": next(scripted)},
                    stopper=engine.EarlyStopping(patience=2), on_epoch=keep)
    assert result == engine.PhaseResult(epochs_run=4, best_epoch=2, best_value=0.5,
                                        steps=4 * math.ceil(len(digits.y_train) / BATCH), stopped_early=True)
    assert [r["epoch"] for r in eng.rows] == [1, 2, 3, 4]
    for k, v in model.params().items():  # the best epoch's parameters, not the last
        np.testing.assert_array_equal(np.asarray(v), snapshots[2][k], err_msg=k)
    assert not np.array_equal(snapshots[4]["fc1.w"], snapshots[2]["fc1.w"])


# ---------------------------------------------------------------------- run folders


def test_an_occupied_folder_is_refused_unless_overwrite_or_resume(tmp_path, digits):
    out = tmp_path / "run"
    _trained_run(out, digits)  # writes checkpoint.npz
    (out / "result.json").write_text("{}")
    message = (f"{out} already holds a run (result.json, checkpoint.npz); pass --overwrite to replace it, "
               f"--resume {out} to continue it, or choose another --out")
    with pytest.raises(FileExistsError) as info:
        engine.Engine(_spec(out), dataset=digits)
    assert str(info.value) == message
    assert engine.Engine(_spec(out, overwrite=True), dataset=digits).out == str(out)
    assert engine.Engine(_spec(None, resume=str(out)), dataset=digits).out == str(out)
    # continuing into another folder: an empty one is fine, an occupied one is refused
    assert engine.Engine(_spec(tmp_path / "next", resume=str(out)), dataset=digits).out == str(tmp_path / "next")
    other = tmp_path / "other"
    other.mkdir()
    (other / "checkpoint.npz").write_bytes(b"")
    with pytest.raises(FileExistsError, match="already holds a run"):
        engine.Engine(_spec(other, resume=str(out)), dataset=digits)
    empty = tmp_path / "empty"
    empty.mkdir()
    engine.Engine(_spec(empty), dataset=digits)  # an empty folder holds no run


def test_default_folder_tells_runs_apart_by_the_settings_that_matter():
    a = _spec(None)
    assert a.default_out().startswith(os.path.join("runs", "probe-digits-mlp-300-100-numpy-seed0-"))
    for same in ({"out": "x"}, {"quiet": False}, {"threads": 2}, {"resume": "r"}, {"overwrite": True},
                 {"checkpoint_every": 0}, {"data_dir": "/d"}):
        assert _spec(**{"out": None, **same}).key() == a.key(), same
    for other in ({"lr": 2e-3}, {"seed": 1}, {"subset": 10}, {"options": {"lam": 1.0}}, {"dtype": "float64"}):
        assert _spec(None, **other).key() != a.key(), other


# ---------------------------------------------------------------------- resume: lookup, refusal, phases


def test_resume_takes_a_folder_or_its_checkpoint(tmp_path, digits):
    first, _ = _trained_run(tmp_path / "run", digits)
    for where in (tmp_path / "run", tmp_path / "run" / "checkpoint.npz"):
        eng = engine.Engine(_spec(None, resume=str(where), epochs=2), dataset=digits)
        assert eng.out == str(tmp_path / "run") and eng.steps == first.steps and eng.rows == first.rows
        assert eng.clock.seconds == first.clock.seconds > 0
    with pytest.raises(FileNotFoundError, match="--resume .*nowhere: no checkpoint at .*; give a run folder"):
        engine.Engine(_spec(None, resume=str(tmp_path / "nowhere")), dataset=digits)
    foreign = tmp_path / "foreign.npz"
    io.save_checkpoint(foreign, params={"w": np.ones(2)}, config={"method": "probe"})
    with pytest.raises(ValueError, match="not a checkpoint of a refprune run"):
        engine.Engine(_spec(tmp_path / "f", resume=str(foreign)), dataset=digits)


def test_resume_refuses_another_method_or_model(tmp_path, digits):
    _trained_run(tmp_path / "run", digits)
    ckpt = tmp_path / "run" / "checkpoint.npz"
    message = (f"cannot resume {ckpt}: it is a checkpoint of method 'probe' with model 'mlp-300-100', but this run "
               "is method '{}' with model '{}'; resume with the same method and --model")
    for method, model in (("l0", "mlp-300-100"), ("probe", "lenet5")):
        with pytest.raises(ValueError) as info:
            engine.Engine(_spec(tmp_path / "x", method=method, model=model, resume=str(ckpt)), dataset=digits)
        assert str(info.value) == message.format(method, model)


def test_the_cli_refuses_another_method_with_exit_2(tmp_path, capsys):
    methods.run("magnitude", data="digits", model="mlp-300-100", epochs=1, subset=40, amounts="0,0.5",
                out=str(tmp_path / "b"), quiet=True, threads=1)
    capsys.readouterr()  # the first run's own notes (such as "plot.png skipped" without matplotlib)
    with pytest.raises(SystemExit) as exc:
        cli.main(["run", "rvsm", "--model", "mlp-300-100", "--subset", "8", "--quiet", "--out", str(tmp_path / "c"),
                  "--resume", str(tmp_path / "b")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot resume" in err and "method 'magnitude'" in err


def test_started_tells_which_phases_ran_before_the_checkpoint(tmp_path, digits, monkeypatch, interrupt_after):
    eng = engine.Engine(_spec(tmp_path / "run", epochs=2), dataset=digits)
    model = eng.track(_model(eng))
    assert not eng.started("a")
    _train(eng, model, phase="a")
    assert eng.started("a") and not eng.started("b")
    per_epoch = math.ceil(len(digits.y_train) / BATCH)
    interrupt_after(per_epoch)  # Ctrl-C during the last step of phase b's first epoch
    with pytest.raises(engine.Interrupted, match="interrupted in b, after epoch 1"):
        _train(eng, model, epochs=2, phase="b")
    monkeypatch.undo()
    again = engine.Engine(_spec(None, resume=str(tmp_path / "run"), epochs=2), dataset=digits)
    assert again.started("a") and again.started("b") and not again.started("c")
    model = again.track(_model(again))
    assert _train(again, model, phase="a").steps == per_epoch  # a finished phase returns at once
    assert again.steps == 2 * per_epoch
    b = _train(again, model, epochs=2, phase="b")  # b continues from its first epoch
    assert b.epochs_run == 2 and b.steps == 2 * per_epoch and again.steps == 3 * per_epoch
    assert [(r["phase"], r["epoch"]) for r in again.rows] == [("a", 1), ("b", 1), ("b", 2)]


@pytest.mark.parametrize(("every", "saved"), [(1, [1, 2, 3, 4, 5]), (2, [2, 4, 5]), (0, [5])])
def test_checkpoint_every(tmp_path, digits, monkeypatch, every, saved):
    written = []
    real = io.save_checkpoint

    def spy(path, **kw):
        written.append(kw["config"]["engine"]["position"]["epoch"])
        return real(path, **kw)

    monkeypatch.setattr(io, "save_checkpoint", spy)
    _trained_run(tmp_path, digits, epochs=5, checkpoint_every=every)
    assert written == saved  # every N epochs, and always at the end of the phase


def test_resuming_a_finished_run_trains_nothing_and_reports_the_same(tmp_path):
    """Lottery: several phases, controls and method state (extra); resumed at its end, the same result."""
    kw = dict(data="digits", subset=80, epochs=2, batch_size=40, rounds=1, quiet=True, threads=1)
    first = methods.run("lottery", out=str(tmp_path), **kw)
    rows = (tmp_path / "metrics.csv").read_text()
    again = methods.run("lottery", resume=str(tmp_path), **kw)
    assert again["steps"] == first["steps"] and again["train_seconds"] == first["train_seconds"]
    for key in ("test_accuracy", "rounds", "random_reinit", "architecture", "weight_sparsity"):
        assert again[key] == first[key], key
    assert (tmp_path / "metrics.csv").read_text() == rows


# ---------------------------------------------------------------------- random streams


def test_rng_for_streams_are_reproducible_and_independent(tmp_path, digits):
    def draws(eng, name=None, n=4):
        rng = eng.rng if name is None else eng.rng_for(name)
        return np.asarray(eng.backend.to_numpy(rng.uniform((n,), "float64")))

    a = engine.Engine(_spec(tmp_path / "a"), dataset=digits)
    b = engine.Engine(_spec(tmp_path / "b"), dataset=digits)
    first = draws(a, "round 1")
    np.testing.assert_array_equal(first, draws(b, "round 1"))  # reproducible
    assert a.rng_for("round 1") is a.rng_for("round 1")  # one generator per name: its draws continue
    assert not np.array_equal(draws(a, "round 1"), first)
    assert not np.array_equal(draws(a, "round 1"), draws(a, "round 2"))
    same = engine.Engine(_spec(tmp_path / "e"), dataset=digits)  # seed_name: another name, the same numbers
    np.testing.assert_array_equal(same.rng_for("x", seed_name="data").uniform((3,), "float64"),
                                  same.rng_for("y", seed_name="data").uniform((3,), "float64"))
    assert not np.array_equal(draws(a, "round 1"), draws(a))  # not the run's own stream
    # drawing from a named stream leaves the run's stream where it was
    c = engine.Engine(_spec(tmp_path / "c"), dataset=digits)
    draws(c, "control init 1", n=1000)
    np.testing.assert_array_equal(draws(c), draws(b))
    seeded = engine.Engine(_spec(tmp_path / "d", seed=1), dataset=digits)
    assert not np.array_equal(draws(seeded, "round 1"), draws(b, "round 1"))
    torch_reason = backends.unavailable_reason("torch")
    if torch_reason is None:  # the reference stream: the same numbers on every backend
        t = engine.Engine(_spec(tmp_path / "t", backend="torch"), dataset=digits)
        fresh = engine.Engine(_spec(tmp_path / "f"), dataset=digits)
        np.testing.assert_array_equal(draws(t, "round 1"), draws(fresh, "round 1"))


# ---------------------------------------------------------------------- evaluation and batches


def test_evaluate_is_the_mean_cross_entropy_and_accuracy(backend, digits):
    b = backend
    model = build_model("mlp-300-100", input_shape=digits.input_shape, num_classes=10, backend=b,
                        rng=b.rng(0, stream="reference"), dtype="float64")
    x, y = digits.x_val[:50], digits.y_val[:50]
    logits = b.to_numpy(model.forward(b.asarray(x, dtype="float64")))
    shifted = logits - logits.max(1, keepdims=True)
    ce = -(shifted[np.arange(len(y)), y] - np.log(np.exp(shifted).sum(1))).mean()
    for batch_size in (7, 50, 1000):
        loss, acc = engine.evaluate(model, x, y, backend=b, batch_size=batch_size)
        assert isinstance(loss, float) and isinstance(acc, float)
        assert loss == pytest.approx(ce, rel=1e-12) and acc == np.mean(logits.argmax(1) == y), batch_size
    with pytest.raises(ValueError, match="at least one example"):
        engine.evaluate(model, x[:0], y[:0], backend=b)


def test_engine_evaluate_splits(tmp_path, digits):
    eng = engine.Engine(_spec(tmp_path), dataset=digits)
    model = _model(eng)
    assert eng.evaluate(model, "test") == engine.evaluate(model, digits.x_test, digits.y_test, backend=eng.backend)
    with pytest.raises(ValueError, match="split must be 'train', 'val' or 'test', got split='dev'"):
        eng.evaluate(model, "dev")


def test_batches_follow_an_order_and_skip_the_first(backend):
    x = np.arange(10 * 2, dtype=np.float32).reshape(10, 2)
    y = np.arange(10)
    order = np.asarray([3, 1, 4, 0, 9, 2, 6, 5, 8, 7])

    def labels(**kw):
        return [backend.to_numpy(yb).tolist() for _, yb in data.batches(x, y, 4, backend=backend, **kw)]

    assert labels(order=order) == [[3, 1, 4, 0], [9, 2, 6, 5], [8, 7]]
    assert labels(order=order, start=1) == [[9, 2, 6, 5], [8, 7]]  # the first batch skipped
    assert labels(order=order, start=3) == []
    assert labels(start=2) == [[8, 9]]  # the stored order
    assert labels(order=order, start=1, drop_last=True) == [[9, 2, 6, 5]]
    xb, _ = next(data.batches(x, y, 4, backend=backend, order=order, start=1))
    np.testing.assert_array_equal(backend.to_numpy(xb), x[[9, 2, 6, 5]])
    rng = backend.rng(0, stream="reference")
    drawn = data.shuffled_order(rng, 10, backend=backend)
    assert sorted(drawn.tolist()) == list(range(10)) and drawn.dtype == np.int64
    np.testing.assert_array_equal(drawn, data.shuffled_order(backends.get("numpy").rng(0), 10,
                                                             backend=backends.get("numpy")))
    with pytest.raises(ValueError, match="not both"):
        labels(order=order, rng=rng)
    with pytest.raises(ValueError, match="permutation of range"):
        labels(order=order[:5])
    with pytest.raises(ValueError, match="start must be an int >= 0"):
        labels(start=-1)
    assert data.num_batches(10, 4) == 3 and data.num_batches(10, 4, drop_last=True) == 2


def test_subset_cuts_every_split(digits):
    small = data.subset(digits, 7)
    for split in ("train", "val", "test"):
        assert len(getattr(small, f"y_{split}")) == 7
        np.testing.assert_array_equal(getattr(small, f"x_{split}"), getattr(digits, f"x_{split}")[:7])
    assert data.subset(digits, 0) is digits and data.subset(digits, None) is digits
    with pytest.raises(ValueError, match="subset must be an int >= 0"):
        data.subset(digits, -1)


# ---------------------------------------------------------------------- a zero-epoch run


@pytest.mark.parametrize("method", methods.names())
def test_a_zero_epoch_run_reports_the_untrained_model(method, tmp_path):
    extra = {"rounds": 1} if method == "lottery" else {}
    r = methods.run(method, data="digits", subset=60, epochs=0, quiet=True, threads=1, out=str(tmp_path), **extra)
    assert r["steps"] == 0 and r["train_seconds"] == 0.0 and 0.0 <= r["test_accuracy"] <= 1.0
    assert "checkpoint" not in r["files"] and not (tmp_path / "checkpoint.npz").exists()
    with open(tmp_path / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert all(int(row["epoch"]) == 0 for row in rows)  # at most the untrained model's row
    if method == "magnitude":  # the dense accuracy is that of the initial network
        b = backends.get("numpy")
        ds = data.subset(data.load("digits"), 60)
        model = build_model(r["model"], input_shape=ds.input_shape, num_classes=10, backend=b,
                            rng=b.rng(0, stream="reference"))
        assert r["dense_accuracy"] == engine.evaluate(model, ds.x_test, ds.y_test, backend=b)[1]
