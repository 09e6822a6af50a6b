"""Where a kernel's warps wait, loop by loop, from Nsight Compute's per-instruction SASS export.

Instructions that run the same number of times belong to the same loop (or straight-line stretch), so
grouping the stall samples by execution count gives each loop's share of the kernel's time, its size in
SASS instructions, how often it ran, and why its warps stalled:
  ncu -i vs.ncu-rep --page source --csv --print-source sass > vs_sass.csv   # (bench/vertical_slash_once.py)
  python bench/ncu_loops.py vs_sass.csv [--top 6]
"""

from __future__ import annotations

import argparse
import collections
import csv

SAMPLES = "Warp Stall Sampling (All Samples)"
EXECUTED = "Instructions Executed"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sass_csv")
    ap.add_argument("--top", type=int, default=6, help="loops to list, by stall samples")
    args = ap.parse_args()
    with open(args.sass_csv, newline="") as f:
        rows = [r for r in csv.DictReader(line for line in f if not line.startswith('"Kernel Name"'))]
    reasons = [c for c in rows[0] if c.startswith("stall_") and "Not Issued" not in c]
    loops = collections.defaultdict(lambda: {"instructions": 0, "samples": 0, "stalls": collections.Counter()})
    for r in rows:
        loop = loops[int(r[EXECUTED] or 0)]
        loop["instructions"] += 1
        loop["samples"] += int(r[SAMPLES] or 0)
        loop["stalls"].update({c: int(r[c] or 0) for c in reasons})
    total = sum(loop["samples"] for loop in loops.values())
    print("| warp instructions executed, each | SASS instructions | share of samples | main stall reasons |")
    print("| --- | --- | --- | --- |")
    for executed, loop in sorted(loops.items(), key=lambda kv: -kv[1]["samples"])[: args.top]:
        samples = max(loop["samples"], 1)
        main_reasons = ", ".join(f"{c[6:]} {n / samples:.0%}" for c, n in loop["stalls"].most_common(4))
        print(f"| {executed} | {loop['instructions']} | {loop['samples'] / total:.1%} | {main_reasons} |")


if __name__ == "__main__":
    main()
