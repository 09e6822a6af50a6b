"""Quest decode of this checkout against another checkout's kernels, side by side in one process.

A change to the Quest kernels is timed against the code before it: the other checkout's `kernels/`
is imported as a second package, both run on the same inputs in CUDA graphs, interleaved, three reps,
and their outputs are compared. Each is timed replaying one call (its data stays in L2) and over 8
layers' caches in turn (cold in L2, as in a model's decode step).
Each --options adds this checkout's kernel with those keyword options (its tuning knobs); --case 131072,1,4096
times one case (T, batch, budget) of the five.
  git worktree add /tmp/base <commit> && python bench/quest_ab.py --base /tmp/base [--options '{"pages_per_split": 8}']
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
from pathlib import Path

import torch

from sftasks import kernels

from kernels import (  # bench/kernels.py: the same layer, caches and timing
    LAYERS, dense_decode, layer_caches, per_call_us, steady_quest_calls)

CASES = [(131072, 1, 4096), (131072, 1, 1024), (32768, 1, 4096), (32768, 8, 4096), (131072, 4, 4096)]


def import_base_kernels(checkout: Path, name: str = "quest"):
    """A module of the other checkout's kernels package, imported as `base_kernels` (its own relative imports
    resolve in it)."""
    init = checkout / "kernels" / "__init__.py"
    spec = importlib.util.spec_from_file_location("base_kernels", init, submodule_search_locations=[str(init.parent)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["base_kernels"] = module
    spec.loader.exec_module(module)
    return importlib.import_module(f"base_kernels.{name}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path, required=True, help="a checkout of the commit to compare against")
    ap.add_argument("--options", type=json.loads, action="append", default=[], help="a JSON object of keyword options")
    ap.add_argument("--case", type=lambda s: tuple(int(x) for x in s.split(",")), action="append",
                    help="T,batch,budget (repeatable; default: the five cases of the table)")
    args = ap.parse_args()
    base = import_base_kernels(args.base)
    print("| T | batch | budget | L2 | dense decode | base (reps) | this checkout (reps) | ratio to dense "
          "| rel. diff |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for T, B, budget in args.case or CASES:
        layers = layer_caches(T, B)
        runs = {"base": (base, {}), "new": (kernels.quest, {}),
                **{json.dumps(o): (kernels.quest, o) for o in args.options}}
        calls = {name: steady_quest_calls(layers, budget, module, **options)
                 for name, (module, options) in runs.items()}
        new_out, old_out = calls["new"][0]().float(), calls["base"][0]().float()
        diff = float((new_out - old_out).norm() / old_out.norm())
        dense = [dense_decode(cache, q, T) for cache, q in layers]
        for l2, n in (("warm", 1), ("cold", LAYERS)):
            t_dense = per_call_us(dense[:n])
            times = {name: [] for name in runs}
            for _ in range(3):
                for name in times:
                    times[name].append(per_call_us(calls[name][:n]))
            old, new = (statistics.median(times[name]) for name in ("base", "new"))
            reps = {name: " ".join(f"{t:.1f}" for t in ts) for name, ts in times.items()}
            print(f"| {T // 1024}k | {B} | {budget} | {l2} | {t_dense:.1f} µs | {old:.1f} µs ({reps['base']}) "
                  f"| {new:.1f} µs ({reps['new']}) | {t_dense / old:.2f}x -> {t_dense / new:.2f}x | {diff:.1e} |",
                  flush=True)
            for name in list(runs)[2:]:  # the --options runs
                us = statistics.median(times[name])
                out = calls[name][0]().float()
                rel = float((out - old_out).norm() / old_out.norm())
                print(f"|   |   |   |   |   | this checkout with {name} | {us:.1f} µs ({reps[name]}) "
                      f"| {t_dense / us:.2f}x | {rel:.1e} |", flush=True)
        del layers, calls, dense
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
