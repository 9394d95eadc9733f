"""The README's examples and every module's docstring examples run as doctests."""

from __future__ import annotations

import doctest
import importlib
import pathlib

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

MODULES = [
    "refprune.gates",
    "refprune.regularizers",
    "refprune.thresholds",
    "refprune.masks",
    "refprune.schedules",
    "refprune.data",
    "refprune.io",
    "refprune.backends",
    "refprune.nn.functional",
    "refprune.nn.layers",
    "refprune.nn.models",
    "refprune.nn.optim",
    "refprune.nn.train",
    "refprune.patterns",
    "refprune.budgets",
    "refprune.scores",
    "refprune.dst",
]


@pytest.mark.parametrize("name", MODULES)
def test_module_examples(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=FLAGS, verbose=False)
    assert result.attempted > 0, f"{name} has no runnable Examples in its docstrings"
    assert result.failed == 0, f"{result.failed} doctest example(s) failed in {name}"


def test_readme_examples(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = doctest.testfile(str(README), module_relative=False, optionflags=FLAGS)
    assert result.attempted >= 8, "the README's tour lost its examples (the rest are in docs/, tests/test_docs_site.py)"
    assert result.failed == 0, f"{result.failed} README example(s) failed"
