"""The frame every bench/torch/<workload>.py shares with its hopgrad twin bench/<workload>.cpp (see
bench/workload.h): the same flags, the same timing scheme (bench/timing.h) and the same CSV row.

    from harness import run_workload
    def make(setup):          # builds model and data; returns (step, flops per step or 0)
        model = Model().to(setup.device)                # before the optimizer, so its state lives there too
        x = torch.randn(BATCH * setup.batch_scale, ..., generator=setup.gen).to(setup.device)
        ...
        return step, flops
    if __name__ == "__main__":
        run_workload("mlp_small", "784→256→10 MLP, batch 128, Adam", make)

Debian's PyTorch (1.13, CPU) multiplies through OpenBLAS 0.3.21, which does not recognise this CPU and falls
back to SSE3 kernels (about 5x slower) unless OPENBLAS_CORETYPE names a core it knows: importing this module
sets it before torch loads OpenBLAS, unless the caller set it. `baseline_rss_mib` is the resident memory right
after `import torch` (about 230 MB), so the report can show PyTorch's peak with and without that cost.

--device=cuda (PyTorch 2.x with a GPU): data and initial weights are still drawn on the host (the same numbers as
on the CPU), then moved; every timed step ends with torch.cuda.synchronize, so the clock reads finished work; TF32
is off for matrix products and cuDNN, as hopgrad's cuBLAS float32 GEMMs use full-precision FMAs (ops/cuda/gemm.h);
the device's peak memory is torch.cuda.max_memory_allocated (live tensors) and max_memory_reserved (what the
caching allocator took from the driver). --batch-scale=N multiplies the batch and names the row <workload>_xN.

--same-work (mil_pool, vit_tiny): the twin written with the algebra hopgrad's layers apply on their own — the
pooling's key and value projections folded into its one query, the ViT's last block run for the class token
only — so that hopgrad can also be compared with a PyTorch user who did that by hand. The row is named
<workload>_same_work; the table's comparison stays against the model as PyTorch users write it.
"""
import argparse
import math
import os
import sys
import time
from dataclasses import dataclass

os.environ.setdefault("OPENBLAS_CORETYPE", "SkylakeX")
import torch  # noqa: E402  (after the environment variable above)

CSV_HEADER = ("workload,framework,threads,median_ms,min_ms,repeats,gflops,baseline_rss_mib,peak_rss_mib,"
              "device,device_peak_allocated_mib,device_reserved_mib\n")


@dataclass
class Setup:
    """What a workload's make() builds with (as bench/workload.h's hgbench::Setup)."""
    gen: torch.Generator  # data and initialisation, drawn on the host
    device: torch.device  # where the model, its optimizer state and the data live
    batch_scale: int = 1  # the definition's batch times this (--batch-scale)
    same_work: bool = False  # --same-work: hopgrad's algebraic shortcuts written by hand (see the docstring)


def parse_device(spec, program):
    """The torch.device named by --device, checked before anything is built; exits with one clear line if this
    PyTorch or machine has no such GPU. Turns TF32 off there (see the module's docstring)."""
    try:
        device = torch.device(spec)
    except RuntimeError:
        sys.exit(f"bench/torch {program}: --device={spec}: expected cpu, cuda or cuda:N")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            sys.exit(f"bench/torch {program}: --device={spec} requested, but this PyTorch ({torch.__version__}) "
                     "sees no CUDA device")
        if (device.index or 0) >= torch.cuda.device_count():
            sys.exit(f"bench/torch {program}: --device={spec} requested, but this machine has "
                     f"{torch.cuda.device_count()} CUDA devices")
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    elif device.type != "cpu":
        sys.exit(f"bench/torch {program}: --device={spec}: expected cpu, cuda or cuda:N")
    return device


def synchronized(step, device):
    """`step` followed by a wait for the device's queue (the step itself on the CPU)."""
    if device.type != "cuda":
        return step

    def step_and_wait():
        step()
        torch.cuda.synchronize(device)
    return step_and_wait


def device_memory(device):
    """(peak allocated, peak reserved) MiB of `device` since its last reset, or None on the CPU."""
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2 ** 20, torch.cuda.max_memory_reserved(device) / 2 ** 20


def scaled_name(name, batch_scale):
    """"vit_tiny", or "vit_tiny_x8" at --batch-scale=8 (as bench/workload.h)."""
    return name if batch_scale == 1 else f"{name}_x{batch_scale}"


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


def record(name, threads, median, best, repeats, flops, baseline, peak, unit="steps", memory=None):
    """Prints one result line and returns its CSV row (the format bench/workload.h writes); `memory` is
    device_memory()'s pair on a GPU."""
    gflops = f"{flops / median / 1e9:.2f}" if flops else ""
    rate = f"  {flops / median / 1e9:7.1f} GFLOP/s" if flops else ""
    on_device = f"  device peak {memory[0]:.0f} MiB (reserved {memory[1]:.0f})" if memory else ""
    print(f"{name:<20} pytorch {threads} thread{'s' if threads > 1 else ' '}  median {median * 1e3:9.3f} ms  "
          f"min {best * 1e3:9.3f} ms  ({repeats} {unit}){rate}  peak RSS {peak:.0f} MiB "
          f"({baseline:.0f} MiB after import torch){on_device}", flush=True)
    memory_cells = f"{memory[0]:.1f},{memory[1]:.1f}" if memory else ","
    return (f"{name},pytorch,{threads},{median * 1e3:.5f},{best * 1e3:.5f},{repeats},{gflops},{baseline:.1f},"
            f"{peak:.1f},{'cuda' if memory else 'cpu'},{memory_cells}\n")


def append_csv(path, rows):
    """Appends CSV rows to `path`, with the header first when the file is new or empty."""
    fresh = not os.path.exists(path) or os.path.getsize(path) == 0
    with open(path, "a") as f:
        if fresh:
            f.write(CSV_HEADER)
        f.writelines(rows)


def run_workload(name, description, make, has_same_work=False):
    parser = argparse.ArgumentParser(description=f"PyTorch benchmark {name}: {description}")
    parser.add_argument("--threads", type=lambda s: [int(v) for v in s.split(",")], default=[1, 2],
                        help="thread counts to run at, e.g. 1,2")
    parser.add_argument("--min-repeats", type=int, default=10, help="timed steps at least, after the warm-up")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--seed", type=int, default=2024, help="seed for the data and the initialisation")
    parser.add_argument("--csv", help="append the result rows to this CSV file (header written when it is new)")
    parser.add_argument("--device", default="cpu", help="where the model, optimizer state and data live: cpu, cuda "
                                                        "or cuda:N")
    parser.add_argument("--batch-scale", type=int, default=1, help="run the batch times N (row named <workload>_xN)")
    parser.add_argument("--same-work", action="store_true",
                        help="write the model with the algebra hopgrad applies (row named <workload>_same_work)")
    args = parser.parse_args()
    if args.batch_scale < 1:
        parser.error(f"--batch-scale must be at least 1, got {args.batch_scale}")
    if args.same_work and not has_same_work:
        parser.error(f"--same-work: {name} runs the same work on both sides already")
    device = parse_device(args.device, name)
    row_name = scaled_name(name, args.batch_scale) + ("_same_work" if args.same_work else "")

    baseline, _ = resident_memory()
    rows = []
    for t in args.threads:
        torch.set_num_threads(t)  # torch.get_num_threads() is 1 here by default
        torch.manual_seed(args.seed)
        gen = torch.Generator().manual_seed(args.seed)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        step, flops = make(Setup(gen, device, args.batch_scale, args.same_work))
        median, best, repeats = time_steps(synchronized(step, device), args.warmup, args.min_repeats)
        _, peak = resident_memory()
        rows.append(record(row_name, t, median, best, repeats, flops, baseline, peak, memory=device_memory(device)))
    if args.csv:
        append_csv(args.csv, rows)
    return 0
