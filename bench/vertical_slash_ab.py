"""Vertical-slash prefill of this checkout against another checkout's kernels, side by side in one process.

The table's pattern (bench/kernels.py: 1024 columns, a band of 4% of T, 8 clusters of 64 diagonals) and
its parts, the two kernels interleaved, two reps each, lists built inside the timing; outputs compared.
Each --options adds this checkout's kernel with those keyword options (its tuning knobs) to the whole pattern
and to the band + clusters part.
  git worktree add /tmp/base <commit> && python bench/vertical_slash_ab.py --base /tmp/base [--lengths 128k]
      [--options '{"masked_stages": 2}' ...]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend

from sftasks.kernels import vertical_slash
from sftasks.lengths import parse_length
from sftasks.methods.vertical_slash import vertical_slash_pairs

from kernels import (  # bench/kernels.py
    D, DTYPE, HKV, HQ, VERTICAL_SLASH_PARTS, bench, dense_prefill, vertical_slash_parts, vertical_slash_pattern)
from quest_ab import import_base_kernels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path, required=True, help="a checkout of the commit to compare against")
    ap.add_argument("--lengths", default="128k")
    ap.add_argument("--parts", default=",".join(VERTICAL_SLASH_PARTS),
                    help="which of the pattern's parts to time, comma-separated")
    ap.add_argument("--options", type=json.loads, action="append", default=[], help="a JSON object of keyword options")
    args = ap.parse_args()
    base = import_base_kernels(args.base, "vertical_slash")
    print("| T | pattern | base ms (reps) | this checkout ms (reps) | % of ideal: base -> this | max abs diff |")
    print("| --- | --- | --- | --- | --- | --- |")
    for T in (parse_length(x) for x in args.lengths.split(",") if x):
        gen = torch.Generator(device="cuda").manual_seed(1)
        q = torch.randn(T, HQ, D, device="cuda", dtype=DTYPE)
        k, v = (torch.randn(T, HKV, D, device="cuda", dtype=DTYPE) for _ in range(2))
        cols, slashes = vertical_slash_pattern(T, gen)
        kept = float(vertical_slash_pairs(cols.cpu(), slashes.cpu(), T).sum()) / (HQ * T * (T + 1) / 2)
        ke, ve = (x.repeat_interleave(HQ // HKV, dim=1) for x in (k, v))
        cudnn = statistics.median(bench(lambda: dense_prefill(q, ke, ve, SDPBackend.CUDNN_ATTENTION)) for _ in range(3))
        del ke, ve
        parts = vertical_slash_parts(cols, slashes, T)
        for name, (c, sl) in ((n, parts[n]) for n in args.parts.split(",")):
            runs = {"base": (base, {}), "this": (vertical_slash, {})}
            if name in ("whole", "band + clusters"):
                runs.update({json.dumps(o): (vertical_slash, o) for o in args.options})
            times = {key: [] for key in runs}
            for _ in range(2):
                for key, (module, options) in runs.items():
                    times[key].append(bench(lambda: module.vertical_slash_attention(q, k, v, c, sl, **options)))
            base_out = base.vertical_slash_attention(q, k, v, c, sl).float()
            diff = (vertical_slash.vertical_slash_attention(q, k, v, c, sl).float() - base_out).abs().max().item()
            pct = ""
            if name == "whole":
                pct = " -> ".join(f"{cudnn / statistics.median(times[key]) * kept:.1%}" for key in ("base", "this"))
            cells = [f"{T // 1024}k", name, *(f"{statistics.median(t):.2f} ({' '.join(f'{x:.2f}' for x in t)})"
                                               for t in list(times.values())[:2]), pct, f"{diff:.1e}"]
            print("| " + " | ".join(cells) + " |", flush=True)
            for key in list(times)[2:]:
                ms = statistics.median(times[key])
                out = vertical_slash.vertical_slash_attention(q, k, v, c, sl, **runs[key][1])
                diff = (out.float() - base_out).abs().max().item()
                pct = f"{cudnn / ms * kept:.1%}" if name == "whole" else ""
                print(f"|   | this checkout with {key} |   | {ms:.2f} ({' '.join(f'{x:.2f}' for x in times[key])}) "
                      f"| {pct} | {diff:.1e} |")
        print(f"(cuDNN dense {cudnn:.2f} ms at {T // 1024}k; {kept:.1%} of causal pairs kept)", flush=True)


if __name__ == "__main__":
    main()
