"""The ``refprune`` command line: listings, help, and one-line errors with exit code 2."""

from __future__ import annotations

import json

import pytest

from refprune import backends, cli
from refprune.methods import METHODS


def _exit_code(argv):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    return info.value.code


def test_backends_lists_every_adapter(capsys):
    assert cli.main(["backends"]) == 0
    out = capsys.readouterr().out
    for name in backends.NAMES:
        assert name in out
    assert "numpy" in out and "available" in out


@pytest.mark.parametrize("method", METHODS)
def test_each_method_help_shows_its_defaults(method, capsys):
    assert _exit_code(["run", method, "--help"]) == 0
    out = capsys.readouterr().out
    assert "--epochs" in out and "(default:" in out and "--resume" in out


@pytest.mark.parametrize(
    ("argv", "listed"),
    [
        (["run", "l0", "--data", "nope"], "digits, mnist, fashion-mnist, cifar10, synthetic"),
        (["run", "rvsm", "--model", "resnet"], "mlp-300-100"),
        (["run", "magnitude", "--backend", "jaxx"], "numpy, array-api-strict, torch"),
        (["run", "lottery", "--data", "mnist"], "train-images-idx3-ubyte"),
    ],
)
def test_bad_names_are_one_line_errors_with_exit_2(argv, listed, capsys):
    assert _exit_code(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"refprune run {argv[1]}: error:") and listed in err


def test_unknown_method_exits_2_listing_the_methods(capsys):
    assert _exit_code(["run", "obd"]) == 2
    err = capsys.readouterr().err
    assert all(m in err for m in METHODS)


def test_unavailable_backend_says_why(capsys):
    missing = [n for n in backends.NAMES if backends.unavailable_reason(n) is not None]
    if not missing:
        pytest.skip("every backend is available here")
    assert _exit_code(["run", "binary", "--backend", missing[0]]) == 2
    err = capsys.readouterr().err
    assert "cannot run here" in err and backends.unavailable_reason(missing[0]) in err


def test_threads_must_be_positive(capsys):
    assert _exit_code(["run", "l0", "--threads", "0"]) == 2
    assert "--threads must be >= 1" in capsys.readouterr().err


def test_run_writes_the_result_it_prints(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["run", "magnitude", "--data", "synthetic", "--subset", "60", "--epochs", "1",
            "--model", "mlp-300-100", "--amounts", "0,0.5", "--out", str(out), "--quiet"]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    result = json.loads((out / "result.json").read_text())
    assert f"test accuracy {result['test_accuracy']:.4f}" in printed
    assert result["method"] == "magnitude" and result["dataset"] == "synthetic"
