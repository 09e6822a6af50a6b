"""The online-softmax step shared by every attention kernel here (one place to get -inf handling right)."""

from __future__ import annotations

import triton
import triton.language as tl

LOG2E = 1.4426950408889634


@triton.jit
def attend_tile(acc, m_i, l_i, q, k, v, qk_scale, mask, MASKED: tl.constexpr):
    """Fold one key tile into the running (acc, max, sum): q [M, D], k [D, N], v [N, D].

    Scores are in log2 units (qk_scale includes log2(e) and is > 0, so it can scale the row max instead
    of the tile, and fold into the subtraction as one FMA). The P.V product accumulates into the
    rescaled acc inside the dot (no second accumulator, no extra add). Rows that have seen no allowed
    key keep m = -inf and l = 0, and the caller writes zeros for them (like the reference).
    """
    qk = tl.dot(q, k)
    if MASKED:
        qk = tl.where(mask, qk, float("-inf"))
    m_new = tl.maximum(m_i, tl.max(qk, 1) * qk_scale)
    if MASKED:  # a fully masked row keeps m = -inf: subtract 0 instead (no NaN)
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
    else:
        m_safe = m_new
    p = tl.math.exp2(qk * qk_scale - m_safe[:, None])
    alpha = tl.math.exp2(m_i - m_safe)
    acc = tl.dot(p.to(v.dtype), v, acc * alpha[:, None])
    l_i = l_i * alpha + tl.sum(p, 1)
    return acc, m_new, l_i


@triton.jit
def kv_major_program(pid, num_qblocks, GROUP: tl.constexpr):
    """(query head, query block) of program `pid` in a 1-D grid of Hq * num_qblocks: one KV head's
    programs run together (its K/V, not all heads', compete for L2), within it a GQA group's heads of
    one query block are neighbours, and the latest (heaviest) query blocks go first."""
    per_kv = num_qblocks * GROUP
    head = (pid // per_kv) * GROUP + pid % GROUP
    qb = num_qblocks - 1 - (pid % per_kv) // GROUP
    return head, qb


@triton.jit
def finish(acc, l_i):
    """acc / l, with zeros for rows that saw no key."""
    return acc / tl.where(l_i == 0.0, 1.0, l_i)[:, None]
