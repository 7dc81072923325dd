#!/usr/bin/python3
"""matmul: square float32 GEMM C = A B, A and B [n, n] standard normal, n = 256, 512, 1024, 2048
(../shared/docs/benchmarks.md workload 7); the twin of bench/matmul.cpp, one CSV row `matmul_n<n>` per size and
thread count, in harness.py's row format. 2·n³ FLOP per call; C is allocated by every call. --device=cuda: A and B
on the GPU, TF32 off, each timed call ends with torch.cuda.synchronize (see harness.py)."""
import argparse
import sys

from harness import append_csv, device_memory, parse_device, record, resident_memory, synchronized, time_steps

import torch  # noqa: E402  (harness sets OPENBLAS_CORETYPE before torch loads OpenBLAS)


def main():
    parser = argparse.ArgumentParser(description="PyTorch benchmark matmul: square float32 GEMM, one row "
                                                 "matmul_n<n> per size")
    ints = lambda s: [int(v) for v in s.split(",")]  # noqa: E731
    parser.add_argument("--sizes", type=ints, default=[256, 512, 1024, 2048], help="matrix sizes n, e.g. 256,512")
    parser.add_argument("--threads", type=ints, default=[1, 2], help="thread counts to run at, e.g. 1,2")
    parser.add_argument("--min-repeats", type=int, default=10, help="timed calls at least, after the warm-up")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls first")
    parser.add_argument("--seed", type=int, default=2024, help="seed for the matrices")
    parser.add_argument("--csv", help="append the result rows to this CSV file (header written when it is new)")
    parser.add_argument("--device", default="cpu", help="where A, B and C live: cpu, cuda or cuda:N")
    args = parser.parse_args()
    device = parse_device(args.device, "matmul")

    baseline, _ = resident_memory()
    rows = []
    for t in args.threads:
        torch.set_num_threads(t)  # torch.get_num_threads() is 1 here by default
        for n in args.sizes:
            gen = torch.Generator().manual_seed(args.seed)
            a = torch.randn(n, n, generator=gen).to(device)  # [n, n]
            b = torch.randn(n, n, generator=gen).to(device)  # [n, n]
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            call = synchronized(lambda: torch.matmul(a, b), device)
            median, best, repeats = time_steps(call, args.warmup, args.min_repeats)
            _, peak = resident_memory()
            rows.append(record(f"matmul_n{n}", t, median, best, repeats, 2.0 * n ** 3, baseline, peak, "calls",
                               memory=device_memory(device)))
    if args.csv:
        append_csv(args.csv, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
