"""``.. refprune-cli::``: the command-line reference, generated from ``refprune.cli.build_parser()``.

Every subcommand (recursively: ``refprune run l0`` included) becomes a section with
its usage, its description and its options grouped as argparse groups them, each with
its default. A method's description is its docstring rendered as reST (equations and
all), the same text ``refprune run METHOD --help`` prints as plain text. A new
subcommand or method appears here with no edit to the docs.
"""

from __future__ import annotations

import argparse

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles


def _subcommands(parser):
    """``(name, help, subparser)`` of each subcommand of ``parser``, in the order they were added."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield name, helps.get(name), sub


def _flag(action):
    """``--lam L[,L...]`` / ``FOLDER``: how the argument is written."""
    if not action.option_strings:
        return action.metavar or action.dest
    if action.nargs == 0:
        return ", ".join(action.option_strings)
    metavar = action.metavar
    if metavar is None:
        metavar = "{" + ",".join(map(str, action.choices)) + "}" if action.choices else action.dest.upper()
    return ", ".join(f"{s} {metavar}" for s in action.option_strings)


def _default(action):
    if action.nargs == 0 or action.default in (None, argparse.SUPPRESS) or not action.option_strings:
        return None
    return repr(action.default) if isinstance(action.default, str) else str(action.default)


def _help(action):
    text = action.help or ""
    if "%(" in text:
        text = text % {**vars(action), "prog": ""}
    return text


class CliReference(SphinxDirective):
    """Render the ``refprune`` command line as nested sections."""

    has_content = False

    def run(self):
        from refprune.cli import build_parser

        parser = build_parser()
        return self._subsections(parser, ["refprune"])

    def _subsections(self, parser, path):
        out = []
        for name, help_text, sub in _subcommands(parser):
            out.append(self._section(sub, [*path, name], help_text))
        return out

    def _section(self, parser, path, help_text):
        title = " ".join(path)
        section = nodes.section(ids=[nodes.make_id(title)], names=[nodes.fully_normalize_name(title)])
        section += nodes.title(text=title)
        if help_text:
            section += nodes.paragraph(text=help_text[0].upper() + help_text[1:] + ".")
        usage = parser.format_usage().strip()
        section += nodes.literal_block(usage, usage, language="text")
        method_doc = self._method_doc(path)
        if method_doc is not None:
            self._parse_rst(method_doc, section)
        elif parser.description:
            section += nodes.paragraph(text=parser.description)
        for group in parser._action_groups:
            actions = [a for a in group._group_actions
                       if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))]
            if not actions:
                continue
            section += nodes.rubric(text=group.title[0].upper() + group.title[1:])
            items = nodes.definition_list()
            for action in actions:
                term = nodes.term()
                term += nodes.literal(text=_flag(action))
                body = nodes.paragraph(text=_help(action))
                default = _default(action)
                if default is not None:
                    body += nodes.Text(" Default: ")
                    body += nodes.literal(text=default)
                    body += nodes.Text(".")
                if action.choices and not action.metavar:
                    body += nodes.Text(" One of: ")
                    body += nodes.literal(text=", ".join(map(str, action.choices)))
                    body += nodes.Text(".")
                definition = nodes.definition()
                definition += body
                items += nodes.definition_list_item("", term, definition)
            section += items
        for sub in self._subsections(parser, path):
            section += sub
        return section

    def _method_doc(self, path):
        if len(path) != 3 or path[1] != "run":
            return None
        from refprune import methods

        try:
            return methods.get(path[2]).doc
        except ValueError:
            return None

    def _parse_rst(self, text, parent):
        import inspect

        lines = inspect.cleandoc(text).splitlines()
        container = nodes.container(classes=["method-doc"])
        nested_parse_with_titles(self.state, StringList(lines, source=f"<method doc {parent['names'][0]}>"),
                                 container)
        parent += container


def setup(app):
    app.add_directive("refprune-cli", CliReference)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
