#!/usr/bin/env bash
# The GPU benchmark run: on an H200 machine with no package registry (a copy of this repository with the .debs
# folder from scripts/device-debs.sh), from the repository's root, in one command of at most 10 minutes:
#   1. unpack the carried Debian packages (scripts/device-debs.sh) into a private prefix, never over /;
#   2. configure a Release build with the CUDA backend for sm_90 and build the tests and benchmarks;
#   3. run every CUDA test case (hopgrad_tests -tc="*cuda*": the backend comparisons, the CUDA-only cases) and
#      print its counts;
#   4. run bench/run.sh --device=cuda (hopgrad and PyTorch side by side, the reference batches and 8× them) with
#      bench_gemm_efficiency (vit_tiny's and deeprc's GEMMs against cuBLAS's best, and the measured fp32 peak);
#   5. time vit_tiny and hopfield_attention with each attention route forced (--attention=fused, composite);
#   6. leave under $OUT: meta.txt, build.log, tests.log, bench.log, results.csv, gemm.csv, attention.csv,
#      report.md (8 files).
# The phase sanitize (not in the default list) runs after the tests: every CUDA case under compute-sanitizer's
# memcheck, and the cases of the kernels that share memory within a block under racecheck (sanitize.log). The
# memcheck summary counts API errors too: the case that asks for more device memory than there is adds 4.
# The phase profile (not in the default list) runs between the tests and the benchmarks: each --profile workload
# (workload:batch-scale) under Nsight Compute, timing every kernel (gpu__time_duration.sum, clocks left alone), and
# writes bench/kernel_profile.py's table of where each step's kernel time goes to profile.txt.
# The report is printed last, so the call's output tail holds it. Each phase gets what is left of a time budget
# (BUDGET_S, default 570 s), so a slow phase shortens the next rather than losing everything to the call's limit;
# what a killed phase wrote still comes back.
#
#   scripts/device-bench.sh                            # all phases (into $OUT, or a temporary folder without it)
#   scripts/device-bench.sh --phases=build,test        # a subset: build, test, bench (bench needs build)
#   scripts/device-bench.sh --batch-scales=1,4 --workloads=vit_tiny,deeprc
#   scripts/device-bench.sh --phases=test,profile,bench --profile=vit_tiny:8,deeprc:8
#   scripts/device-bench.sh --phases=test,sanitize
#   scripts/device-bench.sh --no-gpu                   # here, without a GPU: unpack, configure, build, then stop
#                                                      # (also HOPGRAD_DEVICE_BENCH_NO_GPU=1)
#   scripts/device-bench.sh --pack                     # here: build for sm_90 (generic x86-64, no -march=native)
#                                                      # and copy the programs into .devbin/ (ignored by git)
#   BUILD_DIR=.devbin scripts/device-bench.sh --phases=test,bench   # there, with .devbin carried: no build
#
# Building there takes minutes of the GPU machine's time on every fresh machine; --pack builds here instead, and the
# programs run there against the carried packages' libraries (oneDNN, fmt, the OpenCL loader), found through
# LD_LIBRARY_PATH, and that machine's cuBLAS, found through the toolkit's usual folders in their run path. The tests read their fixtures below the source path they were built in: link that path to this
# copy of the repository when it differs (HG_SOURCE_DIR=<that path>, e.g. /work/main; the link is made when absent).
#
# Environment: OUT (results), BUILD_DIR (default build-device), DEBS_DIR (default .debs), PREFIX (default
# /tmp/hopgrad-debs), PYTHON (default python3: on that machine the one with PyTorch), JOBS (default nproc).
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
started=$(date +%s)
budget=${BUDGET_S:-570}
out=${OUT:-$(mktemp -d -t hopgrad-device-XXXXXX)}
build=${BUILD_DIR:-$root/build-device}
debs=${DEBS_DIR:-$root/.debs}
prefix=${PREFIX:-/tmp/hopgrad-debs}
python=${PYTHON:-python3}
jobs=${JOBS:-$(nproc)}
phases=build,test,bench batch_scales=1,8 workloads=vit_tiny,deeprc,mlp_small,mil_pool,hopfield_attention,memory_retrieval,matmul
no_gpu=${HOPGRAD_DEVICE_BENCH_NO_GPU:-0} pack=0 profile=vit_tiny:8,deeprc:8

usage() { sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit "${1:-0}"; }
for arg in "$@"; do
  case $arg in
    --phases=*) phases=${arg#*=} ;;
    --batch-scales=*) batch_scales=${arg#*=} ;;
    --workloads=*) workloads=${arg#*=} ;;
    --no-gpu) no_gpu=1 ;;
    --pack) pack=1 ;;
    --profile=*) profile=${arg#*=} ;;
    -h | --help) usage ;;
    *) echo "device-bench: unknown argument '$arg'" >&2; usage 2 >&2 ;;
  esac
done
((no_gpu)) && phases=build
targets=(hopgrad_tests bench_gemm_efficiency bench_vit_tiny bench_deeprc bench_mlp_small bench_mil_pool
  bench_hopfield_attention bench_memory_retrieval bench_matmul)

# ---- --pack: here, the programs for the GPU machine -------------------------------------------------------------
if ((pack)); then
  build=${BUILD_DIR:-$root/build-device} dest=$root/.devbin
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DHOPGRAD_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHITECTURES:-90}" -DHOPGRAD_BUILD_BENCH=ON -DHOPGRAD_BUILD_EXAMPLES=OFF \
    -DHOPGRAD_NATIVE=OFF "-DCMAKE_BUILD_RPATH=/usr/local/cuda/lib64;/usr/local/cuda/targets/x86_64-linux/lib" \
    >/dev/null || exit 1
  ninja -C "$build" -j"$jobs" "${targets[@]}" || exit 1
  exclude=$(git -C "$root" rev-parse --git-path info/exclude)
  [[ $exclude == /* ]] || exclude=$root/$exclude
  grep -qxF '/.devbin/' "$exclude" 2>/dev/null || echo '/.devbin/' >>"$exclude"
  staging=$(mktemp -d -t hopgrad-pack-XXXXXX)
  mkdir -p "$staging/tests" "$staging/bench" "$staging/CMakeFiles/pack"
  strip -o "$staging/tests/hopgrad_tests" "$build/tests/hopgrad_tests"
  for t in "${targets[@]:1}"; do strip -o "$staging/bench/$t" "$build/bench/$t"; done
  # for run.sh's build type and compiler lines
  cp "$build/CMakeCache.txt" "$staging/"
  cp "$build"/CMakeFiles/*/CMakeCXXCompiler.cmake "$staging/CMakeFiles/pack/"
  { echo "HG_SOURCE_DIR=$root"
    echo "HG_COMMIT=$(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet HEAD -- || echo '+local changes')"
  } >"$staging/source-dir.txt"
  # Every program holds the same kernels (about 13 MB each): one archive with a window wider than all of them
  # stores them about once (about 6 MB for 120 MB), inside what travels with the repository.
  rm -rf "$dest" && mkdir -p "$dest"
  tar -C "$staging" -cf - . | xz -T"$jobs" -6 --lzma2=preset=6,dict=192MiB >"$dest/programs.tar.xz" || exit 1
  rm -rf "$staging"
  du -sh "$dest/programs.tar.xz"
  echo "device-bench: programs in $dest; carry it and run BUILD_DIR=.devbin scripts/device-bench.sh --phases=test,bench"
  exit 0
fi
wants() { [[ ,$phases, == *,$1,* ]]; }
left() { echo $((budget - ($(date +%s) - started))); }
# Seconds for a phase: what is left of the budget less `reserve` (for what follows), never below 10 (timeout 0 would
# mean no limit at all).
limit() { local s=$(($(left) - ${1:-0})); echo $((s > 10 ? s : 10)); }
say() { printf '== [%3ds] %s\n' "$(($(date +%s) - started))" "$*"; }
fail() { say "device-bench: $*"; exit 1; }
mkdir -p "$out"
status=0

# ---- what the machine has -------------------------------------------------------------------------------------
export PATH=$PATH:/usr/local/cuda/bin
{
  echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
  # the checkout's commit (the programs' own, with --pack, is in run.sh's lines below, which the report reads)
  echo "hopgrad=$(git -C "$root" rev-parse --short HEAD 2>/dev/null)$(git -C "$root" diff --quiet HEAD -- 2>/dev/null || echo '+local changes')"
  echo "host=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)"
  echo "os=$(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")"
  echo "gpu=$(nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader 2>/dev/null |
    head -1)"
  echo "nvcc=$(nvcc --version 2>&1 | tail -1)"
  echo "cxx=$(c++ --version 2>&1 | head -1)"
  echo "cmake=$(cmake --version 2>&1 | head -1)"
  echo "ninja=$(ninja --version 2>&1)"
  echo "python=$($python -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())' 2>&1 | tail -1)"
} >"$out/meta.txt"
cat "$out/meta.txt"
command -v nvidia-smi >/dev/null && nvidia-smi >>"$out/meta.txt" 2>&1
command -v c++ >/dev/null || fail "no host C++ compiler (c++) on PATH: nvcc needs one too; bring g++'s packages"
command -v cmake >/dev/null && command -v ninja >/dev/null || fail "cmake and ninja are needed"
command -v nvcc >/dev/null || fail "no nvcc (looked on PATH and in /usr/local/cuda/bin)"

# ---- 1. the carried packages, unpacked into the prefix --------------------------------------------------------
shopt -s nullglob
packages=("$debs"/*.deb)
if wants build || ((${#packages[@]})); then
  ((${#packages[@]})) || fail "no .deb files in $debs: run scripts/device-debs.sh on a machine with network access and copy .debs here"
  # Unpacked again only when the packages changed: fresh header times would make the next build start over.
  stamp=$(for f in "${packages[@]}"; do echo "${f##*/} $(stat -c %s "$f")"; done | md5sum | cut -d' ' -f1)
  if [[ $(cat "$prefix/.unpacked" 2>/dev/null) != "$stamp" ]]; then
    rm -rf "$prefix" && mkdir -p "$prefix"
    for f in "${packages[@]}"; do dpkg-deb -x "$f" "$prefix" || fail "cannot unpack $f"; done
    # A link to an absolute path (zlib1g-dev's libz.so → /lib/…/libz.so.1.2.13) would leave the prefix: point it
    # at the prefix's own copy.
    while IFS= read -r link; do
      target=$(readlink "$link")
      if [[ $target == /* && -e $prefix$target ]]; then ln -sfn "$prefix$target" "$link"; fi
    done < <(find "$prefix" -type l)
    echo "$stamp" >"$prefix/.unpacked"
    say "unpacked ${#packages[@]} packages into $prefix"
  else
    say "the ${#packages[@]} packages are already unpacked in $prefix"
  fi
fi
# Debian's libdnnl.so.2 needs libOpenCL.so.1, which a program's RUNPATH does not find for a library's own needs: the
# loader gets the prefix's copy, alone in a folder, so nothing else of the prefix (its older zlib) shadows the
# system's for Python.
# Programs built elsewhere (--pack) find oneDNN and fmt there too.
mkdir -p "$prefix/loader"
for lib in libOpenCL.so.1 libdnnl.so.2 libfmt.so.9; do
  ln -sfn "$prefix/usr/lib/x86_64-linux-gnu/$lib" "$prefix/loader/"
done
export LD_LIBRARY_PATH=$prefix/loader${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

# Programs packed elsewhere (--pack): unpacked once, next to the archive.
if [[ -f $build/programs.tar.xz && ! -x $build/tests/hopgrad_tests ]]; then
  tar -C "$build" -xJf "$build/programs.tar.xz" || fail "cannot unpack $build/programs.tar.xz"
  say "unpacked the programs built by --pack: $(sed -n 's/^HG_SOURCE_DIR=//p' "$build/source-dir.txt")"
fi
missing=$(ldd "$build/tests/hopgrad_tests" 2>/dev/null | grep 'not found')
[[ -z $missing ]] || say "libraries not found for hopgrad_tests: $missing"

# ---- 2. configure and build -----------------------------------------------------------------------------------
if wants build; then
  say "configuring $build (Release, CUDA sm_90) and building with $jobs jobs"
  {
    cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DHOPGRAD_CUDA=ON \
      -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHITECTURES:-90}" -DHOPGRAD_BUILD_BENCH=ON -DHOPGRAD_BUILD_EXAMPLES=OFF \
      -DCMAKE_PREFIX_PATH="$prefix/usr" &&
      grep -E '^(DNNL_LIBRARY|dnnl_DIR|fmt_DIR|doctest_DIR|CLI11_DIR|ZLIB_LIBRARY_RELEASE|CMAKE_CUDA_COMPILER):' \
        "$build/CMakeCache.txt" &&
      timeout "$(limit 60)" ninja -C "$build" -j"$jobs" "${targets[@]}"
  } >"$out/build.log" 2>&1
  build_status=$?
  grep -E '^(DNNL_LIBRARY|dnnl_DIR|fmt_DIR|doctest_DIR|CLI11_DIR|ZLIB_LIBRARY_RELEASE|CMAKE_CUDA_COMPILER):' \
    "$out/build.log"
  if ((build_status)); then
    grep -E -B2 -A12 'error|FAILED|Error' "$out/build.log" | head -60
    fail "the build failed (status $build_status; $out/build.log)"
  fi
  say "built"
fi
if ((no_gpu)); then
  say "--no-gpu: stopping before the tests and benchmarks, which need a GPU"
  exit 0
fi
nvidia-smi -L >/dev/null 2>&1 || fail "nvidia-smi sees no GPU; the tests and benchmarks need one (--no-gpu builds only)"

# ---- 3. the CUDA tests ----------------------------------------------------------------------------------------
if wants test; then
  # Programs built elsewhere read their fixtures below the path they were built in.
  src=$(sed -n 's/^HG_SOURCE_DIR=//p' "$build/source-dir.txt" 2>/dev/null)
  if [[ -n $src && ! -e $src/tests/fixtures ]]; then
    mkdir -p "$(dirname "$src")" && ln -sfn "$root" "$src" && say "linked $src to $root (the tests' fixtures)"
  fi
  # A crash ends a doctest run where it happens: the case it was in is named, left out, and the rest run again (at
  # most four times), so one bad kernel does not hide the results of every case after it.
  say "CUDA tests: hopgrad_tests -tc=\"*cuda*\""
  : >"$out/tests.log"
  excluded="" crashed_cases=()
  for attempt in 1 2 3 4 5; do
    (cd "$build/tests" && timeout "$(($(limit 120) > 240 ? 240 : $(limit 120)))" ./hopgrad_tests -tc="*cuda*" \
      ${excluded:+-tce="$excluded"} --duration=false) >"$out/tests.attempt.log" 2>&1
    test_status=$?
    cat "$out/tests.attempt.log" >>"$out/tests.log"
    ((test_status > 128 && test_status != 124 && test_status != 137)) || break
    crashed=$(awk '/^TEST CASE:/ { sub(/^TEST CASE: */, ""); name = $0 } /CRASHED/ { print name; exit }' \
      "$out/tests.attempt.log")
    [[ -n $crashed ]] || break
    crashed_cases+=("$crashed")
    say "the case '$crashed' crashed (status $test_status); running the others again without it"
    excluded+=${excluded:+,}${crashed//,/?}
  done
  rm -f "$out/tests.attempt.log"
  grep -E '^\[doctest\] (test cases|assertions|Status)' "$out/tests.log"
  ((${#crashed_cases[@]} == 0)) || { test_status=1; printf 'crashed: %s\n' "${crashed_cases[@]}"; }
  if ((test_status)); then
    grep -E -A8 'ERROR|FATAL|error:' "$out/tests.log" | head -60
    say "the CUDA tests FAILED (status $test_status; $out/tests.log): the benchmarks run anyway"
    status=1
  fi
fi

# ---- compute-sanitizer ------------------------------------------------------------------------------------------
if wants sanitize; then
  if ! command -v compute-sanitizer >/dev/null; then
    say "no compute-sanitizer here: no sanitize phase"
  else
    say "compute-sanitizer: memcheck over every CUDA case, racecheck over the shared-memory kernels' ($(left) s left)"
    (cd "$build/tests" &&
      timeout "$(limit 60)" compute-sanitizer --tool memcheck --leak-check no --print-limit 20 ./hopgrad_tests \
        -tc="*cuda*" --duration=false &&
      timeout "$(limit 60)" compute-sanitizer --tool racecheck --print-limit 20 ./hopgrad_tests \
        -tc="*conv*cuda*,*layer_norm*cuda*,*reduce*cuda*,*softmax*cuda*,*attention*cuda*" --duration=false) \
      >"$out/sanitize.log" 2>&1 || status=1
    grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|^\[doctest\] test cases' "$out/sanitize.log"
  fi
fi

# ---- the kernels' profile ------------------------------------------------------------------------------------
if wants profile; then
  command -v ncu >/dev/null || PATH=$PATH:$(ls -d /opt/nvidia/nsight-compute/*/ 2>/dev/null | tail -1)
  if ! command -v ncu >/dev/null; then
    say "no ncu (Nsight Compute) here: no profile"
  else
    prof_dir=$(mktemp -d -t hopgrad-profile-XXXXXX)
    : >"$out/profile.txt"
    IFS=, read -ra profile_runs <<<"$profile"
    for run in "${profile_runs[@]}"; do
      w=${run%%:*} s=${run#*:}
      [[ $s == "$run" ]] && s=1
      say "profile: bench_$w ×$s under ncu (1 warm-up and 3 timed steps; $(left) s left)"
      # 4 steps: --warmup=1 and --min-repeats=3 (under the profiler a step takes long enough that no more follow)
      timeout "$(limit 60)" ncu --clock-control none --metrics gpu__time_duration.sum -f -o "$prof_dir/$w" \
        "$build/bench/bench_$w" --device=cuda --threads=1 --batch-scale="$s" --warmup=1 --min-repeats=3 \
        --csv="$prof_dir/$w.results.csv" >"$prof_dir/$w.log" 2>&1 || { say "ncu on bench_$w failed:"; tail -5 "$prof_dir/$w.log"; }
      if [[ -f $prof_dir/$w.ncu-rep ]]; then
        ncu -i "$prof_dir/$w.ncu-rep" --csv --page raw --metrics gpu__time_duration.sum >"$prof_dir/$w.csv" 2>&1
        "$python" "$root/bench/kernel_profile.py" "$prof_dir/$w.csv" --steps=4 --top=30 \
          --title="== $w ×$s (bench_$w --device=cuda --batch-scale=$s)" >>"$out/profile.txt" 2>&1
        echo >>"$out/profile.txt"
      fi
    done
    cat "$out/profile.txt"
  fi
fi

# ---- 4. the benchmarks ----------------------------------------------------------------------------------------
if wants bench; then
  [[ -x $build/bench/bench_vit_tiny ]] || fail "no benchmarks in $build: the bench phase needs the build phase"
  say "bench/run.sh --device=cuda --batch-scales=$batch_scales ($(left) s left)"
  bench_out=$(mktemp -d -t hopgrad-device-bench-XXXXXX)
  BUILD_DIR=$build OUT_DIR=$bench_out PYTHON=$python PYTHONUNBUFFERED=1 \
    timeout "$(limit 15)" bash "$root/bench/run.sh" --device=cuda --batch-scales="$batch_scales" \
    --workloads="$workloads" $(wants build || echo --no-build) >"$out/bench.log" 2>&1
  bench_status=$?
  cp "$bench_out"/results.csv "$bench_out"/gemm.csv "$out"/ 2>/dev/null
  # run.sh's key=value lines last, so that bench/report.py --meta reads its values (a later key wins)
  cat "$bench_out/meta.txt" >>"$out/meta.txt" 2>/dev/null
  if ((bench_status)); then
    status=1
    tail -25 "$out/bench.log"
    say "bench/run.sh ended with status $bench_status (124: out of time); the report covers what finished"
  fi
  # The attention's two routes forced (hg::AttentionImpl; Auto takes the composite on CUDA at these sizes), the
  # reference batch: rows <workload>_fused_attention and _composite_attention in attention.csv.
  say "the attention's routes forced: vit_tiny, hopfield_attention × fused, composite ($(left) s left)"
  for w in vit_tiny hopfield_attention; do
    for a in fused composite; do
      timeout "$(limit 30)" "$build/bench/bench_$w" --device=cuda --threads=1 --attention=$a \
        --csv="$out/attention.csv" >>"$out/bench.log" 2>&1 || say "bench_$w --attention=$a failed or ran out of time"
    done
  done
  [[ -f $out/attention.csv ]] && cut -d, -f1-5 "$out/attention.csv"
  if [[ -f $out/results.csv || -f $out/gemm.csv ]]; then
    touch "$out/results.csv"
    "$python" "$root/bench/report.py" "$out/results.csv" --meta "$bench_out/meta.txt" --gemm "$out/gemm.csv" \
      >"$out/report.md" 2>>"$out/bench.log"
    echo
    cat "$out/report.md"
  fi
fi
say "done (status $status); files in $out: $(cd "$out" && echo *)"
exit $status
