"""The ``binary`` method: weight-invariant self-pruning binarized networks.

(a) the default digits run meets the issue's bar; (b) the notebook-shaped path
(MNIST-sized inputs, batch-norm, batch statistics at evaluation) on ``synthetic``,
numpy and torch; (c) the method's math: the straight-through step against torch
autograd + ``torch.optim.Adam``, the sweep values, the exploration draw, the on/off
bookkeeping, evaluation with batch statistics. What every method shares (a short run
on every backend, resume, the NaN guard) is in ``test_methods_contract.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from refprune import backends, binarize, cli, data, engine, io, methods
from refprune.methods import binary
from refprune.nn import build_model, optim, train

LAYERS = ["fc1.w", "fc2.w", "fc3.w", "fc4.w", "out.w"]


def _count_on(params, names):
    on = sum(int(np.count_nonzero(np.abs(params[n]) >= 0.5)) for n in names)
    return on / sum(params[n].size for n in names)


# ----------------------------------------------------------------------------- (a) default run


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("binary-digits")
    return out, methods.run("binary", data="digits", seed=0, threads=1, out=str(out), quiet=True)


def test_default_digits_run_meets_the_bar(default_run):
    _, result = default_run
    # the quality bar: >= 0.70 with at most 5% of the weights on
    assert result["model"] == "binary-mlp"
    assert result["test_accuracy"] >= 0.70
    assert result["fraction_on_total"] <= 0.05
    assert result["weight_sparsity"] >= 0.95
    # the reported measures are those of the binarized network: a weight is zero where it is off
    assert result["weight_sparsity"] == pytest.approx(1.0 - result["fraction_on_total"])


def test_default_sweep_steps_and_files(default_run):
    out, result = default_run
    defaults = methods.get("binary").defaults
    n = len(data.load("digits").y_train)
    assert result["epochs"] == defaults["epochs"]
    assert result["steps"] == defaults["epochs"] * math.ceil(n / defaults["batch_size"])

    # sweep: 0, 0.1, ..., 4 as the notebook; on = 0 switches every weight off (chance)
    ons = [r[0] for r in result["on_sweep"]]
    assert ons == pytest.approx([i / 10 for i in range(41)])
    sweep = dict((round(on, 1), acc) for on, acc in result["on_sweep"])
    assert sweep[1.0] == result["test_accuracy"]
    assert sweep[0.0] <= 0.2
    assert result["best_on_test_accuracy"] == sweep[round(result["best_on"], 1)]
    assert result["best_on_test_max"] == max(sweep.values())
    val = dict((round(on, 1), acc) for on, acc in result["on_sweep_val"])
    assert val[round(result["best_on"], 1)] == max(val.values())  # best_on is chosen on validation

    files = {name: out / path for name, path in result["files"].items()}
    assert set(files) == {"result", "metrics", "plot", "checkpoint", "final"}
    assert files["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert io.read_json(files["result"])["test_accuracy"] == result["test_accuracy"]
    lines = files["metrics"].read_text().splitlines()
    assert len(lines) == 1 + defaults["epochs"]
    assert lines[0].startswith("phase,epoch,step,loss,train_accuracy,val_accuracy,fraction_on")


def test_default_checkpoint_bookkeeping(default_run, alive_in_dense_chain):
    """The fractions on and the units alive, recomputed from the stored real weights."""
    out, result = default_run
    ckpt = io.load_checkpoint(out / "checkpoint.npz")
    params = {n: ckpt.params[f"model/{n}"] for n in LAYERS}
    for n in LAYERS:
        assert params[n].min() >= 0.0 and params[n].max() <= 1.0
    assert result["fraction_on_total"] == pytest.approx(_count_on(params, LAYERS))
    assert result["fraction_on"] == pytest.approx([_count_on(params, [n]) for n in LAYERS])
    assert result["inputs_used"] == int((params["fc1.w"] >= 0.5).any(axis=1).sum())
    # hard-invert (1 - x) passes a unit's status on: the units alive are those of the chain of on-weights
    arch = result["architecture"]
    assert arch["before"] == [64, 512, 512, 512, 512]
    assert arch["after"] == alive_in_dense_chain([params[n] >= 0.5 for n in LAYERS])
    assert arch["after"] != arch["before"]
    assert ckpt.config["run"]["method"] == "binary" and ckpt.config["run"]["model"] == "binary-mlp"


# ----------------------------------------------------------------------------- (b) paper-shaped path


@pytest.mark.slow
@pytest.mark.parametrize("backend_name", ["numpy", "torch"])
def test_notebook_settings_on_synthetic(tmp_path, backend_name):
    reason = backends.unavailable_reason(backend_name)
    if reason is not None:
        pytest.skip(f"backend {backend_name}: {reason}")
    result = methods.run(
        "binary", data="synthetic", backend=backend_name, epochs=1, batch_size=500, out=str(tmp_path), quiet=True,
        hidden="16,16,8,8", on_prob=0.001 if backend_name == "numpy" else 0.05, norm="batch-norm",
        bn_eps=1e-4, bn_momentum=0.15, bn_eval="batch", eval_batch_size=1000, on_values="0,1,2", lr=1e-3,
        epsilon=0.5, random_mag=1.0, threads=1,
    )
    assert result["backend"] == backend_name
    assert result["steps"] == math.ceil(len(data.load("synthetic").y_train) / 500)
    assert [r[0] for r in result["on_sweep"]] == [0.0, 1.0, 2.0]
    assert result["architecture"]["before"] == [784, 16, 16, 8, 8]  # flattened 28x28 inputs, then the widths
    assert len(result["fraction_on"]) == 5 and result["fraction_on_layers"] == ["fc1", "fc2", "fc3", "fc4", "out"]
    assert result["bn_eval"] == "batch"
    ckpt = io.load_checkpoint(tmp_path / "checkpoint.npz")
    w = ckpt.params["model/fc1.w"]
    assert w.shape == (784, 16) and 0.0 <= w.min() and w.max() <= 1.0
    assert 0 <= result["inputs_used"] <= 784


def test_soft_invert_bias_and_float_inputs(tmp_path):
    result = methods.run(
        "binary", data="digits", epochs=1, out=str(tmp_path), quiet=True, hidden=8, norm="soft-invert",
        bias=True, binarize_input=False, on_values="0:1:0.5", on_prob=0.3, threads=1,
    )
    ckpt = io.load_checkpoint(tmp_path / "checkpoint.npz")
    for layer in ("fc1", "out"):
        b = ckpt.params[f"model/{layer}.b"]
        assert b.min() >= 0.0 and b.max() <= 1.0
    assert 0.0 <= float(ckpt.params["model/inv1.a"][0]) <= 1.0
    assert [r[0] for r in result["on_sweep"]] == [0.0, 0.5, 1.0]


def test_float64_run_is_the_same_on_numpy_and_torch(tmp_path):
    if backends.unavailable_reason("torch") is not None:
        pytest.skip("torch is not available")
    kw = dict(data="digits", epochs=1, dtype="float64", quiet=True, hidden=16, on_values="1",
              epsilon=0.5, random_mag=2.0, norm="batch-norm", threads=1)
    a = methods.run("binary", backend="numpy", out=str(tmp_path / "np"), **kw)
    b = methods.run("binary", backend="torch", out=str(tmp_path / "pt"), **kw)
    pa = io.load_checkpoint(tmp_path / "np" / "checkpoint.npz").params
    pb = io.load_checkpoint(tmp_path / "pt" / "checkpoint.npz").params
    assert pa.keys() == pb.keys()
    for k in pa:
        np.testing.assert_allclose(pb[k], pa[k], rtol=1e-9, atol=1e-7, err_msg=k)
    assert a["test_accuracy"] == b["test_accuracy"]
    assert a["fraction_on"] == b["fraction_on"]


def test_binary_refuses_other_presets(tmp_path):
    with pytest.raises(ValueError, match="binary-mlp"):
        methods.run("binary", data="digits", model="mlp-300-100", epochs=1, out=str(tmp_path), quiet=True)


# ----------------------------------------------------------------------------- (d) the method's math


def _tiny_model(b, norm, *, bias):
    rng = b.rng(3, stream="reference")
    net = build_model("binary-mlp", input_shape=(6,), num_classes=3, backend=b, rng=rng, dtype="float64",
                      hidden=(5, 4, 4, 3), norm=norm, bias=bias, bn_momentum=0.15, bn_eps=1e-4)
    names = binary.binarized_names(net, bias=bias)
    host = np.random.default_rng(7)
    # real weights spread over [0, 1], kept away from the 0.5 threshold
    real = {}
    for n in names:
        shape = tuple(int(d) for d in net.params()[n].shape)
        u = host.uniform(0.0, 1.0, size=shape)
        real[n] = np.where(np.abs(u - 0.5) < 0.05, u + 0.1, u)
    net.set_params({n: b.asarray(v, dtype="float64") for n, v in real.items()})
    return net, names


@pytest.mark.parametrize("norm", ["batch-norm", "soft-invert", "hard-invert"])
def test_binary_step_matches_torch_autograd_and_adam(norm):
    torch = pytest.importorskip("torch")
    b = backends.get("numpy")
    net, names = _tiny_model(b, norm, bias=True)
    host = np.random.default_rng(11)
    x = (host.uniform(size=(9, 6)) >= 0.5).astype(np.float64)
    y = host.integers(0, 3, size=9)
    on, lr = 1.7, 0.05
    p0 = {k: np.array(v) for k, v in net.params().items()}
    s0 = {k: np.array(v) for k, v in net.state().items()}

    opt_state = optim.init_state(net.params(), "adam")
    opt = lambda p, g, s: optim.adam(p, g, s, lr=lr)  # noqa: E731
    for _ in range(3):
        step, opt_state = binary.binary_step(net, opt, opt_state, b.asarray(x), b.asarray(y), names=names, on=on)

    # torch: the notebook's procedure, by hand -- binarize, forward, backward, restore, Adam step, clamp
    real = {k: torch.tensor(v, requires_grad=True) for k, v in p0.items()}
    stats = {k: torch.tensor(v) for k, v in s0.items()}
    adam = torch.optim.Adam(list(real.values()), lr=lr)
    layers = ["fc1", "fc2", "fc3", "fc4", "out"]
    for _ in range(3):
        adam.zero_grad()
        binw = {k: torch.where(v.detach().abs() >= 0.5, torch.full_like(v, on), torch.zeros_like(v)).detach().requires_grad_(True) for k, v in real.items()
                if k in names}
        h = torch.tensor(x)
        for i, ln in enumerate(layers, 1):
            h = torch.tanh(h @ binw[f"{ln}.w"] + binw[f"{ln}.b"])
            if norm == "batch-norm":
                h = torch.nn.functional.batch_norm(h, stats[f"bn{i}.running_mean"], stats[f"bn{i}.running_var"],
                                                   real[f"bn{i}.gamma"], real[f"bn{i}.beta"], training=True,
                                                   momentum=0.15, eps=1e-4)
            elif norm == "soft-invert":
                a = real[f"inv{i}.a"].clamp(0, 1)
                h = h * (1 - a) + (1 - h) * a
            else:
                h = 1 - h
        loss = torch.nn.functional.cross_entropy(h, torch.tensor(y))
        loss.backward()
        for k in names:  # straight-through: the gradient at b(w) goes to w
            real[k].grad = binw[k].grad.clone()
        adam.step()
        with torch.no_grad():
            for k in real:
                if k in names or k.endswith(".a"):
                    real[k].clamp_(0.0, 1.0)

    assert float(step.loss) == pytest.approx(loss.item(), rel=1e-10)
    got = net.params()
    for k, v in real.items():
        np.testing.assert_allclose(got[k], v.detach().numpy(), rtol=1e-9, atol=1e-12, err_msg=k)
    for k, v in net.state().items():
        np.testing.assert_allclose(v, stats[k].numpy(), rtol=1e-9, atol=1e-12, err_msg=k)
    # the steps moved the real weights, and the clip to [0, 1] acted on some
    assert any(not np.array_equal(got[k], p0[k]) for k in names)
    clipped = np.concatenate([got[k].ravel() for k in names])
    assert np.any((clipped == 0.0) | (clipped == 1.0))


def test_straight_through_gradient_is_the_gradient_at_the_binarized_weights(backend):
    net, names = _tiny_model(backend, "hard-invert", bias=False)
    host = np.random.default_rng(1)
    xb = backend.asarray((host.uniform(size=(7, 6)) >= 0.5).astype(np.float64))
    yb = backend.asarray(host.integers(0, 3, size=7))
    real = net.params()
    seen = {}

    def spy(params, grads, state):
        seen.update(params=params, grads=grads)
        return params, state

    with net.using(binary.binarized(real, names, on=1.0)):
        expected = train.loss_and_grads(net, xb, yb).grads
    binary.binary_step(net, spy, {"step": 0}, xb, yb, names=names, on=1.0)
    for n in names:
        # the optimizer saw the real weights and the gradient taken at b(w)
        np.testing.assert_array_equal(backend.to_numpy(seen["params"][n]), backend.to_numpy(real[n]))
        np.testing.assert_allclose(backend.to_numpy(seen["grads"][n]), backend.to_numpy(expected[n]), rtol=1e-12)
        # and the model holds the real weights again, not the binarized ones
        np.testing.assert_array_equal(backend.to_numpy(net.params()[n]), backend.to_numpy(real[n]))


def test_gradient_at_binarized_weights_vs_central_differences():
    b = backends.get("numpy")
    net, names = _tiny_model(b, "soft-invert", bias=False)
    host = np.random.default_rng(2)
    xb = (host.uniform(size=(5, 6)) >= 0.5).astype(np.float64)
    yb = host.integers(0, 3, size=5)
    with net.using(binary.binarized(net.params(), names, on=1.3)):
        grads = train.loss_and_grads(net, xb, yb).grads
        w_bin = dict(net.params())
    name, idx, h = "fc2.w", (1, 2), 1e-6

    def loss_at(value):
        w = np.array(w_bin[name])
        w[idx] = value
        net.set_params({**w_bin, name: w})
        logits = net.forward(xb, train=False)
        z = logits - logits.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(yb)), yb]))

    # soft-invert has no batch statistics, so the train-mode gradient is the test-mode one
    numeric = (loss_at(w_bin[name][idx] + h) - loss_at(w_bin[name][idx] - h)) / (2 * h)
    assert grads[name][idx] == pytest.approx(numeric, rel=1e-6, abs=1e-9)


def test_clip_keeps_real_weights_in_unit_interval(backend):
    net, names = _tiny_model(backend, "hard-invert", bias=True)
    host = np.random.default_rng(4)
    xb = backend.asarray((host.uniform(size=(8, 6)) >= 0.5).astype(np.float64))
    yb = backend.asarray(host.integers(0, 3, size=8))
    opt = lambda p, g, s: optim.sgd(p, g, s, lr=50.0)  # noqa: E731  a huge step: the clip must act
    binary.binary_step(net, opt, {"step": 0}, xb, yb, names=names)
    values = np.concatenate([backend.to_numpy(net.params()[n]).ravel() for n in names])
    assert values.min() >= 0.0 and values.max() <= 1.0
    assert np.any(values == 0.0) and np.any(values == 1.0)


def test_on_bookkeeping_by_hand(backend):
    w = backend.asarray(np.array([[0.0, 0.5, 0.2], [0.49, 0.1, 0.0], [1.0, 0.7, 0.0], [0.3, 0.3, 0.0]]))
    v = backend.asarray(np.array([[0.6, 0.0], [0.1, 0.2], [0.0, 0.0]]))
    params = {"a.w": w, "b.w": v}
    assert binary.fraction_on(params, ["a.w", "b.w"]) == [3 / 12, 1 / 6]
    assert binary.total_fraction_on(params, ["a.w", "b.w"]) == pytest.approx(4 / 18)
    assert binary.inputs_used(w) == 2  # rows 0 and 2
    bw = binary.binarized(params, ["a.w"], on=3.0)["a.w"]
    np.testing.assert_array_equal(backend.to_numpy(bw), np.where(backend.to_numpy(w) >= 0.5, 3.0, 0.0))


def test_binarized_names_cover_every_dense_layer_and_bias():
    b = backends.get("numpy")
    net, _ = _tiny_model(b, "batch-norm", bias=True)
    assert binary.binarized_names(net) == ("fc1.w", "fc2.w", "fc3.w", "fc4.w", "out.w")
    names = binary.binarized_names(net, bias=True)
    assert names[5:] == ("fc1.b", "fc2.b", "fc3.b", "fc4.b", "out.b")
    assert "bn1.gamma" not in names


def test_binary_inputs_threshold(backend):
    x = np.array([[[[0.0, 0.49, 0.5, 0.51, 1.0]]]], dtype=np.float32)
    got = binary._binary_inputs(backend, x, "float32")
    np.testing.assert_array_equal(np.asarray(got), [[[[0.0, 0.0, 1.0, 1.0, 1.0]]]])
    np.testing.assert_array_equal(np.asarray(got), backend.to_numpy(binarize(backend.asarray(x), threshold=0.5)))


def test_exploration_on():
    b = backends.get("numpy")
    rng = b.rng(0, stream="reference")
    assert binary.exploration_on(rng, epsilon=0.0, random_mag=3.0) == 1.0
    assert binary.exploration_on(rng, epsilon=1.0, random_mag=0.0) == 1.0  # the notebook's setting
    draws = [binary.exploration_on(rng, epsilon=1.0, random_mag=2.0) for _ in range(200)]
    assert min(draws) >= 1.0 and max(draws) <= 3.0 and max(draws) > 2.5 and min(draws) < 1.5
    mixed = np.array([binary.exploration_on(rng, epsilon=0.25, random_mag=2.0) for _ in range(2000)])
    assert 0.21 < np.mean(mixed > 1.0) < 0.29
    # the draw is the notebook's: on + U(0, m) when the coin u0 < epsilon
    rng2 = b.rng(5, stream="reference")
    u = b.rng(5, stream="reference").uniform((2,), "float64")
    expected = 1.0 + float(u[1]) * 2.0 if float(u[0]) < 0.5 else 1.0
    assert binary.exploration_on(rng2, epsilon=0.5, random_mag=2.0) == expected


def test_parse_on_values():
    values = binary.parse_on_values("0:4:0.1")
    assert len(values) == 41 and values[0] == 0.0 and values[-1] == 4.0 and values[10] == 1.0
    assert binary.parse_on_values("1,2.5") == [1.0, 2.5]
    assert binary.parse_on_values([0, 1]) == [0.0, 1.0]
    for bad in ("0:4", "a,b", "1:0:0.1", "0:1:0", "", "nan"):
        with pytest.raises(ValueError, match="on_values"):
            binary.parse_on_values(bad)


@pytest.mark.parametrize(
    ("option", "value", "match"),
    [("norm", "layer-norm", "norm"), ("on_prob", 1.5, "on_prob"), ("epsilon", -0.1, "epsilon"),
     ("random_mag", -1.0, "random_mag"), ("bn_eval", "ema", "bn_eval"), ("hidden", "8,8", "hidden"),
     ("checkpoint_every", -1, "checkpoint_every")],
)
def test_bad_options_are_value_errors(tmp_path, option, value, match):
    with pytest.raises(ValueError, match=match):
        methods.run("binary", data="digits", epochs=1, out=str(tmp_path), quiet=True, **{option: value})


def test_accuracy_with_running_or_batch_statistics(tmp_path):
    """bn_eval="running" is the engine's test-mode evaluation; "batch" normalizes each batch by its own
    statistics (the notebook never calls net.eval()) and leaves the running statistics as they were."""
    b = backends.get("numpy")
    net, names = _tiny_model(b, "batch-norm", bias=False)
    host = np.random.default_rng(5)
    x, y = (host.uniform(size=(30, 6)) >= 0.5).astype(np.float64), host.integers(0, 3, size=30)
    ds = data.Dataset(x, y, x, y, x, y, name="tiny", num_classes=3)
    eng = engine.Engine(engine.RunSpec(method="binary", out=str(tmp_path), quiet=True, dtype="float64",
                                       batch_size=8), dataset=ds)
    state = {k: np.array(v) for k, v in net.state().items()}
    running = binary.accuracy(eng, net, "val", batch_size=12, bn_eval="running")
    assert running == eng.evaluate(net, "val")[1]
    by_batch = binary.accuracy(eng, net, "val", batch_size=12, bn_eval="batch")
    expected = []
    for start in range(0, 30, 12):
        logits = np.asarray(net.forward(b.asarray(x[start:start + 12]), train=True))
        net.set_state({k: b.asarray(v) for k, v in state.items()})
        expected.extend(logits.argmax(1) == y[start:start + 12])
    assert by_batch == pytest.approx(np.mean(expected))
    for k, v in net.state().items():
        np.testing.assert_array_equal(v, state[k], err_msg=k)  # the running statistics are untouched


def test_cli_help_and_run(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["run", "binary", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "straight-through" in text and "binary-mlp" in text
    code = cli.main(["run", "binary", "--data", "digits", "--epochs", "1", "--hidden", "8", "--on-values", "0,1",
                     "--out", str(tmp_path), "--quiet", "--checkpoint-every", "1"])
    assert code == 0
    assert io.read_json(tmp_path / "result.json")["config"]["options"]["hidden"] == 8
