#!/usr/bin/env bash
# Installs the dependencies, builds, and runs the whole test suite (CUDA cases skip, visibly, without a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh "$@"
ctest --test-dir build --output-on-failure
