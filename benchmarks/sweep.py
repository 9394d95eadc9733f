"""Parallel efficiency of ``refprune sweep``: 8 digits runs on a 2-worker LocalCluster vs one after another.

    python benchmarks/sweep.py                 # 8 runs of l0 (lenet5, digits), 5 epochs each
    python benchmarks/sweep.py --epochs 2      # shorter

The same 8 runs (seeds 0..7, one BLAS/torch thread each) are timed twice: one after
another in this process, and as a sweep on a ``LocalCluster`` of ``--workers`` (2)
single-threaded worker processes. Parallel efficiency = T_sequential / (workers x
T_sweep). Both sides are warmed up first (imports, matplotlib's first figure) and the
cluster is started before the clock starts (its start-up is reported apart). Rounds
alternate (sequential, sweep, sequential, ...) so that a burst of load on a shared
machine hits both; the load average before and after each round is recorded, since
other processes on the same cores lower the efficiency. Writes
``benchmarks/sweep-results.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _warm():
    """Import what a run needs and draw one figure, so that the first timed run pays no start-up."""
    from refprune import engine, methods

    methods.names()
    fig, _ = engine.new_figure()
    engine.save_figure(fig, os.path.join(tempfile.mkdtemp(), "warm.png"))
    return os.getpid()


def _specs(grid, out):
    from refprune import sweep

    return sweep.expand(grid, out=out)


def sequential(grid, out):
    from refprune import methods

    start = time.perf_counter()
    for spec in _specs(grid, out):
        methods.execute(spec)
    return time.perf_counter() - start


def parallel(grid, out, client):
    from refprune import sweep

    start = time.perf_counter()
    summary = sweep.run_sweep(grid, out=out, client=client, poll=0.05, stream=open(os.devnull, "w"))
    seconds = time.perf_counter() - start
    if summary["counts"]["done"] != len(summary["runs"]):
        msg = f"the sweep did not run every run: {summary['counts']}"
        raise RuntimeError(msg)
    return seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--method", default="l0")
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE / "sweep-results.json")
    args = parser.parse_args(argv)

    from distributed import Client, LocalCluster

    from refprune import sweep

    grid = sweep.Grid([args.method], seeds=list(range(args.runs)), options={"data": ["digits"], "epochs": [args.epochs]})
    _warm()
    t0 = time.perf_counter()
    env = {k: "1" for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None,
                           silence_logs=logging.ERROR, env=env)
    client = Client(cluster)
    client.wait_for_workers(args.workers)
    startup = time.perf_counter() - t0
    client.run(_warm)
    rounds = []
    root = Path(tempfile.mkdtemp(prefix="refprune-bench-sweep-"))
    try:
        for r in range(args.rounds):
            row = {"load_before": os.getloadavg()}
            row["sequential_s"] = sequential(grid, root / f"seq{r}")
            row["load_middle"] = os.getloadavg()
            row["sweep_s"] = parallel(grid, root / f"par{r}", client)
            row["load_after"] = os.getloadavg()
            row["efficiency"] = row["sequential_s"] / (args.workers * row["sweep_s"])
            rounds.append(row)
            print(f"round {r}: sequential {row['sequential_s']:.1f} s, sweep on {args.workers} workers "
                  f"{row['sweep_s']:.1f} s, efficiency {row['efficiency']:.2f} (load average "
                  f"{row['load_before'][0]:.1f} -> {row['load_after'][0]:.1f})", flush=True)
    finally:
        client.close()
        cluster.close()
        shutil.rmtree(root, ignore_errors=True)
    result = {
        "what": f"{args.runs} runs of {args.method} on digits ({args.epochs} epochs, seeds 0..{args.runs - 1}, 1 thread "
                f"each): one after another vs refprune sweep on a {args.workers}-worker LocalCluster",
        "cluster_startup_s": startup,
        "rounds": rounds,
        "efficiency_median": statistics.median(r["efficiency"] for r in rounds),
        "cores": os.cpu_count(),
        "machine": {"python": sys.version.split()[0], "platform": platform.platform()},
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"parallel efficiency (median of {len(rounds)} rounds): {result['efficiency_median']:.2f}; "
          f"cluster start-up {startup:.1f} s (not counted); wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
