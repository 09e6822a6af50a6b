"""SnapKV and Ada-SnapKV: after prefill, keep per KV head the prompt tokens that the last queries (the
observation window) attend to most, plus the first and the most recent tokens; decode reads only those.
Ada-SnapKV spends a layer's total budget unevenly across heads (each head keeps a guaranteed share)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from sftasks.errors import InputError

from .base import Method, SparsityStats, check_positive, check_sparsity
from .registry import dispatch, register_method
from .vertical_slash import last_query_probs, last_query_scores


def token_importance(q, k, window: int, kernel_size: int, reduce: str) -> torch.Tensor:
    """[Hkv, T] smoothed attention each prompt token gets from the last `window` queries.

    "mean" (SnapKV): summed over the window, averaged over a GQA group; "max" (Ada-SnapKV): max of both.
    """
    Hkv = k.shape[1]
    if reduce == "mean":
        columns, _ = dispatch("last_query_scores", last_query_scores, q)(q, k, window)  # [Hq, T]
        scores = columns.view(Hkv, -1, columns.shape[-1]).mean(1)
    else:
        probs = last_query_probs(q, k, window)  # [Hq, L, T]
        scores = probs.view(Hkv, -1, *probs.shape[1:]).amax(dim=(1, 2))
    pooled = torch.nn.functional.avg_pool1d(scores.unsqueeze(1), kernel_size, stride=1, padding=kernel_size // 2)
    return pooled.squeeze(1)


def force_window(scores: torch.Tensor, prefix_tokens: int, local_window: int) -> torch.Tensor:
    """Scores where the first and the most recent tokens always win the top-k."""
    scores = scores.clone()
    scores[:, :prefix_tokens] = float("inf")
    if local_window:
        scores[:, -local_window:] = float("inf")
    return scores


@dataclass
class SnapKVConfig:
    token_capacity: int = 1024
    """Prompt tokens kept per KV head."""
    approximation_window: int = 256
    """Last prompt queries whose attention scores the tokens (the observation window)."""
    kernel_size: int = 21
    """Width of the average pooling that smooths scores (odd)."""
    local_window: int = 128
    """Most recent tokens always kept."""
    prefix_tokens: int = 4
    """First tokens (attention sinks) always kept."""
    sparsity: float | None = None
    """If set, replaces token_capacity: keep (1 - sparsity) of the prompt."""


@register_method
class SnapKV(Method):
    name = "snapkv"
    Config = SnapKVConfig
    reduce = "mean"

    def validate(self) -> None:
        c = self.config
        check_positive(self.name, token_capacity=c.token_capacity, approximation_window=c.approximation_window,
                       kernel_size=c.kernel_size)
        if c.kernel_size % 2 == 0:
            raise InputError(f"{self.name} kernel_size must be odd, got {c.kernel_size}")
        if c.local_window < 0 or c.prefix_tokens < 0:
            raise InputError(f"{self.name} local_window and prefix_tokens must be >= 0")
        if c.token_capacity <= c.local_window + c.prefix_tokens:
            raise InputError(f"{self.name} token_capacity ({c.token_capacity}) must exceed local_window + "
                             f"prefix_tokens ({c.local_window + c.prefix_tokens})")
        check_sparsity(self.name, c.sparsity)

    def capacity(self, seq_len: int) -> int:
        c = self.config
        if c.sparsity is None:
            return c.token_capacity
        return max(math.ceil((1 - c.sparsity) * seq_len), c.local_window + c.prefix_tokens + 1)

    def compress(self, q, k, v, layer):
        T, Hkv = k.shape[:2]
        capacity = self.capacity(T)
        if T <= capacity:
            kept = torch.ones(Hkv, T, dtype=torch.bool, device=k.device)
        else:
            c = self.config
            scores = token_importance(q, k, c.approximation_window, c.kernel_size, self.reduce)
            kept = self.select(force_window(scores, c.prefix_tokens, c.local_window), capacity)
        self.stats.add("compress", layer, kept.sum(-1).double(), torch.full((Hkv,), float(T), dtype=torch.float64))
        return [row.nonzero().flatten() for row in kept]

    def last_query_keys(self, q, k, v):
        stats, self.stats = self.stats, SparsityStats()  # a diagnostic must not count as work done
        try:
            kept = self.compress(q, k, v, layer=0)
        finally:
            self.stats = stats
        mask = torch.zeros(len(kept), k.shape[0], dtype=torch.bool, device=k.device)
        for h, idx in enumerate(kept):
            mask[h, idx] = True
        return mask.repeat_interleave(q.shape[1] // len(kept), dim=0)

    def select(self, scores: torch.Tensor, capacity: int) -> torch.Tensor:
        """[Hkv, T] bool: the top `capacity` tokens of each head."""
        kept = torch.zeros_like(scores, dtype=torch.bool)
        return kept.scatter_(1, scores.topk(capacity, dim=-1).indices, True)


@dataclass
class AdaSnapKVConfig(SnapKVConfig):
    min_head_capacity_ratio: float = 0.2
    """Each head keeps at least this share of token_capacity (and its forced windows)."""


@register_method
class AdaSnapKV(SnapKV):
    """Budget token_capacity * Hkv per layer; heads compete for what the guaranteed shares leave over.

    Under tensor parallelism each rank allocates across the heads it holds (no cross-rank exchange).
    """

    name = "ada_snapkv"
    Config = AdaSnapKVConfig
    reduce = "max"

    def validate(self) -> None:
        super().validate()
        if not 0.0 <= self.config.min_head_capacity_ratio <= 1.0:
            raise InputError(f"ada_snapkv min_head_capacity_ratio must be in [0, 1], got "
                             f"{self.config.min_head_capacity_ratio}")

    def select(self, scores: torch.Tensor, capacity: int) -> torch.Tensor:
        c = self.config
        guaranteed = min(capacity, max(int(capacity * c.min_head_capacity_ratio), c.local_window + c.prefix_tokens))
        kept = super().select(scores, guaranteed)
        rest = capacity * scores.shape[0] - int(kept.sum())
        flat = scores.masked_fill(kept, float("-inf")).flatten()
        kept.view(-1)[flat.topk(rest).indices] = True
        return kept
