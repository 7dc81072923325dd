#!/usr/bin/python3
"""bench/report.py on a small CSV written here: rows of several rounds combine (median of the medians, least
minimum, median RSS, GFLOP/s from the combined median), and the goals are judged on the combined rows; a --same-work
twin's row stays out of the table and goes into its own line."""
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import report  # noqa: E402

HEADER = "workload,framework,threads,median_ms,min_ms,repeats,gflops,baseline_rss_mib,peak_rss_mib,device," \
         "device_peak_allocated_mib,device_reserved_mib\n"
ROWS = [
    "fma_peak,avx512,2,2.0,1.0,100,100.0,4,4,cpu,,",  # best = 100 · 2.0 / 1.0 = 200 GFLOP/s
    # vit_tiny, 70 GFLOP per step, three rounds per side; hopgrad's second round was disturbed.
    "vit_tiny,hopgrad,2,400.0,390.0,10,175.0,300,370,cpu,,",
    "vit_tiny,hopgrad,2,900.0,380.0,10,77.7778,300,380,cpu,,",
    "vit_tiny,hopgrad,2,420.0,410.0,10,166.6667,300,360,cpu,,",
    "vit_tiny,pytorch,2,650.0,600.0,10,107.6923,230,700,cpu,,",
    "vit_tiny,pytorch,2,600.0,590.0,10,116.6667,240,720,cpu,,",
    "vit_tiny,pytorch,2,700.0,610.0,10,100.0,250,710,cpu,,",
    # The twin with --same-work: no table row, no goal; one line under the table.
    "vit_tiny_same_work,pytorch,2,546.0,540.0,10,100.0,230,650,cpu,,",
]


def main():
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "results.csv")
        with open(path, "w") as f:
            f.write(HEADER + "\n".join(ROWS) + "\n")
        rows = report.load_rows(path)
        ours, theirs = rows[("vit_tiny", "hopgrad", 2)], rows[("vit_tiny", "pytorch", 2)]
        assert ours["rounds"] == 3 and ours["median_ms"] == 420.0 and ours["min_ms"] == 380.0, ours
        assert ours["peak_rss_mib"] == 370 and ours["repeats"] == "30", ours
        assert abs(ours["gflops"] - 70e3 / 420.0) < 1e-2, ours["gflops"]
        assert theirs["median_ms"] == 650.0 and theirs["baseline_rss_mib"] == 240 and theirs["peak_rss_mib"] == 710
        lines, peaks, missed = report.table(rows)
        assert peaks[2][1] == 200.0, peaks
        row = next(line for line in lines if line.startswith("| vit_tiny | 2 "))
        # 650 / 420 = 1.55× (met); 166.7 GFLOP/s = 83 % of 200 (met); 370 ≤ 710 − 240 (met).
        assert "1.55×" in row and "≥ 1.5× met" in row and "≥ 75 % peak met" in row and "memory met" in row, row
        assert missed == [], missed
        assert not any(line.startswith("| vit_tiny_same_work") for line in lines), lines
        assert "vit_tiny at 2 threads 546.000 ms, hopgrad 1.30× faster" in report.same_work_line(rows)
        # The script as bench/run.sh calls it, with a meta.txt beside the CSV naming the rounds.
        with open(os.path.join(tmp, "meta.txt"), "w") as f:
            f.write("rounds=3\ncommand=bench/run.sh --rounds=3\n")
        out = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "report.py"), path], check=True,
                             capture_output=True, text=True).stdout
        assert "- Rounds: 3" in out and "| vit_tiny | 2 | 420.000 / 380.000 | 650.000 / 590.000 | 1.55× |" in out, out
        # GPU rows: the --same-work twin stays out of the GPU table too, and gets its line.
        gpu = os.path.join(tmp, "gpu.csv")
        with open(gpu, "w") as f:
            f.write(HEADER + "\n".join([
                "vit_tiny_x8,hopgrad,1,10.0,9.0,10,1000.0,300,900,cuda,500,600",
                "vit_tiny_x8,pytorch,1,12.0,11.0,10,800.0,300,900,cuda,700,800",
                "vit_tiny_x8_same_work,pytorch,1,11.0,10.5,10,800.0,300,900,cuda,650,800"]) + "\n")
        text = report.render_gpu(report.load_rows(gpu, "cuda"), {}, [])
        assert "| vit_tiny_x8 |" in text and "| vit_tiny_x8_same_work" not in text, text
        assert "vit_tiny_x8 11.000 ms, hopgrad 1.10× faster" in text, text
    print("report_check: ok")


if __name__ == "__main__":
    main()
