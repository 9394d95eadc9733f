r"""Method docs as plain terminal text: reST roles and LaTeX turned into readable ASCII.

The docstrings keep their reST and LaTeX for the documentation site; ``--help`` shows
this rendering instead:

>>> print(plain(r"prunes :math:`k = \lfloor a\,n \rfloor` of ``w`` (:func:`refprune.magnitude_mask`)"))
prunes k = floor(a n) of w (magnitude_mask)
>>> print(plain(r":math:`\frac{\beta}{2}\|w - u\|^2` and :math:`\sigma(\log\alpha)`"))
beta/2 ||w - u||^2 and sigma(log alpha)
"""

from __future__ import annotations

import re

__all__ = ["plain", "ascii_math"]

_SYMBOLS = {
    r"\odot": "*", r"\cdot": "*", r"\times": "x", r"\le": "<=", r"\leq": "<=", r"\ge": ">=", r"\geq": ">=",
    r"\ne": "!=", r"\neq": "!=", r"\in": "in", r"\leftarrow": "<-", r"\rightarrow": "->", r"\to": "->",
    r"\infty": "inf", r"\nabla": "grad ", r"\partial": "d", r"\approx": "~", r"\sim": "~", r"\pm": "+-",
    r"\lVert": "||", r"\rVert": "||", r"\|": "||", r"\lfloor": "floor(", r"\rfloor": ")", r"\lceil": "ceil(",
    r"\rceil": ")", r"\ldots": "...", r"\dots": "...", r"\quad": "  ", r"\qquad": "    ", r"\,": " ", r"\;": " ",
    r"\!": "", r"\{": "{", r"\}": "}", r"\sum": "sum", r"\prod": "prod", r"\log": "log", r"\exp": "exp",
    r"\min": "min", r"\max": "max", r"\sqrt": "sqrt", r"\mathcal{L}": "L", r"\mathbb{1}": "1",
}
_SIZING = re.compile(r"\\(?:left|right|big|Big|bigg|Bigg)(?=[\\()\[\]|.])\.?")
_WRAPPERS = re.compile(r"\\(?:operatorname|mathrm|text|texttt|mathbf|mathit|textrm|mathsf)\s*\{([^{}]*)\}")
_FRAC = re.compile(r"\\[td]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_HAT = re.compile(r"\\(hat|tilde|bar)\s*\{?([A-Za-z])\}?")
_COMMAND = re.compile(r"\\(?![td]?frac\b)([A-Za-z]+)")


def _fraction(match):
    top, bottom = match.group(1).strip(), match.group(2).strip()
    wrap = lambda t: t if re.fullmatch(r"[\w.^]+", t) else f"({t})"  # noqa: E731
    return f"{wrap(top)}/{wrap(bottom)} "


def ascii_math(text):
    """One LaTeX expression as readable ASCII (greek letters by name, fractions with ``/``)."""
    text = _SIZING.sub("", text)
    text = re.sub(r"\\begin\{cases\}(.*?)\\end\{cases\}",
                  lambda m: "{ " + m.group(1).replace("&", " if ").replace(r"\\", "; ") + " } ", text, flags=re.S)
    text = text.replace("&", " ").replace(r"\\", "; ")
    for _ in range(3):
        text = _WRAPPERS.sub(r"\1", text)
    text = _HAT.sub(lambda m: m.group(2) + {"hat": "^", "tilde": "~", "bar": "-"}[m.group(1)], text)
    for symbol in sorted(_SYMBOLS, key=len, reverse=True):
        word = symbol[-1].isalpha()
        pattern = re.escape(symbol) + (r"(?![A-Za-z])" if word else "")
        text = re.sub(pattern, lambda _m, s=symbol, w=word: _SYMBOLS[s] + (" " if w else ""), text)
    text = _COMMAND.sub(r"\1 ", text)
    for _ in range(3):
        text = _FRAC.sub(_fraction, text)
    text = re.sub(r"(?<![_^])\{([^{}]*)\}", r"\1", text)  # bare grouping braces
    text = re.sub(r"([_^])\{([^{}]*)\}", lambda m: m.group(1) + (m.group(2) if len(m.group(2).strip()) == 1 else
                                                                   "{" + m.group(2).strip() + "}"), text)
    text = re.sub(r"[ \t]+", " ", text)
    text = re.sub(r"([A-Za-z]) \(", r"\1(", text)
    return text.replace(" )", ")").replace("( ", "(").replace(" ^", "^").replace(" _", "_").strip()


def plain(doc):
    """A reST docstring as plain text: math as ASCII, roles and literals without their markup."""
    lines, out, i = doc.splitlines(), [], 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped.startswith(".. math::") or stripped.startswith(".. code-block::"):
            indent = line[: len(line) - len(line.lstrip())]
            rest = stripped.split("::", 1)[1].strip()
            math = stripped.startswith(".. math::")
            block = [rest] if rest else []
            i += 1
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith(indent + " ")):
                block.append(lines[i].strip())
                i += 1
            body = [b for b in block if b]
            if math:
                body = [ascii_math(" ".join(body))]
            out.extend([""] + [indent + "    " + b for b in body] + [""])
            continue
        out.append(_inline(line))
        i += 1
    text = re.sub(r"``(.*?)``", r"\1", "\n".join(out), flags=re.S)  # literals and emphasis may span lines
    text = re.sub(r"\*\*([^*]+)\*\*", r"\1", text)
    text = re.sub(r"(?<![\w*])\*([^*\s][^*]*?)\*(?![\w*])", r"\1", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n")


def _inline(line):
    line = re.sub(r":math:`([^`]*)`", lambda m: ascii_math(m.group(1)), line)
    line = re.sub(r":(?:func|class|meth|mod|data|attr|obj|ref):`~?([^`]*)`",
                  lambda m: m.group(1).split(".")[-1] if "<" not in m.group(1) else m.group(1).split("<")[0].strip(),
                  line)
    if line.rstrip().endswith("::") and not line.strip().startswith(".."):
        line = line.rstrip()[:-1]
    return line
