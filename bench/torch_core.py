#!/usr/bin/python3
"""PyTorch on bench_core's workloads: fp32 square matmul, and per-op overhead (a tiny add; a tiny linear
forward + backward). Same timing scheme as bench/timing.h: warm-up, then >= 10 timed repeats, median and min.

    OPENBLAS_CORETYPE=SkylakeX /usr/bin/python3 bench/torch_core.py --threads=1,2 --csv=torch.csv

Debian's PyTorch (1.13, CPU) multiplies through OpenBLAS 0.3.21, which does not recognise this CPU and falls
back to SSE3 kernels (about 5x slower) unless OPENBLAS_CORETYPE names a core it knows; the variable is set
here before torch loads OpenBLAS, unless the caller set it. The overhead numbers include the Python
interpreter's cost per call: that is what a PyTorch user pays.
"""
import argparse
import csv
import math
import os
import resource
import sys
import time

os.environ.setdefault("OPENBLAS_CORETYPE", "SkylakeX")
import torch  # noqa: E402  (after the environment variable above)


def time_interleaved(candidates, calls_per_repeat=1, warmup_repeats=2, min_repeats=10, max_repeats=200,
                     target_seconds=0.3):
    """Per-call (median, min, repeats) for each candidate, timed in turn repeat by repeat."""
    def seconds_of(body):
        start = time.perf_counter()
        body()
        return time.perf_counter() - start

    round_seconds = 0.0
    for _ in range(warmup_repeats):
        round_seconds = sum(seconds_of(body) for body in candidates)
    repeats = min_repeats
    if round_seconds > 0:
        repeats = min(max(math.ceil(target_seconds * len(candidates) / round_seconds), min_repeats), max_repeats)
    samples = [[] for _ in candidates]
    for _ in range(repeats):
        for body, s in zip(candidates, samples):
            s.append(seconds_of(body))
    stats = []
    for s in samples:
        s.sort()
        n = len(s)
        median = s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])
        stats.append((median / calls_per_repeat, s[0] / calls_per_repeat, repeats))
    return stats


def bench_matmul(n, threads, min_repeats, gen):
    a = torch.randn(n, n, generator=gen)
    b = torch.randn(n, n, generator=gen)
    (median, best, repeats), = time_interleaved([lambda: torch.matmul(a, b)], min_repeats=min_repeats)
    return dict(benchmark=f"matmul_n{n}", threads=threads, median=median, min=best, repeats=repeats,
                flops=2.0 * n ** 3)


def bench_overhead(threads, min_repeats, gen):
    a1, b1 = torch.randn(1, generator=gen), torch.randn(1, generator=gen)
    a8, b8 = torch.randn(8, generator=gen), torch.randn(8, generator=gen)
    x = torch.randn(1, 8, generator=gen)
    weight = torch.randn(8, 8, generator=gen).requires_grad_()
    bias = torch.randn(8, generator=gen).requires_grad_()
    add_calls, linear_calls = 2000, 200

    def add1():
        for _ in range(add_calls):
            torch.add(a1, b1)

    def add8():
        for _ in range(add_calls):
            torch.add(a8, b8)

    def linear():  # gradients accumulate, as in bench_core
        for _ in range(linear_calls):
            torch.nn.functional.linear(x, weight, bias).sum().backward()

    adds = time_interleaved([add1, add8], calls_per_repeat=add_calls, min_repeats=min_repeats, target_seconds=0.2)
    (lin,) = time_interleaved([linear], calls_per_repeat=linear_calls, min_repeats=min_repeats,
                              target_seconds=0.2)
    rows = []
    for name, (median, best, repeats) in zip(["add_1", "add_8", "linear_fwd_bwd"], adds + [lin]):
        rows.append(dict(benchmark=name, threads=threads, median=median, min=best, repeats=repeats, flops=0.0))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ints = lambda s: [int(v) for v in s.split(",")]  # noqa: E731
    parser.add_argument("--threads", type=ints, default=[1, 2], help="thread counts, e.g. 1,2")
    parser.add_argument("--sizes", type=ints, default=[256, 512, 1024, 2048], help="square matmul sizes")
    parser.add_argument("--min-repeats", type=int, default=10)
    parser.add_argument("--csv", help="also write the results to this CSV file")
    args = parser.parse_args()

    gen = torch.Generator().manual_seed(2024)
    rows = []
    steps = len(args.threads) * (len(args.sizes) + 1)
    step = 0
    for t in args.threads:
        torch.set_num_threads(t)  # torch.get_num_threads() is 1 here by default
        for n in args.sizes:
            step += 1
            print(f"[{step:2d}/{steps}] torch matmul n={n}, {t} thread(s)", file=sys.stderr, flush=True)
            rows.append(bench_matmul(n, t, args.min_repeats, gen))
        step += 1
        print(f"[{step:2d}/{steps}] torch per-op overhead, {t} thread(s)", file=sys.stderr, flush=True)
        rows.extend(bench_overhead(t, args.min_repeats, gen))

    print(f"PyTorch {torch.__version__}, OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']}")
    print(f"{'benchmark':<16} {'thr':>4} {'median µs':>12} {'min µs':>12} {'GFLOP/s':>9}")
    for r in rows:
        gflops = f"{r['flops'] / r['median'] / 1e9:9.1f}" if r["flops"] else ""
        print(f"{r['benchmark']:<16} {r['threads']:>4} {r['median'] * 1e6:>12.2f} {r['min'] * 1e6:>12.2f} {gflops}")
    # ru_maxrss is in KiB on Linux; `import torch` alone is ~230 MB of it.
    print(f"peak resident memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB "
          "(including the torch import)")

    if args.csv:
        with open(args.csv, "w", newline="") as f:
            out = csv.writer(f)
            out.writerow(["benchmark", "threads", "median_us", "min_us", "gflops"])
            for r in rows:
                gflops = f"{r['flops'] / r['median'] / 1e9:.2f}" if r["flops"] else ""
                out.writerow([r["benchmark"], r["threads"], f"{r['median'] * 1e6:.4f}", f"{r['min'] * 1e6:.4f}",
                              gflops])


if __name__ == "__main__":
    main()
