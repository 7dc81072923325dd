#!/usr/bin/env bash
# The benchmark suite, both sides in one go: builds the bench programs (Release), measures the machine's fp32 FMA
# peak (bench_fma_peak), then runs every workload (bench/<w>.cpp and its PyTorch twin bench/torch/<w>.py) at each
# thread count, one process per (workload, side, threads), so each peak RSS belongs to one configuration; the two
# sides alternate which goes first, so a slow drift of the shared machine hits both alike. All rows go to one
# CSV; bench/report.py turns it into the table (docs/performance.md). --rounds=N repeats the whole sequence N times
# (the alternation carries on across rounds); the table then gives per (workload, side, threads) the median of the
# N process medians, the least minimum and the median peak RSS, so that one disturbed process on a shared machine
# does not decide a goal. Where a twin has a --same-work variant (hopgrad's algebraic shortcuts written by hand in
# PyTorch: mil_pool, vit_tiny), it runs after each pair, and the report gives it a line of its own.
#
#   bench/run.sh                                         # every workload, 1 and 2 threads (a few minutes)
#   bench/run.sh --workloads=mil_pool,matmul --threads=2
#   bench/run.sh --min-repeats=30 --sizes=512,1024       # more timed steps; matmul sizes
#   bench/run.sh --update-docs                           # also writes the table into docs/performance.md
#   bench/run.sh --rounds=3                              # the whole alternating sequence three times
#   bench/run.sh --device=cuda --batch-scales=1,8        # on a GPU: both sides there, reference and 8× batches
#   bench/run.sh --no-build                              # BUILD_DIR's programs as they are (built elsewhere)
#
# --device=cuda: model, optimizer state and data on the GPU, every timed step ending with a device synchronize on
# both sides, PyTorch with TF32 off; one host thread unless --threads says otherwise; instead of the CPU's FMA peak,
# bench_gemm_efficiency times vit_tiny's and deeprc's GEMMs (at the same batch scales) against cuBLAS's best and
# measures the fp32 peak (gemm.csv). --batch-scales=1,8 runs each workload at those multiples of its batch (rows
# <workload>_x8; matmul runs once). BUILD_DIR (default build-bench, or build-bench-cuda with --device=cuda) is
# configured as a Release build when it has none; OUT_DIR (default a fresh temporary directory) receives results.csv,
# meta.txt (machine, versions, load), report.md (and gemm.csv on a GPU). PYTHON (default /usr/bin/python3, Debian's,
# which has torch here) runs the PyTorch side.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${OUT_DIR:-$(mktemp -d -t hopgrad-bench-XXXXXX)}
python=${PYTHON:-/usr/bin/python3}  # here Debian's, which has torch (not the python3 first on PATH)
# The reference workloads in ../shared/docs/benchmarks.md's order; others with both programs follow.
canonical=(hopfield_attention vit_tiny deeprc mil_pool memory_retrieval mlp_small matmul)

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit "${1:-0}"; }
workloads="" threads="" update_docs=0 common=() sizes=() device=cpu batch_scales=1 rounds=1 no_build=0
for arg in "$@"; do
  case $arg in
    --workloads=*) workloads=${arg#*=} ;;
    --threads=*) threads=${arg#*=} ;;
    --device=*) device=${arg#*=} ;;
    --batch-scales=*) batch_scales=${arg#*=} ;;
    --rounds=*) rounds=${arg#*=} ;;
    --min-repeats=* | --warmup=* | --seed=*) common+=("$arg") ;;
    --sizes=*) sizes=("$arg") ;;
    --update-docs) update_docs=1 ;;
    --no-build) no_build=1 ;;
    -h | --help) usage ;;
    *) echo "run.sh: unknown argument '$arg'" >&2; usage 2 >&2 ;;
  esac
done

case $device in
  cpu) threads=${threads:-1,2} build=${BUILD_DIR:-$root/build-bench} ;;
  cuda | cuda:[0-9]*) threads=${threads:-1} build=${BUILD_DIR:-$root/build-bench-cuda} ;;
  *) echo "run.sh: --device=$device: expected cpu, cuda or cuda:N" >&2; exit 2 ;;
esac
on_gpu() { [[ $device != cpu ]]; }
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: --rounds=$rounds: expected a positive integer" >&2; exit 2; }
IFS=, read -ra scales <<<"$batch_scales"
for s in "${scales[@]}"; do
  [[ $s =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: --batch-scales=$batch_scales: expected positive integers" >&2; exit 2; }
done

has_programs() { [[ -f $root/bench/$1.cpp && -f $root/bench/torch/$1.py ]]; }
has_same_work() { grep -q 'has_same_work=True' "$root/bench/torch/$1.py"; }
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

# Debian's PyTorch multiplies through whichever libblas.so.3 the alternatives system points at. Installed alone,
# python3-torch pulls in the reference BLAS (netlib), 20-40x slower than OpenBLAS (vit_tiny: 17 s per step
# instead of 0.7): a comparison against that would say nothing about PyTorch.
if ! on_gpu; then
  blas=$(readlink -f "/usr/lib/$(gcc -print-multiarch 2>/dev/null)/libblas.so.3" 2>/dev/null || echo none)
  if [[ $blas != *openblas* ]]; then
    echo "run.sh: PyTorch's BLAS here is $blas, not OpenBLAS; install it first (apt-get install libopenblas0-openmp)" >&2
    exit 2
  fi
fi

# ---- build ----------------------------------------------------------------------------------------------------
if on_gpu; then targets=(bench_gemm_efficiency); else targets=(bench_fma_peak); fi
for w in "${selected[@]}"; do targets+=("bench_$w"); done
mkdir -p "$out"
if ((no_build)); then
  # Programs built on another machine and copied here: ninja would see every source as newer and start over.
  for t in "${targets[@]}"; do
    [[ -x $build/bench/$t ]] || { echo "run.sh: --no-build: no program $build/bench/$t" >&2; exit 1; }
  done
else
  if [[ ! -f $build/build.ninja ]]; then
    if on_gpu; then cuda_flags=(-DHOPGRAD_CUDA=ON "-DCMAKE_CUDA_ARCHITECTURES=${CUDA_ARCHITECTURES:-90}")
    else cuda_flags=(-DHOPGRAD_CUDA=OFF); fi
    cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release "${cuda_flags[@]}" -DHOPGRAD_BUILD_BENCH=ON \
          -DHOPGRAD_BUILD_EXAMPLES=OFF >/dev/null
  fi
  echo "== building ${targets[*]} in $build" >&2
  if ! ninja -C "$build" -j"${JOBS:-2}" "${targets[@]}" >"$out/build.log" 2>&1; then
    grep -E -A5 'error|FAILED' "$out/build.log" | head -40 >&2
    echo "run.sh: the build failed (full log: $out/build.log)" >&2
    exit 1
  fi
fi
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$build/CMakeCache.txt" 2>/dev/null)
[[ $build_type == Release ]] || echo "run.sh: warning: $build is a '${build_type:-unknown}' build; timings need Release" >&2

# ---- what and where ---------------------------------------------------------------------------------------------
csv=$out/results.csv
started=$(date +%s)
{
  echo "command=bench/run.sh${*:+ $*}"
  echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
  cpu_field() { grep -m1 "^$1[[:space:]]*:" /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'; }
  echo "cpu=$(cpu_field 'model name') (x86 family $(cpu_field 'cpu family'), model $(cpu_field model))"
  echo "cpus=$(nproc)"
  # programs built elsewhere (scripts/device-bench.sh --pack) name the commit they were built from
  packed=$(sed -n 's/^HG_COMMIT=//p' "$build/source-dir.txt" 2>/dev/null)
  if [[ -n $packed ]]; then echo "hopgrad=$packed (built elsewhere, scripts/device-bench.sh --pack)"
  else echo "hopgrad=$(git -C "$root" rev-parse --short HEAD 2>/dev/null)$(git -C "$root" diff --quiet HEAD -- 2>/dev/null || echo '+local changes')"; fi
  # the compiler the build was configured with (which, with --no-build, need not exist here)
  echo "compiler=$(sed -n 's/^set(CMAKE_CXX_COMPILER_\(ID\|VERSION\) "\(.*\)")$/\2/p' \
    "$build"/CMakeFiles/*/CMakeCXXCompiler.cmake 2>/dev/null | paste -sd' ')"
  echo "onednn=$(dpkg-query -W -f='${Version}' libdnnl2 2>/dev/null || true)"
  if on_gpu; then echo "torch=$($python -c 'import torch; print(torch.__version__)' 2>/dev/null)"
  else echo "torch=$($python -c 'import torch; print(torch.__version__)' 2>/dev/null) (Debian python3-torch $(dpkg-query -W -f='${Version}' python3-torch 2>/dev/null || echo '?'))"; fi
  echo "python=$($python -c 'import platform; print(platform.python_version())')"
  if on_gpu; then
    echo "device=$device"
    echo "gpu=$(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | head -1)"
    echo "driver=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -1)"
    echo "nvcc=$(sed -n 's/^CMAKE_CUDA_COMPILER_VERSION:[A-Z]*=//p' "$build/CMakeCache.txt" 2>/dev/null)"
    echo "torch_cuda=$($python -c 'import torch; print(torch.version.cuda, torch.backends.cudnn.version())' 2>/dev/null)"
  else
    echo "openblas=$(dpkg-query -W -f='${Version}' libopenblas0-openmp 2>/dev/null || true) (OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-SkylakeX})"
  fi
  echo "rounds=$rounds"
  echo "load_start=$(cut -d' ' -f1-3 /proc/loadavg)"
} >"$out/meta.txt"

# ---- run --------------------------------------------------------------------------------------------------------
# (workload, batch scale) pairs: matmul has sizes, not a batch, and runs once.
runs=()
for w in "${selected[@]}"; do
  if [[ $w == matmul ]]; then runs+=("$w 1"); else for s in "${scales[@]}"; do runs+=("$w $s"); done; fi
done
twin_runs=0
for run in "${runs[@]}"; do
  read -r w _ <<<"$run"
  if has_same_work "$w"; then twin_runs=$((twin_runs + 3)); else twin_runs=$((twin_runs + 2)); fi
done
total=$((1 + rounds * twin_runs * ${#thread_counts[@]}))
done_count=0 failures=()
progress() {
  done_count=$((done_count + 1))
  printf '[%2d/%d %4ds] %s\n' "$done_count" "$total" "$(($(date +%s) - started))" "$1" >&2
}
run_side() {  # workload batch-scale side threads [extra twin flag]
  local w=$1 s=$2 side=$3 t=$4 extra=("${@:5}")
  [[ $w == matmul ]] && extra+=("${sizes[@]}")
  [[ $w == matmul ]] || extra+=(--batch-scale="$s")
  on_gpu && extra+=(--device="$device")
  progress "$w$([[ $s == 1 ]] || echo " ×$s") · $side${5:+ $5} · $t thread$([[ $t == 1 ]] || echo s)$( ((rounds == 1)) || echo " · round $round/$rounds")"
  if [[ $side == hopgrad ]]; then
    "$build/bench/bench_$w" --threads="$t" --csv="$csv" "${common[@]}" "${extra[@]}" || failures+=("$w×$s $side $t")
  else
    OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-SkylakeX} \
      "$python" "$root/bench/torch/$w.py" --threads="$t" --csv="$csv" "${common[@]}" "${extra[@]}" ||
      failures+=("$w×$s $side${5:+ $5} $t")
  fi
}

if on_gpu; then
  # vit_tiny's and deeprc's GEMMs at the same batch scales (64 images, 4 repertoires per unit).
  vit_batches=() deeprc_bags=()
  for s in "${scales[@]}"; do vit_batches+=($((64 * s))); deeprc_bags+=($((4 * s))); done
  progress "gemm_efficiency · vit_tiny batches $(IFS=,; echo "${vit_batches[*]}"), deeprc bags $(IFS=,; echo "${deeprc_bags[*]}")"
  "$build/bench/bench_gemm_efficiency" --device="$device" --csv="$out/gemm.csv" \
    --vit-batches="$(IFS=,; echo "${vit_batches[*]}")" --deeprc-bags="$(IFS=,; echo "${deeprc_bags[*]}")" ||
    failures+=("gemm_efficiency")
else
  progress "fma_peak · ${threads} threads"
  "$build/bench/bench_fma_peak" --threads="$threads" --min-repeats=100 --csv="$csv" || failures+=("fma_peak")
fi
# Which side goes first: alternating from one (workload, threads) cell to the next, and each cell's order flipped
# from round to round (cell c of round r: hopgrad first when c + r is even), so a first-or-second bias averages
# out over the rounds. (A flag flipped once per cell kept every cell's order fixed whenever a round had an even
# number of cells: hopgrad always first at 1 thread, PyTorch always first at 2.)
for ((round = 1; round <= rounds; round++)); do
  cell=0
  for run in "${runs[@]}"; do
    read -r w s <<<"$run"
    for t in "${thread_counts[@]}"; do
      if (((cell + round) % 2 == 1)); then run_side "$w" "$s" hopgrad "$t"; run_side "$w" "$s" pytorch "$t"
      else run_side "$w" "$s" pytorch "$t"; run_side "$w" "$s" hopgrad "$t"; fi
      cell=$((cell + 1))
      ! has_same_work "$w" || run_side "$w" "$s" pytorch "$t" --same-work
    done
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
if [[ -s $csv ]]; then
  "$python" "$root/bench/report.py" "${report_args[@]}" | tee "$out/report.md"
else
  echo "run.sh: no program wrote a result row, so there is no report" >&2
fi
echo >&2
echo "results: $out (results.csv, meta.txt, report.md$(on_gpu && echo ", gemm.csv"))" >&2
if ((${#failures[@]})); then
  echo "run.sh: failed: ${failures[*]}" >&2
  exit 1
fi
