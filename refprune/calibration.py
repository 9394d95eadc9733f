r"""Calibration inputs: what each prunable layer of a trained network sees, pruned prefix first.

One-shot pruning (Wanda, SparseGPT, OBC) prunes a layer :math:`W` (``(out, in)``, the
layout of a torch ``Linear`` and of the v2 protocol) from the inputs :math:`X`
(``(tokens, in)``) that a few calibration examples send into it, keeping
:math:`\lVert W X^\top - \hat W X^\top \rVert` small. The official codes prune the
network in order and feed each layer the outputs of the layers **already pruned**
before it, so that a layer compensates what the earlier ones lost:

.. math:: X_1 = x, \qquad X_{l+1} = f_l(X_l;\ \hat W_l) .

:class:`Calibration` does that bookkeeping for a :class:`refprune.nn.Sequential`: its
top-level layers that hold prunable weights are the *units* pruned one after the
other; :meth:`Calibration.inputs` runs the calibration examples through the units
before a unit, as they are now (pruned or not), and returns every prunable weight's
input matrix inside it.

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

__all__ = ["Calibration", "weight_matrix", "matrix_to_weight", "layer_inputs"]


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
        w = layer.params["w"]
        cols = F._conv_cols(x, tuple(int(d) for d in w.shape[2:]), F._pair("stride", layer.stride, minimum=1),
                            F._pair("padding", layer.padding, minimum=0), xp)
        return {"w": xp.permute_dims(cols, (1, 0))}
    if hasattr(layer, "linear_inputs"):
        return layer.linear_inputs(x)
    msg = (f"one-shot pruning cannot see the inputs of {type(layer).__name__} layers (gated L0 layers: compact the "
           "run first with 'refprune compact' and start from its model.npz)")
    raise TypeError(msg)


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
    units : tuple of (layer name, weight names)
        The top-level layers holding weights to prune, in order, with those weights.
    """

    def __init__(self, model, chunks, names=None):
        self.model = model
        self.chunks = list(chunks)
        if not self.chunks:
            msg = "calibration needs at least one batch of examples, got none"
            raise ValueError(msg)
        names = tuple(model.prunable() if names is None else names)
        order = list(model.layers)
        units = {}
        for name in names:
            _layer_and_key(model, name)
            units.setdefault(name.partition(".")[0], []).append(name)
        self.units = tuple((ln, tuple(units[ln])) for ln in order if ln in units)
        self._at = (0, self.chunks)  # (index of the first layer not yet applied, activations entering it)

    def _activations(self, layer_index):
        """The calibration batches entering top-level layer ``layer_index`` of the model as it is now."""
        start, acts = self._at
        if start > layer_index:  # the cache is past this layer (the caller went back): start over
            start, acts = 0, self.chunks
        layers = list(self.model.layers.values())
        for layer in layers[start:layer_index]:
            acts = [layer.forward(a, train=False) for a in acts]
        self._at = (layer_index, acts)
        return acts

    def inputs(self, unit):
        """``{weight name: (tokens, in)}`` for unit number ``unit``, all calibration batches stacked.

        The units before it enter with their current weights and masks, so calling this
        after pruning them gives the inputs of the official sequential procedure. The
        activations are kept between calls: asking for the units in order runs each
        layer once per batch, and pruning a unit never changes what enters it.
        """
        ln, names = self.units[unit]
        index = list(self.model.layers).index(ln)
        layer = self.model.layers[ln]
        per_chunk = [layer_inputs(layer, a) for a in self._activations(index)]
        xp = namespace(None, x=self.chunks[0])
        return {name: xp.concat([inputs[name.partition(".")[2]] for inputs in per_chunk], axis=0)
                for name in names}
