"""Torch-Pruning (``torch_pruning``) as a conformance target for ``structured_mask``.

Run the suite against it, in an environment with ``torch-pruning`` (``scripts/peers_env.sh``)::

    refprune check --target refprune.conformance.peers.torch_pruning --target-backend torch

``structured_mask(w, amount, axis=0, ord=p)`` builds the one-layer model a user would
(a ``Linear`` without bias for a 2-D ``w`` ``(out, in)``, a ``Conv2d`` for a 4-D ``w``),
its ``DependencyGraph``, and a ``MetaPruner`` with ``GroupMagnitudeImportance(p=ord)``
and ``pruning_ratio=amount``; ``step(interactive=True)`` yields the one-layer group, and
the channels it would prune are the mask's False slices. Only the output channels of
a single layer form a prunable group (its inputs are the model's), so only ``axis=0``
is offered; ``ord`` must be a positive number Torch-Pruning takes as ``p``. Other
axes, ``ord=inf``, ``scores=`` and ``rounding="floor"``/``"ceil"`` raise
``NotImplementedError``. Where Torch-Pruning's answers differ, ``xfails/torch_pruning.txt``
says why.
"""

from __future__ import annotations

import math

import torch
import torch_pruning as tp

__all__ = ["structured_mask"]


def _layer(w):
    if w.dim() == 2:
        layer = torch.nn.Linear(w.shape[1], w.shape[0], bias=False, dtype=w.dtype)
        example = torch.zeros(1, w.shape[1], dtype=w.dtype)
    elif w.dim() == 4:
        layer = torch.nn.Conv2d(w.shape[1], w.shape[0], tuple(w.shape[2:]), bias=False, dtype=w.dtype)
        example = torch.zeros(1, w.shape[1], *w.shape[2:], dtype=w.dtype)
    else:
        msg = f"Torch-Pruning prunes Linear (2-D) or Conv2d (4-D) weights; got a {w.dim()}-D w"
        raise NotImplementedError(msg)
    with torch.no_grad():
        layer.weight.copy_(w)
    return torch.nn.Sequential(layer), example


def structured_mask(w, *, amount, axis, ord=2, scores=None, rounding="half-even"):
    if axis not in (0, -w.dim()) or scores is not None or rounding != "half-even" or not math.isfinite(ord):
        msg = ("Torch-Pruning's one-layer group is the layer's output channels ranked by the p-norm "
               f"(axis=0, finite ord, no scores, its own rounding); got axis={axis}, ord={ord}, "
               f"scores={'given' if scores is not None else None}, rounding={rounding!r}")
        raise NotImplementedError(msg)
    model, example = _layer(w)
    pruner = tp.pruner.MetaPruner(model, example, importance=tp.importance.GroupMagnitudeImportance(p=ord),
                                  pruning_ratio=float(amount) if not isinstance(amount, int) else amount / w.shape[0])
    keep = torch.ones(w.shape[0], dtype=torch.bool)
    for group in pruner.step(interactive=True):
        keep[list(group[0].idxs)] = False
    return keep.reshape((-1,) + (1,) * (w.dim() - 1)).expand(w.shape).clone()
