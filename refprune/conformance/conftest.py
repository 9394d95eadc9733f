"""pytest plumbing of the conformance suite: target selection, profiles, xfails, report.

Works from the repository (``pytest`` at the root) and from an installed copy
(``pytest --pyargs refprune.conformance``); shared code is imported absolutely from
``refprune.conformance``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from refprune.conformance import config as cfg
from refprune.conformance import xfails
from refprune.conformance.target import MissingFunction, Target, reference

_HERE = Path(__file__).resolve().parent
_STATE = pytest.StashKey()
_CALLS_BEFORE = pytest.StashKey()


class _State:
    def __init__(self):
        self.target = cfg.target_name()
        self.modules = cfg.target_modules()
        self.specs = cfg.target_specs()
        self.profile = cfg.profile_name()
        self.settings = cfg.hypothesis_settings()
        self.checks = cfg.checks_selected()
        setting = os.environ.get(cfg.ENV_XFAILS)
        self.xfails_paths = {m: xfails.resolve_path(m, setting) for m in self.modules}
        self.xfails_by_module = {m: xfails.load(path) for m, path in self.xfails_paths.items()}
        self.xfails_path = self.xfails_paths[self.modules[0]]
        self.xfails = self.xfails_by_module[self.modules[0]]
        self.used = set()
        self.implemented_only = os.environ.get(cfg.ENV_IMPLEMENTED_ONLY, "").strip() not in ("", "0")
        self.modules_loaded = {}
        self.items = {}
        self.outcomes = {}


def _ours(item):
    try:
        return _HERE in Path(str(item.path)).resolve().parents
    except (OSError, ValueError):
        return False


def pytest_ignore_collect(collection_path, config):
    """The meta-tests test the suite itself, only for the default target: for any other target
    they are not even collected (collecting them imports torch)."""
    if cfg.target_name() != cfg.DEFAULT_TARGET and collection_path.name == "meta_tests" and \
            _HERE in collection_path.resolve().parents:
        return True
    return None


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: deselected by -m 'not slow' (the quick subset of refprune's tests)")
    config.addinivalue_line(
        "markers",
        "protocol(*names, checks=None): oracle-protocol functions a conformance test exercises, its own first "
        "(a test of x_grad counts under x); checks: the kinds of check it makes (values, properties, "
        "gradients, errors), by default errors for bad-input tests, gradients for a _grad, else values",
    )
    try:
        state = _State()
    except (ValueError, FileNotFoundError) as exc:  # a bad REFPRUNE_* setting: one line, no INTERNALERROR
        raise pytest.UsageError(f"refprune conformance: {exc}") from None
    config.stash[_STATE] = state
    _CURRENT[:] = [state]
    cfg.load_profile()


def pytest_report_header(config):
    state = config.stash[_STATE]
    known = {
        cfg.ENV_TARGET: cfg.DEFAULT_TARGET,
        cfg.ENV_BACKEND: "every backend" if state.target == cfg.DEFAULT_TARGET else "numpy",
        cfg.ENV_PROFILE: "ci",
        cfg.ENV_MAX_EXAMPLES: "the profile's",
        cfg.ENV_XFAILS: "xfails/<target>.txt",
        cfg.ENV_REPORT: "none",
        cfg.ENV_CHECKS: "all kinds",
    }
    env = cfg.environ_settings()
    lines = [
        f"refprune conformance (oracle protocol {cfg.PROTOCOL_VERSION}): target {state.target} on "
        f"{', '.join(sorted({s.backend for s in state.specs}, key=[s.backend for s in state.specs].index))}; "
        f"profile {state.profile} {state.settings}; xfails {state.xfails_path or 'none'}"
    ]
    for name in sorted(set(known) | set(env)):
        value = f"{env[name]!r}" if name in env else f"(unset: {known[name]})"
        lines.append(f"  {name}={value}")
    return lines


def pytest_generate_tests(metafunc):
    if "target" in metafunc.fixturenames:
        specs = metafunc.config.stash[_STATE].specs
        metafunc.parametrize("target", specs, ids=[s.id for s in specs], indirect=True, scope="session")


@pytest.fixture(scope="session")
def target(request):
    """The implementation under test (a :class:`~refprune.conformance.target.Target`)."""
    from refprune import backends

    spec = request.param
    reason = backends.unavailable_reason(spec.backend)
    if reason is not None:
        pytest.skip(f"backend {spec.backend}: {reason}")
    return Target(spec.module, spec.backend)


@pytest.fixture(scope="session")
def ref():
    """The float64 NumPy reference (refprune on NumPy)."""
    return reference()


def _protocol_names(item):
    return [n for m in item.iter_markers("protocol") for n in m.args]


def _declared_checks(item):
    for m in item.iter_markers("protocol"):
        if m.kwargs.get("checks"):
            return m.kwargs["checks"]
    return None


def _item_target(item):
    callspec = getattr(item, "callspec", None)
    spec = callspec.params.get("target") if callspec is not None else None
    return spec if isinstance(spec, cfg.TargetSpec) else None


def _implemented(state, item, names):
    """False for a test of a function the target lacks, when ``REFPRUNE_IMPLEMENTED_ONLY`` is set."""
    spec = _item_target(item)
    if not state.implemented_only or not names or spec is None:
        return True
    from refprune.conformance.target import load_module

    if spec.module not in state.modules_loaded:
        state.modules_loaded[spec.module] = load_module(spec.module)
    return callable(getattr(state.modules_loaded[spec.module], names[0], None))


def pytest_collection_modifyitems(config, items):
    state = config.stash[_STATE]
    keep, dropped = [], []
    for item in items:
        if not _ours(item):
            keep.append(item)
            continue
        test_id = xfails.suite_id(item.nodeid)
        names = _protocol_names(item)
        kinds = cfg.test_kinds(names, item.originalname or item.name, _declared_checks(item))
        if names and not set(kinds) & set(state.checks) or not _implemented(state, item, names):
            dropped.append(item)
            continue
        keep.append(item)
        spec = _item_target(item)
        state.items[item.nodeid] = {
            "id": test_id,
            "functions": names,
            "row": cfg.row_of(names[0]) if names else None,
            "kinds": list(kinds),
            "target": spec.module if spec else None,
            "backend": spec.backend if spec else None,
        }
        module = spec.module if spec else state.modules[0]
        for entry in state.xfails_by_module.get(module, ()):
            if xfails.matches(entry.test_id, test_id):
                state.used.add((module, entry.test_id))
                item.add_marker(pytest.mark.xfail(reason=entry.reason, strict=True))
                break
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item):
    target = getattr(item, "funcargs", {}).get("target")
    if target is None:
        return
    item.stash[_CALLS_BEFORE] = target.calls
    names = _protocol_names(item)
    missing = [n for n in names if not target.has(n)]
    if not missing:
        return
    if names[0] in missing:
        msg = (
            f"the target {target.module_name} does not implement {names[0]} (oracle protocol "
            f"{cfg.PROTOCOL_VERSION}); this test needs it, tests of other functions still run"
        )
        raise MissingFunction(msg)
    pytest.skip(f"the target {target.module_name} does not implement {', '.join(missing)}, which this test of "
                f"{names[0]} also uses")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    info = _CURRENT[0].items.get(item.nodeid) if _CURRENT else None
    if info is not None and call.when == "call" and _CALLS_BEFORE in item.stash:
        info["calls"] = item.funcargs["target"].calls - item.stash[_CALLS_BEFORE]  # the cases the target ran
    if info is None or call.excinfo is None or call.when != "call" or call.excinfo.errisinstance(pytest.skip.Exception):
        return
    exc = call.excinfo.value
    kinds = info["kinds"]
    kind = getattr(exc, "kind", None)
    if len(kinds) == 1:
        kind = kinds[0]
    elif kind not in kinds:  # a property assertion of the test, or the target crashed (its first kind)
        kind = "properties" if isinstance(exc, AssertionError) and "properties" in kinds else kinds[0]
    report.refprune_kind = kind
    report.refprune_missing = isinstance(exc, MissingFunction)
    text = str(exc) if isinstance(exc, AssertionError) else f"{type(exc).__name__}: {exc}"
    report.refprune_error = text[-6000:]


_RANK = {"passed": 0, "skipped": 1, "xfailed": 2, "xpassed": 3, "failed": 4, "error": 5}
_CURRENT = []  # the running session's state (reset by every pytest_configure)


def _phase_outcome(report):
    if hasattr(report, "wasxfail"):
        return "xfailed" if report.skipped else "xpassed"
    if report.failed:
        if "XPASS(strict)" in (report.longreprtext or ""):
            return "xpassed"
        return "failed" if report.when == "call" else "error"
    if report.skipped:
        return "skipped"
    return "passed" if report.when == "call" else None


def pytest_runtest_logreport(report):
    if not _CURRENT or report.nodeid not in _CURRENT[0].items:
        return
    outcome = _phase_outcome(report)
    if outcome is None:
        return
    outcomes = _CURRENT[0].outcomes
    previous = outcomes.get(report.nodeid)
    if previous is None or _RANK[outcome] > _RANK[previous["outcome"]]:
        entry = {"outcome": outcome}
        if outcome in ("failed", "error", "skipped", "xpassed"):
            entry["message"] = (report.longreprtext or "")[-4000:]
        for key in ("kind", "missing", "error"):
            if hasattr(report, f"refprune_{key}"):
                entry[key] = getattr(report, f"refprune_{key}")
        outcomes[report.nodeid] = entry


def pytest_terminal_summary(terminalreporter, config):
    state = config.stash[_STATE]
    for module, entries in state.xfails_by_module.items():
        unused = [e for e in entries if (module, e.test_id) not in state.used]
        if state.items and unused:
            terminalreporter.write_line(
                f"refprune conformance: {len(unused)} line(s) of {state.xfails_paths[module]} matched no collected "
                "test: " + ", ".join(e.test_id for e in unused)
            )


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get(cfg.ENV_REPORT)
    state = session.config.stash.get(_STATE, None)
    if not path or state is None:
        return
    tests = []
    for nodeid, info in state.items.items():
        result = state.outcomes.get(nodeid, {"outcome": "deselected"})
        tests.append({"nodeid": nodeid, **info, **result})
    report = {
        "protocol": cfg.PROTOCOL_VERSION,
        "target": state.target,
        "backends": sorted({s.backend for s in state.specs}, key=[s.backend for s in state.specs].index),
        "profile": state.profile,
        "checks": list(state.checks),
        "settings": state.settings,
        "environment": cfg.environ_settings(),
        "xfails_file": str(state.xfails_path) if state.xfails_path else None,
        "unmatched_xfails": [e.test_id for e in state.xfails if (state.modules[0], e.test_id) not in state.used],
        "xfails_files": {m: str(p) if p else None for m, p in state.xfails_paths.items()},
        "unmatched_xfails_by_target": {
            m: [e.test_id for e in entries if (m, e.test_id) not in state.used]
            for m, entries in state.xfails_by_module.items()
        },
        "exitstatus": int(exitstatus),
        "tests": tests,
    }
    Path(path).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
