"""Checkpoints and result files, written atomically and read without pickle.

Every writer here goes through :func:`atomic_write_bytes`: the bytes go to a temporary
file in the target's directory, which is flushed, ``fsync``-ed and then moved over the
target with ``os.replace``. A crash or an exception at any point leaves either the old
file or the new one, never half of one, and the temporary file is removed on failure.

Checkpoint format (``.npz``, read with ``np.load(..., allow_pickle=False)``)
----------------------------------------------------------------------------
One member ``__refprune_checkpoint__`` holds a UTF-8 JSON manifest in a uint8 array:
the format marker ``"refprune-checkpoint"``, the format ``version`` (1), ``step``,
``rng_state`` (a string, e.g. a refprune generator's ``state()``), ``config`` (any
JSON-able dict) and the names of the arrays below, in order. The arrays are members
named with ``/`` as the separator:

- ``params/<name>`` and ``masks/<name>`` for the dicts ``params`` and ``masks``;
- ``optimizer_state/<key>`` for a top-level array of ``optimizer_state`` and
  ``optimizer_state/<key>/<name>`` for an array of a nested dict
  (``{"m": {name: array}, "v": {...}, "t": 3}`` -> ``optimizer_state/m/<name>``, ...).
  Python ``int``/``float``/``bool``/``str``/``None`` values (such as Adam's step count
  ``t``) are kept in the manifest; NumPy scalars are stored as 0-d arrays.
- ``extra/...``: a method's own state (format version 2), stored exactly like
  ``optimizer_state`` (e.g. ``{"rewind": {name: array}, "round": 3}``).

Names are any non-empty strings; top-level keys of ``optimizer_state`` and ``extra``
may not contain ``/``. No object array is ever written or read. Version 1 files (no
``extra``) are read as well.

Examples
--------
>>> import numpy as np, tempfile, os
>>> from refprune import io
>>> path = os.path.join(tempfile.mkdtemp(), "ckpt.npz")
>>> io.save_checkpoint(path, params={"w": np.ones((2, 3), np.float32)}, step=5, config={"lr": 0.1})
>>> ckpt = io.load_checkpoint(path)
>>> ckpt.step, ckpt.params["w"].dtype.name, ckpt.config
(5, 'float32', {'lr': 0.1})
"""

from __future__ import annotations

import csv
import io as _stdio
import json
import os
import stat
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._array import is_int

__all__ = [
    "FORMAT",
    "VERSION",
    "Checkpoint",
    "atomic_write_bytes",
    "folder_problem",
    "load_checkpoint",
    "make_folder",
    "read_json",
    "save_checkpoint",
    "write_csv",
    "write_json",
]

#: The marker every refprune checkpoint carries.
FORMAT = "refprune-checkpoint"
#: The checkpoint format version this module writes (and the newest it reads).
VERSION = 2

_MANIFEST = "__refprune_checkpoint__"
_SEP = "/"

# --------------------------------------------------------------------------------------
# The one primitive
# --------------------------------------------------------------------------------------


def atomic_write_bytes(path, data):
    """Write ``data`` to ``path`` atomically.

    A temporary file in the same directory receives the bytes, is flushed and
    ``fsync``-ed, then replaces ``path`` with ``os.replace`` (atomic on POSIX and
    Windows). On any failure the temporary file is removed and ``path`` is left as it
    was. The new file keeps the mode of the file it replaces (0o644 for a new one).
    """
    path = Path(os.fspath(path))
    directory = path.parent if str(path.parent) else Path(".")
    mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(directory)


def folder_problem(path):
    """Why ``path`` cannot be, or be made, a folder to write into (one sentence), or None.

    Checks without creating anything: ``path`` is a file, or the nearest folder that
    exists above it is not writable.
    """
    path = os.path.abspath(os.fspath(path))
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        return f"{existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return None


def make_folder(path):
    """Create folder ``path`` (and its parents); a ``ValueError`` in one sentence when it cannot be made."""
    problem = folder_problem(path)
    if problem is None:
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as exc:
            problem = exc.strerror or type(exc).__name__
    if problem is not None:
        msg = f"cannot create the folder {path}: {problem}"
        raise ValueError(msg)


def _fsync_directory(directory):
    """Make the rename durable (POSIX); a no-op where directories cannot be opened."""
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


# --------------------------------------------------------------------------------------
# JSON and CSV results
# --------------------------------------------------------------------------------------


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    msg = f"cannot write {type(obj).__name__} {obj!r} as JSON; convert it to a number, str, list or dict"
    raise TypeError(msg)


def _dumps(obj, **kwargs):
    return json.dumps(obj, default=_json_default, **kwargs)


def write_json(path, obj):
    """Write ``obj`` as JSON (indent 2, keys in their given order) atomically.

    NumPy scalars become Python numbers and NumPy arrays nested lists.
    """
    atomic_write_bytes(path, (_dumps(obj, indent=2) + "\n").encode("utf-8"))


def read_json(path):
    """Read a JSON file; a malformed one is a ``ValueError`` naming it."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        msg = f"{path}: not valid JSON ({exc})"
        raise ValueError(msg) from None


def _csv_value(value):
    if value is None:
        return ""
    if isinstance(value, np.generic):
        return value.item()
    return value


def write_csv(path, rows):
    """Write a list of dicts as CSV atomically.

    The header is the keys of the first row, then any new keys of later rows in the
    order they appear; a row without a key leaves its cell empty. No rows: an empty file.
    """
    rows = list(rows)
    fields = {}
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            msg = f"rows must be dicts, got {type(row).__name__} at index {i}"
            raise TypeError(msg)
        for key in row:
            fields.setdefault(str(key), None)
    buf = _stdio.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(fields), restval="", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({str(k): _csv_value(v) for k, v in row.items()})
    atomic_write_bytes(path, buf.getvalue().encode("utf-8"))


# --------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Checkpoint:
    """What :func:`load_checkpoint` returns: the arguments of :func:`save_checkpoint`.

    ``masks``, ``optimizer_state`` and ``extra`` are ``None`` when none were saved.
    """

    params: dict
    masks: dict | None = None
    optimizer_state: dict | None = None
    rng_state: str | None = None
    step: int = 0
    config: dict | None = None
    version: int = VERSION
    extra: dict | None = None


def _host_array(where, value):
    if isinstance(value, np.ndarray):
        arr = value
    else:
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError, RuntimeError) as exc:  # e.g. a CUDA tensor
            msg = f"{where} must be a host NumPy array, got {type(value).__name__} ({exc}); use backend.to_numpy(x)"
            raise TypeError(msg) from None
    if arr.dtype.hasobject or arr.dtype.kind not in "biufcSU":
        msg = (
            f"{where} must be a numeric (or bool / str) NumPy array, got dtype {arr.dtype}; "
            "checkpoints never hold object arrays (they would need pickle)"
        )
        raise TypeError(msg)
    return arr


def _check_name(where, name):
    if not isinstance(name, str) or not name:
        msg = f"{where}: names must be non-empty str, got {name!r}"
        raise TypeError(msg)


def _array_dict(section, d, members):
    if not isinstance(d, dict):
        msg = f"{section} must be a dict of name -> array, got {type(d).__name__}"
        raise TypeError(msg)
    names = []
    for name, value in d.items():
        _check_name(section, name)
        members[f"{section}{_SEP}{name}"] = _host_array(f"{section}[{name!r}]", value)
        names.append(name)
    return names


_PLAIN_SCALARS = (bool, int, float, str, type(None))


def _state_manifest(section, state, members):
    """Manifest entries of a nested state dict (``optimizer_state`` or ``extra``); arrays go to ``members``."""
    if not isinstance(state, dict):
        msg = f"{section} must be a dict, got {type(state).__name__}"
        raise TypeError(msg)
    entries = []
    for key, value in state.items():
        _check_name(section, key)
        if _SEP in key:
            msg = f"{section} keys may not contain {_SEP!r}, got {key!r}"
            raise ValueError(msg)
        where, member = f"{section}[{key!r}]", f"{section}{_SEP}{key}"
        if isinstance(value, dict):
            entries.append({"key": key, "kind": "dict", "names": _array_dict(member, value, members)})
        elif isinstance(value, _PLAIN_SCALARS):
            if isinstance(value, float) and not np.isfinite(value):
                # JSON has no inf/nan: keep the exact value as a 0-d array.
                members[member] = np.asarray(value)
                entries.append({"key": key, "kind": "float"})
            else:
                entries.append({"key": key, "kind": "value", "value": value})
        elif isinstance(value, np.generic):
            members[member] = _host_array(where, np.asarray(value))
            entries.append({"key": key, "kind": "scalar"})
        else:
            members[member] = _host_array(where, value)
            entries.append({"key": key, "kind": "array"})
    return entries


def save_checkpoint(
    path, *, params, masks=None, optimizer_state=None, rng_state=None, step=0, config=None, extra=None
):
    """Write a checkpoint ``.npz`` atomically (format in the module docstring).

    Parameters
    ----------
    path : str or path-like
        Written as given (no suffix is added).
    params, masks : dict of str -> numpy.ndarray
        Host arrays (``backend.to_numpy(...)`` first). ``masks`` may be ``None``.
    optimizer_state : dict, optional
        Arrays, dicts of arrays (one level), and plain Python scalars.
    rng_state : str, optional
        A generator's ``state()`` string.
    step : int
        Steps taken so far (>= 0).
    config : dict, optional
        Any JSON-able dict (tuples come back as lists).
    extra : dict, optional
        A method's own state, of the same form as ``optimizer_state``.
    """
    if not is_int(step) or step < 0:
        msg = f"step must be a non-negative int, got step={step!r}"
        raise ValueError(msg)
    if rng_state is not None and not isinstance(rng_state, str):
        msg = f"rng_state must be a str (a generator's state()), got {type(rng_state).__name__}"
        raise TypeError(msg)
    if config is not None and not isinstance(config, dict):
        msg = f"config must be a dict, got {type(config).__name__}"
        raise TypeError(msg)
    members = {}
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "step": int(step),
        "rng_state": rng_state,
        "config": config,
        "params": _array_dict("params", params, members),
        "masks": None if masks is None else _array_dict("masks", masks, members),
        "optimizer_state": None if optimizer_state is None else _state_manifest("optimizer_state", optimizer_state, members),
        "extra": None if extra is None else _state_manifest("extra", extra, members),
    }
    try:
        text = _dumps(manifest)
    except (TypeError, ValueError) as exc:
        msg = f"config must be JSON-able: {exc}"
        raise TypeError(msg) from None
    members = {_MANIFEST: np.frombuffer(text.encode("utf-8"), dtype=np.uint8), **members}
    buf = _stdio.BytesIO()
    np.savez(buf, **members)
    atomic_write_bytes(path, buf.getvalue())


def _bad(path, what):
    return ValueError(f"{path}: not a readable refprune checkpoint: {what}")


def load_checkpoint(path):
    """Read a checkpoint written by :func:`save_checkpoint` (never unpickles).

    Returns a :class:`Checkpoint`. A file that is not an ``.npz``, lacks the refprune
    marker, has an unknown version, is truncated or corrupted, or holds an object array
    is a ``ValueError`` naming the file; a missing file is ``FileNotFoundError``.
    """
    path = Path(os.fspath(path))
    with open(path, "rb") as f:
        head = f.read(4)
    if head not in (b"PK\x03\x04", b"PK\x05\x06"):
        raise _bad(path, "not an .npz (zip) file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: np.array(npz[key]) for key in npz.files}
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        raise _bad(path, f"corrupted or truncated ({type(exc).__name__}: {exc})") from None
    if _MANIFEST not in arrays:
        raise _bad(path, f"no {_MANIFEST!r} member (a foreign .npz?)")
    try:
        manifest = json.loads(arrays.pop(_MANIFEST).astype(np.uint8, copy=False).tobytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise _bad(path, f"unreadable manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise _bad(path, f"missing the {FORMAT!r} marker")
    version = manifest.get("version")
    if not is_int(version) or version < 1:
        raise _bad(path, f"bad format version {version!r}")
    if version > VERSION:
        raise _bad(path, f"format version {version} is newer than this refprune reads ({VERSION}); upgrade refprune")
    try:
        return _from_manifest(manifest, arrays, version)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _bad(path, f"malformed manifest or members ({type(exc).__name__}: {exc})") from None


def _take(arrays, key):
    if key not in arrays:
        raise KeyError(f"member {key!r} listed in the manifest is missing")
    return arrays.pop(key)


def _from_manifest(manifest, arrays, version):
    def section(name):
        names = manifest[name]
        if names is None:
            return None
        if not isinstance(names, list):
            raise TypeError(f"{name} must list names")
        return {n: _take(arrays, f"{name}{_SEP}{n}") for n in names}

    params = section("params")
    if params is None:
        raise ValueError("no params")
    masks = section("masks")
    optimizer_state = _state_from_manifest("optimizer_state", manifest["optimizer_state"], arrays)
    extra = _state_from_manifest("extra", manifest.get("extra") if version >= 2 else None, arrays)
    if arrays:
        raise ValueError(f"unexpected members {sorted(arrays)}")
    step = manifest["step"]
    rng_state = manifest["rng_state"]
    config = manifest["config"]
    if not is_int(step) or step < 0:
        raise ValueError(f"bad step {step!r}")
    if rng_state is not None and not isinstance(rng_state, str):
        raise TypeError("rng_state must be a str")
    if config is not None and not isinstance(config, dict):
        raise TypeError("config must be a dict")
    return Checkpoint(
        params=params,
        masks=masks,
        optimizer_state=optimizer_state,
        rng_state=rng_state,
        step=step,
        config=config,
        version=version,
        extra=extra,
    )


def _state_from_manifest(section, entries, arrays):
    """The nested state dict of ``section`` from its manifest entries (None when none was saved)."""
    if entries is None:
        return None
    state = {}
    for entry in entries:
        key, kind = entry["key"], entry["kind"]
        member = f"{section}{_SEP}{key}"
        if kind == "dict":
            state[key] = {n: _take(arrays, f"{member}{_SEP}{n}") for n in entry["names"]}
        elif kind == "value":
            state[key] = entry["value"]
        elif kind == "float":
            state[key] = float(_take(arrays, member))
        elif kind == "scalar":
            state[key] = _take(arrays, member)[()]
        elif kind == "array":
            state[key] = _take(arrays, member)
        else:
            raise ValueError(f"unknown {section} entry kind {kind!r}")
    return state


# Weights for and from other frameworks (torch state_dicts, safetensors) and a model's own file: io.interop.
from .interop import (  # noqa: E402
    FINAL,
    init_model,
    load_model,
    load_weights,
    read_network,
    save_model,
    save_safetensors,
    save_torch,
    torch_module,
    torch_names,
    torch_state_dict,
)
