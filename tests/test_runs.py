"""refprune runs / compare: what the table and the figure show (from result.json files; nothing is trained)."""

from __future__ import annotations

import json

import pytest

from refprune import cli, runs

pytest.importorskip("matplotlib")


def _write_run(folder, method, *, accuracy, sparsity, lr=2e-3, seed=0, model="mlp-300-100"):
    folder.mkdir(parents=True)
    config = {"method": method, "data": "digits", "model": model, "backend": "numpy", "seed": seed, "epochs": 30,
              "batch_size": 60, "lr": lr, "dtype": "float32", "options": {}}
    result = {"method": method, "dataset": "digits", "model": model, "backend": "numpy", "seed": seed,
              "test_accuracy": accuracy, "weight_sparsity": sparsity, "config": config}
    (folder / "result.json").write_text(json.dumps(result))


@pytest.fixture
def four_runs(tmp_path):
    """Two l0 runs that differ only in the learning rate, and two methods at the same point (0.9, ~0.96)."""
    _write_run(tmp_path / "a", "l0", accuracy=0.978, sparsity=0.75, lr=2e-3)
    _write_run(tmp_path / "b", "l0", accuracy=0.971, sparsity=0.70, lr=1e-3)
    _write_run(tmp_path / "c", "gmp", accuracy=0.956, sparsity=0.9)
    _write_run(tmp_path / "d", "rigl", accuracy=0.958, sparsity=0.9)
    return tmp_path


def test_compare_gives_each_run_its_own_colour_marker_and_label(four_runs):
    results = runs.collect([four_runs])
    assert runs.labels(results) == ["l0 lr=0.002", "l0 lr=0.001", "gmp", "rigl"]
    fig = runs.compare_figure(results)
    ax = fig.axes[0]
    finals = [line for line in ax.get_lines() if line.get_label().endswith(": final")]
    assert len(finals) == 4
    styles = {(line.get_color(), line.get_marker()) for line in finals}
    assert len(styles) == 4
    assert len({line.get_marker() for line in finals}) == 4  # apart even in grey print
    assert all(line.get_markerfacecolor() == "none" for line in finals)  # hollow: a marker under another shows


def test_compare_zooms_to_the_accuracies_and_keeps_the_legend_off_the_markers(four_runs):
    fig = runs.compare_figure(runs.collect([four_runs]))
    ax = fig.axes[0]
    low, high = ax.get_ylim()
    assert 0.9 < low < 0.956 and 0.978 < high < 1.0
    fig.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    assert legend.x0 >= ax.get_window_extent().x1  # beside the axes, not over them


def test_identical_settings_are_told_apart_by_their_folder(tmp_path):
    _write_run(tmp_path / "first", "gmp", accuracy=0.95, sparsity=0.9)
    _write_run(tmp_path / "second", "gmp", accuracy=0.95, sparsity=0.9)
    assert runs.labels(runs.collect([tmp_path])) == ["gmp (first)", "gmp (second)"]


def test_runs_sort_accuracy_lists_the_best_first(four_runs, capsys):
    assert cli.main(["runs", str(four_runs), "--sort", "accuracy", "--csv"]) == 0
    order = [line.split(",")[0] for line in capsys.readouterr().out.splitlines()[1:]]
    assert order == ["a", "b", "d", "c"]
    assert cli.main(["runs", str(four_runs), "--sort", "accuracy", "--reverse", "--csv"]) == 0
    assert [line.split(",")[0] for line in capsys.readouterr().out.splitlines()[1:]] == ["c", "d", "b", "a"]
    assert cli.main(["runs", str(four_runs), "--sort", "sparsity", "--csv"]) == 0
    assert [line.split(",")[0] for line in capsys.readouterr().out.splitlines()[1:]][:2] == ["b", "a"]
