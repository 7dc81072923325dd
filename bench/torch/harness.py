"""The frame every bench/torch/<workload>.py shares with its hopgrad twin bench/<workload>.cpp (see
bench/workload.h): the same flags, the same timing scheme (bench/timing.h) and the same CSV row.

    from harness import run_workload
    def make(gen):            # builds model and data; returns (step, flops per step or 0)
        ...
        return step, flops
    if __name__ == "__main__":
        run_workload("mlp_small", "784→256→10 MLP, batch 128, Adam", make)

Debian's PyTorch (1.13, CPU) multiplies through OpenBLAS 0.3.21, which does not recognise this CPU and falls
back to SSE3 kernels (about 5x slower) unless OPENBLAS_CORETYPE names a core it knows: importing this module
sets it before torch loads OpenBLAS, unless the caller set it. `baseline_rss_mib` is the resident memory right
after `import torch` (about 230 MB), so the report can show PyTorch's peak with and without that cost.
"""
import argparse
import math
import os
import time

os.environ.setdefault("OPENBLAS_CORETYPE", "SkylakeX")
import torch  # noqa: E402  (after the environment variable above)

CSV_HEADER = "workload,framework,threads,median_ms,min_ms,repeats,gflops,baseline_rss_mib,peak_rss_mib\n"


def resident_memory():
    """(VmRSS, VmHWM) of this process in MiB."""
    now = peak = 0.0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                now = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    return now, peak


def time_steps(step, warmup=3, min_repeats=10, max_repeats=200, target_seconds=0.3):
    """(median, min, repeats) seconds per step, as bench/timing.h's time_interleaved with one candidate."""
    def seconds_of():
        start = time.perf_counter()
        step()
        return time.perf_counter() - start

    one = 0.0
    for _ in range(warmup):
        one = seconds_of()
    repeats = min_repeats
    if one > 0:
        repeats = min(max(math.ceil(target_seconds / one), min_repeats), max_repeats)
    samples = sorted(seconds_of() for _ in range(repeats))
    n = len(samples)
    median = samples[n // 2] if n % 2 else 0.5 * (samples[n // 2 - 1] + samples[n // 2])
    return median, samples[0], repeats


def record(name, threads, median, best, repeats, flops, baseline, peak, unit="steps"):
    """Prints one result line and returns its CSV row (the format bench/workload.h writes)."""
    gflops = f"{flops / median / 1e9:.2f}" if flops else ""
    rate = f"  {flops / median / 1e9:7.1f} GFLOP/s" if flops else ""
    print(f"{name:<20} pytorch {threads} thread{'s' if threads > 1 else ' '}  median {median * 1e3:9.3f} ms  "
          f"min {best * 1e3:9.3f} ms  ({repeats} {unit}){rate}  peak RSS {peak:.0f} MiB "
          f"({baseline:.0f} MiB after import torch)", flush=True)
    return (f"{name},pytorch,{threads},{median * 1e3:.5f},{best * 1e3:.5f},{repeats},{gflops},{baseline:.1f},"
            f"{peak:.1f}\n")


def append_csv(path, rows):
    """Appends CSV rows to `path`, with the header first when the file is new or empty."""
    fresh = not os.path.exists(path) or os.path.getsize(path) == 0
    with open(path, "a") as f:
        if fresh:
            f.write(CSV_HEADER)
        f.writelines(rows)


def run_workload(name, description, make):
    parser = argparse.ArgumentParser(description=f"PyTorch benchmark {name}: {description}")
    parser.add_argument("--threads", type=lambda s: [int(v) for v in s.split(",")], default=[1, 2],
                        help="thread counts to run at, e.g. 1,2")
    parser.add_argument("--min-repeats", type=int, default=10, help="timed steps at least, after the warm-up")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--seed", type=int, default=2024, help="seed for the data and the initialisation")
    parser.add_argument("--csv", help="append the result rows to this CSV file (header written when it is new)")
    args = parser.parse_args()

    baseline, _ = resident_memory()
    rows = []
    for t in args.threads:
        torch.set_num_threads(t)  # torch.get_num_threads() is 1 here by default
        torch.manual_seed(args.seed)
        gen = torch.Generator().manual_seed(args.seed)
        step, flops = make(gen)
        median, best, repeats = time_steps(step, args.warmup, args.min_repeats)
        _, peak = resident_memory()
        rows.append(record(name, t, median, best, repeats, flops, baseline, peak))
    if args.csv:
        append_csv(args.csv, rows)
    return 0
