"""The ``refprune`` command line: every subcommand's arguments live in this package.

``run``/``demo`` (:mod:`.run`), ``compact``/``export`` (:mod:`.compact`), ``sweep``
(:mod:`.sweep`), ``check``/``vectors`` (:mod:`.check`); ``backends``, ``runs`` and
``compare`` here. The registries and the library modules know no argparse.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

from ._format import fail


def _cmd_backends(args):
    from refprune import backends

    for name in backends.NAMES:
        reason = backends.unavailable_reason(name)
        if reason is None:
            b = backends.get(name)
            print(f"{name:18s} available   device={b.device}")
        else:
            print(f"{name:18s} unavailable {reason}")
    return 0


def _collect(args, paths):
    """The readable runs under ``paths``, and how many result.json files could not be read (one line each)."""
    from refprune import runs

    unreadable = []
    try:
        results = runs.collect(paths, unreadable=unreadable)
    except (FileNotFoundError, ValueError) as exc:
        fail(args.parser, str(exc))
    for line in unreadable:
        print(f"{args.parser.prog}: skipped {line}", file=sys.stderr)
    return results, len(unreadable)


def _cmd_runs(args):
    from refprune import runs

    results, unreadable = _collect(args, [args.folder])
    try:
        table = runs.sort_rows(runs.rows(results), args.sort, reverse=args.reverse)
    except ValueError as exc:
        fail(args.parser, str(exc))
    print(runs.format_rows(table, "json" if args.json else "csv" if args.csv else "text"))
    return 1 if unreadable else 0


def _figure_problem(path, overwrite):
    """Why ``path`` cannot receive a new figure (exists, no such folder, no matplotlib), or None."""
    from refprune.plots import plot_unavailable

    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        return f"--out {path} is a folder; give a file name such as {os.path.join(path, 'compare.png')}"
    if os.path.exists(path) and not overwrite:
        return f"{path} exists; pass --overwrite to replace it or choose another --out"
    if not os.path.isdir(folder):
        return f"--out {path}: the folder {folder} does not exist; create it or choose another --out"
    if not os.access(folder, os.W_OK):
        return f"--out {path}: the folder {folder} is not writable; choose another --out"
    reason = plot_unavailable()
    return None if reason is None else f"cannot draw {path}: {reason} (refprune runs prints the table alone)"


def _cmd_compare(args):
    from refprune import runs

    problem = _figure_problem(args.out, args.overwrite)
    if problem is not None:
        fail(args.parser, problem)
    results, unreadable = _collect(args, args.runs)
    if not results:
        fail(args.parser, "no readable run to compare")
    print(runs.format_rows(runs.sort_rows(runs.rows(results), "sparsity")))
    runs.plot_compare(results, args.out)
    print(f"wrote {args.out}")
    return 1 if unreadable else 0


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (``refprune run l0: error: ...``) and exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser():
    formatter = argparse.ArgumentDefaultsHelpFormatter
    parser = Parser(
        prog="refprune",
        description="The reference implementation of neural-network pruning.",
        formatter_class=formatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    p = sub.add_parser("backends", help="list the array backends and whether each can run here")
    p.set_defaults(func=_cmd_backends)
    from refprune.runs import SORT_KEYS

    from .check import add_commands as add_check_commands
    from .compact import add_commands as add_compact_commands
    from .peers import add_command as add_peers_command
    from .run import add_commands as add_run_commands
    from .sweep import add_command as add_sweep_command

    add_run_commands(sub)

    p = sub.add_parser("runs", help="a table of every run under a folder", formatter_class=formatter,
                       description="List every run (every result.json) under FOLDER: method, data, model, backend, "
                       "the options that differ from the defaults, test accuracy, weight sparsity, architecture "
                       "before -> after, training seconds and date. A result.json that cannot be read is named on one "
                       "line (stderr) and left out; the exit status is then 1.")
    p.add_argument("folder", nargs="?", default="runs", metavar="FOLDER", help="where to look")
    p.add_argument("--sort", default="date", choices=tuple(SORT_KEYS), help="column to sort by")
    p.add_argument("--reverse", action="store_true", help="reverse the order (accuracy lists the best first, "
                   "the other keys the smallest or earliest first)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print JSON instead of a table")
    fmt.add_argument("--csv", action="store_true", help="print CSV instead of a table")
    p.set_defaults(func=_cmd_runs, parser=p)
    p = sub.add_parser("compare", help="plot accuracy against sparsity for several runs", formatter_class=formatter,
                       description="Plot test accuracy against weight sparsity for the given runs (run folders, "
                       "result.json files, or folders of runs): one marker per run, the curves of the sweeping "
                       "methods (magnitude's criteria, the lottery's rounds and control), binary's on-sweep in a "
                       "second panel; the same runs as a table in the terminal. A result.json that cannot be read is "
                       "named on one line (stderr) and left out; the exit status is then 1.")
    p.add_argument("runs", nargs="+", metavar="RUN_OR_FOLDER")
    p.add_argument("--out", default="compare.png", metavar="FILE.png", help="the figure")
    p.add_argument("--overwrite", action="store_true", help="replace FILE.png if it exists")
    p.set_defaults(func=_cmd_compare, parser=p)
    add_compact_commands(sub)
    add_sweep_command(sub)
    add_check_commands(sub)
    add_peers_command(sub)
    return parser


def _one_line_warning(message, category, filename, lineno, line=None):
    """A warning as the terminal user reads it: one line, without refprune's source line."""
    return f"warning: {message}\n"


def main(argv=None):
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        warnings.formatwarning = _one_line_warning
        return args.func(args)
    except BrokenPipeError:  # the output was piped into a command that stopped reading (head)
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:  # before a command began its work (a command says what it kept)
        print("refprune: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
