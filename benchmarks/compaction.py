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
    (what the FLOP count describes), the compacted network, its matrix products alone (the
    operands its forward multiplies: what bounds its speed-up once nothing else costs), and
    torch eager on the baked dense network. The goal: a speed-up over the baked dense network of
    at least 70% of the FLOP reduction, i.e. FLOP reduction / speed-up <= 1/0.7.
    """
    from refprune import backends

    out = {"name": "compaction: inference time", "rows": {}, "ratios": {}, "targets": {}, "notes": [],
           "what": "refprune on the NumPy backend (argument checks off, as in training), torch eager under no_grad; "
           "float32, 1 thread each; times per forward pass"}
    numpy_backend = backends.get("numpy")
    limit_threads(1)
    try:
        for method, given, label in (("l0", args.l0_run, "L0 LeNet-5"), ("lottery", args.lottery_run, "lottery MLP")):
            nets = _networks(args, method, given, label, numpy_backend, out["notes"])
            for batch in (1, 256):
                _bench_batch(args, out, nets, label, batch)
    finally:
        limit_threads(THREADS)
    return out


def _networks(args, method, given, label, backend, notes):
    """The run's network (masked), its dense copy with zeros baked in, the compacted one, their torch twins, data."""
    from refprune import compact, measures
    from refprune.cli.compact import load_run_network, run_test_data
    from refprune.nn import build_like

    folder, how = _compact_source(args, method, given)
    model, info = load_run_network(folder, backend=backend)
    baked = build_like(model.config, backend=backend, rng=backend.rng(0), l0=False)
    baked.set_params(model.effective_params())
    small = compact(model)
    flops = measures.flops(model)["total"], measures.flops(small)["total"]
    arch = measures.architecture(model)
    notes.append(f"{label} ({folder}, {how}): architecture {measures.architecture_string(arch)}, "
                 f"FLOPs {flops[0]} -> {flops[1]} ({flops[0] / flops[1]:.2f}x fewer)")
    return {"model": model, "baked": baked, "small": small, "flops": flops, "torch": _torch_twins(model, small),
            "x": run_test_data(info["run"], backend=backend, dtype=model.dtype).x_test}


def _torch_twins(model, small):
    """torch eager modules of the baked dense and the compacted network (None without torch)."""
    if torch_or_none() is None:
        return None
    from refprune.io import torch_module, torch_state_dict

    twins = {}
    for name, m in (("dense", model), ("compacted", small)):
        twins[name] = torch_module(m, prune=False).eval()
        twins[name].load_state_dict(torch_state_dict(m, masks="baked"))
    return twins


MASKED, BAKED, SMALL = ("refprune masked (masks and gates applied per call)", "refprune dense, zeros baked in",
                        "refprune compacted")
SMALL_PRODUCTS = "refprune compacted, its matrix products alone (same shapes and layouts)"
TORCH_DENSE, TORCH_SMALL = "torch eager, dense with zeros baked in", "torch eager, compacted"


def _products(net, x):
    """The matrix products of ``net``'s forward on ``x``, as ``(a, b)`` pairs with the operands it multiplies:
    a convolution's filters ``(O, C*kh*kw)`` times its im2col matrix, a dense layer's input times ``w``."""
    from refprune._array import trusted
    from refprune.nn import functional as F

    pairs = []
    with trusted():
        for layer in net.layers.values():
            w = layer.params.get("w")
            if layer.kind == "conv":
                patches = F.conv_patches(x, kernel=tuple(w.shape[2:]), stride=layer.stride, padding=layer.padding)
                pairs.append((w.reshape(w.shape[0], -1), patches))
            elif layer.kind == "dense":
                pairs.append((x, w))
            x = layer.forward(x)
    return pairs


def _contenders(nets, x, inner):
    from refprune._array import trusted

    def run(m):
        with trusted():
            for _ in range(inner):
                m(x)

    def multiply(pairs):
        for _ in range(inner):
            for a, b in pairs:
                np.matmul(a, b)

    contenders = {MASKED: functools.partial(run, nets["model"]), BAKED: functools.partial(run, nets["baked"]),
                  SMALL: functools.partial(run, nets["small"]),
                  SMALL_PRODUCTS: functools.partial(multiply, _products(nets["small"], x))}
    if nets["torch"] is not None:
        torch = torch_or_none()
        tx = torch.from_numpy(x)

        def eager(module):
            with torch.no_grad():
                for _ in range(inner):
                    module(tx)

        contenders[TORCH_DENSE] = functools.partial(eager, nets["torch"]["dense"])
        contenders[TORCH_SMALL] = functools.partial(eager, nets["torch"]["compacted"])
    return contenders


def _bench_batch(args, out, nets, label, batch):
    x = nets["x"][:batch].astype(nets["model"].dtype)
    diff = float(np.max(np.abs(nets["model"](x) - nets["small"](x))))
    inner = max(1, (200 if batch == 1 else 10) // (4 if args.quick else 1))
    rounds = 5 if args.quick else 15
    times = race({k: (fn, rounds) for k, fn in _contenders(nets, x, inner).items()}, rounds=rounds, warmup=1)
    times = {f"{label}, batch {batch}: {k}": [t / inner for t in v] for k, v in times.items()}
    out["rows"].update(rows_of(times))
    t = {k.rsplit(": ", 1)[1]: median(v) for k, v in times.items()}
    cut = nets["flops"][0] / nets["flops"][1]
    speedup = ratio(t[BAKED], t[SMALL])
    key = f"{label}, batch {batch}: FLOP reduction / speed-up"
    out["ratios"][key], out["targets"][key] = cut / speedup, 1 / 0.7
    if TORCH_DENSE in t:
        out["ratios"][f"{label}, batch {batch}: refprune compacted / torch eager dense"] = ratio(t[SMALL], t[TORCH_DENSE])
        out["ratios"][f"{label}, batch {batch}: refprune compacted / torch eager compacted"] = ratio(t[SMALL], t[TORCH_SMALL])
        out["notes"].append(f"{label}, batch {batch}: torch eager's own speed-up from compaction "
                            f"{ratio(t[TORCH_DENSE], t[TORCH_SMALL]):.2f}x")
    out["notes"].append(f"{label}, batch {batch}: speed-up {speedup:.2f}x over the baked dense network "
                        f"({ratio(t[MASKED], t[SMALL]):.2f}x over the masked one) for {cut:.2f}x fewer FLOPs; the "
                        f"logits differ by at most {diff:.2g} (float32)")
    out["notes"].append(f"{label}, batch {batch}: the compacted network's matrix products alone take "
                        f"{t[SMALL_PRODUCTS] / t[SMALL]:.0%} of its forward; with nothing else, the speed-up "
                        f"would be {ratio(t[BAKED], t[SMALL_PRODUCTS]):.2f}x (the most these products allow)")
