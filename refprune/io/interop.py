r"""Weights that travel: torch state_dicts and safetensors out, and back in.

refprune's own checkpoints stay ``.npz`` without pickle (:mod:`refprune.io`). For other
tools there are two formats:

* **safetensors** (the ``safetensors`` package's NumPy API; ``pip install
  'refprune[interop]'``): the exchange format for JAX and everything else. One file
  with every parameter and buffer under refprune's own names and layouts (``fc1.w``,
  ``conv1.b``, ``bn1.running_mean``, ``conv1.log_alpha``), the masks as booleans under
  ``masks/<name>``, and a JSON metadata block: ``format`` (``"refprune"``),
  ``network`` (the model's ``config``, from which ``build_model`` rebuilds it),
  ``layers`` (:func:`refprune.nn.describe`), ``layout``, and what the writer adds
  (``method``, ``config``, ``architecture`` for a run's export). Nothing is
  transformed, so refprune -> safetensors -> refprune is bit-identical, gates included.
* **torch state_dicts** (``.pt``, written with ``torch.save``, read with
  ``torch.load(weights_only=True)``: never an arbitrary unpickle) for the equivalent
  ``torch.nn.Sequential`` (:func:`torch_module`), named by refprune's layer names.

The torch mapping, layer by layer (``ln`` is the refprune layer name, which is also the
name of the module in the ``torch.nn.Sequential``):

==========================  =====================================  ==========================================
refprune layer              torch module                           state_dict entries
==========================  =====================================  ==========================================
``Dense`` / ``L0Dense``     ``nn.Linear(in, out, bias)``           ``ln.weight`` = ``w.T`` (refprune stores
                                                                   ``(in, out)``, as the L0 paper's code;
                                                                   torch ``(out, in)``), ``ln.bias`` = ``b``
``Conv2d`` / ``L0Conv2d``   ``nn.Conv2d(in, out, k, stride,        ``ln.weight`` = ``w`` ``(out, in, kh, kw)``,
                            padding, bias)``                       ``ln.bias`` = ``b``
``MaxPool2d``               ``nn.MaxPool2d(kernel, stride)``       none
``ReLU`` / ``Tanh``         ``nn.ReLU()`` / ``nn.Tanh()``          none
``Flatten``                 ``nn.Flatten()``                       none; NCHW, channel-major in both
``BatchNorm1d``             ``nn.BatchNorm1d(n, eps, momentum)``   ``weight`` = ``gamma``, ``bias`` = ``beta``,
                                                                   ``running_mean``, ``running_var``,
                                                                   ``num_batches_tracked`` (written 0, ignored
                                                                   when read)
``SoftInvert``              ``SoftInvert``: ``x(1-a) + (1-x)a``,   ``ln.a``
                            ``a`` clipped to [0, 1] (a small
                            module of :func:`torch_module`)
``HardInvert``              ``HardInvert``: ``1 - x``              none
``SelectFeatures``          ``SelectFeatures``: ``x[:, index]``    ``ln.index`` (int64 buffer)
``Embedding``               ``nn.Embedding(V, d)``                 ``ln.weight`` = ``w`` ``(V, d)``
``PositionEmbedding``       ``nn.Embedding(context, d)``, added    ``ln.weight`` = ``w`` ``(context, d)``
``LayerNorm``               ``nn.LayerNorm(d, eps)``               ``ln.weight`` = ``gamma``, ``ln.bias`` = ``beta``
``GELU``                    ``F.gelu(x, approximate="tanh")``      none
``CausalSelfAttention``     ``F.scaled_dot_product_attention(q,    none (``q, k, v`` = ``qkv(x).split(d, -1)``,
                            k, v, is_causal=True)``                heads of ``d / H`` consecutive features)
==========================  =====================================  ==========================================

``gpt-tiny`` (:class:`refprune.nn.Transformer`) is no ``torch.nn.Sequential``: its torch
module is the README's "The language model in plain torch" (``tok``, ``pos``,
``h{i}_ln1``, ``h{i}_qkv``, ``h{i}_proj``, ``h{i}_ln2``, ``h{i}_fc``, ``h{i}_fc2``,
``ln_f``, ``head``), which loads the state_dict written here and computes the same logits.

Gated layers: torch has no hard-concrete gate, so the L0 test-time gates
:math:`\hat z` are folded into the weights (a dense layer's row ``i`` times
:math:`\hat z_i`, a convolution's filter and bias ``c`` times :math:`\hat z_c`): the
torch module computes the deployed network, and ``log_alpha`` does not travel through
torch (it does through safetensors). Masks: ``masks="prune"`` (default) writes
``torch.nn.utils.prune``'s own form for every masked parameter, ``ln.weight_orig`` (the
stored weight) and ``ln.weight_mask`` (1.0 keep, 0.0 pruned), so that after
``prune.identity(module, "weight")`` the module loads it, ``prune.is_pruned`` is True
and ``prune.remove`` bakes it in; ``masks="baked"`` writes the masked weight as
``ln.weight``. Reading accepts both forms (a ``*_mask`` entry becomes a refprune mask,
nonzero = keep), so refprune -> torch -> refprune is bit-identical for networks
without gates.

Names per preset (``python -c "from refprune.io import torch_names; ..."`` lists them
for any model): ``mlp-300-100``: ``fc1``, ``fc2``, ``out`` (``.weight``, ``.bias``);
``mlp-1000-1000-500-200``: ``fc1`` .. ``fc4``, ``out`` (``.weight`` only, no biases);
``lenet5``: ``conv1``, ``conv2``, ``fc1``, ``out``; ``conv4``: ``conv1`` .. ``conv4``,
``fc1``, ``fc2``, ``out``; ``binary-mlp``: ``fc1`` .. ``fc4``, ``out`` (``.weight``) and
``bn1`` .. ``bn5`` (batch norm) or ``inv1`` .. ``inv5`` (``.a``, soft invert). A model
trained in torch is read by renaming its keys to these (one dict comprehension);
any difference is a one-line ``ValueError`` listing the missing, unexpected and
mis-shaped keys.

The issue's ``refprune.nn.load_weights`` lives here (:func:`load_weights`, also
``refprune.io.load_weights``): ``refprune.nn`` knows nothing of files.

Examples
--------
>>> import os, tempfile
>>> from refprune import backends, io
>>> from refprune.nn import build_model
>>> b = backends.get("numpy")
>>> model = build_model("mlp-300-100", input_shape=(64,), num_classes=10, backend=b, rng=b.rng(0))
>>> io.torch_names(model)[:3]
['fc1.weight', 'fc1.bias', 'fc2.weight']
>>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
>>> io.save_model(path, model)
>>> again = build_model("mlp-300-100", input_shape=(64,), num_classes=10, backend=b, rng=b.rng(1))
>>> bool((io.load_weights(again, path).params()["fc1.w"] == model.params()["fc1.w"]).all())
True
"""

from __future__ import annotations

import io as _stdio
import json
import os
import pickle
import warnings
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np

from refprune import checkpoints

__all__ = [
    "FINAL",
    "COMPACT_MODEL",
    "resolve",
    "read_network",
    "save_model",
    "load_weights",
    "init_model",
    "load_model",
    "torch_names",
    "torch_state_dict",
    "save_torch",
    "save_safetensors",
    "read_safetensors",
    "torch_module",
    "safetensors_unavailable",
]

#: The file a run writes with the network its result describes (``Engine.finish``).
FINAL = "final.npz"
#: The file ``refprune compact`` writes.
COMPACT_MODEL = "model.npz"

_GATE = "log_alpha"
_LAYOUT = ("refprune: dense weights (in, out), conv weights (out, in, kh, kw), images NCHW, flatten channel-major; "
           "masks/<name> are booleans (True = keep)")



def _io():
    """:mod:`refprune.io`, which imports this module at its end (so not imported here at the top)."""
    from refprune import io

    return io


# ---------------------------------------------------------------------------------- reading any weights file


def resolve(path):
    """A weights file from ``path``: the file itself, or in a folder its ``final.npz``, ``model.npz`` or ``checkpoint.npz``."""
    path = Path(os.fspath(path))
    if path.is_dir():
        for name in (FINAL, COMPACT_MODEL, "checkpoint.npz"):
            if (path / name).exists():
                return path / name
        msg = f"{path}: no {FINAL} (a run's network), {COMPACT_MODEL} (a compacted one) or checkpoint.npz in it"
        raise FileNotFoundError(msg)
    if not path.exists():
        msg = f"{path}: no such file"
        raise FileNotFoundError(msg)
    return path


def _kind(path):
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return "refprune"
    if suffix == ".safetensors":
        return "safetensors"
    if suffix in (".pt", ".pth", ".bin"):
        return "torch"
    msg = f"{path}: unknown weights format {suffix!r}; give a .npz (refprune), .safetensors or .pt/.pth (torch state_dict)"
    raise ValueError(msg)


def read_network(path):
    """``(arrays, masks, network_config, naming)`` of a weights file, host arrays.

    ``naming`` is ``"refprune"`` (refprune checkpoints and refprune safetensors: names
    such as ``fc1.w``) or ``"torch"`` (a state_dict, or safetensors written by torch:
    ``fc1.weight``). ``network_config`` is the model's ``config`` where the file has it
    (refprune files), else None. Bad files are a one-line ``ValueError`` naming the file.
    """
    path = resolve(path)
    kind = _kind(path)
    if kind == "refprune":
        ckpt = _io().load_checkpoint(path)
        networks = (ckpt.config or {}).get("networks") or {}
        params = checkpoints.network_arrays(ckpt.params, checkpoints.MODEL)
        if not params:
            msg = f"{path}: a refprune checkpoint without a network named 'model' (it holds {sorted(networks)})"
            raise ValueError(msg)
        masks = checkpoints.network_arrays(ckpt.masks, checkpoints.MODEL)
        return params, masks, networks.get(checkpoints.MODEL), "refprune"
    if kind == "safetensors":
        tensors, metadata = read_safetensors(path)
        if metadata.get("format") == "refprune":
            masks = {k[len("masks/"):]: v for k, v in tensors.items() if k.startswith("masks/")}
            params = {k: v for k, v in tensors.items() if not k.startswith("masks/")}
            network = json.loads(metadata["network"]) if "network" in metadata else None
            return params, masks, network, "refprune"
        return tensors, {}, None, "torch"
    return _read_torch(path), {}, None, "torch"


def _read_torch(path):
    """A torch state_dict as host arrays, read with ``torch.load(weights_only=True)``."""
    import torch

    try:
        with warnings.catch_warnings():  # torch warns about protocols before it refuses a foreign pickle
            warnings.simplefilter("ignore", UserWarning)
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        msg = (f"{path}: not a plain torch state_dict: torch.load(weights_only=True) refused it ({first}); save "
               "model.state_dict(), not the model or other Python objects")
        raise ValueError(msg) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        msg = f"{path}: not a readable torch file (truncated or corrupted: {first})"
        raise ValueError(msg) from None
    if not isinstance(obj, dict):
        msg = f"{path}: holds a {type(obj).__name__}, not a state_dict (a dict of name -> tensor); save model.state_dict()"
        raise ValueError(msg)
    bad = [str(k) for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        msg = (f"{path}: not a state_dict: entries {bad[:5]} are not tensors named by strings (a training "
               "checkpoint? save its model.state_dict() alone)")
        raise ValueError(msg)
    return {k: v.detach().cpu().numpy() for k, v in obj.items()}


def safetensors_unavailable():
    """Why safetensors cannot be written here (a sentence), or None."""
    try:
        import safetensors.numpy  # noqa: F401
    except ImportError:
        return "the safetensors package is not installed; pip install 'refprune[interop]'"
    return None


def read_safetensors(path):
    """``(tensors, metadata)`` of a safetensors file as NumPy arrays and a dict of strings."""
    reason = safetensors_unavailable()
    if reason is not None:
        msg = f"{path}: cannot read safetensors: {reason}"
        raise ValueError(msg)
    from safetensors import safe_open

    try:
        with safe_open(os.fspath(path), framework="numpy") as f:
            metadata = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own SafetensorError (an Exception) for bad files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        msg = f"{path}: not a readable safetensors file (truncated or corrupted: {first})"
        raise ValueError(msg) from None
    return tensors, metadata


# ---------------------------------------------------------------------------------- torch names


def _torch_entries(model):
    """``[(torch_key, (layer, local), transpose)]`` of every parameter and buffer of ``model``."""
    entries = []
    for ln, layer in model.layers.items():
        rename = {"w": "weight", "b": "bias", "gamma": "weight", "beta": "bias"}
        for key in layer.params:
            if key == _GATE:
                continue
            entries.append((f"{ln}.{rename.get(key, key)}", (ln, key), key == "w" and layer.kind == "dense"))
        for key in layer.state:
            entries.append((f"{ln}.{key}", (ln, key), False))
    return entries


def torch_names(model):
    """The keys of ``model``'s torch state_dict (masks baked in), in order."""
    return [key for key, _, _ in _torch_entries(model)]


def _deployed_arrays(model):
    """Host arrays of every parameter and buffer with the L0 test-time gates folded in (masks not applied)."""
    to_host = _to_host
    out = {}
    for ln, layer in model.layers.items():
        z = layer.test_gates() if layer.gated else None
        for key, value in {**layer.params, **layer.state}.items():
            if key == _GATE:
                continue
            if z is not None and (key == "w" or (key == "b" and layer.kind == "conv")):
                xp = _namespace(value)
                value = value * xp.reshape(z, (-1,) + (1,) * (value.ndim - 1))
            out[(ln, key)] = to_host(value)
    return out


def _to_host(x):
    """A host NumPy array of ``x``, by the adapter of the backend ``x`` lives on."""
    return x if isinstance(x, np.ndarray) else _backend_for(x).to_numpy(x)


def _namespace(x):
    from refprune._array import namespace

    return namespace(None, x=x)


def torch_state_dict(model, *, masks="prune"):
    """``{key: torch.Tensor}`` for the equivalent ``torch.nn`` module (see the module docstring).

    ``masks="prune"``: masked parameters as ``<key>_orig`` and ``<key>_mask`` (the form of
    ``torch.nn.utils.prune``); ``"baked"``: the masked values as ``<key>``.
    """
    import torch

    if masks not in ("prune", "baked"):
        msg = f"masks must be 'prune' or 'baked', got masks={masks!r}"
        raise ValueError(msg)
    arrays = _deployed_arrays(model)
    layer_masks = {(ln, key): _to_host(m) for ln, layer in model.layers.items() for key, m in layer.masks.items()}
    sd = {}
    for key, where, transpose in _torch_entries(model):
        value = arrays[where]
        mask = layer_masks.get(where)
        if transpose:
            value = value.T
            mask = None if mask is None else mask.T
        if mask is None:
            sd[key] = torch.from_numpy(np.ascontiguousarray(value))
        elif masks == "baked":
            sd[key] = torch.from_numpy(np.ascontiguousarray(np.where(mask, value, 0).astype(value.dtype)))
        else:
            sd[f"{key}_orig"] = torch.from_numpy(np.ascontiguousarray(value))
            sd[f"{key}_mask"] = torch.from_numpy(np.ascontiguousarray(mask.astype(value.dtype)))
        if where[1] == "running_var":
            sd[f"{where[0]}.num_batches_tracked"] = torch.tensor(0, dtype=torch.int64)
    for ln, layer in model.layers.items():
        if hasattr(layer, "index") and not layer.params:
            sd[f"{ln}.index"] = torch.tensor(list(layer.index), dtype=torch.int64)
    return sd


def save_torch(path, model, *, masks="prune"):
    """Write :func:`torch_state_dict` with ``torch.save``, atomically."""
    import torch

    buffer = _stdio.BytesIO()
    torch.save(torch_state_dict(model, masks=masks), buffer)
    _io().atomic_write_bytes(path, buffer.getvalue())


def save_safetensors(path, model, *, metadata=None):
    """Write every parameter, buffer and mask of ``model`` (refprune names and layouts) as safetensors.

    ``metadata`` (JSON values) is added to the file's metadata block beside ``format``,
    ``layout``, ``network`` and ``layers``; each value is stored as a JSON string.
    """
    reason = safetensors_unavailable()
    if reason is not None:
        raise RuntimeError(reason)
    from safetensors.numpy import save

    from refprune.nn.models import describe

    tensors = {k: np.ascontiguousarray(_to_host(v)) for k, v in {**model.params(), **model.state()}.items()}
    tensors.update({f"masks/{k}": np.ascontiguousarray(_to_host(v)) for k, v in model.masks().items()})
    meta = {"format": "refprune", "layout": _LAYOUT, "network": json.dumps(model.config),
            "layers": json.dumps(describe(model))}
    meta.update({k: json.dumps(v) for k, v in (metadata or {}).items()})
    _io().atomic_write_bytes(path, save(tensors, metadata=meta))


def save_model(path, model, *, config=None):
    """Write ``model`` (parameters, buffers, masks) as a refprune checkpoint that ``--init-from`` and
    :func:`load_weights` read: the engine's schema, one network named ``model``, no optimizer state."""
    params, masks = checkpoints.network_entries(model, checkpoints.MODEL, to_host=_to_host)
    _io().save_checkpoint(path, params=params, masks=masks,
                          config={**(config or {}), "networks": {checkpoints.MODEL: model.config}})


# ---------------------------------------------------------------------------------- loading into a model


def _from_torch(model, tensors):
    """Refprune-named ``(arrays, masks, unexpected)`` from torch-named host arrays."""
    arrays, masks, used = {}, {}, set()
    for key, (ln, local), transpose in _torch_entries(model):
        name = f"{ln}.{local}"
        if key in tensors:
            value, mask = tensors[key], None
            used.add(key)
        elif f"{key}_orig" in tensors and f"{key}_mask" in tensors:
            value, mask = tensors[f"{key}_orig"], tensors[f"{key}_mask"] != 0
            used.update((f"{key}_orig", f"{key}_mask"))
        else:
            continue
        arrays[name] = value.T if transpose and value.ndim == 2 else value
        if mask is not None:
            masks[name] = mask.T if transpose and mask.ndim == 2 else mask
    ignored = {k for k in tensors if k.endswith(".num_batches_tracked") or k.endswith(".index")}
    unexpected = sorted(set(tensors) - used - ignored)
    return arrays, masks, unexpected


def load_weights(model, path, *, masks=True):
    """Load a weights file into ``model`` in place and return it.

    Parameters
    ----------
    model : refprune.nn.Sequential
        The network to fill; its architecture must be the file's.
    path : str or path-like
        A refprune checkpoint (``.npz``: a run's ``final.npz`` or ``checkpoint.npz``, a
        compacted ``model.npz``; a folder means the first of these in it), safetensors
        (refprune's own names, or a torch model's names) or a torch state_dict
        (``.pt``/``.pth``, read with ``torch.load(weights_only=True)``).
    masks : bool
        Also set the file's masks (refprune masks, or ``*_mask`` entries of a torch
        state_dict) when it has any.

    Every parameter and buffer of the model must be in the file with the model's shape,
    except the L0 gate locations ``log_alpha``, which keep their values when the file
    has none (a plain network's weights start a gated one). Values are cast to the
    model's dtype. A missing, unexpected or mis-shaped key is one ``ValueError``
    listing them all.
    """
    arrays, file_masks, _, naming = read_network(path)
    unexpected = []
    if naming == "torch":
        arrays, file_masks, unexpected = _from_torch(model, arrays)
    params, state = model.params(), model.state()
    expected = {**params, **state}
    required = {k for k in expected if not k.endswith(f".{_GATE}")}
    missing = sorted(required - set(arrays))
    unexpected += sorted(set(arrays) - set(expected))
    unexpected += [f"masks/{k}" for k in sorted(set(file_masks) - set(params))]
    wrong = [f"{k}: file {tuple(v.shape)} vs model {tuple(expected[k].shape)}" for k, v in arrays.items()
             if k in expected and tuple(v.shape) != tuple(expected[k].shape)]
    wrong += [f"masks/{k}: file {tuple(v.shape)} vs model {tuple(params[k].shape)}" for k, v in file_masks.items()
              if k in params and tuple(v.shape) != tuple(params[k].shape)]
    if missing or unexpected or wrong:
        preset = model.config.get("preset", "this")
        parts = [f"missing {missing}" if missing else "", f"unexpected {sorted(unexpected)}" if unexpected else "",
                 f"shapes differ ({'; '.join(wrong)})" if wrong else ""]
        msg = (f"{Path(os.fspath(path))}: does not fit this {preset} network: {', '.join(p for p in parts if p)}; "
               f"names follow refprune's mapping (refprune.io.interop)")
        raise ValueError(msg)
    backend = _backend_of(model)
    dtype = model.dtype
    model.set_params({k: backend.asarray(np.asarray(v), dtype=dtype) for k, v in arrays.items() if k in params})
    model.set_state({k: backend.asarray(np.asarray(v), dtype=dtype) for k, v in arrays.items() if k in state})
    if masks and file_masks:
        model.set_masks({k: backend.asarray(np.asarray(v, dtype=bool)) for k, v in file_masks.items()})
    return model


def _backend_of(model):
    """The refprune backend adapter (and device) the model's arrays live on."""
    return _backend_for(next(iter(model.params().values())))


def _backend_for(x):
    from refprune import backends

    if isinstance(x, np.ndarray):
        return backends.get("numpy")
    module = type(x).__module__.split(".")[0]
    if module == "torch":
        return backends.get("torch-cuda" if x.is_cuda else "torch", device=x.device)
    if module == "cupy":
        return backends.get("cupy")
    if module == "array_api_strict":
        return backends.get("array-api-strict", device=x.device)
    if module in ("jax", "jaxlib"):
        return backends.get("jax")
    msg = f"cannot tell the refprune backend of {type(x).__name__} arrays"
    raise TypeError(msg)


def load_model(path, *, backend="numpy"):
    """The network stored in a refprune file (a run folder or its ``final.npz``, a compacted ``model.npz``,
    refprune safetensors), rebuilt from its ``config`` on ``backend`` (a name or an adapter), weights and masks in."""
    from refprune import backends
    from refprune.nn.models import build_like

    _, _, network, _ = read_network(path)
    if network is None:
        msg = f"{resolve(path)}: holds no network description (a torch state_dict?); build the model and use load_weights"
        raise ValueError(msg)
    b = backends.get(backend) if isinstance(backend, str) else backend
    return load_weights(build_like(network, backend=b, rng=b.rng(0)), path)


def init_model(model, path, *, backend, rng):
    """``model`` started from the weights in ``path`` (``--init-from``); returns the network to train.

    A refprune file of a compacted network (preset ``sequential``) brings its own
    architecture: the network is rebuilt from the file's ``config`` (gated like
    ``model``, with ``model``'s L0 settings and gate locations drawn from ``rng``) and
    returned instead of ``model``. Anything else loads into ``model``
    (:func:`load_weights`).
    """
    from refprune.nn.models import L0_OPTIONS, build_like, describe

    _, _, network, _ = read_network(path)
    if network is not None and network.get("preset") == "sequential" and \
            json.loads(json.dumps(describe(model))) != network.get("options", {}).get("layers"):
        options = {k: v for k, v in model.config.get("options", {}).items() if k in L0_OPTIONS}
        model = build_like(network, backend=backend, rng=rng, dtype=model.dtype, l0=model.config.get("l0", False),
                           **(options if model.config.get("l0") else {}))
    return load_weights(model, path)


# ---------------------------------------------------------------------------------- the torch module


def torch_module(model, *, prune=True, dtype=None):
    """The equivalent ``torch.nn.Sequential`` of ``model``'s architecture (parameters uninitialized).

    ``model``: a refprune ``Sequential``, or a file or run folder (:func:`load_model`).
    Built from :func:`refprune.nn.describe`, one module per refprune layer under the same
    name. With ``prune``, ``torch.nn.utils.prune.identity`` is applied to every
    parameter ``model`` masks, so the module loads :func:`torch_state_dict` with
    ``masks="prune"``. ``dtype``: a torch dtype (default: the model's).
    """
    if isinstance(model, (str, os.PathLike)):
        model = load_model(model)
    if model.config.get("preset") == "gpt-tiny":
        msg = ("torch_module builds a torch.nn.Sequential, and gpt-tiny is a transformer (a residual stream): the "
               "README's 'The language model in plain torch' is its torch module, named alike, which loads the "
               "state_dict of refprune export RUN --format torch")
        raise ValueError(msg)
    import torch
    from torch import nn
    from torch.nn.utils import prune as torch_prune

    from refprune.nn.models import describe

    class SoftInvert(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Parameter(torch.zeros(1))

        def forward(self, x):
            a = self.a.clamp(0.0, 1.0)
            return x * (1.0 - a) + (1.0 - x) * a

    class HardInvert(nn.Module):
        def forward(self, x):
            return 1.0 - x

    class SelectFeatures(nn.Module):
        def __init__(self, index):
            super().__init__()
            self.register_buffer("index", torch.tensor(index, dtype=torch.int64))

        def forward(self, x):
            return x.index_select(1, self.index)

    shape = tuple(int(d) for d in model.config["input_shape"])
    modules = []
    for spec, layer in zip(describe(model), model.layers.values()):
        kind = spec["type"]
        if kind == "dense":
            module = nn.Linear(shape[0], spec["out"], bias=spec["bias"])
        elif kind == "conv":
            module = nn.Conv2d(shape[0], spec["out"], tuple(spec["kernel"]), stride=spec["stride"],
                               padding=spec["padding"], bias=spec["bias"])
        elif kind == "max_pool":
            module = nn.MaxPool2d(spec["kernel"], spec["stride"])
        elif kind == "batch_norm":
            module = nn.BatchNorm1d(shape[0], eps=spec["eps"], momentum=spec["momentum"])
        elif kind == "select":
            module = SelectFeatures(spec["index"])
        else:
            module = {"relu": nn.ReLU, "tanh": nn.Tanh, "flatten": nn.Flatten, "soft_invert": SoftInvert,
                      "hard_invert": HardInvert}[kind]()
        if prune:
            for key in layer.masks:
                name = {"w": "weight", "b": "bias"}.get(key, key)
                torch_prune.identity(module, name)
        modules.append((spec["name"], module))
        shape = tuple(layer.output_shape(shape))
    net = nn.Sequential(OrderedDict(modules))
    torch_dtype = dtype or getattr(torch, model.dtype)
    return net.to(torch_dtype)
