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


# =========================================================================== oracle protocol v1 primitives
#
# Written from docs/protocol.md alone (never calling refprune). Where a v0
# function gained a keyword in v1 (``structured_mask(scores=)``, the schedules'
# ``counting=``) it is redefined here, wrapping the v0 version above.

_structured_mask_v0 = structured_mask
_constant_sparsity_v0 = constant_sparsity
_polynomial_sparsity_v0 = polynomial_sparsity


def _rank_keep(scores_2d, n_keep):
    """Rows of scores: keep the first n_keep of each row ranked by score descending, earlier first."""
    order = torch.sort(scores_2d, dim=1, descending=True, stable=True).indices
    keep = torch.zeros_like(scores_2d, dtype=torch.bool)
    if n_keep:
        keep.scatter_(1, order[:, :n_keep], True)
    return keep


def _scores_for(w, scores):
    return _scores(w, scores)


def structured_mask(w, *, amount, axis, ord=None, scores=None, rounding="half-even"):
    if scores is None:
        return _structured_mask_v0(w, amount=amount, axis=axis, ord=2 if ord is None else ord, rounding=rounding)
    _tensor("w", w)
    if w.dim() == 0:
        raise ValueError("structured_mask needs at least one axis")
    if ord is not None:
        raise ValueError("ord does not apply with scores")
    s = _scores(w, scores).to(torch.float64)
    axis = _axis(axis, w.dim())
    m = w.shape[axis]
    others = tuple(i for i in range(w.dim()) if i != axis)
    if others:
        both = (s == math.inf).any(dim=others) & (s == -math.inf).any(dim=others) if s.numel() else torch.zeros(m, dtype=torch.bool)
        if bool(both.any()):
            raise ValueError("a slice holds both inf and -inf")
        sums = s.sum(dim=others)
    else:
        sums = s
    k = prune_count(amount, m, rounding=rounding)
    view = tuple(m if i == axis else 1 for i in range(w.dim()))
    return _keep(sums, k).reshape(view).expand(w.shape).clone()


def _count_arg(name, v, lo):
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{name} must be an int")
    if v < lo:
        raise ValueError(f"{name} must be >= {lo}")
    return int(v)


def nm_mask(w, *, n, m, axis=-1, scores=None):
    _tensor("w", w)
    if w.dim() == 0:
        raise ValueError("nm_mask needs at least one axis")
    m = _count_arg("m", m, 1)
    n = _count_arg("n", n, 0)
    if n > m:
        raise ValueError("n must be <= m")
    axis = _axis(axis, w.dim())
    if w.shape[axis] % m:
        raise ValueError(f"w.shape[{axis}] is not a multiple of m={m}")
    s = _scores(w, scores)
    moved = s.movedim(axis, -1)
    keep = _rank_keep(moved.reshape(-1, m), n) if moved.numel() else torch.zeros(moved.shape, dtype=torch.bool)
    return keep.reshape(moved.shape).movedim(-1, axis).contiguous()


_POOLS = ("l1", "l2", "max", "mean")


def _tiles(x, block, fill):
    """(tiles..., entries) view of x padded with fill to whole tiles."""
    pads = []
    for size, b in zip(reversed(x.shape), reversed(block)):
        pads += [0, (-size) % b]
    x = torch.nn.functional.pad(x, pads, value=fill) if any(pads) else x
    grid = [size // b for size, b in zip(x.shape, block)]
    inter = [d for g, b in zip(grid, block) for d in (g, b)]
    nd = len(block)
    perm = list(range(0, 2 * nd, 2)) + list(range(1, 2 * nd, 2))
    return x.reshape(inter).permute(perm).reshape(*grid, -1), grid


def _ordered_sum(t, block):
    """Each tile's sum in the protocol's order: axis 0's block offsets first, each in increasing offset."""
    x = t.reshape(*t.shape[:-1], *block)
    first = t.dim() - 1  # the grid axes come first, then the offsets not yet reduced
    for _ in block:
        acc = x.select(first, 0)
        for o in range(1, x.shape[first]):
            acc = acc + x.select(first, o)
        x = acc
    return x


def block_mask(w, *, block, amount, pool="l1", scores=None, rounding="half-even"):
    _tensor("w", w)
    if w.dim() == 0:
        raise ValueError("block_mask needs at least one axis")
    if isinstance(block, numbers.Integral) and not isinstance(block, bool):
        block = (int(block),) * w.dim()
    if not isinstance(block, (tuple, list)):
        raise TypeError("block must be an int or a tuple")
    if len(block) != w.dim():
        raise ValueError("block needs one size per axis")
    block = tuple(_count_arg("block", b, 1) for b in block)
    if pool not in _POOLS:
        raise ValueError(f"unknown pool {pool!r}")
    grid = [-(-size // b) for size, b in zip(w.shape, block)]
    k = prune_count(amount, math.prod(grid), rounding=rounding)
    s = _scores(w, scores).to(torch.float64)
    if w.numel() == 0:
        return torch.ones(w.shape, dtype=torch.bool)
    if pool == "max":
        t, _ = _tiles(s, block, -math.inf)
        tile = t.amax(dim=-1)
    else:
        a = s.abs() if pool == "l1" else s
        if pool == "mean":
            hi, _ = _tiles(s, block, 0.0)
            if bool(((hi == math.inf).any(-1) & (hi == -math.inf).any(-1)).any()):
                raise ValueError("a tile holds both inf and -inf")
        t, _ = _tiles(a * a if pool == "l2" else a, block, 0.0)
        tile = _ordered_sum(t, block)
        if pool == "l2":
            tile = tile.sqrt()
        if pool == "mean":
            ones, _ = _tiles(torch.ones_like(s), block, 0.0)
            tile = tile / ones.sum(dim=-1)
    keep = _keep(tile.reshape(-1), k).reshape(grid)
    for axis, b in enumerate(block):
        keep = keep.repeat_interleave(b, dim=axis)
    return keep[tuple(slice(0, size) for size in w.shape)].contiguous()


def layer_densities(shapes, *, density, distribution="uniform", power_scale=1.0, dense=()):
    if isinstance(shapes, dict):
        keys, values = list(shapes), list(shapes.values())
    elif isinstance(shapes, (list, tuple)):
        keys, values = None, list(shapes)
    else:
        raise TypeError("shapes must be a list or a dict")
    dims = []
    for s in values:
        if not isinstance(s, (list, tuple)) or any(isinstance(d, bool) or not isinstance(d, numbers.Integral) for d in s):
            raise TypeError("a shape is a tuple of ints")
        if any(d < 0 for d in s):
            raise ValueError("negative size")
        dims.append(tuple(int(d) for d in s))
    density = _fraction("density", density)
    if distribution not in ("uniform", "erk", "er"):
        raise ValueError("unknown distribution")
    power_scale = _real("power_scale", power_scale, lo=0.0)
    if isinstance(dense, (str, bytes)):
        raise TypeError("dense must be a list")
    forced = set()
    for d in dense:
        if keys is not None:
            if d not in keys:
                raise ValueError(f"unknown layer {d!r}")
            forced.add(keys.index(d))
        else:
            if isinstance(d, bool) or not isinstance(d, numbers.Integral):
                raise TypeError("dense holds indices")
            if not -len(dims) <= d < len(dims):
                raise ValueError("index out of range")
            forced.add(d % len(dims))
    counts = [math.prod(s) for s in dims]
    with decimal.localcontext() as ctx:
        ctx.prec = 80
        budget = decimal.Decimal(repr(density)) * sum(counts)
    if budget < sum(counts[i] for i in forced):
        raise ValueError("the forced dense layers exceed the budget")
    if distribution == "uniform":
        if not forced:
            out = [density] * len(dims)
        else:
            rest = sum(c for i, c in enumerate(counts) if i not in forced)
            d = min(1.0, float(budget - sum(counts[i] for i in forced)) / rest) if rest else 1.0
            out = [1.0 if i in forced else d for i in range(len(dims))]
    else:
        raw = {}
        for i, s in enumerate(dims):
            if distribution == "er" and len(s) < 2 or distribution == "erk" and len(s) == 0:
                raise ValueError("shape has too few dims")
            if counts[i]:
                use = s[:2] if distribution == "er" else s
                raw[i] = (sum(use) / math.prod(use)) ** power_scale
        dense_set = set(forced) | {i for i, c in enumerate(counts) if c == 0}
        eps = 0.0
        while True:  # RigL's order: densify the largest raw probability, solve again
            live = [i for i in range(len(dims)) if i not in dense_set]
            if not live:
                break
            rhs = float(budget) - sum(counts[i] for i in dense_set)
            eps = max(rhs, 0.0) / sum(raw[i] * counts[i] for i in live)
            top = max(raw[i] for i in live)
            if eps * top > 1.0:
                dense_set |= {i for i in live if raw[i] == top}
            else:
                break
        out = [1.0 if i in dense_set else min(1.0, eps * raw[i]) for i in range(len(dims))]
    return out if keys is None else dict(zip(keys, out))


def _pair(w, g):
    _tensor("w", w), _tensor("g", g)
    _same_shape(w, g, ("w", "g"))


def saliency_scores(w, g):
    _pair(w, g)
    return (w * g).abs()


def taylor_scores(w, g, *, kind="squared"):
    if kind not in ("squared", "abs"):
        raise ValueError("unknown kind")
    _pair(w, g)
    return (w * g) ** 2 if kind == "squared" else (w * g).abs()


def movement_scores(w, g, *, previous=None):
    _pair(w, g)
    if previous is None:
        return -(w * g)
    _tensor("previous", previous)
    _same_shape(w, previous, ("w", "previous"))
    return previous - w * g


def random_scores(w, *, rng):
    _tensor("w", w)
    if not callable(getattr(rng, "uniform", None)):
        raise TypeError("rng must have uniform()")
    return rng.uniform(tuple(w.shape), w.dtype, 0.0, 1.0)


def drop_grow(w, mask, *, drop_fraction, grow_scores, drop_scores=None, rounding="half-even"):
    _tensor("w", w), _tensor("grow_scores", grow_scores)
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise TypeError("mask must be a bool tensor")
    _same_shape(w, mask, ("w", "mask"))
    _same_shape(w, grow_scores, ("w", "grow_scores"))
    if drop_scores is not None:
        _tensor("drop_scores", drop_scores)
        _same_shape(w, drop_scores, ("w", "drop_scores"))
    flat = mask.reshape(-1)
    kept = torch.nonzero(flat).reshape(-1)
    pruned = torch.nonzero(~flat).reshape(-1)
    k = min(prune_count(drop_fraction, kept.numel(), rounding=rounding), pruned.numel())
    ds = (w.abs() if drop_scores is None else drop_scores).reshape(-1)[kept]
    gs = grow_scores.reshape(-1)[pruned]
    if bool(torch.isnan(ds).any()) or bool(torch.isnan(gs).any()):
        raise ValueError("NaN among the ranked scores")
    new = torch.zeros_like(flat)
    survivors = kept[torch.sort(ds, descending=True, stable=True).indices[: kept.numel() - k]]
    grown = pruned[torch.sort(gs, descending=True, stable=True).indices[:k]]
    new[survivors] = True
    new[grown] = True
    return new.reshape(mask.shape)


def cosine_drop_fraction(step, *, initial, end):
    step = _int("step", step, lo=0)
    end = _int("end", end, lo=1)
    initial = _fraction("initial", initial)
    return 0.0 if step >= end else 0.5 * initial * (1.0 + math.cos(math.pi * step / end))


def _counting(counting):
    if counting not in ("relative", "absolute"):
        raise ValueError("counting must be 'relative' or 'absolute'")
    return counting


def _on_grid(step, begin, end, frequency, counting):
    origin = begin if counting == "relative" else 0
    return begin <= step and (end == -1 or step <= end) and (step - origin) % frequency == 0


def is_update_step(step, *, begin=0, end=-1, frequency=100, counting="relative"):
    step = _int("step", step)
    begin, end, frequency = _span(begin, end, frequency, open_end=True)
    return _on_grid(step, begin, end, frequency, _counting(counting))


def constant_sparsity(step, *, target, begin=0, end=-1, frequency=100, counting="relative"):
    _, s = _constant_sparsity_v0(step, target=target, begin=begin, end=end, frequency=frequency)
    return _on_grid(step, begin, end, frequency, _counting(counting)), s


def polynomial_sparsity(step, *, initial, final, begin, end, power=3, frequency=100, counting="relative"):
    _, s = _polynomial_sparsity_v0(step, initial=initial, final=final, begin=begin, end=end, power=power, frequency=frequency)
    return _on_grid(step, begin, end, frequency, _counting(counting)), s


def one_shot_sparsity(step, *, target, at):
    step = _int("step", step)
    target = _fraction("target", target)
    at = _int("at", at, lo=0)
    return step == at, target


def jaxpruner_polynomial_sparsity(step, *, target, begin, end, power=3, frequency=100):
    step = _int("step", step)
    target = _fraction("target", target)
    power = _real("power", power, lo=0.0, lo_open=True)
    begin = _int("begin", begin, lo=0)
    end = _int("end", end)
    frequency = _int("frequency", frequency, lo=1)
    if end < begin:
        raise ValueError("end must be >= begin")
    p = 1.0 if end == begin else min(max(step + 1 - begin, 0), end - begin) / (end - begin)
    return _on_grid(step, begin, end, frequency, "absolute"), target * (1.0 - (1.0 - p) ** power)


# =========================================================================== oracle protocol v2: one-shot pruning
#
# Written from the papers and the official code (locuslab/wanda, RIA, IST-DASLab/sparsegpt,
# IST-DASLab/OBC) and the protocol's v2 contract, never from refprune's code: ``w`` is
# (out, in) like a torch Linear, ``x`` (tokens, in); every computation runs in float64 and
# the result is cast back to the input's dtype. SparseGPT is written column by column
# (no lazy block batching: in exact arithmetic the lazy update is the same), OBC as the
# textbook greedy OBS on the inverse Hessian.


def _matrix(name, a):
    _tensor(name, a)
    if a.dim() != 2:
        raise ValueError(f"{name} must be 2-D, got shape {tuple(a.shape)}")
    _no_nan(name, a)
    return a


def _norms_for(w, norms):
    _matrix("w", w)
    _tensor("norms", norms)
    if norms.dim() != 1 or norms.shape[0] != w.shape[1]:
        raise ValueError(f"norms must have shape ({w.shape[1]},) for w of shape {tuple(w.shape)}")
    _no_nan("norms", norms)
    if bool((norms < 0).any()):
        raise ValueError("norms must be >= 0")
    return norms


def _square(name, h, size):
    _matrix(name, h)
    if tuple(h.shape) != (size, size):
        raise ValueError(f"{name} must have shape ({size}, {size}), got {tuple(h.shape)}")
    return h


def _tokens(x):
    """``x`` as ``(tokens, in)``: every leading axis counts as tokens."""
    _tensor("x", x)
    if x.dim() < 2:
        raise ValueError(f"x must have shape (tokens, in), got {tuple(x.shape)}")
    return x.reshape(math.prod(x.shape[:-1]), x.shape[-1])


def activation_norms(x):
    x = _tokens(x)
    x64 = x.to(torch.float64)
    big = x64.abs().amax(dim=0) if x.shape[0] else torch.zeros(x.shape[1], dtype=torch.float64)
    safe = torch.where(big > 0, big, torch.ones_like(big))
    scaled = (x64 / safe).square().sum(dim=0).sqrt() * big if x.shape[0] else big
    return scaled.to(x.dtype)


def wanda_scores(w, norms):
    norms = _norms_for(w, norms)
    return (w.to(torch.float64).abs() * norms.to(torch.float64)).to(w.dtype)


def _nm_args(n, m, length):
    m = _count_arg("m", m, 1)
    n = _count_arg("n", n, 0)
    if n > m:
        raise ValueError("n must be <= m")
    if length % m:
        raise ValueError(f"w.shape[1]={length} is not a multiple of m={m}")
    return n, m


def _exactly_one_budget(amount, n, m):
    has_nm = n is not None or m is not None
    if (amount is None) == (not has_nm):
        raise ValueError("give either amount or n and m")
    if has_nm and (n is None or m is None):
        raise ValueError("N:M needs both n and m")


def wanda_mask(w, norms, *, amount=None, n=None, m=None, group="row", rounding="half-even"):
    norms = _norms_for(w, norms)
    _exactly_one_budget(amount, n, m)
    if group not in ("row", "layer"):
        raise ValueError(f"group must be 'row' or 'layer', got {group!r}")
    if amount is None and group != "row":
        raise ValueError("N:M groups are per row: group='layer' takes amount, not n and m")
    s = w.to(torch.float64).abs() * norms.to(torch.float64)
    rows, cols = w.shape
    if amount is None:
        n, m = _nm_args(n, m, cols)
        if s.numel() == 0:
            return torch.ones(w.shape, dtype=torch.bool)
        return _rank_keep(s.reshape(-1, m), n).reshape(w.shape)
    if group == "layer":
        return _keep(s.reshape(-1), prune_count(amount, s.numel(), rounding=rounding)).reshape(w.shape)
    k = prune_count(amount, cols, rounding=rounding)
    if s.numel() == 0:
        return torch.ones(w.shape, dtype=torch.bool)
    return _rank_keep(s, cols - k)


def ria_scores(w, norms, *, a=0.5):
    norms = _norms_for(w, norms)
    a = _real("a", a)
    aw = w.to(torch.float64).abs()
    row = aw.sum(dim=1, keepdim=True)
    col = aw.sum(dim=0, keepdim=True)
    rel = torch.where(row > 0, aw / torch.where(row > 0, row, 1.0), 0.0) + \
        torch.where(col > 0, aw / torch.where(col > 0, col, 1.0), 0.0)
    return (rel * norms.to(torch.float64) ** a).to(w.dtype)


def hessian(x):
    """``H = 2/T X^T X``: the Hessian of the mean squared output error (SparseGPT's scale)."""
    x = _tokens(x)
    if x.shape[0] == 0:
        raise ValueError("x has no tokens")
    x64 = x.to(torch.float64)
    return (2.0 / x.shape[0] * (x64.T @ x64)).to(x.dtype)


def _mask_for(w, mask):
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise TypeError("mask must be a bool tensor")
    _same_shape(w, mask, ("w", "mask"))
    return mask


def masked_least_squares(w, h, mask):
    """Per row: ``w_S + H_SS^+ H_SP w_P`` on the kept inputs S (of all optima the closest to ``w``), 0 on P."""
    _matrix("w", w)
    _square("h", h, w.shape[1])
    _mask_for(w, mask)
    w64, h64 = w.to(torch.float64), h.to(torch.float64)
    out = torch.zeros_like(w64)
    rtol = max(1, w.shape[1]) * torch.finfo(torch.float64).eps
    for i in range(w.shape[0]):
        kept = torch.nonzero(mask[i]).reshape(-1)
        pruned = torch.nonzero(~mask[i]).reshape(-1)
        if kept.numel():
            pinv = torch.linalg.pinv(h64[kept][:, kept], rtol=rtol, hermitian=True)
            out[i, kept] = w64[i, kept] + pinv @ (h64[kept][:, pruned] @ w64[i, pruned])
    return out.to(w.dtype)


def reconstruction_error(w, w_hat, h):
    """``1/2 tr((w - w_hat) H (w - w_hat)^T)``."""
    _matrix("w", w)
    _matrix("w_hat", w_hat)
    _same_shape(w, w_hat, ("w", "w_hat"))
    _square("h", h, w.shape[1])
    d = (w.to(torch.float64) - w_hat.to(torch.float64))
    dtype = torch.promote_types(torch.promote_types(w.dtype, w_hat.dtype), h.dtype)
    return (0.5 * ((d @ h.to(torch.float64)) * d).sum()).to(dtype)


def _damped(w64, h, damp, *, dead_fix=True, relative=True):
    """The official preparation: dead inputs (H_jj = 0) get H_jj = 1 and w_:j = 0; then
    damp * mean(diag H) is added to the diagonal."""
    damp = _real("damp", damp, lo=0.0)
    h64 = h.to(torch.float64).clone()
    w64 = w64.clone()
    if dead_fix:
        dead = torch.diagonal(h64) == 0
        h64[dead, dead] = 1.0
        w64[:, dead] = 0.0
    if h64.shape[0]:
        scale = torch.diagonal(h64).mean() if relative else 1.0
        h64 += damp * scale * torch.eye(h64.shape[0], dtype=torch.float64)
    return w64, h64


def _inverse(h64):
    chol, info = torch.linalg.cholesky_ex(h64)
    if int(info):
        raise ValueError("h (dead inputs fixed, damped) is not positive definite: raise damp")
    return torch.cholesky_inverse(chol)


def _budget_args(w, amount, n, m):
    _exactly_one_budget(amount, n, m)
    rows, cols = w.shape
    if amount is None:
        return _nm_args(n, m, cols)
    if isinstance(amount, bool) or not isinstance(amount, float):
        raise TypeError("amount must be a float fraction (it applies to every column block)")
    prune_count(amount, rows * cols)  # validation
    return None, None


def sparsegpt_prune(w, h, *, amount=None, n=None, m=None, block=128, damp=0.01):
    return _sparsegpt(w, h, amount, n, m, block, damp)


def _sparsegpt(w, h, amount, n, m, block, damp, *, diag=None, hessian_scores=True, count=prune_count, order=None,
               reach="all", nm_origin="global", update=True, **prep):
    """SparseGPT column by column. The knobs (defaults: the protocol) exist for the mutants."""
    _matrix("w", w)
    _square("h", h, w.shape[1])
    n, m = _budget_args(w, amount, n, m)
    block = _count_arg("block", block, 1)
    rows, cols = w.shape
    W, h64 = _damped(w.to(torch.float64), h, damp, **prep)
    if cols == 0 or rows == 0 or amount == 0 or (amount is None and n == m):  # nothing to prune: w as it is
        return w.clone(), torch.ones(w.shape, dtype=torch.bool)
    U = torch.linalg.cholesky(_inverse(h64), upper=True)
    d = torch.diagonal(U)
    dd = d if diag is None else diag
    score = (lambda a, b: W[:, a:b] ** 2 / dd[a:b] ** 2) if hessian_scores else (lambda a, b: W[:, a:b] ** 2)
    keep = torch.ones(w.shape, dtype=torch.bool)
    for i in range(cols):
        start = i - i % block
        if amount is not None and i == start:
            s = score(i, i + block)
            keep[:, i:i + block] = (order or _keep)(s.reshape(-1), count(amount, s.numel())).reshape(s.shape)
        origin = start if nm_origin == "block" else 0
        if amount is None and (i - origin) % m == 0:
            j = min(i + m, start + block) if nm_origin == "block" else i + m
            keep[:, i:j] = _rank_keep(score(i, j), max(0, n - (m - (j - i))) if nm_origin == "block" else n)
        q = torch.where(keep[:, i], W[:, i], 0.0)
        if update:
            stop = start + block if reach == "block" else cols
            W[:, i:stop] -= ((W[:, i] - q) / d[i])[:, None] * U[i, i:stop][None, :]
        W[:, i] = q
    return W.to(w.dtype), keep


def obc_prune(w, h, *, amount, damp=0.0):
    return _obc(w, h, amount, damp)


def _obc(w, h, amount, damp, *, downdate=True, use_hinv=True, order=_keep):
    """Greedy exact OBS, row by row: prune the smallest w_j^2 / [H^-1]_jj, update the row, downdate H^-1."""
    _matrix("w", w)
    _square("h", h, w.shape[1])
    rows, cols = w.shape
    k = prune_count(amount, cols)
    W, h64 = _damped(w.to(torch.float64), h, damp)
    keep = torch.ones(w.shape, dtype=torch.bool)
    if rows == 0 or cols == 0 or k == 0:
        return w.clone(), keep
    hinv0 = _inverse(h64)
    for r in range(rows):
        wr, hinv = W[r].clone(), hinv0.clone()
        for _ in range(k):
            live = torch.nonzero(keep[r]).reshape(-1)
            s = wr[live] ** 2 / (torch.diagonal(hinv)[live] if use_hinv else 1.0)
            # the smallest score goes; among equal ones the higher index (the tie rule: keep n - 1 of them)
            j = int(live[~order(s, 1)][0])
            col = hinv[:, j].clone()
            wr = wr - wr[j] / col[j] * col
            if downdate:
                hinv = hinv - torch.outer(col, col) / col[j]
            keep[r, j] = False
            wr[~keep[r]] = 0.0
        W[r] = wr
    return W.to(w.dtype), keep


def nm_violations(mask_or_w, *, n, m, axis=-1):
    _tensor("mask_or_w", mask_or_w, floating=False)
    if mask_or_w.dim() == 0:
        raise ValueError("nm_violations needs at least one axis")
    axis = _axis(axis, mask_or_w.dim())
    m = _count_arg("m", m, 1)
    n = _count_arg("n", n, 0)
    if n > m:
        raise ValueError("n must be <= m")
    if mask_or_w.shape[axis] % m:
        raise ValueError(f"mask_or_w.shape[{axis}] is not a multiple of m={m}")
    nz = (mask_or_w != 0).movedim(axis, -1)
    if nz.numel() == 0:
        return 0
    return int((nz.reshape(-1, m).sum(dim=1) > n).sum())


def outlier_ratio(scores, *, m=5.0):
    """OWL: the fraction of all the scores above ``m`` times their mean."""
    parts = scores if isinstance(scores, (list, tuple)) else [scores]
    for i, part in enumerate(parts):
        _tensor(f"scores[{i}]", part)
        _no_nan(f"scores[{i}]", part)
    m = _real("m", m, lo=0.0)
    flat = torch.cat([p.reshape(-1).to(torch.float64) for p in parts]) if parts else torch.zeros(0, dtype=torch.float64)
    if flat.numel() == 0:
        raise ValueError("outlier_ratio needs at least one score")
    return float((flat > m * flat.mean()).sum()) / flat.numel()


def owl_densities(shapes, outlier_ratios, *, density, lam=0.08):
    """OWL: ``d_l = c + 2 lam (D_l - min D) / (max D - min D)``, ``c`` solved (exactly) for the weighted budget."""
    from fractions import Fraction

    named = isinstance(shapes, dict)
    if named != isinstance(outlier_ratios, dict):
        raise TypeError("shapes and outlier_ratios must both be mappings or both sequences")
    if named and set(shapes) != set(outlier_ratios):
        raise ValueError("shapes and outlier_ratios must have the same keys")
    keys = list(shapes) if named else None
    shape_list = [shapes[k] for k in keys] if named else list(shapes)
    ratios = [outlier_ratios[k] for k in keys] if named else list(outlier_ratios)
    if len(ratios) != len(shape_list):
        raise ValueError("one outlier ratio per layer")
    density = _real("density", density, lo=0.0, hi=1.0)
    lam = _real("lam", lam, lo=0.0)
    ratios = [_real("outlier ratio", r) for r in ratios]
    counts = [math.prod(_int("shape entry", d, lo=0) for d in s) for s in shape_list]
    total = sum(counts)
    lo, hi = (min(ratios), max(ratios)) if ratios else (0.0, 0.0)
    spread = [Fraction(0) if hi == lo else Fraction(2) * Fraction(lam) * (Fraction(r) - Fraction(lo)) /
              (Fraction(hi) - Fraction(lo)) for r in ratios]
    if not total:  # no parameters to budget: the target density everywhere
        spread = [Fraction(0)] * len(spread)
    c = (Fraction(density) * total - sum(t * n for t, n in zip(spread, counts))) / total if total else Fraction(density)
    out = [float(c + t) for t in spread]
    if any(not 0.0 <= d <= 1.0 for d in out):
        raise ValueError(f"a density falls outside [0, 1] ({out}): lower lam")
    return dict(zip(keys, out)) if named else out
