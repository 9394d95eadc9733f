"""The JAX implementation (``jax_impl.py``) fails exactly where ``xfails/jax_impl.txt`` says.

This runs ``refprune check`` on it with ``--target-backend jax``, which takes minutes (JAX
compiles every operation for every new shape the suite draws), so it is opt-in: set
``REFPRUNE_META_JAX=1`` (and have jax installed). The recorded findings are JAX's
autodiff conventions at kinks (``d|x|/dx = 1`` at 0, ``maximum`` splitting a tie's
gradient) and ``reshape(m, -1)`` failing on an empty array.
"""

from __future__ import annotations

import os

import pytest

from refprune.conformance import check
from refprune.conformance import config as cfg

pytest.importorskip("jax", reason="jax is not installed (pip install 'refprune[jax]')")

pytestmark = pytest.mark.skipif(
    os.environ.get("REFPRUNE_META_JAX", "") != "1" or bool(os.environ.get(cfg.ENV_TARGET, "").strip()),
    reason="slow (minutes): set REFPRUNE_META_JAX=1 to check the JAX implementation",
)

JAX_IMPL = "refprune.conformance.meta_tests.jax_impl"


def test_jax_impl_deviates_exactly_where_recorded(tmp_path):
    status, report = check.run(target=JAX_IMPL, backend="jax", profile="quick", log=tmp_path / "check.log")
    assert report is not None, (tmp_path / "check.log").read_text()[-3000:]
    assert report["xfails_file"] and report["xfails_file"].endswith("jax_impl.txt")
    assert report["unmatched_xfails"] == [], f"stale lines: {report['unmatched_xfails']}"
    tests = report["tests"]
    xpassed = [t["id"] for t in tests if t["outcome"] == "xpassed"]
    unexpected = [t["id"] for t in tests if t["outcome"] in ("failed", "error") and not t.get("missing")]
    assert not xpassed and not unexpected, (xpassed, unexpected)
    rows = dict(check.table(report))
    assert rows["hard_concrete_sample"] == {"values": "pass", "properties": "pass", "gradients": "pass", "errors": "pass"}
    assert rows["l1_penalty"]["gradients"].startswith("pass (xfails)")
