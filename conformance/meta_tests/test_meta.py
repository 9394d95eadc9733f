"""The suite's own tests: it accepts a correct independent implementation, rejects every
planted bug, and finds exactly the recorded deviations of torch.nn.utils.prune.

All targets run in one subprocess (``python -m refprune.conformance.meta_tests.run``),
one pytest session each, with the ``quick`` profile (the ``ci`` examples, no
shrinking): the correct implementation against the whole suite, ``torch_prune``
against the mask tests, and each mutant against the test module of its family with
``-x``. These tests run only for the default target (they test the suite, not a target).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from refprune.conformance import config as cfg

pytest.importorskip("torch", reason="the meta-tests' implementations are written in torch")

from refprune.conformance.meta_tests.mutants import MUTANTS  # noqa: E402

pytestmark = pytest.mark.skipif(
    bool(os.environ.get(cfg.ENV_TARGET, "").strip()),
    reason="meta-tests check the suite itself and run only for the default target",
)

FAMILIES = ["test_gates", "test_regularizers", "test_thresholds", "test_masks", "test_schedules"]
FAMILIES += ["test_patterns", "test_budgets", "test_scores", "test_dst", "test_schedule_variants"]  # oracle protocol v1
IMPL = "refprune.conformance.meta_tests.torch_impl"
TORCH_PRUNE = "refprune.conformance.targets.torch_prune"


def _jobs():
    jobs = [
        {"name": "torch_impl", "target": IMPL, "modules": FAMILIES},
        {"name": "torch_prune", "target": TORCH_PRUNE, "modules": ["test_masks"]},
    ]
    for name, (_, _, module, _) in MUTANTS.items():
        jobs.append({"name": name, "target": f"refprune.conformance.meta_tests.mutants:{name}",
                     "modules": [module], "args": ["-x", "--tb=short"]})
    return jobs


@pytest.fixture(scope="module")
def results():
    """Every job's result, by name (one subprocess for all)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFPRUNE_")}
    with tempfile.TemporaryDirectory() as tmp:
        jobs, out = Path(tmp) / "jobs.json", Path(tmp) / "out.json"
        jobs.write_text(json.dumps(_jobs()), encoding="utf-8")
        proc = subprocess.run(
            [sys.executable, "-m", "refprune.conformance.meta_tests.run", str(jobs), str(out)],
            env=env, capture_output=True, text=True, timeout=540, check=False,
        )
        if proc.returncode != 0 or not out.exists():
            pytest.fail(f"the meta runner failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        return {r["name"]: r for r in json.loads(out.read_text(encoding="utf-8"))}


def _by_outcome(result, outcome):
    return [t for t in result["report"]["tests"] if t["outcome"] == outcome]


def _summary(result):
    counts = {}
    for t in result["report"]["tests"]:
        counts[t["outcome"]] = counts.get(t["outcome"], 0) + 1
    return f"{result['name']}: exit {result['exitstatus']} in {result['seconds']}s, {counts}"


def test_independent_implementation_passes(results):
    """An independent, correct torch implementation passes the whole suite."""
    r = results["torch_impl"]
    bad = [t for t in r["report"]["tests"] if t["outcome"] != "passed"]
    assert r["exitstatus"] == 0 and not bad, _summary(r) + "".join(f"\n{t['id']}: {t.get('message', '')[-1500:]}" for t in bad)
    print(_summary(r))


def test_torch_prune_fails_exactly_where_recorded(results):
    """torch.nn.utils.prune fails exactly the tests in xfails/torch_prune.txt (strict),
    apart from the tests of protocol names it has no counterpart for."""
    r = results["torch_prune"]
    report = r["report"]
    assert report["xfails_file"] and report["xfails_file"].endswith("torch_prune.txt"), _summary(r)
    assert report["unmatched_xfails"] == [], f"stale lines in the xfails file: {report['unmatched_xfails']}"
    assert not _by_outcome(r, "xpassed"), f"recorded deviations that no longer fail: {[t['id'] for t in _by_outcome(r, 'xpassed')]}"
    assert not _by_outcome(r, "error"), _summary(r)
    unexpected = [t for t in _by_outcome(r, "failed") if "does not implement" not in t.get("message", "")]
    assert not unexpected, "unrecorded deviations:" + "".join(f"\n{t['id']}: {t.get('message', '')[-1500:]}" for t in unexpected)
    assert _by_outcome(r, "xfailed") and _by_outcome(r, "passed"), _summary(r)
    print(_summary(r))


@pytest.mark.parametrize("name", list(MUTANTS))
def test_mutant_is_caught(results, name):
    """Each planted bug fails a test of the function it breaks."""
    fname, _, module, bug = MUTANTS[name]
    r = results[name]
    failed = _by_outcome(r, "failed")
    assert r["exitstatus"] == 1 and failed, f"mutant {name} ({fname}: {bug}) was not caught by {module}: {_summary(r)}"
    assert any(fname in t["functions"] for t in failed), (
        f"mutant {name} ({fname}: {bug}) failed only tests of other functions: {[t['id'] for t in failed]}"
    )
    print(f"{name}: caught by {failed[0]['id']} in {r['seconds']}s")
