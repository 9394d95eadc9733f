"""Compaction: the smaller network computes what the masked one computes, for every preset and every method."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from refprune import backends, compact, io, measures, methods
from refprune.compaction import compaction_summary, parameter_count
from refprune.nn import build_model, describe
from refprune.nn import functional as F
from refprune.nn.layers import SelectFeatures

NP = backends.get("numpy")
TOL = 1e-6  # the bound on the logits, float64


def _random_pruning(model, rng, *, gates=False):
    """Masks that prune single weights and whole units/channels, nonzero biases, and L0 gates some closed."""
    params = model.params()
    masks = {}
    for name in model.prunable(include_output=True):
        w = params[name]
        keep = rng.random(w.shape) > 0.3
        keep[rng.random(w.shape[0]) < 0.3] = False  # dense: input units; conv: output channels
        keep[:, rng.random(w.shape[1]) < 0.2] = False  # dense: output units; conv: input channels
        masks[name] = keep
    model.set_masks(masks)
    new = {k: rng.standard_normal(v.shape) * 0.1 for k, v in params.items() if k.endswith(".b")}
    if gates:
        new.update({k: rng.standard_normal(v.shape) * 3.0 for k, v in params.items() if k.endswith(".log_alpha")})
    if model.config["preset"] == "binary-mlp":  # its Bernoulli(0.001) weights are almost all zero
        new.update({k: rng.standard_normal(v.shape) for k, v in params.items() if k.endswith(".w")})
    model.set_params(new)


def _check_equal(model, small, x):
    a, b = model(x), small(x)
    diff = float(np.max(np.abs(a - b)))
    assert diff <= TOL, diff
    np.testing.assert_array_equal(a.argmax(1), b.argmax(1))
    assert measures.architecture(small)["before"] == measures.architecture(model)["after"]
    assert not small.masks() and not small.gated()
    return diff


PRESET_CASES = [
    ("mlp-300-100", {}, False), ("mlp-300-100", {}, True),
    ("mlp-1000-1000-500-200", {}, False), ("mlp-1000-1000-500-200", {}, True),
    ("lenet5", {}, False), ("lenet5", {}, True), ("lenet5", {"padding": 0}, False),
    ("conv4", {}, False), ("conv4", {}, True),
    ("binary-mlp", {"hidden": 48, "norm": "batch-norm"}, False),
    ("binary-mlp", {"hidden": 48, "norm": "soft-invert"}, False),
    ("binary-mlp", {"hidden": 48, "norm": "hard-invert"}, False),
    ("binary-mlp", {"hidden": 48, "norm": "none"}, False),
]


@pytest.mark.parametrize(("preset", "options", "l0"), PRESET_CASES)
def test_every_preset_compacts_to_the_same_outputs(preset, options, l0):
    rng = np.random.default_rng(0)
    size = 16 if options.get("padding") == 0 else 8
    model = build_model(preset, input_shape=(1, size, size), num_classes=10, backend=NP, rng=NP.rng(1),
                        dtype="float64", l0=l0, **options)
    _random_pruning(model, rng, gates=l0)
    small = compact(model)
    _check_equal(model, small, rng.standard_normal((20, 1, size, size)))
    before, after = measures.flops(model)["total"], measures.flops(small)["total"]
    assert after < before  # the random pruning removed units in every case
    assert parameter_count(small)[0] < parameter_count(model)[0]


@pytest.mark.parametrize("backend_name", ["array-api-strict", "torch", "torch-cuda", "cupy"])
def test_compaction_runs_on_other_backends(backend_name):
    reason = backends.unavailable_reason(backend_name)
    if reason is not None:
        pytest.skip(reason)
    b = backends.get(backend_name)
    rng = np.random.default_rng(0)
    host = build_model("lenet5", input_shape=(1, 8, 8), num_classes=10, backend=NP, rng=NP.rng(1), dtype="float64",
                       l0=True)
    _random_pruning(host, rng, gates=True)
    model = build_model("lenet5", input_shape=(1, 8, 8), num_classes=10, backend=b, rng=b.rng(1), dtype="float64",
                        l0=True)
    model.set_params({k: b.asarray(v) for k, v in host.params().items()})
    model.set_masks({k: b.asarray(v) for k, v in host.masks().items()})
    small = compact(model)
    x = rng.standard_normal((6, 1, 8, 8))
    np.testing.assert_allclose(b.to_numpy(small(b.asarray(x))), compact(host)(x), rtol=0, atol=1e-12)
    assert measures.architecture(small)["before"] == measures.architecture(host)["after"]


# ------------------------------------------------------------------ liveness edge cases


def _lenet(padding, size):
    model = build_model("lenet5", input_shape=(1, size, size), num_classes=10, backend=NP, rng=NP.rng(0),
                        dtype="float64", padding=padding)
    return model


@pytest.mark.parametrize(("padding", "size", "bias", "kept"), [
    (2, 8, 0.5, True),  # a nonzero constant read by a zero-padded conv varies at the borders: kept
    (2, 8, -0.5, False),  # relu(-0.5) = 0: a zero constant, removed
    (0, 16, 0.5, False),  # no padding: the constant is uniform, folded into conv2's bias
])
def test_a_dead_filter_with_a_bias(padding, size, bias, kept):
    model = _lenet(padding, size)
    w = model.params()["conv1.w"]
    keep = np.ones(w.shape, dtype=bool)
    keep[3] = False  # conv1 channel 3: no weights left, only its bias
    model.set_masks({"conv1.w": keep})
    b = np.zeros(20)
    b[3] = bias
    model.set_params({"conv1.b": b})
    small = compact(model)
    assert measures.architecture(model)["after"][0] == (20 if kept else 19)
    x = np.random.default_rng(1).standard_normal((10, 1, size, size))
    _check_equal(model, small, x)


def _binary_mlp(norm):
    """A binary-mlp of width 16 with normal weights (its own init leaves almost all of them 0)."""
    model = build_model("binary-mlp", input_shape=(64,), num_classes=10, backend=NP, rng=NP.rng(0), dtype="float64",
                        hidden=16, norm=norm)
    rng = np.random.default_rng(0)
    model.set_params({k: rng.standard_normal(v.shape) for k, v in model.params().items() if k.endswith(".w")})
    return model, rng


def test_batch_norm_with_zero_gamma_is_folded():
    model, rng = _binary_mlp("batch-norm")
    gamma = rng.standard_normal(16)
    gamma[[2, 5]] = 0.0
    model.set_params({"bn1.gamma": gamma, "bn1.beta": rng.standard_normal(16)})
    model.set_state({"bn1.running_mean": rng.standard_normal(16), "bn1.running_var": rng.random(16) + 0.5})
    small = compact(model)
    assert measures.architecture(model)["after"][1] == 14  # fc2 reads 14 of bn1's 16 outputs: 2 are constants
    _check_equal(model, small, rng.standard_normal((8, 64)))


def test_soft_invert_at_one_half_makes_everything_after_it_constant():
    model, rng = _binary_mlp("soft-invert")
    model.set_params({"inv2.a": np.array([0.5])})
    small = compact(model)
    assert measures.architecture(model)["after"] == [0, 0, 0, 0, 0]  # the output is a constant
    _check_equal(model, small, rng.standard_normal((8, 64)))


def test_constants_into_a_layer_without_bias_give_it_one():
    """Hard invert turns a dead unit into the constant 1; the bias-free next layer gets a bias to hold it."""
    model, rng = _binary_mlp("hard-invert")
    keep = np.ones((64, 16), dtype=bool)
    keep[:, 4] = False  # fc1 unit 4 reads nothing: 1 - tanh(0) = 1 for every input
    model.set_masks({"fc1.w": keep})
    small = compact(model)
    assert "b" not in model.layers["fc2"].params and "b" in small.layers["fc2"].params
    _check_equal(model, small, rng.standard_normal((8, 64)))


def test_everything_pruned_leaves_the_constant_output():
    for preset in ("mlp-300-100", "lenet5"):
        model = build_model(preset, input_shape=(1, 8, 8), num_classes=10, backend=NP, rng=NP.rng(0), dtype="float64")
        cut = "fc2.w" if preset == "mlp-300-100" else "conv2.w"
        model.set_masks({cut: np.zeros(model.params()[cut].shape, dtype=bool)})
        model.set_params({k: np.full(v.shape, 0.1) for k, v in model.params().items() if k.endswith(".b")})
        small = compact(model)
        assert measures.architecture(small)["before"] == [0] * len(measures.architecture(model)["before"])
        _check_equal(model, small, np.random.default_rng(0).standard_normal((4, 1, 8, 8)))


def test_compaction_is_idempotent_and_rebuildable():
    rng = np.random.default_rng(3)
    model = build_model("lenet5", input_shape=(1, 8, 8), num_classes=10, backend=NP, rng=NP.rng(1), dtype="float64")
    _random_pruning(model, rng)
    small = compact(model)
    assert any(isinstance(layer, SelectFeatures) for layer in small.layers.values())
    again = compact(small)
    assert describe(again) == describe(small)
    x = rng.standard_normal((5, 1, 8, 8))
    np.testing.assert_array_equal(again(x), small(x))
    rebuilt = build_model("sequential", input_shape=(1, 8, 8), num_classes=10, backend=NP, rng=NP.rng(5),
                          dtype="float64", **small.config["options"])
    rebuilt.set_params(small.params())
    np.testing.assert_array_equal(rebuilt(x), small(x))
    assert json.loads(json.dumps(small.config)) == small.config  # a checkpoint can hold it


def test_masks_argument_leaves_the_model_as_it_was():
    rng = np.random.default_rng(0)
    model = build_model("mlp-300-100", input_shape=(64,), num_classes=10, backend=NP, rng=NP.rng(0), dtype="float64")
    _random_pruning(model, rng)
    masks = model.masks()
    model.set_masks({})
    small = compact(model, masks=masks)
    assert model.masks() == {}
    model.set_masks(masks)
    _check_equal(model, small, rng.standard_normal((5, 64)))


def test_compaction_summary_counts():
    model = build_model("mlp-300-100", input_shape=(64,), num_classes=10, backend=NP, rng=NP.rng(0), dtype="float64")
    keep = np.ones((300, 100), dtype=bool)
    keep[150:] = False
    model.set_masks({"fc2.w": keep})
    summary = compaction_summary(model, compact(model))
    assert summary["architecture"]["compacted"] == [64, 150, 100]
    # fc1 loses 150 output columns and biases, fc2 150 input rows
    expected = (64 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10) - 150 * 64 - 150 - 150 * 100
    assert summary["parameters"]["after"] == expected
    assert summary["flops"]["after"] == (2 * 64 - 1) * 150 + 150 + (2 * 150 - 1) * 100 + 100 + (2 * 100 - 1) * 10 + 10
    assert math.isclose(summary["flops"]["reduction"], summary["flops"]["before"] / summary["flops"]["after"])


# ------------------------------------------------------------------ SelectFeatures


def test_select_features_gradient_by_central_differences_and_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x, index = rng.standard_normal((3, 7)), [0, 2, 3, 6]
    dy = rng.standard_normal((3, 4))
    dx = F.select_features_grad(x, dy, index=index)
    eps, num = 1e-6, np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = eps
        num[i] = np.sum((F.select_features(x + e, index=index) - F.select_features(x - e, index=index)) * dy) / (2 * eps)
    np.testing.assert_allclose(dx, num, rtol=1e-8, atol=1e-10)
    xt = torch.tensor(x, requires_grad=True)
    (xt[:, index] * torch.tensor(dy)).sum().backward()
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=0, atol=0)


def test_select_features_on_every_backend(backend, close):
    rng = np.random.default_rng(1)
    x, dy, index = rng.standard_normal((4, 9)), rng.standard_normal((4, 3)), [1, 4, 8]
    bx, bdy = backend.asarray(x, dtype="float64"), backend.asarray(dy, dtype="float64")
    close(F.select_features(bx, index=index), x[:, index])
    expected = np.zeros_like(x)
    expected[:, index] = dy
    close(F.select_features_grad(bx, bdy, index=index), expected)
    layer = SelectFeatures(index)
    close(layer.forward(bx), x[:, index])
    close(layer.backward(bdy), expected)


def test_select_features_rejects_a_bad_index():
    with pytest.raises(ValueError, match="strictly increasing"):
        F.select_features(np.zeros((1, 4)), index=[2, 1])
    with pytest.raises(ValueError, match=r"in \[0, 4\)"):
        F.select_features(np.zeros((1, 4)), index=[4])


# ------------------------------------------------------------------ every method's final network


@pytest.mark.parametrize("name", methods.names())
def test_every_methods_final_network_compacts(name, method_run):
    result = method_run(name)
    model = io.load_weights(_rebuild(result), result["out"])
    assert model.config["dtype"] == "float64"
    # final.npz is the network the result describes: its measures are the result's
    assert measures.architecture(model) == result["architecture"]
    assert measures.weight_sparsity(model)[0] == pytest.approx(result["weight_sparsity"])
    from refprune.cli.compact import run_test_data
    from refprune.engine import evaluate

    run = result["config"]
    ds = run_test_data(run, backend=NP, dtype="float64")
    assert evaluate(model, ds.x_test, ds.y_test, backend=NP)[1] == pytest.approx(result["test_accuracy"])
    small = compact(model)
    diff = _check_equal(model, small, ds.x_test.astype(np.float64))
    print(f"{name}: {result['architecture_string']}, max abs difference {diff:.3g}")


def _rebuild(result):
    from refprune.nn import build_like

    network = io.read_network(result["out"])[2]
    return build_like(network, backend=NP, rng=NP.rng(0))


def test_the_methods_short_runs_remove_units(method_run):
    """The equality above is not vacuous: most of these short runs remove units."""
    removed = [n for n in ("l0", "rvsm", "magnitude", "lottery", "binary")
               if measures.flops(compact(io.load_weights(_rebuild(method_run(n)), method_run(n)["out"])))["total"]
               < measures.flops(_rebuild(method_run(n)))["total"]]
    assert len(removed) >= 4, removed


def test_rvsm_and_binary_record_their_deployed_weights(method_run):
    from refprune.thresholds import hard_threshold

    rvsm = method_run("rvsm")
    final = io.load_checkpoint(f"{rvsm['out']}/final.npz").params
    trained = io.load_checkpoint(f"{rvsm['out']}/checkpoint.npz").params
    t = rvsm["threshold"]
    for name in rvsm["split_layers"]:
        np.testing.assert_array_equal(final[f"model/{name}"], hard_threshold(trained[f"model/{name}"], threshold=t))
    binary = method_run("binary")
    final = io.load_checkpoint(f"{binary['out']}/final.npz").params
    assert set(np.unique(final["model/fc1.w"])) <= {0.0, 1.0}
