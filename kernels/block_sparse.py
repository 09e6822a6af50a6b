"""Block-sparse causal prefill attention (twin of `methods.block_sparse.block_sparse_attention`).

One program per (query head, query tile): a query block of up to 128 rows is one tile, a larger one
is cut into 128-row tiles sharing its key list (a 256-row tile would need 320 KB of shared memory at
head_dim 128, over the H100's 227 KB). The wrapper turns the caller's block lists into sorted,
de-duplicated lists of the causal blocks (one small Triton launch), so the kernel loops over full
off-diagonal blocks with no masks and handles the diagonal block, if listed, last with the causal mask.
On an H100 each K/V tile is one TMA copy from its first row, taken from the list, and the diagonal's
tiles run in a software-pipelined loop of their own (an unrolled loop waited for each tile's copies
before its products: 13.16 -> 12.81 ms at 128k and 95% sparsity, bench/RESULTS.md). The grid runs one
KV head's programs together, the heads of a GQA group side by side, so what they read of that head's
K/V is shared through L2 (their lists differ, so one load per group would cost FLOPs on the union of
the lists).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from sftasks.errors import InputError

from ._checks import check_qkv, tma_rows
from ._rows import sorted_unique
from ._tile import LOG2E, attend_tile, finish, kv_major_program


@triton.jit
def _load_kv(KDesc, VDesc, k_base, v_base, row0, offs_n, key_ok, col0, stride_kt, stride_vt,
             USE_TMA: tl.constexpr, MASKED: tl.constexpr):
    """K tile [D, N] and V tile [N, D] of keys row0 + offs_n: through the TMA engine (rows past the end
    read as zeros) or through pointers."""
    keys = row0 + offs_n
    if USE_TMA:
        k = tl.trans(KDesc.load([row0.to(tl.int32), col0]))
        v = VDesc.load([row0.to(tl.int32), col0])
    elif MASKED:
        k = tl.load(k_base + keys[None, :] * stride_kt, mask=key_ok[None, :], other=0.0)
        v = tl.load(v_base + keys[:, None] * stride_vt, mask=key_ok[:, None], other=0.0)
    else:
        k = tl.load(k_base + keys[None, :] * stride_kt)
        v = tl.load(v_base + keys[:, None] * stride_vt)
    return k, v


@triton.jit
def _off_diagonal_tile(acc, m_i, l_i, q, list_ptr, i, KDesc, VDesc, k_base, v_base, offs_n, kvh, qk_scale,
                       stride_kt, stride_vt, BLOCK_SIZE: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_N: tl.constexpr,
                       USE_TMA: tl.constexpr):
    """Key tile i of the off-diagonal blocks (a block larger than BLOCK_N is several tiles, walked by the
    same loop, so that the loop body holds one K/V load and the pipeline one set of stage buffers).
    These blocks lie wholly before the query block: no causal mask, and no bounds mask when tiles divide them."""
    TILES_N: tl.constexpr = (BLOCK_SIZE + BLOCK_N - 1) // BLOCK_N
    kb = tl.load(list_ptr + i // TILES_N).to(tl.int64)
    n0 = (i % TILES_N) * BLOCK_N
    row0 = kb * BLOCK_SIZE + n0
    if BLOCK_SIZE % BLOCK_N == 0:
        k, v = _load_kv(KDesc, VDesc, k_base, v_base, row0, offs_n, 0, kvh * HEAD_DIM, stride_kt, stride_vt, USE_TMA, False)
        acc, m_i, l_i = attend_tile(acc, m_i, l_i, q, k, v, qk_scale, 0, False)
    else:
        key_ok = (n0 + offs_n) < BLOCK_SIZE
        k, v = _load_kv(KDesc, VDesc, k_base, v_base, row0, offs_n, key_ok, kvh * HEAD_DIM, stride_kt, stride_vt, False, True)
        acc, m_i, l_i = attend_tile(acc, m_i, l_i, q, k, v, qk_scale, key_ok[None, :], True)
    return acc, m_i, l_i


@triton.jit
def _diagonal_tile(acc, m_i, l_i, q, KDesc, VDesc, k_base, v_base, qb, n0, offs_m, offs_n, kvh, T, qk_scale,
                   stride_kt, stride_vt, BLOCK_SIZE: tl.constexpr, HEAD_DIM: tl.constexpr, USE_TMA: tl.constexpr):
    """Key tile n0 of the diagonal block, causal (positions within the block). Keys past T or past the
    block lie above every row that is stored, so the causal mask covers them; their loads read zeros."""
    row0 = qb * BLOCK_SIZE + n0
    key_ok = ((n0 + offs_n) < BLOCK_SIZE) & (row0 + offs_n < T)
    k, v = _load_kv(KDesc, VDesc, k_base, v_base, row0, offs_n, key_ok, kvh * HEAD_DIM, stride_kt, stride_vt, USE_TMA, True)
    mask = (n0 + offs_n)[None, :] <= offs_m[:, None]
    return attend_tile(acc, m_i, l_i, q, k, v, qk_scale, mask, True)


@triton.jit
def _block_sparse_fwd(
    Q, K, V, KDesc, VDesc, Out, Idx, Count,
    T, qk_scale, num_qblocks, num_idx,
    stride_qt, stride_qh, stride_kt, stride_kh, stride_vt, stride_vh, stride_ot, stride_oh,
    BLOCK_SIZE: tl.constexpr, GROUP: tl.constexpr, HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, USE_TMA: tl.constexpr, WARP_SPEC: tl.constexpr,
    KV_MAJOR: tl.constexpr,
):
    TILES: tl.constexpr = (BLOCK_SIZE + BLOCK_M - 1) // BLOCK_M  # query tiles per query block
    if KV_MAJOR:
        head, tile = kv_major_program(tl.program_id(0), num_qblocks * TILES, GROUP)
    else:
        head = tl.program_id(0)
        tile = num_qblocks * TILES - 1 - tl.program_id(1)  # heaviest (latest) query blocks first
    qb = tile // TILES
    kvh = head // GROUP
    offs_m = (tile % TILES) * BLOCK_M + tl.arange(0, BLOCK_M)  # rows within the query block
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    rows = qb.to(tl.int64) * BLOCK_SIZE + offs_m
    row_ok = (offs_m < BLOCK_SIZE) & (rows < T)
    q = tl.load(Q + rows[:, None] * stride_qt + head * stride_qh + offs_d[None, :], mask=row_ok[:, None], other=0.0)
    k_base = K + kvh * stride_kh + offs_d[:, None]
    v_base = V + kvh * stride_vh + offs_d[None, :]

    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)

    list_ptr = Idx + (head * num_qblocks + qb) * num_idx
    n = tl.load(Count + head * num_qblocks + qb)
    last = tl.load(list_ptr + tl.maximum(n - 1, 0))
    has_diag = ((n > 0) & (last == qb)).to(tl.int32)
    # Off-diagonal blocks lie wholly before the query block: no causal or bounds mask.
    key_tiles = (n - has_diag) * ((BLOCK_SIZE + BLOCK_N - 1) // BLOCK_N)
    if WARP_SPEC:
        for i in tl.range(0, key_tiles, warp_specialize=True):
            acc, m_i, l_i = _off_diagonal_tile(acc, m_i, l_i, q, list_ptr, i, KDesc, VDesc, k_base, v_base, offs_n,
                                               kvh, qk_scale, stride_kt, stride_vt, BLOCK_SIZE, HEAD_DIM, BLOCK_N, USE_TMA)
    else:
        for i in range(0, key_tiles):
            acc, m_i, l_i = _off_diagonal_tile(acc, m_i, l_i, q, list_ptr, i, KDesc, VDesc, k_base, v_base, offs_n,
                                               kvh, qk_scale, stride_kt, stride_vt, BLOCK_SIZE, HEAD_DIM, BLOCK_N, USE_TMA)
    if USE_TMA:  # a pipelined loop: the next tile's copies are issued before this tile's products
        for j in range(0, has_diag * (BLOCK_SIZE // BLOCK_N)):
            acc, m_i, l_i = _diagonal_tile(acc, m_i, l_i, q, KDesc, VDesc, k_base, v_base, qb, j * BLOCK_N, offs_m, offs_n,
                                           kvh, T, qk_scale, stride_kt, stride_vt, BLOCK_SIZE, HEAD_DIM, True)
    elif has_diag:  # pointer loads with bounds masks, unrolled (not measured pipelined)
        for n0 in tl.static_range(0, BLOCK_SIZE, BLOCK_N):
            acc, m_i, l_i = _diagonal_tile(acc, m_i, l_i, q, KDesc, VDesc, k_base, v_base, qb, n0, offs_m, offs_n,
                                           kvh, T, qk_scale, stride_kt, stride_vt, BLOCK_SIZE, HEAD_DIM, False)
    out = finish(acc, l_i)
    tl.store(Out + rows[:, None] * stride_ot + head * stride_oh + offs_d[None, :], out.to(Out.dtype.element_ty), mask=row_ok[:, None])


@triton.jit
def _causal_lists(In, Out, Count, num_qblocks, K, KP: tl.constexpr):
    """One (head, query block) row: drop padding and ids above the block, sort, drop duplicates (the output
    row serves as the scratch that finds them)."""
    row = tl.program_id(0)
    qb = row % num_qblocks
    offs = tl.arange(0, KP)
    big = 2**31 - 1
    x = tl.load(In + row.to(tl.int64) * K + offs, mask=offs < K, other=-1)
    out = Out + row.to(tl.int64) * KP
    x = sorted_unique(out, tl.where((x < 0) | (x > qb), big, x).to(tl.int32), offs, big)
    tl.debug_barrier()
    tl.store(out + offs, x)
    tl.store(Count + row, tl.sum((x != big).to(tl.int32), 0))


def causal_block_lists(block_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted, duplicate-free lists of causal key blocks, padded at the end, and their lengths (one launch).

    Entries < 0 (padding) and > the query block are dropped, as the reference ignores them.
    """
    H, nqb, K = block_index.shape
    KP = triton.next_power_of_2(max(K, 2))
    idx = torch.empty(H, nqb, KP, dtype=torch.int32, device=block_index.device)
    count = torch.empty(H, nqb, dtype=torch.int32, device=block_index.device)
    _causal_lists[(H * nqb,)](block_index.contiguous(), idx, count, nqb, K, KP=KP)
    return idx, count


def _tiles(block_size: int, head_dim: int, hopper: bool = False) -> tuple[int, int, int | None]:
    """(BLOCK_M, BLOCK_N, register cap): query tiles of one block up to 128 rows (larger blocks take
    several), key tiles of at most 128 (64 at head_dim 256: 128-key tiles there need 320 KB of shared
    memory). On Hopper at head_dim 128, 128 x 64 tiles with 128 registers a thread let two 8-warp
    programs share an SM, so one's softmax overlaps the other's matrix products (H100, 128k: 29.7 ->
    27.1 ms at 90% sparsity, bench/RESULTS.md); a 128 x 128 tile under that cap spills (10x slower).
    Other GPUs keep the uncapped tiles: the cap was measured only on an H100. That tile also reads K/V
    through the TMA engine by default, where the K/V layout allows (`tma_rows`)."""
    block_m = min(max(16, triton.next_power_of_2(block_size)), 128)
    if hopper and head_dim == 128 and block_m == 128:
        return 128, 64, 128
    return block_m, block_m if head_dim <= 128 else min(block_m, 64), None


def block_sparse_attention(q, k, v, block_index: torch.Tensor, block_size: int, *, num_warps: int | None = None,
                           num_stages: int | None = None, block_n: int | None = None, tma: bool | None = None,
                           warp_specialize: bool = False, kv_major: bool = True, maxnreg: int | None = None,
                           out: torch.Tensor | None = None) -> torch.Tensor:
    """Causal GQA attention of q [T, Hq, D] over the key blocks listed per head and query block.

    block_index: [Hq, ceil(T/block_size), K] key-block ids, -1 padded; ids above the query block are
    ignored; duplicates count once; the diagonal block, if listed, is causal. Rows with no key give 0.
    The keyword options are tuning knobs (bench/RESULTS.md says which paid; `tma` applies where the K/V
    layout allows it); `out` receives the result.
    """
    T, Hq, Hkv, D = check_qkv(q, k, v)
    nqb = -(-T // block_size)
    if block_index.dim() != 3 or block_index.shape[:2] != (Hq, nqb):
        raise InputError(f"block_index must be [Hq={Hq}, ceil(T/block_size)={nqb}, K]; got {tuple(block_index.shape)}")
    if block_size < 1 or block_size > 1024:
        raise InputError(f"block_size {block_size} is out of range for the kernel; use 1..1024")
    if block_index.shape[-1] == 0:
        block_index = torch.full((Hq, nqb, 1), -1, dtype=torch.long)
    idx, count = causal_block_lists(block_index.to(q.device))
    out = torch.empty_like(q) if out is None else out
    hopper = q.is_cuda and torch.cuda.get_device_capability(q.device)[0] == 9
    block_m, bn, cap = _tiles(block_size, D, hopper)
    default_tile = block_n is None and maxnreg is None
    if tma is None:  # TMA loads belong to the default Hopper tile: 128k, 90%: 25.9 -> 23.8 ms (bench/RESULTS.md)
        tma = default_tile and cap is not None
    if default_tile:
        maxnreg = cap  # the cap belongs to the default tile; a chosen tile runs uncapped unless asked
    bn = block_n or bn
    if num_warps is None:
        num_warps = 8 if block_m >= 128 else 4
    if num_stages is None:
        num_stages = 2
    tma = tma and block_size % bn == 0 and tma_rows(k) and tma_rows(v)
    kdesc = vdesc = None
    if tma:
        from triton.tools.tensor_descriptor import TensorDescriptor

        kdesc, vdesc = (TensorDescriptor(x, [T, Hkv * D], [x.stride(0), 1], [bn, D]) for x in (k, v))
    tiles = nqb * triton.cdiv(block_size, block_m)
    grid = (Hq * tiles,) if kv_major else (Hq, tiles)
    launch = {} if maxnreg is None else {"maxnreg": maxnreg}  # a register cap, e.g. for two programs per SM
    _block_sparse_fwd[grid](
        q, k, v, kdesc, vdesc, out, idx, count,
        T, D ** -0.5 * LOG2E, nqb, idx.shape[-1],
        q.stride(0), q.stride(1), k.stride(0), k.stride(1), v.stride(0), v.stride(1), out.stride(0), out.stride(1),
        BLOCK_SIZE=block_size, GROUP=Hq // Hkv, HEAD_DIM=D, BLOCK_M=block_m, BLOCK_N=bn, USE_TMA=tma,
        WARP_SPEC=warp_specialize, KV_MAJOR=kv_major,
        num_warps=num_warps, num_stages=num_stages, **launch,
    )
    return out
