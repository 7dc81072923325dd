#!/usr/bin/python3
"""The benchmark table: bench/run.sh's CSV (rows of bench/workload.h's format from both sides, plus bench_fma_peak's)
→ one markdown table, hopgrad beside PyTorch per (workload, threads), with the issue-6 goals marked met or missed.

    bench/report.py results.csv                                   # markdown on stdout
    bench/report.py results.csv --update-docs docs/performance.md # also between <!-- bench:begin/end --> there

speed-up = PyTorch median / hopgrad median (above 1: hopgrad is faster). GFLOP/s come from the medians; "% peak" is
that over the machine's fp32 FMA peak measured in the same run at the same thread count (bench_fma_peak's best
call: the ceiling, not a typical moment). Goals are judged at 2 threads, as the issue states them: speed-up ≥ 3×
for the overhead-bound workloads and ≥ 1.5× for the other training workloads; ≥ 75 % of the FMA peak for the
GEMM-bound ones; peak resident memory ≤ PyTorch's minus what `import torch` alone costs.
The header comes from meta.txt beside the CSV (key=value lines bench/run.sh writes), when there is one.
"""
import argparse
import csv
import os
import re
import sys

# Issue 6's goals, at 2 threads.
SPEED_GOALS = {"mlp_small": 3.0, "mil_pool": 3.0, "hopfield_attention": 3.0, "vit_tiny": 1.5, "deeprc": 1.5}
PEAK_GOALS = {"vit_tiny": 0.75, "memory_retrieval": 0.75}
GOAL_THREADS = 2
# The workloads in the order of ../shared/docs/benchmarks.md; others follow in the order the CSV has them.
ORDER = ["hopfield_attention", "vit_tiny", "deeprc", "mil_pool", "memory_retrieval", "mlp_small", "matmul"]
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def load_rows(path):
    """{(workload, framework, threads): row}; a later row for the same key replaces an earlier one."""
    rows = {}
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            if r.get("workload") == "workload":  # a header repeated by a concatenation
                continue
            r["threads"] = int(r["threads"])
            for key in ("median_ms", "min_ms", "baseline_rss_mib", "peak_rss_mib"):
                r[key] = float(r[key])
            r["gflops"] = float(r["gflops"]) if r["gflops"] else None
            rows[(r["workload"], r["framework"], r["threads"])] = r
    return rows


def load_meta(path):
    meta = {}
    if path and os.path.exists(path):
        with open(path) as f:
            for line in f:
                key, sep, value = line.rstrip("\n").partition("=")
                if sep:
                    meta[key] = value
    return meta


def fma_peaks(rows):
    """{threads: (isa, best GFLOP/s, median GFLOP/s)} from the fma_peak rows (the CSV's gflops is the median's)."""
    peaks = {}
    for (workload, isa, threads), r in rows.items():
        if workload == "fma_peak" and r["gflops"]:
            peaks[threads] = (isa, r["gflops"] * r["median_ms"] / r["min_ms"], r["gflops"])
    return peaks


def workload_order(name, first_seen):
    base, size = name, 0
    match = re.fullmatch(r"matmul_n(\d+)", name)
    if match:
        base, size = "matmul", int(match.group(1))
    rank = ORDER.index(base) if base in ORDER else len(ORDER) + first_seen[name]
    return rank, size


def table(rows):
    peaks = fma_peaks(rows)
    first_seen = {}
    for workload, _, _ in rows:
        first_seen.setdefault(workload, len(first_seen))
    keys = sorted({(w, t) for (w, f, t) in rows if f in ("hopgrad", "pytorch")},
                  key=lambda k: (workload_order(k[0], first_seen), k[1]))

    def ms(r):
        return f"{r['median_ms']:.3f} / {r['min_ms']:.3f}" if r else "—"

    def rate(r, threads):
        if not r or r["gflops"] is None:
            return "—"
        peak = peaks.get(threads)
        return f"{r['gflops']:.1f} ({100 * r['gflops'] / peak[1]:.0f} %)" if peak else f"{r['gflops']:.1f}"

    lines = ["| workload | threads | hopgrad median / min (ms) | PyTorch median / min (ms) | speed-up "
             "| goals (2 threads) | hopgrad GFLOP/s (% peak) | PyTorch GFLOP/s (% peak) | hopgrad peak RSS (MiB) "
             "| PyTorch peak RSS (MiB) | PyTorch peak − import (MiB) |",
             "|---|--:|--:|--:|--:|---|--:|--:|--:|--:|--:|"]
    missed = []
    for workload, threads in keys:
        ours = rows.get((workload, "hopgrad", threads))
        theirs = rows.get((workload, "pytorch", threads))
        speedup = theirs["median_ms"] / ours["median_ms"] if ours and theirs else None
        goals = []
        if threads == GOAL_THREADS:
            base = "matmul" if workload.startswith("matmul_n") else workload
            if base in SPEED_GOALS and speedup is not None:
                goals.append((f"≥ {SPEED_GOALS[base]:g}×", speedup >= SPEED_GOALS[base]))
            if base in PEAK_GOALS and ours and ours["gflops"] and threads in peaks:
                goals.append((f"≥ {100 * PEAK_GOALS[base]:.0f} % peak",
                              ours["gflops"] >= PEAK_GOALS[base] * peaks[threads][1]))
            if ours and theirs:
                goals.append(("memory", ours["peak_rss_mib"] <= theirs["peak_rss_mib"] - theirs["baseline_rss_mib"]))
        for goal, met in goals:
            if not met:
                missed.append(f"{workload} {goal}")
        goal_cell = ", ".join(f"{goal} {'met' if met else '**missed**'}" for goal, met in goals) or "—"
        lines.append("| " + " | ".join([
            workload, str(threads), ms(ours), ms(theirs), f"{speedup:.2f}×" if speedup else "—", goal_cell,
            rate(ours, threads), rate(theirs, threads),
            f"{ours['peak_rss_mib']:.0f}" if ours else "—",
            f"{theirs['peak_rss_mib']:.0f}" if theirs else "—",
            f"{theirs['peak_rss_mib'] - theirs['baseline_rss_mib']:.0f}" if theirs else "—"]) + " |")
    return lines, peaks, missed


def header(meta, peaks):
    lines = []
    if "cpu" in meta:
        lines.append(f"- Machine: {meta['cpu']}, {meta.get('cpus', '?')} CPUs (shared with other jobs: timings "
                     "drift; the ratios of one run, whose two sides alternate, are what count).")
    if peaks:
        isa = next(iter(peaks.values()))[0]
        cells = ", ".join(f"{best:.0f} GFLOP/s at {t} thread{'s' if t > 1 else ''} (median {median:.0f})"
                          for t, (_, best, median) in sorted(peaks.items()))
        lines.append(f"- Measured fp32 FMA peak ({isa}, bench_fma_peak): {cells}.")
    if "date" in meta:
        lines.append(f"- Date: {meta['date']}" + (f" ({meta['duration_s']} s)" if "duration_s" in meta else ""))
    versions = [f"{label} {meta[key]}" for key, label in
                [("hopgrad", "hopgrad"), ("compiler", ""), ("onednn", "oneDNN"), ("torch", "PyTorch"),
                 ("python", "Python"), ("openblas", "OpenBLAS")] if meta.get(key)]
    if versions:
        lines.append("- Versions: " + ", ".join(v.strip() for v in versions))
    if "load_start" in meta:
        lines.append(f"- Load average (1, 5, 15 min): {meta['load_start']} at the start, "
                     f"{meta.get('load_end', '?')} at the end")
        loads = [float(meta[key].split()[0]) for key in ("load_start", "load_end") if key in meta]
        cpus = int(meta.get("cpus", "0") or 0)
        if cpus and max(loads) > cpus:
            lines.append(f"- **Warning**: the load average exceeded the {cpus} CPUs, so other jobs competed for the "
                         "cores. Multi-thread timings, which need every thread of a step scheduled at once, are "
                         "the most distorted; the 1-thread ratios are the more trustworthy ones of this run.")
    if "command" in meta:
        lines.append(f"- Command: `{meta['command']}`")
    return lines


def render(rows, meta):
    body, peaks, missed = table(rows)
    out = header(meta, peaks)
    out += [""] + body + [""]
    out.append("speed-up = PyTorch median / hopgrad median (above 1: hopgrad is faster); times per step (matmul: per "
               "call). % peak is of the FMA peak above at that thread count. Goals at 2 threads: speed-up ≥ 3× "
               "(mlp_small, mil_pool, hopfield_attention) or ≥ 1.5× (other training workloads); ≥ 75 % of peak "
               "(vit_tiny, memory_retrieval); memory: hopgrad's peak ≤ PyTorch's peak − its `import torch` cost.")
    if missed:
        out.append("")
        out.append("Missed: " + "; ".join(missed) + ".")
    return "\n".join(out) + "\n"


def update_docs(path, text):
    """Replaces what lies between the bench markers of `path` (creating the file, or the markers, if missing)."""
    block = f"{BEGIN}\n{text}{END}"
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "w") as f:
            f.write(f"# Performance\n\n{block}\n")
        return
    with open(path) as f:
        doc = f.read()
    start, end = doc.find(BEGIN), doc.find(END)
    if start < 0 or end < start:
        print(f"report.py: {path} had no {BEGIN} … {END} markers: appended them at the end", file=sys.stderr)
        doc = doc.rstrip("\n") + f"\n\n{block}\n"
    else:
        doc = doc[:start] + block + doc[end + len(END):]
    with open(path, "w") as f:
        f.write(doc)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("csv", help="the CSV bench/run.sh wrote (both sides and fma_peak)")
    parser.add_argument("--meta", help="key=value file for the header (default: meta.txt beside the CSV)")
    parser.add_argument("--update-docs", metavar="MARKDOWN", help="write the table between the bench markers there")
    args = parser.parse_args()

    rows = load_rows(args.csv)
    if not any(f in ("hopgrad", "pytorch") for (_, f, _) in rows):
        sys.exit(f"report.py: {args.csv} has no hopgrad or pytorch rows")
    meta = load_meta(args.meta or os.path.join(os.path.dirname(os.path.abspath(args.csv)), "meta.txt"))
    text = render(rows, meta)
    sys.stdout.write(text)
    if args.update_docs:
        update_docs(args.update_docs, text)
        print(f"\nreport.py: table written into {args.update_docs}", file=sys.stderr)


if __name__ == "__main__":
    main()
