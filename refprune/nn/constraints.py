"""Constraints: functions applied to parameters after each update, matched by name.

``apply_constraints(params, {"*.log_alpha": clamp(lo, hi), "*.w": clamp(0, 1)})`` returns
new parameters with every matching constraint applied (``fnmatch`` patterns, in the
dictionary's order). Layers declare their own (``Layer.constraints()``: the L0 gates'
clamp, the soft-invert range); methods add theirs (the binarized weights' [0, 1]).

Examples
--------
>>> import numpy as np
>>> from refprune.nn.constraints import apply_constraints, clamp
>>> apply_constraints({"w": np.array([0.95, -2.05])}, {"w": clamp(-1.0, 1.0)})["w"]
array([ 0.95, -1.  ])
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from .._array import clip, namespace

__all__ = ["clamp", "apply_constraints"]


def clamp(lo, hi):
    """A constraint: ``x -> clip(x, lo, hi)`` (e.g. ``clamp(0, 1)`` for binarized weights)."""

    def _clamp(x):
        xp = namespace(None, x=x)
        return clip(x, float(lo), float(hi), xp)

    _clamp.__name__ = f"clamp({lo!r}, {hi!r})"
    return _clamp


def apply_constraints(params, constraints):
    """Apply constraint functions to the parameters whose names match, after a step.

    Parameters
    ----------
    params : dict
        Parameter arrays by name.
    constraints : dict
        ``fnmatch`` pattern (or exact name) -> function ``array -> array``. Every
        matching constraint is applied, in the dictionary's order.

    Returns
    -------
    dict
        A new dictionary; unconstrained parameters are the same arrays.
    """
    if not constraints:
        return params
    out = dict(params)
    for name in out:
        for pattern, fn in constraints.items():
            if fnmatchcase(name, pattern):
                out[name] = fn(out[name])
    return out
