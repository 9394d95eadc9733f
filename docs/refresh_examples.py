"""Run the ``>>>`` examples of documentation pages and write what they print into the page.

    python docs/refresh_examples.py docs/tutorials/l0.md [more pages]

Each page runs in a temporary folder holding a copy of the modules beside the page
(``tutorials/mypruning.py``) and an empty ``figures/``, as the test suite runs it
(``tests/test_docs_site.py``); the figures it draws are then copied into the page's
``figures/`` folder. An example whose
output differs from the page gets the new output; examples that match, including
those written with ``...`` (ELLIPSIS), are left as they are. Read the diff: the text
around the examples states the findings, and a changed number may change a finding.
"""

from __future__ import annotations

import doctest
import os
import pathlib
import shutil
import sys
import tempfile

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


class _Recorder(doctest.DocTestRunner):
    def __init__(self):
        super().__init__(optionflags=FLAGS, verbose=False)
        self.changes = []

    def report_failure(self, out, test, example, got):
        self.changes.append((example, got))

    def report_unexpected_exception(self, out, test, example, exc_info):
        raise exc_info[1]


def prepare(page, folder):
    """Make ``folder`` ready to run ``page`` in: the modules beside the page and an empty ``figures/``."""
    work = pathlib.Path(folder)
    for module in pathlib.Path(page).parent.glob("*.py"):
        shutil.copyfile(module, work / module.name)
    (work / "figures").mkdir(exist_ok=True)
    return work


def refresh(path):
    """Run the page at ``path`` in its folder; rewrite the outputs that changed. Returns how many changed."""
    path = pathlib.Path(path).resolve()
    text = path.read_text(encoding="utf-8")
    test = doctest.DocTestParser().get_doctest(text, {"__name__": "__main__"}, path.name, str(path), 0)
    runner = _Recorder()
    here = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="refprune-docs-") as tmp:
        work = prepare(path, tmp)
        os.chdir(work)
        sys.path.insert(0, str(work))
        try:
            runner.run(test, clear_globs=True)
        finally:
            sys.path.remove(str(work))
            os.chdir(here)
        for figure in (work / "figures").glob("*.png"):
            (path.parent / "figures").mkdir(exist_ok=True)
            shutil.copyfile(figure, path.parent / "figures" / figure.name)
    lines = text.split("\n")
    for example, got in sorted(runner.changes, key=lambda c: c[0].lineno, reverse=True):
        start = example.lineno + example.source.count("\n")
        stop = start + example.want.count("\n")
        new = [" " * example.indent + g if g else g for g in got.rstrip("\n").split("\n")] if got else []
        lines[start:stop] = new
    path.write_text("\n".join(lines), encoding="utf-8")
    return len(runner.changes)


if __name__ == "__main__":
    for page in sys.argv[1:]:
        print(f"{page}: {refresh(page)} example output(s) rewritten")
