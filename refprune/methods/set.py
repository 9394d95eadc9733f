r"""SET: sparse evolutionary training (Mocanu et al., Nature Communications 2018).

The network is sparse from the start and stays exactly as sparse: each layer keeps a
random subset of its weights (``--distribution``: ERK, small layers denser, by
default; the paper's Erdős–Rényi is ``er``), the others are 0 and get no gradient.
Every ``--update-every`` steps the connectivity evolves
(:func:`refprune.drop_grow`): in each layer the fraction :math:`f_t` of the kept
weights with the smallest :math:`|w|` is dropped and as many pruned connections,
chosen **at random** (:func:`refprune.random_scores`), are grown, starting at 0:

.. math::

    D = \operatorname{smallest}_{k}\{|w_j| : j \in K\}, \qquad
    G = \operatorname{random}_{k}(P), \qquad K \leftarrow (K \setminus D) \cup G,
    \qquad k = f_t\,|K|

with :math:`f_t` = ``--drop-fraction`` annealed to 0 by RigL's cosine
(:func:`refprune.cosine_drop_fraction`; the paper's SET keeps a constant fraction, 0.3)
until ``--end-fraction`` of the training, after which the masks stay fixed. A
just-dropped connection is never grown back in the same update.

``result.json`` adds ``updates`` (the step, drop fraction and connections grown per
layer of every update: the drop/grow history), ``mask_densities`` and
``dense_accuracy`` (the same network trained dense with the same seed and epochs);
the masks are in the checkpoint, and resuming continues the same trajectory.

Defaults (digits): LeNet-300-100 (``mlp-300-100``), ERK at 90% sparsity, drop fraction
0.3, an update per epoch until 75% of the training, Adam 1.2e-3, batch 60, 30 epochs.

The paper (SET-MLP on MNIST and others, Erdős–Rényi with epsilon 20, zeta 0.3,
a thousand epochs) reports sparse MLPs matching or beating dense ones with about 2%
of the weights::

    refprune run set --data mnist --data-dir DIR --model mlp-1000-1000-500-200 --sparsity 0.98 \
        --distribution er --epochs 100
"""

from __future__ import annotations

from refprune.scores import random_scores

from . import _sparse
from ._registry import register_method


@register_method("set", summary="SET: sparse from the start, drop the smallest weights and grow random ones "
                 "(Mocanu et al. 2018)", defaults=_sparse.DEFAULTS, options=_sparse.dynamic_sparse_options(),
                 sparsity_option="sparsity")
def run(eng, o):
    """Random sparse network; every update drops the smallest weights and grows as many random connections."""
    params_rng = eng.rng_for("grow")

    def grow(model, names):
        params = model.params()
        return {n: random_scores(params[n], rng=params_rng) for n in names}

    model, history = _sparse.train_dynamic(eng, o, grow_scores=grow)
    return _sparse.dst_finish(eng, model, history, o)
