"""Issue 22, "One-line errors": each failure is one line, no traceback, a non-zero exit, nothing left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from refprune import backends, cli

TINY = ["--data", "synthetic", "--subset", "60", "--epochs", "1", "--quiet", "--model", "mlp-300-100"]
CLI = [sys.executable, "-c", "import sys; from refprune.cli import main; sys.exit(main())"]


def _fails_in_one_line(argv, capsys, code=2):
    """The command's exit code is ``code`` and its stderr one line without a traceback; returns that line."""
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    err = capsys.readouterr().err.strip()
    assert info.value.code == code, err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "m"
    assert cli.main(["run", "magnitude", *TINY, "--amounts", "0,0.5", "--out", str(out)]) == 0
    return out


def test_compare_into_a_missing_folder(run_folder, tmp_path, capsys):
    err = _fails_in_one_line(["compare", str(run_folder), "--out", str(tmp_path / "nodir" / "y.png")], capsys)
    assert "does not exist" in err and not (tmp_path / "nodir").exists()


def test_compare_without_matplotlib_says_so_and_fails(run_folder, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    err = _fails_in_one_line(["compare", str(run_folder), "--out", str(tmp_path / "c.png")], capsys)
    assert "matplotlib is not installed" in err and not (tmp_path / "c.png").exists()


def test_export_torch_without_torch_leaves_no_folder(run_folder, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    out = tmp_path / "export"
    err = _fails_in_one_line(["export", str(run_folder), "--format", "torch", "--out", str(out)], capsys)
    assert "torch is not installed" in err and not out.exists()


@pytest.mark.parametrize("command", [["export", "--format", "safetensors"], ["compact"]])
def test_export_and_compact_into_a_file(run_folder, tmp_path, capsys, command):
    afile = tmp_path / "afile"
    afile.write_text("x")
    err = _fails_in_one_line([command[0], str(run_folder), *command[1:], "--out", str(afile)], capsys)
    assert "is a file, not a folder" in err and afile.read_text() == "x"


def test_check_with_an_unknown_kind_of_check(capsys):
    err = _fails_in_one_line(["check", "--checks", "nosuch"], capsys)
    assert "values, properties, gradients, errors" in err and "INTERNALERROR" not in err


def test_vectors_export_does_not_overwrite_unasked(tmp_path, capsys):
    file = tmp_path / "v.json"
    file.write_text("mine")
    err = _fails_in_one_line(["vectors", "export", str(file)], capsys)
    assert "--overwrite" in err and file.read_text() == "mine"


def test_data_dir_for_a_data_set_that_reads_no_files(tmp_path, capsys):
    err = _fails_in_one_line(["run", "magnitude", *TINY, "--data", "digits", "--data-dir", str(tmp_path),
                              "--out", str(tmp_path / "r")], capsys)
    assert "--data-dir would be ignored" in err and not (tmp_path / "r").exists()


@pytest.mark.skipif(backends.unavailable_reason("torch-cuda") is None, reason="this machine can run torch-cuda")
def test_sweep_on_a_backend_this_machine_lacks_fails_before_any_worker(tmp_path, capsys):
    out = tmp_path / "sweep"
    err = _fails_in_one_line(["sweep", "--methods", "l0", "--backend", "torch-cuda", "--out", str(out)], capsys)
    assert "torch-cuda" in err and "cannot run here" in err and not out.exists()


def test_sweep_into_a_file(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    err = _fails_in_one_line(["sweep", "--methods", "l0", "--out", str(afile)], capsys)
    assert "is a file, not a folder" in err and "Errno" not in err


def test_ctrl_c_while_the_parser_is_built_is_one_line(monkeypatch, capsys):
    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    assert cli.main(["backends"]) == 130
    assert capsys.readouterr().err == "refprune: interrupted\n"


def test_ctrl_c_during_a_sweep_prints_the_resume_line_and_no_worker_tracebacks(tmp_path):
    """The terminal sends Ctrl-C to every process of its group: the sweep's workers must not print tracebacks."""
    pytest.importorskip("dask.distributed")
    out = tmp_path / "sweep"
    argv = ["sweep", "--methods", "l0", "--model", "mlp-300-100", "--seeds", "0,1", "--data", "synthetic",
            "--subset", "200", "--epochs", "500", "--workers", "2", "--out", str(out)]
    proc = subprocess.Popen([*CLI, *argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while not list(out.glob("*/checkpoint.npz")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)  # until the runs train (a checkpoint per epoch)
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGINT)
    text, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, text
    assert "Traceback" not in text and "ERROR" not in text, text
    assert text.rstrip().splitlines()[-1].startswith("[sweep] interrupted; run the same command again"), text
