"""The GPU check of issue 15: one command, one summary file.

    bash scripts/gpu_check.sh                 # on a GPU machine: about 5 minutes on one H200, at most 8
    bash scripts/gpu_check.sh --out "$OUT"    # the summary (and a tarball of the logs) into $OUT
    bash scripts/gpu_check.sh --dry-run       # every stage on the CPU: torch and numpy, tiny sizes

Stages, each with its own time limit; a failing or stopped stage does not stop the others:

=============  =====================================================================
``install``    refprune from this checkout and the wheels in ``.whl/``, no network
               (``pip install --no-index --no-deps``; see ``gpu_check.sh``)
``versions``   nvidia-smi, Python, NumPy, torch, CuPy, JAX, refprune, the backends
``tests``      ``pytest tests -k "torch-cuda or cupy"``: the unit tests' GPU parametrizations
``conformance`` ``REFPRUNE_TARGET_BACKEND=cupy,torch-cuda REFPRUNE_PROFILE=ci pytest
               conformance`` (meta-tests excluded)
``methods``    every method of ``refprune.methods.names()`` on ``cupy`` and ``torch-cuda``,
               on ``synthetic`` and ``digits``: one epoch, small options (``--subset``,
               ``--rounds 1``, ... where the method has them)
``bench``      ``python benchmarks/run.py --only gpu`` (L0 steps and masks vs torch CUDA)
=============  =====================================================================

``tests``, ``conformance`` and ``methods`` run side by side (``--serial``: one after the
other); ``bench`` runs alone after them, so that its timings see an idle GPU. The summary
(Markdown) holds each stage's counts, every failure's last line, each method x backend x
data result, and the benchmark ratios. Exit status 0 when every stage passed, else 1.

``--dry-run`` replaces ``cupy`` / ``torch-cuda`` by ``numpy`` / ``torch`` and shrinks every
size, so that the whole script can be checked on a machine without a GPU.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
STAGES = ("install", "versions", "tests", "conformance", "methods", "bench")
RESULT_MARK = "GPU_CHECK_RESULT "
#: The pure-Python dependencies the GPU image lacks, carried as wheels in ``.whl/``:
#: (distribution, import name, version used when this environment has none).
WHEELS = (("array-api-compat", "array_api_compat", "1.16.0"), ("array-api-strict", "array_api_strict", "2.6.1"))


class Mode:
    """What a run checks: the GPU backends, or their CPU stand-ins for ``--dry-run``."""

    def __init__(self, dry):
        self.dry = dry
        self.backends = ("torch", "numpy") if dry else ("cupy", "torch-cuda")
        self.datasets = ("synthetic", "digits")
        self.test_paths = ["tests/test_backends.py", "tests/test_masks.py"] if dry else ["tests"]
        self.test_k = "(torch or numpy) and not torch-cuda and not cupy" if dry else "torch-cuda or cupy"
        self.subset = 200 if dry else 2000
        self.jobs = 2 if dry else 4
        #: seconds per stage; tests, conformance and methods overlap, so the total on a GPU
        #: is at most install + versions + max(tests, conformance, methods) + bench = 455 s.
        self.timeouts = {"install": 90, "versions": 45, "tests": 200, "conformance": 150, "methods": 200,
                         "bench": 120}
        self.method_timeout = 120
        if dry:
            self.timeouts.update(tests=300, conformance=300, methods=400, bench=300)
            self.method_timeout = 200


# ----------------------------------------------------------------------------- processes


def run_logged(cmd, *, log, timeout, env, cwd=REPO):
    """Run ``cmd`` with stdout and stderr into ``log``; stop its process group at ``timeout``.

    Returns ``(returncode or None when stopped, seconds)``.
    """
    t0 = time.monotonic()
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w", encoding="utf-8") as f:
        f.write("$ " + shlex.join(str(c) for c in cmd) + "\n")
        f.flush()
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=cwd, env=env, start_new_session=True)
        try:
            rc = proc.wait(timeout=max(1.0, timeout))
        except subprocess.TimeoutExpired:
            _stop(proc)
            rc = None
            f.write(f"\n[gpu_check] stopped after {timeout:.0f} s (the stage's time limit)\n")
    return rc, time.monotonic() - t0


def _stop(proc):
    """SIGTERM then SIGKILL to the process group that ``run_logged`` started for ``proc``."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def tail(path, n=1):
    """The last ``n`` non-empty lines of a text file ('' when missing)."""
    try:
        lines = [ln for ln in Path(path).read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return "\n".join(lines[-n:])


def stage_result(name, status, seconds, **extra):
    return {"name": name, "status": status, "seconds": round(seconds, 1), **extra}


# ----------------------------------------------------------------------------- install


def child_env(site, *, threads=None):
    """The environment of every child: the checkout, ``site`` and ``scripts/`` first on the path."""
    env = dict(os.environ)
    paths = [str(REPO)] + ([str(site)] if site else [])
    paths.append(str(SCRIPTS))
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    env["MPLBACKEND"] = "Agg"
    env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"  # JAX in `versions` must not take the GPU's memory
    if threads:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(threads)
    return env


_PROBE = """
import json, sys
out = {}
for name in ("refprune", "refprune.backends", "refprune.conformance", "array_api_compat", "array_api_strict"):
    try:
        module = __import__(name, fromlist=["_"])
        out[name] = getattr(module, "__file__", None) or "?"
    except Exception as exc:
        out[name] = None
        out[name + ":error"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(out))
"""


def probe(py, env, timeout=60):
    """Where refprune, its mapped packages and the array-api packages import from (None: not importable)."""
    try:
        out = subprocess.run([py, "-c", _PROBE], capture_output=True, text=True, env=env, cwd=REPO,
                             timeout=max(5.0, timeout), check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"importing refprune took over {timeout:.0f} s"}
    try:
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"error": (out.stderr or out.stdout)[-2000:]}


def _under(path, root):
    try:
        Path(path).resolve().relative_to(root.resolve())
        return True
    except (TypeError, ValueError, OSError):
        return False


def stage_install(args, work):
    """Make the wheels of ``.whl/`` importable without a network; refprune imports from the checkout.

    The checkout's folders are the import packages (``refprune/backends``,
    ``refprune/conformance``), so the checkout itself goes first on every child's
    ``PYTHONPATH``; the pure-Python dependencies the GPU image lacks are installed from
    ``.whl/`` into a fresh folder beside it (``pip install --no-index --no-deps --target``).
    Returns ``(stage result, site folder or None)``.
    """
    t0 = time.monotonic()
    deadline = t0 + args.timeouts["install"]  # the stage's limit, shared by its steps

    def left():
        return deadline - time.monotonic()

    py = sys.executable
    notes = []
    site = None
    before = probe(py, child_env(None), timeout=left())
    wheels = sorted((REPO / ".whl").glob("*.whl"))
    missing = [imp for _, imp, _ in WHEELS if not before.get(imp)]
    if wheels and (missing or args.reinstall):
        site = Path(tempfile.mkdtemp(prefix="refprune-gpu-check-site-"))
        cmd = [py, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile", "--no-cache-dir",
               "--upgrade", "--target", str(site), *map(str, wheels)]
        rc, _ = run_logged(cmd, log=work / "logs" / "install-wheels.log", timeout=left(), env=child_env(None))
        notes.append(f"wheels {', '.join(w.name for w in wheels)}: " + ("installed" if rc == 0 else
                     f"pip failed (rc {rc}): {tail(work / 'logs' / 'install-wheels.log')}"))
    elif missing:
        notes.append(f"not importable and no wheel in .whl/: {', '.join(missing)} (see the header of "
                     f"scripts/gpu_check.sh to prepare them)")
    after = probe(py, child_env(site), timeout=max(left(), 20))
    problems = [n for n in ("refprune", "refprune.backends", "refprune.conformance", "array_api_compat")
                if not after.get(n)]
    for n in problems:
        notes.append(f"{n} does not import: {after.get(n + ':error', after.get('error', '?'))}")
    if not after.get("array_api_strict"):
        notes.append("array_api_strict does not import: its tests skip (carry its wheel in .whl/)")
    notes.append("imports: " + ", ".join(f"{k} from {v}" for k, v in after.items() if ":" not in k and v))
    return stage_result("install", "FAILED" if problems else "ok", time.monotonic() - t0, notes=notes), site


# ----------------------------------------------------------------------------- versions


def stage_versions(args, work, env):
    t0 = time.monotonic()
    limit = args.timeouts["versions"]
    log = work / "logs" / "versions.log"
    parts = []
    if shutil.which("nvidia-smi"):
        run_logged(["nvidia-smi"], log=work / "logs" / "nvidia-smi.log", timeout=min(20, limit / 3), env=env)
        parts.append((work / "logs" / "nvidia-smi.log").read_text(errors="replace"))
    else:
        parts.append("nvidia-smi: not found\n")
    rc, _ = run_logged([sys.executable, str(Path(__file__).resolve()), "--worker", "versions"], log=log,
                       timeout=limit - (time.monotonic() - t0), env=env)
    text = log.read_text(errors="replace")
    parts.append(text)
    status = "ok" if rc == 0 else ("TIMEOUT" if rc is None else "FAILED")
    return stage_result("versions", status, time.monotonic() - t0, text="".join(parts))


def worker_versions():
    import importlib
    import platform

    print(f"python {platform.python_version()} ({sys.executable}), {platform.platform()}, {os.cpu_count()} CPUs")
    names = ("numpy", "scipy", "sklearn", "torch", "cupy", "jax", "array_api_compat", "array_api_strict",
             "hypothesis", "pytest", "tqdm", "threadpoolctl", "matplotlib", "setuptools", "dask", "refprune")
    for name in names:
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001
            print(f"{name}: not importable ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})")
            continue
        print(f"{name} {getattr(module, '__version__', '?')} ({getattr(module, '__file__', '?')})")
    _try("torch CUDA", _torch_cuda)
    _try("cupy CUDA", _cupy_cuda)
    _try("jax devices", lambda: str(importlib.import_module("jax").devices()))
    _try("refprune backends", _refprune_backends)


def _try(label, fn):
    try:
        print(f"{label}: {fn()}")
    except Exception as exc:  # noqa: BLE001
        print(f"{label}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")


def _torch_cuda():
    import torch

    if not torch.cuda.is_available():
        return f"not available (torch.version.cuda={torch.version.cuda})"
    names = [f"{torch.cuda.get_device_name(i)} (capability {torch.cuda.get_device_capability(i)})"
             for i in range(torch.cuda.device_count())]
    return f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, devices: {', '.join(names)}"


def _cupy_cuda():
    import cupy

    rt = cupy.cuda.runtime
    props = rt.getDeviceProperties(0)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    return f"runtime {rt.runtimeGetVersion()}, driver {rt.driverGetVersion()}, {rt.getDeviceCount()} device(s), 0: {name}"


def _refprune_backends():
    from refprune import backends

    return "; ".join(f"{n}: " + (backends.unavailable_reason(n) or "available") for n in backends.NAMES)


# ----------------------------------------------------------------------------- pytest stages


_RANK = {"passed": 0, "skipped": 1, "xfailed": 2, "xpassed": 3, "failed": 4, "error": 5}


def read_outcomes(path):
    """``{nodeid: (outcome, message)}`` from the plugin's JSON lines (the worst phase wins)."""
    tests = {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError:
        return tests
    for line in lines:
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a stop
        if rec.get("xfail"):
            outcome = "xfailed" if rec["outcome"] == "skipped" else "xpassed"
        elif rec["outcome"] == "failed":
            outcome = "failed" if rec["when"] == "call" else "error"
        else:
            outcome = rec["outcome"]
        old = tests.get(rec["nodeid"])
        if old is None or _RANK[outcome] > _RANK[old[0]]:
            tests[rec["nodeid"]] = (outcome, rec.get("message", ""))
    return tests


def last_error_line(message):
    """The line of a pytest failure that says what went wrong: the last ``E`` line, else the last line."""
    lines = [ln.rstrip() for ln in message.splitlines() if ln.strip()]
    errors = [ln[1:].strip() for ln in lines if ln.startswith("E ")]
    return (errors[-1] if errors else lines[-1] if lines else "")[:300]


def stage_pytest(name, args, work, env, *, paths, k=None, extra_env=None):
    outcomes = work / "logs" / f"{name}.jsonl"
    outcomes.unlink(missing_ok=True)
    env = dict(env, GPU_CHECK_OUTCOMES=str(outcomes), **(extra_env or {}))
    cmd = _pytest_command(args, paths, k)
    rc, seconds = run_logged(cmd, log=work / "logs" / f"{name}.log", timeout=args.timeouts[name], env=env)
    tests = read_outcomes(outcomes)
    counts = collections.Counter(o for o, _ in tests.values())
    failures = [(nodeid, last_error_line(msg)) for nodeid, (o, msg) in tests.items() if o in ("failed", "error", "xpassed")]
    skips = collections.Counter(msg.strip()[:200] for o, msg in tests.values() if o == "skipped")
    notes = [f"command: {shlex.join(str(c) for c in cmd)}"]
    notes += [f"{c} skipped: {r}" for r, c in skips.most_common(8)]
    status = _pytest_status(rc, failures, notes, limit=args.timeouts[name], log=work / "logs" / f"{name}.log")
    status = _gpu_skips_status(status, skips, args.mode.backends, notes)
    if not tests and status == "ok":
        status = "FAILED"
        notes.append("no test ran")
    return stage_result(name, status, seconds, counts=dict(counts), failures=failures, notes=notes,
                        command=shlex.join(str(c) for c in cmd))


def _pytest_command(args, paths, k):
    """pytest with the outcome plugin; ``-k``, a per-test timeout and xdist workers where they apply."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "_gpu_check_pytest", *paths]
    if k:
        cmd += ["-k", k]
    if _has_module("pytest_timeout"):
        cmd += ["--timeout", "120"]  # one hung test fails alone instead of stopping the stage
    if args.workers and _has_module("xdist"):
        cmd += ["-n", str(args.workers)]
    return cmd


def _pytest_status(rc, failures, notes, *, limit, log):
    """``ok``, ``TIMEOUT`` (stopped) or ``FAILED`` (a failure, or pytest's own error, noted with its last line)."""
    if rc is None:
        notes.append(f"stopped at its time limit ({limit} s); the counts are of what ran")
        return "TIMEOUT"
    if failures or rc != 0:
        if rc not in (0, 1):
            notes.append(f"pytest exit status {rc}: {tail(log)}")
        return "FAILED"
    return "ok"


def _gpu_skips_status(status, skips, backends, notes):
    """A test of a checked backend that skipped did not run: the stage fails (it checked nothing there)."""
    gpu_skips = {b: sum(c for r, c in skips.items() if r.startswith(f"backend {b}:")) for b in backends}
    if not any(gpu_skips.values()):
        return status
    notes.append("tests of the checked backends skipped (they did not run): "
                 + ", ".join(f"{b}: {n}" for b, n in gpu_skips.items() if n))
    return "FAILED" if status == "ok" else status


def _has_module(name):
    import importlib.util

    return importlib.util.find_spec(name) is not None


# ----------------------------------------------------------------------------- methods


def small_options(method, dry, subset):
    """One short epoch on ``subset`` examples, and the options that make a method small where it has them."""
    options = {"epochs": 1, "subset": subset, "threads": 2}
    small = {"rounds": 1, "amounts": "0.5,0.9", "on_values": "0,1"}
    if dry:
        small["hidden"] = "64"
    names = {o.name for o in method.options}
    options.update({k: v for k, v in small.items() if k in names})
    return options


def worker_methods():
    from refprune import methods

    print(RESULT_MARK + json.dumps(list(methods.names())))


def worker_method(method, backend, data, out, dry, subset):
    """Run one method; the last stdout line is ``RESULT_MARK`` + JSON (ok, accuracy, seconds or error)."""
    record = {"method": method, "backend": backend, "data": data}
    t0 = time.perf_counter()
    try:
        from refprune import methods

        options = small_options(methods.get(method), dry, subset)
        record["options"] = options
        result = methods.run(method, data=data, backend=backend, out=out, quiet=True, **options)
        record.update(ok=True, accuracy=result.get("test_accuracy"), train_seconds=result.get("train_seconds"),
                      model=result.get("model"))
    except BaseException as exc:  # noqa: BLE001  (the error's last line is the result)
        traceback.print_exc()
        record.update(ok=False, error=traceback.format_exception_only(type(exc), exc)[-1].strip()[:500])
    record["seconds"] = round(time.perf_counter() - t0, 2)
    print(RESULT_MARK + json.dumps(record), flush=True)


def _result_line(log):
    try:
        lines = Path(log).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        if line.startswith(RESULT_MARK):
            return json.loads(line[len(RESULT_MARK):])
    return None


def stage_methods(args, work, env):
    t0 = time.monotonic()
    deadline = t0 + args.timeouts["methods"]
    me = str(Path(__file__).resolve())
    log = work / "logs" / "methods-list.log"
    rc, _ = run_logged([sys.executable, me, "--worker", "methods"], log=log, timeout=60, env=env)
    names = _result_line(log)
    if rc != 0 or not names:
        return stage_result("methods", "FAILED", time.monotonic() - t0, runs=[],
                            notes=[f"could not list refprune.methods.names(): {tail(log, 3)}"])
    mode = args.mode
    jobs = [(m, b, d) for m in names for b in mode.backends for d in mode.datasets]
    lock = threading.Lock()

    def one(job):
        method, backend, data = job
        tag = f"{method}-{backend}-{data}"
        left = deadline - time.monotonic()
        if left < 5:
            return {"method": method, "backend": backend, "data": data, "ok": False, "status": "not run",
                    "error": "not started: the stage's time limit was reached"}
        out = work / "methods" / tag
        shutil.rmtree(out, ignore_errors=True)
        cmd = [sys.executable, me, "--worker", "method", method, backend, data, str(out),
               "1" if mode.dry else "0", str(mode.subset)]
        run_log = work / "logs" / "methods" / f"{tag}.log"
        rc, seconds = run_logged(cmd, log=run_log, timeout=min(mode.method_timeout, left), env=env)
        record = _result_line(run_log) or {"method": method, "backend": backend, "data": data, "ok": False}
        record["wall_seconds"] = round(seconds, 1)
        if rc is None:
            record.update(ok=False, status="TIMEOUT", error=f"stopped after {seconds:.0f} s")
        elif not record.get("ok"):
            record["status"] = "FAILED"
            record.setdefault("error", tail(run_log) or f"exit status {rc}")
        else:
            record["status"] = "ok"
        with lock:
            print(f"    method {tag}: {record['status']}"
                  + (f", accuracy {record.get('accuracy'):.3f}" if record.get("ok") and record.get("accuracy") is not None
                     else f": {record.get('error', '')}"), flush=True)
        return record

    with concurrent.futures.ThreadPoolExecutor(max_workers=mode.jobs) as pool:
        runs = list(pool.map(one, jobs))
    failed = [r for r in runs if not r.get("ok")]
    notes = [f"{len(jobs)} runs: {len(names)} methods ({', '.join(names)}) x {', '.join(mode.backends)} x "
             f"{', '.join(mode.datasets)}; one epoch, small options (see each run's options)"]
    return stage_result("methods", "FAILED" if failed else "ok", time.monotonic() - t0, runs=runs, notes=notes,
                        counts={"ok": len(runs) - len(failed), "failed": len(failed)})


# ----------------------------------------------------------------------------- bench


def stage_bench(args, work, env):
    out = work / "bench"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, str(REPO / "benchmarks" / "run.py"), "--only", "gpu", "--out", str(out)]
    if args.mode.dry:
        cmd.append("--gpu-dry-run")
    if args.bench_mask_sizes:
        cmd += ["--gpu-mask-sizes", args.bench_mask_sizes]
    rc, seconds = run_logged(cmd, log=work / "logs" / "bench.log", timeout=args.timeouts["bench"], env=env)
    try:
        results = json.loads((out / "results.json").read_text())
    except (OSError, json.JSONDecodeError):
        results = {"benchmarks": []}
    benchmarks = results.get("benchmarks", [])
    ratios, problems = _bench_ratios(benchmarks)
    notes = [f"command: {shlex.join(str(c) for c in cmd)}"]
    notes += [n for b in benchmarks for n in b.get("notes", []) if " failed: " not in n]
    status = _bench_status(rc, ratios, problems, limit=args.timeouts["bench"], log=work / "logs" / "bench.log")
    met = sum(1 for r in ratios if r["target"] is not None and r["value"] <= r["target"])
    with_target = sum(1 for r in ratios if r["target"] is not None)
    return stage_result("bench", status, seconds, ratios=ratios, failures=problems, notes=notes,
                        counts={"ratios": len(ratios), "targets met": met, "targets": with_target},
                        rows={k: v for b in benchmarks for k, v in b.get("rows", {}).items()},
                        machine=results.get("machine", {}))


def _bench_ratios(benchmarks):
    """``(ratios, problems)`` of benchmarks/run.py's results: every ratio with its target; skips and failures."""
    ratios, problems = [], []
    for b in benchmarks:
        if "skipped" in b:
            problems.append(f"{b['name']} skipped: {b['skipped']}")
        if "error" in b:
            problems.append(f"{b['name']} failed: {b['error']}")
        problems += [n for n in b.get("notes", []) if " failed: " in n]
        for key, value in b.get("ratios", {}).items():
            ratios.append({"benchmark": b["name"], "ratio": key, "value": value, "target": b.get("targets", {}).get(key)})
    return ratios, problems


def _bench_status(rc, ratios, problems, *, limit, log):
    """``ok``, ``TIMEOUT`` or ``FAILED`` (an exit status, a problem, or no ratio at all; noted in ``problems``)."""
    if rc is None:
        problems.append(f"stopped at its time limit ({limit} s); what finished before is shown")
        return "TIMEOUT"
    if rc == 0 and not problems and ratios:
        return "ok"
    if rc != 0:
        problems.append(f"benchmarks/run.py exit status {rc}: {tail(log)}")
    if not ratios:
        problems.append("no ratio was measured")
    return "FAILED"


# ----------------------------------------------------------------------------- summary


def _counts(stage):
    c = stage.get("counts") or {}
    return ", ".join(f"{v} {k}" for k, v in c.items()) if c else ""


def _fmt_ratio(r):
    target = r["target"]
    value = r["value"]
    shown = f"{value:.3g}" if value == value else "-"
    if target is None:
        return shown, "", ""
    return shown, f"<= {target:g}", "met" if value <= target else "**not met**"


def summary_markdown(args, stages, started, total):
    mode = args.mode
    ok = all(s["status"] == "ok" for s in stages.values())
    lines = [
        "# refprune GPU check" + (" (dry run on the CPU: torch and numpy stand in for torch-cuda and cupy)" if mode.dry else ""),
        "",
        f"`scripts/gpu_check.sh{' --dry-run' if mode.dry else ''}` at {started} on {os.uname().nodename}; "
        f"{total:.0f} s in all; checked backends: {', '.join(mode.backends)}. "
        f"**{'PASSED' if ok else 'FAILED'}** (exit status {0 if ok else 1}).",
        "",
        "| stage | status | counts | seconds |",
        "|---|---|---|---|",
    ]
    for name in STAGES:
        s = stages.get(name)
        if s is not None:
            lines.append(f"| {name} | {s['status']} | {_counts(s)} | {s['seconds']:.0f} |")
    lines += _bench_section(stages.get("bench"))
    lines += _methods_section(stages.get("methods"))
    lines += _details_section(stages)
    versions = stages.get("versions")
    if versions:
        lines += ["", f"## Versions ({versions['status']})", "", "```", versions.get("text", "").strip()[-6000:], "```"]
    return "\n".join(lines) + "\n"


def _bench_section(bench):
    """The benchmark ratios against their targets, and the rows they come from (folded)."""
    if not (bench and bench.get("ratios")):
        return []
    m = bench.get("machine", {})
    lines = ["", "## Benchmark ratios (refprune / torch, median times; lower is better)", "",
             f"GPU: {m.get('gpu') or 'none'}; torch {m.get('torch', '-')}, CuPy {m.get('cupy', '-')}, "
             f"NumPy {m.get('numpy', '-')}, Python {m.get('python', '-')}.", "",
             "| benchmark | ratio | value | target | |", "|---|---|---|---|---|"]
    for r in bench["ratios"]:
        v, t, met = _fmt_ratio(r)
        lines.append(f"| {r['benchmark']} | {r['ratio']} | {v} | {t} | {met} |")
    lines += ["", "<details><summary>benchmark rows (median of the timed repeats)</summary>", "",
              "| contender | median | repeats |", "|---|---|---|"]
    for name, row in bench.get("rows", {}).items():
        med = row.get("median_s", float("nan"))
        lines.append(f"| {name} | {med * 1e3:.3f} ms | {len(row.get('times_s', []))} |")
    return lines + ["", "</details>"]


def _methods_section(meth):
    """One row per method x backend x data run, and the small options each method ran with."""
    if not (meth and meth.get("runs")):
        return []
    lines = ["", "## Methods (one short epoch each)", "",
             "| method | backend | data | result | test accuracy | seconds (run / training) |", "|---|---|---|---|---|---|"]
    lines += [_method_row(r) for r in meth["runs"]]
    options = {r["method"]: r.get("options") for r in meth["runs"] if r.get("options")}
    return lines + ["", "Options: " + "; ".join(f"{m} {json.dumps(o)}" for m, o in options.items())]


def _method_row(r):
    if r.get("ok"):
        acc = r.get("accuracy")
        return (f"| {r['method']} | {r['backend']} | {r['data']} | ok | "
                f"{acc:.4f} | {r.get('seconds', 0):.1f} / {r.get('train_seconds') or 0:.1f} |")
    err = str(r.get("error", "")).replace("|", "\\|")
    return (f"| {r['method']} | {r['backend']} | {r['data']} | **{r.get('status', 'FAILED')}**: "
            f"`{err}` | | {r.get('wall_seconds', 0):.1f} |")


def _details_section(stages):
    """Each stage's notes and its first 40 failures (versions has its own section)."""
    lines = ["", "## Stage details"]
    for name in STAGES:
        s = stages.get(name)
        if s is None or name == "versions":
            continue
        lines += ["", f"### {name}: {s['status']}", ""]
        lines += [f"- {n}" for n in s.get("notes", [])]
        failures = s.get("failures") or []
        if failures:
            lines += ["", f"Failures ({len(failures)}; first {min(len(failures), 40)}):", ""]
            lines += [f"- `{f[0]}`: {f[1]}" if isinstance(f, (list, tuple)) else f"- {f}" for f in failures[:40]]
    return lines


def recap(stages):
    return "\n".join(f"  {name:12s} {s['status']:8s} {_counts(s)} ({s['seconds']:.0f} s)" for name, s in stages.items())


# ----------------------------------------------------------------------------- main


def prepare_wheels():
    """Download the wheels of ``WHEELS`` into ``.whl/`` (needs a network; run where pip can reach an index)."""
    import importlib.metadata

    specs = []
    for dist, module, fallback in WHEELS:
        try:
            version = importlib.metadata.version(module)
        except importlib.metadata.PackageNotFoundError:
            version = fallback
        specs.append(f"{dist}=={version}")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
           "--implementation", "cp", "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
           "--platform", "manylinux2014_x86_64", "-d", str(REPO / ".whl"), *specs]
    print("$ " + shlex.join(cmd), flush=True)
    return subprocess.call(cmd)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--dry-run", action="store_true", help="torch and numpy in place of torch-cuda and cupy, tiny sizes")
    p.add_argument("--out", type=Path, help="write gpu_summary.md and gpu_logs.tar.gz into this folder")
    p.add_argument("--summary", type=Path, help="the summary file (default: WORK/gpu_summary.md, or OUT's)")
    p.add_argument("--work", type=Path, default=REPO / "runs" / "gpu-check", help="logs, method runs, benchmark results")
    p.add_argument("--stages", default=",".join(STAGES), help="comma-separated subset of " + ", ".join(STAGES))
    p.add_argument("--timeouts", dest="timeout_overrides", default="", metavar="STAGE=S,...",
                   help="override stage time limits in seconds, e.g. tests=300,bench=180")
    p.add_argument("--test-paths", default=None, metavar="PATH[,PATH...]", help="paths of the tests stage (default: tests)")
    p.add_argument("--test-k", default=None, metavar="EXPR",
                   help='pytest -k of the tests stage (default: "torch-cuda or cupy"; "" for every test)')
    p.add_argument("--serial", action="store_true", help="run tests, conformance and methods one after the other")
    p.add_argument("--workers", type=int, default=0, help="pytest-xdist workers for the pytest stages (0: none)")
    p.add_argument("--reinstall", action="store_true", help="install the wheels of .whl/ even when their packages import")
    p.add_argument("--bench-mask-sizes", default=None, metavar="N,N", help="benchmarks/run.py --gpu-mask-sizes")
    p.add_argument("--prepare-wheels", action="store_true", help="only download the .whl/ wheels (needs a network)")
    p.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.mode = Mode(args.dry_run)
    args.timeouts = dict(args.mode.timeouts)
    for item in (x.strip() for x in args.timeout_overrides.split(",") if x.strip()):
        key, _, value = item.partition("=")
        if key not in args.timeouts:
            p.error(f"--timeouts: unknown stage {key!r}; stages: {', '.join(args.timeouts)}")
        try:
            args.timeouts[key] = float(value)
        except ValueError:
            p.error(f"--timeouts: {item!r} is not STAGE=SECONDS")
    if args.test_paths:
        args.mode.test_paths = [x.strip() for x in args.test_paths.split(",") if x.strip()]
    if args.test_k is not None:
        args.mode.test_k = args.test_k
    args.stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = [s for s in args.stages if s not in STAGES]
    if unknown:
        p.error(f"--stages: unknown {unknown}; stages: {', '.join(STAGES)}")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        return run_worker(args.worker)
    if args.prepare_wheels:
        return prepare_wheels()
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    t0 = time.monotonic()
    work = fresh_work_folder(args)
    stages = {}
    site = run_stages(args, work, stages)
    total = time.monotonic() - t0
    ordered = {name: stages[name] for name in STAGES if name in stages}
    text = summary_markdown(args, ordered, started, total)
    summary = write_outputs(args, work, text)
    ok = all(s["status"] == "ok" for s in ordered.values())
    if site is not None:
        shutil.rmtree(site, ignore_errors=True)
    print(text)
    print(f"[gpu_check] wrote {summary}\n[gpu_check] {'PASSED' if ok else 'FAILED'} in {total:.0f} s:\n{recap(ordered)}")
    return 0 if ok else 1


def run_worker(worker):
    """The child side of a stage: ``versions``, ``methods`` (their names) or ``method M BACKEND DATA OUT DRY N``."""
    kind, rest = worker[0], worker[1:]
    if kind == "versions":
        worker_versions()
    elif kind == "methods":
        worker_methods()
    elif kind == "method":
        method, backend, data, out, dry, subset = rest
        worker_method(method, backend, data, out, dry == "1", int(subset))
    return 0


def fresh_work_folder(args):
    """The work folder without the logs, method runs and benchmark results of an earlier check."""
    work = args.work.resolve()
    for sub in ("logs", "methods", "bench"):
        shutil.rmtree(work / sub, ignore_errors=True)
    (work / "logs").mkdir(parents=True, exist_ok=True)
    print(f"[gpu_check] {'dry run: ' if args.mode.dry else ''}backends {', '.join(args.mode.backends)}; "
          f"stages {', '.join(args.stages)}; work folder {work}", flush=True)
    return work


def record(stages, result):
    """Keep a stage's result and print its line."""
    stages[result["name"]] = result
    print(f"[gpu_check] {result['name']}: {result['status']} {_counts(result)} ({result['seconds']:.0f} s)", flush=True)


def guarded(name, fn, *a):
    """``fn(*a)``, or a FAILED result of stage ``name`` with the traceback: a broken stage never stops the others."""
    try:
        return fn(*a)
    except Exception:  # noqa: BLE001  (a broken stage is reported; the others still run)
        return stage_result(name, "FAILED", 0.0, notes=[f"gpu_check error: {traceback.format_exc()[-1500:]}"])


def run_stages(args, work, stages):
    """Run the chosen stages into ``stages``: install and versions, the side-by-side group, then bench alone.

    Returns the folder the wheels were installed into (None: none), removed at the end.
    """
    site = None
    if "install" in args.stages:
        result = guarded("install", lambda: stage_install(args, work))
        if isinstance(result, tuple):
            result, site = result
        record(stages, result)
    env = child_env(site)
    if "versions" in args.stages:
        record(stages, guarded("versions", stage_versions, args, work, env))
    run_group(side_by_side_stages(args, work, env, site), serial=args.serial, stages=stages)
    if "bench" in args.stages:
        print("[gpu_check] bench ...", flush=True)
        record(stages, guarded("bench", stage_bench, args, work, env))
    return site


def side_by_side_stages(args, work, env, site):
    """``[(name, fn)]`` of the chosen stages among tests, conformance and methods."""
    group = []
    if "tests" in args.stages:
        group.append(("tests", lambda: stage_pytest("tests", args, work, env, paths=args.mode.test_paths,
                                                    k=args.mode.test_k)))
    if "conformance" in args.stages:  # refprune itself (no REFPRUNE_TARGET) on the checked backends
        conf_env = {k: v for k, v in env.items() if k != "REFPRUNE_TARGET"}
        extra = {"REFPRUNE_TARGET_BACKEND": ",".join(args.mode.backends), "REFPRUNE_PROFILE": "ci"}
        group.append(("conformance", lambda: stage_pytest(
            "conformance", args, work, conf_env, paths=["refprune/conformance", "--ignore=refprune/conformance/meta_tests"],
            extra_env=extra)))
    if "methods" in args.stages:
        group.append(("methods", lambda: stage_methods(args, work, child_env(site, threads=2))))
    return group


def run_group(group, *, serial, stages):
    """The stages of ``group`` one after the other (``serial``) or side by side, each recorded as it ends."""
    if serial:
        for name, fn in group:
            print(f"[gpu_check] {name} ...", flush=True)
            record(stages, guarded(name, fn))
    elif group:
        print(f"[gpu_check] {', '.join(n for n, _ in group)} side by side ...", flush=True)
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(group)) as pool:
            futures = {pool.submit(guarded, name, fn): name for name, fn in group}
            for fut in concurrent.futures.as_completed(futures):
                record(stages, fut.result())


def write_outputs(args, work, text):
    """Write the summary (``--summary``, else OUT's or the work folder's) and, with ``--out``, the logs' tarball."""
    summary = args.summary or ((args.out / "gpu_summary.md") if args.out else work / "gpu_summary.md")
    summary.parent.mkdir(parents=True, exist_ok=True)
    summary.write_text(text, encoding="utf-8")
    if args.out:
        with tarfile.open(args.out / "gpu_logs.tar.gz", "w:gz") as tar:
            tar.add(work / "logs", arcname="logs")
            if (work / "bench").exists():
                tar.add(work / "bench", arcname="bench")
    return summary


if __name__ == "__main__":
    sys.exit(main())
