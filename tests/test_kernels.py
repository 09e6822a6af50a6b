"""The Triton kernels equal the methods' PyTorch references, run on the CPU by Triton's interpreter.

Fresh random inputs on every run (the seed is in each failure message); ragged lengths, GQA ratios 1, 4
and 7, head_dim 64 and 128, fp16/fp32 (the interpreter's bf16 dot is not exact). The GPU check in bf16
is `bench/gpu_check.py`.
"""

from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "1")  # before any kernel module is imported

import pytest
import torch

from sftasks import kernels
from sftasks.errors import InputError
from sftasks.kernels._checks import tma_rows
from sftasks.kernels.quest import QuestSummaries
from sftasks.methods.base import KVCache
from sftasks.methods.block_sparse import block_sparse_attention as ref_block_sparse
from sftasks.methods.quest import quest_decode as ref_quest
from sftasks.methods.vertical_slash import diagonal_mass, last_query_probs
from sftasks.methods.vertical_slash import estimate_vertical_slash as ref_estimate
from sftasks.methods.vertical_slash import vertical_slash_attention as ref_vertical_slash


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(int.from_bytes(os.urandom(4), "little"))


def randn(gen, *shape, dtype=torch.float16):
    return torch.randn(*shape, generator=gen).to(dtype)


def qkv(gen, T, Hq, Hkv, D, dtype):
    return randn(gen, T, Hq, D, dtype=dtype), randn(gen, T, Hkv, D, dtype=dtype), randn(gen, T, Hkv, D, dtype=dtype)


def assert_close(out, ref, gen, atol):
    assert out.shape == ref.shape and out.dtype == ref.dtype
    assert not torch.isnan(out).any(), f"NaN in output (seed {gen.initial_seed()})"
    err = (out.float() - ref.float()).abs().max().item()
    assert err <= atol, f"max abs error {err:.2e} > {atol} (seed {gen.initial_seed()})"


def tol(dtype):
    return 2e-3 if dtype == torch.float16 else 1e-5


@pytest.mark.parametrize(
    "T, Hq, Hkv, D, block_size, dtype, options",
    [
        (77, 4, 4, 64, 16, torch.float16, {}),  # GQA 1, ragged last block
        (130, 8, 2, 128, 32, torch.float32, {}),  # GQA 4
        (100, 7, 1, 64, 100, torch.float16, {}),  # GQA 7, block size not a power of two
        (150, 7, 1, 128, 32, torch.float16, {"tma": True, "kv_major": False}),  # TMA loads, 2-D grid
        (600, 4, 2, 64, 256, torch.float16, {"tma": True, "block_n": 64}),  # TMA: a diagonal of 4 tiles, ragged end
        (600, 4, 2, 64, 256, torch.float16, {}),  # blocks cut into 128-row query tiles and 128-key tiles
        (450, 2, 1, 64, 200, torch.float32, {"kv_major": False}),  # the same, blocks not a multiple of 128
        (300, 2, 1, 256, 128, torch.float16, {}),  # head_dim 256: 64-key tiles, two per block
    ],
)
def test_block_sparse_equals_reference(gen, T, Hq, Hkv, D, block_size, dtype, options):
    q, k, v = qkv(gen, T, Hq, Hkv, D, dtype)
    nb = -(-T // block_size)
    # -1 padding, duplicates, ids above the query block, and some rows listing nothing causal
    idx = torch.randint(-1, nb, (Hq, nb, 4), generator=gen)
    idx[..., 0] = torch.where(torch.rand(Hq, nb, generator=gen) < 0.7, torch.arange(nb), -1)
    idx[..., 1] = idx[..., 2]
    out = kernels.block_sparse_attention(q, k, v, idx, block_size, **options)
    assert_close(out, ref_block_sparse(q, k, v, idx, block_size), gen, tol(dtype))


def slash_pattern(gen, T, Hq, block):
    """Offsets with padding (-1), out-of-range ids and duplicates, in the shapes the kernel treats apart: a
    local band wide enough for unmasked tiles, a run of consecutive offsets, offsets close enough to merge
    into a span with holes, one just past the band (a narrow span beside a wide one), scattered ones."""
    band = torch.arange(3 * block + 5).expand(Hq, -1)
    start = torch.randint(0, T, (Hq, 1), generator=gen)
    run = start + torch.arange(block // 2 + 3)
    gaps = torch.arange(0, 6 * block, 5)[torch.randperm(6 * block // 5, generator=gen)[:block]].sort().values
    holes = torch.randint(0, T, (Hq, 1), generator=gen) + gaps
    near = torch.full((Hq, 1), 3 * block + 7)
    scattered = torch.randint(-2, T + 3, (Hq, 7), generator=gen)
    slash = torch.cat([band, run, holes, near, scattered, scattered[:, :2]], 1)
    return slash[:, torch.randperm(slash.shape[1], generator=gen)]  # any order


@pytest.mark.parametrize(
    "T, Hq, Hkv, D, block, dtype, options",
    [
        (77, 4, 4, 64, 16, torch.float16, {"block_n": 16}),
        (200, 8, 2, 128, 32, torch.float32, {"block_n": 16}),
        (200, 8, 2, 64, 32, torch.float16, {"block_n": 16, "lists_by_torch": True}),
        (400, 7, 1, 64, 16, torch.float16, {}),  # whole tiles of old columns, unmasked
        (150, 2, 1, 256, 64, torch.float16, {}),  # head_dim 256: its largest tile
        (300, 4, 1, 64, 64, torch.float16, {"block_n": 32, "tma": True}),  # unmasked tiles read by TMA
        (1600, 2, 1, 64, 128, torch.float16, {"block_n": 64, "tma": True}),  # the H100 tile
    ],
)
def test_vertical_slash_equals_reference(gen, T, Hq, Hkv, D, block, dtype, options, monkeypatch):
    if options.pop("lists_by_torch", False):  # the lists of rows too long for the one-program build
        from sftasks.kernels import vertical_slash

        monkeypatch.setattr(vertical_slash, "MAX_ROW", 0)
    q, k, v = qkv(gen, T, Hq, Hkv, D, dtype)
    # some inside the band and on other slashes; enough for whole tiles of old columns (unmasked)
    vertical = torch.randint(-2, T + 3, (Hq, max(9, T // 6)), generator=gen)
    vertical[:, 1] = vertical[:, 0]
    slash = slash_pattern(gen, T, Hq, block)
    out = kernels.vertical_slash_attention(q, k, v, vertical, slash, block=block, **options)
    assert_close(out, ref_vertical_slash(q, k, v, vertical, slash), gen, tol(dtype))


@pytest.mark.parametrize("by_kernel", [True, False])
def test_work_lists_cover_each_offset_once(gen, by_kernel):
    """The kernel's work lists, built by one Triton program or (rows too long for it) by torch ops: spans
    that hold every slash offset in [0, T) exactly once (a pair is counted by one span), sorted, with holes
    and wide runs flagged; wide runs are hole-free spans with an unmasked tile, their offsets marked 2 in the
    slash bitmap; columns sorted, unique and in their bitmap; per query block, the columns read unmasked are
    whole tiles with no pair on a wide run, and the columns not read have all their pairs on the band."""
    from sftasks.kernels.vertical_slash import build_work_lists

    T, Hq, block, block_n = 3000, 3, 128, 64
    for _ in range(2):
        slash = slash_pattern(gen, T, Hq, block)
        vertical = torch.randint(-2, T + 3, (Hq, 400), generator=gen)
        vertical[:, 1] = vertical[:, 0]
        lists = build_work_lists(vertical, slash, T, block, block_n, by_kernel=by_kernel)
        for h in range(Hq):
            want = sorted({int(o) for o in slash[h] if 0 <= o < T})
            assert lists["slash"][h].nonzero().flatten().tolist() == want
            assert set(lists["slash"][h].tolist()) == {0, 1, 2}
            used = lists["lo"][h] < 2 * T
            lo, hi, kind = (lists[name][h][used].tolist() for name in ("lo", "hi", "kind"))
            assert (lists["lo"][h][~used] == 2 * T).all() and not used[int(used.sum()):].any()
            assert lo == sorted(lo) and all(a <= b for a, b in zip(lo, hi)), f"seed {gen.initial_seed()}"
            assert all(b < c for b, c in zip(hi, lo[1:])), f"spans overlap (seed {gen.initial_seed()})"
            inside = [[o for o in want if a <= o <= b] for a, b in zip(lo, hi)]
            assert sum(inside, []) == want, f"seed {gen.initial_seed()}"
            assert [len(x) != b - a + 1 for x, a, b in zip(inside, lo, hi)] == [x == 1 for x in kind]  # holes
            wide = [(a, b) for a, b, x in zip(lo, hi, kind) if x != 1 and (b - a + 1) // block_n > 2]
            assert [(a, b) for a, b, x in zip(lo, hi, kind) if x == 2] == wide
            n = int(lists["wide_count"][h])
            assert list(zip(lists["wide_lo"][h][:n].tolist(), lists["wide_hi"][h][:n].tolist())) == wide
            assert wide[0][0] == 0 and wide[0][1] >= 3 * block + 4, f"the band (seed {gen.initial_seed()})"
            on_wide = {o for a, b in wide for o in range(a, b + 1)}
            assert (lists["slash"][h] == 2).nonzero().flatten().tolist() == sorted(on_wide)
            cols = sorted({int(c) for c in vertical[h] if 0 <= c < T})
            assert lists["cols"][h].tolist() == cols + [T] * (lists["cols"].shape[1] - len(cols))
            assert lists["col_bits"][h].nonzero().flatten().tolist() == cols
            wide_offsets = torch.tensor(sorted(on_wide))
            for b, (clean, count) in enumerate(zip(lists["col_clean"][h].tolist(), lists["col_count"][h].tolist())):
                rows = torch.arange(b * block, min(b * block + block, T))[:, None]
                assert clean % block_n == 0 and clean <= count <= len(cols)
                unmasked = rows - torch.tensor(cols[:clean], dtype=torch.long)  # every pair kept, none on a wide run
                assert (unmasked >= 0).all() and not torch.isin(unmasked, wide_offsets).any()
                not_read = rows - torch.tensor(cols[count:], dtype=torch.long)  # no pair but the band's
                assert ((not_read < 0) | (not_read <= wide[0][1])).all()
                # fewer than a tile of the columns that could run unmasked are left to the masked loop
                assert clean + block_n > sum(c < b * block - max(on_wide) for c in cols)
        assert int(lists["col_clean"].sum()) > 0


@pytest.mark.parametrize("T, block, block_n", [(3000, 128, 64), (1000, 32, 16), (70, 16, 16)])
def test_work_lists_of_both_builders_agree(gen, T, block, block_n):
    """The one-program build (values sorted by their ranks in bit words, per-block counts by running maxima)
    gives the torch build's lists, the per-block counts included; it may stop col_count at the real columns, where torch's
    searchsorted also counts the padding (T, above every row) for the last block of a ragged T."""
    from sftasks.kernels.vertical_slash import build_work_lists

    Hq = 3
    wide = ((block - 1 + block_n - 1) // block_n + 1) * block_n  # the fewest offsets of a run with an unmasked tile
    starts = torch.randint(0, T - wide, (Hq, 2), generator=gen)
    edge_runs = [starts[:, :1] + torch.arange(wide - 1), starts[:, 1:] + torch.arange(wide),
                 torch.arange(T - wide, T).expand(Hq, -1)]  # one short of wide, just wide, wide up to T - 1
    slash = torch.cat([slash_pattern(gen, T, Hq, block), *edge_runs], 1)
    vertical = torch.randint(-2, T + 3, (Hq, 300), generator=gen)
    vertical[:, 1] = vertical[:, 0]
    by_kernel, by_torch = (build_work_lists(vertical, slash, T, block, block_n, by_kernel=b) for b in (True, False))
    real_cols = (by_torch["cols"] < T).sum(1, keepdim=True)
    by_torch["col_count"] = torch.minimum(by_torch["col_count"], real_cols.int())
    padding = {"lo": 2 * T, "hi": 2 * T, "kind": 0, "cols": T}  # the kernel's rows are longer (a power of two)
    for name, want in by_torch.items():
        got = by_kernel[name][:, : want.shape[1]] if want.dim() == 2 else by_kernel[name]
        if name in padding:
            assert (by_kernel[name][:, want.shape[1]:] == padding[name]).all(), name
        if name in ("wide_lo", "wide_hi"):  # only the first wide_count slots are used
            used = torch.arange(want.shape[1]) < by_torch["wide_count"][:, None]
            got, want = got[used], want[used]
        assert torch.equal(got.long(), want.long()), f"{name} (seed {gen.initial_seed()})"


@pytest.mark.parametrize("T, Hq, Hkv, D, last_q", [(77, 4, 4, 64, 20), (200, 8, 2, 128, 64), (150, 7, 1, 64, 150)])
def test_last_query_scores_and_estimate_equal_reference(gen, T, Hq, Hkv, D, last_q):
    q, k, _ = qkv(gen, T, Hq, Hkv, D, torch.float16)
    cols, diags = kernels.last_query_scores(q, k, last_q, block=16, rows=16)
    probs = last_query_probs(q, k, last_q)
    assert torch.allclose(cols, probs.sum(1), atol=1e-5), f"seed {gen.initial_seed()}"
    assert torch.allclose(diags, diagonal_mass(probs), atol=1e-5), f"seed {gen.initial_seed()}"
    got = kernels.estimate_vertical_slash(q, k, last_q, 10, 70, block=16, rows=16)
    want = ref_estimate(q, k, last_q, 10, 70)
    for g, w in zip(got, want):
        assert torch.equal(g.sort(-1).values, w.sort(-1).values), f"seed {gen.initial_seed()}"


def test_head_major_layouts_as_transformers_passes_them(gen):
    """q/k/v as views of [H, T, D] tensors (what the transformers adapter hands over) give the same result."""
    T, Hq, Hkv, D = 70, 4, 2, 64
    q, k, v = (randn(gen, h, T, D).transpose(0, 1) for h in (Hq, Hkv, Hkv))
    idx = torch.randint(-1, 5, (Hq, 5, 3), generator=gen)
    assert_close(kernels.block_sparse_attention(q, k, v, idx, 16), ref_block_sparse(q, k, v, idx, 16), gen, 2e-3)
    vertical, slash = torch.randint(0, T, (Hq, 5), generator=gen), torch.arange(20).expand(Hq, -1)
    out = kernels.vertical_slash_attention(q, k, v, vertical, slash, block=16)
    assert_close(out, ref_vertical_slash(q, k, v, vertical, slash), gen, 2e-3)


def test_tma_reads_only_kv_with_heads_packed_in_rows():
    """On an H100 the block-sparse kernel reads K/V through TMA as T rows of Hkv * D elements by default.
    A layout that is not that (transformers' head-major views, unaligned rows) must go through pointers:
    a TMA read there would fetch the wrong elements."""
    rows = torch.empty(70, 2, 64, dtype=torch.bfloat16)
    assert tma_rows(rows)
    assert tma_rows(torch.empty(70, 3, 64, dtype=torch.bfloat16)[:, :2])  # wider rows, still aligned
    assert not tma_rows(torch.empty(2, 70, 64, dtype=torch.bfloat16).transpose(0, 1))
    assert not tma_rows(torch.empty(70, 2, 68, dtype=torch.bfloat16)[..., :64])  # heads not packed
    assert not tma_rows(torch.empty(70 * 130, dtype=torch.bfloat16).as_strided((70, 2, 64), (130, 64, 1)))
    assert not tma_rows(torch.empty(70 * 128 + 1, dtype=torch.bfloat16)[1:].view(70, 2, 64))  # start


def paged_cache(gen, lens, Hkv, D, cache_page, dtype):
    """A ragged batch scattered over shuffled physical pages (plus unused ones holding noise)."""
    pages = [-(-n // cache_page) for n in lens]
    total = sum(pages) + 3
    perm = torch.randperm(total, generator=gen)
    table = torch.zeros(len(lens), max(pages), dtype=torch.int64)
    start = 0
    for b, p in enumerate(pages):
        table[b, :p] = perm[start : start + p]
        start += p
    kp = randn(gen, total, cache_page, Hkv, D, dtype=dtype)
    return KVCache(kp, randn(gen, total, cache_page, Hkv, D, dtype=dtype), table, torch.tensor(lens))


@pytest.mark.parametrize(
    "Hq, Hkv, D, page, cache_page, budget, share",
    [
        (4, 1, 64, 16, 16, 64, True),  # GQA 4
        (7, 1, 128, 8, 16, 32, False),  # GQA 7, per-head pages, Quest page smaller than the cache's
        (8, 8, 64, 16, 4, 48, True),  # GQA 1, Quest page larger than the cache's
        (4, 2, 64, 24, 16, 96, True),  # a Quest page of 24 tokens: not a power of two, across cache pages
    ],
)
def test_quest_equals_reference_across_steps(gen, Hq, Hkv, D, page, cache_page, budget, share):
    lens = [100, 37, 190]  # one sequence within the budget, two beyond it
    cache = paged_cache(gen, [n + 20 for n in lens], Hkv, D, cache_page, torch.float16)
    max_pages = -(-(cache.page_table.shape[1] * cache_page) // page)
    summaries = QuestSummaries.empty(len(lens), max_pages, Hkv, D, torch.float16, "cpu")
    for step in (0, 1, 20):  # summaries persist and are updated in place as pages fill up
        cache.seq_lens = torch.tensor(lens) + step
        q = randn(gen, len(lens), Hq, D)
        out = kernels.quest_decode(q, cache, budget, page, share, summaries=summaries)
        assert_close(out, ref_quest(q, cache, budget, page, share), gen, 2e-3)
        # fresh summaries, the one-threshold search (the default is two a round) and four programs a row
        # listing a quarter each pick the same pages, listed in the same order
        assert_close(kernels.quest_decode(q, cache, budget, page, share, select_paired=False, select_chunks=4), out, gen, 0.0)
        # a split's pages in one wide tile, or three pages a split (the newest page shares a split's tile)
        for options in ({"attend_keys": 128}, {"attend_keys": 16, "pages_per_split": 3}):
            assert_close(kernels.quest_decode(q, cache, budget, page, share, **options), out, gen, 2e-3)


@pytest.mark.parametrize("sms", [4, 1000])
def test_quest_merges_more_splits_than_one_load_holds(gen, monkeypatch, sms):
    """One page per split: 47 splits of a GQA group of 7 at head_dim 128 take three merge loads of 16, or two
    of 32 on a GPU that runs the whole launch at once, and the short sequence leaves most of its splits
    empty (no key: max -inf, sum 0), which must weigh nothing."""
    from sftasks.kernels import quest

    monkeypatch.setattr(quest, "_sm_count", lambda device: sms)
    lens = [1000, 900, 40]
    cache = paged_cache(gen, lens, 1, 128, 16, torch.float16)
    q = randn(gen, len(lens), 7, 128)
    out = kernels.quest_decode(q, cache, 768, 16, True, splits=47)
    assert_close(out, ref_quest(q, cache, 768, 16, True), gen, 2e-3)


def test_quest_lists_rows_too_long_for_registers_with_topk(gen, monkeypatch):
    """Rows longer than the selection kernel holds in registers are listed by torch.topk instead."""
    from sftasks.kernels import quest

    monkeypatch.setattr(quest, "SELECT_MAX_PAGES", 8)
    cache = paged_cache(gen, [300, 37], 2, 64, 16, torch.float16)
    q = randn(gen, 2, 4, 64)
    assert_close(kernels.quest_decode(q, cache, 64, 16, True), ref_quest(q, cache, 64, 16, True), gen, 2e-3)


def test_quest_reads_interleaved_pages_as_vllm_lays_them_out(gen):
    """vLLM's flash cache keeps a token's key and value side by side ([pages, page, Hkv, 2D]), so k_pages
    and v_pages are strided views: the kernel must read them in place, as it reads contiguous pages."""
    cache = paged_cache(gen, [150, 90], 2, 64, 16, torch.float16)
    both = torch.cat([cache.k_pages, cache.v_pages], dim=-1)  # one buffer, K|V per token and head
    k_view, v_view = both.split(64, dim=-1)
    assert not k_view.is_contiguous()
    strided = KVCache(k_view, v_view, cache.page_table, cache.seq_lens)
    q = randn(gen, 2, 8, 64)
    out = kernels.quest_decode(q, strided, 64, 16, True)
    assert_close(out, ref_quest(q, cache, 64, 16, True), gen, 2e-3)


@pytest.mark.parametrize("page, cache_page", [(16, 16), (8, 16)])
def test_quest_summaries_per_cache_page_follow_writes_and_reused_pages(gen, page, cache_page):
    """A serving engine's batch changes every step while cache pages keep their contents until written.
    Summaries keyed by cache page stay right across steps as long as the written pages are forgotten:
    a sequence that grows, then a new sequence on the freed pages of the old one (the stale summaries
    would pick other pages: checked, so that the test can fail)."""
    Hq, Hkv, D, budget = 4, 2, 64, 4 * page
    cache = paged_cache(gen, [17 * cache_page, 17 * cache_page], Hkv, D, cache_page, torch.float16)
    store = QuestSummaries.for_cache(cache.k_pages, page)
    row0 = cache.page_table[0:1]
    for n in (16 * cache_page - 5, 16 * cache_page + 1, 16 * cache_page + 3):  # sequence 0 grows, writing its newest page
        step = KVCache(cache.k_pages, cache.v_pages, row0, torch.tensor([n]))
        store.forget(row0[0, (n - 1) // cache_page])
        q = randn(gen, 1, Hq, D)
        out = kernels.quest_decode(q, step, budget, page, True, summaries=store)
        assert_close(out, ref_quest(q, step, budget, page, True), gen, 2e-3)
    # sequence 0 leaves; a new sequence gets its (summarised) pages in another order, and the engine writes its prompt
    n = 16 * cache_page
    used = row0[0, :16]
    new_row = used[torch.randperm(len(used), generator=gen)].unsqueeze(0)
    cache.k_pages[used] = randn(gen, len(used), cache_page, Hkv, D) * 3
    step = KVCache(cache.k_pages, cache.v_pages, new_row, torch.tensor([n]))
    q = randn(gen, 1, Hq, D)
    ref = ref_quest(q, step, budget, page, True)
    stale = kernels.quest_decode(q, step, budget, page, True, summaries=QuestSummaries(
        store.lo.clone(), store.hi.clone(), store.ready.clone(), by_cache_page=True))
    assert (stale.float() - ref.float()).abs().max() > 1e-2  # without forgetting, the old summaries mislead
    store.forget(new_row)
    assert_close(kernels.quest_decode(q, step, budget, page, True, summaries=store), ref, gen, 2e-3)


def test_quest_method_keeps_summaries_over_an_engines_cache(gen, monkeypatch):
    """Through the method hook on a persistent (engine) cache, Quest keeps one summary store per layer
    across steps, and the engine's write reports keep it right: equal to the reference at every step."""
    from sftasks.methods import quest as quest_method

    monkeypatch.setattr(quest_method, "dispatch", lambda name, ref, tensor: getattr(kernels, name))
    method = quest_method.Quest(token_budget=64, page_size=16)
    cache = paged_cache(gen, [300, 300], 2, 64, 16, torch.float16)
    stores = []
    for n in (200, 201, 217):
        step = KVCache(cache.k_pages, cache.v_pages, cache.page_table, torch.tensor([n, n - 50]), persistent=True)
        method.forget_cache_pages(cache.page_table[:, (n - 1) // 16])  # what the adapter reports: the newest pages
        method.forget_cache_pages(cache.page_table[:, (n - 51) // 16])
        q = randn(gen, 2, 8, 64)
        assert_close(method.decode(q, step, layer=3), ref_quest(q, step, 64, 16, True), gen, 2e-3)
        stores.append(method._stores[3])
    assert stores[0] is stores[-1] and stores[0].by_cache_page and stores[0].ready.any()
    method.forget_cache_pages(None)
    assert not stores[0].ready.any()


def test_quest_reads_transformers_cache_in_place_as_it_grows_and_moves(gen):
    """transformers keeps k/v as [B, Hkv, S, D] and reallocates them every step (torch.cat). The kernel
    reads them in place as one page per sequence, and per-sequence summaries survive the moves (the
    sequences only grow), growing with them; each step equals the reference."""
    B, Hq, Hkv, D, page, budget = 2, 8, 2, 64, 16, 64
    k, v = randn(gen, B, Hkv, 150, D), randn(gen, B, Hkv, 150, D)
    store = QuestSummaries.empty(B, 4, Hkv, D, torch.float16, "cpu")  # too small at first: grown below
    for step in range(3):
        k = torch.cat([k, randn(gen, B, Hkv, 9, D)], dim=2)  # a fresh buffer, as transformers' cache does
        v = torch.cat([v, randn(gen, B, Hkv, 9, D)], dim=2)
        cache = KVCache.from_batch(k.transpose(1, 2), v.transpose(1, 2))
        store = store.with_room(-(-k.shape[2] // page))
        q = randn(gen, B, Hq, D)
        out = kernels.quest_decode(q, cache, budget, page, True, summaries=store)
        assert_close(out, ref_quest(q, cache, budget, page, True), gen, 2e-3)
    assert store.lo.shape[1] >= -(-k.shape[2] // page) and store.ready[:, : k.shape[2] // page].all()
    # the per-sequence rows of a store are views: summarising through one updates the store
    store.reset(1)
    one = cache.row(1)
    assert_close(kernels.quest_decode(q[1:], one, budget, page, True, summaries=store.row(1)),
                 ref_quest(q[1:], one, budget, page, True), gen, 2e-3)
    assert store.ready[1, : k.shape[2] // page].all()


def test_quest_method_keeps_summaries_per_sequence_over_a_growing_cache(gen, monkeypatch):
    """Through the method hook on an `appended` cache (the transformers adapter's), Quest keeps and grows
    one per-sequence store per layer; forget_cache_pages(None) (a new prompt) empties it."""
    from sftasks.methods import quest as quest_method

    monkeypatch.setattr(quest_method, "dispatch", lambda name, ref, tensor: getattr(kernels, name))
    for sparsity in (None, 0.5):  # one budget for the batch, or one per sequence (sparsity mode)
        method = quest_method.Quest(token_budget=48, page_size=16, sparsity=sparsity)
        kb, vb = randn(gen, 2, 0, 2, 64), randn(gen, 2, 0, 2, 64)
        for n in (200, 201, 400):  # the sequences grow (into new buffers)
            kb = torch.cat([kb, randn(gen, 2, n - kb.shape[1], 2, 64)], dim=1)
            vb = torch.cat([vb, randn(gen, 2, n - vb.shape[1], 2, 64)], dim=1)
            cache = KVCache.from_batch(kb, vb)
            cache.appended = True
            q = randn(gen, 2, 8, 64)
            want = torch.cat([ref_quest(q[b : b + 1], KVCache.from_dense(kb[b], vb[b]), method.budget(n), 16, True)
                              for b in range(2)])
            assert_close(method.decode(q, cache, layer=1), want, gen, 2e-3)
            store = method._stores[1]
            assert not store.by_cache_page and store.lo.shape[1] >= -(-n // 16) and store.ready.any()
        method.forget_cache_pages(None)
        assert not store.ready.any()


def test_quest_kernel_inside_transformers_generation(gen, monkeypatch):
    """The transformers adapter hands Quest's kernel its cache in place and Quest keeps page summaries
    across decode steps: every decode call of a generation equals the reference on the same inputs,
    for two prompts in a row (the second must not see the first one's summaries)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from sftasks.methods import quest as quest_method
    from sftasks.methods.hf import attach

    errors = []

    def checked_kernel(q, cache, budget, page, share, **options):
        out = kernels.quest_decode(q, cache, budget, page, share, **options)
        errors.append((out - ref_quest(q, cache, budget, page, share)).abs().max().item())
        return out

    monkeypatch.setattr(quest_method, "dispatch", lambda name, ref, tensor: checked_kernel)
    torch.manual_seed(gen.initial_seed())
    config = Qwen2Config(vocab_size=64, hidden_size=256, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, initializer_range=0.2)  # head_dim 64, sharp attention
    model = Qwen2ForCausalLM(config).eval()
    method = quest_method.Quest(token_budget=32, page_size=8)
    attach(model, method)
    for n in (300, 330):  # past the kernel's first run of 32 pages, which stays summarised
        ids = torch.randint(0, 64, (1, n), generator=gen)
        model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=5, do_sample=False, pad_token_id=0)
    assert len(errors) == 2 * 4 * 2 and max(errors) < 1e-4, f"{errors} (seed {gen.initial_seed()})"
    full = (330 + 4 - 1) // 8  # pages before the newest at the last step
    assert sorted(method._stores) == [0, 1] and all(s.ready[0, :full].all() for s in method._stores.values())


def test_summaries_per_cache_page_need_quest_pages_that_tile_cache_pages():
    with pytest.raises(InputError, match="divide"):
        QuestSummaries.for_cache(torch.zeros(4, 16, 2, 64, dtype=torch.float16), 32)


# the selection's threshold searches: one point a round; two, the interpolated point and the bracket's middle,
# after a first pair from the row's mean and sd; two aimed at counts k -+ 2% of the bracket's (the default)
SEARCHES = {"one point": dict(PAIRED=False), "two points": dict(PAIRED=True, SPREAD=0.0, WIDTH=0.1),
            "aimed pairs": dict(PAIRED=True)}


@pytest.mark.parametrize("chunks", [1, 4])
@pytest.mark.parametrize("search", SEARCHES)
@pytest.mark.parametrize("k", [1, 17, 250])
def test_page_selection_is_exact_top_k_with_ties(gen, k, search, chunks):
    """Quest's selection kernel returns k distinct pages in page order, none scoring below the k-th largest,
    also when many bounds tie (small integers) and absent pages score -inf; with each search, one program a
    row or four listing a quarter each (ties cross the quarters)."""
    from sftasks.kernels.quest import _select_pages

    bounds = torch.randint(0, 5, (2, 3, 300), generator=gen).float()
    bounds[0, 0] = torch.randn(300, generator=gen)
    bounds[..., 260:] = float("-inf")
    seq_lens = torch.full((2,), 260 * 16 + 1, dtype=torch.int32)  # 260 full pages before the newest
    chosen = torch.full((2, 3, k), -1, dtype=torch.int32)
    _select_pages[(2, 3, chunks)](bounds, chosen, seq_lens, 300, k, bounds.stride(0), bounds.stride(1), chosen.stride(0),
                                  chosen.stride(1), N=512, CHUNK=512 // chunks, PAGE=16, **SEARCHES[search])
    for row, sel in zip(bounds.flatten(0, 1), chosen.flatten(0, 1).long()):
        assert (sel >= 0).all() and (sel.diff() > 0).all(), f"seed {gen.initial_seed()}"
        assert (row[sel] >= row.topk(k).values[-1]).all(), f"seed {gen.initial_seed()}"


@pytest.mark.parametrize("search", SEARCHES)
@pytest.mark.parametrize("shape", ["normal", "heavy tail", "two clusters"])
def test_page_selection_on_a_long_row_equals_topk(gen, search, shape):
    """At the size of a 128k cache (thousands of pages, distinct bounds) the chosen set is torch.topk's,
    also where the first guess from the row's mean and sd (a normal quantile) lands far off."""
    from sftasks.kernels.quest import _select_pages

    bounds = torch.randn(1, 2, 6000, generator=gen) * 50 + 1200  # positive, clustered, like Quest bounds
    if shape == "heavy tail":
        bounds = bounds + 1e4 * torch.randn(1, 2, 6000, generator=gen).pow(5).clamp(-1e3, 1e3)
    elif shape == "two clusters":
        bounds[..., ::40] += 1e6  # 150 far outliers: the k-th bound lies between the clusters' tails
    seq_lens = torch.full((1,), 6000 * 16 + 1, dtype=torch.int32)
    chosen = torch.empty(1, 2, 255, dtype=torch.int32)
    _select_pages[(1, 2, 4)](bounds, chosen, seq_lens, 6000, 255, bounds.stride(0), bounds.stride(1), chosen.stride(0),
                             chosen.stride(1), N=8192, CHUNK=2048, PAGE=16, **SEARCHES[search])
    for row, sel in zip(bounds[0], chosen[0].long()):
        assert torch.equal(sel, row.topk(255).indices.sort().values), f"seed {gen.initial_seed()}"


def test_bad_shapes_raise_input_error():
    q, k = torch.zeros(10, 4, 64, dtype=torch.float16), torch.zeros(10, 3, 64, dtype=torch.float16)
    with pytest.raises(InputError, match="Hq a multiple of Hkv"):
        kernels.block_sparse_attention(q, k, k, torch.zeros(4, 1, 1, dtype=torch.long), 16)
    k = torch.zeros(10, 2, 64, dtype=torch.float16)
    with pytest.raises(InputError, match="block_index"):
        kernels.block_sparse_attention(q, k, k, torch.zeros(4, 2, 1, dtype=torch.long), 16)
    with pytest.raises(InputError, match="vertical_idx"):
        kernels.vertical_slash_attention(q, k, k, torch.zeros(3, 1, dtype=torch.long), torch.zeros(4, 1, dtype=torch.long))
    with pytest.raises(InputError, match="head_dim"):
        kernels.block_sparse_attention(q[..., :48], k[..., :48], k[..., :48], torch.zeros(4, 1, 1, dtype=torch.long), 16)
    none = torch.zeros(4, 1, dtype=torch.long)
    with pytest.raises(InputError, match="from 16 to 128"):  # a 256 tile overflows an H100's shared memory
        kernels.vertical_slash_attention(q, k, k, none, none, block=256)
    q256, k256 = torch.zeros(10, 4, 256, dtype=torch.float16), torch.zeros(10, 2, 256, dtype=torch.float16)
    with pytest.raises(InputError, match="from 16 to 64 at head_dim 256"):
        kernels.vertical_slash_attention(q256, k256, k256, none, none, block=128)
    cache = KVCache.from_dense(k, k)
    for chunks in (3, 0):  # the selection's chunks must tile its (power-of-two) row
        with pytest.raises(InputError, match="select_chunks"):
            kernels.quest_decode(q[:1], cache, 32, 16, select_chunks=chunks)
    for keys in (48, 8):
        with pytest.raises(InputError, match="attend_keys"):
            kernels.quest_decode(q[:1], cache, 32, 16, attend_keys=keys)
    with pytest.raises(InputError, match="attend_stages"):
        kernels.quest_decode(q[:1], cache, 32, 16, attend_stages=0)


def test_available_needs_cuda():
    assert kernels.available() == torch.cuda.is_available()
