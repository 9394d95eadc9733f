"""The v1 criteria and budgets through the registry: N:M and block criteria, ERK splits, in magnitude and lottery."""

from __future__ import annotations

import numpy as np
import pytest

from refprune import criteria, io, methods

SMALL = {"data": "digits", "subset": 120, "batch_size": 40, "epochs": 2, "quiet": True, "threads": 1}


def _masks(out):
    ckpt = io.load_checkpoint(out / "checkpoint.npz")
    return {k.split("/", 1)[1]: v for k, v in ckpt.masks.items() if k.startswith("model/")}


def test_nm_and_block_criteria_by_name(backend):
    w = backend.asarray(np.arange(1.0, 49.0).reshape(8, 6))
    keep = backend.to_numpy(criteria.get("2:4")(w, amount=None))
    assert (keep.reshape(2, 4, 6).sum(axis=1) == 2).all()  # dense (in, out): groups along the inputs
    assert keep[2:4].all() and not keep[:2].any()  # the larger two of each group of four
    tiles = backend.to_numpy(criteria.get("block:4x3")(w, amount=2))
    assert tiles[4:].all() and not tiles[:4].any()  # two of four 4x3 tiles pruned: the top ones, smallest l1
    conv = backend.asarray(np.ones((4, 4, 3, 3)))
    assert backend.to_numpy(criteria.get("block:2x2:max")(conv, amount=0.5)).reshape(2, 2, 2, 2, 9).std(
        axis=(1, 3, 4)).max() == 0  # a conv tile spans whole kernels
    with pytest.raises(ValueError, match=r"N:M \(e\.g\. 2:4\)"):
        criteria.get("2-4")


def test_magnitude_sweeps_the_new_criteria_with_an_erk_split(tmp_path):
    out = tmp_path / "run"
    r = methods.run("magnitude", model="mlp-300-100", criteria="weight,2:4,block:4x4", distribution="erk",
                    amounts="0.5,0.8", out=str(out), **SMALL)
    assert set(r["curves"]) == {"weight", "2:4", "block:4x4"}
    nm = r["curves"]["2:4"]
    assert all(p[1] == pytest.approx(nm[0][1]) for p in nm)  # N:M fixes the sparsity: half of the pruned layers
    weight = dict((p[0], p[1]) for p in r["curves"]["weight"])
    uniform = methods.run("magnitude", model="mlp-300-100", criteria="weight", amounts="0.5,0.8",
                          out=str(tmp_path / "uniform"), **SMALL)
    assert weight[0.8] == pytest.approx(dict((p[0], p[1]) for p in uniform["curves"]["weight"])[0.8], abs=0.02)
    masks = _masks(out)  # the checkpoint holds the trained dense model, unmasked
    assert masks == {}


@pytest.mark.parametrize("criterion,distribution", [("2:4", "layerwise"), ("block:4x4", "erk"), ("weight", "er")])
def test_lottery_takes_the_new_criteria_and_distributions(criterion, distribution, tmp_path):
    out = tmp_path / "run"
    r = methods.run("lottery", model="mlp-300-100", rounds=2, criterion=criterion, distribution=distribution,
                    out=str(out), **SMALL)
    assert r["criterion"] == criterion and r["distribution"] == distribution
    masks = _masks(out)
    assert set(masks) == {"fc1.w", "fc2.w", "out.w"}
    if criterion == "2:4":
        for name, m in masks.items():
            assert (m.reshape(-1, 4, m.shape[1]).sum(axis=1) == 2).all(), name
        assert r["rounds"][-1]["sparsity"] == pytest.approx(0.5)
    elif criterion.startswith("block"):
        for name, m in masks.items():
            rows, cols = m.shape
            tiles = m[: rows - rows % 4, : cols - cols % 4].reshape(rows // 4, 4, cols // 4, 4)
            assert (tiles.min(axis=(1, 3)) == tiles.max(axis=(1, 3))).all(), name  # whole tiles
    sparsities = [t["sparsity"] for t in r["rounds"]]
    assert sparsities == sorted(sparsities)
    if distribution == "er":  # the small output layer keeps more than the big first layer
        assert masks["out.w"].mean() > masks["fc1.w"].mean()


def test_global_ranking_does_not_take_a_distribution(tmp_path):
    with pytest.raises(ValueError, match="--global ranks all layers together"):
        methods.run("lottery", global_pruning=True, distribution="erk", out=str(tmp_path / "r"), **SMALL)
