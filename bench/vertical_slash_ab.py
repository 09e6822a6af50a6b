"""Vertical-slash prefill of this checkout against another checkout's kernels, side by side in one process.

The table's pattern (bench/kernels.py: 1024 columns, a band of 4% of T, 8 clusters of 64 diagonals) and
its parts, lists built inside the timing; outputs compared. Every kernel, and cuDNN's dense attention for the
whole pattern, runs once a round, in turn, for --rounds rounds (L2 flushed before each call): the H100's
clock drifts over seconds (a kernel timed in two separate reps moved by 1-2 ms at 128k), and call-by-call
turns hit every kernel alike. The turn's order rotates each round: a kernel right after cuDNN's 0.2 s at
full power runs slower. Medians over the rounds; "% of ideal" is the median of each round's ratio to
cuDNN. Each --options adds this checkout's kernel with those keyword options (its tuning knobs) to the
whole pattern and to the band + clusters part.
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
    D, DTYPE, HKV, HQ, VERTICAL_SLASH_PARTS, dense_prefill, vertical_slash_parts, vertical_slash_pattern)
from quest_ab import import_base_kernels


def interleaved(fns: dict, rounds: int) -> dict:
    """Milliseconds of each call: every fn once a round, in turn, events around each call, L2 flushed before."""
    flush = torch.empty(256 * 2**20, dtype=torch.int8, device="cuda")
    for fn in fns.values():
        fn()
    events = {name: [] for name in fns}
    names = list(fns)
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:  # each kernel in each place of the turn
            fn = fns[name]
            flush.zero_()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            events[name].append((start, end))
    torch.cuda.synchronize()
    return {name: [s.elapsed_time(e) for s, e in pairs] for name, pairs in events.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path, required=True, help="a checkout of the commit to compare against")
    ap.add_argument("--lengths", default="128k")
    ap.add_argument("--parts", default=",".join(VERTICAL_SLASH_PARTS),
                    help="which of the pattern's parts to time, comma-separated")
    ap.add_argument("--options", type=json.loads, action="append", default=[], help="a JSON object of keyword options")
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args()
    base = import_base_kernels(args.base, "vertical_slash")
    print("| T | pattern | kernel | ms (median; min-max) | this / base (median of rounds) | % of ideal | max abs diff |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for T in (parse_length(x) for x in args.lengths.split(",") if x):
        gen = torch.Generator(device="cuda").manual_seed(1)
        q = torch.randn(T, HQ, D, device="cuda", dtype=DTYPE)
        k, v = (torch.randn(T, HKV, D, device="cuda", dtype=DTYPE) for _ in range(2))
        cols, slashes = vertical_slash_pattern(T, gen)
        kept = float(vertical_slash_pairs(cols.cpu(), slashes.cpu(), T).sum()) / (HQ * T * (T + 1) / 2)
        ke, ve = (x.repeat_interleave(HQ // HKV, dim=1) for x in (k, v))
        parts = vertical_slash_parts(cols, slashes, T)
        for name, (c, sl) in ((n, parts[n]) for n in args.parts.split(",")):
            runs = {"base": (base, {}), "this": (vertical_slash, {})}
            if name in ("whole", "band + clusters"):
                runs.update({json.dumps(o): (vertical_slash, o) for o in args.options})
            fns = {key: (lambda m=module, o=options: m.vertical_slash_attention(q, k, v, c, sl, **o))
                   for key, (module, options) in runs.items()}
            if name == "whole":
                fns["cuDNN dense"] = lambda: dense_prefill(q, ke, ve, SDPBackend.CUDNN_ATTENTION)
            times = interleaved(fns, args.rounds)
            base_out = fns["base"]().float()
            for key in times:
                ms = times[key]
                ratio = pct = diff = ""
                if key in runs:  # a vertical-slash kernel (not cuDNN)
                    ratio = f"{statistics.median(t / b for t, b in zip(ms, times['base'])):.4f}"
                    diff = f"{(fns[key]().float() - base_out).abs().max().item():.1e}"
                    if name == "whole":
                        pct = f"{statistics.median(d / t for d, t in zip(times['cuDNN dense'], ms)) * kept:.1%}"
                print(f"| {T // 1024}k | {name} | {key} | {statistics.median(ms):.2f} ({min(ms):.2f}-{max(ms):.2f}) "
                      f"| {ratio} | {pct} | {diff} |", flush=True)
        print(f"({kept:.1%} of causal pairs kept at {T // 1024}k; {args.rounds} rounds)", flush=True)


if __name__ == "__main__":
    main()
