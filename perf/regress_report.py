#!/usr/bin/env python3
"""Table of perf/regress.sh: NEW against OLD, cell by cell.

usage: regress_report.py CELLS.tsv RESULTS.jsonl

CELLS.tsv: name, kind, metric (a field of `pocket bench --json`), description,
tab separated, in table order. RESULTS.jsonl: `pocket bench --json` lines
labelled CELL|BUILD|PASS (BUILD old or new). A run with errors is left out.
Prints a Markdown table: the median of each build over its good passes, the
ratio NEW/OLD of the medians and the min-max of the per-pass ratios (passes
where both builds ran). A cell with no good run in a build shows n/a. A second
table gives each cell's tail: the medians of p99 and p999 (us) per build and
NEW/OLD (lower is better). A third, when the runs carry them (`pocket bench
--server-pid`), gives the node's CPU time per operation: the medians per build,
NEW/OLD, and the per-pass ratio of the node's CPU per operation over the
generator's, NEW/OLD (median and min-max): the generator is one build's code
in every run, so its CPU per operation follows the machine's speed (and, like
the node's, the batching a run's throughput brings; perf/bench/cpu.go).
"""
import json
import statistics
import sys

UNITS = {"ops_per_sec": "ops/s", "mb_per_sec": "MB/s", "p50_us": "p50 us", "p99_us": "p99 us"}
LOWER_IS_BETTER = {"p50_us", "p99_us", "p999_us", "mean_us", "max_us"}


def fmt(metric, v):
    if v is None:
        return "n/a"
    if metric == "ops_per_sec":
        return f"{v:,.0f}"
    if metric == "cpu":
        return f"{v:,.2f}"
    return f"{v:,.1f}"


def main():
    cells_path, results_path = sys.argv[1], sys.argv[2]
    cells = []
    with open(cells_path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line:
                name, kind, metric, desc = line.split("\t")
                cells.append((name, kind, metric, desc))

    runs = {}  # (cell, build) -> {pass: result}
    bad = {}  # (cell, build) -> runs with errors
    with open(results_path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                r = json.loads(line)
                cell, build, pss = r["label"].split("|")
            except (ValueError, KeyError):
                continue
            # A run that ended before its --duration (requested_s) or had
            # puts refused for space (no_space) is no figure either.
            if r.get("errors", 0) or r.get("no_space", 0) or r.get("requested_s", 0) or not r.get("ops", 0):
                bad[(cell, build)] = bad.get((cell, build), 0) + 1
                continue
            runs.setdefault((cell, build), {})[int(pss)] = r

    print("| cell | metric | OLD | NEW | NEW/OLD | per-pass NEW/OLD (min-max) | good passes OLD/NEW | note |")
    print("|---|---|---:|---:|---:|---|---|---|")
    for name, _kind, metric, desc in cells:
        old = runs.get((name, "old"), {})
        new = runs.get((name, "new"), {})
        lower = metric in LOWER_IS_BETTER
        unit = UNITS.get(metric, metric) + (" (lower is better)" if lower else "")
        mo = statistics.median(r[metric] for r in old.values()) if old else None
        mn = statistics.median(r[metric] for r in new.values()) if new else None
        ratio = spread = "n/a"
        if mo and mn is not None:
            ratio = f"{mn / mo:.2f}x"
        per_pass = [new[p][metric] / old[p][metric] for p in sorted(set(old) & set(new)) if old[p][metric]]
        if per_pass:
            lo, hi = min(per_pass), max(per_pass)
            spread = f"{lo:.2f}-{hi:.2f}x"
        note = "; ".join(f"{b}: {bad[(name, b)]} run(s) with errors left out" for b in ("old", "new") if bad.get((name, b)))
        print(f"| {name}: {desc} | {unit} | {fmt(metric, mo)} | {fmt(metric, mn)} | {ratio} | {spread} "
              f"| {len(old)}/{len(new)} | {note} |")
    print()
    tails(cells, runs)
    if any(r.get("server_cpu_us_per_op") for rs in runs.values() for r in rs.values()):
        print()
        cpu(cells, runs)
    print()
    print("OLD and NEW are medians over the good passes; per-pass ratios pair the runs of one pass. "
          "A ratio above 1 is better for ops/s and MB/s, below 1 for latency. A change shows when the "
          "spread is clear of 1.0 (and of the spread a same-build run shows on this machine); "
          "a failed run is left out, a build with no good run shows n/a.")


def tails(cells, runs):
    """Prints the medians of each build's p99 and p999 (us) per cell, with
    NEW/OLD: a change can move a tail and leave the cell's main figure."""
    print("| cell | p99 OLD | p99 NEW | NEW/OLD | p999 OLD | p999 NEW | NEW/OLD |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, _kind, _metric, _desc in cells:
        row = [name]
        for q in ("p99_us", "p999_us"):
            med = []
            for build in ("old", "new"):
                vals = [r[q] for r in runs.get((name, build), {}).values() if r.get(q)]
                med.append(statistics.median(vals) if vals else None)
            ratio = f"{med[1] / med[0]:.2f}x" if med[0] and med[1] is not None else "n/a"
            row += [fmt(q, med[0]), fmt(q, med[1]), ratio]
        print("| " + " | ".join(row) + " |")


def cpu(cells, runs):
    """Prints each cell's node CPU time per operation (us) per build, and the
    per-pass NEW/OLD of node CPU over generator CPU (lower is better)."""
    print("| cell | node CPU us/op OLD | NEW | NEW/OLD | node/generator NEW/OLD, median (min-max) |")
    print("|---|---:|---:|---:|---|")
    key, gen = "server_cpu_us_per_op", "gen_cpu_us_per_op"
    for name, _kind, _metric, _desc in cells:
        old, new = runs.get((name, "old"), {}), runs.get((name, "new"), {})
        med = []
        for rs in (old, new):
            vals = [r[key] for r in rs.values() if r.get(key)]
            med.append(statistics.median(vals) if vals else None)
        if med == [None, None]:
            continue
        ratio = f"{med[1] / med[0]:.2f}x" if med[0] and med[1] is not None else "n/a"
        norm = [(new[p][key] / new[p][gen]) / (old[p][key] / old[p][gen])
                for p in sorted(set(old) & set(new))
                if all(r.get(key) and r.get(gen) for r in (old[p], new[p]))]
        spread = (f"{statistics.median(norm):.2f}x ({min(norm):.2f}-{max(norm):.2f}x)" if norm else "n/a")
        print(f"| {name} | {fmt('cpu', med[0])} | {fmt('cpu', med[1])} | {ratio} | {spread} |")


if __name__ == "__main__":
    main()
