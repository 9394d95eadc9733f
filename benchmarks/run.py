"""Side-by-side benchmarks: refprune against what users would pick instead.

    python benchmarks/run.py --repeats 3   # the committed results.md: every benchmark three times
    python benchmarks/run.py               # full sizes (issue 6), once
    python benchmarks/run.py --quick       # 10x smaller, under a minute

Writes ``benchmarks/results.json`` and ``benchmarks/results.md`` (or ``--out DIR``).
Every figure is the median of several repeats timed with ``time.perf_counter``;
contenders are run in alternating rounds so that a burst of load on a shared machine
hits both sides. Results are ratios (refprune / peer): absolute times on these
machines are noise. With ``--repeats N`` the whole set runs N times and each ratio is the
median of the N runs, shown with every run's value. The pieces: ``common.py`` (timing,
threads, workers), ``masks.py`` (1, 2, 6), ``l0.py`` (3, 4, 8), ``gpu.py`` (5),
``compaction.py`` (7), ``report.py`` (``results.md``), ``torch_l0.py`` (the torch peer). Both sides run on 2 threads (``torch.set_num_threads`` and
threadpoolctl for NumPy's BLAS; refprune's NumPy fast paths are single-threaded).
The ``refprune (reference path)`` rows run the pure Array API code with the fast paths
switched off (``refprune._dispatch.reference_only``), once, for scale.

1. ``magnitude_mask`` on 20M float32 weights at 90% vs
   ``torch.nn.utils.prune.l1_unstructured`` and vs a plain copy of the weights.
2. ``global_magnitude_mask`` over 5 x 10M float32 vs
   ``torch.nn.utils.prune.global_unstructured``: time and extra peak memory, each run in
   a fresh subprocess that resets its peak RSS (``/proc/self/clear_refs``) once the
   weights exist and reads ``VmHWM`` after; refprune's is also measured by tracemalloc.
3. hard-concrete sample + gradient on 10M gates vs torch autograd.
4. one L0 training step (mlp-300-100 on 784 features; lenet5 on 1x28x28; batch 100)
   on the NumPy backend vs the same model in torch with autograd and Adam, written two
   ways (``torch_l0.py``): as the L0 paper's code (gates on the weights: the peer of the
   goals, what a user writing the paper's model in torch gets) and with the gates on the
   layer inputs (refprune's equations, for comparison).
5. GPU (issue 15), where a GPU is present, else skipped: ``gpu-l0``, the L0 step of 4
   and the hard concrete of 3 with refprune on torch-cuda and on CuPy vs torch autograd +
   Adam on CUDA (goal <= 1.5x); ``gpu-masks``, ``magnitude_mask`` at 100M and 1B float32
   weights and ``global_magnitude_mask`` over 10 x 100M vs ``torch.topk`` and
   ``torch.kthvalue`` on CUDA (goal <= 1x). ``--only gpu`` runs both; ``--gpu-dry-run``
   runs their code on the CPU (torch and numpy, tiny sizes). ``scripts/gpu_check.sh``
   runs them with the GPU tests.
6. ``nm_mask`` (2:4) and ``block_mask`` (4x4 tiles, l1, 50%) on 50M float32 weights vs the
   straightforward torch code (``topk`` per group; ``avg_pool2d`` + ``topk`` +
   ``repeat_interleave``): time, and extra peak memory in fresh subprocesses.
7. ``compact``: inference of the compacted L0 LeNet-5 and lottery MLP (digits, the methods'
   defaults) against the masked dense networks in refprune and in torch eager, batch 1 and 256.
8. ``run``: what a user's run experiences per step: ``refprune run l0`` (the method's
   defaults: weight decay in the penalty, the gates' own learning rate) on synthetic
   MNIST-shaped data, batch 100, the engine's training clock (step, metrics sums, NaN
   guard's losses) per step, vs the same training loop written in torch.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shlex
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
from common import THREADS, limit_threads, machine  # noqa: E402

#: Each benchmark's key (for ``--only``) and function ``fn(args) -> result dict``.
PLAN = (
    ("magnitude", "masks:bench_magnitude"),
    ("global", "masks:bench_global"),
    ("hard-concrete", "l0:bench_hard_concrete"),
    ("mlp", "l0:bench_l0_step", {"preset": "mlp-300-100", "target": 0.75}),
    ("lenet5", "l0:bench_l0_step", {"preset": "lenet5", "target": 0.8}),
    ("run-mlp", "l0:bench_l0_run", {"preset": "mlp-300-100", "target": 0.75}),
    ("run-lenet5", "l0:bench_l0_run", {"preset": "lenet5", "target": 0.8}),
    ("gpu-l0", "gpu:bench_gpu_l0"),
    ("gpu-masks", "gpu:bench_gpu_masks"),
    ("nm", "masks:bench_nm"),
    ("block", "masks:bench_block"),
    ("compact", "compaction:bench_compact"),
)
WORKERS = {"global": "masks:worker_global", "pattern": "masks:worker_pattern", "step": "l0:worker_step", "run": "l0:worker_run"}


def _function(path, kwargs=None):
    module, name = path.split(":")
    fn = getattr(__import__(module), name)
    return functools.partial(fn, **kwargs) if kwargs else fn


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10x smaller sizes, fewer repeats")
    parser.add_argument("--repeats", type=int, default=1, metavar="N",
                        help="run every benchmark N times; each ratio is the median of the N runs, shown with each "
                        "run's value (the committed results.md: --repeats 3)")
    parser.add_argument("--out", type=Path, default=None,
                        help="where results.json and results.md go (default: benchmarks/ for a full run of every "
                        "benchmark, the committed table; runs/benchmarks-quick or runs/benchmarks-partial for "
                        "--quick or --only, so that they never replace it)")
    parser.add_argument("--only", default="", help="comma-separated subset: " + ", ".join(k for k, *_ in PLAN)
                        + " (gpu = gpu-l0 and gpu-masks; run = run-mlp and run-lenet5)")
    parser.add_argument("--gpu-dry-run", action="store_true",
                        help="run the GPU benchmarks on the CPU (torch and numpy, tiny sizes) to check their code")
    parser.add_argument("--gpu-mask-sizes", default=None, metavar="N[,N...]",
                        help="weights per array of the GPU mask benchmarks (default 1e8,1e9; --quick 1e7,1e8)")
    parser.add_argument("--l0-run", default=None, metavar="DIR",
                        help="compact: the L0 LeNet-5 run to use (default: train one with refprune run l0's defaults)")
    parser.add_argument("--lottery-run", default=None, metavar="DIR",
                        help="compact: the lottery MLP run to use (default: train one with the defaults)")
    parser.add_argument("--worker", nargs=2, metavar=("KIND", "SPEC"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    if args.out is None:
        args.out = HERE if not (args.quick or args.only) else Path("runs") / (
            "benchmarks-quick" if args.quick else "benchmarks-partial")
    return args


def _selected(only):
    keys = {s.strip() for s in only.split(",") if s.strip()}
    return [entry for entry in PLAN if not keys or any(entry[0] == k or entry[0].startswith(k + "-") for k in keys)]


def run_one(key, fn, args):
    """One benchmark; a failure is recorded and printed, and does not lose the others."""
    t0 = time.perf_counter()
    print(f"[{key}] ...", flush=True)
    try:
        res = fn(args)
    except Exception as exc:  # noqa: BLE001
        import traceback

        traceback.print_exc()
        res = {"name": key, "error": f"{type(exc).__name__}: {exc}"}
    res["seconds"] = time.perf_counter() - t0
    for k, v in res.get("ratios", {}).items():
        print(f"    {k}: {v:.3g}" + (f" (target <= {res['targets'][k]:g})" if k in res.get("targets", {}) else ""))
    for k in ("skipped", "error"):
        if k in res:
            print(f"    {k}: {res[k]}")
    return res


def combine(runs):
    """Each benchmark's latest result, its ratios replaced by the median over ``runs`` (each run's in ``ratio_runs``).

    ``runs`` is a list of ``{key: result}``, one per run of the set (the last one may be partial).
    """
    combined = []
    for key in runs[0]:
        results = [r[key] for r in runs if key in r]
        b = dict(results[-1])
        b["ratio_runs"] = {name: _values(results, name) for name in b.get("ratios", {})}
        b["ratios"] = {name: float(np.median(vs)) for name, vs in b["ratio_runs"].items()}
        combined.append(b)
    return combined


def _values(results, name):
    """The ratio ``name`` of each result that has it."""
    return [r["ratios"][name] for r in results if name in r.get("ratios", {})]


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        kind, spec = args.worker
        print(json.dumps(_function(WORKERS[kind])(json.loads(spec))))
        return 0
    start = time.perf_counter()
    results = {"machine": machine(), "quick": args.quick, "threads": f"threads: {limit_threads(THREADS)}",
               "command": "python benchmarks/run.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
               "runs": [], "benchmarks": []}
    failed = 0
    for r in range(args.repeats):
        print(f"== run {r + 1} of {args.repeats}", flush=True)
        results["runs"].append({})
        for key, path, *kwargs in _selected(args.only):
            res = run_one(key, _function(path, *kwargs), args)
            failed += "error" in res
            results["runs"][-1][key] = res
            results["benchmarks"] = combine(results["runs"])
            _write(results, args.out, start)  # after each benchmark: a run stopped later keeps these
    path = _write(results, args.out, start)
    print(f"wrote {path} and {path.with_suffix('.md')} in {results['total_seconds']:.0f} s")
    return 1 if failed else 0


def _write(results, out, start):
    from report import markdown

    results["total_seconds"] = time.perf_counter() - start
    results["load_average_at_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    tmp.replace(out / "results.json")
    tmp = out / "results.md.tmp"
    tmp.write_text(markdown(results))
    tmp.replace(out / "results.md")
    return out / "results.json"


if __name__ == "__main__":
    sys.exit(main())
