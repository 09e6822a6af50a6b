"""The adapter's per-process state and the routing of one attention layer's packed batch.

One `Runtime` per vLLM worker process (one per tensor-parallel rank). It holds the method, and per
request: the KV sets a compression kept (decode then reads only those: vLLM cannot shrink its block
allocation, so compression is exact in accuracy and reported in memory), the method's sparsity counts
for that request, and counts for the hooks that took vLLM's native dense path.

Per engine step the metadata builder calls `plan` once (CPU bookkeeping shared by all layers); each
layer's impl calls `forward`, which runs the native kernel on the rows the method leaves dense and
the method's hooks on the rest: prefill and compression one sequence at a time (the interface is per
sequence), decode for all decode rows of the step in one call (a packed batch over vLLM's paged cache).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from sftasks.errors import Error, InputError

from ..base import KVCache, Method, SparsityStats

logger = logging.getLogger("vllm.sftasks")  # under vLLM's logger: printed with its own INFO lines

CONFIG_KEY = "sftasks"  # vLLM additional_config key: {"method": name, "params": {...}, "class": "mod:Cls"?}


def spec_from_config(vllm_config) -> dict | None:
    extra = getattr(vllm_config, "additional_config", None) or {}
    return extra.get(CONFIG_KEY) if isinstance(extra, dict) else None


def build_method(spec: dict) -> Method:
    """A method from its spec: by registry name, or by `module:Class` for methods outside the registry."""
    if spec.get("class"):
        import importlib

        module, _, qualname = spec["class"].partition(":")
        cls = importlib.import_module(module)
        for part in qualname.split("."):
            cls = getattr(cls, part)
        return cls(**spec.get("params", {}))
    from ..registry import get_method

    return get_method(spec["method"], **spec.get("params", {}))


@dataclass
class Step:
    """One engine step as the runtime sees it (rows are requests, in the batch's order)."""

    keys: list[str]
    starts: list[int]  # query_start_loc, len rows + 1
    seq_lens: list[int]
    decode_rows: list[int]  # one new token over a cached context
    prefill_rows: list[int]  # the request's whole sequence so far, from its first token
    block_table: torch.Tensor
    seq_lens_t: torch.Tensor
    decode_metadata: Any = None  # native metadata of the decode rows when they form a prefix of the batch
    decode_batch: tuple | None = None  # (token positions, page table rows, lengths) of the decode rows on the device
    routed: bool = True  # False when every row takes the native path (dense hooks only)


def written_blocks(starts: list[int], seq_lens: list[int], block_table: torch.Tensor, block_size: int) -> torch.Tensor:
    """The cache blocks this step writes: row r's new tokens are the last starts[r+1] - starts[r] of its
    seq_lens[r], in the blocks of its block table that hold them."""
    rows, cols = [], []
    for r, n in enumerate(seq_lens[: len(starts) - 1]):
        new = starts[r + 1] - starts[r]
        if new > 0:
            span = range((n - new) // block_size, (n - 1) // block_size + 1)
            rows += [r] * len(span)
            cols += span
    index = lambda x: torch.tensor(x, dtype=torch.long, device=block_table.device)  # noqa: E731
    return block_table[index(rows), index(cols)]


@dataclass
class RequestState:
    stats: SparsityStats = field(default_factory=SparsityStats)
    prompt_len: int = 0  # tokens the compression saw
    kept: dict[int, list[torch.Tensor]] = field(default_factory=dict)  # layer -> per KV head kept prompt tokens
    dense: dict[str, float] = field(default_factory=lambda: {"prefill": 0.0, "decode": 0.0})  # per head, per layer
    kv_bytes: float = 0.0  # prompt K+V bytes on this rank, all compressed layers
    kv_saved: float = 0.0  # of which true compression would have freed


class Runtime:
    def __init__(self) -> None:
        self.spec: dict | None = None
        self.method: Method | None = None
        self.runner: Any = None  # the worker's model runner, for request ids (set by the worker extension)
        self.layers: dict[int, tuple[int, int]] = {}  # layer -> (query heads, kv heads) on this rank
        self.block_size = 0  # the KV cache's tokens per block
        self.requests: dict[str, RequestState] = {}
        self.layout_checked = False
        self.idle = SparsityStats()  # where a method's stats go outside a request's hook call
        self.per_row_decode = False  # set when the method's decode does not count one sequence per add
        self.mixed_steps = 0  # steps that held both prefills and decodes (a diagnostic for tests and logs)

    # ---- configuration -------------------------------------------------------------------------
    def configure(self, spec: dict) -> None:
        if spec == self.spec and self.method is not None:
            self.method.forget_cache_pages(None)  # kept for a new engine: its per-page state is stale
            return
        self.method = build_method(spec)
        self.method.stats = self.idle
        self.per_row_decode = False
        self.spec = dict(spec)
        self.requests.clear()
        hooks = [h for h in ("prefill", "compress", "decode") if self.method.overrides(h)]
        logger.info("sftasks: method %s (hooks: %s) attached to vLLM attention; chunked prefill and prefix caching "
                    "are off so that methods see each prompt whole, from its first token", self.method.name,
                    ", ".join(hooks) or "none, native dense path")

    def hooks(self) -> tuple[bool, bool, bool]:
        """(method prefill, compression, method decode); a compression's decode reads only kept tokens."""
        m = self.method
        compress = m.overrides("compress")
        return m.overrides("prefill"), compress, m.overrides("decode") or compress

    # ---- per step ------------------------------------------------------------------------------
    def row_keys(self, rows: int, block_table: torch.Tensor) -> list[str]:
        ids = getattr(getattr(self.runner, "input_batch", None), "req_ids", None)
        if ids is not None and len(ids) >= rows:
            return list(ids[:rows])
        # Without the runner a request is known by its first cache block (unique while it lives).
        return [f"block{b}" for b in block_table[:rows, 0].tolist()]

    def plan(self, cm, rebuild: Callable) -> Step:
        """Classify the rows of this step and do its bookkeeping (once, shared by all layers)."""
        rows = cm.num_reqs
        starts = cm.query_start_loc_cpu[: rows + 1].tolist()
        lens_cpu = cm.seq_lens_cpu_upper_bound if cm.seq_lens_cpu_upper_bound is not None else cm.seq_lens
        seq_lens = lens_cpu[:rows].cpu().tolist()
        keys = self.row_keys(rows, cm.block_table_tensor)
        self.free_finished()
        decode_rows, prefill_rows, partial = [], [], []
        for r in range(rows):
            q = starts[r + 1] - starts[r]
            if q == 0:
                continue  # padding row
            if q == seq_lens[r]:
                prefill_rows.append(r)
            elif q == 1:
                decode_rows.append(r)
            else:
                partial.append(r)
        method_prefill, compress, method_decode = self.hooks()
        if partial and (method_prefill or compress):
            raise InputError("a prompt reached the sftasks vLLM adapter in chunks (chunked prefill or prefix "
                             "caching); build the engine with sftasks.methods.vllm.LLM, or pass "
                             "enable_chunked_prefill=False and enable_prefix_caching=False")
        for r in prefill_rows:
            self.requests[keys[r]] = RequestState()  # a new request (or a recomputed one) starts afresh
            if not method_prefill:
                n = seq_lens[r]
                self.requests[keys[r]].dense["prefill"] += n * (n + 1) / 2
        for r in decode_rows:
            state = self.requests.setdefault(keys[r], RequestState())
            if not method_decode:
                state.dense["decode"] += seq_lens[r]
        for r in partial:  # chunked prefill under a method with no prefill-side hook: dense, counted as such
            state = self.requests.setdefault(keys[r], RequestState())
            q = starts[r + 1] - starts[r]
            state.dense["prefill"] += q * (2 * seq_lens[r] - q + 1) / 2
        if self.method.overrides("forget_cache_pages"):  # before any layer reads the cache this step
            self.method.forget_cache_pages(written_blocks(starts, seq_lens, cm.block_table_tensor, self.block_size))
        self.mixed_steps += bool(prefill_rows and decode_rows)
        routed = bool(prefill_rows and (method_prefill or compress)) or bool(decode_rows and method_decode)
        step = Step(keys, starts, seq_lens, decode_rows, prefill_rows, cm.block_table_tensor, cm.seq_lens,
                    routed=routed)
        nd = len(decode_rows)
        if nd and method_decode:  # made once here, not per layer (each host-to-device copy waits for the GPU)
            at = torch.tensor(decode_rows, device=cm.block_table_tensor.device)
            step.decode_batch = (torch.tensor([starts[r] for r in decode_rows], device=at.device),
                                 cm.block_table_tensor[at], cm.seq_lens[at])
        if routed and nd and not method_decode and decode_rows == list(range(nd)) and nd < rows:
            sub = cm.unpadded(nd, nd).replace(max_query_len=1, max_seq_len=max(seq_lens[:nd]))
            step.decode_metadata = rebuild(sub)
        return step

    def free_finished(self) -> None:
        """Drop the kept-token sets of requests that left the engine (their counts stay until exported)."""
        live = getattr(getattr(self.runner, "input_batch", None), "req_ids", None)
        if live is None:
            return
        live = set(live)
        for key, state in self.requests.items():
            if state.kept and key not in live:
                state.kept = {}

    # ---- per layer -----------------------------------------------------------------------------
    def forward(self, impl, layer, query, key, value, kv_cache, metadata, output) -> torch.Tensor:
        step: Step = metadata.sftasks
        index = self.layer_index(impl, layer)
        method_prefill, compress, method_decode = self.hooks()
        native_rows = [r for r in step.decode_rows if not method_decode]
        native_rows += [r for r in step.prefill_rows if not method_prefill]
        if native_rows:
            if native_rows == step.decode_rows and step.decode_metadata is not None:
                impl.native_forward(layer, query, key, value, kv_cache, step.decode_metadata, output)
            else:  # the whole batch natively; the method's rows are overwritten below
                impl.native_forward(layer, query, key, value, kv_cache, metadata, output)
        if not self.layout_checked and step.prefill_rows:
            self.check_layout(impl, key, kv_cache, metadata)
        q_all = query if impl.scale == impl.head_size**-0.5 else query * (impl.scale * impl.head_size**0.5)
        m = self.method
        try:
            if method_prefill or compress:
                for r in step.prefill_rows:
                    self.prefill_row(r, step, index, q_all, key, value, output, method_prefill, compress)
            if method_decode and step.decode_rows:
                k_pages, v_pages = impl.paged_kv(kv_cache)
                self.decode(step, index, q_all, k_pages, v_pages, output)
        finally:
            m.stats = self.idle
        return output

    def prefill_row(self, r, step, index, q_all, key, value, output, method_prefill, compress) -> None:
        state = self.requests[step.keys[r]]
        self.method.stats = state.stats
        s, e = step.starts[r], step.starts[r + 1]
        q, k, v = q_all[s:e], key[s:e], value[s:e]
        if method_prefill:
            output[s:e] = self.method.prefill(q, k, v, index)
        if compress:
            kept = self.method.compress(q, k, v, index)
            if kept is not None:
                state.kept[index] = [t.to(k.device, torch.long) for t in kept]
                state.prompt_len = e - s
                per_token = 2 * k.shape[-1] * k.element_size()  # K and V of one token, one head
                state.kv_bytes += k.shape[1] * (e - s) * per_token
                state.kv_saved += (k.shape[1] * (e - s) - sum(len(t) for t in kept)) * per_token

    def decode(self, step, index, q_all, k_pages, v_pages, output) -> None:
        """All decode rows in one call of the method (one kernel launch on GPU). Each row's counts go to
        its request, which needs one `stats.add` per sequence, in order (as the built-in methods do);
        a method that counts otherwise is called one sequence at a time from then on."""
        rows = step.decode_rows
        if not self.per_row_decode:
            recorder = _Recorder()
            self.method.stats = recorder
            tokens, table, lens = step.decode_batch
            cache = KVCache(k_pages, v_pages, table, lens, persistent=True, seq_lens_host=[step.seq_lens[r] for r in rows])
            kept = {(b, index): self.kept_tokens(step, r, index) for b, r in enumerate(rows)}
            cache.kept = {key: value for key, value in kept.items() if value is not None} or None
            out = self.method.decode(q_all[tokens], cache, index)
            if len(recorder.calls) == len(rows):
                output[tokens] = out
                for r, call in zip(rows, recorder.calls):
                    self.requests.setdefault(step.keys[r], RequestState()).stats.add(*call)
                return
            self.per_row_decode = True
            logger.info("sftasks: %s counts decode sparsity per batch, not per sequence; decoding one sequence "
                        "at a time so that each request gets its own counts", self.method.name)
        for r in rows:
            self.decode_row(r, step, index, q_all, k_pages, v_pages, output)

    def kept_tokens(self, step, r, index) -> list[torch.Tensor] | None:
        """Per KV head, the tokens row r may read: its compressed prompt plus every token generated since."""
        state = self.requests.get(step.keys[r])
        kept = state.kept.get(index) if state is not None else None
        if kept is None:
            return None
        new = torch.arange(state.prompt_len, step.seq_lens[r], device=kept[0].device)
        return [torch.cat([t, new]) for t in kept]

    def decode_row(self, r, step, index, q_all, k_pages, v_pages, output) -> None:
        state = self.requests.setdefault(step.keys[r], RequestState())
        self.method.stats = state.stats
        s = step.starts[r]
        cache = KVCache(k_pages, v_pages, step.block_table[r : r + 1], step.seq_lens_t[r : r + 1], persistent=True,
                        seq_lens_host=[step.seq_lens[r]])
        kept = self.kept_tokens(step, r, index)
        if kept is not None:
            cache.kept = {(0, index): kept}
        output[s : s + 1] = self.method.decode(q_all[s : s + 1], cache, index)

    def layer_index(self, impl, layer) -> int:
        index = getattr(impl, "sftasks_layer", None)
        if index is None:
            from vllm.model_executor.models.utils import extract_layer_index

            index = impl.sftasks_layer = extract_layer_index(layer.layer_name)
        return index

    def register_layers(self, layer_names: list[str], num_heads: int, num_kv_heads: int, block_size: int) -> None:
        """The attention layers of this rank, their local head counts (for the dense-path counts) and
        the cache's block size (to name the blocks each step writes)."""
        from vllm.model_executor.models.utils import extract_layer_index

        self.block_size = block_size
        for name in layer_names:
            self.layers[extract_layer_index(name)] = (num_heads, num_kv_heads)

    def check_layout(self, impl, key, kv_cache, metadata) -> None:
        """Once per process: the tokens just written must read back through `paged_kv` (else the
        native backend changed its cache layout and decode hooks would read garbage)."""
        k_pages, _ = impl.paged_kv(kv_cache)
        n = min(int(metadata.num_actual_tokens), 8)
        slots = metadata.slot_mapping[:n].long()
        block_size = k_pages.shape[1]
        read = k_pages[slots // block_size, slots % block_size]
        if not torch.allclose(read.float(), key[:n].float(), atol=1e-2, rtol=1e-2):
            raise Error(f"the vLLM KV-cache layout of {type(impl).__mro__[1].__name__} is not the one the sftasks "
                        f"adapter reads (CPU ISA {getattr(impl, 'isa', None) or 'n/a'}); use a supported vLLM version, "
                        f"or on CPU a float32 model (the vec kernels)")
        self.layout_checked = True

    # ---- stats ---------------------------------------------------------------------------------
    def export(self, drop_finished: bool = True) -> dict:
        """Per-request counts on this rank (heads local to the rank), as plain lists for RPC."""
        from vllm.distributed import get_tensor_model_parallel_rank

        out = {}
        for key, state in self.requests.items():
            stats = SparsityStats()
            stats.merge(state.stats)
            for hook, per_head in state.dense.items():
                if per_head:
                    for index, (hq, _) in self.layers.items():
                        full = torch.full((hq,), per_head, dtype=torch.float64)
                        stats.add(hook, index, full, full)
            out[key] = {"counts": [[hook, index, c.tolist(), p.tolist()] for (hook, index), (c, p) in stats.counts.items()],
                        "kv_bytes": state.kv_bytes, "kv_saved": state.kv_saved}
        if drop_finished:
            live = set(getattr(getattr(self.runner, "input_batch", None), "req_ids", None) or [])
            self.requests = {k: v for k, v in self.requests.items() if k in live}
        return {"rank": get_tensor_model_parallel_rank(), "requests": out}


class _Recorder(SparsityStats):
    """Stats that keep each `add` call apart, so a packed decode's counts can go back to their rows."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple] = []

    def add(self, hook, layer, computed, possible) -> None:
        self.calls.append((hook, layer, computed, possible))


RUNTIME = Runtime()
