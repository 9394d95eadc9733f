r"""Compaction: the pruned network rebuilt physically smaller, with the same outputs.

A pruned network keeps its zeros in dense arrays: a closed L0 gate, an all-zero filter
or a unit whose weights are all pruned still costs its full share of every matrix
product. :func:`compact` removes every unit that cannot affect the output and returns
a smaller network of plain layers (:class:`~refprune.nn.Dense`,
:class:`~refprune.nn.Conv2d`, ..., no masks, no gates) that computes the same
function:

* the units removed are exactly those :func:`refprune.measures.liveness` finds not
  **alive** (alive = reachable from the input *and* reaching the output through
  nonzero effective weights, the L0 test-time gates folded in), per prunable layer
  the units the architecture counts: the input features of a dense layer and the
  output channels of a convolution. Removing a channel removes the next layer's
  input slice (the next convolution's input channels, or the features a flatten
  spreads it over); removing a dense layer's input feature removes the previous
  layer's output unit (its column and bias, and its slice of a batch norm);
* a unit that reaches the output but not from the input is a **constant** :math:`c`
  (its bias at most, through the activation, pooling or normalization after it); it
  is folded into the bias of the layer that reads it,

  .. math:: b'_j = b_j + \sum_{i \text{ removed}} c_i W_{ij}
            \qquad\text{(a convolution: } b'_o = b_o + \textstyle\sum_c c_c \sum_{k,l} W_{o,c,k,l})

  the constants read off one test-mode pass on an all-zero input
  (:func:`refprune.measures.activations_at_zero`). A constant that a zero-padded
  convolution reads is not uniform at the borders; liveness counts such a channel
  alive when its constant is nonzero, so it is kept;
* where only some of a flattened feature map's features (or of the input's) are
  alive, a :class:`~refprune.nn.SelectFeatures` layer picks them before the dense
  layer that reads them.

So ``measures.architecture(compact(model))["before"]`` is the original's ``"after"``,
and the compacted network's logits equal the masked network's up to the rounding of
the reordered sums (float64: about 1e-15 relative). Zeros *inside* the kept units
(unstructured sparsity) stay in the arrays: compaction removes units, not single
weights. The compacted model is a ``sequential`` network
(:func:`refprune.nn.describe` in its ``config``), so ``build_model`` and
``--init-from`` rebuild it.

Examples
--------
>>> import numpy as np
>>> from refprune import backends, compact, measures
>>> from refprune.nn import build_model
>>> b = backends.get("numpy")
>>> model = build_model("mlp-300-100", input_shape=(64,), num_classes=10, backend=b, rng=b.rng(0),
...                     dtype="float64")
>>> keep = np.ones((300, 100), dtype=bool)
>>> keep[:200] = False                       # fc2 reads only fc1 units 200..299
>>> model.set_masks({"fc2.w": keep})
>>> small = compact(model)
>>> measures.architecture(model)["after"], measures.architecture(small)["before"]
([64, 100, 100], [64, 100, 100])
>>> x = np.random.default_rng(0).standard_normal((5, 64))
>>> float(np.max(np.abs(small(x) - model(x)))) < 1e-12
True
"""

from __future__ import annotations

from . import measures
from ._array import device_of, flat_size, namespace
from .nn import layers as L
from .nn.models import Sequential, Transformer, describe

__all__ = ["compact", "compaction_summary", "parameter_count"]


def compact(model, masks=None):
    """A smaller network of plain layers with the outputs of ``model`` (see the module docstring).

    Parameters
    ----------
    model : refprune.nn.Sequential
        A network built by ``build_model`` (its ``config`` gives the input shape), with
        its masks and L0 gates; a method that deploys transformed weights (RVSM's
        ``u``, binarized weights) is compacted inside ``model.using(...)``.
    masks : dict, optional
        Masks to compact with instead of the model's own (``{name: bool array}``); the
        model keeps its own masks.

    Returns
    -------
    refprune.nn.Sequential
        New arrays on the model's backend and dtype, no masks and no gates; its
        ``config`` is a ``sequential`` network (``options["layers"]``) with
        ``compacted_from`` holding the original's config.
    """
    if not isinstance(model, Sequential):
        msg = f"compact takes a refprune.nn.Sequential, got {type(model).__name__}"
        raise TypeError(msg)
    if isinstance(model, Transformer):
        msg = ("compact keeps the architecture of a transformer (gpt-tiny): it removes dead units of a chain of "
               "layers, and a residual stream has none it could drop exactly; its masks stay masks. Export it with "
               "refprune export RUN --format torch (or safetensors)")
        raise ValueError(msg)
    if masks is None:
        return _compact(model)
    saved = model.masks()
    model.set_masks(masks)
    try:
        return _compact(model)
    finally:
        model.set_masks(saved)


def _indices(alive, xp):
    """Python ints where the boolean array ``alive`` is True."""
    return [int(i) for i in xp.nonzero(alive)[0]] if alive.shape[0] else []


def _take(a, index, axis, xp):
    return xp.take(a, xp.asarray(index, dtype=xp.int64, device=device_of(a)), axis=axis)


def _compact(model):
    names = list(model.layers)
    layers = [model.layers[n] for n in names]
    if model.config.get("input_shape") is None:
        msg = "compact needs the model's input shape: build it with build_model (model.config['input_shape'])"
        raise ValueError(msg)
    alive = {}
    for ln, kind, live_in, live_out in measures.liveness(model):
        xp = namespace(None, live_in=live_in)
        alive[ln] = _indices(live_in & live_out, xp)
    constants = measures.activations_at_zero(model)
    weighted = [i for i, layer in enumerate(layers) if layer.kind is not None]
    shape = tuple(int(d) for d in model.config["input_shape"])
    layout = list(range(shape[0]))  # original ids (at the current point) of the compact tensor's units
    out, selects = [], 0
    for i, (ln, layer) in enumerate(zip(names, layers)):
        p = layer.effective()
        xp = namespace(None, **{k: v for k, v in p.items()}) if p else None
        if layer.kind == "dense":
            wanted = alive[ln]
            position = {u: k for k, u in enumerate(layout)}
            missing = [u for u in wanted if u not in position]
            if missing:
                msg = f"compact: layer {ln} reads features {missing[:5]} that an earlier layer removed (a liveness bug)"
                raise RuntimeError(msg)
            if len(wanted) != len(layout):
                selects = _append_select(out, [position[u] for u in wanted], selects)
            keep = _kept_outputs(i, names, layers, weighted, alive)
            out.append((ln, _dense(p, wanted, keep, constants[i], xp)))
            layout = keep
        elif layer.kind == "conv":
            keep = alive[ln]
            out.append((ln, _conv(layer, p, layout, keep, constants[i], xp)))
            layout = keep
        elif isinstance(layer, L.SelectFeatures):
            chosen = {f: k for k, f in enumerate(layer.index)}
            kept = [k for k, u in enumerate(layout) if u in chosen]
            if len(kept) != len(layout):
                selects = _append_select(out, kept, selects)
            layout = [chosen[layout[k]] for k in kept]
        elif isinstance(layer, L.Flatten):
            c, h, w = shape
            layout = [u * h * w + q for u in layout for q in range(h * w)]
            out.append((ln, L.Flatten()))
        else:
            out.append((ln, _copy_plain(layer, p, layout, xp)))
        shape = tuple(layer.output_shape(shape))
    config = {**{k: v for k, v in model.config.items() if k != "compacted_from"},
              "preset": "sequential", "l0": False, "compacted_from": dict(model.config)}
    config.pop("options", None)
    result = Sequential(out, config=config)
    result.config["options"] = {"layers": describe(result)}
    return result


def _append_select(out, index, count):
    """Append a SelectFeatures of ``index`` (positions in the current compact tensor), merged into a
    SelectFeatures just before it; returns the running count used for its name."""
    if out and isinstance(out[-1][1], L.SelectFeatures):
        name, previous = out.pop()
        out.append((name, L.SelectFeatures([previous.index[k] for k in index])))
        return count
    count += 1
    out.append((f"select{count}", L.SelectFeatures(index)))
    return count


def _kept_outputs(i, names, layers, weighted, alive):
    """Output units of dense layer ``i`` that the compact network keeps: the next weighted layer's
    alive inputs mapped back through the layers between (all of them for the output layer)."""
    following = [j for j in weighted if j > i]
    if not following:
        return list(range(int(layers[i].params["w"].shape[1])))
    j = following[0]
    keep = alive[names[j]]
    for k in range(j - 1, i, -1):
        if isinstance(layers[k], L.SelectFeatures):
            keep = [layers[k].index[u] for u in keep]
    return keep


def _fold_needed(fold, xp):
    return fold is not None and bool(xp.any(fold != 0))


def _dense(p, wanted, keep, constant, xp):
    """Dense layer reading ``wanted`` inputs, writing ``keep`` outputs; removed constants folded into the bias."""
    w = _take(_take(p["w"], keep, 1, xp), wanted, 0, xp)
    b = _take(p["b"], keep, 0, xp) if "b" in p else None
    n_in = int(p["w"].shape[0])
    removed = sorted(set(range(n_in)) - set(wanted))
    fold = None
    if removed:
        c = _take(xp.reshape(constant, (-1,)), removed, 0, xp)
        w_removed = _take(_take(p["w"], keep, 1, xp), removed, 0, xp)
        fold = xp.sum(c[:, None] * w_removed, axis=0)
    if _fold_needed(fold, xp):
        b = fold if b is None else b + fold
    return L.Dense(w, b)


def _conv(layer, p, inputs, keep, constant, xp):
    """Convolution reading channels ``inputs``, writing channels ``keep``; removed constants folded."""
    w_out = _take(p["w"], keep, 0, xp)
    w = _take(w_out, inputs, 1, xp)
    b = _take(p["b"], keep, 0, xp) if "b" in p else None
    removed = sorted(set(range(int(p["w"].shape[1]))) - set(inputs))
    fold = None
    if removed:  # a removed channel's constant is uniform over the map (liveness keeps the others)
        c = _take(constant[0, :, 0, 0], removed, 0, xp)
        taps = xp.sum(_take(w_out, removed, 1, xp), axis=(2, 3))  # (out, removed)
        fold = xp.sum(taps * c[None, :], axis=1)
    if _fold_needed(fold, xp):
        b = fold if b is None else b + fold
    return L.Conv2d(w, b, stride=layer.stride, padding=layer.padding)


def _copy_plain(layer, p, layout, xp):
    """A parameter-free or per-unit layer for the kept units ``layout``."""
    if isinstance(layer, L.BatchNorm1d):
        sliced = {k: _take(v, layout, 0, xp) for k, v in {**p, **layer.state}.items()}
        return L.BatchNorm1d(sliced["gamma"], sliced["beta"], sliced["running_mean"], sliced["running_var"],
                             momentum=layer.momentum, eps=layer.eps)
    if isinstance(layer, L.SoftInvert):
        return L.SoftInvert(p["a"])
    if isinstance(layer, L.MaxPool2d):
        return L.MaxPool2d(layer.kernel, layer.stride)
    for cls in (L.ReLU, L.Tanh, L.HardInvert):
        if isinstance(layer, cls):
            return cls()
    msg = f"compact does not know the layer {type(layer).__name__}; it knows those of refprune.nn.describe"
    raise TypeError(msg)


def parameter_count(model):
    """``(stored, nonzero)``: scalars of the network as the test-time forward computes with it.

    Weights, biases and normalization parameters after masks and L0 gates are applied
    (:meth:`~refprune.nn.Sequential.effective_params`: gate locations are not counted);
    buffers (running statistics) are not counted either. Python ints.
    """
    params = model.effective_params()
    stored = sum(flat_size(v) for v in params.values())
    nonzero = 0
    for v in params.values():
        xp = namespace(None, v=v)
        nonzero += int(xp.count_nonzero(v))
    return stored, nonzero


def compaction_summary(model, compacted):
    """What compaction changed: architecture, parameters and FLOPs before and after, as JSON values.

    ``architecture``: the original's per-layer widths (``before``), its alive units
    (``after``) and the compacted network's widths (``compacted``, equal to ``after``);
    ``parameters`` and ``nonzero_parameters`` (:func:`parameter_count`); ``flops``
    (:func:`refprune.measures.flops`) and the reductions (before / after).
    """
    arch, arch_c = measures.architecture(model), measures.architecture(compacted)
    (p0, nz0), (p1, nz1) = parameter_count(model), parameter_count(compacted)
    f0, f1 = measures.flops(model), measures.flops(compacted)
    return {
        "architecture": {"layers": arch["layers"], "before": arch["before"], "after": arch["after"],
                         "compacted": arch_c["before"], "unit": arch["unit"]},
        "architecture_string": measures.architecture_string({"before": arch["before"], "after": arch_c["before"]}),
        "parameters": {"before": p0, "after": p1, "reduction": p0 / p1 if p1 else float("inf")},
        "nonzero_parameters": {"before": nz0, "after": nz1},
        "flops": {"before": f0["total"], "after": f1["total"],
                  "reduction": f0["total"] / f1["total"] if f1["total"] else float("inf"),
                  "by_layer_before": f0["by_layer"], "by_layer_after": f1["by_layer"],
                  "counted": "the L0 paper's count of the dense and conv layers: (2n - 1) m per output "
                             "position, + m with a bias (refprune.measures.flops)"},
    }
