"""One-shot pruning of trained networks, reported as Blalock et al. (MLSys 2020) ask.

    python benchmarks/oneshot.py                  # LeNet-300-100 on mnist5k and gpt-tiny on stdlib
    python benchmarks/oneshot.py --only mlp       # one of them
    python benchmarks/oneshot.py --seeds 2        # fewer calibration seeds (a quick look)
    python benchmarks/oneshot.py --workers 1      # one process (default: 2, one thread each)

The dense network of each part comes from the same pipeline as everything else: a
``refprune run dense`` (the command is in ``DENSE`` and in ``results.md``), trained once and cached
under ``runs/bench-oneshot/`` (``--retrain`` trains it again). Then ``refprune run
oneshot --init-from`` that run prunes it at 50%, 60% and 70% unstructured sparsity and
at 2:4, with magnitude, Wanda, SparseGPT and RIA, each with 5 calibration draws
(``--calibration-seed`` 0..4, 128 calibration examples); magnitude uses no calibration
data, so it runs once per target. Reported per operating point: the mean, the sample
standard deviation and the range over the seeds, beside the dense network's value
(Blalock et al.'s checklist: the dense baseline from the same code, several operating
points, mean and spread over runs). The held-out metric is the test split's
accuracy (classifier) or bits per byte (the byte-level language model, on the first
256 windows of its test split, 16 KB, so that its 64 runs fit the time budget; the
calibration sequences are drawn from the whole training split).

Writes ``benchmarks/oneshot/results.json`` (every run, the summaries, the timings and
the load of the machine), ``results.md`` (the tables and the orderings the issue asks
about, as measured) and one PNG per part (``mlp.png``, ``lm.png``). The time reported
is that of pruning and evaluating (the dense networks given), wall clock, with the
load average beside it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "benchmarks" / "oneshot"
CACHE = ROOT / "runs" / "bench-oneshot"

CRITERIA = ("magnitude", "wanda", "sparsegpt", "ria")
#: Operating points: the label and the oneshot options.
TARGETS = (("50%", {"sparsity": 0.5}), ("60%", {"sparsity": 0.6}), ("70%", {"sparsity": 0.7}),
           ("2:4", {"pattern": "2:4"}))

#: Each part: the dense run (method and settings; its command line in ``command``), the metric.
DENSE = {
    "mlp": {
        "title": "LeNet-300-100 (mlp-300-100) on mnist5k",
        "data": "mnist5k",
        "settings": {"model": "mlp-300-100", "epochs": 10, "batch_size": 32, "lr": 1e-3},
        "command": "refprune run dense --data mnist5k --model mlp-300-100 --epochs 10 --batch-size 32 --lr 1e-3 "
                   "--out runs/bench-oneshot/mlp",
        "metric": "test_accuracy",
        "label": "test accuracy",
        "higher_is_better": True,
    },
    "lm": {
        "title": "gpt-tiny on stdlib",
        "data": "stdlib",
        "settings": {"model": "gpt-tiny"},
        "command": "refprune run dense --data stdlib --model gpt-tiny --out runs/bench-oneshot/lm",
        "held_out": 256,
        "metric": "test_bits_per_byte",
        "label": "test bits per byte",
        "higher_is_better": False,
    },
}


def _environment():
    from refprune.results import environment

    return {**environment(), "load_average": list(os.getloadavg())}


def dense_run(part, *, retrain=False, dataset=None):
    """The folder of the part's dense run, trained now when not cached (or ``retrain``)."""
    from refprune import methods

    spec = DENSE[part]
    out = CACHE / part
    if retrain or not (out / "result.json").exists():
        print(f"[{part}] training the dense network: {spec['command']}", flush=True)
        methods.run("dense", data=spec["data"], out=str(out), overwrite=True, quiet=True, dataset=dataset,
                    **spec["settings"])
    return out


_DATA = {}


def _load(name):
    """A worker's data set, loaded once per process."""
    from refprune import data

    if name not in _DATA:
        _DATA[name] = data.load(name)
    return _DATA[name]


def _pruning_data(part):
    """The part's data for the oneshot runs: the test (and validation) split cut to ``held_out`` examples if set."""
    spec = DENSE[part]
    ds, keep = _load(spec["data"]), spec.get("held_out")
    if not keep:
        return ds
    return dataclasses.replace(ds, x_val=ds.x_val[:keep], y_val=ds.y_val[:keep], x_test=ds.x_test[:keep],
                               y_test=ds.y_test[:keep])


def _one(task):
    """One oneshot run (in a worker process): the row of the results."""
    from refprune import methods

    part, dense, criterion, label, options, seed, calibration, out = task
    spec = DENSE[part]
    start = time.perf_counter()
    r = methods.run("oneshot", data=spec["data"], init_from=dense, criterion=criterion, calibration=calibration,
                    calibration_seed=seed, out=out, quiet=True, threads=1, dataset=_pruning_data(part), **options)
    shutil.rmtree(out, ignore_errors=True)
    return {"criterion": criterion, "target": label, "seed": seed, "value": r["after"][spec["metric"]],
            "dense": r["before"][spec["metric"]], "weight_sparsity": r["weight_sparsity"],
            "prune_seconds": r["prune_seconds"], "wall_seconds": time.perf_counter() - start,
            "relative_error": {x["weight"]: x["relative_error"] for x in r["layers"]}}


def _cpu_seconds():
    """CPU seconds of this process and of its finished workers."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def prune_all(part, dense, *, seeds, calibration, workers, work):
    """Every (criterion, target, seed) run of the part on ``workers`` processes; rows, wall and CPU seconds."""
    spec = DENSE[part]
    tasks = [(part, str(dense), criterion, label, options, seed, calibration,
              str(Path(work) / f"{part}-{criterion}-{label.replace(':', 'of').rstrip('%')}-{seed}"))
             for criterion in CRITERIA for label, options in TARGETS
             for seed in range(1 if criterion == "magnitude" else seeds)]
    start, cpu, rows = time.perf_counter(), _cpu_seconds(), []
    with ProcessPoolExecutor(workers) as pool:
        for row in pool.map(_one, tasks):
            rows.append(row)
            print(f"[{part}] {row['criterion']:9s} {row['target']:4s} seed {row['seed']}: {spec['label']} "
                  f"{row['value']:.4f}", flush=True)
    return rows, time.perf_counter() - start, _cpu_seconds() - cpu


def summarize(rows):
    """``{criterion: {target: {mean, std, min, max, n}}}`` over the seeds."""
    out = {}
    for criterion in CRITERIA:
        out[criterion] = {}
        for label, _ in TARGETS:
            values = [r["value"] for r in rows if r["criterion"] == criterion and r["target"] == label]
            out[criterion][label] = {"mean": statistics.fmean(values),
                                     "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                                     "min": min(values), "max": max(values), "n": len(values)}
    return out


def orderings(summary, *, higher_is_better):
    """The orderings the issue asks about, as measured: a list of sentences with the numbers."""
    better = (lambda a, b: a > b) if higher_is_better else (lambda a, b: a < b)
    lines = []
    for label in ("50%", "2:4"):
        means = {c: summary[c][label]["mean"] for c in CRITERIA}
        worst = min(means, key=means.get) if higher_is_better else max(means, key=means.get)
        lines.append(f"at {label}, the worst criterion is **{worst}** (magnitude {means['magnitude']:.4f}; "
                     f"{'so magnitude is worst' if worst == 'magnitude' else 'so magnitude is not worst'})")
    s, w = summary["sparsegpt"]["50%"], summary["wanda"]["50%"]
    spread = max(s["std"], w["std"], 1e-12)
    lines.append(f"at 50%, SparseGPT {s['mean']:.4f} +- {s['std']:.4f} vs Wanda {w['mean']:.4f} +- {w['std']:.4f}: "
                 f"a difference of {abs(s['mean'] - w['mean']):.4f} ({abs(s['mean'] - w['mean']) / spread:.1f} x the "
                 "larger spread)")
    s, w = summary["sparsegpt"]["2:4"], summary["wanda"]["2:4"]
    verdict = "beats" if better(s["mean"], w["mean"]) else "does not beat"
    lines.append(f"at 2:4, SparseGPT {s['mean']:.4f} +- {s['std']:.4f} **{verdict}** Wanda "
                 f"{w['mean']:.4f} +- {w['std']:.4f}")
    return lines


def table(summary, dense, *, label):
    head = f"| {label} (mean ± std over seeds, range) | " + " | ".join(t for t, _ in TARGETS) + " |"
    lines = [head, "|---" * (len(TARGETS) + 1) + "|"]
    lines.append(f"| dense | " + " | ".join(f"{dense:.4f}" for _ in TARGETS) + " |")
    for criterion in CRITERIA:
        cells = []
        for t, _ in TARGETS:
            s = summary[criterion][t]
            cells.append(f"{s['mean']:.4f} ± {s['std']:.4f} ({s['min']:.4f}-{s['max']:.4f})" if s["n"] > 1
                         else f"{s['mean']:.4f} (1 run)")
        lines.append(f"| {criterion} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(path, summary, dense, *, title, label):
    """Held-out metric against sparsity, one curve per criterion (error bars: std over seeds), 2:4 beside."""
    from refprune import plots

    fig, (left, right) = plots.new_figure(ncols=2, width=5.0, height=4.0)
    unstructured = [(t, o["sparsity"]) for t, o in TARGETS if "sparsity" in o]
    styles = {"magnitude": ("o", "tab:gray"), "wanda": ("s", "tab:blue"), "sparsegpt": ("^", "tab:red"),
              "ria": ("D", "tab:green")}
    for k, criterion in enumerate(CRITERIA):
        marker, color = styles[criterion]
        xs = [s + 0.004 * (k - 1.5) for _, s in unstructured]  # side by side, so that no curve hides another
        ys = [summary[criterion][t]["mean"] for t, _ in unstructured]
        es = [summary[criterion][t]["std"] for t, _ in unstructured]
        left.errorbar(xs, ys, yerr=es, marker=marker, color=color, capsize=3, label=criterion, markersize=5)
    for ax in (left, right):
        ax.axhline(dense, color="black", linestyle=":", linewidth=1, label=f"dense ({dense:.4f})")
        ax.grid(alpha=0.3)
    left.set_xticks([s for _, s in unstructured])
    left.set_xlabel("sparsity of every pruned layer (unstructured)")
    left.set_ylabel(label)
    left.set_title(f"{title}: unstructured", fontsize=9)
    left.legend(fontsize=8)
    for i, criterion in enumerate(CRITERIA):
        marker, color = styles[criterion]
        s = summary[criterion]["2:4"]
        right.errorbar([i], [s["mean"]], yerr=[s["std"]], marker=marker, color=color, capsize=3, markersize=7)
    right.set_xticks(range(len(CRITERIA)), CRITERIA)
    right.set_xlim(-0.5, len(CRITERIA) - 0.5)
    right.set_ylabel(label)
    right.set_title(f"{title}: 2:4 (50%)", fontsize=9)
    plots.save_figure(fig, path)


def run_part(part, *, seeds, calibration, retrain, workers):
    spec = DENSE[part]
    dense = dense_run(part, retrain=retrain, dataset=_load(spec["data"]))
    with tempfile.TemporaryDirectory(prefix="refprune-oneshot-bench-") as work:
        load_before = list(os.getloadavg())
        rows, seconds, cpu_seconds = prune_all(part, dense, seeds=seeds, calibration=calibration, workers=workers,
                                               work=work)
    dense_value = rows[0]["dense"]
    summary = summarize(rows)
    plot(HERE / f"{part}.png", summary, dense_value, title=spec["title"], label=spec["label"])
    corpus = json.loads((dense / "result.json").read_text()).get("corpus")
    return {"title": spec["title"], "dense_command": spec["command"], "metric": spec["metric"], "corpus": corpus,
            "dense": dense_value, "runs": rows, "summary": summary, "seconds": seconds, "cpu_seconds": cpu_seconds,
            "held_out": spec.get("held_out"), "workers": workers,
            "load_average_before": load_before, "load_average_after": list(os.getloadavg()),
            "orderings": orderings(summary, higher_is_better=spec["higher_is_better"])}


def markdown(results, *, seeds, calibration):
    lines = ["# One-shot pruning benchmark", "",
             f"`python benchmarks/oneshot.py` ({seeds} calibration seeds, {calibration} calibration examples; "
             "magnitude uses none and runs once). Machine: "
             f"{results['environment']['cpu_count']} CPUs, load average "
             f"{', '.join(f'{x:.1f}' for x in results['environment']['load_average'])} at the start of the last "
             "part run. Pruning and evaluating every run of every part (the dense networks given): "
             f"{sum(r['seconds'] for r in results['parts'].values()):.0f} s wall clock, "
             f"{sum(r['cpu_seconds'] for r in results['parts'].values()):.0f} s of CPU.", ""]
    for part, r in results["parts"].items():
        corpus = r.get("corpus")
        text = (f" Corpus: Python {corpus['python']}'s standard library, files train/val/test "
                f"{corpus['files']['train']}/{corpus['files']['val']}/{corpus['files']['test']}, bytes "
                f"{corpus['bytes']['train']}/{corpus['bytes']['val']}/{corpus['bytes']['test']}, SHA-256 "
                f"{corpus['sha256'][:16]}..." if corpus else "")
        lines += [f"## {r['title']}", "", f"Dense network: `{r['dense_command']}`.{text}", "",
                  table(r["summary"], r["dense"], label=DENSE[part]["label"]), "",
                  f"Pruning and evaluating all {len(r['runs'])} runs: {r['seconds']:.0f} s wall clock, "
                  f"{r['cpu_seconds']:.0f} s of CPU ({r['workers']} processes of one thread; load average {r['load_average_before'][0]:.1f} "
                  f"before, {r['load_average_after'][0]:.1f} after, on {results['environment']['cpu_count']} CPUs)."
                  + (f" The held-out metric is on the first {r['held_out']} examples of the test split (the "
                     "calibration draws from the whole training split)." if r.get("held_out") else ""), "",
                  "Orderings, as measured:", ""]
        lines += [f"- {line}" for line in r["orderings"]]
        lines += ["", f"![{r['title']}]({part}.png)", ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=tuple(DENSE), action="append", help="run only this part (repeatable)")
    parser.add_argument("--seeds", type=int, default=5, help="calibration seeds per operating point")
    parser.add_argument("--calibration", type=int, default=128, help="calibration examples (sequences)")
    parser.add_argument("--retrain", action="store_true", help="train the dense networks again")
    parser.add_argument("--workers", type=int, default=2, help="processes running the runs (one thread each)")
    args = parser.parse_args(argv)
    HERE.mkdir(parents=True, exist_ok=True)
    results = {"environment": _environment(), "python": platform.python_version(), "argv": sys.argv[1:],
               "seeds": args.seeds, "calibration": args.calibration, "parts": {}}
    for part in args.only or tuple(DENSE):
        results["parts"][part] = run_part(part, seeds=args.seeds, calibration=args.calibration, retrain=args.retrain,
                                           workers=args.workers)
    earlier = json.loads((HERE / "results.json").read_text()) if args.only and (HERE / "results.json").exists() else {}
    parts = {**earlier.get("parts", {}), **results["parts"]}  # --only: the other parts stay as they were
    results["parts"] = {k: parts[k] for k in DENSE if k in parts}
    results["seconds"] = sum(r["seconds"] for r in results["parts"].values())
    (HERE / "results.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    (HERE / "results.md").write_text(markdown(results, seeds=args.seeds, calibration=args.calibration) + "\n",
                                     encoding="utf-8")
    for part, r in results["parts"].items():
        print(f"\n{r['title']}: {r['seconds']:.0f} s ({r['cpu_seconds']:.0f} s CPU)\n" + table(r["summary"], r["dense"], label=DENSE[part]["label"]))
        print("\n".join(r["orderings"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
