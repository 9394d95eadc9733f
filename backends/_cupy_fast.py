"""CuPy fast paths: exact-k mask selection (``_select``).

Every fast path returns exactly what the reference path returns (bit-identical masks
with the same tie rule and exact count; floating results within the tolerance table)
and returns ``None`` for an input it does not handle (another array type or dtype, a
NaN to report, noise outside [0, 1], ...), so that the core runs the reference path,
which also raises the documented errors. Inputs are never written to: in-place
operations touch private temporaries only. ``tests/test_fastpaths.py`` checks each
one against ``refprune._dispatch.reference_only()``. ``FAST_PATHS`` at the bottom is
what ``refprune.backends`` hands to ``refprune._dispatch`` (op name -> function).
"""

from __future__ import annotations

from ._select import _xp_global_mask_keep, _xp_mask_keep

FAST_PATHS = {
    "mask_keep": _xp_mask_keep("array_api_compat.cupy"),
    "global_mask_keep": _xp_global_mask_keep("array_api_compat.cupy"),
}
