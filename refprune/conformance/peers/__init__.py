"""Real pruning libraries (peers) as conformance targets, and the report of ``refprune peers``.

Each peer has a small adapter module here that maps protocol names onto the peer's
public functions, converting naming only (``zeros_per_block = m - n``, the array
library), never behaviour; where the peer's answer differs, the suite fails and
``xfails/<adapter>.txt`` says which rule it breaks. :data:`PEERS` lists them with the
environment each needs (``scripts/peers_env.sh`` builds them, outside refprune's own).

:func:`verdicts` turns one ``refprune check`` JSON report into one row per protocol
function: ``agrees`` (every case passes), ``differs`` (the rules broken, from the
xfails file, and a minimal counterexample: the smallest failing call with the peer's
output and refprune's), ``crashes`` (the peer raised on valid input) or
``not installed``; cases the adapter cannot express in the peer's API (its
``NotImplementedError``) are counted apart as "not offered"; :func:`markdown` writes ``docs/peers.md`` from those rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

AGREES, DIFFERS, CRASHES, NOT_INSTALLED = "agrees", "differs", "crashes", "not installed"


@dataclass(frozen=True)
class Peer:
    """One peer: its adapter, the array type it takes, the environment it runs in."""

    name: str
    adapter: str
    backend: str
    env: str
    distribution: str
    imports: str
    calls: str

    @property
    def module(self):
        return f"refprune.conformance.peers.{self.adapter}"


#: The peers ``refprune peers`` knows, by name. ``env`` names the environment:
#: ``refprune`` (refprune's own: torch is enough), ``peers-torch`` or ``peers-tf``
#: (``scripts/peers_env.sh`` builds them).
PEERS = {p.name: p for p in (
    Peer("torch-ao", "torch_ao", "torch", "refprune", "torch", "torch.ao.pruning",
         "torch.ao.pruning.WeightNormSparsifier"),
    Peer("torchao", "torchao", "torch", "peers-torch", "torchao", "torchao",
         "torchao.sparsity.utils.mask_creator (N:M) and WandaSparsifier (v2 wanda_mask)"),
    Peer("llm-compressor", "llm_compressor", "torch", "peers-torch", "llmcompressor", "llmcompressor",
         "llmcompressor magnitude mask factory, Wanda, SparseGPT, OWL"),
    Peer("torch-pruning", "torch_pruning", "torch", "peers-torch", "torch-pruning", "torch_pruning",
         "torch_pruning GroupMagnitudeImportance + MetaPruner on a one-layer group"),
    Peer("tfmot", "tfmot", "numpy", "peers-tf", "tensorflow-model-optimization", "tensorflow_model_optimization",
         "tfmot generate_m_by_n_mask, PolynomialDecay, ConstantSparsity, Pruning._update_mask"),
)}


_SHAPE = re.compile(r"\[([0-9, ]*)\]")


def _size(call_line):
    """Entries in the arrays of a failure's ``call:`` line (the smaller, the more minimal)."""
    total = 0
    for dims in _SHAPE.findall(call_line):
        n = 1
        for d in filter(None, (x.strip() for x in dims.split(","))):
            n *= int(d)
        total += n
    return total


_LABELS = ("call:", "target:", "expected:", "actual:", "Reproduce with:")


def _field(text, name):
    """The value after ``name:`` in a failure message, continuation lines joined (an array's repr)."""
    out = None
    for line in text.splitlines():
        stripped = line.strip()
        if out is not None:
            if stripped.startswith(_LABELS):
                break
            out.append(stripped)
        elif stripped.startswith(f"{name}:"):
            out = [stripped.split(":", 1)[1].strip()]
    return " ".join(out) if out else ""


def counterexample(text):
    """The parts of a failure message: what failed, the call, refprune's and the peer's output, the reproducer."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    repro = text.split("Reproduce with:", 1)[1].strip("\n") if "Reproduce with:" in text else ""
    return {
        "failure": first,
        "call": _field(text, "call"),
        "refprune": _field(text, "expected"),
        "peer": _field(text, "actual"),
        "reproduce": "\n".join(line[4:] if line.startswith("    ") else line for line in repro.splitlines()),
    }


def _not_offered(text):
    """The adapter raised NotImplementedError: the peer's API has no way to say this (a rounding, a pool)."""
    return "NotImplementedError" in (text.strip().splitlines() or [""])[0]


def _crashed(text):
    """The peer raised on an input the reference accepts (not a bad-input check)."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    if "the protocol documents" in first or "the reference raises" in first:
        return False
    return bool(re.search(r": raised \w+", first) or re.match(r"^[A-Za-z_.]*(Error|Exception)\b", first))


def _reason(entries, test_id):
    from refprune.conformance import xfails

    for e in entries:
        if xfails.matches(e.test_id, test_id):
            return e.reason
    return None


def verdicts(report, xfail_entries=()):
    """``{function: row}`` from a ``refprune check`` report (see the module docstring)."""
    rows = {}
    for test in report["tests"]:
        row = test.get("row")
        if row is None or test["outcome"] == "deselected":
            continue
        r = rows.setdefault(row, {"cases": 0, "tests": 0, "passed": 0, "differ": 0, "crash": 0, "not_offered": 0,
                                  "rules": [],
                                  "unexplained": 0, "counterexample": None, "_size": None})
        r["tests"] += 1
        r["cases"] += int(test.get("calls", 0))
        outcome = test["outcome"]
        if outcome in ("passed", "skipped"):
            r["passed"] += outcome == "passed"
            continue
        text = test.get("error") or test.get("message") or ""
        crash = _crashed(text)
        r["not_offered" if _not_offered(text) else "crash" if crash else "differ"] += 1
        reason = _reason(xfail_entries, test["id"]) if outcome == "xfailed" else None
        if outcome != "xfailed":
            r["unexplained"] += 1
            reason = f"unexplained ({outcome}): {test['id']}"
        if reason and reason not in r["rules"]:
            r["rules"].append(reason)
        shown = _field(text, "expected") and _field(text, "actual")  # refprune's and the peer's output, both shown
        size = (not shown, _size(_field(text, "call")) if _field(text, "call") else 10**18)
        if not crash and not _not_offered(text) and (r["_size"] is None or size < r["_size"]):
            r["_size"] = size
            r["counterexample"] = {"test": test["id"], **counterexample(text)}
    for r in rows.values():
        r.pop("_size")
        r["verdict"] = DIFFERS if r["differ"] else CRASHES if r["crash"] else AGREES
    return rows


def summary_line(result):
    """``agrees 3, differs 2 (12 cases failing), crashes 0`` for one peer's rows."""
    rows = result.get("functions", {})
    if result["status"] == NOT_INSTALLED:
        return f"not installed ({result.get('why', '')})"
    counts = {v: sum(r["verdict"] == v for r in rows.values()) for v in (AGREES, DIFFERS, CRASHES)}
    return ", ".join(f"{v} {n}" for v, n in counts.items())


def _cell(result, fname):
    if result["status"] == NOT_INSTALLED:
        return NOT_INSTALLED
    r = result.get("functions", {}).get(fname)
    if r is None:
        return "-"
    if r["verdict"] == AGREES:
        return AGREES + (f" ({r['not_offered']} not offered)" if r["not_offered"] else "")
    return f"{r['verdict']} ({r['differ'] + r['crash']}/{r['tests']} tests)"


def _offered(r):
    return f", {r['not_offered']} not offered by the peer's API" if r["not_offered"] else ""


def summary_table(results):
    """The report's first table, one line a peer: version, run time, cases, verdicts (also in the README)."""
    lines = ["| peer | version | run time | cases | summary |", "|---|---|---|---|---|"]
    for name, res in results.items():
        secs = f"{res['seconds']:.0f} s" if res.get("seconds") is not None else "-"
        lines.append(f"| {name} | {res.get('version') or '-'} | {secs} | {res.get('cases', 0)} | "
                     f"{summary_line(res)} |")
    return lines


def markdown(results):
    """``docs/peers.md`` from ``{peer: result}`` (``result``: version, seconds, status, functions)."""
    functions = []
    for res in results.values():
        functions += [f for f in res.get("functions", {}) if f not in functions]
    lines = [
        "# refprune against the real peers",
        "",
        "Written by `refprune peers` (do not edit by hand): each installed peer's adapter",
        "(`refprune/conformance/peers/`) checked by `refprune check` (profile `ci`) in the peer's own",
        "environment (`scripts/peers_env.sh`). A cell is `agrees` (every case passes), `differs` (the peer",
        "breaks a protocol rule: each difference is below, with the rule and a minimal counterexample),",
        "`crashes` (the peer raises on valid input) or `-` (no such function in the peer). Every difference",
        "is listed, with its reason, in `refprune/conformance/xfails/<adapter>.txt`. Cases are the calls of",
        "the peer the suite made. Run times were taken on a shared, loaded 2-core machine.",
        "",
        *summary_table(results),
    ]
    lines += ["", "| peer | " + " | ".join(f"`{f}`" for f in functions) + " |",
              "|---|" + "---|" * len(functions)]
    for name, res in results.items():
        lines.append(f"| {name} | " + " | ".join(_cell(res, f) for f in functions) + " |")
    for name, res in results.items():
        lines += ["", f"## {name}", ""]
        peer = PEERS.get(name)
        if peer is not None:
            lines.append(f"Adapter `{peer.module}` calls {peer.calls}; backend `{peer.backend}`.")
        if res["status"] == NOT_INSTALLED:
            when = f" ({res['ran_at']})" if res.get("ran_at") else ""
            lines += ["", f"Not installed: {res.get('why', '')}{when}"]
            continue
        lines.append(f"Version {res.get('version')}, {res.get('cases', 0)} cases, "
                     f"{res.get('seconds', 0):.0f} s; exit status {res.get('exitstatus')}"
                     f"{'; run ' + res['ran_at'] if res.get('ran_at') else ''}.")
        for fname, r in res.get("functions", {}).items():
            lines += ["", f"### `{fname}`: {r['verdict']}", ""]
            lines.append(f"{r['tests']} tests, {r['cases']} cases; {r['passed']} tests pass, {r['differ']} differ, "
                         f"{r['crash']} crash{_offered(r)}.")
            for rule in r["rules"]:
                lines.append(f"- {rule}")
            ce = r.get("counterexample")
            if ce:
                lines += ["", f"Minimal counterexample (`{ce['test']}`): {ce['failure']}", "",
                          f"- call: `{ce['call']}`", f"- refprune: `{ce['refprune']}`", f"- peer: `{ce['peer']}`"]
                if ce["reproduce"]:
                    lines += ["", "```python", ce["reproduce"], "```"]
    return "\n".join(lines) + "\n"
