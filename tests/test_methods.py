"""Methods: each equals dense attention when its budget covers everything, and reports sparsity that
matches a count taken from an explicit mask or kept set built independently here."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from sftasks.errors import InputError
from sftasks.methods import registry
from sftasks.methods.base import KVCache, Method, SparsityStats
from sftasks.methods.block_sparse import block_sparse_attention, build_block_index
from sftasks.methods.flexprefill import flexprefill_pattern
from sftasks.methods.quest import page_summaries, quest_decode, quest_pages
from sftasks.methods.registry import get_method, method_names, register_method
from sftasks.methods.vertical_slash import estimate_vertical_slash, vertical_slash_attention

PREFILL_FULL = {
    "block_sparse": dict(chunk_size=16, top_chunks=1000),
    "vertical_slash": dict(vertical_size=4096, slash_size=4096, approximation_size=64),
    "flexprefill": dict(min_budget=4096, approximation_size=64),
}
PREFILL_SPARSE = {
    "block_sparse": dict(chunk_size=8, top_chunks=3),
    "vertical_slash": dict(vertical_size=6, slash_size=64, approximation_size=16),
    "flexprefill": dict(min_budget=5, alpha=0.3, approximation_size=16),
}


def qkv(T, Hq, Hkv, D=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(T, h, D, generator=g) for h in (Hq, Hkv, Hkv))


def naive_attention(q, k, v, mask):
    """Independent ground truth: per head, per query, a plain softmax over the allowed keys (float64)."""
    T, Hq, D = q.shape
    group = Hq // k.shape[1]
    out = torch.zeros(T, Hq, D, dtype=torch.float64)
    for h in range(Hq):
        scores = q[:, h].double() @ k[:, h // group].double().T / D**0.5
        scores = scores.masked_fill(~mask[h], float("-inf"))
        out[:, h] = torch.softmax(scores, -1).nan_to_num(0.0) @ v[:, h // group].double()
    return out


def causal(T):
    return torch.tril(torch.ones(T, T, dtype=torch.bool))


@pytest.mark.parametrize("name", sorted(PREFILL_FULL))
@pytest.mark.parametrize("T,Hq,Hkv", [(1, 4, 2), (7, 6, 2), (45, 4, 4), (133, 6, 2)])
def test_prefill_with_full_budget_equals_dense(name, T, Hq, Hkv):
    q, k, v = qkv(T, Hq, Hkv, seed=T)
    method = get_method(name, **PREFILL_FULL[name])
    out = method.prefill(q, k, v, layer=0)
    dense = naive_attention(q, k, v, causal(T).expand(Hq, T, T))
    assert (out.double() - dense).abs().max() < 1e-5
    assert method.stats.summary()["prefill"]["overall"] == pytest.approx(0.0)


def explicit_mask(name, q, k, params):
    """The pattern the method picks, rebuilt here loop by loop from its index output."""
    T, Hq = q.shape[:2]
    mask = torch.zeros(Hq, T, T, dtype=torch.bool)
    if name == "block_sparse":
        bs = params["chunk_size"]
        index = build_block_index(q, k, bs, params["top_chunks"])
        for h in range(Hq):
            for qb in range(index.shape[1]):
                for kb in index[h, qb].tolist():
                    if 0 <= kb <= qb:
                        mask[h, qb * bs : (qb + 1) * bs, kb * bs : (kb + 1) * bs] = True
        return mask & causal(T)
    if name == "vertical_slash":
        cols, offs = estimate_vertical_slash(q, k, params["approximation_size"], params["vertical_size"], params["slash_size"])
    else:
        cols, offs = flexprefill_pattern(q, k, params["alpha"], params["approximation_size"], params["min_budget"])
    return vertical_slash_mask(cols, offs, T)


def vertical_slash_mask(cols: torch.Tensor, offs: torch.Tensor, T: int) -> torch.Tensor:
    """[H, T, T] causal mask of columns `cols` and diagonals `offs` (-1 = padding), built by plain loops."""
    mask = torch.zeros(cols.shape[0], T, T, dtype=torch.bool)
    for h in range(cols.shape[0]):
        for j in cols[h].tolist():
            if j >= 0:
                mask[h, :, j] = True
        for o in offs[h].tolist():
            for i in range(o, T) if o >= 0 else ():
                mask[h, i, i - o] = True
    return mask & causal(T)


@pytest.mark.parametrize("name", sorted(PREFILL_SPARSE))
def test_sparse_prefill_computes_only_its_pattern_and_counts_it(name):
    T, Hq, Hkv = 150, 4, 2
    q, k, v = qkv(T, Hq, Hkv, seed=3)
    params = PREFILL_SPARSE[name]
    method = get_method(name, **params)
    out = method.prefill(q, k, v, layer=2)
    mask = explicit_mask(name, q, k, dataclasses.asdict(method.config))
    assert (out.double() - naive_attention(q, k, v, mask)).abs().max() < 1e-5
    assert (out.double() - naive_attention(q, k, v, causal(T).expand(Hq, T, T))).abs().max() > 1e-2
    summary = method.stats.summary()["prefill"]
    expected = 1 - mask.sum((1, 2)).double() / (T * (T + 1) / 2)
    assert summary["per_head"][2] == pytest.approx(expected.tolist())
    assert summary["per_layer"][2] == pytest.approx(float(expected.mean()))
    assert 0.2 < summary["overall"] < 1


def test_block_sparse_always_keeps_first_and_diagonal_block():
    q, k, _ = qkv(100, 4, 2, seed=5)
    index = build_block_index(q, k, block_size=8, top_blocks=2)
    for qb in range(index.shape[1]):
        assert set(index[:, qb].flatten().tolist()) <= {0, qb, -1}
        assert (index[:, qb] == qb).any(-1).all() and (index[:, qb] == 0).any(-1).all()


def test_vertical_slash_reference_ignores_padding_and_duplicates():
    q, k, v = qkv(40, 2, 1, seed=6)
    cols = torch.tensor([[0, 5, 5, -1], [3, -1, -1, 39]])
    offs = torch.tensor([[0, 2, -1], [0, 1, 1]])
    mask = torch.zeros(2, 40, 40, dtype=torch.bool)
    for h, cs, os_ in ((0, [0, 5], [0, 2]), (1, [3, 39], [0, 1])):
        mask[h, :, cs] = True
        for o in os_:
            mask[h, torch.arange(o, 40), torch.arange(0, 40 - o)] = True
    out = vertical_slash_attention(q, k, v, cols, offs)
    assert (out.double() - naive_attention(q, k, v, mask & causal(40))).abs().max() < 1e-5


def paged_batch(lengths, Hkv=2, D=16, page_size=8, seed=0):
    """A vLLM-like cache: pages of several sequences interleaved in one pool, in shuffled order."""
    g = torch.Generator().manual_seed(seed)
    seqs = [(torch.randn(n, Hkv, D, generator=g), torch.randn(n, Hkv, D, generator=g)) for n in lengths]
    pages_per = [-(-n // page_size) for n in lengths]
    order = torch.randperm(sum(pages_per), generator=g)
    k_pages = torch.zeros(len(order), page_size, Hkv, D)
    v_pages = torch.zeros_like(k_pages)
    table = torch.full((len(lengths), max(pages_per)), -1, dtype=torch.int64)
    slot = 0
    for b, (k, v) in enumerate(seqs):
        for p in range(pages_per[b]):
            page = int(order[slot])
            chunk = slice(p * page_size, min((p + 1) * page_size, lengths[b]))
            k_pages[page, : chunk.stop - chunk.start] = k[chunk]
            v_pages[page, : chunk.stop - chunk.start] = v[chunk]
            table[b, p] = page
            slot += 1
    return KVCache(k_pages, v_pages, table, torch.tensor(lengths)), seqs


def naive_decode(q, seqs, masks=None):
    outs = []
    for b, (k, v) in enumerate(seqs):
        mask = torch.ones(q.shape[1], 1, k.shape[0], dtype=torch.bool) if masks is None else masks[b].unsqueeze(1)
        outs.append(naive_attention(q[b : b + 1], k, v, mask)[0])
    return torch.stack(outs)


@pytest.mark.parametrize("name,params", [
    ("dense", {}), ("quest", dict(token_budget=256, page_size=16)),
    ("quest", dict(token_budget=256, page_size=4, share_pages=False)),
])
def test_decode_with_full_budget_equals_dense_over_a_paged_batch(name, params):
    lengths = [1, 37, 100]
    cache, seqs = paged_batch(lengths)
    q = torch.randn(3, 6, 16)
    method = get_method(name, **params)
    out = method.decode(q, cache, layer=0)
    assert (out.double() - naive_decode(q, seqs)).abs().max() < 1e-5
    assert method.stats.summary()["decode"]["overall"] == pytest.approx(0.0)


@pytest.mark.parametrize("share", [True, False])
def test_quest_reads_the_selected_pages_and_counts_them(share):
    lengths, page = [70, 130, 5], 8
    cache, seqs = paged_batch(lengths, page_size=16, seed=1)  # Quest pages (8) differ from cache pages (16)
    q = torch.randn(3, 4, 16)
    method = get_method("quest", token_budget=32, page_size=page, share_pages=share)
    out = method.decode(q, cache, layer=1)
    masks, read = [], []
    for b, (k, _) in enumerate(seqs):
        pages = quest_pages(q[b], k, 32, page, share)
        n = k.shape[0]
        mask = pages.repeat_interleave(page, dim=1)[:, :n]
        assert mask[:, -1].all()  # the newest token's page is always read
        if share:
            assert torch.equal(pages[0], pages[1]) and torch.equal(pages[2], pages[3])
        masks.append(mask)
        read.append(mask.sum())
    assert (out.double() - naive_decode(q, seqs, masks)).abs().max() < 1e-5
    expected = 1 - sum(read).item() / (4 * sum(lengths))
    assert method.stats.summary()["decode"]["overall"] == pytest.approx(expected)
    assert expected > 0.3


def test_quest_bound_is_an_upper_bound_and_chooses_the_largest():
    k = torch.randn(64, 1, 8)
    q = torch.randn(1, 8)
    lo, hi = page_summaries(k, 8)
    bound = torch.maximum(q * lo[:, 0], q * hi[:, 0]).sum(-1)
    true_max = (k[:, 0] @ q[0]).view(8, 8).amax(1)
    assert (bound >= true_max - 1e-5).all()
    chosen = quest_pages(q, k, token_budget=24, page_size=8, share_pages=False)[0]
    past = chosen[:-1]
    assert past.sum() == 2 and chosen[-1]
    assert bound[:-1][past].min() >= bound[:-1][~past].max()


@pytest.mark.parametrize("name", ["snapkv", "ada_snapkv"])
def test_compression_keeps_budget_windows_and_counts_kept_tokens(name):
    T, Hq, Hkv = 300, 6, 3
    q, k, v = qkv(T, Hq, Hkv, seed=9)
    method = get_method(name, token_capacity=40, local_window=10, prefix_tokens=3, approximation_window=32, kernel_size=5)
    kept = method.compress(q, k, v, layer=0)
    assert len(kept) == Hkv
    sizes = [len(idx) for idx in kept]
    if name == "snapkv":
        assert sizes == [40] * Hkv
    else:
        assert sum(sizes) == 40 * Hkv and min(sizes) >= 13
    for idx in kept:
        assert set(range(3)) | set(range(T - 10, T)) <= set(idx.tolist())
        assert torch.equal(idx, idx.sort().values)
    summary = method.stats.summary()["compress"]
    assert summary["per_head"][0] == pytest.approx([1 - s / T for s in sizes])
    # decode reads only the kept tokens (+ nothing else): equals attention restricted to them
    cache = KVCache.from_dense(k, v)
    cache.kept = {(0, 0): kept}
    qd = torch.randn(1, Hq, 16)
    out = method.decode(qd, cache, layer=0)
    mask = torch.zeros(Hq, T, dtype=torch.bool)
    for h in range(Hq):
        mask[h, kept[h // (Hq // Hkv)]] = True
    assert (out.double() - naive_decode(qd, [(k, v)], [mask])).abs().max() < 1e-5
    assert method.stats.summary()["decode"]["overall"] == pytest.approx(1 - sum(sizes) / (Hkv * T))


@pytest.mark.parametrize("name", ["snapkv", "ada_snapkv"])
@pytest.mark.parametrize("T", [1, 50])
def test_compression_with_room_for_everything_keeps_everything(name, T):
    q, k, v = qkv(T, 4, 2, seed=T)
    method = get_method(name)  # capacity 1024 > T, windows longer than T
    kept = method.compress(q, k, v, layer=0)
    assert all(torch.equal(idx, torch.arange(T)) for idx in kept)
    assert method.stats.summary()["compress"]["overall"] == 0.0


@pytest.mark.parametrize("name,params,hook", [
    ("block_sparse", dict(sparsity=0.9), "prefill"),
    ("vertical_slash", dict(sparsity=0.8, approximation_size=64), "prefill"),
    ("snapkv", dict(sparsity=0.75), "compress"),
])
def test_target_sparsity_is_roughly_met(name, params, hook):
    T = 1200
    q, k, v = qkv(T, 2, 1, seed=11)
    method = get_method(name, **params)
    getattr(method, hook)(q, k, v, 0)
    assert method.stats.summary()[hook]["overall"] == pytest.approx(params["sparsity"], abs=0.06)


def test_quest_target_sparsity():
    cache, _ = paged_batch([1000, 400])
    method = get_method("quest", sparsity=0.9, page_size=16)
    method.decode(torch.randn(2, 4, 16), cache, 0)
    assert method.stats.summary()["decode"]["overall"] == pytest.approx(0.9, abs=0.03)


def test_sparsity_counts_add_across_sequences_layers_and_ranks():
    rank0, rank1 = SparsityStats(), SparsityStats()
    rank0.add("prefill", 0, torch.tensor([10.0, 20.0]), torch.tensor(40.0))
    rank0.add("prefill", 0, torch.tensor([30.0, 40.0]), torch.tensor(40.0))  # a second sequence, same heads
    rank1.add("prefill", 0, torch.tensor([0.0]), torch.tensor(80.0))  # rank 1 holds the third head
    rank1.add("prefill", 1, torch.tensor([20.0]), torch.tensor(40.0))
    s = SparsityStats.from_ranks([rank0, rank1]).summary()["prefill"]
    assert s["per_head"][0] == pytest.approx([0.5, 0.25, 1.0])
    assert s["per_layer"] == pytest.approx({0: 1 - 100 / 240, 1: 0.5})
    assert s["overall"] == pytest.approx(1 - 120 / 280)
    with pytest.raises(ValueError):
        rank0.merge(rank1)  # different heads cannot be added


def test_registry_lists_and_builds_every_method():
    assert {"dense", "vertical_slash", "block_sparse", "flexprefill", "quest", "snapkv", "ada_snapkv"} <= set(method_names())
    method = get_method("quest", token_budget="512", page_size="32", share_pages="false", sparsity="none")
    assert (method.config.token_budget, method.config.page_size, method.config.share_pages) == (512, 32, False)
    assert method.config.sparsity is None
    assert get_method("block_sparse", sparsity="0.5").config.sparsity == 0.5


@pytest.mark.parametrize("name,params,words", [
    ("nope", {}, "unknown method 'nope'"),
    ("quest", dict(budget=3), "unknown parameter 'budget'"),
    ("quest", dict(token_budget="many"), "token_budget of method quest must be int"),
    ("quest", dict(token_budget=1.5), "must be int"),
    ("quest", dict(share_pages="maybe"), "must be bool"),
    ("quest", dict(token_budget=-16), "must be a positive integer"),
    ("quest", dict(token_budget=1000, page_size=16), "multiple of page_size"),
    ("snapkv", dict(token_capacity=100, local_window=100), "must exceed"),
    ("snapkv", dict(kernel_size=4), "odd"),
    ("block_sparse", dict(sparsity=1.5), "in [0, 1)"),
    ("flexprefill", dict(alpha=0), "alpha"),
    ("vertical_slash", dict(slash_size=10), "slash_size >= 64"),
    ("ada_snapkv", dict(min_head_capacity_ratio=2), "min_head_capacity_ratio"),
])
def test_bad_parameters_raise_one_line_input_errors(name, params, words):
    with pytest.raises(InputError) as err:
        get_method(name, **params)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_custom_methods_register_by_decorator_and_entry_point(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # leave no test methods behind

    @dataclasses.dataclass
    class HalfConfig:
        keep: float = 0.5

    @register_method
    class Recent(Method):
        """Attends to the newest keys only (a toy third-party method)."""
        name = "test_recent"
        Config = HalfConfig

    assert isinstance(get_method("test_recent", keep="0.25"), Recent)

    class FromPlugin(Method):
        name = "test_plugin"

    class EntryPoint:
        def load(self):
            return FromPlugin

    monkeypatch.setattr(registry, "_loaded", False)
    monkeypatch.setattr(registry, "entry_points", lambda group: [EntryPoint()] if group == "sftasks.methods" else [])
    assert "test_plugin" in method_names()
    assert isinstance(get_method("test_plugin"), FromPlugin)


def test_cpu_tensors_use_the_reference():
    assert registry.dispatch("block_sparse_attention", block_sparse_attention, torch.zeros(1)) is block_sparse_attention
    assert registry.dispatch("quest_decode", quest_decode, torch.zeros(1)) is quest_decode


@pytest.mark.parametrize("name", sorted(PREFILL_SPARSE))
def test_last_query_keys_is_the_last_row_of_the_prefill_pattern(name):
    q, k, v = qkv(150, 4, 2, seed=4)
    method = get_method(name, **PREFILL_SPARSE[name])
    mask = explicit_mask(name, q, k, dataclasses.asdict(method.config))
    assert torch.equal(method.last_query_keys(q, k, v), mask[:, -1])
    assert method.stats.summary() == {}


def test_last_query_keys_of_decode_and_compression_methods():
    q, k, v = qkv(100, 4, 2, seed=8)
    quest = get_method("quest", token_budget=32, page_size=8)
    pages = quest_pages(q[-1], k, 32, 8, True)
    assert torch.equal(quest.last_query_keys(q, k, v), pages.repeat_interleave(8, dim=1)[:, :100])
    snap = get_method("snapkv", token_capacity=20, local_window=4, approximation_window=16, kernel_size=3)
    keys = snap.last_query_keys(q, k, v)
    assert snap.stats.summary() == {}
    kept = snap.compress(q, k, v, 0)
    for h in range(4):
        assert torch.equal(keys[h].nonzero().flatten(), kept[h // 2])


def test_a_batch_as_one_page_per_sequence_holds_the_same_tokens_as_small_pages():
    k, v = torch.randn(2, 2, 21, 4).transpose(1, 2), torch.randn(2, 2, 21, 4).transpose(1, 2)  # transformers' layout
    q = torch.randn(2, 4, 4)
    view = KVCache.from_batch(k, v)
    assert view.k_pages.data_ptr() == k.data_ptr()  # no copy
    quest = get_method("quest", token_budget=16, page_size=4)
    for b in range(2):
        assert torch.equal(view.sequence(b)[0], k[b]) and torch.equal(view.sequence(b)[1], v[b])
    out = quest.decode(q, view, 0)
    for b in range(2):
        paged = KVCache.from_dense(k[b], v[b], page_size=8)
        assert torch.equal(out[b : b + 1], quest.decode(q[b : b + 1], paged, 0))


@pytest.mark.parametrize("T,block_size,top", [(150, 8, 3), (97, 16, 64), (1, 4, 2)])
def test_block_index_built_in_chunks_equals_one_shot(T, block_size, top):
    """The GPU path builds the pooled scores a few query blocks at a time: the pattern must not change."""
    q, k, _ = qkv(T, 6, 2, seed=T)
    one_shot = build_block_index(q, k, block_size, top)
    for rows in (1, 2, 5):
        assert torch.equal(build_block_index(q, k, block_size, top, rows_per_chunk=rows), one_shot)


def test_pair_counts_ignore_padding_and_duplicates():
    from sftasks.methods.block_sparse import block_sparse_pairs
    from sftasks.methods.vertical_slash import vertical_slash_pairs

    T = 40
    cols = torch.tensor([[0, 5, 5, -1], [3, -1, -1, 39]])
    offs = torch.tensor([[0, 2, -1], [0, 1, 1]])
    assert vertical_slash_pairs(cols, offs, T).tolist() == vertical_slash_mask(cols, offs, T).sum((1, 2)).double().tolist()
    index = torch.tensor([[[0, -1], [1, 1], [0, 5], [2, 0], [3, 1]]])  # T = 40: 5 blocks of 8; 5 is above block 2
    mask = torch.zeros(1, T, T, dtype=torch.bool)
    for qb in range(5):
        for kb in index[0, qb].tolist():
            if 0 <= kb <= qb:
                mask[0, qb * 8 : (qb + 1) * 8, kb * 8 : (kb + 1) * 8] = True
    assert block_sparse_pairs(index, T, 8).tolist() == (mask & causal(T)).sum((1, 2)).double().tolist()
