"""Vertical-slash causal prefill attention (twin of `methods.vertical_slash.vertical_slash_attention`).

Exact semantics: query i attends key j <= i when j is a vertical column or i - j a slash offset.

Slash offsets are grouped into spans [d0, d1]: runs of consecutive offsets, with narrow runs at most
BLOCK // 2 apart merged into one span (which then has holes). For the query block of rows [r0, r0 + BLOCK),
a span's pairs lie among keys [r0 - d1, r0 + BLOCK - 1 - d0], which the kernel walks in BLOCK_N-key tiles
anchored at the range's start: tile t holds keys r0 - d1 + t * BLOCK_N + [0, BLOCK_N). A span of w offsets
takes ceil((BLOCK - 1 + w) / BLOCK_N) tiles, so a cluster of 64 diagonals costs three 128 x 64 tiles, where
tiles on a fixed key grid cost 4-6 (bench/RESULTS.md). The tiles are placed relative to r0, so the work
list is each head's span table, the same for every query block: one Triton program a head builds it
(`_work_lists`; torch ops for rows too long for registers), with no host round trip. Per query block:
  1. the tiles of a wide run (a local band) whose every pair lies on the run need no mask: the
     block-sparse kernel's loop, software-pipelined, K/V read through TMA on an H100;
  2. every other tile of each span, masked to d0 <= i - j <= d1 (and the slash bitmap at i - j in a
     span with holes); a narrow span (not a wide run) leaves keys that are columns to loop 3, one
     column-bitmap lookup a key;
  3. the vertical columns, BLOCK_N at a time from per-head copies of their K/V rows: every pair of a column
     off the wide runs. Columns older than the block's every wide-run pair (most of them) need no mask
     (their copies read through TMA on an H100); the few near the band's far edge are masked to j <= i and
     i - j off the wide runs (the slash bitmap holds 2 there); columns whose every pair lies on a band of
     offsets from 0 are not read.
The masked loops are not software-pipelined (`masked_stages`, default 1). Uncapped, pipelined masked loops
made ptxas serialise every wgmma of the kernel, loop 1's included ("non wgmma instructions defining
accumulator registers"; 42.1 vs 40.1 ms at 128k), and under the H100 tile's register cap they timed 0.2-0.35
ms slower at 128k (bench/RESULTS.md); a compile test holds the first. Masked tiles read K/V through pointers:
through TMA (fewer instructions a tile, where an H100 profile found that loop bound by its instructions) they
timed no faster (bench/RESULTS.md). The grid runs one KV head's programs together, as the block-sparse kernel
does.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from sftasks.errors import InputError

from ._checks import check_qkv, tma_rows
from ._rows import gather, sorted_unique
from ._tile import LOG2E, attend_tile, finish, kv_major_program


@triton.jit
def _span_tiles(d0, d1, holes, r0, BLOCK: tl.constexpr, BLOCK_N: tl.constexpr):
    """For span [d0, d1] and the query block at r0: (first tile with a key >= 0, first unmasked tile,
    end of the unmasked tiles, tile count). Tile t is unmasked when all its keys are >= 0 and every
    (row, key) offset lies in [d0, d1]: t >= ceil((BLOCK - 1) / BLOCK_N) and t < w // BLOCK_N for a
    span of w offsets with no holes; otherwise the unmasked range is empty (end = start)."""
    w = d1 - d0 + 1
    count = (BLOCK - 1 + w + BLOCK_N - 1) // BLOCK_N
    first = (tl.maximum(d1 - r0 - BLOCK_N + 1, 0) + BLOCK_N - 1) // BLOCK_N
    whole_lo = tl.maximum((BLOCK - 1 + BLOCK_N - 1) // BLOCK_N, (tl.maximum(d1 - r0, 0) + BLOCK_N - 1) // BLOCK_N)
    whole_hi = tl.where(holes != 0, 0, w // BLOCK_N)
    return first, whole_lo, tl.maximum(whole_hi, whole_lo), count


@triton.jit
def _tma_tile(KDesc, VDesc, row0, col0):
    """K (transposed) and V of the tile at (row0, col0), one TMA copy each; rows outside the tensor read as 0."""
    return tl.trans(KDesc.load([row0, col0])), VDesc.load([row0, col0])


@triton.jit
def _masked_span_tile(acc, m_i, l_i, q, k_base, v_base, slash, col_bits, rows, key0, d0, d1, narrow, offs_n, T,
                      qk_scale, stride_kt, stride_vt, HOLES: tl.constexpr):
    """Keys key0 + [0, BLOCK_N) against the block's rows, only pairs whose offset i - j is in span [d0, d1]
    (and set in the slash bitmap when the span has holes); a narrow span leaves column keys to the columns."""
    keys = key0 + offs_n
    key_ok = (keys >= 0) & (keys < T)
    k = tl.load(k_base + keys.to(tl.int64)[None, :] * stride_kt, mask=key_ok[None, :], other=0.0)
    v = tl.load(v_base + keys.to(tl.int64)[:, None] * stride_vt, mask=key_ok[:, None], other=0.0)
    # keys left out (outside [0, T), or columns in a narrow span) move far below every row, off the span
    left_out = ~key_ok | tl.where(narrow, tl.load(col_bits + keys, mask=key_ok, other=0) != 0, False)
    keys = tl.where(left_out, -(1 << 30), keys)
    delta = rows[:, None] - keys[None, :]
    mask = (delta - d0).to(tl.uint32) <= (d1 - d0).to(tl.uint32)  # d0 <= i - j <= d1 in one compare
    if HOLES:
        mask = mask & (tl.load(slash + delta, mask=mask, other=0) != 0)
    return attend_tile(acc, m_i, l_i, q, k, v, qk_scale, mask, True)


@triton.jit
def _column_tile(VertK, VertV, row0, offs_n, offs_d, HEAD_DIM: tl.constexpr):
    """K (transposed) and V of BLOCK_N columns, rows row0 + [0, BLOCK_N) of the [Hq * NV, D] copies."""
    rows = (row0 + offs_n).to(tl.int64)
    k = tl.load(VertK + rows[None, :] * HEAD_DIM + offs_d[:, None])
    v = tl.load(VertV + rows[:, None] * HEAD_DIM + offs_d[None, :])
    return k, v


@triton.jit
def _vertical_slash_fwd(
    Q, K, V, KDesc, VDesc, Out, SlashBits, SpanLo, SpanHi, SpanHoles, LiveSpans, WideLo, WideHi, WideCount,
    ColBits, Cols, ColClean, ColCount, VertK, VertV, VertKDesc, VertVDesc,
    T, qk_scale, num_blocks, max_spans, num_cols,
    stride_qt, stride_qh, stride_kt, stride_kh, stride_vt, stride_vh, stride_ot, stride_oh,
    GROUP: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK: tl.constexpr, BLOCK_N: tl.constexpr, USE_TMA: tl.constexpr,
    MASKED_STAGES: tl.constexpr,
):
    head, qb = kv_major_program(tl.program_id(0), num_blocks, GROUP)
    kvh = head // GROUP
    offs_m = tl.arange(0, BLOCK)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    r0 = qb * BLOCK
    rows = r0 + offs_m
    row_ok = rows < T
    q = tl.load(Q + rows.to(tl.int64)[:, None] * stride_qt + head * stride_qh + offs_d[None, :], mask=row_ok[:, None],
                other=0.0)
    k_base = K + kvh * stride_kh + offs_d[:, None]
    v_base = V + kvh * stride_vh + offs_d[None, :]
    slash = SlashBits + head.to(tl.int64) * T
    col_bits = ColBits + head.to(tl.int64) * T
    spans = head * max_spans

    acc = tl.zeros([BLOCK, HEAD_DIM], dtype=tl.float32)
    m_i = tl.full([BLOCK], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK], dtype=tl.float32)

    # 1. the unmasked tiles of the wide runs (few: usually one local band), pipelined
    for s in range(0, tl.load(WideCount + head)):
        d0 = tl.load(WideLo + spans + s)
        d1 = tl.load(WideHi + spans + s)
        _, whole_lo, whole_hi, _ = _span_tiles(d0, d1, 0, r0, BLOCK, BLOCK_N)
        for t in range(whole_lo, whole_hi):
            key0 = r0 - d1 + t * BLOCK_N
            if USE_TMA:
                k, v = _tma_tile(KDesc, VDesc, key0, kvh * HEAD_DIM)
            else:
                keys = (key0 + offs_n).to(tl.int64)
                k = tl.load(k_base + keys[None, :] * stride_kt)
                v = tl.load(v_base + keys[:, None] * stride_vt)
            acc, m_i, l_i = attend_tile(acc, m_i, l_i, q, k, v, qk_scale, 0, False)

    # 2. every other tile of the spans that reach this block (spans sorted by d0)
    for s in range(0, tl.load(LiveSpans + head * num_blocks + qb)):
        d0 = tl.load(SpanLo + spans + s)
        d1 = tl.load(SpanHi + spans + s)
        holes = tl.load(SpanHoles + spans + s)
        narrow = tl.load(slash + d0) != 2  # not a wide run
        first, whole_lo, whole_hi, count = _span_tiles(d0, d1, holes, r0, BLOCK, BLOCK_N)
        if holes != 0:  # every tile masked, and a bitmap lookup a pair: a loop of its own, out of the common one's
            for t in tl.range(first, count, num_stages=1):  # way (pipelined, its buffers took 160 KB in all)
                acc, m_i, l_i = _masked_span_tile(acc, m_i, l_i, q, k_base, v_base, slash, col_bits, rows,
                                                  r0 - d1 + t * BLOCK_N, d0, d1, narrow, offs_n, T, qk_scale,
                                                  stride_kt, stride_vt, True)
        else:
            has_whole = whole_hi > whole_lo
            before = tl.where(has_whole, whole_lo, count) - first  # masked tiles before the unmasked ones
            after = tl.where(has_whole, whole_hi, count)  # ... and the first one after them
            for j in tl.range(0, before + count - after, num_stages=MASKED_STAGES):  # module docstring
                t = tl.where(j < before, first + j, after + j - before)
                acc, m_i, l_i = _masked_span_tile(acc, m_i, l_i, q, k_base, v_base, slash, col_bits, rows,
                                                  r0 - d1 + t * BLOCK_N, d0, d1, narrow, offs_n, T, qk_scale,
                                                  stride_kt, stride_vt, False)

    # 3. vertical columns (sorted), from per-head copies of their K/V rows: contiguous tiles, no dependent
    #    gathers. The first n_clean are old enough that every pair lies past the wide runs: unmasked tiles.
    #    Columns up to n_cols have pairs of their own; later ones only pairs on the band (or above the block).
    n_clean = tl.load(ColClean + head * num_blocks + qb)
    n_cols = tl.load(ColCount + head * num_blocks + qb)
    vert = head * num_cols
    for c0 in range(0, n_clean, BLOCK_N):
        if USE_TMA:
            k, v = _tma_tile(VertKDesc, VertVDesc, vert + c0, 0)
        else:
            k, v = _column_tile(VertK, VertV, vert + c0, offs_n, offs_d, HEAD_DIM)
        acc, m_i, l_i = attend_tile(acc, m_i, l_i, q, k, v, qk_scale, 0, False)
    for c0 in tl.range(n_clean, n_cols, BLOCK_N, num_stages=MASKED_STAGES):  # module docstring
        k, v = _column_tile(VertK, VertV, vert + c0, offs_n, offs_d, HEAD_DIM)
        cols = tl.load(Cols + vert + c0 + offs_n)  # padding is T: above every row
        delta = rows[:, None] - cols[None, :]
        mask = (delta >= 0) & row_ok[:, None]
        mask = mask & (tl.load(slash + delta, mask=mask, other=2) != 2)  # pairs on a wide run are the run's
        acc, m_i, l_i = attend_tile(acc, m_i, l_i, q, k, v, qk_scale, mask, True)

    out = finish(acc, l_i)
    tl.store(Out + rows.to(tl.int64)[:, None] * stride_ot + head * stride_oh + offs_d[None, :],
             out.to(Out.dtype.element_ty), mask=row_ok[:, None])


@triton.jit
def _max(a, b):
    return tl.maximum(a, b)


@triton.jit
def _min(a, b):
    return tl.minimum(a, b)


@triton.jit
def _work_lists(Slash, Vert, SlashBits, SpanLo, SpanHi, SpanHoles, WideLo, WideHi, WideCount, ColBits, Cols, Scratch,
                T, n_slash, n_vert, NS: tl.constexpr, NV: tl.constexpr, BLOCK: tl.constexpr, BLOCK_N: tl.constexpr):
    """One head's work lists in one program (what `_lists_by_torch` builds, for rows that fit registers): the
    slash bitmap, the spans (sorted offsets cut into runs by scans, runs into spans), sorted unique columns
    and their bitmap."""
    h = tl.program_id(0)
    big = 2 * T
    offs = tl.arange(0, NS)
    scratch = Scratch + h * NS
    o = tl.load(Slash + h * n_slash + offs, mask=offs < n_slash, other=-1)
    valid = (o >= 0) & (o < T)
    x = sorted_unique(scratch, tl.where(valid, o, big).to(tl.int32), offs, big)
    real = x < big
    n = tl.sum(real.to(tl.int32), 0)
    prev = gather(scratch, x, offs, offs - 1, offs > 0, -2)
    new_run = x - prev > 1
    run_end = gather(scratch, x, offs, offs + 1, offs < NS - 1, big) - x > 1
    start = tl.associative_scan(tl.where(new_run, offs, 0), 0, _max)
    end = tl.associative_scan(tl.where(run_end, offs, NS - 1), 0, _min, reverse=True)
    width = tl.load(scratch + end) - tl.load(scratch + start) + 1  # scratch still holds x
    wide = real & (width // BLOCK_N > (BLOCK - 1 + BLOCK_N - 1) // BLOCK_N)
    tl.store(SlashBits + h.to(tl.int64) * T + x, tl.where(wide, 2, 1).to(tl.int8), mask=real)
    prev_wide = gather(scratch, wide.to(tl.int32), offs, offs - 1, offs > 0, 0) != 0
    # a new span at a wide run, after one, or after a gap of more than BLOCK // 2 offsets
    new_span = real & new_run & ((offs == 0) | wide | prev_wide | (x - prev - 1 > BLOCK // 2))
    next_new = gather(scratch, new_span.to(tl.int32), offs, offs + 1, offs < NS - 1, 1) != 0
    span_end = real & (next_new | (offs == n - 1))
    span = tl.cumsum(new_span.to(tl.int32), 0) - 1
    span_start = tl.associative_scan(tl.where(new_span, offs, 0), 0, _max)
    lo = gather(scratch, x, offs, span_start, True, 0)
    holes = x - lo != offs - span_start  # more offsets spanned than held
    row = h * NS
    tl.store(SpanLo + row + span, lo, mask=span_end)
    tl.store(SpanHi + row + span, x, mask=span_end)
    tl.store(SpanHoles + row + span, holes.to(tl.int8), mask=span_end)
    unused = offs >= tl.sum(new_span.to(tl.int32), 0)
    tl.store(SpanLo + row + offs, tl.full([NS], 0, tl.int32) + big, mask=unused)
    tl.store(SpanHi + row + offs, tl.full([NS], 0, tl.int32) + big, mask=unused)
    tl.store(SpanHoles + row + offs, tl.zeros([NS], tl.int8), mask=unused)
    wide_end = span_end & wide  # a wide run is a span of its own
    slot = tl.cumsum(wide_end.to(tl.int32), 0) - 1
    tl.store(WideLo + row + slot, lo, mask=wide_end)
    tl.store(WideHi + row + slot, x, mask=wide_end)
    tl.store(WideCount + h, tl.sum(wide_end.to(tl.int32), 0))
    # columns: sorted, unique, the rest T (above every row)
    offs_v = tl.arange(0, NV)
    c = tl.load(Vert + h * n_vert + offs_v, mask=offs_v < n_vert, other=-1)
    ok = (c >= 0) & (c < T)
    tl.store(ColBits + h.to(tl.int64) * T + c, tl.full([NV], 1, tl.int8), mask=ok)
    c = sorted_unique(Cols + h * NV, tl.where(ok, c, T).to(tl.int32), offs_v, T)
    tl.debug_barrier()
    tl.store(Cols + h * NV + offs_v, c)


def _bitmap(idx: torch.Tensor, T: int, value: torch.Tensor | int = 1) -> torch.Tensor:
    """[H, N] indices -> [H, T] int8, value at each index (0 elsewhere); indices outside [0, T) are dropped."""
    H = idx.shape[0]
    idx = idx.long()
    bits = torch.zeros(H, T + 1, dtype=torch.int8, device=idx.device)
    value = torch.as_tensor(value, dtype=torch.int8, device=idx.device).expand(idx.shape)
    bits.scatter_(1, torch.where((idx >= 0) & (idx < T), idx, T), value)
    return bits[:, :T].contiguous()


def _segments(starts_new: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, size: torch.Tensor, big: int):
    """Group ordered items per row into segments (starts_new marks each segment's first item): per
    segment slot, (min lo, max hi, sum of size); unused slots get lo = hi = big and size 0."""
    seg = starts_new.long().cumsum(-1) - 1
    H, N = lo.shape
    seg_lo = torch.full((H, N), big, dtype=lo.dtype, device=lo.device).scatter_reduce(1, seg, lo, "amin")
    seg_hi = torch.full((H, N), -1, dtype=hi.dtype, device=lo.device).scatter_reduce(1, seg, hi, "amax")
    seg_size = torch.zeros((H, N), dtype=size.dtype, device=lo.device).scatter_add(1, seg, size)
    return seg_lo, torch.where(seg_lo == big, big, seg_hi), seg_size


def slash_spans(slash_offsets: torch.Tensor, T: int, block: int, block_n: int) -> dict:
    """Per head, the spans [lo, hi] of the slash offsets in [0, T) (sorted, unused slots lo = hi = 2T) and
    whether each has holes; the wide runs (hole-free, with an unmasked tile) listed apart; the slash bitmap
    (2 at the wide runs' offsets, 1 at the others')."""
    H, N = slash_offsets.shape
    big = 2 * T
    o = slash_offsets.long()
    o = torch.where((o >= 0) & (o < T), o, big).sort(-1).values
    first = torch.ones(H, 1, dtype=torch.bool, device=o.device)
    starts = torch.cat([first, o[:, 1:] - o[:, :-1] > 1], 1)
    run_lo, run_hi, _ = _segments(starts, o, o, torch.ones_like(o), big)
    run_size = torch.where(run_lo < big, run_hi - run_lo + 1, 0)
    wide = run_size // block_n > -(-(block - 1) // block_n)  # has an unmasked tile in a late enough block
    in_wide = wide.gather(1, starts.long().cumsum(-1) - 1)  # per offset
    # a new span at a wide run, after one, or after a gap of more than block // 2 offsets
    gap = run_lo[:, 1:] - run_hi[:, :-1] - 1
    new = torch.cat([first, wide[:, 1:] | wide[:, :-1] | (gap > block // 2)], 1)
    lo, hi, size = _segments(new, run_lo, run_hi, run_size, big)
    holes = (lo < big) & (hi - lo + 1 != size)
    wide_first = torch.where(wide, run_lo, big).sort(-1)
    wide_hi = run_hi.gather(1, wide_first.indices)
    return dict(slash=_bitmap(o, T, torch.where(in_wide, 2, 1)),
                lo=lo.int().contiguous(), hi=hi.int().contiguous(), holes=holes.to(torch.int8).contiguous(),
                wide_lo=wide_first.values.int().contiguous(), wide_hi=wide_hi.int().contiguous(),
                wide_count=wide.sum(-1).int().contiguous())


MAX_ROW = 16384  # offsets or columns a head for the one-program list build (a row is held in registers)


def _lists_by_kernel(vertical_idx: torch.Tensor, slash_offsets: torch.Tensor, T: int, block: int, block_n: int) -> dict:
    """`_work_lists`: one launch (and two zeroed bitmaps) instead of ~50 small torch ops, whose launches cost
    ~1.3 ms of host time a call at 128k against 0.39 ms (bench/RESULTS.md)."""
    H, n_slash = slash_offsets.shape
    n_vert = vertical_idx.shape[1]
    NS = triton.next_power_of_2(max(n_slash, 2))
    NV = max(triton.next_power_of_2(max(n_vert, 2)), block_n)
    dev = slash_offsets.device
    i32, i8 = dict(dtype=torch.int32, device=dev), dict(dtype=torch.int8, device=dev)
    lists = dict(slash=torch.zeros(H, T, **i8), lo=torch.empty(H, NS, **i32), hi=torch.empty(H, NS, **i32),
                 holes=torch.empty(H, NS, **i8), wide_lo=torch.empty(H, NS, **i32), wide_hi=torch.empty(H, NS, **i32),
                 wide_count=torch.empty(H, **i32), col_bits=torch.zeros(H, T, **i8), cols=torch.empty(H, NV, **i32))
    _work_lists[(H,)](
        slash_offsets.contiguous(), vertical_idx.contiguous(), SlashBits=lists["slash"], SpanLo=lists["lo"],
        SpanHi=lists["hi"], SpanHoles=lists["holes"], WideLo=lists["wide_lo"], WideHi=lists["wide_hi"],
        WideCount=lists["wide_count"], ColBits=lists["col_bits"], Cols=lists["cols"], Scratch=torch.empty(H, NS, **i32),
        T=T, n_slash=n_slash, n_vert=n_vert, NS=NS, NV=NV, BLOCK=block, BLOCK_N=block_n, num_warps=8 if NS >= 4096 else 4)
    return lists


def _lists_by_torch(vertical_idx: torch.Tensor, slash_offsets: torch.Tensor, T: int, block: int, block_n: int) -> dict:
    """The same lists from torch ops, for any number of offsets and columns."""
    lists = slash_spans(slash_offsets, T, block, block_n)
    lists["col_bits"] = _bitmap(vertical_idx, T)
    # Vertical columns: sorted, de-duplicated, out-of-range ones pushed to T (above every row).
    cols = vertical_idx.to(torch.int32)
    cols = torch.where((cols >= 0) & (cols < T), cols, T).sort(dim=-1).values
    dup = torch.zeros_like(cols, dtype=torch.bool)
    dup[:, 1:] = cols[:, 1:] == cols[:, :-1]
    cols = torch.where(dup, T, cols).sort(dim=-1).values
    lists["cols"] = torch.nn.functional.pad(cols, (0, -cols.shape[1] % block_n), value=T).contiguous()  # whole tiles
    return lists


def build_work_lists(vertical_idx: torch.Tensor, slash_offsets: torch.Tensor, T: int, block: int, block_n: int,
                     by_kernel: bool | None = None) -> dict:
    """Everything the kernel reads, built on the inputs' device (no host sync). Per query block, the columns
    it reads: the first col_clean (whole tiles) older than every pair on a wide run, so no pair of theirs
    is masked, and up to col_count, past which a column's pairs all lie on a band of offsets from 0 (or
    above the block)."""
    if by_kernel is None:
        by_kernel = max(slash_offsets.shape[1], vertical_idx.shape[1]) <= MAX_ROW
    lists = (_lists_by_kernel if by_kernel else _lists_by_torch)(vertical_idx, slash_offsets, T, block, block_n)
    H, NS = lists["wide_lo"].shape
    nb = -(-T // block)
    block_start = (torch.arange(nb, device=vertical_idx.device, dtype=torch.int32) * block).expand(H, nb)
    lists["live"] = torch.searchsorted(lists["lo"], block_start + block - 1, right=True).int()  # d0 <= block end
    slot = torch.arange(NS, device=vertical_idx.device)
    wide_max = torch.where(slot < lists["wide_count"][:, None], lists["wide_hi"], -1).amax(1, keepdim=True)
    band = (lists["wide_count"][:, None] > 0) & (lists["wide_lo"][:, :1] == 0)
    band_hi = torch.where(band, lists["wide_hi"][:, :1], -1)
    clean = torch.searchsorted(lists["cols"], (block_start - 1 - wide_max).int(), right=True)
    lists["col_clean"] = (clean // block_n * block_n).int()
    lists["col_count"] = torch.searchsorted(lists["cols"], (block_start + block - 2 - band_hi).int(), right=True).int()
    return lists


def max_block(head_dim: int) -> int:
    """The largest query tile (and the default): 128, or 64 at head_dim 256; larger tiles need more shared
    memory than an H100 has (227 KB; a 128 tile at head_dim 256 asks 324 KB)."""
    return 128 if head_dim <= 128 else 64


def vertical_slash_attention(q, k, v, vertical_idx: torch.Tensor, slash_offsets: torch.Tensor, *,
                             block: int | None = None, block_n: int | None = None, num_warps: int | None = None,
                             num_stages: int | None = None, maxnreg: int | None = None, tma: bool | None = None,
                             masked_stages: int = 1, out: torch.Tensor | None = None) -> torch.Tensor:
    """Causal GQA attention of q [T, Hq, D] where query i sees key j <= i iff j is in vertical_idx[h]
    or i - j is in slash_offsets[h] (vertical_idx [Hq, NV], slash_offsets [Hq, NS]; out-of-range
    entries are ignored, duplicates count once). Rows with no key give 0. The keyword options are
    tuning knobs (bench/RESULTS.md says which paid)."""
    T, Hq, Hkv, D = check_qkv(q, k, v)
    for name, x in (("vertical_idx", vertical_idx), ("slash_offsets", slash_offsets)):
        if x.dim() != 2 or x.shape[0] != Hq:
            raise InputError(f"{name} must be [Hq={Hq}, N]; got {tuple(x.shape)}")
    largest = max_block(D)
    block = block or largest
    hopper_tile = q.is_cuda and torch.cuda.get_device_capability(q.device)[0] == 9 and block == 128 and D == 128
    default_tile = block_n is None and maxnreg is None
    block_n = block_n or (64 if hopper_tile else block)
    if not 16 <= block <= largest or block & (block - 1) or not 16 <= block_n <= block or block % block_n:
        raise InputError(f"block ({block}) must be a power of two from 16 to {largest} at head_dim {D}, "
                         f"and a multiple of block_n ({block_n}, at least 16)")
    h100_default = default_tile and hopper_tile
    if h100_default:  # as the block-sparse kernel's H100 tile: 128 x 64 under a 128-register cap (two programs an SM)
        maxnreg = 128
    if tma is None:
        tma = h100_default
    tma = tma and tma_rows(k) and tma_rows(v)
    lists = build_work_lists(vertical_idx.to(q.device), slash_offsets.to(q.device), T, block, block_n)
    nb = -(-T // block)
    rows = lists["cols"].clamp(max=T - 1).long()
    kv_head = (torch.arange(Hq, device=q.device) // (Hq // Hkv)).unsqueeze(1)
    vert_k, vert_v = k[rows, kv_head].contiguous(), v[rows, kv_head].contiguous()  # [Hq, NV, D]
    kdesc = vdesc = vert_kdesc = vert_vdesc = None
    if tma:
        from triton.tools.tensor_descriptor import TensorDescriptor

        kdesc, vdesc = (TensorDescriptor(x, [T, Hkv * D], [x.stride(0), 1], [block_n, D]) for x in (k, v))
        vert_kdesc, vert_vdesc = (TensorDescriptor(x, [x.shape[0] * x.shape[1], D], [D, 1], [block_n, D])
                                  for x in (vert_k, vert_v))
    out = torch.empty_like(q) if out is None else out
    launch = {} if maxnreg is None else {"maxnreg": maxnreg}
    _vertical_slash_fwd[(Hq * nb,)](
        q, k, v, kdesc, vdesc, out, lists["slash"], lists["lo"], lists["hi"], lists["holes"], lists["live"],
        lists["wide_lo"], lists["wide_hi"], lists["wide_count"], lists["col_bits"], lists["cols"], lists["col_clean"],
        lists["col_count"], vert_k, vert_v, vert_kdesc, vert_vdesc,
        T, D ** -0.5 * LOG2E, nb, lists["lo"].shape[1], lists["cols"].shape[1],
        q.stride(0), q.stride(1), k.stride(0), k.stride(1), v.stride(0), v.stride(1), out.stride(0), out.stride(1),
        GROUP=Hq // Hkv, HEAD_DIM=D, BLOCK=block, BLOCK_N=block_n, USE_TMA=tma, MASKED_STAGES=masked_stages,
        num_warps=num_warps or (8 if block >= 128 else 4), num_stages=num_stages or 2, **launch,
    )
    return out
