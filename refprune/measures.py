r"""What a pruned network is, measured one way for every method: sparsity, widths, counts.

Every method reports the same summary of its final model (``result.json``, the demo
and ``refprune runs`` tables), computed here from the model as the test-time forward
pass sees it (:meth:`~refprune.nn.Sequential.effective_params`: masks applied, L0
test-time gates folded in; a method that deploys transformed weights, such as RVSM's
``u`` or the binarized weights, measures inside ``model.using(...)``):

* **weight sparsity**: the fraction of zeros among the weights of every dense and
  convolution layer, the output layer included, biases excluded
  (:func:`weight_sparsity`);
* **architecture**: one width per prunable layer, in the L0 paper's convention: a
  dense layer counts its *input features*, a convolution its *output channels*
  (LeNet-5 on MNIST: 20-50-800-500; LeNet-300-100: 784-300-100). *Before* is the
  network's width; *after* counts the units that are **alive**: reachable from the
  input through nonzero weights and able to reach the output through nonzero
  weights (:func:`architecture`). A unit that is not alive can be removed without
  changing the output: it is constant (its bias at most, folded into the next
  layer) or never read;
* **counts**: nonzero weights per prunable layer (:func:`nonzero_weights`).

Liveness. With :math:`W` the effective weight of a layer, a unit :math:`j` of its
output is live-in when :math:`W_{ij} \ne 0` for some live-in input :math:`i` (the
input is live-in; a convolution compares whole filters per input channel), and an
input :math:`i` is live-out when :math:`W_{ij} \ne 0` for some live-out output
:math:`j` (every logit is live-out). Activations and pooling keep a unit's status;
flatten spreads a channel's status over its features (and a feature's live-out to
its channel); a feature selection (:class:`~refprune.nn.SelectFeatures`, in compacted
networks) passes the status of the features it selects; batch norm with
:math:`\gamma_j = 0` and a soft invert at :math:`a = 1/2` make their outputs constant.
One exception keeps removal exact: a channel that is not live-in holds a constant
(:func:`activations_at_zero`), and where a *zero-padded* convolution reads a nonzero
constant its effect varies at the borders, which no bias can hold; such a channel
counts as live-in. Alive = live-in and live-out; :func:`refprune.compact` removes
exactly the units that are not alive and folds the constants into the next bias.

Examples
--------
>>> from refprune import backends, measures
>>> from refprune.nn import build_model
>>> b = backends.get("numpy")
>>> model = build_model("mlp-300-100", input_shape=(1, 8, 8), num_classes=10, backend=b,
...                     rng=b.rng(0, stream="reference"))
>>> measures.architecture(model)["before"], measures.weight_sparsity(model)[0]
([64, 300, 100], 0.0)
>>> w = model.params()["fc2.w"]
>>> model.set_masks({"fc2.w": b.xp.zeros(w.shape, dtype=b.xp.bool)})  # cut fc1 -> fc2 entirely
>>> measures.architecture(model)["after"]  # nothing reaches the output any more
[0, 0, 0]
"""

from __future__ import annotations

from ._array import device_of, flat_size, namespace

__all__ = [
    "zero_fraction", "weight_sparsity", "nonzero_weights", "architecture", "liveness", "activations_at_zero",
    "flops", "summary",
]


def zero_fraction(arrays, /, *, xp=None):
    """Fraction of all the entries of ``arrays`` that are exactly zero, as a Python float (0.0 for none).

    Examples
    --------
    >>> import numpy as np
    >>> zero_fraction([np.array([0.0, 1.0]), np.zeros(2)])
    0.75
    """
    arrays = list(arrays)
    if not arrays:
        return 0.0
    xp = namespace(xp, **{f"arrays[{i}]": a for i, a in enumerate(arrays)})
    total = sum(flat_size(a) for a in arrays)
    nonzero = sum(int(xp.count_nonzero(a)) for a in arrays)
    return (total - nonzero) / total if total else 0.0


def _prunable_weights(model):
    params = model.effective_params()
    return {name: params[name] for name in model.prunable(include_output=True)}


def weight_sparsity(model):
    """``(overall, by_layer)``: zeros of the effective dense and conv weights (output layer included).

    Biases are excluded. Python floats; ``by_layer`` maps ``"<layer>.w"`` to its fraction.
    """
    weights = _prunable_weights(model)
    by_layer = {name: zero_fraction([w]) for name, w in weights.items()}
    return zero_fraction(weights.values()), by_layer


def nonzero_weights(model):
    """Nonzero effective weights per prunable layer (output layer included), Python ints."""
    out = {}
    for name, w in _prunable_weights(model).items():
        xp = namespace(None, w=w)
        out[name] = int(xp.count_nonzero(w))
    return out


def liveness(model):
    """Per prunable layer: ``(name, kind, live_in, live_out)`` of the units it is counted by.

    ``kind`` is ``"dense"`` (the units are its input features) or ``"conv"`` (its output
    channels); ``live_in`` and ``live_out`` are boolean arrays on the model's backend
    (see the module docstring). Alive units are ``live_in & live_out``.
    """
    if hasattr(model, "liveness"):  # a network that is not a chain (a transformer) judges its own units
        return model.liveness()
    layers = list(model.layers.items())
    params = {ln: layer.effective() for ln, layer in layers}
    shape = tuple(int(d) for d in model.config.get("input_shape", ()))
    if not shape:
        msg = "liveness needs the model's input shape: build it with build_model (model.config['input_shape'])"
        raise ValueError(msg)
    first = next((p["w"] for p in params.values() if "w" in p), None)
    if first is None:
        return []
    xp = namespace(None, w=first)
    dev = device_of(first)
    padded_next = _padded_convs_next(layers)
    constants = activations_at_zero(model) if any(n is not None for n in padded_next) else None
    live = xp.ones((shape[0],), dtype=xp.bool, device=dev)
    inputs, shapes = [], []
    for i, (ln, layer) in enumerate(layers):  # forward: live-in of every layer's input
        inputs.append(live)
        shapes.append(shape)
        live = _forward(layer, params[ln], live, shape, xp)
        if padded_next[i] is not None:  # a nonzero constant that a zero-padded convolution reads varies with position
            live = live | xp.any(constants[padded_next[i]] != 0, axis=(0, 2, 3))
        shape = tuple(layer.output_shape(shape))
    outs = [None] * len(layers)
    back = xp.ones(live.shape, dtype=xp.bool, device=dev)
    for i in range(len(layers) - 1, -1, -1):  # backward: live-out of every layer's output, then input
        outs[i] = back
        ln, layer = layers[i]
        back = _backward(layer, params[ln], back, shapes[i], xp)
    result = []
    for i, (ln, layer) in enumerate(layers):
        if layer.kind == "dense":
            live_out = _backward(layer, params[ln], outs[i], shapes[i], xp)
            result.append((ln, "dense", inputs[i], live_out))
        elif layer.kind == "conv":
            live_in = inputs[i + 1] if i + 1 < len(layers) else _forward(layer, params[ln], inputs[i], shapes[i], xp)
            result.append((ln, "conv", live_in, outs[i]))
    return result


def _padded_convs_next(layers):
    """For each convolution whose output channels the next weighted layer, a zero-padded convolution, reads
    (through channel-wise layers): that convolution's index; else None."""
    out = [None] * len(layers)
    for i, (_, layer) in enumerate(layers):
        if layer.kind != "conv":
            continue
        n = next((j for j in range(i + 1, len(layers)) if layers[j][1].kind is not None), None)
        nxt = layers[n][1] if n is not None else None
        if nxt is not None and nxt.kind == "conv" and _padding(nxt) != (0, 0):
            out[i] = n
    return out


def _padding(layer):
    p = layer.padding
    return (int(p), int(p)) if isinstance(p, int) else tuple(int(v) for v in p)


def activations_at_zero(model):
    r"""The input of every layer when the network runs (test mode) on one all-zero example.

    A unit that is not live-in computes the same value for every input, so its entry
    here *is* that constant (its bias at most, through the activations, pooling and
    normalization that follow): :func:`liveness` reads it where a zero-padded
    convolution follows, :func:`refprune.compact` folds it into the next layer's bias.
    Returns a list of arrays ``(1, *shape)``, one per layer, on the model's backend.
    The layers' caches are left as they were.
    """
    shape = tuple(int(d) for d in model.config["input_shape"])
    first = next(v for v in model.params().values())
    xp = namespace(None, first=first)
    x = xp.zeros((1, *shape), dtype=first.dtype, device=device_of(first))
    out = []
    for layer in model.layers.values():
        out.append(x)
        cache = layer._cache
        try:
            x = layer.forward(x, train=False)
        finally:
            layer._cache = cache
    return out


def _nonzero_map(layer, p, xp):
    """``(in, out)`` booleans: does input unit i reach output unit j through a nonzero weight."""
    w = p["w"]
    if layer.kind == "dense":
        return w != 0
    return xp.permute_dims(xp.any(w != 0, axis=(2, 3)), (1, 0))  # conv (out, in, kh, kw) -> (in, out)


def _constant_outputs(layer, p, xp):
    """Output units a batch norm (gamma = 0) or a soft invert (a = 1/2) makes constant, or None."""
    if "gamma" in p:
        return p["gamma"] == 0
    if "a" in p:
        a = xp.clip(p["a"], 0.0, 1.0)
        return a == 0.5
    return None


def _selected(layer):
    """The feature index of a :class:`~refprune.nn.SelectFeatures` layer, else None."""
    return getattr(layer, "index", None)


def _forward(layer, p, live, shape, xp):
    if layer.kind is not None:
        return xp.any(_nonzero_map(layer, p, xp) & live[:, None], axis=0)
    if _selected(layer) is not None:  # a selected feature has its source's status
        return xp.take(live, xp.asarray(layer.index, dtype=xp.int64, device=device_of(live)), axis=0)
    if len(shape) == 3 and len(layer.output_shape(shape)) == 1:  # flatten: a channel's status to its features
        c, h, w = shape
        return xp.reshape(xp.broadcast_to(live[:, None], (c, h * w)), (-1,))
    constant = _constant_outputs(layer, p, xp)
    return live if constant is None else live & ~constant


def _backward(layer, p, live, shape, xp):
    if layer.kind is not None:
        return xp.any(_nonzero_map(layer, p, xp) & live[None, :], axis=1)
    if _selected(layer) is not None:  # a feature is read when it is selected and its selection is read
        position = {int(i): k for k, i in enumerate(layer.index)}
        inverse = [position.get(i, len(position)) for i in range(int(shape[0]))]
        padded = xp.concat([live, xp.zeros((1,), dtype=xp.bool, device=device_of(live))])
        return xp.take(padded, xp.asarray(inverse, dtype=xp.int64, device=device_of(live)), axis=0)
    if len(shape) == 3 and len(layer.output_shape(shape)) == 1:  # flatten: a feature read reads its channel
        return xp.any(xp.reshape(live, (shape[0], shape[1] * shape[2])), axis=1)
    constant = _constant_outputs(layer, p, xp)
    return live if constant is None else live & ~constant


def flops(model):
    r"""Floating-point operations of one example's forward pass through the dense and conv layers.

    The L0 paper's count (its ``count_expected_flops_and_l0``, here with every unit
    the layer stores): a dense layer with ``n`` inputs and ``m`` outputs costs
    :math:`(2n - 1)\,m` (+ :math:`m` with a bias); a convolution with ``n = in*kh*kw``
    weights per filter, ``m`` filters and ``P`` output positions costs
    :math:`P\,(2n - 1)\,m` (+ :math:`P m` with a bias; a layer left with no inputs,
    :math:`n = 0`, costs its bias at most). Zeros inside the arrays are
    counted (this is the arithmetic a dense implementation does); activations, pooling
    and normalization are not. The measure compaction reduces.

    Returns
    -------
    dict
        ``{"total": int, "by_layer": {name: int}}``.

    Examples
    --------
    >>> from refprune import backends, measures
    >>> from refprune.nn import build_model
    >>> b = backends.get("numpy")
    >>> model = build_model("mlp-300-100", input_shape=(64,), num_classes=10, backend=b, rng=b.rng(0))
    >>> measures.flops(model)["by_layer"]  # (2*64 - 1)*300 + 300, ...
    {'fc1': 38400, 'fc2': 60000, 'out': 2000}
    """
    shape = tuple(int(d) for d in model.config["input_shape"])
    by_layer = {}
    for ln, layer in model.layers.items():
        out_shape = tuple(layer.output_shape(shape))
        if layer.kind is not None:
            w = [int(d) for d in layer.params["w"].shape]
            n, m = (w[0], w[1]) if layer.kind == "dense" else (w[1] * w[2] * w[3], w[0])
            positions = 1 if layer.kind == "dense" else out_shape[1] * out_shape[2]
            by_layer[ln] = positions * m * (max(2 * n - 1, 0) + (1 if "b" in layer.params else 0))
        shape = out_shape
    return {"total": sum(by_layer.values()), "by_layer": by_layer}


def architecture(model):
    """Widths of the prunable layers before and after pruning (see the module docstring).

    Returns
    -------
    dict
        ``{"layers": [names], "before": [ints], "after": [ints], "unit": str}``.
    """
    layers, before, after = [], [], []
    for name, kind, live_in, live_out in liveness(model):
        xp = namespace(None, live_in=live_in)
        layers.append(name)
        before.append(int(live_in.shape[0]))
        after.append(int(xp.count_nonzero(live_in & live_out)))
    return {
        "layers": layers,
        "before": before,
        "after": after,
        "unit": "per prunable layer: input features of a dense layer, output channels of a convolution; "
        "after = units alive (reachable from the input and reaching the output through nonzero weights)",
    }


def summary(model):
    """The measures every method reports of its final model, as ``result.json`` keys.

    ``weight_sparsity``, ``weight_sparsity_by_layer``, ``nonzero_weights``,
    ``architecture`` (:func:`architecture`) and ``architecture_string``
    (``"20-50-800-500 -> 16-15-48-111"``).
    """
    overall, by_layer = weight_sparsity(model)
    arch = architecture(model)
    return {
        "weight_sparsity": overall,
        "weight_sparsity_by_layer": by_layer,
        "weight_sparsity_over": "every dense and conv weight, output layer included, biases excluded",
        "nonzero_weights": nonzero_weights(model),
        "architecture": arch,
        "architecture_string": f"{_join(arch['before'])} -> {_join(arch['after'])}",
    }


def _join(widths):
    return "-".join(str(int(w)) for w in widths)
