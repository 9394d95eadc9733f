"""llm-compressor (``llmcompressor``) as a conformance target.

Run the suite against it, in an environment with llm-compressor (``scripts/peers_env.sh``)::

    refprune check --target refprune.conformance.peers.llm_compressor --target-backend torch

Its magnitude pruning builds masks with ``PruningMaskFactory.create_mask_creator(structure)``
called on ``PruningMaskCreatorArgs(parameter, sparsity, scores)``, the scores being
``|w|`` (what ``MagnitudePruningModifier`` passes). Only names are converted:

* ``magnitude_mask(w, amount, scores)`` -> structure ``"unstructured"``, ``sparsity=amount``,
  ``scores`` (``|w|`` when not given);
* ``block_mask(w, block, amount, pool="l1")`` -> structure ``"block_<b0>,<b1>,..."``
  (its blocks are summed: the protocol's ``l1`` pool of ``|w|``); other pools are not offered;

Its ``"channel"``/``"filter"`` structures take 4-D weights and the L1 norm only; the suite's
structured cases are 2-D or other norms, so ``structured_mask`` is left out.

Not offered: ``NotImplementedError``; llm-compressor rounds with ``int(sparsity * n)``,
so ``rounding="floor"``/``"ceil"`` are not offered either. Where its answers differ,
``xfails/llm_compressor.txt`` says why.

Protocol v2 (one-shot), through the functions its ``WandaPruningModifier`` and
``SparseGPTModifier`` call per layer (a throwaway ``Linear`` holding ``w``):

* ``activation_norms(x)`` -> ``wanda_sparsify.accumulate_row_scalars``, the square root of
  its statistic times its sample count (it keeps the mean over samples of the squared
  norms: ``x`` of shape ``(tokens, in)`` is one sample);
* ``hessian(x)`` -> ``sgpt_sparsify.accumulate_hessian`` on ``x`` as given, not rescaled: it
  averages over samples (sequences), the protocol over tokens, and the scale changes
  SparseGPT's result where inputs are dead (behaviour: ``xfails/llm_compressor.txt``);
* ``wanda_mask(w, norms)`` -> ``wanda_sparsify.sparsify_weight`` with the row statistic
  ``norms ** 2`` in float32 (what ``accumulate_row_scalars`` stores for one sample), per row
  (``group="layer"`` is not offered); N:M as ``prune_n = m - n`` (llm-compressor's
  ``mask_structure`` "N:M" counts the *pruned*), ``prune_m = m``, ``sparsity = (m - n) / m``;
* ``sparsegpt_prune(w, h)`` -> ``sgpt_sparsify.sparsify_weight`` with ``h`` (as float32,
  its accumulator's dtype), ``block_size=block``, ``dampening_frac=damp``, N:M as above;
* ``owl_densities(shapes, ratios)`` -> ``SparsityModifierBase._infer_owl_layer_sparsity``,
  which measures each unit's outlier ratio from its scores and takes no ratios: the
  adapter gives unit ``l`` the scores ``1`` (``c`` of them) and ``0`` (``N - c``) with
  ``owl_m=0``, so its ratio is ``c / N`` (``0.1`` as ``1 / 10``); a ratio that is not the
  float of such a fraction with ``N <= 4096`` is not offered. Densities are ``1 -`` its
  sparsities.

The masks are the ones the peer computes (its bool index into the weight, recorded as it
is applied), not read back from zeros in the result.
"""

from __future__ import annotations

import math
from fractions import Fraction

import torch
from llmcompressor.modifiers.pruning.sparsegpt import sgpt_sparsify
from llmcompressor.modifiers.pruning.utils.pytorch.mask_factory import PruningMaskCreatorArgs, PruningMaskFactory
from llmcompressor.modifiers.pruning.wanda import WandaPruningModifier, wanda_sparsify
from pydantic import PrivateAttr
from torch.overrides import TorchFunctionMode

__all__ = ["magnitude_mask", "block_mask", "activation_norms", "hessian", "wanda_mask", "sparsegpt_prune",
           "owl_densities"]


def _offered(what, ok):
    if not ok:
        msg = f"llm-compressor does not offer {what}"
        raise NotImplementedError(msg)


def _mask(structure, w, amount, scores=None):
    creator = PruningMaskFactory.create_mask_creator(structure)
    param = torch.nn.Parameter(w.detach().clone(), requires_grad=False)
    args = PruningMaskCreatorArgs(parameter=param, sparsity=amount, scores=w.abs() if scores is None else scores)
    return creator(args).to(torch.bool)


def _fraction(amount, n):
    return amount / n if isinstance(amount, int) and n else amount


def magnitude_mask(w, *, amount, scores=None, rounding="half-even"):
    _offered(f"rounding={rounding!r} (it rounds with int())", rounding == "half-even")
    return _mask("unstructured", w, _fraction(amount, w.numel()), scores)


def block_mask(w, *, block, amount, pool="l1", scores=None, rounding="half-even"):
    _offered(f"pool={pool!r} (it sums each block)", pool == "l1")
    _offered(f"rounding={rounding!r} (it rounds with int())", rounding == "half-even")
    sizes = (block,) * w.dim() if isinstance(block, int) else tuple(block)
    return _mask("block_" + ",".join(str(b) for b in sizes), w, amount, scores)


# --------------------------------------------------------------------------- protocol v2


class _BoolIndexWrites(TorchFunctionMode):
    """Records every ``tensor[bool_tensor] = value`` the peer makes: its masks, as it applies them."""

    def __init__(self):
        super().__init__()
        self.indices = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is torch.Tensor.__setitem__ and isinstance(args[1], torch.Tensor) and args[1].dtype == torch.bool:
            self.indices.append(args[1].clone())
        return func(*args, **(kwargs or {}))


def _linear(w):
    layer = torch.nn.Linear(w.shape[1], w.shape[0], bias=False, dtype=w.dtype, device=w.device)
    with torch.no_grad():
        layer.weight.copy_(w)
    return layer


def _pattern(amount, n, m):
    """``(sparsity, prune_n, prune_m)``: llm-compressor's N:M counts the pruned entries; 0 means no N:M."""
    if n is None or m is None:
        return amount, 0, 0
    return (m - n) / m if m else amount, m - n, m


def _throwaway(x):
    """The module the accumulators dispatch on (a ``Linear`` with ``x``'s inputs); its weight is never read."""
    return torch.nn.Linear(x.shape[-1], 1, bias=False, device=x.device)


def activation_norms(x):
    layer = _throwaway(x)
    stat, samples = wanda_sparsify.accumulate_row_scalars(x, layer, wanda_sparsify.make_empty_row_scalars(layer), 0)
    return torch.sqrt(stat * samples)


def hessian(x):
    layer = _throwaway(x)
    h, _ = sgpt_sparsify.accumulate_hessian(x, layer, sgpt_sparsify.make_empty_hessian(layer), 0)
    return h


def wanda_mask(w, norms, *, amount=None, n=None, m=None, group="row", rounding="half-even"):
    _offered(f"group={group!r} (it ranks each output row)", group == "row")
    _offered(f"rounding={rounding!r} (it rounds with int())", rounding == "half-even")
    sparsity, prune_n, prune_m = _pattern(_fraction(amount, w.shape[1]), n, m)
    layer = _linear(w)
    stat = norms.to(wanda_sparsify.WANDA_PRECISION) ** 2
    with _BoolIndexWrites() as seen:
        wanda_sparsify.sparsify_weight(layer, {layer: stat}, sparsity, prune_n, prune_m)
    return ~seen.indices[-1]


def sparsegpt_prune(w, h, *, amount=None, n=None, m=None, block=128, damp=0.01):
    sparsity, prune_n, prune_m = _pattern(amount, n, m)
    layer = _linear(w)
    hess = h.detach().to(sgpt_sparsify.SGPT_PRECISION).clone()
    with _BoolIndexWrites() as seen:  # one column's pruned rows per write, in column order
        _, w_hat = sgpt_sparsify.sparsify_weight(layer, {layer: hess}, sparsity, prune_n, prune_m, block, damp, False)
    pruned = torch.stack(seen.indices, dim=1) if seen.indices else torch.zeros(w.shape, dtype=torch.bool)
    return w_hat.detach(), ~pruned.to(w.device)


class _GivenScores(WandaPruningModifier):
    """OWL's layer sparsities from scores the adapter gives instead of a calibration run."""

    _scores: dict = PrivateAttr(default_factory=dict)

    def _get_activations(self, model, dataloader, nsamples=128):
        return self._scores


def _ratio_group(ratio):
    """Scores whose share above ``0 * mean`` is ``ratio``: ``c`` ones and ``N - c`` zeros, ``ratio`` being
    the float nearest ``c / N`` (``0.1`` is ``1 / 10``)."""
    near = Fraction(ratio).limit_denominator(4096) if math.isfinite(ratio) else None
    _offered(f"the outlier ratio {ratio!r} (the peer measures ratios from scores: only the float of a c / N, "
             "N <= 4096, 0 <= c <= N)", near is not None and float(near) == ratio and 0 <= near <= 1)
    c, total = near.numerator, near.denominator
    return torch.cat([torch.ones(c, dtype=torch.float64), torch.zeros(total - c, dtype=torch.float64)])


def owl_densities(shapes, outlier_ratios, *, density, lam=0.08):
    keys = list(shapes) if isinstance(shapes, dict) else list(range(len(shapes)))
    _offered("a ratio for other layers than the shapes' (it takes no ratios: the adapter builds each layer's scores)",
             len(outlier_ratios) == len(keys) and all(k in outlier_ratios for k in keys) if isinstance(shapes, dict)
             else len(outlier_ratios) == len(keys))
    ratios = [outlier_ratios[k] for k in keys]
    modifier = _GivenScores(sparsity=1 - density, sparsity_profile="owl", owl_m=0, owl_lmbda=lam)
    layers = {}
    for key, ratio in zip(keys, ratios):
        scores = _ratio_group(ratio)
        layer = torch.nn.Linear(scores.numel(), 1, bias=False, dtype=torch.float64)
        with torch.no_grad():
            layer.weight.copy_(scores[None])
        layers[f"unit{key}"] = torch.nn.Sequential(layer)
        modifier._scores[f"unit{key}.0"] = torch.ones(scores.numel(), dtype=torch.float64)
    sparsities = modifier._infer_owl_layer_sparsity(None, layers, None)
    out = [float(1 - sparsities[f"unit{key}"]) for key in keys]
    return dict(zip(keys, out)) if isinstance(shapes, dict) else out
