"""One fixture runs every test on every backend (unavailable ones skip with the reason), and shared helpers."""

from __future__ import annotations

import numpy as np
import pytest

from refprune import backends
from refprune.conformance.tolerances import assert_close


@pytest.fixture(params=backends.DEFAULT_TEST_NAMES)
def backend(request):
    """A refprune backend adapter; skips with the reason when it cannot run here."""
    reason = backends.unavailable_reason(request.param)
    if reason is not None:
        pytest.skip(f"backend {request.param}: {reason}")
    return backends.get(request.param)


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    return request.param


@pytest.fixture
def rng():
    """A fixed-seed NumPy generator for host test data."""
    return np.random.default_rng(0)


@pytest.fixture
def close(backend):
    """``close(actual_backend_array, expected_host, dtype)`` with the tolerance table."""

    def check(actual, expected, dtype="float64", context="", scale=1.0):
        assert_close(backend.to_numpy(actual), expected, dtype=dtype, context=context, scale=scale)

    return check


@pytest.fixture
def interrupt_after(monkeypatch):
    """``interrupt_after(steps)``: the engine sees a Ctrl-C at its ``steps``-th poll (once per step, once per epoch end).

    ``monkeypatch.undo()`` ends it.
    """
    from refprune import engine

    def arm(steps):
        class Flag:
            polls = 0

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

            @property
            def raised(self):
                Flag.polls += 1
                return Flag.polls >= steps

        monkeypatch.setattr(engine, "_SigintFlag", Flag)

    return arm


@pytest.fixture
def short_demo(monkeypatch):
    """``refprune demo`` with each method shortened (one epoch on 60 examples) so that it takes seconds."""
    from refprune.cli import run as demo_cli

    real = demo_cli.make_spec

    def short(name, **settings):
        small = {"epochs": 1, "subset": 60}
        if name == "lottery":
            small["rounds"] = 1
        if name == "binary":
            small["hidden"] = "32"
        return real(name, **{**settings, **small})

    monkeypatch.setattr(demo_cli, "make_spec", short)


@pytest.fixture
def alive_in_dense_chain():
    """A plain NumPy reference: units alive per layer (its input features) of a chain of boolean
    ``(in, out)`` nonzero patterns: reachable from every input and reaching every output."""

    def alive(patterns):
        live_in = [np.ones(patterns[0].shape[0], dtype=bool)]
        for p in patterns:
            live_in.append((p & live_in[-1][:, None]).any(axis=0))
        live_out = [np.ones(patterns[-1].shape[1], dtype=bool)]
        for p in reversed(patterns):
            live_out.insert(0, (p & live_out[0][None, :]).any(axis=1))
        return [int((i & o).sum()) for i, o in zip(live_in[:-1], live_out[:-1])]

    return alive


#: Short runs on digits, in float64, with settings that remove units, for the tests of every
#: method's final network (compaction, export); a method registered later runs with its defaults.
#: (Two epochs close no L0 gate: the gated layers' compaction is tested on random gates.)
SHORT_RUN = {"data": "digits", "subset": 200, "epochs": 2, "dtype": "float64", "quiet": True, "threads": 1}
METHOD_SETTINGS = {
    "rvsm": {"lam": 2e-3},
    "magnitude": {"model": "mlp-300-100", "criteria": "weight,unit", "tolerance": 1.0},
    "lottery": {"rounds": 2, "dense_rate": 0.5, "criterion": "unit"},
    "binary": {"hidden": "64", "on_values": "1"},
}


@pytest.fixture(scope="session")
def method_run(tmp_path_factory):
    """``method_run(name) -> result``: the method's short run (:data:`SHORT_RUN`), run once per session."""
    from refprune import methods

    done = {}

    def get(name):
        if name not in done:
            out = tmp_path_factory.mktemp(f"run-{name}")
            done[name] = methods.run(name, out=str(out), overwrite=True, **SHORT_RUN, **METHOD_SETTINGS.get(name, {}))
        return done[name]

    return get


def pytest_collection_modifyitems(items):
    """A test that uses its module's ``default_run`` (a method's whole default run on digits) is ``slow``."""
    for item in items:
        if "default_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
