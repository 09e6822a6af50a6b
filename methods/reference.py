"""Plain PyTorch attention used as ground truth by every method and kernel test (CPU-friendly)."""

from __future__ import annotations

import torch


def expand_kv(x: torch.Tensor, num_q_heads: int) -> torch.Tensor:
    """[T, Hkv, D] -> [T, Hq, D] by repeating each KV head over its GQA group."""
    return x.repeat_interleave(num_q_heads // x.shape[1], dim=1)


def masked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Attention of q [Tq, Hq, D] over k/v [Tk, Hkv, D] restricted by a boolean mask [Hq, Tq, Tk].

    Rows with no allowed key give zeros. Computed in float32 and cast back to q's dtype.
    """
    Hq = q.shape[1]
    qf, kf, vf = (x.float().transpose(0, 1) for x in (q, expand_kv(k, Hq), expand_kv(v, Hq)))
    scores = (qf @ kf.transpose(1, 2)) * q.shape[-1] ** -0.5
    scores = scores.masked_fill(~mask, float("-inf"))
    probs = torch.softmax(scores, dim=-1).nan_to_num(0.0)
    return (probs @ vf).transpose(0, 1).to(q.dtype)


def causal_mask(Tq: int, Tk: int, device=None) -> torch.Tensor:
    """[Tq, Tk] causal mask with queries aligned to the end of the keys."""
    rows = torch.arange(Tk - Tq, Tk, device=device).unsqueeze(1)
    return torch.arange(Tk, device=device).unsqueeze(0) <= rows


def dense_prefill(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Causal GQA attention for one sequence: q [T, Hq, D], k/v [T, Hkv, D] -> [T, Hq, D]."""
    Hq = q.shape[1]
    out = torch.nn.functional.scaled_dot_product_attention(
        q.transpose(0, 1).unsqueeze(0),
        expand_kv(k, Hq).transpose(0, 1).unsqueeze(0),
        expand_kv(v, Hq).transpose(0, 1).unsqueeze(0),
        is_causal=True,
    )
    return out.squeeze(0).transpose(0, 1)


def dense_decode(q: torch.Tensor, cache, layer: int, stats=None) -> torch.Tensor:
    """One new token per sequence over its cache: q [B, Hq, D] -> [B, Hq, D].

    Where a compression left `cache.kept[(b, layer)]`, only those tokens are read (per KV head).
    Stats count tokens read per query head.
    """
    outs = []
    Hq = q.shape[1]
    for b in range(q.shape[0]):
        k, v = cache.sequence(b)
        mask = kept_mask(cache, b, layer, k.shape[0], Hq, q.device)
        outs.append(masked_attention(q[b : b + 1], k, v, mask.unsqueeze(1))[0])
        if stats is not None:
            possible = torch.full((Hq,), float(k.shape[0]), dtype=torch.float64)
            stats.add("decode", layer, mask.sum(-1).double(), possible)
    return torch.stack(outs)


def kept_mask(cache, b: int, layer: int, n: int, num_q_heads: int, device=None) -> torch.Tensor:
    """[Hq, n] tokens of sequence b that decode may read at `layer` (all, unless a compression kept fewer)."""
    kept = (cache.kept or {}).get((b, layer))
    if kept is None:
        return torch.ones(num_q_heads, n, dtype=torch.bool, device=device)
    mask = torch.zeros(len(kept), n, dtype=torch.bool, device=device)
    for h, idx in enumerate(kept):
        mask[h, idx.to(device)] = True
    return mask.repeat_interleave(num_q_heads // len(kept), dim=0)


def chunked_masked_attention(q, k, v, mask_rows, chunk: int = 1024) -> torch.Tensor:
    """Causal sparse attention of q [T, Hq, D] without a T x T tensor: `mask_rows(start, stop)` gives
    the allowed keys [Hq, stop-start, T] of queries start..stop-1 (causality is applied here)."""
    T = q.shape[0]
    out = torch.empty_like(q)
    for start in range(0, T, chunk):
        stop = min(T, start + chunk)
        mask = mask_rows(start, stop)[..., :stop] & causal_mask(stop - start, stop, q.device)
        out[start:stop] = masked_attention(q[start:stop], k[:stop], v[:stop], mask)
    return out
