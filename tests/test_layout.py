"""The folders on disk are the import packages: a checkout imports its own code, installed or not."""

import pathlib
import subprocess
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_every_package_is_the_folder_of_its_dotted_name():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    assert "package-dir" not in config, "no package-dir mapping: the folders are the import packages"
    for package in config["packages"]:
        folder = ROOT.joinpath(*package.split("."))
        assert folder.is_dir(), f"{package} is not the folder {folder.relative_to(ROOT)}"


def test_a_plain_checkout_imports_its_own_backends_and_suite(tmp_path):
    """Only the checkout on the path (no install consulted first): every package comes from it."""
    code = ("import refprune.backends, refprune.conformance, refprune.conformance.targets; "
            "print(refprune.backends.__file__); print(refprune.conformance.__file__)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False,
                          env={"PYTHONPATH": str(ROOT), "PATH": "", "PYTHONNOUSERSITE": "1"})
    assert proc.returncode == 0, proc.stderr
    for line in proc.stdout.split():
        assert pathlib.Path(line).resolve().is_relative_to(ROOT / "refprune"), line


def _top_level_names(path):
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.ClassDef)}
    names |= {target.id for node in tree.body if isinstance(node, ast.Assign) for target in node.targets
              if isinstance(target, ast.Name)}
    return names


def test_the_engine_module_holds_the_loop_and_its_old_names_still_import():
    """Run settings, optimizers, the result record and the checkpoint's phase state live in their own modules."""
    from refprune import checkpoints, engine, optimizers, results, runspec

    homes = {runspec: ("RunSpec", "OUTSIDE_KEY"), optimizers: ("Optimizer", "adam", "sgd"),
             results: ("COMMON_KEYS", "environment"), checkpoints: ("CHECKPOINT", "checkpoint_path")}
    for module, names in homes.items():
        for name in names:
            assert getattr(engine, name) is getattr(module, name), name
    defined = _top_level_names(ROOT / "refprune" / "engine.py")
    moved = {"RunSpec", "OUTSIDE_KEY", "Optimizer", "adam", "sgd", "COMMON_KEYS", "environment", "_PhaseState",
             "_check_resumable", "_check_same_network", "_stream_states", "_remove_run_files"}
    assert not defined & moved, sorted(defined & moved)
    assert {"Engine", "_Loop", "EarlyStopping", "evaluate"} <= defined
    assert "PhaseState" in _top_level_names(ROOT / "refprune" / "checkpoints.py")


def _module_path(package, dotted):
    """The folder or ``.py`` file of ``dotted`` under ``package``, or None when it names no module."""
    path = package.joinpath(*dotted.split("."))
    return path if path.is_dir() else path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def _private_uses(path):
    """``(line, what)`` for each private name ``path`` takes from a refprune module it imports.

    Both ways count: ``from refprune.x import _name`` and ``x._name`` on a module bound by
    ``import refprune.x as x`` or ``from refprune import x``. Private *modules*
    (``refprune._array``) are fine to import; their public names are their interface.
    """
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    modules, found = {}, []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {alias.asname: ROOT / alias.name.replace(".", "/") for alias in node.names
                        if alias.asname and alias.name.startswith("refprune.")}
        if not isinstance(node, ast.ImportFrom) or not (node.level or (node.module or "").startswith("refprune")):
            continue
        package = path.parent.joinpath(*[".."] * (node.level - 1)) if node.level else ROOT
        package = package.joinpath(*(node.module or "").split(".")) if node.module else package
        for alias in node.names:
            module = _module_path(package, alias.name)
            if module is not None:
                modules[alias.asname or alias.name] = module
            elif alias.name.startswith("_"):
                found.append((node.lineno, f"imports {alias.name} from {node.module or '.'}"))
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules
                and node.attr.startswith("_") and not node.attr.startswith("__")
                and _module_path(modules[node.value.id].with_suffix(""), node.attr) is None):
            found.append((node.lineno, f"uses {node.value.id}.{node.attr}"))
    return found


def test_no_module_imports_another_modules_private_name():
    """What modules share is a public helper of its module (``masks.keep_flat``, ``_array.check_int``)."""
    found = []
    for folder in ("refprune", "benchmarks", "scripts"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith("refprune/conformance/"):
                continue  # the conformance suite's independent implementations and peers import nothing of ours
            found += [f"{rel}:{line} {what}" for line, what in _private_uses(path)]
    assert not found, "\n".join(found)
