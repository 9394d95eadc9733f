"""Where things are inside a refprune checkpoint: one layout for the engine, ``io.interop`` and the CLI.

A checkpoint is one ``.npz`` file (:func:`refprune.io.save_checkpoint`: atomic, no
pickle). A run's checkpoint, its ``final.npz`` and a ``--init-from`` file share this layout:

* arrays of each network under ``<network>/<name>`` in ``params`` (parameters and
  buffers) and ``masks``: ``model/fc1.w``. :data:`MODEL` is the network the run reports;
  :data:`ACTIVE` an untracked network of the phase in progress (a control network);
  other tracked networks use the name they were tracked with (``dense``);
* ``config["run"]``: the run's settings (``RunSpec.config()``); a compacted model keeps
  its run's under ``config["compact"]["run"]`` (:func:`run_settings`);
* ``config["networks"]``: ``{network: model.config}``, enough to rebuild each network;
* ``config["engine"]``: the loop's records (schema :data:`SCHEMA`; position, phases,
  ``once`` values, metrics rows, training seconds, random streams);
* ``config["extra"]`` and the file's ``extra`` arrays: the method's own state
  (:func:`split_extra`); names starting with ``_`` belong to the engine;
* the phase in progress (:class:`PhaseState`): ``config["engine"]["position"]``, the
  optimizer and generator state, the engine's ``_best`` / ``_order`` arrays and an
  untracked network under :data:`ACTIVE`.

Examples
--------
>>> from refprune import checkpoints
>>> params = {"model/fc1.w": 1, "model/fc1.b": 2, "dense/fc1.w": 3}
>>> checkpoints.network_arrays(params)
{'fc1.w': 1, 'fc1.b': 2}
>>> checkpoints.prefixed({"fc1.w": 3}, "dense")
{'dense/fc1.w': 3}
>>> checkpoints.run_settings({"compact": {"run": {"method": "l0"}}})
{'method': 'l0'}
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

__all__ = ["CHECKPOINT", "SCHEMA", "MODEL", "ACTIVE", "checkpoint_path", "prefixed", "network_entries",
           "network_arrays", "run_settings", "split_extra", "is_array", "PhaseState", "stream_states",
           "check_same_network", "ARCHITECTURE_KEYS"]

#: The checkpoint's file name in a run folder.
CHECKPOINT = "checkpoint.npz"
#: Version of the engine's records (``config["engine"]["schema"]``).
SCHEMA = 1
#: The network a run reports, compacts and exports.
MODEL = "model"
#: An untracked network being trained when the checkpoint was written.
ACTIVE = "active"


def checkpoint_path(path):
    """``path/checkpoint.npz`` for a run folder, ``path`` itself for a file."""
    path = os.fspath(path)
    return os.path.join(path, CHECKPOINT) if os.path.isdir(path) else path


def prefixed(arrays, network=MODEL):
    """``{"<network>/<name>": array}``: ``arrays`` named as network ``network``'s in a checkpoint."""
    return {f"{network}/{k}": v for k, v in arrays.items()}


def network_entries(model, network=MODEL, *, to_host):
    """``(params, masks)`` of ``model`` as checkpoint entries of ``network``: parameters and buffers, masks.

    ``to_host`` moves a backend array to a NumPy array (``backend.to_numpy``).
    """
    params = prefixed({k: to_host(v) for k, v in {**model.params(), **model.state()}.items()}, network)
    masks = prefixed({k: to_host(v) for k, v in model.masks().items()}, network)
    return params, masks


def network_arrays(section, network=MODEL):
    """``{name: array}`` of network ``network`` in a checkpoint's ``params`` or ``masks`` section (None: empty)."""
    prefix = f"{network}/"
    return {k[len(prefix):]: v for k, v in (section or {}).items() if k.startswith(prefix)}


def run_settings(config):
    """The settings of the run that wrote a checkpoint (``config["run"]``, or a compacted model's), or None."""
    config = config or {}
    return config.get("run") or (config.get("compact") or {}).get("run")


def is_array(value):
    """True for an array of any backend (it has ``shape`` and ``dtype``)."""
    return hasattr(value, "shape") and hasattr(value, "dtype")


def split_extra(extra, *, to_host):
    """``(json_values, host_arrays)`` of a method's ``extra`` state: arrays and dicts of arrays go to the file's arrays."""
    values, arrays = {}, {}
    for key, value in extra.items():
        if isinstance(value, dict) and value and all(is_array(v) for v in value.values()):
            arrays[key] = {k: to_host(v) for k, v in value.items()}
        elif is_array(value):
            arrays[key] = to_host(value)
        else:
            values[key] = value
    return values, arrays


@dataclass
class PhaseState:
    """The phase in progress as a checkpoint stores it (host arrays): position, optimizer and generator state,
    the engine's arrays (``_best``, ``_order``) and an untracked network being trained (``active``)."""

    position: dict | None = None
    optimizer_state: dict = field(default_factory=dict)
    rng_state: str | None = None
    arrays: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    masks: dict = field(default_factory=dict)
    network: dict | None = None

    @classmethod
    def of(cls, loop, *, to_host, keep_best=True):
        """The state of ``loop`` now (``keep_best`` False: without the best epoch's parameters)."""
        position = {"phase": loop.phase, "epoch": loop.epoch, "batch": loop.batch, "epochs": loop.epochs,
                    "phase_steps": loop.steps}
        arrays = {}
        if loop.batch:
            position["sums"] = loop.sums.host()
            arrays["_order"] = loop.order
        if loop.stopper is not None:
            position["stopper"] = loop.stopper.state()
            if keep_best and loop.best is not None:
                arrays["_best"] = {k: to_host(v) for k, v in loop.best.items()}
        try:
            rng_state = loop.rng.state()
        except NotImplementedError:  # a library generator that cannot be saved (CuPy's native stream)
            rng_state = None
        optimizer_state = {k: {n: to_host(a) for n, a in v.items()} if isinstance(v, dict) else v
                           for k, v in loop.opt_state.items()}
        state = cls(position=position, optimizer_state=optimizer_state, rng_state=rng_state, arrays=arrays)
        if loop.name == ACTIVE:
            state.params, state.masks = network_entries(loop.model, ACTIVE, to_host=to_host)
            state.network = loop.model.config
        return state

    @classmethod
    def stored(cls, ckpt):
        """The phase state a loaded checkpoint holds."""
        arrays = ckpt.extra or {}
        return cls(position=ckpt.config["engine"].get("position"), optimizer_state=ckpt.optimizer_state or {},
                   rng_state=ckpt.rng_state, arrays={k: v for k, v in arrays.items() if k.startswith("_")},
                   params=prefixed(network_arrays(ckpt.params, ACTIVE), ACTIVE),
                   masks=prefixed(network_arrays(ckpt.masks, ACTIVE), ACTIVE),
                   network=ckpt.config["networks"].get(ACTIVE))


def stream_states(streams):
    """The saved states of the named generators (those whose library can save one)."""
    states = {}
    for name, generator in streams.items():
        try:
            states[name] = generator.state()
        except NotImplementedError:
            pass
    return states


#: The network config keys that fix its architecture (options such as ``lam`` may change).
ARCHITECTURE_KEYS = ("preset", "input_shape", "num_classes", "l0")


def check_same_network(path, stored, current):
    """Refuse a checkpoint of another architecture (preset, input shape, classes, gating)."""
    if stored is None:
        return
    current = json.loads(json.dumps(current))
    keys = [k for k in ARCHITECTURE_KEYS if stored.get(k) != current.get(k)]
    if keys:
        diffs = ", ".join(f"{k}: checkpoint {stored.get(k)!r} vs this model {current.get(k)!r}" for k in keys)
        msg = f"{path}: checkpoint is of another network ({diffs}); build the model with the checkpoint's settings"
        raise ValueError(msg)
