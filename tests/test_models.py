"""Presets and their registry, the Sequential container (names, state, masks, penalties, temporary and
effective parameters) and the training step."""

from __future__ import annotations

import math

import numpy as np
import pytest

from refprune import backends, data, engine
from refprune.masks import apply_mask
from refprune.nn import PRESETS, Sequential, build_model, optim, preset, train
from refprune.nn.constraints import clamp
from refprune.nn.layers import BatchNorm1d, Dense, HardInvert, L0Conv2d, L0Dense, ReLU, SoftInvert
from refprune.nn.models import Preset, format_architecture

SMALL = {"binary-mlp": {"hidden": 16}}


def _numpy():
    return backends.get("numpy")


def _build(preset, input_shape, *, dtype="float64", l0=False, seed=0, backend=None, **options):
    backend = backend or _numpy()
    rng = backend.rng(seed, stream="reference")
    opts = {**SMALL.get(preset, {}), **options}
    return build_model(preset, input_shape=input_shape, num_classes=10, backend=backend, rng=rng, dtype=dtype, l0=l0, **opts)


@pytest.mark.parametrize("preset", [name for name, spec in PRESETS.items() if not spec.required and not spec.tokens])
@pytest.mark.parametrize("input_shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)], ids=["digits", "mnist", "cifar"])
@pytest.mark.parametrize("l0", [False, True], ids=["dense", "l0"])
def test_every_preset_runs_on_every_image_size(preset, input_shape, l0):
    b = _numpy()
    model = _build(preset, input_shape, dtype="float32", l0=l0)
    x = b.rng(1, stream="reference").uniform((2, *input_shape), "float32")
    logits = model.forward(x, train=True, rng=b.rng(2, stream="reference"))
    assert tuple(logits.shape) == (2, 10)
    assert logits.dtype == b.xp.float32
    dx = model.backward(b.xp.ones_like(logits))
    assert tuple(dx.shape) == (2, *input_shape)
    assert set(model.grads()) == set(model.params())
    assert model.dtype == "float32"


def test_unknown_preset_and_options():
    with pytest.raises(ValueError, match="mlp-300-100, mlp-1000-1000-500-200, lenet5, conv4, binary-mlp"):
        _build("resnet", (1, 8, 8))
    with pytest.raises(ValueError, match="allowed"):
        _build("lenet5", (1, 8, 8), hidden=3)
    with pytest.raises(ValueError, match="allowed"):
        _build("mlp-300-100", (1, 8, 8), lam=0.1)  # L0 options need l0=True
    with pytest.raises(ValueError, match="image"):
        _build("conv4", (64,))
    with pytest.raises(ValueError, match="too small"):
        _build("conv4", (1, 3, 3))
    with pytest.raises(ValueError, match="norm"):
        _build("binary-mlp", (64,), norm="layer-norm")
    with pytest.raises(ValueError, match="init"):
        _build("mlp-300-100", (64,), init="orthogonal")


def test_architectures_and_names():
    lenet = _build("lenet5", (1, 28, 28), l0=True)
    assert lenet.gate_sizes() == [20, 50, 800, 500]  # the paper's 20-50-800-500
    assert lenet.layers["conv1"].padding == 0  # valid convolutions, as the paper
    small = _build("lenet5", (1, 8, 8), l0=True)
    assert small.gate_sizes() == [20, 50, 200, 500] and small.layers["conv1"].padding == 2
    with pytest.raises(ValueError, match="too small"):
        _build("lenet5", (1, 8, 8), padding=0)

    mlp = _build("mlp-300-100", (1, 28, 28), l0=True)
    assert mlp.gate_sizes() == [784, 300, 100]
    assert [type(layer) for layer in mlp.layers.values()].count(L0Dense) == 3

    nobias = _build("mlp-1000-1000-500-200", (64,))
    assert sorted(nobias.params()) == ["fc1.w", "fc2.w", "fc3.w", "fc4.w", "out.w"]
    assert nobias.prunable() == ("fc1.w", "fc2.w", "fc3.w", "fc4.w")
    assert nobias.prunable(include_output=True)[-1] == "out.w"

    conv4 = _build("conv4", (3, 32, 32))
    shapes = {k: tuple(v.shape) for k, v in conv4.params().items() if k.endswith(".w")}
    assert shapes == {
        "conv1.w": (64, 3, 3, 3),
        "conv2.w": (64, 64, 3, 3),
        "conv3.w": (128, 64, 3, 3),
        "conv4.w": (128, 128, 3, 3),
        "fc1.w": (8192, 256),
        "fc2.w": (256, 256),
        "out.w": (256, 10),
    }
    assert [conv4.weight_kind(n) for n in ("conv1.w", "fc1.w", "out.w")] == ["conv", "dense", "output"]
    with pytest.raises(ValueError, match="prunable"):
        conv4.weight_kind("conv1.b")
    assert format_architecture([20, 25, 45, 462]) == "20-25-45-462"


def test_lenet5_l0_uses_the_paper_layers():
    model = _build("lenet5", (1, 28, 28), l0=True, lam=[10, 0.5, 0.1, 0.1], weight_decay=5e-4)
    kinds = [(n, type(layer).__name__) for n, layer in model.layers.items() if layer.kind]
    assert kinds == [("conv1", "L0Conv2d"), ("conv2", "L0Conv2d"), ("fc1", "L0Dense"), ("out", "L0Dense")]
    assert [layer.lam for _, layer in model.gated()] == [10, 0.5, 0.1, 0.1]
    assert model.architecture() == "20-50-800-500"  # every gate opens at droprate 0.5 init
    assert set(model.constraints()) == {f"{n}.log_alpha" for n in ("conv1", "conv2", "fc1", "out")}


def test_initialization_statistics():
    model = _build("mlp-1000-1000-500-200", (784,))
    w = np.asarray(model.params()["fc1.w"])
    limit = math.sqrt(6 / (784 + 1000))  # Glorot uniform
    assert np.abs(w).max() <= limit and np.abs(w).max() > 0.99 * limit
    assert abs(w.std() - limit / math.sqrt(3)) < 0.01 * limit

    l0 = _build("mlp-300-100", (784,), l0=True)
    p = l0.params()
    assert abs(np.asarray(p["fc1.w"]).std() - math.sqrt(2 / 784)) < 0.02 * math.sqrt(2 / 784)  # He normal
    la1, la2 = np.asarray(p["fc1.log_alpha"]), np.asarray(p["fc2.log_alpha"])
    assert abs(la1.mean() - math.log(0.8 / 0.2)) < 0.01 and abs(la1.std() - 1e-2) < 2e-3  # droprate 0.2
    assert abs(la2.mean()) < 0.01  # droprate 0.5
    assert "fc1.b" in p and not np.any(np.asarray(p["fc1.b"]))

    binary = _build("binary-mlp", (784,), hidden=256, on_prob=0.01)
    w = np.asarray(binary.params()["fc1.w"])
    assert set(np.unique(w)) <= {0.0, 1.0} and 0.005 < w.mean() < 0.015
    assert "fc1.b" not in binary.params()


def test_same_initialization_on_every_backend(backend):
    ref = _build("lenet5", (1, 8, 8), l0=True)
    other = _build("lenet5", (1, 8, 8), l0=True, backend=backend)
    for k, v in ref.params().items():
        np.testing.assert_array_equal(backend.to_numpy(other.params()[k]), np.asarray(v), err_msg=k)


@pytest.mark.parametrize("norm", ["batch-norm", "soft-invert", "hard-invert", "none"])
def test_binary_mlp_blocks(norm):
    model = _build("binary-mlp", (1, 8, 8), norm=norm)
    names = [n for n in model.layers if not n.startswith("flatten")]
    norm_type = {"batch-norm": BatchNorm1d, "soft-invert": SoftInvert, "hard-invert": HardInvert}.get(norm)
    per_block = 3 if norm_type else 2
    assert len(names) == 5 * per_block  # 4 hidden blocks and the output block
    assert names[:per_block] == (["fc1", "tanh1", names[2]] if norm_type else ["fc1", "tanh1"])
    if norm_type:
        assert sum(isinstance(layer, norm_type) for layer in model.layers.values()) == 5
    if norm == "batch-norm":
        assert sorted(model.state()) == sorted(f"bn{i}.{s}" for i in range(1, 6) for s in ("running_mean", "running_var"))
        assert model.layers["bn1"].momentum == 0.15 and model.layers["bn1"].eps == 1e-4
    if norm == "soft-invert":
        a = [float(model.params()[f"inv{i}.a"][0]) for i in range(1, 6)]
        assert all(0 <= v <= 1 for v in a)
        assert set(model.constraints()) == {f"inv{i}.a" for i in range(1, 6)}


def test_set_params_state_masks_validation():
    b = _numpy()
    model = _build("binary-mlp", (64,))
    w = model.params()["fc1.w"]
    with pytest.raises(ValueError, match="unknown name"):
        model.set_params({"fc9.w": w})
    with pytest.raises(ValueError, match="shape"):
        model.set_params({"fc1.w": w[:2]})
    with pytest.raises(ValueError, match="unknown name"):
        model.set_state({"fc1.w": w})
    with pytest.raises(ValueError, match="not a parameter"):
        model.set_masks({"bn1.running_mean": b.xp.ones(16, dtype=b.xp.bool)})
    with pytest.raises(TypeError, match="boolean"):
        model.set_masks({"fc1.w": b.xp.ones_like(w)})
    with pytest.raises(ValueError, match="shape"):
        model.set_masks({"fc1.w": b.xp.ones((3,), dtype=b.xp.bool)})
    with pytest.raises(ValueError, match="unique"):
        Sequential([("a.b", ReLU())])
    model.set_params({"fc1.w": w * 2})
    np.testing.assert_array_equal(model.params()["fc1.w"], w * 2)


def test_model_masks_forward_gradient_and_penalty():
    b = _numpy()
    model = _build("lenet5", (1, 8, 8), l0=True, weight_decay=1e-2)
    gen = np.random.default_rng(3)
    masks = {name: b.asarray(gen.uniform(size=model.params()[name].shape) < 0.6) for name in model.prunable()}
    model.set_masks(masks)
    assert set(model.masks()) == set(masks)
    x = b.rng(0, stream="reference").uniform((4, 1, 8, 8), "float64")
    y = b.asarray([1, 2, 3, 4])

    step = train.loss_and_grads(model, x, y, rng=b.rng(5, stream="reference"), penalty_scale=0.1)
    for name, mask in masks.items():
        assert np.all(np.asarray(step.grads[name])[~np.asarray(mask)] == 0), name

    # same as an unmasked copy holding apply_mask(w, mask) (gradients agree where kept)
    ref = _build("lenet5", (1, 8, 8), l0=True, weight_decay=1e-2)
    ref.set_params(model.masked_params())
    ref_step = train.loss_and_grads(ref, x, y, rng=b.rng(5, stream="reference"), penalty_scale=0.1)
    np.testing.assert_array_equal(np.asarray(step.logits), np.asarray(ref_step.logits))
    assert float(step.loss) == float(ref_step.loss)
    for name, mask in masks.items():
        keep = np.asarray(mask)
        np.testing.assert_array_equal(np.asarray(step.grads[name])[keep], np.asarray(ref_step.grads[name])[keep])
    model.set_masks({})
    assert model.masks() == {}


def _numeric_check(model, x, y, names, rng_seed=7, count=4, h=1e-6):
    """Central differences of the training loss for a few coordinates of each parameter."""
    b = _numpy()

    def loss_at(params):
        model.set_params(params)
        return float(train.loss_and_grads(model, x, y, rng=b.rng(rng_seed, stream="reference"), penalty_scale=0.05).loss)

    base = dict(model.params())
    grads = train.loss_and_grads(model, x, y, rng=b.rng(rng_seed, stream="reference"), penalty_scale=0.05).grads
    pick = np.random.default_rng(0)
    for name in names:
        flat = np.asarray(base[name]).reshape(-1)
        for i in pick.choice(flat.size, size=min(count, flat.size), replace=False):
            plus, minus = flat.copy(), flat.copy()
            plus[i] += h
            minus[i] -= h
            shape = base[name].shape
            num = (loss_at({**base, name: plus.reshape(shape)}) - loss_at({**base, name: minus.reshape(shape)})) / (2 * h)
            ana = float(np.asarray(grads[name]).reshape(-1)[i])
            assert abs(num - ana) <= 1e-6 * max(1.0, abs(num)), (name, i, num, ana)
    model.set_params(base)


def test_whole_model_gradient_by_central_differences():
    """The chained backward of a gated conv net (plus penalty) is the derivative of the loss."""
    b = _numpy()
    model = _build("lenet5", (1, 8, 8), l0=True, weight_decay=1e-2, lam=0.5)
    x = b.rng(0, stream="reference").uniform((3, 1, 8, 8), "float64")
    y = b.asarray([0, 4, 9])
    _numeric_check(model, x, y, ["conv1.w", "conv1.b", "conv1.log_alpha", "conv2.log_alpha", "fc1.w", "out.log_alpha", "out.b"])

    bn = _build("binary-mlp", (1, 8, 8), norm="batch-norm", init="torch-uniform", bias=True)
    state = bn.state()
    # keep the running statistics fixed between evaluations (they do not affect the train loss)
    _numeric_check(bn, x, y, ["fc1.w", "fc2.b", "bn1.gamma", "bn5.beta", "out.w"])
    bn.set_state(state)
    inv = _build("binary-mlp", (1, 8, 8), norm="soft-invert", init="torch-uniform")
    _numeric_check(inv, x, y, ["fc1.w", "inv1.a", "inv5.a"])


@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
def test_gated_mlp_gradient_by_central_differences(weight_decay):
    """L0Dense's shared-gate backward (dW = diag(z) x^T dy, dz = rowsum(W * x^T dy)) and the
    first layer's skipped input gradient give the derivative of the loss."""
    b = _numpy()
    model = _build("mlp-300-100", (12,), l0=True, weight_decay=weight_decay, lam=0.5)
    x = b.rng(0, stream="reference").uniform((5, 12), "float64")
    y = b.asarray([0, 4, 9, 1, 1])
    _numeric_check(model, x, y, ["fc1.w", "fc1.b", "fc1.log_alpha", "fc2.w", "fc2.log_alpha", "out.log_alpha"])


@pytest.mark.parametrize(("preset", "shape"), [("mlp-300-100", (12,)), ("lenet5", (1, 8, 8)), ("mlp-300-100", (1, 4, 3))])
def test_backward_without_input_grad_fills_the_same_grads(preset, shape):
    b = _numpy()
    model = _build(preset, shape, l0=True, weight_decay=1e-2)
    x = b.rng(0, stream="reference").uniform((3, *shape), "float64")
    logits = model.forward(x, train=True, rng=b.rng(1, stream="reference"))
    dy = b.rng(2, stream="reference").normal(tuple(logits.shape), "float64")
    dx = model.backward(dy)
    assert tuple(dx.shape) == tuple(x.shape)
    full = model.grads()
    assert model.backward(dy, input_grad=False) is None
    skipped = model.grads()
    assert set(skipped) == set(full) == set(model.params())
    for name in full:
        np.testing.assert_array_equal(np.asarray(skipped[name]), np.asarray(full[name]), err_msg=name)


@pytest.mark.parametrize("preset", ["mlp-300-100", "lenet5"])
@pytest.mark.parametrize("weight_decay", [0.0, 5e-4])
def test_penalty_and_grads_is_penalty_and_penalty_grads(preset, weight_decay):
    shape = (12,) if preset.startswith("mlp") else (1, 8, 8)
    model = _build(preset, shape, l0=True, weight_decay=weight_decay, lam=0.3)
    r, grads = model.penalty_and_grads()
    assert float(r) == float(model.penalty())
    full = model.penalty_grads()
    for name, g in full.items():
        if name in grads:
            np.testing.assert_array_equal(np.asarray(grads[name]), np.asarray(g), err_msg=name)
        else:  # left out: the penalty does not depend on it
            assert not name.endswith("log_alpha") and weight_decay == 0.0, name
            assert not np.asarray(g).any(), name
    assert set(grads) <= set(full)
    assert model.penalty_and_grads(value=False)[0] is None and model.penalty_and_grads(grads=False)[1] is None


def test_penalty_and_expected_counts_sum_the_gated_layers():
    model = _build("lenet5", (1, 8, 8), l0=True, lam=[10, 0.5, 0.1, 0.1], weight_decay=5e-4)
    gated = model.gated()
    assert float(model.penalty()) == pytest.approx(sum(float(layer.penalty()) for _, layer in gated))
    flops, l0 = model.expected_flops_and_l0()
    assert flops == pytest.approx(sum(layer.expected_flops_and_l0()[0] for _, layer in gated))
    assert l0 == pytest.approx(sum(layer.expected_flops_and_l0()[1] for _, layer in gated))
    assert set(model.penalty_grads()) == {f"{n}.{k}" for n, _ in gated for k in ("w", "b", "log_alpha")}
    dense = _build("mlp-300-100", (64,))
    assert dense.penalty() == 0.0 and dense.penalty_grads() == {} and dense.architecture() == ""


def test_train_step_applies_constraints_and_evaluate():
    b = _numpy()
    ds = data.load("digits")
    model = _build("mlp-300-100", ds.x_train.shape[1:], l0=True, dtype="float32")
    rng = b.rng(0, stream="reference")
    state = optim.init_state(model.params(), "adam")
    big = {"*.log_alpha": 10.0, "*": 1e-3}  # a huge gate step: the clamp must hold it
    xb, yb = next(data.batches(ds.x_train, ds.y_train, 64, backend=b, rng=rng))
    step, state = train.train_step(
        model, lambda p, g, s: optim.adam(p, g, s, lr=big), state, xb, yb, rng=rng, penalty_scale=1e-3,
        constraints={"*.w": clamp(-0.05, 0.05)},
    )
    assert state["step"] == 1 and tuple(step.logits.shape) == (64, 10)
    for name, layer in model.gated():
        la = np.asarray(layer.params["log_alpha"])
        assert la.min() >= math.log(1e-2) - 1e-6 and la.max() <= math.log(1e2) + 1e-6, name
        assert np.abs(np.asarray(layer.params["w"])).max() <= 0.05
    loss, acc = engine.evaluate(model, ds.x_val, ds.y_val, backend=b, batch_size=100)
    logits = np.asarray(model.forward(b.asarray(ds.x_val), train=False))
    assert acc == pytest.approx(np.mean(logits.argmax(1) == ds.y_val))
    shifted = logits - logits.max(1, keepdims=True)
    ce = -(shifted[np.arange(len(ds.y_val)), ds.y_val] - np.log(np.exp(shifted).sum(1))).mean()
    assert loss == pytest.approx(ce, rel=1e-5)


def test_sequential_from_layers():
    b = _numpy()
    model = Sequential([("fc", Dense(b.asarray(np.eye(2)), b.asarray(np.zeros(2)))), ("relu", ReLU())])
    assert model.output == "fc" and model.prunable() == () and model.prunable(include_output=True) == ("fc.w",)
    out = model.forward(b.asarray(np.array([[1.0, -1.0]])))
    np.testing.assert_array_equal(out, [[1.0, 0.0]])
    conv = Sequential([("c", L0Conv2d(b.asarray(np.ones((2, 1, 1, 1))), None, b.asarray(np.zeros(2))))])
    with pytest.raises(ValueError, match="rng"):
        conv.forward(b.asarray(np.ones((1, 1, 2, 2))), train=True)
    np.testing.assert_array_equal(apply_mask(b.asarray([1.0, 2.0]), b.asarray([True, False])), [1.0, 0.0])


def test_using_holds_params_inside_the_block_only(backend):
    model = _build("mlp-300-100", (6,), backend=backend)
    own = {k: backend.to_numpy(v) for k, v in model.params().items()}
    zeros = backend.xp.zeros_like(model.params()["fc1.w"])
    with model.using({"fc1.w": zeros}) as inside:
        assert inside is model
        assert not backend.to_numpy(model.params()["fc1.w"]).any()
        np.testing.assert_array_equal(backend.to_numpy(model.params()["fc2.w"]), own["fc2.w"])  # a subset only
    for k, v in model.params().items():
        np.testing.assert_array_equal(backend.to_numpy(v), own[k], err_msg=k)
    with pytest.raises(RuntimeError, match="boom"), model.using({"fc1.w": zeros}):
        raise RuntimeError("boom")
    np.testing.assert_array_equal(backend.to_numpy(model.params()["fc1.w"]), own["fc1.w"])  # back after an error
    with pytest.raises(ValueError, match="unknown name"), model.using({"fc9.w": zeros}):
        pass
    np.testing.assert_array_equal(backend.to_numpy(model.params()["fc1.w"]), own["fc1.w"])


def test_effective_params_apply_masks_and_test_time_gates(backend):
    """Masks zero their entries; a closed L0 gate zeroes its input row (dense) or its filter and bias (conv)."""
    model = _build("lenet5", (1, 8, 8), l0=True, backend=backend)
    w = {k: backend.to_numpy(v) for k, v in model.params().items()}
    la = {name: np.full(layer.n_gates, 3.0) for name, layer in model.gated()}
    la["conv1"][[1, 4]] = -5.0  # test-time gate clip(sigmoid(-5) * 1.2 - 0.1, 0, 1) = 0
    la["fc1"][7] = -5.0
    model.set_params({f"{n}.log_alpha": backend.asarray(v, dtype="float64") for n, v in la.items()})
    mask = np.ones(w["conv2.w"].shape, dtype=bool)
    mask[3, 2] = False
    model.set_masks({"conv2.w": backend.asarray(mask)})
    eff = {k: backend.to_numpy(v) for k, v in model.effective_params().items()}
    assert not any(k.endswith("log_alpha") for k in eff)
    assert set(eff) == {k for k in w if not k.endswith("log_alpha")}
    z = min(1.0, 1.2 / (1.0 + math.exp(-3.0)) - 0.1)  # an open gate's test value
    np.testing.assert_allclose(eff["conv1.w"][0], z * w["conv1.w"][0])
    assert not eff["conv1.w"][[1, 4]].any() and not eff["conv1.b"][[1, 4]].any()
    assert not eff["fc1.w"][7].any() and eff["fc1.w"][6].all()
    assert not eff["conv2.w"][3, 2].any()
    np.testing.assert_allclose(eff["conv2.w"][3, 1], z * w["conv2.w"][3, 1])
    np.testing.assert_array_equal(eff["fc1.b"], w["fc1.b"])  # the dense bias is not gated
    dense = _build("mlp-300-100", (6,), backend=backend)
    for k, v in dense.effective_params().items():  # no masks, no gates: the parameters themselves
        np.testing.assert_array_equal(backend.to_numpy(v), backend.to_numpy(dense.params()[k]))


def test_preset_registry(monkeypatch):
    assert list(PRESETS) == ["mlp-300-100", "mlp-1000-1000-500-200", "lenet5", "conv4", "binary-mlp", "gpt-tiny",
                             "sequential"]
    assert all(isinstance(p, Preset) and p.name == name and p.summary for name, p in PRESETS.items())
    assert PRESETS["lenet5"].images and not PRESETS["mlp-300-100"].images
    monkeypatch.setattr("refprune.nn.models.PRESETS", dict(PRESETS))
    from refprune.nn import models

    @preset("tiny", summary="dense 3 - classes", options=("bias", "init", "width"))
    def _tiny(b, num_classes, options):
        b.dense("fc1", options.get("width", 3))
        b.add("relu1", ReLU())
        b.dense("out", num_classes)

    assert "tiny" in models.PRESETS and "tiny" not in PRESETS
    model = build_model("tiny", input_shape=(5,), num_classes=2, backend=_numpy(), rng=_numpy().rng(0), width=4)
    assert [tuple(v.shape) for v in model.params().values()] == [(5, 4), (4,), (4, 2), (2,)]
    assert model.config["preset"] == "tiny" and model.config["options"] == {"width": 4}
    with pytest.raises(ValueError, match="allowed: bias, init, width"):
        build_model("tiny", input_shape=(5,), num_classes=2, backend=_numpy(), rng=_numpy().rng(0), depth=2)
