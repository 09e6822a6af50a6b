"""Pattern estimation from the last queries (twin of `methods.vertical_slash.estimate_vertical_slash`).

`last_query_scores` gives, for the last L queries' causal softmax over all keys, the mass per key
column and per diagonal (offset i - j) without the [H, L, T] probability tensor of the reference:
  1. `_row_stats`: log-sum-exp of every last-query row, split over key ranges (partials combined in torch);
  2. `_column_and_diagonal_mass`: a persistent grid walks tiles t of B keys / B offsets. For its key
     tile it sums probabilities over the rows (columns: no atomics). For its offset tile it computes the
     scores of each row chunk against the window of keys the chunk's diagonals cross, stores them in a
     small per-program scratch tile (L2-resident), and reads them back skewed (row r, offset c at
     column r + B - 1 - c), so each diagonal becomes a column sum. Triton has no register shuffles for
     this; the scratch round trip costs far less than the tensor of the reference.
FlexPrefill's estimate needs the same two vectors.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from sftasks.errors import InputError

from ._checks import check_head_dim, check_tensors
from ._tile import LOG2E


@triton.jit
def _row_stats(Q, K, M, L, T, NL, qk_scale, keys_per_split,
               stride_qt, stride_qh, stride_kt, stride_kh,
               GROUP: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    head, rb, split = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    num_rb, num_split = tl.num_programs(1), tl.num_programs(2)
    offs_m = tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    r = rb * BLOCK_M + offs_m
    rows = (T - NL + r).to(tl.int64)
    row_ok = r < NL
    q = tl.load(Q + rows[:, None] * stride_qt + head * stride_qh + offs_d[None, :], mask=row_ok[:, None], other=0.0)
    k_base = K + (head // GROUP) * stride_kh + offs_d[:, None]
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    start = split * keys_per_split
    stop = tl.minimum(start + keys_per_split, T)
    for n0 in range(start, stop, BLOCK_N):
        keys = (n0 + offs_n).to(tl.int64)
        key_ok = keys < stop
        k = tl.load(k_base + keys[None, :] * stride_kt, mask=key_ok[None, :], other=0.0)
        s = tl.dot(q, k) * qk_scale
        s = tl.where(key_ok[None, :] & (keys[None, :] <= rows[:, None]), s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        l_i = l_i * tl.math.exp2(m_i - m_safe) + tl.sum(tl.math.exp2(s - m_safe[:, None]), 1)
        m_i = m_new
    out = (head * num_split + split) * num_rb * BLOCK_M + r
    tl.store(M + out, m_i, mask=row_ok)
    tl.store(L + out, l_i, mask=row_ok)


@triton.jit
def _column_and_diagonal_mass(Q, K, LSE, Cols, Diags, Scratch, T, NL, qk_scale, num_tiles, num_heads,
                              stride_qt, stride_qh, stride_kt, stride_kh,
                              GROUP: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK: tl.constexpr, ROWS: tl.constexpr):
    pid = tl.program_id(0)
    offs_r = tl.arange(0, ROWS)
    offs_b = tl.arange(0, BLOCK)
    offs_w = tl.arange(0, ROWS + BLOCK)
    offs_d = tl.arange(0, HEAD_DIM)
    scratch = Scratch + pid * (ROWS * (ROWS + BLOCK))
    tile_ptrs = scratch + offs_r[:, None] * (ROWS + BLOCK) + offs_w[None, :]
    # row r, offset c of the tile sits at window column r + BLOCK - 1 - c
    skew_ptrs = scratch + offs_r[:, None] * (ROWS + BLOCK) + offs_r[:, None] + BLOCK - 1 - offs_b[None, :]
    for work in range(pid, num_tiles * num_heads, tl.num_programs(0)):
        head = work % num_heads
        t = work // num_heads
        k_base = K + (head // GROUP) * stride_kh + offs_d[:, None]
        cols = (t * BLOCK + offs_b).to(tl.int64)
        col_sum = tl.zeros([BLOCK], dtype=tl.float32)
        diag_sum = tl.zeros([BLOCK], dtype=tl.float32)
        k_cols = tl.load(k_base + cols[None, :] * stride_kt, mask=cols[None, :] < T, other=0.0)
        for r0 in range(0, NL, ROWS):
            r = r0 + offs_r
            rows = (T - NL + r).to(tl.int64)
            row_ok = r < NL
            q = tl.load(Q + rows[:, None] * stride_qt + head * stride_qh + offs_d[None, :], mask=row_ok[:, None], other=0.0)
            lse = tl.load(LSE + head * NL + r, mask=row_ok, other=float("inf"))
            # columns: keys of tile t
            p = tl.math.exp2(tl.dot(q, k_cols) * qk_scale - lse[:, None])
            p = tl.where(row_ok[:, None] & (cols[None, :] <= rows[:, None]), p, 0.0)
            col_sum += tl.sum(p, 0)
            # diagonals t*BLOCK .. t*BLOCK+BLOCK-1: keys from the first row's last offset on
            j0 = T - NL + r0 - t * BLOCK - (BLOCK - 1)
            keys = (j0 + offs_w).to(tl.int64)
            key_ok = (keys >= 0) & (keys < T)
            k = tl.load(k_base + keys[None, :] * stride_kt, mask=key_ok[None, :], other=0.0)
            p = tl.math.exp2(tl.dot(q, k) * qk_scale - lse[:, None])
            p = tl.where(row_ok[:, None] & key_ok[None, :] & (keys[None, :] <= rows[:, None]), p, 0.0)
            tl.debug_barrier()  # the previous chunk's skewed reads are done
            tl.store(tile_ptrs, p)
            tl.debug_barrier()  # every thread's stores are visible
            diag_sum += tl.sum(tl.load(skew_ptrs), 0)
        tl.store(Cols + head * T + cols, col_sum, mask=cols < T)
        tl.store(Diags + head * T + cols, diag_sum, mask=cols < T)


def last_query_scores(q: torch.Tensor, k: torch.Tensor, last_q: int, *, block: int = 64, rows: int = 64,
                      num_programs: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(column mass [Hq, T], diagonal mass [Hq, T]) of the causal softmax of the last `last_q` queries:
    equal to `probs.sum(1)` and `diagonal_mass(probs)` of `methods.vertical_slash.last_query_probs`."""
    if q.dim() != 3 or k.dim() != 3 or q.shape[0] != k.shape[0] or q.shape[2] != k.shape[2] or q.shape[1] % k.shape[1]:
        raise InputError(f"expected q [T, Hq, D] and k [T, Hkv, D]; got {tuple(q.shape)}, {tuple(k.shape)}")
    T, Hq, D = q.shape
    check_head_dim(D)
    check_tensors(q, k)
    NL = min(last_q, T)
    group = Hq // k.shape[1]
    scale = D ** -0.5 * LOG2E
    num_rb = triton.cdiv(NL, rows)
    sms = torch.cuda.get_device_properties(q.device).multi_processor_count if q.is_cuda else 2
    splits = max(1, min(triton.cdiv(T, 1024), triton.cdiv(4 * sms, Hq * num_rb)))
    per_split = triton.cdiv(triton.cdiv(T, splits), 64) * 64
    splits = triton.cdiv(T, per_split)
    m = torch.empty(Hq, splits, num_rb * rows, device=q.device, dtype=torch.float32)
    l = torch.empty_like(m)
    _row_stats[(Hq, num_rb, splits)](q, k, m, l, T, NL, scale, per_split, q.stride(0), q.stride(1), k.stride(0), k.stride(1),
                                     GROUP=group, HEAD_DIM=D, BLOCK_M=rows, BLOCK_N=64, num_warps=4)
    m, l = m[..., :NL], l[..., :NL]
    m_max = m.amax(1, keepdim=True)
    lse = (m_max + torch.log2((l * torch.exp2(m - m_max)).sum(1, keepdim=True))).squeeze(1).contiguous()  # log2 units
    num_tiles = triton.cdiv(T, block)
    programs = min(num_tiles * Hq, num_programs or 8 * sms)
    scratch = torch.empty(programs, rows * (rows + block), device=q.device, dtype=torch.float32)
    cols = torch.empty(Hq, T, device=q.device, dtype=torch.float32)
    diags = torch.empty_like(cols)
    _column_and_diagonal_mass[(programs,)](q, k, lse, cols, diags, scratch, T, NL, scale, num_tiles, Hq,
                                           q.stride(0), q.stride(1), k.stride(0), k.stride(1),
                                           GROUP=group, HEAD_DIM=D, BLOCK=block, ROWS=rows, num_warps=4)
    return cols, diags


def estimate_vertical_slash(q: torch.Tensor, k: torch.Tensor, last_q: int, vertical_size: int, slash_size: int,
                            **options) -> tuple[torch.Tensor, torch.Tensor]:
    """(vertical_idx [Hq, NV], slash_offsets [Hq, NS]): the reference's choice (same forced sinks and
    local diagonals), from scores computed without the [Hq, L, T] tensor."""
    from sftasks.methods.vertical_slash import FORCED_SLASHES, FORCED_VERTICALS, top_with_forced

    cols, diags = last_query_scores(q, k, last_q, **options)
    positions = torch.arange(q.shape[0], device=q.device)
    return (top_with_forced(cols, vertical_size, positions < FORCED_VERTICALS),
            top_with_forced(diags, slash_size, positions < FORCED_SLASHES))
