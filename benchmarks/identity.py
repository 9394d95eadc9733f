"""Bit-identity check of the L0 training steps on NumPy, before and after a change to the kernels.

    python benchmarks/identity.py --save /tmp/l0-steps-before.npz     # on the old code
    python benchmarks/identity.py --compare /tmp/l0-steps-before.npz  # on the new code

Trains L0 mlp-300-100 (784 features) and L0 LeNet-5 (1x28x28) for a few steps, batch 100,
seed 0, Adam, on the NumPy backend, inside ``refprune._array.trusted`` (as the engine runs
its steps) and outside it, and with weight decay 5e-4 inside the L0 penalty (as ``refprune
run l0`` has it), and stores every parameter, gradient and loss; then the logits of a
compacted L0 LeNet-5 on 8x8 inputs (gates closed as in the digits run, 20-50-200-500 -> 16-15-39-111)
at batch 1 and 256, inference as ``benchmarks/compaction.py`` times it. ``--compare``
says which arrays differ (in dtype, shape or any bit: ``-0.0`` is not ``0.0``, NaN payloads count)
and exits 1 if any does. Not a test: the bits
depend on the machine's BLAS, so the file is compared on the machine that wrote it.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import sys

import numpy as np

from refprune import backends
from refprune._array import trusted
from refprune.nn import build_model, optim, train

STEPS = 4


def run(preset, *, checked, weight_decay=0.0):
    b = backends.get("numpy")
    rng = b.rng(0, stream="reference")
    shape = (784,) if preset.startswith("mlp") else (1, 28, 28)
    model = build_model(preset, input_shape=shape, num_classes=10, backend=b, rng=rng, l0=True, weight_decay=weight_decay)
    host = np.random.default_rng(1)
    opt = functools.partial(optim.adam, lr=1e-3)
    state = optim.init_state(model.params(), "adam")
    out = {}
    for i in range(STEPS):
        xb = b.asarray(host.random((100, *shape), dtype=np.float32))
        yb = b.asarray(host.integers(0, 10, 100))
        with contextlib.nullcontext() if checked else trusted():
            step, state = train.train_step(model, opt, state, xb, yb, rng=rng, penalty_scale=1.0 / 60000)
        out[f"loss.{i}"] = np.asarray(step.loss)
        out[f"logits.{i}"] = np.asarray(step.logits)
        out.update({f"grad.{i}.{k}": np.asarray(v) for k, v in step.grads.items()})
    out.update({f"param.{k}": np.asarray(v) for k, v in model.params().items()})
    model_eval = model.forward(b.asarray(host.random((7, *shape), dtype=np.float32)), train=False)
    out["eval_logits"] = np.asarray(model_eval)
    return out


#: Open units of the compacted L0 LeNet-5 (conv1, conv2 channels; fc1, out inputs) of the digits run.
COMPACT_OPEN = (16, 15, 39, 111)


def compacted_logits():
    """Logits of a compacted L0 LeNet-5 (1x8x8 inputs, ``COMPACT_OPEN`` units kept) at batch 1 and 256."""
    from refprune import compact

    b = backends.get("numpy")
    model = build_model("lenet5", input_shape=(1, 8, 8), num_classes=10, backend=b, rng=b.rng(0), l0=True)
    host = np.random.default_rng(2)
    conv1, conv2, fc1, out = COMPACT_OPEN
    c2 = np.sort(host.choice(50, conv2, replace=False))
    features = c2[:, None] * 4 + np.arange(4)  # flatten: 50 channels x 2 x 2
    fc1_open = np.concatenate([features[:, 0], host.choice(features[:, 1:].ravel(), fc1 - conv2, replace=False)])
    opened = {"conv1": host.choice(20, conv1, replace=False), "conv2": c2, "fc1": fc1_open,
              "out": host.choice(500, out, replace=False)}
    params = {}
    for name, index in opened.items():
        la = np.full(model.params()[f"{name}.log_alpha"].shape, -10.0, dtype=np.float32)
        la[index] = host.uniform(1.0, 3.0, len(index))
        params[f"{name}.log_alpha"] = la
    model.set_params({**model.params(), **params})
    small = compact(model)
    x = host.random((256, 1, 8, 8), dtype=np.float32)
    with trusted():
        return {f"compact.batch{n}.logits": np.asarray(small(x[:n])) for n in (1, 256)}


def collect():
    arrays = compacted_logits()
    for preset in ("mlp-300-100", "lenet5"):
        for checked in (False, True):
            tag = f"{preset}.{'checked' if checked else 'trusted'}"
            arrays.update({f"{tag}.{k}": v for k, v in run(preset, checked=checked).items()})
        arrays.update({f"{preset}.wd.{k}": v for k, v in run(preset, checked=False, weight_decay=5e-4).items()})
    return arrays


def same_bits(a, b):
    """Equal dtype, shape and bytes (stricter than ``np.array_equal``: signed zeros and NaN payloads count)."""
    return a.dtype == b.dtype and a.shape == b.shape and np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--save", metavar="FILE")
    g.add_argument("--compare", metavar="FILE")
    args = p.parse_args(argv)
    arrays = collect()
    if args.save:
        np.savez(args.save, **arrays)
        print(f"wrote {len(arrays)} arrays to {args.save}")
        return 0
    with np.load(args.compare, allow_pickle=False) as before:
        missing = sorted(set(before.files) ^ set(arrays))
        differ = [k for k in before.files if k in arrays and not same_bits(before[k], arrays[k])]
    for k in differ:
        print(f"differs: {k}")
    for k in missing:
        print(f"in one file only: {k}")
    print(f"{len(arrays) - len(differ)} of {len(arrays)} arrays equal to the bit")
    return 1 if differ or missing else 0


if __name__ == "__main__":
    sys.exit(main())
