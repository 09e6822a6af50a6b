"""The vLLM adapter end to end on vLLM's CPU build: a tiny random Qwen2 (head_dim 64, GQA 4/2, 2 layers).

One plain vLLM engine gives the reference tokens; one adapter engine then runs every method by
swapping it in the workers (`LLM.set_method`). Engines run in-process here (fast start);
tests/test_vllm_eval.py runs the multi-process engine through the CLI.
"""

from __future__ import annotations

import gc
import math
import os

import pytest
import torch
import vllm
from test_vllm_tiny_model import build_tiny_qwen2

from sftasks.methods.base import Method
from sftasks.methods.reference import masked_attention
from sftasks.methods.registry import get_method, method_names

BLOCK = 32  # vLLM's cache block size here (the CPU kernels need multiples of 32)
ENGINE = dict(enforce_eager=True, max_model_len=1024, max_num_batched_tokens=1024, dtype="float32", max_num_seqs=8,
              block_size=BLOCK, seed=0)
LENGTHS = (7, 45, 150, 301)  # none a multiple of a block, page or chunk size
NEW_TOKENS = 6
ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_OMP_THREADS_BIND": "nobind", "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}

# Budgets that cover every sequence here: each method must then equal dense attention.
FULL = {
    "dense": {},
    "vertical_slash": dict(vertical_size=1024, slash_size=1024, approximation_size=64),
    "block_sparse": dict(chunk_size=16, top_chunks=64),
    "flexprefill": dict(alpha=1.0, min_budget=1024, approximation_size=64),
    "quest": dict(token_budget=1024, page_size=16),
    "snapkv": dict(token_capacity=1024, approximation_window=16, kernel_size=5, local_window=8),
    "ada_snapkv": dict(token_capacity=1024, approximation_window=16, kernel_size=5, local_window=8),
}


def prompt(n: int, salt: int = 0) -> dict:
    return {"prompt_token_ids": [3 + (7 * i + 13 * n + salt) % 250 for i in range(n)]}


def greedy(max_tokens: int = NEW_TOKENS, logprobs: bool = False):
    return vllm.SamplingParams(temperature=0.0, max_tokens=max_tokens, ignore_eos=True, logprobs=0 if logprobs else None)


@pytest.fixture(scope="module")
def env():
    old = {k: os.environ.get(k) for k in ENV}
    os.environ.update(ENV)
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return str(build_tiny_qwen2(tmp_path_factory.mktemp("tiny") / "qwen2"))


@pytest.fixture(scope="module")
def plain_tokens(env, model):
    """Greedy tokens of plain vLLM (the plugin is installed but inert without an sftasks config)."""
    llm = vllm.LLM(model, **ENGINE)
    outs = llm.generate([prompt(n) for n in LENGTHS], greedy(), use_tqdm=False)
    impls = llm.apply_model(lambda m: sorted({type(x.impl).__name__ for x in m.modules() if hasattr(x, "impl")}))
    assert impls == [["CPUAttentionBackendImpl"]]
    del llm
    gc.collect()
    return [list(o.outputs[0].token_ids) for o in outs]


@pytest.fixture(scope="module")
def llm(env, model, plain_tokens):
    from sftasks.methods.vllm import LLM

    engine = LLM(model, method="dense", **ENGINE)
    yield engine
    del engine
    gc.collect()


def run(llm, method: str, params: dict, prompts, sampling):
    llm.set_method(method, params)
    outs = llm.generate(prompts, sampling, use_tqdm=False)
    return outs, llm.sparsity(outs)


def assert_per_head_equal(got: dict, want: dict) -> None:
    """Per-layer lists of per-head sparsities agree (pytest.approx takes no nested containers)."""
    assert sorted(got) == sorted(want)
    for layer in want:
        assert got[layer] == pytest.approx(want[layer], abs=1e-12), layer


def tokens(outs) -> list[list[int]]:
    return [list(o.outputs[0].token_ids) for o in outs]


def test_dense_through_the_adapter_matches_plain_vllm(llm, plain_tokens):
    outs, sparsity = run(llm, "dense", {}, [prompt(n) for n in LENGTHS], greedy())
    assert tokens(outs) == plain_tokens
    for stats in sparsity:  # counted on vLLM's own dense path, every layer
        assert stats["prefill"]["overall"] == 0.0 and stats["decode"]["overall"] == 0.0
        assert sorted(stats["prefill"]["per_layer"]) == [0, 1] and len(stats["decode"]["per_head"][1]) == 4


def test_every_method_is_covered():
    assert set(FULL) == set(method_names())


@pytest.mark.parametrize("name", sorted(FULL))
def test_full_budget_equals_dense(llm, plain_tokens, name):
    outs, sparsity = run(llm, name, FULL[name], [prompt(n) for n in LENGTHS], greedy())
    assert tokens(outs) == plain_tokens
    for stats in sparsity:
        assert all(entry["overall"] == 0.0 for entry in stats.values()), stats


def quest_reads(n: int, budget: int, page: int) -> int:
    """Tokens one head reads: every token while the cache fits the budget, else budget/page - 1 whole
    pages plus the (partial) newest page."""
    pages = math.ceil(n / page)
    return n if pages <= budget // page else (budget // page - 1) * page + n - (pages - 1) * page


def decode_lengths(p: int) -> range:
    return range(p + 1, p + NEW_TOKENS)  # the first new token comes from prefill; each decode adds one


def block_sparse_pairs(n: int, chunk: int, top: int) -> float:
    pairs = 0.0
    for m in range(math.ceil(n / chunk)):
        rows = min(chunk, n - m * chunk)
        pairs += rows * (rows + 1) / 2 + (min(top, m + 1) - 1) * rows * chunk
    return pairs


def expected_quest(p: int, budget: int, page: int) -> dict:
    reads = sum(quest_reads(n, budget, page) for n in decode_lengths(p))
    return {"decode": 1 - reads / sum(decode_lengths(p))}


def expected_snapkv(p: int, capacity: int) -> dict:
    kept = min(capacity, p)
    reads = sum(kept + n - p for n in decode_lengths(p))
    return {"compress": 1 - kept / p, "decode": 1 - reads / sum(decode_lengths(p))}


# Small budgets, and the sparsity each must report, counted here from lengths and knobs alone.
SMALL = {
    # Quest page 16 < vLLM block 32, page 32 == block, page 64 spans two blocks.
    "quest": [(dict(token_budget=64, page_size=16), lambda p: expected_quest(p, 64, 16)),
              (dict(token_budget=64, page_size=32), lambda p: expected_quest(p, 64, 32)),
              (dict(token_budget=128, page_size=64), lambda p: expected_quest(p, 128, 64))],
    "snapkv": [(dict(token_capacity=40, approximation_window=16, kernel_size=5, local_window=8),
                lambda p: expected_snapkv(p, 40))],
    "ada_snapkv": [(dict(token_capacity=40, approximation_window=16, kernel_size=5, local_window=8),
                    lambda p: expected_snapkv(p, 40))],
    "block_sparse": [(dict(chunk_size=16, top_chunks=3),
                      lambda p: {"prefill": 1 - block_sparse_pairs(p, 16, 3) / (p * (p + 1) / 2)})],
}


@pytest.mark.parametrize("name,case", [(n, i) for n in sorted(SMALL) for i in range(len(SMALL[n]))])
def test_small_budget_reports_the_predicted_sparsity(llm, name, case):
    params, expected = SMALL[name][case]
    prompts = [prompt(n) for n in LENGTHS]
    dense, _ = run(llm, "dense", {}, prompts, greedy(logprobs=True))
    outs, sparsity = run(llm, name, params, prompts, greedy(logprobs=True))
    from sftasks.methods.vllm.runtime import RUNTIME

    assert not RUNTIME.per_row_decode  # built-in methods count per sequence: decode rows go in one call
    for n, out, ref, stats in zip(LENGTHS, outs, dense, sparsity):
        for hook, value in expected(n).items():
            assert stats[hook]["overall"] == pytest.approx(value, abs=1e-9), (n, hook)
        if n == LENGTHS[-1]:  # the long prompt's computation changed: its first token's log-probs differ
            first = lambda o: next(iter(o.outputs[0].logprobs[1].values())).logprob  # noqa: E731
            assert max(expected(n).values()) > 0.5
            assert first(out) != pytest.approx(first(ref), abs=1e-5)
    if "compress" in sparsity[-1]:  # memory a true compression would have freed: per layer, 2 KV heads, K and V
        kept = min(params["token_capacity"], LENGTHS[-1])
        freed = 2 * 2 * (LENGTHS[-1] - kept) * 2 * 64 * 4
        assert sparsity[-1]["compress"]["kv_saved_bytes"] == freed


@pytest.mark.parametrize("name,params", [("vertical_slash", dict(vertical_size=8, slash_size=64, approximation_size=32)),
                                         ("flexprefill", dict(alpha=0.5, min_budget=32, approximation_size=32))])
def test_data_dependent_sparsity_matches_the_transformers_adapter(llm, model, name, params):
    """Patterns chosen from the data: the same prompt through transformers (an independent engine with
    its own q/k/v) must select the same pattern and count the same pairs."""
    from sftasks.methods.hf import HFBackend

    text = "The keeper of chapter seven hid the brass key under the third stair. " * 5
    chat = HFBackend(model, get_method(name, **params))
    expected = chat.generate([text], 1)[0].sparsity["prefill"]
    ids = chat.encode(text)[0].tolist()
    outs, sparsity = run(llm, name, params, [{"prompt_token_ids": ids}], greedy(1))
    assert 0.2 < expected["overall"] < 1.0
    assert sparsity[0]["prefill"]["overall"] == pytest.approx(expected["overall"], abs=1e-9)
    for layer, heads in expected["per_head"].items():
        assert sparsity[0]["prefill"]["per_head"][int(layer)] == pytest.approx(heads, abs=1e-9)


# One method per routing of a mixed step: native decodes as a prefix + method prefills (block_sparse),
# native batch + method decodes (quest), method prefills/compression + method decodes (snapkv).
MIXED = {"block_sparse": dict(chunk_size=16, top_chunks=3), "quest": dict(token_budget=64, page_size=16),
         "snapkv": dict(token_capacity=40, approximation_window=16, kernel_size=5, local_window=8)}
PRIMARY = {"block_sparse": "prefill", "quest": "decode", "snapkv": "compress"}


@pytest.mark.parametrize("name", sorted(MIXED))
def test_requests_join_and_finish_at_different_steps(llm, name):
    """Prompts given in one batch, too long to prefill together (so later prefills share steps with
    earlier requests' decodes), finishing after different numbers of tokens: each request gets exactly
    the tokens and the sparsity it gets alone."""
    from sftasks.methods.vllm.runtime import RUNTIME

    lengths, budgets = (301, 450, 300, 260), (2, 9, 4, 13)
    prompts = [prompt(n, salt=1) for n in lengths]
    mixed = RUNTIME.mixed_steps
    together, stats = run(llm, name, MIXED[name], prompts, [greedy(b) for b in budgets])
    assert RUNTIME.mixed_steps > mixed
    for p, b, out, st in zip(prompts, budgets, together, stats):
        alone, alone_stats = run(llm, name, MIXED[name], [p], greedy(b))
        assert len(out.outputs[0].token_ids) == b
        assert tokens([out]) == tokens(alone)
        assert st.keys() == alone_stats[0].keys()
        for hook in st:
            assert_per_head_equal(st[hook]["per_head"], alone_stats[0][hook]["per_head"])
        assert st[PRIMARY[name]]["overall"] > 0.5


class LastTokensDecode(Method):
    """Test-only method outside the registry: decode reads the newest 16 tokens, and counts once per
    call (per batch), which the adapter must notice to still report each request's own sparsity."""

    name = "test_last_tokens"

    def decode(self, q, cache, layer):
        outs, reads, total = [], 0, 0
        for b in range(q.shape[0]):
            k, v = cache.sequence(b)
            mask = torch.zeros(q.shape[1], 1, k.shape[0], dtype=torch.bool)
            mask[..., -16:] = True
            outs.append(masked_attention(q[b : b + 1], k, v, mask)[0])
            reads, total = reads + min(16, k.shape[0]), total + k.shape[0]
        heads = q.shape[1]
        self.stats.add("decode", layer, torch.full((heads,), float(reads)), torch.full((heads,), float(total)))
        return torch.stack(outs)


def test_user_method_counting_per_batch_still_gets_per_request_sparsity(llm):
    llm.set_method(LastTokensDecode())
    assert llm.sftasks_spec["class"] == "test_vllm_adapter:LastTokensDecode"
    outs = llm.generate([prompt(n) for n in LENGTHS], greedy(), use_tqdm=False)
    from sftasks.methods.vllm.runtime import RUNTIME

    assert RUNTIME.per_row_decode  # one count per batch: the adapter fell back to one sequence per call
    for n, stats in zip(LENGTHS, llm.sparsity(outs)):
        reads = sum(min(16, m) for m in decode_lengths(n))
        assert stats["decode"]["overall"] == pytest.approx(1 - reads / sum(decode_lengths(n)), abs=1e-12)


class PageWatch(Method):
    """Test-only: keeps a copy of every cache block it reads, keyed by physical block as Quest keeps its
    key summaries, and on each later read notes a block whose keys changed though no write to it was
    reported through `forget_cache_pages`. Decode itself is dense."""

    name = "test_page_watch"
    seen: dict = {}  # (layer, block) -> its keys when last read
    stale: list = []  # (layer, block) read with changed keys and no reported write
    reported = 0

    def forget_cache_pages(self, pages):
        drop = None if pages is None else set(pages.tolist())
        for key in [key for key in PageWatch.seen if drop is None or key[1] in drop]:
            del PageWatch.seen[key]
        PageWatch.reported += 0 if drop is None else len(drop)

    def decode(self, q, cache, layer):
        assert cache.persistent
        for b in range(q.shape[0]):
            for block in cache.page_table[b, : -(-int(cache.seq_lens[b]) // cache.page_size)].tolist():
                keys, old = cache.k_pages[block].clone(), PageWatch.seen.get((layer, block))
                if old is not None and not torch.equal(old, keys):
                    PageWatch.stale.append((layer, block))
                PageWatch.seen[(layer, block)] = keys
        return super().decode(q, cache, layer)


class PageWatchUnreported(PageWatch):
    """The same watch with no writes reported: the control that shows the watch can see stale blocks."""

    name = "test_page_watch_unreported"
    forget_cache_pages = Method.forget_cache_pages


@pytest.mark.parametrize("watch", [PageWatch, PageWatchUnreported])
def test_every_cache_write_is_reported_to_methods_that_keep_per_block_state(llm, plain_tokens, watch):
    """Requests that join and finish at different steps, then new ones on the freed blocks: a block the
    adapter does not report as written (prefill or decode) reads back unchanged, so per-block state such
    as Quest's key summaries stays valid; without the reports the watch sees the changes."""
    PageWatch.seen.clear(), PageWatch.stale.clear()
    PageWatch.reported = 0
    llm.set_method(watch())
    budgets = (2, 9, 4, 13)
    outs = llm.generate([prompt(n, salt=1) for n in (301, 450, 300, 260)], [greedy(b) for b in budgets], use_tqdm=False)
    outs += llm.generate([prompt(n) for n in LENGTHS], greedy(), use_tqdm=False)  # on blocks freed above
    assert tokens(outs[4:]) == plain_tokens  # dense decode: the watch itself changes nothing
    assert PageWatch.seen
    if watch is PageWatch:
        assert PageWatch.stale == [] and PageWatch.reported > 0
    else:
        assert PageWatch.stale and PageWatch.reported == 0


def test_tensor_parallel_2_matches_one_rank(llm, model):
    """TP=2 on CPU (two worker processes, each with 2 query heads and 1 KV head): same tokens, and the
    per-request counts of both ranks merge into the same per-head sparsity as one rank reports."""
    from sftasks.methods.vllm import LLM

    params = dict(token_capacity=40, approximation_window=16, kernel_size=5, local_window=8)
    prompts = [prompt(n, salt=2) for n in LENGTHS]
    one, one_stats = run(llm, "snapkv", params, prompts, greedy())
    tp = LLM(model, method="snapkv", params=params, tensor_parallel_size=2, **ENGINE)
    try:
        two = tp.generate(prompts, greedy(), use_tqdm=False)
        two_stats = tp.sparsity(two)
    finally:
        del tp
        gc.collect()
    assert tokens(two) == tokens(one)
    for a, b in zip(one_stats, two_stats):
        for hook in ("compress", "decode"):
            assert_per_head_equal(b[hook]["per_head"], a[hook]["per_head"])
        assert b["compress"].get("kv_saved_bytes") == a["compress"].get("kv_saved_bytes")


def test_bad_engine_arguments_are_refused(model):
    from sftasks.errors import InputError
    from sftasks.methods.vllm import LLM

    with pytest.raises(InputError, match="enable_chunked_prefill"):
        LLM(model, method="quest", enable_chunked_prefill=True)
    with pytest.raises(InputError, match="unknown method"):
        LLM(model, method="no_such_method")


def test_unsupported_vllm_version_names_the_supported_range():
    from sftasks.errors import InputError
    from sftasks.methods.vllm import SUPPORTED_VLLM, check_vllm_version

    assert check_vllm_version("0.32.0+cpu") == "0.32.0+cpu"
    with pytest.raises(InputError, match=">=0.32,<0.34"):
        check_vllm_version("0.6.6")
    import tomllib
    from pathlib import Path

    extra = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extra["vllm"] == ["vllm" + ",".join(SUPPORTED_VLLM)]  # the pin and the import check agree


def test_tensor_parallel_ranks_concatenate_heads():
    """Each rank counts its own heads: the merged per-head list is rank 0's heads then rank 1's."""
    from sftasks.methods.vllm.llm import merge_ranks

    rank = lambda r, c: {"rank": r, "requests": {"7-ab": {"counts": [["decode", 0, c, [10.0, 10.0]]],  # noqa: E731
                                                          "kv_bytes": 0.0, "kv_saved": 0.0}}}
    merged = merge_ranks([rank(1, [5.0, 5.0]), rank(0, [10.0, 0.0])])
    assert merged["7-ab"]["decode"]["per_head"][0] == [0.0, 1.0, 0.5, 0.5]
    assert merged["7-ab"]["decode"]["overall"] == pytest.approx(1 - 20 / 40)
