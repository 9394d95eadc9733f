"""The l0 method: the quality bar on digits, the paper's LeNet-5 path, and its pieces.

What every method shares (a short run on every backend, resume, the NaN guard) is in
``test_methods_contract.py``.
"""

from __future__ import annotations

import csv
import json
import math
import os
from types import SimpleNamespace

import numpy as np
import pytest

import refprune as rp
from refprune import backends, cli, data, engine, io, measures, methods
from refprune.methods import l0
from refprune.nn import LOG_ALPHA_RANGE, build_model, train

TINY = {"data": "synthetic", "subset": 100, "epochs": 1, "batch_size": 50, "quiet": True, "threads": 1}
PAPER = {"lam": "10,0.5,0.1,0.1", "weight_decay": 5e-4, "droprate_init": 0.5, "gate_lr": 1e-3, "lr": 1e-3,
         "penalty_n": 60000}


# ---------------------------------------------------------------------- (a) defaults on digits


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("l0-digits")
    return out, methods.run("l0", data="digits", seed=0, threads=1, out=str(out), quiet=True)


def test_defaults_on_digits_meet_the_quality_bar(default_run):
    _, r = default_run
    assert r["model"] == "lenet5"
    gates = r["gates"]
    before, after = gates["before"], gates["after"]
    assert gates["layers"] == ["conv1", "conv2", "fc1", "out"]
    assert before == [20, 50, 200, 500]  # conv1, conv2 channels; fc1, out input units (8x8 -> 2x2x50)
    assert r["test_accuracy"] >= 0.95, r
    assert sum(after) <= 0.5 * sum(before), after  # half or more of the gated units pruned
    assert r["pruned_unit_fraction"] == pytest.approx(1 - sum(after) / sum(before))
    assert all(0 < a <= b for a, b in zip(after, before))
    # the units alive are the same layers in the same convention; a closed gate's unit is never alive
    arch = r["architecture"]
    assert arch["layers"] == gates["layers"] and arch["before"] == before
    assert all(0 < alive <= open_ for alive, open_ in zip(arch["after"], after)), (arch["after"], after)
    assert r["weight_sparsity"] >= 0.5


def test_defaults_result_files_and_metrics(default_run):
    out, r = default_run
    n = len(data.load("digits").y_train)
    assert r["steps"] == r["epochs"] * math.ceil(n / 50) and r["penalty_n"] == n
    assert r["lam"] == [1.0, 0.05, 0.01, 0.2]
    assert r["gates_string"] == "20-50-200-500 -> " + "-".join(map(str, r["gates"]["after"]))
    assert r["architecture_string"] == "20-50-200-500 -> " + "-".join(map(str, r["architecture"]["after"]))
    for name in ("result.json", "metrics.csv", "plot.png", "checkpoint.npz"):
        assert os.path.getsize(out / name) > 0, name
    with open(out / "result.json") as f:
        stored = json.load(f)
    assert stored["gates"] == r["gates"] and stored["architecture"] == r["architecture"]
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(row["epoch"]) for row in rows] == list(range(r["epochs"] + 1))  # epoch 0: the untrained model
    assert {row["phase"] for row in rows} == {"train"}
    first, last = rows[0], rows[-1]
    layers = r["gates"]["layers"]
    assert [int(last[f"open_{n}"]) for n in layers] == r["gates"]["after"]
    assert [int(first[f"open_{n}"]) for n in layers] == r["gates"]["before"]
    # the expected L0 falls as gates close; the reported one is the last epoch's
    assert float(last["expected_l0"]) == pytest.approx(r["expected_l0"])
    assert float(last["expected_l0"]) < 0.5 * float(first["expected_l0"])
    assert float(last["expected_flops"]) < float(first["expected_flops"])
    assert float(last["train_accuracy"]) > 0.9 and float(last["val_accuracy"]) == pytest.approx(r["val_accuracy"])


def test_sampled_gate_accuracy_and_half_open_gates(default_run):
    """The accuracy with sampled gates and the count of gates strictly between 0 and 1, checked from the checkpoint."""
    out, r = default_run
    low, high = r["test_accuracy_sampled_gates_range"]
    assert 0.5 < low <= r["test_accuracy_sampled_gates"] <= high <= 1.0
    ckpt = io.load_checkpoint(os.path.join(out, "checkpoint.npz"))
    counts = []
    for name in r["gates"]["layers"]:
        z = rp.hard_concrete_mode(ckpt.params[f"model/{name}.log_alpha"])
        counts.append(int(np.count_nonzero((z > 0) & (z < 1))))
    assert r["half_open_gates_by_layer"] == counts and r["half_open_gates"] == sum(counts)
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert int(rows[-1]["half_open_gates"]) == r["half_open_gates"]
    assert int(rows[0]["half_open_gates"]) == sum(r["architecture"]["before"])  # every gate starts half-open


def test_sampled_gate_accuracy_draws_gates_and_leaves_the_model(tmp_path):
    """With gates pushed to exactly 0 or 1 the sampled accuracy equals the test-time one; half-open gates differ."""
    from refprune import engine

    spec = methods.make_spec("l0", data="digits", model="mlp-300-100", subset=200, quiet=True, out=str(tmp_path))
    eng = engine.Engine(spec)
    model = build_model("mlp-300-100", input_shape=eng.dataset.input_shape, num_classes=10, backend=eng.backend,
                        rng=eng.rng, l0=True, droprate_init=0.5)
    before = {k: np.array(v) for k, v in model.params().items()}
    mean, low, high = l0.sampled_gate_accuracy(eng, model, draws=4)
    assert low < high  # the gates were sampled: each draw differs
    for k, v in model.params().items():
        np.testing.assert_array_equal(v, before[k])
    assert l0.half_open_gates(model) == model.gate_sizes()  # log_alpha ~ 0: z_test = 0.5
    model.set_params({k: (np.full_like(v, 50.0) if k.endswith("log_alpha") else v) for k, v in model.params().items()})
    assert l0.half_open_gates(model) == [0, 0, 0]
    mean, low, high = l0.sampled_gate_accuracy(eng, model, draws=2)
    assert low == high == mean == eng.evaluate(model, "test")[1]  # every gate open in every sample


def test_mnist5k_lenet5_takes_the_rescaled_paper_lambdas():
    assert l0.default_lam("lenet5", "mnist5k") == pytest.approx(tuple(v * 3500 / 60000 for v in (10, 0.5, 0.1, 0.1)),
                                                                 rel=0.05)
    assert l0.default_lam("lenet5", "digits") == l0.PRESET_LAM["lenet5"]
    assert l0.default_lam("conv4", "mnist5k") == l0.OTHER_LAM


def test_defaults_checkpoint_reproduces_the_reported_model(default_run):
    """Load the checkpoint through the engine: deterministic test gates give the reported accuracy and measures."""
    out, r = default_run
    eng = engine.Engine(methods.make_spec("l0", resume=str(out), threads=1, quiet=True))
    ds = eng.dataset
    model = eng.track(build_model("lenet5", input_shape=ds.input_shape, num_classes=ds.num_classes,
                                  backend=eng.backend, rng=eng.rng, l0=True, lam=list(r["lam"])))
    assert eng.steps == r["steps"]
    assert model.open_gates() == r["gates"]["after"]
    assert eng.evaluate(model, "test")[1] == r["test_accuracy"]
    assert eng.evaluate(model, "test")[1] == r["test_accuracy"]  # deterministic
    sparsity, by_layer = measures.weight_sparsity(model)
    assert sparsity == pytest.approx(r["weight_sparsity"])
    assert measures.architecture(model)["after"] == r["architecture"]["after"]
    # a closed gate removes its whole row (dense) or filter (conv): the sparsity is at least that
    for (name, layer), open_ in zip(model.gated(), r["gates"]["after"]):
        assert by_layer[f"{name}.w"] >= 1 - open_ / layer.n_gates - 1e-12


# ---------------------------------------------------------------------- (b) the paper's LeNet-5 path, tiny


@pytest.mark.slow
def test_paper_lenet5_path_on_synthetic(tmp_path, backend):
    """LeNet-5-Caffe on MNIST-shaped data with the paper's lambda sep.: 20-50-800-500 gates."""
    r = methods.run("l0", model="lenet5", backend=backend.name, out=str(tmp_path), **TINY, **PAPER)
    assert r["gates"]["before"] == r["architecture"]["before"] == [20, 50, 800, 500]
    assert r["steps"] == 2 and r["penalty_n"] == 60000 and r["lam"] == [10.0, 0.5, 0.1, 0.1]
    assert 0.0 <= r["test_accuracy"] <= 1.0 and 0.0 <= r["weight_sparsity"] <= 1.0
    assert r["expected_l0"] > 0 and r["expected_flops"] > r["expected_l0"]
    stored = io.load_checkpoint(str(tmp_path / "checkpoint.npz"))
    options = stored.config["run"]["options"]
    assert options["lam"] == [10.0, 0.5, 0.1, 0.1] and options["gate_lr"] == 1e-3
    assert np.all(stored.params["model/conv1.log_alpha"] <= math.log(100) + 1e-6)


@pytest.mark.slow
def test_paper_command_through_the_cli(tmp_path, capsys):
    argv = ["run", "l0", "--data", "synthetic", "--subset", "100", "--model", "lenet5", "--epochs", "1",
            "--batch-size", "50", "--lam", "10,0.5,0.1,0.1", "--weight-decay", "5e-4", "--droprate-init", "0.5",
            "--lr", "1e-3", "--gate-lr", "1e-3", "--penalty-n", "60000", "--local-rep", "--quiet",
            "--out", str(tmp_path)]
    assert cli.main(argv) == 0
    assert "20-50-800-500 ->" in capsys.readouterr().out
    with open(tmp_path / "result.json") as f:
        r = json.load(f)
    assert r["lam"] == [10.0, 0.5, 0.1, 0.1] and r["config"]["options"]["local_rep"] is True


def test_help_teaches_the_method(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["run", "l0", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "hard-concrete" in text and "20-25-45-462" in text  # the method and the paper's result


def test_mlp_preset_and_per_layer_lists(tmp_path):
    r = methods.run("l0", model="mlp-300-100", out=str(tmp_path), lam=[0.1, 0.1, 0.1],
                    droprate_init="0.2,0.5,0.5", **TINY)
    assert r["gates"]["before"] == r["architecture"]["before"] == [784, 300, 100] and r["lam"] == [0.1, 0.1, 0.1]


def test_wrong_number_of_lambdas_is_refused(tmp_path):
    with pytest.raises(ValueError, match="4 gated layers"):
        methods.run("l0", model="lenet5", out=str(tmp_path / "a"), lam="1,2", **TINY)
    with pytest.raises(ValueError, match="3 gated layers"):
        methods.run("l0", model="mlp-300-100", out=str(tmp_path / "b"), lam="1,2,3,4", **TINY)


def test_the_run_builds_one_network_and_build_model_checks_the_lists(tmp_path, monkeypatch):
    """The gated layers are counted by building the network the run trains, not a throw-away one."""
    built = []

    def counting(*args, **kwargs):
        built.append(args[0])
        return build_model(*args, **kwargs)

    monkeypatch.setattr(l0, "build_model", counting)
    methods.run("l0", model="mlp-300-100", out=str(tmp_path), **TINY)
    assert built == ["mlp-300-100"]
    b, rng = backends.get("numpy"), backends.get("numpy").rng(0)
    for lam, n in (((0.1, 0.2), 2), ((0.1,) * 5, 5)):
        message = rf"^lam has {n} entries but the model has 3 gated layers; give one value or 3$"
        with pytest.raises(ValueError, match=message):
            build_model("mlp-300-100", input_shape=(64,), num_classes=10, backend=b, rng=rng, l0=True, lam=lam)


@pytest.mark.slow
def test_penalty_is_scaled_by_one_over_n(tmp_path, monkeypatch):
    seen = []
    real = train.train_step

    def spy(*args, **kwargs):
        seen.append(kwargs["penalty_scale"])
        return real(*args, **kwargs)

    monkeypatch.setattr(l0.train, "train_step", spy)
    methods.run("l0", model="mlp-300-100", out=str(tmp_path / "a"), **TINY)
    assert seen and set(seen) == {1.0 / 100}  # N = the training-set size
    seen.clear()
    methods.run("l0", model="mlp-300-100", out=str(tmp_path / "b"), penalty_n=60000, **TINY)
    assert set(seen) == {1.0 / 60000}


# ---------------------------------------------------------------------- (c) the method's pieces


def test_per_layer_options():
    lam = methods.get("l0").option("lam")
    assert lam.check("0.1") == 0.1
    assert lam.check("10, 0.5,0.1,0.1") == (10.0, 0.5, 0.1, 0.1)
    assert lam.check([1, 2]) == (1.0, 2.0)
    assert lam.check(3) == 3.0 and lam.check(None) is None
    for bad in ("", "a,b", [], -1.0, float("nan"), True, "1,x", "1,-2"):
        with pytest.raises(ValueError, match="lam"):
            lam.check(bad)
    droprate = methods.get("l0").option("droprate_init")
    assert droprate.check("0.2,0.5,0.5") == (0.2, 0.5, 0.5)
    for bad in (0.0, 1.0, "0.2,1.5"):
        with pytest.raises(ValueError, match="droprate_init.*drop rate"):
            droprate.check(bad)


def _small_l0_model(backend, **options):
    rng = backend.rng(0)
    return build_model("mlp-300-100", input_shape=(6,), num_classes=3, backend=backend, rng=rng, l0=True,
                       dtype="float64", **options)


def _options(**kw):
    return SimpleNamespace(**{"gate_lr": 0.05, "optimizer": "adam", "momentum": 0.9, **kw})


def test_gate_learning_rate_is_separate(backend):
    """One Adam step moves every log_alpha by about gate_lr and every weight by at most lr."""
    model = _small_l0_model(backend, lam=0.5)
    opt = l0.make_optimizer(_options(gate_lr=0.05), lr=1e-3)
    state = opt.init(model.params())
    before = {k: backend.to_numpy(v) for k, v in model.params().items()}
    rng = backend.rng(1)
    x = rng.uniform((8, 6), "float64")
    y = backend.asarray(np.arange(8) % 3, dtype="int64")
    train.train_step(model, opt.update, state, x, y, rng=rng, penalty_scale=1.0 / 8)
    after = {k: backend.to_numpy(v) for k, v in model.params().items()}
    for k in after:
        step = np.abs(after[k] - before[k])
        if k.endswith("log_alpha"):
            # the penalty gives every gate a nonzero gradient: Adam's first step is lr * g/(|g|+eps)
            np.testing.assert_allclose(step, 0.05, rtol=1e-3, err_msg=k)
        else:
            assert step.max() <= 1e-3 * (1 + 1e-9), k


def test_sgd_option_is_nesterov_momentum(backend):
    opt = l0.make_optimizer(_options(optimizer="sgd", gate_lr=0.5, momentum=0.9), lr=0.1)
    params = {"fc1.w": backend.asarray([1.0, -1.0], dtype="float64"),
              "fc1.log_alpha": backend.asarray([0.0], dtype="float64")}
    grads = {"fc1.w": backend.asarray([1.0, 2.0], dtype="float64"),
             "fc1.log_alpha": backend.asarray([1.0], dtype="float64")}
    new, state = opt.update(params, grads, opt.init(params))
    # first Nesterov step: buf = g, update g + momentum * buf = 1.9 g
    np.testing.assert_allclose(backend.to_numpy(new["fc1.w"]), [1.0 - 0.1 * 1.9, -1.0 - 0.1 * 3.8])
    np.testing.assert_allclose(backend.to_numpy(new["fc1.log_alpha"]), [-0.5 * 1.9])
    assert state["step"] == 1


def test_log_alpha_is_clamped_after_every_step(backend):
    model = _small_l0_model(backend, lam=0.5)
    opt = l0.make_optimizer(_options(gate_lr=100.0, optimizer="sgd", momentum=0.0), lr=1e-3)
    state = opt.init(model.params())
    rng = backend.rng(1)
    x = rng.uniform((8, 6), "float64")
    y = backend.asarray(np.arange(8) % 3, dtype="int64")
    train.train_step(model, opt.update, state, x, y, rng=rng, penalty_scale=1.0)
    lo, hi = LOG_ALPHA_RANGE
    values = np.concatenate([backend.to_numpy(v).ravel() for k, v in model.params().items() if k.endswith("log_alpha")])
    assert values.min() >= lo - 1e-12 and values.max() <= hi + 1e-12
    assert np.isclose(values.min(), lo)  # the strong penalty pushed gates past the bound: clamped


def test_weight_sparsity_and_architecture_from_test_time_gates(backend):
    """Closed gates zero whole rows (dense, input units) and filters (conv, output channels)."""
    rng = backend.rng(0)
    model = build_model("lenet5", input_shape=(1, 8, 8), num_classes=4, backend=backend, rng=rng, l0=True,
                        dtype="float64")
    # closed: conv1 channels 0, 3; fc1 input units 5..9; out input units 0..99. mode = 0 below log(1/11)
    closed = {"conv1": [0, 3], "conv2": [], "fc1": list(range(5, 10)), "out": list(range(100))}
    new = {}
    for name, layer in model.gated():
        la = np.full(layer.n_gates, 1.0)
        la[closed[name]] = -4.0
        new[f"{name}.log_alpha"] = backend.asarray(la, dtype="float64")
    model.set_params(new)
    assert model.open_gates() == [18, 50, 195, 400]
    eff = {k: backend.to_numpy(v) for k, v in model.effective_params().items()}
    w = {k: backend.to_numpy(v) for k, v in model.params().items()}
    z = 1.0 / (1.0 + np.exp(-1.0)) * 1.2 - 0.1  # open gates' test value, 0.777 (not clipped)
    np.testing.assert_allclose(eff["conv1.w"][1], z * w["conv1.w"][1])
    assert not eff["conv1.w"][[0, 3]].any() and not eff["fc1.w"][5:10].any() and not eff["out.w"][:100].any()
    sizes = {k: v.size for k, v in w.items() if k.endswith(".w")}
    zeros = 2 * sizes["conv1.w"] / 20 + 5 * sizes["fc1.w"] / 200 + 100 * sizes["out.w"] / 500
    sparsity, by_layer = measures.weight_sparsity(model)
    assert sparsity == pytest.approx(zeros / sum(sizes.values()))
    assert by_layer["conv1.w"] == pytest.approx(0.1) and by_layer["conv2.w"] == 0.0
    assert by_layer["out.w"] == pytest.approx(0.2)
    # every other unit still connects input to output here: the units alive are the open gates
    assert measures.architecture(model)["after"] == model.open_gates()


def test_option_errors(tmp_path):
    for bad in ({"droprate_init": 1.0}, {"temperature": 0.0}, {"penalty_n": 0}, {"optimizer": "rmsprop"},
                {"momentum": 1.5}, {"gate_lr": -1.0}):
        name = next(iter(bad))
        with pytest.raises(ValueError, match=name):
            methods.run("l0", out=str(tmp_path), model="mlp-300-100", **{**TINY, **bad})
