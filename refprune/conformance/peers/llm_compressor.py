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
* ``structured_mask(w, amount, axis, ord=1)`` on a 4-D ``w`` -> ``"channel"`` (``axis=0``) or
  ``"filter"`` (``axis=1``), which sum ``|w|`` over the other axes (the L1 norm);
  other cases are not offered.

Not offered: ``NotImplementedError``; llm-compressor rounds with ``int(sparsity * n)``,
so ``rounding="floor"``/``"ceil"`` are not offered either. Where its answers differ,
``xfails/llm_compressor.txt`` says why.
"""

from __future__ import annotations

import torch
from llmcompressor.modifiers.pruning.utils.pytorch.mask_factory import PruningMaskCreatorArgs, PruningMaskFactory

__all__ = ["magnitude_mask", "block_mask", "structured_mask"]


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


def structured_mask(w, *, amount, axis, ord=2, scores=None, rounding="half-even"):
    _offered(f"structured masks of a {w.dim()}-D w along axis {axis} with ord={ord}",
             w.dim() == 4 and axis in (0, 1) and ord == 1 and scores is None and rounding == "half-even")
    return _mask("channel" if axis == 0 else "filter", w, _fraction(amount, w.shape[axis]))
