"""What the methods that train to a target sparsity share: the sparsity option, layer budgets, the dense baseline.

``gmp``, ``snip``, ``set`` and ``rigl`` each take ``--sparsity S``, the final weight
sparsity of the prunable layers (every dense and conv weight, the output layer
included: what :func:`refprune.measures.weight_sparsity` reports), split over the
layers by ``--distribution`` (:func:`refprune.layer_densities`), and report
``dense_accuracy``: the same network, from the same initial weights, trained dense
for the same epochs on the same stream of minibatches. Each writes ``plot.png``
(:func:`plot`): the weight sparsity over training beside the accuracies, and each epoch's
row of ``metrics.csv`` has the measured ``weight_sparsity``.
"""

from __future__ import annotations

from functools import partial

from refprune import engine
from refprune._array import namespace
from refprune.criteria import layer_amounts
from refprune.data import batches, num_batches
from refprune.dst import cosine_drop_fraction, drop_grow
from refprune.masks import apply_mask, random_mask
from refprune.measures import weight_sparsity, zero_fraction
from refprune.nn import build_model, train
from refprune.plots import new_figure, save_figure

from ._registry import Option, integer

DEFAULTS = {"model": "mlp-300-100", "epochs": 30, "batch_size": 60, "lr": 1.2e-3}

SPARSITY = Option("sparsity", 0.9, "final weight sparsity of the prunable layers (every dense and conv weight, "
                  "output layer included)", low=0, high=1)
DENSE_BASELINE = Option("dense_baseline", True, "skip training the dense network of the same seed and epochs "
                        "(dense_accuracy)", flag="--no-dense-baseline")


def distribution_option(default):
    """``--distribution``: how the sparsity is split over the layers."""
    return Option("distribution", default, "how the sparsity is split over the layers (refprune.layer_densities): "
                  "uniform (the same in every layer), erk (Erdos-Renyi-Kernel, RigL: small layers keep more) or er",
                  choices=("uniform", "erk", "er"))


def build(eng, rng=None):
    """The run's network, its initial weights drawn first from the run's seed (``rng``: a fresh such stream)."""
    spec, ds = eng.spec, eng.dataset
    return build_model(spec.model, input_shape=ds.input_shape, num_classes=ds.num_classes, backend=eng.backend,
                       rng=rng or eng.rng, dtype=spec.dtype)


def dense_accuracy(eng, o):
    """Train the same network dense (phase ``dense``); its test accuracy, or None when ``--no-dense-baseline``.

    Built from a fresh stream of the run's seed, it starts from the pruned network's initial weights.
    """
    if not o.dense_baseline:
        return None
    spec = eng.spec
    dense = eng.track(build(eng, eng.backend.rng(spec.seed, stream=spec.stream)), "dense")
    eng.train(dense, phase="dense", rng=eng.rng_for("data:dense", seed_name="data"), step=train.train_step,
              optimizer=engine.adam(lr=spec.lr), epochs=spec.epochs)
    return eng.evaluate(dense, "test")[1]


def train_sparse(eng, model, *, phase="train", setup=None, on_step=None):
    """Train ``model`` with its masks (masked forward and gradient) on the same minibatches as the baseline.

    ``setup()`` prepares the phase once (:meth:`refprune.engine.Engine.train`). Every
    epoch's row (and an epoch-0 row before training) has ``val_loss``, ``val_accuracy``
    and the measured ``weight_sparsity``.
    """
    spec = eng.spec

    def measure(m):
        loss, accuracy = eng.evaluate(m, "val")
        return {"val_loss": loss, "val_accuracy": accuracy, "weight_sparsity": weight_sparsity(m)[0]}

    return eng.train(model, phase=phase, setup=setup, rng=eng.rng_for("data:sparse", seed_name="data"), step=train.train_step,
                     optimizer=engine.adam(lr=spec.lr), epochs=spec.epochs, on_step=on_step, measure=measure,
                     initial_row=True)


def finish(eng, result, *, model):
    """``eng.finish`` with the sparse methods' ``plot.png`` (:func:`plot`) drawn from the rows and ``result``."""
    rows = [r for r in eng.rows if r["phase"] == "train"]
    return eng.finish(result, model=model, plot=partial(
        plot, rows=rows, updates=result.get("updates", []), target=result["target_sparsity"],
        test_accuracy=result["test_accuracy"], dense_accuracy=result.get("dense_accuracy"),
        title=f"{eng.spec.method} {eng.spec.model} on {eng.spec.data}"))


def plot(path, *, rows, updates, target, test_accuracy, dense_accuracy=None, title=""):
    """Weight sparsity over the training steps (measured each epoch, and the mask updates), beside the accuracies.

    ``updates``: gmp's ``{"step", "sparsity"}`` (drawn as the schedule's steps) or SET's and
    RigL's ``{"step", "drop_fraction"}`` (drawn on a second axis); SNIP has none.
    """
    fig, (ax_sp, ax_acc) = new_figure(ncols=2)
    steps = [r["step"] for r in rows]
    ax_sp.plot(steps, [r["weight_sparsity"] for r in rows], "o-", ms=3,
               label="measured before training and after each epoch")
    ax_sp.axhline(target, color="grey", linestyle="--", linewidth=1, label=f"target {target:g}")
    scheduled = [u for u in updates if "sparsity" in u]
    if scheduled:
        ax_sp.step([u["step"] for u in scheduled], [u["sparsity"] for u in scheduled], where="post", color="tab:red",
                   linewidth=1, marker=".", label="schedule (mask updates)")
    handles = ax_sp.get_legend_handles_labels()
    swaps = [u for u in updates if "drop_fraction" in u]
    if swaps:
        ax_drop = ax_sp.twinx()
        ax_drop.plot([u["step"] for u in swaps], [u["drop_fraction"] for u in swaps], "s:", color="tab:green",
                     ms=3, label="drop fraction of each update (right axis)")
        ax_drop.set_ylabel("drop fraction")
        ax_drop.set_ylim(0, max(u["drop_fraction"] for u in swaps) * 2.2)  # the lower half: the legend is above
        handles = [a + b for a, b in zip(handles, ax_drop.get_legend_handles_labels())]
    ax_sp.set_xlabel("training step")
    ax_sp.set_ylabel("weight sparsity (zeros among the weights)")
    ax_sp.set_ylim(-0.02, 1.02)
    ax_sp.set_title("sparsity over training")
    ax_sp.legend(*handles, fontsize="small", loc="center right")
    trained = [r for r in rows if "train_accuracy" in r]
    ax_acc.plot([r["step"] for r in trained], [r["train_accuracy"] for r in trained], label="train (running)")
    ax_acc.plot(steps, [r["val_accuracy"] for r in rows], label="validation")
    ax_acc.plot([steps[-1]], [test_accuracy], "o", color="black", label=f"test, final: {test_accuracy:.3f}")
    shown = [r["val_accuracy"] for r in rows] + [r["train_accuracy"] for r in trained] + [test_accuracy]
    if dense_accuracy is not None:
        ax_acc.axhline(dense_accuracy, color="grey", linestyle="--", linewidth=1,
                       label=f"dense test: {dense_accuracy:.3f}")
        shown.append(dense_accuracy)
    ax_acc.set_ylim(max(0.0, min(shown) - 0.03), min(1.0, max(shown)) + 0.03)
    ax_acc.set_xlabel("training step")
    ax_acc.set_ylabel("accuracy")
    ax_acc.set_title(title)
    ax_acc.grid(alpha=0.3)
    ax_acc.legend(fontsize="small", loc="lower right")
    save_figure(fig, path)


def mask_densities(model):
    """``{weight name: kept fraction}`` of the model's masks."""
    return {name: 1.0 - zero_fraction([mask]) for name, mask in model.masks().items()}


# ------------------------------------------------------------------------- dynamic sparse training


def dynamic_sparse_options(*, drop_fraction=0.3):
    """The options SET and RigL share."""
    return (
        SPARSITY,
        distribution_option("erk"),
        Option("drop_fraction", drop_fraction, "fraction of the kept weights dropped (and as many grown) at the "
               "first update; decays to 0 on RigL's cosine schedule", low=0, high=1),
        Option("update_every", 0, "steps between mask updates (0: once per epoch)", type=integer, low=0),
        Option("end_fraction", 0.75, "the last mask update, as a fraction of all training steps", low=0, high=1),
        DENSE_BASELINE,
    )


def train_dynamic(eng, o, *, grow_scores):
    """Random sparse start, then periodic drop/grow: SET and RigL, which differ only in ``grow_scores``.

    ``grow_scores(model, names) -> {name: scores}`` ranks the pruned weights to grow.
    Returns the trained model and the update history.
    """
    model = eng.track(build(eng))
    names = list(model.prunable(include_output=True))

    def random_start():
        rng, params = eng.rng_for("initial masks"), model.params()
        amounts = layer_amounts({n: params[n].shape for n in names}, sparsity=o.sparsity,
                                distribution=o.distribution)
        masks = {n: random_mask(rng.uniform(tuple(params[n].shape), model.dtype), amount=amounts[n]) for n in names}
        model.set_masks(masks)
        model.set_params({n: apply_mask(params[n], masks[n]) for n in names})  # pruned weights are 0
        eng.extra["updates"] = []

    per_epoch = num_batches(len(eng.dataset.y_train), eng.spec.batch_size)
    end = int(o.end_fraction * per_epoch * eng.spec.epochs)
    every = o.update_every or per_epoch

    def update(m, steps):
        fraction = cosine_drop_fraction(steps, initial=o.drop_fraction, end=max(1, end))
        if steps % every or steps > end or fraction <= 0:
            return
        masks, params, scores = m.masks(), m.params(), grow_scores(m, names)
        record = {"step": steps, "drop_fraction": fraction, "grown": {}}
        new_masks, new_params = {}, {}
        for n in names:
            new = drop_grow(params[n], masks[n], drop_fraction=fraction, grow_scores=scores[n])
            grown = new & ~masks[n]
            new_masks[n], new_params[n] = new, apply_mask(params[n], ~grown)  # grown weights start at zero
            record["grown"][n] = int(namespace(None, grown=grown).count_nonzero(grown))
        m.set_params(new_params)
        m.set_masks(new_masks)
        eng.extra["updates"].append(record)

    train_sparse(eng, model, setup=random_start, on_step=update)
    return model, eng.extra["updates"]


def dense_gradients(eng, model, names):
    """``{name: dL/dw}`` of every weight, pruned ones too, at the masked weights, on one minibatch (RigL's grow)."""
    ds, rng = eng.dataset, eng.rng_for("grow batches")
    xb, yb = next(iter(batches(ds.x_train, ds.y_train, eng.spec.batch_size, backend=eng.backend, rng=rng,
                               dtype=eng.spec.dtype)))
    masks = model.masks()
    model.set_masks({})
    try:
        with model.using({n: apply_mask(model.params()[n], masks[n]) for n in masks}):
            grads = train.loss_and_grads(model, xb, yb, rng=rng).grads
    finally:
        model.set_masks(masks)
    return {n: grads[n] for n in names}


def dst_finish(eng, model, history, o):
    """Report SET's and RigL's result (and plot)."""
    return finish(eng, {
        "test_accuracy": eng.evaluate(model, "test")[1],
        "dense_accuracy": dense_accuracy(eng, o),
        "target_sparsity": o.sparsity,
        "updates": history,
        "mask_densities": mask_densities(model),
        "mask_note": "the masks themselves are in checkpoint.npz (masks/model/<layer>.w)",
    }, model=model)
