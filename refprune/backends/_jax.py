"""JAX on the CPU: ``jax.numpy`` is an Array API namespace (jax >= 0.4.32).

float64 needs JAX's 64-bit mode (``jax.config.update("jax_enable_x64", True)`` or the
environment variable ``JAX_ENABLE_X64=1`` before jax is imported); without it JAX
computes in float32, and :meth:`JaxBackend.asarray` refuses a float64 array instead of
silently truncating it. JAX arrays are immutable, which the core never violates (it
never writes to an input); refprune's primitives run eagerly and under ``jax.jit``,
``jax.grad`` and ``jax.vmap`` (checks that read values are skipped for tracers:
``refprune._array.values_checkable``).
"""

from __future__ import annotations

import json

import numpy as np

from ._base import Backend, Generator, shape_tuple

X64_HINT = ("JAX computes in float32 unless its 64-bit mode is on: set JAX_ENABLE_X64=1 before starting Python, "
            "or call jax.config.update('jax_enable_x64', True) first")


def _import_jax():
    try:
        import jax
    except ImportError as exc:
        msg = "jax is not installed; pip install jax (the CPU wheel is enough)"
        raise RuntimeError(msg) from exc
    return jax



class JaxGenerator(Generator):
    """``jax.random`` with a key that is split at every draw (a stateful stream over JAX's stateless one)."""

    def __init__(self, backend, seed):
        self._backend = backend
        self._jax = backend.jax
        self._key = self._jax.random.key(int(seed))

    def _next(self):
        self._key, sub = self._jax.random.split(self._key)
        return sub

    def uniform(self, shape, dtype="float64", low=0.0, high=1.0):
        dt = self._backend.dtype(dtype)
        self._backend._check_dtype(dt)
        return self._jax.random.uniform(self._next(), shape_tuple(shape), dtype=dt, minval=low, maxval=high)

    def normal(self, shape, dtype="float64"):
        dt = self._backend.dtype(dtype)
        self._backend._check_dtype(dt)
        return self._jax.random.normal(self._next(), shape_tuple(shape), dtype=dt)

    def permutation(self, n):
        return self._jax.random.permutation(self._next(), int(n))

    def state(self):
        return json.dumps(np.asarray(self._jax.random.key_data(self._key)).tolist())

    def set_state(self, state):
        data = np.asarray(json.loads(state), dtype=np.uint32)
        self._key = self._jax.random.wrap_key_data(self._jax.numpy.asarray(data))


class JaxBackend(Backend):
    name = "jax"

    def __init__(self, device=None):
        self.jax = _import_jax()
        import jax.numpy as xp

        self.xp = xp
        cpu = self.jax.devices("cpu")
        if device is None or device == "cpu":
            self.device = cpu[0]
        elif device in cpu:
            self.device = device
        else:
            msg = f"the jax backend runs on the CPU, got device={device!r}; use device='cpu'"
            raise ValueError(msg)

    def _check_dtype(self, dtype):
        """Raise ``ValueError`` for float64 when JAX's 64-bit mode is off (it would become float32)."""
        if dtype is not None and np.dtype(dtype) == np.float64 and not self.jax.config.jax_enable_x64:
            msg = f"the jax backend cannot hold float64 here: {X64_HINT}"
            raise ValueError(msg)

    def asarray(self, host_array, dtype=None):
        host = np.asarray(host_array)
        dt = self.dtype(dtype) if dtype is not None else host.dtype
        self._check_dtype(dt)
        if np.dtype(dt).kind in "iu" and np.dtype(dt).itemsize == 8 and not self.jax.config.jax_enable_x64:
            dt = np.dtype(dt).name.replace("64", "32")  # JAX's 32-bit mode: int32 indices, said plainly
        return self.jax.device_put(self.xp.asarray(host, dtype=dt), self.device)

    def to_numpy(self, x):
        return np.asarray(x)

    def synchronize(self):
        self.jax.effects_barrier()

    def _native_rng(self, seed):
        return JaxGenerator(self, seed)
