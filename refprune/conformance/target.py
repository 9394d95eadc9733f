"""Calling a target: host NumPy inputs in, the target's array type in between, NumPy out.

A target is any importable module (or ``module:attribute``) with some of the oracle
protocol's names. :class:`Target` converts every host NumPy argument with the
refprune backend adapter of the target's array type, calls the function, converts the
result back with ``to_numpy`` and remembers the call, so that a failing comparison
can print a snippet that reproduces it. A name the target lacks raises
:class:`MissingFunction`, which fails only the tests that use that name.

The reference is :func:`reference`: refprune itself on NumPy with every floating
input cast to float64 first.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os

import numpy as np

from refprune.conformance.config import PROTOCOL_VERSION

__all__ = ["Target", "Call", "Host", "MissingFunction", "load_module", "reference"]


class MissingFunction(AssertionError):
    """The target does not implement a protocol name a test needs."""


class Host:
    """A NumPy array passed to the target as it is, not converted (mixed-namespace checks)."""

    def __init__(self, array):
        self.array = np.asarray(array)

    def __repr__(self):
        return f"Host({self.array!r})"


def load_module(spec):
    """Import ``"package.module"`` or ``"package.module:attribute"`` and return it."""
    module_name, _, attr = spec.partition(":")
    try:
        obj = importlib.import_module(module_name)
    except ImportError as exc:
        msg = f"cannot import the conformance target {spec!r}: {exc}"
        raise ImportError(msg) from exc
    for part in filter(None, attr.split(".")):
        obj = getattr(obj, part)
    return obj


def _is_array(x):
    from array_api_compat import is_array_api_obj

    return is_array_api_obj(x) and not isinstance(x, (bool, int, float))


def _host_copy(x):
    """Host copies of the NumPy arrays in an argument (lists and tuples included)."""
    if isinstance(x, np.ndarray):
        return x.copy()
    if isinstance(x, (list, tuple)):
        return type(x)(_host_copy(v) for v in x)
    if isinstance(x, Host):
        return Host(x.array.copy())
    return x


def _array_literal(a):
    if a.dtype == bool:
        body = repr(a.reshape(-1).tolist())
    else:
        body = "[" + ", ".join(_float_literal(v) for v in a.reshape(-1).tolist()) + "]"
    return f"np.array({body}, dtype={a.dtype.name!r}).reshape({tuple(a.shape)!r})"


def _float_literal(v):
    if v != v:
        return "np.nan"
    if v in (np.inf, -np.inf):
        return "np.inf" if v > 0 else "-np.inf"
    return repr(v)


#: Arrays larger than this go to a ``.npy`` file that the snippet loads.
SNIPPET_MAX_SIZE = 256


def _saved(a):
    """``np.load(...)`` of ``a`` saved under a name from its content (one file per distinct input)."""
    import hashlib
    import tempfile

    digest = hashlib.sha1(f"{a.dtype.str}{a.shape}".encode() + np.ascontiguousarray(a).tobytes()).hexdigest()[:16]
    path = os.path.join(tempfile.gettempdir(), f"refprune-repro-{digest}.npy")
    if not os.path.exists(path):
        np.save(path, a, allow_pickle=False)
    return f"np.load({path!r})"


def _literal(x, asarray):
    if isinstance(x, Host):
        return _array_literal(x.array) if x.array.size <= SNIPPET_MAX_SIZE else _saved(x.array)
    if isinstance(x, np.ndarray):
        body = _array_literal(x) if x.size <= SNIPPET_MAX_SIZE else _saved(x)
        return f"{asarray}({body})"
    if isinstance(x, (list, tuple)):
        inner = ", ".join(_literal(v, asarray) for v in x)
        return f"[{inner}]" if isinstance(x, list) else f"({inner}{',' if len(x) == 1 else ''})"
    if isinstance(x, float) and not np.isfinite(x):
        return f"float('{x!r}')"
    return repr(x)


def _describe(x):
    if isinstance(x, Host):
        return f"numpy {_describe(x.array)}"
    if isinstance(x, np.ndarray):
        return f"{x.dtype.name}{list(x.shape)}"
    if isinstance(x, (list, tuple)):
        return "[" + ", ".join(_describe(v) for v in x) + "]"
    return repr(x)


def _positional_names(fname):
    """Names of the protocol function's positional arguments (from refprune's signature)."""
    import refprune

    try:
        sig = inspect.signature(getattr(refprune, fname))
    except (AttributeError, TypeError, ValueError):
        return []
    return [p.name for p in sig.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def floating_dtypes(values):
    """The names of the floating dtypes of the NumPy arrays in ``values`` (nested lists and tuples searched)."""
    found = set()

    def visit(x):
        if isinstance(x, np.ndarray) and x.dtype.kind == "f":
            found.add(x.dtype.name)
        elif isinstance(x, (list, tuple)):
            for v in x:
                visit(v)

    visit(values)
    return found


class Call:
    """One call of a protocol function on a target, kept for failure messages."""

    def __init__(self, target, fname, args, kwargs):
        self.target = target
        self.fname = fname
        self.args = _host_copy(tuple(args))
        self.kwargs = {k: _host_copy(v) for k, v in kwargs.items()}

    @property
    def dtypes(self):
        """The floating dtypes among the array arguments, e.g. ``{'float32'}``."""
        return floating_dtypes((*self.args, *self.kwargs.values()))

    def signature(self):
        """``fname(log_alpha: float32[3], u: float32[3], beta=0.5)``."""
        names = _positional_names(self.fname)
        parts = []
        for i, a in enumerate(self.args):
            label = names[i] if i < len(names) else f"arg{i}"
            shown = isinstance(a, (np.ndarray, list, tuple, Host))
            parts.append(f"{label}: {_describe(a)}" if shown else f"{label}={a!r}")
        parts += [f"{k}={_describe(v)}" for k, v in self.kwargs.items()]
        return f"{self.fname}({', '.join(parts)})"

    def snippet(self):
        """Python that reproduces the call on the same target and backend."""
        t = self.target
        names = _positional_names(self.fname)
        lines = [
            "import numpy as np",
            "from refprune import backends",
            "from refprune.conformance.target import load_module",
            f"b = backends.get({t.backend_name!r})",
            f"f = load_module({t.module_name!r}).{self.fname}",
        ]
        asarray = "np.asarray" if t.cast64 else "b.asarray"
        call_args = []
        for i, a in enumerate(self.args):
            label = names[i] if i < len(names) else f"arg{i}"
            if isinstance(a, (np.ndarray, list, tuple, Host)):
                lines.append(f"{label} = {_literal(a, asarray)}")
                call_args.append(label)
            else:
                call_args.append(_literal(a, asarray))
        call_args += [f"{k}={_literal(v, asarray)}" for k, v in self.kwargs.items()]
        lines.append(f"out = f({', '.join(call_args)})")
        lines.append("print(out)")
        return "\n".join(lines)

    def __str__(self):
        return f"{self.signature()} on {self.target}"


class Target:
    """A protocol implementation on one backend, called with host NumPy arrays.

    ``target("magnitude_mask", w, amount=0.5)`` returns the result as NumPy (tuples
    and lists kept, Python scalars as they are) and sets ``target.last`` to the
    :class:`Call`. ``cast64=True`` casts floating inputs to float64 first (the
    reference).
    """

    def __init__(self, module_name, backend_name="numpy", *, cast64=False, reference_path=False):
        from refprune import backends

        self.module_name = module_name
        self.backend_name = backend_name
        self.cast64 = cast64
        self.reference_path = reference_path
        self.backend = backends.get(backend_name)
        self.module = load_module(module_name)
        self.last = None
        self.calls = 0

    def __repr__(self):
        return f"<conformance target {self}>"

    def __str__(self):
        return f"{self.module_name} on {self.backend_name}"

    def has(self, fname):
        return callable(getattr(self.module, fname, None))

    def function(self, fname):
        f = getattr(self.module, fname, None)
        if not callable(f):
            msg = (
                f"the target {self.module_name} does not implement {fname} (oracle protocol {PROTOCOL_VERSION}); "
                f"the tests that use {fname} fail, the others still run"
            )
            raise MissingFunction(msg)
        return f

    # ------------------------------------------------------------------ conversion

    def to_target(self, x):
        """Host NumPy array (or list/tuple of them) onto the target's backend."""
        if isinstance(x, Host):
            return x.array
        if isinstance(x, np.ndarray):
            if self.cast64 and x.dtype.kind == "f":
                x = x.astype(np.float64)
            return self.backend.asarray(x, dtype=x.dtype.name)
        if isinstance(x, list):
            return [self.to_target(v) for v in x]
        if isinstance(x, tuple):
            return tuple(self.to_target(v) for v in x)
        return x

    def to_host(self, out, call):
        """The target's output back on the host; an array of a foreign library fails."""
        if isinstance(out, tuple):
            return tuple(self.to_host(v, call) for v in out)
        if isinstance(out, list):
            return [self.to_host(v, call) for v in out]
        if isinstance(out, dict):  # a mapping in, a mapping out (layer_densities, owl_densities)
            return {k: self.to_host(v, call) for k, v in out.items()}
        if isinstance(out, np.generic):
            return np.asarray(out)
        if isinstance(out, (bool, int, float)) or out is None:
            return out
        if not _is_array(out):
            msg = f"{call}: returned {type(out).__name__}, expected an array or a Python number"
            raise AssertionError(msg)
        from array_api_compat import array_namespace

        if array_namespace(out) is not self.backend.xp and not isinstance(out, np.generic):
            msg = (
                f"{call}: returned a {type(out).__module__}.{type(out).__name__}, but the inputs were "
                f"{self.backend_name} arrays; outputs must keep the input's array library"
            )
            raise AssertionError(msg)
        return np.asarray(self.backend.to_numpy(out))

    # ------------------------------------------------------------------ calling

    def __call__(self, fname, *args, **kwargs):
        f = self.function(fname)
        call = Call(self, fname, args, kwargs)
        self.last = call
        self.calls += 1
        t_args = [self.to_target(a) for a in args]
        t_kwargs = {k: self.to_target(v) for k, v in kwargs.items()}
        with _reference_path() if self.reference_path else contextlib.nullcontext():
            out = f(*t_args, **t_kwargs)
        self._check_unchanged(call, args, t_args)
        return self.to_host(out, call)

    def _check_unchanged(self, call, host, given):
        """The target must not write to its inputs (docs/protocol.md: inputs are never mutated)."""
        for i, (h, g) in enumerate(zip(host, given)):
            if isinstance(h, (list, tuple)) and isinstance(g, (list, tuple)):
                self._check_unchanged(call, h, g)
                continue
            if not isinstance(h, np.ndarray):
                continue
            after = np.asarray(self.backend.to_numpy(g))
            if not np.array_equal(after, h.astype(after.dtype), equal_nan=after.dtype.kind == "f"):
                msg = f"{call}: modified its input argument {i} in place; inputs are never mutated"
                raise AssertionError(msg)


def _reference_path():
    """refprune's pure Array API path, native fast paths switched off (``refprune._dispatch``)."""
    try:
        from refprune._dispatch import reference_only
    except ImportError:
        return contextlib.nullcontext()
    return reference_only()


_REFERENCE = None


def reference():
    """refprune on NumPy in float64, on its pure Array API path: what every target is compared with.

    Backend fast paths (``refprune._dispatch``) are off here, so the default run, which
    calls refprune with them on, checks every fast path against the reference.
    """
    global _REFERENCE
    if _REFERENCE is None:
        _REFERENCE = Target("refprune", "numpy", cast64=True, reference_path=True)
    return _REFERENCE
