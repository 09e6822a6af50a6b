"""The method interface: one small class per sparse-attention method, configured by a dataclass.

Three optional hooks (DESIGN.md). A hook a method does not override behaves densely.
Shapes (one sequence, causal, GQA with Hq = G * Hkv):
- `prefill(q [T, Hq, D], k [T, Hkv, D], v [T, Hkv, D], layer) -> out [T, Hq, D]`
- `compress(q, k, v, layer) -> list of Hkv LongTensors`: kept token indices per KV head, sorted
- `decode(q [B, Hq, D], cache: KVCache, layer) -> out [B, Hq, D]`: one new token per sequence
Engine adapters (transformers, vLLM) call these hooks; methods know nothing of engines or tasks. Adapters
also say when cached tokens change (`forget_cache_pages`: vLLM the pages each step writes, transformers
`None` at each prefill), so that a method may keep state per cache page across steps.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from sftasks.errors import InputError
from sftasks.knobs import make_config


@dataclass
class KVCache:
    """Keys/values for decode, paged like vLLM's cache so adapters need no copy.

    k_pages, v_pages: [num_pages, page_size, Hkv, D]; page_table: [B, max_pages] (int32/int64);
    seq_lens: [B] tokens cached per sequence (the new token included). `kept`, when set by a
    compression, maps (sequence b, layer) to Hkv sorted index tensors of ALL the tokens decode may
    read (the compressed prompt plus every token generated since: adapters append those).
    `persistent`: the pages are a serving engine's, alive across steps, and the engine reports every
    write through `Method.forget_cache_pages`; a method may then keep state per physical page.
    `appended`: sequence b is the one of the previous decode step with tokens appended (its pages may
    live elsewhere); the adapter calls `Method.forget_cache_pages(None)` when the sequences change.
    A method may then keep state per (sequence, logical page).
    `seq_lens_host`: the same lengths as Python ints, when the adapter has them (reading `seq_lens` of a
    GPU cache on the host waits for the GPU, once per layer).
    """

    k_pages: torch.Tensor
    v_pages: torch.Tensor
    page_table: torch.Tensor
    seq_lens: torch.Tensor
    kept: dict[tuple[int, int], list[torch.Tensor]] | None = None
    persistent: bool = False
    appended: bool = False
    seq_lens_host: list[int] | None = None

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

    @classmethod
    def from_batch(cls, k: torch.Tensor, v: torch.Tensor) -> "KVCache":
        """Equal-length sequences k/v [B, T, Hkv, D] (any strides) as a cache of one page per sequence:
        a view, no copy."""
        B, T = k.shape[:2]
        lengths = torch.full((B,), T, dtype=torch.int32, device=k.device)  # int32: what kernels take
        return cls(k, v, torch.arange(B, dtype=torch.int32, device=k.device).unsqueeze(1), lengths, seq_lens_host=[T] * B)

    @property
    def page_size(self) -> int:
        return self.k_pages.shape[1]

    def lengths(self) -> list[int]:
        """Tokens cached per sequence, on the host."""
        return self.seq_lens_host if self.seq_lens_host is not None else self.seq_lens.tolist()

    def row(self, b: int) -> "KVCache":
        """Sequence b alone (same pages; compressions' `kept` not carried)."""
        host = None if self.seq_lens_host is None else self.seq_lens_host[b : b + 1]
        return KVCache(self.k_pages, self.v_pages, self.page_table[b : b + 1], self.seq_lens[b : b + 1],
                       persistent=self.persistent, appended=self.appended, seq_lens_host=host)

    def sequence(self, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Dense k, v [T_b, Hkv, D] of sequence b (reference paths only: it copies)."""
        n = self.lengths()[b]
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
    sequences and tensor-parallel ranks add up exactly. Heads are query heads for prefill and
    decode and KV heads for compression (what each hook selects for).
    """

    counts: dict[tuple[str, int], list[torch.Tensor]] = field(default_factory=dict)

    def add(self, hook: str, layer: int, computed: torch.Tensor, possible: torch.Tensor) -> None:
        """computed/possible: per-head counts [H] (float64 or int64) for one call."""
        computed = computed.detach().to("cpu", torch.float64)
        possible = possible.detach().to("cpu", torch.float64).expand_as(computed)
        key = (hook, layer)
        if key in self.counts:
            if self.counts[key][0].shape != computed.shape:
                raise ValueError(f"{hook} layer {layer}: {computed.numel()} heads added to {self.counts[key][0].numel()}")
            c, p = self.counts[key]  # out of place: counts made under torch.inference_mode stay usable
            self.counts[key] = [c + computed, p + possible]
        else:
            self.counts[key] = [computed.clone(), possible.clone()]

    def merge(self, other: "SparsityStats") -> None:
        """Add counts of the same heads (other sequences, other steps)."""
        for (hook, layer), (c, p) in other.counts.items():
            self.add(hook, layer, c, p)

    @classmethod
    def from_ranks(cls, ranks: list["SparsityStats"]) -> "SparsityStats":
        """Tensor-parallel ranks hold disjoint heads: concatenate their per-head counts in rank order."""
        out = cls()
        for key in sorted({key for rank in ranks for key in rank.counts}):
            parts = [rank.counts[key] for rank in ranks if key in rank.counts]
            out.counts[key] = [torch.cat([c for c, _ in parts]), torch.cat([p for _, p in parts])]
        return out

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
            config = make_config(self.Config, f"method {self.name}", params)
        self.config = config
        self.validate()
        self.stats = SparsityStats()

    def validate(self) -> None:
        """Raise InputError on out-of-range knobs."""

    # Which hooks the method changes, so adapters can take fast dense paths for the others.
    @classmethod
    def overrides(cls, hook: str) -> bool:
        return getattr(cls, hook) is not getattr(Method, hook)

    def params(self) -> dict[str, Any]:
        """The knobs as a JSON-ready dict (predictions files, reports)."""
        return dataclasses.asdict(self.config)

    def count_dense(self, hook: str, layer: int, tokens: int, heads: int) -> None:
        """Record a dense call (adapters that take their engine's own dense path use this too)."""
        total = tokens * (tokens + 1) / 2 if hook == "prefill" else float(tokens)
        possible = torch.full((heads,), total, dtype=torch.float64)
        self.stats.add(hook, layer, possible, possible)

    def prefill(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, layer: int) -> torch.Tensor:
        from .reference import dense_prefill

        self.count_dense("prefill", layer, q.shape[0], q.shape[1])
        return dense_prefill(q, k, v)

    def compress(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, layer: int) -> list[torch.Tensor] | None:
        return None

    def decode(self, q: torch.Tensor, cache: KVCache, layer: int) -> torch.Tensor:
        from .reference import dense_decode

        return dense_decode(q, cache, layer, self.stats)

    def forget_cache_pages(self, pages: torch.Tensor | None) -> None:
        """Tokens were written into these physical pages of a persistent cache (None: every page, e.g. new
        sequences). The vLLM adapter calls this once per step before any layer runs, the transformers
        adapter with None at each prefill; a method that keeps state per page (Quest's key summaries)
        drops what came from the pages' old contents."""

    def last_query_keys(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """bool [Hq, T]: the prompt keys this method lets the last prompt query read (for decode and
        compression methods: what the next query would read). A diagnostic (methods/evidence.py); stats untouched."""
        return torch.ones(q.shape[1], k.shape[0], dtype=torch.bool, device=q.device)


def check_sparsity(method: str, sparsity: float | None) -> None:
    """A target sparsity (the alternative to a budget) must be in [0, 1)."""
    if sparsity is not None and not 0.0 <= sparsity < 1.0:
        raise InputError(f"{method} sparsity must be in [0, 1), got {sparsity}")


def check_positive(method: str, **knobs: int) -> None:
    """Budgets, sizes and windows must be >= 1."""
    for key, value in knobs.items():
        if value < 1:
            raise InputError(f"{method} {key} must be a positive integer, got {value}")
