"""Backend adapters: one small class per array library, the same methods on each.

``get(name)`` builds an adapter; it imports its library only then. ``available()``
lists the names that import and have a device on this machine.

>>> from refprune import backends
>>> b = backends.get("numpy")
>>> x = b.asarray([1.0, 2.0])
>>> b.to_numpy(b.xp.sum(x))
array(3.)
"""

from __future__ import annotations

from ._base import Backend, Generator, ReferenceGenerator

_REGISTRY = {
    "numpy": ("._numpy", "NumpyBackend"),
    "array-api-strict": ("._strict", "StrictBackend"),
    "torch": ("._torch", "TorchBackend"),
    "torch-cuda": ("._torch", "TorchCudaBackend"),
    "cupy": ("._cupy", "CupyBackend"),
    "jax": ("._jax", "JaxBackend"),
}

NAMES = tuple(_REGISTRY)

#: Backends the default test runs leave out (``pytest``, and ``pytest conformance`` with no
#: ``REFPRUNE_TARGET_BACKEND``): JAX runs the core eagerly, one dispatch per operation, far
#: too slow for the training tests. Name one to test it (``REFPRUNE_TARGET_BACKEND=jax``;
#: ``tests/test_jax.py`` tests the adapter and jit / grad / vmap).
OPT_IN = ("jax",)
DEFAULT_TEST_NAMES = tuple(n for n in NAMES if n not in OPT_IN)

#: The module holding each Array API namespace's fast paths (``refprune._dispatch``),
#: by the namespace's ``__name__``; imported the first time the core asks for one.
FAST_PATH_MODULES = {
    "array_api_compat.numpy": "._numpy_fast",
    "numpy": "._numpy_fast",
    "array_api_compat.torch": "._torch_fast",
    "array_api_compat.cupy": "._cupy_fast",
}

__all__ = [
    "get", "available", "unavailable_reason", "fast_paths_for", "NAMES", "OPT_IN", "DEFAULT_TEST_NAMES",
    "FAST_PATH_MODULES", "Backend", "Generator",
    "ReferenceGenerator",
]


def _adapter_class(name):
    if name not in _REGISTRY:
        msg = f"unknown backend {name!r}; known backends: {', '.join(NAMES)}"
        raise ValueError(msg)
    from importlib import import_module

    module_name, class_name = _REGISTRY[name]
    return getattr(import_module(module_name, __name__), class_name)


def get(name, device=None):
    """Return the adapter for backend ``name`` (``numpy``, ``torch``, ``torch-cuda``, ``cupy``, ``array-api-strict``, ``jax``).

    Raises ``ValueError`` for an unknown name and ``RuntimeError`` when the backend's
    library is not installed or it has no device here.
    """
    return _adapter_class(name)(device=device)


def unavailable_reason(name):
    """Why backend ``name`` cannot run here, or ``None`` when it can."""
    try:
        get(name)
    except (ImportError, RuntimeError) as exc:
        return str(exc)
    return None


def available():
    """Names of the backends that import and have a device on this machine."""
    return [name for name in NAMES if unavailable_reason(name) is None]


def fast_paths_for(namespace_name):
    """The fast paths (``op -> function``) of the namespace named ``namespace_name``; ``{}`` for none."""
    module_name = FAST_PATH_MODULES.get(namespace_name)
    if module_name is None:
        return {}
    from importlib import import_module

    return dict(import_module(module_name, __name__).FAST_PATHS)
