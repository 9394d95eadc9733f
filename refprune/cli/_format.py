"""What the ``refprune`` subcommands share: the help formatter, an :class:`~refprune.methods.Option` as a flag."""

from __future__ import annotations

import argparse

__all__ = ["ArgumentFormatter", "add_option", "check_backend", "fail"]


class ArgumentFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the method docs' line breaks and shows every default once (not for a switch, a None default, or a
    help that states its default itself)."""

    def _get_help_string(self, action):
        if action.nargs == 0 or action.default is None or "(default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


class _Given(argparse.Action):
    """Stores the value and adds the option's name to ``namespace.given``: what was typed, not defaulted."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)
        namespace.given = frozenset(getattr(namespace, "given", ())) | {self.dest}


def add_option(group, option):
    """Add ``option`` to an argparse group as its flag, with its type, default and range in the help.

    The parsed namespace's ``given`` holds the names of the options typed on the command
    line (a resumed run takes the others from its checkpoint).
    """
    help_text = option.help + (f" ({option.allowed()})" if option.allowed() and not option.choices else "")
    if option.is_switch:
        group.add_argument(option.cli_flag, dest=option.name, action=_Given, nargs=0, const=not option.default,
                           default=option.default, help=help_text)
        return

    def parse(text):
        try:
            return option.convert(text)
        except (ValueError, TypeError) as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = option.name
    group.add_argument(option.cli_flag, dest=option.name, action=_Given, type=parse, default=option.default,
                       choices=None, metavar=option.metavar or ("{" + ",".join(map(str, option.choices)) + "}"
                                                                if option.choices else None), help=help_text)


def fail(parser, message, code=2):
    """End the command with ``PROG: error: MESSAGE`` on one line and exit code ``code``."""
    parser.exit(code, f"{parser.prog}: error: {message}\n")


def check_backend(parser, name):
    """One line and exit 2 when backend ``name`` cannot run on this machine."""
    from refprune import backends

    reason = backends.unavailable_reason(name)
    if reason is not None:
        fail(parser, f"backend {name!r} cannot run here: {reason}; available: {', '.join(backends.available())}")
