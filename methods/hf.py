"""Run a sparse method inside any transformers causal LM, and the `hf` eval backend.

`attach(model, method)` registers one attention function ("sftasks") in transformers'
AttentionInterface (with sdpa's mask builder) and switches the model to it. Per attention call:
- prefill (no cache before): `method.prefill` per sequence, then `method.compress` if the method has it
  (the kept token sets live in the adapter: decode reads only them, which equals true compression);
- decode (one new token): `method.decode` over a KVCache view of transformers' cache (no copy; the
  sequences only grow between prefills, so a method may keep state per page across steps);
- hooks the method leaves out, sliding-window layers and anything else (continued prefill) take
  transformers' own sdpa path, so `dense` is token-identical to plain transformers.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from sftasks.errors import Error, InputError
from sftasks.runner import Generation, check_model_path

from .base import KVCache, Method

ATTENTION_NAME = "sftasks"


class SparseAttention:
    """Per-model state of an attached method: the method itself and the kept sets of compression."""

    def __init__(self, method: Method):
        self.method = method
        self.kept: dict[tuple[int, int], list[torch.Tensor]] = {}
        # Diagnostics: called as fn(layer, q, k, v) with one sequence's prefill tensors [T, H, D].
        self.observers: list = []

    def reset(self) -> None:
        """Forget compressed sets and stats (call between independent generations)."""
        self.kept.clear()
        self.method.stats.reset()

    def __call__(self, module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        def native():
            return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                          scaling=scaling, **kwargs)

        method, layer = self.method, module.layer_idx
        B, Hq, T, D = query.shape
        S = key.shape[2]
        if T == S:  # new sequences: state a method keeps per cached page (Quest's summaries) is stale (idempotent per layer)
            method.forget_cache_pages(None)
        if kwargs.get("sliding_window") or getattr(module, "sliding_window", None) or (T > 1 and T != S):
            return native()  # patterns the methods do not express run dense
        _check_no_padding(attention_mask, T, S)
        q = query.transpose(1, 2)  # [B, T, Hq, D]
        if scaling is not None and abs(scaling * D**0.5 - 1.0) > 1e-6:
            q = q * (scaling * D**0.5)  # the references scale by D**-0.5
        k, v = key.transpose(1, 2), value.transpose(1, 2)
        if T == S:
            for observe in self.observers:
                for b in range(B):
                    observe(layer, q[b], k[b], v[b])
            if method.overrides("prefill"):
                out = torch.stack([method.prefill(q[b], k[b], v[b], layer) for b in range(B)])
            else:
                out = native()[0]
                for _ in range(B):
                    method.count_dense("prefill", layer, T, Hq)
            if method.overrides("compress"):
                for b in range(B):
                    kept = method.compress(q[b], k[b], v[b], layer)
                    if kept is not None:
                        self.kept[(b, layer)] = kept
            return out, None
        if not method.overrides("decode") and not self.kept:
            for _ in range(B):
                method.count_dense("decode", layer, S, Hq)
            return native()
        for b in range(B):  # the new token is always readable after a compression
            if (b, layer) in self.kept:
                newest = torch.tensor([S - 1], device=key.device)
                self.kept[(b, layer)] = [torch.cat([idx, newest]) for idx in self.kept[(b, layer)]]
        cache = KVCache.from_batch(k, v)  # transformers' cache in place: one page per sequence
        cache.kept, cache.appended = self.kept, True
        return method.decode(q[:, 0], cache, layer).unsqueeze(1), None


def _check_no_padding(mask, T: int, S: int) -> None:
    """Sparse patterns are per sequence: padded batches would shift them, so refuse padding."""
    if mask is None or mask.dim() != 4:
        return
    allowed = (mask if mask.dtype == torch.bool else mask == 0)[:, 0]  # [B, T, S]
    causal = torch.arange(S, device=mask.device) <= torch.arange(S - T, S, device=mask.device).unsqueeze(1)
    if not torch.equal(allowed, causal.expand_as(allowed)):
        raise Error("padded batches are not supported by sparse methods in transformers; generate one sequence at a time")


def _attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    adapter = getattr(module, "sftasks_attention", None)
    if adapter is None:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    return adapter(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)


def register() -> None:
    """Make "sftasks" a valid attn_implementation (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ATTENTION_NAME, _attention)
    AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)


def attach(model, method: Method) -> SparseAttention:
    """Route the attention of `model` (any transformers causal LM using AttentionInterface) through `method`."""
    register()
    adapter = SparseAttention(method)
    layers = [m for m in model.modules() if hasattr(m, "layer_idx") and hasattr(m, "num_key_value_groups")]
    if not layers:
        raise InputError(f"{type(model).__name__} has no attention layers that sftasks can hook")
    for module in layers:
        module.sftasks_attention = adapter
    model.set_attn_implementation(ATTENTION_NAME)
    return adapter


def detach(model) -> None:
    """Undo `attach`: the model goes back to transformers' sdpa attention."""
    for module in model.modules():
        if hasattr(module, "sftasks_attention"):
            del module.sftasks_attention
    model.set_attn_implementation("sdpa")


def load(model: str, dtype: str = "auto"):
    """(model, tokenizer) from a local folder or a Hub name; a missing path is a one-line InputError."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    check_model_path(model)
    try:
        tokenizer = AutoTokenizer.from_pretrained(model)
        lm = AutoModelForCausalLM.from_pretrained(model, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot load model {model}: {str(exc).splitlines()[0]}") from None
    return lm.eval(), tokenizer


class _Clock:
    """A generate() streamer that only timestamps: prompt, first token (end of prefill), each token."""

    def __init__(self):
        self.marks: list[float] = []

    def put(self, value) -> None:
        self.marks.append(time.perf_counter())

    def end(self) -> None:
        self.marks.append(time.perf_counter())


class HFBackend:
    """The runner's "hf" backend: transformers on CPU or one GPU, greedy decoding.

    Sequences run one at a time: sparse patterns are defined per sequence, and left padding would
    shift them (and transformers' timing streamer needs batch 1); the vLLM backend is the batched path.
    """

    def __init__(self, model: str, method: Method, *, dtype: str = "auto", device: str | None = None,
                 tp: int | None = None, **options: Any):
        if tp not in (None, 1):
            raise InputError("--tp needs the vllm backend; the hf backend runs on one device")
        if options:
            raise InputError(f"unknown hf backend option(s): {', '.join(sorted(options))} (known: dtype, device)")
        self.model, self.tokenizer = load(model, dtype)
        if device:
            self.model.to(device)
        self.method = method
        self.adapter = attach(self.model, method)

    def encode(self, prompt: str) -> torch.Tensor:
        """Token ids [1, n] of the prompt wrapped in the model's chat template (raw text if it has none)."""
        if getattr(self.tokenizer, "chat_template", None):
            ids = self.tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                                     return_dict=True, return_tensors="pt")["input_ids"]
        else:
            ids = self.tokenizer(prompt, return_tensors="pt")["input_ids"]
        return ids.to(self.model.device)

    def evidence(self, record: dict) -> dict:
        """Share of the record's evidence tokens each layer's pattern keeps for the last prompt query."""
        from .evidence import evidence_retention

        try:
            return evidence_retention(self.model, self.tokenizer, self.method, record)
        finally:
            self.adapter.reset()

    def generate(self, prompts: list[str], max_new_tokens: int) -> list[Generation]:
        out = []
        for prompt in prompts:
            ids = self.encode(prompt)
            self.adapter.reset()
            clock = _Clock()
            with torch.inference_mode():
                tokens = self.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                             do_sample=False, streamer=clock,
                                             pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id)
            new = tokens[0, ids.shape[1]:]
            marks = clock.marks
            out.append(Generation(
                text=self.tokenizer.decode(new, skip_special_tokens=True),
                sparsity=self.method.stats.summary(),
                prefill_s=marks[1] - marks[0] if len(marks) > 2 else 0.0,
                decode_s=marks[-1] - marks[1] if len(marks) > 2 else 0.0,
                num_input_tokens=int(ids.shape[1]),
            ))
        return out
