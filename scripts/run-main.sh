#!/usr/bin/env bash
# Installs the dependencies, builds, and runs the main job: training an MLP classifier and printing its loss.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
build/examples/train_mlp "$@"
