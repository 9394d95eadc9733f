"""L0 benchmarks: the hard-concrete kernels (3), one training step (4), and a user's run per step (8).

Each compares refprune on NumPy with torch on the CPU at the same thread count: ``THREADS``
threads first, then one thread each (the CLI's default).
"""

from __future__ import annotations

import functools
import os
import tempfile
import time

import numpy as np
from common import THREADS, limit_threads, median, race, ratio, rows_of, spawn, torch_or_none

OURS = "refprune (numpy)"
#: refprune with numba's kernels switched off (``REFPRUNE_NUMBA=0``): what an install without ``refprune[fast]`` runs.
NO_NUMBA = "refprune (numpy), without numba"
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

    Each contender runs alone in a fresh process (:func:`worker_step`), the processes alternating,
    ``PROCESS_ROUNDS`` of each, at ``THREADS`` threads and at one: in one process, NumPy's and torch's
    thread pools and caches interfere (a torch step after refprune's took up to 90 ms longer at
    2 threads, and each side's step time moved by 10-25% with the order of the calls).
    """
    steps = {"mlp-300-100": 30, "lenet5": 10}[preset] // (2 if args.quick else 1)
    block = STEP_BLOCK[preset]
    what = "784 features" if preset.startswith("mlp") else "1x28x28"
    result = {"name": f"L0 training step, {preset}", "rows": {}, "ratios": {}, "targets": {}, "notes": [],
              "what": f"train_step alone: batch 100, {what}, Adam, log_alpha clamp; each contender alone in its own "
              f"process ({PROCESS_ROUNDS} alternating processes each, {steps} timings of {block} steps back to back "
              f"in each), at {THREADS} threads and at 1 thread each"}
    contenders = ["ours"] + (["no-numba"] if _numba_on() else [])
    contenders += [] if torch_or_none() is None else ["weights", "inputs", "torch-backend"]
    for threads in (THREADS, 1):
        who = [c for c in contenders if threads == THREADS or c != "torch-backend"]
        times = {c: [] for c in who}
        for _ in range(PROCESS_ROUNDS):
            for c in who:
                spec = {"preset": preset, "who": c, "threads": threads, "rounds": steps, "block": block}
                times[c] += spawn("step", spec)["seconds"]
        _add_step_rows(result, times, threads=threads, target=target)
    return result


def _add_step_rows(result, times, *, threads, target):
    tag = f"{threads} thread{'s' if threads > 1 else ''}"
    label = "" if threads == THREADS else ", 1 thread each"
    keys = {"weights": f"refprune / torch{label}", "inputs": f"refprune / torch gating the inputs{label}"}
    for who, seconds in times.items():
        result["rows"][f"{_NAMES[who]}, {tag}"] = rows_of({_NAMES[who]: seconds})[_NAMES[who]]
        if who in keys:
            result["ratios"][keys[who]] = ratio(median(times["ours"]), median(seconds))
            if who == "weights":
                result["targets"][keys[who]] = target
    if "no-numba" in times and "weights" in times:
        result["ratios"][f"refprune without numba / torch{label}"] = ratio(median(times["no-numba"]),
                                                                           median(times["weights"]))


def worker_step(spec):
    """One contender of the L0 step timed alone in this process: ``{"seconds": [...]}``.

    ``spec``: preset, who (``ours``, ``no-numba``, ``weights``, ``inputs`` or ``torch-backend``), threads, rounds and
    block (steps back to back per timing). The ``ours`` process never imports torch.
    """
    limit_threads(spec["threads"], torch=spec["who"] not in ("ours", "no-numba"))
    _switch_numba(spec["who"])
    model, b, hx, hy, step = l0_setup(spec["preset"], "numpy")
    if spec["who"] == "torch-backend":
        step = l0_setup(spec["preset"], "torch")[-1]
    elif spec["who"] not in ("ours", "no-numba"):
        step = _torch_peers(torch_or_none(), model, b, hx, hy)[PEERS[spec["who"]]]
    times = race({"step": (step, spec["rounds"])}, rounds=spec["rounds"], warmup=2, block=spec["block"])
    return {"seconds": times["step"]}


def _numba_on():
    from refprune.backends import _numba_kernels

    return _numba_kernels.kernels() is not None


def _switch_numba(who):
    """Switch numba's kernels off in this worker's process for the ``no-numba`` contender (before their first use)."""
    if who == "no-numba":
        from refprune.backends import _numba_kernels

        os.environ[_numba_kernels.ENV_VAR] = "0"


TORCH_BACKEND = "refprune (torch backend)"
_NAMES = {"ours": OURS, "no-numba": NO_NUMBA, "weights": PEERS["weights"], "inputs": PEERS["inputs"],
          "torch-backend": TORCH_BACKEND}
#: Processes of each contender per thread count, alternating.
PROCESS_ROUNDS = 2
#: Steps timed back to back, as in a run (a run's steps come one after the other).
STEP_BLOCK = {"mlp-300-100": 10, "lenet5": 3}


# --------------------------------------------------------------------------- 8. a user's run, per step

#: Synthetic examples per run (the first N of each split) and epochs; the first epoch is the warm-up, not timed.
RUN_SIZES = {"mlp-300-100": (4000, 3), "lenet5": (1000, 3)}


def _run_size(preset, quick):
    return RUN_SIZES[preset][0] // (4 if quick else 1)


def _run_data(preset, quick):
    from refprune import data

    return data.subset(data.load("synthetic"), _run_size(preset, quick))


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
    limit_threads(threads)  # the worker's process: nothing runs after it
    return _torch_epochs(torch, step, x, y, RUN_SIZES[preset][1])


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


def worker_run(spec):
    """Seconds per step of one run (``who``: ``ours`` or ``torch``) in this process, alone: ``{"seconds": s}``."""
    _switch_numba(spec["who"])
    ds = _run_data(spec["preset"], spec["quick"])
    run = _torch_run if spec["who"] == "torch" else _refprune_run
    return {"seconds": run(spec["preset"], ds, threads=spec["threads"])}


def bench_l0_run(args, preset, target):
    """Per step of a user's ``refprune run l0`` (engine included) vs the same run written as a torch loop."""
    if torch_or_none() is None:
        return {"name": f"L0 run per step, {preset}", "skipped": "torch is not installed"}
    rounds = 2
    result = {"name": f"L0 run per step, {preset}", "rows": {}, "ratios": {}, "targets": {}, "notes": [],
              "what": f"refprune run l0 --data synthetic --model {preset} --batch-size 100 --lr 1e-3 (the method's "
              "defaults: weight decay 5e-4 in the penalty, gate lr 0.05; the first "
              f"{_run_size(preset, args.quick)} examples, {RUN_SIZES[preset][1]} epochs): the engine's training clock per step after "
              "the first epoch (step, metrics sums, the NaN guard's record) vs a torch loop (the L0 paper's form) doing "
              f"the same per step, its clock around the step and the sums; median of {rounds} runs each, each in its own "
              "process, alternating"}
    who = {OURS: "ours", **({NO_NUMBA: "no-numba"} if _numba_on() else {}), PEER: "torch"}
    for threads in (THREADS, 1):
        times = {name: [] for name in who}
        for _ in range(rounds):
            for name, w in who.items():
                spec = {"preset": preset, "who": w, "threads": threads, "quick": args.quick}
                times[name].append(spawn("run", spec)["seconds"])
        label = "" if threads == THREADS else ", 1 thread each"
        result["ratios"][f"refprune / torch{label}"] = ratio(median(times[OURS]), median(times[PEER]))
        result["targets"][f"refprune / torch{label}"] = target
        if NO_NUMBA in times:
            result["ratios"][f"refprune without numba / torch{label}"] = ratio(median(times[NO_NUMBA]),
                                                                               median(times[PEER]))
        result["rows"].update({f"{k}, {threads} thread{'s' if threads > 1 else ''}": v
                               for k, v in rows_of(times).items()})
    return result
