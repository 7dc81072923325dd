#!/usr/bin/python3
"""The benchmark table: bench/run.sh's CSV (rows of bench/workload.h's format from both sides, plus bench_fma_peak's)
→ one markdown table, hopgrad beside PyTorch per (workload, threads), with the issue-6 goals marked met or missed.

    bench/report.py results.csv                                   # markdown on stdout
    bench/report.py results.csv --update-docs docs/performance.md # also between <!-- bench:begin/end --> there

Rows with device=cuda (bench/run.sh --device=cuda) make a separate GPU section, between <!-- bench-gpu:begin/end -->
markers of their own, so a GPU run never replaces the CPU table nor the other way round: speed-up, achieved TFLOP/s
as a fraction of the H200's fp32 non-tensor peak (67 TFLOP/s, NVIDIA's datasheet) and of the fp32 peak measured by
bench_gemm_efficiency (cuBLAS's best on large square products), the parity goal on vit_tiny and deeprc, and each
side's device memory (hopgrad's caching allocator, hg::memory_stats; PyTorch's max_memory_allocated / reserved).
When gemm.csv (bench_gemm_efficiency's) lies beside the CSV, its per-GEMM table follows.

speed-up = PyTorch median / hopgrad median (above 1: hopgrad is faster). GFLOP/s come from the medians; "% peak" is
that over the machine's fp32 FMA peak measured in the same run at the same thread count (bench_fma_peak's best
call: the ceiling, not a typical moment). Goals are judged at 2 threads, as the issue states them: speed-up ≥ 3×
for the overhead-bound workloads and ≥ 1.5× for the other training workloads; ≥ 75 % of the FMA peak for the
GEMM-bound ones; peak resident memory ≤ PyTorch's minus what `import torch` alone costs.
The header comes from meta.txt beside the CSV (key=value lines bench/run.sh writes), when there is one.
PyTorch rows named <workload>_same_work (the twin run with --same-work: hopgrad's algebraic shortcuts written by
hand) are not table rows and judge no goal; a line under the table sets hopgrad beside them.
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
GPU_BEGIN, GPU_END = "<!-- bench-gpu:begin -->", "<!-- bench-gpu:end -->"
# The GPU goal (issue 6): at least parity with PyTorch on the same GPU, for these training steps at every batch size.
GPU_PARITY = ("vit_tiny", "deeprc")
SAME_WORK = "_same_work"  # row suffix of a twin run with --same-work
DATASHEET_FP32_TFLOPS = 67.0  # H200 SXM, fp32 without tensor cores (NVIDIA's datasheet)


def load_rows(path, device="cpu"):
    """{(workload, framework, threads): row} of one device type ("cpu": also the rows of CSVs from before the device
    column). Several rows for one key (bench/run.sh --rounds=N: one per round) combine into one: the median of their
    medians, the least minimum, the median peak and baseline RSS (and device memory), the sum of the steps, and
    GFLOP/s from the combined median (a row's FLOPs per step are its GFLOP/s times its median)."""
    groups = {}
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            if r.get("workload") == "workload":  # a header repeated by a concatenation
                continue
            if (r.get("device") or "cpu") != device:
                continue
            r["threads"] = int(r["threads"])
            for key in ("median_ms", "min_ms", "baseline_rss_mib", "peak_rss_mib"):
                r[key] = float(r[key])
            r["gflops"] = float(r["gflops"]) if r["gflops"] else None
            for key in ("device_peak_allocated_mib", "device_reserved_mib"):
                r[key] = float(r[key]) if r.get(key) else None
            groups.setdefault((r["workload"], r["framework"], r["threads"]), []).append(r)
    return {key: combine(group) for key, group in groups.items()}


def median(values):
    values = sorted(values)
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def combine(group):
    """One row from the rows of one (workload, framework, threads): see load_rows."""
    if len(group) == 1:
        return dict(group[0], rounds=1)
    row = dict(group[0], rounds=len(group))
    row["median_ms"] = median([r["median_ms"] for r in group])
    row["min_ms"] = min(r["min_ms"] for r in group)
    row["repeats"] = str(sum(int(r["repeats"]) for r in group))
    for key in ("baseline_rss_mib", "peak_rss_mib", "device_peak_allocated_mib", "device_reserved_mib"):
        values = [r[key] for r in group if r.get(key) is not None]
        row[key] = median(values) if values else None
    flops = [r["gflops"] * r["median_ms"] for r in group if r["gflops"] is not None]
    row["gflops"] = median(flops) / row["median_ms"] if flops else None
    return row


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
    match = re.fullmatch(r"matmul_n(\d+)", name) or re.fullmatch(r"(.+)_x(\d+)", name)
    if match:
        base, size = ("matmul", int(match.group(1))) if name.startswith("matmul_n") else (match.group(1),
                                                                                         int(match.group(2)))
    rank = ORDER.index(base) if base in ORDER else len(ORDER) + first_seen[name]
    return rank, size


def table(rows):
    peaks = fma_peaks(rows)
    first_seen = {}
    for workload, _, _ in rows:
        first_seen.setdefault(workload, len(first_seen))
    keys = sorted({(w, t) for (w, f, t) in rows if f in ("hopgrad", "pytorch") and not w.endswith(SAME_WORK)},
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


def command_lines(meta):
    """The header's last lines, CPU and GPU alike: the command, and the rounds when there were several."""
    lines = []
    if "command" in meta:
        lines.append(f"- Command: `{meta['command']}`")
    if int(meta.get("rounds", "1") or 1) > 1:
        lines.append(f"- Rounds: {meta['rounds']}, the whole alternating sequence once each; every time is the median "
                     "of the rounds' medians (min: the least minimum) and every RSS the median of the rounds' peaks.")
    return lines


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
    return lines + command_lines(meta)


def same_work_line(rows):
    """hopgrad beside the PyTorch twins run with --same-work, or None when the CSV has none."""
    cells = []
    for (workload, framework, threads), theirs in sorted(rows.items()):
        if framework != "pytorch" or not workload.endswith(SAME_WORK):
            continue
        base = workload[:-len(SAME_WORK)]
        ours = rows.get((base, "hopgrad", threads))
        ratio = f", hopgrad {theirs['median_ms'] / ours['median_ms']:.2f}× faster" if ours else ""
        where = "" if theirs.get("device", "cpu") != "cpu" else f" at {threads} thread{'s' if threads > 1 else ''}"
        cells.append(f"{base}{where} {theirs['median_ms']:.3f} ms{ratio}")
    if not cells:
        return None
    return ("PyTorch with hopgrad's algebraic shortcuts written by hand (the twins' `--same-work`: the pooling's "
            "projections folded into its query, the ViT's last block for the class token only), medians: "
            + "; ".join(cells) + ".")


def render(rows, meta):
    body, peaks, missed = table(rows)
    out = header(meta, peaks)
    out += [""] + body + [""]
    out.append("speed-up = PyTorch median / hopgrad median (above 1: hopgrad is faster); times per step (matmul: per "
               "call). % peak is of the FMA peak above at that thread count. Goals at 2 threads: speed-up ≥ 3× "
               "(mlp_small, mil_pool, hopfield_attention) or ≥ 1.5× (other training workloads); ≥ 75 % of peak "
               "(vit_tiny, memory_retrieval); memory: hopgrad's peak ≤ PyTorch's peak − its `import torch` cost.")
    same_work = same_work_line(rows)
    if same_work:
        out += ["", same_work]
    if missed:
        out.append("")
        out.append("Missed: " + "; ".join(missed) + ".")
    return "\n".join(out) + "\n"


def base_workload(name):
    """vit_tiny_x8 → vit_tiny; matmul_n1024 → matmul."""
    match = re.fullmatch(r"(.+)_x\d+", name)
    name = match.group(1) if match else name
    return "matmul" if name.startswith("matmul_n") else name


def load_gemm(path):
    """bench_gemm_efficiency's rows, or [] when there is no such file."""
    if not path or not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def gpu_header(meta, measured_peak):
    lines = []
    if "gpu" in meta:
        lines.append(f"- GPU: {meta['gpu']}" + (f", driver {meta['driver']}" if meta.get("driver") else "") +
                     (f"; host: {meta['cpu']}, {meta.get('cpus', '?')} CPUs" if "cpu" in meta else ""))
    peak = f"fp32 peak: {DATASHEET_FP32_TFLOPS:.0f} TFLOP/s by the H200's datasheet (no tensor cores)"
    if measured_peak:
        peak += (f"; {measured_peak:.1f} TFLOP/s measured (cuBLAS's best on large square products, "
                 "bench_gemm_efficiency)")
    lines.append(f"- {peak}. Float32 everywhere, TF32 off on both sides.")
    if "date" in meta:
        lines.append(f"- Date: {meta['date']}" + (f" ({meta['duration_s']} s)" if "duration_s" in meta else ""))
    versions = [f"{label} {meta[key]}" for key, label in
                [("hopgrad", "hopgrad"), ("compiler", ""), ("nvcc", "nvcc"), ("torch", "PyTorch"),
                 ("python", "Python")] if meta.get(key)]
    if versions:
        lines.append("- Versions: " + ", ".join(v.strip() for v in versions))
    return lines + command_lines(meta)


def gpu_table(rows, measured_peak):
    first_seen = {}
    for workload, _, _ in rows:
        first_seen.setdefault(workload, len(first_seen))
    names = sorted({w for (w, f, _) in rows if f in ("hopgrad", "pytorch") and not w.endswith(SAME_WORK)},
                   key=lambda w: workload_order(w, first_seen))

    def side(framework, workload):  # one GPU row per side: the first thread count there is
        matches = [r for (w, f, _), r in sorted(rows.items()) if w == workload and f == framework]
        return matches[0] if matches else None

    def rate(r):
        if not r or r["gflops"] is None:
            return "—"
        tflops = r["gflops"] / 1e3
        cell = f"{tflops:.2f} ({100 * tflops / DATASHEET_FP32_TFLOPS:.0f} %"
        cell += f", {100 * tflops / measured_peak:.0f} %)" if measured_peak else ")"
        return cell

    def memory(r):
        if not r or r["device_peak_allocated_mib"] is None:
            return "—"
        return f"{r['device_peak_allocated_mib']:.0f} / {r['device_reserved_mib']:.0f}"

    peak_label = " / measured" if measured_peak else ""
    lines = ["| workload | hopgrad median / min (ms) | PyTorch median / min (ms) | speed-up | goal "
             f"| hopgrad TFLOP/s (% datasheet{peak_label}) | PyTorch TFLOP/s (% datasheet{peak_label}) "
             "| hopgrad device peak / reserved (MiB) | PyTorch device peak / reserved (MiB) |",
             "|---|--:|--:|--:|---|--:|--:|--:|--:|"]
    missed = []
    for workload in names:
        ours, theirs = side("hopgrad", workload), side("pytorch", workload)
        speedup = theirs["median_ms"] / ours["median_ms"] if ours and theirs else None
        goal = "—"
        if base_workload(workload) in GPU_PARITY and speedup is not None:
            met = speedup >= 1.0
            goal = f"≥ 1× {'met' if met else '**missed**'}"
            if not met:
                missed.append(f"{workload} parity")

        def ms(r):
            return f"{r['median_ms']:.3f} / {r['min_ms']:.3f}" if r else "—"
        lines.append("| " + " | ".join([workload, ms(ours), ms(theirs), f"{speedup:.2f}×" if speedup else "—", goal,
                                        rate(ours), rate(theirs), memory(ours), memory(theirs)]) + " |")
    return lines, missed


def gemm_table(gemm_rows):
    """The per-GEMM table and, per workload, hopgrad's time-weighted efficiency against cuBLAS's best."""
    lines = ["| workload | GEMM | pass | M × N × K | layout | hopgrad TFLOP/s | cublasSgemm TFLOP/s | cuBLAS best TFLOP/s "
             "| hopgrad / best | rel. error |",
             "|---|---|---|---|---|--:|--:|--:|--:|--:|"]
    totals = {}
    for r in gemm_rows:
        ours, best = float(r["hopgrad_median_ms"]), float(r["best_median_ms"])
        lines.append("| " + " | ".join([
            r["workload"], r["gemm"], r["pass"], f"{r['m']} × {r['n']} × {r['k']}", r["layout"],
            f"{float(r['hopgrad_tflops']):.2f}", f"{float(r['sgemm_tflops']):.2f}", f"{float(r['best_tflops']):.2f}",
            f"{100 * best / ours:.0f} %", f"{float(r['relative_error']):.1e}"]) + " |")
        if r["workload"] != "peak":
            t = totals.setdefault(r["workload"], [0.0, 0.0])
            t[0] += ours
            t[1] += best
    summary = [f"{w}: {100 * best / ours:.0f} % ({ours:.3f} ms of GEMM calls vs cuBLAS best {best:.3f} ms)"
               for w, (ours, best) in totals.items()]
    return lines, summary


def render_gpu(rows, meta, gemm_rows):
    measured_peak = max((float(r["measured_peak_tflops"]) for r in gemm_rows), default=0.0)
    out = gpu_header(meta, measured_peak)
    body, missed = gpu_table(rows, measured_peak) if rows else ([], [])
    if body:
        out += [""] + body + [""]
        out.append("speed-up = PyTorch median / hopgrad median (above 1: hopgrad is faster); times per step, each "
                   "ending with a device synchronize on both sides. <workload>_xN: N× the reference batch. Device "
                   "memory: the caching allocators' peak of live tensors / what they hold from the driver. Goal: "
                   "at least parity (≥ 1×) on vit_tiny and deeprc at every batch size.")
        same_work = same_work_line(rows)
        if same_work:
            out += ["", same_work]
        if missed:
            out += ["", "Missed: " + "; ".join(missed) + "."]
    if gemm_rows:
        lines, summary = gemm_table(gemm_rows)
        out += ["", "GEMM efficiency (bench_gemm_efficiency; medians of bursts timed with CUDA events; hopgrad's "
                "time includes its op dispatch and output allocation):", ""] + lines + [""]
        if summary:
            out.append("hopgrad / cuBLAS best over each workload's GEMM calls: " + "; ".join(summary) + ".")
    return "\n".join(out) + "\n"


def replace_between(path, begin, end, text, title):
    """Replaces what lies between `begin` and `end` in `path` (creating the file, or the markers, if missing)."""
    block = f"{begin}\n{text}{end}"
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "w") as f:
            f.write(f"# {title}\n\n{block}\n")
        return
    with open(path) as f:
        doc = f.read()
    start, stop = doc.find(begin), doc.find(end)
    if start < 0 or stop < start:
        print(f"report.py: {path} had no {begin} … {end} markers: appended them at the end", file=sys.stderr)
        doc = doc.rstrip("\n") + f"\n\n{block}\n"
    else:
        doc = doc[:start] + block + doc[stop + len(end):]
    with open(path, "w") as f:
        f.write(doc)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("csv", help="the CSV bench/run.sh wrote (both sides and fma_peak)")
    parser.add_argument("--meta", help="key=value file for the header (default: meta.txt beside the CSV)")
    parser.add_argument("--gemm", help="bench_gemm_efficiency's CSV (default: gemm.csv beside the CSV, if there)")
    parser.add_argument("--update-docs", metavar="MARKDOWN",
                        help="write the CPU table between the bench markers there, the GPU section between the "
                             "bench-gpu markers (each only when the CSV has such rows)")
    args = parser.parse_args()

    if not os.path.exists(args.csv):
        sys.exit(f"report.py: no such file {args.csv}")
    here = os.path.dirname(os.path.abspath(args.csv))
    rows, gpu_rows = load_rows(args.csv), load_rows(args.csv, "cuda")
    gemm_rows = load_gemm(args.gemm or os.path.join(here, "gemm.csv"))
    has_cpu = any(f in ("hopgrad", "pytorch") for (_, f, _) in rows)
    has_gpu = any(f in ("hopgrad", "pytorch") for (_, f, _) in gpu_rows) or bool(gemm_rows)
    if not has_cpu and not has_gpu:
        sys.exit(f"report.py: {args.csv} has no hopgrad or pytorch rows")
    meta = load_meta(args.meta or os.path.join(here, "meta.txt"))
    if has_cpu:
        text = render(rows, meta)
        sys.stdout.write(text)
        if args.update_docs:
            replace_between(args.update_docs, BEGIN, END, text, "Performance")
            print(f"\nreport.py: table written into {args.update_docs}", file=sys.stderr)
    if has_gpu:
        text = render_gpu(gpu_rows, meta, gemm_rows)
        sys.stdout.write(("\n" if has_cpu else "") + text)
        if args.update_docs:
            replace_between(args.update_docs, GPU_BEGIN, GPU_END, text, "Performance")
            print(f"\nreport.py: GPU section written into {args.update_docs}", file=sys.stderr)


if __name__ == "__main__":
    main()
