"""A checkpoint written before ``Engine.once`` recorded its steps (no ``once`` in the engine's records).

Such a lottery checkpoint, resumed by the current code, re-ran ``ticket 0`` and each
finished round: their training was skipped (the phases were recorded) but each was
recorded again from the weights as they are now (measured on checkpoints written by
the code before the phase API, commit 6b912b8^: rounds ``[0, 0, 1, 2]`` with round 0's
accuracy that of round 1). The engine refuses it at the first ``once`` step, before
writing anything; a method that never calls ``once`` resumes such a checkpoint as before.
"""

from __future__ import annotations

import pytest

from refprune import engine, io, methods

TINY = {"data": "synthetic", "subset": 100, "epochs": 2, "batch_size": 50, "quiet": True, "threads": 1}


def _as_before_once(folder):
    """Rewrite ``folder``'s checkpoint as the code before ``once`` wrote it: its engine records lack ``once``."""
    path = folder / "checkpoint.npz"
    ckpt = io.load_checkpoint(path)
    config = dict(ckpt.config)
    config["engine"] = {k: v for k, v in config["engine"].items() if k not in ("once", "extended")}
    path.unlink()
    io.save_checkpoint(path, params=ckpt.params, masks=ckpt.masks, optimizer_state=ckpt.optimizer_state,
                       rng_state=ckpt.rng_state, step=ckpt.step, config=config, extra=ckpt.extra)
    return path


def _interrupted(method, folder, polls, interrupt_after, monkeypatch, **options):
    interrupt_after(polls)
    with pytest.raises(engine.Interrupted):
        methods.run(method, out=str(folder), **TINY, **options)
    monkeypatch.undo()
    return _as_before_once(folder)


def test_an_old_lottery_checkpoint_is_refused_not_rerun(tmp_path, interrupt_after, monkeypatch):
    options = {"model": "mlp-300-100", "rounds": 2}
    path = _interrupted("lottery", tmp_path / "run", 12, interrupt_after, monkeypatch, **options)  # in round 1
    assert [t["round"] for t in io.load_checkpoint(path).config["extra"]["tickets"]] == [0]
    before = path.read_bytes()
    message = r"from before one-off steps were recorded .*'ticket 0'.* start the run again without --resume"
    with pytest.raises(ValueError, match=message):
        methods.run("lottery", resume=str(tmp_path / "run"), **TINY, **options)
    assert path.read_bytes() == before and not (tmp_path / "run" / "result.json").exists()


def test_a_method_without_once_still_resumes_an_old_checkpoint(tmp_path, interrupt_after, monkeypatch):
    straight = methods.run("dense", model="mlp-300-100", out=str(tmp_path / "straight"), **TINY)
    _interrupted("dense", tmp_path / "run", 3, interrupt_after, monkeypatch, model="mlp-300-100")
    resumed = methods.run("dense", model="mlp-300-100", resume=str(tmp_path / "run"), **TINY)
    assert resumed["test_accuracy"] == straight["test_accuracy"] and resumed["steps"] == straight["steps"]
