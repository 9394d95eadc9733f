"""Resuming a run on the engine continues the same trajectory, to the bit on NumPy.

Two epochs straight through are compared with one epoch, a checkpoint, and a second
epoch run by a fresh engine and a freshly built model (other initial values, no masks)
resumed from it. The cases add what the methods' contract test does not reach: batch-norm
running statistics, masks restored from the checkpoint, SGD momentum buffers, extra
constraints and per-parameter learning rates. A checkpoint of another network is refused.
"""

from __future__ import annotations

import csv
import os
from functools import partial

import numpy as np
import pytest

from refprune import data, engine, io
from refprune.nn import build_model, train
from refprune.nn.constraints import clamp

CASES = {
    # L0 gates (noise drawn from the generator between minibatch orders), Adam with a gate lr
    "l0-mlp": {
        "preset": "mlp-300-100",
        "options": {"l0": True, "lam": 0.1, "weight_decay": 1e-4},
        "opt": engine.adam(lr={"*.log_alpha": 0.1, "*": 1e-3}),
        "masks": False,
    },
    # batch-norm running statistics, masks, SGD momentum buffers, extra constraints
    "bn-masked": {
        "preset": "binary-mlp",
        "options": {"hidden": 32, "init": "torch-uniform", "norm": "batch-norm"},
        "opt": engine.sgd(lr=0.05, momentum=0.9, nesterov=True),
        "masks": True,
    },
}


@pytest.fixture(scope="module")
def digits():
    return data.subset(data.load("digits"), 512)


def _engine(case, out, dataset, *, epochs, resume=None):
    spec = engine.RunSpec(method="resume-test", model=case["preset"], epochs=epochs, batch_size=64,
                          dtype="float64", quiet=True, out=str(out), resume=resume)
    return engine.Engine(spec, dataset=dataset)


def _build(case, eng, rng, **options):
    ds = eng.dataset
    return build_model(case["preset"], input_shape=ds.input_shape, num_classes=10, backend=eng.backend, rng=rng,
                       dtype="float64", **{**case["options"], **options})


def _run(case, out, dataset, *, epochs, resume=None):
    eng = _engine(case, out, dataset, epochs=epochs, resume=resume)
    b = eng.backend
    # resumed: built from another generator (other initial values) and without masks; the checkpoint decides
    model = eng.track(_build(case, eng, eng.rng_for("elsewhere") if resume else eng.rng))
    if case["masks"] and not resume:
        gen = np.random.default_rng(1)
        model.set_masks({n: b.asarray(gen.uniform(size=model.params()[n].shape) < 0.7) for n in model.prunable()})
    step = partial(train.train_step, penalty_scale=1.0 / len(dataset.y_train), constraints={"*.w": clamp(-1, 1)})
    eng.train(model, step=step, optimizer=case["opt"], epochs=epochs)
    eng._write_metrics()
    return eng, model


def _rows(out):
    with open(os.path.join(out, "metrics.csv")) as f:
        return [{k: v for k, v in row.items() if k != "train_seconds"} for row in csv.DictReader(f)]


@pytest.mark.parametrize("name", list(CASES))
def test_resume_equals_straight_through(tmp_path, digits, name):
    case = CASES[name]
    straight_eng, straight = _run(case, tmp_path / "straight", digits, epochs=2)
    _run(case, tmp_path / "resumed", digits, epochs=1)
    eng, resumed = _run(case, tmp_path / "resumed", digits, epochs=2, resume=str(tmp_path / "resumed"))

    assert eng.steps == straight_eng.steps == 2 * -(-len(digits.y_train) // 64)
    assert bool(resumed.masks()) == case["masks"]
    for section in ("params", "state", "masks"):
        want, got = getattr(straight, section)(), getattr(resumed, section)()
        assert set(got) == set(want), section
        for k, v in want.items():
            assert np.array_equal(np.asarray(got[k]), np.asarray(v)), f"{section} {k}"  # to the bit
    assert _rows(tmp_path / "resumed") == _rows(tmp_path / "straight")
    a = io.load_checkpoint(tmp_path / "straight" / "checkpoint.npz")
    b = io.load_checkpoint(tmp_path / "resumed" / "checkpoint.npz")
    assert a.rng_state == b.rng_state and a.optimizer_state["step"] == b.optimizer_state["step"]
    buffers = [k for k, v in a.optimizer_state.items() if isinstance(v, dict)]
    assert buffers  # Adam's moments or the momentum buffers
    for buf in buffers:
        for k, v in a.optimizer_state[buf].items():
            np.testing.assert_array_equal(b.optimizer_state[buf][k], v, err_msg=f"{buf} {k}")


def test_resume_refuses_another_network(tmp_path, digits):
    l0, bn = CASES["l0-mlp"], CASES["bn-masked"]
    _run(l0, tmp_path / "l0", digits, epochs=1)
    eng = _engine(l0, tmp_path / "l0", digits, epochs=2, resume=str(tmp_path / "l0"))
    with pytest.raises(ValueError, match=r"another network \(.*preset: checkpoint 'mlp-300-100' vs this model "
                                         r"'binary-mlp'"):
        eng.track(_build(bn, eng, eng.rng))
    eng = _engine(l0, tmp_path / "l0", digits, epochs=2, resume=str(tmp_path / "l0"))
    eng.track(_build(l0, eng, eng.rng, lam=0.2))  # another lam: the same architecture, accepted
    eng = _engine(l0, tmp_path / "l0", digits, epochs=2, resume=str(tmp_path / "l0"))
    with pytest.raises(ValueError, match=r"another network \(l0: checkpoint True vs this model False"):
        eng.track(build_model("mlp-300-100", input_shape=(1, 8, 8), num_classes=10, backend=eng.backend,
                              rng=eng.rng))

    _run(bn, tmp_path / "bn", digits, epochs=1)
    eng = _engine(bn, tmp_path / "bn", digits, epochs=2, resume=str(tmp_path / "bn"))
    with pytest.raises(ValueError, match=r"shapes differ \(.*\(64, 32\) vs model \(64, 48\)"):
        eng.track(_build(bn, eng, eng.rng, hidden=48))
    eng = _engine(bn, tmp_path / "bn", digits, epochs=2, resume=str(tmp_path / "bn"))
    with pytest.raises(ValueError, match=r"does not fit this model: missing \['fc1.b', .*\], unexpected \[\]"):
        eng.track(_build(bn, eng, eng.rng, bias=True))  # the same preset with other parameters
