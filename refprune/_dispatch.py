"""Delegation to backend fast paths: the one way the core hands a step to native code.

The core is written once against the Array API (the *reference path*). At a handful
of well-named private steps it calls :func:`delegate`, which runs the array library's
native implementation of that step (a *fast path*) when there is one and returns its
result, or returns ``None``, and the core then runs its reference lines:

* ``"mask_keep"``: ``masks.keep_flat``, the keep mask that prunes exactly ``k``
  entries of a 1-D score array (tie rule included);
* ``"global_mask_keep"``: ``masks._global_keep``, one budget over a list of them;
* ``"nm_keep"``: ``patterns.nm_keep``, the N:M keep mask of a ``(groups, m)`` array;
* ``"block_keep"``: the pooling, tile selection and expansion of ``patterns.block_mask``;
* ``"sparsegpt_columns"``: ``oneshot._sparsegpt_columns``, SparseGPT's column loop (masks
  and OBS updates) on the prepared weights and the Cholesky factor of the inverse Hessian;
* ``"hard_concrete_forward"``, ``"hard_concrete_backward"``: the elementwise chains
  of ``gates._sample_forward`` (the sample and the stretched sigmoid ``s`` its gradient
  needs) and ``gates._sample_backward`` (the gradient from ``s``);
* ``"conv2d"``, ``"conv2d_grad"``, ``"max_pool2d"``, ``"max_pool2d_grad"``: the
  functions of ``nn.functional`` of those names;
* ``"adam_update"``: ``nn.optim._adam_update``, one parameter's Adam step;
* ``"l0_decay_terms"``: ``regularizers._decay_terms``, the weight-decay terms of the L0
  penalty (each group's sum of squares and the gradient ``(wd * w) * p``);
* ``"relu_grad"``: ``nn.functional.relu_grad``;
* ``"clip"``: ``_array.clip`` (``xp.clip`` with float bounds: the gates' clamps, constraints);
* ``"add_scaled"``: ``nn.train._add_scaled``, ``a + s * b`` (the scaled penalty gradient added to a gradient).

A fast path has the signature of its step (documented where the step calls
:func:`delegate`) and returns exactly what the reference path returns: bit-identical
for masks (same tie rule, same exact count), within the float tolerance table for
floating results. It returns ``None`` for an input it does not handle (a dtype, a
NaN to report, an unusual layout), and the core then runs the reference path, which
also produces the error messages. Fast paths never write to their inputs.

Where they live. Each backend's fast paths are a module beside its adapter
(``refprune/backends/_numpy_fast.py``, ``_torch_fast.py``, ``_cupy_fast.py``) ending in a
``FAST_PATHS`` dictionary ``op -> function``; the table ``FAST_PATH_MODULES`` in
``refprune.backends`` says which module serves which namespace (by the ``__name__``
of the namespace the core computes with, e.g. ``"array_api_compat.torch"``). A
namespace's module is imported the first time the core asks for it; this module
itself imports no array library. :func:`register` adds or replaces one (tests, users).

Switching fast paths off, for instance to compare both paths on the same inputs::

    with reference_only():
        ref = magnitude_mask(w, amount=0.9)
    assert (ref == magnitude_mask(w, amount=0.9)).all()

or for a whole process with the environment variable ``REFPRUNE_REFERENCE_ONLY=1``.

>>> from refprune import _dispatch
>>> _dispatch.register("my.namespace", "mask_keep", lambda flat, k, *, magnitude: None)
>>> class NS: __name__ = "my.namespace"
>>> _dispatch.lookup(NS(), "mask_keep") is not None
True
>>> with _dispatch.reference_only():
...     _dispatch.lookup(NS(), "mask_keep") is None
True
>>> _dispatch.unregister("my.namespace", "mask_keep")
"""

from __future__ import annotations

import contextlib
import os
import threading

__all__ = [
    "delegate", "register", "unregister", "lookup", "registered", "reference_only", "fast_paths_enabled", "ENV_VAR",
]

ENV_VAR = "REFPRUNE_REFERENCE_ONLY"

_REGISTRY: dict[tuple[str, str], object] = {}
_STATE = threading.local()  # per-thread depth of reference_only() blocks
_LOADED: set[str] = set()  # namespace names whose backend module has been asked for


def _load(namespace_name):
    """Add the fast paths that ``refprune.backends`` declares for ``namespace_name`` (once)."""
    _LOADED.add(namespace_name)
    try:
        from refprune.backends import fast_paths_for
    except ImportError:  # pragma: no cover - a broken install: run the reference path
        return
    for op, fn in fast_paths_for(namespace_name).items():
        _REGISTRY.setdefault((namespace_name, op), fn)


def _check_name(what, value):
    if not isinstance(value, str) or not value:
        msg = f"{what} must be a non-empty str, got {type(value).__name__} {value!r}"
        raise TypeError(msg)


def register(namespace_name, op, fn):
    """Register ``fn`` as the fast path of step ``op`` for the namespace named ``namespace_name``.

    Parameters
    ----------
    namespace_name : str
        ``__name__`` of the Array API namespace module, e.g. ``"array_api_compat.numpy"``.
    op : str
        The step's name (see the module's table).
    fn : callable
        The fast path; a later registration for the same pair replaces it.
    """
    _check_name("namespace_name", namespace_name)
    _check_name("op", op)
    if not callable(fn):
        msg = f"fn must be callable, got {type(fn).__name__}"
        raise TypeError(msg)
    _REGISTRY[(namespace_name, op)] = fn


def unregister(namespace_name, op):
    """Remove the fast path of ``op`` for ``namespace_name`` (nothing happens if there is none)."""
    _REGISTRY.pop((namespace_name, op), None)


def registered():
    """All fast paths (declared by ``refprune.backends`` and registered) as sorted ``(namespace_name, op)`` pairs."""
    from refprune.backends import FAST_PATH_MODULES

    for name in FAST_PATH_MODULES:
        if name not in _LOADED:
            _load(name)
    return sorted(_REGISTRY)


def fast_paths_enabled():
    """False inside :func:`reference_only` or when ``REFPRUNE_REFERENCE_ONLY`` is set to a true value."""
    if getattr(_STATE, "depth", 0) > 0:
        return False
    return os.environ.get(ENV_VAR, "").strip().lower() in ("", "0", "false", "no", "off")


def lookup(xp, op):
    """The fast path of ``op`` for namespace ``xp``, or ``None`` (then run the reference path).

    ``None`` as well inside :func:`reference_only` and under ``REFPRUNE_REFERENCE_ONLY=1``.
    """
    if not fast_paths_enabled():
        return None
    name = getattr(xp, "__name__", None)
    if name not in _LOADED:
        _load(name)
    return _REGISTRY.get((name, op))


def delegate(op, xp, /, *args, **kwargs):
    """The fast path of ``op`` for namespace ``xp`` applied to the arguments, or ``None``.

    ``None`` means: no fast path (or it declined this input, or fast paths are off),
    run the reference lines. The one call through which the core delegates::

        out = delegate("conv2d", xp, x, w, b, stride=stride, padding=padding)
        if out is not None:
            return out
    """
    fast = lookup(xp, op)
    return None if fast is None else fast(*args, **kwargs)


@contextlib.contextmanager
def reference_only():
    """Context manager: inside it every step runs the pure Array API reference path.

    Nests, and applies to the calling thread only.
    """
    _STATE.depth = getattr(_STATE, "depth", 0) + 1
    try:
        yield
    finally:
        _STATE.depth -= 1
