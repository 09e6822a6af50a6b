"""Diagnostic: which share of a record's evidence tokens each layer's sparse pattern (or kept KV set)
lets the last prompt query read. Low retention at a layer explains a wrong answer better than sparsity."""

from __future__ import annotations

import torch

from sftasks.errors import DataError

from .base import Method
from .hf import attach


def evidence_mask(record: dict, tokenizer, text: str) -> torch.Tensor:
    """bool [T]: tokens of `text` (the templated prompt) that overlap an evidence span of record["input"]."""
    start = text.find(record["input"])
    if start < 0:
        raise DataError(f"record {record.get('id')}: its input is not part of the prompt text")
    spans = [(start + span["start"], start + span["end"]) for span in record.get("evidence") or []]
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    return torch.tensor([any(a < e and s < b for s, e in spans) for a, b in offsets], dtype=torch.bool)


def evidence_retention(model, tokenizer, method: Method, record: dict) -> dict:
    """{"per_layer": {layer: share}, "per_head": {layer: [share_h]}, "overall": share, "evidence_tokens": n}.

    One prefill of the record's prompt (in the model's chat template) with `method` attached; for each
    layer, `method.last_query_keys` gives the keys the last query may read.
    """
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template([{"role": "user", "content": record["input"]}],
                                             add_generation_prompt=True, tokenize=False)
    else:
        text = record["input"]
    evidence = evidence_mask(record, tokenizer, text)
    per_head: dict[int, list[float]] = {}

    def observe(layer, q, k, v):
        keys = method.last_query_keys(q, k, v).cpu()
        per_head[layer] = ((keys & evidence).sum(-1) / max(1, int(evidence.sum()))).tolist()

    adapter = _attached(model, method) or attach(model, method)
    adapter.observers.append(observe)
    ids = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]], device=model.device)
    try:
        with torch.inference_mode():
            model(ids)
    finally:
        adapter.observers.remove(observe)
    per_layer = {layer: sum(shares) / len(shares) for layer, shares in sorted(per_head.items())}
    return {"per_layer": per_layer, "per_head": dict(sorted(per_head.items())),
            "overall": sum(per_layer.values()) / max(1, len(per_layer)), "evidence_tokens": int(evidence.sum())}


def _attached(model, method: Method):
    """The adapter already routing `model` through `method`, if any (so a backend's state is kept)."""
    return next((m.sftasks_attention for m in model.modules()
                 if getattr(m, "sftasks_attention", None) is not None and m.sftasks_attention.method is method), None)
