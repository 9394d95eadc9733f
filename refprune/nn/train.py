r"""One training step: the loss, its gradients and an update of a model's parameters.

A step is: forward in training mode (gates sampled from ``rng``), softmax
cross-entropy, backward, plus ``penalty_scale`` times the model's penalty and its
gradient (the L0 paper's loss is :math:`\mathcal{L} + \frac{1}{N}\sum_l R_l`, so
``penalty_scale = 1/N``), then an optimizer function and the constraints.

>>> from functools import partial
>>> from refprune import backends
>>> from refprune.nn import build_model, optim, train
>>> b = backends.get("numpy")
>>> rng = b.rng(0, stream="reference")
>>> model = build_model("mlp-300-100", input_shape=(4,), num_classes=3, backend=b, rng=rng)
>>> opt = partial(optim.adam, lr=1e-3)
>>> state = optim.init_state(model.params(), "adam")
>>> xb, yb = rng.uniform((8, 4), "float32"), b.asarray([0, 1, 2, 0, 1, 2, 0, 1])
>>> step, state = train.train_step(model, opt, state, xb, yb, rng=rng)
>>> state["step"]
1

Everything around a step (epochs, data, evaluation, checkpoints, progress) is in
:mod:`refprune.engine`: ``nn`` knows nothing of files or data sets.
"""

from __future__ import annotations

from typing import NamedTuple

from .._array import namespace
from .._dispatch import delegate
from . import functional as F
from .constraints import apply_constraints

__all__ = ["Step", "label_rows", "loss_and_grads", "train_step", "apply_update"]


def label_rows(labels):
    """The labels as one entry per row of the logits: ``(batch,)`` as they are, a language model's
    next-token targets ``(batch, time)`` flattened to ``(batch * time,)`` in row-major order, the order of
    :class:`~refprune.nn.Transformer`'s logit rows."""
    if labels.ndim == 1:
        return labels
    return namespace(None, labels=labels).reshape(labels, (-1,))


class Step(NamedTuple):
    """What :func:`loss_and_grads` returns.

    ``loss`` (0-d array: cross-entropy plus the scaled penalty), ``grads`` (dict by
    parameter name), ``logits`` (the training-mode forward's output).
    """

    loss: object
    grads: dict
    logits: object


def loss_and_grads(model, xb, yb, *, rng=None, penalty_scale=0.0):
    """Loss and gradients of ``model`` on one minibatch.

    Parameters
    ----------
    model : Sequential
        The network; its layers cache this forward for the backward.
    xb, yb : array
        Inputs and integer labels on the model's backend.
    rng : refprune generator, optional
        Gate noise for gated layers (required when the model has any).
    penalty_scale : float
        Weight of ``model.penalty()`` in the loss (``1/N`` for the L0 paper); 0 skips it.

    Returns
    -------
    Step
        ``(loss, grads, logits)``.
    """
    logits = model.forward(xb, train=True, rng=rng)
    yb = label_rows(yb)
    loss, dlogits = F.softmax_cross_entropy_and_grad(logits, yb)
    model.backward(dlogits, input_grad=False)
    grads = model.grads()
    if penalty_scale:
        penalty, penalty_grads = model.penalty_and_grads()
        loss = loss + penalty_scale * penalty
        for name, g in penalty_grads.items():
            grads[name] = _add_scaled(grads[name], penalty_scale, g)
    return Step(loss, grads, logits)


def _add_scaled(a, s, b):
    """``a + s * b``: the backend's one-pass fast path (op ``"add_scaled"``) where it has one."""
    out = delegate("add_scaled", namespace(None, a=a), a, s, b)
    return a + s * b if out is None else out


def train_step(model, opt, opt_state, xb, yb, *, rng=None, penalty_scale=0.0, constraints=None):
    """One optimization step, in place on ``model``'s parameters.

    Parameters
    ----------
    model, xb, yb, rng, penalty_scale
        As for :func:`loss_and_grads`.
    opt : callable
        ``opt(params, grads, state) -> (params, state)``, e.g.
        ``functools.partial(optim.adam, lr={"*.log_alpha": 0.1, "*": 1e-3})``.
    opt_state : dict
        The optimizer's state (``optim.init_state``).
    constraints : dict, optional
        Extra ``pattern -> function`` constraints (e.g. ``{"*.w": clamp(0, 1)}``),
        applied after the model's own (``model.constraints()``: the log_alpha clamp,
        the soft-invert range).

    Returns
    -------
    (Step, dict)
        The step's loss, gradients and logits, and the new optimizer state.
    """
    step = loss_and_grads(model, xb, yb, rng=rng, penalty_scale=penalty_scale)
    return step, apply_update(model, opt, opt_state, step.grads, constraints=constraints)


def apply_update(model, opt, opt_state, grads, *, constraints=None):
    r"""Update ``model``'s parameters in place with ``grads`` by ``opt``, then apply its constraints.

    The end of every training step: :math:`\theta \leftarrow \Pi_C(\mathrm{opt}(\theta, g))`
    with :math:`\Pi_C` the model's own constraints and ``constraints`` (``pattern ->
    function``). Returns the new optimizer state.
    """
    params, opt_state = opt(model.params(), grads, opt_state)
    model.set_params(apply_constraints(params, {**model.constraints(), **(constraints or {})}))
    return opt_state
