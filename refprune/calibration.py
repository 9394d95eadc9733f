r"""Calibration inputs: what each prunable layer of a trained network sees, pruned prefix first.

One-shot pruning (Wanda, SparseGPT, OBC) prunes a layer :math:`W` (``(out, in)``, the
layout of a torch ``Linear`` and of the v2 protocol) from the inputs :math:`X`
(``(tokens, in)``) that a few calibration examples send into it, keeping
:math:`\lVert W X^\top - \hat W X^\top \rVert` small. The official codes prune the
network in order and feed each layer the outputs of the layers **already pruned**
before it, so that a layer compensates what the earlier ones lost:

.. math:: X_1 = x, \qquad X_{l+1} = f_l(X_l;\ \hat W_l) .

:class:`Calibration` does that bookkeeping. The network is a chain of stages
(:func:`stages`): the layers of a :class:`refprune.nn.Sequential`, the blocks of a
:class:`refprune.nn.Transformer` (as the official codes prune a decoder layer: all its
linears from one pass, then the block's output for the next one). The stages that hold
weights to prune are the *units*, pruned one after the other; :meth:`Calibration.inputs`
runs the calibration examples through the stages before a unit, as they are now
(pruned or not), and returns the input matrix of every weight to prune inside it.

Layouts. A dense layer stores ``w`` as ``(in, out)``: its matrix is ``w.T``, its input
the activations with every axis but the last merged into tokens. A convolution
``(out, in, kh, kw)`` is the linear layer ``(out, in*kh*kw)`` of its unfolded input
(im2col, zero padding included), one token per output position and example, as
SparseGPT's official code treats a ``Conv2d`` (``nn.Unfold``).
A layer of another kind takes part by defining ``linear_inputs(x) -> {name: (tokens,
in)}`` (the inputs of its own dense weights ``name``, stored ``(in, out)``).

Examples
--------
>>> import numpy as np
>>> from refprune import backends
>>> from refprune.nn import build_model
>>> b = backends.get("numpy")
>>> model = build_model("mlp-300-100", input_shape=(64,), num_classes=10, backend=b, rng=b.rng(0))
>>> cal = Calibration(model, [np.ones((5, 64), dtype=np.float32)])
>>> cal.units
(('fc1', ('fc1.w',)), ('fc2', ('fc2.w',)))
>>> {name: tuple(x.shape) for name, x in cal.inputs(1).items()}
{'fc2.w': (5, 300)}
>>> weight_matrix(model, "fc2.w").shape  # (out, in)
(100, 300)
"""

from __future__ import annotations

from ._array import namespace
from .nn import functional as F

__all__ = ["Calibration", "stages", "weight_matrix", "matrix_to_weight", "layer_inputs"]


def _layer_and_key(model, name):
    ln, _, key = name.partition(".")
    layer = model.layers.get(ln)
    if layer is None or key not in layer.params:
        msg = f"{name!r} is not a parameter of this model; its prunable weights are {model.prunable()}"
        raise ValueError(msg)
    return layer, key


def weight_matrix(model, name):
    """The weight ``name`` of ``model`` as the ``(out, in)`` matrix one-shot pruning works on (masks applied).

    Dense ``(in, out)`` -> its transpose; conv ``(out, in, kh, kw)`` -> ``(out, in*kh*kw)``.
    """
    layer, key = _layer_and_key(model, name)
    w = layer.param(key)
    xp = namespace(None, w=w)
    if w.ndim == 4:
        return xp.reshape(w, (int(w.shape[0]), -1))
    return xp.permute_dims(w, (1, 0))


def matrix_to_weight(model, name, matrix):
    """The inverse of :func:`weight_matrix`: the ``(out, in)`` ``matrix`` in the layout ``model`` stores ``name``."""
    layer, key = _layer_and_key(model, name)
    shape = tuple(int(d) for d in layer.params[key].shape)
    xp = namespace(None, matrix=matrix)
    if len(shape) == 4:
        return xp.reshape(matrix, shape)
    return xp.permute_dims(matrix, (1, 0))


def layer_inputs(layer, x):
    """``{local weight name: (tokens, in)}``: the inputs that ``x`` sends into ``layer``'s prunable weights."""
    xp = namespace(None, x=x)
    if getattr(layer, "kind", None) == "dense" and not layer.gated:
        return {"w": xp.reshape(x, (-1, int(x.shape[-1])))}
    if getattr(layer, "kind", None) == "conv" and not layer.gated:
        kernel = tuple(int(d) for d in layer.params["w"].shape[2:])
        cols = F.conv_patches(x, kernel=kernel, stride=layer.stride, padding=layer.padding, xp=xp)
        return {"w": xp.permute_dims(cols, (1, 0))}
    if hasattr(layer, "linear_inputs"):
        return layer.linear_inputs(x)
    msg = (f"one-shot pruning cannot see the inputs of {type(layer).__name__} layers (gated L0 layers: compact the "
           "run first with 'refprune compact' and start from its model.npz)")
    raise TypeError(msg)


def _chain(model, names, x, record):
    """Run layers ``names`` of ``model`` on ``x`` in test mode, keeping in ``record`` what enters each it lists."""
    for ln in names:
        if ln in record:
            record[ln] = x
        x = model.layers[ln].forward(x, train=False)
    return x


def stages(model):
    """``model`` as a chain of stages: ``[(name, layer names, run(x, record) -> x)]`` in order.

    A :class:`~refprune.nn.Sequential` is a chain of its layers, one stage each. A
    :class:`~refprune.nn.Transformer` (residual, so not a chain of layers) is its
    embeddings, then one stage per block: both residual branches,
    :math:`h \\leftarrow h + \\mathrm{branch}(h)`, as the official codes prune a decoder
    layer (every linear of the block from one pass, then the block's output).
    """
    branches = getattr(model, "branches", None)
    if branches is None:
        return [(ln, (ln,), lambda x, record, ln=ln: _chain(model, (ln,), x, record)) for ln in model.layers]
    blocks = {}
    for branch in branches:
        blocks.setdefault(branch[0].partition("_")[0], []).append(tuple(branch))

    def block(h, record, parts):
        for branch in parts:
            h = h + _chain(model, branch, h, record)
        return h

    out = [("embeddings", ("tok", "pos"), lambda x, record: _chain(model, ("tok", "pos"), x, record))]
    for name, parts in blocks.items():
        out.append((name, tuple(ln for b in parts for ln in b), lambda h, record, parts=parts: block(h, record, parts)))
    return out


class Calibration:
    """Calibration examples and the inputs they send into each unit of ``model``, the earlier units as they are now.

    Parameters
    ----------
    model : refprune.nn.Sequential
        The network being pruned (in place, by the caller, between calls).
    chunks : list of arrays
        The calibration examples in batches (the backend's arrays), run in test mode.
    names : sequence of str, optional
        The prunable weights to prune (default: ``model.prunable()``, the output layer left out).

    Attributes
    ----------
    units : tuple of (stage name, weight names)
        The stages (:func:`stages`: a layer, or a transformer block) holding weights to
        prune, in order, with those weights.
    """

    def __init__(self, model, chunks, names=None):
        self.model = model
        self.chunks = list(chunks)
        if not self.chunks:
            msg = "calibration needs at least one batch of examples, got none"
            raise ValueError(msg)
        names = tuple(model.prunable() if names is None else names)
        for name in names:
            _layer_and_key(model, name)
        self._stages = stages(model)
        units = []
        for i, (stage, layers, _) in enumerate(self._stages):
            weights = tuple(n for n in names if n.partition(".")[0] in layers)
            if weights:
                units.append((i, stage, weights))
        missing = sorted(set(names) - {n for _, _, weights in units for n in weights})
        if missing:
            msg = f"cannot prune {missing} one-shot: no stage of this {type(model).__name__} before its output holds them"
            raise ValueError(msg)
        self._index = [i for i, _, _ in units]
        self.units = tuple((stage, weights) for _, stage, weights in units)
        self._at = (0, self.chunks)  # (index of the first stage not yet applied, activations entering it)

    def _activations(self, index):
        """The calibration batches entering stage ``index`` of the model as it is now."""
        start, acts = self._at
        if start > index:  # the cache is past this stage (the caller went back): start over
            start, acts = 0, self.chunks
        for _, _, run in self._stages[start:index]:
            acts = [run(a, {}) for a in acts]
        self._at = (index, acts)
        return acts

    def inputs(self, unit):
        """``{weight name: (tokens, in)}`` for unit number ``unit``, all calibration batches stacked.

        The units before it enter with their current weights and masks, so calling this
        after pruning them gives the inputs of the official sequential procedure. The
        activations are kept between calls: asking for the units in order runs each
        stage once per batch, and pruning a unit never changes what enters it.
        """
        index, (_, names) = self._index[unit], self.units[unit]
        _, _, run = self._stages[index]
        layers = {name.partition(".")[0] for name in names}
        per_chunk = []
        for a in self._activations(index):
            record = dict.fromkeys(layers)
            run(a, record)
            per_chunk.append({ln: layer_inputs(self.model.layers[ln], x) for ln, x in record.items()})
        xp = namespace(None, x=per_chunk[0][next(iter(layers))]["w"])
        return {name: xp.concat([inputs[name.partition(".")[0]][name.partition(".")[2]] for inputs in per_chunk],
                                axis=0) for name in names}
