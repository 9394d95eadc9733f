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


def _timed_peak(run):
    """Seconds of one call of ``run`` and the bytes its peak RSS rose by (VmHWM reset to VmRSS first)."""
    base = _status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    t0 = time.perf_counter()
    out = run()
    seconds = time.perf_counter() - t0
    extra = (_status_kib("VmHWM") - base) * 1024
    del out
    return seconds, extra


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
    seconds, extra = _timed_peak(run)
    result = {"seconds": seconds, "extra_peak_bytes": extra, "weights_bytes": sum(w.nbytes for w in ws)}
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
    from refprune._array import trusted
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

    def step():  # as the engine runs it: the argument checks are done once per run (refprune._array.trusted)
        with trusted():
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

#: Weights per array of the GPU mask benchmarks (issue 15: 100M to 1B); the global mask
#: splits the largest size into ``_GPU_GLOBAL_ARRAYS`` arrays.
GPU_MASK_SIZES = {"full": (100_000_000, 1_000_000_000), "quick": (10_000_000, 100_000_000), "dry": (100_000, 1_000_000)}
_GPU_GLOBAL_ARRAYS = 10
#: Timed L0 steps per contender (after 2 warm-up steps) and gates of the hard-concrete race.
_GPU_STEPS = {"full": {"lenet5": 30, "mlp-300-100": 50}, "quick": {"lenet5": 15, "mlp-300-100": 25},
              "dry": {"lenet5": 3, "mlp-300-100": 3}}
_GPU_GATES = {"full": 10_000_000, "quick": 1_000_000, "dry": 100_000}
#: Goals of issue 15 (refprune / torch on the same GPU).
GPU_TARGETS = {"L0 step": 1.5, "mask": 1.0}


class _GpuRun:
    """What a GPU benchmark compares: refprune on ``names`` against torch on ``dev``.

    On a GPU: refprune on ``torch-cuda`` and ``cupy``, torch on ``cuda``. With
    ``--gpu-dry-run``: refprune on ``torch`` and ``numpy`` (standing in for the two GPU
    backends) and torch on the CPU, tiny sizes, so that every line runs on a machine
    without a GPU; its figures mean nothing.
    """

    def __init__(self, args):
        from refprune import backends

        self.dry = bool(getattr(args, "gpu_dry_run", False))
        self.tier = "dry" if self.dry else ("quick" if args.quick else "full")
        self.names = ("torch", "numpy") if self.dry else ("torch-cuda", "cupy")
        self.reasons = {name: backends.unavailable_reason(name) for name in self.names}
        self.backends = {name: backends.get(name) for name, why in self.reasons.items() if why is None}
        self.torch = _torch()
        if self.torch is not None and not self.dry and not self.torch.cuda.is_available():
            self.torch = None
        self.dev = "cpu" if self.dry else "cuda"
        self.notes = [f"{name} skipped: {why}" for name, why in self.reasons.items() if why is not None]
        if self.torch is None:
            self.notes.append("the torch peer skipped: torch " + ("is not installed" if _torch() is None else "sees no GPU"))
        sizes = getattr(args, "gpu_mask_sizes", None)
        self.mask_sizes = tuple(int(float(x)) for x in sizes.split(",")) if sizes else GPU_MASK_SIZES[self.tier]

    def skipped(self, name):
        """A skipped result when there is nothing to run, else None."""
        if self.backends:
            return None
        return {"name": name, "skipped": "; ".join(f"{k}: {v}" for k, v in self.reasons.items())}

    def result(self, name, what):
        title = name + (" (dry run on the CPU: the figures mean nothing)" if self.dry else "")
        return {"name": title, "what": what, "rows": {}, "ratios": {}, "targets": {}, "notes": list(self.notes)}

    def sync(self):
        for b in self.backends.values():
            b.synchronize()
        if self.torch is not None and self.dev == "cuda":
            self.torch.cuda.synchronize()

    def free(self):
        """Hand cached device memory back between sizes (torch's and CuPy's pools)."""
        import gc

        gc.collect()
        if self.torch is not None and self.dev == "cuda":
            self.torch.cuda.empty_cache()
        if "cupy" in self.backends:
            self.backends["cupy"].cupy.get_default_memory_pool().free_all_blocks()

    def attempt(self, what, fn, notes):
        """``fn()``, or None with a note naming ``what`` when it raises (an error is a finding, not a crash)."""
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            notes.append(f"{what} failed: {type(exc).__name__}: {first}")
            self.free()
            return None

    def race(self, contenders, *, rounds, notes, warmup=1):
        """``race`` after ``warmup`` calls each; a contender that raises is dropped with a note."""
        alive = {}
        for name, (fn, repeats) in contenders.items():

            def warm(fn=fn):
                for _ in range(warmup):
                    fn()
                self.sync()
                return True

            if self.attempt(name, warm, notes):
                alive[name] = (fn, repeats)
        return race(alive, rounds=rounds, sync=self.sync, warmup=0)


def bench_gpu_l0(args):
    """One L0 training step (LeNet-5 and mlp-300-100, batch 100) and the hard-concrete
    sample + gradient: refprune on torch-cuda and CuPy vs torch autograd + Adam on CUDA."""
    g = _GpuRun(args)
    skipped = g.skipped("GPU: L0 training step")
    if skipped:
        return skipped
    import refprune as rp

    out = g.result("GPU: L0 training step", "batch 100; mlp-300-100 on 784 features, lenet5 on 1x28x28; Adam, "
                   "log_alpha clamp; hard concrete on float32 gates")
    for preset, steps in _GPU_STEPS[g.tier].items():
        contenders = {}
        for name in g.backends:
            key = f"L0 step {preset}, refprune ({name})"
            setup = g.attempt(f"{key}: building the model", functools.partial(_l0_setup, preset, name), out["notes"])
            if setup is not None:
                contenders[key] = (setup[-1], steps)
        if g.torch is not None:
            import torch_l0

            model, b, hx, hy, _ = _l0_setup(preset, "numpy")
            net = torch_l0.Net(model, b).to(g.dev)
            tstep = torch_l0.make_step(net)
            tx, ty = g.torch.from_numpy(hx).to(g.dev), g.torch.from_numpy(hy).to(g.dev)
            contenders[f"L0 step {preset}, torch autograd ({g.dev})"] = (lambda s=tstep, x=tx, y=ty: s(x, y), steps)
        out["rows"].update(_rows(g.race(contenders, rounds=steps, notes=out["notes"], warmup=2)))
        g.free()
    n = _GPU_GATES[g.tier]
    rng = np.random.default_rng(0)
    la_h = rng.normal(0.0, 2.0, n).astype(np.float32)
    u_h = rng.uniform(1e-6, 1 - 1e-6, n).astype(np.float32)
    dz_h = rng.standard_normal(n, dtype=np.float32)
    contenders = {}
    for name, b in g.backends.items():
        la, u, dz = b.asarray(la_h), b.asarray(u_h), b.asarray(dz_h)
        contenders[f"hard concrete sample+grad {n:,}, refprune ({name})"] = (
            lambda la=la, u=u, dz=dz: (rp.hard_concrete_sample(la, u), rp.hard_concrete_sample_grad(la, u, dz)), 7)
    if g.torch is not None:
        torch = g.torch
        tla, tu, tdz = (torch.from_numpy(a).to(g.dev) for a in (la_h, u_h, dz_h))

        def autograd():
            a = tla.detach().requires_grad_(True)
            s = torch.sigmoid((torch.log(tu) - torch.log1p(-tu) + a) / (2.0 / 3.0))
            torch.clamp(s * 1.2 - 0.1, 0.0, 1.0).backward(tdz)

        contenders[f"hard concrete sample+grad {n:,}, torch autograd ({g.dev})"] = (autograd, 7)
    out["rows"].update(_rows(g.race(contenders, rounds=7, notes=out["notes"])))
    for name in g.backends:
        for label, ours, peer, target in (
            ("L0 step lenet5", "L0 step lenet5", "L0 step lenet5", GPU_TARGETS["L0 step"]),
            ("L0 step mlp-300-100", "L0 step mlp-300-100", "L0 step mlp-300-100", GPU_TARGETS["L0 step"]),
            ("hard concrete", f"hard concrete sample+grad {n:,}", f"hard concrete sample+grad {n:,}", None),
        ):
            a = out["rows"].get(f"{ours}, refprune ({name})")
            p = out["rows"].get(f"{peer}, torch autograd ({g.dev})")
            if a and p:
                key = f"{label}: refprune {name} / torch {g.dev}"
                out["ratios"][key] = _ratio(a["median_s"], p["median_s"])
                if target is not None:
                    out["targets"][key] = target
    return out


def _torch_topk_keep(torch, scores, k):
    """What a torch user writes for "keep all but the k smallest": ``topk`` of the rest."""
    keep = torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)
    keep[torch.topk(scores, scores.numel() - k, sorted=False).indices] = True
    return keep


def _torch_kth_keep(torch, scores, k):
    """The other usual way: the k-th smallest score as a threshold (ties may keep more)."""
    return scores > torch.kthvalue(scores, k).values


def _size(n):
    return f"{n / 1e9:g}B" if n >= 1e9 else f"{n / 1e6:g}M" if n >= 1e6 else f"{n:,}"


def bench_gpu_masks(args):
    """``magnitude_mask`` and ``global_magnitude_mask`` at 100M-1B float32 weights, amount 0.9:
    refprune on torch-cuda and CuPy vs ``torch.topk`` and ``torch.kthvalue`` on CUDA."""
    g = _GpuRun(args)
    skipped = g.skipped("GPU: magnitude and global masks")
    if skipped:
        return skipped
    import refprune as rp

    sizes = g.mask_sizes
    total = max(sizes)
    out = g.result(
        "GPU: magnitude and global masks",
        f"float32 N(0, 1) weights made on the device, amount=0.9; magnitude_mask on one array of "
        f"{', '.join(_size(n) for n in sizes)}; global_magnitude_mask on {_GPU_GLOBAL_ARRAYS} x {_size(total // _GPU_GLOBAL_ARRAYS)}",
    )
    torch = g.torch
    cases = [(f"magnitude_mask {_size(n)}", (n,)) for n in sizes]
    cases.append((f"global_magnitude_mask {_GPU_GLOBAL_ARRAYS} x {_size(total // _GPU_GLOBAL_ARRAYS)}",
                  (total // _GPU_GLOBAL_ARRAYS,) * _GPU_GLOBAL_ARRAYS))
    for label, parts in cases:
        n = sum(parts)
        k = rp.prune_count(0.9, n)
        rounds = 5 if n <= 200_000_000 else 3
        contenders, masks_of = {}, {}
        weights = {}
        for name, b in g.backends.items():
            gen = b.rng(0, stream="native")
            ws = g.attempt(f"{label}, refprune ({name}): making the weights with its native generator",
                           lambda gen=gen: [gen.normal(m, "float32") for m in parts], out["notes"])
            if ws is None:
                continue
            weights[name] = ws
            if len(ws) == 1:
                fn = functools.partial(rp.magnitude_mask, ws[0], amount=0.9)
            else:
                fn = functools.partial(rp.global_magnitude_mask, ws, amount=0.9)
            contenders[f"{label}, refprune ({name})"] = (fn, rounds)
            masks_of[name] = fn
        if torch is not None:
            base = next((nm for nm in weights if nm.startswith("torch")), None)
            if base is not None:  # the same tensors as refprune's torch row
                tws = weights[base]
            else:
                gen = torch.Generator(device=g.dev).manual_seed(0)
                tws = [torch.randn(m, generator=gen, device=g.dev) for m in parts]

            def scores(tws=tws):
                return tws[0].abs() if len(tws) == 1 else torch.cat([w.abs() for w in tws])

            contenders[f"{label}, torch.topk ({g.dev})"] = (lambda k=k: _torch_topk_keep(torch, scores(), k), rounds)
            contenders[f"{label}, torch.kthvalue ({g.dev})"] = (lambda k=k: _torch_kth_keep(torch, scores(), k), rounds)
        times = g.race(contenders, rounds=rounds, notes=out["notes"])
        out["rows"].update(_rows(times))
        for name, fn in masks_of.items():
            try:
                mask = fn()
                b = g.backends[name]
                kept = sum(int(b.to_numpy(b.xp.count_nonzero(m))) for m in (mask if isinstance(mask, list) else [mask]))
                out["notes"].append(f"{label}, refprune ({name}): keeps {kept:,} of {n:,} (exactly n - k = {n - k:,}: {kept == n - k})")
                del mask
            except Exception as exc:  # noqa: BLE001
                out["notes"].append(f"{label}, refprune ({name}) failed: {type(exc).__name__}: {exc}")
        for name in g.backends:
            a = out["rows"].get(f"{label}, refprune ({name})")
            for peer in ("torch.topk", "torch.kthvalue"):
                p = out["rows"].get(f"{label}, {peer} ({g.dev})")
                if a and p:
                    key = f"{label}: refprune {name} / {peer} {g.dev}"
                    out["ratios"][key] = _ratio(a["median_s"], p["median_s"])
                    out["targets"][key] = GPU_TARGETS["mask"]
        del contenders, masks_of, weights
        g.free()
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
    seconds, extra = _timed_peak(run)
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


# --------------------------------------------------------------------------- 7. compaction


def _compact_source(args, method, given):
    """The final network of ``method``'s default run on digits: from ``given`` (a run folder), else a run
    trained here with the method's defaults (kept under runs/benchmarks-compact/ and reused)."""
    from refprune import methods

    if given:
        return given, "loaded"
    settings = ({"epochs": 10, "rounds": 3} if method == "lottery" else {"epochs": 10}) if args.quick else {}
    out = Path("runs") / ("benchmarks-compact-quick" if args.quick else "benchmarks-compact") / method
    how = f"with the defaults but {settings}" if settings else "with the method's defaults"
    if (out / "final.npz").exists():
        return str(out), f"reused, trained earlier {how}"
    methods.run(method, data="digits", quiet=True, threads=1, out=str(out), overwrite=True, **settings)  # as refprune run
    return str(out), f"trained here {how}"


def bench_compact(args):
    """Inference of the compacted network vs the masked dense one (refprune, NumPy) and torch eager.

    The L0 LeNet-5 and the lottery-ticket MLP of the methods' default runs on digits, batch 1 and
    256, float32, one thread each (these networks are small; on a loaded machine more threads only
    add stalls). Contenders: the run's network as it is (masks applied and L0 gates computed at
    every call, as torch.nn.utils.prune's hooks do), the same dense arrays with the zeros baked in
    (what the FLOP count describes), the compacted network, and torch eager on the baked dense
    network. The goal: a speed-up over the baked dense network of at least 70% of the FLOP
    reduction, i.e. FLOP reduction / speed-up <= 1/0.7.
    """
    from refprune import backends, compact, measures
    from refprune._array import trusted
    from refprune.cli.compact import load_run_network, run_test_data
    from refprune.io import torch_module, torch_state_dict
    from refprune.nn import build_like

    torch = _torch()
    out = {"name": "compaction: inference time", "rows": {}, "ratios": {}, "targets": {}, "notes": [],
           "what": "refprune on the NumPy backend (argument checks off, as in training), torch eager under no_grad; "
           "float32, 1 thread each; times per forward pass"}
    target = 1 / 0.7
    numpy_backend = backends.get("numpy")
    _limit_threads(1)
    try:
        for method, given, label in (("l0", args.l0_run, "L0 LeNet-5"), ("lottery", args.lottery_run, "lottery MLP")):
            folder, how = _compact_source(args, method, given)
            model, info = load_run_network(folder, backend=numpy_backend)
            baked = build_like(model.config, backend=numpy_backend, rng=numpy_backend.rng(0), l0=False)
            baked.set_params(model.effective_params())
            small = compact(model)
            ds = run_test_data(info["run"], backend=numpy_backend, dtype=model.dtype)
            flops = measures.flops(model)["total"], measures.flops(small)["total"]
            arch = measures.architecture(model)
            out["notes"].append(f"{label} ({folder}, {how}): architecture {measures._join(arch['before'])} -> "
                                f"{measures._join(arch['after'])}, FLOPs {flops[0]} -> {flops[1]} "
                                f"({flops[0] / flops[1]:.2f}x fewer)")
            net = None
            if torch is not None:
                net = torch_module(model, prune=False).eval()
                net.load_state_dict(torch_state_dict(model, masks="baked"))
            for batch in (1, 256):
                x = ds.x_test[:batch].astype(model.dtype)
                diff = float(np.max(np.abs(model(x) - small(x))))
                inner = max(1, (200 if batch == 1 else 10) // (4 if args.quick else 1))

                def run(m, x=x, inner=inner):
                    with trusted():
                        for _ in range(inner):
                            m(x)

                contenders = {"refprune masked (masks and gates applied per call)": functools.partial(run, model),
                              "refprune dense, zeros baked in": functools.partial(run, baked),
                              "refprune compacted": functools.partial(run, small)}
                if net is not None:
                    def eager(tx=torch.from_numpy(x), inner=inner):
                        with torch.no_grad():
                            for _ in range(inner):
                                net(tx)

                    contenders["torch eager, dense with zeros baked in"] = eager
                rounds = 5 if args.quick else 15
                times = race({k: (fn, rounds) for k, fn in contenders.items()}, rounds=rounds, warmup=1)
                times = {f"{label}, batch {batch}: {k}": [t / inner for t in v] for k, v in times.items()}
                out["rows"].update(_rows(times))
                t = {k.rsplit(": ", 1)[1]: median(v) for k, v in times.items()}
                speedup = _ratio(t["refprune dense, zeros baked in"], t["refprune compacted"])
                key = f"{label}, batch {batch}: FLOP reduction / speed-up"
                out["ratios"][key] = (flops[0] / flops[1]) / speedup
                out["targets"][key] = target
                if "torch eager, dense with zeros baked in" in t:
                    out["ratios"][f"{label}, batch {batch}: refprune compacted / torch eager dense"] = _ratio(
                        t["refprune compacted"], t["torch eager, dense with zeros baked in"])
                out["notes"].append(
                    f"{label}, batch {batch}: speed-up {speedup:.2f}x over the baked dense network "
                    f"({_ratio(t['refprune masked (masks and gates applied per call)'], t['refprune compacted']):.2f}x "
                    f"over the masked one) for {flops[0] / flops[1]:.2f}x fewer FLOPs; the logits differ by at most "
                    f"{diff:.2g} (float32)")
    finally:
        _limit_threads(THREADS)
    return out


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
    try:
        import cupy

        info["cupy"] = cupy.__version__
    except ImportError:
        pass
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
        f"NumPy {m['numpy']}, torch {m.get('torch', '-')}, CuPy {m.get('cupy', '-')}; GPU: {m.get('gpu') or 'none'}. "
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
        "## Ratios against the targets (issue 6; GPU: issue 15)",
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
        if "skipped" in b or "error" in b:
            lines.append(f"Skipped: {b['skipped']}" if "skipped" in b else f"**Failed**: {b['error']}")
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
    parser.add_argument("--out", type=Path, default=None,
                        help="where results.json and results.md go (default: benchmarks/ for a full run of every "
                        "benchmark, the committed table; runs/benchmarks-quick or runs/benchmarks-partial for "
                        "--quick or --only, so that they never replace it)")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated subset: magnitude, global, hard-concrete, mlp, lenet5, gpu (= gpu-l0, gpu-masks), nm, block, compact",
    )
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
    if args.out is None:
        args.out = HERE if not (args.quick or args.only) else Path("runs") / (
            "benchmarks-quick" if args.quick else "benchmarks-partial")
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
        ("lenet5", functools.partial(bench_l0_step, preset="lenet5", target=0.8)),
        ("gpu-l0", bench_gpu_l0),
        ("gpu-masks", bench_gpu_masks),
        ("nm", bench_nm),
        ("block", bench_block),
        ("compact", bench_compact),
    ]
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    failed = 0
    for key, fn in plan:
        if only and not any(key == o or key.startswith(o + "-") for o in only):  # "gpu" selects gpu-*
            continue
        t0 = time.perf_counter()
        print(f"[{key}] ...", flush=True)
        try:
            res = fn(args)
        except Exception as exc:  # noqa: BLE001  (one broken benchmark does not lose the others)
            import traceback

            traceback.print_exc()
            res = {"name": key, "error": f"{type(exc).__name__}: {exc}"}
            failed += 1
        res["seconds"] = time.perf_counter() - t0
        results["benchmarks"].append(res)
        for k, v in res.get("ratios", {}).items():
            print(f"    {k}: {v:.3g}" + (f" (target <= {res['targets'][k]:g})" if k in res.get("targets", {}) else ""))
        for k in ("skipped", "error"):
            if k in res:
                print(f"    {k}: {res[k]}")
        _write(results, args.out, start)  # after each benchmark: a run stopped later keeps these
    path = _write(results, args.out, start)
    print(f"wrote {path} and {path.with_suffix('.md')} in {results['total_seconds']:.0f} s")
    return 1 if failed else 0


def _write(results, out, start):
    results["total_seconds"] = time.perf_counter() - start
    results["load_average_at_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "results.md").write_text(markdown(results))
    return out / "results.json"


if __name__ == "__main__":
    sys.exit(main())
