"""refprune.nn.functional against torch.nn.functional and torch autograd (the oracle).

Every functional pair runs on every backend (the ``backend`` fixture), in float64 and
float32, once on the pure Array API reference path and once as dispatched (where a
backend registers a fast path for a step, see ``refprune._dispatch``). Inputs are
drawn on the host, rounded to the tested dtype, and the oracle runs torch in float64
on the CPU on those rounded values; the result is compared with the tolerance table
(``refprune.conformance.tolerances``), widened by ``scale`` for long sums. Central
differences check a few gradients on small shapes in float64.
"""

from __future__ import annotations

import numpy as np
import pytest

from refprune.conformance.gradcheck import check_grad
from refprune.nn import functional as F

try:  # backend fast paths (refprune._dispatch) may stand in for the reference path
    from refprune import _dispatch
except ImportError:  # pragma: no cover - a tree without fast paths
    _dispatch = None

torch = pytest.importorskip("torch")
TF = torch.nn.functional


@pytest.fixture(autouse=True, params=["reference", "dispatch"] if _dispatch is not None else ["reference"])
def path(request):
    """Run every test twice: on the pure Array API reference path (fast paths off), and
    as dispatched (a backend's registered fast path where it has one)."""
    if request.param == "reference" and _dispatch is not None:
        with _dispatch.reference_only():
            yield request.param
    else:
        yield request.param


# float32 results accumulate roundings over sums of up to a few hundred terms; the
# draws here pass at scale 1, this leaves room for other BLAS builds and devices.
SCALE32 = 4.0


def _scale(dtype):
    return SCALE32 if dtype == "float32" else 1.0


def _host(rng, shape, dtype, *, scale=1.0):
    """Standard normal draws rounded to ``dtype``, returned as float64."""
    return (scale * rng.standard_normal(shape)).astype(dtype).astype(np.float64)


def _t(a, grad=True):
    return torch.tensor(a, dtype=torch.float64, requires_grad=grad)


def _np(t):
    return None if t is None else t.detach().numpy()


def _on(backend, dtype, *arrays):
    return [None if a is None else backend.asarray(a, dtype=dtype) for a in arrays]


def _pair_or_int(rng, a, b):
    """The same pair spelt as an int where both are equal (half the time) or a tuple."""
    if a == b and rng.random() < 0.5:
        return int(a)
    return (int(a), int(b))


# ------------------------------------------------------------------------- dense


@pytest.mark.parametrize("bias", [True, False])
def test_dense_matches_torch(backend, dtype, rng, close, bias):
    for _ in range(4):
        lead = tuple(int(d) for d in rng.integers(1, 5, size=int(rng.integers(1, 3))))
        n_in, n_out = (int(d) for d in rng.integers(1, 8, size=2))
        x, w = _host(rng, (*lead, n_in), dtype), _host(rng, (n_in, n_out), dtype)
        b = _host(rng, (n_out,), dtype) if bias else None
        dy = _host(rng, (*lead, n_out), dtype)
        tx, tw = _t(x), _t(w)
        tb = _t(b) if bias else None
        ty = TF.linear(tx, tw.T, tb)
        ty.backward(_t(dy, False))
        bx, bw, bb, bdy = _on(backend, dtype, x, w, b, dy)
        ctx = f"dense x{x.shape} w{w.shape} bias={bias}"
        close(F.dense(bx, bw, bb), _np(ty), dtype, ctx, scale=_scale(dtype))
        dx, dw, db = F.dense_grad(bx, bw, bb, bdy)
        close(dx, _np(tx.grad), dtype, ctx + " dx", scale=_scale(dtype))
        close(dw, _np(tw.grad), dtype, ctx + " dw", scale=_scale(dtype))
        if bias:
            close(db, _np(tb.grad), dtype, ctx + " db", scale=_scale(dtype))
        else:
            assert db is None


# ------------------------------------------------------------------------ conv2d


def _conv_case(rng):
    n, c, o = (int(d) for d in rng.integers(1, 4, size=3))
    kh, kw = (int(d) for d in rng.integers(1, 6, size=2))
    sh, sw = (int(d) for d in rng.integers(1, 4, size=2))
    ph, pw = (int(d) for d in rng.integers(0, 3, size=2))
    h = max(kh - 2 * ph, 1) + int(rng.integers(0, 7))
    w = max(kw - 2 * pw, 1) + int(rng.integers(0, 7))
    return dict(n=n, c=c, o=o, h=h, w=w, kernel=(kh, kw), stride=(sh, sw), padding=(ph, pw))


# Corner cases the random draws may miss: 1x1 kernels, a kernel as large as the padded
# input, strides larger than the kernel (skipped pixels), rows left over by the stride.
CONV_CORNERS = [
    dict(n=2, c=3, o=2, h=5, w=4, kernel=(1, 1), stride=(1, 1), padding=(0, 0)),
    dict(n=1, c=2, o=3, h=3, w=3, kernel=(5, 5), stride=(1, 1), padding=(1, 1)),
    dict(n=2, c=1, o=2, h=9, w=8, kernel=(2, 2), stride=(3, 3), padding=(0, 0)),
    dict(n=2, c=2, o=2, h=8, w=7, kernel=(3, 2), stride=(2, 3), padding=(2, 1)),
    dict(n=1, c=1, o=1, h=1, w=6, kernel=(1, 5), stride=(1, 2), padding=(0, 2)),
]


def _check_conv(backend, dtype, rng, close, case, *, bias, stride, padding):
    n, c, o, h, w = (case[k] for k in ("n", "c", "o", "h", "w"))
    kh, kw = case["kernel"]
    x, wt = _host(rng, (n, c, h, w), dtype), _host(rng, (o, c, kh, kw), dtype)
    b = _host(rng, (o,), dtype) if bias else None
    tx, tw = _t(x), _t(wt)
    tb = _t(b) if bias else None
    ty = TF.conv2d(tx, tw, tb, stride=case["stride"], padding=case["padding"])
    dy = _host(rng, tuple(ty.shape), dtype)
    ty.backward(_t(dy, False))
    bx, bw, bb, bdy = _on(backend, dtype, x, wt, b, dy)
    ctx = f"conv2d x{x.shape} w{wt.shape} stride={stride!r} padding={padding!r} bias={bias}"
    s = _scale(dtype)
    close(F.conv2d(bx, bw, bb, stride=stride, padding=padding), _np(ty), dtype, ctx, scale=s)
    dx, dw, db = F.conv2d_grad(bx, bw, bb, bdy, stride=stride, padding=padding)
    close(dx, _np(tx.grad), dtype, ctx + " dx", scale=s)
    close(dw, _np(tw.grad), dtype, ctx + " dw", scale=s)
    if bias:
        close(db, _np(tb.grad), dtype, ctx + " db", scale=s)
    else:
        assert db is None


def test_conv2d_matches_torch_random(backend, dtype, rng, close):
    for i in range(40):
        case = _conv_case(rng)
        stride = _pair_or_int(rng, *case["stride"])
        padding = _pair_or_int(rng, *case["padding"])
        _check_conv(backend, dtype, rng, close, case, bias=i % 3 != 0, stride=stride, padding=padding)


@pytest.mark.parametrize("case", CONV_CORNERS, ids=lambda c: f"k{c['kernel']}s{c['stride']}p{c['padding']}")
def test_conv2d_matches_torch_corners(backend, rng, close, case):
    _check_conv(backend, "float64", rng, close, case, bias=True, stride=case["stride"], padding=case["padding"])


def test_conv2d_lenet_shapes(backend, rng, close):
    """A LeNet-5-Caffe second layer on a small batch: 20 -> 50 channels, 5x5, 12x12."""
    case = dict(n=3, c=20, o=50, h=12, w=12, kernel=(5, 5), stride=(1, 1), padding=(0, 0))
    _check_conv(backend, "float64", rng, close, case, bias=True, stride=1, padding=0)


def test_conv2d_central_differences(backend):
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal((2, 2, 5, 4)), rng.standard_normal((3, 2, 3, 2)), rng.standard_normal(3)
    kw = dict(stride=(2, 1), padding=(1, 1))
    bx, bw, bb = _on(backend, "float64", x, w, b)
    y = backend.to_numpy(F.conv2d(bx, bw, bb, **kw))
    dy = rng.standard_normal(y.shape)
    dx, dw, db = F.conv2d_grad(bx, bw, bb, backend.asarray(dy, dtype="float64"), **kw)

    def conv(x_, w_, b_):
        return backend.to_numpy(F.conv2d(*_on(backend, "float64", x_, w_, b_), **kw))

    check_grad(lambda a: conv(a, w, b), x, dy, backend.to_numpy(dx), name="conv2d dx")
    check_grad(lambda a: conv(x, a, b), w, dy, backend.to_numpy(dw), name="conv2d dw")
    check_grad(lambda a: conv(x, w, a), b, dy, backend.to_numpy(db), name="conv2d db")


def test_conv_patches_are_torch_unfold(backend, rng, close):
    """``conv_patches`` (the public im2col) is torch's ``unfold``, columns ordered (Ho, Wo, N)."""
    for case in CONV_CORNERS:
        n, c, h, w = (case[k] for k in ("n", "c", "h", "w"))
        x = _host(rng, (n, c, h, w), "float64")
        want = TF.unfold(_t(x, False), case["kernel"], stride=case["stride"], padding=case["padding"])  # (N, CK, L)
        want = _np(want).transpose(1, 2, 0).reshape(want.shape[1], -1)
        got = F.conv_patches(backend.asarray(x, dtype="float64"), kernel=case["kernel"], stride=case["stride"],
                             padding=case["padding"])
        close(got, want, "float64", f"conv_patches {case}")
    with pytest.raises(ValueError, match="kernel must be >= 1"):
        F.conv_patches(np.ones((1, 1, 3, 3)), kernel=0)
    with pytest.raises(ValueError, match="x must be 4-D"):
        F.conv_patches(np.ones((1, 3, 3)), kernel=2)


# -------------------------------------------------------------------- max_pool2d


def test_conv_geometry_checks_after_a_good_call():
    """stride and padding are remembered once checked; values equal to a good one but of another kind stay errors."""
    x, w = np.ones((1, 1, 4, 4)), np.ones((1, 1, 2, 2))
    F.conv2d(x, w, None, stride=1, padding=(1, 1))
    for bad in (True, 1.0, (1.0, 1), (True, 1), "1"):
        with pytest.raises(TypeError, match="stride must be an int or a pair of ints"):
            F.conv2d(x, w, None, stride=bad)
    for bad in (0, (0, 1), [0, 1]):
        with pytest.raises(ValueError, match="stride must be >= 1"):
            F.conv2d(x, w, None, stride=bad)
    assert F.conv2d(x, w, None, stride=[2, 2]).shape == F.conv2d(x, w, None, stride=2).shape == (1, 1, 2, 2)


def test_max_pool2d_matches_torch(backend, dtype, rng, close):
    """Random kernels and strides, overlapping windows, and many ties (values in {0, 1, 2})."""
    for i in range(30):
        kh, kw = (int(d) for d in rng.integers(1, 5, size=2))
        stride = None if i % 4 == 0 else _pair_or_int(rng, *(int(d) for d in rng.integers(1, 4, size=2)))
        n, c = (int(d) for d in rng.integers(1, 4, size=2))
        h, w = kh + int(rng.integers(0, 6)), kw + int(rng.integers(0, 6))
        x = rng.integers(0, 3, size=(n, c, h, w)).astype(np.float64) if i % 2 else _host(rng, (n, c, h, w), dtype)
        kernel = _pair_or_int(rng, kh, kw)
        tx = _t(x)
        ty = TF.max_pool2d(tx, kernel, stride=stride)
        dy = _host(rng, tuple(ty.shape), dtype)
        ty.backward(_t(dy, False))
        bx, bdy = _on(backend, dtype, x, dy)
        ctx = f"max_pool2d x{x.shape} kernel={kernel!r} stride={stride!r}"
        close(F.max_pool2d(bx, kernel=kernel, stride=stride), _np(ty), dtype, ctx)
        close(F.max_pool2d_grad(bx, bdy, kernel=kernel, stride=stride), _np(tx.grad), dtype, ctx + " dx")


def test_max_pool2d_ties_go_to_the_first_element(backend, close):
    """An all-equal 2x2 window sends its whole gradient to its top-left element; with
    stride 1 the overlapping windows add up where they share that element."""
    x = backend.asarray(np.ones((1, 1, 3, 3)), dtype="float64")
    dx = F.max_pool2d_grad(x, backend.asarray(np.ones((1, 1, 1, 1)), dtype="float64"), kernel=2, stride=2)
    close(dx, np.array([[[[1.0, 0, 0], [0, 0, 0], [0, 0, 0]]]]))
    dy = backend.asarray(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]), dtype="float64")
    dx = F.max_pool2d_grad(x, dy, kernel=2, stride=1)
    close(dx, np.array([[[[1.0, 2.0, 0], [3.0, 4.0, 0], [0, 0, 0]]]]))


@pytest.mark.parametrize(("kernel", "stride"), [((3, 2), (2, 1)), ((2, 2), None), ((2, 3), (2, 3))])
def test_max_pool2d_central_differences(backend, kernel, stride):
    """Overlapping windows, and windows that tile the input (stride = kernel; 6x5 leaves a row or column out)."""
    rng = np.random.default_rng(2)
    # Well-separated distinct values: a step of 1e-6 never changes a window's argmax.
    x = rng.permutation(2 * 2 * 6 * 5).reshape(2, 2, 6, 5) / 10.0
    kw = dict(kernel=kernel, stride=stride)
    bx = backend.asarray(x, dtype="float64")
    y = backend.to_numpy(F.max_pool2d(bx, **kw))
    dy = rng.standard_normal(y.shape)
    dx = F.max_pool2d_grad(bx, backend.asarray(dy, dtype="float64"), **kw)

    def pool(a):
        return backend.to_numpy(F.max_pool2d(backend.asarray(a, dtype="float64"), **kw))

    check_grad(pool, x, dy, backend.to_numpy(dx), name="max_pool2d dx")


# ------------------------------------------------------------------- activations


@pytest.mark.parametrize("name", ["relu", "tanh"])
def test_activations_match_torch(backend, dtype, rng, close, name):
    x = _host(rng, (4, 3, 5), dtype, scale=3.0)
    x[0, 0, :3] = [0.0, -0.0, 0.0]  # relu's gradient at exactly 0 is 0, as in torch
    dy = _host(rng, x.shape, dtype)
    tx = _t(x)
    ty = getattr(torch, name)(tx)
    ty.backward(_t(dy, False))
    bx, bdy = _on(backend, dtype, x, dy)
    close(getattr(F, name)(bx), _np(ty), dtype, name)
    close(getattr(F, name + "_grad")(bx, bdy), _np(tx.grad), dtype, name + "_grad")


def test_relu_grad_is_zero_at_zero(backend, close):
    x = backend.asarray(np.array([-1.0, 0.0, 2.0]), dtype="float64")
    close(F.relu_grad(x, backend.asarray(np.array([5.0, 5.0, 5.0]), dtype="float64")), np.array([0.0, 0.0, 5.0]))


def test_tanh_central_differences(backend):
    rng = np.random.default_rng(3)
    x, dy = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    dx = F.tanh_grad(*_on(backend, "float64", x, dy))

    def f(a):
        return backend.to_numpy(F.tanh(backend.asarray(a, dtype="float64")))

    check_grad(f, x, dy, backend.to_numpy(dx), name="tanh dx")


# ------------------------------------------------------------- softmax and loss


@pytest.mark.parametrize("axis", [-1, 0])
def test_softmax_and_log_softmax_match_torch(backend, dtype, rng, close, axis):
    z = _host(rng, (5, 7), dtype, scale=30.0)
    bz = backend.asarray(z, dtype=dtype)
    close(F.softmax(bz, axis=axis), torch.softmax(_t(z, False), dim=axis).numpy(), dtype, "softmax")
    close(F.log_softmax(bz, axis=axis), torch.log_softmax(_t(z, False), dim=axis).numpy(), dtype, "log_softmax")


@pytest.mark.parametrize("scale", [1.0, 1e3])
def test_softmax_cross_entropy_matches_torch(backend, dtype, rng, close, scale):
    for n, k in [(1, 2), (6, 10), (17, 3)]:
        z = _host(rng, (n, k), dtype, scale=scale)
        labels = rng.integers(0, k, size=n)
        tz = _t(z)
        loss = TF.cross_entropy(tz, torch.tensor(labels))
        loss.backward(torch.tensor(0.7, dtype=torch.float64))
        bz = backend.asarray(z, dtype=dtype)
        bl = backend.asarray(labels)
        ctx = f"softmax_cross_entropy logits{z.shape} scale={scale}"
        out = F.softmax_cross_entropy(bz, bl)
        assert tuple(out.shape) == ()
        assert np.isfinite(backend.to_numpy(out))
        close(out, _np(loss), dtype, ctx)
        close(F.softmax_cross_entropy_grad(bz, bl, 0.7), _np(tz.grad), dtype, ctx + " grad")
        # a 0-d array made on the device by the namespace itself
        dy = backend.xp.asarray(0.7, dtype=backend.dtype(dtype), device=backend.device)
        close(F.softmax_cross_entropy_grad(bz, bl, dy), _np(tz.grad), dtype, ctx + " grad (0-d dy)")


def test_softmax_cross_entropy_default_dy_and_central_differences(backend):
    rng = np.random.default_rng(4)
    z, labels = rng.standard_normal((4, 5)), np.array([0, 4, 2, 2])
    bl = backend.asarray(labels)
    grad = backend.to_numpy(F.softmax_cross_entropy_grad(backend.asarray(z, dtype="float64"), bl))
    half = F.softmax_cross_entropy_grad(backend.asarray(z, dtype="float64"), bl, np.float32(0.5))  # a NumPy scalar
    np.testing.assert_allclose(backend.to_numpy(half), 0.5 * grad, rtol=1e-12)

    def f(a):
        return backend.to_numpy(F.softmax_cross_entropy(backend.asarray(a, dtype="float64"), bl))

    check_grad(f, z, np.float64(1.0), grad, name="softmax_cross_entropy dlogits")


@pytest.mark.parametrize("loss", [F.softmax_cross_entropy, F.softmax_cross_entropy_and_grad])
def test_softmax_cross_entropy_validates_labels(backend, loss):
    z = backend.asarray(np.zeros((3, 4)), dtype="float64")
    with pytest.raises(TypeError, match="integer"):
        loss(z, backend.asarray(np.array([0.0, 1.0, 2.0]), dtype="float64"))
    with pytest.raises(ValueError, match=r"\[0, 3\]"):
        loss(z, backend.asarray(np.array([0, 4, 1])))
    with pytest.raises(ValueError, match=r"\[0, 3\]"):
        F.softmax_cross_entropy_grad(z, backend.asarray(np.array([0, -1, 1])))
    with pytest.raises(ValueError, match="shape"):
        loss(z, backend.asarray(np.array([0, 1])))
    with pytest.raises(ValueError, match="shape"):
        F.softmax_cross_entropy(z, backend.asarray(np.array([[0], [1], [2]])))
    with pytest.raises(ValueError, match="0-d"):
        F.softmax_cross_entropy_grad(
            z, backend.asarray(np.array([0, 1, 2])), backend.asarray(np.ones(3), dtype="float64")
        )


@pytest.mark.parametrize("scale", [1.0, 1e3])
def test_softmax_cross_entropy_and_grad_equals_the_two_functions_bit_for_bit(backend, dtype, rng, scale):
    """The training step's one pass: the same loss and logit gradient as the two functions, to the bit."""
    for n, k in [(1, 2), (6, 10), (17, 3)]:
        bz = backend.asarray(_host(rng, (n, k), dtype, scale=scale), dtype=dtype)
        bl = backend.asarray(rng.integers(0, k, size=n))
        loss, grad = F.softmax_cross_entropy_and_grad(bz, bl)
        want_loss, want_grad = F.softmax_cross_entropy(bz, bl), F.softmax_cross_entropy_grad(bz, bl)
        assert tuple(loss.shape) == () and grad.dtype == want_grad.dtype
        np.testing.assert_array_equal(backend.to_numpy(loss), backend.to_numpy(want_loss))
        np.testing.assert_array_equal(backend.to_numpy(grad), backend.to_numpy(want_grad))


def test_count_correct_counts_first_argmax_hits_on_the_device(backend, dtype):
    logits = np.array([[0.1, 0.9, 0.0], [2.0, 2.0, -1.0], [0.0, 0.0, 5.0], [1.0, -1.0, 0.5]])
    labels = np.array([1, 1, 2, 0])  # row 1 ties: argmax is 0, so it is not counted
    got = F.count_correct(backend.asarray(logits, dtype=dtype), backend.asarray(labels))
    want = int(np.count_nonzero(np.argmax(logits, axis=1) == labels))
    assert want == 3 and int(got) == want and tuple(got.shape) == ()
    assert backend.xp.isdtype(got.dtype, "integral")
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        F.count_correct(backend.asarray(logits, dtype=dtype), backend.asarray(np.array([0, 1, 3, 0])))
    with pytest.raises(TypeError, match="integer"):
        F.count_correct(backend.asarray(logits, dtype=dtype), backend.asarray(labels, dtype=dtype))


# -------------------------------------------------------------------- batch norm


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 3, 2)])
@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_matches_torch(backend, dtype, rng, close, shape, train, affine):
    c = shape[1]
    x, dy = _host(rng, shape, dtype, scale=2.0), _host(rng, shape, dtype)
    x = x + 1.5  # a non-zero mean
    gamma = _host(rng, (c,), dtype) if affine else None
    beta = _host(rng, (c,), dtype) if affine else None
    rm = _host(rng, (c,), dtype)
    rv = np.exp(_host(rng, (c,), dtype)).astype(dtype).astype(np.float64)
    tx = _t(x)
    tg, tb = (_t(gamma), _t(beta)) if affine else (None, None)
    trm, trv = torch.tensor(rm), torch.tensor(rv)  # torch updates these in place
    ty = TF.batch_norm(tx, trm, trv, tg, tb, training=train, momentum=0.2, eps=1e-4)
    ty.backward(_t(dy, False))
    bx, bg, bb, brm, brv, bdy = _on(backend, dtype, x, gamma, beta, rm, rv, dy)
    kw = dict(running_mean=brm, running_var=brv, train=train)
    ctx = f"batch_norm x{shape} train={train} affine={affine}"
    s = _scale(dtype)
    y, new_rm, new_rv = F.batch_norm(bx, bg, bb, momentum=0.2, eps=1e-4, **kw)
    close(y, _np(ty), dtype, ctx, scale=s)
    close(new_rm, trm.numpy(), dtype, ctx + " running_mean", scale=s)
    close(new_rv, trv.numpy(), dtype, ctx + " running_var", scale=s)
    close(brm, rm, dtype, ctx + " running_mean input untouched", scale=0.0)
    dx, dg, db = F.batch_norm_grad(bx, bg, bb, bdy, eps=1e-4, **kw)
    close(dx, _np(tx.grad), dtype, ctx + " dx", scale=s)
    if affine:
        close(dg, _np(tg.grad), dtype, ctx + " dgamma", scale=s)
        close(db, _np(tb.grad), dtype, ctx + " dbeta", scale=s)
    else:
        assert dg is None and db is None


def test_batch_norm_without_running_statistics(backend, close, rng):
    x = rng.standard_normal((5, 2))
    y, rm, rv = F.batch_norm(
        backend.asarray(x, dtype="float64"), None, None, running_mean=None, running_var=None, train=True
    )
    assert rm is None and rv is None
    expected = TF.batch_norm(torch.tensor(x), None, None, training=True).numpy()
    close(y, expected)
    with pytest.raises(ValueError, match="running_mean"):
        F.batch_norm(backend.asarray(x, dtype="float64"), None, None, running_mean=None, running_var=None, train=False)


def test_batch_norm_central_differences(backend):
    rng = np.random.default_rng(5)
    x, g, b = rng.standard_normal((4, 2, 2, 3)), rng.standard_normal(2), rng.standard_normal(2)
    dy = rng.standard_normal(x.shape)
    bx, bg, bb, bdy = _on(backend, "float64", x, g, b, dy)
    kw = dict(running_mean=None, running_var=None, train=True)
    dx, dg, db = F.batch_norm_grad(bx, bg, bb, bdy, **kw)

    def bn(x_, g_, b_):
        return backend.to_numpy(F.batch_norm(*_on(backend, "float64", x_, g_, b_), **kw)[0])

    check_grad(lambda a: bn(a, g, b), x, dy, backend.to_numpy(dx), name="batch_norm dx")
    check_grad(lambda a: bn(x, a, b), g, dy, backend.to_numpy(dg), name="batch_norm dgamma")
    check_grad(lambda a: bn(x, g, a), b, dy, backend.to_numpy(db), name="batch_norm dbeta")


def test_batch_norm_rejects_a_single_value_per_channel_in_training(backend):
    x = backend.asarray(np.ones((1, 3)), dtype="float64")
    with pytest.raises(ValueError, match="more than 1 value"):
        F.batch_norm(x, None, None, running_mean=None, running_var=None, train=True)


# ----------------------------------------------------------------------- flatten


def test_flatten_matches_torch(backend, rng, close):
    x = rng.standard_normal((3, 2, 4, 5))
    dy = rng.standard_normal((3, 40))
    bx, bdy = _on(backend, "float64", x, dy)
    close(F.flatten(bx), torch.flatten(torch.tensor(x), 1).numpy())
    close(F.flatten_grad(bx, bdy), dy.reshape(x.shape))


# ------------------------------------------------------------ purity and errors


def test_inputs_are_never_written(backend, rng):
    """Every pair leaves its inputs as they were (NumPy inputs are even made read-only)."""
    host = dict(
        x=rng.standard_normal((2, 3, 6, 6)),
        w=rng.standard_normal((4, 3, 3, 3)),
        b=rng.standard_normal(4),
        dy=rng.standard_normal((2, 4, 3, 3)),
        dyp=rng.standard_normal((2, 3, 3, 3)),
        z=rng.standard_normal((2, 3)),
        gamma=rng.standard_normal(3),
        rm=rng.standard_normal(3),
        rv=np.exp(rng.standard_normal(3)),
    )
    arr = {k: backend.asarray(v, dtype="float64") for k, v in host.items()}
    labels = backend.asarray(np.array([0, 2]))
    if backend.name == "numpy":
        for a in arr.values():
            a.flags.writeable = False
    a = arr
    F.conv2d(a["x"], a["w"], a["b"], stride=2, padding=1)
    F.conv2d_grad(a["x"], a["w"], a["b"], a["dy"], stride=2, padding=1)
    F.max_pool2d(a["x"], kernel=2, stride=2)
    F.max_pool2d_grad(a["x"], a["dyp"], kernel=2, stride=2)
    F.relu_grad(a["x"], a["x"])
    F.tanh_grad(a["x"], a["x"])
    F.softmax_cross_entropy_grad(a["z"], labels)
    for train in (True, False):
        bn = dict(running_mean=a["rm"], running_var=a["rv"], train=train)
        F.batch_norm(a["x"], a["gamma"], a["gamma"], **bn)
        F.batch_norm_grad(a["x"], a["gamma"], a["gamma"], a["x"], **bn)
    F.dense_grad(a["z"], a["w"][0, 0, ...], None, a["z"])
    for k, v in host.items():
        np.testing.assert_array_equal(backend.to_numpy(arr[k]), v, err_msg=k)


def test_argument_errors(backend):
    x = backend.asarray(np.zeros((1, 2, 5, 5)), dtype="float64")
    w = backend.asarray(np.zeros((3, 2, 3, 3)), dtype="float64")
    with pytest.raises(ValueError, match="input channels"):
        F.conv2d(x, backend.asarray(np.zeros((3, 1, 3, 3)), dtype="float64"), None)
    with pytest.raises(ValueError, match="larger than the padded input"):
        F.conv2d(x, backend.asarray(np.zeros((3, 2, 6, 1)), dtype="float64"), None)
    with pytest.raises(ValueError, match="stride"):
        F.conv2d(x, w, None, stride=0)
    with pytest.raises(TypeError, match="stride"):
        F.conv2d(x, w, None, stride=1.5)
    with pytest.raises(ValueError, match="padding"):
        F.conv2d(x, w, None, padding=(1, -1))
    with pytest.raises(ValueError, match="b must have shape"):
        F.conv2d(x, w, backend.asarray(np.zeros(2), dtype="float64"))
    with pytest.raises(TypeError, match="dtype"):
        F.conv2d(x, backend.asarray(np.zeros((3, 2, 3, 3)), dtype="float32"), None)
    with pytest.raises(TypeError, match="floating"):
        F.conv2d(backend.asarray(np.zeros((1, 2, 5, 5), dtype=np.int64)), w, None)
    with pytest.raises(ValueError, match="dy must have shape"):
        F.conv2d_grad(x, w, None, x)
    with pytest.raises(ValueError, match="4-D"):
        F.max_pool2d(backend.asarray(np.zeros((2, 5, 5)), dtype="float64"), kernel=2)
    with pytest.raises(ValueError, match="larger than"):
        F.max_pool2d(x, kernel=6)
    with pytest.raises(ValueError, match=r"w expects"):
        F.dense(
            backend.asarray(np.zeros((2, 3)), dtype="float64"), backend.asarray(np.zeros((4, 2)), dtype="float64"), None
        )
    with pytest.raises(TypeError, match="array"):
        F.relu([1.0, 2.0])


def test_module_examples_run():
    """The module docstring's examples (array-api-strict) run as doctests."""
    import doctest

    pytest.importorskip("array_api_strict")
    result = doctest.testmod(F, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0, result
