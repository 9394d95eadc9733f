"""The suite's tools: failure reports that reproduce, xfails files, vectors, ``refprune check``."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest

from refprune.conformance import check, vectors, xfails
from refprune.conformance import config as cfg
from refprune.conformance.report import compare
from refprune.conformance.target import MissingFunction, Target, reference

pytest.importorskip("torch", reason="the meta-tests' implementations are written in torch")

pytestmark = pytest.mark.skipif(
    bool(os.environ.get(cfg.ENV_TARGET, "").strip()),
    reason="meta-tests check the suite itself and run only for the default target",
)

MUTANTS = "refprune.conformance.meta_tests.mutants"


def test_failure_names_everything_and_reproduces():
    """A failure names function, dtype, shape, expected and actual; its snippet reproduces it."""
    target = Target(f"{MUTANTS}:sample_missing_clip", "torch")
    la = np.array([[50.0, -50.0, 0.0]], dtype=np.float32)
    u = np.full((1, 3), 0.5, dtype=np.float32)
    with pytest.raises(AssertionError) as info:
        compare(target, reference(), "hard_concrete_sample", la, u, beta=0.5)
    text = str(info.value)
    for part in ("hard_concrete_sample", "float32[1, 3]", "expected:", "actual:", "Reproduce with:", "beta=0.5"):
        assert part in text, text
    snippet = text.split("Reproduce with:\n", 1)[1]
    snippet = "\n".join(line[4:] for line in snippet.splitlines()).replace("print(out)", "")
    scope = {}
    exec(snippet, scope)  # noqa: S102 - the point is that the printed snippet runs
    assert scope["out"].tolist() == target("hard_concrete_sample", la, u, beta=0.5).tolist()


def test_missing_name_is_reported():
    target = Target("refprune.conformance.targets.torch_prune", "torch")
    assert not target.has("hard_concrete_sample")
    with pytest.raises(MissingFunction, match="does not implement hard_concrete_sample"):
        target("hard_concrete_sample", np.zeros(2), np.zeros(2))


def test_target_spec_with_attribute():
    target = Target(f"{MUTANTS}:imp_off_by_one", "torch")
    assert target("imp_sparsity", 0) == pytest.approx(0.2)


def test_xfails_lines_and_matching():
    entries = xfails.parse("# header\n\ntest_masks.py::test_a   # why\ntest_masks.py::test_b[*-ties]\n")
    assert [(e.test_id, e.reason) for e in entries] == [
        ("test_masks.py::test_a", "why"),
        ("test_masks.py::test_b[*-ties]", "listed in the xfails file"),
    ]
    assert xfails.matches("test_masks.py::test_a", "test_masks.py::test_a[torch]")
    assert not xfails.matches("test_masks.py::test_a", "test_masks.py::test_ab[torch]")
    assert xfails.matches("test_masks.py::test_b[*-ties]", "test_masks.py::test_b[torch-float32-ties]")
    assert not xfails.matches("test_masks.py::test_b[*-ties]", "test_masks.py::test_b[torch-float32-ties-2d]")
    assert xfails.suite_id("site-packages/refprune/conformance/test_masks.py::t[x]") == "test_masks.py::t[x]"
    assert xfails.default_path("refprune.conformance.targets.torch_prune").name == "torch_prune.txt"


@pytest.mark.slow
def test_vectors_export_and_verify(tmp_path):
    path = tmp_path / "vectors.json"
    n = vectors.export(path)
    doc = json.loads(path.read_text())
    assert doc["format"] == "refprune-vectors" and doc["protocol"] == cfg.PROTOCOL_VERSION and len(doc["cases"]) == n
    assert {c["function"] for c in doc["cases"]} == set(cfg.PROTOCOL_NAMES) - vectors.NO_VECTORS
    assert any("raises" in c for c in doc["cases"]) and {c["class"] for c in doc["cases"]} > {"signs", "ties", "random"}
    for module, backend in (("refprune", "numpy"), ("refprune.conformance.meta_tests.torch_impl", "torch")):
        results = vectors.verify(path, module, backend)
        assert all(r.failed == 0 for r in results.values()), {k: r.messages for k, r in results.items() if r.failed}
    caught = vectors.verify(path, f"{MUTANTS}:rounding_half_up", "torch")
    assert caught["prune_count"].failed > 0
    assert all(r.failed == 0 for name, r in caught.items() if name != "prune_count")
    # a forward-only target: the _grad names are not implemented, not failures
    forward_only = vectors.verify(path, f"{MUTANTS}:torch_impl_no_grad", "torch")
    assert forward_only["hard_threshold_grad"].verdict == "not implemented"
    assert forward_only["hard_threshold"].verdict == "pass"


TWO_FUNCTIONS = """
import numpy as np

def hard_threshold(w, *, threshold):
    if not (threshold >= 0):
        raise ValueError("threshold")
    if not isinstance(w, np.ndarray) or w.dtype.kind != "f":
        raise TypeError("w")
    return np.where({cond}, w, np.zeros_like(w))

def soft_threshold(w, *, threshold):
    if not (threshold >= 0):
        raise ValueError("threshold")
    if not isinstance(w, np.ndarray) or w.dtype.kind != "f":
        raise TypeError("w")
    return (np.sign(w) * np.maximum(np.abs(w) - threshold, 0)).astype(w.dtype)
"""


def _two_function_module(tmp_path, monkeypatch, name, cond="np.abs(w) > threshold"):
    (tmp_path / f"{name}.py").write_text(TWO_FUNCTIONS.format(cond=cond))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))


def test_vectors_verify_finds_a_module_in_the_current_directory(tmp_path, monkeypatch, capfd):
    from refprune.cli import main

    _two_function_module(tmp_path, monkeypatch, "twofn_vectors")
    vectors.export(tmp_path / "v.json")
    status = main(["vectors", "verify", "v.json", "--target", "twofn_vectors"])
    out = capfd.readouterr().out
    assert status == 0, out
    rows = {line.split()[0]: line for line in out.splitlines() if line.split()}
    assert rows["hard_threshold"].endswith("pass") and rows["magnitude_mask"].endswith("not implemented"), out
    assert out.splitlines()[-1].startswith("overall: pass - every case of the 2 implemented functions agrees"), out
    status = main(["vectors", "verify", "v.json", "--target", "no_such_module_here"])
    captured = capfd.readouterr()
    assert status == 2 and "Traceback" not in captured.err and len(captured.err.strip().splitlines()) == 1, captured


def test_vectors_overall_line():
    ok, bad, absent = vectors.Result(), vectors.Result(), vectors.Result()
    ok.passed, bad.passed, bad.failed, absent.missing = 3, 2, 1, 4
    assert vectors.overall_line({"a": ok, "b": bad, "c": absent}) == (
        "overall: FAIL - 1 of 2 implemented functions differ from the vectors: b")
    assert vectors.overall_line({"a": ok, "c": absent}) == (
        "overall: pass - every case of the 1 implemented functions agrees (1 of 2 not implemented)")
    assert vectors.overall_line({"c": absent}).startswith("overall: nothing to check")


@pytest.mark.parametrize("command", ["check", "vectors", "peers"])
def test_help_says_each_default_once(command, capsys):
    from refprune.cli import main

    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: None)" not in text and not re.search(r"\(default[^)]*\) \(default", text), text
    assert "(default: [])" not in text, text  # an append option that starts empty (peers --python)
    if command != "peers":
        assert text.count("(default: numpy") == 1


def test_check_table_verdicts():
    report = {"tests": [
        {"functions": ["magnitude_mask"], "kinds": ["values", "properties"], "outcome": "passed"},
        {"functions": ["magnitude_mask"], "kinds": ["values"], "outcome": "xfailed"},
        {"functions": ["sparsity"], "kinds": ["values"], "outcome": "failed", "missing": True, "kind": "values"},
        {"functions": ["apply_mask"], "kinds": ["values", "properties"], "outcome": "failed", "kind": "properties"},
        {"functions": ["apply_mask"], "kinds": ["values"], "outcome": "passed"},
        {"functions": ["random_mask"], "kinds": ["values"], "outcome": "skipped"},
        {"functions": ["hard_threshold"], "kinds": ["values"], "outcome": "passed"},
        {"functions": ["hard_threshold_grad"], "kinds": ["gradients"], "outcome": "failed", "missing": True,
         "kind": "gradients"},
        {"functions": ["hard_threshold_grad", "hard_threshold"], "kinds": ["errors"], "outcome": "failed",
         "missing": True, "kind": "errors"},
        {"functions": ["hard_threshold"], "kinds": ["errors"], "outcome": "passed"},
    ]}
    rows = dict(check.table(report))
    assert rows["magnitude_mask"]["values"] == "pass (xfails)" and rows["magnitude_mask"]["properties"] == "pass"
    assert rows["magnitude_mask"]["gradients"] == "-"
    assert rows["sparsity"]["values"] == "not implemented"
    assert rows["apply_mask"] == {"values": "pass", "properties": "FAIL", "gradients": "-", "errors": "-"}
    assert rows["random_mask"]["values"] == "skip"
    assert rows["hard_threshold"] == {"values": "pass", "properties": "-", "gradients": "not implemented",
                                      "errors": "pass"}
    assert "hard_threshold_grad" not in rows
    lines, overall, status = check.summarize(list(rows.items()))
    assert status == 1 and overall.startswith("overall: FAIL") and "apply_mask" in overall
    assert any(line.startswith("not implemented") and "sparsity" in line for line in lines)


def test_check_marks_checks_not_run_apart_from_checks_that_do_not_exist():
    """A test of values and properties that fails on values: its properties did not run ('not run'),
    which is not the protocol having no such check ('-'); a line under the table says what each means."""
    report = {"tests": [
        {"functions": ["magnitude_mask"], "kinds": ["values", "properties"], "outcome": "failed", "kind": "values"},
        {"functions": ["magnitude_mask"], "kinds": ["errors"], "outcome": "passed"},
    ]}
    rows = dict(check.table(report))
    assert rows["magnitude_mask"] == {"values": "FAIL", "properties": "not run", "gradients": "-", "errors": "pass"}
    lines, _, _ = check.summarize(list(rows.items()))
    assert "-: the protocol has no such check for this function" in lines
    assert any(line.startswith("not run: ") for line in lines)


def test_check_explains_pytests_failure_count():
    report = {"tests": [
        {"functions": ["sparsity"], "kinds": ["values"], "outcome": "failed", "missing": True},
        {"functions": ["sparsity"], "kinds": ["errors"], "outcome": "failed", "missing": True},
        {"functions": ["apply_mask"], "kinds": ["values"], "outcome": "failed", "kind": "values"},
        {"functions": ["apply_mask"], "kinds": ["errors"], "outcome": "passed"},
    ]}
    assert check.failure_count_note(report, "mylib") == (
        "refprune check: of pytest's 3 failed, 2 are tests of protocol functions that mylib does not implement "
        "(the table says 'not implemented': a target need not implement every name) and 1 is a real failure")
    assert check.failure_count_note({"tests": report["tests"][3:]}, "mylib") == (
        "refprune check: pytest reports no failure")


@pytest.mark.slow
def test_check_two_function_module(tmp_path, monkeypatch, capfd):
    """A correct forward-only module passes with gradients 'not implemented'; a short table, exit 0.
    (The tests of the threshold and magnitude functions only, to keep this fast.)"""
    from refprune.cli import main

    _two_function_module(tmp_path, monkeypatch, "twofn_ok")
    status = main(["check", "--target", "twofn_ok", "--", "-k", "threshold or magnitude_mask"])
    out = capfd.readouterr().out
    assert status == 0, out
    assert f"oracle protocol {cfg.PROTOCOL_VERSION}" in out and len(out.splitlines()) < 15, out
    row = next(line for line in out.splitlines() if line.startswith("hard_threshold "))
    assert row.split()[1:] == ["pass", "pass", "not", "implemented", "pass"], row
    assert "overall: pass" in out and (tmp_path / "refprune-check-twofn_ok.log").exists()
    assert "magnitude_mask" in next(line for line in out.splitlines() if line.startswith("not implemented"))


@pytest.mark.slow
def test_check_catches_a_forward_only_bug(tmp_path, monkeypatch, capfd):
    """hard_threshold without abs, no _grad: caught in the ci profile; the table, the first failure
    with its reproducer, and the log file named."""
    from refprune.cli import main

    _two_function_module(tmp_path, monkeypatch, "twofn_bug", cond="w > threshold")
    status = main(["check", "--target", "twofn_bug", "--log", str(tmp_path / "check.log"), "--", "-k", "threshold"])
    out = capfd.readouterr().out
    assert status == 1, out
    row = next(line for line in out.splitlines() if line.startswith("hard_threshold "))
    assert row.split()[1] == "FAIL", row
    assert "hard_threshold: first failure in" in out and "Reproduce with:" in out, out
    assert f"full log: {tmp_path / 'check.log'}" in out and len(out.splitlines()) < 60, out
    log = [line for line in (tmp_path / "check.log").read_text().splitlines() if line.strip()]
    pytest_count, note, overall = log[-3:]
    assert " failed" in pytest_count and note.startswith("refprune check: of pytest's ")
    assert "does not implement" in note and overall.startswith("overall: FAIL"), (pytest_count, note)


@pytest.mark.slow
def test_check_xfails_relative_path(tmp_path, monkeypatch, capfd):
    """``--xfails FILE`` relative to the caller's directory (the suite runs in a temporary one): the
    listed failures are expected, the row says ``pass (xfails)``; a missing file is one line, exit 2."""
    from refprune.cli import main

    _two_function_module(tmp_path, monkeypatch, "twofn_xfail", cond="w > threshold")
    (tmp_path / "known.txt").write_text("test_edges.py::test_edge_classes[*-hard_threshold]  # no abs: w > t\n")
    status = main(["check", "--target", "twofn_xfail", "--xfails", "known.txt", "--",
                   "-k", "test_edge_classes and hard_threshold"])
    out = capfd.readouterr().out
    assert status == 0, out
    row = next(line for line in out.splitlines() if line.startswith("hard_threshold "))
    assert row.split()[1:3] == ["pass", "(xfails)"], row
    assert main(["check", "--target", "twofn_xfail", "--xfails", "no_such_file.txt"]) == 2
    captured = capfd.readouterr()
    assert len(captured.err.strip().splitlines()) == 1 and "no_such_file.txt" in captured.err, captured
    assert "INTERNALERROR" not in captured.out + captured.err, captured


def test_check_misspelt_target_and_unknown_backend_are_one_line(tmp_path, monkeypatch, capfd):
    from refprune.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["check", "--target", "no_such_module_here"]) == 2
    captured = capfd.readouterr()
    assert len(captured.err.strip().splitlines()) == 1 and "cannot import the target" in captured.err, captured
    assert main(["check", "--target", "refprune", "--target-backend", "jaxx"]) == 2
    captured = capfd.readouterr()
    assert "unknown backend 'jaxx'; known backends:" in captured.err and "KeyError" not in captured.err
    assert len(captured.err.strip().splitlines()) == 1, captured.err
    from refprune import backends

    missing = [n for n in backends.NAMES if backends.unavailable_reason(n) is not None]
    if missing:  # e.g. jax or cupy not installed here: one line saying why, no KeyError
        assert main(["check", "--target", "refprune", "--target-backend", missing[0]]) == 2
        captured = capfd.readouterr()
        assert "cannot run here" in captured.err and len(captured.err.strip().splitlines()) == 1, captured.err


def test_check_says_what_to_install(monkeypatch, capfd):
    from refprune.conformance import check as check_module

    monkeypatch.setattr(check_module, "missing_dependencies", lambda: ["pytest", "hypothesis"])
    from refprune.cli import main

    assert main(["check", "--target", "refprune"]) == 2
    err = capfd.readouterr().err.strip()
    assert err == "refprune check: " + check_module.install_hint(["pytest", "hypothesis"]), err
    assert "pip install 'refprune[check]'" in err


def test_count_difference_is_named():
    """A mask pruning one entry too few says so, not only 'differs at 1 entry'."""
    from refprune.conformance.report import assert_equal

    target = Target("refprune", "numpy")
    w = np.arange(1.0, 7.0)
    out = target("magnitude_mask", w, amount=2)
    wrong = out.copy()
    wrong[1] = True
    with pytest.raises(AssertionError, match=r"mask pruned 1 entry, expected k = 2; mask differs at 1 entry"):
        assert_equal(target.last, wrong, out, what="mask")


def test_gradient_check_refuses_too_few_gradients():
    """A _grad returning fewer arrays than the forward has inputs fails; it is not a shorter check."""
    import types

    from refprune.conformance.gradcheck import check_target_grad
    from refprune.conformance.meta_tests import torch_impl

    def l0_penalty_grad(log_alpha, w, **kw):
        return torch_impl.l0_penalty_grad(log_alpha, w, **kw)[0]  # d log_alpha only

    module = types.SimpleNamespace(l0_penalty=torch_impl.l0_penalty, l0_penalty_grad=l0_penalty_grad)
    import sys

    sys.modules["_one_gradient_target"] = module
    try:
        target = Target("_one_gradient_target", "torch")
        with pytest.raises(AssertionError, match="returned 1 gradient"):
            check_target_grad(target, "l0_penalty", "l0_penalty_grad", [np.zeros(2), np.ones((2, 3))], lam=0.5,
                              weight_decay=0.1, autograd=False)
    finally:
        del sys.modules["_one_gradient_target"]


def test_every_protocol_name_has_edge_cases():
    from refprune.conformance import edges

    assert set(edges.CASES) == set(cfg.PROTOCOL_NAMES)
    for name in cfg.PROTOCOL_NAMES:
        if name in edges.NO_EDGE_CASES:
            assert not edges.cases(name, "float64")
            continue
        assert edges.cases(name, "float64"), f"{name} has no edge case in float64"
    assert edges.ranking_slices("float64").shape[1] == 2


def test_structured_rankings_differ_between_orders():
    """The rankings class really separates the orders: every pair of orders prunes differently for some k."""
    from refprune.conformance import edges

    w = edges.ranking_slices("float64")
    masks = {}
    for ord in edges.ORDS:
        masks[ord] = [reference()("structured_mask", w, amount=k, axis=0, ord=ord).tolist() for k in range(1, w.shape[0])]
    orders = list(masks)
    for i, a in enumerate(orders):
        for b in orders[i + 1:]:
            assert masks[a] != masks[b], (a, b)


def test_subnormal_probe():
    """numpy keeps subnormals; a flush-to-zero device is detected by the probe."""
    from refprune import backends
    from refprune.conformance import edges

    assert not edges.flushes_subnormals(backends.get("numpy"), "float32")

    class Flushing:
        def asarray(self, x, dtype=None):
            return np.where(np.abs(x) < np.finfo(x.dtype).tiny, 0, x)

        def to_numpy(self, x):
            return np.asarray(x)

    assert edges.flushes_subnormals(Flushing(), "float32")


def test_protocol_document_is_shipped_and_versioned():
    """docs/protocol.md declares the version the suite checks and is package data of the wheel."""
    from pathlib import Path

    doc = cfg.protocol_document()
    assert doc.is_file() and cfg.documented_version(doc) == cfg.PROTOCOL_VERSION
    text = doc.read_text(encoding="utf-8")
    for name in cfg.PROTOCOL_NAMES:
        assert f"`{name}" in text, f"{name} is not in the protocol document"
    for heading in ("### N:M masks", "### Block masks", "### Per-layer budgets", "### Scores",
                    "### Dynamic sparse training", "## Golden vectors", "## Changelog", "## Tolerances",
                    "## v2 primitives", "### Reconstruction", "### Per-layer budget: OWL", "### N:M checks",
                    "### v2 ("):
        assert heading in text, heading
    pyproject = Path(__file__).resolve().parents[3] / "pyproject.toml"
    if pyproject.exists():  # the repository
        assert '"protocol.md"' in pyproject.read_text(encoding="utf-8")


@pytest.mark.slow
def test_unknown_backend_in_the_environment_is_a_usage_error(tmp_path):
    """REFPRUNE_TARGET_BACKEND=jaxx under plain pytest: one error line, no INTERNALERROR / KeyError."""
    import subprocess
    import sys

    env = {**os.environ, cfg.ENV_BACKEND: "jaxx"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "--pyargs", "refprune.conformance.test_schedules", "-q",
                           "-p", "no:cacheprovider", f"--confcutdir={cfg.protocol_document().parent}"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 4 and "INTERNALERROR" not in out and "KeyError" not in out, out
    assert "unknown backend 'jaxx'; known backends:" in out


def test_density_strategy_draws_no_subnormal():
    """At density=5e-324 refprune's own densities are subnormal and fail the shared-epsilon check, so the
    strategy must not draw it (issue 20); the edge classes own the subnormal inputs."""
    from hypothesis import HealthCheck, find, settings
    from hypothesis.errors import NoSuchExample

    from refprune.conformance import strategies as cs

    with pytest.raises(NoSuchExample):
        find(cs.densities(), lambda d: 0 < d < np.finfo(np.float64).tiny,
             settings=settings(max_examples=2000, database=None, suppress_health_check=list(HealthCheck)))


def test_blind_spot_classes_run_after_the_others_and_name_their_class():
    from refprune.conformance import edges

    for fname, build in edges.BLIND_SPOTS.items():
        found = [c for c in edges.cases(fname, "float64") if c[0] not in edges.CLASSES]
        assert found and [c[0] for c in edges.cases(fname, "float64")[-len(found):]] == [c[0] for c in found]
    classes = {c[0] for f in edges.BLIND_SPOTS for d in ("float32", "float64") for c in edges.cases(f, d)}
    assert {"int block, 3-D", "tile-sum order", "key order", "re-solve twice", "1-d layers", "signed scores",
            "non-integer power"} <= classes
