"""The ``compact`` and ``export`` commands: a run's network made smaller, or written for other frameworks.

Both read the network a run's result describes, ``RUN_DIR/final.npz`` (written by
``Engine.finish``: the deployed weights, e.g. RVSM's ``u`` or the binarized weights,
with the masks), or a compacted ``model.npz``.
"""

from __future__ import annotations

import os
import time

from ._format import ArgumentFormatter, fail


def add_commands(sub):
    """Add ``compact`` and ``export`` to the CLI's subparsers."""
    p = sub.add_parser("compact", help="rebuild a run's network without its dead units (same outputs, fewer FLOPs)",
                       formatter_class=ArgumentFormatter,
                       description="Remove every unit of the run's final network that cannot affect the output "
                       "(closed L0 gates, pruned units and channels, units cut off from the input or the output; "
                       "constants folded into the next bias) and write the smaller network: DIR/model.npz "
                       "(loadable with --init-from and refprune.io.load_weights), DIR/model.safetensors (when "
                       "safetensors is installed) and DIR/compact.json (architecture, parameters, FLOPs and test "
                       "accuracy before and after, and the largest difference of the logits on the test set).")
    p.add_argument("run", metavar="RUN_DIR", help="a run folder (its final.npz) or a final.npz")
    p.add_argument("--out", default=None, metavar="DIR", help="output folder (default: RUN_DIR/compact)")
    p.add_argument("--overwrite", action="store_true", help="replace what DIR holds")
    p.add_argument("--backend", default="numpy", help="array backend to compact and evaluate on")
    p.set_defaults(func=_cmd_compact, parser=p)
    p = sub.add_parser("export", help="write a run's network as a torch state_dict or safetensors",
                       formatter_class=ArgumentFormatter,
                       description="Write the run's final network for other frameworks: --format torch writes "
                       "DIR/model.pt, a state_dict of the equivalent torch.nn.Sequential (refprune.io.torch_module; "
                       "dense weights transposed to torch's (out, in), L0 gates folded in, masks in "
                       "torch.nn.utils.prune's weight_orig/weight_mask form or baked in); --format safetensors "
                       "writes DIR/model.safetensors, every array under refprune's names with the masks and JSON "
                       "metadata (method, config, architecture): the format for JAX and other tools. DIR/model.json "
                       "describes the export: what the network reads (inputs: e.g. binary's binarized pixels), the "
                       "run's config, the layers and the architecture.")
    p.add_argument("run", metavar="RUN_DIR", help="a run folder (its final.npz), a final.npz or a compacted model.npz")
    p.add_argument("--format", required=True, choices=("torch", "safetensors"), help="what to write")
    p.add_argument("--masks", default="prune", choices=("prune", "baked"),
                   help="torch: masks as torch.nn.utils.prune's weight_orig + weight_mask, or baked into weight")
    p.add_argument("--out", default=None, metavar="DIR", help="output folder (default: RUN_DIR/export)")
    p.add_argument("--overwrite", action="store_true", help="replace what DIR holds")
    p.set_defaults(func=_cmd_export, parser=p)


def _out_folder(args, default_name, files):
    """The output folder, checked (not created: nothing is left behind by a command that fails later)."""
    from refprune import io

    base = args.run if os.path.isdir(args.run) else os.path.dirname(args.run) or "."
    out = args.out or os.path.join(base, default_name)
    held = [f for f in files if os.path.exists(os.path.join(out, f))]
    if held and not args.overwrite:
        fail(args.parser, f"{out} already holds {', '.join(held)}; pass --overwrite to replace them or choose "
                           "another --out")
    problem = io.folder_problem(out)
    if problem is not None:
        fail(args.parser, f"--out {out}: {problem}")
    return out


def _make_folder(args, out):
    from refprune import io

    try:
        io.make_folder(out)
    except ValueError as exc:
        fail(args.parser, str(exc))


def load_run_network(path, *, backend):
    """``(model, info)``: the network in ``path`` (a run folder, its final.npz, or a compacted model.npz) rebuilt
    on ``backend``, and ``info`` = ``{"file", "run", "method"}`` (``run`` the run's config when recorded)."""
    from refprune import checkpoints, io
    from refprune.io import interop as io_interop

    file = io_interop.resolve(path)
    ckpt = io.load_checkpoint(file) if file.suffix == ".npz" else None
    model = io.load_model(file, backend=backend)
    run = checkpoints.run_settings(ckpt.config) if ckpt is not None else None
    return model, {"file": str(file), "run": run, "method": (run or {}).get("method")}


def run_test_data(run, *, backend, dtype):
    """The test split a run's network reads: the run's data set (subset, seed) through its method's ``inputs`` hook."""
    from refprune import data as datasets
    from refprune import methods

    ds = datasets.subset(datasets.load(run["data"], run.get("data_dir"), seed=run.get("seed", 0)), run.get("subset", 0))
    method = methods.get(run["method"])
    return method.prepare(ds, run.get("options", {}), backend=backend, dtype=dtype)


def _cmd_compact(args):
    import numpy as np

    from refprune import backends, compact, io
    from refprune.io import interop as io_interop
    from refprune.compaction import compaction_summary
    from refprune.engine import evaluate

    out = _out_folder(args, "compact", ("model.npz", "model.safetensors", "compact.json"))
    try:
        b = backends.get(args.backend)
        model, info = load_run_network(args.run, backend=b)
        start = time.perf_counter()
        small = compact(model)
        seconds = time.perf_counter() - start
    except (ValueError, FileNotFoundError, TypeError) as exc:
        fail(args.parser, str(exc))
    report = {"source": info["file"], "method": info["method"], "compact_seconds": seconds,
              **compaction_summary(model, small)}
    if info["run"] is not None:
        ds = run_test_data(info["run"], backend=b, dtype=model.dtype)
        report["test_accuracy"] = {"before": evaluate(model, ds.x_test, ds.y_test, backend=b)[1],
                                   "after": evaluate(small, ds.x_test, ds.y_test, backend=b)[1]}
        x = b.asarray(ds.x_test, dtype=model.dtype)
        before, after = b.to_numpy(model(x)), b.to_numpy(small(x))
        report["test_logits"] = {"max_abs_difference": float(np.max(np.abs(before - after))) if len(before) else 0.0,
                                 "same_predictions": bool(np.all(before.argmax(1) == after.argmax(1))),
                                 "dtype": model.dtype, "examples": len(before)}
    config = {"compact": {"source": info["file"], "run": info["run"], "method": info["method"]}}
    _make_folder(args, out)
    io.save_model(os.path.join(out, "model.npz"), small, config=config)
    files = ["model.npz"]
    if io_interop.safetensors_unavailable() is None:
        io.save_safetensors(os.path.join(out, "model.safetensors"), small,
                            metadata={"method": info["method"], "config": info["run"],
                                      "architecture": report["architecture"]})
        files.append("model.safetensors")
    else:
        report["safetensors_skipped"] = io_interop.safetensors_unavailable()
    report["files"] = [*files, "compact.json"]
    io.write_json(os.path.join(out, "compact.json"), report)
    flops, params = report["flops"], report["parameters"]
    print(f"architecture {report['architecture_string']}")
    print(f"parameters {params['before']} -> {params['after']} ({params['reduction']:.2f}x fewer), "
          f"FLOPs {flops['before']} -> {flops['after']} ({flops['reduction']:.2f}x fewer)")
    if "test_accuracy" in report:
        acc, diff = report["test_accuracy"], report["test_logits"]
        print(f"test accuracy {acc['before']:.4f} -> {acc['after']:.4f}; logits differ by at most "
              f"{diff['max_abs_difference']:.3g} ({diff['dtype']}), same predictions: {diff['same_predictions']}")
    print(f"wrote {', '.join(os.path.join(out, f) for f in report['files'])}")
    return 0


def inputs_note(run):
    """What the network reads (``model.json``'s ``inputs``): binary's binarized pixels, or the data as loaded."""
    if ((run or {}).get("options") or {}).get("binarize_input"):
        return "binarized: x >= 0.5 -> 1.0, else 0.0 (binary's --binarize-input); binarize the images first"
    return "the data set's images as refprune.data loads them"


def _cmd_export(args):
    from refprune import backends, io, measures
    from refprune.io import interop as io_interop
    from refprune.nn import describe

    name = "model.pt" if args.format == "torch" else "model.safetensors"
    out = _out_folder(args, "export", (name, "model.json"))
    reason = backends.unavailable_reason("torch") if args.format == "torch" else io_interop.safetensors_unavailable()
    if reason is not None:
        fail(args.parser, f"cannot write {name}: {reason}")
    try:
        model, info = load_run_network(args.run, backend=backends.get("numpy"))
    except (ValueError, FileNotFoundError, TypeError) as exc:
        fail(args.parser, str(exc))
    arch = measures.architecture(model)
    described = {"format": args.format, "file": name, "source": info["file"], "method": info["method"],
                 "inputs": inputs_note(info["run"]), "config": info["run"],
                 "network": model.config, "layers": describe(model), "architecture": arch,
                 "architecture_string": measures.architecture_string(arch)}
    _make_folder(args, out)
    if args.format == "torch":
        io.save_torch(os.path.join(out, name), model, masks=args.masks)
        described["masks"] = args.masks
        described["keys"] = list(io.torch_state_dict(model, masks=args.masks))
        described["mapping"] = ("refprune.io.interop: torch.nn.Sequential of the layers under their refprune names; "
                                "dense weight = w.T (torch (out, in)); L0 gates folded into weight and bias")
    else:
        io.save_safetensors(os.path.join(out, name), model, metadata={"method": info["method"], "config": info["run"],
                                                                        "architecture": arch})
    io.write_json(os.path.join(out, "model.json"), described)
    print(f"{info['method'] or 'network'} {described['architecture_string']}: wrote {os.path.join(out, name)} and "
          f"{os.path.join(out, 'model.json')}")
    return 0
