#!/usr/bin/env bash
# bench_core (hopgrad) and torch_core.py (PyTorch) on the same workloads, then both side by side with ratios.
#
#   bench/run_core.sh                       # threads 1,2; matmul n = 256…2048
#   bench/run_core.sh --threads=1 --sizes=512,1024
#
# Flags are passed to both programs (--threads, --sizes, --min-repeats). BUILD_DIR (default build-bench) is
# configured as a Release build and bench_core built there when needed. The CSVs are kept in OUT_DIR
# (default: a fresh temporary directory), whose path is printed at the end.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD_DIR:-$root/build-bench}
out=${OUT_DIR:-$(mktemp -d -t hopgrad-bench-XXXXXX)}
mkdir -p "$out"

if [[ ! -f $build/build.ninja ]]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DHOPGRAD_CUDA=OFF \
        -DHOPGRAD_BUILD_BENCH=ON >/dev/null
fi
ninja -C "$build" bench_core >/dev/null

echo "== machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== hopgrad"
"$build/bench/bench_core" --csv="$out/hopgrad.csv" "$@"
echo
echo "== PyTorch"
# OpenBLAS 0.3.21 does not recognise this CPU; without the core type it runs SSE3 kernels (~5x slower GEMM).
OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-SkylakeX} /usr/bin/python3 "$root/bench/torch_core.py" --csv="$out/torch.csv" "$@"
echo
echo "== side by side (speed-up = PyTorch median time / hopgrad median time)"
/usr/bin/python3 "$root/bench/compare.py" "$out/hopgrad.csv" "$out/torch.csv"
echo
echo "CSV files: $out"
