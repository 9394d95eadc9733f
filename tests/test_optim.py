"""SGD and Adam against torch.optim over several steps; learning-rate groups; constraints."""

from __future__ import annotations

import math
import os
from functools import partial

import numpy as np
import pytest

from refprune import io
from refprune.nn import LOG_ALPHA_RANGE, optim
from refprune.nn.constraints import apply_constraints, clamp

torch = pytest.importorskip("torch")

SHAPES = {"fc1.w": (4, 3), "fc1.b": (3,), "fc1.log_alpha": (4,)}


def _host_params(rng):
    return {k: rng.normal(size=s) for k, s in SHAPES.items()}


def _grad_sequence(rng, steps):
    return [{k: rng.normal(size=s) for k, s in SHAPES.items()} for _ in range(steps)]


def _run_ours(backend, fn, params, grads_seq, state, **kw):
    params = {k: backend.asarray(v) for k, v in params.items()}
    for grads in grads_seq:
        params, state = fn(params, {k: backend.asarray(v) for k, v in grads.items()}, state, **kw)
    return {k: backend.to_numpy(v) for k, v in params.items()}, state


def _run_torch(opt_cls, params, grads_seq, groups):
    tparams = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    opt = opt_cls([{"params": [tparams[k] for k in names], **kw} for names, kw in groups])
    for grads in grads_seq:
        for k, p in tparams.items():
            p.grad = torch.tensor(grads[k])
        opt.step()
    return {k: p.detach().numpy() for k, p in tparams.items()}


def _assert_params_close(ours, theirs):
    for k in theirs:
        np.testing.assert_allclose(ours[k], theirs[k], rtol=1e-12, atol=1e-14, err_msg=k)


@pytest.mark.parametrize(
    "kw",
    [
        {"lr": 0.1},
        {"lr": 0.05, "momentum": 0.9},
        {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-2},
        {"lr": 0.05, "weight_decay": 5e-4},
    ],
    ids=["plain", "momentum", "nesterov-wd", "wd"],
)
def test_sgd_matches_torch(backend, rng, kw):
    params, grads_seq = _host_params(rng), _grad_sequence(rng, 6)
    state = optim.init_state({k: backend.asarray(v) for k, v in params.items()}, "sgd", momentum=kw.get("momentum", 0))
    ours, state = _run_ours(backend, optim.sgd, params, grads_seq, state, **kw)
    theirs = _run_torch(torch.optim.SGD, params, grads_seq, [(list(SHAPES), kw)])
    _assert_params_close(ours, theirs)
    assert state["step"] == 6


@pytest.mark.parametrize(
    "kw",
    [{"lr": 1e-2}, {"lr": 3e-3, "betas": (0.8, 0.99), "eps": 1e-6}, {"lr": 1e-2, "weight_decay": 1e-3}],
    ids=["default", "betas-eps", "wd"],
)
def test_adam_matches_torch(backend, rng, kw):
    params, grads_seq = _host_params(rng), _grad_sequence(rng, 6)
    state = optim.init_state({k: backend.asarray(v) for k, v in params.items()}, "adam")
    ours, state = _run_ours(backend, optim.adam, params, grads_seq, state, **kw)
    theirs = _run_torch(torch.optim.Adam, params, grads_seq, [(list(SHAPES), kw)])
    _assert_params_close(ours, theirs)
    assert state["step"] == 6
    assert set(state) == {"step", "exp_avg", "exp_avg_sq"}


@pytest.mark.parametrize(
    "lr",
    [
        {"*.log_alpha": 0.1, "*": 1e-3},
        {"fc1.log_alpha": 0.1, "fc1.*": 1e-3},
        lambda name: 0.1 if name.endswith("log_alpha") else 1e-3,
    ],
    ids=["patterns", "exact-name", "callable"],
)
def test_learning_rate_groups_match_torch_param_groups(backend, rng, lr):
    params, grads_seq = _host_params(rng), _grad_sequence(rng, 4)
    groups = [(["fc1.w", "fc1.b"], {"lr": 1e-3}), (["fc1.log_alpha"], {"lr": 0.1})]
    ours, _ = _run_ours(backend, optim.adam, params, grads_seq, {}, lr=lr)
    _assert_params_close(ours, _run_torch(torch.optim.Adam, params, grads_seq, groups))
    ours, _ = _run_ours(backend, optim.sgd, params, grads_seq, {}, lr=lr, momentum=0.9)
    groups = [(names, {**g, "momentum": 0.9}) for names, g in groups]
    _assert_params_close(ours, _run_torch(torch.optim.SGD, params, grads_seq, groups))


def test_resolve_rules():
    spec = {"out.w": 3.0, "*.w": 2.0, "*": 1.0}
    assert optim.resolve(spec, "out.w") == 3.0  # exact name first
    assert optim.resolve(spec, "fc1.w") == 2.0  # then the first matching pattern
    assert optim.resolve(spec, "fc1.b") == 1.0
    assert optim.resolve(0.5, "anything") == 0.5
    with pytest.raises(ValueError, match="fc1.b"):
        optim.resolve({"*.w": 1.0}, "fc1.b")


def test_parameters_without_gradients_are_unchanged(backend, rng):
    params = {k: backend.asarray(v) for k, v in _host_params(rng).items()}
    grads = {"fc1.w": backend.asarray(rng.normal(size=(4, 3)))}
    new, _ = optim.adam(params, grads, {}, lr=0.1)
    assert new["fc1.b"] is params["fc1.b"]
    assert not np.array_equal(backend.to_numpy(new["fc1.w"]), backend.to_numpy(params["fc1.w"]))
    with pytest.raises(ValueError, match="not parameters"):
        optim.sgd(params, {"nope": grads["fc1.w"]}, {}, lr=0.1)


def test_inputs_are_not_modified(backend, rng):
    host = _host_params(rng)
    params = {k: backend.asarray(v) for k, v in host.items()}
    grads = {k: backend.asarray(v) for k, v in _grad_sequence(rng, 1)[0].items()}
    state = optim.init_state(params, "sgd", momentum=0.9)
    snapshot = {k: backend.to_numpy(v).copy() for k, v in state["momentum_buffer"].items()}
    optim.sgd(params, grads, state, lr=0.1, momentum=0.9)
    optim.adam(params, grads, {}, lr=0.1)
    for k, v in host.items():
        np.testing.assert_array_equal(backend.to_numpy(params[k]), v)
    assert state["step"] == 0
    for k, v in snapshot.items():
        np.testing.assert_array_equal(backend.to_numpy(state["momentum_buffer"][k]), v)


def test_init_state_and_errors(backend):
    params = {"a.w": backend.asarray(np.ones((2, 2)))}
    assert optim.init_state(params, "sgd") == {"step": 0}
    st = optim.init_state(params, "adam")
    assert st["step"] == 0 and set(st["exp_avg"]) == {"a.w"}
    assert backend.to_numpy(st["exp_avg_sq"]["a.w"]).tolist() == [[0.0, 0.0], [0.0, 0.0]]
    with pytest.raises(ValueError, match="optimizer"):
        optim.init_state(params, "rmsprop")
    with pytest.raises(ValueError, match="nesterov"):
        optim.sgd(params, {}, {}, lr=0.1, nesterov=True)


def test_constraints(backend):
    params = {
        "fc1.log_alpha": backend.asarray([-9.0, 0.0, 9.0]),
        "fc1.w": backend.asarray([-0.5, 0.5, 1.5]),
        "fc1.b": backend.asarray([-3.0, 3.0]),
    }
    constraints = {"*.log_alpha": clamp(*LOG_ALPHA_RANGE), "*.w": clamp(0, 1)}
    out = apply_constraints(params, constraints)
    lo, hi = math.log(1e-2), math.log(1e2)
    np.testing.assert_allclose(backend.to_numpy(out["fc1.log_alpha"]), [lo, 0.0, hi])
    np.testing.assert_allclose(backend.to_numpy(out["fc1.w"]), [0.0, 0.5, 1.0])
    assert out["fc1.b"] is params["fc1.b"]
    np.testing.assert_allclose(backend.to_numpy(params["fc1.w"]), [-0.5, 0.5, 1.5])  # input untouched
    assert apply_constraints(params, {}) is params
    # every matching constraint applies, in the dictionary's order
    double = {"*.w": clamp(0, 1), "fc1.w": lambda x: 2 * x}
    np.testing.assert_allclose(backend.to_numpy(apply_constraints(params, double)["fc1.w"]), [0.0, 1.0, 2.0])
    reverse = {"fc1.w": lambda x: 2 * x, "*.w": clamp(0, 1)}
    np.testing.assert_allclose(backend.to_numpy(apply_constraints(params, reverse)["fc1.w"]), [0.0, 1.0, 1.0])


def test_state_round_trips_through_a_checkpoint(tmp_path, rng):
    params = {k: np.asarray(v) for k, v in _host_params(rng).items()}
    grads = _grad_sequence(rng, 1)[0]
    _, state = optim.adam(params, grads, optim.init_state(params, "adam"), lr=0.1)
    path = os.path.join(tmp_path, "ckpt.npz")
    io.save_checkpoint(path, params=params, optimizer_state=state)
    back = io.load_checkpoint(path).optimizer_state
    assert back["step"] == 1
    for buf in ("exp_avg", "exp_avg_sq"):
        for k in params:
            np.testing.assert_array_equal(back[buf][k], state[buf][k])
    # and stepping from the loaded state continues identically
    a = optim.adam(params, grads, state, lr=0.1)[0]
    b = optim.adam(params, grads, back, lr=0.1)[0]
    for k in params:
        np.testing.assert_array_equal(a[k], b[k])


def test_partial_is_the_optimizer_callable(rng):
    params = {k: np.asarray(v) for k, v in _host_params(rng).items()}
    opt = partial(optim.sgd, lr=0.1, momentum=0.5)
    new, state = opt(params, _grad_sequence(rng, 1)[0], {})
    assert state["step"] == 1 and set(state["momentum_buffer"]) == set(params)
    assert set(new) == set(params)
