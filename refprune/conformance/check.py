"""``refprune check``: run the conformance suite against a target, then say what it found.

Runs ``python -m pytest --pyargs refprune.conformance`` in a subprocess with the
``REFPRUNE_*`` environment set and a JSON report requested, its output going to a log
file, and prints:

* the protocol version, the target, its backend and the profile;
* one row per protocol function the target implements, with a column per kind of
  check (``values``, ``properties``, ``gradients``, ``errors``), each ``pass``,
  ``FAIL``, ``not implemented`` (the name, or for ``gradients`` the ``_grad``, is
  missing), ``skip`` (could not run here), ``not run`` (the test stopped at a failure of
  another kind first) or ``-`` (the protocol has no such check), with a line saying what
  each mark in the table means; the functions the target does not implement on one line;
* one overall line;
* when something failed, the first failure of each function with its reproducer,
  and the name of the log file with everything. The log ends with a line that explains
  pytest's failure count (the tests of functions the target does not implement fail too).

A misspelt target or an unknown backend is one line, before the suite runs. The exit
status is 0 when every check of every implemented function passes (a target need not
implement every name, nor every ``_grad``), 1 when one fails, 2 when the suite cannot run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from refprune.conformance import config as cfg

PASS, FAIL, MISSING, SKIP, NONE, NOT_RUN = "pass", "FAIL", "not implemented", "skip", "-", "not run"

#: What the two marks that are not outcomes mean (printed under the table when they appear).
MARKS = {NONE: "the protocol has no such check for this function",
         NOT_RUN: "the tests with these checks stopped at a failure of another kind first"}

#: Lines of each function's first failure printed (the log file has all of it).
FAILURE_LINES = 40


def missing_dependencies():
    """The packages ``refprune check`` needs that are not installed (the ``check`` extra)."""
    return [name for name in ("pytest", "hypothesis") if importlib.util.find_spec(name) is None]


def install_hint(missing):
    return (f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed; install the check "
            "extra: pip install 'refprune[check]' (in a checkout: pip install -e '.[check]')")


def target_problem(target, backend):
    """One line saying why ``target`` on ``backend`` cannot be checked here, or ``None``."""
    from refprune import backends

    names = [b.strip() for b in (backend or "").split(",") if b.strip()]
    try:
        cfg.check_backend_names(names, setting=f"--target-backend {backend}")
    except ValueError as exc:
        return str(exc)
    for name in names:
        reason = backends.unavailable_reason(name)
        if reason is not None:
            return f"--target-backend {name} cannot run here: {reason}"
    for module in cfg.target_modules({cfg.ENV_TARGET: target}):
        sys.path.insert(0, os.getcwd())
        try:
            from refprune.conformance.target import load_module

            load_module(module)
        except ImportError as exc:
            cause = exc.__cause__ or exc
            return (f"cannot import the target {module!r} ({type(cause).__name__}: {cause}); give an importable "
                    f"module name (the current directory {os.getcwd()} is searched)")
        except AttributeError as exc:
            return f"the target {module!r} has no such attribute: {exc}"
        except Exception as exc:  # noqa: BLE001 - whatever the target's import raises is the answer
            return f"importing the target {module!r} raised {type(exc).__name__}: {exc}"
        finally:
            sys.path.remove(os.getcwd())
    return None


def resolve_xfails(setting):
    """``--xfails FILE`` as an absolute path (the suite runs in a temporary directory), and one line
    saying why it cannot be used, or ``None``. ``none`` and an unset setting are passed through."""
    if not setting or str(setting).strip().lower() == "none":
        return setting, None
    path = Path(setting).expanduser().resolve()
    if not path.is_file():
        return setting, f"--xfails {setting}: no such file ({path}); give a file of known deviations, or 'none'"
    return str(path), None


def run(*, target, backend=None, profile=None, max_examples=None, xfails=None, checks=None, pytest_args=(),
        log=None, quiet=False, python=None, path=(), implemented_only=False):
    """Run the suite; return ``(pytest exit status, report dict or None)``.

    The suite's output goes to the file ``log`` (to the terminal when ``None``); a relative
    ``xfails`` is relative to the current directory. ``python`` is the interpreter that
    runs it (default this one; ``refprune peers`` gives each peer's environment) and
    ``path`` folders put first on its ``PYTHONPATH``; ``implemented_only`` collects only the
    tests of the functions the target implements.
    """
    xfails, _ = resolve_xfails(xfails)
    env = dict(os.environ)
    env[cfg.ENV_TARGET] = target
    for name, value in ((cfg.ENV_BACKEND, backend), (cfg.ENV_PROFILE, profile), (cfg.ENV_XFAILS, xfails),
                        (cfg.ENV_CHECKS, checks)):
        if value:
            env[name] = str(value)
    if max_examples is not None:
        env[cfg.ENV_MAX_EXAMPLES] = str(max_examples)
    if implemented_only:
        env[cfg.ENV_IMPLEMENTED_ONLY] = "1"
    if "jax" in (backend or "").split(",") and "JAX_ENABLE_X64" not in env:
        env["JAX_ENABLE_X64"] = "1"  # the float64 half of the suite needs JAX's 64-bit mode
    # the target may live in the caller's directory: keep it importable from the temp cwd
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [*map(str, path), os.getcwd(), env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory(prefix="refprune-check-") as tmp:
        report_path = Path(tmp) / "report.json"
        env[cfg.ENV_REPORT] = str(report_path)
        # --confcutdir: only the suite's own conftest, as in an installed wheel (not a checkout's root one)
        cmd = [python or sys.executable, "-m", "pytest", "--pyargs", "refprune.conformance", "-p", "no:cacheprovider",
               "--import-mode=importlib", f"--confcutdir={cfg.protocol_document().parent}", "-q", "--tb=short",
               *(["--no-header", "-rN"] if quiet else []), *pytest_args]
        if log is None:
            status = subprocess.run(cmd, env=env, cwd=tmp, check=False).returncode
        else:
            with open(log, "w", encoding="utf-8") as out:
                out.write(f"$ {' '.join(cmd)}\n")
                out.flush()
                status = subprocess.run(cmd, env=env, cwd=tmp, stdout=out, stderr=subprocess.STDOUT,
                                        check=False).returncode
        report = json.loads(report_path.read_text(encoding="utf-8")) if report_path.exists() else None
    return status, report


def _empty():
    return {"passed": 0, "failed": 0, "missing": 0, "xfailed": 0, "skipped": 0, "not_run": 0}


def cells(report):
    """``{row: {kind: counts}}`` and ``{row: first failing test}`` from a report."""
    counts = {row: {kind: _empty() for kind in cfg.KINDS} for row in cfg.rows()}
    first = {}
    for test in report["tests"]:
        row = test.get("row") or (cfg.row_of(test["functions"][0]) if test.get("functions") else None)
        if row is None:
            continue
        kinds = test.get("kinds") or list(cfg.test_kinds(test["functions"], test["id"]))
        c = counts.setdefault(row, {kind: _empty() for kind in cfg.KINDS})
        outcome = test["outcome"]
        if outcome in ("failed", "error", "xpassed"):
            kind = test.get("kind") or kinds[0]
            missing = test.get("missing", "does not implement" in test.get("message", ""))
            c[kind]["missing" if missing else "failed"] += 1
            if not missing:
                first.setdefault(row, test)
                for other in kinds:
                    if other != kind:
                        c[other]["not_run"] += 1
        elif outcome in ("passed", "xfailed", "skipped"):
            for kind in kinds:
                c[kind][outcome] += 1
    return counts, first


def verdict(c):
    """``pass`` / ``FAIL`` / ``not implemented`` / ``skip`` / ``not run`` / ``-`` for one cell's counts."""
    if c["failed"]:
        return FAIL
    if c["passed"] or c["xfailed"]:  # a _grad's bad-input cases may be missing where the function's pass
        return PASS + (" (xfails)" if c["xfailed"] else "")
    if c["missing"]:
        return MISSING
    if c["skipped"]:
        return SKIP
    if c["not_run"]:
        return NOT_RUN
    return NONE


def table(report):
    """Rows ``(function, {kind: verdict})`` for every protocol function, in protocol order."""
    counts, _ = cells(report)
    return [(row, {kind: verdict(c[kind]) for kind in cfg.KINDS}) for row, c in counts.items()]


def implemented(verdicts):
    return any(v not in (MISSING, NONE, SKIP, NOT_RUN) for v in verdicts.values()) and verdicts["values"] != MISSING


def summarize(rows):
    """``(lines of the table, overall line, exit status)``."""
    shown = [(n, v) for n, v in rows if implemented(v)]
    absent = [n for n, v in rows if not implemented(v)]
    width = max([len(n) for n, _ in shown] + [len("function")])
    lines = [f"{'function':{width}s}  " + "  ".join(f"{k:16s}" for k in cfg.KINDS).rstrip()]
    for name, v in shown:
        lines.append(f"{name:{width}s}  " + "  ".join(f"{v[k]:16s}" for k in cfg.KINDS).rstrip())
    used = {mark for _, v in shown for mark in v.values()}
    lines += [f"{mark}: {meaning}" for mark, meaning in MARKS.items() if mark in used]
    if absent:
        lines.append(f"not implemented ({len(absent)} of {len(rows)}): {', '.join(absent)}")
    failing = [n for n, v in shown if FAIL in v.values()]
    no_grad = [n for n, v in shown if v["gradients"] == MISSING]
    if failing:
        overall = (f"overall: FAIL - {len(failing)} of {len(shown)} implemented functions fail a check: "
                   f"{', '.join(failing)}")
        status = 1
    elif shown:
        overall = f"overall: pass - every check of the {len(shown)} implemented functions passes"
        if no_grad:
            overall += f" (gradients not implemented: {', '.join(no_grad)})"
        status = 0
    else:
        overall = "overall: nothing to check - the target implements no protocol function"
        status = 1
    return lines, overall, status


def format_table(rows):
    lines, overall, _ = summarize(rows)
    return "\n".join([*lines, overall])


def failure_count_note(report, target):
    """The line that ends the log: pytest's failures split into functions the target lacks and real failures."""
    failed = [t for t in report["tests"] if t["outcome"] in ("failed", "error", "xpassed")]
    missing = sum(1 for t in failed if t.get("missing", "does not implement" in t.get("message", "")))
    real = len(failed) - missing
    if not failed:
        return "refprune check: pytest reports no failure"
    if not missing:
        return f"refprune check: pytest's {len(failed)} failed are all real failures (see the table)"
    return (f"refprune check: of pytest's {len(failed)} failed, {missing} are tests of protocol functions that "
            f"{target} does not implement (the table says 'not implemented': a target need not implement every "
            f"name) and {real} {'is a real failure' if real == 1 else 'are real failures'}")


def first_failures(report, limit=FAILURE_LINES):
    """The first failure of each failing function: its test id and message (with the reproducer)."""
    _, first = cells(report)
    out = []
    for row in cfg.rows():
        test = first.get(row)
        if test is None:
            continue
        text = (test.get("error") or test.get("message") or "").strip().splitlines()
        more = f"\n    ... ({len(text) - limit} more lines in the log)" if len(text) > limit else ""
        body = "\n".join("    " + line for line in text[:limit])
        out.append(f"{row}: first failure in {test['id']}\n{body}{more}")
    return out


def _log_path(target, log):
    if log:
        return Path(log)
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in target)[:80]
    path = Path.cwd() / f"refprune-check-{safe}.log"
    try:
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError:
        path = Path(tempfile.gettempdir()) / path.name
    return path


def main(args):
    """The ``refprune check`` command (``args`` from argparse)."""
    missing = missing_dependencies()
    if missing:
        print(f"refprune check: {install_hint(missing)}", file=sys.stderr)
        return 2
    backend = args.target_backend
    problem = target_problem(args.target, backend) or resolve_xfails(args.xfails)[1]
    if problem is not None:
        print(f"refprune check: {problem}", file=sys.stderr)
        return 2
    log = _log_path(args.target, getattr(args, "log", None))
    shown_backend = backend or ("every backend" if args.target == cfg.DEFAULT_TARGET else "numpy")
    print(f"refprune check: oracle protocol {cfg.PROTOCOL_VERSION} ({cfg.protocol_document()}); target {args.target} "
          f"on {shown_backend}; profile {args.profile}; running the suite (log: {log}) ...", flush=True)
    status, report = run(
        target=args.target,
        backend=backend,
        profile=args.profile,
        max_examples=args.max_examples,
        xfails=args.xfails,
        checks=getattr(args, "checks", None),
        pytest_args=args.pytest_args,
        log=log,
    )
    if report is None:
        tail = Path(log).read_text(encoding="utf-8", errors="replace").strip().splitlines()[-5:]
        print(f"refprune check: the suite did not run (pytest exit status {status}); the end of {log}:", file=sys.stderr)
        for line in tail:
            print(f"  {line}", file=sys.stderr)
        return 2
    lines, overall, code = summarize(table(report))
    with open(log, "a", encoding="utf-8") as out:
        out.write(f"\n{failure_count_note(report, args.target)}\n{overall}\n")
    print()
    print("\n".join(lines))
    print(overall)
    failures = first_failures(report)
    if failures:
        print()
        print("\n\n".join(failures))
    if report.get("unmatched_xfails"):
        print(f"\nlines of {report['xfails_file']} that matched no test: {', '.join(report['unmatched_xfails'])}")
        code = code or 1
    print(f"\nfull log: {log}")
    return code
