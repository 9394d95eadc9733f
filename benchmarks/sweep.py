"""Parallel efficiency of ``refprune sweep``: 8 digits runs on a 2-worker LocalCluster vs one after another.

    python benchmarks/sweep.py                 # 8 runs of l0 (lenet5, digits), 5 epochs each
    python benchmarks/sweep.py --epochs 2      # shorter

The same 8 runs (seeds 0..7, one BLAS/torch thread each) are timed three ways: one
after another in this process; as a sweep on a ``LocalCluster`` of ``--workers`` (2)
single-threaded worker processes; and on a plain ``ProcessPoolExecutor`` of as many
processes. Parallel efficiency = T_sequential / (workers x T_parallel). The process
pool's efficiency is what any two processes reach on the machine at that moment, so
that the load of other processes (on a shared machine) can be told apart from the
overhead of Dask. All sides are warmed up first (imports, matplotlib's first figure),
and the cluster is started before the clock starts (its start-up is reported apart).
Rounds alternate (sequential, sweep, pool, sequential, ...) so that a burst of load hits
every side; the load average before and after each round is recorded. Writes
``benchmarks/sweep-results.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
POLL = 0.2  # seconds between progress polls (the command line's 0.5 adds up to that to the last run)


def _warm():
    """Import what a run needs and draw one figure, so that the first timed run pays no start-up."""
    from refprune import data, methods, plots

    methods.names()
    data.load("digits")
    fig, _ = plots.new_figure()
    plots.save_figure(fig, os.path.join(tempfile.mkdtemp(), "warm.png"))
    return os.getpid()


def _specs(grid, out):
    from refprune import sweep

    return sweep.expand(grid, out=out)


def sequential(grid, out):
    from refprune import methods

    start, train = time.perf_counter(), 0.0
    for spec in _specs(grid, out):
        train += methods.execute(spec)["train_seconds"]
    return time.perf_counter() - start, train


def _one(config):
    from refprune import methods
    from refprune.runspec import RunSpec

    return methods.execute(RunSpec(**config))["train_seconds"]


def pool(grid, out, executor):
    """The same runs on a plain ``ProcessPoolExecutor``: what any two processes get on this machine now."""
    start = time.perf_counter()
    train = sum(executor.map(_one, [spec.config() for spec in _specs(grid, out)]))
    return time.perf_counter() - start, train


def parallel(grid, out, client):
    from refprune import sweep

    start = time.perf_counter()
    summary = sweep.run_sweep(grid, out=out, client=client, poll=POLL, stream=open(os.devnull, "w"))
    seconds = time.perf_counter() - start
    if summary["counts"]["done"] != len(summary["runs"]):
        msg = f"the sweep did not run every run: {summary['counts']}"
        raise RuntimeError(msg)
    return seconds, sum(r["train_seconds"] for r in summary["runs"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--method", default="l0")
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE / "sweep-results.json")
    args = parser.parse_args(argv)

    from refprune import sweep

    grid = sweep.Grid([args.method], seeds=list(range(args.runs)), options={"data": ["digits"], "epochs": [args.epochs]})
    _warm()
    t0 = time.perf_counter()
    client, cluster = sweep.dask_client(None, args.workers, 1)  # the cluster refprune sweep starts
    client.wait_for_workers(args.workers)
    startup = time.perf_counter() - t0
    client.run(_warm)
    executor = ProcessPoolExecutor(args.workers, initializer=_warm)
    rounds = []
    root = Path(tempfile.mkdtemp(prefix="refprune-bench-sweep-"))
    try:
        for r in range(args.rounds):
            row = {"load_before": os.getloadavg()}
            row["sequential_s"], row["sequential_train_s"] = sequential(grid, root / f"seq{r}")
            row["load_middle"] = os.getloadavg()
            row["sweep_s"], row["sweep_train_s"] = parallel(grid, root / f"par{r}", client)
            row["pool_s"], row["pool_train_s"] = pool(grid, root / f"pool{r}", executor)
            row["load_after"] = os.getloadavg()
            row["efficiency"] = row["sequential_s"] / (args.workers * row["sweep_s"])
            row["pool_efficiency"] = row["sequential_s"] / (args.workers * row["pool_s"])
            rounds.append(row)
            print(f"round {r}: sequential {row['sequential_s']:.1f} s, sweep on {args.workers} workers "
                  f"{row['sweep_s']:.1f} s, efficiency {row['efficiency']:.2f}; plain process pool {row['pool_s']:.1f} s, "
                  f"efficiency {row['pool_efficiency']:.2f} (training seconds summed over the runs: sequential "
                  f"{row['sequential_train_s']:.1f}, sweep {row['sweep_train_s']:.1f}, pool {row['pool_train_s']:.1f}; "
                  f"load average "
                  f"{row['load_before'][0]:.1f} -> {row['load_after'][0]:.1f})", flush=True)
    finally:
        executor.shutdown()
        client.close()
        cluster.close()
        shutil.rmtree(root, ignore_errors=True)
    result = {
        "what": f"{args.runs} runs of {args.method} on digits ({args.epochs} epochs, seeds 0..{args.runs - 1}, 1 thread "
                f"each): one after another vs refprune sweep on a {args.workers}-worker LocalCluster",
        "cluster_startup_s": startup,
        "rounds": rounds,
        "efficiency_median": statistics.median(r["efficiency"] for r in rounds),
        "pool_efficiency_median": statistics.median(r["pool_efficiency"] for r in rounds),
        "cores": os.cpu_count(),
        "machine": {"python": sys.version.split()[0], "platform": platform.platform()},
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"parallel efficiency (median of {len(rounds)} rounds): {result['efficiency_median']:.2f} "
          f"(plain process pool: {result['pool_efficiency_median']:.2f}); "
          f"cluster start-up {startup:.1f} s (not counted); wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
