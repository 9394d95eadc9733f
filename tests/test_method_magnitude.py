"""The magnitude method: the notebook's weight-vs-unit pruning sweep, end to end and piece by piece.

What every method shares (a short run on every backend, resume, the NaN guard) is in
``test_methods_contract.py``; the criteria themselves in ``test_criteria.py``.
"""

from __future__ import annotations

import csv
import json
import math
import os

import numpy as np
import pytest

from refprune import backends, cli, data, engine, measures, methods
from refprune.methods import magnitude
from refprune.nn import build_model

# ---------------------------------------------------------------------- (a) defaults on digits


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("magnitude-digits")
    return out, methods.run("magnitude", data="digits", seed=0, threads=1, out=str(out), quiet=True)


def _curve(result, criterion, key="curves"):
    return {a: acc for a, _, acc in result[key][criterion]}


def test_defaults_on_digits_meet_the_quality_bar(default_run):
    _, result = default_run
    assert result["model"] == "mlp-1000-1000-500-200"
    weight, unit = _curve(result, "weight"), _curve(result, "unit")
    assert list(weight) == list(unit) == list(magnitude.AMOUNTS)
    # the notebook's finding: at 80% sparsity weight pruning keeps the accuracy, unit pruning does not
    assert weight[0.8] >= 0.85, weight
    assert unit[0.8] < weight[0.8], (unit, weight)
    assert result["dense_accuracy"] >= 0.93  # 0.972 with 1 BLAS thread, 0.958 with 2 (float32 summation order)
    # amount 0 is the dense model; the heaviest pruning is near chance
    assert weight[0.0] == unit[0.0] == result["dense_accuracy"]
    assert weight[0.99] < 0.5 and unit[0.99] < 0.5


def test_the_reported_model_is_the_most_pruned_within_tolerance_on_validation(default_run):
    _, result = default_run
    chosen = result["chosen"]
    assert chosen is not None and chosen["sparsity"] > 0.5
    val = {(c, a): (sp, acc) for c, pts in result["curves_val"].items() for a, sp, acc in pts}
    dense_val = val[("weight", 0.0)][1]
    allowed = [(sp, key) for key, (sp, acc) in val.items() if acc >= dense_val - 0.02]
    assert max(sp for sp, _ in allowed) == chosen["sparsity"]
    assert val[(chosen["criterion"], chosen["amount"])][1] >= dense_val - 0.02
    assert result["test_accuracy"] == chosen["test_accuracy"] == \
        _curve(result, chosen["criterion"])[chosen["amount"]]
    # the curves' sparsity is the model's weight sparsity: the output layer (not pruned) counts too
    assert result["weight_sparsity"] == pytest.approx(chosen["sparsity"], abs=1e-12)


def test_defaults_result_files_and_tables(default_run):
    out, result = default_run
    n = len(data.load("digits").y_train)
    assert result["steps"] == result["epochs"] * math.ceil(n / 32)
    arch = result["architecture"]
    assert arch["layers"] == ["fc1", "fc2", "fc3", "fc4", "out"]
    assert arch["before"] == [64, 1000, 1000, 500, 200]  # input features of each dense layer
    assert result["pruned_layers"] == ["fc1.w", "fc2.w", "fc3.w", "fc4.w"]
    for name in ("result.json", "metrics.csv", "sweep.csv", "plot.png", "checkpoint.npz"):
        assert os.path.getsize(out / name) > 0, name
    with open(out / "result.json") as f:
        assert json.load(f)["curves"] == result["curves"]
    with open(out / "sweep.csv") as f:
        sweep = list(csv.DictReader(f))
    assert list(sweep[0]) == ["criterion", "amount", "sparsity", "val_accuracy", "test_accuracy"]
    assert len(sweep) == 2 * len(magnitude.AMOUNTS)
    assert [float(r["test_accuracy"]) for r in sweep if r["criterion"] == "unit"] == \
        [acc for _, _, acc in result["curves"]["unit"]]
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == list(range(1, result["epochs"] + 1))
    # the measured sparsity: the pruned weights of fc1..fc4 (floor counts per layer) over every weight,
    # the output layer's included (the model's weight sparsity, as every method reports it)
    sizes = [64 * 1000, 1000 * 1000, 1000 * 500, 500 * 200]
    units = [1000, 1000, 500, 200]  # output units of fc1..fc4
    total = sum(sizes) + 200 * 10
    for criterion in ("weight", "unit"):
        for amount, sp, _ in result["curves"][criterion]:
            if criterion == "weight":
                pruned = sum(math.floor(amount * n) for n in sizes)
            else:
                pruned = sum(math.floor(amount * u) * (n // u) for n, u in zip(sizes, units))
            assert sp == pytest.approx(pruned / total, abs=1e-12), (criterion, amount)


def test_defaults_checkpoint_is_the_dense_model_and_reproduces_the_choice(default_run):
    out, result = default_run
    eng = engine.Engine(methods.make_spec("magnitude", resume=str(out), threads=1, quiet=True))
    ds = eng.dataset
    model = eng.track(build_model(result["model"], input_shape=ds.input_shape, num_classes=ds.num_classes,
                                  backend=eng.backend, rng=eng.rng))
    assert not model.masks() and eng.evaluate(model, "test")[1] == result["dense_accuracy"]
    chosen = result["chosen"]
    model.set_masks(magnitude.prune(model, chosen["criterion"], chosen["amount"]))
    assert eng.evaluate(model, "test")[1] == result["test_accuracy"]
    summary = measures.summary(model)
    assert summary["weight_sparsity"] == result["weight_sparsity"]
    assert summary["architecture"] == result["architecture"]


# ---------------------------------------------------------------------- (b) the paper presets, tiny


@pytest.mark.slow
def test_conv4_on_synthetic_prunes_output_channels(tmp_path):
    result = methods.run("magnitude", data="synthetic", model="conv4", epochs=1, batch_size=8, subset=16,
                         amounts="0,0.5,1", out=str(tmp_path), quiet=True, threads=1)
    assert result["pruned_layers"] == ["conv1.w", "conv2.w", "conv3.w", "conv4.w", "fc1.w", "fc2.w"]
    arch = result["architecture"]
    assert arch["layers"] == ["conv1", "conv2", "conv3", "conv4", "fc1", "fc2", "out"]
    assert arch["before"] == [64, 64, 128, 128, 128 * 7 * 7, 256, 256]  # channels; then input features
    assert result["steps"] == 2
    pruned = 64 * 9 + 64 * 64 * 9 + 64 * 128 * 9 + 128 * 128 * 9 + 128 * 49 * 256 + 256 * 256  # all but out
    total = pruned + 256 * 10
    for criterion in ("weight", "unit"):
        sparsities = [sp for _, sp, _ in result["curves"][criterion]]
        assert sparsities == pytest.approx([0.0, 0.5 * pruned / total, pruned / total], abs=1e-3)
    # everything pruned but the output layer: the logits are the output bias (0) for every input
    assert result["curves"]["weight"][-1][2] == result["curves"]["unit"][-1][2]
    assert (tmp_path / "plot.png").exists()


def _tiny(backend, out):
    return methods.run("magnitude", data="digits", model="mlp-300-100", backend=backend, dtype="float64",
                       epochs=1, batch_size=16, subset=48, amounts=[0.0, 0.5, 0.9], out=str(out), quiet=True,
                       threads=1)


def test_torch_follows_numpy(tmp_path):
    if backends.unavailable_reason("torch") is not None:
        pytest.skip(f"torch: {backends.unavailable_reason('torch')}")
    a = _tiny("numpy", tmp_path / "np")
    b = _tiny("torch", tmp_path / "torch")
    assert b["backend"] == "torch"
    assert a["curves"] == b["curves"]  # same reference stream, float64: same masks, same predictions
    assert a["chosen"] == b["chosen"] and a["architecture"] == b["architecture"]


def test_help_teaches_the_method(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["run", "magnitude", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "k = floor(a n)" in text and "unit pruning" in text.lower()


# ---------------------------------------------------------------------- (c) the method's pieces


def test_prune_masks_every_layer_but_the_output(backend):
    b = backend
    model = build_model("mlp-300-100", input_shape=(10,), num_classes=3, backend=b, rng=b.rng(0), dtype="float64")
    params = {k: b.to_numpy(v) for k, v in model.params().items()}
    masks = {k: b.to_numpy(v) for k, v in magnitude.prune(model, "weight", 0.37).items()}
    assert list(masks) == ["fc1.w", "fc2.w"]
    for name, mask in masks.items():
        n = params[name].size
        assert (~mask).sum() == math.floor(0.37 * n)  # the notebook's int(), not half-even
        assert np.abs(params[name][~mask]).max() <= np.abs(params[name][mask]).min()
    ceil = magnitude.prune(model, "weight", 0.37, rounding="ceil")
    assert (~b.to_numpy(ceil["fc1.w"])).sum() == math.ceil(0.37 * params["fc1.w"].size)
    units = {k: b.to_numpy(v) for k, v in magnitude.prune(model, "unit", 0.5).items()}
    assert units["fc1.w"].all(axis=0).sum() == 150 and (~units["fc1.w"]).all(axis=0).sum() == 150  # columns
    with pytest.raises(ValueError, match="unknown criterion 'channel'; choose one of weight, unit"):
        magnitude.prune(model, "channel", 0.5)


def test_bad_options_are_value_errors(tmp_path):
    assert magnitude.parse_amounts("0, .5,0.99") == (0.0, 0.5, 0.99)
    assert magnitude.parse_amounts([0, 1]) == (0.0, 1.0)
    for bad in ("0,1.5", "", "a,b", [-0.1]):
        with pytest.raises(ValueError, match="amounts"):
            magnitude.parse_amounts(bad)
    assert magnitude.parse_criteria("unit, weight") == ("unit", "weight")
    with pytest.raises(ValueError, match="weight, unit"):
        magnitude.parse_criteria("weight,channel")
    with pytest.raises(ValueError, match="criteria.*channel"):
        methods.make_spec("magnitude", criteria="channel")
    with pytest.raises(ValueError, match="tolerance"):
        methods.make_spec("magnitude", tolerance=2.0)
