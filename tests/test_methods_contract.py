"""The contract every method keeps, on every backend: a short run, its result, resume, the NaN guard.

One test per (method, backend): every registered method (a new one is included without
an edit here) on numpy, torch, array-api-strict on its default device and on
``device1`` (which finds arrays created without ``device=``), torch-cuda and cupy
(skipped without a GPU).
"""

from __future__ import annotations

import csv
import json
import math
import os

import numpy as np
import pytest

from refprune import backends, data, engine, io, methods
from refprune.nn import functional as F

#: Small settings per method so that a run takes a second or two.
SMALL = {
    "l0": {},
    "rvsm": {},
    "magnitude": {"amounts": "0,0.5,0.9"},
    "lottery": {"rounds": 1, "patience": 5},
    "binary": {"hidden": "64", "on_values": "0,1,2"},
    "gmp": {"begin_epoch": 1},  # prunes in the second of two epochs (the default begins after two)
    "dense": {"data": "stdlib", "model": "gpt-tiny", "width": 16, "blocks": 1, "heads": 2},  # a tiny gpt-tiny on 120 byte windows
}
BASE = {"data": "digits", "subset": 120, "batch_size": 40, "epochs": 2, "quiet": True, "threads": 1}
#: The opt-in backends (JAX: about 2 minutes for every method) join when named, e.g.
#: ``REFPRUNE_TEST_OPT_IN=jax pytest tests/test_methods_contract.py``.
OPT_IN = [n for n in os.environ.get("REFPRUNE_TEST_OPT_IN", "").split(",") if n in backends.OPT_IN]
BACKENDS = [(name, None) for name in (*backends.DEFAULT_TEST_NAMES, *OPT_IN)] + [("array-api-strict", "device1")]


def _settings(method, **more):
    return {**BASE, **SMALL.get(method, {}), **more}


def _available(name):
    reason = backends.unavailable_reason(name)
    if reason is not None:
        pytest.skip(f"backend {name}: {reason}")


def _rows(out):
    with open(os.path.join(out, "metrics.csv")) as f:
        return [{k: v for k, v in row.items() if k != "train_seconds"} for row in csv.DictReader(f)]


def _seconds(out):
    with open(os.path.join(out, "metrics.csv")) as f:
        return [float(row["train_seconds"]) for row in csv.DictReader(f)]


def _params(out):
    ckpt = io.load_checkpoint(os.path.join(out, "checkpoint.npz"))
    return ckpt.params, ckpt.masks


@pytest.mark.slow
@pytest.mark.parametrize("backend_name,device", BACKENDS, ids=[f"{b}{'-' + d if d else ''}" for b, d in BACKENDS])
@pytest.mark.parametrize("method", methods.names())
def test_method_contract(method, backend_name, device, tmp_path, monkeypatch, interrupt_after):
    _available(backend_name)
    settings = _settings(method, backend=backend_name, device=device)

    # 1. a short run finishes and reports the common keys with sane values
    straight = methods.run(method, out=str(tmp_path / "straight"), **settings)
    for key in engine.COMMON_KEYS:
        assert key in straight, key
    assert 0.0 <= straight["test_accuracy"] <= 1.0 and 0.0 <= straight["weight_sparsity"] <= 1.0
    arch = straight["architecture"]
    assert len(arch["before"]) == len(arch["after"]) == len(arch["layers"]) > 0
    assert all(0 <= a <= b for a, b in zip(arch["after"], arch["before"]))
    assert straight["steps"] > 0 and straight["train_seconds"] > 0
    env = straight["environment"]
    assert env["python"] and env["numpy"] and env["blas_threads"] is not None
    with open(tmp_path / "straight" / "result.json") as f:
        assert json.load(f)["test_accuracy"] == straight["test_accuracy"]

    # 2. interrupted (mid-epoch), then resumed: the same trajectory as straight through
    n_train = min(settings["subset"], len(data.load("digits").y_train))
    per_epoch = math.ceil(n_train / settings["batch_size"])
    interrupt_after(per_epoch + 1)
    with pytest.raises(engine.Interrupted, match="Resume with: refprune run"):
        methods.run(method, out=str(tmp_path / "resumed"), **settings)
    monkeypatch.undo()
    first = _seconds(tmp_path / "resumed")
    resumed = methods.run(method, resume=str(tmp_path / "resumed"), **settings)
    assert resumed["steps"] == straight["steps"]
    assert resumed["test_accuracy"] == straight["test_accuracy"]
    assert _rows(tmp_path / "resumed") == _rows(tmp_path / "straight")
    seconds = _seconds(tmp_path / "resumed")
    assert seconds[: len(first)] == first and seconds == sorted(seconds)
    (p1, m1), (p2, m2) = _params(tmp_path / "straight"), _params(tmp_path / "resumed")
    assert p1.keys() == p2.keys() and m1.keys() == m2.keys()
    for k in p1:
        np.testing.assert_array_equal(p1[k], p2[k], err_msg=k)
    for k in m1:
        np.testing.assert_array_equal(m1[k], m2[k], err_msg=k)


@pytest.mark.parametrize("method", methods.names())
def test_nan_guard_stops_the_run_and_keeps_the_last_checkpoint(method, tmp_path, monkeypatch):
    """A loss that turns NaN at the second step of epoch 2 stops the run there, naming the step and the checkpoint."""
    per_epoch = math.ceil(120 / 40)
    real_ce, real_train = F.softmax_cross_entropy_and_grad, engine.Engine.train
    poison = {"on": False}

    def ce(logits, labels, **kw):  # the training step's loss and logit gradient
        loss, grad = real_ce(logits, labels, **kw)
        return (loss * float("nan") if poison["on"] else loss), grad

    def train(self, model, *, step, **kw):
        taken = {"n": 0}

        def poisoned_step(*a, **k):
            taken["n"] += 1
            poison["on"] = taken["n"] >= per_epoch + 2
            try:
                return step(*a, **k)
            finally:
                poison["on"] = False

        return real_train(self, model, step=poisoned_step, **kw)

    monkeypatch.setattr(F, "softmax_cross_entropy_and_grad", ce)
    monkeypatch.setattr(engine.Engine, "train", train)
    out = tmp_path / "run"
    with pytest.raises(engine.Diverged) as info:
        methods.run(method, out=str(out), **_settings(method, backend="numpy"))
    message = str(info.value)
    assert f"diverged at step {per_epoch + 2} " in message and "the loss became nan" in message, message
    assert f"{out}/checkpoint.npz" in message and "epoch 1)" in message and "Lower --lr" in message
    assert os.path.exists(out / "metrics.csv")
    ckpt = io.load_checkpoint(out / "checkpoint.npz")
    assert ckpt.step == per_epoch and all(np.isfinite(v).all() for v in ckpt.params.values())


@pytest.mark.parametrize("method", ["l0", "magnitude"])
def test_a_real_divergence_from_a_huge_learning_rate(method, tmp_path):
    with pytest.raises(engine.Diverged, match="diverged at step"):
        methods.run(method, out=str(tmp_path / "run"), **_settings(method, lr=1e6, optimizer="sgd")
                    if method == "l0" else _settings(method, lr=1e30))


def test_a_new_method_is_one_module(tmp_path, monkeypatch):
    """Registering a method makes it a run command with its options; nothing else changes."""
    from refprune.cli import build_parser
    from refprune.methods import Option, register_method
    from refprune.methods._registry import METHODS

    @register_method("toy", summary="a toy", defaults={"model": "mlp-300-100", "epochs": 1, "batch_size": 50,
                                                         "lr": 1e-3}, options=[Option("shrink", 0.5, "how much",
                                                                                      low=0, high=1)])
    def run(eng, o):
        return {"shrink": o.shrink}

    monkeypatch.setitem(METHODS, "toy", METHODS.pop("toy"))
    args = build_parser().parse_args(["run", "toy", "--shrink", "0.25", "--out", str(tmp_path)])
    assert args.shrink == 0.25 and args.epochs == 1
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "toy", "--shrink", "2"])
    assert methods.make_spec("toy", shrink=0.1).options == {"shrink": 0.1}
