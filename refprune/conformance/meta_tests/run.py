"""Run the suite against several targets in one process, one pytest session each.

``python -m refprune.conformance.meta_tests.run JOBS.json OUT.json`` reads a list of
jobs ``{"name", "target", "backend", "modules": [...], "args": [...], "env": {...},
"select": {module: {"row": ..., "kinds": [...], "files": [...]}}, "first_failure": [module, ...]}``,
runs ``pytest.main`` for each with ``REFPRUNE_TARGET``/``REFPRUNE_TARGET_BACKEND`` set
and a JSON report requested, and writes one result per job: the exit status, the
seconds it took, and the report (every test's outcome and protocol functions). One
process pays the imports (torch, hypothesis, pytest) once for all the jobs.

A job may name several targets (``"target": "a,b,c"``): one session then tests them
all, collecting the suite once. ``select`` keeps, for a target, only the tests of one
protocol function (``row``), of some kinds of check (``kinds``), or in some test files (``files``); ``first_failure`` skips a
target's remaining tests once one has failed (a mutant needs to be caught once).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import pytest

from refprune.conformance import config as cfg

SUITE = Path(__file__).resolve().parent.parent


class _Select:
    """pytest plugin: per-target test selection, edge tests first, stop a target at its first failure."""

    def __init__(self, select, first_failure):
        self.select = select or {}
        self.first_failure = set(first_failure or ())
        self.module_of = {}
        self.caught = set()

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config, items):
        keep, dropped = [], []
        for item in items:
            callspec = getattr(item, "callspec", None)
            spec = callspec.params.get("target") if callspec is not None else None
            module = getattr(spec, "module", None)
            rule = self.select.get(module)
            if rule is not None:
                names = [n for m in item.iter_markers("protocol") for n in m.args]
                declared = next((m.kwargs.get("checks") for m in item.iter_markers("protocol") if m.kwargs.get("checks")),
                                None)
                kinds = cfg.test_kinds(names, item.originalname or item.name, declared)
                wrong_row = "row" in rule and (not names or cfg.row_of(names[0]) != rule["row"])
                wrong_kind = "kinds" in rule and not set(kinds) & set(rule["kinds"])
                wrong_file = "files" in rule and item.path.stem not in rule["files"]
                if wrong_row or wrong_kind or wrong_file:
                    dropped.append(item)
                    continue
            self.module_of[item.nodeid] = module
            keep.append(item)
        order = {m: i for i, m in enumerate(dict.fromkeys(self.module_of.values()))}
        keep.sort(key=lambda it: (order.get(self.module_of.get(it.nodeid), 0), "test_edges" not in it.nodeid))
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        items[:] = keep

    def pytest_runtest_setup(self, item):
        if self.module_of.get(item.nodeid) in self.caught:
            pytest.skip("this target already failed a test (first_failure)")

    def pytest_runtest_logreport(self, report):
        module = self.module_of.get(report.nodeid)
        if report.failed and module in self.first_failure:
            self.caught.add(module)


def run_job(job):
    """Run one job; return ``{"name", "exitstatus", "seconds", "report"}``."""
    fd, report_path = tempfile.mkstemp(prefix="refprune-meta-", suffix=".json")
    os.close(fd)
    env = {
        cfg.ENV_TARGET: job["target"],
        cfg.ENV_BACKEND: job.get("backend", "torch"),
        cfg.ENV_PROFILE: job.get("profile", "quick"),
        cfg.ENV_REPORT: report_path,
        **job.get("env", {}),
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    paths = [str(SUITE / f"{m}.py") for m in job["modules"]]
    start = time.perf_counter()
    try:
        plugin = _Select(job.get("select"), job.get("first_failure"))
        status = pytest.main([*paths, "-q", "-p", "no:cacheprovider", "--no-header", "-o", "addopts=",
                              "--import-mode=importlib", *job.get("args", [])], plugins=[plugin])
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    seconds = time.perf_counter() - start
    try:
        report = json.loads(Path(report_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        report = None
    finally:
        Path(report_path).unlink(missing_ok=True)
    return {"name": job["name"], "exitstatus": int(status), "seconds": round(seconds, 2), "report": report}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    jobs = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    results = [run_job(job) for job in jobs]
    Path(argv[1]).write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
