"""``torch.ao.pruning.WeightNormSparsifier`` (in torch itself) as a conformance target.

Run the suite against it with::

    refprune check --target refprune.conformance.peers.torch_ao --target-backend torch

Each function prepares a ``WeightNormSparsifier`` on a throwaway module whose parameter
``weight`` is the array, calls ``step()`` the way a user does, and returns the mask
torch computed as a bool tensor (True = keep). Only names are converted:

* ``magnitude_mask(w, amount)`` -> ``sparse_block_shape=(1, 1)``, ``sparsity_level=amount``,
  ``norm=1`` (the ranking of ``|w|``), on ``w`` as one row (torch takes 2-D weights; with
  1x1 blocks the layout changes nothing);
* ``nm_mask(w, n, m, axis)`` -> ``sparse_block_shape=(1, m)`` on ``w`` with ``axis`` moved
  last and the other axes flattened into rows (the groups run along torch's block
  rows), ``zeros_per_block=m - n`` (torch counts the *zeros* of a block, the protocol the
  kept entries), ``sparsity_level=1`` (every block gets its zeros);
* ``block_mask(w, block, amount, pool)`` -> ``sparse_block_shape=block``,
  ``sparsity_level=amount``; ``pool="mean"`` and ``"l1"`` -> ``norm=1``, ``"l2"`` ->
  ``norm=2`` (torch averages ``norm(w)`` over each block with ``avg_pool2d``);
  ``pool="max"`` is not offered; a 1-D ``w`` is one row of ``1 x b`` blocks;
* ``scores=`` -> ``norm=`` a callable returning the scores (torch's hook for its own
  importance).

An int ``amount`` (a count) is passed as its fraction of the blocks. torch rounds
``sparsity_level * blocks`` with Python's ``round``: ``rounding="floor"``/
``"ceil"`` raise ``NotImplementedError``. Where torch's answers differ from the
protocol's, the suite fails and ``xfails/torch_ao.txt`` says why.
"""

from __future__ import annotations

import math

import torch
from torch.ao.pruning import WeightNormSparsifier

__all__ = ["magnitude_mask", "nm_mask", "block_mask"]

_NORMS = {"mean": 1, "l1": 1, "l2": 2}


def _rounding(rounding):
    if rounding != "half-even":
        msg = f"torch.ao.pruning rounds sparsity_level * blocks with Python's round; rounding={rounding!r} is not offered"
        raise NotImplementedError(msg)


def _level(amount, blocks):
    """``sparsity_level``: a float amount as it is, an int amount (a count) as its fraction of the blocks."""
    return amount / blocks if isinstance(amount, int) and not isinstance(amount, bool) and blocks else amount


def _sparsify(w, *, sparsity_level, sparse_block_shape, zeros_per_block=None, norm=1, scores=None):
    """The mask ``WeightNormSparsifier(...).step()`` gives the parameter ``w`` (True = keep)."""
    holder = torch.nn.Module()
    holder.weight = torch.nn.Parameter(w.detach().clone(), requires_grad=False)
    if scores is not None:
        norm = lambda t: scores  # noqa: E731 - torch's own hook for a custom importance
    sparsifier = WeightNormSparsifier(sparsity_level=sparsity_level, sparse_block_shape=tuple(sparse_block_shape),
                                      zeros_per_block=zeros_per_block, norm=norm)
    sparsifier.prepare(holder, config=[{"tensor_fqn": "weight"}])
    sparsifier.step()
    mask = holder.parametrizations.weight[0].mask
    return mask.detach() != 0


def magnitude_mask(w, *, amount, scores=None, rounding="half-even"):
    _rounding(rounding)
    rows = w.reshape(1, -1)  # 1x1 blocks: the layout does not matter; torch takes 2-D weights
    s = None if scores is None else scores.reshape(1, -1)
    return _sparsify(rows, sparsity_level=_level(amount, w.numel()), sparse_block_shape=(1, 1),
                     scores=s).reshape(w.shape)


def nm_mask(w, *, n, m, axis=-1, scores=None):
    moved = w.movedim(axis, -1) if w.dim() else w  # groups run along torch's block rows: the axis goes last
    rows = moved.reshape(-1, moved.shape[-1]) if w.dim() else w
    s = None if scores is None else scores.movedim(axis, -1).reshape(rows.shape)
    mask = _sparsify(rows, sparsity_level=1.0, sparse_block_shape=(1, m), zeros_per_block=m - n, scores=s)
    return mask.reshape(moved.shape).movedim(-1, axis) if w.dim() else mask


def block_mask(w, *, block, amount, pool="l1", scores=None, rounding="half-even"):
    _rounding(rounding)
    if pool not in _NORMS:
        msg = f"WeightNormSparsifier pools blocks by avg_pool2d of |w| or w*w; pool={pool!r} is not offered"
        raise NotImplementedError(msg)
    shape = (block,) * max(w.dim(), 1) if isinstance(block, int) else tuple(block)
    if w.dim() == 1 and len(shape) == 1:  # a vector is one row of 1 x b blocks
        s = None if scores is None else scores.reshape(1, -1)
        tiles = -(-w.shape[0] // shape[0])
        return _sparsify(w.reshape(1, -1), sparsity_level=_level(amount, tiles), sparse_block_shape=(1, shape[0]),
                         norm=_NORMS[pool], scores=s).reshape(w.shape)
    tiles = math.prod(-(-n // b) for n, b in zip(w.shape, shape))
    return _sparsify(w, sparsity_level=_level(amount, tiles), sparse_block_shape=shape, norm=_NORMS[pool],
                     scores=scores)
