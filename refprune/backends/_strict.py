"""array-api-strict: the standard and nothing more, to prove the core is portable.

Its arrays live on named fake devices: ``CPU_DEVICE`` (the default) and ``device1``,
``device2``. Arrays of two devices cannot be combined, so a run on ``device1``
(``--backend array-api-strict --device device1``) finds, on the CPU, every array the
core creates without ``device=`` (the bugs that otherwise only show on a GPU).
"""

from __future__ import annotations

import numpy as np

from ._base import Backend


class StrictBackend(Backend):
    name = "array-api-strict"

    def __init__(self, device=None):
        try:
            import array_api_strict as xp
        except ImportError as exc:
            msg = "array-api-strict is not installed; pip install array-api-strict"
            raise RuntimeError(msg) from exc
        self.xp = xp
        self.device = self._device(xp, device)

    @staticmethod
    def _device(xp, device):
        if device is None or isinstance(device, xp.Device):
            return xp.Device() if device is None else device
        names = ("CPU_DEVICE", "device1", "device2")
        if device not in names:
            msg = f"unknown array-api-strict device {device!r}; choose one of {', '.join(names)}"
            raise ValueError(msg)
        return xp.Device(device)

    def to_numpy(self, x):
        if x.device != self.xp.Device():
            x = self.xp.asarray(x, device=self.xp.Device(), copy=True)
        return np.from_dlpack(x)
