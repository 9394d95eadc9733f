r"""RigL: rigging the lottery, dynamic sparse training with gradient-based growth (Evci et al., ICML 2020).

As SET (``refprune run set --help``), the network is sparse from the start (ERK
budgets by default) and every ``--update-every`` steps each layer drops the fraction
:math:`f_t` of its kept weights with the smallest :math:`|w|`; RigL grows back the
pruned connections with the **largest gradient magnitude**, computed densely (as if
every connection existed) at the current weights on one minibatch:

.. math::

    D = \operatorname{smallest}_{k}\{|w_j| : j \in K\}, \qquad
    G = \operatorname{largest}_{k}\{|\partial L / \partial w_j| : j \in P\}, \qquad
    K \leftarrow (K \setminus D) \cup G

with :math:`k = f_t |K|`, grown weights starting at 0, and the drop fraction annealed
by the paper's cosine, :math:`f_t = \frac{\alpha}{2}(1 + \cos(\pi t / T_{end}))`
(:func:`refprune.cosine_drop_fraction`; :math:`\alpha` = ``--drop-fraction`` 0.3,
:math:`T_{end}` = ``--end-fraction`` of the training). Two choices differ from RigL's
code, on purpose: a just-dropped connection is never grown back in the same update, and
ties are broken by the protocol's rule instead of random noise (``refprune.drop_grow``).

``result.json`` adds ``updates`` (the drop/grow history), ``mask_densities`` and
``dense_accuracy`` (the same network trained dense with the same seed and epochs);
the masks are in the checkpoint, and resuming continues the same trajectory.

Defaults (digits): LeNet-300-100 (``mlp-300-100``), ERK at 90% sparsity, drop fraction
0.3, an update per epoch until 75% of the training, Adam 1.2e-3, batch 60, 30 epochs.

The paper (ResNet-50 on ImageNet at 80% sparsity, ERK: 75.1% top-1 after 1x training,
76.6% after 5x, against 76.8% dense; MNIST-sized models are not in it)::

    refprune run rigl --data mnist --data-dir DIR --model lenet5 --sparsity 0.9 --epochs 20
"""

from __future__ import annotations

from refprune._array import namespace

from . import _sparse
from ._registry import register_method


@register_method("rigl", summary="RigL: sparse from the start, drop the smallest weights and grow those with the "
                 "largest dense gradient (Evci et al. 2020)", defaults=_sparse.DEFAULTS,
                 options=_sparse.dynamic_sparse_options(), sparsity_option="sparsity")
def run(eng, o):
    """Random sparse network; every update drops the smallest weights and grows those with the largest |gradient|."""

    def grow(model, names):
        grads = _sparse.dense_gradients(eng, model, names)
        return {n: namespace(None, g=g).abs(g) for n, g in grads.items()}

    model, history = _sparse.train_dynamic(eng, o, grow_scores=grow)
    return _sparse.dst_finish(eng, model, history, o)
