"""Settings for a test session run from the repository (tests/ and conformance/)."""

from __future__ import annotations

import pytest


def pytest_configure(config):
    """One BLAS and one torch thread for the whole session.

    The tests' arrays are small, so threads buy nothing, and on a 2-core machine NumPy's
    and torch's thread pools spinning against each other made whole files 5-30x slower.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # threadpoolctl comes with scikit-learn, in the test extra
        pass
    else:
        config._refprune_thread_limits = threadpool_limits(1)
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)


#: Parameters that name the backend a test runs on (a backend name, or a conformance target spec).
_BACKEND_PARAMS = ("backend", "any_backend", "backend_name", "other", "name", "target")


def _item_backend(item):
    params = getattr(getattr(item, "callspec", None), "params", {})
    for key in _BACKEND_PARAMS:
        value = params.get(key)
        value = getattr(value, "backend", value)
        if isinstance(value, str):
            return value
    return None


@pytest.hookimpl(trylast=True)  # after -k / -m, so that the count is of the selected tests
def pytest_collection_modifyitems(config, items):
    """Leave out the tests of backends this machine cannot run, and say so once.

    Without a GPU that is every cupy and torch-cuda case (about 3,000): listed as skips
    they buried the failures in rows of ``s``. ``scripts/gpu_check.sh`` runs them where
    there is a GPU.
    """
    from refprune import backends

    reasons = {name: backends.unavailable_reason(name) for name in backends.NAMES}
    keep, dropped = [], []
    for item in items:
        (dropped if reasons.get(_item_backend(item)) else keep).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
        unavailable = sorted({_item_backend(item) for item in dropped})
        config._refprune_unavailable = (len(dropped), {name: reasons[name] for name in unavailable})


def pytest_sessionfinish(session):
    """An xdist worker sends what it left out to the controller, which prints it."""
    left_out = getattr(session.config, "_refprune_unavailable", None)
    if left_out and hasattr(session.config, "workeroutput"):
        session.config.workeroutput["refprune_unavailable"] = left_out


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    left_out = getattr(node, "workeroutput", {}).get("refprune_unavailable")
    if left_out:
        node.config._refprune_unavailable = left_out  # every worker collects every test: one is enough


def pytest_terminal_summary(terminalreporter, config):
    left_out = getattr(config, "_refprune_unavailable", None)
    if left_out and not hasattr(config, "workeroutput"):
        count, reasons = left_out
        terminalreporter.write_line(
            f"{count} tests left out for backends this machine cannot run: "
            + "; ".join(f"{name} ({reason})" for name, reason in reasons.items())
        )
