"""Runs a researcher can compare: find the ``result.json`` of runs, tabulate them, plot them together.

``refprune runs [DIR]`` lists every run under a folder (``runs/`` by default) with the
summary every method reports; ``refprune compare RUN_OR_FOLDER...`` draws accuracy
against weight sparsity for the given runs (every method on the same axes, one marker
per run, the curves of the sweeping methods: magnitude's criteria, the lottery's rounds
and its random-reinit control), with binary's on-sweep in a second panel.

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

__all__ = ["collect", "rows", "COLUMNS", "format_rows", "plot_compare"]

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
    changed = {k: v for k, v in settings.items() if k not in defaults or _same(defaults[k]) != _same(v)}
    return " ".join(f"{k}={_short(v)}" for k, v in changed.items())


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
            "run": os.path.basename(os.path.dirname(os.path.abspath(r["_path"]))),
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


def sort_rows(table, key="date", *, reverse=False):
    """``table`` sorted by one of :data:`SORT_KEYS` (missing values last)."""
    if key not in SORT_KEYS:
        msg = f"unknown sort key {key!r}; choose one of {', '.join(SORT_KEYS)}"
        raise ValueError(msg)
    column = SORT_KEYS[key]
    present = [r for r in table if r[column] is not None]
    missing = [r for r in table if r[column] is None]
    return sorted(present, key=lambda r: r[column], reverse=reverse) + missing


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


def _label(result, table_row):
    extra = f" {table_row['options']}" if table_row["options"] else ""
    return f"{result['method']} {result.get('model', '')} seed {result.get('seed', '')}{extra}"


def plot_compare(results, path):
    """Accuracy against weight sparsity for ``results`` (and binary's on-sweep), written to ``path`` as PNG."""
    from .plots import new_figure, save_figure

    table = rows(results)
    binary = [r for r in results if r.get("on_sweep")]
    fig, axes = new_figure(ncols=2 if binary else 1, width=6.5, height=4.6)
    ax = axes[0]
    colors = {}
    cycle = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink",
             "tab:gray", "tab:olive", "tab:cyan"]
    for result, row in zip(results, table):
        color = colors.setdefault(result["method"], cycle[len(colors) % len(cycle)])
        label = _label(result, row)
        for (criterion, points), style in zip((result.get("curves") or {}).items(), ("-", "--", "-.", ":")):
            ax.plot([p[1] for p in points], [p[2] for p in points], style, color=color, alpha=0.6, linewidth=1.2,
                    marker=".", label=f"{label}: {criterion} pruning")
        for key, style, what in (("rounds", "-", "rounds"), ("random_reinit", ":", "random-reinit control")):
            points = result.get(key) or []
            if points:
                ax.plot([p["sparsity"] for p in points], [p["test_accuracy"] for p in points], style, color=color,
                        alpha=0.6, linewidth=1.2, marker=".", label=f"{label}: {what}")
        ax.plot([result["weight_sparsity"]], [result["test_accuracy"]], "o", color=color, markersize=8,
                markeredgecolor="black", label=f"{label}: final")
    ax.set_xlabel("weight sparsity (every dense and conv weight, output layer included)")
    ax.set_ylabel("test accuracy")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(0.0, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title("accuracy against sparsity")
    ax.legend(fontsize=7, loc="best")
    if binary:
        ax2 = axes[1]
        for result in binary:
            sweep = result["on_sweep"]
            ax2.plot([p[0] for p in sweep], [p[1] for p in sweep], "o-", markersize=3,
                     label=f"binary seed {result.get('seed', '')}, {100 * (1 - result['weight_sparsity']):.1f}% on")
        ax2.axvline(1.0, color="grey", linewidth=0.8, linestyle=":")
        ax2.set_xlabel('"on" weight value at evaluation (binary)')
        ax2.set_ylabel("test accuracy")
        ax2.set_ylim(0.0, 1.02)
        ax2.grid(alpha=0.3)
        ax2.set_title("binary: weight invariance")
        ax2.legend(fontsize=7, loc="lower right")
    save_figure(fig, path)
    return path
