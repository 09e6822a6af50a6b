"""The method interface: one small class per sparse-attention method, configured by a dataclass.

Three optional hooks (DESIGN.md). A hook a method does not override behaves densely.
Shapes (one sequence, causal, GQA with Hq = G * Hkv):
- `prefill(q [T, Hq, D], k [T, Hkv, D], v [T, Hkv, D], layer) -> out [T, Hq, D]`
- `compress(q, k, v, layer) -> list of Hkv LongTensors`: kept token indices per KV head, sorted
- `decode(q [B, Hq, D], cache: KVCache, layer) -> out [B, Hq, D]`: one new token per sequence
Engine adapters (transformers, vLLM) call these hooks; methods know nothing of engines or tasks.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from sftasks.errors import InputError


@dataclass
class KVCache:
    """Keys/values for decode, paged like vLLM's cache so adapters need no copy.

    k_pages, v_pages: [num_pages, page_size, Hkv, D]; page_table: [B, max_pages] (int32/int64);
    seq_lens: [B] tokens cached per sequence (the new token included). `kept`, when set by a
    compression, maps (sequence b, layer) to Hkv index tensors of the tokens decode may read.
    """

    k_pages: torch.Tensor
    v_pages: torch.Tensor
    page_table: torch.Tensor
    seq_lens: torch.Tensor
    kept: dict[tuple[int, int], list[torch.Tensor]] | None = None

    @classmethod
    def from_dense(cls, k: torch.Tensor, v: torch.Tensor, page_size: int = 16) -> "KVCache":
        """One sequence's k/v [T, Hkv, D] as a paged cache (for tests and the reference path)."""
        T, H, D = k.shape
        pages = -(-T // page_size)
        pad = pages * page_size - T
        kp = torch.nn.functional.pad(k, (0, 0, 0, 0, 0, pad)).view(pages, page_size, H, D)
        vp = torch.nn.functional.pad(v, (0, 0, 0, 0, 0, pad)).view(pages, page_size, H, D)
        table = torch.arange(pages, dtype=torch.int64).unsqueeze(0)
        return cls(kp, vp, table, torch.tensor([T]))

    @property
    def page_size(self) -> int:
        return self.k_pages.shape[1]

    def sequence(self, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Dense k, v [T_b, Hkv, D] of sequence b (reference paths only: it copies)."""
        n = int(self.seq_lens[b])
        pages = self.page_table[b, : -(-n // self.page_size)].long()
        H, D = self.k_pages.shape[2:]
        k = self.k_pages[pages].reshape(-1, H, D)[:n]
        v = self.v_pages[pages].reshape(-1, H, D)[:n]
        return k, v


@dataclass
class SparsityStats:
    """Counts of computed and possible (query, key) pairs per hook, layer and head.

    Sparsity = 1 - computed / possible, where `possible` is the causal pair count in prefill and
    the cached tokens in decode and compression. Counts (not ratios) are kept so that batches,
    sequences and tensor-parallel ranks add up exactly.
    """

    counts: dict[tuple[str, int], list[torch.Tensor]] = field(default_factory=dict)

    def add(self, hook: str, layer: int, computed: torch.Tensor, possible: torch.Tensor) -> None:
        """computed/possible: per-head counts [H] (float64 or int64) for one call."""
        computed = computed.detach().to("cpu", torch.float64)
        possible = possible.detach().to("cpu", torch.float64).expand_as(computed)
        key = (hook, layer)
        if key in self.counts:
            self.counts[key][0] += computed
            self.counts[key][1] += possible
        else:
            self.counts[key] = [computed.clone(), possible.clone()]

    def merge(self, other: "SparsityStats") -> None:
        for (hook, layer), (c, p) in other.counts.items():
            self.add(hook, layer, c, p)

    def reset(self) -> None:
        self.counts.clear()

    def summary(self) -> dict[str, Any]:
        """{hook: {"overall": s, "per_layer": {layer: s}, "per_head": {layer: [s_h]}}}."""
        out: dict[str, Any] = {}
        for (hook, layer), (c, p) in sorted(self.counts.items()):
            entry = out.setdefault(hook, {"computed": 0.0, "possible": 0.0, "per_layer": {}, "per_head": {}})
            entry["computed"] += float(c.sum())
            entry["possible"] += float(p.sum())
            entry["per_layer"][layer] = _sparsity(float(c.sum()), float(p.sum()))
            entry["per_head"][layer] = [_sparsity(float(a), float(b)) for a, b in zip(c, p)]
        for entry in out.values():
            entry["overall"] = _sparsity(entry.pop("computed"), entry.pop("possible"))
        return out


def _sparsity(computed: float, possible: float) -> float:
    return 0.0 if possible <= 0 else 1.0 - computed / possible


@dataclass
class DenseConfig:
    """Dense attention has no knobs."""


class Method:
    """Base class. Subclasses set `name` and `Config` and override the hooks they change."""

    name: ClassVar[str] = "dense"
    Config: ClassVar[type] = DenseConfig

    def __init__(self, config: Any = None, **params: Any):
        if config is None:
            names = {f.name for f in dataclasses.fields(self.Config)}
            unknown = sorted(set(params) - names)
            if unknown:
                raise InputError(
                    f"unknown parameter {unknown[0]!r} for method {self.name}; known: {', '.join(sorted(names)) or 'none'}"
                )
            config = self.Config(**params)
        self.config = config
        self.validate()
        self.stats = SparsityStats()

    def validate(self) -> None:
        """Raise InputError on out-of-range knobs."""

    # Which hooks the method changes, so adapters can take fast dense paths for the others.
    @classmethod
    def overrides(cls, hook: str) -> bool:
        return getattr(cls, hook) is not getattr(Method, hook)

    def prefill(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, layer: int) -> torch.Tensor:
        from .reference import dense_prefill

        T, H = q.shape[:2]
        possible = torch.full((H,), T * (T + 1) / 2, dtype=torch.float64)
        self.stats.add("prefill", layer, possible, possible)
        return dense_prefill(q, k, v)

    def compress(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, layer: int) -> list[torch.Tensor] | None:
        return None

    def decode(self, q: torch.Tensor, cache: KVCache, layer: int) -> torch.Tensor:
        from .reference import dense_decode

        return dense_decode(q, cache, layer, self.stats)
