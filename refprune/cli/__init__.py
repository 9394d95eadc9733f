"""The ``refprune`` command line."""

from __future__ import annotations

import argparse
import sys
import warnings


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


def _cmd_runs(args):
    from refprune import runs

    try:
        results = runs.collect([args.folder])
        table = runs.sort_rows(runs.rows(results), args.sort, reverse=args.reverse)
    except (FileNotFoundError, ValueError) as exc:
        args.parser.exit(2, f"refprune runs: error: {exc}\n")
    print(runs.format_rows(table, "json" if args.json else "csv" if args.csv else "text"))
    return 0


def _cmd_compare(args):
    import os

    from refprune import runs
    from refprune.engine import _plot_unavailable

    if os.path.exists(args.out) and not args.overwrite:
        args.parser.exit(2, f"refprune compare: error: {args.out} exists; pass --overwrite to replace it or "
                            f"choose another --out\n")
    try:
        results = runs.collect(args.runs)
    except (FileNotFoundError, ValueError) as exc:
        args.parser.exit(2, f"refprune compare: error: {exc}\n")
    print(runs.format_rows(runs.sort_rows(runs.rows(results), "sparsity")))
    reason = _plot_unavailable()
    if reason is not None:
        print(f"no plot: {reason}")
        return 0
    runs.plot_compare(results, args.out)
    print(f"wrote {args.out}")
    return 0


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
    from refprune.methods._cli import add_commands

    add_commands(sub)
    from refprune.runs import SORT_KEYS

    p = sub.add_parser("runs", help="a table of every run under a folder", formatter_class=formatter,
                       description="List every run (every result.json) under FOLDER: method, data, model, backend, "
                       "the options that differ from the defaults, test accuracy, weight sparsity, architecture "
                       "before -> after, training seconds and date.")
    p.add_argument("folder", nargs="?", default="runs", metavar="FOLDER", help="where to look")
    p.add_argument("--sort", default="date", choices=tuple(SORT_KEYS), help="column to sort by")
    p.add_argument("--reverse", action="store_true", help="largest first")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print JSON instead of a table")
    fmt.add_argument("--csv", action="store_true", help="print CSV instead of a table")
    p.set_defaults(func=_cmd_runs, parser=p)
    p = sub.add_parser("compare", help="plot accuracy against sparsity for several runs", formatter_class=formatter,
                       description="Plot test accuracy against weight sparsity for the given runs (run folders, "
                       "result.json files, or folders of runs): one marker per run, the curves of the sweeping "
                       "methods (magnitude's criteria, the lottery's rounds and control), binary's on-sweep in a "
                       "second panel; the same runs as a table in the terminal.")
    p.add_argument("runs", nargs="+", metavar="RUN_OR_FOLDER")
    p.add_argument("--out", default="compare.png", metavar="FILE.png", help="the figure")
    p.add_argument("--overwrite", action="store_true", help="replace FILE.png if it exists")
    p.set_defaults(func=_cmd_compare, parser=p)
    from refprune.cli.compact import add_commands as add_compact_commands

    add_compact_commands(sub)
    from refprune.sweep import add_command as add_sweep_command

    add_sweep_command(sub)
    from refprune.conformance.cli import add_commands as add_conformance_commands

    add_conformance_commands(sub)
    from refprune.cli.peers import add_command as add_peers_command

    add_peers_command(sub)
    return parser


def _one_line_warning(message, category, filename, lineno, line=None):
    """A warning as the terminal user reads it: one line, without refprune's source line."""
    return f"warning: {message}\n"


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.formatwarning = _one_line_warning
    try:
        return args.func(args)
    except BrokenPipeError:  # the output was piped into a command that stopped reading (head)
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
