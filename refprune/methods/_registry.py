"""The method registry: each method declares its options once; the CLI, the API and the docs read them.

A method is one module in ``refprune/methods/`` whose ``run(eng, o)`` is decorated
with :func:`register_method`::

    @register_method("l0", summary="...", defaults={"model": "lenet5", "epochs": 50, ...},
                     options=[Option("gate_lr", 0.05, "learning rate of the gates", positive=True), ...])
    def run(eng, o):
        ...                       # eng: refprune.engine.Engine; o: the validated options
        return eng.finish({...}, model=model)

Every module of the package whose name does not start with ``_`` is imported on first
use, so a new method is one new file. Its options become ``--flags`` of
``refprune run NAME`` with their defaults, ranges and help, keyword arguments of
``refprune.methods.run(NAME, ...)``, and rows of the docs.
"""

from __future__ import annotations

import math
import os
import pkgutil
from dataclasses import dataclass, fields
from functools import partial
from importlib import import_module
from types import SimpleNamespace

from refprune import backends, io
from refprune.checkpoints import checkpoint_path
from refprune.data import NAMES as DATA_NAMES
from refprune.engine import Engine
from refprune.nn.models import PRESETS
from refprune.runspec import RunSpec

__all__ = ["Option", "Method", "METHODS", "register_method", "get", "names", "run", "make_spec", "COMMON_OPTIONS"]


@dataclass(frozen=True)
class Option:
    """One option of a method (or of every run): name, default, help and the values it accepts.

    Parameters
    ----------
    name : str
        Python name (``gate_lr``); the flag is ``--gate-lr`` unless ``flag`` says otherwise.
    default : object
        The default; its type decides the parsing unless ``type`` is given (``bool``
        makes a switch: ``--name`` sets True, or ``flag="--no-x"`` sets False).
    help : str
        One sentence for ``--help``.
    type : callable, optional
        ``type(value) -> value`` converting a string (CLI) or a Python value (API),
        raising ``ValueError`` with a readable reason.
    choices : tuple, optional
        The allowed values.
    low, high : float, optional
        Inclusive bounds of a number. ``positive``: the number must be > 0.
    flag, metavar : str, optional
        The command-line spelling.
    """

    name: str
    default: object
    help: str
    type: object = None
    choices: tuple | None = None
    low: float | None = None
    high: float | None = None
    positive: bool = False
    flag: str | None = None
    metavar: str | None = None

    @property
    def cli_flag(self):
        return self.flag or "--" + self.name.replace("_", "-")

    @property
    def is_switch(self):
        return isinstance(self.default, bool) and self.type is None

    def allowed(self):
        """The accepted values in words, for messages and ``--help``."""
        if self.choices:
            return "one of " + ", ".join(map(str, self.choices))
        parts = []
        if self.positive:
            parts.append("> 0")
        if self.low is not None:
            parts.append(f">= {self.low:g}")
        if self.high is not None:
            parts.append(f"<= {self.high:g}")
        return " and ".join(parts)

    def convert(self, value):
        """``value`` (a string from the command line or a Python value) checked and converted."""
        if value is None and self.default is None:
            return None
        if self.type is not None:
            value = self.type(value)
        elif isinstance(self.default, bool):
            value = _boolean(value)
        elif isinstance(self.default, int):
            value = integer(value)
        elif isinstance(self.default, float):
            value = number(value)
        elif isinstance(self.default, str) and not isinstance(value, str):
            msg = f"expected a string, got {type(value).__name__} {value!r}"
            raise ValueError(msg)
        if self.choices and value not in self.choices:
            msg = f"got {value!r}; choose {self.allowed()}"
            raise ValueError(msg)
        for x in _numbers_in(value):
            if (self.positive and not x > 0) or (self.low is not None and x < self.low) or \
                    (self.high is not None and x > self.high):
                msg = f"got {value!r}; must be {self.allowed()}"
                raise ValueError(msg)
        return value

    def check(self, value):
        """:meth:`convert` with the option's name in the message (``ValueError``)."""
        try:
            return self.convert(value)
        except (ValueError, TypeError) as exc:
            msg = f"{self.name}: {exc}"
            raise ValueError(msg) from None


def _numbers_in(value):
    if isinstance(value, bool):
        return ()
    if isinstance(value, (int, float)):
        return (value,)
    if isinstance(value, (tuple, list)):
        return tuple(v for v in value if isinstance(v, (int, float)) and not isinstance(v, bool))
    return ()


def _boolean(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
        return value.lower() in ("true", "1", "yes", "on")
    msg = f"expected true or false, got {value!r}"
    raise ValueError(msg)


def integer(value):
    if isinstance(value, bool):
        msg = f"expected an integer, got {value!r}"
        raise ValueError(msg)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    try:
        return int(str(value).strip())
    except ValueError:
        msg = f"expected an integer, got {value!r}"
        raise ValueError(msg) from None


def number(value):
    if isinstance(value, bool):
        msg = f"expected a number, got {value!r}"
        raise ValueError(msg)
    try:
        number = float(value)
    except (TypeError, ValueError):
        msg = f"expected a number, got {value!r}"
        raise ValueError(msg) from None
    if not math.isfinite(number):
        msg = f"expected a finite number, got {value!r}"
        raise ValueError(msg)
    return number


def numbers(value):
    """Option type: one finite number >= 0 or a comma list of them (one per layer): ``"10,0.5"`` -> ``(10.0, 0.5)``."""
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",") if p.strip()]
        if not parts:
            msg = f"expected a number or a comma list such as '10,0.5,0.1,0.1', got {value!r}"
            raise ValueError(msg)
        value = [number(p) for p in parts]
    if isinstance(value, (list, tuple)):
        if not value:
            msg = "expected at least one number, got an empty list"
            raise ValueError(msg)
        out = tuple(number(v) for v in value)
        return out[0] if len(out) == 1 else out
    return number(value)


#: The settings every method takes (the fields of :class:`refprune.runspec.RunSpec`).
COMMON_OPTIONS = (
    Option("data", "digits", "data set: digits (8x8, 1077/360/360 train/val/test images), mnist5k (real 28x28 "
           "MNIST, 3500/500/1000; pip install 'refprune[mnist5k]'), mnist, fashion-mnist, cifar10 (files in "
           "--data-dir), synthetic", choices=DATA_NAMES),
    Option("data_dir", None, "folder with the IDX / CIFAR binary files", type=str, metavar="DIR"),
    Option("model", None, "network preset", type=str, choices=tuple(n for n, p in PRESETS.items() if not p.required)),
    Option("backend", "numpy", "array backend", choices=backends.NAMES),
    Option("device", None, "backend device (e.g. cuda:1, device1 for array-api-strict)", type=str),
    Option("seed", 0, "seed of every random stream", low=0),
    Option("epochs", None, "training epochs", type=integer, low=0),
    Option("batch_size", None, "minibatch size", type=integer, low=1),
    Option("lr", None, "learning rate", type=number, positive=True),
    Option("dtype", "float32", "floating dtype", choices=("float32", "float64")),
    Option("stream", "reference", "random stream: 'reference' draws on the host with NumPy PCG64, the same on "
           "every backend; 'native' uses the library's generator", choices=("reference", "native")),
    Option("out", None, "output folder (default: runs/<method>-<data>-<model>-<backend>-seed<seed>-<hash of the "
           "settings>)", type=str, metavar="DIR"),
    Option("resume", None, "continue the run in this folder (or from this checkpoint.npz) with its settings: an "
           "option given here that differs is refused, except more --epochs", type=str, metavar="RUN"),
    Option("init_from", None, "start from the weights in FILE: a run folder or its final.npz, a compacted model.npz "
           "(refprune compact; its architecture replaces the preset's), a torch .pt state_dict or .safetensors "
           "(names: see the README's interop section)", type=str, metavar="FILE"),
    Option("overwrite", False, "replace the run already in --out (its files are removed before this run writes)"),
    Option("quiet", False, "no progress bars"),
    Option("threads", 1, "BLAS / torch threads; 1 is fastest for these small models on a few cores (measured: "
           "see the README), raise it for large models on many cores", type=integer, low=1, metavar="N"),
    Option("subset", 0, "use only the first N examples of each split (0 = all): quick checks", low=0, metavar="N"),
    Option("checkpoint_every", 1, "write a checkpoint every N epochs (0 = only at the end of each phase)", low=0,
           metavar="N"),
)


@dataclass(frozen=True)
class Method:
    """A registered method: ``run(eng, o)``, its one-line summary, its docs, its defaults and options.

    ``sparsity_option`` names the option that sets the method's target weight sparsity
    (``refprune sweep --sparsity`` sets it), or is None for a method without one.
    """

    name: str
    run: object
    summary: str
    doc: str
    defaults: dict
    options: tuple
    sparsity_option: str | None = None
    inputs: object = None

    def prepare(self, dataset, options, *, backend, dtype):
        """The data as the method's network reads it (its ``inputs`` hook; the data itself without one).

        ``options``: the method's options as attributes (a run's ``o``) or a dict.
        """
        if self.inputs is None:
            return dataset
        o = SimpleNamespace(**options) if isinstance(options, dict) else options
        return self.inputs(dataset, o, backend=backend, dtype=dtype)

    def option(self, name):
        return next(o for o in self.options if o.name == name)


#: The registered methods by name, in registration order.
METHODS: dict[str, Method] = {}
_LOADED = False


def register_method(name, *, summary, defaults, options=(), doc=None, sparsity_option=None, inputs=None):
    """Register the decorated ``run(eng, o)`` as method ``name`` (see the module docstring).

    ``defaults`` fills ``model``, ``epochs``, ``batch_size`` and ``lr`` when a run does
    not set them; ``options`` are the method's own :class:`Option` s; ``doc`` defaults
    to the module's docstring (the method's ``--help``). ``sparsity_option``: the name of
    the option that is the method's target weight sparsity (``"sparsity"`` for a method
    with ``--sparsity S``), which ``refprune sweep --sparsity`` sets; None when the
    method has none (its sparsity is an outcome, as l0's). ``inputs(dataset, o, *,
    backend, dtype) -> dataset``, for a method whose network reads transformed data
    (binary's binarized pixels): the method applies it in ``run``, and tools that
    evaluate the run's network later (``refprune compact``, ``refprune export``) apply it too.
    """
    missing = {"model", "epochs", "batch_size", "lr"} - set(defaults)
    if missing:
        msg = f"method {name!r} must give defaults for {sorted(missing)}"
        raise ValueError(msg)
    if sparsity_option is not None and sparsity_option not in {o.name for o in options}:
        msg = f"method {name!r}: sparsity_option={sparsity_option!r} is not one of its options"
        raise ValueError(msg)

    def register(fn):
        text = doc if doc is not None else (import_module(fn.__module__).__doc__ or "")
        METHODS[name] = Method(name, fn, summary, text, dict(defaults), tuple(options), sparsity_option, inputs)
        return fn

    return register


def _load():
    """Import every method module once (each registers itself)."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    package = import_module("refprune.methods")
    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_"):
            import_module(f"refprune.methods.{info.name}")


def names():
    """The registered method names."""
    _load()
    return tuple(METHODS)


def get(name):
    """The :class:`Method` called ``name``; a ``ValueError`` listing the methods otherwise."""
    _load()
    if name not in METHODS:
        msg = f"unknown method {name!r}; choose one of {', '.join(METHODS)}"
        raise ValueError(msg)
    return METHODS[name]


_SPEC_FIELDS = {f.name for f in fields(RunSpec)} - {"method", "options"}
#: The data sets read from files in ``data_dir``.
FILE_DATA = ("mnist", "fashion-mnist", "cifar10")


def make_spec(method, **settings):
    """A :class:`~refprune.runspec.RunSpec` for ``method``: common settings and method options validated.

    Unknown names and values outside an option's range are a ``ValueError`` naming the
    option; ``model``, ``epochs``, ``batch_size`` and ``lr`` left unset take the method's defaults.
    With ``resume``, every setting left unset is the checkpoint's run's instead (the engine
    refuses one that differs, except more ``epochs``).
    """
    m = get(method)
    known = {o.name for o in m.options}
    unknown = sorted(set(settings) - _SPEC_FIELDS - known)
    if unknown:
        msg = (f"unknown option(s) {unknown} for method {method!r}; its options are {sorted(known)}, and every "
               f"method takes {sorted(_SPEC_FIELDS)}")
        raise ValueError(msg)
    if settings.get("resume"):
        settings = {**_resumed_settings(method, settings["resume"]), **settings}
    common = {o.name: o for o in COMMON_OPTIONS}
    spec_values = {k: common[k].check(v) if k in common and v is not None else v
                   for k, v in settings.items() if k in _SPEC_FIELDS}
    for key in ("model", "epochs", "batch_size", "lr"):
        if spec_values.get(key) is None:
            spec_values[key] = m.defaults[key]
    data = spec_values.get("data", "digits")
    if spec_values.get("data_dir") is not None and data not in FILE_DATA:
        msg = (f"data_dir: {data} reads no files (it is bundled or generated), so --data-dir would be ignored; "
               f"it is for {', '.join(FILE_DATA)}")
        raise ValueError(msg)
    options = {o.name: o.check(settings.get(o.name, o.default)) for o in m.options}
    return RunSpec(method=method, **spec_values, options=options)


def _resumed_settings(method, resume):
    """The settings and options of the run whose checkpoint ``resume`` names ({} when there is none of ``method``)."""
    path = checkpoint_path(resume)
    if not os.path.isfile(path):
        return {}  # the engine says that there is no checkpoint
    stored = dict((io.load_checkpoint(path).config or {}).get("run") or {})
    if stored.get("method") != method:
        return {}  # the engine refuses another method's checkpoint
    options = stored.pop("options", None) or {}
    kept = {k: v for k, v in stored.items() if k in _SPEC_FIELDS and k not in ("out", "resume", "overwrite")}
    return {**kept, **{k: v for k, v in options.items() if k in {o.name for o in get(method).options}}}


def run(method, *, dataset=None, **settings):
    """Run ``method`` with keyword settings (RunSpec fields and the method's options); return its result dict.

    >>> from refprune import methods
    >>> result = methods.run("magnitude", data="digits", epochs=1, out="/tmp/rp-doc", quiet=True)  # doctest: +SKIP
    """
    return execute(make_spec(method, **settings), dataset=dataset)


def execute(spec, *, dataset=None):
    """Run a prepared :class:`~refprune.runspec.RunSpec` on the engine; return the result dict."""
    m = get(spec.method)
    eng = Engine(spec, dataset=dataset, inputs=partial(m.prepare, options=spec.options))
    return m.run(eng, SimpleNamespace(**spec.options))
