"""The suite's own tests: it accepts a correct independent implementation (with and without
its ``_grad`` functions), rejects every planted bug, and finds exactly the recorded
deviations of torch.nn.utils.prune.

One subprocess session (``python -m refprune.conformance.meta_tests.run``) with the
``quick`` profile (the ``ci`` examples, no shrinking) tests, as targets of one run (the
suite is collected once): the correct implementation, the same without ``_grad``s,
``torch_prune`` (the mask and edge tests, with its xfails file) and every mutant of
``mutants.py`` (only the tests of the function it breaks, without the gradient tests
unless it breaks a ``_grad``, until its first failure).
The table of mutants and the test that catches each is printed, and written to the
file named by ``REFPRUNE_MUTANT_TABLE`` when set (conformance/README.md holds a copy).
These tests run only for the default target (they test the suite, not a target).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from refprune.conformance import check
from refprune.conformance import config as cfg

pytest.importorskip("torch", reason="the meta-tests' implementations are written in torch")

from refprune.conformance.meta_tests.mutants import MUTANTS, RULES  # noqa: E402

pytestmark = pytest.mark.skipif(
    bool(os.environ.get(cfg.ENV_TARGET, "").strip()),
    reason="meta-tests check the suite itself and run only for the default target",
)

FAMILIES = ["test_edges", "test_gates", "test_regularizers", "test_thresholds", "test_masks", "test_schedules"]
FAMILIES += ["test_patterns", "test_budgets", "test_scores", "test_dst", "test_schedule_variants"]  # oracle protocol v1
FAMILIES += ["test_oneshot"]  # oracle protocol v2
IMPL = "refprune.conformance.meta_tests.torch_impl"
NO_GRAD = "refprune.conformance.meta_tests.mutants:torch_impl_no_grad"
TORCH_PRUNE = "refprune.conformance.targets.torch_prune"
FORWARD_KINDS = ["values", "properties", "errors"]


def mutant_target(name):
    return f"refprune.conformance.meta_tests.mutants:{name}"


def _jobs():
    targets = [IMPL, NO_GRAD, TORCH_PRUNE, *(mutant_target(n) for n in MUTANTS)]
    select = {
        mutant_target(n): {"row": cfg.row_of(m.function), "kinds": ["gradients"] if m.is_grad else FORWARD_KINDS}
        for n, m in MUTANTS.items()
    }
    select[TORCH_PRUNE] = {"files": ["test_masks", "test_edges"]}
    return [{"name": "suite", "target": ",".join(targets), "modules": FAMILIES, "select": select,
             "first_failure": [mutant_target(n) for n in MUTANTS], "args": ["--tb=short"]}]


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
        if not out.exists():
            pytest.fail(f"the meta runner failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        return {r["name"]: r for r in json.loads(out.read_text(encoding="utf-8"))}


def _tests(results, target):
    report = results["suite"]["report"]
    assert report is not None, "the suite session wrote no report"
    return [t for t in report["tests"] if t.get("target") == target]


def _counts(tests):
    counts = {}
    for t in tests:
        counts[t["outcome"]] = counts.get(t["outcome"], 0) + 1
    return counts


def _messages(tests):
    return "".join(f"\n{t['id']}: {(t.get('error') or t.get('message', ''))[-1500:]}" for t in tests)


@pytest.mark.slow
def test_independent_implementation_passes(results):
    """An independent, correct torch implementation passes the whole suite."""
    tests = _tests(results, IMPL)
    bad = [t for t in tests if t["outcome"] not in ("passed", "skipped")]
    assert tests and not bad, f"{_counts(tests)}{_messages(bad)}"
    print(f"torch_impl: {_counts(tests)}")


@pytest.mark.slow
def test_independent_implementation_without_grads(results):
    """Without its ``_grad`` functions it passes every other check, and ``refprune check`` calls its
    gradients not implemented, not FAIL."""
    tests = _tests(results, NO_GRAD)
    bad = [t for t in tests if t["outcome"] not in ("passed", "skipped") and not (t["outcome"] == "failed" and t.get("missing"))]
    assert tests and not bad, f"{_counts(tests)}{_messages(bad)}"
    missing = [t for t in tests if t.get("missing")]
    assert missing and all(t["functions"][0].endswith("_grad") for t in missing), _messages(missing)
    rows = dict(check.table({"tests": tests}))
    for row, verdicts in rows.items():
        assert check.FAIL not in verdicts.values(), (row, verdicts)
        assert verdicts["values"].startswith(check.PASS), (row, verdicts)
        has_grad = f"{row}_grad" in cfg.PROTOCOL_NAMES
        assert verdicts["gradients"] == (check.MISSING if has_grad else check.NONE), (row, verdicts)
    _, overall, status = check.summarize(list(rows.items()))
    assert status == 0 and "gradients not implemented" in overall, overall
    print(f"torch_impl without _grad: {_counts(tests)}; {overall}")


@pytest.mark.slow
def test_torch_prune_fails_exactly_where_recorded(results):
    """torch.nn.utils.prune fails exactly the tests in xfails/torch_prune.txt (strict),
    apart from the tests of protocol names it has no counterpart for."""
    report = results["suite"]["report"]
    tests = _tests(results, TORCH_PRUNE)
    assert report["xfails_files"][TORCH_PRUNE].endswith("torch_prune.txt"), report["xfails_files"]
    stale = report["unmatched_xfails_by_target"][TORCH_PRUNE]
    assert stale == [], f"stale lines in the xfails file: {stale}"
    by = {o: [t for t in tests if t["outcome"] == o] for o in ("xpassed", "error", "failed", "xfailed", "passed")}
    assert not by["xpassed"], f"recorded deviations that no longer fail: {[t['id'] for t in by['xpassed']]}"
    assert not by["error"], _counts(tests)
    unexpected = [t for t in by["failed"] if not t.get("missing")]
    assert not unexpected, "unrecorded deviations:" + _messages(unexpected)
    assert by["xfailed"] and by["passed"], _counts(tests)
    print(f"torch_prune: {_counts(tests)}")


def caught_by(results, name):
    """The first failing test of mutant ``name`` (a report entry), or None."""
    failed = [t for t in _tests(results, mutant_target(name)) if t["outcome"] in ("failed", "error")]
    return failed[0] if failed else None


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MUTANTS))
def test_mutant_is_caught(results, name):
    """Each planted bug fails a test of the function it breaks, in the ci examples; a forward's bug
    is caught with no ``_grad`` in the target and the gradient tests excluded."""
    m = MUTANTS[name]
    tests = _tests(results, mutant_target(name))
    first = caught_by(results, name)
    assert first is not None, f"mutant {name} ({m.function}: {m.bug}; rule {m.rule}) was not caught: {_counts(tests)}"
    assert not first.get("missing"), f"mutant {name} only failed for a missing function: {first['id']}"
    assert cfg.row_of(m.function) == first["row"], f"{name} caught by a test of another function: {first['id']}"
    assert m.is_grad or first["kind"] != "gradients", f"{name} caught by a gradient test: {first['id']}"
    print(f"{name}: caught by {first['id']} ({first['kind']})")


def test_every_function_and_rule_has_a_mutant():
    """At least one mutant per protocol function and per rule of RULES."""
    functions = {m.function for m in MUTANTS.values()}
    assert not set(cfg.PROTOCOL_NAMES) - functions, f"no mutant for {sorted(set(cfg.PROTOCOL_NAMES) - functions)}"
    assert not set(RULES) - {m.rule for m in MUTANTS.values()}, "rules without a mutant"
    assert {m.rule for m in MUTANTS.values()} <= set(RULES), "mutants naming an unknown rule"


def mutant_table(results):
    """The markdown table: mutant, function, rule, bug, the test that catches it."""
    lines = ["| mutant | function | rule broken | caught by |", "|---|---|---|---|"]
    for name, m in MUTANTS.items():
        first = caught_by(results, name)
        where = f"`{first['id'].split('[')[0]}` ({first['kind']})" if first else "**not caught**"
        lines.append(f"| `{name}` | `{m.function}` | {RULES[m.rule]} ({m.bug}) | {where} |")
    return "\n".join(lines)


@pytest.mark.slow
def test_mutant_table_is_documented(results):
    """Print the whole mutant table; conformance/README.md lists every mutant."""
    table = mutant_table(results)
    path = os.environ.get("REFPRUNE_MUTANT_TABLE")
    if path:
        Path(path).write_text(table + "\n", encoding="utf-8")
    print(f"\n{len(MUTANTS)} mutants:\n{table}")
    readme = Path(__file__).resolve().parent.parent / "README.md"
    if readme.exists():  # the repository; an installed wheel has no README
        text = readme.read_text(encoding="utf-8")
        missing = [n for n in MUTANTS if f"`{n}`" not in text]
        assert not missing, f"conformance/README.md's mutant table lacks {missing}; regenerate it with " \
                            "REFPRUNE_MUTANT_TABLE=table.md pytest conformance/meta_tests/test_meta.py"
