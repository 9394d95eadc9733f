r"""SNIP: single-shot pruning at initialization by connection sensitivity (Lee, Ajanthan & Torr, ICLR 2019).

Before any training, each weight gets the saliency of its connection,

.. math:: s_j = \big|\, w_j\, \tfrac{\partial L}{\partial w_j} \,\big|

(:func:`refprune.saliency_scores`: the first-order change of the loss when the
connection is removed; the paper's normalization by :math:`\sum_k s_k` does not change
the ranking), with the gradient summed over ``--score-batches`` minibatches of the
training set at the initial weights. The weights with the smallest saliency are
pruned at once, ``--sparsity`` of all prunable weights together (one global ranking,
as the paper; ``--distribution uniform|erk|er`` ranks each layer to its own share
instead), and the network is then trained with the masks fixed (masked forward and
masked gradient: pruned weights stay 0).

``result.json`` adds ``dense_accuracy`` (the same network trained dense with the same
seed and epochs), ``mask_densities`` (kept fraction per layer: SNIP's global ranking
prunes the layers unevenly) and ``score_examples``.

Defaults (digits): LeNet-300-100 (``mlp-300-100``), one minibatch of 60 for the scores,
then Adam 1.2e-3, batch 60, 30 epochs at 90% sparsity.

The paper (MNIST, LeNet-300-100 at 98% sparsity: 2.4% test error vs 1.7% dense;
LeNet-5-Caffe at 99%: 1.1% vs 0.9%; one minibatch of 100 examples for the scores)::

    refprune run snip --data mnist --data-dir DIR --model mlp-300-100 --sparsity 0.98 \
        --batch-size 100 --epochs 20
"""

from __future__ import annotations

from refprune import criteria
from refprune.data import batches
from refprune.measures import nonzero_weights
from refprune.nn import train
from refprune.scores import saliency_scores

from . import _sparse
from ._registry import Option, integer, register_method

OPTIONS = (
    _sparse.SPARSITY,
    Option("score_batches", 1, "training minibatches whose gradients give the saliencies (the paper: one)",
           type=integer, low=1),
    Option("distribution", "global", "global: one ranking over all layers (the paper); uniform, erk or er: each "
           "layer pruned to its share (refprune.layer_densities)", choices=("global", "uniform", "erk", "er")),
    _sparse.DENSE_BASELINE,
)


def saliencies(eng, model, n_batches):
    """``{weight name: |w * dL/dw|}`` at the model's current weights, the gradient summed over ``n_batches``."""
    names = model.prunable(include_output=True)
    ds, rng = eng.dataset, eng.rng_for("scores")
    total, seen = {}, 0
    for xb, yb in batches(ds.x_train, ds.y_train, eng.spec.batch_size, backend=eng.backend, rng=rng,
                          dtype=eng.spec.dtype):
        grads = train.loss_and_grads(model, xb, yb, rng=rng).grads
        total = {n: grads[n] + total[n] if n in total else grads[n] for n in names}
        seen += int(yb.shape[0])
        if len(total) and seen >= n_batches * eng.spec.batch_size:
            break
    params = model.params()
    return {n: saliency_scores(params[n], total[n]) for n in names}, seen


@register_method("snip", summary="SNIP: prune once at initialization by connection saliency |w * dL/dw| (Lee et al. "
                 "2019), then train", defaults=_sparse.DEFAULTS, options=OPTIONS, sparsity_option="sparsity")
def run(eng, o):
    """Score the initial weights, prune the least salient at once, train the sparse network."""
    model = eng.track(_sparse.build(eng))

    def prune_at_init():
        scores, seen = saliencies(eng, model, o.score_batches)
        params = model.params()
        model.set_masks(criteria.layer_masks({n: params[n] for n in scores}, sparsity=o.sparsity,
                                             distribution=o.distribution, scores=scores))
        eng.extra["score_examples"] = seen

    _sparse.train_sparse(eng, model, setup=prune_at_init)
    result = {
        "test_accuracy": eng.evaluate(model, "test")[1],
        "dense_accuracy": _sparse.dense_accuracy(eng, o),
        "target_sparsity": o.sparsity,
        "score_examples": eng.extra["score_examples"],
        "mask_densities": _sparse.mask_densities(model),
        "weights_remaining": nonzero_weights(model),
    }
    return _sparse.finish(eng, result, model=model)
