r"""Magnitude pruning after training: weight pruning versus unit pruning, swept over sparsity.

The experiment of the magnitude-pruning notebook: train a dense network, then, with
no retraining, zero a fraction ``a`` of every layer's weights (the output layer
excluded) and measure the test accuracy, for a sweep of ``a``, in two ways.

**Weight pruning** ranks single weights. For a layer with ``n`` weights ``W`` it
prunes the ``k`` smallest magnitudes,

.. math:: k = \lfloor a\,n \rfloor, \qquad
          M_{ij} = \big[\,|W_{ij}| \text{ is not among the } k \text{ smallest}\,\big],
          \qquad W \leftarrow M \odot W

(:func:`refprune.magnitude_mask`; ties by the tie rule of the oracle protocol).

**Unit pruning** ranks whole units. A dense weight ``W`` of shape ``(in, out)``
feeds output unit ``j`` through its column ``W[:, j]``; the ``k = floor(a * out)``
columns with the smallest L2 norm

.. math:: s_j = \lVert W_{:,j} \rVert_2 = \Big(\sum_i W_{ij}^2\Big)^{1/2}

are zeroed (:func:`refprune.structured_mask` with ``axis=1``; for a convolution
``(out, in, kh, kw)`` the output channels, ``axis=0``). Both are mask criteria of
:mod:`refprune.criteria` (``--criteria weight,unit``); any registered criterion can be swept. Both remove the same fraction of
weights, but unit pruning removes a unit's whole input, so the next layer loses
that feature entirely, while weight pruning only weakens many features a little.
The notebook's finding, reproduced here: accuracy falls much earlier under unit
pruning (on digits, seed 0, at 80% sparsity about 0.95 with weight pruning and 0.5-0.7
with unit pruning; the dense accuracy is about 0.96-0.97, the spread coming from the
float32 summation order of the BLAS in use). The counts are rounded down
(``--rounding floor``), as the notebook's ``int(len * percentage)``. With biases
(e.g. ``mlp-300-100``) a zeroed column still emits ``relu(b_j)``, a constant; the
notebook's network has none.

Result keys: ``curves = {"weight": [[amount, sparsity, accuracy], ...], "unit": [...]}``
(test accuracy; ``sparsity`` the model's weight sparsity, :func:`refprune.measures.weight_sparsity`:
the output layer, which is not pruned, counts too) and ``curves_val`` (the same on the validation split); ``dense_accuracy``.
The summary every method reports (``test_accuracy``, ``weight_sparsity``,
``architecture``) is that of the *chosen pruned model*: the most pruned model of the
sweep (either criterion) whose **validation** accuracy stays within ``--tolerance``
of the dense model's (``chosen``: criterion and amount), so that the choice does not
look at the test set. Files: ``metrics.csv`` (training curves), ``sweep.csv`` (one
row per criterion and amount), ``plot.png`` (accuracy against sparsity, both
curves), ``checkpoint.npz`` (the trained dense model).

Defaults (digits): the notebook's ``mlp-1000-1000-500-200`` without biases, Adam
(lr 1e-3, batch 32, as the notebook's Keras defaults), 10 epochs (the notebook trains
MNIST for 5; digits has 1,077 training images), about 5-15 s of training on 2 idle CPU cores.

The notebook's run, on MNIST (train 5 epochs to about 97.0% test accuracy, then sweep)::

    refprune run magnitude --data mnist --data-dir DIR --model mlp-1000-1000-500-200 \
        --epochs 5 --batch-size 32 --lr 1e-3

It reports that neither pruning loses accuracy up to about 65% sparsity and that unit
pruning deteriorates faster beyond it. The same on a GPU: add ``--backend torch
--device cuda`` (or ``--backend cupy``).
"""

from __future__ import annotations

from functools import partial

from refprune import criteria, engine
from refprune.measures import weight_sparsity
from refprune.nn import build_model, train
from refprune.plots import new_figure, save_figure

from ._registry import Option, register_method

#: The notebook's sweep of pruned fractions.
AMOUNTS = (0.0, 0.25, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99)


def parse_amounts(amounts):
    """The sweep as a tuple of floats in [0, 1], from ``"0,.5,.9"`` or a sequence of numbers."""
    if isinstance(amounts, str):
        try:
            values = tuple(float(a) for a in amounts.split(",") if a.strip())
        except ValueError:
            msg = f"amounts must be comma-separated numbers in [0, 1], got amounts={amounts!r}"
            raise ValueError(msg) from None
    else:
        values = tuple(float(a) for a in amounts)
    if not values or any(not 0.0 <= a <= 1.0 for a in values):
        msg = f"amounts must be a non-empty list of fractions in [0, 1], got amounts={amounts!r}"
        raise ValueError(msg)
    return values


def parse_criteria(names):
    """Registered criterion names from ``"weight,unit"`` or a sequence (``ValueError`` for an unknown one)."""
    items = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
    for name in items:
        criteria.get(name)
    if not items:
        msg = "criteria must name at least one criterion"
        raise ValueError(msg)
    return tuple(items)


OPTIONS = (
    Option("amounts", ",".join(f"{a:g}" for a in AMOUNTS), "comma-separated fractions in [0, 1] pruned from every "
           "layer but the output one", type=parse_amounts, metavar="LIST"),
    Option("criteria", "weight,unit", "mask criteria to sweep (refprune.criteria: weight, unit, N:M such as 2:4, "
           "block:AxB such as block:4x4)", type=parse_criteria, metavar="LIST"),
    Option("distribution", "uniform", "how an amount is split over the layers: uniform (the same in every layer, the "
           "notebook), erk or er (refprune.layer_densities: small layers keep more)", choices=("uniform", "erk", "er")),
    Option("rounding", "floor", "how amount * n becomes a count ('floor' is the notebook's int())",
           choices=("floor", "half-even", "ceil")),
    Option("tolerance", 0.02, "the chosen model: the most pruned one whose validation accuracy is within this of "
           "the dense model's", low=0, high=1, metavar="T"),
)


def prune(model, criterion, amount, *, rounding="floor", distribution="uniform"):
    """Masks of every prunable layer but the output one by ``criterion`` (a name) at ``amount``.

    ``distribution`` ``"uniform"`` prunes ``amount`` of every layer; ``"erk"`` and ``"er"``
    prune ``amount`` of those layers together, split by :func:`refprune.layer_densities`.
    """
    params = model.params()
    weights = {n: params[n] for n in model.prunable()}
    amounts = dict.fromkeys(weights, amount)  # exactly amount: 1 - (1 - amount) can be an ulp less, and floor drops one
    if distribution != "uniform":
        amounts = criteria.layer_amounts({n: w.shape for n, w in weights.items()}, sparsity=amount,
                                         distribution=distribution)
    return criteria.layer_masks(weights, criterion=criterion, amounts=amounts, rounding=rounding)


@register_method("magnitude", summary="train dense, then prune by weight magnitude and by unit L2 norm over a sweep "
                 "of sparsities", defaults={"model": "mlp-1000-1000-500-200", "epochs": 10, "batch_size": 32,
                                           "lr": 1e-3}, options=OPTIONS)
def run(eng, o):
    """Train dense, sweep every criterion over the amounts without retraining, report the chosen pruned model."""
    spec, ds = eng.spec, eng.dataset
    model = eng.track(build_model(spec.model, input_shape=ds.input_shape, num_classes=ds.num_classes,
                                  backend=eng.backend, rng=eng.rng, dtype=spec.dtype))
    eng.train(model, step=train.train_step, optimizer=engine.adam(lr=spec.lr), epochs=spec.epochs)

    _, dense_val = eng.evaluate(model, "val")
    _, dense_test = eng.evaluate(model, "test")
    names = model.prunable()
    curves, curves_val, rows, chosen = {c: [] for c in o.criteria}, {c: [] for c in o.criteria}, [], None
    for criterion in o.criteria:
        for amount in o.amounts:
            masks = prune(model, criterion, amount, rounding=o.rounding, distribution=o.distribution)
            model.set_masks(masks)
            val, test = eng.evaluate(model, "val")[1], eng.evaluate(model, "test")[1]
            sparsity = weight_sparsity(model)[0]
            curves[criterion].append([amount, sparsity, test])
            curves_val[criterion].append([amount, sparsity, val])
            rows.append({"criterion": criterion, "amount": amount, "sparsity": sparsity, "val_accuracy": val,
                         "test_accuracy": test})
            if val >= dense_val - o.tolerance and (chosen is None or sparsity > chosen["sparsity"]):
                chosen = {"criterion": criterion, "amount": amount, "sparsity": sparsity, "test_accuracy": test}
    model.set_masks(prune(model, chosen["criterion"], chosen["amount"], rounding=o.rounding,
                          distribution=o.distribution) if chosen else {})
    result = {
        "test_accuracy": chosen["test_accuracy"] if chosen else dense_test,
        "dense_accuracy": dense_test,
        "chosen": chosen,
        "chosen_rule": f"most pruned model with validation accuracy >= dense - {o.tolerance}",
        "curves": curves,
        "curves_val": curves_val,
        "amounts": list(o.amounts),
        "pruned_layers": list(names),
    }
    return eng.finish(result, model=model, tables={"sweep": rows},
                      plot=partial(plot, curves=curves, dense=dense_test, title=f"{spec.model} on {spec.data}"))


def plot(path, *, curves, dense, title=""):
    """Test accuracy against sparsity, one curve per criterion (the notebook's figure)."""
    fig, (ax,) = new_figure()
    for (criterion, pts), style in zip(curves.items(), ("o-", "s-", "^-", "v-", "d-")):
        ax.plot([p[1] for p in pts], [p[2] for p in pts], style, label=f"{criterion} pruning", markersize=4)
    ax.axhline(dense, color="gray", linestyle=":", linewidth=1, label=f"dense ({dense:.3f})")
    ax.set_xlabel("weight sparsity (every dense and conv weight, output layer included)")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0.0, 1.02)
    ax.set_title(f"Magnitude pruning without retraining\n{title}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)
