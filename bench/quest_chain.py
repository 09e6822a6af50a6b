"""Where a Quest decode call's time goes: its launches dropped from the end of the chain, one at a time.

128k / budget 4096, one sequence, the table's layer (bench/kernels.py). Each later launch is replaced by a
no-op, so each row adds one kernel to the chain (with PDL, what it adds to the call, not its own length);
timed in CUDA graphs, warm (one call replayed) and cold (8 layers in turn). `--loop` only runs the cold
calls a few times, for a profiler:
  python bench/quest_chain.py
  ncu --cache-control all --clock-control none --kernel-name regex:"_page_bounds|_select_pages|_attend_pages" \\
      --launch-skip 30 --launch-count 3 --set full -o quest python bench/quest_chain.py --loop
"""

from __future__ import annotations

import argparse
import statistics

import torch

from sftasks.kernels import quest

from kernels import dense_decode, layer_caches, per_call_us, steady_quest_calls  # bench/kernels.py

LAUNCHES = ("_page_bounds", "_select_pages", "_attend_pages")


class NoLaunch:
    """Stands in for a Triton kernel: `kernel[grid](...)` does nothing."""

    def __getitem__(self, grid):
        return lambda *args, **kwargs: None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loop", action="store_true", help="run the cold calls 5 times and stop (for ncu)")
    args = ap.parse_args()
    T = 131072
    layers = layer_caches(T, 1)
    calls = steady_quest_calls(layers, 4096)
    for _ in range(5 if args.loop else 1):
        for call in calls:
            call()
    torch.cuda.synchronize()
    if args.loop:
        return
    launched = {name: getattr(quest, name) for name in LAUNCHES}  # the real kernels, put back at the end
    dense = [dense_decode(cache, q, T) for cache, q in layers]
    print("| chain | warm µs (reps) | cold µs (reps) |")
    print("| --- | --- | --- |")
    rows = [(" + ".join(LAUNCHES[:n]), n) for n in range(1, len(LAUNCHES) + 1)] + [("dense decode", None)]
    try:
        for label, kept in rows:
            for i, name in enumerate(LAUNCHES):
                setattr(quest, name, launched[name] if kept is None or i < kept else NoLaunch())
            fns = dense if kept is None else calls
            warm = [per_call_us(fns[:1]) for _ in range(3)]
            cold = [per_call_us(fns) for _ in range(3)]
            print(f"| {label} | {statistics.median(warm):.2f} ({' '.join(f'{t:.2f}' for t in warm)}) "
                  f"| {statistics.median(cold):.2f} ({' '.join(f'{t:.2f}' for t in cold)}) |", flush=True)
    finally:
        for name, kernel in launched.items():
            setattr(quest, name, kernel)


if __name__ == "__main__":
    main()
