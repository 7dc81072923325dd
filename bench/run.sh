#!/usr/bin/env bash
# The benchmark suite, both sides in one go: builds the bench programs (Release), measures the machine's fp32 FMA
# peak (bench_fma_peak), then runs every workload (bench/<w>.cpp and its PyTorch twin bench/torch/<w>.py) at each
# thread count, one process per (workload, side, threads), so each peak RSS belongs to one configuration; the two
# sides alternate which goes first, so a slow drift of the shared machine hits both alike. All rows go to one
# CSV; bench/report.py turns it into the table (docs/performance.md).
#
#   bench/run.sh                                         # every workload, 1 and 2 threads (a few minutes)
#   bench/run.sh --workloads=mil_pool,matmul --threads=2
#   bench/run.sh --min-repeats=30 --sizes=512,1024       # more timed steps; matmul sizes
#   bench/run.sh --update-docs                           # also writes the table into docs/performance.md
#
# BUILD_DIR (default build-bench) is configured as a Release build when it has none; OUT_DIR (default a fresh
# temporary directory) receives results.csv, meta.txt (machine, versions, load) and report.md.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD_DIR:-$root/build-bench}
out=${OUT_DIR:-$(mktemp -d -t hopgrad-bench-XXXXXX)}
python=/usr/bin/python3  # Debian's, which has torch (not the python3 first on PATH)
# The reference workloads in ../shared/docs/benchmarks.md's order; others with both programs follow.
canonical=(hopfield_attention vit_tiny deeprc mil_pool memory_retrieval mlp_small matmul)

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit "${1:-0}"; }
workloads="" threads=1,2 update_docs=0 common=() sizes=()
for arg in "$@"; do
  case $arg in
    --workloads=*) workloads=${arg#*=} ;;
    --threads=*) threads=${arg#*=} ;;
    --min-repeats=* | --warmup=* | --seed=*) common+=("$arg") ;;
    --sizes=*) sizes=("$arg") ;;
    --update-docs) update_docs=1 ;;
    -h | --help) usage ;;
    *) echo "run.sh: unknown argument '$arg'" >&2; usage 2 >&2 ;;
  esac
done

has_programs() { [[ -f $root/bench/$1.cpp && -f $root/bench/torch/$1.py ]]; }
selected=()
if [[ -n $workloads ]]; then
  IFS=, read -ra selected <<<"$workloads"
  for w in "${selected[@]}"; do
    has_programs "$w" || { echo "run.sh: no workload '$w' (needs bench/$w.cpp and bench/torch/$w.py)" >&2; exit 2; }
  done
else
  for w in "${canonical[@]}"; do
    if has_programs "$w"; then selected+=("$w"); else echo "run.sh: skipping $w: its programs do not exist yet" >&2; fi
  done
  for py in "$root"/bench/torch/*.py; do
    w=$(basename "$py" .py)
    [[ " ${canonical[*]} " == *" $w "* ]] || ! has_programs "$w" || selected+=("$w")
  done
fi
IFS=, read -ra thread_counts <<<"$threads"

# ---- build ----------------------------------------------------------------------------------------------------
if [[ ! -f $build/build.ninja ]]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DHOPGRAD_CUDA=OFF -DHOPGRAD_BUILD_BENCH=ON \
        -DHOPGRAD_BUILD_EXAMPLES=OFF >/dev/null
fi
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$build/CMakeCache.txt")
[[ $build_type == Release ]] || echo "run.sh: warning: $build is a '$build_type' build; timings need Release" >&2
targets=(bench_fma_peak)
for w in "${selected[@]}"; do targets+=("bench_$w"); done
mkdir -p "$out"
echo "== building ${targets[*]} in $build" >&2
if ! ninja -C "$build" -j"${JOBS:-2}" "${targets[@]}" >"$out/build.log" 2>&1; then
  grep -E -A5 'error|FAILED' "$out/build.log" | head -40 >&2
  echo "run.sh: the build failed (full log: $out/build.log)" >&2
  exit 1
fi

# ---- what and where ---------------------------------------------------------------------------------------------
csv=$out/results.csv
started=$(date +%s)
{
  echo "command=bench/run.sh${*:+ $*}"
  echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
  cpu_field() { grep -m1 "^$1[[:space:]]*:" /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'; }
  echo "cpu=$(cpu_field 'model name') (x86 family $(cpu_field 'cpu family'), model $(cpu_field model))"
  echo "cpus=$(nproc)"
  echo "hopgrad=$(git -C "$root" rev-parse --short HEAD 2>/dev/null)$(git -C "$root" diff --quiet HEAD -- 2>/dev/null || echo '+local changes')"
  echo "compiler=$("$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$build/CMakeCache.txt")" --version | head -1)"
  echo "onednn=$(dpkg-query -W -f='${Version}' libdnnl2 2>/dev/null || true)"
  echo "torch=$($python -c 'import torch; print(torch.__version__)' 2>/dev/null) (Debian python3-torch $(dpkg-query -W -f='${Version}' python3-torch 2>/dev/null || echo '?'))"
  echo "python=$($python -c 'import platform; print(platform.python_version())')"
  echo "openblas=$(dpkg-query -W -f='${Version}' libopenblas0-openmp 2>/dev/null || true) (OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-SkylakeX})"
  echo "load_start=$(cut -d' ' -f1-3 /proc/loadavg)"
} >"$out/meta.txt"

# ---- run --------------------------------------------------------------------------------------------------------
total=$((1 + ${#selected[@]} * ${#thread_counts[@]} * 2))
done_count=0 failures=()
progress() {
  done_count=$((done_count + 1))
  printf '[%2d/%d %4ds] %s\n' "$done_count" "$total" "$(($(date +%s) - started))" "$1" >&2
}
run_side() {  # workload side threads
  local w=$1 side=$2 t=$3 extra=()
  [[ $w == matmul ]] && extra+=("${sizes[@]}")
  progress "$w · $side · $t thread$([[ $t == 1 ]] || echo s)"
  if [[ $side == hopgrad ]]; then
    "$build/bench/bench_$w" --threads="$t" --csv="$csv" "${common[@]}" "${extra[@]}" || failures+=("$w $side $t")
  else
    OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-SkylakeX} \
      "$python" "$root/bench/torch/$w.py" --threads="$t" --csv="$csv" "${common[@]}" "${extra[@]}" ||
      failures+=("$w $side $t")
  fi
}

progress "fma_peak · ${threads} threads"
"$build/bench/bench_fma_peak" --threads="$threads" --min-repeats=100 --csv="$csv" || failures+=("fma_peak")
hopgrad_first=1
for w in "${selected[@]}"; do
  for t in "${thread_counts[@]}"; do
    if ((hopgrad_first)); then run_side "$w" hopgrad "$t"; run_side "$w" pytorch "$t"
    else run_side "$w" pytorch "$t"; run_side "$w" hopgrad "$t"; fi
    hopgrad_first=$((1 - hopgrad_first))
  done
done
{
  echo "load_end=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "duration_s=$(($(date +%s) - started))"
} >>"$out/meta.txt"

# ---- report -----------------------------------------------------------------------------------------------------
echo >&2
report_args=("$csv")
((update_docs)) && report_args+=(--update-docs "$root/docs/performance.md")
"$python" "$root/bench/report.py" "${report_args[@]}" | tee "$out/report.md"
echo >&2
echo "results: $out (results.csv, meta.txt, report.md)" >&2
if ((${#failures[@]})); then
  echo "run.sh: failed: ${failures[*]}" >&2
  exit 1
fi
