"""``torch.nn.utils.prune`` as a conformance target for the protocol's mask functions.

Run the suite against it with::

    refprune check --target refprune.conformance.targets.torch_prune --target-backend torch

Each function calls torch's public pruning API the way a user does, on a throwaway
module holding the array as its parameter, and returns the ``<name>_mask`` torch
computed as a bool tensor (True = keep). Nothing here fixes torch's answers: where
torch's rules differ from the protocol's, the suite fails, and
``conformance/xfails/torch_prune.txt`` records each such place with the reason.

* ``magnitude_mask``  -> ``prune.l1_unstructured`` (``importance_scores`` = ``scores``)
* ``global_magnitude_mask`` -> ``prune.global_unstructured(..., L1Unstructured)``
* ``structured_mask`` -> ``prune.ln_structured(..., n=ord, dim=axis)``
* ``random_mask``     -> ``prune.random_unstructured``, with the noise ``torch.rand_like``
  would draw replaced by the protocol's ``u`` (so the same noise goes in)

torch has one rounding rule (Python's ``round`` of the binary product
``amount * n``); ``rounding="floor"``/``"ceil"`` raise ``NotImplementedError``.
"""

from __future__ import annotations

import contextlib
from unittest import mock

import torch
from torch.nn.utils import prune

__all__ = ["magnitude_mask", "global_magnitude_mask", "structured_mask", "random_mask"]


def _holder(t):
    """A module whose parameter ``weight`` is ``t`` (a copy; torch prunes in place)."""
    m = torch.nn.Module()
    m.weight = torch.nn.Parameter(t.detach().clone() if isinstance(t, torch.Tensor) else t, requires_grad=False)
    return m


def _rounding(rounding):
    if rounding == "half-even":
        return
    if rounding in ("floor", "ceil"):
        msg = f"torch.nn.utils.prune rounds amount*n with Python's round only; rounding={rounding!r} is not offered"
        raise NotImplementedError(msg)
    msg = f"unknown rounding {rounding!r}"
    raise ValueError(msg)


def _mask(m):
    return m.weight_mask.detach() != 0


def magnitude_mask(w, *, amount, scores=None, rounding="half-even"):
    _rounding(rounding)
    m = _holder(w)
    prune.l1_unstructured(m, "weight", amount=amount, importance_scores=scores)
    return _mask(m)


def global_magnitude_mask(ws, *, amount, scores=None, rounding="half-even"):
    _rounding(rounding)
    holders = [_holder(w) for w in ws]
    params = [(m, "weight") for m in holders]
    importance = None if scores is None else {(m, "weight"): s for m, s in zip(holders, scores)}
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=amount, importance_scores=importance)
    return [_mask(m) for m in holders]


def structured_mask(w, *, amount, axis, ord=2, rounding="half-even"):
    _rounding(rounding)
    m = _holder(w)
    prune.ln_structured(m, "weight", amount=amount, n=ord, dim=axis)
    return _mask(m)


@contextlib.contextmanager
def _noise(u):
    """Make ``torch.rand_like`` inside torch's random pruning return ``u``."""
    with mock.patch.object(torch, "rand_like", lambda t, *a, **k: u.detach().clone().to(t.dtype)):
        yield


def random_mask(u, *, amount, rounding="half-even"):
    _rounding(rounding)
    m = _holder(u)
    with _noise(u):
        prune.random_unstructured(m, "weight", amount=amount)
    return _mask(m)
