"""Per-layer budgets: uniform, ERK and ER densities that meet the global budget exactly.

``rigl_like`` below re-states RigL's ``get_sparsities_erdos_renyi`` loop in plain
Python (densify the layers with the largest raw probability one group at a time and
solve again), with either RigL's integer budget (``N - floor(sparsity * N)`` per
layer) or refprune's real one (``density * total``); refprune densifies every layer
above 1 at once, and the tests show both end in the same place.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import refprune as rp

RESNETISH = [(64, 3, 7, 7), (64, 64, 3, 3), (128, 64, 3, 3), (128, 128, 3, 3), (256, 128, 3, 3), (512, 256, 3, 3),
             (512, 512, 3, 3), (512, 10)]
MLP = [(784, 300), (300, 100), (100, 10)]


def rigl_like(shapes, density, *, kind="erk", power_scale=1.0, integer_budget=False):
    """RigL's loop: eps = rhs / divisor; densify the max-raw layers while eps * max_raw > 1."""
    sparsity = 1.0 - density
    counts = [math.prod(s) for s in shapes]
    raw = []
    for s in shapes:
        dims = s if kind == "erk" else s[:2]
        raw.append((sum(dims) / math.prod(dims)) ** (power_scale if kind == "erk" else 1.0))
    dense = set()
    while True:
        rhs, divisor = 0.0, 0.0
        for i, n in enumerate(counts):
            zeros = math.floor(sparsity * n) if integer_budget else sparsity * n
            if i in dense:
                rhs -= zeros
            else:
                rhs += n - zeros
                divisor += raw[i] * n
        eps = rhs / divisor
        live = [i for i in range(len(counts)) if i not in dense]
        top = max(raw[i] for i in live)
        if eps * top > 1:
            dense |= {i for i in live if raw[i] == top}
        else:
            break
    return [1.0 if i in dense else eps * raw[i] for i in range(len(counts))]


def kept(shapes, densities):
    return math.fsum(d * math.prod(s) for d, s in zip(densities, shapes))


# ---------------------------------------------------------------- hand-worked


def test_erk_hand_worked():
    shapes = [(4, 4), (8, 8), (16, 16)]  # raw 0.5, 0.25, 0.125; sum raw * N = 56
    assert rp.layer_densities(shapes, density=0.25, distribution="erk") == [0.75, 0.375, 0.1875]  # eps = 84 / 56
    d = rp.layer_densities(shapes, density=0.5, distribution="erk")  # eps = 3: layer 0 at 1.5, made dense
    assert d[0] == 1.0
    assert d[1] == pytest.approx(152 / 48 * 0.25, rel=1e-15) and d[2] == pytest.approx(152 / 48 * 0.125, rel=1e-15)
    assert kept(shapes, d) == pytest.approx(168, rel=1e-15)


def test_erk_cascade_of_dense_layers():
    # raw 1.0, 0.5, 0.0625 (2x2, 4x4, 32x32); density 0.9 of 1044 = 939.6:
    # eps = 939.6 / 76 -> layers 0 and 1 above 1 at once; then (939.6 - 20) / 64 * 0.0625 = 0.898
    shapes = [(2, 2), (4, 4), (32, 32)]
    d = rp.layer_densities(shapes, density=0.9, distribution="erk")
    assert d[:2] == [1.0, 1.0]
    assert d[2] == pytest.approx((939.6 - 20) / 1024, rel=1e-14)
    assert d == pytest.approx(rigl_like(shapes, 0.9), rel=1e-14)


def test_er_uses_the_first_two_dims():
    shapes = [(10, 20, 3, 3), (20, 40, 3, 3)]  # ER raw: 30/200, 60/800; ERK raw: 36/1800, 66/7200
    er = rp.layer_densities(shapes, density=0.1, distribution="er")
    assert er[0] / er[1] == pytest.approx((30 / 200) / (60 / 800), rel=1e-14)
    erk = rp.layer_densities(shapes, density=0.1, distribution="erk")
    assert erk[0] / erk[1] == pytest.approx((36 / 1800) / (66 / 7200), rel=1e-14)


def test_power_scale():
    shapes = [(4, 4), (8, 8), (16, 16)]
    flat = rp.layer_densities(shapes, density=0.3, distribution="erk", power_scale=0.0)
    assert flat == pytest.approx([0.3] * 3, rel=1e-14)  # raw probabilities all 1: uniform
    half = rp.layer_densities(shapes, density=0.3, distribution="erk", power_scale=0.5)
    assert half[0] / half[1] == pytest.approx(math.sqrt(2), rel=1e-14)
    assert half == pytest.approx(rigl_like(shapes, 0.3, power_scale=0.5), rel=1e-14)


def test_power_scale_applies_to_er_too():
    """RigL's code applies erk_power_scale to ERK only; refprune to both (equal at the default 1.0)."""
    shapes = [(4, 4), (8, 8)]
    d = rp.layer_densities(shapes, density=0.2, distribution="er", power_scale=0.5)
    assert d[0] / d[1] == pytest.approx(math.sqrt((8 / 16) / (16 / 64)), rel=1e-14)


def test_uniform_and_forced_dense_layers_count_in_the_budget():
    assert rp.layer_densities(MLP, density=0.3) == [0.3, 0.3, 0.3]
    d = rp.layer_densities(MLP, density=0.3, dense=[2])
    total = sum(math.prod(s) for s in MLP)
    assert d[2] == 1.0 and d[0] == d[1] == pytest.approx((0.3 * total - 1000) / (total - 1000), rel=1e-14)
    assert kept(MLP, d) == pytest.approx(0.3 * total, rel=1e-14)
    e = rp.layer_densities(MLP, density=0.3, distribution="erk", dense=[-1])
    assert e[2] == 1.0 and kept(MLP, e) == pytest.approx(0.3 * total, rel=1e-14)


def test_mapping_in_mapping_out():
    shapes = {"conv": (16, 3, 3, 3), "fc": (400, 10)}
    d = rp.layer_densities(shapes, density=0.2, distribution="erk", dense=["conv"])
    assert list(d) == ["conv", "fc"] and d["conv"] == 1.0
    assert d["fc"] == pytest.approx((0.2 * 4432 - 432) / 4000, rel=1e-14)


# ---------------------------------------------------------------- properties


@pytest.mark.parametrize("shapes", [RESNETISH, MLP, [(3,), (5, 5), (2, 3, 4)], [(1000, 1000), (10, 10)]])
@pytest.mark.parametrize("distribution", ["uniform", "erk", "er"])
def test_budget_is_met_and_densities_are_fractions(shapes, distribution):
    if distribution == "er" and any(len(s) < 2 for s in shapes):
        pytest.skip("ER needs two dims")
    total = sum(math.prod(s) for s in shapes)
    for density in (0.0, 0.01, 0.05, 0.1, 0.3, 0.5, 0.8, 0.95, 0.99, 1.0):
        for power in (1.0, 0.5):
            d = rp.layer_densities(shapes, density=density, distribution=distribution, power_scale=power)
            assert all(isinstance(x, float) and 0.0 <= x <= 1.0 for x in d)
            assert kept(shapes, d) == pytest.approx(density * total, rel=1e-12, abs=1e-9)
            if distribution == "erk" or distribution == "er" and power == 1.0:  # RigL's ER ignores power_scale
                assert d == pytest.approx(rigl_like(shapes, density, kind=distribution, power_scale=power), rel=1e-12, abs=1e-15)


def test_erk_orders_layers_by_their_raw_probability():
    d = rp.layer_densities(RESNETISH, density=0.1, distribution="erk")
    raw = [sum(s) / math.prod(s) for s in RESNETISH]
    for i in range(len(raw)):
        for j in range(len(raw)):
            if raw[i] > raw[j]:
                assert d[i] >= d[j]


def test_pruning_each_layer_meets_the_budget_within_rounding():
    d = rp.layer_densities(MLP, density=0.1, distribution="erk")
    rng = np.random.default_rng(0)
    masks = [rp.magnitude_mask(rng.normal(size=s), amount=1.0 - x) for s, x in zip(MLP, d)]
    total = sum(math.prod(s) for s in MLP)
    assert abs(sum(int(m.sum()) for m in masks) - 0.1 * total) <= len(MLP) / 2 + 1


def test_zero_size_layers():
    assert rp.layer_densities([(0, 5), (4, 4)], density=0.5) == [0.5, 0.5]
    d = rp.layer_densities([(0, 5), (4, 4)], density=0.5, distribution="erk")
    assert d == [1.0, 0.5]
    assert rp.layer_densities([], density=0.5) == []


# ---------------------------------------------------------------- where RigL differs


def test_rigl_integer_budget_differs_worked_example():
    """RigL budgets each layer as N - floor(sparsity * N); refprune keeps density * total."""
    shapes = [(2, 5), (5, 2)]  # equal raw probabilities
    assert rigl_like(shapes, 0.55, integer_budget=True) == pytest.approx([0.6, 0.6])  # floor(0.45 * 10) = 4 zeros each
    assert rp.layer_densities(shapes, density=0.55, distribution="erk") == pytest.approx([0.55, 0.55], rel=1e-14)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((MLP,), {"density": 1.5}, ValueError, "density"),
        ((MLP,), {"density": -0.1}, ValueError, "density"),
        ((MLP,), {"density": float("nan")}, ValueError, "density"),
        ((MLP,), {"density": "0.5"}, TypeError, "density"),
        ((MLP,), {"density": 0.5, "distribution": "erdos"}, ValueError, "distribution"),
        ((MLP,), {"density": 0.5, "power_scale": -1.0}, ValueError, "power_scale"),
        ((MLP,), {"density": 0.5, "dense": [3]}, ValueError, "out of range"),
        ((MLP,), {"density": 0.5, "dense": ["fc1"]}, TypeError, "indices"),
        ((MLP,), {"density": 0.5, "dense": 0}, TypeError, "dense"),
        (({"a": (3, 3)},), {"density": 0.5, "dense": ["b"]}, ValueError, "unknown layer"),
        ((MLP,), {"density": 0.001, "dense": [0]}, ValueError, "forced dense hold 235200"),
        (((3, 3),), {"density": 0.5}, TypeError, "shape"),
        (([(3, 2.0)],), {"density": 0.5}, TypeError, "shape"),
        (([(3, -1)],), {"density": 0.5}, ValueError, "negative"),
        (("abc",), {"density": 0.5}, TypeError, "shapes"),
        (([(5,), (3, 3)],), {"density": 0.5, "distribution": "er"}, ValueError, "first two dims"),
        (([(), (3, 3)],), {"density": 0.5, "distribution": "erk"}, ValueError, "at least one dim"),
    ],
)
def test_bad_input(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        rp.layer_densities(*args, **kwargs)
