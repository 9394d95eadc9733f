"""gmp, snip, set and rigl: the quality bar on digits at 90% sparsity, and what each must show."""

from __future__ import annotations

import numpy as np
import pytest

from refprune import io, methods
from refprune.methods import _sparse
from refprune.nn import train


@pytest.fixture(scope="module", params=["gmp", "snip", "set", "rigl"])
def default_run(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param)
    return request.param, out, methods.run(request.param, data="digits", sparsity=0.9, quiet=True, threads=1,
                                           out=str(out))


def test_within_three_points_of_the_dense_network_at_90_percent(default_run):
    name, _, r = default_run
    assert r["weight_sparsity"] == pytest.approx(0.9, abs=0.002), name
    assert r["dense_accuracy"] >= 0.95, name
    assert r["test_accuracy"] >= r["dense_accuracy"] - 0.03, (name, r["test_accuracy"], r["dense_accuracy"])
    assert {row["phase"] for row in r_rows(default_run)} == {"train", "dense"}


def r_rows(default_run):
    _, out, _ = default_run
    ckpt = io.load_checkpoint(out / "checkpoint.npz")
    return ckpt.config["engine"]["rows"]


def test_what_each_method_records(default_run):
    name, out, r = default_run
    densities = r["mask_densities"]
    assert set(densities) == {"fc1.w", "fc2.w", "out.w"}
    if name == "gmp":
        sparsities = [u["sparsity"] for u in r["updates"]]
        assert sparsities == sorted(sparsities) and sparsities[0] == 0.0 and sparsities[-1] == 0.9
        assert r["updates"][-1]["step"] == r["schedule"]["end"]
        assert all(d == pytest.approx(0.1) for d in densities.values())  # uniform by default
    if name == "snip":
        assert r["score_examples"] == 60
        assert len({round(d, 3) for d in densities.values()}) == 3  # one global ranking: uneven layers
    if name in ("set", "rigl"):
        assert densities["out.w"] > densities["fc2.w"]  # ERK: the small layer keeps more
        fractions = [u["drop_fraction"] for u in r["updates"]]
        assert fractions == sorted(fractions, reverse=True) and 0 < fractions[-1] < fractions[0] <= 0.3
        assert all(sum(u["grown"].values()) > 0 for u in r["updates"])
        masks = io.load_checkpoint(out / "checkpoint.npz").masks
        assert masks["model/fc1.w"].mean() == pytest.approx(densities["fc1.w"])


def test_each_plots_its_sparsity_and_accuracy_over_training(default_run):
    """plot.png as every method has one, from the measured weight sparsity of each epoch's row."""
    name, out, r = default_run
    assert r["files"]["plot"] == "plot.png", name
    assert (out / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = [row for row in r_rows(default_run) if row["phase"] == "train"]
    assert [row["epoch"] for row in rows] == list(range(len(rows)))  # an epoch-0 row before training
    assert rows[-1]["weight_sparsity"] == pytest.approx(r["weight_sparsity"])
    assert rows[0]["weight_sparsity"] == (0.0 if name == "gmp" else pytest.approx(0.9, abs=0.002))


def test_rigl_grows_by_the_dense_gradient(tmp_path):
    """The grow scores are the gradient of every weight, pruned ones included, at the masked weights."""
    from refprune.data import batches
    from refprune.engine import Engine

    def engine_and_model(folder):
        eng = Engine(methods.make_spec("rigl", data="digits", subset=60, quiet=True, out=str(tmp_path / folder)))
        return eng, _sparse.build(eng)

    eng, model = engine_and_model("a")
    w = model.params()
    names = list(model.prunable(include_output=True))
    masks = {n: np.random.default_rng(1).random(tuple(w[n].shape)) < 0.3 for n in names}
    model.set_masks(masks)
    got = _sparse.dense_gradients(eng, model, names)
    assert model.masks().keys() == masks.keys()  # the masks are back

    other, reference = engine_and_model("b")  # the same minibatch: the same stream of the same seed
    reference.set_params({n: np.where(masks[n], w[n], 0).astype(w[n].dtype) for n in names})
    ds = other.dataset
    xb, yb = next(iter(batches(ds.x_train, ds.y_train, other.spec.batch_size, backend=other.backend,
                               rng=other.rng_for("grow batches"))))
    expected = train.loss_and_grads(reference, xb, yb).grads
    for n in names:
        np.testing.assert_allclose(got[n], expected[n], rtol=1e-6, atol=1e-7)
        assert np.abs(got[n][~masks[n]]).sum() > 0  # pruned weights get a gradient too


def test_sparse_methods_declare_their_sparsity_option():
    for name in ("gmp", "snip", "set", "rigl"):
        assert methods.get(name).sparsity_option == "sparsity"


@pytest.mark.parametrize(("settings", "reached"), [
    ({"epochs": 2, "begin_epoch": 1}, 0.9),                     # prunes in the second epoch
    ({"epochs": 2, "begin_epoch": 0, "end_fraction": 1.0}, 0.9),  # the last step is the end step
])
def test_gmp_reaches_its_target_whatever_the_schedule_bounds(tmp_path, settings, reached):
    result = methods.run("gmp", data="digits", subset=120, batch_size=40, quiet=True, out=str(tmp_path),
                         sparsity=0.9, dense_baseline=False, **settings)
    assert result["updates"][-1]["sparsity"] == reached
    assert result["weight_sparsity"] == pytest.approx(reached, abs=0.01)


def test_gmp_with_begin_at_or_past_the_end_prunes_once_at_the_last_step(tmp_path):
    """--begin-epoch 2 in 2 epochs: it ended dense beside a target of 0.9; now one update at the last step, warned."""
    with pytest.warns(UserWarning, match="--begin-epoch 2 is not below --epochs 2, so gmp prunes once, at the last step"):
        result = methods.run("gmp", data="digits", subset=120, batch_size=40, epochs=2, quiet=True,
                             out=str(tmp_path), dense_baseline=False)
    assert [u["step"] for u in result["updates"]] == [result["steps"] - 1]
    assert result["weight_sparsity"] == pytest.approx(0.9, abs=0.01)
