"""Known deviations of a target: ``xfails/<target>.txt``, one test id a line, ``#`` reason.

A line is a test id relative to the suite, ``test_masks.py::test_cases`` (every
parametrization) or ``test_masks.py::test_cases[torch-magnitude_mask-ties]`` (one),
or a glob over ids (``test_masks.py::test_mask_cases[*-magnitude-ties-1d]``, ``*`` and
``?`` only; ``[`` is literal), optionally followed by ``# why``. Blank lines and lines starting with ``#`` are
comments. Listed tests are marked ``xfail(strict=True)``: a listed test that passes
fails the run, so the file always says exactly where a target deviates.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from pathlib import Path

XFAILS_DIR = Path(__file__).parent / "xfails"


@dataclass(frozen=True)
class Entry:
    test_id: str
    reason: str
    line: int


def parse(text):
    """The entries of an xfails file's text."""
    entries = []
    for i, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        test_id, _, reason = line.partition("#")
        entries.append(Entry(test_id.strip(), reason.strip() or "listed in the xfails file", i))
    return entries


def default_path(target_module):
    """``xfails/<module>.txt`` for the full name, else for its last component, else None."""
    module = target_module.partition(":")[0]
    for name in (target_module.replace(":", "."), module, module.rsplit(".", 1)[-1]):
        path = XFAILS_DIR / f"{name}.txt"
        if path.is_file():
            return path
    return None


def resolve_path(target_module, setting=None):
    """The xfails file in force: ``REFPRUNE_XFAILS`` (``none`` for none) or the default."""
    if setting:
        if setting.strip().lower() == "none":
            return None
        path = Path(setting).expanduser()
        if not path.is_file():
            msg = f"REFPRUNE_XFAILS={setting!r}: no such file"
            raise FileNotFoundError(msg)
        return path
    return default_path(target_module)


def load(path):
    return parse(Path(path).read_text(encoding="utf-8")) if path is not None else []


def suite_id(nodeid):
    """``conformance/test_masks.py::test_x[numpy]`` -> ``test_masks.py::test_x[numpy]``."""
    path, sep, rest = nodeid.partition("::")
    return os.path.basename(path) + sep + rest


def matches(entry_id, test_id):
    """Whether an xfails line names this test: exactly, all its parametrizations, or a glob."""
    if any(ch in entry_id for ch in "*?"):
        return fnmatch.fnmatchcase(test_id, entry_id.replace("[", "[[]"))
    return test_id == entry_id or ("[" not in entry_id and test_id.startswith(entry_id + "["))
