"""The adapter interface and the host-side reference random stream."""

from __future__ import annotations

import json

import numpy as np

from .._array import is_int


class Generator:
    """Random numbers as backend arrays: ``uniform``, ``normal``, ``permutation``.

    ``state()`` returns a JSON string and ``set_state(s)`` restores it, so that a
    checkpoint can hold the stream without pickling.
    """

    def uniform(self, shape, dtype="float64", low=0.0, high=1.0):
        raise NotImplementedError

    def normal(self, shape, dtype="float64"):
        raise NotImplementedError

    def permutation(self, n):
        raise NotImplementedError

    def state(self):
        raise NotImplementedError

    def set_state(self, state):
        raise NotImplementedError


class ReferenceGenerator(Generator):
    """NumPy PCG64 on the host, every draw made in float64 and then transferred.

    One seed gives the same numbers on every backend and in every dtype (up to the
    final rounding to float32), so whole training runs can be compared across backends.
    """

    def __init__(self, backend, seed):
        self._backend = backend
        self._rng = np.random.Generator(np.random.PCG64(seed))

    def uniform(self, shape, dtype="float64", low=0.0, high=1.0):
        host = self._rng.uniform(low, high, size=shape_tuple(shape))
        return self._backend.asarray(host, dtype=dtype)

    def normal(self, shape, dtype="float64"):
        host = self._rng.standard_normal(size=shape_tuple(shape))
        return self._backend.asarray(host, dtype=dtype)

    def permutation(self, n):
        return self._backend.asarray(self._rng.permutation(int(n)))

    def state(self):
        return json.dumps(self._rng.bit_generator.state)

    def set_state(self, state):
        self._rng.bit_generator.state = json.loads(state)


def shape_tuple(shape):
    """A shape as a tuple of Python ints (an int ``n`` is ``(n,)``): what every adapter's generator takes."""
    return (int(shape),) if isinstance(shape, int) else tuple(int(d) for d in shape)


class Backend:
    """One array library on one device.

    Attributes: ``name``, ``xp`` (the Array API namespace), ``device``.
    Methods: ``asarray``, ``to_numpy``, ``synchronize``, ``rng``.
    """

    name = ""

    def __init__(self, device=None):
        raise NotImplementedError

    def asarray(self, host_array, dtype=None):
        """Copy a host (NumPy or nested-list) array onto this backend's device.

        ``dtype`` may be a name (``"float32"``) or one of ``xp``'s dtypes.
        """
        return self.xp.asarray(np.asarray(host_array), dtype=self.dtype(dtype), device=self.device)

    def to_numpy(self, x):
        """Return ``x`` as a NumPy array on the host."""
        return np.asarray(x)

    def synchronize(self):
        """Wait until queued device work has finished (a no-op on the CPU)."""

    def rng(self, seed, stream="native"):
        """A ``Generator`` seeded with ``seed``.

        ``stream="reference"`` draws with NumPy PCG64 on the host (identical numbers on
        every backend); ``"native"`` uses the library's own generator.
        """
        _check_seed(seed)
        if stream == "reference":
            return ReferenceGenerator(self, seed)
        if stream == "native":
            return self._native_rng(seed)
        msg = f"stream must be 'native' or 'reference', got stream={stream!r}"
        raise ValueError(msg)

    def _native_rng(self, seed):
        return ReferenceGenerator(self, seed)

    def limit_threads(self, n):
        """Cap this process's BLAS / OpenMP thread pools (and the library's own) at ``n``.

        Returns what keeps the limit alive (a threadpoolctl limiter), or None without threadpoolctl.
        """
        if not is_int(n) or n < 1:
            msg = f"threads must be an int >= 1, got threads={n!r}"
            raise ValueError(msg)
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            return None
        return threadpool_limits(n)

    def versions(self):
        """The array library's version and thread count, for ``result.json`` (NumPy's is always there)."""
        return {}

    def dtype(self, dtype):
        """Resolve a dtype to ``xp``'s dtype (``None`` stays ``None``).

        ``dtype`` may be a name (``"float32"``) or any library's dtype object: NumPy's
        dtypes and scalar types, torch's, array-api-strict's (see :func:`dtype_name`).
        """
        if dtype is None:
            return None
        name = dtype_name(dtype)
        resolved = getattr(self.xp, name, None) if name.isidentifier() else None
        if resolved is None:
            msg = f"unknown dtype {dtype!r} for backend {self.name}; use e.g. 'float32' or 'float64'"
            raise ValueError(msg)
        return resolved

    def __repr__(self):
        return f"<refprune backend {self.name} on {self.device}>"


def dtype_name(dtype):
    """The standard name (``"float32"``) of a dtype given as a name or any library's dtype.

    ``str`` of a dtype is no name: NumPy's and CuPy's ``xp.float32`` are NumPy scalar
    types, whose ``str`` is ``"<class 'numpy.float32'>"``; torch's is ``"torch.float32"``
    and array-api-strict's ``"array_api_strict.float32"``. NumPy 1's ``bool_`` is ``bool``.

    >>> import numpy as np
    >>> [dtype_name(d) for d in ("float32", np.float32, np.dtype("float64"), np.bool_)]
    ['float32', 'float32', 'float64', 'bool']
    """
    if isinstance(dtype, str):
        return dtype
    if isinstance(dtype, type):  # a NumPy scalar type: NumPy's and CuPy's dtypes in array-api-compat
        return dtype.__name__.rstrip("_")
    return str(dtype).rsplit(".", 1)[-1]


def _check_seed(seed):
    if not is_int(seed) or seed < 0:
        msg = f"seed must be a non-negative int, got seed={seed!r}"
        raise ValueError(msg)
