"""Vertical-slash prefill (MInference): each head attends to a few key columns ("verticals") and a few
diagonals ("slashes"), both estimated from the attention of the last queries to all keys."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sftasks.errors import InputError

from .base import Method, check_positive, check_sparsity
from .reference import chunked_masked_attention, expand_kv
from .registry import dispatch, register_method

FORCED_VERTICALS = 4  # the first keys (attention sinks) are always columns
FORCED_SLASHES = 64  # the most local diagonals are always kept


def vertical_slash_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, vertical_idx: torch.Tensor, slash_offsets: torch.Tensor
) -> torch.Tensor:
    """Causal GQA attention over the union of key columns and diagonals, per query head.

    q [T, Hq, D], k/v [T, Hkv, D]; vertical_idx [Hq, NV] key columns; slash_offsets [Hq, NS] offsets
    (offset o keeps key j = i - o for query i). Entries < 0 or >= T are padding and ignored;
    duplicates count once.
    """
    T = q.shape[0]
    is_vertical = _membership(vertical_idx, T).to(q.device)  # [Hq, T] by key
    is_slash = _membership(slash_offsets, T).to(q.device)  # [Hq, T] by offset
    keys = torch.arange(T, device=q.device)

    def mask_rows(start: int, stop: int) -> torch.Tensor:
        offsets = (torch.arange(start, stop, device=q.device).view(-1, 1) - keys).clamp(min=0)  # [r, T]
        return is_vertical.unsqueeze(1) | is_slash[:, offsets]

    return chunked_masked_attention(q, k, v, mask_rows)


def _membership(index: torch.Tensor, size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """[H, N] ids -> [H, size] bool on `device`, ignoring ids outside [0, size)."""
    member = torch.zeros(index.shape[0], size + 1, dtype=torch.bool, device=device)
    ids = index.long().to(device)
    member.scatter_(1, torch.where((ids >= 0) & (ids < size), ids, size), True)
    return member[:, :size]


def vertical_slash_pairs(vertical_idx: torch.Tensor, slash_offsets: torch.Tensor, seq_len: int) -> torch.Tensor:
    """Causal pairs computed per query head [Hq] (float64), counted without building the mask, where the
    indices live (all heads at once: no host round trip per head).

    Column j covers T - j pairs, offset o covers T - o; a (column, offset) pair overlaps once when
    j + o < T, so column j overlaps the offsets below T - j: a prefix count of the offset bitmap.
    """
    T = seq_len
    device = vertical_idx.device
    columns = _membership(vertical_idx, T, device)
    offsets = _membership(slash_offsets, T, device)
    covered = T - torch.arange(T, device=device)  # pairs of column j, or of offset o
    below = offsets.long().cumsum(1).flip(1)  # [H, T]: at j, offsets o < T - j
    pairs = (columns * covered).sum(1) + (offsets * covered).sum(1) - (columns * below).sum(1)
    return pairs.double()


def last_query_probs(q: torch.Tensor, k: torch.Tensor, last_q: int) -> torch.Tensor:
    """Softmax attention of the last `last_q` queries to all keys, causal: [Hq, L, T] float32."""
    T, Hq, D = q.shape
    L = min(last_q, T)
    scores = torch.einsum("lhd,thd->hlt", q[-L:].float(), expand_kv(k, Hq).float()) * D**-0.5
    rows = torch.arange(T - L, T, device=q.device).view(-1, 1)
    scores = scores.masked_fill(torch.arange(T, device=q.device) > rows, float("-inf"))
    return torch.softmax(scores, dim=-1)


def diagonal_mass(probs: torch.Tensor) -> torch.Tensor:
    """Sum of probs along each diagonal: [H, L, T] (last L queries) -> [H, T] indexed by offset i - j."""
    H, L, T = probs.shape
    offsets = (torch.arange(T - L, T, device=probs.device).view(-1, 1) - torch.arange(T, device=probs.device)).clamp(min=0)
    return torch.zeros(H, T, device=probs.device).scatter_add_(1, offsets.flatten().expand(H, -1), probs.flatten(1))


def last_query_scores(q: torch.Tensor, k: torch.Tensor, last_q: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(column mass [Hq, T], diagonal mass [Hq, T]) of the last queries' causal softmax (summed over them)."""
    probs = last_query_probs(q, k, last_q)
    return probs.sum(1), diagonal_mass(probs)


def top_with_forced(scores: torch.Tensor, size: int, forced: torch.Tensor) -> torch.Tensor:
    """Indices of the `size` largest scores per row [H, size], `forced` [T] bool positions first."""
    scores = scores.masked_fill(forced, float("inf"))
    return scores.topk(min(size, scores.shape[-1]), dim=-1).indices


def estimate_vertical_slash(
    q: torch.Tensor, k: torch.Tensor, last_q: int, vertical_size: int, slash_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(vertical_idx [Hq, NV], slash_offsets [Hq, NS]) with the most attended columns and diagonals of
    the last `last_q` queries; the first 4 columns and 64 most local diagonals are always included."""
    columns, diagonals = last_query_scores(q, k, last_q)
    positions = torch.arange(q.shape[0], device=q.device)
    verticals = top_with_forced(columns, vertical_size, positions < FORCED_VERTICALS)
    slashes = top_with_forced(diagonals, slash_size, positions < FORCED_SLASHES)
    return verticals, slashes


@dataclass
class VerticalSlashConfig:
    vertical_size: int = 512
    """Key columns per head."""
    slash_size: int = 512
    """Diagonals per head."""
    approximation_size: int = 256
    """Last queries whose attention estimates the pattern."""
    sparsity: float | None = None
    """If set, replaces vertical_size and slash_size (both set to about (1 - sparsity) * T / 3)."""


@register_method
class VerticalSlash(Method):
    name = "vertical_slash"
    Config = VerticalSlashConfig

    def validate(self) -> None:
        c = self.config
        check_positive(self.name, vertical_size=c.vertical_size, slash_size=c.slash_size,
                       approximation_size=c.approximation_size)
        if c.vertical_size < FORCED_VERTICALS or c.slash_size < FORCED_SLASHES:
            raise InputError(f"{self.name} needs vertical_size >= {FORCED_VERTICALS} and slash_size >= "
                             f"{FORCED_SLASHES} (always-kept sinks and local diagonals)")
        check_sparsity(self.name, c.sparsity)

    def sizes(self, seq_len: int) -> tuple[int, int]:
        c = self.config
        if c.sparsity is None:
            return c.vertical_size, c.slash_size
        # verticals cover ~T/2 pairs each, slashes ~T: 1.5 n T pairs = (1 - s) T^2 / 2.
        n = -(-int((1 - c.sparsity) * (seq_len + 1)) // 3)
        return max(n, FORCED_VERTICALS), max(n, FORCED_SLASHES)

    def prefill(self, q, k, v, layer):
        T = q.shape[0]
        vertical_size, slash_size = self.sizes(T)
        estimate = dispatch("estimate_vertical_slash", estimate_vertical_slash, q)
        verticals, slashes = estimate(q, k, self.config.approximation_size, vertical_size, slash_size)
        return sparse_prefill(self, q, k, v, layer, verticals, slashes)

    def last_query_keys(self, q, k, v):
        verticals, slashes = estimate_vertical_slash(q, k, self.config.approximation_size, *self.sizes(q.shape[0]))
        return pattern_last_row(verticals, slashes, q.shape[0])


def pattern_last_row(verticals: torch.Tensor, slashes: torch.Tensor, T: int) -> torch.Tensor:
    """bool [Hq, T]: the keys the last query reads under a vertical-slash pattern."""
    return _membership(verticals, T) | _membership(slashes, T).flip(-1)


def sparse_prefill(method: Method, q, k, v, layer, verticals, slashes) -> torch.Tensor:
    """Run vertical-slash attention and record its pair count (shared with FlexPrefill)."""
    T = q.shape[0]
    out = dispatch("vertical_slash_attention", vertical_slash_attention, q)(q, k, v, verticals, slashes)
    possible = torch.full((q.shape[1],), T * (T + 1) / 2, dtype=torch.float64)
    method.stats.add("prefill", layer, vertical_slash_pairs(verticals, slashes, T), possible)
    return out
