"""GPU correctness check of the Triton kernels in bf16 (and fp16) against float32 references.

Every output buffer is poisoned with NaN before the kernel runs, so an unwritten element fails the
check; inputs are fresh random draws for every case. Pass: relative error ||out - ref|| / ||ref|| under
1e-2 and no NaN. Run on a CUDA machine: `python bench/gpu_check.py` (prints one line per case);
`python bench/gpu_check.py quest` runs only the checks whose name has "quest".
"""

from __future__ import annotations

import sys

import torch

from sftasks import kernels
from sftasks.kernels.quest import QuestSummaries
from sftasks.methods.base import KVCache
from sftasks.methods.block_sparse import block_sparse_attention as ref_block_sparse
from sftasks.methods.quest import quest_decode as ref_quest
from sftasks.methods.vertical_slash import diagonal_mass, last_query_probs
from sftasks.methods.vertical_slash import vertical_slash_attention as ref_vertical_slash

TOL = 1e-2
failures = []
only = sys.argv[1] if len(sys.argv) > 1 else ""  # run the checks whose function name has this


def report(name: str, out: torch.Tensor, ref: torch.Tensor) -> None:
    out, ref = out.double(), ref.double()
    nan = bool(torch.isnan(out).any())
    rel = float((out - ref).norm() / ref.norm().clamp_min(1e-30))
    ok = not nan and rel < TOL
    print(f"{'ok  ' if ok else 'FAIL'} {name:60s} rel_err={rel:.2e} nan={nan}", flush=True)
    if not ok:
        failures.append(name)


def run(check, *args, **options) -> None:
    """One case; an exception (a launch that fails, e.g. out of shared memory) is a failure of that case,
    reported on its line, and the remaining cases still run."""
    if only not in check.__name__:
        return
    try:
        check(*args, **options)
    except Exception as e:  # noqa: BLE001 - any error of a case is that case's failure
        name = f"{check.__name__}{args} {options}"
        print(f"FAIL {name:60s} {type(e).__name__}: {str(e).splitlines()[0][:200]}", flush=True)
        failures.append(name)


def qkv(T, Hq, Hkv, D, dtype):
    return (torch.randn(T, h, D, device="cuda", dtype=dtype) for h in (Hq, Hkv, Hkv))


def poisoned(like: torch.Tensor) -> torch.Tensor:
    return torch.full_like(like, float("nan"))


def check_block_sparse(T, Hq, Hkv, D, bs, dtype, head_major=False, **options):
    """head_major: q/k/v as views of [H, T, D] tensors (transformers' layout), which TMA cannot read as rows."""
    q, k, v = qkv(T, Hq, Hkv, D, dtype)
    if head_major:
        q, k, v = (x.transpose(0, 1).contiguous().transpose(0, 1) for x in (q, k, v))
    nb = -(-T // bs)
    K = max(2, nb // 4)
    idx = torch.randint(-1, nb, (Hq, nb, K), device="cuda")
    idx[..., 0] = torch.arange(nb, device="cuda")  # diagonal mostly present
    idx[::3, :, 0] = -1  # ... but not for every head
    out = kernels.block_sparse_attention(q, k, v, idx, bs, out=poisoned(q), **options)
    ref = ref_block_sparse(q.float(), k.float(), v.float(), idx, bs)
    report(f"block_sparse T={T} Hq={Hq} Hkv={Hkv} D={D} bs={bs} {dtype}{' head-major' * head_major} {options}", out, ref)


def check_vertical_slash(T, Hq, Hkv, D, dtype, band=300, head_major=False, **options):
    """A local band, 4 clusters of 64 offsets, 200 scattered ones (some close enough to merge), T / 8 columns
    (whole tiles of them old enough to run unmasked)."""
    q, k, v = qkv(T, Hq, Hkv, D, dtype)
    if head_major:
        q, k, v = (x.transpose(0, 1).contiguous().transpose(0, 1) for x in (q, k, v))
    vert = torch.randint(-1, T, (Hq, T // 8), device="cuda")
    vert[:, :4] = torch.arange(4)
    clusters = (torch.randint(band, T - 64, (Hq, 4, 1), device="cuda") + torch.arange(64, device="cuda")).flatten(1)
    slash = torch.cat([torch.arange(band, device="cuda").expand(Hq, -1), clusters,
                       torch.randint(0, T + 5, (Hq, 200), device="cuda")], 1)
    out = kernels.vertical_slash_attention(q, k, v, vert, slash, out=poisoned(q), **options)
    ref = ref_vertical_slash(q.float(), k.float(), v.float(), vert, slash)
    report(f"vertical_slash T={T} Hq={Hq} Hkv={Hkv} D={D} band={band} {dtype}{' head-major' * head_major} {options}",
           out, ref)


def check_scores(T, Hq, Hkv, D, last_q, dtype):
    q, k, _ = qkv(T, Hq, Hkv, D, dtype)
    cols, diags = kernels.last_query_scores(q, k, last_q)
    probs = last_query_probs(q.float(), k.float(), last_q)
    report(f"last_query_scores columns T={T} Hq={Hq} D={D} L={last_q} {dtype}", cols, probs.sum(1))
    report(f"last_query_scores diagonals T={T} Hq={Hq} D={D} L={last_q} {dtype}", diags, diagonal_mass(probs))


def check_quest(lens, Hq, Hkv, D, budget, page, cache_page, share, dtype):
    B = len(lens)
    pages = [-(-n // cache_page) for n in lens]
    total = sum(pages) + 2
    perm = torch.randperm(total, device="cuda")
    kp = torch.randn(total, cache_page, Hkv, D, device="cuda", dtype=dtype)
    vp = torch.randn_like(kp)
    table = torch.zeros(B, max(pages), dtype=torch.int32, device="cuda")
    c = 0
    for b, p in enumerate(pages):
        table[b, :p] = perm[c : c + p]
        c += p
    cache = KVCache(kp, vp, table, torch.tensor(lens, device="cuda"))
    q = torch.randn(B, Hq, D, device="cuda", dtype=dtype)
    ref = ref_quest(q.float(), KVCache(kp.float(), vp.float(), table, cache.seq_lens), budget, page, share)
    out = kernels.quest_decode(q, cache, budget, page, share, out=poisoned(q))
    report(f"quest lens={lens} Hq={Hq} Hkv={Hkv} D={D} budget={budget} page={page}/{cache_page} share={share} {dtype}", out, ref)
    # second step with persistent summaries: grow each sequence by one token, summaries updated in place
    qmax = -(-(table.shape[1] * cache_page) // page)
    summ = QuestSummaries.empty(B, qmax, Hkv, D, dtype, "cuda")
    kernels.quest_decode(q, cache, budget, page, share, summaries=summ)
    cache.seq_lens = cache.seq_lens.clamp(max=table.shape[1] * cache_page - 1) + 1
    ref = ref_quest(q.float(), KVCache(kp.float(), vp.float(), table, cache.seq_lens), budget, page, share)
    out = kernels.quest_decode(q, cache, budget, page, share, summaries=summ, out=poisoned(q))
    report(f"quest next step, summaries in place lens+1 share={share} {dtype}", out, ref)
    if cache_page % page == 0:  # an engine's cache (vLLM's flash layout: K|V side by side), summaries per cache page
        k_view, v_view = torch.cat([kp, vp], dim=-1).split(D, dim=-1)
        engine = KVCache(k_view, v_view, table, cache.seq_lens)
        store = QuestSummaries.for_cache(k_view, page)
        kernels.quest_decode(q, engine, budget, page, share, summaries=store)  # fills the store
        out = kernels.quest_decode(q, engine, budget, page, share, summaries=store, out=poisoned(q))
        report(f"quest K|V interleaved pages, summaries per cache page, share={share} {dtype}", out, ref)


def check_quest_transformers_cache(B, S, Hq, Hkv, D, budget, page, dtype, steps=2):
    """transformers' cache [B, Hkv, S, D], reallocated as it grows, read in place (one page per sequence)
    with per-sequence summaries grown along. Long caches (head stride * heads past 2**31) are checked
    against the same kernel on a paged copy, short ones against the reference."""
    k = torch.randn(B, Hkv, S, D, device="cuda", dtype=dtype)
    v = torch.randn_like(k)
    store = QuestSummaries.empty(B, 1, Hkv, D, dtype, "cuda")
    for step in range(steps):
        if step:
            k, v = (torch.cat([x, torch.randn_like(x[:, :, :1])], dim=2) for x in (k, v))
        cache = KVCache.from_batch(k.transpose(1, 2), v.transpose(1, 2))
        store = store.with_room(-(-k.shape[2] // page))
        q = torch.randn(B, Hq, D, device="cuda", dtype=dtype)
        out = kernels.quest_decode(q, cache, budget, page, True, summaries=store, out=poisoned(q))
        if k.shape[2] <= 65536:
            ref = ref_quest(q.float(), KVCache.from_batch(k.float().transpose(1, 2), v.float().transpose(1, 2)), budget, page, True)
        else:
            paged = [KVCache.from_dense(k[b].transpose(0, 1), v[b].transpose(0, 1), 16) for b in range(B)]
            ref = torch.cat([kernels.quest_decode(q[b : b + 1], paged[b], budget, page, True) for b in range(B)])
            del paged
        report(f"quest transformers' cache in place B={B} S={k.shape[2]} Hq={Hq} Hkv={Hkv} step {step} {dtype}", out, ref)


def check_quest_merge_repeats(T, B, budget, dtype, calls=200):
    """The last split to finish merges the others' partials (an atomic counter, release/acquire): a missing
    ordering shows as an output that differs between identical calls now and then. The calls are replayed
    back to back in one CUDA graph; the cases are many splits at batch 1 and a batch whose merge takes two loads."""
    pages = -(-T // 16)
    kp = torch.randn(B * pages, 16, 4, 128, device="cuda", dtype=dtype)
    cache = KVCache(kp, torch.randn_like(kp), torch.arange(B * pages, device="cuda", dtype=torch.int32).view(B, pages),
                    torch.full((B,), T, device="cuda", dtype=torch.int32))
    q = torch.randn(B, 28, 128, device="cuda", dtype=dtype)
    first = kernels.quest_decode(q, cache, budget, 16, True)
    outs = torch.full((calls, *q.shape), float("nan"), device="cuda", dtype=dtype)
    kernels.quest_decode(q, cache, budget, 16, True, out=outs[0])  # compiled before capture
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for i in range(calls):
            kernels.quest_decode(q, cache, budget, 16, True, out=outs[i])
    graph.replay()
    torch.cuda.synchronize()
    differ = int((outs != first).flatten(1).any(1).sum())
    ok = differ == 0
    print(f"{'ok  ' if ok else 'FAIL'} {f'quest merge, {calls} identical calls T={T} B={B} budget={budget} {dtype}':60s} "
          f"calls that differ from the first: {differ}", flush=True)
    if not ok:
        failures.append(f"quest merge repeats T={T} B={B}")


def main() -> int:
    torch.manual_seed(0)
    bf, fp = torch.bfloat16, torch.float16
    for T, Hq, Hkv, D, bs in [(4096, 28, 4, 128, 128), (3001, 8, 8, 64, 64), (2500, 7, 1, 128, 16), (1999, 4, 1, 64, 100),
                              (4096, 28, 4, 128, 64), (3001, 28, 4, 128, 256), (2500, 7, 1, 128, 200),
                              (2500, 8, 2, 256, 128)]:
        run(check_block_sparse, T, Hq, Hkv, D, bs, bf)
    run(check_block_sparse, 3001, 28, 4, 128, 128, fp)
    run(check_block_sparse, 4096, 28, 4, 128, 128, bf, tma=False)
    run(check_block_sparse, 3001, 28, 4, 128, 128, bf, head_major=True)
    run(check_block_sparse, 3001, 8, 2, 64, 64, bf, tma=False)
    for T, Hq, Hkv, D in [(4096, 28, 4, 128), (3001, 8, 8, 64), (2500, 7, 1, 128), (2500, 8, 2, 256)]:
        run(check_vertical_slash, T, Hq, Hkv, D, bf)
    run(check_vertical_slash, 3001, 28, 4, 128, fp)
    run(check_vertical_slash, 4096, 28, 4, 128, bf, band=1000, block=64)
    run(check_vertical_slash, 3001, 7, 1, 64, bf, band=10, block=128, block_n=128)
    run(check_vertical_slash, 3001, 28, 4, 128, bf, head_major=True)
    run(check_vertical_slash, 4096, 28, 4, 128, bf, band=1000, tma=False)
    run(check_vertical_slash, 4096, 28, 4, 128, bf, band=1000, block_n=64, tma=True)
    for T, Hq, Hkv, D, L in [(4096, 28, 4, 128, 256), (3001, 7, 1, 64, 100)]:
        run(check_scores, T, Hq, Hkv, D, L, bf)
    for lens, Hq, Hkv, D, budget, page, cpage, share in [
        ([8192, 3001, 77], 28, 4, 128, 1024, 16, 16, True), ([8192, 3001, 77], 28, 4, 128, 1024, 16, 16, False),
        ([5000, 4096], 7, 1, 64, 256, 16, 64, True), ([2049, 1500, 900, 4000], 8, 8, 128, 512, 32, 16, True)]:
        run(check_quest, lens, Hq, Hkv, D, budget, page, cpage, share, bf)
    run(check_quest_transformers_cache, 2, 5000, 28, 4, 128, 1024, 16, bf)
    run(check_quest_transformers_cache, 1, 2**22 + 5, 8, 8, 128, 4096, 16, bf, steps=1)  # 7 * S * 128 > 2**31
    run(check_quest_merge_repeats, 131072, 1, 4096, bf)
    run(check_quest_merge_repeats, 32768, 4, 16384, bf)
    print(f"{len(failures)} failures" + (": " + ", ".join(failures) if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
