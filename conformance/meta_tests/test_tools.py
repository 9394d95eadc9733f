"""The suite's tools: failure reports that reproduce, xfails files, vectors, ``refprune check``."""

from __future__ import annotations

import json
import os

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


def test_vectors_export_and_verify(tmp_path):
    path = tmp_path / "vectors.json"
    n = vectors.export(path)
    doc = json.loads(path.read_text())
    assert doc["format"] == "refprune-vectors" and len(doc["cases"]) == n
    assert {c["function"] for c in doc["cases"]} == set(cfg.PROTOCOL_NAMES) - vectors.NO_VECTORS
    assert any("raises" in c for c in doc["cases"])
    for module, backend in (("refprune", "numpy"), ("refprune.conformance.meta_tests.torch_impl", "torch")):
        results = vectors.verify(path, module, backend)
        assert all(bad == 0 for _, bad, _ in results.values()), {k: v[2] for k, v in results.items() if v[1]}
    caught = vectors.verify(path, f"{MUTANTS}:rounding_half_up", "torch")
    assert caught["prune_count"][1] > 0
    assert all(bad == 0 for name, (_, bad, _) in caught.items() if name != "prune_count")


def test_check_table_verdicts():
    report = {"tests": [
        {"functions": ["magnitude_mask"], "outcome": "passed"},
        {"functions": ["magnitude_mask"], "outcome": "xfailed"},
        {"functions": ["sparsity"], "outcome": "failed", "message": "the target m does not implement sparsity"},
        {"functions": ["apply_mask"], "outcome": "failed", "message": "mismatch"},
        {"functions": ["apply_mask"], "outcome": "passed"},
        {"functions": ["random_mask"], "outcome": "skipped"},
    ]}
    verdicts = {row[0]: row[-1] for row in check.table(report)}
    assert verdicts["magnitude_mask"] == "pass (xfails)"
    assert verdicts["sparsity"] == "missing"
    assert verdicts["apply_mask"] == "FAIL"
    assert verdicts["random_mask"] == "skip"
    assert verdicts["imp_sparsity"] == "no tests"


def test_check_command(capfd):
    from refprune.cli import main

    status = main(["check", "--target", "refprune.conformance.meta_tests.torch_impl", "--target-backend", "torch",
                   "--", "-k", "imp_sparsity", "-p", "no:randomly"])
    out = capfd.readouterr().out
    assert status == 0, out
    line = next(row for row in out.splitlines() if row.startswith("imp_sparsity"))
    assert line.endswith("pass"), out
