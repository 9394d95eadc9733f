"""CuPy on an NVIDIA GPU."""

from __future__ import annotations


import numpy as np

from ._base import Backend, Generator, dtype_name, shape_tuple


class CupyGenerator(Generator):
    """CuPy's PCG64-backed ``default_rng`` on the GPU."""

    def __init__(self, backend, seed):
        self._backend = backend
        with backend.device:  # the generator's state lives on the device it was made on
            self._rng = backend.cupy.random.default_rng(int(seed))

    def uniform(self, shape, dtype="float64", low=0.0, high=1.0):
        with self._backend.device:
            out = self._rng.random(shape_tuple(shape), dtype=self._float_dtype(dtype))
            return out * (high - low) + low

    def normal(self, shape, dtype="float64"):
        with self._backend.device:
            return self._rng.standard_normal(shape_tuple(shape), dtype=self._float_dtype(dtype))

    def permutation(self, n):
        """A uniform random permutation of ``range(n)``: the order of ``n`` uniform float64 keys.

        CuPy's ``Generator`` has no ``permutation`` (cupy/cupy#4557), only distributions.
        """
        with self._backend.device:
            return self._backend.cupy.argsort(self._rng.random(int(n)))

    def state(self):
        msg = "CuPy's native generator cannot be saved; use stream='reference' for resumable runs"
        raise NotImplementedError(msg)

    def set_state(self, state):
        self.state()

    def _float_dtype(self, dtype):
        """The NumPy dtype CuPy's generator takes, from a name or any library's dtype."""
        return np.dtype(dtype_name(self._backend.dtype(dtype)))


def _device_index(device):
    """The CUDA device number of ``device``: None (0), an int, ``"cuda:N"``, ``"N"`` or an object with ``.id``."""
    if device is None:
        return 0
    if hasattr(device, "id"):
        return int(device.id)
    text = str(device).strip()
    if text == "cuda":
        return 0
    number = text[len("cuda:"):] if text.startswith("cuda:") else text
    if not number.isdigit():
        msg = f"the cupy backend takes a CUDA device number or 'cuda:N', got device={device!r}"
        raise ValueError(msg)
    return int(number)


class CupyBackend(Backend):
    name = "cupy"

    def __init__(self, device=None):
        index = _device_index(device)
        try:
            import cupy
        except ImportError as exc:
            msg = "cupy is not installed; pip install 'refprune[cuda12]' (or cuda13)"
            raise RuntimeError(msg) from exc
        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:  # CUDA driver errors have no common base class
            msg = f"cupy is installed but found no CUDA device: {exc}"
            raise RuntimeError(msg) from exc
        if count == 0:
            msg = "cupy is installed but found no CUDA device"
            raise RuntimeError(msg)
        if index >= count:
            msg = f"device={device!r}: this machine has {count} CUDA device(s), numbered from 0"
            raise ValueError(msg)
        import array_api_compat.cupy as xp

        self.cupy = cupy
        self.xp = xp
        self.device = cupy.cuda.Device(index)

    def asarray(self, host_array, dtype=None):
        with self.device:
            return self.cupy.asarray(np.asarray(host_array), dtype=self.dtype(dtype))

    def to_numpy(self, x):
        return self.cupy.asnumpy(x)

    def synchronize(self):
        self.device.synchronize()

    def versions(self):
        return {"cupy": self.cupy.__version__, "cuda_runtime": self.cupy.cuda.runtime.runtimeGetVersion()}

    def _native_rng(self, seed):
        return CupyGenerator(self, seed)
