"""Vertical-slash causal prefill attention (twin of `methods.vertical_slash.vertical_slash_attention`).

Exact semantics: query i attends key j <= i when j is a vertical column or i - j a slash offset.

Work lists are built on the GPU with a handful of torch ops and no host round trip. The key idea:
with query and key tiles of the same size B, the slash offsets that can touch tile (query block qb,
key block kb) lie in ((m-1)B, (m+1)B) for m = qb - kb, a window that depends on m alone. So one
sorted list of "covered" distances m per head replaces MInference's per-block offset lists (and its
compiled CUDA index builder). Per query block the kernel then
  1. walks the covered key tiles qb - m (m ascending, m <= qb), BLOCK_N keys at a time, with an exact element mask
     (slash bitmap looked up at i - j, OR the vertical bitmap at j); tiles whose whole offset window is
     set ("full" tiles, typical of a dense local band) skip the lookup;
  2. attends to the vertical columns that lie outside covered tiles, BLOCK_N at a time, with a causal
     mask, from per-head copies of their K/V rows made once per call (a gather inside the loop would
     stall the software pipeline on the dependent index load).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from sftasks.errors import InputError

from ._checks import check_qkv
from ._tile import LOG2E, attend_tile, finish


@triton.jit
def _vertical_slash_fwd(
    Q, K, V, Out, SlashBits, VertBits, Cover, Full, MList, MCount, Cols, ColCount, VertK, VertV,
    T, qk_scale, num_blocks, num_cols,
    stride_qt, stride_qh, stride_kt, stride_kh, stride_vt, stride_vh, stride_ot, stride_oh,
    GROUP: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK: tl.constexpr, BLOCK_N: tl.constexpr,
):
    head = tl.program_id(0)
    qb = num_blocks - 1 - tl.program_id(1)
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

    acc = tl.zeros([BLOCK, HEAD_DIM], dtype=tl.float32)
    m_i = tl.full([BLOCK], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK], dtype=tl.float32)

    # 1. key tiles touched by slashes (distance m from the diagonal tile, m <= qb), BLOCK_N keys at a time
    n_tiles = tl.load(MCount + head * num_blocks + qb)
    inside = (qb + 1) * BLOCK <= T
    for t in range(0, n_tiles):
        m = tl.load(MList + head * num_blocks + t)
        full = tl.load(Full + head * num_blocks + m) != 0
        for n0 in tl.static_range(0, BLOCK, BLOCK_N):
            keys = (qb - m).to(tl.int64) * BLOCK + n0 + offs_n
            if full & (m > 0) & inside:  # a dense band tile: no mask at all
                k = tl.load(k_base + keys[None, :] * stride_kt)
                v = tl.load(v_base + keys[:, None] * stride_vt)
                acc, m_i, l_i = attend_tile(acc, m_i, l_i, q, k, v, qk_scale, 0, False)
            else:
                key_ok = keys < T
                k = tl.load(k_base + keys[None, :] * stride_kt, mask=key_ok[None, :], other=0.0)
                v = tl.load(v_base + keys[:, None] * stride_vt, mask=key_ok[:, None], other=0.0)
                mask = (keys[None, :] <= rows[:, None]) & row_ok[:, None]
                if not full:
                    on_slash = tl.load(slash + rows[:, None] - keys[None, :], mask=mask, other=0) != 0
                    on_vert = tl.load(vert + keys, mask=key_ok, other=0) != 0
                    mask = mask & (on_slash | on_vert[None, :])
                acc, m_i, l_i = attend_tile(acc, m_i, l_i, q, k, v, qk_scale, mask, True)

    # 2. vertical columns outside the covered tiles (sorted, so the first n_cols are <= the block's end),
    #    read from the per-head copies of their K/V rows: contiguous tiles, no dependent gathers
    n_cols = tl.load(ColCount + head * num_blocks + qb)
    cols_ptr = Cols + head * num_cols
    for c0 in range(0, n_cols, BLOCK_N):
        slot = c0 + offs_n
        cols = tl.load(cols_ptr + slot).to(tl.int64)
        covered = tl.load(Cover + head * num_blocks + qb - tl.minimum(cols, T - 1) // BLOCK) != 0
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
    mlist = torch.where(cover.bool(), m, nb).sort(dim=-1).values.to(torch.int32)
    qb = torch.arange(nb, device=dev, dtype=torch.int32).expand(H, nb).contiguous()
    mcount = torch.searchsorted(mlist, qb, right=True).to(torch.int32)
    # Vertical columns: sorted, de-duplicated, out-of-range ones pushed past T.
    cols = vertical_idx.to(torch.int32)
    cols = torch.where((cols >= 0) & (cols < T), cols, T).sort(dim=-1).values
    dup = torch.zeros_like(cols, dtype=torch.bool)
    dup[:, 1:] = cols[:, 1:] == cols[:, :-1]
    cols = torch.where(dup, T, cols).sort(dim=-1).values
    cols = torch.nn.functional.pad(cols, (0, -cols.shape[1] % pad_to), value=T).contiguous()  # whole tiles
    block_end = (qb + 1) * block - 1
    col_count = torch.searchsorted(cols, block_end, right=True).to(torch.int32)
    return dict(slash=slash, vert=vert, cover=cover.contiguous(), full=full.contiguous(), mlist=mlist.contiguous(),
                mcount=mcount.contiguous(), cols=cols, col_count=col_count.contiguous())


def vertical_slash_attention(q, k, v, vertical_idx: torch.Tensor, slash_offsets: torch.Tensor, *,
                             block: int = 128, block_n: int | None = None, num_warps: int | None = None,
                             num_stages: int | None = None, out: torch.Tensor | None = None) -> torch.Tensor:
    """Causal GQA attention of q [T, Hq, D] where query i sees key j <= i iff j is in vertical_idx[h]
    or i - j is in slash_offsets[h] (vertical_idx [Hq, NV], slash_offsets [Hq, NS]; out-of-range
    entries are ignored, duplicates count once). Rows with no key give 0."""
    T, Hq, Hkv, D = check_qkv(q, k, v)
    for name, x in (("vertical_idx", vertical_idx), ("slash_offsets", slash_offsets)):
        if x.dim() != 2 or x.shape[0] != Hq:
            raise InputError(f"{name} must be [Hq={Hq}, N]; got {tuple(x.shape)}")
    block_n = block_n or min(block, 128)
    if block < 16 or block & (block - 1) or block_n > block or block % block_n:
        raise InputError(f"block ({block}) must be a power of two >= 16 and a multiple of block_n ({block_n})")
    lists = build_work_lists(vertical_idx.to(q.device), slash_offsets.to(q.device), T, block, pad_to=block_n)
    nb = -(-T // block)
    rows = lists["cols"].clamp(max=T - 1).long()
    kv_head = (torch.arange(Hq, device=q.device) // (Hq // Hkv)).unsqueeze(1)
    vert_k, vert_v = k[rows, kv_head].contiguous(), v[rows, kv_head].contiguous()  # [Hq, NV, D]
    out = torch.empty_like(q) if out is None else out
    _vertical_slash_fwd[(Hq, nb)](
        q, k, v, out, lists["slash"], lists["vert"], lists["cover"], lists["full"], lists["mlist"], lists["mcount"],
        lists["cols"], lists["col_count"], vert_k, vert_v,
        T, D ** -0.5 * LOG2E, nb, lists["cols"].shape[1],
        q.stride(0), q.stride(1), k.stride(0), k.stride(1), v.stride(0), v.stride(1), out.stride(0), out.stride(1),
        GROUP=Hq // Hkv, HEAD_DIM=D, BLOCK=block, BLOCK_N=block_n,
        num_warps=num_warps or (8 if block >= 128 else 4), num_stages=num_stages or 2,
    )
    return out
