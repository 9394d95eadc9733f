"""Calibration capture: each prunable layer's (out, in) matrix and its (tokens, in) inputs, pruned prefix first."""

from __future__ import annotations

import numpy as np
import pytest

from refprune.calibration import Calibration, layer_inputs, matrix_to_weight, weight_matrix
from refprune.nn import build_model
from refprune.nn import functional as F
from refprune.nn.layers import Conv2d


def _model(backend, preset="mlp-300-100", shape=(64,)):
    return build_model(preset, input_shape=shape, num_classes=10, backend=backend, rng=backend.rng(0),
                       dtype="float64")


def test_dense_matrix_is_the_transpose_and_round_trips(backend):
    model = _model(backend)
    w = backend.to_numpy(model.params()["fc1.w"])
    matrix = weight_matrix(model, "fc1.w")
    np.testing.assert_array_equal(backend.to_numpy(matrix), w.T)
    np.testing.assert_array_equal(backend.to_numpy(matrix_to_weight(model, "fc1.w", matrix)), w)


@pytest.mark.parametrize("stride,padding", [(1, 0), (1, 2), (2, 1)])
def test_conv_is_a_linear_layer_of_its_unfolded_input(backend, close, rng, stride, padding):
    """im2col: ``cols @ W2d.T`` is the convolution's output, one token per (example, position)."""
    x = rng.normal(size=(3, 2, 7, 6))
    w = rng.normal(size=(4, 2, 3, 3))
    layer = Conv2d(backend.asarray(w), None, stride=stride, padding=padding)
    cols = layer_inputs(layer, backend.asarray(x))["w"]
    y = backend.to_numpy(F.conv2d(backend.asarray(x), backend.asarray(w), None, stride=stride, padding=padding))
    n, o, ho, wo = y.shape
    assert tuple(cols.shape) == (n * ho * wo, 2 * 3 * 3)
    got = (backend.to_numpy(cols) @ w.reshape(o, -1).T).reshape(ho, wo, n, o)  # tokens ordered (ho, wo, n)
    close(backend.asarray(np.transpose(got, (2, 3, 0, 1))), y, context="conv as linear")


def test_conv_matrix_round_trips(backend):
    model = _model(backend, "lenet5", (1, 8, 8))
    w = backend.to_numpy(model.params()["conv2.w"])
    matrix = weight_matrix(model, "conv2.w")
    assert tuple(matrix.shape) == (w.shape[0], w[0].size)
    np.testing.assert_array_equal(backend.to_numpy(matrix_to_weight(model, "conv2.w", matrix)), w)


def test_inputs_come_from_the_network_as_pruned_so_far(backend, close, rng):
    model = _model(backend)
    x = rng.uniform(size=(10, 64))
    cal = Calibration(model, [backend.asarray(x[:6]), backend.asarray(x[6:])])
    assert [u for u, _ in cal.units] == ["fc1", "fc2"]  # the output layer is not pruned
    close(cal.inputs(0)["fc1.w"], x, context="first layer sees the data")
    params = {k: backend.to_numpy(v) for k, v in model.params().items()}
    dense_hidden = np.maximum(x @ params["fc1.w"] + params["fc1.b"], 0)
    close(cal.inputs(1)["fc2.w"], dense_hidden, context="dense prefix")

    mask = rng.uniform(size=params["fc1.w"].shape) < 0.5
    model.set_masks({"fc1.w": backend.asarray(mask)})
    again = Calibration(model, [backend.asarray(x)])
    pruned_hidden = np.maximum(x @ np.where(mask, params["fc1.w"], 0) + params["fc1.b"], 0)
    close(again.inputs(1)["fc2.w"], pruned_hidden, context="pruned prefix")
    close(again.inputs(0)["fc1.w"], x, context="going back recomputes")
    assert not np.allclose(pruned_hidden, dense_hidden)


def test_pruning_a_unit_changes_what_the_next_one_sees(backend):
    """The cache holds what enters a unit, so pruning that unit afterwards reaches the next one."""
    model = _model(backend)
    x = backend.asarray(np.random.default_rng(1).uniform(size=(8, 64)))
    cal = Calibration(model, [x])
    cal.inputs(0)
    model.set_masks({"fc1.w": backend.xp.zeros(model.params()["fc1.w"].shape, dtype=backend.xp.bool)})
    hidden = backend.to_numpy(cal.inputs(1)["fc2.w"])
    bias = np.maximum(backend.to_numpy(model.params()["fc1.b"]), 0)
    np.testing.assert_allclose(hidden, np.broadcast_to(bias, hidden.shape))


def test_conv_network_units_and_token_counts(backend):
    model = _model(backend, "lenet5", (1, 8, 8))
    cal = Calibration(model, [backend.asarray(np.ones((2, 1, 8, 8)))])
    shapes = {name: tuple(x.shape) for unit in range(len(cal.units)) for name, x in cal.inputs(unit).items()}
    # padding 2 keeps 8x8 for conv1 (2 examples x 64 positions), pooled to 4x4 for conv2, flattened for fc1
    assert shapes == {"conv1.w": (2 * 64, 25), "conv2.w": (2 * 16, 20 * 25), "fc1.w": (2, 50 * 2 * 2)}


def test_bad_inputs_are_clear_errors(backend):
    model = _model(backend)
    with pytest.raises(ValueError, match="at least one batch"):
        Calibration(model, [])
    with pytest.raises(ValueError, match="not a parameter"):
        weight_matrix(model, "fc9.w")
    gated = build_model("mlp-300-100", input_shape=(64,), num_classes=10, backend=backend, rng=backend.rng(0),
                        l0=True)
    with pytest.raises(TypeError, match="refprune compact"):
        Calibration(gated, [backend.asarray(np.ones((2, 64), dtype=np.float32))]).inputs(0)


def test_a_transformer_is_pruned_block_by_block_with_the_inputs_its_forward_sees(backend, close, rng):
    """Units are blocks; the captured inputs agree with ``Transformer.capture_inputs`` before and after pruning."""
    model = build_model("gpt-tiny", input_shape=(16,), num_classes=256, backend=backend, rng=backend.rng(0),
                        dtype="float64", width=32, blocks=2, heads=2)
    ids = backend.asarray(rng.integers(0, 256, size=(3, 16)).astype(np.int64), dtype="int64")
    cal = Calibration(model, [ids])
    assert cal.units == (("h0", ("h0_qkv.w", "h0_proj.w", "h0_fc.w", "h0_fc2.w")),
                         ("h1", ("h1_qkv.w", "h1_proj.w", "h1_fc.w", "h1_fc2.w")))
    for pruned in (False, True):
        if pruned:  # prune block 0 and see block 1's inputs change accordingly
            w = model.params()["h0_fc.w"]
            model.set_masks({"h0_fc.w": backend.asarray(rng.uniform(size=tuple(w.shape)) < 0.5)})
        _, expected = model.capture_inputs(ids)
        for unit in range(2):
            for name, x in cal.inputs(unit).items():
                close(x, backend.to_numpy(expected[name]).reshape(-1, int(x.shape[1])), context=f"{name} {pruned}")
