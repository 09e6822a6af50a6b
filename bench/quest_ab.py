"""Quest decode of this checkout against another checkout's kernels, side by side in one process.

A change to the Quest kernels is timed against the code before it: the other checkout's `kernels/`
is imported as a second package, both run on the same inputs in CUDA graphs, interleaved, three reps,
and their outputs are compared.
  git worktree add /tmp/base <commit> && python bench/quest_ab.py --base /tmp/base
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
from pathlib import Path

import torch
from triton.testing import do_bench_cudagraph

from sftasks import kernels
from sftasks.kernels.quest import QuestSummaries

from kernels import D, DTYPE, HKV, HQ, dense_decode, paged_cache  # bench/kernels.py: the same layer and caches

CASES = [(131072, 1, 4096), (131072, 1, 1024), (32768, 1, 4096), (32768, 8, 4096), (131072, 4, 4096)]


def import_base_kernels(checkout: Path):
    """The other checkout's kernels package, as `base_kernels` (its own relative imports resolve in it)."""
    init = checkout / "kernels" / "__init__.py"
    spec = importlib.util.spec_from_file_location("base_kernels", init, submodule_search_locations=[str(init.parent)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["base_kernels"] = module
    spec.loader.exec_module(module)
    return importlib.import_module("base_kernels.quest")


def graph_us(fn) -> float:
    return 1e3 * do_bench_cudagraph(fn, rep=200, return_mode="median")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path, required=True, help="a checkout of the commit to compare against")
    args = ap.parse_args()
    base = import_base_kernels(args.base)
    print("| T | batch | budget | dense decode | base (reps) | this checkout (reps) | ratio to dense | rel. diff |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for T, B, budget in CASES:
        cache = paged_cache(T, B)
        pages = cache.page_table.shape[1]
        q = torch.randn(B, HQ, D, device="cuda", dtype=DTYPE)
        dense = graph_us(dense_decode(cache, q, T))
        ours, theirs = (QuestSummaries.empty(B, pages, HKV, D, DTYPE, "cuda"), base.QuestSummaries.empty(B, pages, HKV, D, DTYPE, "cuda"))
        new_out = kernels.quest_decode(q, cache, budget, 16, True, summaries=ours).float()
        old_out = base.quest_decode(q, cache, budget, 16, True, summaries=theirs).float()
        diff = float((new_out - old_out).norm() / old_out.norm())
        times = {"base": [], "new": []}
        for _ in range(3):
            times["base"].append(graph_us(lambda: base.quest_decode(q, cache, budget, 16, True, summaries=theirs)))
            times["new"].append(graph_us(lambda: kernels.quest_decode(q, cache, budget, 16, True, summaries=ours)))
        old, new = (statistics.median(times[n]) for n in ("base", "new"))
        reps = {n: " ".join(f"{t:.1f}" for t in ts) for n, ts in times.items()}
        print(f"| {T // 1024}k | {B} | {budget} | {dense:.1f} µs | {old:.1f} µs ({reps['base']}) | {new:.1f} µs ({reps['new']}) "
              f"| {dense / old:.2f}x -> {dense / new:.2f}x | {diff:.1e} |", flush=True)
        del cache, ours, theirs
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
