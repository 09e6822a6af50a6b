"""Triton kernels: fast paths of the methods' hooks, tested against the PyTorch references.

Each public function here has the signature and semantics of its PyTorch twin in `sftasks.methods`
(see TEAM.md). Submodules import triton lazily, so that `TRITON_INTERPRET=1` set by a test before the
first call is honoured, and so that importing this package never needs triton.
"""

from __future__ import annotations

import functools


@functools.cache
def _triton_ok() -> bool:
    try:
        import triton  # noqa: F401
    except Exception:
        return False
    return True


def available() -> bool:
    """True when the kernels can run on the GPU: CUDA is present and triton imports."""
    import torch

    return torch.cuda.is_available() and _triton_ok()


def block_sparse_attention(q, k, v, block_index, block_size, **options):
    from .block_sparse import block_sparse_attention as run

    return run(q, k, v, block_index, block_size, **options)


def vertical_slash_attention(q, k, v, vertical_idx, slash_offsets, **options):
    from .vertical_slash import vertical_slash_attention as run

    return run(q, k, v, vertical_idx, slash_offsets, **options)


def estimate_vertical_slash(q, k, last_q, vertical_size, slash_size, **options):
    from .estimate import estimate_vertical_slash as run

    return run(q, k, last_q, vertical_size, slash_size, **options)


def last_query_scores(q, k, last_q, **options):
    from .estimate import last_query_scores as run

    return run(q, k, last_q, **options)


def quest_decode(q, cache, token_budget, page_size, share_pages=True, **options):
    from .quest import quest_decode as run

    return run(q, cache, token_budget, page_size, share_pages, **options)


__all__ = [
    "available",
    "block_sparse_attention",
    "vertical_slash_attention",
    "estimate_vertical_slash",
    "last_query_scores",
    "quest_decode",
]
