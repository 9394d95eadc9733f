"""The ``refprune`` command line."""

from __future__ import annotations

import argparse
import sys


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


def build_parser():
    parser = argparse.ArgumentParser(
        prog="refprune",
        description="The reference implementation of neural-network pruning.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    p = sub.add_parser("backends", help="list the array backends and whether each can run here")
    p.set_defaults(func=_cmd_backends)
    from refprune.methods._cli import add_commands

    add_commands(sub)
    from refprune.conformance.cli import add_commands as add_conformance_commands

    add_conformance_commands(sub)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
