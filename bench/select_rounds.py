"""Rounds of Quest's threshold search (kernels/quest.py `_select_pages`), on the CPU: one point a round, two
points a round, two points a round whose first pair comes from the row's mean and sd, and the default:
a narrower first pair, then pairs aimed at counts k -+ a share of the bracket's count.

Each round of the kernel is one block-wide count, and the chain of rounds is its latency, so the round
count is what a GPU run would show as time. This replays the kernel's search in Python on Quest bounds
(pages of 16, GQA group of 7, head_dim 128) of random keys and of keys with a few large channels and a
drift along the sequence, for 128k (8192 pages) and two budgets.
  python bench/select_rounds.py [--trials 40]
"""

from __future__ import annotations

import argparse
import math
import statistics

import torch

from sftasks.kernels.quest import SELECT_SPREAD, SELECT_WIDTH


def order_keys(x: torch.Tensor) -> torch.Tensor:
    """The kernel's order-preserving int keys of float32 values."""
    bits = x.view(torch.int32).long()
    return torch.where(bits >= 0, bits, bits ^ 0x7FFFFFFF)


def normal_guess(x: torch.Tensor, k: int, width: float = 0.1) -> tuple[int, int]:
    """The kernel's first pair: keys of mean + (z -+ width) sd, z the normal quantile of rank k (A&S 26.2.23)."""
    p = min(max(k / len(x), 1e-6), 0.5)
    t = math.sqrt(-2 * math.log(p))
    z = t - (2.515517 + t * (0.802853 + t * 0.010328)) / (1 + t * (1.432788 + t * (0.189269 + t * 0.001308)))
    mean, sd = float(x.double().mean()), float(x.double().std(correction=0))
    return tuple(int(order_keys(torch.tensor([mean + (z + d) * sd], dtype=torch.float32))[0]) for d in (-width, width))


def rounds(key: torch.Tensor, k: int, paired: bool, first: tuple[int, int] | None = None, spread: float = 0.0) -> int:
    """Rounds to the exact k-th key. With spread, a pair's points aim at counts k -+ spread x the bracket's
    count (interpolated), and every fifth round at the interpolated point and the bracket's middle."""
    lo, hi = int(key.min()), int(key.max()) + 1
    count_lo, count_hi, halve, n = len(key), 0, 0, 0
    while hi - lo > 1 and count_lo != k:
        guess = lo + int((count_lo - k) / (count_lo - count_hi) * (hi - lo))
        guess = min(max(guess, lo + 1), hi - 1)
        half = lo + (hi - lo) // 2
        n += 1
        if paired:
            m1, m2 = min(guess, half), max(guess, half)
            if spread and n % 5 != 0:
                span = count_lo - count_hi
                a = max(spread * span, 0.5)
                m1 = lo + int(max(count_lo - k - a, 0) / span * (hi - lo))
                m2 = lo + int(min(count_lo - k + a, span) / span * (hi - lo))
                m1, m2 = (min(max(m, lo + 1), hi - 1) for m in (m1, m2))
            if first is not None and n == 1:
                m1, m2 = (min(max(m, lo + 1), hi - 1) for m in first)
            m2 = max(m2, min(m1 + 1, hi - 1))
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


def quest_bounds(gen: torch.Generator, pages: int = 8192, page: int = 16, group: int = 7, d: int = 128,
                 skewed: bool = False) -> torch.Tensor:
    keys = torch.randn(pages, page, d, generator=gen)
    if skewed:  # a few large channels and a drift along the sequence, as real keys have
        keys[..., :4] *= 8
        keys += torch.linspace(0, 2, pages).view(-1, 1, 1) * torch.randn(d, generator=gen)
    lo, hi = keys.min(1).values, keys.max(1).values
    q = torch.randn(group, d, generator=gen)
    return (q.clamp(min=0) @ hi.T + q.clamp(max=0) @ lo.T).sum(0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=40)
    args = ap.parse_args()
    print("| keys | budget | pages k | one point: mean / worst | two points | two points, normal first guess "
          "| aimed pairs, narrower first guess (the default) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for skewed in (False, True):
        for budget in (1024, 4096):
            k = budget // 16 - 1
            one, two, guessed, aimed = [], [], [], []
            for trial in range(args.trials):
                x = quest_bounds(torch.Generator().manual_seed(trial), skewed=skewed)
                key = order_keys(x)
                one.append(rounds(key, k, paired=False))
                two.append(rounds(key, k, paired=True))
                guessed.append(rounds(key, k, paired=True, first=normal_guess(x, k)))
                aimed.append(rounds(key, k, paired=True, first=normal_guess(x, k, SELECT_WIDTH), spread=SELECT_SPREAD))
            cells = [f"{statistics.mean(r):.1f} / {max(r)}" for r in (one, two, guessed, aimed)]
            print(f"| {'skewed' if skewed else 'random'} | {budget} | {k} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
