"""NumPy on the CPU: the float64 reference backend."""

from __future__ import annotations

from ._base import Backend


class NumpyBackend(Backend):
    name = "numpy"

    def __init__(self, device=None):
        import array_api_compat.numpy as xp

        if device not in (None, "cpu"):
            msg = f"the numpy backend runs on 'cpu' only, got device={device!r}"
            raise ValueError(msg)
        self.xp = xp
        self.device = "cpu"
