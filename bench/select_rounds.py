"""Rounds of Quest's threshold search (kernels/quest.py `_select_pages`), one or two points a round, on the CPU.

Each round of the kernel is one block-wide count, and the chain of rounds is its latency, so the round
count is what a GPU run would show as time. This replays the kernel's search in Python on Quest bounds of
random keys (pages of 16, GQA group of 7, head_dim 128), for 128k (8192 pages) and two budgets.
  python bench/select_rounds.py [--trials 40]
"""

from __future__ import annotations

import argparse
import statistics

import torch


def order_keys(x: torch.Tensor) -> torch.Tensor:
    """The kernel's order-preserving int keys of float32 values."""
    bits = x.view(torch.int32).long()
    return torch.where(bits >= 0, bits, bits ^ 0x7FFFFFFF)


def rounds(key: torch.Tensor, k: int, paired: bool) -> int:
    lo, hi = int(key.min()), int(key.max()) + 1
    count_lo, count_hi, halve, n = len(key), 0, 0, 0
    while hi - lo > 1 and count_lo != k:
        guess = lo + int((count_lo - k) / (count_lo - count_hi) * (hi - lo))
        guess = min(max(guess, lo + 1), hi - 1)
        half = lo + (hi - lo) // 2
        n += 1
        if paired:
            m1 = min(guess, half)
            m2 = max(guess, half, min(m1 + 1, hi - 1))
            c1, c2 = int((key >= m1).sum()), int((key >= m2).sum())
            if c2 >= k:
                lo, count_lo = m2, c2
            elif c1 >= k:
                lo, count_lo, hi, count_hi = m1, c1, m2, c2
            else:
                hi, count_hi = m1, c1
        else:
            mid = half if halve else guess
            c = int((key >= mid).sum())
            if c >= k:
                lo, count_lo = mid, c
            else:
                hi, count_hi = mid, c
            halve = 1 - halve
    return n


def quest_bounds(gen: torch.Generator, pages: int = 8192, page: int = 16, group: int = 7, d: int = 128) -> torch.Tensor:
    keys = torch.randn(pages, page, d, generator=gen)
    lo, hi = keys.min(1).values, keys.max(1).values
    q = torch.randn(group, d, generator=gen)
    return (q.clamp(min=0) @ hi.T + q.clamp(max=0) @ lo.T).sum(0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=40)
    args = ap.parse_args()
    print(f"{'budget':>7s} {'pages k':>7s} {'one point: mean':>16s} {'worst':>6s} {'two points: mean':>17s} {'worst':>6s}")
    for budget in (1024, 4096):
        k = budget // 16 - 1
        one, two = [], []
        for trial in range(args.trials):
            key = order_keys(quest_bounds(torch.Generator().manual_seed(trial)))
            one.append(rounds(key, k, paired=False))
            two.append(rounds(key, k, paired=True))
        print(f"{budget:7d} {k:7d} {statistics.mean(one):16.1f} {max(one):6d} {statistics.mean(two):17.1f} {max(two):6d}")


if __name__ == "__main__":
    main()
