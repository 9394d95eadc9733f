"""The lottery method: iterative magnitude pruning with rewinding, end to end and piece by piece.

What every method shares (a short run on every backend, resume, the NaN guard) is in
``test_methods_contract.py``; early stopping in ``test_engine.py``.
"""

from __future__ import annotations

import collections
import csv
import json
import math
import os

import numpy as np
import pytest

from refprune import backends, cli, data, imp_sparsity, io, methods, prune_count
from refprune.methods import lottery
from refprune.nn import build_model

# ---------------------------------------------------------------------- (a) defaults on digits


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("lottery-digits")
    return out, methods.run("lottery", data="digits", seed=0, threads=1, out=str(out), quiet=True)


def test_defaults_on_digits_meet_the_quality_bar(default_run):
    _, result = default_run
    rounds = result["rounds"]
    assert result["model"] == "mlp-300-100"
    assert len(rounds) == 11  # round 0 (dense) and 10 pruning rounds
    sparsity = [r["sparsity"] for r in rounds]
    assert sparsity[0] == 0.0 and all(b > a for a, b in zip(sparsity, sparsity[1:]))
    assert sparsity[-1] >= 0.85
    dense = rounds[0]["test_accuracy"]
    assert dense >= 0.95 and result["dense_accuracy"] == dense
    assert abs(rounds[-1]["test_accuracy"] - dense) <= 0.03
    assert result["test_accuracy"] == rounds[-1]["test_accuracy"]
    assert result["weight_sparsity"] == sparsity[-1]  # the last ticket is the reported model


def test_defaults_rounds_controls_and_files(default_run):
    out, result = default_run
    rounds, controls = result["rounds"], result["random_reinit"]
    assert [r["round"] for r in rounds] == list(range(11))
    # the control uses the same masks: same sparsity, round by round
    assert [c["round"] for c in controls] == list(range(1, 11))
    assert [c["sparsity"] for c in controls] == [r["sparsity"] for r in rounds[1:]]
    assert [c["weights_remaining"] for c in controls] == [r["weights_remaining"] for r in rounds[1:]]
    sizes = [64 * 300, 300 * 100, 100 * 10]
    assert rounds[0]["weights_remaining"] == sizes
    for r in rounds + controls:
        assert 1 <= r["best_epoch"] <= r["epochs_run"] <= result["epochs"]
        assert r["epochs_run"] == result["epochs"] or r["epochs_run"] == r["best_epoch"] + 3  # patience 3
        # the schedule 1 - (1 - p)^r per layer kind (fc 0.2, output 0.1), up to the rounding of the counts
        assert r["sparsity"] == pytest.approx(r["expected_sparsity"], abs=1e-4)
        assert r["weights_remaining"] == [n - prune_count(imp_sparsity(r["round"], rate=p), n)
                                          for n, p in zip(sizes, (0.2, 0.2, 0.1))]
    assert list(result["nonzero_weights"].values()) == rounds[-1]["weights_remaining"]
    arch = result["architecture"]
    assert arch["layers"] == ["fc1", "fc2", "out"] and arch["before"] == [64, 300, 100]
    n = len(data.load("digits").y_train)
    epochs = sum(r["epochs_run"] for r in rounds + controls)
    assert result["steps"] == epochs * math.ceil(n / 60)  # every phase's steps, the controls' too
    for name in ("result.json", "metrics.csv", "rounds.csv", "plot.png", "checkpoint.npz"):
        assert os.path.getsize(out / name) > 0, name
    with open(out / "result.json") as f:
        assert json.load(f)["rounds"] == rounds
    with open(out / "rounds.csv") as f:
        table = list(csv.DictReader(f))
    assert [int(row["round"]) for row in table] == list(range(11))
    assert table[0]["control_test_accuracy"] == "" and float(table[3]["control_test_accuracy"]) == \
        controls[2]["test_accuracy"]
    with open(out / "metrics.csv") as f:
        per_phase = collections.Counter(row["phase"] for row in csv.DictReader(f))
    expected = {f"round {r['round']}": r["epochs_run"] for r in rounds}
    expected.update({f"round {c['round']} control": c["epochs_run"] for c in controls})
    assert per_phase == expected


def test_defaults_checkpoint_holds_the_ticket_and_the_rewind_weights(default_run):
    out, result = default_run
    ckpt = io.load_checkpoint(out / "checkpoint.npz")
    names = ["fc1.w", "fc2.w", "out.w"]
    assert [int(ckpt.masks[f"model/{n}"].sum()) for n in names] == result["rounds"][-1]["weights_remaining"]
    # the last phase was round 10's control: it trained with the ticket's masks
    assert ckpt.config["engine"]["position"]["phase"] == "round 10 control"
    for n in names:
        np.testing.assert_array_equal(ckpt.masks[f"active/{n}"], ckpt.masks[f"model/{n}"])
    # rewinding goes to the initial weights theta_0: those of the run's generator (seed 0)
    b = backends.get("numpy")
    initial = build_model("mlp-300-100", input_shape=(1, 8, 8), num_classes=10, backend=b,
                          rng=b.rng(0, stream="reference")).params()
    assert set(ckpt.extra["rewind"]) == set(initial)
    for k, v in initial.items():
        np.testing.assert_array_equal(ckpt.extra["rewind"][k], v, err_msg=k)
    assert ckpt.config["extra"]["tickets"] == result["rounds"]


# ---------------------------------------------------------------------- (b) the paper presets, tiny


def _tiny(out, **kw):
    options = dict(data="synthetic", model="conv4", epochs=1, batch_size=8, subset=16, rounds=2,
                   out=str(out), quiet=True, threads=1)
    options.update(kw)
    return methods.run("lottery", **options)


@pytest.mark.slow
def test_conv4_layerwise_rates_per_layer_kind(tmp_path):
    result = _tiny(tmp_path, control=False)
    assert list(result["nonzero_weights"]) == ["conv1.w", "conv2.w", "conv3.w", "conv4.w", "fc1.w", "fc2.w", "out.w"]
    sizes = result["rounds"][0]["weights_remaining"]
    rates = [0.1] * 4 + [0.2] * 2 + [0.1]  # Frankle & Carbin's Conv-4: conv 10%, fc 20%, output 10%
    for r in result["rounds"]:
        expected = [n - prune_count(imp_sparsity(r["round"], rate=p), n) for n, p in zip(sizes, rates)]
        assert r["weights_remaining"] == expected
    assert result["random_reinit"] == []
    assert (tmp_path / "plot.png").exists()


@pytest.mark.slow
def test_conv4_global_rate_and_control(tmp_path):
    result = _tiny(tmp_path, rounds=1, global_pruning=True, global_rate=0.3)
    before = result["rounds"][0]["weights_remaining"]
    left = result["rounds"][1]["weights_remaining"]
    assert sum(before) - sum(left) == prune_count(0.3, sum(before))
    fractions = [a / b for a, b in zip(left, before)]
    assert max(fractions) - min(fractions) > 0.01  # one budget, not one rate per layer
    assert result["pruning"] == {"global_rate": 0.3}
    assert [c["sparsity"] for c in result["random_reinit"]] == [result["rounds"][1]["sparsity"]]


def test_unit_criterion_prunes_whole_units(tmp_path):
    result = _tiny(tmp_path, data="digits", model="mlp-300-100", rounds=1, control=False, criterion="unit",
                   dense_rate=0.5, output_rate=0.5)
    assert result["criterion"] == "unit"
    ckpt = io.load_checkpoint(tmp_path / "checkpoint.npz")
    for name, units in (("fc1.w", 300), ("fc2.w", 100), ("out.w", 10)):
        mask = ckpt.masks[f"model/{name}"]
        columns = mask.all(axis=0)
        assert (columns | ~mask.any(axis=0)).all(), name  # every column kept or pruned whole
        assert (~columns).sum() == prune_count(0.5, units), name
    with pytest.raises(ValueError, match="no global version"):
        _tiny(tmp_path / "g", data="digits", model="mlp-300-100", rounds=1, control=False, criterion="unit",
              global_pruning=True)


def test_rewind_step(tmp_path):
    kw = dict(data="digits", model="mlp-300-100", rounds=1, control=False)
    result = _tiny(tmp_path, rewind_step=1, **kw)
    assert len(result["rounds"]) == 2
    # the rewind weights are those after one step of the dense training: not the initial ones
    ckpt = io.load_checkpoint(tmp_path / "checkpoint.npz")
    b = backends.get("numpy")
    initial = build_model("mlp-300-100", input_shape=(1, 8, 8), num_classes=10, backend=b,
                          rng=b.rng(0, stream="reference")).params()
    assert not np.array_equal(ckpt.extra["rewind"]["fc1.w"], initial["fc1.w"])
    with pytest.raises(ValueError, match="rewind_step=5 is beyond the 2 steps"):
        _tiny(tmp_path / "b", rewind_step=5, **kw)


@pytest.mark.slow
def test_torch_follows_numpy(tmp_path):
    if backends.unavailable_reason("torch") is not None:
        pytest.skip(f"torch: {backends.unavailable_reason('torch')}")
    kw = dict(data="digits", model="mlp-300-100", dtype="float64", epochs=2, subset=32, batch_size=16, rounds=1)
    a = _tiny(tmp_path / "np", backend="numpy", **kw)
    b = _tiny(tmp_path / "torch", backend="torch", **kw)
    assert b["backend"] == "torch"
    for x, y in zip(a["rounds"] + a["random_reinit"], b["rounds"] + b["random_reinit"]):
        assert x["weights_remaining"] == y["weights_remaining"]
        assert x["test_accuracy"] == y["test_accuracy"] and x["best_epoch"] == y["best_epoch"]
        assert x["best_val_loss"] == pytest.approx(y["best_val_loss"], rel=1e-9)


def test_help_teaches_the_method(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["run", "lottery", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "rewind" in text and "Frankle" in text


# ---------------------------------------------------------------------- (c) the method's math


def test_next_masks_by_hand(backend):
    w = backend.asarray(np.asarray([0.5, -0.1, 0.3, 0.2, -0.4]), dtype="float64")
    # round 1 at rate 0.4: imp_sparsity = 0.4 of 5 -> the 2 smallest |w| (0.1, 0.2)
    m1 = lottery.next_masks({"a": w}, {}, 1, rates={"a": 0.4})["a"]
    np.testing.assert_array_equal(backend.to_numpy(m1), [True, False, True, False, True])
    # round 2: 1 - 0.6^2 = 0.64 of 5 -> 3 pruned: the 2 before and the smallest survivor (0.3), even
    # though the raw values at the pruned places are now the largest (only survivors are ranked)
    w2 = backend.asarray(np.asarray([0.5, 9.0, 0.3, 8.0, -0.4]), dtype="float64")
    m2 = lottery.next_masks({"a": w2}, {"a": m1}, 2, rates={"a": 0.4})["a"]
    np.testing.assert_array_equal(backend.to_numpy(m2), [True, False, False, False, True])


def test_next_masks_nested_and_counted(backend):
    xp = backend.xp
    rng = np.random.default_rng(3)
    ws = {"a": backend.asarray(rng.normal(size=(30, 20))), "b": backend.asarray(rng.normal(size=(20, 5)))}
    rates = {"a": 0.2, "b": 0.1}
    masks, prev = {}, None
    for r in range(1, 6):
        masked = {k: xp.where(masks[k], v, xp.zeros_like(v)) if masks else v for k, v in ws.items()}
        masks = lottery.next_masks(masked, masks, r, rates=rates)
        host = {k: backend.to_numpy(v) for k, v in masks.items()}
        for k in ws:
            n = host[k].size
            assert (~host[k]).sum() == prune_count(imp_sparsity(r, rate=rates[k]), n)
            if prev is not None:
                assert not (host[k] & ~prev[k]).any()  # nested: nothing comes back
        prev = host
    # global: one budget over both, the smallest magnitudes over both arrays
    g = lottery.next_masks(ws, {}, 1, global_rate=0.5)
    kept = np.concatenate([backend.to_numpy(g[k]).ravel() for k in ws])
    mags = np.concatenate([np.abs(backend.to_numpy(ws[k])).ravel() for k in ws])
    assert (~kept).sum() == 350 and mags[~kept].max() < mags[kept].min()
    # and nested across global rounds too
    g2 = lottery.next_masks(ws, g, 2, global_rate=0.5)
    kept2 = np.concatenate([backend.to_numpy(g2[k]).ravel() for k in ws])
    assert (~kept2).sum() == prune_count(0.75, 700) and not (kept2 & ~kept).any()


def test_layer_rates_and_schedule():
    b = backends.get("numpy")
    model = build_model("conv4", input_shape=(1, 8, 8), num_classes=10, backend=b, rng=b.rng(0))
    rates = lottery.layer_rates(model, conv_rate=0.1, dense_rate=0.2, output_rate=0.05)
    assert rates == {"conv1.w": 0.1, "conv2.w": 0.1, "conv3.w": 0.1, "conv4.w": 0.1, "fc1.w": 0.2,
                     "fc2.w": 0.2, "out.w": 0.05}
    sizes = {"x": 100, "y": 300}
    s = lottery.expected_sparsity(sizes, 2, rates={"x": 0.5, "y": 0.1})
    assert s == pytest.approx((100 * 0.75 + 300 * 0.19) / 400)
    assert lottery.expected_sparsity(sizes, 3, global_rate=0.2) == pytest.approx(1 - 0.8**3)
    with pytest.raises(ValueError, match="dense_rate"):
        lottery.layer_rates(model, conv_rate=0.1, dense_rate=1.5, output_rate=0.1)
    with pytest.raises(ValueError, match="criterion.*choose one of weight, unit"):
        methods.make_spec("lottery", criterion="saliency")
