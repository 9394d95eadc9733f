"""Networks with hand-written gradients: functional pairs, layers, models, optimizers.

``functional`` holds the pure forward/backward pairs; ``layers`` the objects that hold
parameters; ``models`` the :class:`Sequential` container and the presets
(``build_model``); ``optim`` SGD and Adam as pure functions over parameter dicts;
``constraints`` the clamps applied after an update; ``train`` the training step.
The training loop, evaluation and checkpoints are in :mod:`refprune.engine`.
"""

from . import constraints, functional, layers, models, optim, train
from .constraints import apply_constraints, clamp
from .layers import (
    GELU,
    BatchNorm1d,
    CausalSelfAttention,
    Embedding,
    LayerNorm,
    PositionEmbedding,
    Conv2d,
    Dense,
    Flatten,
    HardInvert,
    L0Conv2d,
    LOG_ALPHA_RANGE,
    L0Dense,
    Layer,
    MaxPool2d,
    ReLU,
    SelectFeatures,
    SoftInvert,
    Tanh,
)
from .models import PRESETS, Sequential, Transformer, build_like, build_model, describe, format_architecture, preset
from .optim import adam, init_state, sgd
from .train import Step, loss_and_grads, train_step

__all__ = [
    "constraints",
    "functional",
    "layers",
    "models",
    "optim",
    "train",
    "Layer",
    "Dense",
    "Conv2d",
    "MaxPool2d",
    "ReLU",
    "Tanh",
    "Flatten",
    "SelectFeatures",
    "BatchNorm1d",
    "SoftInvert",
    "HardInvert",
    "L0Dense",
    "L0Conv2d",
    "Embedding",
    "PositionEmbedding",
    "LayerNorm",
    "GELU",
    "CausalSelfAttention",
    "Sequential",
    "Transformer",
    "build_model",
    "build_like",
    "describe",
    "preset",
    "PRESETS",
    "format_architecture",
    "sgd",
    "adam",
    "init_state",
    "apply_constraints",
    "clamp",
    "LOG_ALPHA_RANGE",
    "Step",
    "loss_and_grads",
    "train_step",
]
