"""What every benchmark shares: alternating timed races, thread limits, the peers' imports, subprocess workers.

Every figure is the median of several repeats timed with ``time.perf_counter``; contenders run
in alternating rounds so that a burst of load on a shared machine hits both sides.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
#: Threads of both sides in the multi-threaded rows (torch.set_num_threads and threadpoolctl for NumPy's BLAS).
THREADS = 2

# --------------------------------------------------------------------------- timing


def noop():
    pass


def race(contenders, *, rounds, sync=noop, warmup=1, block=1):
    """Median times of several contenders run in alternating rounds.

    ``contenders``: ``{name: (fn, repeats)}``; a contender runs in the first ``repeats``
    rounds. Each is warmed up ``warmup`` times first. In a round a contender runs ``block``
    times back to back and its time is the mean of those calls: training steps come one
    after the other in a real run, so a step is not timed just after the other contender
    evicted its arrays from the cache. Returns ``{name: [seconds, ...]}``.
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
                for _ in range(block):
                    fn()
                sync()
                times[name].append((time.perf_counter() - t0) / block)
    return times


def median(xs):
    return float(np.median(xs)) if xs else float("nan")


def limit_threads(n, *, torch=True):
    """NumPy's BLAS and torch to ``n`` threads. Returns a note on what was limited.

    ``torch=False`` leaves torch alone (not even imported: a process timing NumPy only).
    """
    notes = []
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
        notes.append(f"BLAS {n} (threadpoolctl)")
    except ImportError:
        notes.append("BLAS threads not limited (no threadpoolctl)")
    if not torch:
        return ", ".join(notes)
    try:
        import torch

        torch.set_num_threads(n)
        notes.append(f"torch {n}")
    except ImportError:
        pass
    return ", ".join(notes)


def torch_or_none():
    try:
        import torch
    except ImportError:
        return None
    return torch


def rows_of(times, order=None):
    names = order or list(times)
    return {n: {"median_s": median(times[n]), "times_s": [round(t, 6) for t in times[n]]} for n in names if n in times}


def ratio(a, b):
    return a / b if b and b == b and b > 0 else float("nan")


def tracemalloc_peak(fn):
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


def timed_peak(run):
    """Seconds of one call of ``run`` and the bytes its peak RSS rose by (VmHWM reset to VmRSS first)."""
    base = _status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    t0 = time.perf_counter()
    out = run()
    seconds = time.perf_counter() - t0
    extra = (_status_kib("VmHWM") - base) * 1024
    del out
    return seconds, extra


def spawn(kind, spec):
    """Run ``run.py --worker kind spec`` in a fresh process; its JSON result."""
    return run_worker([HERE / "run.py", "--worker", kind, json.dumps(spec)])


def run_worker(argv):
    """``python *argv`` in a fresh process with ``THREADS`` OpenMP threads; the JSON of its last line of output."""
    cmd = [sys.executable, *(str(a) for a in argv)]
    env = dict(os.environ, OMP_NUM_THREADS=str(THREADS))
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        msg = f"worker {argv[1:]} failed:\n{out.stderr[-2000:]}"
        raise RuntimeError(msg)
    return json.loads(out.stdout.strip().splitlines()[-1])


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
    from refprune.backends import _numba_kernels

    kernels = _numba_kernels.kernels()
    info["numba"] = None if kernels is None else kernels.version  # None: NumPy's chains (not installed, or switched off)
    torch = torch_or_none()
    if torch is not None:
        info["torch"] = torch.__version__
        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    try:
        import cupy

        info["cupy"] = cupy.__version__
    except ImportError:
        pass
    return info
