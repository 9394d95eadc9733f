"""Compaction: inference of the compacted L0 LeNet-5 and lottery MLP against the dense networks, refprune and torch."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from common import THREADS, limit_threads, median, race, ratio, rows_of, torch_or_none


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

    torch = torch_or_none()
    out = {"name": "compaction: inference time", "rows": {}, "ratios": {}, "targets": {}, "notes": [],
           "what": "refprune on the NumPy backend (argument checks off, as in training), torch eager under no_grad; "
           "float32, 1 thread each; times per forward pass"}
    target = 1 / 0.7
    numpy_backend = backends.get("numpy")
    limit_threads(1)
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
            net = net_small = None
            if torch is not None:
                net = torch_module(model, prune=False).eval()
                net.load_state_dict(torch_state_dict(model, masks="baked"))
                net_small = torch_module(small, prune=False).eval()
                net_small.load_state_dict(torch_state_dict(small, masks="baked"))
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
                    def eager(module, tx=torch.from_numpy(x), inner=inner):
                        with torch.no_grad():
                            for _ in range(inner):
                                module(tx)

                    contenders["torch eager, dense with zeros baked in"] = functools.partial(eager, net)
                    contenders["torch eager, compacted"] = functools.partial(eager, net_small)
                rounds = 5 if args.quick else 15
                times = race({k: (fn, rounds) for k, fn in contenders.items()}, rounds=rounds, warmup=1)
                times = {f"{label}, batch {batch}: {k}": [t / inner for t in v] for k, v in times.items()}
                out["rows"].update(rows_of(times))
                t = {k.rsplit(": ", 1)[1]: median(v) for k, v in times.items()}
                speedup = ratio(t["refprune dense, zeros baked in"], t["refprune compacted"])
                key = f"{label}, batch {batch}: FLOP reduction / speed-up"
                out["ratios"][key] = (flops[0] / flops[1]) / speedup
                out["targets"][key] = target
                if "torch eager, dense with zeros baked in" in t:
                    out["ratios"][f"{label}, batch {batch}: refprune compacted / torch eager dense"] = ratio(
                        t["refprune compacted"], t["torch eager, dense with zeros baked in"])
                    out["ratios"][f"{label}, batch {batch}: refprune compacted / torch eager compacted"] = ratio(
                        t["refprune compacted"], t["torch eager, compacted"])
                    torch_speedup = ratio(t["torch eager, dense with zeros baked in"], t["torch eager, compacted"])
                    out["notes"].append(f"{label}, batch {batch}: torch eager's own speed-up from compaction "
                                        f"{torch_speedup:.2f}x")
                out["notes"].append(
                    f"{label}, batch {batch}: speed-up {speedup:.2f}x over the baked dense network "
                    f"({ratio(t['refprune masked (masks and gates applied per call)'], t['refprune compacted']):.2f}x "
                    f"over the masked one) for {flops[0] / flops[1]:.2f}x fewer FLOPs; the logits differ by at most "
                    f"{diff:.2g} (float32)")
    finally:
        limit_threads(THREADS)
    return out

