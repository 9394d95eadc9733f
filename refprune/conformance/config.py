"""What the suite tests and how hard: the ``REFPRUNE_*`` environment and the profiles.

========================== ===========================================================
``REFPRUNE_TARGET``        module (or ``module:attribute``) implementing the oracle
                           protocol; default ``refprune`` on every backend
``REFPRUNE_TARGET_BACKEND`` array type the target takes and returns: ``numpy``,
                           ``torch``, ``torch-cuda``, ``cupy``, ``array-api-strict``,
                           ``jax`` (comma-separated for several); default ``numpy``
                           for a named target and every backend but the opt-in ones
                           (``jax``) for ``refprune``
``REFPRUNE_PROFILE``       ``ci`` (default: few derandomized examples) or ``thorough``
                           (``quick``: ``ci`` without shrinking, for the meta-tests)
``REFPRUNE_MAX_EXAMPLES``  override the profile's examples per test
``REFPRUNE_XFAILS``        an xfails file to use instead of ``xfails/<target>.txt``;
                           ``none`` for none
``REFPRUNE_REPORT``        write a JSON report of every conformance test's outcome here
``REFPRUNE_CHECKS``        the kinds of check to run, comma-separated, of ``values``,
                           ``properties``, ``gradients``, ``errors`` (default: all)
``REFPRUNE_IMPLEMENTED_ONLY`` ``1``: collect only the tests of the functions the target
                           implements (``refprune peers``: no "not implemented" rows)
========================== ===========================================================

``REFPRUNE_TARGET`` may name several modules, comma-separated: each is then a target
of its own (test ids ``<module>-<backend>``), for comparing implementations in one run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

ENV_TARGET = "REFPRUNE_TARGET"
ENV_BACKEND = "REFPRUNE_TARGET_BACKEND"
ENV_PROFILE = "REFPRUNE_PROFILE"
ENV_MAX_EXAMPLES = "REFPRUNE_MAX_EXAMPLES"
ENV_XFAILS = "REFPRUNE_XFAILS"
ENV_REPORT = "REFPRUNE_REPORT"
ENV_CHECKS = "REFPRUNE_CHECKS"
ENV_IMPLEMENTED_ONLY = "REFPRUNE_IMPLEMENTED_ONLY"

#: The version of the oracle protocol this suite checks (``docs/protocol.md``, shipped
#: in the wheel as ``refprune/conformance/protocol.md``; its ``protocol-version:`` line).
PROTOCOL_VERSION = "v2"


def protocol_document():
    """The path of the protocol document shipped with the suite (``refprune/conformance/protocol.md``)."""
    from pathlib import Path

    return Path(__file__).resolve().parent / "protocol.md"


def documented_version(path=None):
    """The version the protocol document declares on its ``protocol-version:`` line (``None`` if absent)."""
    path = protocol_document() if path is None else path
    try:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("protocol-version:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None

#: The kinds of check, the columns of ``refprune check``: values against the float64
#: reference, properties (laws that need no reference: exact counts, idempotence,
#: ranges, monotonicity, the sampler's law), gradients (a ``_grad`` function's values
#: and central differences / autograd), errors (the documented exceptions for bad input).
KINDS = ("values", "properties", "gradients", "errors")

DEFAULT_TARGET = "refprune"

#: Hypothesis settings of each profile (``deadline=None``: timings never fail a test).
#: ``quick`` is ``ci`` without shrinking, for the meta-tests, where only pass/fail matters.
PROFILES = {
    "ci": {"max_examples": 15, "derandomize": True},
    "thorough": {"max_examples": 400, "derandomize": False},
    "quick": {"max_examples": 15, "derandomize": True, "shrink": False},
}

#: The oracle protocol (docs/protocol.md), family by family: what a target may implement.
PROTOCOL = {
    "gates": (
        "hard_concrete_quantile",
        "hard_concrete_sample",
        "hard_concrete_sample_grad",
        "hard_concrete_mode",
        "hard_concrete_cdf",
        "hard_concrete_prob_nonzero",
        "hard_concrete_prob_nonzero_grad",
        "expected_l0",
    ),
    "regularizers": (
        "l0_penalty",
        "l0_penalty_grad",
        "l2_penalty",
        "l2_penalty_grad",
        "l1_penalty",
        "l1_penalty_grad",
        "group_lasso_penalty",
        "group_lasso_penalty_grad",
        "rvsm_penalty",
        "rvsm_penalty_grad",
    ),
    "thresholds": (
        "hard_threshold",
        "hard_threshold_grad",
        "rvsm_threshold",
        "soft_threshold",
        "soft_threshold_grad",
        "binarize",
        "binarize_grad",
    ),
    "masks": (
        "prune_count",
        "magnitude_mask",
        "global_magnitude_mask",
        "structured_mask",
        "random_mask",
        "mask_from_weights",
        "apply_mask",
        "sparsity",
    ),
    "schedules": ("constant_sparsity", "polynomial_sparsity", "imp_sparsity"),
}

#: The oracle protocol v1 primitives (docs/protocol.md): added families, and
#: the schedule variants appended to v0's schedules.
PROTOCOL.update({
    "patterns": ("nm_mask", "block_mask"),
    "budgets": ("layer_densities",),
    "scores": ("saliency_scores", "taylor_scores", "movement_scores", "random_scores"),
    "dst": ("drop_grow", "cosine_drop_fraction"),
})
PROTOCOL["schedules"] += ("is_update_step", "one_shot_sparsity", "jaxpruner_polynomial_sparsity")

#: The oracle protocol v2 primitives (docs/protocol.md): one-shot pruning from calibration inputs.
PROTOCOL["oneshot"] = (
    "activation_norms",
    "wanda_scores",
    "wanda_mask",
    "ria_scores",
    "outlier_ratio",
    "hessian",
    "reconstruction_error",
    "masked_least_squares",
    "sparsegpt_prune",
    "obc_prune",
)
PROTOCOL["patterns"] += ("nm_violations",)
PROTOCOL["budgets"] += ("owl_densities",)

PROTOCOL_NAMES = tuple(name for names in PROTOCOL.values() for name in names)


def row_of(name):
    """The function a protocol name is reported under: ``x_grad`` under ``x``, any other name under itself."""
    if name.endswith("_grad") and name[: -len("_grad")] in PROTOCOL_NAMES:
        return name[: -len("_grad")]
    return name


def rows():
    """The rows of the ``refprune check`` table: every protocol name that is not a ``_grad``, in order."""
    return tuple(n for n in PROTOCOL_NAMES if row_of(n) == n)


def test_kinds(names, test_name, declared=None):
    """The kinds of check a test makes: ``declared`` (the ``protocol`` marker's ``checks=``), else
    ``errors`` for bad-input tests, ``gradients`` when its first name is a ``_grad``, else ``values``."""
    if declared:
        kinds = tuple(k.strip() for k in (declared.split(",") if isinstance(declared, str) else declared))
        unknown = [k for k in kinds if k not in KINDS]
        if unknown:
            msg = f"checks={declared!r}: unknown kind(s) {unknown}; use {', '.join(KINDS)}"
            raise ValueError(msg)
        return kinds
    if "bad_input" in test_name:
        return ("errors",)
    if names and row_of(names[0]) != names[0]:
        return ("gradients",)
    return ("values",)


def checks_selected(environ=None):
    """The kinds ``REFPRUNE_CHECKS`` selects (every kind when unset)."""
    environ = os.environ if environ is None else environ
    raw = environ.get(ENV_CHECKS, "").strip()
    if not raw:
        return KINDS
    kinds = tuple(k.strip() for k in raw.split(",") if k.strip())
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        msg = f"{ENV_CHECKS}={raw!r}: unknown kind(s) {', '.join(unknown)}; use {', '.join(KINDS)}"
        raise ValueError(msg)
    return kinds


@dataclass(frozen=True)
class TargetSpec:
    """One thing to test: a target module on one backend."""

    module: str
    backend: str

    several: bool = False

    @property
    def id(self):
        return f"{self.module}-{self.backend}" if self.several else self.backend


def environ_settings(environ=None):
    """Every ``REFPRUNE_*`` variable that is set, sorted by name (for headers and reports)."""
    environ = os.environ if environ is None else environ
    return {k: environ[k] for k in sorted(environ) if k.startswith("REFPRUNE_")}


def target_name(environ=None):
    environ = os.environ if environ is None else environ
    return environ.get(ENV_TARGET, "").strip() or DEFAULT_TARGET


def target_modules(environ=None):
    """The target modules ``REFPRUNE_TARGET`` names (one, or several comma-separated)."""
    return [m.strip() for m in target_name(environ).split(",") if m.strip()] or [DEFAULT_TARGET]


def check_backend_names(names, *, setting=ENV_BACKEND):
    """Raise ``ValueError`` naming the known backends for any unknown name in ``names``."""
    from refprune import backends

    for name in names:
        if name not in backends.NAMES:
            msg = f"{setting}: unknown backend {name!r}; known backends: {', '.join(backends.NAMES)}"
            raise ValueError(msg)


def target_specs(environ=None):
    """The (module, backend) pairs this run tests, from the environment.

    Unknown backend names are a ``ValueError`` listing the known ones; backends that
    cannot run here are kept (their tests skip with the reason).
    """
    from refprune import backends

    environ = os.environ if environ is None else environ
    modules = target_modules(environ)
    raw = environ.get(ENV_BACKEND, "").strip()
    if raw:
        names = [b.strip() for b in raw.split(",") if b.strip()]
    elif modules == [DEFAULT_TARGET]:
        names = list(backends.DEFAULT_TEST_NAMES)
    else:
        names = ["numpy"]
    check_backend_names(names, setting=f"{ENV_BACKEND}={raw!r}")
    several = len(modules) > 1
    return [TargetSpec(m, name, several) for m in modules for name in names]


def profile_name(environ=None):
    environ = os.environ if environ is None else environ
    name = environ.get(ENV_PROFILE, "").strip() or "ci"
    if name not in PROFILES:
        msg = f"{ENV_PROFILE}={name!r}: unknown profile; use one of {', '.join(PROFILES)}"
        raise ValueError(msg)
    return name


def hypothesis_settings(environ=None):
    """The keyword arguments of ``hypothesis.settings`` for this run's profile."""
    environ = os.environ if environ is None else environ
    values = dict(PROFILES[profile_name(environ)])
    raw = environ.get(ENV_MAX_EXAMPLES, "").strip()
    if raw:
        try:
            values["max_examples"] = int(raw)
        except ValueError:
            msg = f"{ENV_MAX_EXAMPLES}={raw!r}: must be an int"
            raise ValueError(msg) from None
    return values


def load_profile(environ=None):
    """Register and load the hypothesis profile ``refprune-<name>``; return its name."""
    from hypothesis import HealthCheck, Phase, settings

    name = f"refprune-{profile_name(environ)}"
    values = hypothesis_settings(environ)
    if not values.pop("shrink", True):
        values["phases"] = [Phase.explicit, Phase.reuse, Phase.generate]
        values["report_multiple_bugs"] = False
    settings.register_profile(
        name,
        deadline=None,
        database=None,
        print_blob=False,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
        **values,
    )
    settings.load_profile(name)
    return name
