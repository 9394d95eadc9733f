r"""Gradual magnitude pruning during training (Zhu & Gupta 2017; TFMOT's ``PolynomialDecay``).

The network trains from the start; every ``--frequency`` steps between ``begin`` and
``end`` the masks are recomputed so that the sparsity follows the polynomial schedule
(:func:`refprune.polynomial_sparsity`, cubic by default):

.. math::

    s_t = s_f + (s_i - s_f)\Big(1 - \frac{t - t_0}{n\,\Delta t}\Big)^{3}, \qquad
    t \in \{t_0, t_0 + \Delta t, \ldots, t_0 + n\,\Delta t\}

with :math:`s_i = 0` and :math:`s_f` = ``--sparsity``: pruning is fast at first, while
there are many redundant weights, and slows down as the target nears. At each update
every layer is pruned to its share of :math:`s_t` (``--distribution``: the same in
every layer, or ERK) by ``--criterion`` (:mod:`refprune.criteria`: ``weight``, the
paper's, ranks :math:`|w|`; ``2:4`` and ``block:4x4`` give structured patterns) among
the weights the earlier updates kept, so the masks only grow sparser; ``--global``
ranks all layers together instead. Pruned weights enter the forward pass as 0 and get
no gradient (the engine's masked training), so they stay pruned. Training continues
after ``end`` with the final masks, which lets the network recover.

Schedule in epochs: pruning begins after ``--begin-epoch`` epochs and ends at
``--end-fraction`` of the training steps, updating every ``--frequency`` steps (0:
once per epoch); the update at the end step always reaches the target (TFMOT's grid
misses it when the span is not a multiple of the frequency). ``result.json`` has the schedule actually applied (``updates``:
step and sparsity of every mask update) and ``dense_accuracy``, the same network
trained dense with the same seed and epochs.

Defaults (digits): LeNet-300-100 (``mlp-300-100``), Adam 1.2e-3, batch 60, 30 epochs,
pruning from epoch 2 to 70% of the steps, once per epoch, to 90% sparsity, uniformly
over the layers (the output layer included) by weight magnitude.

The paper (Zhu & Gupta 2017, "To prune, or not to prune") prunes InceptionV3,
MobileNets, LSTMs and a GNMT model gradually during training and finds large sparse
models beating small dense ones of the same size; e.g. MobileNet at 75% sparsity
loses about 2 points of ImageNet top-1. On MNIST-sized data::

    refprune run gmp --data mnist --data-dir DIR --model lenet5 --sparsity 0.95 --epochs 20
"""

from __future__ import annotations

import warnings

from refprune import criteria
from refprune.data import num_batches
from refprune.measures import nonzero_weights
from refprune.schedules import polynomial_sparsity

from . import _sparse
from ._registry import Option, integer, register_method

OPTIONS = (
    _sparse.SPARSITY,
    Option("criterion", "weight", "what is ranked (refprune.criteria): weight, unit, N:M such as 2:4 (the pattern "
           "is applied at the first update), block:AxB such as block:4x4", type=lambda n: criteria.get(n) and n,
           metavar="NAME"),
    _sparse.distribution_option("uniform"),
    Option("global_pruning", False, "rank the weights of all layers together (one budget) instead of per layer",
           flag="--global"),
    Option("begin_epoch", 2, "epochs of dense training before the first pruning step", type=integer, low=0),
    Option("end_fraction", 0.7, "the last pruning step, as a fraction of all training steps", low=0, high=1),
    Option("frequency", 0, "steps between mask updates (0: once per epoch)", type=integer, low=0),
    Option("power", 3.0, "exponent of the polynomial schedule (3 in the paper)", positive=True),
    _sparse.DENSE_BASELINE,
)


def _schedule_steps(o, per_epoch, epochs):
    """First and last pruning step (0-based), both steps that run, so that the target is reached.

    A ``--begin-epoch`` at or past ``--epochs`` (a short run with the defaults) prunes once,
    at the last step, with a warning: the run must not end dense beside a target of 0.9.
    """
    total = per_epoch * epochs
    last = max(total - 1, 0)
    begin = o.begin_epoch * per_epoch
    if total and begin > last:
        warnings.warn(f"--begin-epoch {o.begin_epoch} is not below --epochs {epochs}, so gmp prunes once, at the "
                      f"last step, to the target", UserWarning, stacklevel=2)
        begin = last
    return begin, min(max(begin, int(o.end_fraction * total)), last)


@register_method("gmp", summary="gradual magnitude pruning during training on a polynomial schedule (Zhu & Gupta "
                 "2017)", defaults=_sparse.DEFAULTS, options=OPTIONS, sparsity_option="sparsity")
def run(eng, o):
    """Train while the masks follow the polynomial sparsity schedule; report the final pruned network."""
    model = eng.track(_sparse.build(eng))
    crit = criteria.get(o.criterion)
    if o.global_pruning and (crit.global_mask is None or o.distribution != "uniform"):
        msg = "--global needs a criterion with a global ranking (weight) and the uniform distribution"
        raise ValueError(msg)
    per_epoch = num_batches(len(eng.dataset.y_train), eng.spec.batch_size)
    begin, end = _schedule_steps(o, per_epoch, eng.spec.epochs)
    frequency = o.frequency or per_epoch
    names = list(model.prunable(include_output=True))

    def prune(m, steps):
        step = steps - 1  # the schedule's step count starts at 0
        if not begin <= step <= end:
            return
        if step == end:  # the last update reaches the target, whatever the frequency grid
            update, sparsity = True, o.sparsity
        else:
            update, sparsity = polynomial_sparsity(step, initial=0.0, final=o.sparsity, begin=begin, end=end,
                                                   power=o.power, frequency=frequency)
        if not update:
            return
        weights = m.masked_params()
        m.set_masks(criteria.layer_masks({n: weights[n] for n in names}, criterion=o.criterion, sparsity=sparsity,
                                         distribution="global" if o.global_pruning else o.distribution,
                                         keeps=m.masks()))
        eng.extra["updates"].append({"step": step, "sparsity": sparsity})

    _sparse.train_sparse(eng, model, setup=lambda: eng.extra.update(updates=[]), on_step=prune)
    result = {
        "test_accuracy": eng.evaluate(model, "test")[1],
        "dense_accuracy": _sparse.dense_accuracy(eng, o),
        "target_sparsity": o.sparsity,
        "schedule": {"begin": begin, "end": end, "frequency": frequency, "power": o.power},
        "updates": eng.extra["updates"],
        "mask_densities": _sparse.mask_densities(model),
        "weights_remaining": nonzero_weights(model),
    }
    return _sparse.finish(eng, result, model=model)
