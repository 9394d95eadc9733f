"""What a finished run writes beside its model: the keys of ``result.json``, the environment record, the run's files.

:data:`COMMON_KEYS` are the keys every method's result holds; :func:`environment` the
versions and thread counts that produced it; :func:`remove_run_files` clears a folder of
another run's files before a run replaces it (``--overwrite``).

Examples
--------
>>> from refprune import results
>>> env = results.environment()
>>> {"python", "numpy", "cpu_count"} <= set(env)
True
>>> "test_accuracy" in results.COMMON_KEYS
True
"""

from __future__ import annotations

import os
import platform

from . import io
from .checkpoints import CHECKPOINT

__all__ = ["COMMON_KEYS", "environment", "remove_run_files"]

#: result.json keys every method reports.
COMMON_KEYS = (
    "method", "dataset", "backend", "device", "seed", "model", "epochs", "steps", "train_seconds",
    "test_accuracy", "weight_sparsity", "architecture", "architecture_string", "config", "environment",
)


def remove_run_files(folder):
    """Remove the files a run wrote in ``folder`` (its result.json first: never a 'complete' half run)."""
    listed = []
    try:
        listed = list((io.read_json(os.path.join(folder, "result.json")).get("files") or {}).values())
    except (ValueError, OSError, AttributeError):
        pass
    for name in ("result.json", *listed, CHECKPOINT, "metrics.csv", io.FINAL, "plot.png"):
        path = os.path.join(folder, os.path.basename(str(name)))
        if os.path.isfile(path):
            os.remove(path)


def environment(backend=None):
    """The versions and thread counts that produced a result (``result.json``'s ``environment``).

    ``backend`` (an adapter) adds its library's version and threads.
    """
    from importlib import metadata

    def version(dist):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    env = {
        "refprune": version("refprune"),
        "python": platform.python_version(),
        "numpy": version("numpy"),
        "array_api_compat": version("array-api-compat"),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    try:
        from threadpoolctl import threadpool_info

        env["blas_threads"] = max((p.get("num_threads", 0) for p in threadpool_info()), default=None)
    except ImportError:
        env["blas_threads"] = None
    if backend is not None:
        env.update(backend.versions())
    return env
