"""Weights that travel: refprune -> torch / safetensors -> refprune, --init-from, and files that are not what they claim."""

from __future__ import annotations

import json
import os
import pickle
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

from refprune import backends, cli, compact, io, methods
from refprune.io import interop as io_interop
from refprune.cli.compact import load_run_network, run_test_data
from refprune.engine import evaluate
from refprune.nn import build_like, build_model, describe

torch = pytest.importorskip("torch")
prune = pytest.importorskip("torch.nn.utils.prune")

NP = backends.get("numpy")


def _network(result):
    """The run's final network (final.npz) and its test split as the method feeds it."""
    model, info = load_run_network(result["out"], backend=NP)
    return model, run_test_data(info["run"], backend=NP, dtype=model.dtype)


def _export(result, tmp_path, *args):
    out = tmp_path / "export"
    assert cli.main(["export", result["out"], "--out", str(out), *args]) == 0
    return out


# ------------------------------------------------------------------ a torch module built here, from the mapping


class _Lambda(torch.nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class _SoftInvert(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        a = self.a.clamp(0, 1)
        return x * (1 - a) + (1 - x) * a


def _torch_net(model):
    """The documented mapping, written out: one torch module per refprune layer, under its name."""
    shape, modules = tuple(model.config["input_shape"]), OrderedDict()
    for spec, layer in zip(describe(model), model.layers.values()):
        t = spec["type"]
        if t == "dense":
            modules[spec["name"]] = torch.nn.Linear(shape[0], spec["out"], bias=spec["bias"])
        elif t == "conv":
            modules[spec["name"]] = torch.nn.Conv2d(shape[0], spec["out"], spec["kernel"], stride=spec["stride"],
                                                    padding=spec["padding"], bias=spec["bias"])
        elif t == "max_pool":
            modules[spec["name"]] = torch.nn.MaxPool2d(spec["kernel"], spec["stride"])
        elif t == "batch_norm":
            modules[spec["name"]] = torch.nn.BatchNorm1d(shape[0], eps=spec["eps"], momentum=spec["momentum"])
        elif t == "soft_invert":
            modules[spec["name"]] = _SoftInvert()
        else:
            modules[spec["name"]] = {"relu": torch.nn.ReLU(), "tanh": torch.nn.Tanh(), "flatten": torch.nn.Flatten(),
                                     "hard_invert": _Lambda(lambda x: 1 - x)}[t]
        shape = layer.output_shape(shape)
    return torch.nn.Sequential(modules).double().eval()


def _load_pruned(net, sd):
    """``prune.identity`` where the state_dict has the pruned form, then a strict load."""
    for name, module in net.named_children():
        for p in ("weight", "bias"):
            if f"{name}.{p}_mask" in sd:
                prune.identity(module, p)
    net.load_state_dict(sd, strict=True)
    return net


# ------------------------------------------------------------------ export to torch


@pytest.mark.slow
@pytest.mark.parametrize("name", methods.names())
def test_torch_export_computes_refprunes_outputs_and_accuracy(name, method_run, tmp_path):
    result = method_run(name)
    model, ds = _network(result)
    out = _export(result, tmp_path, "--format", "torch")
    sd = torch.load(out / "model.pt", weights_only=True)
    x = ds.x_test.astype(np.float64)
    ours = model(x)
    net = _load_pruned(_torch_net(model), sd)
    if model.masks():
        assert prune.is_pruned(net)
    with torch.no_grad():
        theirs = net(torch.from_numpy(x)).numpy()
    assert np.max(np.abs(theirs - ours)) <= 1e-6
    accuracy = float(np.mean(theirs.argmax(1) == ds.y_test))
    assert accuracy == pytest.approx(result["test_accuracy"])  # the torch module reaches refprune's accuracy
    assert accuracy == evaluate(model, ds.x_test, ds.y_test, backend=NP)[1]
    for module in net.children():  # prune.remove bakes the masks in, the outputs stay
        for p in ("weight", "bias"):
            if prune.is_pruned(module) and hasattr(module, f"{p}_mask"):
                prune.remove(module, p)
    assert not prune.is_pruned(net)
    with torch.no_grad():
        np.testing.assert_allclose(net(torch.from_numpy(x)).numpy(), theirs, rtol=0, atol=1e-12)
    # the module refprune builds is the same network
    own = io.torch_module(model)
    own.load_state_dict(sd)
    with torch.no_grad():
        np.testing.assert_allclose(own.eval()(torch.from_numpy(x)).numpy(), theirs, rtol=0, atol=1e-12)


def test_the_readme_torch_lines(method_run, tmp_path):
    result = method_run("lottery")
    path = _export(result, tmp_path, "--format", "torch") / "model.pt"
    net = io.torch_module(result["out"])
    net.load_state_dict(torch.load(path, weights_only=True))
    assert prune.is_pruned(net)
    prune.remove(net.fc1, "weight")
    model, ds = _network(result)
    x = ds.x_test.astype(np.float64)
    with torch.no_grad():
        assert np.max(np.abs(net.eval()(torch.from_numpy(x)).numpy() - model(x))) <= 1e-6


def test_baked_masks_load_into_a_plain_module(method_run, tmp_path):
    result = method_run("lottery")
    model, ds = _network(result)
    sd = torch.load(_export(result, tmp_path, "--format", "torch", "--masks", "baked") / "model.pt", weights_only=True)
    assert not any(k.endswith("_mask") for k in sd)
    net = _torch_net(model)
    net.load_state_dict(sd, strict=True)
    x = ds.x_test.astype(np.float64)
    with torch.no_grad():
        assert np.max(np.abs(net(torch.from_numpy(x)).numpy() - model(x))) <= 1e-6
    assert set(sd) == set(io.torch_names(model)) and sd["fc1.weight"].shape == (300, 64)  # torch's (out, in)


# ------------------------------------------------------------------ round trips


@pytest.mark.parametrize("name", methods.names())
def test_round_trip_through_torch_is_bit_identical(name, method_run, tmp_path):
    result = method_run(name)
    model, ds = _network(result)
    path = _export(result, tmp_path, "--format", "torch") / "model.pt"
    if model.gated():  # torch has no gate: the export is the deployed network, log_alpha stays behind
        back = io.load_weights(build_like(model.config, backend=NP, rng=NP.rng(1), l0=False), path)
        x = ds.x_test.astype(np.float64)
        assert np.max(np.abs(back(x) - model(x))) <= 1e-12
        return
    back = io.load_weights(build_like(model.config, backend=NP, rng=NP.rng(1)), path)
    _assert_same_arrays(back, model)


@pytest.mark.parametrize("name", methods.names())
def test_round_trip_through_safetensors_is_bit_identical(name, method_run, tmp_path):
    pytest.importorskip("safetensors")
    from safetensors.numpy import load_file

    result = method_run(name)
    model, _ = _network(result)
    path = _export(result, tmp_path, "--format", "safetensors") / "model.safetensors"
    back = io.load_weights(build_like(model.config, backend=NP, rng=NP.rng(1)), path)
    _assert_same_arrays(back, model)
    tensors = load_file(path)  # what another tool sees: refprune's names and layouts, boolean masks
    for k, v in model.params().items():
        np.testing.assert_array_equal(tensors[k], v)
    for k, v in model.masks().items():
        assert tensors[f"masks/{k}"].dtype == np.bool_
        np.testing.assert_array_equal(tensors[f"masks/{k}"], v)
    _, meta = io_interop.read_safetensors(path)
    assert json.loads(meta["method"]) == name
    assert json.loads(meta["config"])["method"] == name
    assert json.loads(meta["architecture"]) == result["architecture"]
    assert json.loads(meta["network"]) == model.config


def _assert_same_arrays(a, b):
    pa, pb = {**a.params(), **a.state()}, {**b.params(), **b.state()}
    assert set(pa) == set(pb)
    for k in pa:
        assert pa[k].dtype == pb[k].dtype
        np.testing.assert_array_equal(pa[k], pb[k], err_msg=k)
    assert set(a.masks()) == set(b.masks())
    for k, m in a.masks().items():
        np.testing.assert_array_equal(m, b.masks()[k], err_msg=k)


@pytest.mark.parametrize("library", ["jax", "numpy"])
def test_the_readme_jax_lines(library, method_run, tmp_path):
    """The README's three lines that load an export in JAX (numpy stands in where jax is not installed)."""
    pytest.importorskip("safetensors")
    result = method_run("lottery")
    path = str(_export(result, tmp_path, "--format", "safetensors") / "model.safetensors")
    if library == "jax":
        pytest.importorskip("jax")
        import jax.numpy as jnp
        from safetensors.flax import load_file
    else:
        jnp = np
        from safetensors.numpy import load_file
    p = load_file(path)
    w = {k: jnp.where(p["masks/" + k], v, 0) if "masks/" + k in p else v for k, v in p.items() if "masks/" not in k}
    model, ds = _network(result)  # float64; jax computes in float32 unless jax_enable_x64
    tol = 1e-6 if library == "jax" else 0.0
    for k, v in model.masked_params().items():
        np.testing.assert_allclose(np.asarray(w[k]), v, rtol=tol, atol=0)
    x = jnp.asarray(ds.x_test.reshape(len(ds.x_test), -1).astype(np.float64))
    relu = lambda a: jnp.maximum(a, 0)  # noqa: E731
    logits = relu(relu(x @ w["fc1.w"] + w["fc1.b"]) @ w["fc2.w"] + w["fc2.b"]) @ w["out.w"] + w["out.b"]
    ours = model(np.asarray(x, dtype=np.float64))
    assert np.max(np.abs(np.asarray(logits) - ours)) <= (1e-4 if library == "jax" else 1e-12)
    assert np.array_equal(np.asarray(logits).argmax(1), ours.argmax(1))


# ------------------------------------------------------------------ --init-from


def test_init_from_a_torch_state_dict(method_run, tmp_path):
    """A model trained in torch (here: the lottery ticket exported) starts another method's run."""
    result = method_run("lottery")
    model, _ = _network(result)
    path = _export(result, tmp_path, "--format", "torch") / "model.pt"
    run = methods.run("magnitude", model="mlp-300-100", data="digits", subset=200, epochs=0, dtype="float64",
                      quiet=True, threads=1, init_from=str(path), out=str(tmp_path / "mag"))
    ckpt = io.load_checkpoint(tmp_path / "mag" / "final.npz")  # no training: the loaded weights, masked anew
    for k, v in model.params().items():
        np.testing.assert_array_equal(ckpt.params[f"model/{k}"], v)
    assert run["config"]["init_from"] == str(path)


def test_init_from_a_compacted_network_trains_it(method_run, tmp_path):
    result = method_run("magnitude")
    assert cli.main(["compact", result["out"], "--out", str(tmp_path / "small")]) == 0
    report = json.loads((tmp_path / "small" / "compact.json").read_text())
    small = report["architecture"]["compacted"]
    for name in ("lottery", "l0"):
        run = methods.run(name, model="mlp-300-100", data="digits", subset=200, epochs=1, dtype="float64", quiet=True,
                          threads=1, rounds=1, init_from=str(tmp_path / "small" / "model.npz"),
                          out=str(tmp_path / name)) if name == "lottery" else \
            methods.run(name, model="mlp-300-100", data="digits", subset=200, epochs=1, dtype="float64", quiet=True,
                        threads=1, init_from=str(tmp_path / "small"), out=str(tmp_path / name))
        assert run["architecture"]["before"] == small
    net = io.read_network(tmp_path / "l0" / "final.npz")[2]
    assert net["preset"] == "sequential" and net["l0"] is True  # the compacted architecture, gated for L0


def test_compact_command_writes_a_loadable_model(method_run, tmp_path, capsys):
    result = method_run("lottery")
    out = tmp_path / "small"
    assert cli.main(["compact", result["out"], "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "architecture 64-300-100 -> 64-75-25" in printed and "same predictions: True" in printed
    report = json.loads((out / "compact.json").read_text())
    assert report["test_accuracy"]["before"] == report["test_accuracy"]["after"] == pytest.approx(
        result["test_accuracy"])
    assert report["test_logits"]["max_abs_difference"] <= 1e-6
    assert report["flops"]["after"] < report["flops"]["before"]
    model, ds = _network(result)
    small, _ = load_run_network(out, backend=NP)
    x = ds.x_test.astype(np.float64)
    np.testing.assert_array_equal(small(x), compact(model)(x))
    with pytest.raises(SystemExit) as exc:
        cli.main(["compact", result["out"], "--out", str(out)])
    assert exc.value.code == 2
    assert "--overwrite" in capsys.readouterr().err
    assert cli.main(["compact", result["out"], "--out", str(out), "--overwrite"]) == 0


# ------------------------------------------------------------------ bad files: one clear line each


def _one_line_error(model, path, match):
    with pytest.raises(ValueError, match=match) as exc:
        io.load_weights(model, path)
    assert "\n" not in str(exc.value) and str(path) in str(exc.value)
    return str(exc.value)


def _mlp():
    return build_model("mlp-300-100", input_shape=(1, 8, 8), num_classes=10, backend=NP, rng=NP.rng(0))


def test_a_truncated_safetensors_file(tmp_path):
    pytest.importorskip("safetensors")
    path = tmp_path / "model.safetensors"
    io.save_safetensors(path, _mlp())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _one_line_error(_mlp(), path, "not a readable safetensors file")


def test_a_state_dict_of_another_architecture(tmp_path):
    lenet = build_model("lenet5", input_shape=(1, 8, 8), num_classes=10, backend=NP, rng=NP.rng(0))
    path = tmp_path / "lenet.pt"
    io.save_torch(path, lenet)
    message = _one_line_error(_mlp(), path, "does not fit this mlp-300-100 network")
    assert "missing ['fc2.b', 'fc2.w']" in message and "conv1.weight" in message and "shapes differ" in message


def test_a_state_dict_with_a_wrong_shape(tmp_path):
    path = tmp_path / "wide.pt"
    io.save_torch(path, build_model("mlp-300-100", input_shape=(1, 8, 8), num_classes=12, backend=NP, rng=NP.rng(0)))
    message = _one_line_error(_mlp(), path, "shapes differ")
    assert "out.w: file (100, 12) vs model (100, 10)" in message


class _NotWeights:
    pass


@pytest.mark.parametrize("kind", ["module", "object", "list", "mixed"])
def test_a_pickle_that_is_not_a_plain_state_dict(kind, tmp_path):
    path = tmp_path / f"{kind}.pt"
    if kind == "module":
        torch.save(torch.nn.Linear(3, 2), path)  # a whole module: weights_only refuses its classes
    elif kind == "object":
        path.write_bytes(pickle.dumps(_NotWeights()))  # any pickle at all: never unpickled
    elif kind == "list":
        torch.save([torch.zeros(2)], path)
    else:
        torch.save({"state_dict": {"fc1.weight": torch.zeros(2)}, "epoch": 3}, path)
    match = {"module": "not a plain torch state_dict", "object": "not a plain torch state_dict",
             "list": "holds a list, not a state_dict", "mixed": "not a state_dict"}[kind]
    _one_line_error(_mlp(), path, match)


def test_bad_init_from_is_one_line_on_the_command_line(tmp_path, capsys):
    path = tmp_path / "lenet.pt"
    io.save_torch(path, build_model("lenet5", input_shape=(1, 8, 8), num_classes=10, backend=NP, rng=NP.rng(0)))
    with pytest.raises(SystemExit) as exc:
        cli.main(["run", "lottery", "--subset", "50", "--epochs", "0", "--quiet", "--init-from", str(path),
                  "--out", str(tmp_path / "run")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not fit this mlp-300-100 network" in err


def test_export_refuses_to_overwrite(method_run, tmp_path, capsys):
    result = method_run("lottery")
    _export(result, tmp_path, "--format", "torch")
    with pytest.raises(SystemExit):
        _export(result, tmp_path, "--format", "torch")
    assert "--overwrite" in capsys.readouterr().err
    assert os.path.exists(tmp_path / "export" / "model.json")


def _readme_block(containing):
    """The README's ```python block that contains ``containing``."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    blocks = [b.split("```", 1)[0] for b in text.split("```python\n")[1:]]
    found = [b for b in blocks if containing in b]
    assert len(found) == 1, f"the README has {len(found)} python blocks with {containing!r}"
    return found[0]


def test_binary_export_records_binarized_inputs_and_rebuilds_in_plain_torch(method_run, tmp_path, monkeypatch):
    """model.json says the inputs are binarized; the README's plain-torch snippet (its own HardInvert, no
    refprune import) loads the --masks baked export and computes refprune's logits on binarized images."""
    from refprune import data as datasets

    result = method_run("binary")
    run = Path(result["out"])
    _export(result, tmp_path, "--format", "torch", "--masks", "baked")
    described = json.loads((tmp_path / "export" / "model.json").read_text())
    assert described["inputs"].startswith("binarized: x >= 0.5 -> 1.0, else 0.0")
    config = io.load_checkpoint(run / "final.npz").config["run"]
    raw = datasets.subset(datasets.load(config["data"], seed=config["seed"]), config["subset"])
    snippet = _readme_block("class HardInvert").replace("runs/binary/export", str(tmp_path / "export"))
    assert "import refprune" not in snippet and "from refprune" not in snippet
    scope = {"images": torch.from_numpy(raw.x_test)}
    exec(snippet, scope)  # noqa: S102 - the README's own example
    model = io.load_model(run)
    seen = run_test_data(config, backend=NP, dtype="float64")
    assert not np.array_equal(seen.x_test, raw.x_test)  # the network reads binarized images
    expected = NP.to_numpy(model.forward(NP.asarray(seen.x_test)))
    np.testing.assert_allclose(scope["logits"].detach().double().numpy(), expected, rtol=1e-4, atol=1e-4)
