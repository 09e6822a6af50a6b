"""Quest decode over a paged KV cache (twin of `methods.quest.quest_decode`), batch > 1, GQA.

Three launches per call (the wrapper adds none when the page table and lengths are int32 on the GPU):
  1. `_page_bounds`: per (sequence, KV head, run of pages) the upper bound sum_d max(q_d lo_d, q_d hi_d)
     = q+ . hi + q- . lo (two small matrix products), for every full past page. Summaries of pages
     not yet summarised (new pages, or all of them on a fresh `QuestSummaries`) are computed from the
     cache in the same pass and written back in place: in steady decoding that is one page per step.
  2. `_select_pages`: exact top-k of the bounds per row by a threshold search on the values (pages a sequence does not have
     score -inf and are skipped later), listed by up to 32 programs a row, as where each page starts in the
     cache when cache pages hold whole Quest pages (the page table read under the search); torch.topk for
     very long rows.
  3. `_attend_pages`: split-K attention over the chosen pages plus the newest (partial) page; with
     share_pages each program serves a whole GQA group, so a group's heads share every K/V load. The
     last split of a (sequence, page list) to finish merges all of them (`_merge_splits`): one launch,
     and its wait, fewer than a separate merge (bench/RESULTS.md).
Quest pages are logical token ranges; the cache's own page size may differ (tokens are found through
the page table), so no copy of the cache is made.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

try:  # programmatic dependent launch: Triton >= 3.3, used on Hopper and later
    from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait

    HAS_PDL = True
except ImportError:
    HAS_PDL = False

from sftasks.errors import InputError

from ._checks import check_head_dim
from ._tile import LOG2E, attend_tile


@dataclass
class QuestSummaries:
    """Key min/max per Quest page and KV head, kept across decode steps and updated in place;
    `ready` marks the pages already summarised. Two ways to key them:

    - per sequence slot (`empty`): lo[b, p] is page p of sequence b; call `reset(b)` when slot b gets a
      new sequence (or its cached keys change other than by appending); `with_room` grows a store as
      the sequences grow, wherever their cache lives (transformers reallocates its own every step);
    - per physical cache page (`for_cache`), what a serving engine needs, where the batch changes
      every step but a cache page keeps its contents until it is written: lo[c, j] is the j-th Quest
      page inside cache page c. Call `forget(cache_pages)` for the pages written since the last call.
    """

    lo: torch.Tensor  # [B, pages, Hkv, D] or [cache pages, Quest pages per cache page, Hkv, D]; the cache's dtype
    hi: torch.Tensor
    ready: torch.Tensor  # lo.shape[:3], int8
    by_cache_page: bool = False

    @classmethod
    def empty(cls, batch: int, pages: int, num_kv_heads: int, head_dim: int, dtype, device) -> "QuestSummaries":
        lo = torch.empty(batch, pages, num_kv_heads, head_dim, dtype=dtype, device=device)
        return cls(lo, torch.empty_like(lo), torch.zeros(batch, pages, num_kv_heads, dtype=torch.int8, device=device))

    @classmethod
    def for_cache(cls, k_pages: torch.Tensor, page_size: int) -> "QuestSummaries":
        """Summaries keyed by the pages of k_pages [cache pages, cache page size, Hkv, D]; Quest pages
        must tile cache pages (page_size divides the cache's page size)."""
        num_pages, cache_page, num_kv_heads, head_dim = k_pages.shape
        if cache_page % page_size:
            raise InputError(f"summaries per cache page need Quest pages ({page_size}) that divide the cache's "
                             f"pages ({cache_page})")
        s = cls.empty(num_pages, cache_page // page_size, num_kv_heads, head_dim, k_pages.dtype, k_pages.device)
        s.by_cache_page = True
        return s

    def with_room(self, pages: int) -> "QuestSummaries":
        """Per-sequence summaries with room for at least `pages` pages: self, or a copy twice as large
        (for a cache that grows by appending, like transformers')."""
        have = self.lo.shape[1]
        if self.by_cache_page or have >= pages:
            return self
        grown = QuestSummaries.empty(self.lo.shape[0], max(pages, 2 * have), *self.lo.shape[2:], self.lo.dtype,
                                     self.lo.device)
        grown.lo[:, :have] = self.lo
        grown.hi[:, :have] = self.hi
        grown.ready[:, :have] = self.ready
        return grown

    def row(self, b: int) -> "QuestSummaries":
        """Sequence b's per-sequence summaries as a one-sequence store (views: updates land in self)."""
        return QuestSummaries(self.lo[b : b + 1], self.hi[b : b + 1], self.ready[b : b + 1])

    def reset(self, b: int | None = None) -> None:
        if b is None:
            self.ready.zero_()
        else:
            self.ready[b].zero_()

    def forget(self, cache_pages: torch.Tensor) -> None:
        """Tokens were written into these cache pages: their summaries are recomputed when next needed."""
        self.ready.index_fill_(0, cache_pages.to(self.ready.device, torch.long).flatten(), 0)


@triton.jit
def _cache_slots(table, tok, mask, CACHE_PAGE: tl.constexpr):
    """(cache page, slot in it) of tokens `tok` of one sequence in a paged cache (from its page table row)."""
    return tl.load(table + tok // CACHE_PAGE, mask=mask, other=0).to(tl.int64), tok % CACHE_PAGE


@triton.jit
def _wait_for_previous_launch(PDL: tl.constexpr):
    """With programmatic dependent launch (PDL), a kernel of the chain is launched while the one before
    it still runs, which hides the launch gaps between the three short kernels (each is latency-bound):
    wait here until that one's writes are visible."""
    if PDL:
        gdc_wait()


@triton.jit
def _launch_next(PDL: tl.constexpr):
    """Let the next kernel of the chain launch. At a program's end as a rule: the next launch's programs
    wait on SMs until this launch is done, taking registers from this launch's programs still to run
    (triggered at the start, the selection's 32 programs a row, waiting through the bounds launch, cost
    more than PDL saved; so did the bounds launch's last wave triggering at its start). The selection
    triggers at its start when the attention launch is one wave: those programs then find free SMs and
    wait there, ready. Only a program's first trigger counts."""
    if PDL:
        gdc_launch_dependents()


@triton.jit
def _page_bounds(Q, KPages, PageTable, SeqLens, Lo, Hi, Ready, Bounds, Arrived,
                 max_pages, table_cols, stride_qb, stride_qh, stride_kp, stride_kt, stride_kh,
                 stride_sb, stride_sp, stride_sh, stride_rb, stride_rp, stride_bb, stride_bh,
                 GROUP: tl.constexpr, SHARE: tl.constexpr, HEAD_DIM: tl.constexpr,
                 PAGE: tl.constexpr, CACHE_PAGE: tl.constexpr, ROWS: tl.constexpr, PAGES: tl.constexpr,
                 BY_CACHE_PAGE: tl.constexpr, IEEE: tl.constexpr, PDL: tl.constexpr = False):
    _wait_for_previous_launch(PDL)
    b, kvh, pb = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    if pb == 0:  # zero this KV head's arrival counters, where the attention launch (after this one) counts splits
        per_kv: tl.constexpr = 1 if SHARE else GROUP
        lists = tl.arange(0, ROWS)
        tl.store(Arrived + (b * tl.num_programs(1) + kvh) * per_kv + lists, tl.zeros([ROWS], tl.int32), mask=lists < per_kv)
    n = tl.load(SeqLens + b)
    full = (n - 1) // PAGE  # pages before the newest one: all full
    pages = pb * PAGES + tl.arange(0, PAGES)
    page_ok = pages < full
    offs_d = tl.arange(0, HEAD_DIM)
    table = PageTable + b * table_cols
    if BY_CACHE_PAGE:  # summary (cache page, Quest page within it)
        srow = tl.load(table + pages * PAGE // CACHE_PAGE, mask=page_ok, other=0).to(tl.int64)
        scol = (pages * PAGE % CACHE_PAGE) // PAGE
    else:  # summary (sequence, Quest page)
        srow = tl.zeros([PAGES], tl.int64) + b
        scol = pages
    summ = srow[:, None] * stride_sb + scol[:, None] * stride_sp + kvh * stride_sh + offs_d[None, :]
    ready_ptrs = Ready + srow * stride_rb + scol * stride_rp + kvh
    if pb * PAGES < full:
        # The summaries and the query are loaded with the flags, not after them: in steady decoding all pages
        # are ready, and a load that waited on the flags would add a memory latency to the chain.
        ready = tl.load(ready_ptrs, mask=page_ok, other=1)
        lo = tl.load(Lo + summ, mask=page_ok[:, None], other=0.0)
        hi = tl.load(Hi + summ, mask=page_ok[:, None], other=0.0)
        heads = tl.arange(0, ROWS)
        q = tl.load(Q + b * stride_qb + (kvh * GROUP + heads)[:, None] * stride_qh + offs_d[None, :], mask=heads[:, None] < GROUP, other=0.0)
        if tl.min(ready) == 0:  # summarise this run of pages from the cache, in place
            # Sized for few registers (the cache's dtype, a loop not unrolled): the kernel's register count is
            # that of this rarely taken path, and it sets how many programs share an SM on the steady path.
            lo = tl.full([PAGES, HEAD_DIM], float("inf"), KPages.dtype.element_ty)
            hi = tl.full([PAGES, HEAD_DIM], float("-inf"), KPages.dtype.element_ty)
            for s in range(PAGE):
                cache_page, in_page = _cache_slots(table, pages * PAGE + s, page_ok, CACHE_PAGE)
                row = cache_page * stride_kp + in_page * stride_kt + kvh.to(tl.int64) * stride_kh
                k = tl.load(KPages + row[:, None] + offs_d[None, :], mask=page_ok[:, None], other=0.0)
                lo = tl.minimum(lo, k).to(lo.dtype)  # exact in the cache's dtype: min and max pick a value
                hi = tl.maximum(hi, k).to(hi.dtype)
            tl.store(Lo + summ, lo.to(Lo.dtype.element_ty), mask=page_ok[:, None])
            tl.store(Hi + summ, hi.to(Hi.dtype.element_ty), mask=page_ok[:, None])
            tl.store(ready_ptrs, tl.full([PAGES], 1, tl.int8), mask=page_ok)
            lo = lo.to(Lo.dtype.element_ty)
            hi = hi.to(Hi.dtype.element_ty)
        pos = tl.maximum(q, 0.0).to(lo.dtype)
        neg = tl.minimum(q, 0.0).to(lo.dtype)
        if IEEE:
            bound = tl.dot(pos, tl.trans(hi), input_precision="ieee") + tl.dot(neg, tl.trans(lo), input_precision="ieee")
        else:
            bound = tl.dot(pos, tl.trans(hi)) + tl.dot(neg, tl.trans(lo))  # [ROWS, PAGES]
        bound = tl.where(page_ok[None, :], bound, float("-inf"))
        if SHARE:
            total = tl.sum(tl.where((heads < GROUP)[:, None], bound, 0.0), 0)
            total = tl.where(page_ok, total, float("-inf"))
            tl.store(Bounds + b * stride_bb + kvh * stride_bh + pages, total, mask=pages < max_pages)
        else:
            ptrs = Bounds + b * stride_bb + (kvh * GROUP + heads)[:, None] * stride_bh + pages[None, :]
            tl.store(ptrs, bound, mask=(heads[:, None] < GROUP) & (pages[None, :] < max_pages))
    else:
        if SHARE:
            tl.store(Bounds + b * stride_bb + kvh * stride_bh + pages, tl.full([PAGES], float("-inf"), tl.float32), mask=pages < max_pages)
        else:
            heads = tl.arange(0, ROWS)
            ptrs = Bounds + b * stride_bb + (kvh * GROUP + heads)[:, None] * stride_bh + pages[None, :]
            tl.store(ptrs, tl.full([ROWS, PAGES], float("-inf"), tl.float32), mask=(heads[:, None] < GROUP) & (pages[None, :] < max_pages))
    _launch_next(PDL)


@triton.jit
def _normal_quantile(p):
    """z with P(N(0, 1) > z) = p, for 0 < p <= 0.5 (Abramowitz and Stegun 26.2.23, error < 4.5e-4)."""
    t = tl.sqrt(-2.0 * tl.log(p))
    return t - (2.515517 + t * (0.802853 + t * 0.010328)) / (1.0 + t * (1.432788 + t * (0.189269 + t * 0.001308)))


@triton.jit
def _order_key(x):
    """An int32 key with the order of the float32 x (-inf maps above INT_MIN)."""
    bits = x.to(tl.int32, bitcast=True)
    return tl.where(bits >= 0, bits, bits ^ 0x7FFFFFFF)


@triton.jit
def _stats_combine(min_a, max_a, sum_a, sq_a, min_b, max_b, sum_b, sq_b):
    return tl.minimum(min_a, min_b), tl.maximum(max_a, max_b), sum_a + sum_b, sq_a + sq_b


@triton.jit
def _interpolated_point(lo, hi, count_lo, count_hi, k):
    """Where the count of keys >= a point, linear between the bracket's ends, is k (regula falsi)."""
    return lo + ((count_lo - k).to(tl.float32) / (count_lo - count_hi).to(tl.float32) * (hi - lo).to(tl.float32)).to(tl.int64)


@triton.jit
def _bracket_points(lo, hi, count_lo, count_hi, k, rounds, SPREAD: tl.constexpr):
    """A paired search round's two points (clamp them into (lo, hi)), from the bracket's counts: with SPREAD,
    aimed at counts k -+ SPREAD x the bracket's count, interpolated, but every fifth round (and without
    SPREAD) the interpolated point and the middle. Only the pair a round uses is computed."""
    if SPREAD > 0:
        aimed = rounds % 5 != 4
    else:
        aimed = False
    if aimed:
        span = (count_lo - count_hi).to(tl.float32)
        width = (hi - lo).to(tl.float32)
        a = tl.maximum(SPREAD * span, 0.5)
        p1 = lo + (tl.maximum((count_lo - k).to(tl.float32) - a, 0.0) / span * width).to(tl.int64)
        p2 = lo + (tl.minimum((count_lo - k).to(tl.float32) + a, span) / span * width).to(tl.int64)
    else:
        guess = _interpolated_point(lo, hi, count_lo, count_hi, k)
        half = lo + (hi - lo) // 2
        p1 = tl.minimum(guess, half)
        p2 = tl.maximum(guess, half)
    return p1, p2


SELECT_SPREAD = 0.02  # the search's two points aim at counts k -+ this share of the bracket's count
SELECT_WIDTH = 0.05  # its first two points: the normal guess -+ this many standard deviations


@triton.jit
def _select_pages(Bounds, Chosen, SeqLens, num_pages, k, stride_bb, stride_bh, stride_cb, stride_ch, N: tl.constexpr,
                  CHUNK: tl.constexpr, PAGE: tl.constexpr, PAIRED: tl.constexpr = False, PDL: tl.constexpr = False,
                  PageTable=None, table_cols=0, CACHE_PAGE: tl.constexpr = 1, CACHE_SLOTS: tl.constexpr = False,
                  NEXT_AT_START: tl.constexpr = False, SPREAD: tl.constexpr = SELECT_SPREAD,
                  WIDTH: tl.constexpr = SELECT_WIDTH):
    """Exact top-k indices of one row of bounds, in page order, without a sort: program (b, h, c) lists
    those in pages [c * CHUNK, (c + 1) * CHUNK) of row (b, h).

    Searches a threshold on order-preserving int keys, from the row's min/max, stopping as soon as
    exactly k keys are >= it. Each round is one block-wide count, and this chain of rounds is the
    kernel's latency. Rounds alternate between interpolating on the counts (regula falsi: bounds are
    smooth, so a few rounds usually land) and halving (so the worst case stays ~64 rounds). With PAIRED
    each round tries two points in one packed count, and the first round tries mean + (z -+ WIDTH) sd
    of the row's bounds, z the normal quantile of rank k (a bound sums many products, so it is near
    normal). With SPREAD the two points aim at counts k -+ SPREAD x the bracket's count, interpolated,
    and every fifth round at the interpolated point and the bracket's middle (the worst case): on Quest
    bounds at 128k 3.4-4.1 rounds on average, against 3.6-4.8 for the interpolated point and the
    middle every round, 6.9-8.2 without the first guess and 11.9-13.4 with one point a round
    (bench/select_rounds.py). Ties at the k-th value are taken in page order.

    Each of a row's programs runs the same search; listing a chunk then needs only the count of pages
    taken before it (one reduction) and a scan of the chunk: one scan over the whole row cost as much
    as the search.

    With CACHE_SLOTS (cache pages that hold whole Quest pages) the list holds where each page starts in
    the cache, cache page * CACHE_PAGE + offset, or -1 for a page the sequence does not have: the page
    table is read here, under the search, instead of between the attention's list load and its K/V loads.
    """
    _wait_for_previous_launch(PDL)
    if NEXT_AT_START:
        _launch_next(PDL)
    b, h = tl.program_id(0), tl.program_id(1)
    offs = tl.arange(0, N)
    ok = offs < num_pages
    row = Bounds + b * stride_bb + h * stride_bh
    x = tl.load(row + offs, mask=ok, other=float("-inf"))
    real = tl.minimum((tl.load(SeqLens + b) - 1) // PAGE, num_pages)  # pages with a bound: all before the newest
    start = tl.program_id(2) * CHUNK
    offs_c = start + tl.arange(0, CHUNK)
    if CACHE_SLOTS:  # loaded before the search, which hides its latency
        has_c = offs_c < real
        cache_page_c = tl.load(PageTable + b * table_cols + offs_c * PAGE // CACHE_PAGE, mask=has_c, other=0)
        slot_c = tl.where(has_c, cache_page_c * CACHE_PAGE + offs_c * PAGE % CACHE_PAGE, -1)
    key = _order_key(x)
    # invariant: count(key >= lo) = count_lo >= k and count(key >= hi) = count_hi < k
    if PAIRED:  # min, max and the moments of the real (finite) bounds, shifted by one of them, in one pass
        x0 = tl.load(row, mask=real > 0, other=0.0)
        xs = tl.where(offs < real, x - x0, 0.0)
        lo, hi, s1, s2 = tl.reduce((tl.where(ok, key, 2**31 - 1), tl.where(ok, key, -(2**31)), xs, xs * xs), 0,
                                   _stats_combine)
        n_real = tl.maximum(real, 1).to(tl.float32)
        mean = s1 / n_real
        sd = tl.sqrt(tl.maximum(s2 / n_real - mean * mean, 0.0))
        z = _normal_quantile(tl.minimum(tl.maximum(k / n_real, 1e-6), 0.5))
        first_lo = _order_key(x0 + mean + (z - WIDTH) * sd).to(tl.int64)
        first_hi = _order_key(x0 + mean + (z + WIDTH) * sd).to(tl.int64)
    else:
        lo = tl.min(tl.where(ok, key, 2**31 - 1), 0)
        hi = tl.max(tl.where(ok, key, -(2**31)), 0)
    lo = lo.to(tl.int64)
    hi = hi.to(tl.int64) + 1
    key = tl.where(ok, key, -(2**31))  # padding ranks below every real value
    count_lo = num_pages
    count_hi = 0
    rounds = 0
    while (hi - lo > 1) & (count_lo != k):
        if PAIRED:  # both points in one count: (key >= m1) + (key >= m2) << 16 (counts <= N < 2**16)
            if rounds == 0:  # the first round: around the normal guess
                m1 = first_lo
                m2 = first_hi
            else:
                m1, m2 = _bracket_points(lo, hi, count_lo, count_hi, k, rounds, SPREAD)
            m1 = tl.minimum(tl.maximum(m1, lo + 1), hi - 1)
            m2 = tl.minimum(tl.maximum(m2, lo + 1), hi - 1)
            m2 = tl.maximum(m2, tl.minimum(m1 + 1, hi - 1))
            both = tl.sum(tl.where(key >= m2.to(tl.int32), 0x10001, tl.where(key >= m1.to(tl.int32), 1, 0)), 0)
            c1 = both & 0xFFFF
            c2 = both >> 16
            # three outcomes: the k-th key is >= m2, in [m1, m2), or < m1
            lo_new = tl.where(c2 >= k, m2, tl.where(c1 >= k, m1, lo))
            count_lo = tl.where(c2 >= k, c2, tl.where(c1 >= k, c1, count_lo))
            hi = tl.where(c2 >= k, hi, tl.where(c1 >= k, m2, m1))
            count_hi = tl.where(c2 >= k, count_hi, tl.where(c1 >= k, c2, c1))
            lo = lo_new
        else:
            guess = tl.minimum(tl.maximum(_interpolated_point(lo, hi, count_lo, count_hi, k), lo + 1), hi - 1)
            mid = tl.where(rounds % 2 == 1, lo + (hi - lo) // 2, guess)
            count = tl.sum((key >= mid.to(tl.int32)).to(tl.int32), 0)
            enough = count >= k
            lo = tl.where(enough, mid, lo)
            count_lo = tl.where(enough, count, count_lo)
            hi = tl.where(enough, hi, mid)
            count_hi = tl.where(enough, count_hi, count)
        rounds += 1
    threshold = lo.to(tl.int32)
    before = offs < start
    ok_c = offs_c < num_pages
    key_c = tl.where(ok_c, _order_key(tl.load(row + offs_c, mask=ok_c, other=float("-inf"))), -(2**31))
    if count_lo == k:  # the usual end: exactly k keys >= the threshold, no ties to break
        take_c = key_c >= threshold
        taken_before = tl.sum((before & (key >= threshold)).to(tl.int32), 0)
    else:  # take every key above it and the first (in page order) of the keys equal to it
        ties_wanted = k - tl.sum((key > threshold).to(tl.int32), 0)
        ties_before = tl.sum((before & (key == threshold) & ok).to(tl.int32), 0)
        ties_c = (key_c == threshold) & ok_c
        take_c = (key_c > threshold) | (ties_c & (ties_before + tl.cumsum(ties_c.to(tl.int32), 0) <= ties_wanted))
        taken_before = tl.sum((before & (key > threshold)).to(tl.int32), 0) + tl.minimum(ties_before, ties_wanted)
    pos = taken_before + tl.cumsum(take_c.to(tl.int32), 0) - 1
    tl.store(Chosen + b * stride_cb + h * stride_ch + pos, slot_c if CACHE_SLOTS else offs_c, mask=take_c)
    _launch_next(PDL)


@triton.jit
def _attend_pages(Q, KPages, VPages, PageTable, SeqLens, Chosen, Acc, Ms, Ls, Arrived, Out,
                  qk_scale, num_chosen, per_split, table_cols,
                  stride_qb, stride_qh, stride_kp, stride_kt, stride_kh, stride_vp, stride_vt, stride_vh,
                  stride_cb, stride_ch,
                  HEADS: tl.constexpr, GROUP: tl.constexpr, HEAD_DIM: tl.constexpr, PAGE: tl.constexpr,
                  CACHE_PAGE: tl.constexpr, ROWS: tl.constexpr, BLOCK_N: tl.constexpr, PAGE_LANES: tl.constexpr,
                  HEADS_P2: tl.constexpr, SPLITS: tl.constexpr, SPLITS_AT_ONCE: tl.constexpr,
                  CACHE_SLOTS: tl.constexpr = False, PDL: tl.constexpr = False):
    """One (sequence, page list, split): HEADS query heads (a GQA group, or one head) over its pages;
    the list's last split to finish also merges the splits into Out. With CACHE_SLOTS the list holds where
    each page starts in the cache (`_select_pages`), else page numbers to look up in the page table."""
    b, lst, split = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    num_splits = tl.num_programs(2)
    n = tl.load(SeqLens + b)
    newest = (n - 1) // PAGE
    kvh = ((lst * HEADS) // GROUP).to(tl.int64)  # times a head stride that may be a whole sequence (transformers' cache)
    heads = tl.arange(0, ROWS)
    head_ok = heads < HEADS
    offs_d = tl.arange(0, HEAD_DIM)
    offs_n = tl.arange(0, BLOCK_N)
    q = tl.load(Q + b * stride_qb + (lst * HEADS + heads)[:, None] * stride_qh + offs_d[None, :], mask=head_ok[:, None], other=0.0)
    table = PageTable + b * table_cols
    if CACHE_SLOTS:
        newest_slot = tl.load(table + newest * PAGE // CACHE_PAGE) * CACHE_PAGE + newest * PAGE % CACHE_PAGE
    _wait_for_previous_launch(PDL)  # for the page lists (the loads above read what the chain does not write)
    acc = tl.zeros([ROWS, HEAD_DIM], dtype=tl.float32)
    m_i = tl.full([ROWS], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([ROWS], dtype=tl.float32)
    chosen = Chosen + b * stride_cb + lst * stride_ch
    # Slots 0 .. num_chosen - 1 of the list are the chosen past pages (ids >= newest, or cache slot -1, are
    # absent pages of a shorter sequence: skipped); slot num_chosen is the newest page, so no split reads a
    # tile more than the others.
    start = split * per_split
    stop = tl.minimum(start + per_split, num_chosen + 1)
    lane = offs_n % PAGE_LANES  # a page takes PAGE_LANES >= PAGE lanes of the tile, so a tile holds whole pages
    for i in range(start, stop, BLOCK_N // PAGE_LANES):
        slot = i + offs_n // PAGE_LANES
        listed = slot < num_chosen
        if CACHE_SLOTS:  # where the page starts in the cache: no page-table lookup between the list and K/V
            first = tl.where(listed, tl.load(chosen + slot, mask=listed & (slot < stop), other=-1), newest_slot)
            ok = (slot < stop) & (lane < PAGE) & tl.where(listed, first >= 0, newest * PAGE + lane < n)
            cache_slot = first + lane  # < 2**31 (quest_decode checks)
            cache_page, in_page = (cache_slot // CACHE_PAGE).to(tl.int64), cache_slot % CACHE_PAGE
        else:
            page = tl.where(listed, tl.load(chosen + slot, mask=listed & (slot < stop), other=0), newest)
            tok = page * PAGE + lane
            ok = (slot < stop) & (lane < PAGE) & tl.where(listed, page < newest, tok < n)
            cache_page, in_page = _cache_slots(table, tok, ok, CACHE_PAGE)  # one page-table lookup for K and V
        krow = cache_page * stride_kp + in_page * stride_kt + kvh * stride_kh
        vrow = cache_page * stride_vp + in_page * stride_vt + kvh * stride_vh
        k = tl.load(KPages + krow[None, :] + offs_d[:, None], mask=ok[None, :], other=0.0)
        v = tl.load(VPages + vrow[:, None] + offs_d[None, :], mask=ok[:, None], other=0.0)
        acc, m_i, l_i = attend_tile(acc, m_i, l_i, q, k, v, qk_scale, ok[None, :], True)
    row0 = (b * tl.num_programs(1) + lst) * HEADS  # output row (b * Hq + query head) of this list's first head
    out_rows = (row0 + heads) * num_splits + split
    tl.store(Acc + out_rows[:, None] * HEAD_DIM + offs_d[None, :], acc, mask=head_ok[:, None])
    tl.store(Ms + out_rows, m_i, mask=head_ok)
    tl.store(Ls + out_rows, l_i, mask=head_ok)
    # Count this split as finished (the barrier orders every thread's stores before the release); the last
    # one sees all the others' partials (acquire) and merges them.
    tl.debug_barrier()
    arrived = Arrived + b * tl.num_programs(1) + lst
    if tl.atomic_add(arrived, 1, sem="acq_rel", scope="gpu") == num_splits - 1:
        _merge_splits(Acc, Ms, Ls, Out, row0, num_splits, HEADS, HEADS_P2, HEAD_DIM, SPLITS, SPLITS_AT_ONCE)
    _launch_next(PDL)


@triton.jit
def _merge_splits(Acc, Ms, Ls, Out, row0, num_splits, HEADS: tl.constexpr, HEADS_P2: tl.constexpr,
                  HEAD_DIM: tl.constexpr, SPLITS: tl.constexpr, SPLITS_AT_ONCE: tl.constexpr):
    """Out rows row0 .. row0 + HEADS from every split's (acc, max, sum), SPLITS_AT_ONCE splits a load (16 at
    head_dim 128 with a GQA group of 7). `.cg` loads skip L1, which may hold lines other programs wrote."""
    h = tl.arange(0, HEADS_P2)
    s = tl.arange(0, SPLITS)
    ok = (h[:, None] < HEADS) & (s[None, :] < num_splits)
    rows = (row0 + h)[:, None] * num_splits + s[None, :]
    m = tl.load(Ms + rows, mask=ok, other=float("-inf"), cache_modifier=".cg")
    m_max = tl.max(m, 1)
    m_max = tl.where(m_max == float("-inf"), 0.0, m_max)  # padding heads: no NaN
    l_sum = tl.sum(tl.load(Ls + rows, mask=ok, other=0.0, cache_modifier=".cg") * tl.math.exp2(m - m_max[:, None]), 1)
    offs_d = tl.arange(0, HEAD_DIM)
    out = tl.zeros([HEADS_P2, HEAD_DIM], tl.float32)
    for s0 in range(0, num_splits, SPLITS_AT_ONCE):
        sc = s0 + tl.arange(0, SPLITS_AT_ONCE)
        okc = (h[:, None] < HEADS) & (sc[None, :] < num_splits)
        rc = (row0 + h)[:, None] * num_splits + sc[None, :]
        w = tl.math.exp2(tl.load(Ms + rc, mask=okc, other=float("-inf"), cache_modifier=".cg") - m_max[:, None])
        acc = tl.load(Acc + rc[:, :, None] * HEAD_DIM + offs_d[None, None, :], mask=okc[:, :, None], other=0.0,
                      cache_modifier=".cg")
        out += tl.sum(acc * w[:, :, None], 1)
    out = out / tl.where(l_sum == 0.0, 1.0, l_sum)[:, None]
    tl.store(Out + (row0 + h)[:, None] * HEAD_DIM + offs_d[None, :], out.to(Out.dtype.element_ty), mask=(h < HEADS)[:, None])


MERGE_ELEMENTS = 16384  # partial outputs the merge loads at once (64 registers a thread at 8 warps; 32768 slowed batches)
MERGE_ELEMENTS_ONE_WAVE = 32768  # ... with at most one attention program an SM (batch 1): none shares its registers
SELECT_MAX_PAGES = 16384  # rows longer than this go to torch.topk (the kernel keeps a row in registers)


@functools.cache
def _sm_count(device: torch.device) -> int:
    """The GPU's SMs, which launch sizes follow; 4 for the CPU (Triton's interpreter)."""
    return torch.cuda.get_device_properties(device).multi_processor_count if device.type == "cuda" else 4


def quest_decode(q: torch.Tensor, cache, token_budget: int, page_size: int, share_pages: bool = True, *,
                 summaries: QuestSummaries | None = None, splits: int | None = None, select_chunks: int | None = None,
                 select_warps: int = 8, select_paired: bool = True, pages_per_split: int = 16, bounds_pages: int = 32,
                 bounds_warps: int = 4, select_next_early: bool | None = None, select_spread: float = SELECT_SPREAD,
                 select_width: float = SELECT_WIDTH, attend_warps: int = 8, attend_keys: int | None = None,
                 attend_stages: int = 2, pdl: bool = True, out: torch.Tensor | None = None) -> torch.Tensor:
    """One new token per sequence: q [B, Hq, D] over the pages Quest picks -> [B, Hq, D].

    Per sequence: the newest page plus the `token_budget // page_size - 1` past pages with the largest
    bound (summed over a GQA group with share_pages); everything when the sequence has no more pages
    than the budget. Pass the same `summaries` on every step to update page summaries in place.
    The other keyword options are tuning knobs (bench/RESULTS.md says which paid).
    """
    B, Hq, D = q.shape
    num_pages, cache_page, Hkv, Dk = cache.k_pages.shape
    if Dk != D or Hq % Hkv or cache.page_table.shape[0] != B:
        raise InputError(f"q {tuple(q.shape)} does not fit the cache (k_pages {tuple(cache.k_pages.shape)}, "
                         f"page_table {tuple(cache.page_table.shape)})")
    if token_budget < 2 * page_size or token_budget % page_size:
        raise InputError(f"quest token_budget ({token_budget}) must be a multiple of page_size ({page_size}), at least 2 pages")
    check_head_dim(D)
    dev = q.device
    group = Hq // Hkv
    kp, vp = cache.k_pages, cache.v_pages  # any strides (a serving engine's K|V interleaved pages) but a unit last one
    if kp.stride(-1) != 1 or vp.stride(-1) != 1:
        raise InputError("quest_decode needs k_pages/v_pages [num_pages, page_size, Hkv, D] with a unit last stride")
    table = cache.page_table.to(device=dev, dtype=torch.int32).contiguous()
    seq_lens = cache.seq_lens.to(device=dev, dtype=torch.int32)
    max_pages = -(-(table.shape[1] * cache_page) // page_size)
    if summaries is None:
        summaries = QuestSummaries.empty(B, max_pages, Hkv, D, cache.k_pages.dtype, dev)
    if summaries.by_cache_page:
        fits = summaries.lo.shape == (num_pages, cache_page // page_size, Hkv, D) and cache_page % page_size == 0
    else:  # per sequence: room for at least max_pages pages
        fits = summaries.lo.shape[0] == B and summaries.lo.shape[1] >= max_pages and summaries.lo.shape[2:] == (Hkv, D)
    if not fits:
        raise InputError(f"summaries {tuple(summaries.lo.shape)} do not fit this cache ({B} sequences of up to "
                         f"{max_pages} pages, k_pages {tuple(kp.shape)}) and page size {page_size}")
    # One page per sequence (transformers' cache seen in place): its size changes every step, and any
    # size >= the tokens addresses them alike, so a power of two keeps one compiled kernel.
    cache_page_c = cache_page if table.shape[1] > 1 else max(16, triton.next_power_of_2(cache_page))
    lists = Hkv if share_pages else Hq
    rows = 16  # smallest tl.dot tile; also holds a whole GQA group up to 16 heads
    if group > rows:
        raise InputError(f"GQA groups of more than {rows} query heads are not supported by the kernel")
    bounds = torch.empty(B, lists, max_pages, device=dev, dtype=torch.float32)
    arrived = torch.empty(B, lists, device=dev, dtype=torch.int32)  # zeroed by _page_bounds
    pdl = pdl and HAS_PDL and q.is_cuda and torch.cuda.get_device_capability(dev)[0] >= 9
    launch = {"PDL": pdl, **({"launch_pdl": True} if pdl else {})}
    _page_bounds[(B, Hkv, triton.cdiv(max_pages, bounds_pages))](
        q, kp, table, seq_lens, summaries.lo, summaries.hi, summaries.ready, bounds, arrived,
        max_pages, table.shape[1], q.stride(0), q.stride(1), kp.stride(0), kp.stride(1), kp.stride(2),
        summaries.lo.stride(0), summaries.lo.stride(1), summaries.lo.stride(2),
        summaries.ready.stride(0), summaries.ready.stride(1), bounds.stride(0), bounds.stride(1),
        GROUP=group, SHARE=share_pages, HEAD_DIM=D, PAGE=page_size, CACHE_PAGE=cache_page_c, ROWS=rows,
        PAGES=bounds_pages, BY_CACHE_PAGE=summaries.by_cache_page, IEEE=q.dtype == torch.float32,
        num_warps=bounds_warps, **launch,
    )
    k = min(token_budget // page_size - 1, max_pages)
    sms = _sm_count(dev)
    listed = k + 1  # the chosen pages, then the newest page
    if splits is None:
        splits = max(1, min(triton.cdiv(listed, pages_per_split), triton.cdiv(4 * sms, B * lists)))
    per_split = triton.cdiv(listed, splits)
    splits = triton.cdiv(listed, per_split)
    one_wave = B * lists * splits <= sms  # at most one attention program an SM: none shares its registers
    if select_next_early is None:
        select_next_early = one_wave
    cache_slots = False  # the list holds page numbers (torch.topk), or where pages start in the cache (below)
    if max_pages <= SELECT_MAX_PAGES:
        cache_slots = cache_page_c % page_size == 0 and num_pages * cache_page_c < 2**31  # whole Quest pages
        n = triton.next_power_of_2(max_pages)
        if select_chunks is None:  # a row's programs: about one SM each, up to 32
            select_chunks = min(32, n, triton.next_power_of_2(max(1, sms // (B * lists)) + 1) // 2)
        if select_chunks & (select_chunks - 1) or not 1 <= select_chunks <= n:
            raise InputError(f"select_chunks ({select_chunks}) must be a power of two from 1 to {n}")
        chosen = torch.empty(B, lists, k, device=dev, dtype=torch.int32)
        _select_pages[(B, lists, select_chunks)](
            bounds, chosen, seq_lens, max_pages, k, bounds.stride(0), bounds.stride(1), chosen.stride(0),
            chosen.stride(1), N=n, CHUNK=n // select_chunks, PAGE=page_size, PAIRED=select_paired,
            PageTable=table, table_cols=table.shape[1], CACHE_PAGE=cache_page_c, CACHE_SLOTS=cache_slots,
            NEXT_AT_START=select_next_early, SPREAD=select_spread, WIDTH=select_width, num_warps=select_warps,
            **launch)
    else:
        chosen = bounds.topk(k, dim=-1, sorted=False).indices.to(torch.int32)
    heads = group if share_pages else 1
    acc = torch.empty(B * Hq * splits, D, device=dev, dtype=torch.float32)
    ms = torch.empty(B * Hq * splits, device=dev, dtype=torch.float32)
    ls = torch.empty_like(ms)
    page_lanes = triton.next_power_of_2(page_size)
    if attend_keys is None:  # one wave: a split's pages in one tile, all its loads at once; else narrow tiles
        attend_keys = min(256, triton.next_power_of_2(per_split) * page_lanes) if one_wave else 64
    if attend_stages < 1:
        raise InputError(f"attend_stages ({attend_stages}) must be at least 1")
    if attend_keys & (attend_keys - 1) or attend_keys < 16:
        raise InputError(f"attend_keys ({attend_keys}) must be a power of two, at least 16")
    block_n = max(attend_keys, page_lanes)  # keys a tile: whole pages
    out = torch.empty_like(q) if out is None else out
    splits_p2 = triton.next_power_of_2(splits)
    heads_p2 = triton.next_power_of_2(heads)
    merge_elements = MERGE_ELEMENTS_ONE_WAVE if one_wave else MERGE_ELEMENTS
    _attend_pages[(B, lists, splits)](
        q, kp, vp, table, seq_lens, chosen, acc, ms, ls, arrived, out,
        D ** -0.5 * LOG2E, k, per_split, table.shape[1],
        q.stride(0), q.stride(1), kp.stride(0), kp.stride(1), kp.stride(2), vp.stride(0), vp.stride(1), vp.stride(2),
        chosen.stride(0), chosen.stride(1),
        HEADS=heads, GROUP=group, HEAD_DIM=D, PAGE=page_size, CACHE_PAGE=cache_page_c, ROWS=rows, BLOCK_N=block_n,
        PAGE_LANES=page_lanes, HEADS_P2=heads_p2, SPLITS=splits_p2, CACHE_SLOTS=cache_slots,
        SPLITS_AT_ONCE=min(splits_p2, max(1, merge_elements // (heads_p2 * D))),
        num_warps=attend_warps, num_stages=attend_stages, **launch,
    )
    return out
