"""One fixture runs every test on every backend; unavailable ones skip with the reason."""

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
