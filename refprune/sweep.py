r"""Sweeps: a grid of runs (methods x target sparsities x seeds x options) on Dask.

For example::

    refprune sweep --methods l0,rvsm --seeds 0,1,2 --epochs 10 --out sweeps/first
    refprune sweep --methods gmp,snip --sparsity 0.5,0.9 --seeds 0,1 --lr 1e-3,2e-3 --out DIR
    refprune sweep --config grid.toml --scheduler tcp://HOST:8786

**The grid.** Every method in ``--methods`` runs once per seed in ``--seeds``, per
target in ``--sparsity`` and per combination of the options given as lists. A target
sparsity sets the option that the method's registration declares as its target
(``register_method(..., sparsity_option="sparsity")``); a method that declares none
(``l0``, ``rvsm``, ``magnitude``, ``lottery``, ``binary``: their sparsity is an outcome,
or, for ``magnitude``, a sweep inside the run) runs once per seed and option combination
whatever ``--sparsity`` says, and is plotted at the sparsity it reaches. Any run option
(``refprune run METHOD --help``) may be given, as one value or a comma list
(``--lr 1e-3,2e-3``); where one value itself holds commas (l0's per-layer ``--lam``),
separate the values with ``;`` (``--lam "10,0.5,0.1,0.1;1,0.05,0.01,0.2"``). An
option goes to every method of the grid that takes it; one that none takes is an error.
A TOML file (``--config``) says the same; the command line wins::

    methods = ["l0", "rvsm"]
    seeds = [0, 1, 2]
    sparsity = [0.5, 0.9]
    data = "mnist5k"
    epochs = 20
    lr = [1e-3, 2e-3]           # a list: one run each
    [l0]                        # options for one method only
    lam = ["10,0.5,0.1,0.1", "1,0.05,0.01,0.2"]

**Folders.** Each run writes into ``DIR/<method>-<data>-<model>-<backend>-seed<seed>-<key>``,
``key`` being the hash of its settings (:meth:`refprune.runspec.RunSpec.key`). A run whose
folder holds a matching ``result.json`` is skipped; one whose folder holds only a
checkpoint is resumed from it. So a sweep that was stopped is resumed by running the
same command again, and a worker that dies mid-run costs at most the epochs since the
last checkpoint: Dask gives the run to another worker, which resumes it (files are
written atomically, so nothing already written is lost).

**Workers.** By default a ``LocalCluster`` with one single-threaded worker process per
core (``--workers``); ``--scheduler tcp://HOST:PORT`` uses an existing cluster instead,
whose workers must have refprune installed and see ``DIR`` (a shared file system). Each
run is pinned to one BLAS / torch thread (``--threads``, default 1), and the local
workers start with ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS`` and ``OPENBLAS_NUM_THREADS``
set to it, so that workers do not oversubscribe the cores.

**Results.** Progress is one line each time the counts change (runs done / running /
failed / waiting). At the end, ``DIR/sweep.csv`` (one row per run), ``DIR/sweep.json``
(the grid, every run's record and the mean and spread over seeds of each setting) and
``DIR/sweep.png`` (test accuracy against weight sparsity, one curve per method through
the means over seeds, bars of one standard deviation both ways).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import signal
import statistics
import sys
import threading
import time

from . import io
from .checkpoints import CHECKPOINT
from .runspec import RunSpec

__all__ = ["Grid", "read_config", "split_values", "expand", "run_one", "run_sweep", "summarize", "plot_sweep",
           "sweep_figure", "point_line", "SweepError", "INSTALL", "MANAGED", "default_workers",
           "dask_client"]

INSTALL = "pip install 'refprune[sweep]' (or pip install 'dask[distributed]')"

#: Settings the sweep itself manages; not run options.
MANAGED = ("out", "resume", "overwrite", "quiet")


class SweepError(ValueError):
    """A sweep that cannot be set up: bad grid, unknown option, missing dask."""


# ---------------------------------------------------------------------------------- the grid


class Grid:
    """What to run: ``methods``, ``sparsity`` targets, ``seeds``, ``options`` (name -> list of values) for
    every method that takes them, ``method_options`` (method -> name -> list of values) for one method."""

    def __init__(self, methods, *, sparsity=(), seeds=(0,), options=None, method_options=None):
        self.methods = list(methods)
        self.sparsity = list(sparsity)
        self.seeds = list(seeds)
        self.options = dict(options or {})
        self.method_options = {m: dict(v) for m, v in (method_options or {}).items()}

    def as_dict(self):
        return {"methods": self.methods, "sparsity": self.sparsity, "seeds": self.seeds, "options": self.options,
                "method_options": self.method_options}


def split_values(text, option=None):
    """The grid values of one command-line option value: ``"1e-3,2e-3"`` -> ``["1e-3", "2e-3"]``.

    ``;`` separates values when present (``"10,0.5;1,0.05"`` -> two values). Otherwise
    commas do, unless ``option`` reads the whole text as one list value (a per-layer
    option such as l0's ``--lam 10,0.5,0.1,0.1``).
    """
    if ";" in text:
        return [v.strip() for v in text.split(";") if v.strip()]
    if option is not None and "," in text:
        try:
            whole = option.convert(text)
        except (ValueError, TypeError):
            whole = None
        if isinstance(whole, (tuple, list)):
            return [text]
    return [v.strip() for v in text.split(",") if v.strip()]


def _as_list(value):
    return list(value) if isinstance(value, (list, tuple)) else [value]


def read_config(path):
    """A TOML sweep file as ``(settings, method_options)``; see the module docstring for its keys."""
    try:
        import tomllib
    except ImportError:  # Python 3.10: the same parser as a package
        try:
            import tomli as tomllib
        except ImportError:
            msg = "--config needs Python >= 3.11 (tomllib) or pip install tomli"
            raise SweepError(msg) from None
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        msg = f"--config {path}: no such file"
        raise SweepError(msg) from None
    except tomllib.TOMLDecodeError as exc:
        msg = f"--config {path}: not valid TOML ({exc})"
        raise SweepError(msg) from None
    from .methods import names

    method_options = {k: doc.pop(k) for k in list(doc) if isinstance(doc[k], dict) and k in names()}
    tables = [k for k, v in doc.items() if isinstance(v, dict)]
    if tables:
        msg = f"--config {path}: [{tables[0]}] is not a method; tables hold one method's options ({', '.join(names())})"
        raise SweepError(msg)
    return doc, method_options


def _option_table(methods):
    """``{name: (Option, [methods that take it])}`` for the common options and the methods' own."""
    from .methods import COMMON_OPTIONS, get

    table = {o.name: (o, list(methods)) for o in COMMON_OPTIONS if o.name not in MANAGED}
    for m in methods:
        for o in get(m).options:
            table.setdefault(o.name, (o, []))[1].append(m)
    return table


def expand(grid, *, out, threads=1):
    """The runs of ``grid``: a list of :class:`~refprune.runspec.RunSpec`, each with its folder under ``out``.

    Runs that come out identical (a method that does not take a varied option) appear
    once. Raises :class:`SweepError` for an unknown method or option, an option that no
    method of the grid takes, or a value an option refuses.
    """
    from .methods import get, make_spec

    if not grid.methods:
        msg = "no methods: give --methods NAME[,NAME...]"
        raise SweepError(msg)
    if not grid.seeds:
        msg = "no seeds: give --seeds 0[,1...]"
        raise SweepError(msg)
    try:
        for m in grid.methods:
            get(m)
    except ValueError as exc:
        raise SweepError(str(exc)) from None
    table = _option_table(grid.methods)
    for name in grid.options:
        if name in MANAGED or name == "seed":
            what = "--seeds" if name == "seed" else "--out (one folder per run inside it)"
            msg = f"{name!r} is set by the sweep itself; use {what}"
            raise SweepError(msg)
        if name not in table or not table[name][1]:
            msg = (f"option {name!r} is not taken by any of the methods {', '.join(grid.methods)}; "
                   f"see refprune run METHOD --help")
            raise SweepError(msg)
    for m, opts in grid.method_options.items():
        if m not in grid.methods:
            msg = f"options given for method {m!r}, which is not in the grid ({', '.join(grid.methods)})"
            raise SweepError(msg)
        own = {o.name for o in get(m).options} | set(table)
        unknown = sorted(set(opts) - own)
        if unknown:
            msg = f"method {m!r} takes no option {unknown[0]!r}; see refprune run {m} --help"
            raise SweepError(msg)
    specs, seen = [], set()
    for m in grid.methods:
        method = get(m)
        axes = {k: _as_list(v) for k, v in grid.options.items() if m in table[k][1]}
        axes.update({k: _as_list(v) for k, v in grid.method_options.get(m, {}).items()})
        targets = grid.sparsity if method.sparsity_option and grid.sparsity else [None]
        names_ = list(axes)
        for target, seed, combo in itertools.product(targets, grid.seeds, itertools.product(*axes.values())):
            settings = {**dict(zip(names_, combo)), "seed": seed, "quiet": True}
            settings.setdefault("threads", threads)
            if target is not None:
                settings[method.sparsity_option] = target
            try:
                spec = make_spec(m, **settings)
            except ValueError as exc:
                msg = f"{m}: {exc}"
                raise SweepError(msg) from None
            if spec.key() in seen:
                continue
            seen.add(spec.key())
            spec.out = os.path.join(os.path.abspath(out), os.path.basename(spec.default_out()))
            specs.append(spec)
    return specs


def without_target(grid):
    """The methods of ``grid`` that ``--sparsity`` does not reach (no declared target option)."""
    from .methods import get

    return [m for m in grid.methods if get(m).sparsity_option is None] if grid.sparsity else []


# ---------------------------------------------------------------------------------- one run (on a worker)


def _stored_key(result):
    config = dict(result.get("config") or {})
    try:
        return RunSpec(**config).key()
    except TypeError:
        return None


def run_one(config):
    """Run (or skip, or resume) one run of the sweep; what a worker executes. Returns its record.

    ``config`` is :meth:`RunSpec.config` with ``out`` set. A matching ``result.json`` in
    ``out``: skipped. A ``checkpoint.npz`` there: resumed from it. Otherwise run from
    the start. The record holds ``status`` (``"done"``, ``"skipped"``), ``resumed_at_step``
    (None, or the step the run went on from), the worker's process id and the result.
    """
    from .methods import execute

    spec = RunSpec(**config)
    out = spec.out
    record = {"key": spec.key(), "out": out, "pid": os.getpid(), "resumed_at_step": None}
    result_file = os.path.join(out, "result.json")
    if os.path.exists(result_file):
        with open(result_file) as f:
            result = json.load(f)
        if _stored_key(result) != spec.key():
            msg = f"{out} holds another run's result.json (key {_stored_key(result)}, expected {spec.key()})"
            raise FileExistsError(msg)
        return {**record, "status": "skipped", "result": result}
    checkpoint = os.path.join(out, CHECKPOINT)
    if os.path.exists(checkpoint):
        from .io import load_checkpoint

        spec.resume = out
        record["resumed_at_step"] = int(load_checkpoint(checkpoint).step)
    result = execute(spec)
    return {**record, "status": "done", "result": result}


# ---------------------------------------------------------------------------------- the sweep


def dask_client(scheduler, workers, threads):
    """``(client, cluster)``: a client of ``scheduler`` (cluster None), or of a new local cluster of ``workers``.

    The local cluster is the one :func:`run_sweep` starts: one process per worker, one
    thread each, ``threads`` BLAS threads per run, Ctrl-C left to this process. Close
    both when done (``client.close()``, then ``cluster.close()`` when not None).
    """
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        msg = f"refprune sweep runs on dask.distributed, which is not installed: {INSTALL}"
        raise SweepError(msg) from None
    if scheduler:
        return Client(scheduler), None
    import logging

    import dask

    env = {k: str(threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    # Runs are long tasks: no statistical profiler sampling their stacks every 10 ms, no 20 ms event-loop tick,
    # which on busy cores take CPU and the GIL from the run. And no MALLOC_TRIM_THRESHOLD_ (dask sets 64 KiB
    # before spawning a worker): setting it turns off glibc's dynamic mmap threshold, so every large temporary
    # array of a training step is a fresh mmap and its page faults (measured: training 3x slower).
    quiet = {"distributed.worker.profile.enabled": False, "distributed.admin.tick.interval": "1s",
             "distributed.nanny.pre-spawn-environ": env}
    with dask.config.set(quiet), _sigint_ignored():
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                               silence_logs=logging.ERROR, env=env)
    return Client(cluster), cluster


@contextlib.contextmanager
def _sigint_ignored():
    """Worker processes started inside ignore Ctrl-C (inherited SIG_IGN): the terminal sends it to every process
    of the group, and only this one should stop the sweep (and close the workers), without their tracebacks."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def default_workers():
    """One worker per core this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class _Progress:
    """The sweep's progress line, printed when the counts change; it never goes backwards.

    A run once counted running stays running until it finishes (the scheduler's view of
    what executes may lag a moment behind, which printed "2 running" then "1 running, 1 waiting").
    """

    def __init__(self, total, stream):
        self.total, self.stream, self.last = total, stream, None
        self.start = time.perf_counter()

    def show(self, done, running, failed):
        if self.last is not None:
            last_done, last_running, last_failed = self.last
            finished = done + failed - last_done - last_failed
            running = min(max(running, last_running - finished), self.total - done - failed)
        counts = (done, running, failed)
        if counts == self.last:
            return
        self.last = counts
        waiting = self.total - done - running - failed
        elapsed = time.perf_counter() - self.start
        print(f"[sweep {elapsed:6.0f} s] {done}/{self.total} done, {running} running, {failed} failed, "
              f"{waiting} waiting", file=self.stream, flush=True)


def run_sweep(grid, *, out, scheduler=None, workers=None, threads=1, client=None, stream=None, poll=0.5):
    """Run every run of ``grid`` on Dask, then write ``sweep.csv``, ``sweep.json`` and ``sweep.png`` in ``out``.

    ``client``: an existing ``dask.distributed.Client`` (then ``scheduler`` and
    ``workers`` are not used). Returns the summary dict written to ``sweep.json``.
    """
    stream = sys.stdout if stream is None else stream
    specs = expand(grid, out=out, threads=threads)
    os.makedirs(out, exist_ok=True)
    skipped_methods = without_target(grid)
    if skipped_methods:
        print(f"[sweep] {', '.join(skipped_methods)}: no target-sparsity option; run once per seed and setting, "
              f"plotted at the sparsity reached", file=stream)
    own_client, cluster = client is None, None
    if own_client:
        client, cluster = dask_client(scheduler, workers or default_workers(), threads)
    try:
        records = _gather(client, specs, stream, poll)
    except KeyboardInterrupt:
        print("[sweep] interrupted; run the same command again to resume: complete runs are skipped, the others go "
              "on from their last checkpoint", file=stream, flush=True)
        raise
    finally:
        if own_client:
            client.close()
        if cluster is not None:
            cluster.close()
    summary = summarize(grid, specs, records)
    write_outputs(out, summary)
    return summary


def _gather(client, specs, stream, poll):
    futures = {}
    for spec in specs:
        future = client.submit(run_one, spec.config(), key=f"refprune-run-{spec.key()}", pure=False, retries=0)
        futures[future.key] = (future, spec)
    records, failed = {}, 0
    progress = _Progress(len(specs), stream)
    pending = {f for f, _ in futures.values()}
    while pending:
        done = {f for f in pending if f.done()}
        pending -= done
        for future in done:
            spec = futures[future.key][1]
            if future.status == "finished":
                records[spec.key()] = future.result()
            else:
                failed += 1
                records[spec.key()] = {"key": spec.key(), "out": spec.out, "status": "failed",
                                       "error": _error_line(future.exception())}
                print(f"[sweep] failed: {spec.method} seed {spec.seed} ({spec.out}): "
                      f"{records[spec.key()]['error']}", file=stream, flush=True)
        running = _running(client, {f.key for f in pending})
        progress.show(len(records) - failed, running, failed)
        if pending:
            time.sleep(poll)
    return [records[s.key()] for s in specs]


def _running(client, keys):
    """How many of ``keys`` are executing: per worker, those the scheduler assigned to it, up to its threads.

    Asks the scheduler only (a worker busy with a run may answer late).
    """
    try:
        assigned, threads = client.processing(), client.nthreads()
    except Exception:  # noqa: BLE001 (progress only: a scheduler that does not answer is not fatal)
        return 0
    return sum(min(sum(1 for k in found if k in keys), threads.get(w, 1)) for w, found in assigned.items())


def _error_line(exc):
    text = f"{type(exc).__name__}: {exc}"
    return text.splitlines()[0] if text else type(exc).__name__


# ---------------------------------------------------------------------------------- results


_ROW_KEYS = ("method", "target_sparsity", "seed", "status", "test_accuracy", "weight_sparsity", "train_seconds",
             "epochs", "architecture_string", "resumed_at_step", "key", "out")


def _varied(grid, spec):
    """The settings of ``spec`` that the grid varies (other than seed and target), as ``name=value`` text."""
    from .methods import get

    names_ = [k for k, v in {**grid.options, **grid.method_options.get(spec.method, {})}.items()
              if isinstance(v, (list, tuple)) and len(v) > 1]
    values = {**spec.config(), **spec.options}
    target = get(spec.method).sparsity_option
    return " ".join(f"{k}={_text(values[k])}" for k in names_ if k in values and k != target)


def _text(value):
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def summarize(grid, specs, records):
    """The sweep's record: its grid, one row per run, and per setting the mean and spread over seeds."""
    from .methods import get

    rows = []
    for spec, record in zip(specs, records):
        result = record.get("result") or {}
        target = get(spec.method).sparsity_option
        row = {
            "method": spec.method, "target_sparsity": spec.options.get(target) if target else None,
            "seed": spec.seed, "setting": _varied(grid, spec), "status": record["status"],
            "test_accuracy": result.get("test_accuracy"), "weight_sparsity": result.get("weight_sparsity"),
            "train_seconds": result.get("train_seconds"), "epochs": spec.epochs,
            "architecture_string": result.get("architecture_string"),
            "resumed_at_step": record.get("resumed_at_step"), "key": spec.key(), "out": spec.out,
            "error": record.get("error"),
        }
        rows.append(row)
    groups = {}
    for row in rows:
        if row["status"] != "failed":
            groups.setdefault((row["method"], row["target_sparsity"], row["setting"]), []).append(row)
    points = []
    for (method, target, setting), members in groups.items():
        acc = [r["test_accuracy"] for r in members]
        sp = [r["weight_sparsity"] for r in members]
        points.append({"method": method, "target_sparsity": target, "setting": setting, "seeds": len(members),
                       "accuracy_mean": statistics.fmean(acc), "accuracy_std": _std(acc),
                       "accuracy_min": min(acc), "accuracy_max": max(acc),
                       "sparsity_mean": statistics.fmean(sp), "sparsity_std": _std(sp)})
    counts = {s: sum(r["status"] == s for r in rows) for s in ("done", "skipped", "failed")}
    records = [{k: v for k, v in r.items() if k != "result"} for r in records]
    return {"grid": grid.as_dict(), "counts": counts, "runs": rows, "points": points, "records": records}


def _std(values):
    return statistics.stdev(values) if len(values) > 1 else 0.0


def write_outputs(out, summary):
    """``sweep.csv``, ``sweep.json`` and (with matplotlib) ``sweep.png`` in ``out``."""
    io.write_csv(os.path.join(out, "sweep.csv"), [{k: r.get(k) for k in (*_ROW_KEYS[:3], "setting", *_ROW_KEYS[3:],
                                                                         "error")} for r in summary["runs"]])
    io.write_json(os.path.join(out, "sweep.json"), summary)
    from .plots import plot_unavailable

    reason = plot_unavailable()
    if reason is None and summary["points"]:
        plot_sweep(os.path.join(out, "sweep.png"), summary)


def plot_sweep(path, summary):
    """Test accuracy against weight sparsity: one curve per method through the means over seeds.

    Error bars: one standard deviation over seeds, of the accuracy (vertical) and of
    the sparsity reached (horizontal); each point is labelled with its target sparsity
    or varied setting where there is one, placed inside the axes where it overlaps no
    other label, marker or the legend.
    """
    from .plots import save_figure

    save_figure(sweep_figure(summary), path)


def sweep_figure(summary):
    """The figure of :func:`plot_sweep`."""
    from .plots import new_figure

    fig, (ax,) = new_figure(width=7.0, height=4.8)
    methods = list(dict.fromkeys(p["method"] for p in summary["points"]))
    markers = "osD^vP*X"
    notes = []
    for i, method in enumerate(methods):
        pts = sorted((p for p in summary["points"] if p["method"] == method), key=lambda p: p["sparsity_mean"])
        seeds = sorted({p["seeds"] for p in pts})
        label = f"{method} ({'/'.join(map(str, seeds))} seed{'s' if seeds != [1] else ''})"
        line = ax.errorbar([p["sparsity_mean"] for p in pts], [p["accuracy_mean"] for p in pts],
                           xerr=[p["sparsity_std"] for p in pts], yerr=[p["accuracy_std"] for p in pts],
                           marker=markers[i % len(markers)], capsize=3, linewidth=1.5, markersize=6, label=label)
        for p in pts:
            note = p["setting"] or (f"target {p['target_sparsity']:g}" if p["target_sparsity"] is not None else "")
            if note and len(pts) > 1:
                notes.append((note, (p["sparsity_mean"], p["accuracy_mean"]), line[0].get_color()))
    accs = [p["accuracy_mean"] - p["accuracy_std"] for p in summary["points"]]
    low = max(0.0, math.floor(min(accs) * 20) / 20 - 0.05)
    ax.set_ylim(low, 1.04)
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel("weight sparsity of the pruned network (fraction of zero weights)")
    ax.set_ylabel("test accuracy")
    n = len(summary["runs"])
    ax.set_title(f"refprune sweep: {n} run{'s' if n != 1 else ''}, mean and standard deviation over seeds")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    fig.tight_layout()
    _place_labels(ax, notes)
    return fig


#: Where a point's label may go, in points from the point (tried in order): right, left, above, below, further.
_LABEL_OFFSETS = [(dx, dy, ha) for dy in (6, -14, 16, -24, 28, -36) for dx, ha in ((6, "left"), (-6, "right"),
                                                                                     (0, "center"))]


def _place_labels(ax, notes, *, pad=4.0):
    """Annotate each ``(text, (x, y), colour)`` at the first offset whose text lies inside the axes (``pad``
    pixels from the frame) and overlaps no label placed before, no point, line or error bar and not the legend;
    where none is free, at the offset that overlaps least."""
    from matplotlib.transforms import Bbox

    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer).padded(-pad)
    taken = [ax.get_legend().get_window_extent(renderer)] if ax.get_legend() else []
    for _, xy, _ in notes:
        px, py = ax.transData.transform(xy)
        taken.append(Bbox.from_extents(px - 5, py - 5, px + 5, py + 5))
    ink = _drawn_pixels(ax)
    for text, xy, color in notes:
        best = None
        for dx, dy, ha in _LABEL_OFFSETS:
            label = ax.annotate(text, xy, textcoords="offset points", xytext=(dx, dy), ha=ha, fontsize="x-small",
                                color=color)
            box = label.get_window_extent(renderer)
            inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
            crossed = sum(box.x0 <= x <= box.x1 and box.y0 <= y <= box.y1 for x, y in ink)
            overlap = sum(_overlap_area(box, other) for other in taken) + 10 * crossed + (0 if inside else 1e9)
            if best is None or overlap < best[0]:
                if best is not None:
                    best[1].remove()
                best = (overlap, label, box)
            else:
                label.remove()
            if overlap == 0:
                break
        taken.append(best[2])


def _drawn_pixels(ax, step=2.0):
    """Pixel positions every ``step`` pixels along the axes' lines and error bars."""
    segments = [line.get_xydata() for line in ax.get_lines()]
    segments += [seg for coll in ax.collections for seg in coll.get_segments()]
    points = []
    for seg in segments:
        pixels = ax.transData.transform(seg)
        for (x0, y0), (x1, y1) in zip(pixels[:-1], pixels[1:]):
            n = max(1, int(math.hypot(x1 - x0, y1 - y0) / step))
            points += [(x0 + (x1 - x0) * k / n, y0 + (y1 - y0) * k / n) for k in range(n + 1)]
    return points


def _overlap_area(a, b):
    return max(0.0, min(a.x1, b.x1) - max(a.x0, b.x0)) * max(0.0, min(a.y1, b.y1) - max(a.y0, b.y0))


def point_line(point):
    """One line of the sweep's summary: a setting's mean over seeds (with the spread when there are several)."""
    p = point
    target = f" target {p['target_sparsity']:g}" if p["target_sparsity"] is not None else ""
    setting = f" {p['setting']}" if p["setting"] else ""
    if p["seeds"] == 1:
        return (f"{p['method']}{target}{setting}: test accuracy {p['accuracy_mean']:.4f}, "
                f"weight sparsity {p['sparsity_mean']:.3f} (1 seed)")
    return (f"{p['method']}{target}{setting}: test accuracy {p['accuracy_mean']:.4f} +- {p['accuracy_std']:.4f}, "
            f"weight sparsity {p['sparsity_mean']:.3f} ({p['seeds']} seeds)")
