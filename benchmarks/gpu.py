"""GPU benchmarks (issue 15): the L0 step and hard concrete on torch-cuda and CuPy, and masks at 1e8-1e9 weights."""

from __future__ import annotations

import functools
import time

import numpy as np
from common import median, race, ratio, rows_of, torch_or_none
from l0 import _torch_gate_autograd, l0_setup

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


def _tier(dry, quick):
    return "dry" if dry else ("quick" if quick else "full")


def _mask_sizes(option, tier):
    """``--gpu-mask-sizes`` as ints, else the tier's."""
    return tuple(int(float(x)) for x in option.split(",")) if option else GPU_MASK_SIZES[tier]


def _gpu_torch(dry):
    """``(torch, None)``, or ``(None, why)`` when torch is missing or (outside a dry run) sees no GPU."""
    torch = torch_or_none()
    if torch is None:
        return None, "is not installed"
    if not dry and not torch.cuda.is_available():
        return None, "sees no GPU"
    return torch, None


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
        self.tier = _tier(self.dry, args.quick)
        self.names = ("torch", "numpy") if self.dry else ("torch-cuda", "cupy")
        self.reasons = {name: backends.unavailable_reason(name) for name in self.names}
        self.backends = {name: backends.get(name) for name, why in self.reasons.items() if why is None}
        self.torch, why_not = _gpu_torch(self.dry)
        self.dev = "cpu" if self.dry else "cuda"
        self.notes = [f"{name} skipped: {why}" for name, why in self.reasons.items() if why is not None]
        self.notes += [f"the torch peer skipped: torch {why_not}"] if why_not else []
        self.mask_sizes = _mask_sizes(getattr(args, "gpu_mask_sizes", None), self.tier)

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
    out = g.result("GPU: L0 training step", "batch 100; mlp-300-100 on 784 features, lenet5 on 1x28x28; Adam, "
                   "log_alpha clamp; hard concrete on float32 gates")
    for preset, steps in _GPU_STEPS[g.tier].items():
        contenders = _gpu_step_contenders(g, preset, steps, out["notes"])
        out["rows"].update(rows_of(g.race(contenders, rounds=steps, notes=out["notes"], warmup=2)))
        g.free()
    n = _GPU_GATES[g.tier]
    out["rows"].update(rows_of(g.race(_gpu_gate_contenders(g, n), rounds=7, notes=out["notes"])))
    for name in g.backends:
        for label, row, target in (("L0 step lenet5", "L0 step lenet5", GPU_TARGETS["L0 step"]),
                                   ("L0 step mlp-300-100", "L0 step mlp-300-100", GPU_TARGETS["L0 step"]),
                                   ("hard concrete", f"hard concrete sample+grad {n:,}", None)):
            _gpu_ratio(out, f"{label}: refprune {name} / torch {g.dev}", f"{row}, refprune ({name})",
                       f"{row}, torch autograd ({g.dev})", target)
    return out


def _gpu_ratio(out, key, ours, peer, target):
    """``out["ratios"][key]`` = the rows' median times ``ours / peer`` when both ran."""
    a, p = out["rows"].get(ours), out["rows"].get(peer)
    if a and p:
        out["ratios"][key] = ratio(a["median_s"], p["median_s"])
        if target is not None:
            out["targets"][key] = target


def _gpu_step_contenders(g, preset, steps, notes):
    contenders = {}
    for name in g.backends:
        key = f"L0 step {preset}, refprune ({name})"
        setup = g.attempt(f"{key}: building the model", functools.partial(l0_setup, preset, name), notes)
        if setup is not None:
            contenders[key] = (setup[-1], steps)
    if g.torch is not None:
        import torch_l0

        model, b, hx, hy, _ = l0_setup(preset, "numpy")
        tstep = torch_l0.make_step(torch_l0.Net(model, b).to(g.dev))
        tx, ty = g.torch.from_numpy(hx).to(g.dev), g.torch.from_numpy(hy).to(g.dev)
        contenders[f"L0 step {preset}, torch autograd ({g.dev})"] = (lambda s=tstep, x=tx, y=ty: s(x, y), steps)
    return contenders


def _gpu_gate_contenders(g, n):
    import refprune as rp

    rng = np.random.default_rng(0)
    hosts = (rng.normal(0.0, 2.0, n).astype(np.float32), rng.uniform(1e-6, 1 - 1e-6, n).astype(np.float32),
             rng.standard_normal(n, dtype=np.float32))
    contenders = {}
    for name, b in g.backends.items():
        arrays = [b.asarray(a) for a in hosts]
        contenders[f"hard concrete sample+grad {n:,}, refprune ({name})"] = (
            functools.partial(rp.hard_concrete_sample_and_grad, *arrays), 7)
    if g.torch is not None:
        tla, tu, tdz = (g.torch.from_numpy(a).to(g.dev) for a in hosts)
        contenders[f"hard concrete sample+grad {n:,}, torch autograd ({g.dev})"] = (
            functools.partial(_torch_gate_autograd, g.torch, tla, tu, tdz, 2.0 / 3.0), 7)
    return contenders


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
    sizes, total = g.mask_sizes, max(g.mask_sizes)
    parts_global = (total // _GPU_GLOBAL_ARRAYS,) * _GPU_GLOBAL_ARRAYS
    out = g.result(
        "GPU: magnitude and global masks",
        f"float32 N(0, 1) weights made on the device, amount=0.9; magnitude_mask on one array of "
        f"{', '.join(_size(n) for n in sizes)}; global_magnitude_mask on {_GPU_GLOBAL_ARRAYS} x {_size(parts_global[0])}",
    )
    cases = [(f"magnitude_mask {_size(n)}", (n,)) for n in sizes]
    cases.append((f"global_magnitude_mask {_GPU_GLOBAL_ARRAYS} x {_size(parts_global[0])}", parts_global))
    for label, parts in cases:
        _bench_gpu_mask_case(g, out, label, parts)
        g.free()
    return out


def _bench_gpu_mask_case(g, out, label, parts):
    import refprune as rp

    n = sum(parts)
    k = rp.prune_count(0.9, n)
    rounds = 5 if n <= 200_000_000 else 3
    contenders, weights = _refprune_mask_contenders(g, label, parts, rounds, out["notes"])
    if g.torch is not None:
        contenders.update(_torch_mask_contenders(g, label, parts, k, rounds, weights))
    out["rows"].update(rows_of(g.race(contenders, rounds=rounds, notes=out["notes"])))
    for name in weights:
        out["notes"].append(_kept_note(g, label, name, contenders[f"{label}, refprune ({name})"][0], n, k))
        for peer in ("torch.topk", "torch.kthvalue"):
            _gpu_ratio(out, f"{label}: refprune {name} / {peer} {g.dev}", f"{label}, refprune ({name})",
                       f"{label}, {peer} ({g.dev})", GPU_TARGETS["mask"])


def _refprune_mask_contenders(g, label, parts, rounds, notes):
    """``({row: (fn, rounds)}, {backend: weights})``: refprune's mask on weights drawn by each backend's generator."""
    import refprune as rp

    contenders, weights = {}, {}
    for name, b in g.backends.items():
        gen = b.rng(0, stream="native")
        ws = g.attempt(f"{label}, refprune ({name}): making the weights with its native generator",
                       lambda gen=gen: [gen.normal(m, "float32") for m in parts], notes)
        if ws is None:
            continue
        weights[name] = ws
        fn = functools.partial(rp.magnitude_mask, ws[0], amount=0.9) if len(ws) == 1 else functools.partial(
            rp.global_magnitude_mask, ws, amount=0.9)
        contenders[f"{label}, refprune ({name})"] = (fn, rounds)
    return contenders, weights


def _torch_mask_contenders(g, label, parts, k, rounds, weights):
    torch = g.torch
    base = next((nm for nm in weights if nm.startswith("torch")), None)
    if base is not None:  # the same tensors as refprune's torch row
        tws = weights[base]
    else:
        gen = torch.Generator(device=g.dev).manual_seed(0)
        tws = [torch.randn(m, generator=gen, device=g.dev) for m in parts]

    def scores():
        return tws[0].abs() if len(tws) == 1 else torch.cat([w.abs() for w in tws])

    return {f"{label}, torch.topk ({g.dev})": (lambda: _torch_topk_keep(torch, scores(), k), rounds),
            f"{label}, torch.kthvalue ({g.dev})": (lambda: _torch_kth_keep(torch, scores(), k), rounds)}


def _kept_note(g, label, name, fn, n, k):
    """Whether refprune's mask keeps exactly ``n - k`` entries (or how it failed)."""
    try:
        mask = fn()
        b = g.backends[name]
        kept = sum(int(b.to_numpy(b.xp.count_nonzero(m))) for m in (mask if isinstance(mask, list) else [mask]))
        return f"{label}, refprune ({name}): keeps {kept:,} of {n:,} (exactly n - k = {n - k:,}: {kept == n - k})"
    except Exception as exc:  # noqa: BLE001
        return f"{label}, refprune ({name}) failed: {type(exc).__name__}: {exc}"
