"""The pruning measures, on small networks built by hand, on every backend.

Architecture (the L0 paper's convention: a dense layer counts its input features, a
convolution its output channels): a unit is *alive* when it is reachable from the input
and reaches the output through nonzero effective weights. Each network below kills
units in one way the module docstring names; the expected counts are worked out by hand.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from refprune import measures
from refprune.nn import (
    BatchNorm1d,
    Conv2d,
    Dense,
    Flatten,
    HardInvert,
    L0Conv2d,
    L0Dense,
    MaxPool2d,
    ReLU,
    Sequential,
    SoftInvert,
    Tanh,
    build_model,
)


def _arr(backend, a):
    return backend.asarray(np.asarray(a, dtype=np.float64), dtype="float64")


def _dense(backend, w, b=None):
    return Dense(_arr(backend, w), None if b is None else _arr(backend, b))


def _net(layers, input_shape):
    return Sequential(layers, config={"input_shape": list(input_shape)})


def _after(model):
    return measures.architecture(model)["after"]


def _ones(*shape):
    return np.ones(shape)


def test_dense_chain_with_a_zeroed_column_and_an_unused_input(backend):
    w1 = _ones(4, 3)
    w1[:, 1] = 0.0  # hidden unit 1 gets nothing: constant (its bias), not alive
    w1[3, :] = 0.0  # input 3 feeds nothing: not alive
    model = _net([("fc", _dense(backend, w1, [0.0, 5.0, 0.0])), ("relu", ReLU()),
                  ("out", _dense(backend, _ones(3, 2)))], (4,))
    arch = measures.architecture(model)
    assert arch["layers"] == ["fc", "out"] and arch["before"] == [4, 3] and arch["after"] == [3, 2]
    (n1, k1, in1, out1), (n2, k2, in2, out2) = measures.liveness(model)
    assert (n1, k1, n2, k2) == ("fc", "dense", "out", "dense")
    np.testing.assert_array_equal(backend.to_numpy(in1), [True] * 4)
    np.testing.assert_array_equal(backend.to_numpy(out1), [True, True, True, False])
    np.testing.assert_array_equal(backend.to_numpy(in2), [True, False, True])
    np.testing.assert_array_equal(backend.to_numpy(out2), [True] * 3)


def test_a_unit_with_incoming_but_no_outgoing_weights(backend):
    w2 = _ones(4, 2)
    w2[2, :] = 0.0  # hidden unit 2 is computed but never read
    model = _net([("fc", _dense(backend, _ones(3, 4))), ("tanh", Tanh()), ("out", _dense(backend, w2))], (3,))
    assert _after(model) == [3, 3]
    w2[:, :] = 0.0  # nothing reaches the output: nothing is alive
    model = _net([("fc", _dense(backend, _ones(3, 4))), ("tanh", Tanh()), ("out", _dense(backend, w2))], (3,))
    assert _after(model) == [0, 0]


def test_masks_count_as_zeros(backend):
    model = _net([("fc", _dense(backend, _ones(3, 4))), ("relu", ReLU()), ("out", _dense(backend, _ones(4, 2)))],
                 (3,))
    keep = np.ones((4, 2), dtype=bool)
    keep[[0, 1], :] = False
    model.set_masks({"out.w": backend.asarray(keep)})
    assert _after(model) == [3, 2]
    assert measures.nonzero_weights(model) == {"fc.w": 12, "out.w": 4}


def test_conv_pool_flatten_dense_with_a_dead_channel(backend):
    """Conv (3 channels) -> pool -> flatten (3 x 2 x 2 = 12 features) -> dense."""
    w = np.random.default_rng(0).uniform(0.5, 1.0, size=(3, 1, 3, 3))
    w[2] = 0.0  # channel 2 computes nothing from the input: its 4 features are constant
    dense = np.ones((12, 2))
    dense[0:3, :] = 0.0  # features 0-2 of channel 0 are never read; feature 3 still is

    def model(conv_w, fc_w):
        return _net([("conv", Conv2d(_arr(backend, conv_w), _arr(backend, [0.1, 0.1, 0.1]), padding=1)),
                     ("relu", ReLU()), ("pool", MaxPool2d(2)), ("flat", Flatten()),
                     ("fc", _dense(backend, fc_w))], (1, 4, 4))

    arch = measures.architecture(model(w, dense))
    assert arch["layers"] == ["conv", "fc"] and arch["before"] == [3, 12]
    assert arch["after"] == [2, 5]  # channels 0, 1; features 3 (channel 0) and 4-7 (channel 1)
    kinds = [k for _, k, _, _ in measures.liveness(model(w, dense))]
    assert kinds == ["conv", "dense"]
    dense[3, :] = 0.0  # now no feature of channel 0 is read: channel 0 is not alive either
    assert _after(model(w, dense)) == [1, 4]
    w[1, 0, 1, 1] = 0.0  # one zero tap is not a dead channel: a conv compares whole filters
    assert _after(model(w, dense)) == [1, 4]


def test_conv_input_channels_without_filters(backend):
    """Two convolutions: an input channel of the second that no filter reads makes its channel not alive."""
    w1 = np.ones((3, 1, 1, 1))
    w2 = np.ones((2, 3, 1, 1))
    w2[:, 1] = 0.0  # channel 1 of conv1 is read by no filter of conv2
    model = _net([("c1", Conv2d(_arr(backend, w1))), ("c2", Conv2d(_arr(backend, w2))), ("flat", Flatten()),
                  ("out", _dense(backend, _ones(2 * 2 * 2, 2)))], (1, 2, 2))
    assert measures.architecture(model)["before"] == [3, 2, 8]
    assert _after(model) == [2, 2, 8]


def test_batch_norm_with_zero_gamma_makes_its_unit_constant(backend):
    gamma = [1.0, 0.0, 1.0, 1.0]
    bn = BatchNorm1d(_arr(backend, gamma), _arr(backend, [0.0, 3.0, 0.0, 0.0]), _arr(backend, [0.0] * 4),
                     _arr(backend, [1.0] * 4))
    model = _net([("fc", _dense(backend, _ones(3, 4))), ("bn", bn), ("out", _dense(backend, _ones(4, 2)))], (3,))
    assert _after(model) == [3, 3]  # unit 1 emits beta = 3 whatever the input: foldable into out's bias


@pytest.mark.parametrize(("a", "alive"), [(0.5, [0, 0]), (0.3, [3, 4]), (1.5, [3, 4]), (-0.2, [3, 4])])
def test_soft_invert_at_one_half_makes_everything_constant(backend, a, alive):
    """y = x (1 - a) + (1 - x) a is 1/2 for every x at a = 1/2; the forward clips a to [0, 1]."""
    model = _net([("fc", _dense(backend, _ones(3, 4))), ("inv", SoftInvert(_arr(backend, [a]))),
                  ("out", _dense(backend, _ones(4, 2)))], (3,))
    assert _after(model) == alive


def test_hard_invert_and_activations_keep_a_unit_alive(backend):
    model = _net([("fc", _dense(backend, _ones(3, 4))), ("tanh", Tanh()), ("inv", HardInvert()),
                  ("out", _dense(backend, _ones(4, 2)))], (3,))
    assert _after(model) == [3, 4]


def test_l0_gates_closed_by_log_alpha(backend):
    """A closed test-time gate (log_alpha well below log(1/11)) removes an L0Dense input or an L0Conv2d channel."""
    closed, open_ = -8.0, 4.0
    conv = L0Conv2d(_arr(backend, _ones(3, 1, 3, 3)), _arr(backend, [0.1] * 3),
                    _arr(backend, [open_, closed, open_]), padding=1)
    fc = L0Dense(_arr(backend, _ones(12, 4)), _arr(backend, [0.0] * 4), _arr(backend, [open_] * 11 + [closed]))
    out = L0Dense(_arr(backend, _ones(4, 2)), None, _arr(backend, [open_, open_, closed, open_]))
    model = _net([("conv", conv), ("pool", MaxPool2d(2)), ("flat", Flatten()), ("fc", fc), ("relu", ReLU()),
                  ("out", out)], (1, 4, 4))
    assert [layer.open_gates() for _, layer in model.gated()] == [2, 11, 3]
    arch = measures.architecture(model)
    assert arch["before"] == [3, 12, 4]
    # conv: channel 1 closed; fc: features 4-7 (channel 1) constant and feature 11 closed; out: input 2 closed
    assert arch["after"] == [2, 7, 3]


def test_every_preset_before_is_the_papers_architecture():
    from refprune import backends

    b = backends.get("numpy")

    def before(preset, shape, **kw):
        model = build_model(preset, input_shape=shape, num_classes=10, backend=b, rng=b.rng(0), **kw)
        arch = measures.architecture(model)
        assert arch["after"] == arch["before"], preset  # a fresh network: every unit alive
        return arch["before"]

    assert before("lenet5", (1, 28, 28)) == [20, 50, 800, 500]
    assert before("lenet5", (1, 28, 28), l0=True) == [20, 50, 800, 500]
    assert before("mlp-300-100", (1, 28, 28)) == [784, 300, 100]
    assert before("conv4", (3, 32, 32)) == [64, 64, 128, 128, 8192, 256, 256]
    assert before("binary-mlp", (1, 8, 8), hidden=16, init="torch-uniform") == [64, 16, 16, 16, 16]


def test_weight_sparsity_counts_the_output_layer_and_not_the_biases(backend):
    w1 = _ones(4, 3)
    w1[0, :] = 0.0  # 3 of 12
    w2 = _ones(3, 2)
    w2[1, 1] = 0.0  # 1 of 6
    model = _net([("fc", _dense(backend, w1, [0.0, 0.0, 0.0])), ("relu", ReLU()),
                  ("out", _dense(backend, w2, [0.0, 0.0]))], (4,))
    overall, by_layer = measures.weight_sparsity(model)
    assert overall == pytest.approx(4 / 18) and by_layer == {"fc.w": 0.25, "out.w": pytest.approx(1 / 6)}
    assert measures.nonzero_weights(model) == {"fc.w": 9, "out.w": 5}
    summary = measures.summary(model)
    assert summary["weight_sparsity"] == overall and summary["nonzero_weights"] == {"fc.w": 9, "out.w": 5}
    assert summary["architecture"]["after"] == [3, 3] and summary["architecture_string"] == "4-3 -> 3-3"


def test_zero_fraction(backend):
    arrays = [_arr(backend, [0.0, 1.0, 0.0, 2.0]), _arr(backend, np.zeros((2, 2)))]
    assert measures.zero_fraction(arrays) == 0.75
    assert measures.zero_fraction([]) == 0.0
    assert measures.zero_fraction([_arr(backend, np.zeros((0,)))]) == 0.0
    assert measures.zero_fraction(iter(arrays[:1])) == 0.5  # any iterable


def test_liveness_needs_the_input_shape(backend):
    model = Sequential([("fc", _dense(backend, _ones(2, 2)))])
    with pytest.raises(ValueError, match="input shape"):
        measures.architecture(model)
    assert measures.liveness(_net([("relu", ReLU())], (3,))) == []


def test_random_sparse_mlps_against_a_reference(backend, alive_in_dense_chain):
    """Heavily masked MLPs: the units alive equal a plain NumPy computation over the chain of masks."""
    gen = np.random.default_rng(7)
    for trial in range(5):
        widths = [6, 9, 7, 3]
        masks = [gen.uniform(size=(a, b)) < 0.25 for a, b in zip(widths, widths[1:])]
        layers = []
        for i, m in enumerate(masks):
            layers += [(f"fc{i}", _dense(backend, gen.normal(size=m.shape) * m)), (f"relu{i}", ReLU())]
        model = _net(layers[:-1], (widths[0],))
        assert _after(model) == alive_in_dense_chain(masks), trial
        assert math.isclose(measures.weight_sparsity(model)[0],
                            1 - sum(m.sum() for m in masks) / sum(m.size for m in masks))
