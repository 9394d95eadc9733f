"""Planted bugs: copies of the independent torch implementation with one mistake each.

Every mutant is the correct :mod:`.torch_impl` with one function replaced by a version
carrying a bug an implementer really makes. ``MUTANTS`` maps a mutant's name to
``(function, test module that must catch it, what is wrong)``; each is also a
module-level attribute, so ``REFPRUNE_TARGET=refprune.conformance.meta_tests.mutants:<name>``
selects it as a target.
"""

from __future__ import annotations

import decimal
import itertools
import math
import types

import torch

from refprune.conformance.config import PROTOCOL_NAMES
from refprune.conformance.meta_tests import torch_impl as ok

# --------------------------------------------------------------------------- masks


def _keep_pruning_low_index_first(flat, k):
    # bug: ascending stable sort and prune the first k -> among ties the LOWER index goes first
    order = torch.sort(flat, stable=True).indices
    keep = torch.ones(flat.numel(), dtype=torch.bool)
    keep[order[:k]] = False
    return keep


def magnitude_mask_ties(w, *, amount, scores=None, rounding="half-even"):
    s = ok._scores(w, scores)
    k = ok.prune_count(amount, w.numel(), rounding=rounding)
    return _keep_pruning_low_index_first(s.reshape(-1), k).reshape(w.shape)


def magnitude_mask_off_by_one(w, *, amount, scores=None, rounding="half-even"):
    s = ok._scores(w, scores)
    k = ok.prune_count(amount, w.numel(), rounding=rounding)
    k = min(k + 1, w.numel()) if k else 0  # bug: prunes k+1 (the "<= threshold" count)
    return ok._keep(s.reshape(-1), k).reshape(w.shape)


def prune_count_half_up(amount, n, *, rounding="half-even"):
    if rounding == "half-even" and not isinstance(amount, int):
        ok.prune_count(amount, n)  # validation only
        with decimal.localcontext() as ctx:
            ctx.prec = 80
            exact = decimal.Decimal(repr(float(amount))) * n
            return int(exact.to_integral_value(rounding=decimal.ROUND_HALF_UP))  # bug: half up
    return ok.prune_count(amount, n, rounding=rounding)


def prune_count_binary(amount, n, *, rounding="half-even"):
    k = ok.prune_count(amount, n, rounding=rounding)  # validation
    if isinstance(amount, int):
        return k
    product = float(amount) * n  # bug: rounds the binary product, not the decimal one
    return {"half-even": round, "floor": math.floor, "ceil": math.ceil}[rounding](product)


def structured_mask_ord_ignored(w, *, amount, axis, ord=2, rounding="half-even"):
    ok.structured_mask(w, amount=amount, axis=axis, ord=ord, rounding=rounding)  # validation
    return ok.structured_mask(w, amount=amount, axis=axis, rounding=rounding)  # bug: ord dropped


def global_mask_per_array(ws, *, amount, scores=None, rounding="half-even"):
    # bug: the budget is applied to each array separately instead of once over all
    return [ok.magnitude_mask(w, amount=amount if isinstance(amount, float) else 0, rounding=rounding) for w in ws]


def random_mask_largest(u, *, amount, rounding="half-even"):
    k = ok.prune_count(amount, u.numel(), rounding=rounding)
    return ok._keep(-u.reshape(-1), k).reshape(u.shape)  # bug: prunes the largest noise


def apply_mask_multiply(w, mask):
    ok.apply_mask(w, mask)
    return w * mask  # bug: 0 * inf is NaN


# --------------------------------------------------------------------------- gates


def quantile_noise_formula(log_alpha, u, *, beta=ok.BETA, gamma=ok.GAMMA, zeta=ok.ZETA):
    ok.hard_concrete_quantile(log_alpha, u, beta=beta, gamma=gamma, zeta=zeta)
    s = torch.sigmoid((torch.log(u) - torch.log1p(u) + log_alpha) / beta)  # bug: log(1+u) for log(1-u)
    return s * (zeta - gamma) + gamma


def sample_missing_clip(log_alpha, u, *, beta=ok.BETA, gamma=ok.GAMMA, zeta=ok.ZETA):
    return ok.hard_concrete_quantile(log_alpha, u, beta=beta, gamma=gamma, zeta=zeta)  # bug: no clip


def sample_grad_missing_beta(log_alpha, u, dz, *, beta=ok.BETA, gamma=ok.GAMMA, zeta=ok.ZETA):
    return ok.hard_concrete_sample_grad(log_alpha, u, dz, beta=beta, gamma=gamma, zeta=zeta) * beta  # bug: no 1/beta


def cdf_ignores_beta(log_alpha, x, *, beta=ok.BETA, gamma=ok.GAMMA, zeta=ok.ZETA, eps=ok.EPS):
    return ok.hard_concrete_cdf(log_alpha, x, gamma=gamma, zeta=zeta, eps=eps)  # bug: beta dropped


def prob_nonzero_no_clamp(log_alpha, *, beta=ok.BETA, gamma=ok.GAMMA, zeta=ok.ZETA, eps=ok.EPS):
    ok.hard_concrete_prob_nonzero(log_alpha, beta=beta, gamma=gamma, zeta=zeta, eps=eps)
    return torch.sigmoid(log_alpha - beta * math.log(-gamma / zeta))  # bug: the clamp is missing


def prob_nonzero_grad_sign(log_alpha, dp, *, beta=ok.BETA, gamma=ok.GAMMA, zeta=ok.ZETA, eps=ok.EPS):
    return -ok.hard_concrete_prob_nonzero_grad(log_alpha, dp, beta=beta, gamma=gamma, zeta=zeta, eps=eps)  # bug: sign


def expected_l0_ignores_group_size(log_alpha, *, group_size=1, beta=ok.BETA, gamma=ok.GAMMA, zeta=ok.ZETA, eps=ok.EPS):
    return ok.expected_l0(log_alpha, beta=beta, gamma=gamma, zeta=zeta, eps=eps)  # bug: group_size dropped


# --------------------------------------------------------------------------- regularizers


def l0_penalty_missing_half(log_alpha, w, *, lam, weight_decay=0.0, axis=0, **c):
    # bug: weight_decay * w^2 instead of weight_decay/2 * w^2
    return ok.l0_penalty(log_alpha, w, lam=lam, weight_decay=2 * weight_decay, axis=axis, **c)


def rvsm_penalty_grad_sign(w, u, *, beta):
    dw, _ = ok.rvsm_penalty_grad(w, u, beta=beta)
    return dw, dw.clone()  # bug: du = +beta (w - u)


def group_lasso_squared(w, *, axis, lam=1.0):
    ok.group_lasso_penalty(w, axis=axis, lam=lam)
    return lam * (ok._group_norms(w, axis) ** 2).sum()  # bug: squared norms


# --------------------------------------------------------------------------- thresholds


def hard_threshold_inclusive(w, *, threshold):
    ok.hard_threshold(w, threshold=threshold)
    return torch.where(w.abs() >= threshold, w, torch.zeros_like(w))  # bug: >= keeps |w| == t


def soft_threshold_no_max(w, *, threshold):
    ok.soft_threshold(w, threshold=threshold)
    return torch.sign(w) * (w.abs() - threshold)  # bug: max(., 0) missing


# --------------------------------------------------------------------------- schedules


def polynomial_exponent(step, *, initial, final, begin, end, power=3, frequency=100):
    update, _ = ok.polynomial_sparsity(step, initial=initial, final=final, begin=begin, end=end, power=power, frequency=frequency)
    p = min(1.0, max(0.0, (step - begin) / (end - begin)))
    return update, final + (initial - final) * (1.0 - p) ** (power - 1)  # bug: exponent power-1


def constant_ignores_end(step, *, target, begin=0, end=-1, frequency=100):
    ok.constant_sparsity(step, target=target, begin=begin, end=end, frequency=frequency)
    return ok.constant_sparsity(step, target=target, begin=begin, end=-1, frequency=frequency)  # bug: end ignored


def imp_off_by_one(round, *, rate=0.2):
    ok.imp_sparsity(round, rate=rate)
    return 1.0 - (1.0 - rate) ** (round + 1)  # bug: counts from round 1


#: name -> (replaced function, the test module that must catch it, the bug)
MUTANTS = {
    "tie_rule_reversed": ("magnitude_mask", magnitude_mask_ties, "test_masks", "ties prune the lower index first"),
    "count_off_by_one": ("magnitude_mask", magnitude_mask_off_by_one, "test_masks", "prunes k+1 entries"),
    "rounding_half_up": ("prune_count", prune_count_half_up, "test_masks", "rounds half up instead of half even"),
    "rounding_binary_product": ("prune_count", prune_count_binary, "test_masks", "rounds amount*n in binary, not in decimal"),
    "structured_ord_ignored": ("structured_mask", structured_mask_ord_ignored, "test_masks", "ignores ord"),
    "global_budget_per_array": ("global_magnitude_mask", global_mask_per_array, "test_masks", "one budget per array"),
    "random_prunes_largest": ("random_mask", random_mask_largest, "test_masks", "prunes the largest noise"),
    "apply_mask_multiplies": ("apply_mask", apply_mask_multiply, "test_masks", "w*mask turns 0*inf into NaN"),
    "noise_formula": ("hard_concrete_quantile", quantile_noise_formula, "test_gates", "log(1+u) for log(1-u)"),
    "sample_missing_clip": ("hard_concrete_sample", sample_missing_clip, "test_gates", "no clip to [0, 1]"),
    "sample_grad_missing_beta": ("hard_concrete_sample_grad", sample_grad_missing_beta, "test_gates", "missing 1/beta"),
    "cdf_ignores_beta": ("hard_concrete_cdf", cdf_ignores_beta, "test_gates", "ignores the temperature"),
    "prob_nonzero_missing_clamp": ("hard_concrete_prob_nonzero", prob_nonzero_no_clamp, "test_gates", "no clamp to [eps, 1-eps]"),
    "prob_nonzero_grad_sign": ("hard_concrete_prob_nonzero_grad", prob_nonzero_grad_sign, "test_gates", "sign error"),
    "expected_l0_group_size_ignored": ("expected_l0", expected_l0_ignores_group_size, "test_gates", "ignores group_size"),
    "l0_penalty_missing_half": ("l0_penalty", l0_penalty_missing_half, "test_regularizers", "weight_decay*w^2 without 1/2"),
    "rvsm_grad_sign": ("rvsm_penalty_grad", rvsm_penalty_grad_sign, "test_regularizers", "du has the wrong sign"),
    "group_lasso_squared": ("group_lasso_penalty", group_lasso_squared, "test_regularizers", "squared group norms"),
    "hard_threshold_inclusive": ("hard_threshold", hard_threshold_inclusive, "test_thresholds", ">= instead of >"),
    "soft_threshold_no_max": ("soft_threshold", soft_threshold_no_max, "test_thresholds", "missing max(., 0)"),
    "polynomial_exponent": ("polynomial_sparsity", polynomial_exponent, "test_schedules", "exponent power-1"),
    "constant_ignores_end": ("constant_sparsity", constant_ignores_end, "test_schedules", "ignores end"),
    "imp_off_by_one": ("imp_sparsity", imp_off_by_one, "test_schedules", "counts one round too many"),
}


def _mutant(fname, replacement):
    names = {n: getattr(ok, n) for n in PROTOCOL_NAMES if hasattr(ok, n)}
    names[fname] = replacement
    return types.SimpleNamespace(**names)


for _name, (_fname, _replacement, _module, _bug) in MUTANTS.items():
    globals()[_name] = _mutant(_fname, _replacement)


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


MUTANTS_V1 = {
    "nm_ties_reversed": ("nm_mask", nm_ties_reversed, "test_patterns", "ties keep the higher position in the group"),
    "nm_n_is_pruned": ("nm_mask", nm_n_is_pruned, "test_patterns", "n read as the number pruned (n and m-n swapped)"),
    "nm_strided_groups": ("nm_mask", nm_strided_groups, "test_patterns", "groups are strided, not consecutive"),
    "block_mean_counts_padding": ("block_mask", block_mean_counts_padding, "test_patterns", "edge tiles' mean divides by the full block"),
    "block_ties_reversed": ("block_mask", block_ties_reversed, "test_patterns", "ties prune the earlier tile"),
    "erk_without_resolve": ("layer_densities", erk_without_resolve, "test_budgets", "clips at 1 without re-solving"),
    "erk_power_scale_ignored": ("layer_densities", erk_power_scale_ignored, "test_budgets", "ignores power_scale"),
    "er_last_two_dims": ("layer_densities", er_last_two_dims, "test_budgets", "ER on the last two dims"),
    "dense_layers_outside_budget": ("layer_densities", dense_layers_outside_budget, "test_budgets", "forced dense layers not counted"),
    "saliency_signed": ("saliency_scores", saliency_signed, "test_scores", "w*g without |.|"),
    "taylor_default_abs": ("taylor_scores", taylor_default_abs, "test_scores", "the default kind is abs"),
    "movement_sign_flipped": ("movement_scores", movement_sign_flipped, "test_scores", "+w*g"),
    "structured_scores_abs": ("structured_mask", structured_scores_abs, "test_scores", "sums |scores| per slice"),
    "drop_more_than_grow": ("drop_grow", drop_more_than_grow, "test_dst", "grows one fewer than it drops"),
    "regrow_just_dropped": ("drop_grow", regrow_just_dropped, "test_dst", "grows back what it just dropped"),
    "drop_ties_reversed": ("drop_grow", drop_ties_reversed, "test_dst", "ties ranked from the last index"),
    "cosine_missing_half": ("cosine_drop_fraction", cosine_missing_half, "test_dst", "initial*(1+cos), twice too large"),
    "jaxpruner_one_step_late": ("jaxpruner_polynomial_sparsity", jaxpruner_one_step_late, "test_schedule_variants",
                                "progress without +1: reaches the target one step late"),
    "absolute_counting_ignored": ("is_update_step", absolute_counting_ignored, "test_schedule_variants", "counting ignored"),
    "one_shot_every_step_after": ("one_shot_sparsity", one_shot_every_step_after, "test_schedule_variants", "updates after at"),
}
MUTANTS.update(MUTANTS_V1)

for _name, (_fname, _replacement, _module, _bug) in MUTANTS_V1.items():
    globals()[_name] = _mutant(_fname, _replacement)
