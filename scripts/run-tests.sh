#!/usr/bin/env bash
# Installs the dependencies, builds, and runs the whole test suite (CUDA cases skip, visibly, without a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh "$@"
ctest --test-dir build --output-on-failure
# doctest's own summary (passed / failed / skipped test cases) from the run above.
grep -h -E "^\[doctest\] (test cases|assertions):" build/Testing/Temporary/LastTest.log || true
