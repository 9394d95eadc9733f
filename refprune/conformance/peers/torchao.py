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
  whole matrix (``group="layer"``; an int ``amount``, a count, as its fraction of the
  entries), and N:M with ``semi_structured_block_size=m``, which prunes ``m // 2`` of every
  ``m`` consecutive entries: ``n = m - m // 2`` kept (2:4, 1:2, 4:8, ...), other ``n`` not offered.

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
    nm = n is not None and m is not None
    if (group != "layer" and not nm) or rounding != "half-even" or (nm and n != m - m // 2):
        msg = ("torchao's WandaSparsifier ranks the whole layer (group='layer', half-even as its int()) or prunes "
               "m // 2 of every m; nothing else is offered")
        raise NotImplementedError(msg)
    if isinstance(amount, int) and w.numel():
        amount = amount / w.numel()
    layer = torch.nn.Linear(w.shape[1], w.shape[0], bias=False, dtype=w.dtype)
    with torch.no_grad():
        layer.weight.copy_(w)
    model = torch.nn.Sequential(layer)
    sparsifier = WandaSparsifier(sparsity_level=0.5 if amount is None else amount,
                                 semi_structured_block_size=m if nm else None)
    sparsifier.prepare(model, config=[{"tensor_fqn": "0.weight"}])
    model[0].activation_post_process.norm = norms.detach().clone()
    sparsifier.step()
    return model[0].parametrizations.weight[0].mask.detach() != 0
