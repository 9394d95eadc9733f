"""``refprune peers``: the report's format, a peer that is not installed, and the torch.ao adapter
(the one peer that needs nothing beyond torch, checked by the suite with its xfails file)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from refprune.cli import main
from refprune.conformance import peers

_FAIL = """nm_mask: result differs at 2 entries: (0, 1), (0, 2)
  call:     nm_mask(w: float32[1, 4], n=2, m=4)
  target:   refprune.conformance.peers.torch_ao on torch
  expected: array([[ True,  True, False,
          False]])
  actual:   array([[ True, False,  True, False]])
Reproduce with:
    import numpy as np
    out = f(w, n=2, m=4)"""


def _report():
    tests = [
        {"id": "test_edges.py::test_edge_classes[torch-float32-nm_mask]", "row": "nm_mask", "outcome": "xfailed",
         "error": "edge class 'ties': " + _FAIL.replace("[1, 4]", "[8, 4]"), "calls": 9},
        {"id": "test_patterns.py::test_pattern_cases[torch-float32-nm-ties]", "row": "nm_mask", "outcome": "xfailed",
         "error": _FAIL, "calls": 1},
        {"id": "test_patterns.py::test_pattern_cases[torch-float32-nm-2-4]", "row": "nm_mask", "outcome": "passed",
         "calls": 1},
        {"id": "test_masks.py::test_magnitude_mask[torch]", "row": "magnitude_mask", "outcome": "passed", "calls": 15},
        {"id": "test_patterns.py::test_pattern_cases[torch-float32-block-3d]", "row": "block_mask",
         "outcome": "failed", "error": "ValueError: too many values to unpack (expected 2)", "calls": 1},
        {"id": "test_patterns.py::test_block_mask[torch]", "row": "block_mask", "outcome": "deselected"},
    ]
    return {"tests": tests}


def test_verdicts_name_the_rule_and_the_smallest_counterexample():
    from refprune.conformance.xfails import parse

    entries = parse("test_patterns.py::test_pattern_cases[*-nm-ties]  # the tie rule: torch keeps the later one\n"
                    "test_edges.py::test_edge_classes[*-nm_mask]  # the tie rule again, on the edge classes\n")
    rows = peers.verdicts(_report(), entries)
    assert rows["magnitude_mask"]["verdict"] == peers.AGREES
    nm = rows["nm_mask"]
    assert nm["verdict"] == peers.DIFFERS and (nm["tests"], nm["passed"], nm["differ"], nm["cases"]) == (3, 1, 2, 11)
    assert nm["rules"] == ["the tie rule again, on the edge classes", "the tie rule: torch keeps the later one"]
    ce = nm["counterexample"]  # the 1x4 call, not the 8x4 one
    assert ce["call"] == "nm_mask(w: float32[1, 4], n=2, m=4)"
    assert ce["refprune"] == "array([[ True,  True, False, False]])"
    assert ce["peer"] == "array([[ True, False,  True, False]])"
    assert ce["reproduce"].splitlines() == ["import numpy as np", "out = f(w, n=2, m=4)"]
    block = rows["block_mask"]
    assert block["verdict"] == peers.CRASHES and block["unexplained"] == 1 and block["tests"] == 1


def test_markdown_has_the_summary_the_matrix_and_each_difference():
    rows = peers.verdicts(_report(), [])
    results = {"torch-ao": {"status": "ran", "version": "2.13.0", "seconds": 12.3, "cases": 28, "exitstatus": 1,
                            "functions": rows},
               "tfmot": {"status": peers.NOT_INSTALLED, "why": "no interpreter /x/bin/python"}}
    text = peers.markdown(results)
    assert "| torch-ao | 2.13.0 | 12 s | 28 | agrees 1, differs 1, crashes 1 |" in text
    assert "| tfmot | - | - | 0 | not installed (no interpreter /x/bin/python) |" in text
    assert "| torch-ao | differs (2/3 tests) | agrees | crashes (1/1 tests) |" in text
    assert "- call: `nm_mask(w: float32[1, 4], n=2, m=4)`" in text
    assert "- unexplained (failed): test_patterns.py::test_pattern_cases[torch-float32-block-3d]" in text


def test_cli_reports_a_peer_that_is_not_installed(tmp_path, capsys):
    out = tmp_path / "peers.md"
    code = main(["peers", "tfmot", "--python", f"tfmot={tmp_path / 'none' / 'python'}", "--out", str(out)])
    assert code == 0
    data = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert data["tfmot"]["status"] == peers.NOT_INSTALLED and "build the environment" in data["tfmot"]["why"]
    assert "| tfmot | - | - | 0 | not installed" in out.read_text(encoding="utf-8")
    with pytest.raises(SystemExit) as exc:  # never overwritten unasked
        main(["peers", "tfmot", "--python", f"tfmot={tmp_path}/python", "--out", str(out)])
    assert exc.value.code == 2 and "--overwrite" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["peers", "nosuchpeer", "--out", str(tmp_path / "x.md")])
    assert exc.value.code == 2 and "unknown peer" in capsys.readouterr().err


def test_update_replaces_only_the_named_peers(tmp_path):
    """Rerunning some peers with --update keeps every other peer's row, and each row says when it ran."""
    out = tmp_path / "peers.md"
    missing = str(tmp_path / "none" / "python")
    assert main(["peers", "tfmot", "torch-pruning", "--python", f"tfmot={missing}",
                 "--python", f"torch-pruning={missing}", "--out", str(out)]) == 0
    before = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert main(["peers", "tfmot", "--python", f"tfmot={tmp_path / 'other' / 'python'}", "--out", str(out),
                 "--update"]) == 0
    after = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert list(after) == ["torch-pruning", "tfmot"]  # the report's order, whatever was rerun
    assert after["torch-pruning"] == before["torch-pruning"]
    assert "other" in after["tfmot"]["why"] and after["tfmot"]["ran_at"] >= before["tfmot"]["ran_at"]
    text = out.read_text(encoding="utf-8")
    assert "| torch-pruning | - | - | 0 | not installed" in text and "| tfmot | - | - | 0 | not installed" in text


torch = pytest.importorskip("torch")


def test_torch_ao_adapter_calls_the_weight_norm_sparsifier():
    from refprune import block_mask, nm_mask
    from refprune.conformance.peers import torch_ao

    w = np.array([[0.1, -3.0, 2.0, 0.5], [4.0, 0.2, -0.3, 1.0]], dtype=np.float32)  # distinct magnitudes
    got = torch_ao.nm_mask(torch.from_numpy(w), n=2, m=4).numpy()
    np.testing.assert_array_equal(got, nm_mask(w, n=2, m=4))
    np.testing.assert_array_equal(torch_ao.nm_mask(torch.from_numpy(w.T.copy()), n=1, m=2, axis=0).numpy(),
                                  nm_mask(w.T, n=1, m=2, axis=0))
    np.testing.assert_array_equal(torch_ao.block_mask(torch.from_numpy(w), block=(1, 2), amount=2, pool="mean").numpy(),
                                  block_mask(w, block=(1, 2), amount=2, pool="mean"))
    ties = np.array([[1.0, 1.0, 1.0, 1.0]], dtype=np.float32)  # the tie rule keeps the first two
    assert torch_ao.nm_mask(torch.from_numpy(ties), n=2, m=4).sum() == 2


def test_torch_ao_differences_are_the_recorded_ones():
    """The suite on the adapter (the N:M cases): every failure is a line of xfails/torch_ao.txt."""
    from refprune.conformance import check

    status, report = check.run(target="refprune.conformance.peers.torch_ao", backend="torch", implemented_only=True,
                               pytest_args=["-k", "test_pattern_cases and nm-"], quiet=True,
                               log="/dev/null")
    assert report is not None, f"the suite did not run (exit {status})"
    ran = [t for t in report["tests"] if t["outcome"] != "deselected"]
    assert ran and all(t["row"] == "nm_mask" for t in ran)
    assert not [t["id"] for t in ran if t["outcome"] in ("failed", "error", "xpassed")]
    assert {t["outcome"] for t in ran} == {"passed", "xfailed"} and all(t["calls"] >= 1 for t in ran)
