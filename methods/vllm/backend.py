"""Wrappers of vLLM's native attention backends that route a batch through an sftasks method.

`make_backend(native, paged_kv)` subclasses the native backend, its metadata builder and its impl:
the cache layout, the KV-cache writes and every dense computation stay the native ones; the builder
adds a per-step plan (`runtime.Step`) to the native metadata, and the impl hands the batch to
`runtime.RUNTIME` when a method is attached. Without an `"sftasks"` entry in vLLM's
`additional_config` the backend returns the native impl, i.e. plain vLLM.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from sftasks.errors import InputError

from .runtime import RUNTIME, spec_from_config


def cpu_paged_kv(kv_cache: torch.Tensor, head_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """CPU_ATTN cache [blocks, Hkv, block, 2*D] -> k, v [blocks, block, Hkv, D] views.

    Per head, a block holds its keys then its values; the vec/vec16 kernels store the keys transposed
    ([D, block]) and the values as rows ([block, D]). `Runtime.check_layout` verifies this once.
    """
    blocks, heads, block_size, _ = kv_cache.shape
    k, v = kv_cache.view(blocks, heads, 2 * block_size, head_size).chunk(2, dim=2)
    k = k.view(blocks, heads, head_size, block_size).permute(0, 3, 1, 2)
    return k, v.transpose(1, 2)


def flash_paged_kv(kv_cache: torch.Tensor, head_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """FLASH_ATTN cache [blocks, Hkv, block, 2*D] (key|value per token) -> k, v [blocks, block, Hkv, D] views."""
    k, v = kv_cache.transpose(1, 2).split(head_size, dim=-1)
    return k, v


def make_backend(native: type, paged_kv: Callable, name: str | None = None) -> type:
    """The sftasks wrapper of `native` (an AttentionBackend class); `name` overrides its registry name."""
    native_impl = native.get_impl_cls()
    native_builder = native.get_builder_cls()

    class Impl(native_impl):
        def forward(self, layer, query, key, value, kv_cache, attn_metadata, output, output_scale=None,
                    output_block_scale=None):
            step = getattr(attn_metadata, "sftasks", None)
            if step is None or not step.routed:
                return super().forward(layer, query, key, value, kv_cache, attn_metadata, output, output_scale,
                                       output_block_scale)
            return RUNTIME.forward(self, layer, query, key, value, kv_cache, attn_metadata, output)

        def native_forward(self, layer, query, key, value, kv_cache, attn_metadata, output):
            return super().forward(layer, query, key, value, kv_cache, attn_metadata, output)

        def paged_kv(self, kv_cache: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return paged_kv(kv_cache, self.head_size)

    class Builder(native_builder):
        def __init__(self, kv_cache_spec, layer_names, vllm_config, device, *args: Any, **kwargs: Any):
            super().__init__(kv_cache_spec, layer_names, vllm_config, device, *args, **kwargs)
            self.sftasks = spec_from_config(vllm_config) is not None
            if self.sftasks:
                heads = vllm_config.model_config.get_num_attention_heads(vllm_config.parallel_config)
                RUNTIME.register_layers(layer_names, heads, kv_cache_spec.num_kv_heads, kv_cache_spec.block_size)
            if self.sftasks and self.reorder_batch_threshold is None:
                self.reorder_batch_threshold = 1  # decodes first, so the native kernel can take them as a prefix

        @classmethod
        def get_cudagraph_support(cls, vllm_config, kv_cache_spec):
            # The routing is Python that reads the batch on the host: no full CUDA graphs over attention
            # (piecewise graphs of the rest of the model still apply).
            if spec_from_config(vllm_config) is not None:
                from vllm.v1.attention.backend import AttentionCGSupport

                return AttentionCGSupport.NEVER
            return super().get_cudagraph_support(vllm_config, kv_cache_spec)

        def build(self, common_prefix_len, common_attn_metadata, fast_build=False):
            metadata = super().build(common_prefix_len, common_attn_metadata, fast_build)
            if self.sftasks and RUNTIME.method is not None:
                rebuild = lambda sub: super(Builder, self).build(0, sub)  # noqa: E731
                metadata.sftasks = RUNTIME.plan(common_attn_metadata, rebuild)
            return metadata

    class Backend(native):
        @staticmethod
        def get_impl_cls():
            from vllm.config import get_current_vllm_config

            config = get_current_vllm_config()
            spec = spec_from_config(config)
            if spec is None:
                return native_impl
            if config.scheduler_config.enable_chunked_prefill or config.cache_config.enable_prefix_caching:
                raise InputError("sftasks methods need whole prompts: build the engine with "
                                 "sftasks.methods.vllm.LLM, or pass enable_chunked_prefill=False and "
                                 "enable_prefix_caching=False")
            RUNTIME.configure(spec)
            return Impl

        @staticmethod
        def get_builder_cls():
            return Builder

    if name is not None:
        Backend.get_name = staticmethod(lambda: name)
    return Backend


def __getattr__(attr: str):
    """The wrappers are built on first use, so that importing this module never imports a backend
    the platform lacks (vLLM resolves registry paths with getattr on this module)."""
    if attr == "SFTasksCPUBackend":
        from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

        cls = make_backend(CPUAttentionBackend, cpu_paged_kv)
    elif attr == "SFTasksFlashBackend":
        from vllm.v1.attention.backends.flash_attn import FlashAttentionBackend

        cls = make_backend(FlashAttentionBackend, flash_paged_kv, name="CUSTOM")
    else:
        raise AttributeError(attr)
    cls.__name__ = cls.__qualname__ = attr
    cls.__module__ = __name__
    globals()[attr] = cls
    return cls
