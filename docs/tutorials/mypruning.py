"""My magnitude pruning in torch, to be checked against refprune's oracle protocol.

It has one deliberate bug, the one peer implementations most often have: see
docs/tutorials/oracle.md.
"""

from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

import torch

_ROUNDING = {"half-even": ROUND_HALF_EVEN, "floor": ROUND_FLOOR, "ceil": ROUND_CEILING}


def prune_count(amount, n, *, rounding="half-even"):
    """How many of n entries to prune: an int count, or a fraction times n in exact decimal."""
    if rounding not in _ROUNDING:
        raise ValueError(f"rounding must be one of {sorted(_ROUNDING)}, got rounding={rounding!r}")
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int, got n={n!r}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got n={n}")
    if isinstance(amount, bool) or not isinstance(amount, (int, float)):
        raise TypeError(f"amount must be an int or a float, got amount={amount!r}")
    if isinstance(amount, int):
        if not 0 <= amount <= n:
            raise ValueError(f"amount must be a count in [0, {n}], got amount={amount}")
        return amount
    if not 0.0 <= amount <= 1.0:
        raise ValueError(f"amount must be a fraction in [0, 1], got amount={amount}")
    return int((Decimal(repr(amount)) * n).to_integral_value(rounding=_ROUNDING[rounding]))


def magnitude_mask(w, *, amount, scores=None, rounding="half-even"):
    """True = keep: prunes the prune_count(amount, w.numel()) entries with the smallest |w| (or scores)."""
    if not isinstance(w, torch.Tensor) or not w.is_floating_point():
        raise TypeError(f"w must be a floating-point torch tensor, got {type(w).__name__}")
    if scores is not None and scores.shape != w.shape:
        raise ValueError(f"scores must have w's shape {tuple(w.shape)}, got {tuple(scores.shape)}")
    s = (w.abs() if scores is None else scores).flatten()
    if torch.isnan(s).any():
        raise ValueError("the scores contain NaN")
    k = prune_count(amount, s.numel(), rounding=rounding)
    order = torch.argsort(s, stable=True)  # the smallest first; equal scores in index order
    keep = torch.ones(s.shape, dtype=torch.bool, device=s.device)
    keep[order[:k]] = False
    return keep.reshape(w.shape)
