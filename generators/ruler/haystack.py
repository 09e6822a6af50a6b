"""A haystack of filler units with a few inserts (needles, assignments) at chosen depths, filled
exactly to a token target with `generators/fill.py`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..fill import count_pieces, fit
from .prompt import Frame, join_marked, spread


@dataclass
class Haystack:
    """The filled prompt, its context, the spans of the inserts in `input`, and its token count."""

    input: str
    context: str
    spans: list[tuple[int, int]]
    num_tokens: int


def fill_haystack(
    tokenizer, target: int, frame: Frame, make_units: Callable[[int], list[str]], inserts: Sequence[str],
    depths: Sequence[float], rng: np.random.Generator,
) -> Haystack:
    """Inserts at `depths` (fractions of the haystack) among as many units as fit, closed exactly.

    `make_units(k)` returns the next `k` filler units (each starting at a pre-token boundary, e.g.
    with a leading space); it is called until the units can cover the target.
    """
    cache: dict[str, int] = {}
    overhead = frame.cost(tokenizer, inserts[0] if inserts else " .") + int(count_pieces(tokenizer, inserts, cache).sum())
    budget = target - overhead
    units: list[str] = []
    costs = np.zeros(0, dtype=np.int64)
    while costs.sum() <= budget:
        probe = make_units(32 if not units else max(32, math.ceil((budget - costs.sum()) / max(1, costs.min())) + 8))
        units += probe
        costs = count_pieces(tokenizer, units, cache)
    fine_depth = float(rng.random())
    last: dict = {}

    def render(n: int, fine: list[str]) -> str:
        parts, where = spread(units[:n], list(inserts) + ["".join(fine)], list(depths) + [fine_depth])
        context, spans = join_marked(parts, where[:-1], offset=len(frame.head))
        last.update(context=context, spans=spans)
        return frame.text(context)

    result = fit(tokenizer, target, render, unit_costs=costs, overhead=overhead, rng=rng)
    return Haystack(result.text, last["context"], last["spans"], result.num_tokens)
