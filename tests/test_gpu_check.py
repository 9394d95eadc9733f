"""scripts/gpu_check.py on the CPU: its orchestration and summary, with every stage replaced by a fixed result.

The stages themselves need a GPU (or minutes of a dry run); here the pieces around them:
stages in order, a broken stage reported without stopping the others, the summary file,
the logs' tarball, the exit status.
"""

from __future__ import annotations

import importlib.util
import pathlib
import tarfile

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.py"


@pytest.fixture
def gpu_check(monkeypatch):
    spec = importlib.util.spec_from_file_location("gpu_check_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def broken(*args, **kwargs):
        raise RuntimeError("stage broke")

    monkeypatch.setattr(module, "stage_install", lambda args, work: (module.stage_result("install", "ok", 1.0), None))
    monkeypatch.setattr(module, "stage_versions", lambda *a: module.stage_result("versions", "ok", 1.0, text="v 1"))
    monkeypatch.setattr(module, "stage_pytest", lambda name, *a, **k: module.stage_result(
        name, "ok", 2.0, counts={"passed": 3}, failures=[("t::x", "boom")] if name == "conformance" else []))
    monkeypatch.setattr(module, "stage_methods", broken)
    monkeypatch.setattr(module, "stage_bench", lambda *a: module.stage_result(
        "bench", "ok", 1.0, ratios=[{"benchmark": "b", "ratio": "r", "value": 0.5, "target": 0.75}]))
    return module


@pytest.mark.parametrize("serial", [True, False])
def test_every_stage_is_recorded_in_order_and_a_broken_one_fails_alone(gpu_check, tmp_path, capsys, serial):
    out = tmp_path / "out"
    out.mkdir()
    argv = ["--work", str(tmp_path / "work"), "--out", str(out)] + (["--serial"] if serial else [])
    assert gpu_check.main(argv) == 1
    summary = (out / "gpu_summary.md").read_text(encoding="utf-8")
    rows = [line.split(" | ")[:2] for line in summary.splitlines() if line.startswith("| ") and " | " in line]
    assert rows[1:7] == [["| install", "ok"], ["| versions", "ok"], ["| tests", "ok"], ["| conformance", "ok"],
                         ["| methods", "FAILED"], ["| bench", "ok"]]
    assert "RuntimeError: stage broke" in summary and "- `t::x`: boom" in summary
    assert "| b | r | 0.5 | <= 0.75 | met |" in summary and "## Versions (ok)" in summary
    assert "logs" in tarfile.open(out / "gpu_logs.tar.gz").getnames()
    assert capsys.readouterr().out.rstrip().endswith("bench        ok        (1 s)")


def test_the_help_runs_without_a_gpu(gpu_check, capsys):
    with pytest.raises(SystemExit) as exc:
        gpu_check.main(["--help"])
    assert exc.value.code == 0 and "--dry-run" in capsys.readouterr().out
