#!/usr/bin/env bash
# Downloads the Debian packages (bookworm, amd64) that hopgrad's build needs and the GPU machine lacks into .debs/ at
# the repository's root, for scripts/device-bench.sh to unpack there into a private prefix (that machine reaches no
# package registry: copy .debs/ there with the repository). Run once, on a machine with network access; safe to
# re-run.
#
#   scripts/device-debs.sh            # → .debs/*.deb (about 10 MiB), and .debs ignored through .git/info/exclude
#
# The GPU machine's image has CUDA 13 (nvcc, cuBLAS), CMake, ninja, a host C++ compiler and PyTorch; what it lacks
# is the libraries and headers below. Runtime libraries come with their -dev packages because the -dev package's
# unversioned .so link points into them.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
packages=(
  libdnnl2 libdnnl-dev  # oneDNN 2.6: the CPU backend (the CUDA build links it too)
  # Debian's oneDNN links libOpenCL.so.1, and its CMake package asks for OpenCL (headers and the loader's link)
  ocl-icd-libopencl1 ocl-icd-opencl-dev opencl-c-headers
  libfmt9 libfmt-dev    # fmt 9: formatting, in every public header
  zlib1g zlib1g-dev     # gzip streams of the dataset readers
  doctest-dev           # the tests (header-only)
  libcli11-dev          # command-line flags (header-only)
  nlohmann-json3-dev    # safetensors headers (header-only)
)

exclude=$(git -C "$root" rev-parse --git-path info/exclude)
[[ $exclude == /* ]] || exclude=$root/$exclude
mkdir -p "$(dirname "$exclude")"
grep -qxF '/.debs/' "$exclude" 2>/dev/null || echo '/.debs/' >>"$exclude"

mkdir -p "$root/.debs"
cd "$root/.debs"
rm -f ./*.deb
# amd64 whatever this machine is (the GPU machine is x86-64), from this machine's package lists.
apt-get -q -oAPT::Architecture=amd64 download "${packages[@]}"
du -ch ./*.deb | tail -1
echo "device-debs: ${#packages[@]} packages in $root/.debs (ignored by git; copy it to the GPU machine with the repository)"
