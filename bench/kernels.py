"""Speed of the Triton kernels against dense SDPA (cuDNN, flash) and FlexAttention, side by side in one run.

One Qwen2.5-7B attention layer (28 query heads, 4 KV heads, head_dim 128, bf16), one sequence.
  python bench/kernels.py [--lengths 32k,64k,128k] [--out results.json]
  python bench/kernels.py --sweep-only [--sweep-parts block_sparse,fixed_costs,vertical_slash,quest] --lengths 128k
      (tuning knobs side by side, twice each; RESULTS.md records which paid; fixed_costs: block-sparse
      with lists of one length, what a program costs besides its key tiles)
Prints one markdown table (the one in RESULTS.md). `ideal` is 1 / (1 - sparsity) with sparsity counted
in causal (query, key) pairs; `% ideal` is (cuDNN dense time / ours) / ideal. Every prefill kernel of a
length (cuDNN included; dense flash, a reference only, once) is timed --rounds times in turn, at its
sustained (power-capped) rate, and reported by its median. Index builds are inside the timed region.
"""

from __future__ import annotations

import argparse
import json
import statistics

import torch
import torch.nn.functional as F
import triton
from torch.nn.attention import SDPBackend, sdpa_kernel
from triton.testing import do_bench, do_bench_cudagraph

from sftasks import kernels
from sftasks.kernels.block_sparse import causal_block_lists
from sftasks.kernels.quest import QuestSummaries
from sftasks.lengths import parse_length
from sftasks.methods.base import KVCache
from sftasks.methods.block_sparse import block_sparse_pairs
from sftasks.methods.vertical_slash import vertical_slash_pairs

HQ, HKV, D, DTYPE = 28, 4, 128, torch.bfloat16
BLOCK = 128


def bench(fn, warmup_ms: int = 100) -> float:
    """Median milliseconds."""
    return do_bench(fn, warmup=warmup_ms, rep=400, return_mode="median")


# An H100 running attention at full rate sits at its 700 W power cap: its clock boosts for the first ~0.3-0.5 s
# after lighter work, then drops and wanders (1260-1710 MHz, nvidia-smi every 250 ms), so a kernel timed right
# after a light one ran up to 12% faster than after a heavy one (128k, 95%: 12.17 against 13.4-13.7 ms). Each
# prefill kernel first runs this long on its own, and is timed at its sustained, power-capped rate.
PREFILL_WARMUP_MS = 1500


def random_block_index(T: int, sparsity: float, gen: torch.Generator) -> torch.Tensor:
    """Per head and query block i: the diagonal, the first block and random others, ceil((1-s)(i+1)) in all."""
    nb = -(-T // BLOCK)
    blocks = torch.arange(nb, device="cuda")
    keep = torch.ceil((1 - sparsity) * (blocks + 1)).long().clamp(min=1)
    scores = torch.rand(HQ, nb, nb, device="cuda", generator=gen)
    scores[:, blocks, blocks] = 3.0
    scores[:, :, 0] = 2.0
    scores = scores.masked_fill(blocks.view(1, -1) > blocks.view(-1, 1), -1.0)
    K = int(keep.max())
    top = scores.topk(K, dim=-1).indices
    return torch.where(torch.arange(K, device="cuda") < keep.view(1, -1, 1), top, -1)


def fixed_cost_patterns(T: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Lists of one length for every (head, query block): their times split a program's cost into what it
    pays whatever its list (reading its queries, writing its output, the diagonal block) and its key tiles."""
    nb = -(-T // BLOCK)
    diag = torch.arange(nb, device="cuda").view(1, -1, 1).expand(HQ, -1, 1)
    sink = torch.zeros_like(diag)
    pats = {"no block": torch.full_like(diag, -1), "diagonal only": diag, "first + diagonal": torch.cat([sink, diag], -1)}
    for n in (2, 6):
        others = (torch.rand(HQ, nb, n, device="cuda", generator=gen) * diag).long()  # duplicates count once
        pats[f"first + {n} random + diagonal"] = torch.cat([sink, others, diag], -1)
    return pats


def flex_block_mask(idx: torch.Tensor, T: int):
    """The same pattern as a FlexAttention BlockMask: off-diagonal blocks full, the diagonal causal."""
    from torch.nn.attention.flex_attention import BlockMask

    H, nb, K = idx.shape
    qb = torch.arange(nb, device="cuda").view(1, -1, 1)
    valid = (idx >= 0) & (idx <= qb)
    full = valid & (idx < qb)
    big = nb
    full_idx = torch.where(full, idx, big).sort(-1).values
    full_num = full.sum(-1).int()
    full_cols = torch.zeros(H, nb, nb, dtype=torch.int32, device="cuda")
    full_cols[..., :K] = torch.where(full_idx == big, 0, full_idx).int()
    diag = (valid & (idx == qb)).any(-1)
    part_num = diag.int()
    part_cols = torch.zeros(H, nb, nb, dtype=torch.int32, device="cuda")
    part_cols[..., 0] = torch.arange(nb, device="cuda", dtype=torch.int32)

    def causal(b, h, q_idx, kv_idx):
        return q_idx >= kv_idx

    return BlockMask.from_kv_blocks(part_num[None], part_cols[None], full_num[None], full_cols[None],
                                    BLOCK_SIZE=BLOCK, mask_mod=causal, seq_lengths=(T, T))


def vertical_slash_pattern(T: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A MInference-like pattern: 1024 columns (the first 4 always) and 4.5% of T diagonals, most of them a
    local band, the rest in 8 clusters of 64 (realistic heads show clustered, not scattered, slashes)."""
    cols = torch.randint(4, T, (HQ, 1024), device="cuda", generator=gen)
    cols[:, :4] = torch.arange(4)
    band = int(0.04 * T)
    clusters = (torch.randint(band, T - 64, (HQ, 8, 1), device="cuda", generator=gen) + torch.arange(64, device="cuda")).flatten(1)
    slashes = torch.cat([torch.arange(band, device="cuda").expand(HQ, -1), clusters], 1)
    return cols, slashes


VERTICAL_SLASH_PARTS = ("whole", "band only", "band + clusters", "band + columns")


def vertical_slash_parts(cols: torch.Tensor, slashes: torch.Tensor, T: int) -> dict:
    """The pattern and its parts (VERTICAL_SLASH_PARTS), each (columns, offsets): the band is the first 4% of
    T offsets."""
    band = int(0.04 * T)
    return dict(zip(VERTICAL_SLASH_PARTS, [(cols, slashes), (cols[:, :0], slashes[:, :band]), (cols[:, :0], slashes),
                                           (cols, slashes[:, :band])]))


def dense_prefill(q, k, v, backend):
    qh, kh, vh = (x.transpose(0, 1).unsqueeze(0) for x in (q, k, v))
    with sdpa_kernel(backend):
        return F.scaled_dot_product_attention(qh, kh, vh, is_causal=True)


def sweep(T: int, parts: str = "block_sparse,vertical_slash,quest") -> None:
    """Kernel variants, each timed in the same run (what did and did not pay goes in RESULTS.md)."""
    gen = torch.Generator(device="cuda").manual_seed(1)
    q = torch.randn(T, HQ, D, device="cuda", dtype=DTYPE)
    k, v = (torch.randn(T, HKV, D, device="cuda", dtype=DTYPE) for _ in range(2))
    variants = {  # block-sparse knobs: the default (64-key tiles read by TMA, 128 registers: two programs per SM) first
        "default": {}, "block_n=128 uncapped": {"block_n": 128}, "pointer loads": {"tma": False},
        "num_stages=3": {"num_stages": 3},
    }
    for sparsity in (0.90, 0.95) if "block_sparse" in parts else ():
        idx = random_block_index(T, sparsity, gen)
        for rep in range(2):  # twice: the spread between reps is the noise
            for name, opts in variants.items():
                t = bench(lambda: kernels.block_sparse_attention(q, k, v, idx, BLOCK, **opts), PREFILL_WARMUP_MS)
                print(f"sweep block-sparse T={T} {sparsity:.0%} {name} (rep {rep}): {t:.2f} ms", flush=True)
    for name, idx in fixed_cost_patterns(T, gen).items() if "fixed_costs" in parts else ():
        t = bench(lambda: kernels.block_sparse_attention(q, k, v, idx, BLOCK), PREFILL_WARMUP_MS)
        print(f"sweep block-sparse fixed costs T={T} {name}: {t:.3f} ms", flush=True)
    patterns = vertical_slash_parts(*vertical_slash_pattern(T, gen), T)
    knobs = ({}, {"masked_stages": 2}, {"tma": False}, {"block_n": 128})
    for name, (c, sl) in patterns.items() if "vertical_slash" in parts else ():
        for opts in knobs if name == "whole" else ({},):
            t = bench(lambda: kernels.vertical_slash_attention(q, k, v, c, sl, **opts), PREFILL_WARMUP_MS)
            print(f"sweep vertical-slash T={T} {name} {opts}: {t:.2f} ms", flush=True)
    if "quest" not in parts:
        return
    # Quest: knobs and where the GPU time goes (one call, budget 4096)
    pages = -(-T // 16)
    kp = torch.randn(pages, 16, HKV, D, device="cuda", dtype=DTYPE)
    cache = KVCache(kp, torch.randn_like(kp), torch.arange(pages, device="cuda", dtype=torch.int32).view(1, -1),
                    torch.tensor([T], device="cuda", dtype=torch.int32))
    qd = torch.randn(1, HQ, D, device="cuda", dtype=DTYPE)
    summ = QuestSummaries.empty(1, pages, HKV, D, DTYPE, "cuda")
    quest_variants = [{}, {"select_chunks": 1}, {"select_chunks": 8}, {"select_chunks": 16}, {"select_warps": 4},
                      {"select_warps": 16}, {"bounds_warps": 2}, {"pages_per_split": 8}, {"pages_per_split": 32},
                      {"attend_keys": 64}, {"attend_warps": 4}, {"pdl": False}]
    for rep in range(2):
        for opts in quest_variants:
            t = do_bench_cudagraph(lambda: kernels.quest_decode(qd, cache, 4096, 16, True, summaries=summ, **opts),
                                   rep=200, return_mode="median")
            print(f"sweep quest T={T} budget 4096 {opts} (rep {rep}): {1e3 * t:.1f} us (graph)", flush=True)
    for _ in range(3):
        kernels.quest_decode(qd, cache, 4096, 16, True, summaries=summ)
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(20):
            kernels.quest_decode(qd, cache, 4096, 16, True, summaries=summ)
        torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=8), flush=True)


def paged_cache(T: int, B: int, page: int = 16) -> KVCache:
    """B sequences of T tokens in 16-token pages, each sequence's pages in a row of the table."""
    pages = -(-T // page)
    kp = torch.randn(B * pages, page, HKV, D, device="cuda", dtype=DTYPE)
    table = torch.arange(B * pages, device="cuda", dtype=torch.int32).view(B, pages)
    return KVCache(kp, torch.randn_like(kp), table, torch.full((B,), T, device="cuda", dtype=torch.int32))


def dense_decode(cache: KVCache, q: torch.Tensor, T: int):
    """SDPA over the same keys seen as [B, Hkv, T, D] (no copy: the pages of a sequence are consecutive)."""
    B = q.shape[0]
    kd, vd = (x.view(B, -1, HKV, D)[:, :T].transpose(1, 2) for x in (cache.k_pages, cache.v_pages))
    return lambda: F.scaled_dot_product_attention(q.unsqueeze(2), kd, vd, enable_gqa=True)


LAYERS = 8  # decode timed over this many layers' caches in turn: a model's step meets each one cold in L2


def layer_caches(T: int, B: int) -> list[tuple[KVCache, torch.Tensor]]:
    """LAYERS layers' (cache, query): each layer its own K/V pages, all one page table and one set of lengths,
    as in an engine (vLLM's block table and sequence lengths serve every layer of a step)."""
    first = paged_cache(T, B)
    caches = [first] + [KVCache(torch.randn_like(first.k_pages), torch.randn_like(first.v_pages), first.page_table,
                                first.seq_lens) for _ in range(LAYERS - 1)]
    return [(cache, torch.randn(B, HQ, D, device="cuda", dtype=DTYPE)) for cache in caches]


def steady_quest_calls(layers, budget: int, quest=kernels.quest, **options) -> list:
    """One steady Quest call per layer of `layer_caches`, each keeping its own page summaries across calls;
    `quest` may be another checkout's module (bench/quest_ab.py), `options` its tuning knobs."""
    calls = []
    for cache, q in layers:
        store = quest.QuestSummaries.empty(q.shape[0], cache.page_table.shape[1], HKV, D, DTYPE, q.device)
        calls.append(lambda q=q, cache=cache, store=store:
                     quest.quest_decode(q, cache, budget, 16, True, summaries=store, **options))
    return calls


def per_call_us(calls) -> float:
    """Microseconds per call, replaying the calls one after another in one CUDA graph."""
    return 1e3 * do_bench_cudagraph(lambda: [c() for c in calls], rep=200, return_mode="median") / len(calls)


def steady_rows(T: int, B: int, row) -> None:
    """Dense decode and steady Quest (paged cache, summaries kept) in CUDA graphs (eager calls are host-bound),
    per call: one call replayed (for batch > 1; batch 1's rows are decode_rows'), and LAYERS caches in turn.
    Replaying one call keeps its page summaries and chosen pages in the 50 MB L2 (a 128k call reads ~25 MB),
    which a model's decode step, running every other layer in between, does not: the rows "in turn" are
    what a model sees."""
    layers = layer_caches(T, B)
    dense = [dense_decode(cache, q, T) for cache, q in layers]
    quest = {budget: steady_quest_calls(layers, budget) for budget in (1024, 4096)}
    suffix = f", batch {B}" if B > 1 else ""
    for setting, n in ([("", 1)] if B > 1 else []) + [(f", {LAYERS} layers in turn", LAYERS)]:
        t_dense = per_call_us(dense[:n])
        row(kind="decode", T=T, what=f"dense decode (SDPA){suffix}{setting}", us_graph=t_dense)
        for budget, calls in quest.items():
            t_q = per_call_us(calls[:n])
            row(kind="decode", T=T, what=f"Quest budget {budget} (ours, steady){suffix}{setting}", us_graph=t_q,
                speedup_graph=t_dense / t_q)
    del layers, dense, quest
    torch.cuda.empty_cache()


def decode_rows(T: int, row) -> None:
    """Batch 1: dense decode, and Quest on the cache as each adapter hands it over: paged (the steady
    decode loop), vLLM's K|V side by side in one buffer with summaries per cache page, transformers'
    [B, Hkv, S, D] in place (one page per sequence); and with summaries rebuilt every call."""
    page = 16
    pages = -(-T // page)
    cache = paged_cache(T, 1, page)
    kp, vp, table = cache.k_pages, cache.v_pages, cache.page_table
    q = torch.randn(1, HQ, D, device="cuda", dtype=DTYPE)
    dense = dense_decode(cache, q, T)
    t_dense = bench(dense)
    t_dense_g = do_bench_cudagraph(dense, rep=200, return_mode="median")
    row(kind="decode", T=T, what="dense decode (SDPA)", us=1e3 * t_dense, us_graph=1e3 * t_dense_g)
    engine = KVCache(*torch.cat([kp, vp], dim=-1).split(D, dim=-1), table, cache.seq_lens, persistent=True)
    kh, vh = (x.view(pages * page, HKV, D)[:T].transpose(0, 1).contiguous().unsqueeze(0) for x in (kp, vp))
    in_place = KVCache.from_batch(kh.transpose(1, 2), vh.transpose(1, 2))
    layouts = {"steady": (cache, lambda: QuestSummaries.empty(1, pages, HKV, D, DTYPE, "cuda")),
               "engine cache: K|V pages, per-page summaries": (engine, lambda: QuestSummaries.for_cache(engine.k_pages, page)),
               "transformers' cache [Hkv, S, D] in place": (in_place, lambda: QuestSummaries.empty(1, pages, HKV, D, DTYPE, "cuda"))}
    for budget in (1024, 4096):
        for label, (layout, new_store) in layouts.items():
            store = new_store()

            def quest():
                return kernels.quest_decode(q, layout, budget, page, True, summaries=store)

            t_q = bench(quest)
            t_qg = do_bench_cudagraph(quest, rep=200, return_mode="median")
            row(kind="decode", T=T, what=f"Quest budget {budget} (ours, {label})", us=1e3 * t_q, us_graph=1e3 * t_qg,
                speedup=t_dense / t_q, speedup_graph=t_dense_g / t_qg)
            if label == "steady":
                t_cold = bench(lambda: kernels.quest_decode(q, cache, budget, page, True))
                row(kind="decode", T=T, what=f"Quest budget {budget} (ours, summaries rebuilt)", us=1e3 * t_cold,
                    speedup=t_dense / t_cold)


def prefill_rows(T: int, flex, gen: torch.Generator, rounds: int, row) -> None:
    """Dense, block-sparse and vertical-slash prefill at length T, every kernel timed `rounds` times in turn
    (round robin), each time at its sustained rate (PREFILL_WARMUP_MS), and reported by its median. The GPU
    warms up over a run (cuDNN at 128k: 215-220 ms in the first round, 226-228 in later ones), so a kernel
    timed once could land in a stretch that its yardstick did not; timed the same way, interleaved, the
    ratios are side by side."""
    q = torch.randn(T, HQ, D, device="cuda", dtype=DTYPE)
    k = torch.randn(T, HKV, D, device="cuda", dtype=DTYPE)
    v = torch.randn(T, HKV, D, device="cuda", dtype=DTYPE)
    ke, ve = (x.repeat_interleave(HQ // HKV, dim=1) for x in (k, v))  # dense SDPA gets MHA-shaped K/V
    qh, kh, vh = (x.transpose(0, 1).unsqueeze(0) for x in (q, k, v))
    kernels_to_time = {"dense cuDNN": (lambda: dense_prefill(q, ke, ve, SDPBackend.CUDNN_ATTENTION), None)}
    flex_of = {}  # our row -> FlexAttention's row with the same blocks
    for target in (0.90, 0.95):
        idx = random_block_index(T, target, gen)
        s = 1 - float(block_sparse_pairs(idx, T, BLOCK).sum()) / (HQ * T * (T + 1) / 2)
        ours = f"block-sparse {target:.0%} (ours)"
        if flex is not None:
            bm = flex_block_mask(idx, T)
            kernels_to_time[f"FlexAttention {target:.0%}"] = (
                lambda bm=bm: flex(qh, kh, vh, block_mask=bm, enable_gqa=True), s)
            flex_of[ours] = f"FlexAttention {target:.0%}"
        kernels_to_time[ours] = (lambda idx=idx: kernels.block_sparse_attention(q, k, v, idx, BLOCK), s)
        kernels_to_time[f"  of which block-list prep {target:.0%}"] = (lambda idx=idx: causal_block_lists(idx), None)
    cols, slashes = vertical_slash_pattern(T, gen)
    s_vs = 1 - float(vertical_slash_pairs(cols.cpu(), slashes.cpu(), T).sum()) / (HQ * T * (T + 1) / 2)
    vs, estimate = "vertical-slash (ours, index build incl.)", "  of which estimate_vertical_slash"
    kernels_to_time[vs] = (lambda: kernels.vertical_slash_attention(q, k, v, cols, slashes), s_vs)
    kernels_to_time[estimate] = (lambda: kernels.estimate_vertical_slash(q, k, 256, 1024, int(0.045 * T)), None)
    runs = {what: [] for what in kernels_to_time}
    for _ in range(rounds):
        for what, (fn, _) in kernels_to_time.items():
            runs[what].append(bench(fn, PREFILL_WARMUP_MS))
    ms = {what: statistics.median(times) for what, times in runs.items()}
    sparsity = {what: s for what, (_, s) in kernels_to_time.items()}
    both = "vertical-slash + its estimate (last 256 queries)"
    ms[both], sparsity[both] = ms[vs] + ms[estimate], s_vs
    t_cudnn = ms["dense cuDNN"]
    row(kind="prefill", T=T, what="dense cuDNN", ms=t_cudnn, runs_ms=runs["dense cuDNN"])
    # flash is a reference only, no ratio uses it: timed once
    row(kind="prefill", T=T, what="dense flash", ms=bench(lambda: dense_prefill(q, ke, ve, SDPBackend.FLASH_ATTENTION)))
    for what in [w for w in kernels_to_time if w not in ("dense cuDNN", estimate)] + [both, estimate]:
        t = ms[what]
        r = dict(kind="prefill", T=T, what=what, ms=t, **({"runs_ms": runs[what]} if what in runs else {}))
        if sparsity[what] is not None:
            s = sparsity[what]
            r.update(sparsity=s, speedup=t_cudnn / t, ideal=1 / (1 - s), pct_ideal=100 * t_cudnn / t * (1 - s))
        if what in flex_of:
            r["vs_flex"] = ms[flex_of[what]] / t
        row(**r)


def markdown_table(rows: list[dict]) -> str:
    """The rows as the markdown table of RESULTS.md ("… " marks a part of the row above)."""
    lines = ["| kind | T | what | sparsity | time | speedup | ideal | % of ideal | Flex time / ours |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "ms" in r:
            t = f"{r['ms']:.2f} ms"
        elif "us" in r:
            t = f"{r['us']:.1f} µs" + (f" (graph {r['us_graph']:.1f} µs)" if "us_graph" in r else "")
        else:
            t = f"graph {r['us_graph']:.1f} µs"
        sp = f"{r['speedup']:.2f}x" if "speedup" in r else ""
        if "speedup_graph" in r:
            sp += f" (graph {r['speedup_graph']:.2f}x)" if sp else f"graph {r['speedup_graph']:.2f}x"
        what = ("… " if r["what"].startswith(" ") else "") + r["what"].strip().replace("|", "\\|")
        cells = [r["kind"], f"{r['T'] // 1024}k", what, f"{r['sparsity']:.3f}" if "sparsity" in r else "", t, sp,
                 f"{r['ideal']:.1f}" if "ideal" in r else "", f"{r['pct_ideal']:.1f}%" if "pct_ideal" in r else "",
                 f"{r['vs_flex']:.2f}x" if "vs_flex" in r else ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", default="32k,64k,128k")
    ap.add_argument("--decode-lengths", default="32k,128k")
    ap.add_argument("--decode-batches", default="4", help="also time these batch sizes (paged cache, graphs)")
    ap.add_argument("--out", default=None, help="also write the rows as JSON here")
    ap.add_argument("--no-flex", action="store_true")
    ap.add_argument("--rounds", type=int, default=3, help="prefill: time every kernel this many times in turn, report medians")
    ap.add_argument("--sweep", action="store_true", help="first time kernel variants at the last length")
    ap.add_argument("--sweep-only", action="store_true", help="time the variants and stop")
    ap.add_argument("--sweep-parts", default="block_sparse,vertical_slash,quest", help="which kernels' variants")
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    if args.sweep or args.sweep_only:
        sweep(parse_length(args.lengths.split(",")[-1] or "128k"), args.sweep_parts)
        if args.sweep_only:
            return
    gen = torch.Generator(device="cuda").manual_seed(0)
    rows = []

    def row(**r):
        rows.append(r)
        print(json.dumps(r), flush=True)

    flex = None
    if not args.no_flex:
        from torch.nn.attention.flex_attention import flex_attention

        flex = torch.compile(flex_attention, dynamic=False)

    for T in (parse_length(x) for x in args.lengths.split(",") if x):
        prefill_rows(T, flex, gen, args.rounds, row)
        torch.cuda.empty_cache()  # the length's tensors, before the next length's

    for T in (parse_length(x) for x in args.decode_lengths.split(",") if x):
        decode_rows(T, row)
        steady_rows(T, 1, row)
        for B in (int(x) for x in args.decode_batches.split(",") if x):
            steady_rows(T, B, row)

    print(f"\ndevice: {torch.cuda.get_device_name()}, torch {torch.__version__}, triton {triton.__version__}\n")
    print(markdown_table(rows))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
