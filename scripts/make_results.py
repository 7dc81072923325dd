#!/usr/bin/python3
"""Regenerates the generated tables of docs/results.md by running the example programs.

Single source of truth: the commands live here, in SECTIONS. For each section the script runs its commands (the
example binaries under <build-dir>/examples, each with its own --out-dir and, where the program reads data,
--data-dir), reads the result CSVs the programs write there, renders the section's table(s) with the command of
every row, and replaces what is between the section's markers in the file:

    <!-- results:<section>:begin -->
    ... generated: edit scripts/make_results.py, not this ...
    <!-- results:<section>:end -->

Everything outside the markers (data used, paper numbers, explanations of the gaps) is hand-written and kept.

    scripts/make_results.py --list                                # sections, their commands and typical time
    scripts/make_results.py --only memory_retrieval,lagrangian    # regenerate two sections of docs/results.md
    scripts/make_results.py                                       # everything: hours on 2 cores
    scripts/make_results.py --smoke --only efficiency,lagrangian  # tiny settings into a temporary copy (a test)

A section whose command fails keeps its old block; the exit status is then 1. Standard library only.
"""

import argparse
import concurrent.futures
import csv
import datetime
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

REPO = Path(__file__).resolve().parent.parent


# ---- commands and sections ------------------------------------------------------------------------------------


@dataclass
class Command:
    """One run of an example program: `program flags`, as printed in docs/results.md."""

    program: str
    flags: str = ""
    smoke: str = ""  # --smoke: these flags replace the same-named ones in `flags` (or are added)
    uses_data: bool = False  # pass --data-dir through

    def text(self) -> str:
        return f"{self.program} {self.flags}".strip()

    def argv(self, smoke: bool) -> List[str]:
        args = shlex.split(self.flags)
        if smoke:
            args = merge_flags(args, shlex.split(self.smoke))
        return args


def merge_flags(base: List[str], override: List[str]) -> List[str]:
    """base with every --name[=value] of override replacing base's --name (all flags are written --name=value)."""
    names = {a.split("=", 1)[0] for a in override}
    return [a for a in base if a.split("=", 1)[0] not in names] + override


@dataclass
class Section:
    key: str
    commands: List[Command]
    render: Callable[["Section", List[Path]], str]
    typical: str  # how long the whole section takes, as measured
    needs: Optional[str] = None  # a folder under --data-dir; the section is skipped without it
    labels: List[str] = field(default_factory=list)  # the rows' names, one per command (default: the command)


def fmt_pm(mean: float, std: float, digits: int = 1) -> str:
    if std is None or math.isnan(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def read_csv(path: Path) -> List[Dict[str, str]]:
    if not path.is_file():
        raise RuntimeError(f"the program wrote no {path.name} (expected {path})")
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def code(command: Command) -> str:
    return f"`{command.text()}`"


def table(header: List[str], rows: List[List[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


# ViT / LwPF and ViH / U-Hop: vit_results.csv, one row per variant.
def render_vit(section: Section, outs: List[Path]) -> str:
    names = {"plain": "ViT-mini, softmax", "lwpf": "ViT-mini, softmax + LwPF PFU", "mhn": "ViH MHN",
             "umhn": "ViH UMHN (Stage I)"}
    # U-Hop Table 1 (spec D.6): CIFAR-10 only; vit prints no number for other data, the table still shows it.
    vih_paper = {"mhn": "52.2 (MHM, CIFAR-10)", "umhn": "55.2 (MHM + U-Hop, CIFAR-10)"}
    rows = []
    for command, out in zip(section.commands, outs):
        for r in read_csv(out / "vit_results.csv"):
            if r["data"] != "CIFAR-10" and r["variant"] in vih_paper:
                r["paper"] = vih_paper[r["variant"]]
            seeds = int(r["seeds"])
            acc = fmt_pm(float(r["accuracy_mean"]), float(r["accuracy_std"]) if seeds > 1 else float("nan"), 2)
            rows.append([names.get(r["variant"], r["variant"]), f"{acc} ({seeds} seed{'s' if seeds > 1 else ''})",
                         r["paper"], f"{r['data']}: {r['train_images']} training / {r['test_images']} test images, "
                         f"{r['epochs']} epoch{'s' if r['epochs'] != '1' else ''}", code(command)])
    return table(["variant", "test accuracy (%)", "paper", "data", "command"], rows)


# MIL benchmark: mil_benchmark_results.csv, one row per dataset; one command per model.
MIL_DATASETS = ["elephant", "fox", "tiger", "musk1"]
MIL_NAMES = {"hopfield": "HopfieldMIL", "nph-softmax": "MILModel softmax", "nph-sparsemax": "MILModel sparsemax",
             "attention": "AttentionMIL", "gated": "GatedAttentionMIL"}
MIL_PAPER = [  # Ramsauer et al. 2021 Table 1 (spec F.2) and the NonparametricHopfield repository (spec C.5)
    ["**paper, Hopfield** (10 × 5 folds, 160 epochs, large grid)", "**94.9 ± 0.3**", "**64.05 ± 0.4**",
     "**91.3 ± 0.5**", "—", "Ramsauer et al. Table 1"],
    ["paper's baselines: MILES / Path encoding", "92.7 / 94.4", "73.8 / 71.2", "87.2 / 91.0", "—",
     "Ramsauer et al. Table 1"],
    ["NonparametricHopfield repo (dense / sparse)", "87.7 / 89.3", "56.3 / 57.3", "81.3 / 83.0", "—", "spec C.5"],
]


def render_mil(section: Section, outs: List[Path]) -> str:
    rows = [list(r) for r in MIL_PAPER]
    for command, out in zip(section.commands, outs):
        results = {r["dataset"]: r for r in read_csv(out / "mil_benchmark_results.csv")}
        model = next(iter(results.values()))["model"] if results else "?"
        cells = []
        for d in MIL_DATASETS:
            if d not in results:
                cells.append("—")
                continue
            r = results[d]
            rep, fold = float(r["auc_std_repetitions"]), float(r["auc_std_folds"])
            mean = float(r["auc_mean"])
            cells.append(f"{fmt_pm(mean, rep)} (± {fold:.1f})" if not math.isnan(rep) else fmt_pm(mean, fold))
        rows.append([MIL_NAMES.get(model, model)] + cells + [code(command)])
    return table(["model", "Elephant", "Fox", "Tiger", "Musk1", "command"], rows)


# MIL protocol study on Tiger: the same program, closer to the paper's protocol.
def render_mil_protocol(section: Section, outs: List[Path]) -> str:
    rows = []
    for label, command, out in zip(section.labels, section.commands, outs):
        results = {r["dataset"]: r for r in read_csv(out / "mil_benchmark_results.csv")}
        r = results["tiger"]
        rep, fold = float(r["auc_std_repetitions"]), float(r["auc_std_folds"])
        folds = read_csv(out / "tiger_hopfield_folds.csv")
        minutes = sum(float(f["seconds"]) for f in folds) / 60
        auc = f"{fmt_pm(float(r['auc_mean']), rep)} (± {fold:.1f} fold)" if not math.isnan(rep) else \
            f"{float(r['auc_mean']):.1f} (± {fold:.1f} fold)"
        rows.append([label, auc, f"{minutes:.0f}", code(command)])
    rows.append(["paper: 10 × 5 folds, 160 epochs, manual search over a large grid", "91.3 ± 0.5", "—", "—"])
    return table(["protocol", "Tiger AUC × 100", "wall minutes (1 thread, shared machine)", "command"], rows)


# Memory retrieval: memory_retrieval_results.csv (query, noise_model, level, method, memories, seeds, mean, std).
RETRIEVAL_NAMES = {"softmax": "softmax (MHN)", "sparsemax": "sparsemax", "poly10": "poly-10 (dense AM)",
                   "l2": "−L2", "manhattan": "−Manhattan", "uhop": "**U-Hop**"}


def render_memory_retrieval(section: Section, outs: List[Path]) -> str:
    blocks = []
    for label, command, out in zip(section.labels, section.commands, outs):
        rows = read_csv(out / "memory_retrieval_results.csv")
        for query in dict.fromkeys(r["query"] for r in rows):
            part = [r for r in rows if r["query"] == query]
            levels = list(dict.fromkeys(r["level"] for r in part))
            ms = list(dict.fromkeys(r["memories"] for r in part))
            seeds = part[0]["seeds"]
            cells = {(r["method"], r["level"], r["memories"]): r for r in part}
            if query == "mask":
                title = f"Masking {100 * float(levels[0]):.0f} % of the pixels, {seeds} seeds"
                header = ["method"] + [f"M = {m}" for m in ms]
                columns = [(levels[0], [m]) for m in ms]
            else:
                model = part[0]["noise_model"]
                noise = "σ n/‖n‖ (norm σ)" if model == "unit" else "σ n, n ~ N(0, I) per pixel"
                title = f"Noise {noise}, {label}, M = {' / '.join(ms)}, {seeds} seeds"
                header = ["method"] + [f"σ = {float(l):g}" for l in levels]
                columns = [(l, ms) for l in levels]
            body = []
            for method in dict.fromkeys(r["method"] for r in part):
                line = [RETRIEVAL_NAMES.get(method, method)]
                for level, mlist in columns:
                    line.append(" / ".join(fmt_pm(float(cells[(method, level, m)]["error_mean"]),
                                                  float(cells[(method, level, m)]["error_std"]), 2) for m in mlist))
                body.append(line)
            blocks.append(f"{title} — {code(command)}:\n\n{table(header, body)}")
    return "\n\n".join(blocks)


# Efficiency: efficiency.csv, one row per length with <kind>_ms and <kind>_mib columns.
def render_efficiency(section: Section, outs: List[Path]) -> str:
    blocks = []
    for command, out in zip(section.commands, outs):
        rows = read_csv(out / "efficiency.csv")
        kinds = [c[:-3] for c in rows[0] if c.endswith("_ms")]
        header = ["kind"] + [f"L = {int(float(r['length']))}" for r in rows]

        def num(x: float) -> str:
            return f"{x:.3g}" if x < 1000 else f"{x:.0f}"
        peak = all(k + "_peak_mib" in rows[0] for k in kinds)  # measured peak memory, when the program has it

        def cell(r: Dict[str, str], k: str) -> str:
            memory = num(float(r[k + "_mib"])) + (f" / {num(float(r[k + '_peak_mib']))}" if peak else "")
            return f"{num(float(r[k + '_ms']))} ({memory})"
        body = [[k] + [cell(r, k) for r in rows] for k in kinds]
        unit = "largest intermediate / measured peak in MiB" if peak else "largest intermediate in MiB"
        blocks.append(f"Forward + backward time in ms ({unit}) — {code(command)}:\n\n" + table(header, body))
    return "\n\n".join(blocks)


# Lagrangian: lagrangian_results.csv (section, claim, holds).
LAGRANGIAN_SECTIONS = {"1": "energy descent", "2": "attention", "3": "fixed points", "4": "retrieval capacity",
                       "5": "LwPF forgetting", "6": "U-Hop Stage I"}


def render_lagrangian(section: Section, outs: List[Path]) -> str:
    rows = []
    for command, out in zip(section.commands, outs):
        for r in read_csv(out / "lagrangian_results.csv"):
            rows.append([f"{r['section']}. {LAGRANGIAN_SECTIONS.get(r['section'], '')}",
                         r["claim"].replace("|", "\\|"), "holds" if r["holds"] == "1" else "**FAILS**"])
    return f"{code(section.commands[0])}:\n\n" + table(["section", "claim (measured on random patterns)", ""], rows)


# DeepRC (and any example whose <program>_results.csv has metric, mean, std columns): one row per command.
def render_metric_rows(section: Section, outs: List[Path]) -> str:
    runs = [read_csv(out / f"{command.program}_results.csv") for command, out in zip(section.commands, outs)]
    metrics = list(dict.fromkeys(r["metric"] for results in runs for r in results))  # a run may lack some
    rows = []
    for label, command, results in zip(section.labels, section.commands, runs):
        values = {r["metric"]: fmt_pm(float(r["mean"]), float(r["std"]), 3) for r in results}
        paper = next((r.get("paper", "") for r in results if r.get("paper")), "")
        rows.append([label] + [values.get(m, "—") for m in metrics] + [paper or "—", code(command)])
    return table(["data"] + metrics + ["paper", "command"], rows)


# Bit patterns: bit_pattern_results.csv (network, final_*, max_*, seeds, paper), eval accuracy in %.
BIT_PATTERN_CLAIMS = {"hopfield_adapted": 'plots only ("≈ 1.0", unverified)',
                      "pooling_adapted": 'plots only ("≈ 1.0", unverified)'}


def render_bit_pattern(section: Section, outs: List[Path]) -> str:
    rows = []
    for command, out in zip(section.commands, outs):
        for r in read_csv(out / "bit_pattern_results.csv"):
            name = r["network"]
            base = name.split(" + ")[0]
            shown = name.replace(base, f"{base} (BITModel)", 1) if base.startswith("np_") else name
            rows.append([shown, f"{float(r['final_mean']):.1f} ± {float(r['final_std']):.1f}",
                         f"{float(r['max_mean']):.1f} ± {float(r['max_std']):.1f}", r["seeds"],
                         BIT_PATTERN_CLAIMS.get(name, r["paper"]), code(command)])
    return table(["network", "final eval accuracy (%)", "max over epochs", "seeds", "paper", "command"], rows)


# MNIST bags: mnist_bags_results.csv (bags, pooling, lwpf, test_auc_*, max_auc_*, accuracy_*, seeds, paper), one row
# per bag form and pooling; rows grouped as MNISTModel's poolings, Ilse et al.'s attention MIL, the LeNet + Hopfield.
MNIST_BAGS_NAMES = {"topk": "top-50 %", "attention": "attention MIL (Ilse)", "gated": "gated attention MIL",
                    "hopfield": "LeNet + Hopfield pooling (hflayers demo)"}
MNIST_BAGS_PAPER = {"attention": "– (none in the spec)", "gated": "– (none in the spec)", "hopfield": "– (demo: none)"}


def render_mnist_bags(section: Section, outs: List[Path]) -> str:
    entries = []
    for command, out in zip(section.commands, outs):
        for r in read_csv(out / "mnist_bags_results.csv"):
            group = 2 if r["pooling"] == "hopfield" else 1 if r["pooling"] in ("attention", "gated") else 0
            entries.append((group, 0 if r["bags"] == "paired" else 1, r, command))
    rows = []
    for _, _, r, command in sorted(entries, key=lambda e: e[:2]):
        name = f"{'Ilse' if r['bags'] == 'ilse' else r['bags']} {MNIST_BAGS_NAMES.get(r['pooling'], r['pooling'])}"
        if r["lwpf"] not in ("0", ""):
            name += " + LwPF"

        def pm(key: str, digits: int) -> str:
            return f"{float(r[key + '_mean']):.{digits}f} ± {float(r[key + '_std']):.{digits}f}"
        rows.append([name, pm("test_auc", 3), pm("max_auc", 3), pm("accuracy", 1), r["seeds"],
                     MNIST_BAGS_PAPER.get(r["pooling"], r["paper"]), code(command)])
    return table(["bags, pooling", "test AUC", "max AUC over epochs", "accuracy %", "seeds", "paper", "command"],
                 rows)


MIL_SMOKE = "--dataset=elephant --outer-folds=2 --inner-folds=2 --repetitions=1 --epochs=2 --grid-bag-dropout=0"
RETRIEVAL_SMOKE = "--patterns=random --memories=4,8 --seeds=2 --kernel-epochs=3"

SECTIONS: List[Section] = [
    Section("vit", [Command("vit", "--threads=1", "--dataset=synthetic --train-images=64 --test-images=32 "
                            "--batch-size=32 --epochs=1 --embed-dim=16 --depth=1 --threads=1 --no-progress",
                            uses_data=True)],
            render_vit, "about 6 minutes (2 variants × 1 seed, 6 epochs)"),
    Section("vih", [Command("vit", "--model=vih --seeds=3 --threads=1",
                            "--dataset=synthetic --train-images=64 --test-images=32 --batch-size=32 --epochs=1 "
                            "--embed-dim=16 --kernel-epochs=1 --seeds=1 --threads=1 --no-progress", uses_data=True)],
            render_vit, "under a minute (2 variants × 3 seeds)"),
    Section("mil_benchmark",
            [Command("mil_benchmark", flags, MIL_SMOKE, uses_data=True)
             for flags in ["", "--model=nph-softmax", "--model=nph-sparsemax", "--model=attention", "--model=gated"]],
            render_mil, "about 15 minutes (5 runs × 3 min, one thread each)", needs="mil"),
    Section("mil_protocol",
            [Command("mil_benchmark", "--dataset=tiger", MIL_SMOKE.replace("elephant", "tiger"), uses_data=True),
             Command("mil_benchmark", "--dataset=tiger --outer-folds=10 --repetitions=2",
                     MIL_SMOKE.replace("elephant", "tiger"), uses_data=True),
             Command("mil_benchmark", "--dataset=tiger --outer-folds=10 --repetitions=2 --epochs=160",
                     MIL_SMOKE.replace("elephant", "tiger"), uses_data=True),
             Command("mil_benchmark", "--dataset=tiger --outer-folds=10 --repetitions=1 --epochs=160 "
                     "--grid-beta=0.1,1,10 --grid-bag-dropout=0,0.75 --grid-width=32",
                     MIL_SMOKE.replace("elephant", "tiger"), uses_data=True),
             Command("mil_benchmark", "--dataset=tiger --paper-protocol",
                     "--paper-protocol " + MIL_SMOKE.replace("elephant", "tiger") + " --grid-lr=1e-3 --grid-beta=1 "
                     "--grid-width=32", uses_data=True)],
            render_mil_protocol, "about an hour (the table's minutes)", needs="mil",
            labels=["the default: 5 folds × 3 repetitions, 30 epochs, grid bag dropout {0, 0.75} (β 1, width 64)",
                    "10 folds × 2 repetitions, 30 epochs, the default grid",
                    "10 folds × 2 repetitions, 160 epochs, the default grid",
                    "10 folds × 1 repetition, 160 epochs, grid β {0.1, 1, 10} × bag dropout {0, 0.75}, width 32",
                    "the paper's: 10 folds × 5 repetitions, 160 epochs, grid lr {1e-3, 1e-5} × β {0.1, 1, 10} × bag "
                    "dropout {0, 0.75} × width {32, 256}"]),
    Section("memory_retrieval",
            [Command("memory_retrieval", "--query=mask --threads=1", RETRIEVAL_SMOKE, uses_data=True),
             Command("memory_retrieval", "--query=noise --noise=0.1,0.5,1,2,4 --memories=20,100 --seeds=3 --threads=1",
                     RETRIEVAL_SMOKE + " --noise=0.5,2", uses_data=True),
             Command("memory_retrieval", "--query=noise --noise=0.1,0.5,1,2,4 --memories=20,100 --seeds=3 --compat --threads=1",
                     RETRIEVAL_SMOKE + " --noise=0.5,2", uses_data=True),
             Command("memory_retrieval", "--query=noise --noise=0.1,0.5,1,2,4 --memories=20,100 --seeds=3 "
                     "--noise-model=gaussian --stage1-loss=average --threads=1", RETRIEVAL_SMOKE + " --noise=0.5,2",
                     uses_data=True)],
            render_memory_retrieval, "about a minute (4 runs of 7–10 s)",
            labels=["masking", "U-Hop max loss (this example's Stage I and the max-loss script's noise)",
                    "the same with --compat (the reference code's d × d map and +distance similarities)",
                    "the plain script's noise with its average-loss Stage I"]),
    Section("efficiency",
            [Command("efficiency", "--max-length=2880 --repeats=3",
                     "--lengths=24,48 --windows=4,6 --repeats=2 --threads=1 --no-progress")],
            render_efficiency, "about 4 minutes"),
    Section("lagrangian", [Command("lagrangian", "--threads=1", "--threads=1 --queries=16")],
            render_lagrangian, "about a second"),
    Section("deeprc",
            [Command("deeprc", "", "--repertoires=60 --sequences=50 --witness-rate=0.1 --reduction=0.2 --epochs=2 "
                     "--run-folds=1 --threads=1 --no-progress"),
             Command("deeprc", "--witness-rate=0.01 --sequences=1000 --epochs=30",
                     "--repertoires=60 --sequences=50 --epochs=2 --run-folds=1 --threads=1 --no-progress"),
             Command("deeprc", "--separation=sparsemax", "--repertoires=60 --sequences=50 --witness-rate=0.1 "
                     "--epochs=2 --run-folds=1 --threads=1 --no-progress"),
             Command("deeprc", "--forgetting=pfu", "--repertoires=60 --sequences=50 --witness-rate=0.1 "
                     "--epochs=2 --run-folds=1 --threads=1 --no-progress"),
             Command("deeprc", "--dataset=example", "--epochs=2 --run-folds=1 --threads=1 --no-progress",
                     uses_data=True)],
            render_metric_rows, "about 25 minutes (74 s, 17.5 min, two runs like the first without the reduction, 6 s)",
            labels=["generated, OM, 200 repertoires × 200 sequences, 5 % witnesses",
                    "generated, OM, 200 × 1000 sequences, 1 % witnesses",
                    "the default data, sparsemax attention (no top-10 % reduction: see below)",
                    "the default data, LwPF PFU per bag (softmax; no top-10 % reduction)",
                    "DeepRC example dataset (100 repertoires, random labels)"]),
    Section("bit_pattern", [Command("bit_pattern", "", "--nets=hopfield,np_softmax --lwpf=both --epochs=1 --seeds=1 "
                                    "--threads=1 --no-progress")],
            render_bit_pattern, "about 12 minutes (8 networks × 2 × 2 seeds × 20 epochs)"),
    Section("mnist_bags", [Command("mnist_bags", "", "--form=both --models=softmax,linear --train-bags=40 "
                                   "--test-bags=20 --epochs=1 --seeds=1 --d-model=32 --threads=1 --no-progress",
                                   uses_data=True),
                           Command("mnist_bags", "--models=hopfield --threads=1", "--form=both --models=hopfield "
                                   "--train-bags=40 --test-bags=20 --epochs=1 --seeds=1 --threads=1 --no-progress",
                                   uses_data=True)],
            render_mnist_bags, "about 20 minutes (the default with attention and gated MIL; 3 min for LeNet + Hopfield)",
            needs="mnist"),
]
BY_KEY = {s.key: s for s in SECTIONS}
for s in SECTIONS:
    if not s.labels:
        s.labels = [c.text() for c in s.commands]


# ---- running ----------------------------------------------------------------------------------------------------

MARKER = re.compile(r"(<!-- results:(?P<key>[a-z_]+):begin[^>]*-->\n)(?P<body>.*?)(<!-- results:(?P=key):end -->)",
                    re.S)
print_lock = threading.Lock()


def say(text: str) -> None:
    with print_lock:
        print(text, flush=True)


def run_command(section: Section, index: int, args: argparse.Namespace, work: Path) -> Path:
    command = section.commands[index]
    out = work / section.key / str(index)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    program = args.build_dir / "examples" / command.program
    argv = [str(program)] + command.argv(args.smoke) + [f"--out-dir={out}"]
    if command.uses_data or section.needs:
        argv.append(f"--data-dir={args.data_dir}")
    say(f"[{section.key} {index + 1}/{len(section.commands)}] {command.text()}" + (" (smoke)" if args.smoke else ""))
    start = time.monotonic()
    with open(out / "output.log", "w", encoding="utf-8") as log:
        rc = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, cwd=out).returncode
    elapsed = time.monotonic() - start
    if rc != 0:
        tail = (out / "output.log").read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
        raise RuntimeError(f"{shlex.join(argv)} exited with {rc} after {elapsed:.0f} s:\n    " + "\n    ".join(tail))
    say(f"[{section.key} {index + 1}/{len(section.commands)}] done in {elapsed:.1f} s")
    return out


def regenerate(sections: List[Section], args: argparse.Namespace, text: str,
               work: Path) -> Tuple[Dict[str, str], List[str]]:
    """Runs the sections' commands and renders their blocks: ({section: new block}, [failed sections])."""
    blocks: Dict[str, str] = {}
    failed = []
    present = {m.group("key") for m in MARKER.finditer(text)}
    if args.smoke:  # the tables then show the commands that really ran
        sections = [Section(s.key, [Command(c.program, shlex.join(c.argv(True)), uses_data=c.uses_data)
                                    for c in s.commands], s.render, s.typical, s.needs, s.labels)
                    for s in sections]
    runnable = []
    for s in sections:
        if s.key not in present:
            say(f"[{s.key}] FAILED: {args.results} has no <!-- results:{s.key}:begin --> … end --> markers")
            failed.append(s.key)
        elif s.needs and not (args.data_dir / s.needs).is_dir():
            say(f"[{s.key}] skipped: no {args.data_dir / s.needs} (pass --data-dir)")
        else:
            runnable.append(s)
    if args.render_only:  # the outputs of an earlier run are already in work/<section>/<index>
        runnable = [s for s in sections if s.key in present]
    jobs = [] if args.render_only else [(s, i) for s in runnable for i in range(len(s.commands))]
    outs: Dict[str, List[Optional[Path]]] = {s.key: [work / s.key / str(i) for i in range(len(s.commands))]
                                             for s in runnable}
    errors: Dict[str, str] = {}
    seconds: Dict[str, float] = {s.key: 0.0 for s in runnable}
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        def job(si):
            s, i = si
            start = time.monotonic()
            try:
                outs[s.key][i] = run_command(s, i, args, work)
            except Exception as e:  # noqa: BLE001 - reported per section below
                errors.setdefault(s.key, str(e))
            with print_lock:  # jobs of one section may run at once (--jobs)
                seconds[s.key] += time.monotonic() - start
        list(pool.map(job, jobs))
    for s in runnable:
        try:
            if s.key in errors:
                raise RuntimeError(errors[s.key])
            body = s.render(s, outs[s.key])
        except Exception as e:  # noqa: BLE001
            say(f"[{s.key}] FAILED, its block is left as it was: {e}")
            failed.append(s.key)
            continue
        stamp = (f"<!-- generated by scripts/make_results.py --only={s.key}"
                 f"{' --smoke' if args.smoke else ''}: edit the script, not this block -->\n")
        when = datetime.date.today().isoformat()
        if args.render_only:
            note = f"\n\n*Rendered {when} from the outputs of these commands (typically {s.typical}).*\n"
        else:
            note = (f"\n\n*Regenerated {when} in {seconds[s.key] / 60:.1f} min of wall time (typically {s.typical}): "
                    f"`scripts/make_results.py --only={s.key}`.*\n")
        blocks[s.key] = stamp + body + note
        say(f"[{s.key}] table rendered ({seconds[s.key]:.1f} s)")
    return blocks, failed


def substitute(text: str, blocks: Dict[str, str]) -> str:
    return MARKER.sub(lambda m: m.group(1) + blocks[m.group("key")] + m.group(4) if m.group("key") in blocks
                      else m.group(0), text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="comma-separated sections (default: all; see --list)")
    parser.add_argument("--build-dir", type=Path, default=REPO / "build", help="holds examples/<program>")
    parser.add_argument("--data-dir", type=Path,
                        default=Path(os.environ.get("HOPGRAD_DATA_DIR") or REPO.parent / "shared" / "data"),
                        help="the datasets folder (default $HOPGRAD_DATA_DIR or ../shared/data)")
    parser.add_argument("--results", type=Path, default=REPO / "docs" / "results.md", help="the file to rewrite")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="where the runs' outputs go (default: a temporary folder, removed afterwards)")
    parser.add_argument("--jobs", type=int, default=1, help="commands run at once (default 1: timings stay honest)")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny settings, written to a copy of the file in --work-dir (default: a new temporary "
                             "folder, printed), never to docs/")
    parser.add_argument("--render-only", action="store_true",
                        help="run nothing: render from the outputs an earlier run left in --work-dir")
    parser.add_argument("--list", action="store_true", help="print the sections and their commands, run nothing")
    args = parser.parse_args()

    keys = [k for k in args.only.split(",") if k] or [s.key for s in SECTIONS]
    unknown = [k for k in keys if k not in BY_KEY]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; known: {', '.join(BY_KEY)}")
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    if args.render_only and args.work_dir is None:
        parser.error("--render-only needs --work-dir (the outputs of an earlier run)")
    sections = [BY_KEY[k] for k in keys]
    if args.list:
        for s in sections:
            print(f"{s.key} ({s.typical}){f', needs <data-dir>/{s.needs}' if s.needs else ''}:")
            for c in s.commands:
                print(f"    {c.text()}")
        return 0
    missing = sorted({c.program for s in sections for c in s.commands
                      if not (args.build_dir / "examples" / c.program).is_file()}) if not args.render_only else []
    if missing:
        parser.error(f"no {', '.join(missing)} under {args.build_dir / 'examples'} (build the examples, or pass "
                     "--build-dir)")
    args.build_dir = args.build_dir.resolve()
    args.data_dir = args.data_dir.resolve()

    text = args.results.read_text(encoding="utf-8")
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="make_results_") as tmp:
        work = (args.work_dir or Path(tmp) / "runs").resolve()
        blocks, failed = regenerate(sections, args, text, work)
        if args.smoke:
            folder = args.work_dir if args.work_dir else Path(tempfile.mkdtemp(prefix="make_results_smoke_"))
            target = folder / args.results.name
            target.write_text(substitute(text, blocks), encoding="utf-8")
        else:
            # Read again: a full run takes hours and the hand-written text may have been edited meanwhile.
            target = args.results
            target.write_text(substitute(target.read_text(encoding="utf-8"), blocks), encoding="utf-8")
    print(f"wrote {target} ({(time.monotonic() - start) / 60:.1f} min)"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
