r"""Mask criteria: how a method that prunes chooses what to prune, by name.

A criterion turns one layer's weight into a keep mask (True = keep) that prunes a
fraction ``amount`` of it:

.. code-block:: python

    criterion(w, *, amount, scores=None, keep=None, rounding="half-even") -> mask

``scores`` replaces ``|w|`` as the ranking (a saliency, movement or random score);
``keep`` is the mask of an earlier round: what it prunes stays pruned (the new mask is
within ``keep``) and ranks first (iterative pruning prunes *more* of the same weights;
for ``weight`` those entries count towards ``amount``). Every method
that prunes (``magnitude``, ``lottery``, ...) takes ``--criterion NAME`` and looks it up
here, so a new criterion is one function and one :func:`register_criterion` entry.

==========  ===========================================================================
``weight``  unstructured: the smallest scores among single weights
            (:func:`refprune.magnitude_mask`); also global over layers
``unit``    structured: whole output units (dense columns, conv filters) with the
            smallest L2 norm (:func:`refprune.structured_mask`)
==========  ===========================================================================

Examples
--------
>>> import numpy as np
>>> from refprune.criteria import get
>>> w = np.array([[0.1, -2.0, 0.3], [0.4, 0.05, -0.6]])
>>> get("weight")(w, amount=0.5)
array([[False,  True, False],
       [ True, False,  True]])
>>> get("unit")(w, amount=1)  # column norms 0.41, 2.0, 0.67: the first goes
array([[False,  True,  True],
       [False,  True,  True]])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ._array import namespace
from .masks import apply_mask, global_magnitude_mask, magnitude_mask, structured_mask

__all__ = ["Criterion", "CRITERIA", "register_criterion", "get", "unit_axis"]


@dataclass(frozen=True)
class Criterion:
    """A registered criterion: its ``mask`` function, a one-line summary, and ``global_mask`` if it has one.

    ``global_mask(ws, *, amount, scores=None, keeps=None, rounding=...)`` ranks a list
    of weights under one budget and returns a list of masks. Calling the criterion
    calls ``mask``.
    """

    name: str
    mask: object
    summary: str
    global_mask: object = None

    def __call__(self, w, /, *, amount, scores=None, keep=None, rounding="half-even"):
        return self.mask(w, amount=amount, scores=scores, keep=keep, rounding=rounding)


#: The registered criteria by name.
CRITERIA: dict[str, Criterion] = {}


def register_criterion(name, *, summary, global_mask=None):
    """Register ``fn(w, *, amount, scores, keep, rounding) -> mask`` as criterion ``name``."""

    def register(fn):
        CRITERIA[name] = Criterion(name, fn, summary, global_mask)
        return fn

    return register


def get(name):
    """The criterion ``name``; a ``ValueError`` listing the registered ones otherwise."""
    if name not in CRITERIA:
        msg = f"unknown criterion {name!r}; choose one of {', '.join(CRITERIA)}"
        raise ValueError(msg)
    return CRITERIA[name]


def unit_axis(w):
    """The axis of ``w`` indexing its output units: 1 for dense ``(in, out)``, 0 for conv ``(out, in, kh, kw)``."""
    return 1 if w.ndim == 2 else 0


def _ranking(w, scores, keep, xp):
    """``|w|`` (or ``scores``) with the entries ``keep`` prunes ranked below every other: ``-inf``."""
    s = xp.abs(w) if scores is None else scores
    return s if keep is None else xp.where(keep, s, xp.full_like(s, -math.inf))


def _global_weight(ws, /, *, amount, scores=None, keeps=None, rounding="half-even"):
    """One budget over all layers: the smallest scores among all their weights."""
    xp = namespace(None, **{f"ws[{i}]": w for i, w in enumerate(ws)})
    scores = scores or [None] * len(ws)
    keeps = keeps or [None] * len(ws)
    ranked = [_ranking(w, s, k, xp) for w, s, k in zip(ws, scores, keeps)]
    masks = global_magnitude_mask(ws, amount=amount, scores=ranked, rounding=rounding)
    return [m if k is None else m & k for m, k in zip(masks, keeps)]


@register_criterion("weight", summary="single weights with the smallest |w| (or scores)", global_mask=_global_weight)
def _weight(w, /, *, amount, scores=None, keep=None, rounding="half-even"):
    xp = namespace(None, w=w)
    if scores is None and keep is None:
        return magnitude_mask(w, amount=amount, rounding=rounding)
    mask = magnitude_mask(w, amount=amount, scores=_ranking(w, scores, keep, xp), rounding=rounding)
    return mask if keep is None else mask & keep  # an amount below what keep prunes brings nothing back


@register_criterion("unit", summary="whole output units (dense columns, conv filters) with the smallest L2 norm")
def _unit(w, /, *, amount, scores=None, keep=None, rounding="half-even"):
    base = w if scores is None else scores
    if keep is None:
        return structured_mask(base, amount=amount, axis=unit_axis(w), ord=2, rounding=rounding)
    return structured_mask(apply_mask(base, keep), amount=amount, axis=unit_axis(w), ord=2, rounding=rounding) & keep
