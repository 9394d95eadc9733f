"""Protocol v2 primitives against the official codes' rules in torch (issue 19).

    python benchmarks/oneshot_primitives.py            # the issue's sizes, about 10-30 min on 2 busy cores
    python benchmarks/oneshot_primitives.py --quick    # 4x smaller layers, a minute or two

Writes ``benchmarks/oneshot_primitives.json`` and ``.md`` (``--quick``: under ``runs/``).
Timing as in ``benchmarks/run.py`` (its ``race``: alternating rounds, medians; 2 threads
for NumPy's BLAS and torch). The official rules are re-stated in ``tests/official_oneshot.py``.

1. ``wanda_mask`` on a 4096 x 11008 float32 layer, 50% per row and 2:4, against Wanda's
   code (a stable per-row ``torch.sort``; a ``topk`` per group of 4), time (target <= 0.5x)
   and extra peak memory over the weights' bytes (target <= 1x), each measured in a fresh
   process (peak RSS, ``VmHWM``).
2. ``sparsegpt_prune`` on a 4096 x 4096 float32 layer with 2048 calibration tokens, 50% and
   2:4, refprune on NumPy and on torch against ``SparseGPT.fasterprune`` in torch CPU
   (target <= 1x), and how far the results are apart (float32; the Hessian is singular,
   2048 tokens for 4096 inputs, so damping decides much and float32 rounding shows).
3. ``obc_prune`` (50%, per row) on square layers of growing size: where it stops being practical.
4. How often SparseGPT's error is above plain masking ``w * mask`` (same mask) on random
   small layers: a statistic, not a property (the issue's 1-2%).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import THREADS, limit_threads, machine, median, race, run_worker, timed_peak  # noqa: E402
from report import fmt_seconds  # noqa: E402


def _official():
    path = HERE.parent / "tests" / "official_oneshot.py"
    spec = importlib.util.spec_from_file_location("official_oneshot", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _wanda_inputs(rows, cols):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((rows, cols), dtype=np.float32)
    norms = (np.abs(rng.standard_normal(cols, dtype=np.float32)) + 0.1).astype(np.float32)
    return w, norms


def _wanda_call(who, mode, w, norms):
    """``(fn, inputs kept alive)`` of one contender: refprune on numpy/torch, or the official rule."""
    import refprune as rp

    if who == "refprune":
        kw = {"amount": 0.5} if mode == "row" else {"n": 2, "m": 4}
        return lambda: rp.wanda_mask(w, norms, **kw)
    import torch

    tw, tn = torch.from_numpy(w), torch.from_numpy(norms)
    if who == "refprune-torch":
        kw = {"amount": 0.5} if mode == "row" else {"n": 2, "m": 4}
        return lambda: rp.wanda_mask(tw, tn, **kw)
    official = _official()
    if mode == "row":
        return lambda: official.wanda_row_mask(tw, tn, 0.5)
    return lambda: official.wanda_nm_mask(tw, tn, 2, 4)


def worker_wanda(spec):
    """In a fresh process: build the layer, reset the peak RSS, run once, report time and extra peak."""
    limit_threads(THREADS)
    w, norms = _wanda_inputs(spec["rows"], spec["cols"])
    fn = _wanda_call(spec["who"], spec["mode"], w, norms)
    small_w, small_n = _wanda_inputs(4, 16)
    _wanda_call(spec["who"], spec["mode"], small_w, small_n)()  # load the code paths
    seconds, extra = timed_peak(fn)
    return {"seconds": seconds, "extra_peak_bytes": extra, "weights_bytes": w.nbytes}


def _spawn(spec):
    return run_worker([Path(__file__).resolve(), "--worker", json.dumps(spec)])


def bench_wanda(args):
    rows, cols = (1024, 2752) if args.quick else (4096, 11008)
    w, norms = _wanda_inputs(rows, cols)
    res = {"name": "wanda_mask", "shape": [rows, cols], "modes": {}, "ratios": {}, "targets": {}}
    for mode, label in (("row", "50% per row"), ("nm", "2:4")):
        contenders = {
            "refprune (numpy)": (_wanda_call("refprune", mode, w, norms), 5),
            "refprune (torch backend)": (_wanda_call("refprune-torch", mode, w, norms), 5),
            "official rule (torch)": (_wanda_call("official", mode, w, norms), 3 if mode == "row" else 1),
        }
        times = race(contenders, rounds=5)
        memory = {who: _spawn({"who": who, "mode": mode, "rows": rows, "cols": cols})
                  for who in ("refprune", "official")}
        t = {k: median(v) for k, v in times.items()}
        res["modes"][label] = {"median_s": t, "fresh_process": memory}
        off = t["official rule (torch)"]
        res["ratios"][f"{label}: refprune / official (time)"] = t["refprune (numpy)"] / off
        res["targets"][f"{label}: refprune / official (time)"] = 0.5
        res["ratios"][f"{label}: refprune torch backend / official (time)"] = t["refprune (torch backend)"] / off
        mem = memory["refprune"]["extra_peak_bytes"] / memory["refprune"]["weights_bytes"]
        res["ratios"][f"{label}: refprune extra peak memory / weights' bytes"] = mem
        res["targets"][f"{label}: refprune extra peak memory / weights' bytes"] = 1.0
        res["ratios"][f"{label}: official extra peak memory / weights' bytes"] = (
            memory["official"]["extra_peak_bytes"] / memory["official"]["weights_bytes"])
    return res


def bench_sparsegpt(args):
    import torch

    import refprune as rp

    official = _official()
    size = args.sparsegpt_size or (1024 if args.quick else 4096)
    tokens = size // 2
    rng = np.random.default_rng(0)
    w = rng.standard_normal((size, size), dtype=np.float32)
    h = rp.hessian(rng.standard_normal((tokens, size), dtype=np.float32))
    tw, th = torch.from_numpy(w), torch.from_numpy(h)
    res = {"name": "sparsegpt_prune", "shape": [size, size], "tokens": tokens, "modes": {}, "ratios": {}, "targets": {}}
    for label, kw, okw in (("50%", {"amount": 0.5}, {"sparsity": 0.5}), ("2:4", {"n": 2, "m": 4}, {"prunen": 2, "prunem": 4})):
        out = {}

        def keep(name, fn):
            return lambda: out.__setitem__(name, fn())

        contenders = {
            "refprune (numpy)": (keep("numpy", lambda: rp.sparsegpt_prune(w, h, **kw)), args.rounds),
            "refprune (torch backend)": (keep("torch", lambda: rp.sparsegpt_prune(tw, th, **kw)), args.rounds),
            "official (torch)": (keep("official", lambda: official.sparsegpt(tw, th, **okw)), args.rounds),
        }
        times = race(contenders, rounds=args.rounds, warmup=0)
        t = {k: median(v) for k, v in times.items()}
        ref_w, ref_keep = (a.numpy() for a in out["official"])
        np_w, np_keep = out["numpy"]
        agreement = {
            "mask entries that differ from the official": int((np_keep != ref_keep).sum()),
            "pruned (refprune, official)": [int((~np_keep).sum()), int((~ref_keep).sum())],
            "max |w_hat - official| / max |w|": float(np.abs(np_w - ref_w).max() / np.abs(w).max()),
            "torch backend == numpy (masks)": bool((out["torch"][1].numpy() == np_keep).all()),
            "reconstruction error (refprune, official)": [float(rp.reconstruction_error(w, np_w, h)),
                                                           float(rp.reconstruction_error(w, ref_w, h))],
        }
        res["modes"][label] = {"median_s": t, "agreement": agreement}
        off = t["official (torch)"]
        res["ratios"][f"{label}: refprune numpy / official (time)"] = t["refprune (numpy)"] / off
        res["targets"][f"{label}: refprune numpy / official (time)"] = 1.0
        res["ratios"][f"{label}: refprune torch backend / official (time)"] = t["refprune (torch backend)"] / off
        res["targets"][f"{label}: refprune torch backend / official (time)"] = 1.0
    return res


def bench_obc(args):
    import refprune as rp

    sizes = args.obc_sizes or ((32, 64, 128) if args.quick else (64, 128, 256, 384))
    rng = np.random.default_rng(0)
    rows = []
    for n in sizes:
        w = rng.standard_normal((n, n))
        h = rp.hessian(rng.standard_normal((2 * n, n)))
        t0 = time.perf_counter()
        rp.obc_prune(w, h, amount=0.5)
        rows.append({"size": n, "seconds": time.perf_counter() - t0})
    return {"name": "obc_prune", "float64, out = in, 50% per row, 2*in tokens": rows}


def bench_sparsegpt_vs_masking(args):
    import refprune as rp

    trials = 200 if args.quick else 1000
    rng = np.random.default_rng(0)
    above = 0
    for _ in range(trials):
        w = rng.standard_normal((8, 32))
        x = rng.standard_normal((48, 32)) * rng.uniform(0.1, 3.0, size=32)
        h = rp.hessian(x)
        w_hat, mask = rp.sparsegpt_prune(w, h, amount=0.5, block=8)
        above += float(rp.reconstruction_error(w, w_hat, h)) > float(rp.reconstruction_error(w, np.where(mask, w, 0), h))
    return {"name": "sparsegpt vs plain masking", "trials": trials,
            "layers": "8 x 32, 48 tokens with feature scales U(0.1, 3), 50%, block 8",
            "fraction where SparseGPT's error is above w * mask's": above / trials}


def markdown(results):
    m = results["machine"]
    lines = [
        "# Protocol v2 primitives against the official codes (issue 19)",
        "",
        "Produced by `python benchmarks/oneshot_primitives.py`" + (" --quick" if results["quick"] else "") + ". "
        "Ratios are refprune's median time (or extra peak memory) over the official rule's, re-stated in torch "
        "(`tests/official_oneshot.py`), from alternating runs on the same machine, 2 threads each.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores; NumPy {m['numpy']}, torch {m.get('torch', '-')}. "
        f"Load average at start {[round(x, 1) for x in m['load_average_at_start']]}, "
        f"at end {[round(x, 1) for x in results['load_average_at_end']]}: **a shared, overloaded machine; "
        f"absolute times are noise, ratios less so.** Whole run {results['total_seconds']:.0f} s.",
        "",
        "| benchmark | ratio | value | target | |",
        "|---|---|---|---|---|",
    ]
    for b in results["benchmarks"]:
        for k, v in b.get("ratios", {}).items():
            target = b.get("targets", {}).get(k)
            verdict = "" if target is None else ("met" if v <= target else "**not met**")
            lines.append(f"| {b['name']} | {k} | {v:.3g} | {'' if target is None else f'<= {target:g}'} | {verdict} |")
    for b in results["benchmarks"]:
        lines += ["", f"## {b['name']}", ""]
        if "error" in b:
            lines.append(f"error: {b['error']}")
            continue
        for label, mode in b.get("modes", {}).items():
            lines.append(f"{label}: " + ", ".join(f"{k} {fmt_seconds(v)}" for k, v in mode["median_s"].items()))
            for k, v in mode.get("agreement", {}).items():
                lines.append(f"* {k}: {v}")
            lines.append("")
        for k, v in b.items():
            if k not in ("name", "modes", "ratios", "targets"):
                lines.append(f"* {k}: {v}")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4x smaller layers")
    parser.add_argument("--only", default="", help="comma-separated subset: wanda, sparsegpt, obc, masking")
    parser.add_argument("--out", type=Path, default=None, help="folder of the results (default benchmarks/, --quick runs/)")
    parser.add_argument("--sparsegpt-size", type=int, default=None,
                        help="in = out of the SparseGPT layer (default 4096, --quick 1024); tokens = half of it")
    parser.add_argument("--rounds", type=int, default=2, help="timed runs of each SparseGPT contender")
    parser.add_argument("--obc-sizes", type=lambda v: tuple(int(n) for n in v.split(",")), default=None,
                        help="comma-separated layer sizes of the obc_prune timing (default 64,128,256,384)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker_wanda(json.loads(args.worker))))
        return 0
    out = args.out or (HERE if not (args.quick or args.only) else Path("runs") / "oneshot-primitives-partial")
    start = time.perf_counter()
    threads = limit_threads(THREADS)
    results = {"machine": machine(), "quick": args.quick, "threads": threads, "benchmarks": []}
    if args.only and (out / "oneshot_primitives.json").exists():  # --only into an existing file: the others stay
        results["benchmarks"] = json.loads((out / "oneshot_primitives.json").read_text())["benchmarks"]
    plan = [("wanda", bench_wanda), ("sparsegpt", bench_sparsegpt), ("obc", bench_obc),
            ("masking", bench_sparsegpt_vs_masking)]
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    for key, fn in plan:
        if only and key not in only:
            continue
        print(f"[{key}] ...", flush=True)
        t0 = time.perf_counter()
        res = fn(args)
        res["seconds"] = time.perf_counter() - t0
        res["load_average_at_end"] = list(os.getloadavg())
        results["benchmarks"] = [b for b in results["benchmarks"] if b["name"] != res["name"]] + [res]
        for k, v in res.get("ratios", {}).items():
            print(f"    {k}: {v:.3g}", flush=True)
        results["total_seconds"] = time.perf_counter() - start
        results["load_average_at_end"] = list(os.getloadavg())
        out.mkdir(parents=True, exist_ok=True)
        (out / "oneshot_primitives.json").write_text(json.dumps(results, indent=2) + "\n")
        (out / "oneshot_primitives.md").write_text(markdown(results))
    print(f"wrote {out / 'oneshot_primitives.json'} and .md in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
