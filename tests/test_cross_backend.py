"""One training run, the same trajectory on every backend.

With the ``"reference"`` random stream every random number (initial weights, the
minibatch order, the L0 gate noise) is drawn on the host with NumPy's PCG64, so in
float64 a run on torch or array-api-strict follows the NumPy run up to floating-point
rounding: after 50 steps the parameters agree to ``rtol=1e-9``.
"""

from __future__ import annotations

import itertools
from functools import partial

import numpy as np
import pytest

from refprune import backends, data
from refprune.nn import build_model, optim, train

STEPS = 50


@pytest.fixture(scope="module")
def digits():
    return data.load("digits")


def _train(backend, ds, preset, *, steps, opt, opt_name, l0=False, seed=0, batch_size=32, **options):
    rng = backend.rng(seed, stream="reference")
    model = build_model(
        preset,
        input_shape=ds.x_train.shape[1:],
        num_classes=10,
        backend=backend,
        rng=rng,
        dtype="float64",
        l0=l0,
        **options,
    )
    state = optim.init_state(model.params(), opt_name, momentum=0.9 if opt_name == "sgd" else 0.0)
    penalty_scale = 1.0 / len(ds.y_train) if l0 else 0.0
    epochs = (data.batches(ds.x_train, ds.y_train, batch_size, backend=backend, rng=rng, dtype="float64") for _ in itertools.count())
    batches = itertools.chain.from_iterable(epochs)
    losses = []
    for xb, yb in itertools.islice(batches, steps):
        step, state = train.train_step(model, opt, state, xb, yb, rng=rng, penalty_scale=penalty_scale)
        losses.append(float(step.loss))
    params = {k: backend.to_numpy(v) for k, v in {**model.params(), **model.state()}.items()}
    return params, losses, model


def _other_backend(name):
    reason = backends.unavailable_reason(name)
    if reason is not None:
        pytest.skip(f"backend {name}: {reason}")
    return backends.get(name)


def _assert_same_run(ref, other, name):
    ref_params, ref_losses = ref
    params, losses = other
    assert set(params) == set(ref_params)
    for k, v in ref_params.items():
        np.testing.assert_allclose(params[k], v, rtol=1e-9, atol=1e-12, err_msg=f"{name}: {k}")
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-9, err_msg=f"{name}: losses")


OTHERS = [n for n in backends.DEFAULT_TEST_NAMES if n != "numpy"]


@pytest.fixture(scope="module")
def mlp_reference(digits):
    params, losses, _ = _train(
        backends.get("numpy"), digits, "mlp-300-100", steps=STEPS,
        opt=partial(optim.sgd, lr=0.05, momentum=0.9), opt_name="sgd",
    )
    assert losses[-1] < 0.5 * losses[0]  # it learns
    return params, losses


@pytest.mark.parametrize("name", OTHERS)
def test_mlp_trains_identically_on_every_backend(digits, mlp_reference, name):
    b = _other_backend(name)
    params, losses, _ = _train(
        b, digits, "mlp-300-100", steps=STEPS, opt=partial(optim.sgd, lr=0.05, momentum=0.9), opt_name="sgd"
    )
    _assert_same_run(mlp_reference, (params, losses), name)


L0_OPT = partial(optim.adam, lr={"*.log_alpha": 0.05, "*": 2e-3})


@pytest.fixture(scope="module")
def l0_reference(digits):
    params, losses, model = _train(
        backends.get("numpy"), digits, "lenet5", steps=8, opt=L0_OPT, opt_name="adam", l0=True, lam=0.5,
        weight_decay=5e-4,
    )
    return params, losses, model.open_gates()


@pytest.mark.parametrize("name", OTHERS)
def test_l0_lenet5_trains_identically_on_every_backend(digits, l0_reference, name):
    b = _other_backend(name)
    params, losses, model = _train(
        b, digits, "lenet5", steps=8, opt=L0_OPT, opt_name="adam", l0=True, lam=0.5, weight_decay=5e-4
    )
    _assert_same_run(l0_reference[:2], (params, losses), name)
    assert model.open_gates() == l0_reference[2]


@pytest.mark.parametrize("name", OTHERS)
def test_batch_norm_binary_mlp_trains_identically(digits, name):
    b = _other_backend(name)
    kw = {
        "steps": 10,
        "opt": partial(optim.adam, lr=1e-2),
        "opt_name": "adam",
        "hidden": 32,
        "init": "torch-uniform",
        "norm": "batch-norm",
    }
    ref = _train(backends.get("numpy"), digits, "binary-mlp", **kw)
    params, losses, _ = _train(b, digits, "binary-mlp", **kw)
    _assert_same_run(ref[:2], (params, losses), name)
