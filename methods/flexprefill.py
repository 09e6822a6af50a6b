"""FlexPrefill (as evaluated in the Sparse Frontier paper): a query-aware vertical-slash pattern whose
sizes adapt per head: enough columns and diagonals to cover `alpha` of the last queries' attention
mass, never fewer than `min_budget`."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sftasks.errors import InputError

from .base import Method, check_positive
from .registry import dispatch, register_method
from .vertical_slash import (
    FORCED_SLASHES, FORCED_VERTICALS, last_query_scores, pattern_last_row, sparse_prefill, top_with_forced,
)


def cover_size(mass: torch.Tensor, alpha: float) -> torch.Tensor:
    """Per row [H]: how many of the largest entries are needed for their sum to reach alpha (of 1)."""
    cumulative = mass.sort(dim=-1, descending=True).values.cumsum(-1)
    return ((cumulative < alpha).sum(-1) + 1).clamp(max=mass.shape[-1])


def flexprefill_pattern(q, k, alpha: float, approximation_size: int, min_budget: int):
    """(vertical_idx, slash_offsets), each [Hq, N] padded with -1 where a head needs fewer."""
    T = q.shape[0]
    columns, diagonals = dispatch("last_query_scores", last_query_scores, q)(q, k, approximation_size)
    L = min(approximation_size, T)  # both masses sum to L: normalise to shares of 1
    positions = torch.arange(T, device=q.device)
    out = []
    for mass, forced in ((columns / L, positions < FORCED_VERTICALS), (diagonals / L, positions < FORCED_SLASHES)):
        sizes = cover_size(mass, alpha).clamp(min=min(min_budget, T))
        top = top_with_forced(mass, int(sizes.max()), forced)
        out.append(torch.where(torch.arange(top.shape[1], device=q.device) < sizes.unsqueeze(1), top, -1))
    return out[0], out[1]


@dataclass
class FlexPrefillConfig:
    alpha: float = 0.65
    """Share of the estimated attention mass the kept columns (and, separately, diagonals) must cover."""
    approximation_size: int = 512
    """Last queries whose attention estimates the pattern."""
    min_budget: int = 512
    """Fewest columns and diagonals per head."""


@register_method
class FlexPrefill(Method):
    name = "flexprefill"
    Config = FlexPrefillConfig

    def validate(self) -> None:
        c = self.config
        if not 0.0 < c.alpha <= 1.0:
            raise InputError(f"flexprefill alpha must be in (0, 1], got {c.alpha}")
        check_positive(self.name, approximation_size=c.approximation_size, min_budget=c.min_budget)

    def prefill(self, q, k, v, layer):
        c = self.config
        verticals, slashes = flexprefill_pattern(q, k, c.alpha, c.approximation_size, c.min_budget)
        return sparse_prefill(self, q, k, v, layer, verticals, slashes)

    def last_query_keys(self, q, k, v):
        c = self.config
        verticals, slashes = flexprefill_pattern(q, k, c.alpha, c.approximation_size, c.min_budget)
        return pattern_last_row(verticals, slashes, q.shape[0])
