"""The ``check`` and ``vectors`` commands: the conformance suite and its golden vectors."""

from __future__ import annotations

import argparse
import os
import sys

from refprune.conformance import config as cfg

from ._format import ArgumentFormatter, fail


def _cmd_check(args):
    from refprune.conformance import check

    if args.pytest_args[:1] == ["--"]:
        args.pytest_args = args.pytest_args[1:]
    return check.main(args)


def _cmd_vectors(args):
    from refprune.conformance import vectors

    if args.action == "export":
        if os.path.exists(args.file) and not args.overwrite:
            fail(args.parser, f"{args.file} exists; pass --overwrite to replace it or choose another FILE")
        n = vectors.export(args.file)
        print(f"wrote {n} golden vectors of oracle protocol {cfg.PROTOCOL_VERSION} for {len(cfg.PROTOCOL_NAMES)} "
              f"protocol functions to {args.file} (format: docs/protocol.md, 'Golden vectors')")
        return 0
    backend = args.target_backend or "numpy"
    try:
        results = vectors.verify(args.file, args.target, backend)
    except (ImportError, ValueError, OSError, RuntimeError) as exc:
        print(f"refprune vectors verify: {exc}", file=sys.stderr)
        return 2
    print(f"refprune vectors verify: {args.file} against {args.target} on {backend}")
    print(vectors.format_results(results))
    failures = [m for r in results.values() for m in r.messages]
    for message in failures[:20]:
        print(f"  {message[:300]}")
    if len(failures) > 20:
        print(f"  ... and {len(failures) - 20} more")
    print(vectors.overall_line(results))
    return 1 if failures else 0


def _kinds(text):
    """``--checks``: a comma list of the kinds of check, each one of :data:`~refprune.conformance.config.KINDS`."""
    try:
        return ",".join(cfg.checks_selected({cfg.ENV_CHECKS: text}))
    except ValueError:
        msg = f"got {text!r}; give a comma list of {', '.join(cfg.KINDS)}"
        raise argparse.ArgumentTypeError(msg) from None


def add_commands(sub):
    """Add ``check`` and ``vectors`` to the ``refprune`` subparsers ``sub``."""
    p = sub.add_parser(
        "check",
        help="run the conformance suite against an implementation of the oracle protocol",
        description="Run the property-based conformance suite (pytest --pyargs refprune.conformance) "
        "against MODULE and print a per-function pass/fail table. Extra arguments after -- go to pytest.",
        formatter_class=ArgumentFormatter,
    )
    p.add_argument("--target", default=cfg.DEFAULT_TARGET, metavar="MODULE",
                   help="importable module (or module:attribute) with protocol functions")
    p.add_argument("--target-backend", default=None, metavar="NAME",
                   help="array type the target takes: numpy, torch, torch-cuda, cupy, array-api-strict, jax "
                   "(default: numpy; every backend for refprune itself)")
    p.add_argument("--profile", choices=["ci", "thorough"], default="ci",
                   help="ci: 15 derandomized examples per test; thorough: 400")
    p.add_argument("--max-examples", type=int, default=None, help="examples per test (default: the profile's)")
    p.add_argument("--xfails", default=None, metavar="FILE",
                   help="known deviations, one test id a line with '# reason' (default: xfails/<target>.txt; 'none')")
    p.add_argument("--checks", default=None, metavar="KINDS", type=_kinds,
                   help="only these kinds of check, comma-separated: values, properties, gradients, errors (default: all)")
    p.add_argument("--log", default=None, metavar="FILE",
                   help="write the suite's full output here (default: ./refprune-check-<target>.log)")
    p.add_argument("pytest_args", nargs=argparse.REMAINDER, help="further pytest arguments, after --")
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser(
        "vectors",
        help="export or verify golden input/output vectors of every protocol function (JSON)",
        formatter_class=ArgumentFormatter,
    )
    p.add_argument("action", choices=["export", "verify"])
    p.add_argument("file", metavar="FILE.json")
    p.add_argument("--target", default=cfg.DEFAULT_TARGET, metavar="MODULE",
                   help="verify: the implementation to check (the current directory is searched)")
    p.add_argument("--target-backend", default=None, metavar="NAME", help="verify: its array type (default: numpy)")
    p.add_argument("--overwrite", action="store_true", help="export: replace FILE if it exists")
    p.set_defaults(func=_cmd_vectors, parser=p)

