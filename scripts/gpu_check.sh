#!/usr/bin/env bash
# The GPU check of issue 15, in one command: versions, the unit tests' GPU parametrizations,
# the conformance suite on cupy and torch-cuda, every method for one short epoch on cupy and
# torch-cuda (synthetic and digits), the GPU benchmarks, and ONE summary file. About 5 minutes
# on one H200; each stage has its own time limit (8 minutes in all at most).
#
#   bash scripts/gpu_check.sh                   # summary: runs/gpu-check/gpu_summary.md
#   bash scripts/gpu_check.sh --out DIR         # DIR/gpu_summary.md and DIR/gpu_logs.tar.gz
#   bash scripts/gpu_check.sh --dry-run         # every stage on the CPU (torch, numpy), tiny sizes
#   bash scripts/gpu_check.sh --help            # stages, time limits, options
#
# Exit status 0 when every stage passed, 1 otherwise. PYTHON=... picks the interpreter
# (default python3: on the GPU machine, the one that has torch, CuPy and JAX).
#
# No network is needed on the GPU machine. refprune is installed from this checkout with
#   pip install --no-index --no-deps --no-build-isolation --target <fresh folder> .
# (put first on PYTHONPATH; needs setuptools, else the package-dir layout is linked), and the
# pure-Python dependencies that the GPU image lacks (array-api-compat, and array-api-strict for
# the tests) come as wheels from the ignored folder .whl/. Prepare them ONCE, on a machine
# with a network, in the root of the checkout that travels to the GPU machine:
#
#   bash scripts/gpu_check.sh --prepare-wheels
#
# which runs (with the versions installed here, else the ones below):
#
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
#       --platform manylinux2014_x86_64 -d .whl array-api-compat==1.16.0 array-api-strict==2.6.1
#
# Everything else refprune needs (numpy, scipy, scikit-learn, tqdm, threadpoolctl, torch,
# cupy, pytest, hypothesis, matplotlib) is in the GPU image. Then, from a session that has a
# GPU machine (the device tool), with .whl carried:
#
#   run(command="bash scripts/gpu_check.sh --out $OUT", carry=[".whl"], timeout_s=600)
#
# and read $OUT/gpu_summary.md. refprune itself imports from the checkout (its folders are
# the import packages).
set -u
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "${PYTHON:-python3}" "$HERE/gpu_check.py" "$@"
