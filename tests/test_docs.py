"""The README's examples and the docstring examples of every module of the package run as doctests.

Every module of ``refprune`` (``refprune.methods.*``, ``refprune.nn.*``, the engine, the
measures, the criteria, ...) and of ``refprune.backends`` is found by walking the
packages, so a new module is tested without an edit here. A module may have no
examples, unless it is in :data:`MUST_HAVE_EXAMPLES`; a module that needs an optional
dependency that is not installed is skipped with the reason.
"""

from __future__ import annotations

import doctest
import importlib
import pathlib
import pkgutil

import pytest

import refprune
import refprune.backends

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

#: The modules that teach by example: each must keep at least one runnable example.
MUST_HAVE_EXAMPLES = {
    "refprune.gates",
    "refprune.regularizers",
    "refprune.thresholds",
    "refprune.masks",
    "refprune.schedules",
    "refprune.criteria",
    "refprune.measures",
    "refprune.engine",
    "refprune.data",
    "refprune.io",
    "refprune.io.interop",
    "refprune.compaction",
    "refprune.measures",
    "refprune.backends",
    "refprune.methods",
    "refprune.nn.functional",
    "refprune.nn.layers",
    "refprune.nn.models",
    "refprune.nn.optim",
    "refprune.nn.constraints",
    "refprune.nn.train",
    "refprune.patterns",
    "refprune.budgets",
    "refprune.scores",
    "refprune.dst",
}


def _modules():
    names = ["refprune", "refprune.backends"]
    for package in (refprune, refprune.backends):
        names += [info.name for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
    return sorted(set(names))


MODULES = _modules()


def test_the_walk_finds_the_package():
    assert MUST_HAVE_EXAMPLES <= set(MODULES), sorted(MUST_HAVE_EXAMPLES - set(MODULES))
    for name in ("refprune.methods.l0", "refprune.methods._registry", "refprune.backends._numpy"):
        assert name in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_module_examples(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write (runs/...) write here
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "refprune":
            raise
        pytest.skip(f"{name} needs {exc.name}, which is not installed")
    result = doctest.testmod(module, optionflags=FLAGS, verbose=False, report=False)
    assert result.failed == 0, f"{result.failed} doctest example(s) failed in {name} (run: python -m doctest -v)"
    if name in MUST_HAVE_EXAMPLES:
        assert result.attempted > 0, f"{name} has no runnable Examples in its docstrings"


def test_readme_examples(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = doctest.testfile(str(README), module_relative=False, optionflags=FLAGS)
    assert result.attempted >= 8, "the README's tour lost its examples (the rest are in docs/, tests/test_docs_site.py)"
    assert result.failed == 0, f"{result.failed} README example(s) failed"
