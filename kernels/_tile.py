"""The online-softmax step shared by every attention kernel here (one place to get -inf handling right)."""

from __future__ import annotations

import triton
import triton.language as tl

LOG2E = 1.4426950408889634


@triton.jit
def attend_tile(acc, m_i, l_i, q, k, v, qk_scale, mask, MASKED: tl.constexpr):
    """Fold one key tile into the running (acc, max, sum): q [M, D], k [D, N], v [N, D].

    Scores are in log2 units (qk_scale includes log2(e)). Rows that have seen no allowed key keep
    m = -inf and l = 0, and the caller writes zeros for them (like the reference).
    """
    qk = tl.dot(q, k) * qk_scale
    if MASKED:
        qk = tl.where(mask, qk, float("-inf"))
    m_new = tl.maximum(m_i, tl.max(qk, 1))
    if MASKED:  # a fully masked row keeps m = -inf: subtract 0 instead (no NaN)
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
    else:
        m_safe = m_new
    alpha = tl.math.exp2(m_i - m_safe)
    p = tl.math.exp2(qk - m_safe[:, None])
    l_i = l_i * alpha + tl.sum(p, 1)
    acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
    return acc, m_new, l_i


@triton.jit
def finish(acc, l_i):
    """acc / l, with zeros for rows that saw no key."""
    return acc / tl.where(l_i == 0.0, 1.0, l_i)[:, None]
