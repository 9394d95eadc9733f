"""The oracle protocol page: ``docs/protocol.md`` when the project has it, else the placeholder.

``oracle_protocol.md`` is the page in the table of contents. When ``docs/protocol.md``
exists (the versioned statement of the protocol), its text replaces the placeholder's
at build time and ``protocol.md`` itself is not built twice; links to ``protocol.md``
from other pages are pointed at the page. Both files sit in ``docs/``, so the relative
links inside ``protocol.md`` keep working.
"""

from __future__ import annotations

import pathlib

PAGE = "oracle_protocol"
SOURCE = "protocol.md"


def _source(app):
    return pathlib.Path(app.srcdir) / SOURCE


def _config_inited(app, config):
    if _source(app).exists():
        config.exclude_patterns.append(SOURCE)


def _source_read(app, docname, source):
    path = _source(app)
    if path.exists():
        if docname == PAGE:
            source[0] = path.read_text(encoding="utf-8")
        else:
            source[0] = source[0].replace("](protocol.md", "](oracle_protocol.md")


def setup(app):
    app.connect("config-inited", _config_inited)
    app.connect("source-read", _source_read)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
