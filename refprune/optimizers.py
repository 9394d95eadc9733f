"""The optimizers a training phase takes: an update rule and how its state starts, as one value.

:func:`adam` and :func:`sgd` bind the settings of :mod:`refprune.nn.optim`'s update
rules; :meth:`refprune.engine.Engine.train` calls ``init`` once per phase and passes
``update`` to the step.

Examples
--------
>>> from refprune import optimizers
>>> import numpy as np
>>> opt = optimizers.sgd(lr=0.1, momentum=0.9)
>>> state = opt.init({"w": np.ones(2)})
>>> sorted(state), state["momentum_buffer"]["w"]
(['momentum_buffer', 'step'], array([0., 0.]))
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from .nn import optim

__all__ = ["Optimizer", "adam", "sgd"]


@dataclass(frozen=True)
class Optimizer:
    """An update rule ``update(params, grads, state) -> (params, state)`` and its ``init(params) -> state``."""

    update: object
    init: object


def adam(*, lr, betas=(0.9, 0.999), eps=1e-8):
    """Adam (:func:`refprune.nn.optim.adam`); ``lr`` a number or per-parameter patterns."""
    return Optimizer(partial(optim.adam, lr=lr, betas=betas, eps=eps), partial(optim.init_state, optimizer="adam"))


def sgd(*, lr, momentum=0.0, nesterov=False):
    """SGD with optional (Nesterov) momentum (:func:`refprune.nn.optim.sgd`)."""
    return Optimizer(
        partial(optim.sgd, lr=lr, momentum=momentum, nesterov=nesterov),
        partial(optim.init_state, optimizer="sgd", momentum=momentum),
    )
