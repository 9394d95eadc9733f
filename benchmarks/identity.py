"""Bit-identity check of the L0 training steps on NumPy, before and after a change to the kernels.

    python benchmarks/identity.py --save /tmp/l0-steps-before.npz     # on the old code
    python benchmarks/identity.py --compare /tmp/l0-steps-before.npz  # on the new code

Trains L0 mlp-300-100 (784 features) and L0 LeNet-5 (1x28x28) for a few steps, batch 100,
seed 0, Adam, on the NumPy backend, inside ``refprune._array.trusted`` (as the engine runs
its steps) and outside it, and with weight decay 5e-4 inside the L0 penalty (as ``refprune
run l0`` has it), and stores every parameter, gradient and loss. ``--compare``
says which arrays differ (``np.array_equal``) and exits 1 if any does. Not a test: the bits
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


def collect():
    arrays = {}
    for preset in ("mlp-300-100", "lenet5"):
        for checked in (False, True):
            tag = f"{preset}.{'checked' if checked else 'trusted'}"
            arrays.update({f"{tag}.{k}": v for k, v in run(preset, checked=checked).items()})
        arrays.update({f"{preset}.wd.{k}": v for k, v in run(preset, checked=False, weight_decay=5e-4).items()})
    return arrays


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
        differ = [k for k in before.files if k in arrays and not np.array_equal(before[k], arrays[k])]
    for k in differ:
        print(f"differs: {k}")
    for k in missing:
        print(f"in one file only: {k}")
    print(f"{len(arrays) - len(differ)} of {len(arrays)} arrays equal to the bit")
    return 1 if differ or missing else 0


if __name__ == "__main__":
    sys.exit(main())
