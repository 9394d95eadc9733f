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

==================  =====================================================================
``weight``          unstructured: the smallest scores among single weights
                    (:func:`refprune.magnitude_mask`); also global over layers
``unit``            structured: whole output units (dense columns, conv filters) with the
                    smallest L2 norm (:func:`refprune.structured_mask`)
``N:M``             e.g. ``2:4``: in every group of ``M`` consecutive inputs of a unit keep
                    the ``N`` largest (:func:`refprune.nm_mask`; dense ``(in, out)`` groups
                    along ``in``, conv ``(out, in, kh, kw)`` along ``in``). The pattern
                    fixes the sparsity at ``1 - N/M``: ``amount`` is not used
``block:AxB[:P]``   e.g. ``block:4x4``: whole ``A x B`` tiles of the first two axes (a conv's
                    tiles span its whole kernels) with the smallest pooled score, ``P`` one
                    of ``l1`` (default), ``l2``, ``max``, ``mean`` (:func:`refprune.block_mask`)
==================  =====================================================================

Names with parameters are patterns: :func:`register_family` registers a regular
expression and a factory that builds the criterion from the match.

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
import re
from dataclasses import dataclass
from functools import partial

from ._array import namespace
from .masks import apply_mask, global_magnitude_mask, magnitude_mask, structured_mask
from .patterns import block_mask, nm_mask

__all__ = ["Criterion", "CRITERIA", "FAMILIES", "register_criterion", "register_family", "get", "unit_axis",
           "layer_amounts", "layer_masks"]


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


#: Criteria with parameters: ``(regular expression, factory(match) -> Criterion, example)``.
FAMILIES: list = []


def register_family(pattern, example):
    """Register ``factory(match) -> Criterion`` for the names matching ``pattern`` (e.g. ``2:4``)."""

    def register(factory):
        FAMILIES.append((re.compile(pattern), factory, example))
        return factory

    return register


def get(name):
    """The criterion ``name`` (or one of a family, such as ``2:4``); a ``ValueError`` listing them otherwise."""
    if name in CRITERIA:
        return CRITERIA[name]
    for pattern, factory, _ in FAMILIES:
        match = pattern.fullmatch(str(name))
        if match:
            return factory(match)
    known = [*CRITERIA, *(example for _, _, example in FAMILIES)]
    msg = f"unknown criterion {name!r}; choose one of {', '.join(known)}"
    raise ValueError(msg)


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


def _nested(mask, keep):
    return mask if keep is None else mask & keep


def _input_axis(w):
    """The axis of ``w`` indexing a unit's inputs: 0 for dense ``(in, out)``, 1 for conv ``(out, in, kh, kw)``."""
    return 0 if w.ndim == 2 else 1


@register_family(r"(\d+):(\d+)", "N:M (e.g. 2:4)")
def _nm_family(match):
    n, m = int(match.group(1)), int(match.group(2))

    def nm(w, /, *, amount=None, scores=None, keep=None, rounding="half-even"):
        xp = namespace(None, w=w)
        ranked = None if scores is None and keep is None else _ranking(w, scores, keep, xp)
        return _nested(nm_mask(w, n=n, m=m, axis=_input_axis(w), scores=ranked), keep)

    return Criterion(f"{n}:{m}", nm, f"in every {m} consecutive inputs of a unit, the {n} largest kept")


_POOLS = ("l1", "l2", "max", "mean")


@register_family(r"block:(\d+)x(\d+)(?::(l1|l2|max|mean))?", "block:AxB[:l1|l2|max|mean] (e.g. block:4x4)")
def _block_family(match):
    a, b, pool = int(match.group(1)), int(match.group(2)), match.group(3) or "l1"

    def block(w, /, *, amount, scores=None, keep=None, rounding="half-even"):
        tile = (a, b) + tuple(int(d) for d in w.shape[2:])
        base = w if scores is None else scores
        if keep is not None:
            base = apply_mask(base, keep)
        return _nested(block_mask(w, block=tile, amount=amount, pool=pool, scores=None if base is w else base,
                                  rounding=rounding), keep)

    return Criterion(f"block:{a}x{b}:{pool}", block, f"whole {a}x{b} tiles with the smallest {pool} score")


# ---------------------------------------------------------------------------------- mask calculators


def layer_amounts(shapes, /, *, sparsity, distribution="uniform"):
    """``{name: fraction pruned}`` of layers of ``shapes`` so that together they are ``sparsity`` sparse.

    The densities of :func:`refprune.layer_densities` (``"uniform"``, ``"erk"``, ``"er"``)
    turned into amounts, :math:`a_l = \\max(0, 1 - d_l)`.

    >>> layer_amounts({"a": (4, 4), "b": (16, 16)}, sparsity=0.5, distribution="erk")
    {'a': 0.0, 'b': 0.53125}
    """
    from .budgets import layer_densities

    shapes = {n: tuple(int(d) for d in shape) for n, shape in shapes.items()}
    densities = layer_densities(shapes, density=1.0 - sparsity, distribution=distribution)
    return {n: max(0.0, 1.0 - d) for n, d in densities.items()}


def layer_masks(weights, /, *, criterion="weight", sparsity=None, distribution="uniform", amounts=None,
                scores=None, keeps=None, rounding="half-even"):
    """Masks of the layers ``weights`` (``{name: w}``) that prune ``sparsity`` of them together, by ``criterion``.

    The one mask calculator of the methods (jaxpruner's): ``distribution="global"`` ranks
    all layers together under one budget (the criterion's ``global_mask``); ``"uniform"``,
    ``"erk"`` or ``"er"`` prune each layer to its share (:func:`layer_amounts`);
    ``amounts`` (``{name: fraction}``) gives the shares directly. ``scores`` and ``keeps``
    (``{name: array}``) are the criterion's ``scores`` and ``keep`` of each layer.

    >>> import numpy as np
    >>> w = {"a": np.array([0.1, -2.0, 0.3, 0.4]), "b": np.array([0.5, 0.05, -0.6, 3.0])}
    >>> layer_masks(w, sparsity=0.5, distribution="global")["b"]
    array([ True, False,  True,  True])
    >>> layer_masks(w, amounts={"a": 0.25, "b": 0.75})["b"]
    array([False, False, False,  True])
    """
    crit = get(criterion)
    names = list(weights)
    if distribution == "global":
        if crit.global_mask is None:
            msg = f"criterion {criterion!r} has no global ranking; use criterion='weight' for a global budget"
            raise ValueError(msg)
        kept = crit.global_mask([weights[n] for n in names], amount=sparsity, rounding=rounding,
                                scores=None if scores is None else [scores[n] for n in names],
                                keeps=None if keeps is None else [keeps.get(n) for n in names])
        return dict(zip(names, kept))
    if amounts is None:
        amounts = layer_amounts({n: weights[n].shape for n in names}, sparsity=sparsity, distribution=distribution)
    return {n: crit(weights[n], amount=amounts[n], rounding=rounding, scores=None if scores is None else scores[n],
                    keep=None if keeps is None else keeps.get(n)) for n in names}
