"""L0 benchmarks: the hard-concrete kernels (3), one training step (4), and a user's run per step (8).

Each compares refprune on NumPy with torch on the CPU at the same thread count: ``THREADS``
threads first, then one thread each (the CLI's default).
"""

from __future__ import annotations

import functools
import tempfile
import time

import numpy as np
from common import THREADS, limit_threads, median, race, ratio, rows_of, torch_or_none

OURS = "refprune (numpy)"
#: The torch peers of the L0 step: gates on the weights as the paper's code (the peer of the goals: what a
#: user writing the paper's model in torch gets), and gates on the layer inputs (for comparison).
PEERS = {"weights": "torch autograd, gates on the weights (the L0 paper's code)",
         "inputs": "torch autograd, gates on the inputs (torch_l0.py's other form)"}
PEER = PEERS["weights"]


def _one_thread_race(contenders, **kw):
    """``race`` with both sides on one thread, then back to ``THREADS``."""
    limit_threads(1)
    try:
        return race(contenders, **kw)
    finally:
        limit_threads(THREADS)


# --------------------------------------------------------------------------- 3. hard concrete


def _gate_arrays(n):
    rng = np.random.default_rng(0)
    la = rng.normal(0.0, 2.0, n).astype(np.float32)
    u = rng.uniform(1e-6, 1 - 1e-6, n).astype(np.float32)
    return la, u, rng.standard_normal(n, dtype=np.float32)


def _torch_gate_autograd(torch, la, u, dz, beta, gamma=-0.1, zeta=1.1):
    a = la.detach().requires_grad_(True)
    s = torch.sigmoid((torch.log(u) - torch.log1p(-u) + a) / beta)
    z = torch.clamp(s * (zeta - gamma) + gamma, 0.0, 1.0)
    z.backward(dz)
    return z.detach(), a.grad


def bench_hard_concrete(args):
    """``hard_concrete_sample_and_grad`` (the sample and its gradient from one stretched sigmoid) vs torch autograd."""
    import refprune as rp
    from refprune._dispatch import reference_only

    n = 1_000_000 if args.quick else 10_000_000
    la, u, dz = _gate_arrays(n)
    beta = 2.0 / 3.0

    def fused(la=la, u=u, dz=dz):
        return rp.hard_concrete_sample_and_grad(la, u, dz, beta=beta)

    def two_calls(la=la, u=u, dz=dz):
        return rp.hard_concrete_sample(la, u, beta=beta), rp.hard_concrete_sample_grad(la, u, dz, beta=beta)

    contenders = {OURS: (fused, 7), "refprune (numpy), sample and grad as two calls": (two_calls, 5)}
    torch = torch_or_none()
    if torch is not None:
        tla, tu, tdz = (torch.from_numpy(a) for a in (la, u, dz))
        autograd = functools.partial(_torch_gate_autograd, torch, tla, tu, tdz, beta)
        contenders["torch autograd (CPU)"] = (autograd, 7)
        contenders["refprune (torch backend)"] = (functools.partial(fused, tla, tu, tdz), 3)
    times = race(contenders, rounds=7)
    with reference_only():
        t0 = time.perf_counter()
        zr, gr = two_calls()
        times["refprune (reference path), two calls"] = [time.perf_counter() - t0]
    z, g = fused()
    z2, g2 = two_calls()
    result = {"name": "hard_concrete_sample + grad", "what": f"{n:,} float32 gates: sample z and d log_alpha",
              "rows": rows_of(times), "ratios": {}, "targets": {},
              "notes": [f"refprune's fused call equals its two calls and the reference path bit for bit: "
                        f"{all(np.array_equal(a, b) for a, b in ((z, z2), (g, g2), (z, zr), (g, gr)))}"]}
    if torch is not None:
        t1 = _one_thread_race({k: contenders[k] for k in (OURS, "torch autograd (CPU)")}, rounds=5)
        _add_ratios(result, times, t1, "torch autograd (CPU)", target=0.5)
        tz, tg = autograd()
        result["notes"].append(f"max |refprune - torch|: z {float(np.max(np.abs(tz.numpy() - z))):.2e}, "
                               f"grad {float(np.max(np.abs(tg.numpy() - g))):.2e}")
    return result


def _add_ratios(result, times, t1, peer, *, target):
    """``refprune / peer`` at ``THREADS`` threads (``times``) and at one thread (``t1``), with the times of the latter."""
    key = f"refprune / {peer}"
    result["ratios"][key] = ratio(median(times[OURS]), median(times[peer]))
    result["ratios"][key + ", 1 thread each"] = ratio(median(t1[OURS]), median(t1[peer]))
    result["targets"][key] = result["targets"][key + ", 1 thread each"] = target
    result["notes"].append(f"1 thread each: refprune {median(t1[OURS]) * 1e3:.2f} ms, {peer} {median(t1[peer]) * 1e3:.2f} ms")


# --------------------------------------------------------------------------- 4. L0 training step


def l0_setup(preset, backend_name, batch=100):
    """A step of ``train.train_step`` on an L0 ``preset`` (Adam 1e-3, penalty / 60000), inside ``trusted()`` as the engine runs it."""
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

    def step():
        with trusted():
            _, state["opt"] = train.train_step(model, opt, state["opt"], xb, yb, rng=rng, penalty_scale=1.0 / 60000)

    return model, b, hx, hy, step


def _torch_peers(torch, model, backend, hx, hy):
    """Both torch formulations of ``model``'s step (``PEERS``): ``{name: step function}``."""
    import torch_l0

    tx, ty = torch.from_numpy(hx), torch.from_numpy(hy)
    steps = {gate: torch_l0.make_step(torch_l0.Net(model, backend, gate=gate)) for gate in PEERS}
    return {PEERS[gate]: (lambda s=s: s(tx, ty)) for gate, s in steps.items()}


def bench_l0_step(args, preset, target):
    """``train.train_step`` alone (the kernels' work) vs the torch step in each formulation (``PEERS``).

    Each peer races refprune on its own (two contenders alternating: a third between them would
    evict the other's arrays from the cache and change the ratio), at ``THREADS`` threads and at one.
    """
    torch = torch_or_none()
    model, b, hx, hy, ours = l0_setup(preset, "numpy")
    steps = {"mlp-300-100": 30, "lenet5": 10}[preset] // (2 if args.quick else 1)
    what = "784 features" if preset.startswith("mlp") else "1x28x28"
    result = {"name": f"L0 training step, {preset}", "rows": {}, "ratios": {}, "targets": {}, "notes": [],
              "what": f"train_step alone: batch 100, {what}, Adam, log_alpha clamp; each torch form races refprune on "
              f"its own, at {THREADS} threads and at 1 thread each"}
    if torch is None:
        result["rows"] = rows_of(race({OURS: (ours, steps)}, rounds=steps, warmup=2))
        return result
    peers = _torch_peers(torch, model, b, hx, hy)
    peers[TORCH_BACKEND] = l0_setup(preset, "torch")[-1]
    for threads in (THREADS, 1):
        for name, peer in peers.items():
            if threads == THREADS or name != TORCH_BACKEND:
                _race_pair(result, ours, name, peer, steps=steps, threads=threads, target=target)
    return result


TORCH_BACKEND = "refprune (torch backend)"
_SHORT = {PEER: "the paper's form", PEERS["inputs"]: "the inputs form", TORCH_BACKEND: "the torch backend"}


def _race_pair(result, ours, name, peer, *, steps, threads, target):
    """Race refprune against one peer at ``threads``; its rows, and its ratio for a torch form."""
    contenders = {OURS: (ours, steps), name: (peer, 3 if name == TORCH_BACKEND else steps)}
    times = race(contenders, rounds=steps, warmup=2) if threads == THREADS else _one_thread_race(
        contenders, rounds=steps, warmup=2)
    tag = f"{threads} thread{'s' if threads > 1 else ''}"
    rows = rows_of(times)
    result["rows"][f"{OURS}, {tag}, racing {_SHORT[name]}"] = rows[OURS]
    result["rows"][f"{name}, {tag}"] = rows[name]
    label = "" if threads == THREADS else ", 1 thread each"
    key = {PEER: f"refprune / torch{label}", PEERS["inputs"]: f"refprune / torch gating the inputs{label}"}.get(name)
    if key is not None:
        result["ratios"][key] = ratio(median(times[OURS]), median(times[name]))
        if name == PEER:
            result["targets"][key] = target


# --------------------------------------------------------------------------- 8. a user's run, per step

#: Synthetic examples per run (the first N of each split) and epochs; the first epoch is the warm-up, not timed.
RUN_SIZES = {"mlp-300-100": (4000, 3), "lenet5": (1000, 3)}


def _run_data(preset, quick):
    from refprune import data

    subset, _ = RUN_SIZES[preset]
    return data.subset(data.load("synthetic"), subset // (4 if quick else 1))


def _refprune_run(preset, ds, *, threads):
    """Seconds per step of ``refprune run l0`` after its first epoch, by the engine's own training clock."""
    import csv

    from refprune.methods._registry import execute, make_spec

    with tempfile.TemporaryDirectory() as out:
        spec = make_spec("l0", data="synthetic", model=preset, epochs=RUN_SIZES[preset][1], batch_size=100, lr=1e-3,
                         quiet=True, out=f"{out}/run", threads=threads)
        execute(spec, dataset=ds)
        with open(f"{out}/run/metrics.csv", newline="") as f:
            rows = [r for r in csv.DictReader(f) if r["phase"] == "train" and int(r["epoch"]) >= 1]
    first, last = rows[0], rows[-1]
    return (float(last["train_seconds"]) - float(first["train_seconds"])) / (int(last["step"]) - int(first["step"]))


def _torch_run(preset, ds, *, threads):
    """Seconds per step of the same run as a torch loop (the paper's form): shuffled minibatches, step, loss and
    accuracy sums per epoch, its clock around the step and the sums."""
    import torch
    import torch_l0

    from refprune import backends
    from refprune.methods.l0 import default_lam
    from refprune.nn import build_model

    b = backends.get("numpy")
    model = build_model(preset, input_shape=ds.input_shape, num_classes=ds.num_classes, backend=b, rng=b.rng(0),
                        l0=True, lam=default_lam(preset, "synthetic"), weight_decay=5e-4, droprate_init=0.2)
    step = torch_l0.make_step(torch_l0.Net(model, b), lr=1e-3, gate_lr=0.05, n_train=len(ds.y_train))
    x, y = torch.from_numpy(ds.x_train.astype(np.float32)), torch.from_numpy(ds.y_train.astype(np.int64))
    limit_threads(threads)
    try:
        return _torch_epochs(torch, step, x, y, RUN_SIZES[preset][1])
    finally:
        limit_threads(THREADS)


def _torch_epochs(torch, step, x, y, epochs):
    clock = steps = 0
    for epoch in range(epochs):
        loss_sum, correct = 0.0, 0
        for idx in torch.randperm(len(y)).split(100):
            xb, yb = x[idx], y[idx]
            t0 = time.perf_counter()
            loss, logits = step(xb, yb)
            loss_sum = loss_sum + loss.detach() * len(yb)
            correct = correct + (logits.argmax(1) == yb).sum()
            if epoch:
                clock += time.perf_counter() - t0
                steps += 1
        if not bool(torch.isfinite(loss_sum)):
            raise FloatingPointError("the torch run diverged")
    return clock / steps


def bench_l0_run(args, preset, target):
    """Per step of a user's ``refprune run l0`` (engine included) vs the same run written as a torch loop."""
    if torch_or_none() is None:
        return {"name": f"L0 run per step, {preset}", "skipped": "torch is not installed"}
    rounds, ds = 2, _run_data(preset, args.quick)
    result = {"name": f"L0 run per step, {preset}", "rows": {}, "ratios": {}, "targets": {}, "notes": [],
              "what": f"refprune run l0 --data synthetic --model {preset} --batch-size 100 --lr 1e-3 (the method's "
              "defaults: weight decay 5e-4 in the penalty, gate lr 0.05; the first "
              f"{len(ds.y_train)} examples, {RUN_SIZES[preset][1]} epochs): the engine's training clock per step after "
              "the first epoch (step, metrics sums, the NaN guard's record) vs a torch loop (the L0 paper's form) doing "
              f"the same per step, its clock around the step and the sums; median of {rounds} runs each, alternating"}
    for threads in (THREADS, 1):
        times = {OURS: [], PEER: []}
        for _ in range(rounds):
            times[OURS].append(_refprune_run(preset, ds, threads=threads))
            times[PEER].append(_torch_run(preset, ds, threads=threads))
        limit_threads(THREADS)
        label = "" if threads == THREADS else ", 1 thread each"
        result["ratios"][f"refprune / torch{label}"] = ratio(median(times[OURS]), median(times[PEER]))
        result["targets"][f"refprune / torch{label}"] = target
        result["rows"].update({f"{k}, {threads} thread{'s' if threads > 1 else ''}": v
                               for k, v in rows_of(times).items()})
    return result
