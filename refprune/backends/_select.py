"""Exact-k mask selection for libraries whose own ops use every core or a GPU (torch CUDA, CuPy).

The same algorithm as ``_numpy_fast.np_select_keep`` (a sampled bracket around rank ``k``,
one band of candidates, the tie rule applied from the back), vectorized per array
through the Array API namespace; the few native calls are ``kthvalue`` (torch) and
``partition`` (CuPy).
"""

from __future__ import annotations

import math

from ._numpy_fast import SAMPLE


def xp_select_keep(flats, k, magnitude, xp):
    """The same selection for torch and CuPy, vectorized per array (their ops use every core).

    Parameters and result as ``_numpy_fast.np_select_keep`` (1-D real float arrays of
    one dtype and device; None for other inputs and on NaN). ``xp`` is the
    array-api-compat namespace; the few native calls are ``kthvalue`` (torch) and
    ``partition`` (CuPy).
    """
    dtypes = {str(f.dtype) for f in flats}
    if len(dtypes) != 1 or any(f.ndim != 1 for f in flats):
        return None
    if not all(xp.isdtype(f.dtype, "real floating") for f in flats):
        return None
    dev = flats[0].device
    n = sum(int(f.shape[0]) for f in flats)

    def score(f):
        return xp.abs(f) if magnitude else f

    if n == 0:
        return [xp.ones((0,), dtype=xp.bool, device=dev) for _ in flats]
    for f in flats:
        if f.shape[0] and bool(xp.isnan(xp.max(score(f)))):
            return None
    if k == 0 or k == n:
        return [xp.full((int(f.shape[0]),), k == 0, dtype=xp.bool, device=dev) for f in flats]
    stride = max(1, n // SAMPLE)
    sample = xp.sort(xp.concat([score(f)[::stride] for f in flats]))
    m = int(sample.shape[0])
    p = k / n
    d = 4.0 * math.sqrt(m * p * (1.0 - p)) + 8.0
    il, ih = int(math.floor(p * m - d)), int(math.ceil(p * m + d))
    lo = sample[il] if il >= 0 else None
    hi = sample[ih] if ih < m else None

    def band(lo, hi):
        below, vals, ids, pos = 0, [], [], []
        for a, f in enumerate(flats):
            s = score(f)
            inside = xp.ones(s.shape, dtype=xp.bool, device=dev)
            if lo is not None:
                low = s < lo
                below += int(xp.count_nonzero(low))
                inside = ~low
            if hi is not None:
                inside = inside & (s <= hi)
            (ix,) = xp.nonzero(inside)
            vals.append(xp.take(s, ix))
            ids.append(xp.full(ix.shape, a, dtype=xp.int64, device=dev))
            pos.append(ix)
        return below, xp.concat(vals), xp.concat(ids), xp.concat(pos)

    below, vals, ids, pos = band(lo, hi)
    if k < below:
        below, vals, ids, pos = band(None, lo)
    elif k >= below + int(vals.shape[0]):
        below, vals, ids, pos = band(hi, None)
    j = k - below
    if not 0 <= j < int(vals.shape[0]):
        return None
    t = xp.sort(vals)[j]
    keeps = [score(f) >= t for f in flats]
    kept = sum(int(xp.count_nonzero(keep)) for keep in keeps)
    excess = kept - (n - k)
    if excess:
        (tie,) = xp.nonzero(vals == t)
        tie = tie[int(tie.shape[0]) - excess :]
        tie_ids, tie_pos = xp.take(ids, tie), xp.take(pos, tie)
        for a in range(len(flats)):
            sel = tie_pos[tie_ids == a]
            if int(sel.shape[0]):
                keeps[a][sel] = False  # our own new array, not an input
    return keeps


def xp_mask_keep(xp_name):
    """The ``"mask_keep"`` fast path (``masks.keep_flat``) for the namespace ``xp_name`` (imported when called)."""

    def mask_keep(flat, k, *, magnitude):
        from importlib import import_module

        keeps = xp_select_keep([flat], k, magnitude, import_module(xp_name))
        return None if keeps is None else keeps[0]

    return mask_keep


def xp_global_mask_keep(xp_name):
    """The ``"global_mask_keep"`` fast path (one budget over a list) for the namespace ``xp_name``."""

    def global_mask_keep(flats, k, *, magnitude):
        from importlib import import_module

        return xp_select_keep(list(flats), k, magnitude, import_module(xp_name))

    return global_mask_keep
