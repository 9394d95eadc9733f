"""pytest plugin of ``scripts/gpu_check.py``: every test's outcome, one JSON line as it happens.

Loaded with ``-p _gpu_check_pytest`` (``scripts/`` on ``PYTHONPATH``); appends to the file
named by ``$GPU_CHECK_OUTCOMES``. Lines are written while the tests run, so a stage
stopped at its time limit still has the counts of what ran. Under pytest-xdist only the
controller writes (it receives every worker's reports).
"""

from __future__ import annotations

import json
import os


def _write(record):
    path = os.environ.get("GPU_CHECK_OUTCOMES")
    if not path or os.environ.get("PYTEST_XDIST_WORKER"):
        return
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def _skip_reason(report):
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)[-500:]


def pytest_runtest_logreport(report):
    if report.passed and report.when != "call" and not hasattr(report, "wasxfail"):
        return  # a passing setup or teardown says nothing
    record = {"nodeid": report.nodeid, "when": report.when, "outcome": report.outcome}
    if hasattr(report, "wasxfail"):
        record["xfail"] = True
    if report.failed:
        record["message"] = (report.longreprtext or "")[-3000:]
    elif report.skipped and not hasattr(report, "wasxfail"):
        record["message"] = _skip_reason(report)
    _write(record)


def pytest_collectreport(report):
    if report.failed:
        _write({"nodeid": report.nodeid or "<collection>", "when": "collect", "outcome": "failed",
                "message": (report.longreprtext or "")[-3000:]})
