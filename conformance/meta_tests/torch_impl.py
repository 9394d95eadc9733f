"""An independent implementation of the oracle protocol (docs/protocol.md) in PyTorch.

Written from the protocol's tables alone; it never calls refprune. It serves twice:
as the correct target of the meta-tests (it must pass the whole suite, and each
mutant in :mod:`.mutants` breaks one thing in it), and as the differentiable forward
whose ``torch.autograd`` gradients the suite compares every hand-written ``_grad``
with. Arrays are ``torch.Tensor`` (any floating dtype, any device); parameters are
keyword-only, as in the protocol.
"""

from __future__ import annotations

import decimal
import math
import numbers

import torch

BETA, GAMMA, ZETA, EPS = 2.0 / 3.0, -0.1, 1.1, 1e-6

# --------------------------------------------------------------------------- checks


def _tensor(name, x, *, floating=True):
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if floating and not x.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating tensor, got {x.dtype}")
    return x


def _real(name, v, *, lo=None, lo_open=False, hi=None, hi_open=False):
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(v).__name__}")
    v = float(v)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    if lo is not None and (v <= lo if lo_open else v < lo):
        raise ValueError(f"{name}={v} is below its range")
    if hi is not None and (v >= hi if hi_open else v > hi):
        raise ValueError(f"{name}={v} is above its range")
    return v


def _int(name, v, *, lo=None):
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(v).__name__}")
    if lo is not None and v < lo:
        raise ValueError(f"{name}={v} must be >= {lo}")
    return int(v)


def _constants(beta=BETA, gamma=GAMMA, zeta=ZETA, eps=EPS):
    return (
        _real("beta", beta, lo=0.0, lo_open=True),
        _real("gamma", gamma, hi=0.0, hi_open=True),
        _real("zeta", zeta, lo=1.0, lo_open=True),
        _real("eps", eps, lo=0.0, hi=0.5, hi_open=True),
    )


def _broadcast(a, b, names):
    try:
        return torch.broadcast_shapes(a.shape, b.shape)
    except RuntimeError:
        raise ValueError(f"{names[0]} {tuple(a.shape)} and {names[1]} {tuple(b.shape)} do not broadcast") from None


def _same_shape(a, b, names):
    if a.shape != b.shape:
        raise ValueError(f"{names[0]} {tuple(a.shape)} and {names[1]} {tuple(b.shape)} differ in shape")


def _noise(u):
    if u.numel() and not bool(((u >= 0) & (u <= 1)).all()):
        raise ValueError("u must lie in [0, 1] without NaN")


# --------------------------------------------------------------------------- gates


def _s(log_alpha, u, beta):
    # log(0) = -inf and log1p(-1) = -inf give the limits s = 0 and s = 1 exactly.
    return torch.sigmoid((torch.log(u) - torch.log1p(-u) + log_alpha) / beta)


def hard_concrete_quantile(log_alpha, u, *, beta=BETA, gamma=GAMMA, zeta=ZETA):
    _tensor("log_alpha", log_alpha), _tensor("u", u)
    beta, gamma, zeta, _ = _constants(beta, gamma, zeta)
    _broadcast(log_alpha, u, ("log_alpha", "u"))
    _noise(u)
    return _s(log_alpha, u, beta) * (zeta - gamma) + gamma


def hard_concrete_sample(log_alpha, u, *, beta=BETA, gamma=GAMMA, zeta=ZETA):
    return torch.clamp(hard_concrete_quantile(log_alpha, u, beta=beta, gamma=gamma, zeta=zeta), 0.0, 1.0)


def _reduce_to(g, shape):
    while g.dim() > len(shape):
        g = g.sum(0)
    for i, n in enumerate(shape):
        if n == 1 and g.shape[i] != 1:
            g = g.sum(i, keepdim=True)
    return g


def hard_concrete_sample_grad(log_alpha, u, dz, *, beta=BETA, gamma=GAMMA, zeta=ZETA):
    _tensor("log_alpha", log_alpha), _tensor("u", u), _tensor("dz", dz)
    beta, gamma, zeta, _ = _constants(beta, gamma, zeta)
    shape = _broadcast(log_alpha, u, ("log_alpha", "u"))
    if dz.shape != shape:
        raise ValueError(f"dz must have the sample's shape {tuple(shape)}")
    _noise(u)
    s = _s(log_alpha, u, beta)
    s_bar = s * (zeta - gamma) + gamma
    g = torch.where((s_bar > 0) & (s_bar < 1), dz * (zeta - gamma) / beta * s * (1 - s), torch.zeros_like(s))
    return _reduce_to(g, log_alpha.shape).reshape(log_alpha.shape).to(log_alpha.dtype)


def hard_concrete_mode(log_alpha, *, gamma=GAMMA, zeta=ZETA):
    _tensor("log_alpha", log_alpha)
    _, gamma, zeta, _ = _constants(gamma=gamma, zeta=zeta)
    return torch.clamp(torch.sigmoid(log_alpha) * (zeta - gamma) + gamma, 0.0, 1.0)


def hard_concrete_cdf(log_alpha, x, *, beta=BETA, gamma=GAMMA, zeta=ZETA, eps=EPS):
    _tensor("log_alpha", log_alpha)
    beta, gamma, zeta, eps = _constants(beta, gamma, zeta, eps)
    if isinstance(x, torch.Tensor):
        _tensor("x", x)
        _broadcast(log_alpha, x, ("log_alpha", "x"))
        if bool(torch.isnan(x).any()):
            raise ValueError("x must not be NaN")
    else:
        if isinstance(x, bool) or not isinstance(x, numbers.Real):
            raise TypeError("x must be a real number or a tensor")
        if math.isnan(x):
            raise ValueError("x must not be NaN")
        x = torch.tensor(float(x), dtype=log_alpha.dtype, device=log_alpha.device)
    xn = (x - gamma) / (zeta - gamma)
    inside = (xn > 0) & (xn < 1)
    safe = torch.where(inside, xn, torch.full_like(xn, 0.5))
    c = torch.sigmoid(beta * (torch.log(safe) - torch.log1p(-safe)) - log_alpha)
    c = torch.where(xn <= 0, torch.zeros_like(c), torch.where(xn >= 1, torch.ones_like(c), c))
    return torch.clamp(c, eps, 1 - eps)


def _logit_nonzero(log_alpha, beta, gamma, zeta):
    return log_alpha - beta * math.log(-gamma / zeta)


def hard_concrete_prob_nonzero(log_alpha, *, beta=BETA, gamma=GAMMA, zeta=ZETA, eps=EPS):
    _tensor("log_alpha", log_alpha)
    beta, gamma, zeta, eps = _constants(beta, gamma, zeta, eps)
    return torch.clamp(torch.sigmoid(_logit_nonzero(log_alpha, beta, gamma, zeta)), eps, 1 - eps)


def hard_concrete_prob_nonzero_grad(log_alpha, dp, *, beta=BETA, gamma=GAMMA, zeta=ZETA, eps=EPS):
    _tensor("log_alpha", log_alpha), _tensor("dp", dp)
    beta, gamma, zeta, eps = _constants(beta, gamma, zeta, eps)
    _same_shape(log_alpha, dp, ("log_alpha", "dp"))
    t = _logit_nonzero(log_alpha, beta, gamma, zeta)
    p = torch.sigmoid(t)
    clamped = (p < eps) | (p > 1 - eps)
    return torch.where(clamped, torch.zeros_like(p), dp * p * torch.sigmoid(-t)).to(log_alpha.dtype)


def expected_l0(log_alpha, *, group_size=1, beta=BETA, gamma=GAMMA, zeta=ZETA, eps=EPS):
    group_size = _int("group_size", group_size, lo=0)
    p = hard_concrete_prob_nonzero(log_alpha, beta=beta, gamma=gamma, zeta=zeta, eps=eps)
    return p.sum() * group_size


# --------------------------------------------------------------------------- regularizers


def _axis(axis, ndim):
    axis = _int("axis", axis) if not isinstance(axis, bool) else _int("axis", axis)
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis={axis} out of range for {ndim} dimensions")
    return axis % ndim


def _groups(w, axis):
    if w.dim() == 0:
        raise ValueError("w must have at least one dimension")
    axis = _axis(axis, w.dim())
    others = tuple(i for i in range(w.dim()) if i != axis)
    view = tuple(w.shape[i] if i == axis else 1 for i in range(w.dim()))
    return axis, others, view


def _group_sum(x, others):
    return x.sum(dim=others) if others else x


def _l0_parts(log_alpha, w, lam, weight_decay, axis, constants):
    _tensor("log_alpha", log_alpha), _tensor("w", w)
    lam = _real("lam", lam, lo=0.0)
    weight_decay = _real("weight_decay", weight_decay, lo=0.0)
    _constants(**constants)
    axis, others, view = _groups(w, axis)
    if tuple(log_alpha.shape) != (w.shape[axis],):
        raise ValueError("log_alpha must have shape (w.shape[axis],)")
    size = math.prod(w.shape[i] for i in others)
    cost = lam * size + weight_decay / 2 * _group_sum(w * w, others)
    return weight_decay, view, cost


def l0_penalty(log_alpha, w, *, lam, weight_decay=0.0, axis=0, beta=BETA, gamma=GAMMA, zeta=ZETA, eps=EPS):
    c = {"beta": beta, "gamma": gamma, "zeta": zeta, "eps": eps}
    _, _, cost = _l0_parts(log_alpha, w, lam, weight_decay, axis, c)
    return (hard_concrete_prob_nonzero(log_alpha, **c) * cost).sum()


def l0_penalty_grad(log_alpha, w, *, lam, weight_decay=0.0, axis=0, beta=BETA, gamma=GAMMA, zeta=ZETA, eps=EPS):
    c = {"beta": beta, "gamma": gamma, "zeta": zeta, "eps": eps}
    weight_decay, view, cost = _l0_parts(log_alpha, w, lam, weight_decay, axis, c)
    p = hard_concrete_prob_nonzero(log_alpha, **c)
    d_log_alpha = hard_concrete_prob_nonzero_grad(log_alpha, cost.to(log_alpha.dtype), **c)
    return d_log_alpha, (weight_decay * w * p.reshape(view)).to(w.dtype)


def l2_penalty(w, *, lam=1.0):
    _tensor("w", w)
    return _real("lam", lam, lo=0.0) / 2 * (w * w).sum()


def l2_penalty_grad(w, *, lam=1.0):
    _tensor("w", w)
    return _real("lam", lam, lo=0.0) * w


def l1_penalty(w, *, lam=1.0):
    _tensor("w", w)
    return _real("lam", lam, lo=0.0) * w.abs().sum()


def l1_penalty_grad(w, *, lam=1.0):
    _tensor("w", w)
    return _real("lam", lam, lo=0.0) * torch.sign(w)


def _group_norms(w, axis):
    _, others, view = _groups(w, axis)
    if not others:
        return w.abs().reshape(view) if w.numel() else w.abs()
    return torch.linalg.vector_norm(w, ord=2, dim=others, keepdim=True)


def group_lasso_penalty(w, *, axis, lam=1.0):
    _tensor("w", w)
    lam = _real("lam", lam, lo=0.0)
    return lam * _group_norms(w, axis).sum()


def group_lasso_penalty_grad(w, *, axis, lam=1.0):
    _tensor("w", w)
    lam = _real("lam", lam, lo=0.0)
    norms = _group_norms(w, axis)
    safe = torch.where(norms > 0, norms, torch.ones_like(norms))
    return lam * torch.where(norms > 0, w / safe, torch.zeros_like(w))


def rvsm_penalty(w, u, *, beta):
    _tensor("w", w), _tensor("u", u)
    beta = _real("beta", beta, lo=0.0)
    _same_shape(w, u, ("w", "u"))
    return beta / 2 * ((w - u) ** 2).sum()


def rvsm_penalty_grad(w, u, *, beta):
    _tensor("w", w), _tensor("u", u)
    beta = _real("beta", beta, lo=0.0)
    _same_shape(w, u, ("w", "u"))
    return beta * (w - u), -beta * (w - u)


# --------------------------------------------------------------------------- thresholds


def _t(threshold):
    return _real("threshold", threshold, lo=0.0)


def hard_threshold(w, *, threshold):
    _tensor("w", w)
    return torch.where(w.abs() > _t(threshold), w, torch.zeros_like(w))


def hard_threshold_grad(w, dy, *, threshold):
    _tensor("w", w), _tensor("dy", dy)
    _same_shape(w, dy, ("w", "dy"))
    return torch.where(w.abs() > _t(threshold), dy, torch.zeros_like(dy))


def rvsm_threshold(*, lam, beta):
    lam = _real("lam", lam, lo=0.0)
    beta = _real("beta", beta, lo=0.0, lo_open=True)
    t = math.sqrt(2 * lam / beta)
    if not math.isfinite(t):
        raise ValueError("the threshold overflows")
    return t


def soft_threshold(w, *, threshold):
    _tensor("w", w)
    t = _t(threshold)
    return torch.where(w.abs() > t, torch.sign(w) * (w.abs() - t), torch.zeros_like(w))


def soft_threshold_grad(w, dy, *, threshold):
    return hard_threshold_grad(w, dy, threshold=threshold)


def binarize(w, *, threshold=0.5, on=1.0, off=0.0):
    _tensor("w", w)
    t = _t(threshold)
    on, off = _real("on", on), _real("off", off)
    return torch.where(w.abs() >= t, torch.full_like(w, on), torch.full_like(w, off))


def binarize_grad(w, dy, *, clip=None):
    _tensor("w", w), _tensor("dy", dy)
    _same_shape(w, dy, ("w", "dy"))
    if clip is None:
        return dy.clone()
    if isinstance(clip, (str, bytes)) or not hasattr(clip, "__len__") or len(clip) != 2:
        raise TypeError("clip must be None or (lo, hi)")
    lo, hi = _real("clip[0]", clip[0]), _real("clip[1]", clip[1])
    if lo > hi:
        raise ValueError("clip needs lo <= hi")
    return torch.where((w >= lo) & (w <= hi), dy, torch.zeros_like(dy))


# --------------------------------------------------------------------------- masks

_ROUNDING = {"half-even": decimal.ROUND_HALF_EVEN, "floor": decimal.ROUND_FLOOR, "ceil": decimal.ROUND_CEILING}


def prune_count(amount, n, *, rounding="half-even"):
    if rounding not in _ROUNDING:
        raise ValueError(f"unknown rounding {rounding!r}")
    n = _int("n", n, lo=0)
    if isinstance(amount, bool) or not isinstance(amount, numbers.Real):
        raise TypeError("amount must be an int or a float")
    if isinstance(amount, numbers.Integral):
        if not 0 <= amount <= n:
            raise ValueError(f"an int amount must be in [0, {n}]")
        return int(amount)
    a = float(amount)
    if not 0.0 <= a <= 1.0:  # NaN fails too
        raise ValueError("a float amount must be in [0, 1]")
    with decimal.localcontext() as ctx:
        ctx.prec = 80
        return int((decimal.Decimal(repr(a)) * n).to_integral_value(rounding=_ROUNDING[rounding]))


def _no_nan(name, x):
    if bool(torch.isnan(x).any()):
        raise ValueError(f"{name} contains NaN")


def _keep(flat_scores, k):
    """Keep the n-k best: score descending, lower index first among equals."""
    n = flat_scores.numel()
    order = torch.sort(flat_scores, descending=True, stable=True).indices
    keep = torch.zeros(n, dtype=torch.bool, device=flat_scores.device)
    keep[order[: n - k]] = True
    return keep


def _scores(w, scores, names=("w", "scores")):
    _tensor(names[0], w)
    if scores is None:
        _no_nan(names[0], w)
        return w.abs()
    _tensor(names[1], scores)
    _same_shape(w, scores, names)
    _no_nan(names[1], scores)
    return scores


def magnitude_mask(w, *, amount, scores=None, rounding="half-even"):
    s = _scores(w, scores)
    k = prune_count(amount, w.numel(), rounding=rounding)
    return _keep(s.reshape(-1), k).reshape(w.shape)


def random_mask(u, *, amount, rounding="half-even"):
    _tensor("u", u)
    _no_nan("u", u)
    k = prune_count(amount, u.numel(), rounding=rounding)
    return _keep(u.reshape(-1), k).reshape(u.shape)


def global_magnitude_mask(ws, *, amount, scores=None, rounding="half-even"):
    if not isinstance(ws, (list, tuple)):
        raise TypeError("ws must be a list of tensors")
    if scores is not None and len(scores) != len(ws):
        raise ValueError("one score array per weight array")
    flats = [_scores(w, None if scores is None else scores[i], (f"ws[{i}]", f"scores[{i}]")).reshape(-1) for i, w in enumerate(ws)]
    n = sum(f.numel() for f in flats)
    k = prune_count(amount, n, rounding=rounding)
    if not ws:
        return []
    dtype = flats[0].dtype
    for f in flats[1:]:
        dtype = torch.promote_types(dtype, f.dtype)
    keep = _keep(torch.cat([f.to(dtype) for f in flats]), k)
    return [part.reshape(w.shape) for part, w in zip(torch.split(keep, [f.numel() for f in flats]), ws)]


def structured_mask(w, *, amount, axis, ord=2, rounding="half-even"):
    _tensor("w", w)
    if w.dim() == 0:
        raise ValueError("structured_mask needs at least one axis")
    axis = _axis(axis, w.dim())
    if isinstance(ord, bool) or not isinstance(ord, numbers.Real):
        raise TypeError("ord must be a real number")
    p = float(ord)
    if not (p > 0 or p == -math.inf):
        raise ValueError("ord must be > 0, inf or -inf")
    _no_nan("w", w)
    others = tuple(i for i in range(w.dim()) if i != axis)
    m = w.shape[axis]
    if not others:
        norms = w.abs()
    elif w.numel() == 0:
        norms = torch.zeros(m, dtype=w.dtype, device=w.device)
    else:
        norms = torch.linalg.vector_norm(w, ord=p, dim=others)
    k = prune_count(amount, m, rounding=rounding)
    view = tuple(m if i == axis else 1 for i in range(w.dim()))
    return _keep(norms, k).reshape(view).expand(w.shape).clone()


def mask_from_weights(w):
    if not isinstance(w, torch.Tensor) or w.dtype == torch.bool or w.is_complex():
        raise TypeError("w must be a real numeric tensor")
    return w != 0


def apply_mask(w, mask):
    _tensor("w", w)
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise TypeError("mask must be a bool tensor")
    _same_shape(w, mask, ("w", "mask"))
    return torch.where(mask, w, torch.zeros_like(w))


def sparsity(mask):
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise TypeError("mask must be a bool tensor")
    n = mask.numel()
    return 0.0 if n == 0 else (n - int(mask.sum())) / n


# --------------------------------------------------------------------------- schedules


def _fraction(name, v):
    return _real(name, v, lo=0.0, hi=1.0)


def _updates(step, begin, end, frequency):
    return begin <= step and (end == -1 or step <= end) and (step - begin) % frequency == 0


def _span(begin, end, frequency, *, open_end):
    begin = _int("begin", begin, lo=0)
    end = _int("end", end)
    frequency = _int("frequency", frequency, lo=1)
    if open_end and end != -1 and end < begin:
        raise ValueError("end must be -1 or >= begin")
    if not open_end and end <= begin:
        raise ValueError("end must be > begin")
    return begin, end, frequency


def constant_sparsity(step, *, target, begin=0, end=-1, frequency=100):
    step = _int("step", step)
    target = _fraction("target", target)
    begin, end, frequency = _span(begin, end, frequency, open_end=True)
    return _updates(step, begin, end, frequency), target


def polynomial_sparsity(step, *, initial, final, begin, end, power=3, frequency=100):
    step = _int("step", step)
    initial, final = _fraction("initial", initial), _fraction("final", final)
    power = _real("power", power, lo=0.0, lo_open=True)
    begin, end, frequency = _span(begin, end, frequency, open_end=False)
    p = min(1.0, max(0.0, (step - begin) / (end - begin)))
    return _updates(step, begin, end, frequency), final + (initial - final) * (1.0 - p) ** power


def imp_sparsity(round, *, rate=0.2):
    round = _int("round", round, lo=0)
    rate = _fraction("rate", rate)
    return 1.0 - (1.0 - rate) ** round
