"""Sphinx configuration of the refprune documentation.

Build (warnings are errors)::

    python -m pip install -e ".[docs]"
    python -m sphinx -W -b html docs docs/_build/html

The API reference is generated from the docstrings (autodoc + autosummary over the
modules listed in ``api/index.rst``), the CLI reference from
``refprune.cli.build_parser()`` (``_ext/cli_reference.py``), so new functions,
modules and subcommands appear by themselves. The tutorials are MyST Markdown whose
``>>>`` examples run as doctests in ``tests/test_docs_site.py``.
"""

from __future__ import annotations

import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

project = "refprune"
author = "the refprune authors"
copyright = "the refprune authors"  # noqa: A001

try:
    import refprune

    release = version = refprune.__version__
except ImportError:  # pragma: no cover - the docs need refprune installed
    release = version = "unknown"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
    "cli_reference",
    "protocol_page",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "**/runs", "Thumbs.db", ".DS_Store", "README.md"]
templates_path = ["_templates"]

# MyST: $...$ math and ```{directive} fences; `[text](page.md)` links resolve to pages.
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3

# autodoc / autosummary / numpydoc
autosummary_generate = True
autosummary_ignore_module_all = False
autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "none"
autodoc_preserve_defaults = True
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

html_theme = "alabaster"
html_title = f"refprune {release}"
html_static_path = []
html_theme_options = {"description": "the reference implementation of neural-network pruning", "fixed_sidebar": True,
                      "page_width": "1100px", "sidebar_width": "240px"}
pygments_style = "sphinx"
