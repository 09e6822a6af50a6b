"""Quest decoding: the cache is cut into pages summarised by per-channel key min/max; each new query
reads only the pages with the highest upper bound on q.k (plus the page it is writing to)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sftasks.errors import InputError

from .base import KVCache, Method, check_positive, check_sparsity
from .reference import masked_attention
from .registry import dispatch, register_method


def page_summaries(k: torch.Tensor, page_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-page, per-channel min and max of the keys [n, Hkv, D] -> two [pages, Hkv, D] (last page partial)."""
    n, H, D = k.shape
    pages = -(-n // page_size)
    pad = pages * page_size - n
    kf = k.float()
    lo = torch.nn.functional.pad(kf, (0, 0, 0, 0, 0, pad), value=float("inf")).view(pages, page_size, H, D).amin(1)
    hi = torch.nn.functional.pad(kf, (0, 0, 0, 0, 0, pad), value=float("-inf")).view(pages, page_size, H, D).amax(1)
    return lo, hi


def quest_pages(q: torch.Tensor, k: torch.Tensor, token_budget: int, page_size: int, share_pages: bool = True) -> torch.Tensor:
    """Pages one sequence's query q [Hq, D] reads from its keys k [n, Hkv, D]: bool [Hq, pages].

    The page holding the newest token is always read; the other `token_budget // page_size - 1` are the
    past pages with the largest sum_d max(q_d min_d, q_d max_d). With share_pages, the query heads of a
    GQA group add their bounds and read the same pages (one gather per KV head).
    """
    Hq = q.shape[0]
    Hkv = k.shape[1]
    pages = -(-k.shape[0] // page_size)
    budget = token_budget // page_size
    chosen = torch.ones(Hq, pages, dtype=torch.bool, device=q.device)
    if pages <= budget:
        return chosen
    lo, hi = page_summaries(k[: (pages - 1) * page_size], page_size)
    lo, hi = (x.repeat_interleave(Hq // Hkv, dim=1) for x in (lo, hi))
    qf = q.float().unsqueeze(0)
    bound = torch.maximum(qf * lo, qf * hi).sum(-1).transpose(0, 1)  # [Hq, pages - 1]
    if share_pages:
        bound = bound.view(Hkv, Hq // Hkv, -1).sum(1).repeat_interleave(Hq // Hkv, dim=0)
    top = bound.topk(budget - 1, dim=-1).indices
    chosen[:, :-1] = False
    chosen[:, :-1].scatter_(1, top, True)
    return chosen


def quest_decode(q: torch.Tensor, cache: KVCache, token_budget: int, page_size: int, share_pages: bool = True) -> torch.Tensor:
    """One new token per sequence: q [B, Hq, D] over the pages Quest selects -> [B, Hq, D].

    `page_size` is Quest's own page and need not equal the cache's page size.
    """
    outs = []
    for b in range(q.shape[0]):
        k, v = cache.sequence(b)
        pages = quest_pages(q[b], k, token_budget, page_size, share_pages)
        mask = pages.repeat_interleave(page_size, dim=1)[:, : k.shape[0]]
        outs.append(masked_attention(q[b : b + 1], k, v, mask.unsqueeze(1))[0])
    return torch.stack(outs)


def quest_reads(seq_len: int, token_budget: int, page_size: int) -> int:
    """Tokens one query head reads at this cache length: whole chosen pages plus the partial newest one."""
    pages = -(-seq_len // page_size)
    budget = token_budget // page_size
    if pages <= budget:
        return seq_len
    return (budget - 1) * page_size + seq_len - (pages - 1) * page_size


@dataclass
class QuestConfig:
    token_budget: int = 1024
    """Tokens read per decode step (a multiple of page_size; the newest page included)."""
    page_size: int = 16
    """Tokens per Quest page."""
    share_pages: bool = True
    """Query heads of a GQA group read the same pages."""
    sparsity: float | None = None
    """If set, replaces token_budget: (1 - sparsity) of the cache, rounded down to pages (at least 2)."""


@register_method
class Quest(Method):
    name = "quest"
    Config = QuestConfig

    def __init__(self, config=None, **params):
        super().__init__(config, **params)
        self._stores = {}  # layer -> QuestSummaries kept across decode steps (see _summaries)

    def validate(self) -> None:
        c = self.config
        check_positive(self.name, token_budget=c.token_budget, page_size=c.page_size)
        if c.token_budget % c.page_size:
            raise InputError(f"quest token_budget ({c.token_budget}) must be a multiple of page_size ({c.page_size})")
        if c.token_budget < 2 * c.page_size:
            raise InputError(f"quest token_budget must hold at least 2 pages ({2 * c.page_size} tokens)")
        check_sparsity(self.name, c.sparsity)

    def budget(self, seq_len: int) -> int:
        c = self.config
        if c.sparsity is None:
            return c.token_budget
        return max(2, int((1 - c.sparsity) * seq_len) // c.page_size) * c.page_size

    def decode(self, q, cache, layer):
        c = self.config
        Hq = q.shape[1]
        lengths = cache.lengths()
        budgets = [self.budget(n) for n in lengths]
        kernel = dispatch("quest_decode", quest_decode, q)
        # steady decoding: summaries kept across steps, so one new page is summarised a step, not all
        store = self._summaries(layer, cache) if kernel is not quest_decode else None
        if len(set(budgets)) == 1:
            out = kernel(q, cache, budgets[0], c.page_size, c.share_pages, **_kept(store))
        else:  # per-sequence budgets (sparsity mode): one call per sequence
            rows = [store if store is None or store.by_cache_page else store.row(b) for b in range(q.shape[0])]
            out = torch.cat([kernel(q[b : b + 1], cache.row(b), budgets[b], c.page_size, c.share_pages,
                                    **_kept(rows[b])) for b in range(q.shape[0])])
        for n, budget in zip(lengths, budgets):
            read = torch.full((Hq,), float(quest_reads(n, budget, c.page_size)), dtype=torch.float64)
            self.stats.add("decode", layer, read, torch.full((Hq,), float(n), dtype=torch.float64))
        return out

    def _summaries(self, layer: int, cache: KVCache):
        """This layer's page summaries, kept across steps (made on first use): per physical page of an
        engine's cache, or per (sequence, page) of a cache that only grows; None for any other cache."""
        from sftasks.kernels.quest import QuestSummaries

        page, store = self.config.page_size, self._stores.get(layer)
        pages, cache_page, heads, dim = cache.k_pages.shape
        if cache.persistent and cache_page % page == 0:
            if store is None or store.lo.shape != (pages, cache_page // page, heads, dim) \
                    or store.lo.device != cache.k_pages.device:
                store = QuestSummaries.for_cache(cache.k_pages, page)
        elif cache.appended:
            batch, need = cache.page_table.shape[0], -(-cache.page_table.shape[1] * cache_page // page)
            if store is None or store.by_cache_page or store.lo.shape[0] != batch \
                    or store.lo.shape[2:] != (heads, dim) or store.lo.device != cache.k_pages.device:
                store = QuestSummaries.empty(batch, need, heads, dim, cache.k_pages.dtype, cache.k_pages.device)
            store = store.with_room(need)
        else:
            return None
        self._stores[layer] = store
        return store

    def forget_cache_pages(self, pages):
        for store in self._stores.values():
            if pages is None or not store.by_cache_page:  # page ids mean nothing to per-sequence summaries
                store.reset()
            else:
                store.forget(pages)

    def last_query_keys(self, q, k, v):
        c = self.config
        pages = quest_pages(q[-1], k, self.budget(k.shape[0]), c.page_size, c.share_pages)
        return pages.repeat_interleave(c.page_size, dim=1)[:, : k.shape[0]]


def _kept(store) -> dict:
    return {} if store is None else {"summaries": store}
