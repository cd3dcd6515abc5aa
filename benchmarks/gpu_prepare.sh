#!/usr/bin/env bash
# Here, with network to PyPI: the pure-Python wheels the GPU machine lacks, into .whl/
# (ignored by git), for benchmarks/gpu_run.sh. See benchmarks/README.md, "Running on a GPU machine".
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 -d .whl \
    array-api-compat array-api-strict hypothesis attrs sortedcontainers
ls .whl
