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

    def versions(self):
        """numba's version when its compiled kernels run the elementwise chains (``refprune[fast]``), else None."""
        from . import _numba_kernels

        kernels = _numba_kernels.kernels()
        return {"numba": None if kernels is None else kernels.version}
