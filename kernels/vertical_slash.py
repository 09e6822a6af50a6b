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
from ._tile import LOG2E, attend_tile, finish, kv_major_program


SPAN_HOLES = tl.constexpr(1)  # a span's kind (the work lists' `kind`): its offsets are not all consecutive
SPAN_WIDE = tl.constexpr(2)  # ... it is a wide run, with unmasked tiles (loop 1); 0: neither


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
    Q, K, V, KDesc, VDesc, Out, SlashBits, SpanLo, SpanHi, SpanKind, LiveSpans, WideLo, WideHi, WideCount,
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
    # this block's counts, loaded now so that no loop below waits for them
    live_spans = tl.load(LiveSpans + head * num_blocks + qb)
    n_clean = tl.load(ColClean + head * num_blocks + qb)
    n_cols = tl.load(ColCount + head * num_blocks + qb)

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
    for s in range(0, live_spans):
        d0 = tl.load(SpanLo + spans + s)
        d1 = tl.load(SpanHi + spans + s)
        kind = tl.load(SpanKind + spans + s)  # loaded with d0 and d1: no load waits on another
        holes = (kind == SPAN_HOLES).to(tl.int32)
        narrow = kind != SPAN_WIDE
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
def _copy_columns(K, V, Cols, VertK, VertV, T, num_cols, stride_kt, stride_kh, stride_vt, stride_vh,
                  GROUP: tl.constexpr, HEAD_DIM: tl.constexpr, ROWS: tl.constexpr):
    """Rows c0 + [0, ROWS) of a query head's column copies: the K/V rows of its sorted columns (padding T reads
    row T - 1), contiguous, so the attention reads them as tiles (one launch, not torch's index and copy)."""
    head, c0 = tl.program_id(0), tl.program_id(1) * ROWS
    kvh = (head // GROUP).to(tl.int64)
    slots = head * num_cols + c0 + tl.arange(0, ROWS)
    key = tl.minimum(tl.load(Cols + slots), T - 1).to(tl.int64)
    offs_d = tl.arange(0, HEAD_DIM)
    dst = slots.to(tl.int64)[:, None] * HEAD_DIM + offs_d[None, :]
    tl.store(VertK + dst, tl.load(K + key[:, None] * stride_kt + kvh * stride_kh + offs_d[None, :]))
    tl.store(VertV + dst, tl.load(V + key[:, None] * stride_vt + kvh * stride_vh + offs_d[None, :]))


@triton.jit
def _max(a, b):
    return tl.maximum(a, b)


@triton.jit
def _max3(a0, b0, c0, a1, b1, c1):
    return tl.maximum(a0, a1), tl.maximum(b0, b1), tl.maximum(c0, c1)


@triton.jit
def _span_scan(n0, s0, w0, n1, s1, w1):
    return n0 + n1, tl.maximum(s0, s1), w0 + w1


@triton.jit
def _popcount(w):
    """Set bits of each int32 (SWAR; the masks drop what an arithmetic shift brings in)."""
    w = w - ((w >> 1) & 0x55555555)
    w = (w & 0x33333333) + ((w >> 2) & 0x33333333)
    return (((w + (w >> 4)) & 0x0F0F0F0F) * 0x01010101) >> 24


@triton.jit
def _ranks(values, ok, Words, Before, bits_shift):
    """Rank of each value among the distinct values marked in the bit words (set bits in words before its own,
    Before's packed field at bits_shift, plus those below it in its word): a sort that needs no sort."""
    word = values >> 5
    below = tl.load(Words + word, mask=ok, other=0, cache_modifier=".cg") & ((1 << (values & 31)) - 1)
    return ((tl.load(Before + word, mask=ok, other=0) >> bits_shift) & 0xFFFF) + _popcount(below)


@triton.jit
def _work_lists(Slash, Vert, SlashBits, SpanLo, SpanHi, SpanKind, WideLo, WideHi, WideCount, ColBits, Cols,
                SlashWords, ColWords, Before, Scratch, Live, ColClean, ColCount, T, n_slash, n_vert, num_words,
                num_blocks, NS: tl.constexpr, NV: tl.constexpr, BLOCK: tl.constexpr, BLOCK_N: tl.constexpr,
                WORDS_CHUNK: tl.constexpr, BLOCKS_CHUNK: tl.constexpr):
    """One head's work lists in one program (what `_lists_by_torch` and `_block_counts` build, for rows that
    fit registers). Block-wide scans are this program's cost (5-10 us each at 8192 values on an H100), so it
    uses few: the offsets and columns are sorted by their ranks in bit words (one scan of T / 32 popcounts,
    both kinds in it), runs and spans come from gathers and two scans, and the per-block counts from one.
    SlashBits, ColBits, the words, Live, ColClean and ColCount arrive zeroed."""
    h = tl.program_id(0)
    big = 2 * T
    offs = tl.arange(0, NS)
    offs_v = tl.arange(0, NV)
    scratch = Scratch + h * 2 * NS
    slash_bits = SlashBits + h.to(tl.int64) * T
    col_bits = ColBits + h.to(tl.int64) * T
    slash_words = SlashWords + h * num_words
    col_words = ColWords + h * num_words
    before = Before + h * num_words
    o = tl.load(Slash + h * n_slash + offs, mask=offs < n_slash, other=-1)
    o_ok = (o >= 0) & (o < T)
    c = tl.load(Vert + h * n_vert + offs_v, mask=offs_v < n_vert, other=-1)
    c_ok = (c >= 0) & (c < T)
    tl.store(slash_bits + o, tl.full([NS], 1, tl.int8), mask=o_ok)
    tl.store(col_bits + c, tl.full([NV], 1, tl.int8), mask=c_ok)
    o = tl.where(o_ok, o, 0).to(tl.int32)  # no address outside the rows, even masked; int32 bit words
    c = tl.where(c_ok, c, 0).to(tl.int32)
    tl.atomic_or(slash_words + (o >> 5), 1 << (o & 31), mask=o_ok, sem="relaxed")
    tl.atomic_or(col_words + (c >> 5), 1 << (c & 31), mask=c_ok, sem="relaxed")
    tl.debug_barrier()
    # set bits before each word, the offsets' count in the low 16 bits and the columns' in the high (<= MAX_ROW each)
    seen = 0
    for w0 in range(0, num_words, WORDS_CHUNK):
        w = w0 + tl.arange(0, WORDS_CHUNK)
        w_ok = w < num_words
        bits = _popcount(tl.load(slash_words + w, mask=w_ok, other=0, cache_modifier=".cg")) + \
            (_popcount(tl.load(col_words + w, mask=w_ok, other=0, cache_modifier=".cg")) << 16)
        upto = tl.cumsum(bits, 0)
        tl.store(before + w, seen + upto - bits, mask=w_ok)
        seen += tl.max(upto, 0)  # the last prefix: both fields only grow
    n = seen & 0xFFFF
    n_cols = seen >> 16
    tl.debug_barrier()
    # distinct values land on their ranks (a duplicate writes the same value to the same slot)
    tl.store(scratch + _ranks(o, o_ok, slash_words, before, 0), o, mask=o_ok)
    cols = Cols + h * NV
    tl.store(cols + _ranks(c, c_ok, col_words, before, 16), c, mask=c_ok)
    tl.store(cols + offs_v, tl.full([NV], 0, tl.int32) + T, mask=offs_v >= n_cols)  # the rest T
    tl.debug_barrier()
    x = tl.load(scratch + offs, mask=offs < n, other=big)  # sorted distinct offsets, then big
    real = x < big
    # Runs of consecutive offsets. A run is wide (has an unmasked tile) when it holds at least WIDE offsets,
    # i.e. when the offset WIDE - 1 places after its first is WIDE - 1 larger.
    WIDE: tl.constexpr = ((BLOCK - 1 + BLOCK_N - 1) // BLOCK_N + 1) * BLOCK_N
    tl.debug_barrier()
    tl.store(scratch + offs, x)
    tl.debug_barrier()
    prev = tl.load(scratch + offs - 1, mask=offs > 0, other=-2)
    nxt = tl.load(scratch + offs + 1, mask=offs < NS - 1, other=big)
    ahead = tl.load(scratch + offs + WIDE - 1, mask=offs + WIDE - 1 < NS, other=big)
    new_run = x - prev > 1
    run_end = nxt - x > 1
    wide_start = real & new_run & (ahead - x == WIDE - 1)
    run = tl.associative_scan(tl.where(new_run, offs * 2 + wide_start.to(tl.int32), 0), 0, _max)  # latest start wins
    wide = real & ((run & 1) != 0)
    tl.store(slash_bits + x, tl.full([NS], 2, tl.int8), mask=wide)
    flags = scratch + NS
    tl.store(flags + offs, wide.to(tl.int32))
    tl.debug_barrier()
    prev_wide = tl.load(flags + offs - 1, mask=offs > 0, other=0) != 0
    next_wide = tl.load(flags + offs + 1, mask=offs < NS - 1, other=0) != 0
    # a new span at a wide run, after one, or after a gap of more than BLOCK // 2 offsets
    new_span = real & new_run & ((offs == 0) | wide | prev_wide | (x - prev - 1 > BLOCK // 2))
    next_new = (nxt < big) & run_end & (next_wide | wide | (nxt - x - 1 > BLOCK // 2))
    span_end = real & (next_new | (offs == n - 1))
    spans_so_far, span_start, wide_so_far = tl.associative_scan(
        (new_span.to(tl.int32), tl.where(new_span, offs, 0), (new_span & wide).to(tl.int32)), 0, _span_scan)
    span = spans_so_far - 1
    lo = tl.load(scratch + span_start)  # x
    holes = x - lo != offs - span_start  # more offsets spanned than held
    row = h * NS
    tl.store(SpanLo + row + span, lo, mask=span_end)
    tl.store(SpanHi + row + span, x, mask=span_end)
    kind = tl.where(wide, SPAN_WIDE, tl.where(holes, SPAN_HOLES, 0))
    tl.store(SpanKind + row + span, kind.to(tl.int8), mask=span_end)
    unused = offs >= tl.max(spans_so_far, 0)
    tl.store(SpanLo + row + offs, tl.full([NS], 0, tl.int32) + big, mask=unused)
    tl.store(SpanHi + row + offs, tl.full([NS], 0, tl.int32) + big, mask=unused)
    tl.store(SpanKind + row + offs, tl.zeros([NS], tl.int8), mask=unused)
    wide_end = span_end & wide  # a wide run is a span of its own
    tl.store(WideLo + row + wide_so_far - 1, lo, mask=wide_end)
    tl.store(WideHi + row + wide_so_far - 1, x, mask=wide_end)
    tl.store(WideCount + h, tl.max(wide_so_far, 0))
    # Per query block b: the spans with d0 <= its last row, and the columns read unmasked and at all (the
    # thresholds of `_block_counts`). A sorted item i is counted from block f(item) on, so the count is the
    # running max of i + 1 stored at f by the last item of each f.
    blocks = h * num_blocks
    last_in_block = span_end & (nxt // BLOCK != lo // BLOCK)  # the last span starting in its block
    tl.store(Live + blocks + lo // BLOCK, span + 1, mask=last_in_block)
    wide_max = tl.max(tl.where(wide, x, -1), 0)
    band_hi = tl.max(tl.where(wide & (run >> 1 == 0) & (tl.min(x, 0) == 0), x, -1), 0)  # a wide run from offset 0
    col = tl.load(cols + offs_v)
    next_col = tl.load(cols + offs_v + 1, mask=offs_v + 1 < n_cols, other=2 * big)
    clean_at = (col + wide_max + BLOCK) // BLOCK  # the first block whose rows are all past col + wide_max
    next_clean_at = (next_col + wide_max + BLOCK) // BLOCK
    count_at = (tl.maximum(col + 2 + band_hi - BLOCK, 0) + BLOCK - 1) // BLOCK  # ... with a pair off the band
    next_count_at = (tl.maximum(next_col + 2 + band_hi - BLOCK, 0) + BLOCK - 1) // BLOCK
    real_col = offs_v < n_cols
    last_clean = real_col & (next_clean_at != clean_at) & (clean_at < num_blocks)  # the last column of its block
    last_count = real_col & (next_count_at != count_at) & (count_at < num_blocks)
    tl.store(ColClean + blocks + clean_at, offs_v + 1, mask=last_clean)
    tl.store(ColCount + blocks + count_at, offs_v + 1, mask=last_count)
    tl.debug_barrier()
    seen_live, seen_clean, seen_count = 0, 0, 0  # the running maxima before this chunk of blocks
    for b0 in range(0, num_blocks, BLOCKS_CHUNK):
        b = blocks + b0 + tl.arange(0, BLOCKS_CHUNK)
        ok = b0 + tl.arange(0, BLOCKS_CHUNK) < num_blocks
        firsts = (tl.load(Live + b, mask=ok, other=0), tl.load(ColClean + b, mask=ok, other=0),
                  tl.load(ColCount + b, mask=ok, other=0))
        live, clean, count = tl.associative_scan(firsts, 0, _max3)
        live, clean, count = tl.maximum(live, seen_live), tl.maximum(clean, seen_clean), tl.maximum(count, seen_count)
        tl.store(Live + b, live, mask=ok)
        tl.store(ColClean + b, clean // BLOCK_N * BLOCK_N, mask=ok)  # whole tiles
        tl.store(ColCount + b, count, mask=ok)
        seen_live, seen_clean, seen_count = tl.max(live, 0), tl.max(clean, 0), tl.max(count, 0)


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
    their kind (a wide run, a span with holes, or neither: 0); the wide runs (hole-free, with an unmasked
    tile) listed apart; the slash bitmap (2 at the wide runs' offsets, 1 at the others')."""
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
    slash = _bitmap(o, T, torch.where(in_wide, 2, 1))
    is_wide = (lo < big) & (slash.gather(1, lo.clamp(max=T - 1)) == 2)  # a wide run is a span of its own
    kind = torch.where(holes, SPAN_HOLES.value, torch.where(is_wide, SPAN_WIDE.value, 0))
    return dict(slash=slash, lo=lo.int().contiguous(), hi=hi.int().contiguous(), kind=kind.to(torch.int8).contiguous(),
                wide_lo=wide_first.values.int().contiguous(), wide_hi=wide_hi.int().contiguous(),
                wide_count=wide.sum(-1).int().contiguous())


MAX_ROW = 16384  # offsets or columns a head for the one-program list build (a row is held in registers)


def _lists_by_kernel(vertical_idx: torch.Tensor, slash_offsets: torch.Tensor, T: int, block: int, block_n: int) -> dict:
    """`_work_lists`: one launch (and one zeroed buffer) instead of ~60 small torch ops, whose launches cost
    ~1.3 ms of host time a call at 128k (bench/RESULTS.md)."""
    H, n_slash = slash_offsets.shape
    n_vert = vertical_idx.shape[1]
    NS = triton.next_power_of_2(max(n_slash, 2))
    NV = max(triton.next_power_of_2(max(n_vert, 2)), block_n)
    dev = slash_offsets.device
    i32 = dict(dtype=torch.int32, device=dev)
    nb, num_words = -(-T // block), -(-T // 32)
    # everything that starts zeroed, in one buffer: two bit-word maps, three per-block counts, two byte maps
    ints = H * (2 * num_words + 3 * nb)
    zeroed = torch.zeros(4 * ints + 2 * H * T, dtype=torch.int8, device=dev)
    words, blocks = zeroed[: 4 * ints].view(torch.int32).split([2 * H * num_words, 3 * H * nb])
    words, blocks, bits = words.view(2, H, num_words), blocks.view(3, H, nb), zeroed[4 * ints :].view(2, H, T)
    lists = dict(slash=bits[0], lo=torch.empty(H, NS, **i32), hi=torch.empty(H, NS, **i32),
                 kind=torch.empty(H, NS, dtype=torch.int8, device=dev), wide_lo=torch.empty(H, NS, **i32),
                 wide_hi=torch.empty(H, NS, **i32), wide_count=torch.empty(H, **i32), col_bits=bits[1],
                 cols=torch.empty(H, NV, **i32), live=blocks[0], col_clean=blocks[1], col_count=blocks[2])
    _work_lists[(H,)](
        slash_offsets.contiguous(), vertical_idx.contiguous(), SlashBits=lists["slash"], SpanLo=lists["lo"],
        SpanHi=lists["hi"], SpanKind=lists["kind"], WideLo=lists["wide_lo"], WideHi=lists["wide_hi"],
        WideCount=lists["wide_count"], ColBits=lists["col_bits"], Cols=lists["cols"], SlashWords=words[0],
        ColWords=words[1], Before=torch.empty(H, num_words, **i32), Scratch=torch.empty(H, 2, NS, **i32),
        Live=lists["live"], ColClean=lists["col_clean"], ColCount=lists["col_count"],
        T=T, n_slash=n_slash, n_vert=n_vert, num_words=num_words, num_blocks=nb, NS=NS, NV=NV, BLOCK=block,
        BLOCK_N=block_n, WORDS_CHUNK=min(4096, triton.next_power_of_2(num_words)),
        BLOCKS_CHUNK=min(4096, triton.next_power_of_2(nb)), num_warps=8 if NS >= 4096 else 4)
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
    return lists | _block_counts(lists, T, block, block_n)


def _block_counts(lists: dict, T: int, block: int, block_n: int) -> dict:
    """Per head and query block: the spans that reach it (d0 <= its last row), the columns it reads unmasked
    and those it reads at all (build_work_lists)."""
    H, NS = lists["wide_lo"].shape
    nb = -(-T // block)
    block_start = (torch.arange(nb, device=lists["lo"].device, dtype=torch.int32) * block).expand(H, nb)
    slot = torch.arange(NS, device=lists["lo"].device)
    wide_max = torch.where(slot < lists["wide_count"][:, None], lists["wide_hi"], -1).amax(1, keepdim=True)
    band = (lists["wide_count"][:, None] > 0) & (lists["wide_lo"][:, :1] == 0)
    band_hi = torch.where(band, lists["wide_hi"][:, :1], -1)
    clean = torch.searchsorted(lists["cols"], (block_start - 1 - wide_max).int(), right=True)
    count = torch.searchsorted(lists["cols"], (block_start + block - 2 - band_hi).int(), right=True)
    return dict(live=torch.searchsorted(lists["lo"], block_start + block - 1, right=True).int(),
                col_clean=(clean // block_n * block_n).int(), col_count=count.int())


def build_work_lists(vertical_idx: torch.Tensor, slash_offsets: torch.Tensor, T: int, block: int, block_n: int,
                     by_kernel: bool | None = None) -> dict:
    """Everything the kernel reads, built on the inputs' device (no host sync). Per query block, the columns
    it reads: the first col_clean (whole tiles) older than every pair on a wide run, so no pair of theirs
    is masked, and up to col_count, past which a column's pairs all lie on a band of offsets from 0 (or
    above the block)."""
    if by_kernel is None:
        by_kernel = max(slash_offsets.shape[1], vertical_idx.shape[1]) <= MAX_ROW
    return (_lists_by_kernel if by_kernel else _lists_by_torch)(vertical_idx, slash_offsets, T, block, block_n)


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
    num_cols = lists["cols"].shape[1]  # a multiple of block_n
    vert_k, vert_v = (torch.empty(Hq, num_cols, D, device=q.device, dtype=q.dtype) for _ in range(2))
    _copy_columns[(Hq, num_cols // block_n)](k, v, lists["cols"], vert_k, vert_v, T, num_cols, k.stride(0), k.stride(1),
                                              v.stride(0), v.stride(1), GROUP=Hq // Hkv, HEAD_DIM=D, ROWS=block_n)
    kdesc = vdesc = vert_kdesc = vert_vdesc = None
    if tma:
        from triton.tools.tensor_descriptor import TensorDescriptor

        kdesc, vdesc = (TensorDescriptor(x, [T, Hkv * D], [x.stride(0), 1], [block_n, D]) for x in (k, v))
        vert_kdesc, vert_vdesc = (TensorDescriptor(x, [x.shape[0] * x.shape[1], D], [D, 1], [block_n, D])
                                  for x in (vert_k, vert_v))
    out = torch.empty_like(q) if out is None else out
    launch = {} if maxnreg is None else {"maxnreg": maxnreg}
    _vertical_slash_fwd[(Hq * nb,)](
        q, k, v, kdesc, vdesc, out, lists["slash"], lists["lo"], lists["hi"], lists["kind"], lists["live"],
        lists["wide_lo"], lists["wide_hi"], lists["wide_count"], lists["col_bits"], lists["cols"], lists["col_clean"],
        lists["col_count"], vert_k, vert_v, vert_kdesc, vert_vdesc,
        T, D ** -0.5 * LOG2E, nb, lists["lo"].shape[1], lists["cols"].shape[1],
        q.stride(0), q.stride(1), k.stride(0), k.stride(1), v.stride(0), v.stride(1), out.stride(0), out.stride(1),
        GROUP=Hq // Hkv, HEAD_DIM=D, BLOCK=block, BLOCK_N=block_n, USE_TMA=tma, MASKED_STAGES=masked_stages,
        num_warps=num_warps or (8 if block >= 128 else 4), num_stages=num_stages or 2, **launch,
    )
    return out
