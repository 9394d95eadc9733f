"""gpt-tiny (refprune.nn.Transformer): the whole network against plain torch, gradients, capture, masks, data.

The torch network is the README's snippet (``README.md``, "The language model in plain
torch"), run as written: the README's claim that it rebuilds the model and gives the
same logits is tested here, and its autograd is the oracle of every gradient of the
transformer on every backend.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from refprune import data
from refprune.conformance.gradcheck import check_grad
from refprune.nn import Transformer, build_model, functional as F, train

torch = pytest.importorskip("torch")

TINY = {"width": 8, "blocks": 2, "heads": 2}
README = Path(__file__).resolve().parents[1] / "README.md"


def readme_snippet():
    """The README's plain-torch block (between its ``lm-torch`` markers)."""
    text = README.read_text()
    found = re.search(r"<!-- lm-torch -->\s*```python\n(.*?)```", text, re.S)
    assert found, "README.md lost its <!-- lm-torch --> block"
    return found.group(1)


def torch_gpt():
    """The ``GPT`` class of the README's snippet (its definition only)."""
    code = readme_snippet().split("# -- load")[0]
    scope = {}
    exec(compile(code, "README.md", "exec"), scope)
    return scope["GPT"]


def _tiny(backend, dtype="float64", context=5, seed=0):
    return build_model("gpt-tiny", input_shape=(context,), num_classes=256, backend=backend,
                       rng=backend.rng(seed, stream="reference"), dtype=dtype, **TINY)


def _torch_copy(model, dtype):
    from refprune import io

    net = torch_gpt()(context=model.config["input_shape"][0], **TINY).to(dtype)
    net.load_state_dict(io.torch_state_dict(model))
    return net


def test_logits_and_every_gradient_match_torch(backend, dtype, close):
    model = _tiny(backend, dtype)
    ids = np.random.default_rng(0).integers(0, 256, size=(3, 5))
    targets = np.random.default_rng(1).integers(0, 256, size=(3, 5))
    net = _torch_copy(model, torch.float64)
    # torch in float64 on the values rounded to dtype
    net.load_state_dict({k: v.to(getattr(torch, dtype)).to(torch.float64) for k, v in net.state_dict().items()})
    logits = net(torch.tensor(ids))
    torch.nn.functional.cross_entropy(logits.reshape(-1, 256), torch.tensor(targets).reshape(-1)).backward()
    step = train.loss_and_grads(model, backend.asarray(ids, dtype="int64"), backend.asarray(targets, dtype="int64"))
    scale = 8.0 if dtype == "float32" else 1.0
    close(step.logits, logits.detach().numpy().reshape(-1, 256), dtype, "logits", scale=scale)
    grads = dict(net.named_parameters())
    for name, g in step.grads.items():
        ln, key = name.split(".")
        expected = grads[f"{ln}.{ {'w': 'weight', 'b': 'bias', 'gamma': 'weight', 'beta': 'bias'}[key] }"].grad
        expected = expected.numpy().T if model.layers[ln].kind == "dense" and key == "w" else expected.numpy()
        close(g, expected, dtype, f"d {name}", scale=scale * 4)
    assert set(step.grads) == set(model.params())


def test_central_differences_through_the_network(backend):
    model = _tiny(backend)
    rng = np.random.default_rng(2)
    ids = backend.asarray(rng.integers(0, 256, size=(2, 4)), dtype="int64")
    targets = backend.asarray(rng.integers(0, 256, size=(2, 4)), dtype="int64")
    grads = train.loss_and_grads(model, ids, targets).grads
    for name in ("h0_qkv.b", "h1_ln2.gamma", "pos.w", "h1_fc2.b"):
        w = backend.to_numpy(model.params()[name])

        def loss(a, name=name):
            with model.using({name: backend.asarray(a, dtype="float64")}):
                return np.asarray(backend.to_numpy(F.softmax_cross_entropy(model(ids), train.label_rows(targets))))

        # entries of 1e-6 (the query and key biases at GPT-2's small init) carry ~1e-10 of rounding noise
        check_grad(loss, w, np.ones(()), backend.to_numpy(grads[name]), h=1e-5, tol=1e-3, name=name)


def test_structure_prunable_layers_and_capture(backend):
    model = _tiny(backend, "float32")
    assert isinstance(model, Transformer)
    assert model.prunable() == tuple(f"h{i}_{s}.w" for i in range(2) for s in ("qkv", "proj", "fc", "fc2"))
    assert all(model.weight_kind(n) == "dense" for n in model.prunable()) and model.output == "head"
    ids = backend.asarray(np.random.default_rng(3).integers(0, 256, size=(2, 5)), dtype="int64")
    logits, inputs = model.capture_inputs(ids)
    assert tuple(logits.shape) == (10, 256) and set(inputs) == set(model.prunable())
    assert [tuple(inputs[n].shape) for n in ("h0_qkv.w", "h0_fc2.w")] == [(2, 5, 8), (2, 5, 32)]
    # a pruned layer changes what the layers after it receive, not what those before it receive
    before = {k: backend.to_numpy(v) for k, v in inputs.items()}
    w = model.params()["h0_fc.w"]
    model.set_masks({"h0_fc.w": backend.xp.zeros(w.shape, dtype=backend.xp.bool)})
    _, after = model.capture_inputs(ids, ["h0_qkv.w", "h0_fc2.w", "h1_qkv.w"])
    np.testing.assert_array_equal(backend.to_numpy(after["h0_qkv.w"]), before["h0_qkv.w"])
    assert not np.allclose(backend.to_numpy(after["h1_qkv.w"]), before["h1_qkv.w"])
    np.testing.assert_array_equal(backend.to_numpy(after["h0_fc2.w"]), 0.0)  # fc's biases start at 0, gelu(0) = 0
    assert "forward" not in vars(model.layers["h0_fc"])  # the recording wrapper is gone


def test_pruned_units_show_in_the_architecture(backend):
    from refprune import measures

    model = _tiny(backend, "float32")
    arch = measures.architecture(model)
    assert arch["layers"] == ["h0_qkv", "h0_proj", "h0_fc", "h0_fc2", "h1_qkv", "h1_proj", "h1_fc", "h1_fc2", "head"]
    assert arch["before"] == arch["after"] == [8, 8, 8, 32, 8, 8, 8, 32, 8]
    fc = backend.to_numpy(model.params()["h0_fc.w"]) != 0
    fc[:, :5] = False  # hidden units 0..4 of block 0's MLP get no input
    model.set_masks({"h0_fc.w": backend.asarray(fc)})
    assert measures.architecture(model)["after"][3] == 27


def test_bad_inputs():
    from refprune import backends

    b = backends.get("numpy")
    with pytest.raises(ValueError, match="gpt-tiny reads windows of byte ids"):
        build_model("gpt-tiny", input_shape=(1, 8, 8), num_classes=10, backend=b, rng=b.rng(0))
    with pytest.raises(ValueError, match="width divisible by heads"):
        build_model("gpt-tiny", input_shape=(4,), num_classes=256, backend=b, rng=b.rng(0), width=6, heads=4)
    model = _tiny(b, context=4)
    with pytest.raises(ValueError, match="time <= 4"):
        model(np.zeros((1, 5), dtype=np.int64))
    with pytest.raises(TypeError, match="ids must be an integer array"):
        model(np.zeros((1, 4)))


# ------------------------------------------------------------------ the corpus


def test_stdlib_corpus_is_deterministic_and_split_by_file():
    ds = data.load("stdlib")
    assert ds.input_shape == (data.STDLIB_CONTEXT,) and ds.num_classes == 256
    assert ds.x_train.dtype == np.uint8 and ds.y_train.shape == ds.x_train.shape
    np.testing.assert_array_equal(ds.x_train[0, 1:], ds.y_train[0, :-1])  # each byte predicts the next
    files = data.stdlib_files()
    assert not set(files["train"]) & set(files["test"]) and not set(files["val"]) & set(files["test"])
    assert all(len(files[s]) for s in files)
    again = data.load("stdlib")
    assert again.info == ds.info and len(ds.info["sha256"]) == 64
    assert ds.info["bytes"]["train"] <= data.STDLIB_BYTES["train"]


def test_stdlib_reads_another_folder(tmp_path):
    (tmp_path / "pkg").mkdir()
    for i in range(60):
        (tmp_path / "pkg" / f"m{i}.py").write_text(f"def f{i}(x):\n    return x * {i}\n" * 20)
    (tmp_path / "site-packages").mkdir()
    (tmp_path / "site-packages" / "skip.py").write_text("not read\n")
    files = data.stdlib_files(tmp_path)
    assert sum(map(len, files.values())) == 60 and all(f.startswith("pkg/") for s in files.values() for f in s)
    ds = data.load("stdlib", tmp_path)
    assert ds.info["root"] == str(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a folder of Python sources"):
        data.load("stdlib", tmp_path / "missing")


def test_unigram_baseline():
    train = np.array([0, 0, 0, 1], dtype=np.uint8)
    # add-one: p(0) = 4/260, p(1) = 2/260
    expected = -(np.log2(4 / 260) + np.log2(2 / 260)) / 2
    assert data.unigram_bits_per_byte(train, np.array([0, 1])) == pytest.approx(expected)
    ds = data.load("stdlib")
    assert 4.0 < data.unigram_bits_per_byte(ds.y_train, ds.y_test) < 6.0


# ------------------------------------------------------------------ training, export, compact through the CLI


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    from refprune import methods

    out = tmp_path_factory.mktemp("lm") / "run"
    result = methods.run("dense", data="stdlib", model="gpt-tiny", subset=64, epochs=1, batch_size=32, quiet=True,
                         out=str(out), **TINY)
    return out, result


def test_dense_run_reports_bits_per_byte_and_the_corpus(lm_run):
    import json

    out, result = lm_run
    with open(out / "result.json") as f:
        stored = json.load(f)
    assert stored["test_bits_per_byte"] == pytest.approx(stored["test_loss"] / np.log(2))
    assert stored["test_perplexity"] == pytest.approx(np.exp(stored["test_loss"]))
    assert 4.0 < stored["unigram_bits_per_byte"]["test"] < 6.0
    assert stored["corpus"]["sha256"] == data.load("stdlib").info["sha256"]
    assert stored["architecture"]["before"] == [8, 8, 8, 32, 8, 8, 8, 32, 8]
    assert (out / "plot.png").exists() and (out / "final.npz").exists()


def test_readme_snippet_loads_the_export_in_plain_torch(lm_run, tmp_path, capsys, monkeypatch):
    from refprune import cli

    out, _ = lm_run
    assert cli.main(["export", str(out), "--format", "torch"]) == 0
    assert cli.main(["export", str(out), "--format", "safetensors", "--out", str(tmp_path / "st")]) == 0
    capsys.readouterr()
    code = readme_snippet().replace('RUN = "runs/gpt"', f"RUN = {str(out)!r}")
    assert code != readme_snippet()
    exec(compile(code, "README.md", "exec"), {})
    difference = float(capsys.readouterr().out.strip().splitlines()[-1])
    assert difference < 1e-4


def test_safetensors_export_round_trips(lm_run, tmp_path):
    from refprune import cli, io

    out, _ = lm_run
    assert cli.main(["export", str(out), "--format", "safetensors", "--out", str(tmp_path)]) == 0
    again = io.load_model(tmp_path / "model.safetensors")
    first = io.load_model(out)
    for k, v in first.params().items():
        np.testing.assert_array_equal(again.params()[k], v, err_msg=k)


def test_compact_says_it_keeps_a_transformer(lm_run, capsys):
    from refprune import cli

    out, _ = lm_run
    with pytest.raises(SystemExit) as info:
        cli.main(["compact", str(out)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "compact keeps the architecture of a transformer" in err and "Traceback" not in err


def test_dense_refuses_a_model_that_cannot_read_the_data(tmp_path):
    from refprune import methods

    with pytest.raises(ValueError, match="a byte corpus .* needs --model gpt-tiny"):
        methods.run("dense", data="stdlib", model="mlp-300-100", subset=8, quiet=True, out=str(tmp_path / "a"))
    with pytest.raises(ValueError, match="--model gpt-tiny does not read digits"):
        methods.run("dense", data="digits", model="gpt-tiny", subset=8, quiet=True, out=str(tmp_path / "b"))
    with pytest.raises(ValueError, match="size gpt-tiny"):
        methods.run("dense", data="digits", width=8, subset=8, quiet=True, out=str(tmp_path / "c"))


def test_torch_module_points_to_the_readme_for_a_transformer(lm_run):
    from refprune import io

    with pytest.raises(ValueError, match="The language model in plain torch"):
        io.torch_module(io.load_model(lm_run[0]))


def test_the_run_lists_and_compares_like_every_other(lm_run, tmp_path, capsys):
    from refprune import cli

    out, _ = lm_run
    assert cli.main(["runs", str(out.parent)]) == 0
    assert cli.main(["compare", str(out), "--out", str(tmp_path / "c.png")]) == 0
    table = capsys.readouterr().out
    assert "dense" in table and "stdlib" in table and "gpt-tiny" in table and (tmp_path / "c.png").exists()
