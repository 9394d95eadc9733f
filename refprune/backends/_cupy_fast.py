"""CuPy fast paths: exact-k mask selection (``_select``).

The rules every fast path keeps (same results as the reference path, ``None`` for an
input it does not handle, inputs never written to) are in ``refprune._dispatch``;
``FAST_PATHS`` at the bottom lists this module's (op name -> function).
"""

from __future__ import annotations

from ._select import xp_global_mask_keep, xp_mask_keep

FAST_PATHS = {
    "mask_keep": xp_mask_keep("array_api_compat.cupy"),
    "global_mask_keep": xp_global_mask_keep("array_api_compat.cupy"),
}
