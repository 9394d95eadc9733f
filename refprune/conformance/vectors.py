"""Golden test vectors: the reference's answers on fixed inputs, as JSON.

For implementations in languages the suite cannot import. ``export`` evaluates every
protocol function on fixed, deterministic inputs (the edge classes of ``edges.py``
and seeded random ones) with the float64 NumPy reference and writes one JSON file;
``verify`` re-checks a file against any importable target. The format (also in
``docs/protocol.md``, "Golden vectors")::

    {"format": "refprune-vectors", "version": 3, "protocol": "v2", "refprune": "0.1.0",
     "tolerance": {"float64": [rtol, atol], "float32": [rtol, atol]},
     "cases": [{"function": "magnitude_mask", "id": "magnitude_mask-3",
                "class": "ties",                 # the edge class, or "random" / "bad input"
                "args": [<value>, ...], "kwargs": {"amount": 2, ...},
                "expected": <value>}             # or "raises": "ValueError"
               , ...]}

where a ``<value>`` is a JSON number, bool, string or null, a list of values (a Python
list, e.g. ``global_magnitude_mask``'s arrays), ``{"tuple": [values]}`` (a gradient
pair, a schedule's ``(update, sparsity)``, ``clip=(lo, hi)``) or an array
``{"dtype": "float32"|"float64"|"bool", "shape": [...], "data": [row-major values]}``.
Non-finite floats are the strings ``"inf"``, ``"-inf"`` and ``"nan"``; floats are
written with 17 significant digits, so a float32 input reads back exactly. JSON keeps
``1`` (an int count) apart from ``1.0`` (a fraction). ``expected`` is the float64
reference's answer on those inputs; a floating result is compared with the tolerance
of the inputs' floating dtype (float64's when mixed or none) and must have that
dtype; bools, ints and masks compare exactly. A mapping result (``owl_densities`` of named
layers) is not in the vectors. Version 3 (protocol v2) adds the one-shot functions.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np

from refprune.conformance.config import PROTOCOL_NAMES
from refprune.conformance.target import floating_dtypes
from refprune.conformance.closed_forms import DECIMAL_TRAPS, log_alpha_edges
from refprune.conformance.tolerances import TOLERANCES

FORMAT = "refprune-vectors"
VERSION = 3

# --------------------------------------------------------------------------- encoding


def _float(v):
    v = float(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def encode(x):
    """A Python/NumPy value as JSON-able data (see the module docstring)."""
    if isinstance(x, np.ndarray) or isinstance(x, np.generic):
        a = np.asarray(x)
        if a.dtype == bool:
            return {"dtype": "bool", "shape": list(a.shape), "data": [bool(v) for v in a.reshape(-1)]}
        return {"dtype": a.dtype.name, "shape": list(a.shape), "data": [_float(v) for v in a.reshape(-1)]}
    if isinstance(x, tuple):
        return {"tuple": [encode(v) for v in x]}
    if isinstance(x, dict):
        return {k: encode(v) for k, v in x.items()}
    if isinstance(x, list):
        return [encode(v) for v in x]
    if isinstance(x, float):
        return _float(x)
    return x


def decode(x):
    """The inverse of :func:`encode` (arrays become NumPy arrays)."""
    if isinstance(x, dict) and "tuple" in x:
        return tuple(decode(v) for v in x["tuple"])
    if isinstance(x, dict) and "dtype" in x:
        data = [float(v) if isinstance(v, str) else v for v in x["data"]]
        return np.array(data, dtype=x["dtype"]).reshape(x["shape"])
    if isinstance(x, dict):  # a mapping argument (layer_densities of named shapes), keys in order
        return {k: decode(v) for k, v in x.items()}
    if isinstance(x, list):
        return [decode(v) for v in x]
    if isinstance(x, str) and x in ("inf", "-inf", "nan"):
        return float(x)
    return x


# --------------------------------------------------------------------------- the inputs


def _cases():
    """``(class, function, args, kwargs)`` for every protocol function, deterministic: the edge
    classes of ``edges.py``, then seeded random inputs and bad inputs."""
    from refprune.conformance import edges

    for fname in PROTOCOL_NAMES:
        for dtype in ("float64", "float32") if fname not in _KINKED else ("float64",):
            for cls, args, kwargs in edges.cases(fname, dtype):
                if cls != "subnormal":  # a flush-to-zero device may treat them as 0 (protocol)
                    yield cls, fname, args, kwargs
    for fname, args, kwargs in _random_cases():
        yield "random", fname, args, kwargs
    for fname, args, kwargs in _BAD:
        yield "bad input", fname, args, kwargs


#: Gradients with a jump (a clip or a clamp): a float32 evaluation at the jump may land on
#: the other side than the float64 reference; the suite masks those entries, the vectors
#: hold only their float64 edge cases.
_KINKED = ("hard_concrete_sample_grad", "hard_concrete_prob_nonzero_grad", "l0_penalty_grad")


def _random_cases():
    """``(function, args, kwargs)``: seeded random inputs for every protocol function."""
    rng = np.random.default_rng(20180101)
    la_edges = np.array(log_alpha_edges() + [-60.0, 60.0])
    u_edges = np.array([0.0, 1.0, 0.5, 1e-300, 1 - 2**-53, 0.25])
    la_grid = np.broadcast_to(la_edges, (u_edges.size, la_edges.size)).copy()
    u_grid = np.broadcast_to(u_edges[:, None], la_grid.shape).copy()
    la = rng.normal(0, 3, size=(3, 4))
    u = rng.uniform(size=(3, 4))
    u_batch = rng.uniform(size=(2, 3, 4))
    other = {"beta": 0.4, "gamma": -0.3, "zeta": 1.4, "eps": 1e-4}
    sampler = {k: other[k] for k in ("beta", "gamma", "zeta")}
    for f in ("hard_concrete_quantile", "hard_concrete_sample"):
        yield f, (la_grid, u_grid), {}
        yield f, (la, u), {}
        yield f, (la, u_batch), sampler
    yield "hard_concrete_sample_grad", (la, u, rng.normal(size=la.shape)), {}
    yield "hard_concrete_sample_grad", (la, u_batch, rng.normal(size=u_batch.shape)), sampler
    yield "hard_concrete_sample_grad", (la_grid, u_grid, np.ones_like(la_grid)), {}
    yield "hard_concrete_mode", (la_edges,), {}
    yield "hard_concrete_mode", (la,), {"gamma": -0.3, "zeta": 1.4}
    for x in (0.0, 1.0, 0.5, -0.1, 1.1, -2.0, 2.0):
        yield "hard_concrete_cdf", (la_edges, x), {}
    yield "hard_concrete_cdf", (la, rng.uniform(-0.2, 1.2, size=la.shape)), other
    yield "hard_concrete_prob_nonzero", (la_edges,), {}
    yield "hard_concrete_prob_nonzero", (la,), other
    yield "hard_concrete_prob_nonzero_grad", (la_edges, np.ones_like(la_edges)), {}
    yield "hard_concrete_prob_nonzero_grad", (la, rng.normal(size=la.shape)), other
    yield "expected_l0", (la_edges,), {}
    yield "expected_l0", (la,), {"group_size": 25, **other}

    w = rng.normal(size=(4, 3))
    la4, la3 = rng.normal(0, 3, size=4), rng.normal(0, 3, size=3)
    for f in ("l0_penalty", "l0_penalty_grad"):
        yield f, (la4, w), {"lam": 0.1}
        yield f, (la3, w), {"lam": 0.5, "weight_decay": 1e-2, "axis": 1, **other}
        yield f, (np.array([50.0, -50.0]), np.ones((2, 3))), {"lam": 1.0, "weight_decay": 0.5}
    for f in ("l2_penalty", "l2_penalty_grad", "l1_penalty", "l1_penalty_grad"):
        yield f, (w,), {}
        yield f, (np.array([3.0, 0.0, -4.0]),), {"lam": 0.5}
    for f in ("group_lasso_penalty", "group_lasso_penalty_grad"):
        yield f, (w,), {"axis": 0}
        yield f, (np.array([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0]]),), {"axis": 0, "lam": 2.0}
        yield f, (rng.normal(size=(2, 3, 2)),), {"axis": -1}
    for f in ("rvsm_penalty", "rvsm_penalty_grad"):
        yield f, (w, np.where(np.abs(w) > 0.5, w, 0.0)), {"beta": 4.0}

    wt = np.array([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 0.25])
    dy = rng.normal(size=wt.shape)
    for t in (0.0, 0.5, 1.0):
        yield "hard_threshold", (wt,), {"threshold": t}
        yield "soft_threshold", (wt,), {"threshold": t}
        yield "hard_threshold_grad", (wt, dy), {"threshold": t}
        yield "soft_threshold_grad", (wt, dy), {"threshold": t}
    for lam, beta in ((0.5, 4.0), (1e-4, 1.0), (0.0, 2.0)):
        yield "rvsm_threshold", (), {"lam": lam, "beta": beta}
    yield "binarize", (wt,), {}
    yield "binarize", (wt,), {"threshold": 1.0, "on": 2.5, "off": -1.0}
    yield "binarize_grad", (wt, dy), {}
    yield "binarize_grad", (wt, dy), {"clip": (-1.0, 1.0)}

    for amount, n in DECIMAL_TRAPS:
        for rounding in ("half-even", "floor", "ceil"):
            yield "prune_count", (amount, n), {"rounding": rounding}
    for amount, n in ((0.25, 10), (0.35, 10), (0.5, 3), (0.125, 4), (0.0, 5), (1.0, 5), (3, 10), (0, 0)):
        yield "prune_count", (amount, n), {}
    ties = np.array([3.0, 1.0, 1.0, 1.0, 2.0])
    yield "magnitude_mask", (ties,), {"amount": 2}
    yield "magnitude_mask", (np.full(10, 0.5),), {"amount": 0.3}
    yield "magnitude_mask", (np.array([-1.0, 1.0, -1.0, 1.0]),), {"amount": 2}
    yield "magnitude_mask", (w,), {"amount": 0.5, "rounding": "ceil"}
    yield "magnitude_mask", (np.arange(1.0, 46.0),), {"amount": 0.7}
    yield "magnitude_mask", (np.array([1.0, 2.0, 3.0, 4.0]),), {"amount": 1, "scores": np.array([4.0, -5.0, 3.0, 1.0])}
    yield "random_mask", (np.array([0.9, 0.1, 0.5, 0.3]),), {"amount": 0.5}
    yield "random_mask", (np.array([0.5, 0.5, 0.1, 0.5]),), {"amount": 2}
    yield "global_magnitude_mask", ([np.array([4.0, 1.0, 2.0]), np.array([[1.0, 5.0], [0.5, 2.0]])],), {"amount": 3}
    yield "global_magnitude_mask", ([np.array([1.0, 2.0, 1.0]), np.array([[1.0, 3.0]])],), {"amount": 0.4}
    yield "structured_mask", (np.array([[1.0, 1.0], [3.0, 0.0], [0.5, 0.5]]),), {"amount": 1, "axis": 0}
    yield "structured_mask", (np.array([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [2.0, 2.0]]),), {"amount": 2, "axis": 0}
    for ord in (1, math.inf, 3, 0.5, -math.inf):
        yield "structured_mask", (rng.normal(size=(4, 3, 2)),), {"amount": 0.5, "axis": 0, "ord": ord}
    yield "mask_from_weights", (np.array([0.0, -0.0, 2.0, np.inf]),), {}
    yield "apply_mask", (np.array([1.0, np.inf, 3.0]), np.array([True, False, True])), {}
    yield "sparsity", (np.array([True, False, False, True]),), {}
    yield "sparsity", (np.zeros(0, dtype=bool),), {}

    span = {"begin": 10, "end": 30, "frequency": 10}
    for step in (0, 9, 10, 15, 20, 30, 31, 40):
        yield "constant_sparsity", (step,), {"target": 0.5, **span}
        yield "polynomial_sparsity", (step,), {"initial": 0.1, "final": 0.9, "power": 3, **span}
    yield "constant_sparsity", (10**6,), {"target": 0.8}
    for r in range(5):
        yield "imp_sparsity", (r,), {}
        yield "imp_sparsity", (r,), {"rate": 0.5}

    yield from _cases_v1(rng)
    yield from _cases_v2(np.random.default_rng(20240101))


_BAD = [
    ("hard_concrete_sample", (np.zeros(2), np.array([0.5, 1.5])), {}),
    ("prune_count", (1.5, 10), {}),
    ("prune_count", (11, 10), {}),
    ("magnitude_mask", (np.array([1.0, np.nan]),), {"amount": 1}),
    ("structured_mask", (np.ones((2, 2)),), {"amount": 1, "axis": 2}),
    ("polynomial_sparsity", (5,), {"initial": 0.0, "final": 0.5, "begin": 10, "end": 10}),
    ("hard_threshold", (np.ones(2),), {"threshold": -1.0}),
    ("hessian", (np.zeros((0, 4)),), {}),
    ("wanda_mask", (np.ones((2, 8)), np.ones(8)), {"n": 2, "m": 3}),
    ("wanda_mask", (np.ones((2, 8)), np.ones(8)), {}),
    ("sparsegpt_prune", (np.ones((2, 8)), np.eye(8)), {"amount": 1}),
    ("sparsegpt_prune", (np.ones((2, 8)), np.eye(8)), {"n": 2, "m": 3}),
    ("obc_prune", (np.ones((2, 8)), np.ones((8, 8))), {"amount": 0.5}),
    ("owl_densities", ([(10,), (10,)], [0.1, 0.3]), {"density": 0.99}),
    ("nm_violations", (np.ones((2, 6), dtype=bool),), {"n": 2, "m": 4}),
]


def build():
    """The vectors document (a dict) from the reference."""
    import refprune
    from refprune.conformance.target import reference

    ref = reference()
    cases, counters = [], {}
    for cls, fname, args, kwargs in _cases():
        i = counters[fname] = counters.get(fname, -1) + 1
        case = {"function": fname, "id": f"{fname}-{i}", "class": cls, "args": encode(args)["tuple"],
                "kwargs": encode(kwargs)}
        try:
            case["expected"] = encode(ref(fname, *args, **kwargs))
        except (TypeError, ValueError) as exc:
            case["raises"] = type(exc).__name__
        cases.append(case)
    missing = sorted(set(PROTOCOL_NAMES) - {c["function"] for c in cases} - NO_VECTORS)
    assert not missing, f"no vectors for {missing}"
    from refprune.conformance.config import PROTOCOL_VERSION

    return {"format": FORMAT, "version": VERSION, "protocol": PROTOCOL_VERSION, "refprune": refprune.__version__,
            "tolerance": {k: list(v) for k, v in TOLERANCES.items()}, "cases": cases}


def _write_json(path, doc):
    try:
        from refprune.io import write_json
    except ImportError:  # a minimal atomic write where refprune.io is not there
        text = json.dumps(doc, indent=1) + "\n"
        path = Path(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or ".")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
        return
    write_json(path, doc)


def export(path):
    """Write the vectors to ``path`` (atomically); return the number of cases."""
    doc = build()
    _write_json(path, doc)
    return len(doc["cases"])


# --------------------------------------------------------------------------- verifying


class Result:
    """One function's outcome in a vectors file: cases passed, failed, not implemented, and messages."""

    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.missing = 0
        self.messages = []

    @property
    def verdict(self):
        if self.failed:
            return "FAIL"
        if self.missing and not self.passed:
            return "not implemented"
        return "pass"

    def __iter__(self):  # (passed, failed, messages), as before version 2
        return iter((self.passed, self.failed, self.messages))


def _dtype_of(args):
    found = floating_dtypes(args)
    return found.pop() if len(found) == 1 else "float64"


def verify(path, target_module="refprune", backend="numpy"):
    """Check every case of a vectors file against a target; return ``{function: Result}``.

    The target is imported like ``refprune check`` does (the current directory is
    searched); a name it lacks counts as not implemented, not as a failure.
    """
    import sys

    from refprune.conformance.report import assert_matches
    from refprune.conformance.target import MissingFunction, Target

    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        msg = f"cannot read the vectors file {path}: {exc}"
        raise ValueError(msg) from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        msg = f"{path}: not a refprune vectors file (format={doc.get('format') if isinstance(doc, dict) else None!r})"
        raise ValueError(msg)
    cwd = os.getcwd()
    sys.path.insert(0, cwd)
    try:
        target = Target(target_module, backend)
    except ImportError as exc:
        cause = exc.__cause__ or exc
        msg = (f"cannot import the target {target_module!r} ({type(cause).__name__}: {cause}); give an importable "
               f"module name (the current directory {cwd} is searched)")
        raise ImportError(msg) from None
    finally:
        sys.path.remove(cwd)
    results = {}
    for case in doc["cases"]:
        fname = case["function"]
        entry = results.setdefault(fname, Result())
        if not target.has(fname):
            entry.missing += 1
            continue
        args = decode(case["args"])
        kwargs = {k: decode(v) for k, v in case["kwargs"].items()}
        try:
            if "raises" in case:
                try:
                    target(fname, *args, **kwargs)
                except (TypeError, ValueError) as exc:
                    if type(exc).__name__ != case["raises"]:
                        raise AssertionError(f"raised {type(exc).__name__}, expected {case['raises']}") from None
                else:
                    raise AssertionError(f"accepted a bad input, expected {case['raises']}")
            else:
                actual = target(fname, *args, **kwargs)
                assert_matches(target.last, actual, decode(case["expected"]), dtype=_dtype_of(args))
            entry.passed += 1
        except MissingFunction:
            entry.missing += 1
        except Exception as exc:  # noqa: BLE001 - every failure is reported
            entry.failed += 1
            first = str(exc).splitlines()[0] if str(exc) else ""
            entry.messages.append(f"{case['id']} ({case.get('class', '?')}): {type(exc).__name__}: {first}")
    return results


# --------------------------------------------------------------------------- oracle protocol v1 primitives

#: Protocol names without vectors: ``random_scores`` takes a generator, not JSON data
#: (its numbers are the reference stream's, NumPy PCG64, checked by the suite).
NO_VECTORS = frozenset({"random_scores"})


def _cases_v1(rng):
    """Cases of the v1 primitives (N:M and block masks, budgets, scores, DST, schedule variants)."""
    w = rng.normal(size=(4, 8))
    ties = np.array([[0.1, -3.0, 2.0, 0.5, 1.0, 1.0, 1.0, 0.0]])
    for n, m in ((2, 4), (1, 4), (3, 4), (1, 2), (4, 8)):
        yield "nm_mask", (w,), {"n": n, "m": m}
    yield "nm_mask", (ties,), {"n": 2, "m": 4}
    yield "nm_mask", (np.ones((2, 8)),), {"n": 2, "m": 4}
    yield "nm_mask", (w,), {"n": 1, "m": 2, "axis": 0}
    yield "nm_mask", (np.ones(8),), {"n": 2, "m": 4, "scores": np.array([-1.0, 5.0, 0.0, 5.0, 2.0, -np.inf, np.inf, 2.0])}
    wb = rng.normal(size=(7, 10))
    for pool in ("l1", "l2", "max", "mean"):
        yield "block_mask", (wb,), {"block": (2, 4), "amount": 0.5, "pool": pool}
        yield "block_mask", (np.array([[1.0, 1.0, 1.2], [1.0, 1.0, 1.2]]),), {"block": 2, "amount": 1, "pool": pool}
    yield "block_mask", (np.ones((4, 6)),), {"block": 2, "amount": 3}
    yield "block_mask", (wb,), {"block": (3, 3), "amount": 0.25, "scores": rng.normal(size=(7, 10)), "pool": "mean"}
    conv = [(64, 3, 7, 7), (64, 64, 3, 3), (128, 64, 3, 3), (512, 10)]
    for distribution in ("uniform", "erk", "er"):
        for density in (0.05, 0.2, 0.5, 0.9):
            yield "layer_densities", (conv,), {"density": density, "distribution": distribution}
    yield "layer_densities", ([(4, 4), (8, 8), (16, 16)],), {"density": 0.5, "distribution": "erk"}
    yield "layer_densities", (conv,), {"density": 0.1, "distribution": "erk", "power_scale": 0.5, "dense": [0]}
    g = rng.normal(size=w.shape)
    yield "saliency_scores", (w, g), {}
    yield "taylor_scores", (w, g), {}
    yield "taylor_scores", (w, g), {"kind": "abs"}
    yield "movement_scores", (w, g), {}
    yield "movement_scores", (w, g), {"previous": rng.normal(size=w.shape)}
    mask = rng.random(w.shape) < 0.4
    for fraction in (0.1, 0.3, 0.5, 1.0, 2):
        yield "drop_grow", (w, mask), {"drop_fraction": fraction, "grow_scores": np.abs(g)}
    yield "drop_grow", (np.array([0.5, 0.1, 0.0, 0.0]), np.array([True, True, False, False])), {
        "drop_fraction": 0.5, "grow_scores": np.array([0.0, 9.0, 1.0, 2.0])}
    yield "drop_grow", (np.ones(6), np.arange(6) < 3), {"drop_fraction": 2, "grow_scores": np.zeros(6)}
    for step in (0, 25, 50, 99, 100, 150):
        yield "cosine_drop_fraction", (step,), {"initial": 0.3, "end": 100}
    for step in (0, 149, 150, 199, 200, 450, 451):
        yield "is_update_step", (step,), {"begin": 150, "end": 450, "frequency": 100}
        yield "is_update_step", (step,), {"begin": 150, "end": 450, "frequency": 100, "counting": "absolute"}
        yield "jaxpruner_polynomial_sparsity", (step,), {"target": 0.8, "begin": 150, "end": 450, "frequency": 100}
        yield "one_shot_sparsity", (step,), {"target": 0.9, "at": 200}
    yield "nm_mask", (np.ones((2, 8)),), {"n": 1, "m": 3}
    yield "block_mask", (np.ones((2, 8)),), {"block": (2,), "amount": 1}
    yield "layer_densities", (conv,), {"density": 0.001, "dense": [1]}
    yield "drop_grow", (np.ones(4), np.array([True, False, True, False])), {"drop_fraction": 3, "grow_scores": np.ones(4)}


def _cases_v2(rng):
    """Cases of the v2 one-shot functions on seeded random layers (``w``: out x in, ``x``: tokens x in)."""
    x, w = rng.normal(size=(32, 8)), rng.normal(size=(4, 8))
    norms = np.sqrt((x * x).sum(axis=0))
    h = 2.0 / x.shape[0] * (x.T @ x)
    yield "activation_norms", (x,), {}
    yield "activation_norms", (x.reshape(2, 16, 8),), {}
    yield "hessian", (x,), {}
    yield "wanda_scores", (w, norms), {}
    for kw in ({"amount": 0.5}, {"amount": 3}, {"amount": 0.5, "group": "layer"}, {"amount": 0.3, "rounding": "ceil"},
               {"n": 2, "m": 4}, {"n": 1, "m": 4}, {"n": 3, "m": 8}):
        yield "wanda_mask", (w, norms), kw
    yield "ria_scores", (w, norms), {}
    yield "ria_scores", (w, norms), {"a": 1.0}
    scores = [np.abs(w) * norms, np.abs(rng.normal(size=(3, 8))) * norms]
    yield "outlier_ratio", (scores,), {}
    yield "outlier_ratio", (scores,), {"m": 2.0}
    yield "owl_densities", ([(8, 8), (8, 32), (32, 8)], [0.02, 0.1, 0.05]), {"density": 0.5}
    yield "owl_densities", ([(8, 8), (8, 32), (32, 8)], [0.02, 0.1, 0.05]), {"density": 0.3, "lam": 0.1}
    mask = rng.random(w.shape) < 0.6
    yield "masked_least_squares", (w, h, mask), {}
    yield "reconstruction_error", (w, np.where(mask, w, 0.0), h), {}
    for kw in ({"amount": 0.5}, {"amount": 0.5, "block": 3}, {"amount": 0.25, "damp": 0.0}, {"n": 2, "m": 4},
               {"n": 2, "m": 4, "block": 3}, {"n": 1, "m": 2, "block": 5}):
        yield "sparsegpt_prune", (w, h), kw
    for kw in ({"amount": 0.5}, {"amount": 3}, {"amount": 0.25, "damp": 0.01}):
        yield "obc_prune", (w, h), kw
    yield "nm_violations", (mask,), {"n": 2, "m": 4}
    yield "nm_violations", (np.where(mask, w, 0.0),), {"n": 3, "m": 4}


def format_results(results):
    """A table: function, cases passed, failed, and a verdict (pass / FAIL / not implemented)."""
    width = max([len(n) for n in results] + [len("function")])
    lines = [f"{'function':{width}s}  {'passed':>6s}  {'failed':>6s}  verdict"]
    for name, r in results.items():
        lines.append(f"{name:{width}s}  {r.passed:6d}  {r.failed:6d}  {r.verdict}")
    return "\n".join(lines)


def overall_line(results):
    """The verdict over every function of a verify: pass, FAIL (naming the functions) or nothing to check."""
    implemented = [name for name, r in results.items() if r.verdict != "not implemented"]
    failing = [name for name, r in results.items() if r.verdict == "FAIL"]
    absent = len(results) - len(implemented)
    if failing:
        return (f"overall: FAIL - {len(failing)} of {len(implemented)} implemented functions differ from the "
                f"vectors: {', '.join(failing)}")
    if implemented:
        return (f"overall: pass - every case of the {len(implemented)} implemented functions agrees"
                + (f" ({absent} of {len(results)} not implemented)" if absent else ""))
    return "overall: nothing to check - the target implements none of the file's functions"
