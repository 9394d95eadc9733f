"""Side-by-side benchmarks: refprune against what users would pick instead.

    python benchmarks/run.py            # full sizes (issue 6), a few minutes on 2 cores
    python benchmarks/run.py --quick    # 10x smaller, under a minute

Writes ``benchmarks/results.json`` and ``benchmarks/results.md`` (or ``--out DIR``).
Every figure is the median of several repeats timed with ``time.perf_counter``;
contenders are run in alternating rounds so that a burst of load on a shared machine
hits both sides. Results are ratios (refprune / peer): absolute times on these
machines are noise. Both sides run on 2 threads (``torch.set_num_threads`` and
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
   on the NumPy backend vs the same model in torch with autograd and Adam.
5. GPU variants (torch-cuda, CuPy) of 1-4 where a GPU is present, else skipped.
6. ``nm_mask`` (2:4) and ``block_mask`` (4x4 tiles, l1, 50%) on 50M float32 weights vs the
   straightforward torch code (``topk`` per group; ``avg_pool2d`` + ``topk`` +
   ``repeat_interleave``): time, and extra peak memory in fresh subprocesses.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
THREADS = 2

import numpy as np  # noqa: E402

# --------------------------------------------------------------------------- timing


def _noop():
    pass


def race(contenders, *, rounds, sync=_noop, warmup=1):
    """Median times of several contenders run in alternating rounds.

    ``contenders``: ``{name: (fn, repeats)}``; a contender runs in the first ``repeats``
    rounds. Each is warmed up ``warmup`` times first. Returns ``{name: [seconds, ...]}``.
    """
    for fn, repeats in contenders.values():
        for _ in range(min(warmup, repeats)):
            fn()
            sync()
    times = {name: [] for name in contenders}
    for r in range(rounds):
        for name, (fn, repeats) in contenders.items():
            if r < repeats:
                t0 = time.perf_counter()
                fn()
                sync()
                times[name].append(time.perf_counter() - t0)
    return times


def median(xs):
    return float(np.median(xs)) if xs else float("nan")


def _limit_threads(n):
    """NumPy's BLAS and torch to ``n`` threads. Returns a note on what was limited."""
    notes = []
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
        notes.append(f"BLAS {n} (threadpoolctl)")
    except ImportError:
        notes.append("BLAS threads not limited (no threadpoolctl)")
    try:
        import torch

        torch.set_num_threads(n)
        notes.append(f"torch {n}")
    except ImportError:
        pass
    return ", ".join(notes)


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def _rows(times, order=None):
    names = order or list(times)
    return {n: {"median_s": median(times[n]), "times_s": [round(t, 6) for t in times[n]]} for n in names if n in times}


def _ratio(a, b):
    return a / b if b and b == b and b > 0 else float("nan")


# --------------------------------------------------------------------------- 1. magnitude_mask


def bench_magnitude(args):
    import refprune as rp
    from refprune._dispatch import reference_only

    n = 2_000_000 if args.quick else 20_000_000
    rng = np.random.default_rng(0)
    w = rng.standard_normal(n, dtype=np.float32)
    torch = _torch()
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
        "rows": _rows(times),
        "ratios": {"refprune / copy": _ratio(ours, median(times["copy of the weights (numpy)"]))},
        "targets": {"refprune / copy": 5.0},
    }
    mask = rp.magnitude_mask(w, amount=0.9)
    notes = [f"refprune's mask equals the reference path's: {bool(np.array_equal(mask, ref_mask))}"]
    if torch is not None:
        result["ratios"]["refprune / torch"] = _ratio(ours, median(times["torch.nn.utils.prune.l1_unstructured"]))
        result["targets"]["refprune / torch"] = 0.05
        tmask = last["module"].weight_mask.numpy().astype(bool)
        differ = int(np.count_nonzero(tmask != mask))
        notes.append(
            f"torch's mask differs from refprune's in {differ} of {n:,} entries (they may differ only "
            f"among equal |w| at the threshold, where torch leaves the choice unspecified)"
        )
    result["extra_peak_bytes"] = _tracemalloc_peak(lambda: rp.magnitude_mask(w, amount=0.9))
    result["weights_bytes"] = int(w.nbytes)
    notes.append(
        f"refprune's extra peak memory (tracemalloc): {result['extra_peak_bytes'] / w.nbytes:.2f} x the "
        f"weights' bytes (the bool mask itself is 0.25 x)"
    )
    result["notes"] = notes
    return result


def _tracemalloc_peak(fn):
    import tracemalloc

    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    out = fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del out
    return int(peak - base)


# --------------------------------------------------------------------------- 2. global (subprocesses)


def _status_kib(key):
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"{key}:\s+(\d+)", text).group(1))


def worker_global(spec):
    """In a fresh process: build the weights, reset the peak RSS, run once, report."""
    n, arrays, who = spec["n"], spec["arrays"], spec["who"]
    _limit_threads(THREADS)
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
    base = _status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    t0 = time.perf_counter()
    out = run()
    seconds = time.perf_counter() - t0
    extra = (_status_kib("VmHWM") - base) * 1024
    result = {"seconds": seconds, "extra_peak_bytes": extra, "weights_bytes": sum(w.nbytes for w in ws)}
    del out
    if who == "refprune":
        import refprune as rp

        result["tracemalloc_extra_bytes"] = _tracemalloc_peak(lambda: rp.global_magnitude_mask(ws, amount=0.9))
    return result


def _spawn(kind, spec):
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, json.dumps(spec)]
    env = dict(os.environ, OMP_NUM_THREADS=str(THREADS))
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        msg = f"worker {kind} {spec} failed:\n{out.stderr[-2000:]}"
        raise RuntimeError(msg)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_global(args):
    import refprune as rp
    from refprune._dispatch import reference_only

    n, arrays = (1_000_000, 5) if args.quick else (10_000_000, 5)
    runs = {"refprune (numpy)": [], "torch.nn.utils.prune.global_unstructured": []}
    who = {"refprune (numpy)": "refprune", "torch.nn.utils.prune.global_unstructured": "torch"}
    if _torch() is None:
        del runs["torch.nn.utils.prune.global_unstructured"]
    repeats = {"refprune (numpy)": 3, "torch.nn.utils.prune.global_unstructured": 2}
    for r in range(max(repeats.values())):
        for name in runs:
            if r < repeats[name]:
                runs[name].append(_spawn("global", {"n": n, "arrays": arrays, "who": who[name]}))
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
    rows = _rows(times)
    for name, m in memory.items():
        rows[name]["extra_peak_bytes"] = m
        rows[name]["extra_peak_x_weights"] = m / weights
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
    peer = "torch.nn.utils.prune.global_unstructured"
    if peer in times:
        result["ratios"]["refprune / torch (time)"] = _ratio(ours, median(times[peer]))
        result["targets"]["refprune / torch (time)"] = 0.1
        result["ratios"]["torch extra peak memory / weights' bytes"] = memory[peer] / weights
    return result


# --------------------------------------------------------------------------- 3. hard concrete


def bench_hard_concrete(args):
    import refprune as rp
    from refprune._dispatch import reference_only

    n = 1_000_000 if args.quick else 10_000_000
    rng = np.random.default_rng(0)
    la = rng.normal(0.0, 2.0, n).astype(np.float32)
    u = rng.uniform(1e-6, 1 - 1e-6, n).astype(np.float32)
    dz = rng.standard_normal(n, dtype=np.float32)
    beta, gamma, zeta = 2.0 / 3.0, -0.1, 1.1

    def ours(la=la, u=u, dz=dz):
        z = rp.hard_concrete_sample(la, u, beta=beta)
        g = rp.hard_concrete_sample_grad(la, u, dz, beta=beta)
        return z, g

    contenders = {"refprune (numpy)": (ours, 7)}
    torch = _torch()
    if torch is not None:
        tla, tu, tdz = (torch.from_numpy(a) for a in (la, u, dz))

        def autograd():
            a = tla.detach().requires_grad_(True)
            s = torch.sigmoid((torch.log(tu) - torch.log1p(-tu) + a) / beta)
            z = torch.clamp(s * (zeta - gamma) + gamma, 0.0, 1.0)
            z.backward(tdz)
            return z.detach(), a.grad

        contenders["torch autograd (CPU)"] = (autograd, 7)
        contenders["refprune (torch backend)"] = (functools.partial(ours, tla, tu, tdz), 3)
    times = race(contenders, rounds=7)
    if torch is not None:  # the same race on one thread: steadier on a shared machine
        _limit_threads(1)
        t1 = race({k: contenders[k] for k in ("refprune (numpy)", "torch autograd (CPU)")}, rounds=5)
        _limit_threads(THREADS)
    with reference_only():
        t0 = time.perf_counter()
        zr, gr = ours()
        times["refprune (reference path)"] = [time.perf_counter() - t0]
    z, g = ours()
    result = {
        "name": "hard_concrete_sample + grad",
        "what": f"{n:,} float32 gates: sample z and d log_alpha",
        "rows": _rows(times),
        "ratios": {},
        "targets": {},
        "notes": [f"refprune equals the reference path bit for bit: {bool(np.array_equal(z, zr) and np.array_equal(g, gr))}"],
    }
    if torch is not None:
        tz, tg = autograd()
        result["ratios"]["refprune / torch"] = _ratio(median(times["refprune (numpy)"]), median(times["torch autograd (CPU)"]))
        result["targets"]["refprune / torch"] = 1.0
        result["ratios"]["refprune / torch, 1 thread each"] = _ratio(
            median(t1["refprune (numpy)"]), median(t1["torch autograd (CPU)"])
        )
        result["targets"]["refprune / torch, 1 thread each"] = 1.0
        result["notes"].append(
            f"1 thread each: refprune {median(t1['refprune (numpy)']) * 1e3:.1f} ms, "
            f"torch {median(t1['torch autograd (CPU)']) * 1e3:.1f} ms"
        )
        result["notes"].append(
            f"max |refprune - torch|: z {float(np.max(np.abs(tz.numpy() - z))):.2e}, "
            f"grad {float(np.max(np.abs(tg.numpy() - g))):.2e}"
        )
    return result


# --------------------------------------------------------------------------- 4. L0 training step


def _l0_setup(preset, backend_name, batch=100):
    from refprune import backends
    from refprune.nn import build_model, optim, train

    b = backends.get(backend_name)
    rng = b.rng(0, stream="reference")
    shape = (784,) if preset.startswith("mlp") else (1, 28, 28)
    model = build_model(preset, input_shape=shape, num_classes=10, backend=b, rng=rng, l0=True)
    host = np.random.default_rng(1)
    hx = host.random((batch, *shape), dtype=np.float32)
    hy = host.integers(0, 10, batch)
    xb, yb = b.asarray(hx), b.asarray(hy)
    opt = functools.partial(optim.adam, lr=1e-3)
    state = {"opt": optim.init_state(model.params(), "adam")}

    def step():
        _, state["opt"] = train.train_step(model, opt, state["opt"], xb, yb, rng=rng, penalty_scale=1.0 / 60000)

    return model, b, hx, hy, step


def bench_l0_step(args, preset, target):
    torch = _torch()
    model, b, hx, hy, ours = _l0_setup(preset, "numpy")
    contenders = {"refprune (numpy)": (ours, 0)}
    if torch is not None:
        import torch_l0

        net = torch_l0.Net(model, b)
        tstep = torch_l0.make_step(net)
        tx, ty = torch.from_numpy(hx), torch.from_numpy(hy)
        contenders["torch autograd (CPU)"] = (lambda: tstep(tx, ty), 0)
        _, _, _, _, ours_torch = _l0_setup(preset, "torch")
        contenders["refprune (torch backend)"] = (ours_torch, 0)
    steps = {"mlp-300-100": 30, "lenet5": 10}[preset] // (2 if args.quick else 1)
    contenders = {k: (fn, steps if k != "refprune (torch backend)" else 3) for k, (fn, _) in contenders.items()}
    times = race(contenders, rounds=steps, warmup=2)
    result = {
        "name": f"L0 training step, {preset}",
        "what": f"batch 100, {'784 features' if preset.startswith('mlp') else '1x28x28'}, Adam, log_alpha clamp, "
        f"{THREADS} threads",
        "rows": _rows(times),
        "ratios": {},
        "targets": {},
        "notes": [],
    }
    if torch is not None:
        result["ratios"]["refprune / torch"] = _ratio(median(times["refprune (numpy)"]), median(times["torch autograd (CPU)"]))
        result["targets"]["refprune / torch"] = target
        # the same race on one thread: steadier on a shared machine
        _limit_threads(1)
        t1 = race(
            {k: v for k, v in contenders.items() if k != "refprune (torch backend)"}, rounds=steps, warmup=2
        )
        _limit_threads(THREADS)
        r1 = _ratio(median(t1["refprune (numpy)"]), median(t1["torch autograd (CPU)"]))
        result["ratios"]["refprune / torch, 1 thread each"] = r1
        result["targets"]["refprune / torch, 1 thread each"] = target
        result["notes"].append(
            f"1 thread each: refprune {median(t1['refprune (numpy)']) * 1e3:.2f} ms, "
            f"torch {median(t1['torch autograd (CPU)']) * 1e3:.2f} ms"
        )
    return result


# --------------------------------------------------------------------------- 5. GPU


def bench_gpu(args):
    """The same comparisons on a GPU: refprune on torch-cuda and CuPy vs torch CUDA autograd.

    ``--gpu-dry-run`` runs this code on the CPU (backend ``torch``, small sizes) so that
    it can be checked on a machine without a GPU; its figures mean nothing.
    """
    from refprune import backends

    dry = getattr(args, "gpu_dry_run", False)
    names = ("torch",) if dry else ("torch-cuda", "cupy")
    have = {name: backends.unavailable_reason(name) for name in names}
    if all(reason is not None for reason in have.values()):
        return {"name": "GPU variants", "skipped": "; ".join(f"{k}: {v}" for k, v in have.items())}
    import refprune as rp

    out = {"name": "GPU variants" + (" (dry run on the CPU)" if dry else ""), "rows": {}, "ratios": {}, "notes": []}
    small = args.quick or dry
    n_mask = 2_000_000 if small else 20_000_000
    n_gate = 1_000_000 if small else 10_000_000
    rng = np.random.default_rng(0)
    w_host = rng.standard_normal(n_mask, dtype=np.float32)
    la_h = rng.normal(0.0, 2.0, n_gate).astype(np.float32)
    u_h = rng.uniform(1e-6, 1 - 1e-6, n_gate).astype(np.float32)
    dz_h = rng.standard_normal(n_gate, dtype=np.float32)
    presets = (("lenet5", 3 if dry else 10), ("mlp-300-100", 3 if dry else 20))
    for name, reason in have.items():
        if reason is not None:
            out["notes"].append(f"{name} skipped: {reason}")
            continue
        b = backends.get(name)
        w = b.asarray(w_host)
        la, u, dz = b.asarray(la_h), b.asarray(u_h), b.asarray(dz_h)
        contenders = {
            f"magnitude_mask, refprune ({name})": (lambda w=w: rp.magnitude_mask(w, amount=0.9), 5),
            f"hard concrete sample+grad, refprune ({name})": (
                lambda la=la, u=u, dz=dz: (rp.hard_concrete_sample(la, u), rp.hard_concrete_sample_grad(la, u, dz)),
                5,
            ),
        }
        times = race(contenders, rounds=5, sync=b.synchronize)
        for preset, steps in presets:
            _, _, _, _, step = _l0_setup(preset, name)
            key = f"L0 step {preset}, refprune ({name})"
            times.update(race({key: (step, steps)}, rounds=steps, sync=b.synchronize, warmup=2))
        out["rows"].update(_rows(times))
    torch = _torch()
    if torch is not None and (dry or torch.cuda.is_available()):
        import torch_l0
        from torch.nn.utils import prune

        dev = "cpu" if dry else "cuda"
        sync = _noop if dry else torch.cuda.synchronize
        tw = torch.from_numpy(w_host).to(dev)

        def l1():
            m = torch.nn.Module()
            m.weight = torch.nn.Parameter(tw, requires_grad=False)
            prune.l1_unstructured(m, "weight", amount=0.9)

        tla, tu, tdz = (torch.from_numpy(a).to(dev) for a in (la_h, u_h, dz_h))

        def autograd():
            a = tla.detach().requires_grad_(True)
            s = torch.sigmoid((torch.log(tu) - torch.log1p(-tu) + a) / (2.0 / 3.0))
            torch.clamp(s * 1.2 - 0.1, 0.0, 1.0).backward(tdz)

        contenders = {
            f"magnitude_mask, torch l1_unstructured ({dev})": (l1, 5),
            f"hard concrete sample+grad, torch autograd ({dev})": (autograd, 5),
        }
        for preset, steps in presets:
            model, b, hx, hy, _ = _l0_setup(preset, "numpy")
            net = torch_l0.Net(model, b).to(dev)
            tstep = torch_l0.make_step(net)
            tx, ty = torch.from_numpy(hx).to(dev), torch.from_numpy(hy).to(dev)
            contenders[f"L0 step {preset}, torch autograd ({dev})"] = (lambda s=tstep, x=tx, y=ty: s(x, y), steps)
        times = race(contenders, rounds=max(s for _, s in presets), sync=sync, warmup=2)
        out["rows"].update(_rows(times))
        ours_name = names[0]
        for label, ours_key, peer_key in (
            ("magnitude_mask", "magnitude_mask, refprune", "magnitude_mask, torch l1_unstructured"),
            ("hard concrete", "hard concrete sample+grad, refprune", "hard concrete sample+grad, torch autograd"),
            ("L0 step lenet5", "L0 step lenet5, refprune", "L0 step lenet5, torch autograd"),
            ("L0 step mlp-300-100", "L0 step mlp-300-100, refprune", "L0 step mlp-300-100, torch autograd"),
        ):
            a, p = out["rows"].get(f"{ours_key} ({ours_name})"), out["rows"].get(f"{peer_key} ({dev})")
            if a and p:
                out["ratios"][f"{label}: refprune {ours_name} / torch {dev}"] = _ratio(a["median_s"], p["median_s"])
    return out


# --------------------------------------------------------------------------- 6. N:M and block masks (issue 12)


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
    _limit_threads(THREADS)
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
    base = _status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    t0 = time.perf_counter()
    out = run()
    seconds = time.perf_counter() - t0
    extra = (_status_kib("VmHWM") - base) * 1024
    del out
    return {"seconds": seconds, "extra_peak_bytes": extra, "weights_bytes": int(w.nbytes)}


def _bench_pattern(args, kind):
    import refprune as rp
    from refprune._dispatch import reference_only

    n = 5_000_000 if args.quick else 50_000_000
    w = _pattern_inputs(n)
    torch = _torch()
    if kind == "nm":
        ours = lambda x: rp.nm_mask(x, n=2, m=4)  # noqa: E731
        what = f"{w.size:,} float32 weights {w.shape}, 2:4 along the last axis"
        peer_name = "torch: topk per group of 4 + scatter"
        peer = (lambda: _torch_nm(torch, tw, 2, 4)) if torch is not None else None
    else:
        ours = lambda x: rp.block_mask(x, block=(4, 4), amount=0.5)  # noqa: E731
        what = f"{w.size:,} float32 weights {w.shape}, 4x4 tiles (l1), amount=0.5"
        peer_name = "torch: avg_pool2d + topk + repeat_interleave"
        peer = (lambda: _torch_block(torch, tw, (4, 4), 0.5)) if torch is not None else None
    contenders = {"refprune (numpy)": (lambda: ours(w), 5)}
    if torch is not None:
        tw = torch.from_numpy(w)
        contenders[peer_name] = (peer, 5)
        contenders["refprune (torch backend)"] = (lambda: ours(tw), 3)
    times = race(contenders, rounds=5)
    mask = ours(w)
    with reference_only():
        t0 = time.perf_counter()
        ref = ours(w)
        times["refprune (reference path)"] = [time.perf_counter() - t0]
    same = bool(np.array_equal(mask, ref))
    del ref
    rows = _rows(times)
    memory = {}
    for who, name in (("refprune", "refprune (numpy)"), ("torch", peer_name)):
        if who == "torch" and torch is None:
            continue
        runs = [_spawn("pattern", {"n": n, "kind": kind, "who": who}) for _ in range(2)]
        memory[name] = median([r["extra_peak_bytes"] for r in runs])
        rows[name]["extra_peak_bytes"] = memory[name]
        rows[name]["extra_peak_x_weights"] = memory[name] / w.nbytes
    result = {
        "name": "nm_mask (2:4)" if kind == "nm" else "block_mask (4x4)",
        "what": what,
        "rows": rows,
        "weights_bytes": int(w.nbytes),
        "ratios": {"refprune extra peak memory / weights' bytes": memory["refprune (numpy)"] / w.nbytes},
        "targets": {"refprune extra peak memory / weights' bytes": 1.0},
        "notes": [
            f"refprune's mask equals the reference path's: {same}",
            "extra peak memory = VmHWM after one call - VmRSS before it, in a fresh process per run (the bool "
            "mask returned, 0.25 x the weights' bytes, is counted)",
        ],
    }
    if torch is not None:
        ratio = _ratio(median(times["refprune (numpy)"]), median(times[peer_name]))
        result["ratios"]["refprune / torch (time)"] = ratio
        result["targets"]["refprune / torch (time)"] = 0.5
        result["ratios"]["refprune torch backend / torch (time)"] = _ratio(
            median(times["refprune (torch backend)"]), median(times[peer_name]))
        result["ratios"]["torch extra peak memory / weights' bytes"] = memory[peer_name] / w.nbytes
        tmask = peer().numpy()
        result["notes"].append(
            f"torch's mask differs from refprune's in {int(np.count_nonzero(tmask != mask))} of {w.size:,} entries "
            "(they may differ only among tied scores, where torch's topk order is unspecified)"
        )
    return result


def bench_nm(args):
    return _bench_pattern(args, "nm")


def bench_block(args):
    return _bench_pattern(args, "block")


# --------------------------------------------------------------------------- report


def machine():
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    torch = _torch()
    if torch is not None:
        info["torch"] = torch.__version__
        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return info


def _fmt_s(s):
    if s != s:
        return "-"
    return f"{s * 1e3:.2f} ms" if s < 1 else f"{s:.2f} s"


def _fmt_ratio(name, value, target):
    if target is None:
        return f"{value:.3g}", "", ""
    met = value <= target
    return f"{value:.3g}", f"<= {target:g}", "met" if met else "**not met**"


def markdown(results):
    m = results["machine"]
    load = m.get("load_average_at_start") or [0.0]
    lines = [
        "# refprune benchmarks",
        "",
        "Produced by `python benchmarks/run.py" + (" --quick" if results["quick"] else "") + "`. Ratios are "
        "refprune's median time (or memory) over the peer's, from alternating runs on the same machine.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['platform']}; Python {m['python']}, "
        f"NumPy {m['numpy']}, torch {m.get('torch', '-')}; GPU: {m.get('gpu') or 'none'}. "
        f"Load average at start {m.get('load_average_at_start')}, at end {results.get('load_average_at_end')}. "
        f"{results['threads']}. Mode: {'quick' if results['quick'] else 'full'}; "
        f"whole run {results['total_seconds']:.0f} s.",
        "",
        *(
            [
                f"**The machine was oversubscribed** (load average {load[0]:.1f} on {m['cores']} cores): "
                "multi-threaded timings then include scheduler stalls of whichever side waits for a "
                "descheduled worker thread; the 1-thread rows are the steadier comparison.",
                "",
            ]
            if load[0] > (m["cores"] or 1)
            else []
        ),
        "## Ratios against the targets of issue 6",
        "",
        "| benchmark | ratio | value | target | |",
        "|---|---|---|---|---|",
    ]
    for b in results["benchmarks"]:
        for key, value in b.get("ratios", {}).items():
            v, t, met = _fmt_ratio(key, value, b.get("targets", {}).get(key))
            lines.append(f"| {b['name']} | {key} | {v} | {t} | {met} |")
    for b in results["benchmarks"]:
        lines += ["", f"## {b['name']}", ""]
        if "skipped" in b:
            lines.append(f"Skipped: {b['skipped']}")
            continue
        if b.get("what"):
            lines += [b["what"], ""]
        has_mem = any("extra_peak_bytes" in r for r in b["rows"].values())
        head = "| contender | median | repeats |" + (" extra peak memory |" if has_mem else "")
        lines += [head, "|---|---|---|" + ("---|" if has_mem else "")]
        for name, r in b["rows"].items():
            row = f"| {name} | {_fmt_s(r['median_s'])} | {len(r['times_s'])} |"
            if has_mem:
                mem = r.get("extra_peak_bytes")
                row += f" {mem / 2**20:.0f} MiB ({r['extra_peak_x_weights']:.2f} x weights) |" if mem is not None else " |"
            lines.append(row)
        for note in b.get("notes", []):
            lines.append(f"\n- {note}")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10x smaller sizes, fewer repeats")
    parser.add_argument("--out", type=Path, default=HERE, help="where results.json and results.md go")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated subset: magnitude, global, hard-concrete, mlp, lenet5, gpu, nm, block",
    )
    parser.add_argument("--gpu-dry-run", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker", nargs=2, metavar=("KIND", "SPEC"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        kind, spec = args.worker
        print(json.dumps({"global": worker_global, "pattern": worker_pattern}[kind](json.loads(spec))))
        return 0
    sys.path.insert(0, str(HERE))
    start = time.perf_counter()
    threads = _limit_threads(THREADS)
    results = {"machine": machine(), "quick": args.quick, "threads": f"threads: {threads}", "benchmarks": []}
    plan = [
        ("magnitude", bench_magnitude),
        ("global", bench_global),
        ("hard-concrete", bench_hard_concrete),
        ("mlp", functools.partial(bench_l0_step, preset="mlp-300-100", target=0.75)),
        ("lenet5", functools.partial(bench_l0_step, preset="lenet5", target=2.0)),
        ("gpu", bench_gpu),
        ("nm", bench_nm),
        ("block", bench_block),
    ]
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    for key, fn in plan:
        if only and key not in only:
            continue
        t0 = time.perf_counter()
        print(f"[{key}] ...", flush=True)
        res = fn(args)
        res["seconds"] = time.perf_counter() - t0
        results["benchmarks"].append(res)
        for k, v in res.get("ratios", {}).items():
            print(f"    {k}: {v:.3g}" + (f" (target <= {res['targets'][k]:g})" if k in res.get("targets", {}) else ""))
        if "skipped" in res:
            print(f"    skipped: {res['skipped']}")
    results["total_seconds"] = time.perf_counter() - start
    results["load_average_at_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "results.md").write_text(markdown(results))
    print(f"wrote {args.out / 'results.json'} and {args.out / 'results.md'} in {results['total_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
