"""The ``run`` and ``demo`` commands, built from the method registry."""

from __future__ import annotations

import dataclasses
import os
import time

from refprune.checkpoints import CHECKPOINT
from refprune.engine import Diverged, Interrupted
from refprune.methods import COMMON_OPTIONS, execute, get, make_spec, names

from ._format import ArgumentFormatter, add_option, check_backend, fail
from ._text import plain

#: Exit codes: bad input (argparse's own), a diverged run, an interrupted run (128 + SIGINT).
EXIT_USAGE, EXIT_DIVERGED, EXIT_INTERRUPTED = 2, 3, 130


def add_commands(sub):
    """Add ``run`` (one subcommand per registered method) and ``demo`` to the CLI's subparsers."""
    run = sub.add_parser("run", help="run one pruning method", formatter_class=ArgumentFormatter,
                         description="Run one pruning method; writes result.json, metrics.csv, plot.png and a "
                         "checkpoint into its run folder. 'refprune run METHOD --help' teaches the method.")
    methods = run.add_subparsers(dest="method", metavar="METHOD")
    methods.required = True
    for name in names():
        method = get(name)
        p = methods.add_parser(name, help=method.summary, description=plain(method.doc),
                               formatter_class=ArgumentFormatter)
        common = p.add_argument_group("options of every method")
        for option in COMMON_OPTIONS:
            if option.name in method.defaults:
                option = dataclasses.replace(option, default=method.defaults[option.name])
            add_option(common, option)
        own = p.add_argument_group(f"{name} options")
        for option in method.options:
            add_option(own, option)
        p.set_defaults(func=_cmd_run, parser=p)
    demo = sub.add_parser("demo", help="every method on the embedded digits data set, with a summary table",
                          formatter_class=ArgumentFormatter,
                          description="Run every method on digits with its defaults (the same runs as "
                          "'refprune run METHOD' with the same seed, hence the same numbers) and print a summary "
                          "table. Each demo writes a new folder, unless --out names one: then the methods that "
                          "finished there are skipped and an interrupted one resumes from its checkpoint.")
    for option in COMMON_OPTIONS:
        if option.name in ("backend", "seed", "quiet", "threads"):
            add_option(demo, option)
    demo.add_argument("--out", default=None, metavar="DIR",
                      help="output folder (default: runs/demo-<date>-<time>, a new one each time); an earlier demo's "
                      "folder continues that demo")
    demo.set_defaults(func=_cmd_demo, parser=demo)


def _execute(parser, spec, *, run=None, again=None):
    """Run ``spec``; a bad setting, a diverged or an interrupted run ends in one line and an exit code.

    ``run(spec) -> result`` (default: :func:`refprune.methods.execute`); ``again``: the
    command that continues an interrupted run (default: ``refprune run METHOD --resume FOLDER``).
    """
    checkpoint = os.path.join(spec.folder(), CHECKPOINT)
    before = _modified(checkpoint)
    try:
        return (run or execute)(spec)
    except Diverged as exc:
        fail(parser, str(exc), EXIT_DIVERGED)
    except (Interrupted, KeyboardInterrupt) as exc:
        saved = _modified(checkpoint) is not None and (_modified(checkpoint) != before or bool(spec.resume))
        fail(parser, _interrupted(spec, exc, saved=saved, again=again), EXIT_INTERRUPTED)
    except (ValueError, TypeError, OSError, ImportError) as exc:
        fail(parser, str(exc))


def _modified(path):
    try:
        return os.stat(path).st_mtime_ns
    except OSError:  # none there (or --out is not a folder: the engine says so)
        return None


def _interrupted(spec, exc, *, saved, again):
    """The one line that says what an interrupted run kept and the command that continues it."""
    if again is not None:
        kept = "resumes from its last checkpoint" if saved else "starts again (nothing of it was saved)"
        return (f"interrupted in {spec.method}; continue with: {again} (finished methods are skipped, "
                f"{spec.method} {kept})")
    if isinstance(exc, Interrupted):
        return str(exc)
    if not saved:
        return "interrupted before the first checkpoint: nothing was saved; run the same command again"
    return f"interrupted; resume from the last checkpoint with: refprune run {spec.method} --resume {spec.folder()}"


def _cmd_run(args):
    method = get(args.method)
    settings = {k: v for k, v in vars(args).items() if k not in ("func", "parser", "command", "method", "given")}
    if args.resume:  # what was not typed comes from the checkpoint
        settings = {k: v for k, v in settings.items() if k in getattr(args, "given", ())}
    try:
        spec = make_spec(method.name, **settings)
    except (ValueError, OSError) as exc:
        fail(args.parser, str(exc))
    check_backend(args.parser, spec.backend)
    result = _execute(args.parser, spec)
    print(summary_line(result))
    print(f"wrote {os.path.join(result['out'], 'result.json')}")
    return 0


#: The summary columns every method reports, defined once (``refprune.measures``).
COLUMNS = ("method", "model", "test accuracy", "weight sparsity", "architecture (alive units)", "train s")


def summary_row(result):
    """One run's summary as the table columns :data:`COLUMNS`."""
    return {
        "method": result["method"],
        "model": result["model"],
        "test accuracy": f"{result['test_accuracy']:.4f}",
        "weight sparsity": f"{result['weight_sparsity']:.3f}",
        "architecture (alive units)": result["architecture_string"],
        "train s": f"{result['train_seconds']:.1f}",
    }


def summary_line(result):
    """The one-line summary ``refprune run`` prints."""
    row = summary_row(result)
    return (f"{row['method']}: test accuracy {row['test accuracy']}, weight sparsity {row['weight sparsity']}, "
            f"architecture {row['architecture (alive units)']}, {row['train s']} s training")


def table(rows, columns=None):
    """Rows of dicts as an aligned text table."""
    keys = list(columns or rows[0])
    widths = {k: max(len(k), *(len(str(r.get(k, ""))) for r in rows)) for k in keys}
    line = " | ".join(k.ljust(widths[k]) for k in keys)
    rule = "-+-".join("-" * widths[k] for k in keys)
    body = [" | ".join(str(r.get(k, "")).ljust(widths[k]) for k in keys) for r in rows]
    return "\n".join([line, rule, *body])


def _cmd_demo(args):
    from refprune import io
    from refprune.sweep import run_one

    check_backend(args.parser, args.backend)
    out = args.out or os.path.join("runs", time.strftime("demo-%Y%m%d-%H%M%S"))
    changed = [f"--{k} {getattr(args, k)}" for k in ("backend", "seed", "threads")
               if getattr(args, k) != args.parser.get_default(k)]
    again = " ".join([f"refprune demo --out {out}", *changed])
    rows, results = [], []
    start = time.perf_counter()
    for name in names():
        spec = make_spec(name, data="digits", backend=args.backend, seed=args.seed, quiet=args.quiet,
                         threads=args.threads, out=os.path.join(out, name))
        print(f"[{name}] {get(name).summary} ...", flush=True)
        record = _execute(args.parser, spec, run=lambda s: run_one(s.config()), again=again)
        result = record["result"]
        results.append(result)
        rows.append(summary_row(result))
        done = " (finished before: skipped)" if record["status"] == "skipped" else (
            f" (resumed at step {record['resumed_at_step']})" if record["resumed_at_step"] is not None else "")
        print("   " + summary_line(result) + done, flush=True)
    total = time.perf_counter() - start
    print()
    print(table(rows, COLUMNS))
    print(f"\n{len(rows)} methods in {total:.1f} s; results under {out}/<method>/")
    print("architecture: per prunable layer, the input features of a dense layer or the output channels of a "
          "convolution, before -> alive after pruning")
    io.write_json(os.path.join(out, "summary.json"),
                  {"backend": args.backend, "seed": args.seed, "seconds": total, "methods": results})
    return 0
