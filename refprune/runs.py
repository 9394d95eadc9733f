"""Runs a researcher can compare: find the ``result.json`` of runs, tabulate them, plot them together.

``refprune runs [DIR]`` lists every run under a folder (``runs/`` by default) with the
summary every method reports; ``refprune compare RUN_OR_FOLDER...`` draws accuracy
against weight sparsity for the given runs (every method on the same axes, one colour and
marker per run, labelled by what differs between runs of a method; the curves of the
sweeping methods: magnitude's criteria, the lottery's rounds and its random-reinit
control), with binary's on-sweep in a second panel.

>>> from refprune import runs
>>> runs.collect(["does-not-exist"])
Traceback (most recent call last):
...
FileNotFoundError: does-not-exist: no such run folder, result.json or folder of runs
"""

from __future__ import annotations

import csv
import io as _text_io
import json
import os
from datetime import datetime, timezone

from . import io

__all__ = ["collect", "rows", "COLUMNS", "format_rows", "labels", "compare_figure", "plot_compare"]

#: The table's columns: what identifies a run, then the summary every method reports.
COLUMNS = ("run", "method", "data", "model", "backend", "seed", "options", "test accuracy", "weight sparsity",
           "architecture", "train s", "date")
#: Sort keys of ``refprune runs --sort``.
SORT_KEYS = {"accuracy": "test accuracy", "sparsity": "weight sparsity", "date": "date", "method": "method",
             "seconds": "train s", "run": "run"}


def _results_under(folder):
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        if "result.json" in files:
            yield os.path.join(root, "result.json")


def collect(paths, *, unreadable=None):
    """The results (dicts) of the runs named by ``paths``: run folders, result.json files or folders of runs.

    Each result gets ``_path`` (its result.json) and ``_date`` (when it was written, ISO 8601).
    A path that holds no result is a ``FileNotFoundError`` naming it. A result.json that
    cannot be read (not JSON, not a run's result) is a ``ValueError`` naming it, unless
    ``unreadable`` is a list: then one line per such file is appended to it and the
    other runs are returned.
    """
    found = []
    for path in paths:
        for file in _result_files(os.fspath(path)):
            try:
                found.append(_read_result(file))
            except (ValueError, OSError) as exc:
                if unreadable is None:
                    raise
                unreadable.append(str(exc))
    return found


def _result_files(path):
    if os.path.isfile(path):
        return [path]
    if not os.path.isdir(path):
        msg = f"{path}: no such run folder, result.json or folder of runs"
        raise FileNotFoundError(msg)
    files = list(_results_under(path))
    if not files:
        msg = f"{path}: no result.json in it or below it (runs write one when they finish)"
        raise FileNotFoundError(msg)
    return files


def _read_result(file):
    result = io.read_json(file)
    if not isinstance(result, dict) or "method" not in result:
        msg = f"{file}: not the result.json of a refprune run"
        raise ValueError(msg)
    stamp = datetime.fromtimestamp(os.path.getmtime(file), tz=timezone.utc)
    return {**result, "_path": file, "_date": stamp.strftime("%Y-%m-%d %H:%M")}


def _options(result):
    """The settings and method options that differ from the method's defaults, as ``name=value`` text."""
    return " ".join(f"{k}={_short(v)}" for k, v in _changed_settings(result).items())


def _changed_settings(result):
    """``{name: value}`` of the settings and method options that differ from the method's defaults."""
    from .methods import get

    config = result.get("config", {})
    settings = {**{k: config[k] for k in ("epochs", "batch_size", "lr", "subset", "dtype") if k in config},
                **config.get("options", {})}
    try:
        method = get(result["method"])
    except ValueError:  # a method this refprune does not know: show every option
        defaults = {}
    else:
        defaults = {**method.defaults, "subset": 0, "dtype": "float32",
                    **{o.name: o.check(o.default) for o in method.options}}
    return {k: v for k, v in settings.items() if k not in defaults or _same(defaults[k]) != _same(v)}


def _same(value):
    return json.loads(json.dumps(value))


def _short(value):
    if isinstance(value, (list, tuple)):
        return ",".join(_short(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def rows(results):
    """One table row (dict of :data:`COLUMNS`) per result."""
    out = []
    for r in results:
        out.append({
            "run": _run_name(r),
            "method": r["method"],
            "data": r.get("dataset", ""),
            "model": r.get("model", ""),
            "backend": r.get("backend", ""),
            "seed": r.get("seed", ""),
            "options": _options(r),
            "test accuracy": r.get("test_accuracy"),
            "weight sparsity": r.get("weight_sparsity"),
            "architecture": r.get("architecture_string", ""),
            "train s": r.get("train_seconds"),
            "date": r["_date"],
        })
    return out


#: Sort keys whose natural order is largest first (the best accuracy at the top).
DESCENDING = ("accuracy",)


def sort_rows(table, key="date", *, reverse=False):
    """``table`` sorted by one of :data:`SORT_KEYS` (missing values last).

    Accuracy lists the best first, every other key the smallest (or earliest) first;
    ``reverse`` turns the order around.
    """
    if key not in SORT_KEYS:
        msg = f"unknown sort key {key!r}; choose one of {', '.join(SORT_KEYS)}"
        raise ValueError(msg)
    column = SORT_KEYS[key]
    present = [r for r in table if r[column] is not None]
    missing = [r for r in table if r[column] is None]
    return sorted(present, key=lambda r: r[column], reverse=reverse != (key in DESCENDING)) + missing


def _cell(value):
    if isinstance(value, float):
        return f"{value:.4f}" if value <= 1 else f"{value:.1f}"
    return "" if value is None else str(value)


def format_rows(table, fmt="text"):
    """The table as aligned ``"text"``, ``"csv"`` or ``"json"``."""
    if fmt == "json":
        return json.dumps(table, indent=2)
    if fmt == "csv":
        buf = _text_io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(table)
        return buf.getvalue().rstrip("\n")
    cells = [{k: _cell(r[k]) for k in COLUMNS} for r in table]
    keys = [k for k in COLUMNS if any(c[k] for c in cells) or k in ("method", "test accuracy")]
    widths = {k: max([len(k), *(len(c[k]) for c in cells)]) for k in keys}
    lines = [" | ".join(k.ljust(widths[k]) for k in keys), "-+-".join("-" * widths[k] for k in keys)]
    lines += [" | ".join(c[k].ljust(widths[k]) for k in keys) for c in cells]
    return "\n".join(lines)


#: One colour and one marker per run (cycled together: 10 x 9 pairs before one repeats). Hollow markers,
#: so that two runs at the same point show both shapes.
COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:gray",
          "tab:olive", "tab:cyan")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">")


#: The settings that tell runs apart, besides the method's options (``out``, ``resume`` and the like do not).
_IDENTITY = ("data", "model", "backend", "device", "seed", "epochs", "batch_size", "lr", "dtype", "stream", "subset",
             "init_from")


def _identity(result):
    """``{setting: value as text}``: the settings and method options a run was trained with."""
    config = result.get("config", {})
    settings = {k: config.get(k, result.get("dataset" if k == "data" else k)) for k in _IDENTITY}
    return {k: _short(v) for k, v in {**settings, **config.get("options", {})}.items()}


def labels(results):
    """One legend label per result: its method and what differs between it and the other runs of that method.

    Runs that differ in nothing shown add their folder's name.
    """
    identities = [_identity(r) for r in results]
    out = []
    for r, ident in zip(results, identities):
        peers = [i for q, i in zip(results, identities) if q["method"] == r["method"]]
        keys = dict.fromkeys(k for i in peers for k in i)  # in order of first appearance
        varying = [k for k in keys if len({str(i.get(k, "")) for i in peers}) > 1]
        parts = [f"{k}={ident.get(k, '-')}" for k in varying]
        out.append(" ".join([r["method"], *parts]))
    repeated = {label for label in out if out.count(label) > 1}
    return [f"{label} ({_run_name(r)})" if label in repeated else label for label, r in zip(out, results)]


def _run_name(result):
    return os.path.basename(os.path.dirname(os.path.abspath(result["_path"])))


def compare_figure(results):
    """The figure of :func:`plot_compare`: accuracy against sparsity, one colour and marker per run.

    The legend sits beside the axes (it hides no marker) and the accuracy axis is zoomed to
    the points drawn.
    """
    from .plots import new_figure

    binary = [r for r in results if r.get("on_sweep")]
    fig, axes = new_figure(ncols=2 if binary else 1, width=7.5, height=4.6)
    ax, shown = axes[0], []
    for i, (result, label) in enumerate(zip(results, labels(results))):
        style = {"color": COLORS[i % len(COLORS)], "marker": MARKERS[i % len(MARKERS)]}
        for (criterion, points), line in zip((result.get("curves") or {}).items(), ("-", "--", "-.", ":")):
            xs, ys = [p[1] for p in points], [p[2] for p in points]
            ax.plot(xs, ys, line, **style, alpha=0.6, linewidth=1.2, markersize=3,
                    label=f"{label}: {criterion} pruning")
            shown += ys
        for key, line, what in (("rounds", "-", "rounds"), ("random_reinit", ":", "random-reinit control")):
            points = result.get(key) or []
            if points:
                ys = [p["test_accuracy"] for p in points]
                ax.plot([p["sparsity"] for p in points], ys, line, **style, alpha=0.6, linewidth=1.2, markersize=3,
                        label=f"{label}: {what}")
                shown += ys
        ax.plot([result["weight_sparsity"]], [result["test_accuracy"]], linestyle="none", **style, markersize=9,
                markerfacecolor="none", markeredgewidth=1.6, label=f"{label}: final", zorder=3)
        shown.append(result["test_accuracy"])
    ax.set_xlabel("weight sparsity (every dense and conv weight, output layer included)")
    ax.set_ylabel("test accuracy")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(*_zoomed(shown))
    ax.grid(alpha=0.3)
    ax.set_title("accuracy against sparsity")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    if binary:
        _binary_panel(axes[1], binary)
    return fig


def _zoomed(values):
    """Axis limits around ``values`` (accuracies) with a margin of 5% of their span, at least 0.01."""
    low, high = min(values), max(values)
    margin = max(0.05 * (high - low), 0.01)
    return max(0.0, low - margin), min(1.0, high) + margin


def _binary_panel(ax, binary):
    for result in binary:
        sweep = result["on_sweep"]
        ax.plot([p[0] for p in sweep], [p[1] for p in sweep], "o-", markersize=3,
                label=f"binary seed {result.get('seed', '')}, {100 * (1 - result['weight_sparsity']):.1f}% on")
    ax.axvline(1.0, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlabel('"on" weight value at evaluation (binary)')
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0.0, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title("binary: weight invariance")
    ax.legend(fontsize=7, loc="lower right")


def plot_compare(results, path):
    """Accuracy against weight sparsity for ``results`` (and binary's on-sweep), written to ``path`` as PNG."""
    from .plots import save_figure

    save_figure(compare_figure(results), path)
    return path
