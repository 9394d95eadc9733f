"""``refprune peers [NAME...]``: the conformance suite against every installed peer, one report.

For each peer (``refprune.conformance.peers.PEERS``) it finds the peer's environment
(``--python NAME=PATH``, else ``<--venvs>/<env>/bin/python``; torch-ao runs in refprune's
own), asks it for the peer's version (``not installed`` when the import fails), runs
``refprune check`` there on the peer's adapter (only the functions the adapter
implements), then writes ``docs/peers.md`` and its JSON: peer x function agrees /
differs (rule, minimal counterexample) / crashes / not installed, with each peer's
version, run time, number of cases and when it ran (``--update`` reruns some peers and keeps
the others' rows).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import refprune

from ._format import ArgumentFormatter

#: Where ``scripts/peers_env.sh`` puts the environments unless told otherwise.
DEFAULT_VENVS = os.environ.get("REFPRUNE_PEERS_VENVS", str(Path.home() / ".cache" / "refprune-peers"))
SOURCE_ROOT = Path(refprune.__file__).resolve().parent.parent


def add_command(sub):
    """Add ``peers`` to the ``refprune`` subparsers ``sub``."""
    from refprune.conformance.peers import PEERS

    p = sub.add_parser("peers", help="run the conformance suite against the real peers (torch.ao, torchao, "
                       "llm-compressor, Torch-Pruning, TFMOT) and write docs/peers.md",
                       formatter_class=ArgumentFormatter,
                       description="Run refprune check on each installed peer's adapter in the peer's own\n"
                       "environment (build them with scripts/peers_env.sh) and write one report: peer x\n"
                       "function agrees / differs (with the rule and a minimal counterexample) / crashes /\n"
                       "not installed, with each peer's version, run time and when it ran.\n\n"
                       "Rerun some peers and keep the other rows of the report:\n"
                       "  refprune peers llm-compressor torchao --update")
    p.add_argument("names", nargs="*", metavar="NAME", help=f"peers to run (default all: {', '.join(PEERS)})")
    p.add_argument("--venvs", default=DEFAULT_VENVS, metavar="DIR",
                   help="folder holding the environments peers-torch and peers-tf (REFPRUNE_PEERS_VENVS)")
    p.add_argument("--python", action="append", default=None, metavar="NAME=PATH",
                   help="the interpreter of one peer's environment (repeatable), instead of --venvs")
    p.add_argument("--out", default="docs/peers.md", metavar="FILE.md", help="the report")
    p.add_argument("--json", default=None, metavar="FILE.json", help="its JSON (default: FILE.md with .json)")
    p.add_argument("--overwrite", action="store_true", help="replace the report if it exists")
    p.add_argument("--update", action="store_true",
                   help="replace only the named peers' results, keeping the others' from the existing JSON")
    p.add_argument("--max-examples", type=int, default=None, metavar="N",
                   help="examples per property test (default: the ci profile's)")
    p.add_argument("--logs", default=None, metavar="DIR", help="keep each peer's suite log here (default: a temp dir)")
    p.add_argument("--jobs", type=int, default=1, metavar="N", help="peers checked at the same time")
    p.set_defaults(func=main, parser=p)


def _pythons(args, names):
    """``{peer: interpreter}`` from ``--python`` and ``--venvs``; a bad ``--python`` is one line."""
    from refprune.conformance.peers import PEERS

    given = {}
    for item in args.python or ():
        name, sep, path = item.partition("=")
        if not sep or name not in PEERS:
            args.parser.error(f"--python {item!r}: give NAME=PATH with NAME one of {', '.join(PEERS)}")
        given[name] = path
    out = {}
    for name in names:
        env = PEERS[name].env
        out[name] = given.get(name) or (sys.executable if env == "refprune" else
                                        str(Path(args.venvs).expanduser() / env / "bin" / "python"))
    return out


def probe(peer, python):
    """``(version, None)`` of the peer in that interpreter, or ``(None, why not)``."""
    if not Path(python).exists():
        return None, f"no interpreter {python} (build the environment: scripts/peers_env.sh)"
    code = (f"import importlib, importlib.metadata as m; importlib.import_module({peer.imports!r}); "
            f"importlib.import_module({peer.module!r}); print(m.version({peer.distribution!r}))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SOURCE_ROOT), os.environ.get("PYTHONPATH")]))}
    try:  # llm-compressor's import alone takes minutes on a loaded machine
        proc = subprocess.run([python, "-c", code], capture_output=True, text=True, env=env, timeout=1800, check=False)
    except subprocess.TimeoutExpired:
        return None, f"{python}: importing {peer.imports} took more than 30 minutes"
    if proc.returncode:
        last = (proc.stderr.strip().splitlines() or ["import failed"])[-1]
        return None, f"{python}: {last}"
    return proc.stdout.strip().splitlines()[-1], None


def run_peer(peer, python, *, max_examples=None, log=None):
    """One peer's result: version, seconds, cases, exit status, and its rows (``verdicts``)."""
    from refprune.conformance import check, xfails
    from refprune.conformance.peers import NOT_INSTALLED, verdicts

    version, why = probe(peer, python)
    if version is None:
        return {"status": NOT_INSTALLED, "why": why, "python": python}
    start = time.perf_counter()
    status, report = check.run(target=peer.module, backend=peer.backend, max_examples=max_examples, log=log,
                               python=python, path=[SOURCE_ROOT], implemented_only=True)
    seconds = time.perf_counter() - start
    if report is None:
        return {"status": "suite did not run", "why": f"pytest exit status {status}; see {log}", "python": python,
                "version": version, "seconds": seconds}
    entries = xfails.load(xfails.default_path(peer.module))
    rows = verdicts(report, entries)
    return {"status": "ran", "version": version, "python": python, "seconds": round(seconds, 1),
            "exitstatus": status, "cases": sum(r["cases"] for r in rows.values()),
            "unmatched_xfails": report.get("unmatched_xfails", []), "functions": rows}


def _write(path, text, overwrite):
    from refprune.io import atomic_write_bytes

    if Path(path).exists() and not overwrite:
        return f"{path} exists; pass --overwrite to replace it or choose another --out/--json"
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, text.encode("utf-8"))
    return None


def main(args):
    """The ``refprune peers`` command."""
    import tempfile

    from refprune.conformance.check import install_hint, missing_dependencies
    from refprune.conformance.peers import PEERS, markdown, summary_line

    unknown = [n for n in args.names if n not in PEERS]
    if unknown:
        args.parser.error(f"unknown peer(s) {', '.join(unknown)}; known: {', '.join(PEERS)}")
    missing = missing_dependencies()
    if missing:
        args.parser.exit(2, f"refprune peers: {install_hint(missing)}\n")
    json_path = args.json or str(Path(args.out).with_suffix(".json"))
    for path in (args.out, json_path):
        if Path(path).exists() and not (args.overwrite or args.update):
            args.parser.exit(2, f"refprune peers: error: {path} exists; pass --overwrite to replace it\n")
    names = args.names or list(PEERS)
    pythons = _pythons(args, names)
    logs = Path(args.logs or tempfile.mkdtemp(prefix="refprune-peers-"))
    logs.mkdir(parents=True, exist_ok=True)
    def one(name):
        print(f"refprune peers: {name} ({pythons[name]}) ...", flush=True)
        started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        res = {**run_peer(PEERS[name], pythons[name], max_examples=args.max_examples, log=logs / f"{name}.log"),
               "ran_at": started}
        timing = f" in {res['seconds']:.0f} s, {res.get('cases', 0)} cases" if res.get("seconds") is not None else ""
        print(f"refprune peers: {name} {res.get('version') or ''}: "
              f"{summary_line(res) if res['status'] != 'suite did not run' else res['why']}{timing}", flush=True)
        return res

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:  # each peer's suite is its own process
        results = dict(zip(names, pool.map(one, names)))
    if args.update and Path(json_path).exists():
        kept = json.loads(Path(json_path).read_text(encoding="utf-8"))
        results = {n: results.get(n, kept.get(n)) for n in PEERS if n in results or n in kept}
    replace = args.overwrite or args.update
    for problem in (_write(args.out, markdown(results), replace),
                    _write(json_path, json.dumps(results, indent=1) + "\n", replace)):
        if problem:
            args.parser.exit(2, f"refprune peers: error: {problem}\n")
    print(f"wrote {args.out} and {json_path} (suite logs in {logs})")
    unexplained = [n for n, r in results.items() for f in r.get("functions", {}).values() if f["unexplained"]]
    return 1 if unexplained else 0
