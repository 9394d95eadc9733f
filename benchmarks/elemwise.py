"""Does a second thread pay for the NumPy elementwise chains, and from what size on?

    python benchmarks/elemwise.py [--threads 2] [--rounds 15]          # each op, by size (5 s)
    python benchmarks/elemwise.py --step [--threads 2] [--rounds 15]   # the L0 step of mlp-300-100 (40 s)

The NumPy fast paths of Adam (``adam_update``), the hard-concrete gates
(``hard_concrete_forward``) and the weight-decay terms of the L0 penalty (``l0_decay_terms``)
split their chunks over the threads NumPy's BLAS may use (``_numpy_fast._np_in_parallel``) when
the array has at least ``PARALLEL_MIN`` elements. This script times each op serially
and split, interleaved, at a range of sizes (float32), each call right after a matrix
product as in a training step (OpenBLAS's own threads are then awake), and prints the
median times, their ratio, and the smallest size from which the split is faster at every
larger size: the value for ``PARALLEL_MIN``. ``--step`` races the L0 training step of
mlp-300-100 (``l0.l0_setup``, weight decay 0 and 5e-4) with the split off and on from
``--min`` elements, alternating blocks of steps in one process. Results are the same either
way (tests).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from common import median, race

from refprune._array import trusted
from refprune.backends import _numpy_fast as nf

SIZES = (65536, 131072, 235200, 1 << 20, 1 << 22)  # 235200: the 784x300 weight of mlp-300-100; below 2 chunks no split


def ops(n, rng):
    """``op -> call`` of the public function behind each op, for one float32 size ``n`` (rows of 300 or 256)."""
    from refprune import hard_concrete_sample
    from refprune.nn import optim
    from refprune.regularizers import l0_penalty_and_grad

    cols = 300 if n % 300 == 0 else 256
    w = rng.standard_normal((n // cols, cols), dtype=np.float32) * 0.05
    log_alpha = rng.standard_normal(n // cols, dtype=np.float32)
    g = rng.standard_normal(w.shape, dtype=np.float32) * 1e-3
    state = optim.init_state({"w": w}, "adam")
    u = rng.random(w.shape, dtype=np.float32)
    return {
        "adam_update": lambda: optim.adam({"w": w}, {"w": g}, state, lr=1e-3),
        "l0_decay_terms": lambda: l0_penalty_and_grad(log_alpha, w, lam=1.0, weight_decay=5e-4),
        "hard_concrete_forward": lambda: hard_concrete_sample(g, u),
    }


def timed(call, warm, reps):
    total = 0.0
    for _ in range(reps):
        warm()
        t = time.perf_counter()
        call()
        total += time.perf_counter() - t
    return total / reps


def bench_step(args):
    """The L0 step of mlp-300-100 with the split off and on, alternating blocks of 10 steps."""
    import functools

    from refprune import backends
    from refprune.nn import build_model, optim, train

    b = backends.get("numpy")
    host = np.random.default_rng(1)
    xb, yb = b.asarray(host.random((100, 784), dtype=np.float32)), b.asarray(host.integers(0, 10, 100))
    for wd in (0.0, 5e-4):
        rng = b.rng(0, stream="reference")
        model = build_model("mlp-300-100", input_shape=(784,), num_classes=10, backend=b, rng=rng, l0=True,
                            weight_decay=wd)
        opt = functools.partial(optim.adam, lr=1e-3)
        state = {"opt": optim.init_state(model.params(), "adam")}

        def step(limit, model=model, rng=rng, opt=opt, state=state):
            nf.PARALLEL_MIN = limit
            with trusted():
                _, state["opt"] = train.train_step(model, opt, state["opt"], xb, yb, rng=rng,
                                                   penalty_scale=1.0 / 60000)

        contenders = {"off": (functools.partial(step, None), args.rounds),
                      "on": (functools.partial(step, args.min), args.rounds)}
        times = race(contenders, rounds=args.rounds, warmup=20, block=10)
        off, on = median(times["off"]) * 1e3, median(times["on"]) * 1e3
        print(f"L0 step mlp-300-100, weight decay {wd}: split off {off:.3f} ms, on from {args.min} {on:.3f} ms, "
              f"ratio {on / off:.3f}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--step", action="store_true", help="time the L0 step instead of each op")
    ap.add_argument("--min", type=int, default=65536, help="with --step: split from this many elements")
    ap.add_argument("--sizes", type=int, nargs="+", default=SIZES, help="array sizes to time (elements)")
    args = ap.parse_args(argv)
    from threadpoolctl import threadpool_limits

    threadpool_limits(args.threads)
    if args.step:
        bench_step(args)
        return
    rng = np.random.default_rng(0)
    a, b = rng.random((100, 784), dtype=np.float32), rng.random((784, 300), dtype=np.float32)
    warm = lambda: a @ b  # noqa: E731 - a step's matrix product before the elementwise work
    print(f"threads {nf.np_threads()} (BLAS limit); median us per call, serial vs split; ratio split/serial")
    found = {}
    for name in ("adam_update", "l0_decay_terms", "hard_concrete_forward"):
        wins = []
        for n in args.sizes:
            call = ops(n, rng)[name]
            times = {"serial": [], "split": []}
            for _ in range(args.rounds):
                for mode, limit in (("serial", None), ("split", 0)):
                    nf.PARALLEL_MIN = limit
                    with trusted():
                        times[mode].append(timed(call, warm, 5) * 1e6)
            s, p = statistics.median(times["serial"]), statistics.median(times["split"])
            wins.append(p < s)
            print(f"{name:15s} n={n:7d}  serial {s:8.1f}  split {p:8.1f}  ratio {p / s:.2f}")
        first = next((args.sizes[i] for i in range(len(args.sizes)) if all(wins[i:])), None)
        found[name] = first
    print("smallest size from which the split wins at every larger size:", found)


if __name__ == "__main__":
    main()
