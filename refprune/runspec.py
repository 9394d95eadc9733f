"""The settings of a run: :class:`RunSpec`, the hash that tells runs apart, and what a resumed run may change.

Every method takes the same settings (its own options live in ``options``); a run's
folder is named by a hash of every setting that changes the result (:meth:`RunSpec.key`),
and a resumed run keeps its checkpoint's settings (:func:`check_resumable`).

Examples
--------
>>> from refprune.runspec import RunSpec
>>> spec = RunSpec(method="l0", model="mlp-300-100", epochs=2)
>>> spec.key() == RunSpec(method="l0", model="mlp-300-100", epochs=2, quiet=True, out="elsewhere").key()
True
>>> spec.key() == RunSpec(method="l0", model="mlp-300-100", epochs=3).key()
False
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field

from .checkpoints import checkpoint_path

__all__ = ["RunSpec", "OUTSIDE_KEY", "check_resumable"]

#: Settings that leave a run's result unchanged (where it writes, how it reports, threads, checkpoint spacing,
#: where the data files lie): outside :meth:`RunSpec.key`, and free to differ when a run is resumed.
OUTSIDE_KEY = ("out", "resume", "overwrite", "quiet", "threads", "checkpoint_every", "data_dir")


@dataclass
class RunSpec:
    """The settings every method takes; the method's own options live in ``options``.

    ``epochs``, ``batch_size``, ``lr`` and ``model`` left ``None`` take the method's
    defaults. ``out`` None: ``runs/<method>-<data>-<model>-<backend>-seed<seed>-<key>``
    with ``key`` a hash of every setting that changes the result (:meth:`key`).
    ``resume``: a run folder or its ``checkpoint.npz``. ``overwrite``: replace what a
    folder holds (a run is otherwise never written over another run's files).
    ``checkpoint_every``: epochs between checkpoints (0: only at the end of a phase).
    ``init_from``: a weights file (a run folder's ``final.npz``, a compacted ``model.npz``,
    a torch ``.pt`` state_dict or ``.safetensors``) the tracked model starts from
    (:meth:`Engine.track`).
    ``subset``: use only the first N examples of each split (0: all). ``threads``: cap
    the BLAS / torch thread pools at N for the run (None: leave them as they are).
    """

    method: str
    data: str = "digits"
    data_dir: str | None = None
    model: str | None = None
    backend: str = "numpy"
    device: str | None = None
    seed: int = 0
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    dtype: str = "float32"
    stream: str = "reference"
    out: str | None = None
    resume: str | None = None
    init_from: str | None = None
    overwrite: bool = False
    quiet: bool = False
    threads: int | None = None
    subset: int = 0
    checkpoint_every: int = 1
    options: dict = field(default_factory=dict)

    def config(self):
        """The JSON-able configuration stored in checkpoints and results."""
        return json.loads(json.dumps(asdict(self), default=str))

    def key(self):
        """Eight hex digits of a hash of every setting that can change the result.

        Where the files go, resuming, overwriting, progress bars, the thread count and
        checkpoint spacing leave it unchanged.
        """
        settings = {k: v for k, v in self.config().items() if k not in OUTSIDE_KEY}
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]

    def default_out(self):
        """The default output folder, which tells runs apart by :meth:`key`."""
        name = f"{self.method}-{self.data}-{self.model}-{self.backend}-seed{self.seed}-{self.key()}"
        return os.path.join("runs", name)

    def folder(self):
        """Where the run writes: ``out``, else the folder of the run it resumes, else :meth:`default_out`."""
        if self.out:
            return self.out
        return os.path.dirname(checkpoint_path(self.resume)) if self.resume else self.default_out()


def check_resumable(path, stored, spec):
    """Refuse to resume a checkpoint with settings other than its run's (more ``epochs`` extend the run).

    Compared: every setting of :meth:`RunSpec.key` and every method option, as stored in
    the checkpoint (:data:`OUTSIDE_KEY` may differ). One line names the first that differs
    and its stored value.
    """
    found, wanted = (stored.get("method"), stored.get("model")), (spec.method, spec.model)
    if found != wanted:
        msg = (f"cannot resume {path}: it is a checkpoint of method {found[0]!r} with model {found[1]!r}, "
               f"but this run is method {wanted[0]!r} with model {wanted[1]!r}; resume with the same method "
               "and --model")
        raise ValueError(msg)
    current = spec.config()
    pairs = [(k, stored[k], current[k]) for k in current if k in stored and k not in (*OUTSIDE_KEY, "options")]
    options = stored.get("options") or {}
    pairs += [(k, options[k], v) for k, v in current["options"].items() if k in options]
    for name, was, now in pairs:
        if was == now or (name == "epochs" and was is not None and now is not None and now > was):
            continue
        flag = "--" + name.replace("_", "-")
        more = " (more epochs extend a run; fewer would make it another run)" if name == "epochs" else ""
        msg = (f"cannot resume {path} with {flag} {_listed(now)}: its run has {name}={_listed(was)}{more}; a resumed "
               f"run keeps its settings: leave {flag} out, or start a new run without --resume")
        raise ValueError(msg)


def _listed(value):
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)
