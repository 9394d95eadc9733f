"""The transformer's functional pairs (embedding, layer norm, GELU, causal attention) against torch.

Every pair runs on every backend (the ``backend`` fixture), in float32 and float64, against
torch's own function and autograd in float64 on the same rounded inputs; central
differences check every gradient in float64 on small shapes.
"""

from __future__ import annotations

import numpy as np
import pytest

from refprune.conformance.gradcheck import check_grad
from refprune.nn import functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional

SCALE32 = 4.0


def _host(rng, shape, dtype, *, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(dtype).astype(np.float64)


def _t(a, grad=True):
    return torch.tensor(a, dtype=torch.float64, requires_grad=grad)


def _np(t):
    return t.detach().numpy()


def _on(backend, dtype, *arrays):
    return [backend.asarray(a, dtype=dtype) for a in arrays]


def _scale(dtype):
    return SCALE32 if dtype == "float32" else 1.0


def _torch_attention(qkv, heads):
    b, t, three_d = qkv.shape
    q, k, v = qkv.split(three_d // 3, dim=-1)
    split = [a.view(b, t, heads, -1).transpose(1, 2) for a in (q, k, v)]
    return TF.scaled_dot_product_attention(*split, is_causal=True).transpose(1, 2).reshape(b, t, -1)


# ------------------------------------------------------------------ against torch


def test_embedding_matches_torch(backend, dtype, rng, close):
    ids = rng.integers(0, 7, size=(3, 5))
    table, dy = _host(rng, (7, 4), dtype), _host(rng, (3, 5, 4), dtype)
    tt = _t(table)
    ty = TF.embedding(torch.tensor(ids), tt)
    ty.backward(_t(dy, False))
    bids = backend.asarray(ids, dtype="int64")
    btable, bdy = _on(backend, dtype, table, dy)
    close(F.embedding(bids, btable), _np(ty), dtype, "embedding")
    close(F.embedding_grad(bids, btable, bdy), _np(tt.grad), dtype, "embedding dtable", scale=_scale(dtype))


@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_matches_torch(backend, dtype, rng, close, affine):
    x = _host(rng, (2, 3, 6), dtype, scale=3.0) + 1.0
    gamma, beta = (_host(rng, (6,), dtype), _host(rng, (6,), dtype)) if affine else (None, None)
    dy = _host(rng, x.shape, dtype)
    tx = _t(x)
    tg, tb = (_t(gamma), _t(beta)) if affine else (None, None)
    ty = TF.layer_norm(tx, (6,), tg, tb, eps=1e-5)
    ty.backward(_t(dy, False))
    bx, bdy = _on(backend, dtype, x, dy)
    bg, bb = _on(backend, dtype, gamma, beta) if affine else (None, None)
    close(F.layer_norm(bx, bg, bb), _np(ty), dtype, "layer_norm", scale=_scale(dtype))
    dx, dg, db = F.layer_norm_grad(bx, bg, bb, bdy)
    close(dx, _np(tx.grad), dtype, "layer_norm dx", scale=_scale(dtype))
    if affine:
        close(dg, _np(tg.grad), dtype, "layer_norm dgamma", scale=_scale(dtype))
        close(db, _np(tb.grad), dtype, "layer_norm dbeta", scale=_scale(dtype))
    else:
        assert dg is None and db is None


def test_gelu_is_torch_tanh_approximation(backend, dtype, rng, close):
    x = _host(rng, (4, 9), dtype, scale=3.0)
    dy = _host(rng, x.shape, dtype)
    tx = _t(x)
    ty = TF.gelu(tx, approximate="tanh")
    ty.backward(_t(dy, False))
    bx, bdy = _on(backend, dtype, x, dy)
    close(F.gelu(bx), _np(ty), dtype, "gelu")
    close(F.gelu_grad(bx, bdy), _np(tx.grad), dtype, "gelu dx")
    exact = TF.gelu(torch.tensor(x)).numpy()  # the erf GELU differs by less than 1e-3
    assert np.max(np.abs(backend.to_numpy(F.gelu(bx)) - exact)) < 1e-3


@pytest.mark.parametrize("heads", [1, 2, 3])
def test_causal_self_attention_matches_torch(backend, dtype, rng, close, heads):
    qkv = _host(rng, (2, 5, 3 * 2 * heads), dtype)
    dy = _host(rng, (2, 5, 2 * heads), dtype)
    tq = _t(qkv)
    ty = _torch_attention(tq, heads)
    ty.backward(_t(dy, False))
    bq, bdy = _on(backend, dtype, qkv, dy)
    close(F.causal_self_attention(bq, heads=heads), _np(ty), dtype, "attention", scale=_scale(dtype))
    close(F.causal_self_attention_grad(bq, bdy, heads=heads), _np(tq.grad), dtype, "attention dqkv",
          scale=_scale(dtype))


def test_attention_is_causal(backend):
    """Changing the last token's q, k, v changes only the last output row."""
    rng = np.random.default_rng(3)
    qkv = rng.standard_normal((1, 4, 6))
    other = qkv.copy()
    other[:, -1] += 1.0
    a, b = (backend.to_numpy(F.causal_self_attention(backend.asarray(x, dtype="float64"), heads=1))
            for x in (qkv, other))
    np.testing.assert_array_equal(a[:, :-1], b[:, :-1])
    assert np.all(a[:, -1] != b[:, -1])


# ------------------------------------------------------------------ central differences


def test_central_differences(backend):
    rng = np.random.default_rng(1)
    f64 = "float64"

    def run(fn, *arrays, **kw):
        return backend.to_numpy(fn(*_on(backend, f64, *arrays), **kw))

    x, gamma, beta = rng.standard_normal((2, 3, 5)), rng.standard_normal(5), rng.standard_normal(5)
    dy = rng.standard_normal(x.shape)
    dx, dg, db = (backend.to_numpy(g) for g in F.layer_norm_grad(*_on(backend, f64, x, gamma, beta, dy)))
    check_grad(lambda a: run(F.layer_norm, a, gamma, beta), x, dy, dx, name="layer_norm dx")
    check_grad(lambda a: run(F.layer_norm, x, a, beta), gamma, dy, dg, name="layer_norm dgamma")
    check_grad(lambda a: run(F.layer_norm, x, gamma, a), beta, dy, db, name="layer_norm dbeta")

    check_grad(lambda a: run(F.gelu, a), x, dy, backend.to_numpy(F.gelu_grad(*_on(backend, f64, x, dy))),
               name="gelu dx")

    qkv, dyo = rng.standard_normal((2, 4, 12)), rng.standard_normal((2, 4, 4))
    grad = backend.to_numpy(F.causal_self_attention_grad(*_on(backend, f64, qkv, dyo), heads=2))
    check_grad(lambda a: run(F.causal_self_attention, a, heads=2), qkv, dyo, grad, name="attention dqkv")

    ids = backend.asarray(np.array([[0, 2, 2], [1, 0, 2]]), dtype="int64")
    table, dye = rng.standard_normal((4, 3)), rng.standard_normal((2, 3, 3))
    grad = backend.to_numpy(F.embedding_grad(ids, *_on(backend, f64, table, dye)))
    check_grad(lambda a: backend.to_numpy(F.embedding(ids, backend.asarray(a, dtype=f64))), table, dye, grad,
               name="embedding dtable")
    assert np.all(grad[3] == 0)  # an id that never occurs gets no gradient


# ------------------------------------------------------------------ errors


def test_argument_errors(backend):
    table = backend.asarray(np.zeros((4, 3)), dtype="float32")
    with pytest.raises(TypeError, match="ids must be an integer array"):
        F.embedding(backend.asarray(np.zeros(2), dtype="float32"), table)
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 3\]"):
        F.embedding(backend.asarray(np.array([0, 4]), dtype="int64"), table)
    qkv = backend.asarray(np.zeros((1, 2, 6)), dtype="float32")
    with pytest.raises(ValueError, match="divisible by heads=4"):
        F.causal_self_attention(qkv, heads=4)
    with pytest.raises(ValueError, match="heads must be an int"):
        F.causal_self_attention(qkv, heads=0)
    with pytest.raises(ValueError, match="gamma must have shape"):
        F.layer_norm(qkv, backend.asarray(np.ones(2), dtype="float32"), None)


def test_inputs_are_never_written(backend):
    rng = np.random.default_rng(4)
    host = {"x": rng.standard_normal((2, 3, 6)), "g": rng.standard_normal(6), "b": rng.standard_normal(6),
            "qkv": rng.standard_normal((2, 3, 6)), "dy2": rng.standard_normal((2, 3, 2)),
            "table": rng.standard_normal((5, 6)), "ids": rng.integers(0, 5, size=(2, 3))}
    arrays = {k: backend.asarray(v, dtype="int64" if k == "ids" else "float64") for k, v in host.items()}
    a = arrays
    F.layer_norm_grad(a["x"], a["g"], a["b"], a["x"])
    F.gelu_grad(a["x"], a["x"])
    F.causal_self_attention_grad(a["qkv"], a["dy2"], heads=2)
    F.embedding_grad(a["ids"], a["table"], F.embedding(a["ids"], a["table"]))
    for k, v in host.items():
        np.testing.assert_array_equal(backend.to_numpy(arrays[k]), v, err_msg=k)
