"""The official codes' one-shot rules, re-stated in torch (the tests and ``benchmarks/oneshot_primitives.py`` use them).

Each function re-states the rule of one published code (not copied: the same operations,
written here from reading it), so that refprune can be compared with it and every
difference in ``docs/differs.md`` is shown by running the rule, not from memory:

* ``locuslab/wanda`` (``lib/prune.py``, ``prune_wanda``): the per-row sort, the N:M ``topk``;
* ``IST-DASLab/sparsegpt`` (``sparsegpt.py``, ``SparseGPT.fasterprune``);
* ``biomedical-cybernetics/Relative-importance-and-activation-pruning`` (``lib/prune.py``,
  ``prune_ria``): RIA's score and its layer-wise threshold;
* ``luuyin/OWL`` (``lib/prune_all.py``, ``prune_wanda_outlier``): the per-layer ratios;
* ``IST-DASLab/OBC`` (``trueobs.py``, ``prepare_unstr``): the greedy OBS step.

Masks returned here are True = keep, like refprune's (the codes build True = prune).
"""

from __future__ import annotations

import torch


def wanda_row_mask(w, norms, sparsity):
    """Wanda's unstructured rule: per row, a stable ascending sort, prune the first ``int(in * sparsity)``."""
    metric = torch.abs(w) * norms.reshape(1, -1)
    pruned = torch.zeros_like(metric, dtype=torch.bool)
    order = torch.sort(metric, dim=-1, stable=True)[1]
    pruned.scatter_(1, order[:, : int(metric.shape[1] * sparsity)], True)
    return ~pruned


def wanda_nm_mask(w, norms, prune_n, prune_m):
    """Wanda's N:M rule: in every ``prune_m`` columns prune the ``prune_n`` smallest (``topk(largest=False)``)."""
    metric = torch.abs(w) * norms.reshape(1, -1)
    pruned = torch.zeros_like(metric, dtype=torch.bool)
    for ii in range(0, metric.shape[1], prune_m):
        tmp = metric[:, ii : ii + prune_m].float()
        pruned.scatter_(1, ii + torch.topk(tmp, prune_n, dim=1, largest=False)[1], True)
    return ~pruned


def ria_scores(w, norms, a=0.5):
    """RIA's score: ``|W|/colsum + |W|/rowsum`` times the norms to the power ``a`` (0/0 stays NaN)."""
    mag = torch.abs(w)
    return (mag / torch.sum(mag, dim=0) + mag / torch.sum(mag, dim=1).reshape(-1, 1)) * norms.reshape(1, -1) ** a


def layer_threshold_mask(metric, sparsity):
    """RIA's (and SparseGPT's per block) threshold: prune everything ``<=`` the ``int(numel * sparsity)``-th smallest."""
    thresh = torch.sort(metric.flatten())[0][int(metric.numel() * sparsity)]
    return ~(metric <= thresh)


def owl_densities(ratios, sparsity, lam):
    """OWL's per-layer densities: ratios min-max scaled to ``[0, 2 lam]``, then centred on ``1 - sparsity`` (plain mean)."""
    r = torch.as_tensor(ratios, dtype=torch.float64)
    r = (r - r.min()) * (1 / (r.max() - r.min()) * lam * 2)
    return r - torch.mean(r) + (1 - sparsity)


def obc_first_pruned(w, hinv):
    """The input OBC's ``prepare_unstr`` prunes first in each row: ``argmin(w^2 / diag(H^-1))`` (first index on ties)."""
    scores = w**2 / torch.diagonal(hinv)
    return torch.argmin(scores, 1)


def sparsegpt(w, h, *, sparsity=0.0, prunen=0, prunem=0, blocksize=128, percdamp=0.01):
    """``SparseGPT.fasterprune`` (its dtype: that of ``w``; the code runs in float32). Returns ``(w_hat, keep)``.

    ``prunen`` is the number **pruned** of every ``prunem`` (``topk(..., largest=False)``),
    the group starting at each in-block index ``i % prunem == 0``; the unstructured mask of a
    block prunes every entry at or below the block's ``int(numel * sparsity)``-th smallest score.
    """
    W = w.clone()
    H = h.clone()
    columns = W.shape[1]
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    damp = percdamp * torch.mean(torch.diag(H))
    idx = torch.arange(columns)
    H[idx, idx] += damp
    H = torch.linalg.cholesky(H)
    H = torch.cholesky_inverse(H)
    Hinv = torch.linalg.cholesky(H, upper=True)
    pruned = torch.zeros_like(W, dtype=torch.bool)
    for i1 in range(0, columns, blocksize):
        i2 = min(i1 + blocksize, columns)
        W1 = W[:, i1:i2].clone()
        Q1 = torch.zeros_like(W1)
        Err1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        if prunen == 0:
            tmp = W1**2 / (torch.diag(Hinv1).reshape((1, -1))) ** 2
            mask1 = ~layer_threshold_mask(tmp, sparsity)
        else:
            mask1 = torch.zeros_like(W1, dtype=torch.bool)
        for i in range(i2 - i1):
            col = W1[:, i]
            d = Hinv1[i, i]
            if prunen != 0 and i % prunem == 0:
                tmp = W1[:, i : i + prunem] ** 2 / (torch.diag(Hinv1)[i : i + prunem].reshape((1, -1))) ** 2
                mask1.scatter_(1, i + torch.topk(tmp, prunen, dim=1, largest=False)[1], True)
            q = col.clone()
            q[mask1[:, i]] = 0
            Q1[:, i] = q
            err1 = (col - q) / d
            W1[:, i:] -= err1.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
            Err1[:, i] = err1
        W[:, i1:i2] = Q1
        pruned[:, i1:i2] = mask1
        W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])
    return W, ~pruned
