"""The ``sweep`` command: a grid of runs from flags or a TOML file, run by :mod:`refprune.sweep`."""

from __future__ import annotations

import os

from refprune import io, sweep
from refprune.methods import COMMON_OPTIONS, get, names
from refprune.sweep import (MANAGED, Grid, SweepError, default_workers, expand, point_line, read_config, run_sweep,
                            split_values)

from ._format import ArgumentFormatter, check_backend, fail
from ._text import plain


def _all_options():
    """Every run option by name (the common ones and each method's), first declaration wins.

    A method's declared target option (``sparsity_option``) is left out: ``--sparsity`` sets it.
    """
    targets = {get(m).sparsity_option for m in names()} - {None}
    table = {}
    for option in (*COMMON_OPTIONS, *(o for m in names() for o in get(m).options)):
        if option.name not in MANAGED and option.name not in ("seed", "threads", *targets):
            table.setdefault(option.name, option)
    return table


def add_command(sub):
    """Add ``sweep`` to the CLI's subparsers (``refprune sweep --help``)."""
    text = plain(sweep.__doc__.split("\n", 1)[1].strip()).replace("::\n", ":\n").replace("**", "")
    p = sub.add_parser("sweep", help="a grid of runs (methods x sparsities x seeds x options) on Dask",
                       description=text, formatter_class=ArgumentFormatter,
                       usage="refprune sweep --methods M[,M...] [--sparsity S[,S...]] [--seeds N[,N...]] "
                             "[RUN OPTION VALUES...] [--config FILE.toml] [--scheduler ADDRESS] --out DIR")
    own = p.add_argument_group("the sweep")
    own.add_argument("--methods", metavar="M[,M...]", help="methods to run (refprune run --help lists them)")
    own.add_argument("--sparsity", metavar="S[,S...]", help="target weight sparsities, for the methods that declare "
                     "a target option (others run once per seed)")
    own.add_argument("--seeds", metavar="N[,N...]", help="seeds (default 0)")
    own.add_argument("--out", metavar="DIR", help="the sweep's folder: one folder per run inside, sweep.csv/json/png")
    own.add_argument("--config", metavar="FILE.toml", help="the grid as a TOML file; the command line wins")
    own.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="an existing Dask scheduler (default: a "
                     "LocalCluster on this machine)")
    own.add_argument("--workers", type=int, metavar="N", help=f"workers of the LocalCluster (default: one per core, "
                     f"{default_workers()} here)")
    own.add_argument("--threads", type=int, metavar="N", help="BLAS / torch threads per run (default 1)")
    runs = p.add_argument_group("run options (one value, or a list: 1e-3,2e-3; ';' separates values that hold "
                                "commas)")
    for name, option in _all_options().items():
        kwargs = {"dest": f"run_{name}", "default": None, "metavar": "V[,V...]", "help": option.help}
        if option.is_switch:
            kwargs.update(nargs="?", const="false" if option.default else "true", metavar="true,false")
        runs.add_argument(option.cli_flag, **kwargs)
    p.set_defaults(func=_cmd_sweep, parser=p)
    return p


def _numbers_list(text, what, convert):
    try:
        return [convert(v) for v in split_values(str(text))] if not isinstance(text, list) else [convert(v) for v in text]
    except ValueError:
        msg = f"--{what}: expected a comma list of numbers, got {text!r}"
        raise SweepError(msg) from None


def grid_from_args(args):
    """``(grid, out, settings)`` from parsed command-line arguments (and the ``--config`` file)."""
    settings, method_options = read_config(args.config) if args.config else ({}, {})
    options = _all_options()
    for key in ("methods", "sparsity", "seeds", "out", "scheduler", "workers", "threads"):
        value = getattr(args, key)
        if value is not None:
            settings[key] = value
    methods = settings.pop("methods", None)
    if isinstance(methods, str):
        methods = split_values(methods)
    sparsity = _numbers_list(settings.pop("sparsity", []), "sparsity", float)
    for s in sparsity:
        if not 0.0 <= s <= 1.0:
            msg = f"--sparsity: each target must be in [0, 1], got {s!r}"
            raise SweepError(msg)
    seeds = _numbers_list(settings.pop("seeds", [0]), "seeds", int)
    setup = {k: settings.pop(k) for k in ("out", "scheduler", "workers", "threads") if k in settings}
    for name, option in options.items():
        raw = getattr(args, f"run_{name}")
        if raw is not None:
            settings[name] = split_values(raw, option)
    if not setup.get("out"):
        msg = "--out DIR is required (the sweep's folder)"
        raise SweepError(msg)
    grid = Grid(methods or [], sparsity=sparsity, seeds=seeds, options=settings, method_options=method_options)
    return grid, setup


def _cmd_sweep(args):
    parser = args.parser
    try:
        grid, setup = grid_from_args(args)
        threads = int(setup.get("threads") or 1)
        specs = expand(grid, out=setup["out"], threads=threads)
    except (SweepError, ValueError) as exc:
        fail(parser, str(exc))
    if not setup.get("scheduler"):  # the local workers run here: a backend this machine lacks fails now, once
        for name in sorted({spec.backend for spec in specs}):
            check_backend(parser, name)
    problem = io.folder_problem(setup["out"])
    if problem is not None:
        fail(parser, f"--out {setup['out']}: {problem}")
    print(f"[sweep] {len(specs)} runs of {', '.join(grid.methods)} into {os.path.abspath(setup['out'])}", flush=True)
    try:
        summary = run_sweep(grid, out=setup["out"], scheduler=setup.get("scheduler"), workers=setup.get("workers"),
                            threads=threads)
    except (SweepError, ValueError, OSError, ImportError) as exc:
        fail(parser, str(exc))
    except KeyboardInterrupt:  # run_sweep has printed how to resume
        parser.exit(130)
    counts = summary["counts"]
    print(f"[sweep] {counts['done']} ran, {counts['skipped']} already complete (skipped), {counts['failed']} failed")
    for p in sorted(summary["points"], key=lambda p: (p["method"], p["sparsity_mean"])):
        print(f"  {point_line(p)}")
    print(f"wrote {os.path.join(setup['out'], 'sweep.csv')}, sweep.json, sweep.png")
    return 1 if counts["failed"] else 0
