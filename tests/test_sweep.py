"""refprune sweep: the grid, the folders, skip and resume, a killed worker, the outputs, the command line."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import signal
import sys
import threading
import time

import pytest

from refprune import engine, methods, sweep
from refprune.cli import build_parser, main
from refprune.cli import sweep as sweep_cli
from refprune.methods import _registry

#: Small runs: one epoch of 120 digits images, a small MLP.
SMALL = {"data": ["digits"], "model": ["mlp-300-100"], "subset": [120], "batch_size": [40], "epochs": [1]}


@pytest.fixture
def target_method(monkeypatch):
    """A method registered with a target-sparsity option (like gmp/snip/set/rigl will be), for the grid tests."""
    base = methods.get("magnitude")
    option = _registry.Option("sparsity", 0.5, "target weight sparsity", low=0, high=1)
    fake = dataclasses.replace(base, name="fake-target", options=(*base.options, option), sparsity_option="sparsity")
    monkeypatch.setitem(_registry.METHODS, "fake-target", fake)
    return fake


# ---------------------------------------------------------------------------------- the grid


def test_split_values():
    lam_l0 = methods.get("l0").option("lam")
    assert sweep.split_values("1e-3,2e-3") == ["1e-3", "2e-3"]
    assert sweep.split_values("0.001") == ["0.001"]
    assert sweep.split_values("10,0.5,0.1,0.1", lam_l0) == ["10,0.5,0.1,0.1"]  # one per-layer value
    assert sweep.split_values("10,0.5,0.1,0.1;1,0.05,0.01,0.2", lam_l0) == ["10,0.5,0.1,0.1", "1,0.05,0.01,0.2"]
    assert sweep.split_values("fc1;conv2,fc1") == ["fc1", "conv2,fc1"]


def test_expand_is_methods_by_seeds_by_options_with_one_folder_per_key(tmp_path):
    grid = sweep.Grid(["l0", "rvsm"], seeds=[0, 1], options={**SMALL, "lr": ["1e-3", "2e-3"], "gate_lr": [0.05]})
    specs = sweep.expand(grid, out=tmp_path)
    assert len(specs) == 2 * 2 * 2
    assert len({s.key() for s in specs}) == 8 and len({s.out for s in specs}) == 8
    for spec in specs:
        assert os.path.dirname(spec.out) == str(tmp_path)
        assert os.path.basename(spec.out) == os.path.basename(spec.default_out())
        assert spec.out.endswith(spec.key()) and spec.threads == 1 and spec.quiet
    assert {s.options.get("gate_lr") for s in specs if s.method == "l0"} == {0.05}
    assert all("gate_lr" not in s.options for s in specs if s.method == "rvsm")  # only l0 takes it
    assert {(s.method, s.seed, s.lr) for s in specs} == {(m, seed, lr) for m in ("l0", "rvsm") for seed in (0, 1)
                                                         for lr in (1e-3, 2e-3)}


def test_sparsity_sets_the_declared_option_and_the_others_run_once(tmp_path, target_method):
    grid = sweep.Grid(["fake-target", "l0"], sparsity=[0.5, 0.9], seeds=[0, 1], options=SMALL)
    specs = sweep.expand(grid, out=tmp_path)
    fake = [s for s in specs if s.method == "fake-target"]
    assert sorted((s.options["sparsity"], s.seed) for s in fake) == [(0.5, 0), (0.5, 1), (0.9, 0), (0.9, 1)]
    assert len([s for s in specs if s.method == "l0"]) == 2  # once per seed
    assert sweep.without_target(grid) == ["l0"]


def test_register_method_checks_the_sparsity_option():
    with pytest.raises(ValueError, match="sparsity_option='amount' is not one of its options"):
        _registry.register_method("bad", summary="x", defaults={"model": "m", "epochs": 1, "batch_size": 1, "lr": 1},
                                  sparsity_option="amount")


@pytest.mark.parametrize(
    ("grid", "match"),
    [
        (sweep.Grid(["nope"]), "unknown method 'nope'"),
        (sweep.Grid([]), "no methods"),
        (sweep.Grid(["rvsm"], options={"gate_lr": [0.1]}), "'gate_lr' is not taken by any of the methods rvsm"),
        (sweep.Grid(["rvsm"], options={"seed": [1]}), "use --seeds"),
        (sweep.Grid(["rvsm"], options={"out": ["x"]}), "set by the sweep itself"),
        (sweep.Grid(["rvsm"], options={"epochs": ["-1"]}), "rvsm: epochs: got -1"),
        (sweep.Grid(["rvsm"], method_options={"l0": {"lam": [1]}}), "method 'l0', which is not in the grid"),
        (sweep.Grid(["rvsm"], method_options={"rvsm": {"gate_lr": [1]}}), "takes no option 'gate_lr'"),
    ],
    ids=["method", "empty", "not-taken", "seed", "out", "value", "table-method", "table-option"],
)
def test_expand_errors_name_the_problem(tmp_path, grid, match):
    with pytest.raises(sweep.SweepError, match=match):
        sweep.expand(grid, out=tmp_path)


def test_toml_file_and_command_line(tmp_path):
    config = tmp_path / "grid.toml"
    config.write_text('methods = ["l0", "rvsm"]\nseeds = [0, 1, 2]\nepochs = 3\nlr = [1e-3, 2e-3]\nout = "from-file"\n'
                      '[l0]\nlam = ["10,0.5,0.1,0.1", "1,0.05,0.01,0.2"]\n')
    args = build_parser().parse_args(["sweep", "--config", str(config), "--seeds", "4", "--batch-size", "20,40",
                                      "--out", str(tmp_path / "cli")])
    grid, settings = sweep_cli.grid_from_args(args)
    assert grid.methods == ["l0", "rvsm"] and grid.seeds == [4]  # the command line wins
    assert grid.options["epochs"] == 3 and grid.options["lr"] == [1e-3, 2e-3]
    assert grid.options["batch_size"] == ["20", "40"]
    assert settings["out"] == str(tmp_path / "cli")
    specs = sweep.expand(grid, out=settings["out"])
    assert len(specs) == 2 * 2 * 2 + 2 * 2  # l0: lam x lr x batch; rvsm: lr x batch
    assert {tuple(s.options["lam"]) for s in specs if s.method == "l0"} == {(10, 0.5, 0.1, 0.1), (1, 0.05, 0.01, 0.2)}
    assert {s.options["lam"] for s in specs if s.method == "rvsm"} == {5e-4}  # [l0] is l0's alone


def test_toml_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("methods = [\n")
    with pytest.raises(sweep.SweepError, match="not valid TOML"):
        sweep.read_config(bad)
    bad.write_text('[nonsense]\nx = 1\n')
    with pytest.raises(sweep.SweepError, match=r"\[nonsense\] is not a method"):
        sweep.read_config(bad)
    with pytest.raises(sweep.SweepError, match="no such file"):
        sweep.read_config(tmp_path / "missing.toml")


# ---------------------------------------------------------------------------------- one run: skip and resume


def test_run_one_skips_a_complete_run_and_resumes_an_interrupted_one(tmp_path, monkeypatch, interrupt_after):
    grid = sweep.Grid(["l0"], options={**SMALL, "epochs": [3]})
    (spec,) = sweep.expand(grid, out=tmp_path / "sweep")
    straight = methods.execute(dataclasses.replace(spec, out=str(tmp_path / "straight")))

    interrupt_after(4)  # in the second epoch (3 steps an epoch)
    with pytest.raises(engine.Interrupted):
        sweep.run_one(spec.config())
    monkeypatch.undo()
    assert not os.path.exists(os.path.join(spec.out, "result.json"))
    record = sweep.run_one(spec.config())
    assert record["status"] == "done" and 0 < record["resumed_at_step"] < straight["steps"]
    assert record["result"]["test_accuracy"] == straight["test_accuracy"]
    assert record["result"]["steps"] == straight["steps"]

    stamp = os.stat(os.path.join(spec.out, "result.json")).st_mtime_ns
    again = sweep.run_one(spec.config())
    assert again["status"] == "skipped" and again["result"]["test_accuracy"] == straight["test_accuracy"]
    assert os.stat(os.path.join(spec.out, "result.json")).st_mtime_ns == stamp


def test_run_one_refuses_a_folder_of_another_run(tmp_path):
    (a, b) = sweep.expand(sweep.Grid(["rvsm"], seeds=[0, 1], options=SMALL), out=tmp_path)
    methods.execute(a)
    with pytest.raises(FileExistsError, match="holds another run's result.json"):
        sweep.run_one({**b.config(), "out": a.out})


# ---------------------------------------------------------------------------------- on a LocalCluster


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed", reason="dask[distributed] (the sweep extra) is not installed")
    import logging

    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                       silence_logs=logging.CRITICAL)
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_sweep_on_a_local_cluster_writes_every_run_and_resumes(tmp_path, client, capsys):
    grid = sweep.Grid(["l0"], seeds=[0, 1], options=SMALL)
    out = tmp_path / "sweep"
    summary = sweep.run_sweep(grid, out=out, client=client, poll=0.1)
    assert summary["counts"] == {"done": 2, "skipped": 0, "failed": 0}
    progress = capsys.readouterr().out
    assert "2/2 done, 0 running, 0 failed" in progress

    rows = _rows(out / "sweep.csv")
    assert len(rows) == 2 and {r["status"] for r in rows} == {"done"}
    assert {r["pid"] for r in summary["records"]} <= set(client.run(os.getpid).values())  # ran on the workers
    for row in rows:
        with open(os.path.join(row["out"], "result.json")) as f:
            result = json.load(f)
        assert float(row["test_accuracy"]) == result["test_accuracy"]
        assert os.path.basename(row["out"]).endswith(row["key"])
    with open(out / "sweep.json") as f:
        doc = json.load(f)
    (point,) = doc["points"]
    accs = [float(r["test_accuracy"]) for r in rows]
    assert point["method"] == "l0" and point["seeds"] == 2 and point["accuracy_mean"] == pytest.approx(sum(accs) / 2)
    assert (out / "sweep.png").stat().st_size > 10_000

    # The workers' numbers are those of the same run in this process.
    spec = sweep.expand(grid, out=out)[1]
    local = methods.execute(dataclasses.replace(spec, out=str(tmp_path / "local")))
    assert local["test_accuracy"] == next(r for r in doc["runs"] if r["key"] == spec.key())["test_accuracy"]

    # Run again with one more seed: the two complete runs are skipped, only the new one runs.
    more = sweep.run_sweep(sweep.Grid(["l0"], seeds=[0, 1, 2], options=SMALL), out=out, client=client, poll=0.1)
    assert more["counts"] == {"done": 1, "skipped": 2, "failed": 0}
    assert [r["status"] for r in more["runs"]] == ["skipped", "skipped", "done"]


def test_a_failed_run_is_reported_and_the_others_finish(tmp_path, client, capsys):
    grid = sweep.Grid(["l0", "rvsm"], options=SMALL, method_options={"rvsm": {"layers": ["no-such-layer"]}})
    summary = sweep.run_sweep(grid, out=tmp_path, client=client, poll=0.1)
    assert summary["counts"] == {"done": 1, "skipped": 0, "failed": 1}
    (failed,) = [r for r in summary["runs"] if r["status"] == "failed"]
    assert failed["method"] == "rvsm" and "no-such-layer" in failed["error"] and "\n" not in failed["error"]
    assert "failed: rvsm seed 0" in capsys.readouterr().out
    assert (tmp_path / "sweep.png").exists()  # the plot of what finished


@pytest.mark.slow
def test_a_killed_worker_costs_nothing_written(tmp_path, client):
    """Kill the worker process in the middle of a run: the run resumes from its checkpoint on a worker, and ends
    exactly as a run straight through."""
    grid = sweep.Grid(["l0"], options={"data": ["digits"], "epochs": [8], "subset": [400], "batch_size": [50]})
    (spec,) = sweep.expand(grid, out=tmp_path / "sweep")
    checkpoint = os.path.join(spec.out, engine.CHECKPOINT)
    killed = {}

    def kill_when_checkpointed():
        deadline = time.monotonic() + 120
        while not os.path.exists(checkpoint) and time.monotonic() < deadline:
            time.sleep(0.02)
        key = f"refprune-run-{spec.key()}"
        worker = next(w for w, keys in client.processing().items() if key in keys)
        pid = client.run(os.getpid, workers=[worker])[worker]
        os.kill(pid, signal.SIGKILL)
        killed.update(pid=pid, time=time.monotonic())

    killer = threading.Thread(target=kill_when_checkpointed, daemon=True)
    killer.start()
    summary = sweep.run_sweep(grid, out=tmp_path / "sweep", client=client, poll=0.1, stream=sys.stderr)
    killer.join(timeout=5)
    assert killed, "the worker was never killed"
    (row,) = summary["runs"]
    assert row["status"] == "done" and row["resumed_at_step"] and row["resumed_at_step"] >= 8  # after epoch 1
    straight = methods.execute(dataclasses.replace(spec, out=str(tmp_path / "straight")))
    assert row["test_accuracy"] == straight["test_accuracy"]
    with open(os.path.join(spec.out, "metrics.csv")) as f:
        epochs = [int(r["epoch"]) for r in csv.DictReader(f)]
    assert epochs == list(range(9))  # the epochs before the kill are kept, none twice


# ---------------------------------------------------------------------------------- the command line


@pytest.mark.slow
def test_cli_sweep_on_an_existing_scheduler(tmp_path, capsys, client):
    out = tmp_path / "cli"
    code = main(["sweep", "--methods", "rvsm", "--subset", "120", "--epochs", "1", "--model", "mlp-300-100",
                 "--batch-size", "40", "--scheduler", client.scheduler.address, "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "1 ran, 0 already complete" in text and "rvsm: test accuracy" in text
    assert len(_rows(out / "sweep.csv")) == 1


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--methods", "rvsm", "--gate-lr", "0.1"], "'gate_lr' is not taken by any of the methods rvsm"),
        (["--methods", "rvsm", "--sparsity", "1.5"], "each target must be in"),
        (["--methods", "rvsm", "--seeds", "a"], "--seeds: expected a comma list of numbers"),
        (["--methods", "rvsm", "--epochs", "x"], "rvsm: epochs: expected an integer"),
    ],
)
def test_cli_sweep_errors_are_one_line(tmp_path, capsys, argv, match):
    with pytest.raises(SystemExit) as info:
        main(["sweep", *argv, "--out", str(tmp_path / "x")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and match in err, err


def test_cli_sweep_without_dask_names_the_pip_command(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    with pytest.raises(SystemExit) as info:
        main(["sweep", "--methods", "rvsm", "--out", str(tmp_path / "x")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'refprune[sweep]'" in err
