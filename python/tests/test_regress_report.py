"""perf/regress_report.py, the regression guard's tables, on made-up runs:
the CPU table's medians and per-pass ratios, and its absence when no run
carries CPU figures."""
import json
import pathlib
import subprocess
import sys

REPORT = pathlib.Path(__file__).resolve().parents[2] / "perf" / "regress_report.py"


def run_report(tmp_path, runs):
    cells = tmp_path / "cells.tsv"
    cells.write_text("get-1k-c50\tdram\tops_per_sec\t1 KiB GET, 50 conns\n")
    results = tmp_path / "results.jsonl"
    results.write_text("".join(json.dumps(r) + "\n" for r in runs))
    out = subprocess.run([sys.executable, str(REPORT), str(cells), str(results)],
                         check=True, capture_output=True, text=True)
    return out.stdout


def result(build, pss, ops, node=None, gen=None):
    r = {"label": f"get-1k-c50|{build}|{pss}", "ops": ops * 3, "ops_per_sec": ops, "errors": 0,
         "p99_us": 100.0, "p999_us": 200.0}
    if node is not None:
        r["server_cpu_us_per_op"], r["gen_cpu_us_per_op"] = node, gen
    return r


def test_cpu_table(tmp_path):
    out = run_report(tmp_path, [
        result("old", 1, 100, node=8.0, gen=8.0),
        result("new", 1, 110, node=6.0, gen=7.5),   # node/gen 0.8 against 1.0
        result("old", 2, 100, node=10.0, gen=10.0),
        result("new", 2, 100, node=9.0, gen=10.0),  # 0.9 against 1.0
        result("old", 3, 100, node=9.0, gen=9.0),
        result("new", 3, 100, node=6.3, gen=7.0),   # 0.9 against 1.0
    ])
    row = next(line for line in out.splitlines() if line.startswith("| get-1k-c50 | 9.00"))
    # medians: old 9.00, new 6.30; NEW/OLD 0.70x; per-pass 0.80, 0.90, 0.90
    assert row == "| get-1k-c50 | 9.00 | 6.30 | 0.70x | 0.90x (0.80-0.90x) |", row


def test_no_cpu_table_without_figures(tmp_path):
    out = run_report(tmp_path, [result("old", 1, 100), result("new", 1, 110)])
    assert "node CPU" not in out
    assert "| get-1k-c50: 1 KiB GET, 50 conns | ops/s | 100 | 110 | 1.10x |" in out
