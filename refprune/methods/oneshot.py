r"""One-shot pruning of a trained network, layer by layer, from calibration inputs (no retraining).

The procedure of the official Wanda and SparseGPT codes, on any trained refprune
network (``--init-from RUN``): draw ``--calibration`` examples (sequences, for a
language model) from the training split with ``--calibration-seed``; then, for each
prunable layer in order (the output layer excluded), run those examples through the
network **as pruned so far** to get the layer's inputs :math:`X` (``(tokens, in)``;
a convolution's unfolded windows) and prune its weight :math:`W` (``(out, in)``) to
``--sparsity`` (or the N:M ``--pattern``, n kept of every m along the input axis) by
``--criterion``:

* ``magnitude``: the smallest :math:`|W_{ij}|` of the whole layer;
* ``wanda``: the smallest :math:`S_{ij} = |W_{ij}| \lVert X_{:,j} \rVert_2` of each output row;
* ``ria``: the smallest :math:`(|W_{ij}|/\sum_k |W_{kj}| + |W_{ij}|/\sum_k |W_{ik}|) \lVert X_{:,j} \rVert_2^a` of each output row;
* ``sparsegpt``: column block by column block, the smallest OBS saliency :math:`w^2/[H^{-1}]_{jj}`, the later columns corrected;
* ``obc``: exact greedy OBS, one weight at a time in each row, the row corrected;

with :math:`H = \frac{2}{n} X^T X` (:func:`refprune.hessian`); magnitude, Wanda and RIA
keep the other weights as they are (the functions of protocol v2, :mod:`refprune.oneshot`).
Each layer's **reconstruction error** on its own calibration inputs is reported,

.. math:: E = \frac{1}{n} \lVert (W - \hat W) X^T \rVert_F^2

(:func:`refprune.reconstruction_error`), with the relative error :math:`E / (\frac{1}{n} \lVert W X^T \rVert_F^2)`.
``--distribution owl`` gives the layers their own sparsities from their outlier ratios
(OWL, Yin et al. 2024: layers with more outlier features keep more), measured on the
dense network, averaging ``--sparsity``.

``result.json`` adds ``before`` and ``after`` (held-out test loss and accuracy of the
network before and after pruning; bits per byte for a byte-level language model),
``layers`` (per weight: shape, sparsity, pruned count, ``reconstruction_error``,
``relative_error``, seconds; also ``layers.csv``), ``reconstruction_error`` (by weight),
``prune_seconds`` (capture and pruning, every layer) and the calibration settings.
Each layer is a phase (``eng.once``): an interrupted run resumes at the first layer
not done, and ends with the same network as a run straight through.

The network. With ``--init-from`` (a run folder, its ``final.npz``, a compacted
``model.npz``, a torch ``.pt`` with ``--model``), the file's network, as trained, with
its architecture read from the file; ``--data`` must be the data it was trained on.
Without it, ``--model`` (default ``mlp-300-100``) is first trained dense for
``--epochs`` (default 10; Adam, as the other methods) in phase ``dense``, so that
``refprune run oneshot`` alone shows the whole procedure on digits. ``--epochs N``
with ``--init-from`` trains the loaded network N more epochs before pruning.

Train a network with any method, then prune it::

    refprune run magnitude --data mnist5k --model mlp-300-100 --amounts 0 --out runs/dense
    refprune run oneshot --data mnist5k --init-from runs/dense --criterion sparsegpt --sparsity 0.5
    refprune run oneshot --data mnist5k --init-from runs/dense --criterion wanda --pattern 2:4
"""

from __future__ import annotations

import math
import time
import warnings

from refprune import engine, io
from refprune._array import namespace
from refprune.budgets import owl_densities
from refprune.calibration import Calibration, matrix_to_weight, weight_matrix
from refprune.data import batches, shuffled_order
from refprune.masks import apply_mask, magnitude_mask
from refprune.nn import train
from refprune.nn.models import build_like, build_model
from refprune.oneshot import (
    activation_norms,
    hessian,
    obc_prune,
    outlier_ratio,
    reconstruction_error,
    ria_scores,
    sparsegpt_prune,
    wanda_mask,
    wanda_scores,
)
from refprune.patterns import nm_mask

from ._registry import Option, integer, register_method
from .dense import held_out

CRITERIA = ("magnitude", "wanda", "ria", "sparsegpt", "obc")


def parse_pattern(value):
    """``"2:4"`` -> ``(2, 4)``: n kept of every m, ``0 <= n <= m``, m >= 1."""
    if value is None or isinstance(value, tuple):
        return value
    n, sep, m = str(value).partition(":")
    try:
        n, m = int(n), int(m)
    except ValueError:
        n = m = -1
    if not sep or m < 1 or not 0 <= n <= m:
        msg = f"expected N:M with 0 <= N <= M (N kept of every M), such as 2:4, got {value!r}"
        raise ValueError(msg)
    return (n, m)


OPTIONS = (
    Option("criterion", "wanda", "what decides the pruned weights (see above)", choices=CRITERIA),
    Option("sparsity", 0.5, "fraction of each pruned layer's weights set to zero (the output layer is not pruned)",
           low=0, high=1),
    Option("pattern", None, "N:M semi-structured sparsity instead of --sparsity: N kept of every M consecutive "
           "inputs of each output (2:4 is NVIDIA's sparse tensor-core pattern)", type=parse_pattern, metavar="N:M"),
    Option("distribution", "uniform", "per-layer sparsities: uniform (every layer --sparsity) or owl (outlier-"
           "weighted, averaging --sparsity)", choices=("uniform", "owl")),
    Option("calibration", 128, "calibration examples (sequences) drawn from the training split", type=integer,
           low=1, metavar="N"),
    Option("calibration_seed", 0, "seed of the draw of the calibration examples", type=integer, low=0),
    Option("damp", 0.01, "sparsegpt/obc: dampening added to the Hessian's diagonal, as a fraction of its mean",
           low=0),
    Option("block", 128, "sparsegpt: columns pruned and corrected together (the lazy-batch block)", type=integer,
           low=1),
    Option("ria_a", 0.5, "ria: the exponent a of the activation norm", low=0),
    Option("owl_lam", 0.08, "owl: the layers' sparsities span [s - lam, s + lam] (OWL's lambda)", low=0, high=0.5),
    Option("owl_m", 5.0, "owl: a score is an outlier above M times its layer's mean (OWL's M)", positive=True),
)

#: The network trained first when there is no --init-from, and its training.
DENSE = {"model": "mlp-300-100", "epochs": 10}


# ---------------------------------------------------------------------------------- one layer


def prune_matrix(w, x, /, *, criterion, amount=None, n=None, m=None, damp=0.01, block=128, ria_a=0.5, h=None):
    r"""``(w_hat, mask)``: the ``(out, in)`` weight ``w`` pruned by ``criterion`` from its inputs ``x`` ``(tokens, in)``.

    ``amount`` (a fraction of the layer's weights) or the N:M pattern ``n`` kept of
    every ``m`` along the input axis. ``w_hat`` is ``w`` with the pruned weights zero
    and, for ``sparsegpt`` and ``obc``, the kept ones corrected. ``h``: the Hessian
    :math:`\tfrac2n X^\top X` when already computed.
    """
    pattern = {"n": n, "m": m} if n is not None else {"amount": amount}
    if criterion == "magnitude":
        mask = nm_mask(w, n=n, m=m, axis=-1) if n is not None else magnitude_mask(w, amount=amount)
    elif criterion in ("wanda", "ria"):
        norms = activation_norms(x)
        if criterion == "wanda":
            mask = wanda_mask(w, norms, **pattern)
        else:  # Wanda's per-row selection on RIA's (nonnegative) scores: |s| * 1 = s
            mask = wanda_mask(ria_scores(w, norms, a=ria_a), namespace(None, x=x).ones_like(norms), **pattern)
    elif criterion == "sparsegpt":
        return sparsegpt_prune(w, hessian(x) if h is None else h, **pattern, block=block, damp=damp)
    elif criterion == "obc":
        if n is not None:
            msg = "obc prunes unstructured only: use --sparsity with obc, or --pattern with another criterion"
            raise ValueError(msg)
        return obc_prune(w, hessian(x) if h is None else h, amount=amount, damp=damp)
    else:
        msg = f"criterion must be one of {', '.join(CRITERIA)}, got criterion={criterion!r}"
        raise ValueError(msg)
    return apply_mask(w, mask), mask


def _layer_row(name, w, w_hat, mask, x, h):
    xp = namespace(None, w=w)
    error = float(reconstruction_error(w, w_hat, h))
    scale = float(reconstruction_error(w, xp.zeros_like(w), h))
    size = int(w.shape[0]) * int(w.shape[1])
    pruned = size - int(xp.count_nonzero(mask))
    return {"weight": name, "shape": [int(d) for d in w.shape], "tokens": int(x.shape[0]), "pruned": pruned,
            "sparsity": pruned / size, "reconstruction_error": error,
            "relative_error": error / scale if scale > 0 else math.nan}


def prune_unit(model, calibration, unit, *, o, sparsities):
    """Prune every weight of calibration unit ``unit`` from the inputs the network as pruned so far sends in.

    Sets the pruned weights and masks on ``model``; returns one row per weight, its
    ``seconds`` the unit's (capture and pruning) shared equally by its weights.
    """
    start = time.perf_counter()
    inputs = calibration.inputs(unit)
    n, m = o.pattern or (None, None)
    rows, params, masks = [], {}, dict(model.masks())
    for name in calibration.units[unit][1]:
        w, x = weight_matrix(model, name), inputs[name]
        if m is not None and int(w.shape[1]) % m:
            msg = (f"--pattern {n}:{m}: {name} has {int(w.shape[1])} inputs per output, not a multiple of {m}; "
                   "use --sparsity for this network")
            raise ValueError(msg)
        h = hessian(x)
        w_hat, mask = prune_matrix(w, x, criterion=o.criterion, amount=sparsities[name], n=n, m=m, damp=o.damp,
                                   block=o.block, ria_a=o.ria_a, h=h)
        rows.append(_layer_row(name, w, w_hat, mask, x, h))
        params[name], masks[name] = matrix_to_weight(model, name, w_hat), matrix_to_weight(model, name, mask)
    model.set_params(params)
    model.set_masks(masks)
    seconds = (time.perf_counter() - start) / len(rows)
    return [{**row, "seconds": seconds} for row in rows]


# ---------------------------------------------------------------------------------- the run


def _network(eng):
    """The network of ``--init-from``, rebuilt from the file's description; else ``--model`` (a torch file, or none)."""
    spec, ds = eng.spec, eng.dataset
    network = io.read_network(spec.init_from)[2] if spec.init_from else None
    if network is None:
        if spec.init_from and spec.model is None:
            msg = f"--init-from {spec.init_from} holds no network description: pass --model PRESET as well"
            raise ValueError(msg)
        return build_model(spec.model or DENSE["model"], input_shape=ds.input_shape, num_classes=ds.num_classes,
                           backend=eng.backend, rng=eng.rng, dtype=spec.dtype)
    if spec.model is not None and spec.model != network.get("preset"):
        msg = (f"--model {spec.model} but --init-from {spec.init_from} holds a {network.get('preset')} network; "
               "leave --model out (it is read from the file)")
        raise ValueError(msg)
    shape, classes = tuple(network.get("input_shape", ())), network.get("num_classes")
    if shape != tuple(ds.input_shape) or classes != ds.num_classes:
        msg = (f"--init-from {spec.init_from} holds a network for inputs {shape} and {classes} classes, but --data "
               f"{spec.data} has inputs {tuple(ds.input_shape)} and {ds.num_classes} classes; pass the --data the "
               "network was trained on")
        raise ValueError(msg)
    return build_like(network, backend=eng.backend, rng=eng.rng, dtype=spec.dtype)


def calibration_batches(eng, *, count, seed):
    """The first ``count`` training examples in the order drawn with ``seed``, as backend batches.

    A split smaller than ``count`` gives all of its examples, with a warning.
    """
    ds = eng.dataset
    n = len(ds.y_train)
    if count > n:
        warnings.warn(f"--calibration {count} is more than the {n} training examples; calibrating on all {n}",
                      UserWarning, stacklevel=2)
        count = n
    chosen = shuffled_order(eng.backend.rng(seed, stream="reference"), n, backend=eng.backend)[:count]
    return [xb for xb, _ in batches(ds.x_train[chosen], ds.y_train[chosen], eng.spec.batch_size,
                                    backend=eng.backend, dtype=eng.spec.dtype)]


def layer_sparsities(model, calibration, o):
    """``{weight: sparsity}``: ``--sparsity`` everywhere, or OWL's outlier-weighted split of it.

    OWL's unit is a unit of the calibration (a top-level layer: one dense or conv layer,
    or a whole transformer block, as OWL's decoder layer): its outlier ratio is over the
    Wanda scores of all its weights, measured on the dense network, and all its weights
    get its density.
    """
    names = {layer: weights for layer, weights in calibration.units}
    if o.distribution == "owl" and o.pattern:
        msg = "--distribution owl gives each layer its own sparsity, --pattern N:M the same to all: choose one"
        raise ValueError(msg)
    if o.distribution == "uniform" or o.pattern:
        return {w: o.sparsity for weights in names.values() for w in weights}
    ratios, sizes = {}, {}
    for unit, (layer, weights) in enumerate(calibration.units):
        inputs = calibration.inputs(unit)  # the dense network's: nothing is pruned yet
        scores = [wanda_scores(weight_matrix(model, w), activation_norms(inputs[w])) for w in weights]
        ratios[layer] = outlier_ratio(scores, m=o.owl_m)
        sizes[layer] = (sum(int(s.shape[0]) * int(s.shape[1]) for s in scores),)
    densities = owl_densities(sizes, ratios, density=1.0 - o.sparsity, lam=o.owl_lam)
    return {w: 1.0 - densities[layer] for layer, weights in names.items() for w in weights}


def _pruning_report(o, sparsities, rows, chunks):
    """The result's account of the pruning: target, pattern, per-layer sparsities and errors, calibration."""
    return {
        "criterion": o.criterion,
        "target_sparsity": 1 - o.pattern[0] / o.pattern[1] if o.pattern else o.sparsity,
        "pattern": f"{o.pattern[0]}:{o.pattern[1]}" if o.pattern else None,
        "distribution": o.distribution,
        "layer_sparsities": sparsities,
        "layers": rows,
        "reconstruction_error": {r["weight"]: r["reconstruction_error"] for r in rows},
        "prune_seconds": sum(r["seconds"] for r in rows),
        "calibration": {"examples": sum(int(c.shape[0]) for c in chunks), "seed": o.calibration_seed,
                        "tokens": {r["weight"]: r["tokens"] for r in rows}},
    }


@register_method("oneshot", summary="prune a trained network once, layer by layer from calibration inputs: "
                 "magnitude, Wanda, RIA, SparseGPT, OBC (no retraining)",
                 defaults={"model": None, "epochs": None, "batch_size": 60, "lr": 1.2e-3}, options=OPTIONS,
                 sparsity_option="sparsity")
def run(eng, o):
    """Train the network (or load it), measure it, prune its layers in order, measure it again."""
    spec = eng.spec
    model = eng.track(_network(eng))
    epochs = spec.epochs if spec.epochs is not None else (0 if spec.init_from else DENSE["epochs"])
    eng.train(model, phase="dense", step=train.train_step, optimizer=engine.adam(lr=spec.lr), epochs=epochs)
    chunks = calibration_batches(eng, count=o.calibration, seed=o.calibration_seed)
    before = eng.once("before", lambda: held_out(eng, model, "test"))
    calibration = Calibration(model, chunks)
    sparsities = eng.once("budget", lambda: layer_sparsities(model, calibration, o))
    rows = []
    for unit, (layer, _) in enumerate(calibration.units):
        rows += eng.once(f"prune {layer}", lambda unit=unit: prune_unit(model, calibration, unit, o=o,
                                                                        sparsities=sparsities))
    after = held_out(eng, model, "test")
    result = {**after, "before": before, "after": after, **_pruning_report(o, sparsities, rows, chunks),
              "init_from": spec.init_from, "model": model.config.get("preset", spec.model), "epochs": epochs}
    return eng.finish(result, model=model, tables={"layers": [{k: v for k, v in r.items() if k != "shape"}
                                                              for r in rows]})
