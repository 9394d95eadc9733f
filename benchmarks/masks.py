"""Mask benchmarks: magnitude_mask, global_magnitude_mask (time and peak memory), nm_mask and block_mask."""

from __future__ import annotations

import functools
import time

import numpy as np
from common import THREADS, limit_threads, median, race, ratio, rows_of, spawn, timed_peak, torch_or_none, tracemalloc_peak


def bench_magnitude(args):
    import refprune as rp
    from refprune._dispatch import reference_only

    n = 2_000_000 if args.quick else 20_000_000
    rng = np.random.default_rng(0)
    w = rng.standard_normal(n, dtype=np.float32)
    torch = torch_or_none()
    contenders = {
        "refprune (numpy)": (lambda: rp.magnitude_mask(w, amount=0.9), 7),
        "copy of the weights (numpy)": (lambda: w.copy(), 7),
    }
    if torch is not None:
        from torch.nn.utils import prune

        tw = torch.from_numpy(w)
        contenders["refprune (torch backend)"] = (lambda: rp.magnitude_mask(tw, amount=0.9), 5)
        last = {}

        def torch_l1():
            m = torch.nn.Module()
            m.weight = torch.nn.Parameter(tw, requires_grad=False)
            prune.l1_unstructured(m, "weight", amount=0.9)
            last["module"] = m

        contenders["torch.nn.utils.prune.l1_unstructured"] = (torch_l1, 3)
    times = race(contenders, rounds=7)
    with reference_only():
        t0 = time.perf_counter()
        ref_mask = rp.magnitude_mask(w, amount=0.9)
        times["refprune (reference path)"] = [time.perf_counter() - t0]
    ours = median(times["refprune (numpy)"])
    result = {
        "name": "magnitude_mask",
        "what": f"{n:,} float32 weights, amount=0.9",
        "rows": rows_of(times),
        "ratios": {"refprune / copy": ratio(ours, median(times["copy of the weights (numpy)"]))},
        "targets": {"refprune / copy": 5.0},
    }
    mask = rp.magnitude_mask(w, amount=0.9)
    notes = [f"refprune's mask equals the reference path's: {bool(np.array_equal(mask, ref_mask))}"]
    if torch is not None:
        result["ratios"]["refprune / torch"] = ratio(ours, median(times["torch.nn.utils.prune.l1_unstructured"]))
        result["targets"]["refprune / torch"] = 0.05
        tmask = last["module"].weight_mask.numpy().astype(bool)
        differ = int(np.count_nonzero(tmask != mask))
        notes.append(
            f"torch's mask differs from refprune's in {differ} of {n:,} entries (they may differ only "
            f"among equal |w| at the threshold, where torch leaves the choice unspecified)"
        )
    result["extra_peak_bytes"] = tracemalloc_peak(lambda: rp.magnitude_mask(w, amount=0.9))
    result["weights_bytes"] = int(w.nbytes)
    notes.append(
        f"refprune's extra peak memory (tracemalloc): {result['extra_peak_bytes'] / w.nbytes:.2f} x the "
        f"weights' bytes (the bool mask itself is 0.25 x)"
    )
    result["notes"] = notes
    return result


def worker_global(spec):
    """In a fresh process: build the weights, reset the peak RSS, run once, report."""
    n, arrays, who = spec["n"], spec["arrays"], spec["who"]
    limit_threads(THREADS)
    rng = np.random.default_rng(0)
    ws = [rng.standard_normal(n, dtype=np.float32) for _ in range(arrays)]
    if who == "torch":
        import torch
        from torch.nn.utils import prune

        def make():
            mods = []
            for w in ws:
                m = torch.nn.Module()
                m.weight = torch.nn.Parameter(torch.from_numpy(w), requires_grad=False)
                mods.append(m)
            return mods

        def run():
            mods = make()
            prune.global_unstructured(
                [(m, "weight") for m in mods], pruning_method=prune.L1Unstructured, amount=0.9
            )
            return mods

        tiny = [torch.nn.Module()]
        tiny[0].weight = torch.nn.Parameter(torch.ones(10), requires_grad=False)
        prune.global_unstructured([(tiny[0], "weight")], pruning_method=prune.L1Unstructured, amount=0.5)
    else:
        import refprune as rp

        def run():
            return rp.global_magnitude_mask(ws, amount=0.9)

        rp.global_magnitude_mask([np.ones(10, np.float32)], amount=0.5)  # load the code paths
    seconds, extra = timed_peak(run)
    result = {"seconds": seconds, "extra_peak_bytes": extra, "weights_bytes": sum(w.nbytes for w in ws)}
    if who == "refprune":
        import refprune as rp

        result["tracemalloc_extra_bytes"] = tracemalloc_peak(lambda: rp.global_magnitude_mask(ws, amount=0.9))
    return result


_GLOBAL_PEER = "torch.nn.utils.prune.global_unstructured"


def _with_memory(rows, memory, weights_bytes):
    """``rows`` with each contender's extra peak memory (bytes, and times the weights' bytes)."""
    for name, m in memory.items():
        rows[name]["extra_peak_bytes"] = m
        rows[name]["extra_peak_x_weights"] = m / weights_bytes
    return rows


def _global_runs(n, arrays):
    """Fresh-process runs (time, extra peak memory): refprune 3, torch 2 (when installed), alternating."""
    who = {"refprune (numpy)": ("refprune", 3)}
    if torch_or_none() is not None:
        who[_GLOBAL_PEER] = ("torch", 2)
    runs = {name: [] for name in who}
    for r in range(3):
        for name, (kind, repeats) in who.items():
            if r < repeats:
                runs[name].append(spawn("global", {"n": n, "arrays": arrays, "who": kind}))
    return runs


def bench_global(args):
    import refprune as rp
    from refprune._dispatch import reference_only

    n, arrays = (1_000_000, 5) if args.quick else (10_000_000, 5)
    runs = _global_runs(n, arrays)
    times = {name: [x["seconds"] for x in rs] for name, rs in runs.items()}
    memory = {name: median([x["extra_peak_bytes"] for x in rs]) for name, rs in runs.items()}
    weights = runs["refprune (numpy)"][0]["weights_bytes"]
    rng = np.random.default_rng(0)
    ws = [rng.standard_normal(n, dtype=np.float32) for _ in range(arrays)]
    with reference_only():
        t0 = time.perf_counter()
        ref = rp.global_magnitude_mask(ws, amount=0.9)
        times["refprune (reference path)"] = [time.perf_counter() - t0]
    same = all(np.array_equal(a, b) for a, b in zip(ref, rp.global_magnitude_mask(ws, amount=0.9)))
    del ref
    warm = race({"refprune (numpy), warm, in this process": (lambda: rp.global_magnitude_mask(ws, amount=0.9), 5)}, rounds=5)
    times.update(warm)
    ours = median(times["refprune (numpy)"])
    rows = _with_memory(rows_of(times), memory, weights)
    tm = median([x["tracemalloc_extra_bytes"] for x in runs["refprune (numpy)"]])
    result = {
        "name": "global_magnitude_mask",
        "what": f"{arrays} x {n:,} float32, amount=0.9",
        "rows": rows,
        "weights_bytes": weights,
        "ratios": {"refprune extra peak memory / weights' bytes": memory["refprune (numpy)"] / weights},
        "targets": {"refprune extra peak memory / weights' bytes": 1.5},
        "notes": [
            "extra peak memory = VmHWM after the call - VmRSS before it, in a fresh process per run "
            "(the masks returned are 0.25 x the weights' bytes and are counted); the time of those rows "
            "is that one cold call (first touch of the output memory included)",
            f"refprune by tracemalloc: {tm / weights:.2f} x the weights' bytes",
            f"refprune's masks equal the reference path's: {same}",
        ],
    }
    if _GLOBAL_PEER in times:
        result["ratios"]["refprune / torch (time)"] = ratio(ours, median(times[_GLOBAL_PEER]))
        result["targets"]["refprune / torch (time)"] = 0.1
        result["ratios"]["torch extra peak memory / weights' bytes"] = memory[_GLOBAL_PEER] / weights
    return result


def _pattern_inputs(n, seed=0):
    """``n`` float32 weights as a (rows, 10000) matrix (rows a multiple of 4)."""
    rng = np.random.default_rng(seed)
    cols = 10_000
    rows = max(4, n // cols // 4 * 4)
    return rng.standard_normal((rows, cols), dtype=np.float32)


def _torch_nm(torch, tw, n, m):
    """The straightforward torch N:M: ``topk`` per group of m along the last axis, then a scatter."""
    s = tw.abs().reshape(-1, m)
    idx = s.topk(n, dim=1).indices
    return torch.zeros(s.shape, dtype=torch.bool).scatter_(1, idx, True).reshape(tw.shape)


def _torch_block(torch, tw, block, amount):
    """The straightforward torch block mask: ``avg_pool2d`` of |w|, ``topk`` of the smallest tiles, ``repeat_interleave``."""
    import torch.nn.functional as F

    bh, bw = block
    tiles = F.avg_pool2d(tw.abs()[None, None], block, ceil_mode=True)[0, 0]
    flat = tiles.reshape(-1)
    k = round(amount * flat.numel())
    keep = torch.ones(flat.shape, dtype=torch.bool)
    keep[flat.topk(k, largest=False).indices] = False
    keep = keep.reshape(tiles.shape).repeat_interleave(bh, 0).repeat_interleave(bw, 1)
    return keep[: tw.shape[0], : tw.shape[1]]


def worker_pattern(spec):
    """In a fresh process: build the weights, reset the peak RSS, run one mask once, report time and extra memory."""
    limit_threads(THREADS)
    w = _pattern_inputs(spec["n"])
    kind, who = spec["kind"], spec["who"]
    if who == "torch":
        import torch

        tw = torch.from_numpy(w)
        run = (lambda: _torch_nm(torch, tw, 2, 4)) if kind == "nm" else (lambda: _torch_block(torch, tw, (4, 4), 0.5))
        _torch_nm(torch, tw[:4, :8].contiguous(), 2, 4) if kind == "nm" else _torch_block(torch, tw[:8, :8].contiguous(), (4, 4), 0.5)
    else:
        import refprune as rp

        run = (lambda: rp.nm_mask(w, n=2, m=4)) if kind == "nm" else (lambda: rp.block_mask(w, block=(4, 4), amount=0.5))
        rp.nm_mask(w[:4, :8], n=2, m=4) if kind == "nm" else rp.block_mask(w[:8, :8], block=(4, 4), amount=0.5)
    seconds, extra = timed_peak(run)
    return {"seconds": seconds, "extra_peak_bytes": extra, "weights_bytes": int(w.nbytes)}


#: Per pattern kind: refprune's call, what is measured, the torch peer's name and its call.
_PATTERNS = {
    "nm": {"title": "nm_mask (2:4)", "what": "2:4 along the last axis", "peer": "torch: topk per group of 4 + scatter"},
    "block": {"title": "block_mask (4x4)", "what": "4x4 tiles (l1), amount=0.5",
              "peer": "torch: avg_pool2d + topk + repeat_interleave"},
}


def _pattern_calls(kind, torch):
    """``(ours(x), peer(tw))`` of ``kind``: refprune's mask and the torch code (None without torch)."""
    import refprune as rp

    if kind == "nm":
        return (lambda x: rp.nm_mask(x, n=2, m=4)), (lambda tw: _torch_nm(torch, tw, 2, 4)) if torch else None
    return (lambda x: rp.block_mask(x, block=(4, 4), amount=0.5)), (
        (lambda tw: _torch_block(torch, tw, (4, 4), 0.5)) if torch else None)


def _bench_pattern(args, kind):
    from refprune._dispatch import reference_only

    n = 5_000_000 if args.quick else 50_000_000
    w = _pattern_inputs(n)
    torch = torch_or_none()
    info = _PATTERNS[kind]
    ours, peer = _pattern_calls(kind, torch)
    contenders = {"refprune (numpy)": (lambda: ours(w), 5)}
    if torch is not None:
        tw = torch.from_numpy(w)
        contenders[info["peer"]] = (lambda: peer(tw), 5)
        contenders["refprune (torch backend)"] = (lambda: ours(tw), 3)
    times = race(contenders, rounds=5)
    mask = ours(w)
    with reference_only():
        t0 = time.perf_counter()
        ref = ours(w)
        times["refprune (reference path)"] = [time.perf_counter() - t0]
    same = bool(np.array_equal(mask, ref))
    del ref
    rows = rows_of(times)
    memory = _pattern_memory(kind, n, info["peer"] if torch is not None else None, rows, w.nbytes)
    result = {
        "name": info["title"], "what": f"{w.size:,} float32 weights {w.shape}, {info['what']}", "rows": rows,
        "weights_bytes": int(w.nbytes),
        "ratios": {"refprune extra peak memory / weights' bytes": memory["refprune (numpy)"] / w.nbytes},
        "targets": {"refprune extra peak memory / weights' bytes": 1.0},
        "notes": [f"refprune's mask equals the reference path's: {same}",
                  "extra peak memory = VmHWM after one call - VmRSS before it, in a fresh process per run (the bool "
                  "mask returned, 0.25 x the weights' bytes, is counted)"],
    }
    if torch is not None:
        _pattern_peer_ratios(result, times, memory, info["peer"], w.nbytes)
        tmask = peer(tw).numpy()
        result["notes"].append(
            f"torch's mask differs from refprune's in {int(np.count_nonzero(tmask != mask))} of {w.size:,} entries "
            "(they may differ only among tied scores, where torch's topk order is unspecified)")
    return result


def _pattern_memory(kind, n, peer_name, rows, weights_bytes):
    """Median extra peak memory of two fresh-process runs each (refprune, and the peer when given), into ``rows``."""
    memory = {}
    for who, name in (("refprune", "refprune (numpy)"), ("torch", peer_name)):
        if name is None:
            continue
        runs = [spawn("pattern", {"n": n, "kind": kind, "who": who}) for _ in range(2)]
        memory[name] = median([r["extra_peak_bytes"] for r in runs])
    _with_memory(rows, memory, weights_bytes)
    return memory


def _pattern_peer_ratios(result, times, memory, peer_name, weights_bytes):
    ours = median(times["refprune (numpy)"])
    result["ratios"]["refprune / torch (time)"] = ratio(ours, median(times[peer_name]))
    result["targets"]["refprune / torch (time)"] = 0.5
    result["ratios"]["refprune torch backend / torch (time)"] = ratio(
        median(times["refprune (torch backend)"]), median(times[peer_name]))
    result["ratios"]["torch extra peak memory / weights' bytes"] = memory[peer_name] / weights_bytes


def bench_nm(args):
    return _bench_pattern(args, "nm")


def bench_block(args):
    return _bench_pattern(args, "block")

