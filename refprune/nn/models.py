"""The Sequential container and the network presets of the five source notebooks.

``build_model(preset, input_shape=..., num_classes=..., backend=..., rng=...)`` returns
a :class:`Sequential` whose parameters are named ``"<layer>.<param>"`` with readable
layer names (``conv1``, ``fc2``, ``out``, ``bn1``, ...), e.g. ``"fc1.w"``,
``"conv2.log_alpha"``, ``"bn1.running_mean"`` (state).

Presets (``PRESETS``):

==========================  ===============================================================
``mlp-300-100``             dense 300 - 100 - classes, ReLU, bias (LeNet-300-100; L0MLP)
``mlp-1000-1000-500-200``   dense 1000 - 1000 - 500 - 200 - classes, ReLU, no bias
                            (the magnitude-pruning notebook)
``lenet5``                  LeNet-5-Caffe: conv 20 5x5, ReLU, pool 2, conv 50 5x5, ReLU,
                            pool 2, dense 500, ReLU, dense classes (20-50-800-500 on MNIST)
``conv4``                   conv 64-64 3x3 pad 1, pool, 128-128, pool, dense 256-256-classes
                            (the lottery-ticket Conv-4)
``binary-mlp``              4 hidden dense layers, each dense - tanh - norm, then dense -
                            tanh - norm for the output (the binarized-network notebook)
==========================  ===============================================================

``l0=True`` builds the L0 version: every dense layer becomes :class:`L0Dense` (gates
on its input units) and every convolution :class:`L0Conv2d` (gates on its output
channels), as the paper's ``L0MLP`` and ``L0LeNet5``, whose output layer is gated too.
For LeNet-5 the gated sizes are ``20-50-800-500`` (conv1, conv2 channels; fc1, out
input units).

Small images. ``lenet5`` uses valid 5x5 convolutions as the paper's code when they fit
(28x28: 28-24-12-8-4) and otherwise ``padding=2`` ("same"), so 8x8 digits give
8-8-4-4-2; pass ``padding=`` to choose. ``conv4`` needs at least 4x4 images (two
2x2 pools). Images too small for a preset are a ``ValueError``.

Initialization (all from the caller's generator, biases 0): Glorot uniform for the
dense presets (Keras' default, as in the magnitude and lottery notebooks), He normal
``N(0, 2/fan_in)`` for L0 layers (the paper's ``kaiming_normal``), and for
``binary-mlp`` the notebook's Bernoulli(``on_prob``=0.001) weights (``init="bernoulli"``)
or torch's default ``U(+-1/sqrt(fan_in))`` (``init="torch-uniform"``). L0 gates start at
``log_alpha ~ N(log(1-d) - log(d), 1e-2)`` with droprate ``d`` = 0.5 (0.2 for the input
layer of the MLPs, as ``L0MLP``).

Examples
--------
>>> from refprune import backends
>>> from refprune.nn import build_model
>>> b = backends.get("numpy")
>>> model = build_model("lenet5", input_shape=(1, 28, 28), num_classes=10, backend=b,
...                     rng=b.rng(0, stream="reference"), l0=True)
>>> model.gate_sizes(), model.architecture()
([20, 50, 800, 500], '20-50-800-500')
>>> model.prunable()
('conv1.w', 'conv2.w', 'fc1.w')
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

from .. import gates
from .._array import device_of, namespace
from ..masks import apply_mask
from .layers import (
    GELU,
    BatchNorm1d,
    CausalSelfAttention,
    Conv2d,
    Dense,
    Embedding,
    Flatten,
    LayerNorm,
    PositionEmbedding,
    HardInvert,
    L0Conv2d,
    L0Dense,
    MaxPool2d,
    ReLU,
    SelectFeatures,
    SoftInvert,
    Tanh,
    dtype_name,
)

__all__ = ["Sequential", "Transformer", "build_model", "build_like", "describe", "preset", "Preset", "PRESETS", "INITS", "NORMS",
           "format_architecture"]

INITS = ("glorot-uniform", "glorot-normal", "he-normal", "torch-uniform", "bernoulli", "standard-normal")
NORMS = ("batch-norm", "soft-invert", "hard-invert", "none")


def format_architecture(counts):
    """``[20, 25, 45, 462]`` -> ``"20-25-45-462"``."""
    return "-".join(str(int(c)) for c in counts)


def _split(name):
    layer, sep, param = name.partition(".")
    if not sep:
        msg = f"parameter names look like '<layer>.<param>' (e.g. 'fc1.w'), got {name!r}"
        raise ValueError(msg)
    return layer, param


class Sequential:
    """Layers applied in order, with named parameters, gradients, state and masks.

    Parameters
    ----------
    layers : list of (str, Layer)
        Layer names (no ``"."``) and layers.
    config : dict, optional
        How the model was built (``build_model`` fills it); stored in checkpoints.

    Attributes
    ----------
    layers : dict
        Name -> layer, in order.
    output : str or None
        Name of the output layer: the last layer with a prunable weight.
    """

    def __init__(self, layers, *, config=None):
        self.layers = {}
        for name, layer in layers:
            if "." in name or name in self.layers:
                msg = f"layer names must be unique and contain no '.', got {name!r}"
                raise ValueError(msg)
            self.layers[name] = layer
        weighted = [n for n, layer in self.layers.items() if layer.kind is not None]
        self.output = weighted[-1] if weighted else None
        self.config = dict(config or {})

    # ------------------------------------------------------------------ passes

    def forward(self, x, *, train=False, rng=None):
        """Logits for input ``x``; ``train=True`` samples gates from ``rng`` and updates BN stats."""
        for layer in self.layers.values():
            x = layer.forward(x, train=train, rng=rng)
        return x

    __call__ = forward

    def backward(self, dy, *, input_grad=True):
        """Back-propagate ``dy`` (gradient of the loss w.r.t. the logits); returns ``dx``.

        ``input_grad=False`` (training, where the inputs need no gradient) stops at the
        first layer with parameters, which skips its input gradient, and returns ``None``.
        """
        layers = list(self.layers.values())
        first = next((i for i, layer in enumerate(layers) if layer.params), None) if not input_grad else None
        if not input_grad and first is None:
            return None
        for i in range(len(layers) - 1, -1, -1):
            if i == first:
                layers[i].backward(dy, input_grad=False)
                return None
            dy = layers[i].backward(dy)
        return dy

    # ------------------------------------------------------------------ named arrays

    def _collect(self, attr):
        return {f"{ln}.{k}": v for ln, layer in self.layers.items() for k, v in getattr(layer, attr).items()}

    def params(self):
        """Trainable arrays by name (a new dict of the current arrays)."""
        return self._collect("params")

    def grads(self):
        """Gradients of the last backward by name (masked where pruned)."""
        return self._collect("grads")

    def state(self):
        """Non-trainable buffers by name (batch-norm running statistics)."""
        return self._collect("state")

    def masks(self):
        """The attached masks by parameter name."""
        return self._collect("masks")

    def _assign(self, attr, arrays):
        for name, value in arrays.items():
            ln, key = _split(name)
            target = getattr(self.layers[ln], attr) if ln in self.layers else {}
            if key not in target:
                known = list(self._collect(attr))
                msg = f"unknown name {name!r}; this model's {attr} are {known}"
                raise ValueError(msg)
            if tuple(value.shape) != tuple(target[key].shape):
                msg = f"{name} must have shape {tuple(target[key].shape)}, got {tuple(value.shape)}"
                raise ValueError(msg)
        for name, value in arrays.items():
            ln, key = _split(name)
            getattr(self.layers[ln], attr)[key] = value

    def set_params(self, params):
        """Replace the named parameters (any subset); unknown names or shapes are a ``ValueError``."""
        self._assign("params", params)

    def set_state(self, state):
        """Replace the named buffers (any subset)."""
        self._assign("state", state)

    def set_masks(self, masks):
        """Attach masks (True = keep) to parameters; replaces every mask set before.

        A masked parameter enters the forward pass as ``apply_mask(w, mask)`` and its
        gradients (loss and penalty) are zero where pruned. ``set_masks({})`` removes
        all masks. The stored parameter itself is not changed.
        """
        params = self.params()
        for name, mask in masks.items():
            if name not in params:
                msg = f"cannot mask {name!r}: not a parameter; parameters are {list(params)}"
                raise ValueError(msg)
            xp = namespace(None, mask=mask)
            if mask.dtype != xp.bool:
                msg = f"mask for {name} must be boolean (True = keep), got dtype {mask.dtype}"
                raise TypeError(msg)
            if tuple(mask.shape) != tuple(params[name].shape):
                msg = f"mask for {name} must have shape {tuple(params[name].shape)}, got {tuple(mask.shape)}"
                raise ValueError(msg)
        for layer in self.layers.values():
            layer.masks = {}
        for name, mask in masks.items():
            ln, key = _split(name)
            self.layers[ln].masks[key] = mask

    def masked_params(self):
        """Parameters as the forward pass sees them: ``apply_mask`` where a mask is set."""
        masks = self.masks()
        return {k: apply_mask(v, masks[k]) if k in masks else v for k, v in self.params().items()}

    def effective_params(self):
        """Parameters as the test-time network computes with them: masks applied, L0 test-time gates folded in.

        A closed gate of an :class:`L0Dense` zeroes its weight row, one of an
        :class:`L0Conv2d` its filter and bias; see ``Layer.effective``.
        """
        return {f"{ln}.{k}": v for ln, layer in self.layers.items() for k, v in layer.effective().items()}

    @contextlib.contextmanager
    def using(self, params):
        """Inside the ``with`` block the model holds ``params`` (any subset of its parameters).

        Its own arrays come back when the block ends, also on an error: the way to
        evaluate a transformed copy of the weights (RVSM's ``u``, binarized weights)::

            with model.using({"fc1.w": u}):
                accuracy = evaluate(model, x, y)
        """
        own = self.params()
        saved = {k: own[k] for k in params if k in own}
        self.set_params(params)
        try:
            yield self
        finally:
            self.set_params(saved)

    def capture_inputs(self, x, names=None):
        """Run the test-mode forward on ``x``; return ``(logits, inputs)`` with the input of each named weight's layer.

        ``names``: prunable weight names such as ``"fc1.w"`` or ``"h0_qkv.w"`` (default
        :meth:`prunable`). ``inputs[name]`` is the array the layer received, e.g.
        ``(batch, in)`` for an MLP's dense layer and ``(batch, time, in)`` for a
        transformer's: ``xp.reshape(a, (-1, in))`` gives the ``x`` (tokens, in) of the v2
        one-shot functions. Masks in force shape these inputs (a layer pruned before
        changes what the later ones receive), as layer-by-layer one-shot pruning needs.
        """
        names = self.prunable() if names is None else tuple(names)
        inputs = {}
        layers = {}
        for name in names:
            self.weight_kind(name)
            layers.setdefault(_split(name)[0], []).append(name)
        originals = {ln: self.layers[ln].forward for ln in layers}

        def recording(ln):
            def forward(x_in, **kw):
                for name in layers[ln]:
                    inputs[name] = x_in
                return originals[ln](x_in, **kw)
            return forward

        for ln in layers:
            self.layers[ln].forward = recording(ln)
        try:
            logits = self.forward(x, train=False)
        finally:
            for ln in layers:
                del self.layers[ln].forward
        return logits, inputs

    # ------------------------------------------------------------------ pruning structure

    def prunable(self, *, include_output=False):
        """Names of the prunable weights (``"<layer>.w"`` of dense and conv layers), in order.

        The output layer's weight is left out unless ``include_output``.
        """
        return tuple(
            f"{ln}.w"
            for ln, layer in self.layers.items()
            if layer.kind is not None and (include_output or ln != self.output)
        )

    def weight_kind(self, name):
        """``"conv"``, ``"dense"`` or ``"output"`` for a prunable weight name."""
        ln, key = _split(name)
        if key != "w" or ln not in self.layers or self.layers[ln].kind is None:
            msg = f"{name!r} is not a prunable weight; prunable: {self.prunable(include_output=True)}"
            raise ValueError(msg)
        return "output" if ln == self.output else self.layers[ln].kind

    # ------------------------------------------------------------------ L0

    def gated(self):
        """``(name, layer)`` of the hard-concrete gated layers, in order."""
        return [(ln, layer) for ln, layer in self.layers.items() if layer.gated]

    def constraints(self):
        """The layers' own constraints by full parameter name (log_alpha clamp, soft-invert range)."""
        out = {}
        for ln, layer in self.layers.items():
            for key, fn in layer.constraints().items():
                out[f"{ln}.{key}"] = fn
        return out

    def penalty_and_grads(self, *, value=True, grads=True):
        """``(R, grads)``: :meth:`penalty` and its gradients by parameter name, in one pass.

        ``R`` is ``None`` when ``value`` is False, ``grads`` when ``grads`` is False.
        Parameters the penalty does not depend on are left out of ``grads`` (see the
        layers' ``penalty_and_grads``); :meth:`penalty_grads` lists them with zeros.
        """
        total, out = (0.0 if value else None), ({} if grads else None)
        for ln, layer in self.gated():
            r, g = layer.penalty_and_grads(value=value, grads=grads)
            if value:
                total = total + r
            if grads:
                out.update((f"{ln}.{k}", v) for k, v in g.items())
        return total, out

    def penalty(self):
        """Sum of the gated layers' penalties (0-d array; ``0.0`` without gated layers)."""
        return self.penalty_and_grads(grads=False)[0]

    def penalty_grads(self):
        """Gradients of :meth:`penalty` by parameter name (every parameter of the gated layers)."""
        return {f"{ln}.{k}": g for ln, layer in self.gated() for k, g in layer.penalty_grads().items()}

    def expected_flops_and_l0(self):
        """Sums over the gated layers of the paper's expected FLOPs and L0 (Python floats)."""
        flops = l0 = 0.0
        for _, layer in self.gated():
            f, n = layer.expected_flops_and_l0()
            flops, l0 = flops + f, l0 + n
        return flops, l0

    def open_gates(self):
        """Test-time open gates per gated layer (the pruned architecture), Python ints."""
        return [layer.open_gates() for _, layer in self.gated()]

    def gate_sizes(self):
        """Gates per gated layer (the architecture before pruning)."""
        return [layer.n_gates for _, layer in self.gated()]

    def architecture(self):
        """The pruned architecture as a string such as ``"20-25-45-462"``."""
        return format_architecture(self.open_gates())

    # ------------------------------------------------------------------ misc

    @property
    def dtype(self):
        """Floating dtype name of the parameters (``"float32"`` / ``"float64"``)."""
        for v in self.params().values():
            return dtype_name(v)
        return self.config.get("dtype", "float32")

    def __repr__(self):
        lines = [f"  {ln}: {layer!r}" for ln, layer in self.layers.items()]
        return f"{type(self).__name__}(\n" + "\n".join(lines) + "\n)"


class Transformer(Sequential):
    r"""A decoder-only transformer (GPT-2's pre-norm layout) over named leaf layers.

    The layers live in ``layers`` under flat names, like every :class:`Sequential`, so
    parameters, masks, checkpoints and pruning work unchanged: ``tok`` (:class:`Embedding`),
    ``pos`` (:class:`PositionEmbedding`), per block ``i`` the attention branch
    ``h{i}_ln1, h{i}_qkv, h{i}_attn, h{i}_proj`` and the MLP branch
    ``h{i}_ln2, h{i}_fc, h{i}_gelu, h{i}_fc2``, then ``ln_f`` and ``head``. Only the
    wiring differs: each branch is added to the residual stream,

    .. math::

        h_0 = E_{\mathrm{ids}} + P,\qquad
        h \leftarrow h + \mathrm{proj}(\mathrm{attn}(\mathrm{qkv}(\mathrm{LN}_1(h)))),\qquad
        h \leftarrow h + \mathrm{fc_2}(\mathrm{GELU}(\mathrm{fc}(\mathrm{LN}_2(h)))),\qquad
        z = \mathrm{head}(\mathrm{LN}_f(h))

    and the logits come out as ``(batch * time, vocabulary)`` rows, one per position
    (row ``b * T + t`` predicts token ``t + 1`` of sequence ``b``), which is what
    :func:`~refprune.nn.functional.softmax_cross_entropy` takes with the targets
    ``(batch, time)`` flattened (:func:`refprune.nn.train.label_rows`).

    **Pruning.** The prunable weights (:meth:`prunable`) are the four :class:`Dense`
    layers of every block, ``h{i}_qkv.w`` ``(d, 3d)``, ``h{i}_proj.w`` ``(d, d)``,
    ``h{i}_fc.w`` ``(d, 4d)`` and ``h{i}_fc2.w`` ``(4d, d)``, stored ``(in, out)`` (the
    transpose of torch's Linear; the v2 one-shot functions take ``w.T``); ``head`` is the
    output layer, left out as in every preset. Mask one with
    ``model.set_masks({"h0_fc.w": mask})``; the inputs each receives come from
    ``model.capture_inputs(ids, names)`` (``(batch, time, in)``, reshape to
    ``(-1, in)``).

    Examples
    --------
    >>> import numpy as np
    >>> from refprune import backends
    >>> from refprune.nn import build_model
    >>> b = backends.get("numpy")
    >>> lm = build_model("gpt-tiny", input_shape=(16,), num_classes=256, backend=b, rng=b.rng(0),
    ...                  width=32, blocks=1, heads=2)
    >>> lm.prunable()
    ('h0_qkv.w', 'h0_proj.w', 'h0_fc.w', 'h0_fc2.w')
    >>> logits, inputs = lm.capture_inputs(np.zeros((2, 16), dtype=np.int64))
    >>> logits.shape, inputs["h0_fc2.w"].shape
    ((32, 256), (2, 16, 128))
    """

    #: The two residual branches of a block, by layer suffix.
    BRANCHES = (("ln1", "qkv", "attn", "proj"), ("ln2", "fc", "gelu", "fc2"))

    def __init__(self, layers, *, config=None):
        super().__init__(layers, config=config)
        blocks = 0
        while f"h{blocks}_ln1" in self.layers:
            blocks += 1
        self.branches = [[f"h{i}_{s}" for s in branch] for i in range(blocks) for branch in self.BRANCHES]
        expected = ["tok", "pos", *(n for b in self.branches for n in b), "ln_f", "head"]
        if list(self.layers) != expected:
            msg = f"a Transformer's layers must be named {expected}, got {list(self.layers)}"
            raise ValueError(msg)

    def _chain(self, names, x, train, rng):
        for name in names:
            x = self.layers[name].forward(x, train=train, rng=rng)
        return x

    def _chain_back(self, names, dy):
        for name in reversed(names):
            dy = self.layers[name].backward(dy)
        return dy

    def forward(self, x, *, train=False, rng=None):
        """Logits ``(batch * time, vocabulary)`` of the token ids ``x`` ``(batch, time)``."""
        h = self._chain(("tok", "pos"), x, train, rng)
        for branch in self.branches:
            h = h + self._chain(branch, h, train, rng)
        z = self._chain(("ln_f", "head"), h, train, rng)
        xp = namespace(None, z=z)
        return xp.reshape(z, (-1, int(z.shape[-1])))

    __call__ = forward

    def backward(self, dy, *, input_grad=True):
        """Back-propagate ``dy`` ``(batch * time, vocabulary)``; token ids get no gradient (returns None)."""
        ids = self.layers["tok"]._cached()
        xp = namespace(None, dy=dy)
        dh = self._chain_back(("ln_f", "head"), xp.reshape(dy, (*tuple(ids.shape), int(dy.shape[-1]))))
        for branch in reversed(self.branches):
            dh = dh + self._chain_back(branch, dh)
        return self._chain_back(("tok", "pos"), dh)

    def liveness(self):
        """Per prunable layer ``(name, "dense", live_in, live_out)``, judged locally (see :mod:`refprune.measures`).

        The residual stream and the layer norms feed every feature, so a layer reading
        them (``qkv``, ``fc``, ``head``) has every input live-in; ``proj``'s input ``j`` is
        live-in when column ``j`` of the value projection is nonzero, ``fc2``'s input
        ``j`` when column ``j`` of ``fc`` is. An input is live-out when its row of the
        layer's effective weight has a nonzero.
        """
        params = self.effective_params()
        xp = namespace(None, w=params["head.w"])
        out = []
        for name in self.prunable(include_output=True):
            ln = name.split(".")[0]
            w = params[name]
            live_out = xp.any(w != 0, axis=1)
            live_in = xp.ones(live_out.shape, dtype=xp.bool, device=device_of(w))
            if ln.endswith("_proj"):
                qkv = params[ln.replace("_proj", "_qkv") + ".w"]
                d = int(w.shape[0])
                live_in = xp.any(qkv[:, 2 * d:] != 0, axis=0)
            elif ln.endswith("_fc2"):
                live_in = xp.any(params[ln.replace("_fc2", "_fc") + ".w"] != 0, axis=0)
            out.append((ln, "dense", live_in, live_out))
        return out


# ---------------------------------------------------------------------- initialization


def _init_weight(rng, init, shape, fan_in, fan_out, dtype, *, on_prob=0.001):
    """A weight of ``shape`` drawn from ``rng`` by the named initializer."""
    if init == "glorot-uniform":
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(shape, dtype, -limit, limit)
    if init == "glorot-normal":
        return rng.normal(shape, dtype) * math.sqrt(2.0 / (fan_in + fan_out))
    if init == "he-normal":
        return rng.normal(shape, dtype) * math.sqrt(2.0 / fan_in)
    if init == "torch-uniform":
        limit = 1.0 / math.sqrt(fan_in)
        return rng.uniform(shape, dtype, -limit, limit)
    if init == "standard-normal":  # N(0, 1) whatever the fan: TensorFlow's tf.random_normal, as the RVSM notebook
        return rng.normal(shape, dtype)
    if init == "bernoulli":
        u = rng.uniform(shape, dtype)
        xp = namespace(None, u=u)
        return xp.astype(u < on_prob, u.dtype)
    msg = f"unknown init {init!r}; choose one of {', '.join(INITS)}"
    raise ValueError(msg)


def _per_layer(value, i, name):
    """``value`` itself, or its ``i``-th entry when it is a list/tuple (one per gated layer)."""
    if isinstance(value, (list, tuple)):
        if i >= len(value):
            msg = f"{name} has {len(value)} entries but the model has more gated layers; give one per gated layer"
            raise ValueError(msg)
        return value[i]
    return value


class _Builder:
    """Appends layers while tracking the per-example shape, drawing parameters from ``rng``."""

    def __init__(self, input_shape, backend, rng, dtype, *, init, l0, l0_options, first_droprate):
        self.shape = tuple(int(d) for d in input_shape)
        self.backend = backend
        self.rng = rng
        self.dtype = dtype
        self.init = init
        self.l0 = l0
        self.l0_options = l0_options
        self.first_droprate = first_droprate
        self.layers = []
        self.n_gated = 0
        self.init_kw = {}
        self.container = Sequential

    def add(self, name, layer):
        self.shape = layer.output_shape(self.shape)
        if any(d < 1 for d in self.shape):
            msg = f"the input is too small for this preset: layer {name} would output shape {self.shape}"
            raise ValueError(msg)
        self.layers.append((name, layer))

    def _zeros(self, n):
        return self.backend.asarray([0.0] * n, dtype=self.dtype)

    def _l0_kwargs(self, n_gates):
        """``log_alpha`` and the penalty settings of the next gated layer."""
        i = self.n_gated
        self.n_gated += 1
        o = self.l0_options
        default_drop = self.first_droprate if i == 0 else 0.5
        d = _per_layer(o.get("droprate_init", default_drop), i, "droprate_init")
        log_alpha = self.rng.normal((n_gates,), self.dtype) * 1e-2 + (math.log(1.0 - d) - math.log(d))
        kwargs = {
            "lam": _per_layer(o.get("lam", 1.0), i, "lam"),
            "weight_decay": _per_layer(o.get("weight_decay", 0.0), i, "weight_decay"),
            "temperature": o.get("temperature", gates.BETA),
            "local_rep": o.get("local_rep", False),
        }
        return log_alpha, kwargs

    def dense(self, name, n_out, *, bias=True):
        if len(self.shape) != 1:
            self.add(f"flatten{len(self.layers)}", Flatten())
        n_in = self.shape[0]
        w = _init_weight(self.rng, self.init, (n_in, n_out), n_in, n_out, self.dtype, **self.init_kw)
        b = self._zeros(n_out) if bias else None
        if self.l0:
            log_alpha, kwargs = self._l0_kwargs(n_in)
            self.add(name, L0Dense(w, b, log_alpha, **kwargs))
        else:
            self.add(name, Dense(w, b))

    def conv(self, name, n_out, kernel, *, padding, bias=True, stride=1):
        c, h, w_ = self.shape
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else (int(kernel[0]), int(kernel[1]))
        shape = (n_out, c, kh, kw)
        fan_in, fan_out = c * kh * kw, n_out * kh * kw
        w = _init_weight(self.rng, self.init, shape, fan_in, fan_out, self.dtype, **self.init_kw)
        b = self._zeros(n_out) if bias else None
        if self.l0:
            log_alpha, kwargs = self._l0_kwargs(n_out)
            self.add(name, L0Conv2d(w, b, log_alpha, stride=stride, padding=padding, input_hw=(h, w_), **kwargs))
        else:
            self.add(name, Conv2d(w, b, stride=stride, padding=padding))


#: The options of a gated (``l0``) network, beside a preset's own: what ``io.interop`` carries over.
L0_OPTIONS = ("lam", "weight_decay", "droprate_init", "temperature", "local_rep")


@dataclass(frozen=True)
class Preset:
    """A registered network: its builder and what it accepts.

    ``build(builder, num_classes, options)`` appends the layers to a :class:`_Builder`;
    ``options`` are the keyword options it takes besides the L0 ones; ``images``: it
    needs ``(channels, height, width)`` inputs; ``init`` its default initializer (None:
    Glorot uniform, He normal for L0); ``first_droprate`` the initial drop rate of the
    first L0 gate layer (0.2 for the MLPs' input units, as ``L0MLP``); ``required`` the
    options it cannot do without (such a preset is no choice of ``--model``); ``tokens``:
    it reads windows of token ids ``(context,)`` (a language model, ``--data stdlib``).
    """

    name: str
    build: object
    summary: str
    options: tuple = ("bias", "init")
    images: bool = False
    init: str | None = None
    first_droprate: float = 0.5
    required: tuple = ()
    tokens: bool = False


#: The registered presets by name (:func:`preset` adds one).
PRESETS: dict[str, Preset] = {}


def preset(name, *, summary, options=("bias", "init"), images=False, init=None, first_droprate=0.5, required=(),
           tokens=False):
    """Register ``fn(builder, num_classes, options)`` as the network preset ``name``.

    A new preset is one decorated function: it becomes a choice of ``build_model``,
    of every method's ``--model`` and of the docs.
    """

    def register(fn):
        PRESETS[name] = Preset(name, fn, summary, tuple(options), images, init, first_droprate, tuple(required),
                               tokens)
        return fn

    return register


def _dense_stack(b, widths, num_classes, *, bias):
    for i, width in enumerate(widths, 1):
        b.dense(f"fc{i}", width, bias=bias)
        b.add(f"relu{i}", ReLU())
    b.dense("out", num_classes, bias=bias)


@preset("mlp-300-100", summary="dense 300 - 100 - classes, ReLU, bias (LeNet-300-100; L0MLP)", first_droprate=0.2)
def _mlp_300_100(b, num_classes, options):
    _dense_stack(b, (300, 100), num_classes, bias=options.get("bias", True))


@preset("mlp-1000-1000-500-200", summary="dense 1000 - 1000 - 500 - 200 - classes, ReLU, no bias "
        "(the magnitude-pruning notebook)", first_droprate=0.2)
def _mlp_1000_1000_500_200(b, num_classes, options):
    _dense_stack(b, (1000, 1000, 500, 200), num_classes, bias=options.get("bias", False))


def _lenet5_padding(shape):
    """0 (valid, as the paper) when two 5x5 convs and two 2x2 pools fit, else 2 ("same")."""
    h = min(shape[1:])
    return 0 if ((h - 4) // 2 - 4) // 2 >= 1 else 2


@preset("lenet5", summary="LeNet-5-Caffe: conv 20 5x5, ReLU, pool 2, conv 50 5x5, ReLU, pool 2, dense 500, ReLU, "
        "dense classes (20-50-800-500 on MNIST)", options=("bias", "init", "padding"), images=True)
def _lenet5(b, num_classes, options):
    bias = options.get("bias", True)
    padding = options.get("padding")
    padding = _lenet5_padding(b.shape) if padding is None else int(padding)
    for i, width in enumerate((20, 50), 1):
        b.conv(f"conv{i}", width, 5, padding=padding, bias=bias)
        b.add(f"relu{i}", ReLU())
        b.add(f"pool{i}", MaxPool2d(2))
    b.dense("fc1", 500, bias=bias)
    b.add("relu3", ReLU())
    b.dense("out", num_classes, bias=bias)


@preset("conv4", summary="conv 64-64 3x3 pad 1, pool, 128-128, pool, dense 256-256-classes (the lottery-ticket "
        "Conv-4)", images=True)
def _conv4(b, num_classes, options):
    bias = options.get("bias", True)
    i = 0
    for block, width in enumerate((64, 128), 1):
        for _ in range(2):
            i += 1
            b.conv(f"conv{i}", width, 3, padding=1, bias=bias)
            b.add(f"relu{i}", ReLU())
        b.add(f"pool{block}", MaxPool2d(2))
    for j, width in enumerate((256, 256), 1):
        b.dense(f"fc{j}", width, bias=bias)
        b.add(f"relu{i + j}", ReLU())
    b.dense("out", num_classes, bias=bias)


def _preset(name):
    if name not in PRESETS:
        msg = f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}"
        raise ValueError(msg)
    return PRESETS[name]


def build_model(preset, *, input_shape, num_classes, backend, rng, dtype="float32", l0=False, **options):
    """Build a preset network with parameters drawn from ``rng`` on ``backend``.

    Parameters
    ----------
    preset : str
        One of :data:`PRESETS`.
    input_shape : tuple of int
        Per-example input shape, ``x_train.shape[1:]``: ``(c, h, w)`` images (MLPs
        flatten them) or ``(features,)``.
    num_classes : int
        Output units.
    backend : refprune backend adapter
        Where the parameters live.
    rng : refprune generator
        Source of every initial value (use ``stream="reference"`` for the same network
        on every backend).
    dtype : str
        ``"float32"`` or ``"float64"``.
    l0 : bool
        Build the hard-concrete gated version (see the module docstring).
    **options
        Per preset: ``bias`` (bool), ``init`` (one of :data:`INITS`); ``lenet5``:
        ``padding`` (None = automatic); ``binary-mlp``: ``hidden`` (width, or a tuple
        of 4 widths; default 4000 as the notebook), ``norm`` (one of :data:`NORMS`;
        default ``"batch-norm"``), ``on_prob`` (Bernoulli init, 0.001), ``bn_momentum``
        (0.15), ``bn_eps`` (1e-4), ``bias`` (default False). With ``l0=True`` also
        ``lam`` (1.0), ``weight_decay`` (0.0), ``droprate_init`` (each a number or one
        per gated layer), ``temperature`` (2/3), ``local_rep`` (False).

    Returns
    -------
    Sequential
        With ``config`` holding the preset and every setting, for checkpoints.
    """
    spec = _preset(preset)
    allowed = spec.options + (L0_OPTIONS if l0 else ())
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        msg = f"unknown option(s) {unknown} for preset {preset!r} (l0={l0}); allowed: {', '.join(allowed)}"
        raise ValueError(msg)
    missing = [k for k in spec.required if k not in options]
    if missing:
        msg = f"preset {preset!r} needs the option(s) {missing}"
        raise ValueError(msg)
    input_shape = tuple(int(d) for d in input_shape)
    if spec.images and len(input_shape) != 3:
        msg = f"preset {preset!r} needs image inputs (channels, height, width), got input_shape={input_shape}"
        raise ValueError(msg)
    default_init = spec.init or ("he-normal" if l0 else "glorot-uniform")
    b = _Builder(
        input_shape,
        backend,
        rng,
        dtype,
        init=options.get("init", default_init),
        l0=l0,
        l0_options={k: options[k] for k in L0_OPTIONS if k in options},
        first_droprate=spec.first_droprate,
    )
    spec.build(b, num_classes, options)
    config = {
        "preset": preset,
        "input_shape": list(input_shape),
        "num_classes": int(num_classes),
        "dtype": dtype,
        "l0": bool(l0),
        "options": dict(options),
    }
    return b.container(b.layers, config=config)


@preset("binary-mlp", summary="4 hidden dense layers, each dense - tanh - norm, then dense - tanh - norm for the "
        "output (the binarized-network notebook)", init="bernoulli",
        options=("bias", "init", "hidden", "norm", "on_prob", "bn_momentum", "bn_eps"))
def _binary_mlp(b, num_classes, options):
    """Blocks dense - tanh - norm, four hidden and the output one (the notebook's SimpleModel).

    The notebook defines ``fc1..fc4`` but its forward skips ``fc4``; here all four
    hidden layers are used, as the issue describes the model.
    """
    hidden = options.get("hidden", 4000)
    hidden = (int(hidden),) * 4 if isinstance(hidden, (int, float)) else tuple(int(h) for h in hidden)
    norm = options.get("norm", "batch-norm")
    if norm not in NORMS:
        msg = f"unknown norm {norm!r}; choose one of {', '.join(NORMS)}"
        raise ValueError(msg)
    bias = options.get("bias", False)
    b.init_kw = {"on_prob": options.get("on_prob", 0.001)} if b.init == "bernoulli" else {}
    names = [f"fc{i}" for i in range(1, len(hidden) + 1)] + ["out"]
    for i, (name, width) in enumerate(zip(names, (*hidden, num_classes)), 1):
        b.dense(name, width, bias=bias)
        b.add(f"tanh{i}", Tanh())
        if norm == "batch-norm":
            ones = b.backend.asarray([1.0] * width, dtype=b.dtype)
            layer = BatchNorm1d(
                ones,
                b._zeros(width),
                b._zeros(width),
                ones,
                momentum=options.get("bn_momentum", 0.15),
                eps=options.get("bn_eps", 1e-4),
            )
            b.add(f"bn{i}", layer)
        elif norm == "soft-invert":
            b.add(f"inv{i}", SoftInvert(b.rng.uniform((1,), b.dtype)))
        elif norm == "hard-invert":
            b.add(f"inv{i}", HardInvert())


# ---------------------------------------------------------------------- the small language model

#: gpt-tiny's defaults: width, blocks, heads (the MLP is 4 x width wide).
GPT_TINY = {"width": 128, "blocks": 2, "heads": 4}


@preset("gpt-tiny", summary="decoder-only transformer over bytes (GPT-2 layout, pre-norm): width 128, 2 blocks of "
        "4-head causal attention and a 512-unit GELU MLP, learned positions; --data stdlib",
        options=("width", "blocks", "heads"), tokens=True)
def _gpt_tiny(b, num_classes, options):
    """Token and position embeddings, ``blocks`` x (LN, qkv, attention, proj; LN, fc, GELU, fc2), LN, head.

    GPT-2's initialization: every weight and embedding ``N(0, 0.02^2)``, the two
    projections back into the residual stream (``proj``, ``fc2``) ``N(0, (0.02/sqrt(2L))^2)``
    for ``L`` blocks, biases 0, layer norms ``gamma = 1, beta = 0``.
    """
    if len(b.shape) != 1 or b.l0:
        msg = (f"gpt-tiny reads windows of byte ids (input_shape=(context,), --data stdlib) and has no L0 version; "
               f"got input_shape={b.shape}, l0={b.l0}")
        raise ValueError(msg)
    width, blocks, heads = (int(options.get(k, GPT_TINY[k])) for k in ("width", "blocks", "heads"))
    if min(width, blocks, heads) < 1 or width % heads:
        msg = f"gpt-tiny needs width, blocks, heads >= 1 and width divisible by heads, got {width}, {blocks}, {heads}"
        raise ValueError(msg)
    context = b.shape[0]

    def normal(shape, std=0.02):
        return b.rng.normal(shape, b.dtype) * std

    def norm(name):
        b.add(name, LayerNorm(b.backend.asarray([1.0] * width, dtype=b.dtype), b._zeros(width)))

    def dense(name, n_in, n_out, std=0.02):
        b.add(name, Dense(normal((n_in, n_out), std), b._zeros(n_out)))

    b.container = Transformer
    b.add("tok", Embedding(normal((num_classes, width))))
    b.add("pos", PositionEmbedding(normal((context, width))))
    residual = 0.02 / math.sqrt(2 * blocks)
    for i in range(blocks):
        norm(f"h{i}_ln1")
        dense(f"h{i}_qkv", width, 3 * width)
        b.add(f"h{i}_attn", CausalSelfAttention(heads))
        dense(f"h{i}_proj", width, width, residual)
        norm(f"h{i}_ln2")
        dense(f"h{i}_fc", width, 4 * width)
        b.add(f"h{i}_gelu", GELU())
        dense(f"h{i}_fc2", 4 * width, width, residual)
    norm("ln_f")
    dense("head", width, num_classes)


# ---------------------------------------------------------------------- any stack of layers

#: The layer ``type`` of :func:`describe` for each layer class (a gated layer is its plain kind).
LAYER_TYPES = {
    Dense: "dense", L0Dense: "dense", Conv2d: "conv", L0Conv2d: "conv", MaxPool2d: "max_pool", ReLU: "relu",
    Tanh: "tanh", Flatten: "flatten", SelectFeatures: "select", BatchNorm1d: "batch_norm",
    SoftInvert: "soft_invert", HardInvert: "hard_invert", Embedding: "embedding", PositionEmbedding: "position",
    LayerNorm: "layer_norm", GELU: "gelu", CausalSelfAttention: "attention",
}


def describe(model):
    """The layers of ``model`` as JSON-able dicts, in order: what the ``sequential`` preset builds from.

    Each dict has ``name`` and ``type`` (:data:`LAYER_TYPES`) and the layer's geometry:
    ``out`` and ``bias`` (dense, conv), ``kernel``, ``stride``, ``padding`` (conv),
    ``kernel``, ``stride`` (max_pool), ``index`` (select), ``momentum``, ``eps``
    (batch_norm). Gates are not described: ``build_model(..., l0=True)`` gates every
    dense and conv layer.

    Examples
    --------
    >>> from refprune import backends
    >>> from refprune.nn import build_model, describe
    >>> b = backends.get("numpy")
    >>> model = build_model("mlp-300-100", input_shape=(64,), num_classes=10, backend=b, rng=b.rng(0))
    >>> [layer["type"] for layer in describe(model)]
    ['dense', 'relu', 'dense', 'relu', 'dense']
    >>> again = build_model("sequential", input_shape=(64,), num_classes=10, backend=b, rng=b.rng(0),
    ...                     layers=describe(model))
    >>> describe(again) == describe(model)
    True
    """
    out = []
    for name, layer in model.layers.items():
        kind = LAYER_TYPES.get(type(layer))
        if kind is None:
            msg = f"describe knows the layers {sorted(set(LAYER_TYPES.values()))}; layer {name} is {type(layer).__name__}"
            raise TypeError(msg)
        spec = {"name": name, "type": kind}
        if kind in ("dense", "conv"):
            spec["out"] = int(layer.params["w"].shape[1 if kind == "dense" else 0])
            spec["bias"] = "b" in layer.params
        if kind == "conv":
            spec["kernel"] = [int(d) for d in layer.params["w"].shape[2:]]
            spec["stride"], spec["padding"] = layer.stride, layer.padding
        elif kind == "max_pool":
            spec["kernel"], spec["stride"] = layer.kernel, layer.stride
        elif kind == "select":
            spec["index"] = list(layer.index)
        elif kind in ("batch_norm", "layer_norm"):
            spec["eps"] = layer.eps
            if kind == "batch_norm":
                spec["momentum"] = layer.momentum
        elif kind == "attention":
            spec["heads"] = layer.heads
        out.append(spec)
    return out


def build_like(config, *, backend, rng, **changes):
    """A new network of the architecture ``config`` describes (a model's ``config``), parameters from ``rng``.

    ``changes`` override entries (``dtype=``, ``l0=``) or options (``lam=``, ...); with
    ``l0=False`` the gate settings of a gated network's config are dropped.
    """
    config = {**config, **{k: v for k, v in changes.items() if k in ("dtype", "l0")}}
    options = {**config.get("options", {}), **{k: v for k, v in changes.items() if k not in ("dtype", "l0")}}
    if not config.get("l0", False):  # a plain network of a gated one's architecture: no gate settings
        options = {k: v for k, v in options.items() if k not in L0_OPTIONS}
    return build_model(config["preset"], input_shape=config["input_shape"], num_classes=config["num_classes"],
                       backend=backend, rng=rng, dtype=config.get("dtype", "float32"), l0=config.get("l0", False),
                       **options)


@preset("sequential", summary="any stack of the layers of refprune.nn, listed in options['layers'] "
        "(refprune.nn.describe); what refprune.compact returns", options=("layers", "init"), required=("layers",))
def _sequential(b, num_classes, options):
    """The layers of ``options["layers"]`` (dicts of :func:`describe`), parameters drawn as the presets do."""
    layers = options.get("layers")
    if not isinstance(layers, (list, tuple)) or not layers:
        msg = ("preset 'sequential' needs layers=[{'name': ..., 'type': ...}, ...] (refprune.nn.describe(model)); "
               "it is the architecture of a compacted network: load one with --init-from FILE")
        raise ValueError(msg)
    for spec in layers:
        name, kind = spec.get("name"), spec.get("type")
        if kind == "dense":
            if len(b.shape) != 1:
                msg = f"sequential: dense layer {name} needs (features,) inputs, got {b.shape}; add a flatten layer"
                raise ValueError(msg)
            b.dense(name, int(spec["out"]), bias=bool(spec.get("bias", True)))
        elif kind == "conv":
            b.conv(name, int(spec["out"]), spec["kernel"], padding=int(spec.get("padding", 0)),
                   bias=bool(spec.get("bias", True)), stride=int(spec.get("stride", 1)))
        elif kind == "max_pool":
            b.add(name, MaxPool2d(int(spec["kernel"]), int(spec.get("stride", spec["kernel"]))))
        elif kind == "batch_norm":
            width = b.shape[0]
            ones = b.backend.asarray([1.0] * width, dtype=b.dtype)
            b.add(name, BatchNorm1d(ones, b._zeros(width), b._zeros(width), ones,
                                    momentum=spec.get("momentum", 0.1), eps=spec.get("eps", 1e-5)))
        elif kind == "select":
            b.add(name, SelectFeatures(spec["index"]))
        elif kind == "soft_invert":
            b.add(name, SoftInvert(b.rng.uniform((1,), b.dtype)))
        else:
            simple = {"relu": ReLU, "tanh": Tanh, "flatten": Flatten, "hard_invert": HardInvert}
            if kind not in simple:
                msg = f"sequential: layer {name} has unknown type {kind!r}; types: {sorted(set(LAYER_TYPES.values()))}"
                raise ValueError(msg)
            b.add(name, simple[kind]())
    if b.shape != (num_classes,):
        msg = f"sequential: the last layer outputs {b.shape}, but num_classes={num_classes}"
        raise ValueError(msg)
