#!/usr/bin/python3
"""Joins bench_core's CSV (hopgrad) with torch_core.py's CSV (PyTorch) on (benchmark, threads) and prints them
side by side. speed-up = PyTorch time / hopgrad time, from the medians: above 1 means hopgrad is faster.
For matmul rows the last column is oneDNN's own dnnl_sgemm (median), the GEMM ceiling hg::matmul calls into.

    bench/compare.py hopgrad.csv torch.csv
"""
import csv
import sys


def load(path):
    with open(path, newline="") as f:
        return {(r["benchmark"], int(r["threads"])): r for r in csv.DictReader(f)}


def main():
    if len(sys.argv) != 3:
        sys.exit(f"usage: {sys.argv[0]} HOPGRAD_CSV TORCH_CSV")
    ours, theirs = load(sys.argv[1]), load(sys.argv[2])
    shared = [key for key in ours if key in theirs]
    if not shared:
        sys.exit("compare.py: the two CSV files have no (benchmark, threads) rows in common")

    def order(key):  # per thread count: overhead rows, then matmul by size
        benchmark, threads = key
        size = int(benchmark.rsplit("_n", 1)[1]) if benchmark.startswith("matmul_n") else 0
        return threads, size > 0, size, benchmark

    print(f"{'benchmark':<16} {'thr':>4} {'hopgrad median':>15} {'PyTorch median':>15} {'speed-up':>9}"
          f" {'hopgrad min':>15} {'PyTorch min':>15} {'dnnl_sgemm':>15}")
    for benchmark, threads in sorted(shared, key=order):
        h, t = ours[(benchmark, threads)], theirs[(benchmark, threads)]
        h_med, t_med = float(h["median_us"]), float(t["median_us"])
        ceiling = ""
        if h["gflops"] and t["gflops"]:  # throughput rows: GFLOP/s reads better than µs
            flops = float(h["gflops"]) * h_med  # GFLOP/s × µs = kFLOP, the same for both
            cell = lambda us: f"{flops / float(us):.1f} GF/s"  # noqa: E731
            dnnl = ours.get((benchmark.replace("matmul_", "dnnl_sgemm_"), threads))
            ceiling = cell(dnnl["median_us"]) if dnnl else ""
        else:
            cell = lambda us: f"{float(us):.2f} µs"  # noqa: E731
        print(f"{benchmark:<16} {threads:>4} {cell(h_med):>15} {cell(t_med):>15} {t_med / h_med:>8.2f}x"
              f" {cell(h['min_us']):>15} {cell(t['min_us']):>15} {ceiling:>15}")

if __name__ == "__main__":
    main()
