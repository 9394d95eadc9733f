"""llm-compressor (``llmcompressor``) as a conformance target.

Run the suite against it, in an environment with llm-compressor (``scripts/peers_env.sh``)::

    refprune check --target refprune.conformance.peers.llm_compressor --target-backend torch

Its magnitude pruning builds masks with ``PruningMaskFactory.create_mask_creator(structure)``
called on ``PruningMaskCreatorArgs(parameter, sparsity, scores)``, the scores being
``|w|`` (what ``MagnitudePruningModifier`` passes). Only names are converted:

* ``magnitude_mask(w, amount, scores)`` -> structure ``"unstructured"``, ``sparsity=amount``,
  ``scores`` (``|w|`` when not given);
* ``block_mask(w, block, amount, pool="l1")`` -> structure ``"block_<b0>,<b1>,..."``
  (its blocks are summed: the protocol's ``l1`` pool of ``|w|``); other pools are not offered;

Its ``"channel"``/``"filter"`` structures take 4-D weights and the L1 norm only; the suite's
structured cases are 2-D or other norms, so ``structured_mask`` is left out.

Not offered: ``NotImplementedError``; llm-compressor rounds with ``int(sparsity * n)``,
so ``rounding="floor"``/``"ceil"`` are not offered either. Where its answers differ,
``xfails/llm_compressor.txt`` says why.
"""

from __future__ import annotations

import torch
from llmcompressor.modifiers.pruning.utils.pytorch.mask_factory import PruningMaskCreatorArgs, PruningMaskFactory

__all__ = ["magnitude_mask", "block_mask"]


def _offered(what, ok):
    if not ok:
        msg = f"llm-compressor's mask factory does not offer {what}"
        raise NotImplementedError(msg)


def _mask(structure, w, amount, scores=None):
    creator = PruningMaskFactory.create_mask_creator(structure)
    param = torch.nn.Parameter(w.detach().clone(), requires_grad=False)
    args = PruningMaskCreatorArgs(parameter=param, sparsity=amount, scores=w.abs() if scores is None else scores)
    return creator(args).to(torch.bool)


def _fraction(amount, n):
    return amount / n if isinstance(amount, int) and n else amount


def magnitude_mask(w, *, amount, scores=None, rounding="half-even"):
    _offered(f"rounding={rounding!r} (it rounds with int())", rounding == "half-even")
    return _mask("unstructured", w, _fraction(amount, w.numel()), scores)


def block_mask(w, *, block, amount, pool="l1", scores=None, rounding="half-even"):
    _offered(f"pool={pool!r} (it sums each block)", pool == "l1")
    _offered(f"rounding={rounding!r} (it rounds with int())", rounding == "half-even")
    sizes = (block,) * w.dim() if isinstance(block, int) else tuple(block)
    return _mask("block_" + ",".join(str(b) for b in sizes), w, amount, scores)
