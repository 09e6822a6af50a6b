"""vLLM worker extension (`worker_extension_cls`): the adapter's RPCs, reached with `LLM.collective_rpc`.

vLLM mixes this class into its worker class in every worker process; `self` is the worker.
"""

from __future__ import annotations

from .runtime import RUNTIME


class SFTasksWorker:
    def sftasks_attach(self) -> bool:
        """Let the runtime name rows by request id (the runner's batch order is the attention's)."""
        RUNTIME.runner = self.model_runner
        return True

    def sftasks_set_method(self, spec: dict) -> bool:
        RUNTIME.runner = self.model_runner
        RUNTIME.configure(spec)
        return True

    def sftasks_stats(self, drop_finished: bool = True) -> dict:
        RUNTIME.runner = self.model_runner
        return RUNTIME.export(drop_finished)
