"""Block-wide helpers for the one-program list build of the block-sparse block lists."""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def gather(scratch, x, offs, idx, ok, other):
    """x[idx] where ok, else other, through memory: Triton has no shuffle across a whole block."""
    tl.debug_barrier()  # every thread is done reading scratch
    tl.store(scratch + offs, x)
    tl.debug_barrier()
    return tl.load(scratch + idx, mask=ok, other=other)


@triton.jit
def sorted_unique(scratch, x, offs, big):
    """x (values >= 0) sorted, duplicates replaced by big (sorted to the end)."""
    x = tl.sort(x)
    return tl.sort(tl.where(x == gather(scratch, x, offs, offs - 1, offs > 0, -1), big, x))
