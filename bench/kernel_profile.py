#!/usr/bin/env python3
"""Where a GPU workload's time goes, per kernel: reads Nsight Compute's raw CSV page of a run profiled with
gpu__time_duration.sum (scripts/device-bench.sh --phases=profile makes one per workload) and prints each kernel's
share of the run's summed kernel time, its launches and its time per step.

    ncu --clock-control none --metrics gpu__time_duration.sum -o prof bench_vit_tiny --device=cuda ...
    ncu -i prof.ncu-rep --csv --page raw --metrics gpu__time_duration.sum > prof.csv
    bench/kernel_profile.py prof.csv --steps=4 --top=25

--steps divides the totals into per-step figures (the profiled program's warm-up and timed steps; its set-up
kernels are counted in too, so these are slight overestimates). Kernel names are shortened to the function's
name and template arguments: the argument list is dropped.
"""
import argparse
import collections
import csv
import re
import sys

UNIT_TO_MS = {"nsecond": 1e-6, "ns": 1e-6, "usecond": 1e-3, "us": 1e-3, "msecond": 1.0, "ms": 1.0,
              "second": 1e3, "s": 1e3}


def short_name(name: str, width: int) -> str:
    name = re.sub(r"^void ", "", name.strip())
    name = re.sub(r"\bhg::cuda::", "", name.replace("(anonymous namespace)::", ""))
    depth, cut = 0, len(name)
    for i, ch in enumerate(name):  # the argument list: the first '(' outside template brackets
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif ch == "(" and depth == 0:
            cut = i
            break
    name = name[:cut]
    return name if len(name) <= width else name[: width - 1] + "…"


def read(path: str):
    """(kernel name, milliseconds) per launch."""
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f) if r and not r[0].startswith("==")]
    if not rows:
        sys.exit(f"kernel_profile: {path}: no rows (did the profiled program launch any kernel?)")
    header = rows[0]
    try:
        name_col = header.index("Kernel Name")
    except ValueError:
        sys.exit(f"kernel_profile: {path}: no 'Kernel Name' column (expected ncu --csv --page raw); header: {header[:8]}")
    if "gpu__time_duration.sum" in header:  # raw page: a units row, then one row per launch
        col = header.index("gpu__time_duration.sum")
        unit = rows[1][col] if len(rows) > 1 else "nsecond"
        scale = UNIT_TO_MS.get(unit)
        if scale is None:
            sys.exit(f"kernel_profile: {path}: unknown time unit '{unit}'")
        out = []
        for r in rows[2:]:
            value = r[col].replace(",", "")
            if value:
                out.append((r[name_col], float(value) * scale))
        return out
    # details page: one row per (launch, metric)
    metric, unit_col, value_col = header.index("Metric Name"), header.index("Metric Unit"), header.index("Metric Value")
    out = []
    for r in rows[1:]:
        if r[metric] == "gpu__time_duration.sum":
            out.append((r[name_col], float(r[value_col].replace(",", "")) * UNIT_TO_MS[r[unit_col]]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv")
    ap.add_argument("--steps", type=int, default=1, help="steps the profiled run took (per-step columns)")
    ap.add_argument("--top", type=int, default=25, help="kernels listed (the rest summed in one line)")
    ap.add_argument("--title", default="", help="a line printed above the table")
    ap.add_argument("--width", type=int, default=78, help="kernel names shortened to this many characters")
    args = ap.parse_args()
    launches = read(args.csv)
    total = collections.defaultdict(float)
    count = collections.Counter()
    for name, ms in launches:
        key = short_name(name, args.width)
        total[key] += ms
        count[key] += 1
    grand = sum(total.values())
    steps = max(args.steps, 1)
    if args.title:
        print(args.title)
    print(f"{len(launches)} launches, {grand:.3f} ms of kernel time in all; per step ({steps} steps): "
          f"{len(launches) / steps:.0f} launches, {grand / steps:.3f} ms")
    print(f"{'share':>6} {'ms/step':>9} {'launches/step':>13} {'µs/launch':>10}  kernel")
    ranked = sorted(total, key=total.get, reverse=True)
    for key in ranked[: args.top]:
        print(f"{100 * total[key] / grand:5.1f}% {total[key] / steps:9.3f} {count[key] / steps:13.1f} "
              f"{1e3 * total[key] / count[key]:10.1f}  {key}")
    rest = ranked[args.top:]
    if rest:
        ms = sum(total[k] for k in rest)
        n = sum(count[k] for k in rest)
        print(f"{100 * ms / grand:5.1f}% {ms / steps:9.3f} {n / steps:13.1f} {'':>10}  ({len(rest)} other kernels)")


if __name__ == "__main__":
    main()
