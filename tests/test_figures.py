"""What the figures show: the sweep's labels stay inside the axes and apart; l0's title names both counts."""

from __future__ import annotations

import itertools

import pytest

from refprune import engine, sweep
from refprune.methods import l0

pytest.importorskip("matplotlib")


def _point(method, setting, accuracy, accuracy_std, sparsity, sparsity_std, seeds=3):
    return {"method": method, "target_sparsity": None, "setting": setting, "seeds": seeds,
            "accuracy_mean": accuracy, "accuracy_std": accuracy_std, "sparsity_mean": sparsity,
            "sparsity_std": sparsity_std}


#: The layout of docs/sweep-digits.png: long labels, points near the top and the right edge.
CROWDED = [
    _point("l0", "lam=0.25,0.0125,0.0025,0.05", 0.975, 0.008, 0.16, 0.02),
    _point("l0", "lam=1,0.05,0.01,0.2", 0.964, 0.010, 0.54, 0.01),
    _point("l0", "lam=4,0.2,0.04,0.8", 0.373, 0.47, 0.977, 0.04),
    _point("rvsm", "lam=0.0001", 0.974, 0.003, 0.35, 0.004),
    _point("rvsm", "lam=0.0005", 0.968, 0.003, 0.67, 0.004),
    _point("rvsm", "lam=0.002", 0.916, 0.004, 0.91, 0.004),
    _point("rvsm", "lam=0.004", 0.912, 0.004, 0.92, 0.004),
]


def test_sweep_labels_lie_inside_the_axes_and_apart():
    fig = sweep.sweep_figure({"points": CROWDED, "runs": [None] * 21})
    ax = fig.axes[0]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    boxes = [t.get_window_extent(renderer) for t in ax.texts]
    assert sorted(t.get_text() for t in ax.texts) == sorted(p["setting"] for p in CROWDED)  # none cut short
    for text, box in zip(ax.texts, boxes):
        assert frame.x0 < box.x0 and box.x1 < frame.x1 and frame.y0 < box.y0 and box.y1 < frame.y1, text
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b), (a, b)
    legend = ax.get_legend().get_window_extent(renderer)
    assert not any(box.overlaps(legend) for box in boxes)


def test_one_seed_summary_has_no_spread():
    one = sweep.point_line(_point("gmp", "", 0.956, 0.0, 0.9, 0.0, seeds=1))
    assert one == "gmp: test accuracy 0.9560, weight sparsity 0.900 (1 seed)"
    three = sweep.point_line(_point("l0", "lam=1", 0.964, 0.01, 0.54, 0.01))
    assert three == "l0 lam=1: test accuracy 0.9640 +- 0.0100, weight sparsity 0.540 (3 seeds)"


def test_sweep_progress_never_goes_backwards(capsys):
    import sys

    progress = sweep._Progress(4, sys.stdout)
    for counts in [(0, 2, 0), (1, 2, 0), (2, 2, 0), (2, 1, 0), (3, 1, 0), (4, 0, 0)]:
        progress.show(*counts)
    lines = [line.split("] ")[1] for line in capsys.readouterr().out.splitlines()]
    assert lines == ["0/4 done, 2 running, 0 failed, 2 waiting", "1/4 done, 2 running, 0 failed, 1 waiting",
                     "2/4 done, 2 running, 0 failed, 0 waiting", "3/4 done, 1 running, 0 failed, 0 waiting",
                     "4/4 done, 0 running, 0 failed, 0 waiting"]


def test_l0_plot_title_names_open_gates_and_alive_units(monkeypatch, tmp_path):
    figures = []
    monkeypatch.setattr(l0, "save_figure", lambda fig, path: figures.append(fig))
    rows = [{"epoch": e, "val_accuracy": 0.9, "expected_l0": 10.0, "train_accuracy": 0.9,
             "open_conv1": 16, "open_fc1": 48} for e in (0, 1)]
    l0.plot(tmp_path / "plot.png", rows=rows, gated=["conv1", "fc1"], sizes=[20, 200], alive=[16, 39])
    assert figures[0].axes[0].get_title() == "open gates 16-48, alive units 16-39"
