#!/usr/bin/env bash
# Installs hopgrad's build dependencies from Debian's packages (bookworm). Safe to re-run.
#   oneDNN 2.6 (CPU backend), fmt (formatting), doctest (tests), CMake + Ninja + g++ (build).
#   CLI11 (example flags), zlib (gzip datasets), nlohmann-json (safetensors headers).
# The CUDA backend is built too when the CUDA toolkit (nvcc) is present, e.g. at /usr/local/cuda.
set -euo pipefail
packages=(build-essential cmake ninja-build libdnnl-dev libfmt-dev doctest-dev libcli11-dev zlib1g-dev nlohmann-json3-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi
