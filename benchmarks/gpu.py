"""GPU benchmarks (issue 15): the L0 step and hard concrete on torch-cuda and CuPy, and masks at 1e8-1e9 weights."""

from __future__ import annotations

import functools
import time

import numpy as np
from common import median, race, ratio, rows_of, torch_or_none
from l0 import l0_setup



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
        self.torch = torch_or_none()
        if self.torch is not None and not self.dry and not self.torch.cuda.is_available():
            self.torch = None
        self.dev = "cpu" if self.dry else "cuda"
        self.notes = [f"{name} skipped: {why}" for name, why in self.reasons.items() if why is not None]
        if self.torch is None:
            self.notes.append("the torch peer skipped: torch " + ("is not installed" if torch_or_none() is None else "sees no GPU"))
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
            setup = g.attempt(f"{key}: building the model", functools.partial(l0_setup, preset, name), out["notes"])
            if setup is not None:
                contenders[key] = (setup[-1], steps)
        if g.torch is not None:
            import torch_l0

            model, b, hx, hy, _ = l0_setup(preset, "numpy")
            net = torch_l0.Net(model, b).to(g.dev)
            tstep = torch_l0.make_step(net)
            tx, ty = g.torch.from_numpy(hx).to(g.dev), g.torch.from_numpy(hy).to(g.dev)
            contenders[f"L0 step {preset}, torch autograd ({g.dev})"] = (lambda s=tstep, x=tx, y=ty: s(x, y), steps)
        out["rows"].update(rows_of(g.race(contenders, rounds=steps, notes=out["notes"], warmup=2)))
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
    out["rows"].update(rows_of(g.race(contenders, rounds=7, notes=out["notes"])))
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
                out["ratios"][key] = ratio(a["median_s"], p["median_s"])
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
        out["rows"].update(rows_of(times))
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
                    out["ratios"][key] = ratio(a["median_s"], p["median_s"])
                    out["targets"][key] = GPU_TARGETS["mask"]
        del contenders, masks_of, weights
        g.free()
    return out

