"""How far Quest's bounds launch is from only reading its bytes, at 128k (8192 pages, 4 KV heads, head_dim 128).

Each kernel runs over 8 layers' page summaries in turn (cold in L2, as in a model's decode step), replayed
in a CUDA graph; the bounds launch against Triton kernels that only read the same two tensors (min and max
summaries, 16.7 MB), with several program counts, and reads laid out as the bounds launch lays them out.
  python bench/quest_bounds_read.py
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from sftasks.kernels.quest import _page_bounds

from kernels import D, DTYPE, HKV, HQ, LAYERS, per_call_us  # bench/kernels.py: the layer and the timing

PAGES = 8192  # 128k tokens in 16-token pages


@triton.jit
def _read_flat(Lo, Hi, Out, PER_PROGRAM: tl.constexpr, BLOCK: tl.constexpr):
    """Each program sums its contiguous share of both tensors (the sum keeps the loads)."""
    pid = tl.program_id(0)
    acc = tl.zeros([BLOCK], tl.float32)
    for i in tl.static_range(0, PER_PROGRAM, BLOCK):
        offs = pid.to(tl.int64) * PER_PROGRAM + i + tl.arange(0, BLOCK)
        acc += tl.load(Lo + offs).to(tl.float32) + tl.load(Hi + offs).to(tl.float32)
    tl.store(Out + pid, tl.sum(acc, 0))


@triton.jit
def _read_as_bounds(Lo, Hi, Out, RUN: tl.constexpr, KV_HEADS: tl.constexpr, HEAD_DIM: tl.constexpr):
    """The bounds launch's reads alone: one KV head's rows of RUN pages (256 bytes at a 1 KB stride)."""
    kvh, run = tl.program_id(0), tl.program_id(1)
    pages = run * RUN + tl.arange(0, RUN)
    offs = pages[:, None].to(tl.int64) * (KV_HEADS * HEAD_DIM) + kvh * HEAD_DIM + tl.arange(0, HEAD_DIM)[None, :]
    x = tl.load(Lo + offs).to(tl.float32) + tl.load(Hi + offs).to(tl.float32)
    tl.store(Out + kvh * tl.num_programs(1) + run, tl.sum(tl.sum(x, 1), 0))


def main() -> None:
    group = HQ // HKV
    layers = []
    for _ in range(LAYERS):
        lo = torch.randn(1, PAGES, HKV, D, device="cuda", dtype=DTYPE)
        layers.append((lo, lo + torch.rand_like(lo), torch.ones(1, PAGES, HKV, dtype=torch.int8, device="cuda"),
                       torch.randn(1, HQ, D, device="cuda", dtype=DTYPE)))
    table = torch.arange(PAGES, device="cuda", dtype=torch.int32).view(1, -1)
    k_pages = torch.randn(PAGES, 16, HKV, D, device="cuda", dtype=DTYPE)  # read only by the summarise path
    seq_lens = torch.tensor([PAGES * 16], device="cuda", dtype=torch.int32)
    bounds = torch.empty(1, HKV, PAGES, device="cuda")
    arrived = torch.empty(1, HKV, device="cuda", dtype=torch.int32)
    sums = torch.empty(8192, device="cuda")
    elements = PAGES * HKV * D

    def bounds_launch(lo, hi, ready, q, run=32, warps=4):
        return lambda: _page_bounds[(1, HKV, PAGES // run)](
            q, k_pages, table, seq_lens, lo, hi, ready, bounds, arrived, PAGES, PAGES, q.stride(0), q.stride(1),
            k_pages.stride(0), k_pages.stride(1), k_pages.stride(2), lo.stride(0), lo.stride(1), lo.stride(2),
            ready.stride(0), ready.stride(1), bounds.stride(0), bounds.stride(1), GROUP=group, SHARE=True,
            HEAD_DIM=D, PAGE=16, CACHE_PAGE=16, ROWS=16, PAGES=run, BY_CACHE_PAGE=False, IEEE=False, num_warps=warps)

    variants = {"bounds launch, 32 pages a program (the default)": bounds_launch,
                "bounds launch, 64 pages a program": lambda *l: bounds_launch(*l, run=64)}
    for programs, block, warps in ((2048, 1024, 4), (1024, 2048, 4), (512, 2048, 4), (256, 4096, 8)):
        variants[f"read only, {programs} programs"] = (
            lambda lo, hi, ready, q, p=programs, b=block, w=warps:
            lambda: _read_flat[(p,)](lo, hi, sums, PER_PROGRAM=elements // p, BLOCK=b, num_warps=w))
    variants["read only, laid out as the bounds launch (1024 programs)"] = (
        lambda lo, hi, ready, q: lambda: _read_as_bounds[(HKV, PAGES // 32)](lo, hi, sums, RUN=32, KV_HEADS=HKV,
                                                                             HEAD_DIM=D, num_warps=4))
    megabytes = 2 * elements * layers[0][0].element_size() / 1e6
    print(f"| kernel ({LAYERS} layers in turn, graphs) | µs a call | TB/s |")
    print("| --- | --- | --- |")
    for name, make in variants.items():
        calls = [make(*layer) for layer in layers]
        for call in calls:
            call()
        us = per_call_us(calls)
        print(f"| {name} | {us:.2f} | {megabytes / us:.2f} |", flush=True)


if __name__ == "__main__":
    main()
