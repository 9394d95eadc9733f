"""The peer of benchmarks 4 and 8: the L0 networks written the usual way, in torch with autograd.

Same architecture, gates, penalty, optimizer and clamp as ``refprune.nn.build_model(...,
l0=True)`` (and the L0 paper's ``L0MLP`` / ``L0LeNet5``): ``L0Dense`` gates its input
units, ``L0Conv2d`` its output channels, one hard-concrete gate sample per minibatch,
loss = cross-entropy + (1/N) * sum of expected L0 penalties, Adam, then ``log_alpha``
clamped to [log 1e-2, log 1e2]. Parameters are copied from a refprune model so both
start from the same numbers.

Where the gate enters, two ways that compute the same function (``gate=``):

* ``"inputs"``: ``(x * z) @ W`` and ``conv(x, W, b) * z`` (refprune's equations, this
  file's first version). Autograd then also computes the first layer's input-side
  product ``dy @ W^T`` (``x * z`` needs a gradient because ``z`` does);
* ``"weights"``: ``x @ (z[:, None] * W)`` and ``conv(x, z W, z b)``, the L0 paper's code
  (``sample_weights``), which a user writing it from the paper gets: no input-side
  product for the first layer, and a conv gate on the (small) filters instead of the
  feature map. The benchmarks' goals are against this one; the other is shown beside it.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

BETA, GAMMA, ZETA, EPS = 2.0 / 3.0, -0.1, 1.1, 1e-6
LOG_ALPHA_RANGE = (math.log(1e-2), math.log(1e2))


def _sample(log_alpha, u, beta):
    s = torch.sigmoid((torch.log(u) - torch.log1p(-u) + log_alpha) / beta)
    return torch.clamp(s * (ZETA - GAMMA) + GAMMA, 0.0, 1.0)


def _prob_nonzero(log_alpha, beta):
    return torch.clamp(torch.sigmoid(log_alpha - beta * math.log(-GAMMA / ZETA)), EPS, 1.0 - EPS)


class L0Dense(torch.nn.Module):
    def __init__(self, w, b, log_alpha, *, lam, weight_decay, beta, gate="inputs"):
        super().__init__()
        self.w = torch.nn.Parameter(w)  # (in, out), the paper's layout
        self.b = None if b is None else torch.nn.Parameter(b)
        self.log_alpha = torch.nn.Parameter(log_alpha)
        self.lam, self.wd, self.beta, self.gate = lam, weight_decay, beta, gate

    def forward(self, x):
        u = torch.empty_like(self.log_alpha).uniform_(1e-6, 1.0 - 1e-6)
        z = _sample(self.log_alpha, u, self.beta)
        y = (x * z) @ self.w if self.gate == "inputs" else x @ (z[:, None] * self.w)
        return y if self.b is None else y + self.b

    def penalty(self):
        p = _prob_nonzero(self.log_alpha, self.beta)
        cost = self.lam * self.w.shape[1] + 0.5 * self.wd * (self.w * self.w).sum(dim=1)
        r = (p * cost).sum()
        if self.b is not None and self.wd:
            r = r + 0.5 * self.wd * (self.b * self.b).sum()
        return r


class L0Conv2d(torch.nn.Module):
    def __init__(self, w, b, log_alpha, *, padding, lam, weight_decay, beta, gate="inputs"):
        super().__init__()
        self.w = torch.nn.Parameter(w)
        self.b = None if b is None else torch.nn.Parameter(b)
        self.log_alpha = torch.nn.Parameter(log_alpha)
        self.padding, self.lam, self.wd, self.beta, self.gate = padding, lam, weight_decay, beta, gate

    def forward(self, x):
        u = torch.empty_like(self.log_alpha).uniform_(1e-6, 1.0 - 1e-6)
        z = _sample(self.log_alpha, u, self.beta)
        if self.gate == "inputs":
            return F.conv2d(x, self.w, self.b, padding=self.padding) * z[None, :, None, None]
        b = None if self.b is None else self.b * z
        return F.conv2d(x, self.w * z[:, None, None, None], b, padding=self.padding)

    def penalty(self):
        p = _prob_nonzero(self.log_alpha, self.beta)
        n = self.w[0].numel()
        cost = self.lam * n + 0.5 * self.wd * (self.w * self.w).sum(dim=(1, 2, 3))
        if self.b is not None:
            cost = cost + self.lam + 0.5 * self.wd * self.b * self.b
        return (p * cost).sum()


class Net(torch.nn.Module):
    """A torch copy of a refprune L0 ``Sequential`` (dense, conv, relu, pool, flatten)."""

    def __init__(self, model, backend, *, gate="weights"):
        super().__init__()
        self.ops = []
        self.gated = torch.nn.ModuleList()
        for name, layer in model.layers.items():
            kind = type(layer).__name__
            if kind in ("L0Dense", "L0Conv2d"):
                p = {k: torch.from_numpy(np.array(backend.to_numpy(v))) for k, v in layer.params.items()}
                kw = {"lam": layer.lam, "weight_decay": layer.weight_decay, "beta": layer.temperature, "gate": gate}
                if kind == "L0Dense":
                    mod = L0Dense(p["w"], p.get("b"), p["log_alpha"], **kw)
                else:
                    mod = L0Conv2d(p["w"], p.get("b"), p["log_alpha"], padding=layer.padding, **kw)
                self.gated.append(mod)
                self.ops.append(mod)
            elif kind == "ReLU":
                self.ops.append(torch.relu)
            elif kind == "MaxPool2d":
                self.ops.append(lambda x, k=layer.kernel: F.max_pool2d(x, k))
            elif kind == "Flatten":
                self.ops.append(lambda x: x.flatten(1))
            else:
                msg = f"no torch equivalent for layer {name} ({kind})"
                raise ValueError(msg)

    def forward(self, x):
        for op in self.ops:
            x = op(x)
        return x

    def penalty(self):
        return sum(m.penalty() for m in self.gated)


def make_step(net, *, lr=1e-3, gate_lr=None, n_train=60000):
    """One training step closure ``step(x, y) -> (loss, logits)``: forward, loss + penalty/N, backward, Adam, clamp.

    ``gate_lr``: the gates' own Adam rate (refprune run l0's ``--gate-lr``), default ``lr``.
    """
    gates = [m.log_alpha for m in net.gated]
    others = [p for p in net.parameters() if all(p is not g for g in gates)]
    opt = torch.optim.Adam([{"params": others}, {"params": gates, "lr": lr if gate_lr is None else gate_lr}], lr=lr)

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        logits = net(x)
        loss = F.cross_entropy(logits, y) + net.penalty() / n_train
        loss.backward()
        opt.step()
        with torch.no_grad():
            for m in net.gated:
                m.log_alpha.clamp_(*LOG_ALPHA_RANGE)
        return loss, logits

    return step
