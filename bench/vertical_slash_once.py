"""The table's vertical-slash pattern (or one of its parts) run twice, nothing timed: a target for Nsight Compute.

The second call is the one to profile (the first compiles), e.g. on the H100 (Firecracker machines):
  ncu --clock-control none -k regex:_vertical_slash_fwd --launch-skip 1 --launch-count 1 \\
      --section WarpStateStats --section SourceCounters --section MemoryWorkloadAnalysis -o vs \\
      python bench/vertical_slash_once.py --length 128k --part whole [--options '{"masked_stages": 2}']
  ncu -i vs.ncu-rep --page source --csv --print-source sass > vs_sass.csv   # stall samples per instruction
  python bench/ncu_loops.py vs_sass.csv                                      # ... summed loop by loop
"""

from __future__ import annotations

import argparse
import json

import torch

from sftasks.kernels import vertical_slash
from sftasks.lengths import parse_length

from kernels import (  # bench/kernels.py
    D, DTYPE, HKV, HQ, VERTICAL_SLASH_PARTS, vertical_slash_parts, vertical_slash_pattern)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--length", default="128k")
    ap.add_argument("--part", choices=VERTICAL_SLASH_PARTS, default="whole")
    ap.add_argument("--options", type=json.loads, default={}, help="a JSON object of keyword options")
    args = ap.parse_args()
    T = parse_length(args.length)
    gen = torch.Generator(device="cuda").manual_seed(1)
    q = torch.randn(T, HQ, D, device="cuda", dtype=DTYPE)
    k, v = (torch.randn(T, HKV, D, device="cuda", dtype=DTYPE) for _ in range(2))
    cols, slashes = vertical_slash_parts(*vertical_slash_pattern(T, gen), T)[args.part]
    for _ in range(2):
        vertical_slash.vertical_slash_attention(q, k, v, cols, slashes, **args.options)
    torch.cuda.synchronize()


if __name__ == "__main__":
    main()
