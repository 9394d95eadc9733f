"""The oneshot method: a trained run pruned layer by layer from calibration inputs (exact counts, N:M, errors, resume)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from refprune import cli, data, io, methods
from refprune.calibration import Calibration, weight_matrix
from refprune.masks import prune_count
from refprune.methods import oneshot as method
from refprune.oneshot import hessian, reconstruction_error

SETTINGS = {"data": "digits", "subset": 300, "quiet": True, "threads": 1, "dtype": "float64"}
SHAPES = {"fc1.w": (300, 64), "fc2.w": (100, 300)}  # (out, in)


@pytest.fixture(scope="module")
def dense(tmp_path_factory):
    """A LeNet-300-100 trained dense on digits (the magnitude method with no pruning: amount 0)."""
    out = tmp_path_factory.mktemp("dense")
    methods.run("magnitude", model="mlp-300-100", epochs=3, amounts="0", criteria="weight", out=str(out),
                overwrite=True, **SETTINGS)
    return out


def _prune(tmp_path, dense, name="run", **options):
    return methods.run("oneshot", init_from=str(dense), out=str(tmp_path / name), **SETTINGS, **options)


def _final(result):
    """``(params, masks)`` of the run's final network, ``(out, in)`` matrices for the weights."""
    model = io.load_model(result["out"])
    masks = model.masks()
    return ({k: np.asarray(weight_matrix(model, k)) for k in SHAPES},
            {k: np.asarray(masks[k]).T for k in SHAPES})


def _expected_pruned(criterion, amount, out, inp, block=128):
    if criterion == "magnitude":  # one ranking over the layer
        return prune_count(amount, out * inp)
    if criterion == "sparsegpt":  # exact per column block
        return sum(prune_count(amount, out * min(block, inp - s)) for s in range(0, inp, block))
    return out * prune_count(amount, inp)  # wanda, ria, obc: per output row


@pytest.mark.parametrize("criterion", ["magnitude", "wanda", "ria", "sparsegpt"])
def test_each_criterion_prunes_exactly_the_asked_count(criterion, dense, tmp_path):
    r = _prune(tmp_path, dense, criterion=criterion, sparsity=0.3)
    params, masks = _final(r)
    for row in r["layers"]:
        name, (out, inp) = row["weight"], SHAPES[row["weight"]]
        expected = _expected_pruned(criterion, 0.3, out, inp)
        assert row["pruned"] == expected == int((~masks[name]).sum()), name
        assert np.all(params[name][~masks[name]] == 0), "pruned weights are zero in the saved network"
    assert [row["weight"] for row in r["layers"]] == ["fc1.w", "fc2.w"]  # the output layer is not pruned
    assert r["before"]["test_accuracy"] > 0.5 and set(r["after"]) == {"test_loss", "test_accuracy"}
    assert r["reconstruction_error"] == {row["weight"]: row["reconstruction_error"] for row in r["layers"]}
    assert r["prune_seconds"] > 0 and r["calibration"] == {"examples": 128, "seed": 0,
                                                           "tokens": {"fc1.w": 128, "fc2.w": 128}}
    with open(tmp_path / "run" / "result.json") as f:
        assert json.load(f)["layers"] == r["layers"]


def test_obc_prunes_exactly_the_asked_count_per_row(rng):
    w, x = rng.normal(size=(12, 16)), rng.normal(size=(40, 16))
    w_hat, mask = method.prune_matrix(w, x, criterion="obc", amount=0.3)
    assert (~mask).sum(axis=1).tolist() == [prune_count(0.3, 16)] * 12 and np.all(w_hat[~mask] == 0)
    assert reconstruction_error(w, w_hat, hessian(x)) <= reconstruction_error(w, np.where(mask, w, 0), hessian(x))


@pytest.mark.parametrize("criterion", ["magnitude", "wanda", "ria", "sparsegpt"])
def test_a_pattern_leaves_no_nm_violation(criterion, dense, tmp_path):
    r = _prune(tmp_path, dense, criterion=criterion, pattern="2:4")
    _, masks = _final(r)
    for name, mask in masks.items():
        kept = mask.reshape(mask.shape[0], -1, 4).sum(axis=-1)
        assert np.all(kept == 2), f"{name}: groups keeping {sorted(set(kept.ravel().tolist()))} of 4"
    assert r["pattern"] == "2:4" and r["target_sparsity"] == 0.5


def test_sparsegpt_reconstructs_each_layer_at_least_as_well_as_magnitude(dense):
    """On the same inputs, layer by layer: SparseGPT's error <= magnitude's (unstructured and 2:4)."""
    model = io.load_model(dense)
    ds = data.subset(data.load("digits"), 300)
    cal = Calibration(model, [ds.x_train[:128].astype(np.float64)])
    for unit in range(len(cal.units)):
        for name, inputs in cal.inputs(unit).items():
            w, h = weight_matrix(model, name), hessian(inputs)
            for pattern in ({"amount": 0.5}, {"n": 2, "m": 4}):
                errors = {c: float(reconstruction_error(w, method.prune_matrix(w, inputs, criterion=c, **pattern)[0],
                                                        h)) for c in ("magnitude", "sparsegpt")}
                assert errors["sparsegpt"] <= errors["magnitude"], (name, pattern, errors)


def test_interrupted_then_resumed_equals_straight_through(dense, tmp_path, monkeypatch):
    straight = _prune(tmp_path, dense, "straight", criterion="sparsegpt", sparsity=0.6)
    real, calls = method.prune_unit, []

    def interrupted(model, calibration, unit, **kw):
        calls.append(unit)
        if unit == 1 and len(calls) == 2:
            raise KeyboardInterrupt
        return real(model, calibration, unit, **kw)

    monkeypatch.setattr(method, "prune_unit", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _prune(tmp_path, dense, "resumed", criterion="sparsegpt", sparsity=0.6)
    resumed = methods.run("oneshot", resume=str(tmp_path / "resumed"), init_from=str(dense), **SETTINGS,
                          criterion="sparsegpt", sparsity=0.6)
    assert calls == [0, 1, 1], "the resumed run prunes only the layer not done"
    (p1, m1), (p2, m2) = _final(straight), _final(resumed)
    for k in SHAPES:
        np.testing.assert_array_equal(p1[k], p2[k], err_msg=k)
        np.testing.assert_array_equal(m1[k], m2[k], err_msg=k)
    drop = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert drop(resumed["layers"]) == drop(straight["layers"])
    assert resumed["before"] == straight["before"] and resumed["after"] == straight["after"]


def test_every_backend_prunes_as_numpy(backend, dense, tmp_path):
    for criterion, options in (("wanda", {"sparsity": 0.5}), ("sparsegpt", {"pattern": "2:4"})):
        r = _prune(tmp_path, dense, f"{backend.name}-{criterion}", criterion=criterion, backend=backend.name,
                   **options)
        reference = _prune(tmp_path, dense, f"reference-{criterion}", criterion=criterion, **options)
        (p, m), (p_ref, m_ref) = _final(r), _final(reference)
        for k in SHAPES:
            np.testing.assert_array_equal(m[k], m_ref[k], err_msg=f"{criterion} {k}")
            np.testing.assert_allclose(p[k], p_ref[k], rtol=1e-9, atol=1e-12, err_msg=f"{criterion} {k}")
        assert r["after"]["test_accuracy"] == reference["after"]["test_accuracy"]
        assert r["after"]["test_loss"] == pytest.approx(reference["after"]["test_loss"], rel=1e-9)


def test_owl_splits_the_sparsity_by_outliers_keeping_the_average(dense, tmp_path):
    r = _prune(tmp_path, dense, criterion="wanda", sparsity=0.5, distribution="owl")
    sizes = {k: o * i for k, (o, i) in SHAPES.items()}
    per_layer = r["layer_sparsities"]
    assert per_layer["fc1.w"] != per_layer["fc2.w"]
    assert max(per_layer.values()) - min(per_layer.values()) <= 2 * 0.08 + 1e-12
    assert sum(per_layer[k] * sizes[k] for k in sizes) / sum(sizes.values()) == pytest.approx(0.5, abs=1e-12)
    for row in r["layers"]:
        out, inp = SHAPES[row["weight"]]
        assert row["pruned"] == out * prune_count(per_layer[row["weight"]], inp)


def test_a_conv_network_is_pruned_through_its_unfolded_inputs(tmp_path):
    dense = tmp_path / "lenet"
    methods.run("magnitude", model="lenet5", epochs=1, amounts="0", criteria="weight", out=str(dense), **SETTINGS)
    runs = {c: _prune(tmp_path, dense, c, criterion=c, sparsity=0.5) for c in ("magnitude", "sparsegpt")}
    rows = {c: {row["weight"]: row for row in r["layers"]} for c, r in runs.items()}
    assert list(rows["sparsegpt"]) == ["conv1.w", "conv2.w", "fc1.w"]
    assert rows["sparsegpt"]["conv2.w"]["shape"] == [50, 20 * 25] and rows["sparsegpt"]["conv1.w"]["tokens"] == 128 * 64
    assert all(row["sparsity"] == 0.5 for row in rows["sparsegpt"].values())
    first = "conv1.w"  # the same inputs (the data) under both criteria
    assert rows["sparsegpt"][first]["reconstruction_error"] <= rows["magnitude"][first]["reconstruction_error"]


def test_without_init_from_it_trains_the_network_first(tmp_path):
    r = methods.run("oneshot", epochs=2, out=str(tmp_path / "run"), criterion="wanda", **SETTINGS)
    assert r["steps"] > 0 and r["model"] == "mlp-300-100" and r["epochs"] == 2
    assert r["before"]["test_accuracy"] > 0.5 and len(r["layers"]) == 2


def test_bad_settings_are_one_clear_error(dense, tmp_path):
    with pytest.raises(ValueError, match="N:M with 0 <= N <= M"):
        _prune(tmp_path, dense, pattern="3:2")
    with pytest.raises(ValueError, match="obc prunes unstructured only"):
        _prune(tmp_path, dense, "obc", criterion="obc", pattern="2:4")
    with pytest.raises(ValueError, match="--distribution owl gives each layer its own sparsity"):
        _prune(tmp_path, dense, "owl", pattern="2:4", distribution="owl")
    with pytest.raises(ValueError, match="holds a mlp-300-100 network"):
        _prune(tmp_path, dense, "model", model="lenet5")
    with pytest.raises(ValueError, match="pass the --data the network was trained on"):
        methods.run("oneshot", init_from=str(dense), out=str(tmp_path / "data"), **{**SETTINGS, "data": "stdlib"})
    lenet = tmp_path / "lenet"
    methods.run("magnitude", model="lenet5", epochs=0, amounts="0", criteria="weight", out=str(lenet), **SETTINGS)
    with pytest.raises(ValueError, match="conv1.w has 25 inputs per output, not a multiple of 4"):
        _prune(tmp_path, lenet, "nm", pattern="2:4")


def test_the_command_line(dense, tmp_path, capsys):
    out = tmp_path / "cli"
    code = cli.main(["run", "oneshot", "--init-from", str(dense), "--criterion", "sparsegpt", "--pattern", "2:4",
                     "--data", "digits", "--subset", "300", "--dtype", "float64", "--quiet", "--out", str(out)])
    assert code == 0 and "oneshot: test accuracy" in capsys.readouterr().out
    assert json.loads((out / "result.json").read_text())["pattern"] == "2:4"
    with pytest.raises(SystemExit) as info:
        cli.main(["run", "oneshot", "--pattern", "2-4"])
    assert info.value.code == 2 and "N:M" in capsys.readouterr().err


def test_a_small_language_model_is_pruned_block_by_block(tmp_path):
    """gpt-tiny on stdlib: every block linear pruned (2:4 here), bits per byte before and after."""
    lm = {"data": "stdlib", "subset": 96, "quiet": True, "threads": 1}
    dense = tmp_path / "dense"
    methods.run("dense", model="gpt-tiny", width=32, blocks=2, heads=2, epochs=1, out=str(dense), **lm)
    r = methods.run("oneshot", init_from=str(dense), criterion="sparsegpt", pattern="2:4", calibration=16,
                    out=str(tmp_path / "pruned"), **lm)
    widths = {"qkv": (96, 32), "proj": (32, 32), "fc": (128, 32), "fc2": (32, 128)}  # (out, in)
    assert [row["weight"] for row in r["layers"]] == [f"h{i}_{k}.w" for i in range(2) for k in widths]
    assert all(row["tokens"] == 16 * 64 for row in r["layers"])
    model = io.load_model(r["out"])
    for row in r["layers"]:
        mask = np.asarray(model.masks()[row["weight"]]).T
        assert tuple(mask.shape) == widths[row["weight"].split("_")[1][:-2]]
        assert np.all(mask.reshape(mask.shape[0], -1, 4).sum(axis=-1) == 2), row["weight"]
    for when in ("before", "after"):
        assert r[when]["test_bits_per_byte"] == pytest.approx(r[when]["test_loss"] / np.log(2))
    assert np.isfinite(r["after"]["test_bits_per_byte"]) and r["after"] != r["before"]
