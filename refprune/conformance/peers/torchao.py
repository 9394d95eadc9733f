"""torchao 0.18 (pinned: its ``WandaSparsifier`` is gone from later releases) as a conformance target.

Run the suite against it, in an environment with ``torchao==0.18.0`` (``scripts/peers_env.sh``)::

    refprune check --target refprune.conformance.peers.torchao --target-backend torch

* ``nm_mask(w, n, m)`` -> ``torchao.sparsity.utils.mask_creator(w, N=n, M=m)`` (torchao's
  ``N`` is the number kept, as in the protocol); it groups ``m`` consecutive entries of
  the flattened tensor, which is the last axis, so ``axis`` other than the last is not
  offered (``NotImplementedError``), nor are ``scores=``.
* ``wanda_mask(w, norms, amount=...)`` (protocol v2) -> ``WandaSparsifier(sparsity_level=amount)``
  prepared on a ``Linear`` holding ``w``, its activation observer's ``norm`` set to
  ``norms`` (what the observer would have accumulated), then ``step()``; torchao ranks the
  whole matrix (``group="layer"``), and 2:4 with ``semi_structured_block_size=4``
  (``n=2, m=4``). The v2 conformance tests are not in this suite yet: ``refprune check``
  reports this function once they are.

Where torchao's answers differ from the protocol's, ``xfails/torchao.txt`` says why.
"""

from __future__ import annotations

import torch
from torchao.sparsity import WandaSparsifier
from torchao.sparsity.utils import mask_creator

__all__ = ["nm_mask", "wanda_mask"]


def nm_mask(w, *, n, m, axis=-1, scores=None):
    if scores is not None or (w.dim() and axis not in (-1, w.dim() - 1)):
        msg = "torchao's mask_creator ranks |w| in groups of m consecutive entries of the flattened tensor only"
        raise NotImplementedError(msg)
    return mask_creator(w, N=n, M=m) != 0


def wanda_mask(w, norms, *, amount=None, n=None, m=None, group="row", rounding="half-even"):
    if group != "layer" or rounding != "half-even" or (n, m) not in ((None, None), (2, 4)):
        msg = "torchao's WandaSparsifier ranks the whole layer (group='layer') or takes 2:4; nothing else is offered"
        raise NotImplementedError(msg)
    layer = torch.nn.Linear(w.shape[1], w.shape[0], bias=False, dtype=w.dtype)
    with torch.no_grad():
        layer.weight.copy_(w)
    model = torch.nn.Sequential(layer)
    sparsifier = WandaSparsifier(sparsity_level=0.5 if amount is None else amount,
                                 semi_structured_block_size=None if n is None else m)
    sparsifier.prepare(model, config=[{"tensor_fqn": "0.weight"}])
    model[0].activation_post_process.norm = norms.detach().clone()
    sparsifier.step()
    return model[0].parametrizations.weight[0].mask.detach() != 0
