r"""The one training engine every method runs on.

A method is its algorithm; everything around it is here, written once:

* the epoch / step loop (:meth:`Engine.train`) with one progress bar, metrics rows,
  early stopping, callbacks after each step and each epoch, and the validation
  checks of the primitives switched off inside the step (:func:`~refprune._array.trusted`:
  the engine made those arrays itself);
* **phases**: each :meth:`Engine.train` call is a named phase whose ``setup`` runs once,
  and :meth:`Engine.once` is a step without training whose value is stored; neither runs
  again when a resumed run had done it, so a method writes resume nowhere;
* a stopwatch that counts training time only and survives resume;
* a **NaN guard**: a non-finite loss or parameter stops the run with one line naming
  the step and the last good checkpoint (:class:`Diverged`); that checkpoint and the
  metrics so far are kept;
* **Ctrl-C**: the step in progress finishes, a checkpoint of that exact point is
  written and the run stops with the command that resumes it (:class:`Interrupted`);
* **checkpoints with one schema for every method** (``checkpoint.npz``, atomic, no
  pickle): every tracked model's parameters, buffers and masks, the optimizer state
  and random state of the phase in progress, the position (phase, epoch, batch), the
  step count, the metrics rows, the training time, the run's config, and the method's
  ``extra`` state (JSON values and arrays, such as the lottery's rewind weights);
  resuming continues the same trajectory, to the bit on NumPy;
* the files of a run: ``result.json`` (the keys every method reports, the measures of
  :mod:`refprune.measures`, the versions and threads that produced it),
  ``metrics.csv``, ``plot.png`` and ``final.npz`` (the network the result describes, as
  deployed: what ``refprune compact`` and ``refprune export`` read).

Around it, each in its own module: the run's settings (:mod:`refprune.runspec`), the
optimizers a phase takes (:mod:`refprune.optimizers`), the checkpoint layout and the
phase state it stores (:mod:`refprune.checkpoints`), the result record and environment
(:mod:`refprune.results`) and figures (:mod:`refprune.plots`); the names a method uses
are re-exported here (``engine.RunSpec``, ``engine.adam``).

Random streams. ``eng.rng`` is the run's generator, seeded with the run's seed: a
method with one training phase builds its model and trains from it (the same numbers
as a plain loop would draw). A method with several phases gives each its own stream,
seeded from the run's seed and a name (:meth:`Engine.rng_for`), so that a phase's
numbers never depend on what another phase drew and a run can be resumed at any phase
boundary; mid-phase, the stored state of the phase's generator continues it.

A method uses it like this (the whole ``l0`` method is about forty lines)::

    def run(eng):
        model = eng.track(build_model(..., rng=eng.rng))
        eng.train(model, step=partial(train_step, penalty_scale=1 / n), optimizer=adam(lr),
                  epochs=eng.spec.epochs, measure=lambda m: {"open_gates": ...})
        _, accuracy = eng.evaluate(model, "test")
        return eng.finish({"test_accuracy": accuracy}, model=model)

Examples
--------
>>> from refprune import engine
>>> from refprune.nn import build_model, train
>>> spec = engine.RunSpec(method="example", data="synthetic", model="mlp-300-100", epochs=1,
...                       batch_size=100, lr=1e-3, quiet=True, out="runs/example")
>>> eng = engine.Engine(spec)
>>> model = eng.track(build_model("mlp-300-100", input_shape=eng.dataset.input_shape, num_classes=10,
...                               backend=eng.backend, rng=eng.rng))
>>> result = eng.train(model, step=train.train_step, optimizer=engine.adam(lr=1e-3), epochs=1)
>>> result.epochs_run, len(eng.rows)
(1, 1)
>>> eng.evaluate(model, "test")[1] > 0.5
True
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from functools import partial

from . import backends, checkpoints, io, measures
from . import data as datasets
from ._array import trusted
from .checkpoints import CHECKPOINT, SCHEMA, checkpoint_path
from .nn import functional as F
from .nn.train import label_rows
from .optimizers import Optimizer, adam, sgd
from .plots import plot_unavailable as _plot_unavailable
from .results import COMMON_KEYS, environment, remove_run_files
from .runspec import OUTSIDE_KEY, RunSpec, check_resumable

#: The names a method uses, re-exported from their modules (:mod:`refprune.runspec`,
#: :mod:`refprune.optimizers`, :mod:`refprune.results`, :mod:`refprune.checkpoints`) so that
#: ``engine.adam``, ``engine.RunSpec`` keep working.
__all__ = [
    "RunSpec",
    "Engine",
    "Optimizer",
    "adam",
    "sgd",
    "EarlyStopping",
    "PhaseResult",
    "Diverged",
    "Interrupted",
    "evaluate",
    "checkpoint_path",
    "OUTSIDE_KEY",
    "environment",
    "COMMON_KEYS",
]


# ---------------------------------------------------------------------------------- small pieces


class Stopwatch:
    """Accumulates training time only (evaluation and I/O excluded); ``seconds`` survives resume."""

    def __init__(self, seconds=0.0):
        self.seconds = float(seconds)
        self._start = None

    def __enter__(self):
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds += time.perf_counter() - self._start


class EarlyStopping:
    """Stop when ``monitor`` has not improved for ``patience`` epochs (the lottery notebook's rule).

    An epoch improves when ``value < best`` and ``|value - best| >= min_delta``. The
    engine keeps the parameters of the best epoch and puts them back at the end.
    """

    def __init__(self, *, patience, min_delta=0.0, monitor="val_loss"):
        self.patience, self.min_delta, self.monitor = int(patience), float(min_delta), monitor
        self.best, self.best_epoch, self.wait = math.inf, 0, 0

    def update(self, epoch, value):
        """Record epoch ``epoch``'s value; True when it improved."""
        if value < self.best and abs(value - self.best) >= self.min_delta:
            self.best, self.best_epoch, self.wait = value, epoch, 0
            return True
        self.wait += 1
        return False

    @property
    def stop(self):
        return self.wait >= self.patience

    def state(self):
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait}

    def set_state(self, state):
        self.best, self.best_epoch, self.wait = float(state["best"]), int(state["best_epoch"]), int(state["wait"])


@dataclass(frozen=True)
class PhaseResult:
    """What :meth:`Engine.train` returns: epochs run, the best epoch (early stopping) and its value, steps."""

    epochs_run: int
    best_epoch: int
    best_value: float
    steps: int
    stopped_early: bool


class Diverged(RuntimeError):
    """A non-finite loss or parameter: the run stopped; the last good checkpoint is kept."""


class Interrupted(RuntimeError):
    """Ctrl-C: the run stopped after writing a checkpoint; the message says how to resume."""


def evaluate(model, x, y, *, backend, batch_size=1000, train=False, rng=None):
    """Mean cross-entropy and accuracy of ``model`` on host arrays ``x``, ``y``, as Python floats.

    Per label: a language model's targets ``(n, time)`` count every position (the loss
    in nats per token, :func:`refprune.nn.train.label_rows`).

    Test mode: deterministic gates, batch-norm running statistics. ``train=True``: the
    training-mode forward instead (each batch's own batch-norm statistics, gates sampled
    from ``rng``), the model's buffers put back afterwards, also on an error. The sums
    stay on the device until the end.
    """
    if len(y) == 0:
        msg = "evaluate needs at least one example, got an empty data set"
        raise ValueError(msg)
    n = y.size  # labels (batch, time) of a language model: every position counts
    forward = partial(model.forward, train=True, **({} if rng is None else {"rng": rng})) if train else \
        partial(model.forward, train=False)
    saved = model.state() if train else None
    loss_sum, correct = 0.0, 0
    try:
        for xb, yb in datasets.batches(x, y, batch_size, backend=backend, dtype=model.dtype):
            logits, yb = forward(xb), label_rows(yb)
            loss_sum = loss_sum + F.softmax_cross_entropy(logits, yb) * int(yb.shape[0])
            correct = correct + F.count_correct(logits, yb)
    finally:
        if saved is not None:
            model.set_state(saved)
    return float(loss_sum) / n, float(correct) / n


def _derived_seed(seed, name):
    digest = hashlib.sha256(f"{int(seed)}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


class _EpochSums:
    """Training loss and accuracy of the epoch in progress, summed on the device; each step's loss kept for the guard."""

    def __init__(self, loss=0.0, correct=0, seen=0):
        self.loss, self.correct, self.seen, self.losses = loss, correct, seen, []

    def add(self, out, yb):
        yb = label_rows(yb)
        n = int(yb.shape[0])
        self.losses.append(out.loss)
        self.loss = self.loss + out.loss * n
        self.correct = self.correct + F.count_correct(out.logits, yb)
        self.seen += n

    def host(self):
        return {"loss": float(self.loss), "correct": int(self.correct), "seen": self.seen}


@dataclass
class _Loop:
    """The state of the phase in progress: what :meth:`Engine.train`'s pieces share and a checkpoint inside it holds.

    ``epoch`` counts the epochs done, ``batch`` the batches done of the next one,
    ``steps`` the phase's steps; ``order`` is the epoch's minibatch order, ``sums`` its
    training sums, ``best`` the parameters of the best epoch (early stopping).
    """

    model: object
    name: str
    phase: str
    epochs: int
    rng: object
    stopper: object = None
    opt_state: dict = field(default_factory=dict)
    epoch: int = 0
    batch: int = 0
    steps: int = 0
    order: object = None
    sums: _EpochSums = field(default_factory=_EpochSums)
    best: dict | None = None


class _SigintFlag:
    """While active, the first Ctrl-C only sets ``raised``; the second interrupts at once."""

    def __init__(self):
        self.raised = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        self.raised = True
        signal.signal(signal.SIGINT, self._previous or signal.default_int_handler)

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


# ---------------------------------------------------------------------------------- the engine


class Engine:
    """One run of a method: its data, folder, random streams, clock, metrics, checkpoints and results.

    Parameters
    ----------
    spec : RunSpec
        The run's settings (``epochs`` etc. already filled from the method's defaults).
    dataset : refprune.data.Dataset, optional
        Use this data instead of loading ``spec.data``.
    inputs : callable, optional
        ``inputs(dataset, *, backend, dtype) -> dataset``: the data as the method's network
        reads it (a method's ``inputs`` hook, such as binary's binarized pixels); applied
        once, so that training and every evaluation read the same inputs.

    Attributes
    ----------
    spec, backend, dataset, out
        The settings, the backend adapter, the data (host arrays), the output folder.
    rows : list of dict
        One metrics row per epoch (every phase), kept across resume.
    extra : dict
        The method's own state: JSON values, arrays and dicts of arrays (on the
        backend). Saved with every checkpoint and restored on resume.
    steps : int
        Optimizer steps taken so far (every phase).
    clock : Stopwatch
        Training seconds so far.
    rng : refprune generator
        The run's main random stream (``spec.seed``, ``spec.stream``).
    """

    def __init__(self, spec, *, dataset=None, inputs=None):
        self.spec = spec
        self.backend = backends.get(spec.backend, device=spec.device)
        self._thread_limit = self.backend.limit_threads(spec.threads) if spec.threads else None
        if dataset is None:
            dataset = datasets.subset(datasets.load(spec.data, spec.data_dir, seed=spec.seed), spec.subset)
        if inputs is not None:
            dataset = inputs(dataset, backend=self.backend, dtype=spec.dtype)
        self.dataset = dataset
        self.rows, self.extra, self.steps, self.clock = [], {}, 0, Stopwatch()
        self._models, self._phases, self._position, self._streams, self._stored_streams = {}, {}, None, {}, {}
        self._ckpt, self._once, self._phase_state, self._extended = None, {}, None, []
        self._replacing = False  # overwrite: the other run's files are removed before this run's first
        self.rng = self.backend.rng(spec.seed, stream=spec.stream)
        if spec.resume:
            self._load(checkpoint_path(spec.resume))
        self.out = spec.folder()
        self._claim_folder()
        self.checkpoint_file = os.path.join(self.out, CHECKPOINT)
        self._good = None  # (epoch description, path) of the last checkpoint written by this run

    # ------------------------------------------------------------------ folder and resume

    def _claim_folder(self):
        """Refuse to write over another run's files unless asked (``overwrite``) or continuing it (``resume``).

        Nothing is written here: the folder appears with the run's first file
        (:meth:`_path`), and with ``overwrite`` the other run's files go just before it,
        so that the folder never mixes two runs and a run refused before writing
        leaves the folder as it was (or none).
        """
        problem = io.folder_problem(self.out)
        if problem is not None:
            msg = f"--out {self.out}: {problem}"
            raise ValueError(msg)
        held = [f for f in ("result.json", CHECKPOINT) if os.path.exists(os.path.join(self.out, f))]
        continuing = self.spec.resume and os.path.abspath(os.path.dirname(checkpoint_path(self.spec.resume))) == \
            os.path.abspath(self.out)
        if held and not continuing:
            if not self.spec.overwrite:
                msg = (f"{self.out} already holds a run ({', '.join(held)}); pass --overwrite to replace it, "
                       f"--resume {self.out} to continue it, or choose another --out")
                raise FileExistsError(msg)
            self._replacing = True

    def _path(self, name):
        """``out/name`` for a file about to be written; the folder is made (or cleared of the run replaced) first."""
        if self._replacing:
            remove_run_files(self.out)
            self._replacing = False
        if not os.path.isdir(self.out):
            io.make_folder(self.out)
        return os.path.join(self.out, name)

    def _load(self, path):
        if not os.path.exists(path):
            msg = f"--resume {self.spec.resume}: no checkpoint at {path}; give a run folder or its checkpoint.npz"
            raise FileNotFoundError(msg)
        ckpt = io.load_checkpoint(path)
        config = ckpt.config or {}
        engine = config.get("engine")
        if not isinstance(engine, dict) or engine.get("schema") != SCHEMA:
            msg = f"cannot resume {path}: not a checkpoint of a refprune run (no engine state of schema {SCHEMA})"
            raise ValueError(msg)
        run = config.get("run", {})
        check_resumable(path, run, self.spec)
        self._extended = list(engine.get("extended", []))
        if self.spec.epochs is not None and run.get("epochs") is not None and self.spec.epochs > run["epochs"]:
            self._extended.append({"at_step": int(ckpt.step), "epochs": [run["epochs"], self.spec.epochs]})
        self._ckpt, self._ckpt_path = ckpt, path
        self.rows = list(engine["rows"])
        self.steps = int(ckpt.step)
        self.clock = Stopwatch(engine["train_seconds"])
        self._phases = dict(engine["phases"])
        self._once = dict(engine.get("once", {}))
        self._stored_streams = dict(engine.get("streams", {}))
        self._position = dict(engine["position"]) if engine.get("position") else None
        arrays = ckpt.extra or {}
        self.extra = {**config.get("extra", {}), **{k: self._to_backend(v) for k, v in arrays.items()
                                                   if not k.startswith("_")}}
        self._phase_state = checkpoints.PhaseState.stored(ckpt)

    def _to_backend(self, value):
        if isinstance(value, dict):
            return {k: self.backend.asarray(v) for k, v in value.items()}
        return self.backend.asarray(value)

    def _restore(self, model, name):
        """Put the checkpoint's arrays of model ``name`` into ``model`` (after checking it is the same network)."""
        stored = self._ckpt.config["networks"].get(name)
        checkpoints.check_same_network(self._ckpt_path, stored, model.config)
        arrays = checkpoints.network_arrays(self._ckpt.params, name)
        params, state = model.params(), model.state()
        expected = set(params) | set(state)
        if set(arrays) != expected:
            msg = (f"{self._ckpt_path}: checkpoint does not fit this model: missing {sorted(expected - set(arrays))}, "
                   f"unexpected {sorted(set(arrays) - expected)}")
            raise ValueError(msg)
        wrong = [f"{k}: checkpoint {tuple(arrays[k].shape)} vs model {tuple(v.shape)}"
                 for k, v in {**params, **state}.items() if tuple(arrays[k].shape) != tuple(v.shape)]
        if wrong:
            msg = f"{self._ckpt_path}: checkpoint does not fit this model: shapes differ ({'; '.join(wrong)})"
            raise ValueError(msg)
        model.set_params({k: self.backend.asarray(arrays[k]) for k in params})
        model.set_state({k: self.backend.asarray(arrays[k]) for k in state})
        model.set_masks({k: self.backend.asarray(v)
                         for k, v in checkpoints.network_arrays(self._ckpt.masks, name).items()})

    # ------------------------------------------------------------------ models and random streams

    def rng_for(self, name, *, seed_name=None):
        """The generator of stream ``name`` (a phase, a method's own draws), seeded from the run's seed and ``name``.

        The same object for the same name. Its state is saved with every checkpoint and,
        when the run resumes, restored on the first call, so its draws continue as in
        an uninterrupted run. ``seed_name`` seeds it as stream ``seed_name`` instead:
        two streams that draw the same numbers (the minibatch order of a pruned run and
        of its dense baseline).
        """
        if name not in self._streams:
            seed = _derived_seed(self.spec.seed, seed_name or name)
            generator = self.backend.rng(seed, stream=self.spec.stream)
            if name in self._stored_streams:
                generator.set_state(self._stored_streams[name])
            self._streams[name] = generator
        return self._streams[name]

    def track(self, model, name=checkpoints.MODEL):
        """Register ``model`` for checkpoints; when resuming, load its stored state into it. Returns the model to use.

        With ``spec.init_from``, the network named ``"model"`` starts from that file's
        weights (:func:`refprune.io.init_model`); a compacted network brings its own
        architecture, and the model returned is then that network (methods train what
        ``track`` returns).
        """
        if self.spec.init_from and name == checkpoints.MODEL:
            model = io.init_model(model, self.spec.init_from, backend=self.backend, rng=self.rng_for("init-from"))
        self._models[name] = model
        if self._ckpt is not None and name in self._ckpt.config["networks"]:
            self._restore(model, name)
        return model

    def _name_of(self, model):
        return next((n for n, m in self._models.items() if m is model), checkpoints.ACTIVE)

    # ------------------------------------------------------------------ the loop

    def train(self, model, *, step, optimizer, epochs, phase="train", setup=None, rng=None, measure=None,
              stopper=None, on_step=None, on_epoch=None, initial_row=False):
        """Train ``model`` (in place) for ``epochs`` epochs of the training split; returns a :class:`PhaseResult`.

        Parameters
        ----------
        step : callable
            ``step(model, update, opt_state, xb, yb, *, rng) -> (Step, opt_state)``, e.g.
            :func:`refprune.nn.train.train_step` (bind method options with ``partial``).
        optimizer : Optimizer
            Its ``init`` makes the phase's optimizer state; its ``update`` goes to ``step``.
        phase : str
            The phase's name: its rows' ``phase`` column, and how a resumed run finds where
            it stopped. A phase completed before returns at once (unless it stopped on its
            epoch limit and more are asked).
        setup : callable, optional
            ``setup()`` prepares the phase (masks, rewound weights, records in :attr:`extra`): called
            before its first epoch, only when it has not started before the checkpoint the run
            resumes from; its effects are in every later checkpoint.
        rng : refprune generator, optional
            The epochs' order and the step's noise; default ``self.rng`` (or ``self.rng_for(phase)``).
        measure, stopper, on_step, on_epoch, initial_row
            ``measure(model) -> dict``: the row's columns (default ``val_loss``, ``val_accuracy``);
            an :class:`EarlyStopping` on the row's ``stopper.monitor`` (the best epoch's
            parameters are restored); ``on_step(model, steps)`` after every step (the run's
            steps so far); ``on_epoch(model, row)`` before the epoch's checkpoint; an epoch-0
            row of the untrained model first.
        """
        measure = measure or (lambda m: dict(zip(("val_loss", "val_accuracy"), self.evaluate(m, "val"))))
        loop = _Loop(model=model, name=self._name_of(model), phase=phase, epochs=epochs,
                     rng=self.rng if rng is None else rng, stopper=stopper)
        done = self._completed(loop)
        if done is not None:
            return done
        if self._position is not None and self._position["phase"] == phase:
            self._resume_phase(loop)
        else:
            if setup is not None:
                setup()
            loop.opt_state = optimizer.init(model.params())
            if initial_row:
                self.rows.append({"phase": phase, "epoch": 0, "step": self.steps, **measure(model),
                                  "train_seconds": self.clock.seconds})
        if loop.best is None and stopper is not None:
            loop.best = model.params()
        per_epoch = datasets.num_batches(len(self.dataset.y_train), self.spec.batch_size)
        bar = _progress(total=max(0, (epochs - loop.epoch) * per_epoch - loop.batch),
                        desc=f"{self.spec.method} {phase}", quiet=self.spec.quiet)
        with bar, _SigintFlag() as sigint:
            finished = loop.epoch >= epochs
            while not finished:
                self._train_epoch(loop, step=step, update=optimizer.update, on_step=on_step, sigint=sigint,
                                  bar=bar, per_epoch=per_epoch)
                row = self._epoch_row(loop, measure=measure, on_epoch=on_epoch)
                bar.set_postfix_str(_postfix(loop.epoch, row), refresh=False)
                finished = self._end_epoch(loop, row, sigint=sigint)
        if sigint.raised:  # Ctrl-C in the phase's last step: the phase is complete and saved
            self._interrupt(loop, saved=True)
        return self._phase_result(loop)

    def _completed(self, loop):
        """The :class:`PhaseResult` of a phase completed before the checkpoint (None: it is to run)."""
        record = self._phases.get(loop.phase)
        resuming = self._position is not None and self._position["phase"] == loop.phase
        if record is None or (resuming and record["epochs_run"] < loop.epochs and not record["stopped_early"]):
            return None
        if resuming:  # the checkpoint was written at this phase's end
            self._position = None
            if loop.name == checkpoints.ACTIVE:
                self._restore(loop.model, loop.name)
        return PhaseResult(**{k: record[k] for k in PhaseResult.__dataclass_fields__})

    def _train_epoch(self, loop, *, step, update, on_step, sigint, bar, per_epoch):
        """One epoch's steps (from ``loop.batch``, the batches a resumed epoch had done); Ctrl-C stops after a step."""
        ds = self.dataset
        if loop.order is None:
            loop.order = datasets.shuffled_order(loop.rng, len(ds.y_train), backend=self.backend)
        for xb, yb in datasets.batches(ds.x_train, ds.y_train, self.spec.batch_size, backend=self.backend,
                                       order=loop.order, start=loop.batch, dtype=self.spec.dtype):
            with self.clock, trusted(), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # overflow: the NaN guard reports it
                out, loop.opt_state = step(loop.model, update, loop.opt_state, xb, yb, rng=loop.rng)
                loop.sums.add(out, yb)
            self.steps += 1
            loop.steps += 1
            loop.batch += 1
            bar.update(1)
            if on_step is not None:
                with self.clock:
                    on_step(loop.model, self.steps)
            if sigint.raised and loop.batch < per_epoch:
                self._interrupt(loop)
        loop.epoch, loop.batch = loop.epoch + 1, 0

    def _epoch_row(self, loop, *, measure, on_epoch):
        """The NaN guard, then the epoch's metrics row (training sums and ``measure``), early stopping, ``on_epoch``."""
        self._guard(loop.model, loop.phase, loop.epoch, loop.sums)
        host = loop.sums.host()
        row = {"phase": loop.phase, "epoch": loop.epoch, "step": self.steps, "loss": host["loss"] / host["seen"],
               "train_accuracy": host["correct"] / host["seen"], **measure(loop.model),
               "train_seconds": self.clock.seconds}
        self.rows.append(row)
        loop.order, loop.sums = None, _EpochSums()
        if loop.stopper is not None and loop.stopper.update(loop.epoch, row[loop.stopper.monitor]):
            loop.best = loop.model.params()
        if on_epoch is not None:
            on_epoch(loop.model, row)
        return row

    def _end_epoch(self, loop, row, *, sigint):
        """Record a finished phase, checkpoint when due, stop on Ctrl-C; True when the phase is over."""
        stopper = loop.stopper
        stopped = stopper is not None and stopper.stop
        done = stopped or loop.epoch == loop.epochs
        if done:
            if loop.best is not None:
                loop.model.set_params(loop.best)
            self._phases[loop.phase] = {
                "epochs_run": loop.epoch, "best_epoch": stopper.best_epoch if stopper else loop.epoch,
                "best_value": stopper.best if stopper else row.get("val_loss", math.nan),
                "steps": loop.steps, "stopped_early": bool(stopped)}
        every = self.spec.checkpoint_every
        if done or (every and loop.epoch % every == 0):
            self._save(loop, keep_best=not done)
        if sigint.raised and not done:
            self._interrupt(loop)
        return done

    def _phase_result(self, loop):
        if loop.phase not in self._phases:  # zero epochs asked (or all run before): the phase is complete as it is
            self._phases[loop.phase] = {"epochs_run": loop.epoch, "best_epoch": loop.epoch, "best_value": math.nan,
                                        "steps": loop.steps, "stopped_early": False}
        result = self._phases[loop.phase]
        return PhaseResult(**{k: result[k] for k in PhaseResult.__dataclass_fields__})

    def started(self, phase):
        """True when ``phase`` (a :meth:`train` phase or a :meth:`once` step) ran, in full or in part, before now."""
        return (phase in self._phases or phase in self._once
                or (self._position is not None and self._position["phase"] == phase))

    def once(self, name, fn):
        """Do ``fn()`` once in the run's life (a phase without training) and return its value.

        ``fn()`` runs only when step ``name`` has not completed before; its JSON-able
        return value (numbers, strings, lists, dicts; tuples come back as lists) is stored
        with the run's state and a checkpoint is written after it (unless the run is of
        zero epochs, which writes none), holding what ``fn``
        did to the tracked models (parameters, masks) and to :attr:`extra`. A run resumed
        from that checkpoint or a later one does not call ``fn`` again: it gets the
        stored value. A step interrupted inside ``fn`` (Ctrl-C in a :meth:`train` it
        calls) has not completed: on resume ``fn`` runs again, and its training phases
        continue where they stopped.

        Examples
        --------
        A one-shot method: score and prune once, then fine-tune::

            kept = eng.once("prune", lambda: prune(model))      # not repeated on resume
            eng.train(model, phase="finetune", step=..., optimizer=..., epochs=...)
        """
        if name in self._once:
            return self._once[name]
        value = fn()
        try:
            stored = json.loads(json.dumps(value))
        except (TypeError, ValueError) as exc:
            msg = (f"once({name!r}, fn): fn must return a JSON-able value (numbers, strings, lists, dicts), got "
                   f"{type(value).__name__} ({exc}); keep arrays in eng.extra or in a tracked model")
            raise TypeError(msg) from None
        self._once[name] = stored
        if self.spec.epochs != 0:  # a run of zero epochs has nothing to resume and writes no checkpoint
            self._write_checkpoint(f"after {name}")
        return stored

    def _resume_phase(self, loop):
        """Restore the phase in progress at the checkpoint into ``loop``: model, optimizer, generator, position."""
        pos, ckpt = self._position, self._ckpt
        self._position = None
        if loop.name == checkpoints.ACTIVE:  # an untracked model (a control network): stored as "active"
            self._restore(loop.model, loop.name)
        if ckpt.rng_state is None:
            msg = (f"cannot resume {self._ckpt_path} inside a phase: its random stream ({self.spec.stream} on "
                   f"{self.spec.backend}) could not be saved; run with --stream reference to be able to resume")
            raise ValueError(msg)
        loop.rng.set_state(ckpt.rng_state)
        loop.opt_state = {key: self._to_backend(value) if isinstance(value, dict) else value
                          for key, value in (ckpt.optimizer_state or {}).items()}
        arrays = ckpt.extra or {}
        if loop.stopper is not None and pos.get("stopper"):
            loop.stopper.set_state(pos["stopper"])
            loop.best = self._to_backend(arrays["_best"]) if arrays.get("_best") else None
        if pos["batch"]:
            loop.sums = _EpochSums(**pos["sums"])
            loop.order = arrays["_order"]
        loop.epoch, loop.batch, loop.steps = pos["epoch"], pos["batch"], pos["phase_steps"]

    def _guard(self, model, phase, epoch, sums):
        """The NaN guard: a non-finite training loss or parameter stops the run here, keeping the last checkpoint."""
        xp = self.backend.xp
        loss = float(sums.loss)
        bad = [k for k, v in model.params().items() if not bool(xp.all(xp.isfinite(v)))]
        if math.isfinite(loss) and not bad:
            return
        losses = [float(v) for v in sums.losses]
        first = next((i for i, v in enumerate(losses) if not math.isfinite(v)), None)
        if first is None:
            step, what = self.steps, f"parameters {', '.join(bad[:3])} became non-finite"
        else:
            step, what = self.steps - len(losses) + first + 1, f"the loss became {losses[first]}"
        self._write_metrics()
        where = (f"the last good checkpoint is {self._good[1]} ({self._good[0]})" if self._good else
                 "no checkpoint was written before it")
        msg = (f"{self.spec.method} diverged at step {step} ({phase}, epoch {epoch}): {what}; {where}; "
               f"the metrics so far are in {os.path.join(self.out, 'metrics.csv')}. Lower --lr and run again")
        raise Diverged(msg)

    def _interrupt(self, loop, *, saved=False):
        """Ctrl-C: checkpoint the exact point the loop is at (epochs and batches done), then stop with how to resume."""
        if not saved:
            self._save(loop)
        self._write_metrics()
        where = f"epoch {loop.epoch + 1}, batch {loop.batch}" if loop.batch else f"after epoch {loop.epoch}"
        msg = (f"interrupted in {loop.phase}, {where}; wrote {self.checkpoint_file}. "
               f"Resume with: refprune run {self.spec.method} --resume {self.out}")
        raise Interrupted(msg)

    # ------------------------------------------------------------------ checkpoints and files

    def _save(self, loop, *, keep_best=True):
        """Write the checkpoint at the loop's position (its model, optimizer, generator, epoch sums)."""
        self._phase_state = checkpoints.PhaseState.of(loop, to_host=self.backend.to_numpy, keep_best=keep_best)
        self._write_checkpoint(f"{loop.phase}, epoch {loop.epoch}")

    def _write_checkpoint(self, description):
        """Write ``checkpoint.npz``: every tracked model, ``extra``, the run's records and the phase state last saved.

        Between phases (after :meth:`once`) the phase state is that of the last
        checkpoint, so a resumed run still finds the phase it stopped in.
        """
        to_host = self.backend.to_numpy
        phase = self._phase_state or checkpoints.PhaseState()
        params, masks, networks = dict(phase.params), dict(phase.masks), {}
        for name, m in self._models.items():
            entries = checkpoints.network_entries(m, name, to_host=to_host)
            params.update(entries[0])
            masks.update(entries[1])
            networks[name] = m.config
        if phase.network is not None:
            networks[checkpoints.ACTIVE] = phase.network
        extra_json, extra_arrays = checkpoints.split_extra(self.extra, to_host=to_host)
        engine = {"schema": SCHEMA, "position": phase.position, "phases": self._phases, "once": self._once,
                  "rows": self.rows, "train_seconds": self.clock.seconds,
                  "streams": checkpoints.stream_states(self._streams), "extended": self._extended}
        config = {"run": self.spec.config(), "networks": networks, "engine": engine, "extra": extra_json}
        io.save_checkpoint(self._path(CHECKPOINT), params=params, masks=masks, optimizer_state=phase.optimizer_state,
                           rng_state=phase.rng_state, step=self.steps, config=config,
                           extra={**extra_arrays, **phase.arrays})
        self._good = (description, self.checkpoint_file)

    def _save_final(self, model):
        """Write ``final.npz``: the network this run's result describes, as ``finish`` got it.

        Its parameters as they are at that moment (inside ``model.using(...)`` for a
        method that deploys transformed weights: RVSM's ``u``, the binarized weights),
        its buffers and masks, in the checkpoint schema (one network, ``model``; no
        optimizer state, so it does not resume). ``refprune compact`` and ``refprune
        export`` read it, ``--init-from`` starts from it: every method, present or
        registered later, records its deployed network here by calling ``finish``.
        """
        io.save_model(self._path(io.FINAL), model, config={"run": self.spec.config(), "final": True})
        return io.FINAL

    def evaluate(self, model, split="val", *, batch_size=1000, train=False, rng=None):
        """``(loss, accuracy)`` of ``model`` on the ``"train"``, ``"val"`` or ``"test"`` split.

        Test mode; ``train=True`` with ``rng``: the training-mode forward (:func:`evaluate`).
        """
        if split not in ("train", "val", "test"):
            msg = f"split must be 'train', 'val' or 'test', got split={split!r}"
            raise ValueError(msg)
        x, y = getattr(self.dataset, f"x_{split}"), getattr(self.dataset, f"y_{split}")
        return evaluate(model, x, y, backend=self.backend, batch_size=batch_size, train=train, rng=rng)

    def _write_metrics(self):
        io.write_csv(self._path("metrics.csv"), self.rows)

    def write_table(self, name, rows):
        """Write ``rows`` (dicts) as ``<out>/<name>.csv``; returns the file name."""
        io.write_csv(self._path(f"{name}.csv"), rows)
        return f"{name}.csv"

    def finish(self, result, *, model, plot=None, tables=None):
        """Write ``result.json``, ``metrics.csv``, the tables and ``plot.png``; return the result dict.

        ``result`` holds the method's keys (``test_accuracy`` at least); the measures of
        ``model`` as the test-time network computes (:func:`refprune.measures.summary`:
        weight sparsity, architecture before -> after, nonzero weights) and the common
        keys are added. ``plot(path)`` draws the figure (matplotlib; skipped with a note
        when it is not installed); ``tables`` maps names to lists of row dicts.
        """
        spec = self.spec
        result = {
            "method": spec.method, "dataset": spec.data, "backend": spec.backend,
            "device": str(self.backend.device), "seed": spec.seed, "model": spec.model, "epochs": spec.epochs,
            "steps": self.steps, "train_seconds": self.clock.seconds, **measures.summary(model), **result,
            "config": spec.config(), "environment": environment(self.backend),
        }
        if self._extended:  # resumed with more epochs than the run was started with
            result["epochs_extended"] = self._extended
        files = {"result": "result.json", "metrics": "metrics.csv"}
        self._write_metrics()
        for name, rows in (tables or {}).items():
            files[name] = self.write_table(name, rows)
        if plot is not None:
            reason = _plot_unavailable()
            if reason is None:
                plot(os.path.join(self.out, "plot.png"))
                files["plot"] = "plot.png"
            else:
                result["plot_skipped"] = reason
                _warn_once(f"plot.png skipped: {reason}")
        files["final"] = self._save_final(model)
        if os.path.exists(self.checkpoint_file):
            files["checkpoint"] = CHECKPOINT
        result["files"] = files
        result["out"] = self.out
        io.write_json(os.path.join(self.out, "result.json"), result)
        return result


# ---------------------------------------------------------------------------------- helpers


def _postfix(epoch, row):
    shown = [f"epoch {epoch}"]
    for key in ("val_accuracy", "val_accuracy_u", "loss"):
        if key in row:
            shown.append(f"{key} {row[key]:.3f}")
    return ", ".join(shown)


class _NoBar:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n):
        pass

    def set_postfix_str(self, text, refresh=True):
        pass


def _progress(*, total, desc, quiet):
    """One tqdm bar over a phase's steps on a terminal; nothing otherwise."""
    if quiet or not sys.stderr.isatty():
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True, unit="step")


_WARNED = set()


def _warn_once(message):
    if message not in _WARNED:
        _WARNED.add(message)
        print(f"note: {message}", file=sys.stderr)
