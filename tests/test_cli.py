"""The ``refprune`` command line as a user types it: listings, help, one-line errors, runs that are kept."""

from __future__ import annotations

import json
import os

import pytest

from refprune import backends, cli, engine, methods
from refprune.cli import run as method_cli


def _exit_code(argv):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    return info.value.code


TINY = ["--data", "synthetic", "--subset", "60", "--epochs", "1", "--quiet"]


def test_backends_lists_every_adapter(capsys):
    assert cli.main(["backends"]) == 0
    out = capsys.readouterr().out
    for name in backends.NAMES:
        assert name in out
    assert "numpy" in out and "available" in out


@pytest.mark.parametrize("method", methods.names())
def test_each_method_help_shows_its_defaults_as_plain_text(method, capsys):
    assert _exit_code(["run", method, "--help"]) == 0
    out = capsys.readouterr().out
    assert "--epochs" in out and "(default:" in out and "--resume" in out
    assert ":math:" not in out and "``" not in out and ":func:" not in out and "\\frac" not in out


@pytest.mark.parametrize(
    ("argv", "listed"),
    [
        (["run", "l0", "--data", "nope"], "digits, mnist5k, mnist, fashion-mnist, cifar10, synthetic"),
        (["run", "rvsm", "--model", "resnet"], "mlp-300-100"),
        (["run", "magnitude", "--backend", "jaxx"], "numpy, array-api-strict, torch"),
        (["run", "lottery", "--data", "mnist", "--quiet"], "train-images-idx3-ubyte"),
        (["run", "l0", "--epochs", "-1"], "--epochs: got -1; must be >= 0"),
        (["run", "l0", "--lr", "nan"], "--lr: expected a finite number"),
        (["run", "l0", "--lr", "-1"], "--lr: got -1.0; must be > 0"),
        (["run", "lottery", "--patience", "-1"], "--patience: got -1; must be >= 1"),
        (["run", "l0", "--threads", "0"], "--threads: got 0; must be >= 1"),
        (["run", "l0", "--droprate-init", "1.5"], "each drop rate must be in (0, 1)"),
        (["run", "l0", "--resume", "no/such/run"], "no checkpoint at no/such/run"),
    ],
)
def test_bad_input_is_one_line_with_exit_2(argv, listed, capsys):
    assert _exit_code(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"refprune run {argv[1]}: error:") and listed in err, err


def test_unknown_method_exits_2_listing_the_methods(capsys):
    assert _exit_code(["run", "obd"]) == 2
    err = capsys.readouterr().err
    assert all(m in err for m in methods.names())


def test_unavailable_backend_says_why(capsys):
    missing = [n for n in backends.NAMES if backends.unavailable_reason(n) is not None]
    if not missing:
        pytest.skip("every backend is available here")
    assert _exit_code(["run", "binary", "--backend", missing[0]]) == 2
    err = capsys.readouterr().err
    assert "cannot run here" in err and backends.unavailable_reason(missing[0]) in err


def test_threads_flag_keeps_the_run_and_records_the_environment(tmp_path, capsys):
    """Issue 10.1: --threads used to lose the run ('ctypes objects ... cannot be pickled')."""
    out = tmp_path / "run"
    assert cli.main(["run", "l0", "--threads", "1", "--model", "mlp-300-100", *TINY, "--out", str(out)]) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["config"]["threads"] == 1 and result["environment"]["blas_threads"] == 1
    assert result["environment"]["python"] and result["environment"]["refprune"]
    assert {"result", "metrics", "plot"} <= set(result["files"])


def test_run_writes_the_result_it_prints(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["run", "magnitude", *TINY, "--model", "mlp-300-100", "--amounts", "0,0.5", "--out", str(out)]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    result = json.loads((out / "result.json").read_text())
    assert f"test accuracy {result['test_accuracy']:.4f}" in printed and f"wrote {out}/result.json" in printed
    assert result["method"] == "magnitude" and result["dataset"] == "synthetic"


@pytest.mark.slow
def test_runs_are_never_overwritten_unasked(tmp_path, monkeypatch, capsys):
    """Issue 10.3: the default folder tells runs apart; an occupied folder needs --overwrite or --resume."""
    monkeypatch.chdir(tmp_path)
    base = ["run", "l0", "--model", "mlp-300-100", *TINY]
    assert cli.main(base) == 0
    assert cli.main([*base, "--lam", "0.5"]) == 0
    folders = sorted(os.listdir(tmp_path / "runs"))
    assert len(folders) == 2 and all(f.startswith("l0-synthetic-mlp-300-100-numpy-seed0-") for f in folders)
    capsys.readouterr()
    assert _exit_code(base) == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and "--overwrite" in err and "--resume" in err
    assert cli.main([*base, "--overwrite"]) == 0


def test_resume_takes_a_run_folder_and_continues_it(tmp_path, capsys):
    """Issue 10.5 / 9: --resume RUN_FOLDER continues the run; the metrics keep every epoch, the clock runs on."""
    out = tmp_path / "run"
    args = ["run", "binary", "--data", "digits", "--subset", "100", "--hidden", "32", "--quiet", "--out", str(out)]
    assert cli.main([*args, "--epochs", "1"]) == 0
    first = json.loads((out / "result.json").read_text())
    assert cli.main(["run", "binary", "--data", "digits", "--subset", "100", "--hidden", "32", "--quiet",
                     "--epochs", "2", "--resume", str(out)]) == 0
    second = json.loads((out / "result.json").read_text())
    epochs = [line.split(",")[1] for line in (out / "metrics.csv").read_text().splitlines()[1:]]
    assert epochs == ["1", "2"]
    assert second["train_seconds"] > first["train_seconds"]


def test_a_diverging_run_stops_with_one_line_and_exit_3(tmp_path, capsys):
    out = tmp_path / "run"
    code = _exit_code(["run", "magnitude", *TINY, "--model", "mlp-300-100", "--lr", "1e30", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == method_cli.EXIT_DIVERGED and len(err.splitlines()) == 1, err
    assert "diverged at step" in err and "Lower --lr" in err and (out / "metrics.csv").exists()


def test_ctrl_c_writes_a_checkpoint_and_says_how_to_resume(tmp_path, monkeypatch, capsys):
    class Flag:
        raised = True

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(engine, "_SigintFlag", Flag)
    out = tmp_path / "run"
    code = _exit_code(["run", "l0", "--model", "mlp-300-100", "--data", "synthetic", "--subset", "60", "--epochs",
                       "2", "--quiet", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == method_cli.EXIT_INTERRUPTED and len(err.splitlines()) == 1, err
    assert f"Resume with: refprune run l0 --resume {out}" in err and (out / "checkpoint.npz").exists()


def test_run_and_demo_build_the_same_runs():
    """Issue 10.2: the same method and seed give the same settings (threads included) under run and demo."""
    for name in methods.names():
        args = cli.build_parser().parse_args(["run", name])
        settings = {k: v for k, v in vars(args).items() if k not in ("func", "parser", "command", "method")}
        from_run = methods.make_spec(name, **settings)
        from_demo = methods.make_spec(name, data="digits", backend="numpy", seed=0, quiet=False, threads=1)
        assert from_run.config() == from_demo.config(), name
        assert from_run.threads == 1


@pytest.mark.slow
def test_runs_and_compare(tmp_path, capsys):
    for seed in (0, 1):
        cli.main(["run", "magnitude", *TINY, "--model", "mlp-300-100", "--amounts", "0,0.5,0.9", "--seed",
                  str(seed), "--out", str(tmp_path / "runs" / f"m{seed}")])
    cli.main(["run", "lottery", *TINY, "--rounds", "1", "--out", str(tmp_path / "runs" / "lt")])
    capsys.readouterr()
    assert cli.main(["runs", str(tmp_path / "runs"), "--sort", "accuracy", "--reverse"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("run ") and len(table) == 2 + 3
    assert "amounts=0,0.5,0.9" in table[2] + table[3] + table[4]
    assert cli.main(["runs", str(tmp_path / "runs"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["method"] for r in rows} == {"magnitude", "lottery"}
    png = tmp_path / "compare.png"
    assert cli.main(["compare", str(tmp_path / "runs"), "--out", str(png)]) == 0
    assert png.stat().st_size > 10_000 and f"wrote {png}" in capsys.readouterr().out
    assert _exit_code(["compare", str(tmp_path / "runs"), "--out", str(png)]) == 2  # not overwritten unasked
    assert _exit_code(["runs", str(tmp_path / "nothing")]) == 2


@pytest.mark.slow
def test_demo_runs_every_method_and_prints_one_table(tmp_path, short_demo, capsys):
    """The README's main command, each method shortened (one epoch on 60 examples) so that it takes seconds."""
    out = tmp_path / "demo"
    assert cli.main(["demo", "--quiet", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    table = printed.split("\n\n")[-2].splitlines() if "\n\n" in printed else []
    assert any(line.startswith("method ") and "weight sparsity" in line for line in printed.splitlines())
    for name in methods.names():
        assert (out / name / "result.json").exists(), name
        assert any(line.startswith(name + " ") for line in printed.splitlines()), name
    summary = json.loads((out / "summary.json").read_text())
    assert [r["method"] for r in summary["methods"]] == list(methods.names()) and table


@pytest.mark.slow
def test_warnings_are_one_line_in_the_terminal(tmp_path):
    """A warning reaches the terminal as ``warning: ...``, not as a source path and a line of refprune's code."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from refprune.cli import main; sys.exit(main())", "run", "gmp",
         "--data", "digits", "--subset", "120", "--batch-size", "40", "--epochs", "1", "--no-dense-baseline",
         "--quiet", "--out", str(tmp_path / "gmp")],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [
        "warning: --begin-epoch 2 is not below --epochs 1, so gmp prunes once, at the last step, to the target"
    ]
