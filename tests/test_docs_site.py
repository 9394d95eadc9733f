"""The documentation site (docs/): its pages' examples run, its links resolve, it builds.

* Every ``>>>`` example of the tutorials and of ``docs/differs.md`` runs as a doctest,
  each page in a temporary folder prepared as ``docs/refresh_examples.py`` prepares it
  (the modules beside the page, an empty ``figures/``), and every figure a page embeds
  is drawn by the page's own code.
* Every relative link and include of the Markdown pages and the README points to a file.
* ``python -m sphinx -W`` builds the site (skipped where the ``docs`` extra is not installed).
"""

from __future__ import annotations

import doctest
import importlib.util
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
EXECUTED = sorted(p for p in (DOCS / "tutorials").glob("*.md") if p.name != "index.md") + [DOCS / "differs.md"]
PNG = b"\x89PNG\r\n\x1a\n"


def _refresh_module():
    spec = importlib.util.spec_from_file_location("refresh_examples", DOCS / "refresh_examples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _figures(page):
    """The figures ``figures/NAME.png`` a page embeds."""
    return re.findall(r"\]\((figures/[\w.-]+\.png)\)", page.read_text(encoding="utf-8"))


@pytest.mark.slow
@pytest.mark.parametrize("page", EXECUTED, ids=lambda p: str(p.relative_to(DOCS)))
def test_page_examples(page, tmp_path, monkeypatch):
    work = _refresh_module().prepare(page, tmp_path)
    monkeypatch.chdir(work)
    monkeypatch.syspath_prepend(str(work))
    result = doctest.testfile(str(page), module_relative=False, optionflags=FLAGS, globs={})
    assert result.attempted > 0, f"{page} has no examples"
    assert result.failed == 0, f"{result.failed} example(s) of {page} print something else than the page shows"
    for figure in _figures(page):
        drawn = work / figure
        assert drawn.is_file(), f"{page} embeds {figure} but its code did not draw it"
        assert drawn.read_bytes()[:8] == PNG, f"{drawn} is not a PNG"
        assert (page.parent / figure).is_file(), f"{page} embeds {figure}, which is not committed beside it"


def test_every_tutorial_has_a_figure():
    pages = [p for p in EXECUTED if p.parent.name == "tutorials" and p.stem != "oracle"]
    assert len(pages) == 6, [p.name for p in pages]
    for page in pages:
        assert _figures(page), f"{page} embeds no figure"


_LINK = re.compile(r"\]\(([^)\s]+)\)")
_INCLUDE = re.compile(r"^```\{(?:include|literalinclude)\}\s+(\S+)", re.M)


def _targets(path):
    text = path.read_text(encoding="utf-8")
    for target in _LINK.findall(text) + _INCLUDE.findall(text):
        target = target.split("#")[0]
        if target and not re.match(r"^[a-z]+:", target):
            yield target


@pytest.mark.parametrize("path", [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path):
    if "_build" in path.parts or "generated" in path.parts:
        pytest.skip("build output")
    missing = [t for t in _targets(path) if not (path.parent / t).exists() or "generated" in pathlib.Path(t).parts]
    assert not missing, f"{path} links to files that do not exist: {missing}"


def test_readme_links_the_docs():
    linked = set(_targets(ROOT / "README.md"))
    for page in ["docs/index.md", "docs/differs.md", "docs/tutorials/oracle.md",
                 *(f"docs/tutorials/{name}.md" for name in ("l0", "rvsm", "magnitude", "lottery", "binary"))]:
        assert page in linked, f"the README does not link {page}"


@pytest.mark.slow
def test_sphinx_build(tmp_path):
    """The whole site builds with warnings as errors (about 15-30 s; needs the ``docs`` extra)."""
    for module in ("sphinx", "numpydoc", "myst_parser"):
        pytest.importorskip(module, reason="install the docs extra: pip install -e '.[docs]'")
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", "-d", str(tmp_path / "doctrees"),
           str(DOCS), str(tmp_path / "html")]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    assert result.returncode == 0, f"sphinx -W failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    html = tmp_path / "html"
    for page in ("index", "getting_started", "api/index", "cli", "oracle_protocol", "differs", "benchmarks",
                 "tutorials/l0", "tutorials/oracle", "api/generated/refprune.masks"):
        assert (html / f"{page}.html").is_file(), f"{page}.html was not built"
    cli = (html / "cli.html").read_text(encoding="utf-8")
    from refprune import methods

    for name in methods.names():
        assert f"refprune run {name}" in cli, f"the CLI reference lacks refprune run {name}"


def test_api_reference_lists_every_public_module():
    """Each public module of the package's top level (and refprune.io.interop, the exports) has its API page;
    the command line and the conformance suite have their own pages."""
    import pkgutil
    import re

    import refprune

    listed = set(re.findall(r"^   (refprune[\w.]*)\s*$", (DOCS / "api" / "index.rst").read_text(), re.M))
    top = {f"refprune.{m.name}" for m in pkgutil.iter_modules(refprune.__path__) if not m.name.startswith("_")}
    wanted = (top - {"refprune.cli", "refprune.conformance"}) | {"refprune.io.interop"}
    assert wanted <= listed, sorted(wanted - listed)


def test_readme_lists_every_presets_layers():
    from refprune.nn.models import PRESETS

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("### The networks (`--model`)", 1)[1].split("###", 1)[0]
    assert all(f"| `{name}` |" in table for name in PRESETS), [n for n in PRESETS if f"| `{n}` |" not in table]
