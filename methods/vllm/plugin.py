"""The `vllm.general_plugins` entry point: vLLM calls `register()` in every process it starts.

It only registers backend classes; they stay inert (pure native vLLM) unless the engine's
`additional_config` carries an `"sftasks"` entry, so plain vLLM runs are unaffected.
"""

from __future__ import annotations

CPU_BACKEND = "sftasks.methods.vllm.backend.SFTasksCPUBackend"
CUDA_BACKEND = "sftasks.methods.vllm.backend.SFTasksFlashBackend"


def register() -> None:
    """Idempotent (vLLM may call it more than once per process)."""
    from vllm.platforms import current_platform
    from vllm.v1.attention.backends.registry import AttentionBackendEnum, register_backend

    if current_platform.is_cpu():
        # vLLM's CPU platform ignores every backend choice but CPU_ATTN, so the wrapper takes that slot.
        register_backend(AttentionBackendEnum.CPU_ATTN, CPU_BACKEND)
    else:
        # Elsewhere the wrapper is vLLM's CUSTOM backend, chosen with attention_config={"backend": "CUSTOM"}.
        register_backend(AttentionBackendEnum.CUSTOM, CUDA_BACKEND)
