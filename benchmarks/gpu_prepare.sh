#!/usr/bin/env bash
# Here, with network to PyPI: the wheels the GPU machine lacks (pure Python, and MPICH's
# for mpi4py, 13 MB), into .whl/
# (ignored by git), for benchmarks/gpu_run.sh. See benchmarks/README.md, "Running on a GPU machine".
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 -d .whl \
    array-api-compat array-api-extra array-api-strict hypothesis attrs sortedcontainers
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux_2_28_x86_64 -d .whl mpich
ls .whl
