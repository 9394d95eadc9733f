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
