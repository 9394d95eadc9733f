"""Issue 22, "A run record must describe the run that was trained": resume, overwrite, Ctrl-C, the demo, listings."""

from __future__ import annotations

import json

import pytest

from refprune import cli, engine, methods

TINY = ["--data", "synthetic", "--subset", "60", "--epochs", "1", "--quiet", "--model", "mlp-300-100"]


def _exit(argv, capsys):
    """``(exit code, stderr)`` of ``refprune ARGV`` (its stdout in ``_exit.out``)."""
    try:
        code = cli.main(argv)
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    _exit.out = captured.out
    return code, captured.err.strip()


# ---------------------------------------------------------------------- 1. resume takes the checkpoint's settings


@pytest.fixture
def interrupted_l0(tmp_path, interrupt_after, monkeypatch, capsys):
    """An l0 run with --seed 5 --lr 0.003 --epochs 2, interrupted in its second step."""
    real_flag = engine._SigintFlag
    interrupt_after(2)
    out = tmp_path / "l0"
    code, err = _exit(["run", "l0", *TINY, "--epochs", "2", "--batch-size", "20", "--seed", "5", "--lr", "0.003",
                       "--out", str(out)], capsys)
    assert code == 130 and f"Resume with: refprune run l0 --resume {out}" in err, err
    monkeypatch.setattr(engine, "_SigintFlag", real_flag)
    return out


def test_resume_records_the_checkpoints_settings(interrupted_l0, capsys):
    code, err = _exit(["run", "l0", "--resume", str(interrupted_l0), "--quiet"], capsys)
    assert code == 0, err
    result = json.loads((interrupted_l0 / "result.json").read_text())
    assert result["seed"] == 5 and result["epochs"] == 2 and result["steps"] == 2 * 3
    assert result["config"]["lr"] == 0.003 and result["config"]["batch_size"] == 20
    assert result["config"]["subset"] == 60 and result["model"] == "mlp-300-100"
    assert "epochs_extended" not in result


@pytest.mark.parametrize(("given", "stored"), [(["--seed", "0"], "seed=5"), (["--lr", "0.01"], "lr=0.003"),
                                               (["--batch-size", "10"], "batch_size=20"),
                                               (["--epochs", "1"], "epochs=2"), (["--lam", "0.5"], "lam=")])
def test_resume_refuses_an_option_that_differs_in_one_line(interrupted_l0, capsys, given, stored):
    before = (interrupted_l0 / "checkpoint.npz").read_bytes()
    code, err = _exit(["run", "l0", "--resume", str(interrupted_l0), *given], capsys)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"with {given[0]} {given[1]}: its run has {stored}" in err, err
    assert (interrupted_l0 / "checkpoint.npz").read_bytes() == before and not (interrupted_l0 / "result.json").exists()


def test_more_epochs_at_resume_extend_the_run_and_say_so(interrupted_l0, capsys):
    code, err = _exit(["run", "l0", "--resume", str(interrupted_l0), "--epochs", "3", "--quiet"], capsys)
    assert code == 0, err
    result = json.loads((interrupted_l0 / "result.json").read_text())
    assert result["epochs"] == 3 and result["steps"] == 3 * 3 and result["seed"] == 5
    assert result["epochs_extended"] == [{"at_step": 2, "epochs": [2, 3]}]


# ---------------------------------------------------------------------- 2. --overwrite never mixes two runs


def test_overwrite_then_ctrl_c_leaves_only_the_new_run(tmp_path, capsys, interrupt_after):
    out = tmp_path / "run"
    assert cli.main(["run", "magnitude", *TINY, "--amounts", "0,0.5", "--out", str(out)]) == 0
    assert {"result.json", "final.npz", "metrics.csv"} <= set(p.name for p in out.iterdir())
    interrupt_after(2)
    code, err = _exit(["run", "l0", *TINY, "--epochs", "2", "--batch-size", "20", "--overwrite", "--out", str(out)],
                      capsys)
    assert code == 130, err
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.npz", "metrics.csv"]
    code, err = _exit(["runs", str(out)], capsys)
    assert code == 2 and "no result.json" in err


# ---------------------------------------------------------------------- options refused late leave no folder


@pytest.mark.parametrize("argv", [["l0", "--lam", "1,2"], ["rvsm", "--layers", "nosuch"],
                                  ["gmp", "--criterion", "5:4"], ["gmp", "--criterion", "block:0x4"],
                                  ["l0", "--init-from", "/nonexistent.pt"]])
def test_an_option_refused_by_the_method_leaves_no_run_folder(tmp_path, capsys, argv):
    out = tmp_path / "run"
    code, err = _exit(["run", *argv, *TINY, "--out", str(out)], capsys)
    assert code == 2 and "Traceback" not in err and err.splitlines()[-1].startswith(f"refprune run {argv[0]}: error:")
    assert not out.exists()


def test_run_into_a_file_is_one_line(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    code, err = _exit(["run", "magnitude", *TINY, "--out", str(afile)], capsys)
    assert code == 2 and len(err.splitlines()) == 1 and "is a file, not a folder" in err and "Errno" not in err


# ---------------------------------------------------------------------- 3. Ctrl-C before the first checkpoint


def test_ctrl_c_before_the_first_checkpoint_says_nothing_was_saved(tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):  # Ctrl-C while the data loads: no checkpoint exists yet
        raise KeyboardInterrupt

    monkeypatch.setattr("refprune.data.load", interrupted)
    out = tmp_path / "run"
    code, err = _exit(["run", "l0", *TINY, "--seed", "5", "--out", str(out)], capsys)
    assert code == 130 and len(err.splitlines()) == 1, err
    assert "nothing was saved" in err and "--resume" not in err
    assert not out.exists()


# ---------------------------------------------------------------------- 4. an interrupted demo goes on


def test_an_interrupted_demo_skips_finished_methods_and_resumes_the_interrupted_one(tmp_path, monkeypatch, capsys,
                                                                                    short_demo):
    first, interrupted = methods.names()[:2]
    real_execute, real_flag = methods.execute, engine._SigintFlag

    class CtrlC:  # Ctrl-C in the first step of the second method
        raised = True

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def execute(spec, **kwargs):
        monkeypatch.setattr(engine, "_SigintFlag", CtrlC if spec.method == interrupted else real_flag)
        return real_execute(spec, **kwargs)

    monkeypatch.setattr(methods, "execute", execute)
    out = tmp_path / "demo"
    code, err = _exit(["demo", "--quiet", "--out", str(out)], capsys)
    assert code == 130 and len(err.splitlines()) == 1, err
    assert f"interrupted in {interrupted}; continue with: refprune demo --out {out}" in err
    assert (out / first / "result.json").exists() and not (out / interrupted / "result.json").exists()
    monkeypatch.setattr(methods, "execute", real_execute)
    monkeypatch.setattr(engine, "_SigintFlag", real_flag)
    code, err = _exit(["demo", "--quiet", "--out", str(out)], capsys)
    assert code == 0, err
    lines = _exit.out.splitlines()
    assert any(line.startswith(f"   {first}:") and line.endswith("(finished before: skipped)") for line in lines)
    assert any(line.startswith(f"   {interrupted}:") and "(resumed at step " in line for line in lines), _exit.out
    for name in methods.names():
        assert (out / name / "result.json").exists(), name
    summary = json.loads((out / "summary.json").read_text())
    assert [r["method"] for r in summary["methods"]] == list(methods.names())


# ---------------------------------------------------------------------- 5. one corrupt result.json


@pytest.fixture
def two_runs(tmp_path):
    for name in ("good", "bad"):
        assert cli.main(["run", "magnitude", *TINY, "--amounts", "0,0.5", "--out", str(tmp_path / "runs" / name)]) == 0
    (tmp_path / "runs" / "bad" / "result.json").write_text('{"method": ')
    return tmp_path / "runs"


def test_runs_lists_the_good_runs_and_one_line_per_unreadable_one(two_runs, capsys):
    capsys.readouterr()
    assert cli.main(["runs", str(two_runs)]) == 1
    captured = capsys.readouterr()
    rows = captured.out.splitlines()[2:]
    assert len(rows) == 1 and rows[0].startswith("good "), captured.out
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "bad" in err[0] and "not valid JSON" in err[0], captured.err


def test_compare_plots_the_good_runs_and_names_the_unreadable_one(two_runs, tmp_path, capsys):
    png = tmp_path / "c.png"
    capsys.readouterr()
    assert cli.main(["compare", str(two_runs), "--out", str(png)]) == 1
    captured = capsys.readouterr()
    assert png.exists() and f"wrote {png}" in captured.out
    assert len(captured.err.strip().splitlines()) == 1 and "not valid JSON" in captured.err
