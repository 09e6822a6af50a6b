"""Vertical-slash causal prefill attention (twin of `methods.vertical_slash.vertical_slash_attention`).

Exact semantics: query i attends key j <= i when j is a vertical column or i - j a slash offset.

Work lists are built on the GPU with a handful of torch ops and no host round trip. The key idea:
with query and key tiles of the same size B, the slash offsets that can touch tile (query block qb,
key block kb) lie in ((m-1)B, (m+1)B) for m = qb - kb, a window that depends on m alone. So
sorted lists of "covered" distances m per head replace MInference's per-block offset lists (and its
compiled CUDA index builder). Per query block the kernel then
  1. walks the "whole" key tiles qb - m (m ascending, m <= qb) whose entire offset window is set (typical
     of a dense local band): no mask, the block-sparse kernel's inner loop, software-pipelined;
  2. walks the other covered tiles (and the diagonal one) with an exact element mask (slash bitmap
     looked up at i - j, OR the vertical bitmap at j); the two kinds are separate loops so that the first
     has no branch in its body (a branch there stops Triton from pipelining the loads);
  3. attends to the vertical columns that lie outside covered tiles, BLOCK_N at a time, with a causal
     mask, from per-head copies of their K/V rows made once per call (no dependent gather in the loop).
Loops 2 and 3 are not software-pipelined: pipelined, their masked tiles made ptxas serialise every
wgmma of the kernel, loop 1's included (each waited for the one before, "non wgmma instructions
defining accumulator registers"); unpipelined, the whole pattern at 128k took 40.1 ms, not 42.1
(bench/RESULTS.md). A compile test holds this.
The grid runs one KV head's programs together, as the block-sparse kernel does.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from sftasks.errors import InputError

from ._checks import check_qkv
from ._tile import LOG2E, attend_tile, finish, kv_major_program


@triton.jit
def _slash_tiles(acc, m_i, l_i, q, ms, count, qb, rows, row_ok, k_base, v_base, slash, vert, offs_n, T, qk_scale,
                 stride_kt, stride_vt, BLOCK: tl.constexpr, BLOCK_N: tl.constexpr, MODE: tl.constexpr):
    """The key tiles qb - ms[j], j < count, BLOCK_N keys a step (a tile of BLOCK keys is several steps of
    the loop itself, as in the block-sparse kernel, so the loop body holds one K/V load and the pipeline
    one set of stage buffers). MODE 0: whole tiles before the query block (no mask at all); 1: causal
    and bounds mask only (whole tiles of the ragged last block); 2: exact element mask (slash bitmap
    looked up at i - j, OR the vertical bitmap at j). One mode per loop, so no branch in the loop body
    stops the compiler from pipelining the loads. Only the MODE 0 loop is pipelined: MODE 1 sits in the
    other branch of an `if` from it, and Triton gives the two branches' stage buffers separate shared
    memory (288 KB at head_dim 128 on sm_90, over the 227 KB there); MODE 2 pipelined makes ptxas
    serialise the kernel's wgmma (module docstring)."""
    STEPS: tl.constexpr = BLOCK // BLOCK_N
    for t in tl.range(0, count * STEPS, num_stages=None if MODE == 0 else 1):
        m = tl.load(ms + t // STEPS)
        keys = (qb - m).to(tl.int64) * BLOCK + (t % STEPS) * BLOCK_N + offs_n
        if MODE == 0:
            k = tl.load(k_base + keys[None, :] * stride_kt)
            v = tl.load(v_base + keys[:, None] * stride_vt)
            acc, m_i, l_i = attend_tile(acc, m_i, l_i, q, k, v, qk_scale, 0, False)
        else:
            key_ok = keys < T
            k = tl.load(k_base + keys[None, :] * stride_kt, mask=key_ok[None, :], other=0.0)
            v = tl.load(v_base + keys[:, None] * stride_vt, mask=key_ok[:, None], other=0.0)
            mask = (keys[None, :] <= rows[:, None]) & row_ok[:, None]
            if MODE == 2:
                on_slash = tl.load(slash + rows[:, None] - keys[None, :], mask=mask, other=0) != 0
                on_vert = tl.load(vert + keys, mask=key_ok, other=0) != 0
                mask = mask & (on_slash | on_vert[None, :])
            acc, m_i, l_i = attend_tile(acc, m_i, l_i, q, k, v, qk_scale, mask, True)
    return acc, m_i, l_i


@triton.jit
def _vertical_slash_fwd(
    Q, K, V, Out, SlashBits, VertBits, Cover, FullList, FullCount, PartList, PartCount, Cols, ColCount, VertK, VertV,
    T, qk_scale, num_blocks, num_cols,
    stride_qt, stride_qh, stride_kt, stride_kh, stride_vt, stride_vh, stride_ot, stride_oh,
    GROUP: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK: tl.constexpr, BLOCK_N: tl.constexpr,
):
    head, qb = kv_major_program(tl.program_id(0), num_blocks, GROUP)
    kvh = head // GROUP
    offs_m = tl.arange(0, BLOCK)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    rows = qb.to(tl.int64) * BLOCK + offs_m
    row_ok = rows < T
    q = tl.load(Q + rows[:, None] * stride_qt + head * stride_qh + offs_d[None, :], mask=row_ok[:, None], other=0.0)
    k_base = K + kvh * stride_kh + offs_d[:, None]
    v_base = V + kvh * stride_vh + offs_d[None, :]
    slash = SlashBits + head.to(tl.int64) * T
    vert = VertBits + head.to(tl.int64) * T
    lists = head * num_blocks

    acc = tl.zeros([BLOCK, HEAD_DIM], dtype=tl.float32)
    m_i = tl.full([BLOCK], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK], dtype=tl.float32)

    # 1. key tiles wholly inside the slashes (a dense local band): no mask, unless the block is the ragged last one
    n_full = tl.load(FullCount + lists + qb)
    if (qb + 1) * BLOCK <= T:
        acc, m_i, l_i = _slash_tiles(acc, m_i, l_i, q, FullList + lists, n_full, qb, rows, row_ok, k_base, v_base, slash,
                                     vert, offs_n, T, qk_scale, stride_kt, stride_vt, BLOCK, BLOCK_N, 0)
    else:
        acc, m_i, l_i = _slash_tiles(acc, m_i, l_i, q, FullList + lists, n_full, qb, rows, row_ok, k_base, v_base, slash,
                                     vert, offs_n, T, qk_scale, stride_kt, stride_vt, BLOCK, BLOCK_N, 1)
    # 2. key tiles partly on slashes (and the diagonal tile): exact element mask
    n_part = tl.load(PartCount + lists + qb)
    acc, m_i, l_i = _slash_tiles(acc, m_i, l_i, q, PartList + lists, n_part, qb, rows, row_ok, k_base, v_base, slash,
                                 vert, offs_n, T, qk_scale, stride_kt, stride_vt, BLOCK, BLOCK_N, 2)

    # 3. vertical columns outside the covered tiles (sorted, so the first n_cols are <= the block's end),
    #    read from the per-head copies of their K/V rows: contiguous tiles, no dependent gathers
    n_cols = tl.load(ColCount + lists + qb)
    cols_ptr = Cols + head * num_cols
    for c0 in tl.range(0, n_cols, BLOCK_N, num_stages=1):  # not pipelined: see the module docstring
        slot = c0 + offs_n
        cols = tl.load(cols_ptr + slot).to(tl.int64)
        covered = tl.load(Cover + lists + qb - tl.minimum(cols, T - 1) // BLOCK) != 0
        col_ok = (slot < n_cols) & ~covered
        rows_kv = (head * num_cols + slot).to(tl.int64)
        k = tl.load(VertK + rows_kv[None, :] * HEAD_DIM + offs_d[:, None])
        v = tl.load(VertV + rows_kv[:, None] * HEAD_DIM + offs_d[None, :])
        mask = col_ok[None, :] & (cols[None, :] <= rows[:, None])
        acc, m_i, l_i = attend_tile(acc, m_i, l_i, q, k, v, qk_scale, mask, True)

    out = finish(acc, l_i)
    tl.store(Out + rows[:, None] * stride_ot + head * stride_oh + offs_d[None, :], out.to(Out.dtype.element_ty), mask=row_ok[:, None])


def _bitmap(idx: torch.Tensor, T: int) -> torch.Tensor:
    """[H, N] indices -> [H, T] int8 membership; indices outside [0, T) are dropped."""
    H = idx.shape[0]
    idx = idx.long()
    bits = torch.zeros(H, T + 1, dtype=torch.int8, device=idx.device)
    bits.scatter_(1, torch.where((idx >= 0) & (idx < T), idx, T), 1)
    return bits[:, :T].contiguous()


def build_work_lists(vertical_idx: torch.Tensor, slash_offsets: torch.Tensor, T: int, block: int, pad_to: int = 128) -> dict:
    """Everything the kernel reads, built with torch ops on the inputs' device (no host sync)."""
    H = vertical_idx.shape[0]
    nb = -(-T // block)
    dev = vertical_idx.device
    slash = _bitmap(slash_offsets, T)
    vert = _bitmap(vertical_idx, T)
    # Per offset block b: any / all offsets set, over [bB, (b+1)B) and over its tail [bB+1, (b+1)B).
    padded = torch.zeros(H, (nb + 1) * block, dtype=torch.int8, device=dev)
    padded[:, :T] = slash
    blocks = padded.view(H, nb + 1, block)
    any_all, any_tail = blocks.amax(-1), blocks[..., 1:].amax(-1)
    all_all, all_tail = blocks.amin(-1), blocks[..., 1:].amin(-1)
    # Distance m needs offsets in ((m-1)B, (m+1)B): block m, plus the tail of block m-1 (m >= 1).
    cover = any_all[:, :nb].clone()
    cover[:, 1:] |= any_tail[:, : nb - 1]
    full = all_all[:, :nb].clone()
    full[:, 1:] &= all_tail[:, : nb - 1]
    m = torch.arange(nb, device=dev, dtype=torch.int32).expand(H, nb)
    qb = torch.arange(nb, device=dev, dtype=torch.int32).expand(H, nb).contiguous()
    whole = full.bool() & (m > 0)  # off-diagonal and every offset of its window set: no mask needed

    def ascending(keep):  # sorted distances m of a kind, and how many of them each query block reaches (m <= qb)
        ms = torch.where(keep, m, nb).sort(dim=-1).values.to(torch.int32).contiguous()
        return ms, torch.searchsorted(ms, qb, right=True).to(torch.int32).contiguous()

    full_list, full_count = ascending(whole)
    part_list, part_count = ascending(cover.bool() & ~whole)
    # Vertical columns: sorted, de-duplicated, out-of-range ones pushed past T.
    cols = vertical_idx.to(torch.int32)
    cols = torch.where((cols >= 0) & (cols < T), cols, T).sort(dim=-1).values
    dup = torch.zeros_like(cols, dtype=torch.bool)
    dup[:, 1:] = cols[:, 1:] == cols[:, :-1]
    cols = torch.where(dup, T, cols).sort(dim=-1).values
    cols = torch.nn.functional.pad(cols, (0, -cols.shape[1] % pad_to), value=T).contiguous()  # whole tiles
    block_end = (qb + 1) * block - 1
    col_count = torch.searchsorted(cols, block_end, right=True).to(torch.int32)
    return dict(slash=slash, vert=vert, cover=cover.contiguous(), full_list=full_list, full_count=full_count,
                part_list=part_list, part_count=part_count, cols=cols, col_count=col_count.contiguous())


def max_block(head_dim: int) -> int:
    """The largest tile (and the default): 128, or 64 at head_dim 256; larger tiles need more shared memory
    than an H100 has (227 KB; a 128 tile at head_dim 256 asks 324 KB)."""
    return 128 if head_dim <= 128 else 64


def vertical_slash_attention(q, k, v, vertical_idx: torch.Tensor, slash_offsets: torch.Tensor, *,
                             block: int | None = None, block_n: int | None = None, num_warps: int | None = None,
                             num_stages: int | None = None, maxnreg: int | None = None,
                             out: torch.Tensor | None = None) -> torch.Tensor:
    """Causal GQA attention of q [T, Hq, D] where query i sees key j <= i iff j is in vertical_idx[h]
    or i - j is in slash_offsets[h] (vertical_idx [Hq, NV], slash_offsets [Hq, NS]; out-of-range
    entries are ignored, duplicates count once). Rows with no key give 0."""
    T, Hq, Hkv, D = check_qkv(q, k, v)
    for name, x in (("vertical_idx", vertical_idx), ("slash_offsets", slash_offsets)):
        if x.dim() != 2 or x.shape[0] != Hq:
            raise InputError(f"{name} must be [Hq={Hq}, N]; got {tuple(x.shape)}")
    largest = max_block(D)
    block = block or largest
    block_n = block_n or block
    if not 16 <= block <= largest or block & (block - 1) or block_n > block or block % block_n:
        raise InputError(f"block ({block}) must be a power of two from 16 to {largest} at head_dim {D}, "
                         f"and a multiple of block_n ({block_n})")
    lists = build_work_lists(vertical_idx.to(q.device), slash_offsets.to(q.device), T, block, pad_to=block_n)
    nb = -(-T // block)
    rows = lists["cols"].clamp(max=T - 1).long()
    kv_head = (torch.arange(Hq, device=q.device) // (Hq // Hkv)).unsqueeze(1)
    vert_k, vert_v = k[rows, kv_head].contiguous(), v[rows, kv_head].contiguous()  # [Hq, NV, D]
    out = torch.empty_like(q) if out is None else out
    launch = {} if maxnreg is None else {"maxnreg": maxnreg}
    _vertical_slash_fwd[(Hq * nb,)](
        q, k, v, out, lists["slash"], lists["vert"], lists["cover"], lists["full_list"], lists["full_count"],
        lists["part_list"], lists["part_count"], lists["cols"], lists["col_count"], vert_k, vert_v,
        T, D ** -0.5 * LOG2E, nb, lists["cols"].shape[1],
        q.stride(0), q.stride(1), k.stride(0), k.stride(1), v.stride(0), v.stride(1), out.stride(0), out.stride(1),
        GROUP=Hq // Hkv, HEAD_DIM=D, BLOCK=block, BLOCK_N=block_n,
        num_warps=num_warps or (8 if block >= 128 else 4), num_stages=num_stages or 2, **launch,
    )
    return out
