"""Per-layer budgets: densities that meet ``density * total`` exactly, ERK/ER shapes, dense layers, bad inputs."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from refprune.conformance import strategies as cs
from refprune.conformance.report import assert_values, bad_input_params, check_bad_input, fail
from refprune.conformance.target import Call

protocol = pytest.mark.protocol


def _raw(shape, distribution, power):
    dims = shape[:2] if distribution == "er" else shape
    return (sum(dims) / math.prod(dims)) ** power


def _check_densities(call, out, expected, shapes, density, distribution, power, dense):
    if not isinstance(out, list) or len(out) != len(shapes) or not all(isinstance(d, float) for d in out):
        fail(call, f"must return a list of {len(shapes)} Python floats", actual=out)
    assert_values(call, out, expected, dtype="float64", what="densities")
    counts = [math.prod(s) for s in shapes]
    total = sum(counts)
    kept = math.fsum(d * c for d, c in zip(out, counts))
    if abs(kept - density * total) > 1e-9 * max(1.0, total):
        fail(call, f"the layers keep {kept} parameters, the budget is density * total = {density * total}", actual=out)
    if any(not 0.0 <= d <= 1.0 for d in out):
        fail(call, "every density lies in [0, 1]", actual=out)
    if any(out[i] != 1.0 for i in dense):
        fail(call, f"the layers forced dense ({sorted(dense)}) must have density 1.0", actual=out)
    if distribution != "uniform":
        live = [i for i in range(len(shapes)) if out[i] < 1.0 and i not in dense and counts[i]]
        ratios = {i: out[i] / _raw(shapes[i], distribution, power) for i in live if _raw(shapes[i], distribution, power) > 0}
        eps = list(ratios.values())
        if eps and max(eps) - min(eps) > 1e-9 * max(eps):
            fail(call, "the layers below 1 must share one epsilon: density / raw probability", actual=out)
        if eps:
            for i in range(len(shapes)):
                if out[i] == 1.0 and i not in dense and counts[i] and eps[0] * _raw(shapes[i], distribution, power) < 1 - 1e-9:
                    fail(call, f"layer {i} is dense but eps * r = {eps[0] * _raw(shapes[i], distribution, power)} < 1", actual=out)


@protocol("layer_densities")
@given(data=st.data())
def test_layer_densities(target, ref, data):
    distribution = data.draw(st.sampled_from(["uniform", "erk", "er"]), label="distribution")
    shapes = data.draw(cs.layer_shapes(min_dims=2 if distribution == "er" else 1), label="shapes")
    density = data.draw(cs.densities(), label="density")
    kw = {"density": density}
    if distribution != "uniform" or data.draw(st.booleans(), label="pass distribution"):
        kw["distribution"] = distribution
    power = 1.0
    if data.draw(st.booleans(), label="pass power_scale"):
        power = kw["power_scale"] = data.draw(cs.power_scales(), label="power_scale")
    dense = []
    if data.draw(st.booleans(), label="force some layers dense"):
        dense = data.draw(st.lists(st.integers(0, len(shapes) - 1), max_size=2, unique=True), label="dense")
        counts = [math.prod(s) for s in shapes]
        if sum(counts[i] for i in dense) > density * sum(counts):
            dense = []
        else:
            kw["dense"] = dense
    out = target("layer_densities", shapes, **kw)
    _check_densities(target.last, out, ref("layer_densities", shapes, **kw), shapes, density, distribution, power, set(dense))


CASES = [
    # shapes, kwargs, expected  -- worked by hand (module docstring of refprune.budgets)
    ([(4, 4), (8, 8), (16, 16)], {"density": 0.25, "distribution": "erk"}, [0.75, 0.375, 0.1875]),
    ([(4, 4), (8, 8), (16, 16)], {"density": 0.5, "distribution": "erk"}, [1.0, 152 / 48 * 0.25, 152 / 48 * 0.125]),
    ([(2, 2), (4, 4), (32, 32)], {"density": 0.9, "distribution": "erk"}, [1.0, 1.0, (939.6 - 20) / 1024]),
    ([(4, 4), (8, 8), (16, 16)], {"density": 0.3, "distribution": "erk", "power_scale": 0.0}, [0.3, 0.3, 0.3]),
    ([(10, 20, 3, 3), (20, 40, 3, 3)], {"density": 0.1, "distribution": "er"},
     [900 / (0.15 * 1800 + 0.075 * 7200) * 0.15, 900 / (0.15 * 1800 + 0.075 * 7200) * 0.075]),  # ER raw 30/200, 60/800
    ([(784, 300), (300, 10)], {"density": 0.1, "dense": [1]}, [(23820 - 3000) / 235200, 1.0]),
    ([(2, 5), (5, 2)], {"density": 0.55, "distribution": "erk"}, [0.55, 0.55]),  # RigL's integer budget gives 0.6
    ([(0, 5), (4, 4)], {"density": 0.5, "distribution": "erk"}, [1.0, 0.5]),
    ([(3,), (5,)], {"density": 0.5}, [0.5, 0.5]),
]


@pytest.mark.protocol("layer_densities")
@pytest.mark.parametrize("case", CASES, ids=[f"case-{i}" for i in range(len(CASES))])
def test_layer_densities_cases(target, case):
    shapes, kw, expected = case
    out = target("layer_densities", shapes, **kw)
    assert_values(target.last, out, expected, dtype="float64", what="densities")


@pytest.mark.protocol("layer_densities")
def test_layer_densities_mapping(target):
    args, kw = ({"conv": (16, 3, 3, 3), "fc": (400, 10)},), {"density": 0.2, "distribution": "erk", "dense": ["conv"]}
    call = Call(target, "layer_densities", args, kw)  # no arrays in or out: called directly
    out = target.function("layer_densities")(*args, **kw)
    if not isinstance(out, dict) or list(out) != ["conv", "fc"]:
        fail(call, "a mapping of shapes gives a dict with the same keys in the same order", actual=out)
    assert_values(call, [out["conv"], out["fc"]], [1.0, (0.2 * 4432 - 432) / 4000], dtype="float64", what="densities")


_MLP = [(784, 300), (300, 100), (100, 10)]

BAD = [
    ("density-above-1", "layer_densities", (_MLP,), {"density": 1.5}, ValueError),
    ("density-nan", "layer_densities", (_MLP,), {"density": float("nan")}, ValueError),
    ("density-str", "layer_densities", (_MLP,), {"density": "0.5"}, TypeError),
    ("distribution-unknown", "layer_densities", (_MLP,), {"density": 0.5, "distribution": "erdos"}, ValueError),
    ("power-negative", "layer_densities", (_MLP,), {"density": 0.5, "power_scale": -1.0}, ValueError),
    ("dense-out-of-range", "layer_densities", (_MLP,), {"density": 0.5, "dense": [3]}, ValueError),
    ("dense-over-budget", "layer_densities", (_MLP,), {"density": 0.001, "dense": [0]}, ValueError),
    ("dense-unknown-name", "layer_densities", ({"a": (3, 3)},), {"density": 0.5, "dense": ["b"]}, ValueError),
    ("shape-float", "layer_densities", ([(3, 2.0)],), {"density": 0.5}, TypeError),
    ("shape-negative", "layer_densities", ([(3, -1)],), {"density": 0.5}, ValueError),
    ("er-one-dim", "layer_densities", ([(5,), (3, 3)],), {"density": 0.5, "distribution": "er"}, ValueError),
    ("erk-scalar", "layer_densities", ([(), (3, 3)],), {"density": 0.5, "distribution": "erk"}, ValueError),
]


@pytest.mark.parametrize("case", bad_input_params(BAD))
def test_bad_input(target, case):
    check_bad_input(target, *case)
