"""Block-sparse prefill: each query block attends to its top-k key blocks by pooled (mean) scores,
always including the first block (attention sink) and its own diagonal block (MInference's
block-sparse pattern, as used in the Sparse Frontier paper)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sftasks.errors import InputError

from .base import Method, check_sparsity
from .reference import chunked_masked_attention, expand_kv
from .registry import dispatch, register_method


def block_sparse_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block_index: torch.Tensor, block_size: int
) -> torch.Tensor:
    """Causal GQA attention where query block m sees only the key blocks listed in block_index[h, m].

    q [T, Hq, D], k/v [T, Hkv, D]; block_index LongTensor [Hq, ceil(T/block_size), K], padded with -1;
    ids above the query block are ignored and the diagonal block is causally masked.
    """
    T, Hq = q.shape[:2]
    num_blocks = block_index.shape[1]
    key_block = torch.arange(T, device=q.device) // block_size
    allowed = torch.zeros(Hq, num_blocks, num_blocks + 1, dtype=torch.bool, device=q.device)
    ids = block_index.long().to(q.device)
    allowed.scatter_(2, torch.where(ids < 0, num_blocks, ids.clamp(max=num_blocks)), True)
    allowed = allowed[..., :num_blocks]  # [Hq, query block, key block]

    def mask_rows(start: int, stop: int) -> torch.Tensor:
        rows = allowed[:, torch.arange(start, stop, device=q.device) // block_size]  # [Hq, r, nb]
        return rows[..., key_block]

    return chunked_masked_attention(q, k, v, mask_rows, chunk=_row_chunk(block_size))


def _row_chunk(block_size: int) -> int:
    return max(1, 1024 // block_size) * block_size


def block_sparse_pairs(block_index: torch.Tensor, seq_len: int, block_size: int) -> torch.Tensor:
    """Causal (query, key) pairs computed per query head [Hq] (float64), counted from the index alone.

    Runs where the index lives (no host copy of a GPU index: one small result crosses, not the lists).
    """
    Hq, num_blocks, _ = block_index.shape
    ids = block_index.long()
    qb = torch.arange(num_blocks, device=ids.device).view(1, -1, 1)
    ids = torch.where((ids >= 0) & (ids <= qb), ids, -1).sort(dim=-1).values
    first = torch.ones_like(ids, dtype=torch.bool)
    first[..., 1:] = ids[..., 1:] != ids[..., :-1]
    ids = torch.where(first, ids, -1)  # duplicates count once
    rows = (seq_len - qb * block_size).clamp(max=block_size).double()  # queries in each query block
    pairs = torch.where(ids == qb, rows * (rows + 1) / 2, rows * block_size)
    return torch.where(ids >= 0, pairs, 0.0).sum(dim=(1, 2))


def build_block_index(q: torch.Tensor, k: torch.Tensor, block_size: int, top_blocks: int,
                      rows_per_chunk: int | None = None) -> torch.Tensor:
    """Top `top_blocks` key blocks per query block from mean-pooled q.k scores; first and diagonal forced.

    Returns [Hq, nb, min(top_blocks, nb)] sorted ascending, -1 where a query block has fewer causal blocks.
    The [Hq, nb, nb] score matrix is built `rows_per_chunk` query blocks at a time (default: all at once
    on the CPU, ~256 MB of scores per chunk on a GPU), each chunk only up to its last causal key block:
    every query block's row of scores, and so its choice, is the same whatever the chunking.
    """
    T, Hq, D = q.shape
    nb = -(-T // block_size)
    pad = nb * block_size - T
    counts = torch.full((nb, 1, 1), float(block_size), device=q.device)
    counts[-1] = block_size - pad
    pool = lambda x: torch.nn.functional.pad(x.float(), (0, 0, 0, 0, 0, pad)).view(nb, block_size, -1, D).sum(1) / counts
    qp, kp = pool(q), expand_kv(pool(k), Hq)  # [nb, Hq, D]
    keep = min(top_blocks, nb)
    if rows_per_chunk is None:
        rows_per_chunk = nb if not q.is_cuda else max(1, (1 << 26) // (Hq * nb))
    index = torch.empty(Hq, nb, keep, dtype=torch.long, device=q.device)
    for start in range(0, nb, rows_per_chunk):
        stop = min(start + rows_per_chunk, nb)
        width = max(stop, keep)  # key blocks past `stop` are non-causal for every row of the chunk
        scores = torch.einsum("mhd,nhd->hmn", qp[start:stop], kp[:width])
        rows = torch.arange(start, stop, device=q.device).view(-1, 1)
        cols = torch.arange(width, device=q.device).view(1, -1)
        forced = (rows == cols) | (cols == 0)
        scores = scores.masked_fill(forced, float("inf")).masked_fill(cols > rows, float("-inf"))
        top = scores.topk(keep, dim=-1)
        index[:, start:stop] = torch.where(top.values == float("-inf"), -1, top.indices).sort(dim=-1).values
    return index


@dataclass
class BlockSparseConfig:
    chunk_size: int = 16
    """Query and key block size in tokens."""
    top_chunks: int = 64
    """Key blocks kept per query block (first and diagonal included)."""
    sparsity: float | None = None
    """If set, replaces top_chunks: the block count that gives about this sparsity at each length."""


@register_method
class BlockSparse(Method):
    name = "block_sparse"
    Config = BlockSparseConfig

    def validate(self) -> None:
        c = self.config
        if c.chunk_size < 1:
            raise InputError(f"block_sparse chunk_size must be >= 1, got {c.chunk_size}")
        if c.top_chunks < 2:
            raise InputError(f"block_sparse top_chunks must be >= 2 (first and diagonal blocks), got {c.top_chunks}")
        check_sparsity(self.name, c.sparsity)

    def top_chunks(self, seq_len: int) -> int:
        c = self.config
        if c.sparsity is None:
            return c.top_chunks
        nb = -(-seq_len // c.chunk_size)
        total = nb * (nb + 1) / 2
        for blocks in range(2, nb + 1):  # kept blocks with K per row: a triangle up to K, then K per row
            kept = blocks * (blocks + 1) / 2 + (nb - blocks) * blocks
            if 1 - kept / total <= c.sparsity:
                return blocks
        return nb

    def prefill(self, q, k, v, layer):
        T = q.shape[0]
        index = build_block_index(q, k, self.config.chunk_size, self.top_chunks(T))
        out = dispatch("block_sparse_attention", block_sparse_attention, q)(q, k, v, index, self.config.chunk_size)
        possible = torch.full((q.shape[1],), T * (T + 1) / 2, dtype=torch.float64)
        self.stats.add("prefill", layer, block_sparse_pairs(index, T, self.config.chunk_size), possible)
        return out

    def last_query_keys(self, q, k, v):
        T, bs = q.shape[0], self.config.chunk_size
        index = build_block_index(q, k, bs, self.top_chunks(T))[:, -1]  # the last query block's key blocks
        blocks = torch.zeros(q.shape[1], -(-T // bs) + 1, dtype=torch.bool, device=q.device)  # + a slot for -1
        blocks.scatter_(1, torch.where(index < 0, blocks.shape[1] - 1, index), True)
        return blocks[:, torch.arange(T, device=q.device) // bs]

