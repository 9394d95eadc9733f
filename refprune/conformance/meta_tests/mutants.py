"""Planted bugs: copies of the independent torch implementation with one mistake each.

Every mutant is the correct :mod:`.torch_impl` with one function replaced by a version
that breaks one documented rule of the oracle protocol (docs/protocol.md) the way an
implementer really might. ``MUTANTS`` maps a mutant's name to ``Mutant(function,
replacement, rule, bug)``; the meta-tests require at least one mutant per rule listed
in ``RULES`` and that each mutant fails the ``ci`` examples of its function's tests.

A mutant of a forward function has *no* ``_grad`` functions at all (a target that
implements only forwards, the case where forward bugs used to slip through: the
central differences of a wrong forward disagree with a correct ``_grad``), and it is
run with the gradient tests excluded. A mutant of a ``_grad`` keeps every function.

Each mutant is also a module-level attribute, so
``REFPRUNE_TARGET=refprune.conformance.meta_tests.mutants:<name>`` selects it as a
target; ``torch_impl_no_grad`` is the correct implementation without its ``_grad``s.
"""

from __future__ import annotations

import decimal
import itertools
import math
import types
from typing import Callable, NamedTuple

import torch

from refprune.conformance.config import PROTOCOL_NAMES, row_of
from refprune.conformance.meta_tests import torch_impl as ok


class Mutant(NamedTuple):
    function: str
    replacement: Callable
    rule: str
    bug: str

    @property
    def is_grad(self):
        return row_of(self.function) != self.function


# --------------------------------------------------------------------------- gates

B, G, Z, E = ok.BETA, ok.GAMMA, ok.ZETA, ok.EPS


def _quantile_with(s_fn):
    def quantile(log_alpha, u, *, beta=B, gamma=G, zeta=Z):
        ok.hard_concrete_quantile(log_alpha, u, beta=beta, gamma=gamma, zeta=zeta)  # validation
        return s_fn(log_alpha, u, beta, gamma, zeta)

    return quantile


quantile_noise_formula = _quantile_with(  # bug: log(1+u) for log(1-u)
    lambda la, u, b, g, z: torch.sigmoid((torch.log(u) - torch.log1p(u) + la) / b) * (z - g) + g)
quantile_times_beta = _quantile_with(  # bug: multiplies by the temperature
    lambda la, u, b, g, z: torch.sigmoid((torch.log(u) - torch.log1p(-u) + la) * b) * (z - g) + g)
quantile_stretch_width = _quantile_with(  # bug: stretches by zeta, not zeta - gamma
    lambda la, u, b, g, z: ok._s(la, u, b) * z + g)
quantile_clipped = _quantile_with(  # bug: clips the stretched value (that is the sample)
    lambda la, u, b, g, z: torch.clamp(ok._s(la, u, b) * (z - g) + g, 0.0, 1.0))


def quantile_default_beta(log_alpha, u, *, beta=0.5, gamma=G, zeta=Z):  # bug: default temperature 1/2
    return ok.hard_concrete_quantile(log_alpha, u, beta=beta, gamma=gamma, zeta=zeta)


def quantile_batch_first(log_alpha, u, *, beta=B, gamma=G, zeta=Z):
    out = ok.hard_concrete_quantile(log_alpha, u, beta=beta, gamma=gamma, zeta=zeta)
    if u.dim() > log_alpha.dim():  # bug: a batch of noise uses its first draw only
        return out[:1].expand(out.shape).clone()
    return out


def sample_missing_clip(log_alpha, u, *, beta=B, gamma=G, zeta=Z):
    return ok.hard_concrete_quantile(log_alpha, u, beta=beta, gamma=gamma, zeta=zeta)  # bug: no clip


def sample_clamps_noise(log_alpha, u, *, beta=B, gamma=G, zeta=Z):
    ok.hard_concrete_sample(log_alpha, u, beta=beta, gamma=gamma, zeta=zeta)
    u = torch.clamp(u, 1e-6, 1 - 1e-6)  # bug: u in [eps, 1-eps], so u = 0 and 1 miss the limits
    return ok.hard_concrete_sample(log_alpha, u, beta=beta, gamma=gamma, zeta=zeta)


def sample_grad_missing_beta(log_alpha, u, dz, *, beta=B, gamma=G, zeta=Z):
    return ok.hard_concrete_sample_grad(log_alpha, u, dz, beta=beta, gamma=gamma, zeta=zeta) * beta  # bug: no 1/beta


def sample_grad_no_indicator(log_alpha, u, dz, *, beta=B, gamma=G, zeta=Z):
    ok.hard_concrete_sample_grad(log_alpha, u, dz, beta=beta, gamma=gamma, zeta=zeta)
    s = ok._s(log_alpha, u, beta)  # bug: gradient also where the clip is active
    return ok._reduce_to(dz * (zeta - gamma) / beta * s * (1 - s), log_alpha.shape).reshape(log_alpha.shape)


def sample_grad_mean(log_alpha, u, dz, *, beta=B, gamma=G, zeta=Z):
    g = ok.hard_concrete_sample_grad(log_alpha, u, dz, beta=beta, gamma=gamma, zeta=zeta)
    n = max(1, dz.numel() // max(1, log_alpha.numel()))
    return g / n  # bug: averages over the broadcast axes instead of summing


def mode_missing_clip(log_alpha, *, gamma=G, zeta=Z):
    ok.hard_concrete_mode(log_alpha, gamma=gamma, zeta=zeta)
    return torch.sigmoid(log_alpha) * (zeta - gamma) + gamma  # bug: no clip to [0, 1]


def mode_divides_by_beta(log_alpha, *, gamma=G, zeta=Z):
    ok.hard_concrete_mode(log_alpha, gamma=gamma, zeta=zeta)
    return torch.clamp(torch.sigmoid(log_alpha / B) * (zeta - gamma) + gamma, 0, 1)  # bug: temperature in the mode


def cdf_ignores_beta(log_alpha, x, *, beta=B, gamma=G, zeta=Z, eps=E):
    return ok.hard_concrete_cdf(log_alpha, x, gamma=gamma, zeta=zeta, eps=eps)  # bug: beta dropped


def cdf_missing_clamp(log_alpha, x, *, beta=B, gamma=G, zeta=Z, eps=E):
    return ok.hard_concrete_cdf(log_alpha, x, beta=beta, gamma=gamma, zeta=zeta, eps=0.0)  # bug: no [eps, 1-eps]


def cdf_outside_support(log_alpha, x, *, beta=B, gamma=G, zeta=Z, eps=E):
    out = ok.hard_concrete_cdf(log_alpha, x, beta=beta, gamma=gamma, zeta=zeta, eps=eps)
    x = x if isinstance(x, torch.Tensor) else torch.tensor(float(x), dtype=log_alpha.dtype)
    return torch.where(x >= zeta, torch.full_like(out, eps), out)  # bug: 0 instead of 1 at and past zeta


def prob_nonzero_no_clamp(log_alpha, *, beta=B, gamma=G, zeta=Z, eps=E):
    ok.hard_concrete_prob_nonzero(log_alpha, beta=beta, gamma=gamma, zeta=zeta, eps=eps)
    return torch.sigmoid(log_alpha - beta * math.log(-gamma / zeta))  # bug: the clamp is missing


def prob_nonzero_shift_sign(log_alpha, *, beta=B, gamma=G, zeta=Z, eps=E):
    ok.hard_concrete_prob_nonzero(log_alpha, beta=beta, gamma=gamma, zeta=zeta, eps=eps)
    p = torch.sigmoid(log_alpha + beta * math.log(-gamma / zeta))  # bug: + beta log(-gamma/zeta)
    return torch.clamp(p, eps, 1 - eps)


def prob_nonzero_grad_sign(log_alpha, dp, *, beta=B, gamma=G, zeta=Z, eps=E):
    return -ok.hard_concrete_prob_nonzero_grad(log_alpha, dp, beta=beta, gamma=gamma, zeta=zeta, eps=eps)  # bug


def prob_nonzero_grad_through_clamp(log_alpha, dp, *, beta=B, gamma=G, zeta=Z, eps=E):
    ok.hard_concrete_prob_nonzero_grad(log_alpha, dp, beta=beta, gamma=gamma, zeta=zeta, eps=eps)
    p = torch.sigmoid(ok._logit_nonzero(log_alpha, beta, gamma, zeta))
    return dp * p * (1 - p)  # bug: not 0 where the clamp is active


def expected_l0_ignores_group_size(log_alpha, *, group_size=1, beta=B, gamma=G, zeta=Z, eps=E):
    ok.expected_l0(log_alpha, group_size=group_size, beta=beta, gamma=gamma, zeta=zeta, eps=eps)
    return ok.expected_l0(log_alpha, beta=beta, gamma=gamma, zeta=zeta, eps=eps)  # bug: group_size dropped


def expected_l0_mean(log_alpha, *, group_size=1, beta=B, gamma=G, zeta=Z, eps=E):
    out = ok.expected_l0(log_alpha, group_size=group_size, beta=beta, gamma=gamma, zeta=zeta, eps=eps)
    return out / max(1, log_alpha.numel())  # bug: mean over gates instead of sum


# --------------------------------------------------------------------------- regularizers


def l0_penalty_missing_half(log_alpha, w, *, lam, weight_decay=0.0, axis=0, **c):
    ok.l0_penalty(log_alpha, w, lam=lam, weight_decay=weight_decay, axis=axis, **c)
    return ok.l0_penalty(log_alpha, w, lam=lam, weight_decay=2 * weight_decay, axis=axis, **c)  # bug: wd w^2


def l0_penalty_lam_per_group(log_alpha, w, *, lam, weight_decay=0.0, axis=0, **c):
    ok.l0_penalty(log_alpha, w, lam=lam, weight_decay=weight_decay, axis=axis, **c)
    _, others, _ = ok._groups(w, axis)
    size = math.prod(w.shape[i] for i in others)  # bug: lam once per group, not once per weight
    return ok.l0_penalty(log_alpha, w, lam=lam / max(size, 1), weight_decay=weight_decay, axis=axis, **c)


def l0_penalty_grad_w_without_p(log_alpha, w, *, lam, weight_decay=0.0, axis=0, **c):
    d_la, _ = ok.l0_penalty_grad(log_alpha, w, lam=lam, weight_decay=weight_decay, axis=axis, **c)
    return d_la, weight_decay * w  # bug: dw misses the factor p_g


def l2_missing_half(w, *, lam=1.0):
    return 2 * ok.l2_penalty(w, lam=lam)  # bug: lam * sum w^2


def l2_grad_double(w, *, lam=1.0):
    return 2 * ok.l2_penalty_grad(w, lam=lam)  # bug: 2 lam w


def l1_no_abs(w, *, lam=1.0):
    ok.l1_penalty(w, lam=lam)
    return lam * w.sum()  # bug: sum w, not sum |w|


def l1_grad_no_sign(w, *, lam=1.0):
    ok.l1_penalty_grad(w, lam=lam)
    return lam * (w != 0).to(w.dtype)  # bug: lam, not lam sign(w)


def group_lasso_squared(w, *, axis, lam=1.0):
    ok.group_lasso_penalty(w, axis=axis, lam=lam)
    return lam * (ok._group_norms(w, axis) ** 2).sum()  # bug: squared norms


def group_lasso_axis_swapped(w, *, axis, lam=1.0):
    ok.group_lasso_penalty(w, axis=axis, lam=lam)
    if w.dim() < 2:
        return ok.group_lasso_penalty(w, axis=axis, lam=lam)
    # bug: the groups are the slices *across* axis (one norm per index of the other axes)
    return lam * torch.linalg.vector_norm(w, ord=2, dim=axis).sum()


def group_lasso_grad_nan_at_zero(w, *, axis, lam=1.0):
    ok.group_lasso_penalty_grad(w, axis=axis, lam=lam)
    return lam * w / ok._group_norms(w, axis)  # bug: 0/0 = NaN for an all-zero group


def rvsm_missing_half(w, u, *, beta):
    return 2 * ok.rvsm_penalty(w, u, beta=beta)  # bug: beta ||w - u||^2


def rvsm_grad_sign(w, u, *, beta):
    dw, _ = ok.rvsm_penalty_grad(w, u, beta=beta)
    return dw, dw.clone()  # bug: du = +beta (w - u)


# --------------------------------------------------------------------------- thresholds


def hard_threshold_inclusive(w, *, threshold):
    ok.hard_threshold(w, threshold=threshold)
    return torch.where(w.abs() >= threshold, w, torch.zeros_like(w))  # bug: >= keeps |w| == t


def hard_threshold_no_abs(w, *, threshold):
    ok.hard_threshold(w, threshold=threshold)
    return torch.where(w > threshold, w, torch.zeros_like(w))  # bug: every negative weight zeroed


def hard_threshold_accepts_negative(w, *, threshold):
    ok._tensor("w", w)
    return torch.where(w.abs() > threshold, w, torch.zeros_like(w))  # bug: no check of threshold >= 0


def hard_threshold_grad_straight_through(w, dy, *, threshold):
    ok.hard_threshold_grad(w, dy, threshold=threshold)
    return dy.clone()  # bug: dy everywhere


def rvsm_threshold_missing_2(*, lam, beta):
    ok.rvsm_threshold(lam=lam, beta=beta)
    return math.sqrt(lam / beta)  # bug: sqrt(lam/beta)


def soft_threshold_no_max(w, *, threshold):
    ok.soft_threshold(w, threshold=threshold)
    return torch.sign(w) * (w.abs() - threshold)  # bug: max(., 0) missing


def soft_threshold_no_sign(w, *, threshold):
    ok.soft_threshold(w, threshold=threshold)
    return torch.clamp(w.abs() - threshold, min=0)  # bug: the sign is dropped


def soft_threshold_grad_no_abs(w, dy, *, threshold):
    ok.soft_threshold_grad(w, dy, threshold=threshold)
    return torch.where(w > threshold, dy, torch.zeros_like(dy))  # bug: 1[w > t], not 1[|w| > t]


def binarize_strict(w, *, threshold=0.5, on=1.0, off=0.0):
    ok.binarize(w, threshold=threshold, on=on, off=off)
    return torch.where(w.abs() > threshold, torch.full_like(w, on), torch.full_like(w, off))  # bug: >


def binarize_no_abs(w, *, threshold=0.5, on=1.0, off=0.0):
    ok.binarize(w, threshold=threshold, on=on, off=off)
    return torch.where(w >= threshold, torch.full_like(w, on), torch.full_like(w, off))  # bug: w, not |w|


def binarize_ignores_off(w, *, threshold=0.5, on=1.0, off=0.0):
    return ok.binarize(w, threshold=threshold, on=on)  # bug: off is always 0


def binarize_grad_ignores_clip(w, dy, *, clip=None):
    ok.binarize_grad(w, dy, clip=clip)
    return dy.clone()  # bug: clip ignored


def binarize_grad_open_clip(w, dy, *, clip=None):
    out = ok.binarize_grad(w, dy, clip=clip)
    if clip is None:
        return out
    return torch.where((w > clip[0]) & (w < clip[1]), dy, torch.zeros_like(dy))  # bug: bounds excluded


# --------------------------------------------------------------------------- masks


def _keep_pruning_low_index_first(flat, k):
    # bug: ascending stable sort and prune the first k -> among ties the LOWER index goes first
    order = torch.sort(flat, stable=True).indices
    keep = torch.ones(flat.numel(), dtype=torch.bool, device=flat.device)
    keep[order[:k]] = False
    return keep


def prune_count_half_up(amount, n, *, rounding="half-even"):
    k = ok.prune_count(amount, n, rounding=rounding)
    if rounding == "half-even" and not isinstance(amount, int):
        with decimal.localcontext() as ctx:
            ctx.prec = 80
            exact = decimal.Decimal(repr(float(amount))) * n
            return int(exact.to_integral_value(rounding=decimal.ROUND_HALF_UP))  # bug: half up
    return k


def prune_count_binary(amount, n, *, rounding="half-even"):
    k = ok.prune_count(amount, n, rounding=rounding)  # validation
    if isinstance(amount, int):
        return k
    product = float(amount) * n  # bug: rounds the binary product, not the decimal one
    return {"half-even": round, "floor": math.floor, "ceil": math.ceil}[rounding](product)


def prune_count_int_is_fraction(amount, n, *, rounding="half-even"):
    if isinstance(amount, int) and amount in (0, 1):
        return ok.prune_count(float(amount), n, rounding=rounding)  # bug: amount=1 means "everything"
    return ok.prune_count(amount, n, rounding=rounding)


def prune_count_rounding_swapped(amount, n, *, rounding="half-even"):
    swap = {"floor": "ceil", "ceil": "floor"}.get(rounding, rounding)  # bug: floor and ceil swapped
    ok.prune_count(amount, n, rounding=rounding)
    return ok.prune_count(amount, n, rounding=swap)


def magnitude_mask_ties(w, *, amount, scores=None, rounding="half-even"):
    s = ok._scores(w, scores)
    k = ok.prune_count(amount, w.numel(), rounding=rounding)
    return _keep_pruning_low_index_first(s.reshape(-1), k).reshape(w.shape)


def magnitude_mask_off_by_one(w, *, amount, scores=None, rounding="half-even"):
    s = ok._scores(w, scores)
    k = ok.prune_count(amount, w.numel(), rounding=rounding)
    k = min(k + 1, w.numel()) if k else 0  # bug: prunes k+1 (the "<= threshold" count)
    return ok._keep(s.reshape(-1), k).reshape(w.shape)


def magnitude_mask_signed(w, *, amount, scores=None, rounding="half-even"):
    if scores is not None:
        return ok.magnitude_mask(w, amount=amount, scores=scores, rounding=rounding)
    return ok.magnitude_mask(w, amount=amount, scores=w.clone(), rounding=rounding)  # bug: ranks w, not |w|


def magnitude_mask_ignores_scores(w, *, amount, scores=None, rounding="half-even"):
    ok.magnitude_mask(w, amount=amount, scores=scores, rounding=rounding)
    return ok.magnitude_mask(w, amount=amount, rounding=rounding)  # bug: scores ignored


def magnitude_mask_accepts_nan(w, *, amount, scores=None, rounding="half-even"):
    s = w.abs() if scores is None else scores  # bug: no NaN check (NaN sorts anywhere)
    k = ok.prune_count(amount, w.numel(), rounding=rounding)
    return ok._keep(torch.nan_to_num(s.reshape(-1), nan=-1.0), k).reshape(w.shape)


def global_mask_per_array(ws, *, amount, scores=None, rounding="half-even"):
    ok.global_magnitude_mask(ws, amount=amount, scores=scores, rounding=rounding)
    # bug: the budget is applied to each array separately instead of once over all
    return [ok.magnitude_mask(w, amount=amount if isinstance(amount, float) else 0, rounding=rounding) for w in ws]


def global_mask_list_order_reversed(ws, *, amount, scores=None, rounding="half-even"):
    ok.global_magnitude_mask(ws, amount=amount, scores=scores, rounding=rounding)
    rev = list(reversed(ws))  # bug: among ties the FIRST array's entries are pruned first
    out = ok.global_magnitude_mask(rev, amount=amount, scores=None if scores is None else list(reversed(scores)),
                                   rounding=rounding)
    return list(reversed(out))


def structured_mask_ord_ignored(w, *, amount, axis, ord=2, rounding="half-even"):
    ok.structured_mask(w, amount=amount, axis=axis, ord=ord, rounding=rounding)  # validation
    return ok.structured_mask(w, amount=amount, axis=axis, rounding=rounding)  # bug: ord dropped


def structured_mask_p_as_2(w, *, amount, axis, ord=2, rounding="half-even"):
    ok.structured_mask(w, amount=amount, axis=axis, ord=ord, rounding=rounding)
    known = ord in (1, 2, 0.5) or math.isinf(float(ord))
    # bug: every order other than 1, 2, 0.5 and +-inf (e.g. 3, 1.5) is computed as 2
    return ok.structured_mask(w, amount=amount, axis=axis, ord=ord if known else 2, rounding=rounding)


def _structured(w, amount, axis, ord, rounding, *, signed=False, keep=ok._keep):
    ok.structured_mask(w, amount=amount, axis=axis, ord=ord, rounding=rounding)  # validation
    a = ok._axis(axis, w.dim())
    others = tuple(i for i in range(w.dim()) if i != a)
    m = w.shape[a]
    x = w if signed else w.abs()
    if not others:
        norms = x
    elif w.numel() == 0:
        norms = torch.zeros(m, dtype=w.dtype)
    elif math.isinf(float(ord)) and ord > 0:
        norms = x.amax(dim=others)
    else:
        norms = torch.linalg.vector_norm(w, ord=float(ord), dim=others)
    k = ok.prune_count(amount, m, rounding=rounding)
    view = tuple(m if i == a else 1 for i in range(w.dim()))
    return keep(norms, k).reshape(view).expand(w.shape).clone()


def structured_mask_signed_max(w, *, amount, axis, ord=2, rounding="half-even"):
    return _structured(w, amount, axis, ord, rounding, signed=True)  # bug: inf-norm as max w, not max |w|


def structured_mask_ties(w, *, amount, axis, ord=2, rounding="half-even"):
    # bug: among slices of equal norm the LOWER index is pruned first
    return _structured(w, amount, axis, ord, rounding, keep=_keep_pruning_low_index_first)


def random_mask_largest(u, *, amount, rounding="half-even"):
    ok.random_mask(u, amount=amount, rounding=rounding)
    k = ok.prune_count(amount, u.numel(), rounding=rounding)
    return ok._keep(-u.reshape(-1), k).reshape(u.shape)  # bug: prunes the largest noise


def mask_from_weights_positive(w):
    ok.mask_from_weights(w)
    return w > 0  # bug: negative weights count as pruned


def apply_mask_multiply(w, mask):
    ok.apply_mask(w, mask)
    return w * mask  # bug: 0 * inf is NaN


def apply_mask_in_place(w, mask):
    out = ok.apply_mask(w, mask)
    w.mul_(0).add_(out)  # bug: writes the result into the caller's w
    return w


def sparsity_kept_fraction(mask):
    return 1.0 - ok.sparsity(mask) if mask.numel() else 0.0  # bug: the kept fraction


def sparsity_empty_nan(mask):
    ok.sparsity(mask)
    return float(torch.nan) if mask.numel() == 0 else ok.sparsity(mask)  # bug: 0/0 for an empty mask


# --------------------------------------------------------------------------- schedules


def polynomial_exponent(step, *, initial, final, begin, end, power=3, frequency=100):
    update, _ = ok.polynomial_sparsity(step, initial=initial, final=final, begin=begin, end=end, power=power,
                                       frequency=frequency)
    p = min(1.0, max(0.0, (step - begin) / (end - begin)))
    return update, final + (initial - final) * (1.0 - p) ** (power - 1)  # bug: exponent power-1


def polynomial_unclipped(step, *, initial, final, begin, end, power=3, frequency=100):
    update, _ = ok.polynomial_sparsity(step, initial=initial, final=final, begin=begin, end=end, power=power,
                                       frequency=frequency)
    p = max(0.0, (step - begin) / (end - begin))  # bug: p not clipped at 1 after end
    return update, final + (initial - final) * abs(1.0 - p) ** power


def polynomial_every_step(step, *, initial, final, begin, end, power=3, frequency=100):
    _, s = ok.polynomial_sparsity(step, initial=initial, final=final, begin=begin, end=end, power=power,
                                  frequency=frequency)
    return begin <= step <= end, s  # bug: updates at every step, frequency ignored


def constant_ignores_end(step, *, target, begin=0, end=-1, frequency=100):
    ok.constant_sparsity(step, target=target, begin=begin, end=end, frequency=frequency)
    return ok.constant_sparsity(step, target=target, begin=begin, end=-1, frequency=frequency)  # bug: end ignored


def constant_frequency_from_zero(step, *, target, begin=0, end=-1, frequency=100):
    update, s = ok.constant_sparsity(step, target=target, begin=begin, end=end, frequency=frequency)
    inside = begin <= step and (end == -1 or step <= end)
    return inside and step % frequency == 0, s  # bug: counts the frequency from 0, not from begin


def imp_off_by_one(round, *, rate=0.2):
    ok.imp_sparsity(round, rate=rate)
    return 1.0 - (1.0 - rate) ** (round + 1)  # bug: counts from round 1


def imp_linear(round, *, rate=0.2):
    ok.imp_sparsity(round, rate=rate)
    return min(1.0, rate * round)  # bug: rate * round, not 1 - (1 - rate)^round


# --------------------------------------------------------------------------- cross-cutting


def l2_penalty_float64(w, *, lam=1.0):
    return ok.l2_penalty(w, lam=lam).to(torch.float64)  # bug: the output leaves the input's dtype


def mode_returns_numpy(log_alpha, *, gamma=G, zeta=Z):
    return ok.hard_concrete_mode(log_alpha, gamma=gamma, zeta=zeta).detach().cpu().numpy()  # bug: a NumPy result


#: Every documented rule (docs/protocol.md) that a mutant breaks: rule id -> statement.
RULES = {
    "quantile-noise": "hard_concrete_quantile: s = sigmoid((log u - log(1-u) + log_alpha) / beta)",
    "quantile-temperature": "hard_concrete_quantile: divides by the temperature beta",
    "quantile-stretch": "hard_concrete_quantile: s_bar = s (zeta - gamma) + gamma",
    "quantile-unclipped": "hard_concrete_quantile: the stretched value is not clipped",
    "quantile-defaults": "gates: defaults beta = 2/3, gamma = -0.1, zeta = 1.1, eps = 1e-6",
    "quantile-broadcast": "hard_concrete_quantile: u may carry leading batch axes; log_alpha broadcasts",
    "sample-clip": "hard_concrete_sample: z = clip(s_bar, 0, 1)",
    "sample-limits": "hard_concrete_sample: u = 0 and u = 1 give the limits, never NaN",
    "sample-grad-formula": "hard_concrete_sample_grad: dz (zeta-gamma) s (1-s) / beta",
    "sample-grad-indicator": "hard_concrete_sample_grad: 0 where the clip is active (1[0 < s_bar < 1])",
    "sample-grad-broadcast": "hard_concrete_sample_grad: summed over the axes log_alpha was broadcast along",
    "mode-clip": "hard_concrete_mode: clip(sigmoid(log_alpha) (zeta-gamma) + gamma, 0, 1)",
    "mode-no-temperature": "hard_concrete_mode: no temperature",
    "cdf-temperature": "hard_concrete_cdf: sigmoid(beta (log x' - log(1-x')) - log_alpha)",
    "cdf-clamp": "hard_concrete_cdf: clamped to [eps, 1-eps]",
    "cdf-support": "hard_concrete_cdf: 0 below gamma, 1 from zeta on (before the clamp)",
    "prob-nonzero-clamp": "hard_concrete_prob_nonzero: clamped to [eps, 1-eps]",
    "prob-nonzero-shift": "hard_concrete_prob_nonzero: sigmoid(log_alpha - beta log(-gamma/zeta))",
    "prob-nonzero-grad-formula": "hard_concrete_prob_nonzero_grad: dp p (1-p)",
    "prob-nonzero-grad-clamp": "hard_concrete_prob_nonzero_grad: 0 where the clamp is active",
    "expected-l0-group-size": "expected_l0: group_size times the sum",
    "expected-l0-sum": "expected_l0: a sum over gates",
    "l0-half": "l0_penalty: weight_decay / 2 w^2",
    "l0-lam-per-weight": "l0_penalty: lam once per weight of the group",
    "l0-grad-w": "l0_penalty_grad: dw = weight_decay w p_g",
    "l2-half": "l2_penalty: lam / 2 sum w^2",
    "l2-grad": "l2_penalty_grad: lam w",
    "l1-abs": "l1_penalty: lam sum |w|",
    "l1-grad-sign": "l1_penalty_grad: lam sign(w)",
    "group-lasso-norm": "group_lasso_penalty: lam sum_g ||w_g||_2 (not squared)",
    "group-lasso-axis": "group_lasso_penalty: groups are the slices at each index along axis",
    "group-lasso-grad-zero": "group_lasso_penalty_grad: 0 for an all-zero group",
    "rvsm-half": "rvsm_penalty: beta / 2 ||w - u||^2",
    "rvsm-grad": "rvsm_penalty_grad: (beta (w-u), -beta (w-u))",
    "hard-threshold-strict": "hard_threshold: keeps |w| > threshold (strict)",
    "hard-threshold-abs": "hard_threshold: compares |w|",
    "threshold-errors": "thresholds: a negative or NaN threshold is a ValueError",
    "hard-threshold-grad": "hard_threshold_grad: dy 1[|w| > threshold]",
    "rvsm-threshold": "rvsm_threshold: sqrt(2 lam / beta)",
    "soft-threshold-max": "soft_threshold: max(|w| - threshold, 0)",
    "soft-threshold-sign": "soft_threshold: keeps the sign of w",
    "soft-threshold-grad": "soft_threshold_grad: dy 1[|w| > threshold]",
    "binarize-inclusive": "binarize: on where |w| >= threshold (inclusive)",
    "binarize-abs": "binarize: compares |w|",
    "binarize-on-off": "binarize: on and off are used",
    "binarize-grad-clip": "binarize_grad: dy zeroed outside clip = (lo, hi)",
    "binarize-grad-clip-inclusive": "binarize_grad: the clip bounds are inside",
    "count-half-even": "prune_count: half-even by default",
    "count-decimal": "prune_count: the decimal product of the amount as written",
    "count-int": "prune_count: an int amount is a count",
    "count-floor-ceil": "prune_count: rounding 'floor' and 'ceil'",
    "tie-rule": "masks: equal scores keep the lower index first (the higher is pruned first)",
    "exact-count": "masks: exactly k entries are pruned",
    "magnitude-abs": "magnitude_mask: ranks |w|",
    "magnitude-scores": "magnitude_mask: scores replace |w| when given",
    "nan-scores": "masks: NaN scores are a ValueError",
    "global-budget": "global_magnitude_mask: one budget over all arrays",
    "global-order": "global_magnitude_mask: ties rank by list order, then flat index",
    "structured-ord": "structured_mask: slices ranked by their ord-norm",
    "structured-ord-p": "structured_mask: any real ord > 0 (3, 1.5, ...) is that p-norm",
    "structured-abs": "structured_mask: norms of |w| (inf: max |w|)",
    "structured-ties": "structured_mask: the tie rule over slice indices",
    "random-smallest": "random_mask: prunes the smallest noise",
    "mask-from-weights": "mask_from_weights: w != 0",
    "apply-mask-where": "apply_mask: where(mask, w, 0), never w * mask",
    "inputs-unchanged": "every function: inputs are never mutated",
    "sparsity-pruned": "sparsity: the pruned fraction #False / size",
    "sparsity-empty": "sparsity: 0.0 for an empty mask",
    "polynomial-power": "polynomial_sparsity: final + (initial - final)(1 - p)^power",
    "polynomial-clip": "polynomial_sparsity: p = clip((step-begin)/(end-begin), 0, 1)",
    "schedule-frequency": "schedules: update when (step - begin) % frequency == 0",
    "schedule-end": "schedules: no update after end (end = -1: never ends)",
    "imp-round": "imp_sparsity: 1 - (1 - rate)^round",
    "output-dtype": "every function: floating outputs keep the input's floating dtype",
    "output-namespace": "every function: outputs keep the input's array library",
}

#: name -> Mutant(replaced function, replacement, rule id, the bug)
MUTANTS = {
    "noise_formula": Mutant("hard_concrete_quantile", quantile_noise_formula, "quantile-noise", "log(1+u) for log(1-u)"),
    "quantile_times_beta": Mutant("hard_concrete_quantile", quantile_times_beta, "quantile-temperature", "times beta"),
    "quantile_stretch_width": Mutant("hard_concrete_quantile", quantile_stretch_width, "quantile-stretch", "s zeta + gamma"),
    "quantile_clipped": Mutant("hard_concrete_quantile", quantile_clipped, "quantile-unclipped", "clips to [0, 1]"),
    "quantile_default_beta": Mutant("hard_concrete_quantile", quantile_default_beta, "quantile-defaults", "beta=1/2 default"),
    "quantile_batch_first": Mutant("hard_concrete_quantile", quantile_batch_first, "quantile-broadcast",
                                   "a batch of noise uses its first draw"),
    "sample_missing_clip": Mutant("hard_concrete_sample", sample_missing_clip, "sample-clip", "no clip to [0, 1]"),
    "sample_clamps_noise": Mutant("hard_concrete_sample", sample_clamps_noise, "sample-limits", "u clamped to [1e-6, 1-1e-6]"),
    "sample_grad_missing_beta": Mutant("hard_concrete_sample_grad", sample_grad_missing_beta, "sample-grad-formula",
                                       "missing 1/beta"),
    "sample_grad_no_indicator": Mutant("hard_concrete_sample_grad", sample_grad_no_indicator, "sample-grad-indicator",
                                       "gradient through the clip"),
    "sample_grad_mean": Mutant("hard_concrete_sample_grad", sample_grad_mean, "sample-grad-broadcast",
                               "mean over the noise batch"),
    "mode_missing_clip": Mutant("hard_concrete_mode", mode_missing_clip, "mode-clip", "no clip"),
    "mode_divides_by_beta": Mutant("hard_concrete_mode", mode_divides_by_beta, "mode-no-temperature",
                                   "sigmoid(log_alpha / beta)"),
    "cdf_ignores_beta": Mutant("hard_concrete_cdf", cdf_ignores_beta, "cdf-temperature", "ignores the temperature"),
    "cdf_missing_clamp": Mutant("hard_concrete_cdf", cdf_missing_clamp, "cdf-clamp", "no clamp to [eps, 1-eps]"),
    "cdf_outside_support": Mutant("hard_concrete_cdf", cdf_outside_support, "cdf-support", "eps instead of 1 past zeta"),
    "prob_nonzero_missing_clamp": Mutant("hard_concrete_prob_nonzero", prob_nonzero_no_clamp, "prob-nonzero-clamp",
                                         "no clamp to [eps, 1-eps]"),
    "prob_nonzero_shift_sign": Mutant("hard_concrete_prob_nonzero", prob_nonzero_shift_sign, "prob-nonzero-shift",
                                      "+ beta log(-gamma/zeta)"),
    "prob_nonzero_grad_sign": Mutant("hard_concrete_prob_nonzero_grad", prob_nonzero_grad_sign,
                                     "prob-nonzero-grad-formula", "sign error"),
    "prob_nonzero_grad_through_clamp": Mutant("hard_concrete_prob_nonzero_grad", prob_nonzero_grad_through_clamp,
                                              "prob-nonzero-grad-clamp", "nonzero where clamped"),
    "expected_l0_group_size_ignored": Mutant("expected_l0", expected_l0_ignores_group_size, "expected-l0-group-size",
                                             "ignores group_size"),
    "expected_l0_mean": Mutant("expected_l0", expected_l0_mean, "expected-l0-sum", "mean instead of sum"),
    "l0_penalty_missing_half": Mutant("l0_penalty", l0_penalty_missing_half, "l0-half", "weight_decay*w^2 without 1/2"),
    "l0_penalty_lam_per_group": Mutant("l0_penalty", l0_penalty_lam_per_group, "l0-lam-per-weight", "lam once per group"),
    "l0_penalty_grad_w_without_p": Mutant("l0_penalty_grad", l0_penalty_grad_w_without_p, "l0-grad-w", "dw misses p_g"),
    "l2_missing_half": Mutant("l2_penalty", l2_missing_half, "l2-half", "lam sum w^2"),
    "l2_grad_double": Mutant("l2_penalty_grad", l2_grad_double, "l2-grad", "2 lam w"),
    "l1_no_abs": Mutant("l1_penalty", l1_no_abs, "l1-abs", "sum w, not sum |w|"),
    "l1_grad_no_sign": Mutant("l1_penalty_grad", l1_grad_no_sign, "l1-grad-sign", "lam, not lam sign(w)"),
    "group_lasso_squared": Mutant("group_lasso_penalty", group_lasso_squared, "group-lasso-norm", "squared group norms"),
    "group_lasso_axis_swapped": Mutant("group_lasso_penalty", group_lasso_axis_swapped, "group-lasso-axis",
                                       "groups across axis"),
    "group_lasso_grad_nan_at_zero": Mutant("group_lasso_penalty_grad", group_lasso_grad_nan_at_zero,
                                           "group-lasso-grad-zero", "0/0 for a zero group"),
    "rvsm_missing_half": Mutant("rvsm_penalty", rvsm_missing_half, "rvsm-half", "beta ||w-u||^2"),
    "rvsm_grad_sign": Mutant("rvsm_penalty_grad", rvsm_grad_sign, "rvsm-grad", "du has the wrong sign"),
    "hard_threshold_inclusive": Mutant("hard_threshold", hard_threshold_inclusive, "hard-threshold-strict", ">= instead of >"),
    "hard_threshold_no_abs": Mutant("hard_threshold", hard_threshold_no_abs, "hard-threshold-abs",
                                    "w > t: every negative weight zeroed"),
    "hard_threshold_accepts_negative": Mutant("hard_threshold", hard_threshold_accepts_negative, "threshold-errors",
                                              "accepts a negative threshold"),
    "hard_threshold_grad_straight_through": Mutant("hard_threshold_grad", hard_threshold_grad_straight_through,
                                                   "hard-threshold-grad", "dy everywhere"),
    "rvsm_threshold_missing_2": Mutant("rvsm_threshold", rvsm_threshold_missing_2, "rvsm-threshold", "sqrt(lam/beta)"),
    "soft_threshold_no_max": Mutant("soft_threshold", soft_threshold_no_max, "soft-threshold-max", "missing max(., 0)"),
    "soft_threshold_no_sign": Mutant("soft_threshold", soft_threshold_no_sign, "soft-threshold-sign", "drops the sign"),
    "soft_threshold_grad_no_abs": Mutant("soft_threshold_grad", soft_threshold_grad_no_abs, "soft-threshold-grad",
                                         "1[w > t]"),
    "binarize_strict": Mutant("binarize", binarize_strict, "binarize-inclusive", "> instead of >="),
    "binarize_no_abs": Mutant("binarize", binarize_no_abs, "binarize-abs", "w, not |w|"),
    "binarize_ignores_off": Mutant("binarize", binarize_ignores_off, "binarize-on-off", "off is always 0"),
    "binarize_grad_ignores_clip": Mutant("binarize_grad", binarize_grad_ignores_clip, "binarize-grad-clip", "clip ignored"),
    "binarize_grad_open_clip": Mutant("binarize_grad", binarize_grad_open_clip, "binarize-grad-clip-inclusive",
                                      "bounds excluded"),
    "rounding_half_up": Mutant("prune_count", prune_count_half_up, "count-half-even", "rounds half up"),
    "rounding_binary_product": Mutant("prune_count", prune_count_binary, "count-decimal", "rounds amount*n in binary"),
    "count_int_is_fraction": Mutant("prune_count", prune_count_int_is_fraction, "count-int", "amount=1 prunes all"),
    "rounding_floor_ceil_swapped": Mutant("prune_count", prune_count_rounding_swapped, "count-floor-ceil",
                                          "floor and ceil swapped"),
    "tie_rule_reversed": Mutant("magnitude_mask", magnitude_mask_ties, "tie-rule", "ties prune the lower index first"),
    "count_off_by_one": Mutant("magnitude_mask", magnitude_mask_off_by_one, "exact-count", "prunes k+1 entries"),
    "magnitude_signed": Mutant("magnitude_mask", magnitude_mask_signed, "magnitude-abs", "ranks w, not |w|"),
    "magnitude_ignores_scores": Mutant("magnitude_mask", magnitude_mask_ignores_scores, "magnitude-scores",
                                       "scores ignored"),
    "magnitude_accepts_nan": Mutant("magnitude_mask", magnitude_mask_accepts_nan, "nan-scores", "NaN accepted"),
    "global_budget_per_array": Mutant("global_magnitude_mask", global_mask_per_array, "global-budget",
                                      "one budget per array"),
    "global_list_order_reversed": Mutant("global_magnitude_mask", global_mask_list_order_reversed, "global-order",
                                         "ties prune the first array first"),
    "structured_ord_ignored": Mutant("structured_mask", structured_mask_ord_ignored, "structured-ord", "ignores ord"),
    "structured_ord_p_as_2": Mutant("structured_mask", structured_mask_p_as_2, "structured-ord-p",
                                    "ord 3 and 1.5 computed as 2"),
    "structured_signed_max": Mutant("structured_mask", structured_mask_signed_max, "structured-abs",
                                    "inf-norm as max w"),
    "structured_ties_reversed": Mutant("structured_mask", structured_mask_ties, "structured-ties",
                                       "ties prune the lower slice index first"),
    "random_prunes_largest": Mutant("random_mask", random_mask_largest, "random-smallest", "prunes the largest noise"),
    "mask_from_weights_positive": Mutant("mask_from_weights", mask_from_weights_positive, "mask-from-weights", "w > 0"),
    "apply_mask_multiplies": Mutant("apply_mask", apply_mask_multiply, "apply-mask-where", "w*mask turns 0*inf into NaN"),
    "apply_mask_in_place": Mutant("apply_mask", apply_mask_in_place, "inputs-unchanged", "writes into w"),
    "sparsity_kept_fraction": Mutant("sparsity", sparsity_kept_fraction, "sparsity-pruned", "the kept fraction"),
    "sparsity_empty_nan": Mutant("sparsity", sparsity_empty_nan, "sparsity-empty", "NaN for an empty mask"),
    "polynomial_exponent": Mutant("polynomial_sparsity", polynomial_exponent, "polynomial-power", "exponent power-1"),
    "polynomial_unclipped": Mutant("polynomial_sparsity", polynomial_unclipped, "polynomial-clip", "p not clipped"),
    "polynomial_every_step": Mutant("polynomial_sparsity", polynomial_every_step, "schedule-frequency",
                                    "updates at every step"),
    "constant_ignores_end": Mutant("constant_sparsity", constant_ignores_end, "schedule-end", "ignores end"),
    "constant_frequency_from_zero": Mutant("constant_sparsity", constant_frequency_from_zero, "schedule-frequency",
                                           "frequency counted from step 0"),
    "imp_off_by_one": Mutant("imp_sparsity", imp_off_by_one, "imp-round", "counts one round too many"),
    "imp_linear": Mutant("imp_sparsity", imp_linear, "imp-round", "rate * round"),
    "l2_penalty_float64": Mutant("l2_penalty", l2_penalty_float64, "output-dtype", "float64 output for float32"),
    "mode_returns_numpy": Mutant("hard_concrete_mode", mode_returns_numpy, "output-namespace", "returns a NumPy array"),
}


def _module(drop_grads=False, **replace):
    names = {n: getattr(ok, n) for n in PROTOCOL_NAMES if hasattr(ok, n) and not (drop_grads and row_of(n) != n)}
    names.update(replace)
    return types.SimpleNamespace(**names)


# =========================================================================== oracle protocol v1 primitives
# One mutant per documented rule; appended to MUTANTS below (and made module attributes).


def nm_ties_reversed(w, *, n, m, axis=-1, scores=None):
    ok.nm_mask(w, n=n, m=m, axis=axis, scores=scores)  # validation
    s = ok._scores(w, scores).movedim(ok._axis(axis, w.dim()), -1)
    groups = s.reshape(-1, m).flip(1)  # bug: ties keep the higher position first
    keep = ok._rank_keep(groups, n).flip(1) if groups.numel() else torch.zeros(groups.shape, dtype=torch.bool)
    return keep.reshape(s.shape).movedim(-1, ok._axis(axis, w.dim())).contiguous()


def nm_n_is_pruned(w, *, n, m, axis=-1, scores=None):
    ok.nm_mask(w, n=n, m=m, axis=axis, scores=scores)
    return ok.nm_mask(w, n=m - n, m=m, axis=axis, scores=scores)  # bug: n read as the number pruned (n and m - n swapped)


def nm_strided_groups(w, *, n, m, axis=-1, scores=None):
    ok.nm_mask(w, n=n, m=m, axis=axis, scores=scores)
    ax = ok._axis(axis, w.dim())
    s = ok._scores(w, scores).movedim(ax, -1)
    length = s.shape[-1]
    # bug: a group is every (length/m)-th entry instead of m consecutive ones
    perm = torch.arange(length).reshape(m, length // m).T.reshape(-1) if length else torch.arange(0)
    inv = torch.argsort(perm)
    keep = ok._rank_keep(s[..., perm].reshape(-1, m), n).reshape(s.shape)[..., inv] if s.numel() else torch.zeros(s.shape, dtype=torch.bool)
    return keep.movedim(-1, ax).contiguous()


def block_mean_counts_padding(w, *, block, amount, pool="l1", scores=None, rounding="half-even"):
    out = ok.block_mask(w, block=block, amount=amount, pool=pool, scores=scores, rounding=rounding)
    if pool != "mean":
        return out
    block = (block,) * w.dim() if isinstance(block, int) else tuple(block)
    return _padded_mean(w, block, amount, scores, rounding)  # bug: an edge tile's mean counts the padding


def _padded_mean(w, block, amount, scores, rounding):
    s = ok._scores(w, scores).to(torch.float64)
    grid = [-(-size // b) for size, b in zip(w.shape, block)]
    k = ok.prune_count(amount, math.prod(grid), rounding=rounding)
    if w.numel() == 0:
        return torch.ones(w.shape, dtype=torch.bool)
    t, _ = ok._tiles(s, block, 0.0)
    keep = ok._keep((t.sum(dim=-1) / math.prod(block)).reshape(-1), k).reshape(grid)
    for axis, b in enumerate(block):
        keep = keep.repeat_interleave(b, dim=axis)
    return keep[tuple(slice(0, size) for size in w.shape)].contiguous()


def block_ties_reversed(w, *, block, amount, pool="l1", scores=None, rounding="half-even"):
    ok.block_mask(w, block=block, amount=amount, pool=pool, scores=scores, rounding=rounding)
    return _reversed_ties(w, block, amount, pool, scores, rounding)  # bug: ties prune the earlier tile first


def _reversed_ties(w, block, amount, pool, scores, rounding):
    block = (block,) * w.dim() if isinstance(block, int) else tuple(block)
    s = ok._scores(w, scores).to(torch.float64)
    grid = [-(-size // b) for size, b in zip(w.shape, block)]
    k = ok.prune_count(amount, math.prod(grid), rounding=rounding)
    if w.numel() == 0:
        return torch.ones(w.shape, dtype=torch.bool)
    per_tile = []
    for t in itertools.product(*(range(g) for g in grid)):
        tile = s[tuple(slice(i * b, (i + 1) * b) for i, b in zip(t, block))]
        per_tile.append({"l1": tile.abs().sum(), "l2": (tile * tile).sum(), "max": tile.max(), "mean": tile.mean()}[pool])
    scores_t = torch.stack(per_tile).flip(0)
    keep = ok._keep(scores_t, k).flip(0).reshape(grid)
    for axis, b in enumerate(block):
        keep = keep.repeat_interleave(b, dim=axis)
    return keep[tuple(slice(0, size) for size in w.shape)].contiguous()


def erk_without_resolve(shapes, *, density, distribution="uniform", power_scale=1.0, dense=()):
    out = ok.layer_densities(shapes, density=density, distribution=distribution, power_scale=power_scale, dense=dense)
    if distribution == "uniform" or isinstance(shapes, dict) or dense:
        return out
    # bug: solve eps once over every layer and clip at 1, without handing the excess to the other layers
    counts = [math.prod(s) for s in shapes]
    raw = [(sum(s[:2] if distribution == "er" else s) / math.prod(s[:2] if distribution == "er" else s)) ** power_scale
           if c else 0.0 for s, c in zip(shapes, counts)]
    divisor = sum(r * c for r, c in zip(raw, counts))
    eps = density * sum(counts) / divisor if divisor else 0.0
    return [1.0 if c == 0 else min(1.0, eps * r) for r, c in zip(raw, counts)]


def erk_power_scale_ignored(shapes, *, density, distribution="uniform", power_scale=1.0, dense=()):
    ok.layer_densities(shapes, density=density, distribution=distribution, power_scale=power_scale, dense=dense)
    return ok.layer_densities(shapes, density=density, distribution=distribution, dense=dense)  # bug: power_scale dropped


def er_last_two_dims(shapes, *, density, distribution="uniform", power_scale=1.0, dense=()):
    ok.layer_densities(shapes, density=density, distribution=distribution, power_scale=power_scale, dense=dense)
    if distribution != "er" or isinstance(shapes, dict):
        return ok.layer_densities(shapes, density=density, distribution=distribution, power_scale=power_scale, dense=dense)
    flipped = [tuple(reversed(s)) for s in shapes]  # bug: RigL's TF layout, the last two dims
    return ok.layer_densities(flipped, density=density, distribution="er", power_scale=power_scale, dense=dense)


def dense_layers_outside_budget(shapes, *, density, distribution="uniform", power_scale=1.0, dense=()):
    out = ok.layer_densities(shapes, density=density, distribution=distribution, power_scale=power_scale, dense=dense)
    if not dense or isinstance(shapes, dict):
        return out
    # bug: the forced dense layers are left out of the budget (RigL's custom_sparsity_map)
    rest = [s for i, s in enumerate(shapes) if i not in {d % len(shapes) for d in dense}]
    sub = iter(ok.layer_densities(rest, density=density, distribution=distribution, power_scale=power_scale) if rest else [])
    return [1.0 if i in {d % len(shapes) for d in dense} else next(sub) for i in range(len(shapes))]


def saliency_signed(w, g):
    ok.saliency_scores(w, g)
    return w * g  # bug: no absolute value


def taylor_default_abs(w, g, *, kind="abs"):  # bug: the default is |w g|, not (w g)^2
    return ok.taylor_scores(w, g, kind=kind)


def movement_sign_flipped(w, g, *, previous=None):
    ok.movement_scores(w, g, previous=previous)
    return (0 if previous is None else previous) + w * g  # bug: +w*g


def drop_more_than_grow(w, mask, *, drop_fraction, grow_scores, drop_scores=None, rounding="half-even"):
    new = ok.drop_grow(w, mask, drop_fraction=drop_fraction, grow_scores=grow_scores, drop_scores=drop_scores, rounding=rounding)
    grown = torch.nonzero((new & ~mask).reshape(-1)).reshape(-1)
    if grown.numel():  # bug: the last grown entry is lost (drop count != grow count)
        new = new.reshape(-1).clone()
        new[grown[-1]] = False
        new = new.reshape(mask.shape)
    return new


def regrow_just_dropped(w, mask, *, drop_fraction, grow_scores, drop_scores=None, rounding="half-even"):
    ok.drop_grow(w, mask, drop_fraction=drop_fraction, grow_scores=grow_scores, drop_scores=drop_scores, rounding=rounding)
    flat = mask.reshape(-1)
    kept = torch.nonzero(flat).reshape(-1)
    k = min(ok.prune_count(drop_fraction, kept.numel(), rounding=rounding), int((~flat).sum()))
    ds = (w.abs() if drop_scores is None else drop_scores).reshape(-1)[kept]
    survivors = kept[torch.sort(ds, descending=True, stable=True).indices[: kept.numel() - k]]
    new = torch.zeros_like(flat)
    new[survivors] = True
    candidates = torch.nonzero(~new).reshape(-1)  # bug: RigL's candidates, the just-dropped entries included
    gs = grow_scores.reshape(-1)[candidates]
    new[candidates[torch.sort(gs, descending=True, stable=True).indices[:k]]] = True
    return new.reshape(mask.shape)


def drop_ties_reversed(w, mask, *, drop_fraction, grow_scores, drop_scores=None, rounding="half-even"):
    ok.drop_grow(w, mask, drop_fraction=drop_fraction, grow_scores=grow_scores, drop_scores=drop_scores, rounding=rounding)
    dims = tuple(range(w.dim()))
    flip = (lambda x: x.flip(dims)) if dims else (lambda x: x)
    # bug: ranked from the last index: ties drop the lower index and grow the higher one first
    return flip(ok.drop_grow(flip(w), flip(mask), drop_fraction=drop_fraction, grow_scores=flip(grow_scores),
                             drop_scores=None if drop_scores is None else flip(drop_scores), rounding=rounding))


def cosine_missing_half(step, *, initial, end):
    ok.cosine_drop_fraction(step, initial=initial, end=end)
    return 0.0 if step >= end else initial * (1.0 + math.cos(math.pi * step / end))  # bug: initial, not initial/2


def jaxpruner_one_step_late(step, *, target, begin, end, power=3, frequency=100):
    update, _ = ok.jaxpruner_polynomial_sparsity(step, target=target, begin=begin, end=end, power=power, frequency=frequency)
    p = 1.0 if end == begin else min(max(step - begin, 0), end - begin) / (end - begin)  # bug: no +1: the target at end
    return update, target * (1.0 - (1.0 - p) ** power)


def absolute_counting_ignored(step, *, begin=0, end=-1, frequency=100, counting="relative"):
    return ok.is_update_step(step, begin=begin, end=end, frequency=frequency)  # bug: always relative (TFMOT)


def one_shot_every_step_after(step, *, target, at):
    ok.one_shot_sparsity(step, target=target, at=at)
    return step >= at, target  # bug: keeps updating after the one shot


def structured_scores_abs(w, *, amount, axis, ord=None, scores=None, rounding="half-even"):
    out = ok.structured_mask(w, amount=amount, axis=axis, ord=ord, scores=scores, rounding=rounding)
    if scores is None:
        return out
    return ok.structured_mask(w, amount=amount, axis=axis, scores=scores.abs(), rounding=rounding)  # bug: sums |scores|


def random_scores_mirrored(w, *, rng):
    return 1.0 - ok.random_scores(w, rng=rng)  # bug: 1 - u, the same law but not the reference stream's numbers


RULES.update({
    "random-stream": "random_scores: rng.uniform(w.shape, w.dtype, 0, 1), the generator's own numbers",
    "nm-ties": "nm_mask: ties keep the lower position in the group",
    "nm-count": "nm_mask: n of every m kept",
    "nm-consecutive": "nm_mask: a group is m consecutive entries along axis",
    "block-edge": "block_mask: an edge tile is pooled over its real entries",
    "block-ties": "block_mask: ties by row-major tile index, the later pruned first",
    "erk-resolve": "layer_densities: layers above density 1 made dense, the rest re-solved",
    "erk-power-scale": "layer_densities: power_scale is the exponent of the raw ERK/ER probability",
    "er-dims": "layer_densities: ER uses the first two dims",
    "dense-in-budget": "layer_densities: forced-dense layers count in the budget",
    "saliency-abs": "saliency_scores: |w * g|",
    "taylor-default": "taylor_scores: (w * g)^2 by default",
    "movement-sign": "movement_scores: accumulate -w * g",
    "structured-scores": "structured_mask: scores summed per slice as given",
    "drop-equals-grow": "drop_grow: as many grown as dropped",
    "no-regrow": "drop_grow: a just-dropped entry is not grown back",
    "drop-ties": "drop_grow: the tie rule for drop and grow",
    "cosine-half": "cosine_drop_fraction: initial/2 (1 + cos(pi t / end))",
    "jaxpruner-progress": "jaxpruner_polynomial_sparsity: progress from step + 1",
    "update-counting": "is_update_step: absolute or relative frequency grid",
    "one-shot": "one_shot_sparsity: one update, at step at",
})

MUTANTS.update({
    "random_scores_mirrored": Mutant("random_scores", random_scores_mirrored, "random-stream", "1 - u"),
    "nm_ties_reversed": Mutant("nm_mask", nm_ties_reversed, "nm-ties", "ties keep the higher position in the group"),
    "nm_n_is_pruned": Mutant("nm_mask", nm_n_is_pruned, "nm-count", "n read as the number pruned (n and m-n swapped)"),
    "nm_strided_groups": Mutant("nm_mask", nm_strided_groups, "nm-consecutive", "groups are strided, not consecutive"),
    "block_mean_counts_padding": Mutant("block_mask", block_mean_counts_padding, "block-edge", "edge tiles' mean divides by the full block"),
    "block_ties_reversed": Mutant("block_mask", block_ties_reversed, "block-ties", "ties prune the earlier tile"),
    "erk_without_resolve": Mutant("layer_densities", erk_without_resolve, "erk-resolve", "clips at 1 without re-solving"),
    "erk_power_scale_ignored": Mutant("layer_densities", erk_power_scale_ignored, "erk-power-scale", "ignores power_scale"),
    "er_last_two_dims": Mutant("layer_densities", er_last_two_dims, "er-dims", "ER on the last two dims"),
    "dense_layers_outside_budget": Mutant("layer_densities", dense_layers_outside_budget, "dense-in-budget", "forced dense layers not counted"),
    "saliency_signed": Mutant("saliency_scores", saliency_signed, "saliency-abs", "w*g without |.|"),
    "taylor_default_abs": Mutant("taylor_scores", taylor_default_abs, "taylor-default", "the default kind is abs"),
    "movement_sign_flipped": Mutant("movement_scores", movement_sign_flipped, "movement-sign", "+w*g"),
    "structured_scores_abs": Mutant("structured_mask", structured_scores_abs, "structured-scores", "sums |scores| per slice"),
    "drop_more_than_grow": Mutant("drop_grow", drop_more_than_grow, "drop-equals-grow", "grows one fewer than it drops"),
    "regrow_just_dropped": Mutant("drop_grow", regrow_just_dropped, "no-regrow", "grows back what it just dropped"),
    "drop_ties_reversed": Mutant("drop_grow", drop_ties_reversed, "drop-ties", "ties ranked from the last index"),
    "cosine_missing_half": Mutant("cosine_drop_fraction", cosine_missing_half, "cosine-half", "initial*(1+cos), twice too large"),
    "jaxpruner_one_step_late": Mutant("jaxpruner_polynomial_sparsity", jaxpruner_one_step_late, "jaxpruner-progress", "progress without +1: reaches the target one step late"),
    "absolute_counting_ignored": Mutant("is_update_step", absolute_counting_ignored, "update-counting", "counting ignored"),
    "one_shot_every_step_after": Mutant("one_shot_sparsity", one_shot_every_step_after, "one-shot", "updates after at"),
})
# =========================================================================== oracle protocol v2: one-shot pruning
# One mutant per documented v2 rule, most of them a difference the official codes or a
# library really has (docs/differs.md).


def norms_squared(x):
    return ok.activation_norms(x) ** 2  # bug: the squared norm (Wanda's scaler_row)


def norms_rms(x):
    out = ok.activation_norms(x)
    return out / math.sqrt(max(1, x.shape[0]))  # bug: divided by sqrt(tokens), the running mean of the official code


def wanda_scores_signed(w, norms):
    ok.wanda_scores(w, norms)
    return w * norms  # bug: w, not |w|


def wanda_mask_layer_default(w, norms, *, amount=None, n=None, m=None, group="layer", rounding="half-even"):
    return ok.wanda_mask(w, norms, amount=amount, n=n, m=m, group=group, rounding=rounding)  # bug: default group


def wanda_mask_n_pruned(w, norms, *, amount=None, n=None, m=None, group="row", rounding="half-even"):
    ok.wanda_mask(w, norms, amount=amount, n=n, m=m, group=group, rounding=rounding)
    if n is not None:
        n = m - n  # bug: n read as the number pruned (the official prune_n)
    return ok.wanda_mask(w, norms, amount=amount, n=n, m=m, group=group, rounding=rounding)


def wanda_mask_ties_reversed(w, norms, *, amount=None, n=None, m=None, group="row", rounding="half-even"):
    ok.wanda_mask(w, norms, amount=amount, n=n, m=m, group=group, rounding=rounding)
    flipped = ok.wanda_mask(w.flip(-1), norms.flip(-1), amount=amount, n=n, m=m, group=group, rounding=rounding)
    if group == "layer" and amount is not None:  # bug: equal scores prune the LOWER index first
        return ok.wanda_mask(w.flip((0, 1)), norms.flip(-1), amount=amount, group=group, rounding=rounding).flip((0, 1))
    return flipped.flip(-1) if n is None or (w.shape[1] // max(m, 1)) <= 1 else _nm_flip_each_group(w, norms, n, m)


def _nm_flip_each_group(w, norms, n, m):
    s = (w.abs() * norms).reshape(-1, m).flip(1)
    return ok._rank_keep(s, n).flip(1).reshape(w.shape)


def wanda_mask_truncates(w, norms, *, amount=None, n=None, m=None, group="row", rounding="half-even"):
    out = ok.wanda_mask(w, norms, amount=amount, n=n, m=m, group=group, rounding=rounding)
    if amount is None or group != "row" or isinstance(amount, int):
        return out
    k = int(w.shape[1] * float(amount))  # bug: the official int(in * sparsity), rounding ignored
    s = w.abs() * norms
    return ok._rank_keep(s, w.shape[1] - k) if w.numel() else out


def wanda_mask_nm_down_columns(w, norms, *, amount=None, n=None, m=None, group="row", rounding="half-even"):
    out = ok.wanda_mask(w, norms, amount=amount, n=n, m=m, group=group, rounding=rounding)
    if n is None or w.shape[0] % m or not w.numel():
        return out
    s = (w.abs() * norms).T.contiguous()  # bug: groups run down the output axis
    return ok._rank_keep(s.reshape(-1, m), n).reshape(s.shape).T.contiguous()


def ria_row_only(w, norms, *, a=0.5):
    ok.ria_scores(w, norms, a=a)
    aw = w.abs()
    row = aw.sum(dim=1, keepdim=True)
    return torch.where(row > 0, aw / torch.where(row > 0, row, 1.0), 0.0) * norms ** a  # bug: no column term


def ria_default_a_1(w, norms, *, a=1.0):
    return ok.ria_scores(w, norms, a=a)  # bug: a defaults to 1


def hessian_mean(x):
    return ok.hessian(x) / 2  # bug: X^T X / T, the mean without the 2 of the Hessian


def mls_plain_mask(w, h, mask):
    ok.masked_least_squares(w, h, mask)
    return torch.where(mask, w, torch.zeros_like(w))  # bug: no least-squares solve


def error_frobenius(w, w_hat, h):
    ok.reconstruction_error(w, w_hat, h)
    return ((w - w_hat) ** 2).sum()  # bug: ignores H


def _gpt(**knobs):
    def prune(w, h, *, amount=None, n=None, m=None, block=128, damp=0.01):
        return ok._sparsegpt(w, h, amount, n, m, block, damp, **knobs)

    return prune


def sparsegpt_full_inverse_diag(w, h, *, amount=None, n=None, m=None, block=128, damp=0.01):
    ok.sparsegpt_prune(w, h, amount=amount, n=n, m=m, block=block, damp=damp)
    w64, h64 = ok._damped(w.to(torch.float64), h, damp)
    dinv = torch.diagonal(ok._inverse(h64)) if h.numel() else torch.ones(0, dtype=torch.float64)
    # bug: scores w^2 / [H^-1]_jj of the whole inverse, not of the remaining columns (the Cholesky factor)
    return ok._sparsegpt(w, h, amount, n, m, block, damp, diag=dinv.sqrt())


def sparsegpt_threshold_count(w, h, *, amount=None, n=None, m=None, block=128, damp=0.01):
    ok.sparsegpt_prune(w, h, amount=amount, n=n, m=m, block=block, damp=damp)
    if amount is None:
        return ok.sparsegpt_prune(w, h, n=n, m=m, block=block, damp=damp)
    # bug: the official "score <= the sorted score at int(size * sparsity)": one more, and every tie
    return ok._sparsegpt(w, h, amount, n, m, block, damp, count=lambda a, size: min(size, int(size * float(a)) + 1))


sparsegpt_absolute_damp = _gpt(relative=False)  # bug: damp added as is, not damp * mean(diag H)
sparsegpt_no_update = _gpt(update=False)  # bug: no OBS update (plain masking)
sparsegpt_lazy_update_missing = _gpt(reach="block")  # bug: later blocks never receive a block's update
sparsegpt_nm_block_local = _gpt(nm_origin="block")  # bug: N:M groups start at each block (the official code)
sparsegpt_dead_kept = _gpt(dead_fix=False)  # bug: dead inputs keep their weights (damp alone makes H definite)
sparsegpt_magnitude_score = _gpt(hessian_scores=False)  # bug: ranks w^2 alone, no Hessian


def sparsegpt_nm_pruned(w, h, *, amount=None, n=None, m=None, block=128, damp=0.01):
    ok.sparsegpt_prune(w, h, amount=amount, n=n, m=m, block=block, damp=damp)
    return ok.sparsegpt_prune(w, h, amount=amount, n=None if n is None else m - n, m=m, block=block, damp=damp)  # bug


obc_magnitude = lambda w, h, *, amount, damp=0.0: ok._obc(w, h, amount, damp, use_hinv=False)  # noqa: E731  bug: w^2
obc_no_downdate = lambda w, h, *, amount, damp=0.0: ok._obc(w, h, amount, damp, downdate=False)  # noqa: E731  bug
obc_ties_reversed = lambda w, h, *, amount, damp=0.0: ok._obc(  # noqa: E731  bug: equal scores prune the lower index
    w, h, amount, damp, order=_keep_pruning_low_index_first)


def obc_layer_count(w, h, *, amount, damp=0.0):
    w_hat, keep = ok.obc_prune(w, h, amount=amount, damp=damp)
    if not isinstance(amount, int) or w.shape[0] < 2:
        return w_hat, keep
    # bug: an int amount read as a count over the whole layer (spread over the rows), not per row
    per_row = [amount // w.shape[0] + (i < amount % w.shape[0]) for i in range(w.shape[0])]
    rows = [ok.obc_prune(w[i:i + 1], h, amount=c, damp=damp) for i, c in enumerate(per_row)]
    return torch.cat([r[0] for r in rows]), torch.cat([r[1] for r in rows])


def violations_not_exact(mask_or_w, *, n, m, axis=-1):
    ok.nm_violations(mask_or_w, n=n, m=m, axis=axis)
    nz = (mask_or_w != 0).movedim(ok._axis(axis, mask_or_w.dim()), -1)
    return int((nz.reshape(-1, m).sum(dim=1) != n).sum()) if nz.numel() else 0  # bug: fewer than n counts too


def violations_last_axis(mask_or_w, *, n, m, axis=-1):
    ok.nm_violations(mask_or_w, n=n, m=m, axis=axis)
    if mask_or_w.shape[-1] % m:
        return ok.nm_violations(mask_or_w, n=n, m=m, axis=axis)
    return ok.nm_violations(mask_or_w, n=n, m=m)  # bug: axis ignored


def outlier_ratio_inclusive(scores, *, m=5.0):
    ok.outlier_ratio(scores, m=m)
    parts = scores if isinstance(scores, (list, tuple)) else [scores]
    flat = torch.cat([p.reshape(-1).to(torch.float64) for p in parts])
    return float((flat >= m * flat.mean()).sum()) / flat.numel()  # bug: >= m * mean


def outlier_ratio_mean_of_layers(scores, *, m=5.0):
    ok.outlier_ratio(scores, m=m)
    parts = scores if isinstance(scores, (list, tuple)) else [scores]
    return sum(ok.outlier_ratio(p, m=m) for p in parts) / len(parts)  # bug: each layer's ratio, then their mean


def owl_unweighted_mean(shapes, outlier_ratios, *, density, lam=0.08):
    out = ok.owl_densities(shapes, outlier_ratios, density=density, lam=lam)
    if isinstance(out, dict) or not out:
        return out
    lo, hi = min(outlier_ratios), max(outlier_ratios)
    spread = [0.0 if hi == lo else 2 * lam * (r - lo) / (hi - lo) for r in outlier_ratios]
    return [density - sum(spread) / len(spread) + t for t in spread]  # bug: OWL's code, the unweighted mean


def owl_spread_lam(shapes, outlier_ratios, *, density, lam=0.08):
    ok.owl_densities(shapes, outlier_ratios, density=density, lam=lam)
    return ok.owl_densities(shapes, outlier_ratios, density=density, lam=lam / 2)  # bug: spread lam, not 2 lam


def owl_inverted(shapes, outlier_ratios, *, density, lam=0.08):
    ok.owl_densities(shapes, outlier_ratios, density=density, lam=lam)
    flipped = {k: -v for k, v in outlier_ratios.items()} if isinstance(outlier_ratios, dict) else \
        [-r for r in outlier_ratios]
    return ok.owl_densities(shapes, flipped, density=density, lam=lam)  # bug: more outliers, fewer weights kept


def norms_first_batch(x):
    return ok.activation_norms(x[0] if x.dim() > 2 else x)  # bug: a (batch, seq, in) x uses its first batch


def hessian_tokens_per_batch(x):
    out = ok.hessian(x)
    return out * x.shape[0] if x.dim() > 2 else out  # bug: T counts one batch's tokens (2/seq, not 2/(batch*seq))


def ria_nan_for_zero_sums(w, norms, *, a=0.5):
    ok.ria_scores(w, norms, a=a)
    aw = w.abs()  # bug: RIA's code, 0/0 = NaN for a row or column of zeros
    return (aw / aw.sum(dim=0, keepdim=True) + aw / aw.sum(dim=1, keepdim=True)) * norms ** a


def ria_dead_power_zero(w, norms, *, a=0.5):
    out = ok.ria_scores(w, norms, a=a)
    return torch.where(norms > 0, out, torch.zeros_like(out))  # bug: a dead input scores 0 even for a = 0 (0**0 = 1)


def wanda_mask_rounding_ignored(w, norms, *, amount=None, n=None, m=None, group="row", rounding="half-even"):
    ok.wanda_mask(w, norms, amount=amount, n=n, m=m, group=group, rounding=rounding)
    return ok.wanda_mask(w, norms, amount=amount, n=n, m=m, group=group)  # bug: always half-even


def wanda_mask_layer_nm(w, norms, *, amount=None, n=None, m=None, group="row", rounding="half-even"):
    if amount is None and group == "layer":
        group = "row"  # bug: group='layer' with n, m silently means per row
    return ok.wanda_mask(w, norms, amount=amount, n=n, m=m, group=group, rounding=rounding)


def mls_min_norm(w, h, mask):
    ok.masked_least_squares(w, h, mask)
    out = torch.zeros_like(w, dtype=torch.float64)
    h64, target = h.to(torch.float64), w.to(torch.float64) @ h.to(torch.float64)
    for i in range(w.shape[0]):  # bug: of all optima the smallest, not the one closest to w (dead inputs go to 0)
        kept = torch.nonzero(mask[i]).reshape(-1)
        if kept.numel():
            out[i, kept] = torch.linalg.pinv(h64[kept][:, kept], hermitian=True) @ target[i, kept]
    return out.to(w.dtype)


def error_no_half(w, w_hat, h):
    return 2 * ok.reconstruction_error(w, w_hat, h)  # bug: tr(D H D^T) without the 1/2


def sparsegpt_zeroes_dead_always(w, h, *, amount=None, n=None, m=None, block=128, damp=0.01):
    w_hat, keep = ok.sparsegpt_prune(w, h, amount=amount, n=n, m=m, block=block, damp=damp)
    if w.numel():  # bug: dead columns zeroed even when nothing is pruned (amount 0, n == m)
        w_hat = torch.where((torch.diagonal(h) == 0)[None, :], torch.zeros_like(w_hat), w_hat)
    return w_hat, keep


def sparsegpt_ties_reversed(w, h, *, amount=None, n=None, m=None, block=128, damp=0.01):
    ok.sparsegpt_prune(w, h, amount=amount, n=n, m=m, block=block, damp=damp)
    # bug: among equal scores of a block the LOWER row-major index is pruned first
    return ok._sparsegpt(w, h, amount, n, m, block, damp, order=_keep_pruning_low_index_first)


def obc_absolute_damp(w, h, *, amount, damp=0.0):
    ok.obc_prune(w, h, amount=amount, damp=damp)
    return ok._obc(w, h + damp * torch.eye(h.shape[0], dtype=h.dtype), amount, 0.0)  # bug: damp not relative


def violations_nan_is_zero(mask_or_w, *, n, m, axis=-1):
    ok.nm_violations(mask_or_w, n=n, m=m, axis=axis)
    if mask_or_w.dtype == torch.bool:
        return ok.nm_violations(mask_or_w, n=n, m=m, axis=axis)
    return ok.nm_violations(torch.nan_to_num(mask_or_w, nan=0.0), n=n, m=m, axis=axis)  # bug: NaN counted as 0


def outlier_ratio_default_m3(scores, *, m=3.0):
    return ok.outlier_ratio(scores, m=m)  # bug: m defaults to 3


def owl_default_lam(shapes, outlier_ratios, *, density, lam=0.1):
    return ok.owl_densities(shapes, outlier_ratios, density=density, lam=lam)  # bug: lam defaults to 0.1


def owl_equal_ratios_nan(shapes, outlier_ratios, *, density, lam=0.08):
    out = ok.owl_densities(shapes, outlier_ratios, density=density, lam=lam)
    values = list(outlier_ratios.values()) if isinstance(outlier_ratios, dict) else list(outlier_ratios)
    if values and max(values) == min(values):  # bug: OWL's code divides by max - min = 0
        return {k: math.nan for k in out} if isinstance(out, dict) else [math.nan] * len(out)
    return out


RULES.update({
    "norms-tokens": "activation_norms: every leading axis of x counts as tokens",
    "hessian-tokens": "hessian: T counts the tokens of every leading axis",
    "ria-zero-sums": "ria_scores: a row or column summing to 0 contributes 0",
    "ria-zero-power": "ria_scores: 0 ** 0 = 1 for a dead input with a = 0",
    "wanda-rounding": "wanda_mask: rounding decides the count",
    "wanda-nm-rows": "wanda_mask: group='layer' with n, m is a ValueError",
    "mls-closest": "masked_least_squares: of all optima the one closest to w",
    "error-half": "reconstruction_error: 1/2 tr(D H D^T)",
    "sparsegpt-nothing-to-prune": "sparsegpt_prune: amount 0 or n == m returns w unchanged, dead columns included",
    "sparsegpt-ties": "sparsegpt_prune: equal scores keep the lower row-major index of the block first",
    "obc-damp": "obc_prune: damp relative to the mean diagonal",
    "violations-nan": "nm_violations: NaN counts as nonzero",
    "owl-m-default": "outlier_ratio: m = 5 by default",
    "owl-lam-default": "owl_densities: lam = 0.08 by default",
    "owl-equal-ratios": "owl_densities: equal ratios give density everywhere",
    "owl-outlier-strict": "outlier_ratio: scores strictly above m times the mean",
    "owl-outlier-pooled": "outlier_ratio: one ratio over all the scores of the unit (concatenated)",
    "owl-weighted-budget": "owl_densities: sum_l d_l N_l = density * sum_l N_l (weighted, exact)",
    "owl-spread": "owl_densities: the densities span 2 lam",
    "owl-direction": "owl_densities: more outliers, higher density",
    "norms-l2": "activation_norms: the l2 norm of each input feature (not squared)",
    "norms-sum": "activation_norms: summed over the tokens (no mean)",
    "wanda-abs": "wanda_scores: |w_ij| * norms_j",
    "wanda-group": "wanda_mask: one comparison group per output row by default",
    "wanda-nm-kept": "wanda_mask: N:M keeps n of every m",
    "wanda-nm-axis": "wanda_mask: N:M groups run along the input axis",
    "wanda-ties": "wanda_mask: ties by the tie rule (the higher index pruned first)",
    "wanda-count": "wanda_mask: exactly prune_count(amount, in, rounding) per row",
    "ria-relative": "ria_scores: |w| / its row sum + |w| / its column sum",
    "ria-exponent": "ria_scores: norms ** a, a = 0.5 by default",
    "hessian-scale": "hessian: (2/T) X^T X",
    "mls-optimum": "masked_least_squares: the exact least-squares optimum for the mask",
    "error-h": "reconstruction_error: weighted by H, 1/2 tr((w - w_hat) H (w - w_hat)^T)",
    "sparsegpt-score": "sparsegpt_prune: scores w^2 / [U_jj]^2, U the upper Cholesky factor of H^-1",
    "sparsegpt-hessian": "sparsegpt_prune: the mask uses the Hessian, not magnitudes alone",
    "sparsegpt-damp": "sparsegpt_prune: damp * mean(diag H) added to the diagonal",
    "sparsegpt-dead": "sparsegpt_prune: dead inputs (H_jj = 0) have w_:j = 0 and H_jj = 1",
    "sparsegpt-update": "sparsegpt_prune: the OBS update of the columns to the right",
    "sparsegpt-lazy": "sparsegpt_prune: a block's update reaches every later block (lazy batch update)",
    "sparsegpt-count": "sparsegpt_prune: exactly prune_count(amount, out * block columns) per column block",
    "sparsegpt-nm-global": "sparsegpt_prune: N:M groups aligned to the global column index, whatever the block",
    "sparsegpt-nm-kept": "sparsegpt_prune: N:M keeps n of every m",
    "obc-score": "obc_prune: greedy on w_j^2 / [H^-1]_jj",
    "obc-downdate": "obc_prune: H^-1 downdated after each pruned weight",
    "obc-ties": "obc_prune: equal scores prune the higher index first",
    "obc-count": "obc_prune: exactly prune_count(amount, in) per row",
    "violations-more-than-n": "nm_violations: a group with more than n nonzeros (fewer is allowed)",
    "violations-axis": "nm_violations: groups along axis",
})

MUTANTS.update({
    "norms_first_batch": Mutant("activation_norms", norms_first_batch, "norms-tokens", "3-d x: the first batch only"),
    "hessian_tokens_per_batch": Mutant("hessian", hessian_tokens_per_batch, "hessian-tokens", "2/seq for 3-d x"),
    "ria_nan_for_zero_sums": Mutant("ria_scores", ria_nan_for_zero_sums, "ria-zero-sums", "0/0 = NaN (RIA's code)"),
    "ria_dead_power_zero": Mutant("ria_scores", ria_dead_power_zero, "ria-zero-power", "dead inputs score 0 at a = 0"),
    "wanda_mask_rounding_ignored": Mutant("wanda_mask", wanda_mask_rounding_ignored, "wanda-rounding",
                                          "rounding ignored"),
    "wanda_mask_layer_nm": Mutant("wanda_mask", wanda_mask_layer_nm, "wanda-nm-rows", "accepts group='layer' with n, m"),
    "mls_min_norm": Mutant("masked_least_squares", mls_min_norm, "mls-closest", "the minimum-norm optimum"),
    "error_no_half": Mutant("reconstruction_error", error_no_half, "error-half", "no 1/2"),
    "sparsegpt_zeroes_dead_always": Mutant("sparsegpt_prune", sparsegpt_zeroes_dead_always,
                                           "sparsegpt-nothing-to-prune", "dead columns zeroed at amount 0"),
    "sparsegpt_ties_reversed": Mutant("sparsegpt_prune", sparsegpt_ties_reversed, "sparsegpt-ties",
                                      "columns reversed: ties keep the higher column"),
    "obc_absolute_damp": Mutant("obc_prune", obc_absolute_damp, "obc-damp", "damp added as is"),
    "violations_nan_is_zero": Mutant("nm_violations", violations_nan_is_zero, "violations-nan", "NaN counted as 0"),
    "outlier_ratio_default_m3": Mutant("outlier_ratio", outlier_ratio_default_m3, "owl-m-default", "m = 3 by default"),
    "owl_default_lam": Mutant("owl_densities", owl_default_lam, "owl-lam-default", "lam = 0.1 by default"),
    "owl_equal_ratios_nan": Mutant("owl_densities", owl_equal_ratios_nan, "owl-equal-ratios", "NaN for equal ratios"),
    "outlier_ratio_inclusive": Mutant("outlier_ratio", outlier_ratio_inclusive, "owl-outlier-strict", ">= m * mean"),
    "outlier_ratio_mean_of_layers": Mutant("outlier_ratio", outlier_ratio_mean_of_layers, "owl-outlier-pooled",
                                           "the mean of per-layer ratios"),
    "owl_unweighted_mean": Mutant("owl_densities", owl_unweighted_mean, "owl-weighted-budget",
                                  "OWL's code: centred on the unweighted mean"),
    "owl_spread_lam": Mutant("owl_densities", owl_spread_lam, "owl-spread", "spread lam, not 2 lam"),
    "owl_inverted": Mutant("owl_densities", owl_inverted, "owl-direction", "fewer weights where more outliers"),
    "norms_squared": Mutant("activation_norms", norms_squared, "norms-l2", "the squared norm"),
    "norms_rms": Mutant("activation_norms", norms_rms, "norms-sum", "divided by sqrt(tokens)"),
    "wanda_scores_signed": Mutant("wanda_scores", wanda_scores_signed, "wanda-abs", "w * norms, no |.|"),
    "wanda_mask_layer_default": Mutant("wanda_mask", wanda_mask_layer_default, "wanda-group", "group='layer' by default"),
    "wanda_mask_n_pruned": Mutant("wanda_mask", wanda_mask_n_pruned, "wanda-nm-kept", "n read as the number pruned"),
    "wanda_mask_nm_down_columns": Mutant("wanda_mask", wanda_mask_nm_down_columns, "wanda-nm-axis",
                                         "N:M groups along the output axis"),
    "wanda_mask_ties_reversed": Mutant("wanda_mask", wanda_mask_ties_reversed, "wanda-ties", "ties prune the lower index"),
    "wanda_mask_truncates": Mutant("wanda_mask", wanda_mask_truncates, "wanda-count", "int(in * amount), rounding ignored"),
    "ria_row_only": Mutant("ria_scores", ria_row_only, "ria-relative", "no column term"),
    "ria_default_a_1": Mutant("ria_scores", ria_default_a_1, "ria-exponent", "a = 1 by default"),
    "hessian_mean": Mutant("hessian", hessian_mean, "hessian-scale", "X^T X / T, no 2"),
    "mls_plain_mask": Mutant("masked_least_squares", mls_plain_mask, "mls-optimum", "w * mask, no solve"),
    "error_frobenius": Mutant("reconstruction_error", error_frobenius, "error-h", "||w - w_hat||^2, H ignored"),
    "sparsegpt_full_inverse_diag": Mutant("sparsegpt_prune", sparsegpt_full_inverse_diag, "sparsegpt-score",
                                          "[H^-1]_jj of the full inverse"),
    "sparsegpt_magnitude_score": Mutant("sparsegpt_prune", sparsegpt_magnitude_score, "sparsegpt-hessian", "w^2 alone"),
    "sparsegpt_absolute_damp": Mutant("sparsegpt_prune", sparsegpt_absolute_damp, "sparsegpt-damp", "damp not relative"),
    "sparsegpt_dead_kept": Mutant("sparsegpt_prune", sparsegpt_dead_kept, "sparsegpt-dead", "dead inputs not zeroed"),
    "sparsegpt_no_update": Mutant("sparsegpt_prune", sparsegpt_no_update, "sparsegpt-update", "no OBS update"),
    "sparsegpt_lazy_update_missing": Mutant("sparsegpt_prune", sparsegpt_lazy_update_missing, "sparsegpt-lazy",
                                            "later blocks miss the update"),
    "sparsegpt_threshold_count": Mutant("sparsegpt_prune", sparsegpt_threshold_count, "sparsegpt-count",
                                        "int(size * amount) + 1 per block"),
    "sparsegpt_nm_block_local": Mutant("sparsegpt_prune", sparsegpt_nm_block_local, "sparsegpt-nm-global",
                                       "N:M groups restart at every block"),
    "sparsegpt_nm_pruned": Mutant("sparsegpt_prune", sparsegpt_nm_pruned, "sparsegpt-nm-kept", "n read as pruned"),
    "obc_magnitude": Mutant("obc_prune", obc_magnitude, "obc-score", "w^2, no [H^-1]_jj"),
    "obc_no_downdate": Mutant("obc_prune", obc_no_downdate, "obc-downdate", "H^-1 never downdated"),
    "obc_ties_reversed": Mutant("obc_prune", obc_ties_reversed, "obc-ties", "ties prune the lower index"),
    "obc_layer_count": Mutant("obc_prune", obc_layer_count, "obc-count", "an int count over the layer"),
    "violations_not_exact": Mutant("nm_violations", violations_not_exact, "violations-more-than-n",
                                   "counts groups with fewer than n too"),
    "violations_last_axis": Mutant("nm_violations", violations_last_axis, "violations-axis", "axis ignored"),
})


# =========================================================================== v1 blind spots (issue 20)
# Bugs the ci profile missed forward-only until edges.BLIND_SPOTS gave their classes fixed inputs.


def _tile_mask(tile_scores, grid, block, shape, amount, rounding):
    """The mask that keeps the tiles the tie rule keeps of ``tile_scores`` (a flat tensor in tile order)."""
    keep = ok._keep(tile_scores, ok.prune_count(amount, math.prod(grid), rounding=rounding)).reshape(grid)
    for axis, b in enumerate(block):
        keep = keep.repeat_interleave(b, dim=axis)
    return keep[tuple(slice(0, size) for size in shape)].contiguous()


def block_int_first_two_axes(w, *, block, amount, pool="l1", scores=None, rounding="half-even"):
    out = ok.block_mask(w, block=block, amount=amount, pool=pool, scores=scores, rounding=rounding)
    if isinstance(block, bool) or not isinstance(block, int) or w.dim() <= 2:
        return out
    sizes = (block, block) + (1,) * (w.dim() - 2)  # bug: an int block tiles the first two axes only
    return ok.block_mask(w, block=sizes, amount=amount, pool=pool, scores=scores, rounding=rounding)


def block_max_pads_zero(w, *, block, amount, pool="l1", scores=None, rounding="half-even"):
    out = ok.block_mask(w, block=block, amount=amount, pool=pool, scores=scores, rounding=rounding)
    if pool != "max" or w.numel() == 0:
        return out
    block = (block,) * w.dim() if isinstance(block, int) else tuple(block)
    t, grid = ok._tiles(ok._scores(w, scores).to(torch.float64), block, 0.0)  # bug: pads edge tiles with 0, not -inf
    return _tile_mask(t.amax(dim=-1).reshape(-1), grid, block, w.shape, amount, rounding)


def block_sum_row_major(w, *, block, amount, pool="l1", scores=None, rounding="half-even"):
    out = ok.block_mask(w, block=block, amount=amount, pool=pool, scores=scores, rounding=rounding)
    if pool == "max" or w.numel() == 0:
        return out
    block = (block,) * w.dim() if isinstance(block, int) else tuple(block)
    s = ok._scores(w, scores).to(torch.float64)
    a = s.abs() if pool == "l1" else s * s if pool == "l2" else s
    t, grid = ok._tiles(a, block, 0.0)
    acc = t[..., 0]
    for i in range(1, t.shape[-1]):  # bug: a tile's entries summed in row-major order, not axis 0's offsets first
        acc = acc + t[..., i]
    if pool == "mean":
        acc = acc / ok._tiles(torch.ones_like(s), block, 0.0)[0].sum(dim=-1)
    return _tile_mask(acc.reshape(-1), grid, block, w.shape, amount, rounding)


def _densities(shapes, density, distribution, power_scale, dense):
    return ok.layer_densities(shapes, density=density, distribution=distribution, power_scale=power_scale, dense=dense)


def dense_names_sorted(shapes, *, density, distribution="uniform", power_scale=1.0, dense=()):
    out = _densities(shapes, density, distribution, power_scale, dense)
    if not isinstance(shapes, dict) or not dense:
        return out
    by_index = [sorted(shapes).index(d) for d in dense]  # bug: a name's position looked up among the sorted keys
    return dict(zip(shapes, _densities(list(shapes.values()), density, distribution, power_scale, by_index)))


def er_power_scale_ignored(shapes, *, density, distribution="uniform", power_scale=1.0, dense=()):
    out = _densities(shapes, density, distribution, power_scale, dense)
    return _densities(shapes, density, "er", 1.0, dense) if distribution == "er" else out  # bug: ER ignores it


def resolve_once(shapes, *, density, distribution="uniform", power_scale=1.0, dense=()):
    out = _densities(shapes, density, distribution, power_scale, dense)
    if distribution != "erk" or isinstance(shapes, dict) or dense or not all(math.prod(s) for s in shapes):
        return out
    counts = [math.prod(s) for s in shapes]
    raw = [(sum(s) / c) ** power_scale for s, c in zip(shapes, counts)]
    eps = density * sum(counts) / sum(r * c for r, c in zip(raw, counts))
    full = {i for i, r in enumerate(raw) if eps * r > 1.0}
    live = [i for i in range(len(shapes)) if i not in full]
    if full and live:  # bug: solved again once, and whatever exceeds 1 then is clipped, not re-solved
        eps = (density * sum(counts) - sum(counts[i] for i in full)) / sum(raw[i] * counts[i] for i in live)
    return [1.0 if i in full else min(1.0, eps * raw[i]) for i in range(len(shapes))]


def one_d_as_column(shapes, *, density, distribution="uniform", power_scale=1.0, dense=()):
    out = _densities(shapes, density, distribution, power_scale, dense)
    if distribution != "erk" or isinstance(shapes, dict):
        return out
    # bug: a 1-d shape (n,) read as a column (n, 1): r = (n + 1) / n instead of 1
    return _densities([tuple(s) + (1,) if len(s) == 1 else s for s in shapes], density, distribution, power_scale, dense)


def grow_marks_kept_minus_inf(w, mask, *, drop_fraction, grow_scores, drop_scores=None, rounding="half-even"):
    ok.drop_grow(w, mask, drop_fraction=drop_fraction, grow_scores=grow_scores, drop_scores=drop_scores, rounding=rounding)
    flat = mask.reshape(-1)
    kept = torch.nonzero(flat).reshape(-1)
    k = min(ok.prune_count(drop_fraction, kept.numel(), rounding=rounding), int((~flat).sum()))
    ds = (w.abs() if drop_scores is None else drop_scores).reshape(-1)[kept]
    new = torch.zeros_like(flat)
    new[kept[torch.sort(ds, descending=True, stable=True).indices[: kept.numel() - k]]] = True
    # bug: RigL's trick: the survivors' grow scores set to -inf to rule them out, then the top k of all
    # entries grown; a candidate whose own score is -inf ties with the survivors and may lose to them
    gs = torch.where(new | flat, torch.tensor(-math.inf, dtype=grow_scores.dtype), grow_scores.reshape(-1))
    new[torch.sort(gs, descending=True, stable=True).indices[:k]] = True
    return new.reshape(mask.shape)


def jaxpruner_power_truncated(step, *, target, begin, end, power=3, frequency=100):
    update, _ = ok.jaxpruner_polynomial_sparsity(step, target=target, begin=begin, end=end, power=power, frequency=frequency)
    p = 1.0 if end == begin else min(max(step + 1 - begin, 0), end - begin) / (end - begin)
    return update, target * (1.0 - (1.0 - p) ** max(1, int(power)))  # bug: the exponent taken as an int


RULES.update({
    "block-int": "block_mask: an int block is that size on every axis",
    "block-edge-max": "block_mask: an edge tile is pooled over its real entries (a negative tile's max stays negative)",
    "block-sum-order": "block_mask: tile sums add axis 0's block offsets first, each axis in increasing offset order",
    "dense-names": "layer_densities: names in dense are keys of the mapping, in the mapping's own order",
    "erk-resolve-repeat": "layer_densities: re-solved until no layer exceeds density 1",
    "one-d-layers": "layer_densities: a 1-d layer is an ordinary layer, r = 1 under ERK",
    "grow-inf": "drop_grow: -inf is an ordinary grow score, ranked last among the pruned entries",
    "ramp-power": "jaxpruner_polynomial_sparsity: any real power > 0 inside the ramp",
})

MUTANTS.update({
    "block_int_first_two_axes": Mutant("block_mask", block_int_first_two_axes, "block-int", "an int block tiles only the first two axes"),
    "block_max_pads_zero": Mutant("block_mask", block_max_pads_zero, "block-edge-max", "max pads edge tiles with 0, not -inf"),
    "block_sum_row_major": Mutant("block_mask", block_sum_row_major, "block-sum-order", "tile entries summed row-major"),
    "dense_names_sorted": Mutant("layer_densities", dense_names_sorted, "dense-names", "dense names indexed in sorted key order"),
    "er_power_scale_ignored": Mutant("layer_densities", er_power_scale_ignored, "erk-power-scale", "ER ignores power_scale"),
    "resolve_once": Mutant("layer_densities", resolve_once, "erk-resolve-repeat", "re-solves once, then clips"),
    "one_d_as_column": Mutant("layer_densities", one_d_as_column, "one-d-layers", "a 1-d shape read as (n, 1) under ERK"),
    "grow_marks_kept_minus_inf": Mutant("drop_grow", grow_marks_kept_minus_inf, "grow-inf", "survivors marked -inf tie with -inf candidates"),
    "jaxpruner_power_truncated": Mutant("jaxpruner_polynomial_sparsity", jaxpruner_power_truncated, "ramp-power", "int(power)"),
})


#: The correct implementation without any ``_grad`` (it must pass every other check).
torch_impl_no_grad = _module(drop_grads=True)

for _name, _m in MUTANTS.items():
    globals()[_name] = _module(drop_grads=not _m.is_grad, **{_m.function: _m.replacement})
