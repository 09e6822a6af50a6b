"""The user-facing engine: vLLM's own `LLM` with an sftasks method attached, and the eval runner's backend.

    from sftasks.methods.vllm import LLM
    llm = LLM("Qwen/Qwen2.5-7B-Instruct", method="quest", params={"token_budget": 1024}, tensor_parallel_size=2)
    outputs = llm.generate(prompts, SamplingParams(temperature=0, max_tokens=128))   # plain vLLM API
    llm.sparsity(outputs)   # per request: SparsityStats.summary(), all tensor-parallel ranks merged
"""

from __future__ import annotations

import os
from importlib.metadata import entry_points
from typing import Any

import torch
import vllm
from vllm import SamplingParams

from sftasks.errors import Error, InputError

from ..base import Method, SparsityStats
from .runtime import CONFIG_KEY

WORKER_EXTENSION = "sftasks.methods.vllm.worker.SFTasksWorker"
PLUGIN_NAME = "sftasks"


def method_spec(method: str | Method, params: dict | None = None) -> dict:
    """What travels to the workers: registry name and knobs (validated here, in the user's process)."""
    from ..registry import get_method, get_method_class

    if isinstance(method, str):
        method = get_method(method, **(params or {}))
    elif params:
        raise InputError("pass knobs either in the Method instance or in params, not both")
    spec = {"method": method.name, "params": method.params()}
    try:
        registered = get_method_class(method.name) is type(method)
    except InputError:
        registered = False
    if not registered:  # a method outside the registry: the workers import its class
        spec["class"] = f"{type(method).__module__}:{type(method).__qualname__}"
    return spec


def check_plugin() -> None:
    """vLLM loads the adapter in its worker processes only through the installed entry point."""
    plugins = [ep for ep in entry_points(group="vllm.general_plugins") if ep.name == PLUGIN_NAME]
    if not plugins:
        raise Error("the sftasks vLLM plugin is not installed (entry point vllm.general_plugins); "
                    "reinstall sftasks: pip install 'sftasks[vllm]' (or pip install -e . in a checkout)")
    allowed = os.environ.get("VLLM_PLUGINS")
    if allowed is not None and PLUGIN_NAME not in allowed.split(","):
        raise InputError(f"VLLM_PLUGINS={allowed} leaves out the sftasks plugin; add ',{PLUGIN_NAME}' to it")


def engine_kwargs(spec: dict, kwargs: dict[str, Any]) -> dict[str, Any]:
    """vLLM engine arguments that attach the method (the user's own arguments otherwise pass through)."""
    from vllm.platforms import current_platform

    kwargs = dict(kwargs)
    for flag in ("enable_chunked_prefill", "enable_prefix_caching"):
        if kwargs.get(flag):
            raise InputError(f"{flag}=True cannot be used with sftasks methods: a method must see each prompt "
                             f"whole, from its first token; leave {flag} out")
        kwargs[flag] = False  # the workers log why (runtime.Runtime.configure)
    if kwargs.get("worker_extension_cls") not in (None, "", WORKER_EXTENSION):
        raise InputError("worker_extension_cls is taken by the sftasks adapter; leave it out")
    kwargs["worker_extension_cls"] = WORKER_EXTENSION
    kwargs["additional_config"] = {**(kwargs.get("additional_config") or {}), CONFIG_KEY: spec}
    if not current_platform.is_cpu():  # the CPU platform only has one slot, which the plugin fills
        attention = kwargs.get("attention_config") or {}
        attention = attention if isinstance(attention, dict) else vars(attention)
        kwargs["attention_config"] = {**attention, "backend": "CUSTOM"}
    return kwargs


def merge_ranks(results: list[dict]) -> dict[str, dict]:
    """Per request: the summary of all ranks' counts (each rank holds its own heads; concatenated in rank
    order) plus the KV memory a true compression would have freed (summed over ranks)."""
    counts: dict[str, dict] = {}
    memory: dict[str, list[float]] = {}
    for result in sorted(results, key=lambda r: r["rank"]):
        for key, entry in result["requests"].items():
            per_request = counts.setdefault(key, {})
            for hook, layer, computed, possible in entry["counts"]:
                c, p = per_request.setdefault((hook, layer), ([], []))
                c.extend(computed)
                p.extend(possible)
            mem = memory.setdefault(key, [0.0, 0.0])
            mem[0] += entry["kv_bytes"]
            mem[1] += entry["kv_saved"]
    out = {}
    for key, per_request in counts.items():
        stats = SparsityStats()
        for (hook, layer), (c, p) in per_request.items():
            stats.add(hook, layer, torch.tensor(c, dtype=torch.float64), torch.tensor(p, dtype=torch.float64))
        summary = stats.summary()
        if memory[key][0] and "compress" in summary:
            summary["compress"]["kv_bytes"] = memory[key][0]
            summary["compress"]["kv_saved_bytes"] = memory[key][1]
        out[key] = summary
    return out


class LLM(vllm.LLM):
    """vLLM's LLM with an sftasks method on every attention layer; everything else is vLLM's.

    `method`: a registry name (knobs in `params`) or a Method instance. Other keyword arguments go to
    vLLM unchanged, except that chunked prefill and prefix caching are switched off (methods see
    whole prompts). Generation is vLLM's own: batches, scheduling, tensor parallelism.
    """

    def __init__(self, model: str, method: str | Method = "dense", params: dict | None = None, **kwargs: Any):
        spec = method_spec(method, params)
        check_plugin()
        super().__init__(model=model, **engine_kwargs(spec, kwargs))
        self.sftasks_spec = spec
        self.collective_rpc("sftasks_attach")

    def set_method(self, method: str | Method, params: dict | None = None) -> None:
        """Swap the method in every worker (between generate calls); the engine stays up."""
        spec = method_spec(method, params)
        self.collective_rpc("sftasks_set_method", args=(spec,))
        self.sftasks_spec = spec

    def request_stats(self) -> dict[str, dict]:
        """Summaries of the requests finished since the last call, by vLLM's internal request id."""
        return merge_ranks(self.collective_rpc("sftasks_stats"))

    def sparsity(self, outputs) -> list[dict]:
        """One summary per RequestOutput of `generate` (in order); {} for a request with no counts."""
        by_internal = self.request_stats()
        by_external = {}
        for key, summary in by_internal.items():
            by_external[key] = summary
            by_external.setdefault(key.rsplit("-", 1)[0], summary)  # vLLM adds "-<random>" to request ids
        return [by_external.get(out.request_id, {}) for out in outputs]


class VLLMBackend:
    """The runner's "vllm" backend (`sftasks eval --backend vllm --tp N`): whole batches go to vLLM at once."""

    def __init__(self, model: str, method: Method, tp: int | None = None, dtype: str | None = None, **options: Any):
        kwargs: dict[str, Any] = {"tensor_parallel_size": tp or 1, "disable_log_stats": False, **options}
        if dtype:
            kwargs["dtype"] = dtype
        self.llm = LLM(model, method=method, **kwargs)
        self.tokenizer = self.llm.get_tokenizer()

    def prompt_ids(self, prompt: str) -> list[int]:
        if getattr(self.tokenizer, "chat_template", None):
            ids = self.tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                                     tokenize=True, return_dict=True)["input_ids"]
        else:
            ids = self.tokenizer(prompt)["input_ids"]
        return list(ids)

    def generate(self, prompts: list[str], max_new_tokens: int) -> list:
        from sftasks.runner import Generation

        inputs = [{"prompt_token_ids": self.prompt_ids(p)} for p in prompts]
        params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens)
        outputs = self.llm.generate(inputs, params, use_tqdm=False)
        sparsity = self.llm.sparsity(outputs)
        result = []
        for out, stats in zip(outputs, sparsity):
            m = out.metrics
            prefill_s = max(0.0, m.first_token_ts - m.scheduled_ts) if m is not None and m.scheduled_ts else 0.0
            decode_s = max(0.0, m.last_token_ts - m.first_token_ts) if m is not None and m.first_token_ts else 0.0
            result.append(Generation(text=out.outputs[0].text, sparsity=stats, prefill_s=prefill_s,
                                     decode_s=decode_s, num_input_tokens=len(out.prompt_token_ids)))
        return result
