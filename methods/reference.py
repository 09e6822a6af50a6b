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
    """One new token per sequence over the whole cache: q [B, Hq, D] -> [B, Hq, D]."""
    outs = []
    for b in range(q.shape[0]):
        k, v = cache.sequence(b)
        mask = torch.ones(q.shape[1], 1, k.shape[0], dtype=torch.bool, device=q.device)
        outs.append(masked_attention(q[b : b + 1], k, v, mask)[0])
        if stats is not None:
            n = torch.full((k.shape[1],), float(k.shape[0]), dtype=torch.float64)
            stats.add("decode", layer, n, n)
    return torch.stack(outs)
