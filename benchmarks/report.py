"""The report: ``results.md`` from the results of one or more runs of the benchmarks.

Each ratio is the median over the runs, with every run's value beside it (the spread);
the tables of contenders are the last run's.
"""

from __future__ import annotations


def fmt_seconds(s):
    if s != s:
        return "-"
    return f"{s * 1e3:.2f} ms" if s < 1 else f"{s:.2f} s"


def _verdict(value, target):
    if target is None:
        return "", ""
    return f"<= {target:g}", "met" if value <= target else "**not met**"


def markdown(results):
    lines = _header(results) + _ratio_table(results)
    for b in results["benchmarks"]:
        lines += _section(b)
    return "\n".join(lines) + "\n"


def _header(results):
    m = results["machine"]
    load = max((m.get("load_average_at_start") or [0.0])[:2])  # before the benchmarks' own threads ran
    runs = len(results.get("runs", [])) or 1
    lines = [
        "# refprune benchmarks",
        "",
        f"Produced by `{results['command']}` ({runs} run{'s' if runs > 1 else ''} of every benchmark, one after "
        "the other). Ratios are refprune's median time (or memory) over the peer's, from alternating runs on the "
        "same machine; the table gives the median over the runs and each run's value.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['platform']}; Python {m['python']}, "
        f"NumPy {m['numpy']}, numba {m.get('numba') or '- (NumPy chains)'}, torch {m.get('torch', '-')}, CuPy {m.get('cupy', '-')}; GPU: {m.get('gpu') or 'none'}. "
        f"Load average at start {_loads(m.get('load_average_at_start'))}, at end "
        f"{_loads(results.get('load_average_at_end'))}. {results['threads']}. "
        f"Mode: {'quick' if results['quick'] else 'full'}; whole run {results['total_seconds']:.0f} s.",
        "",
    ]
    if load > 0.5:  # the 1- and 5-minute load averages at the start: other work was running
        lines += [f"**Measured under load** (load average {load:.2f} on {m['cores']} cores at the start, other work running): "
                  "the timings include scheduler stalls; rerun on an idle machine before reading these as final.", ""]
    return lines


def _loads(values):
    return "-" if not values else "[" + ", ".join(f"{v:.2f}" for v in values) + "]"


def _ratio_table(results):
    lines = ["## Ratios against the targets (issues 6 and 24; GPU: issue 15)", "",
             "| benchmark | ratio | median | runs | target | |", "|---|---|---|---|---|---|"]
    for b in results["benchmarks"]:
        for key, value in b.get("ratios", {}).items():
            runs = b.get("ratio_runs", {}).get(key, [value])
            target, met = _verdict(value, b.get("targets", {}).get(key))
            spread = ", ".join(f"{v:.3g}" for v in runs)
            lines.append(f"| {b['name']} | {key} | {value:.3g} | {spread} | {target} | {met} |")
    return lines


def _section(b):
    lines = ["", f"## {b['name']}", ""]
    if "skipped" in b or "error" in b:
        return lines + [f"Skipped: {b['skipped']}" if "skipped" in b else f"**Failed**: {b['error']}"]
    if b.get("what"):
        lines += [b["what"], ""]
    has_mem = any("extra_peak_bytes" in r for r in b["rows"].values())
    lines += ["| contender | median | repeats |" + (" extra peak memory |" if has_mem else ""),
              "|---|---|---|" + ("---|" if has_mem else "")]
    lines += [_row(name, r, has_mem) for name, r in b["rows"].items()]
    return lines + [f"\n- {note}" for note in b.get("notes", [])]


def _row(name, r, has_mem):
    row = f"| {name} | {fmt_seconds(r['median_s'])} | {len(r['times_s'])} |"
    if not has_mem:
        return row
    mem = r.get("extra_peak_bytes")
    return row + (f" {mem / 2**20:.0f} MiB ({r['extra_peak_x_weights']:.2f} x weights) |" if mem is not None else " |")
