"""Decode time per token through the transformers adapter: dense vs Quest (its Triton kernel on a GPU),
for a Qwen2.5-7B-shaped model with random weights built on the device (no download).

  python bench/hf_decode.py [--lengths 32k,128k] [--budget 4096] [--steps 16] [--layers 28] [--profile] [--tiny]

Per length: one dense prefill fills transformers' cache; each configuration then decodes greedily from
it (2 warm-up steps, then `steps` timed, median) and the cache is cropped back for the next one.
`attention off` returns zeros from attention: time minus that is the attention's part of a step.
Quest starts each length with empty page summaries, so its warm-up steps summarise the prompt.
`--profile` also prints, per configuration, the operators that take the most device and host time over
a few steps (where a step's time goes). `--tiny` shrinks everything so that the script runs on a CPU in
seconds (a dry run).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from sftasks.lengths import parse_length
from sftasks.methods import hf
from sftasks.methods.registry import get_method

from e2e import DEVICE, qwen25_7b, setup, skip_attention, sync  # bench/e2e.py: the same model and helpers


def decode_ms(model, cache, token, steps: int) -> float:
    """Median ms of one greedy decode step from a prefilled cache (cropped back to the prompt after)."""
    times = []
    with torch.inference_mode():
        for _ in range(steps + 2):
            sync()
            start = time.perf_counter()
            token = model(input_ids=token, past_key_values=cache, use_cache=True).logits[:, -1:].argmax(-1)
            sync()
            times.append(time.perf_counter() - start)
    cache.crop(-len(times))
    return statistics.median(times[2:]) * 1e3


def profile(model, cache, token, steps: int = 3) -> str:
    """The operators with the most device time over `steps` decode steps (host time beside them)."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if DEVICE == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        decode_ms(model, cache, token, steps)
    sort = "cuda_time_total" if DEVICE == "cuda" else "cpu_time_total"
    return prof.key_averages().table(sort_by=sort, row_limit=12, max_name_column_width=50)


def main() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", default="32k,128k")
    ap.add_argument("--budget", type=int, default=4096, help="Quest token budget")
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--layers", type=int, default=28)
    ap.add_argument("--profile", action="store_true", help="print where each configuration's step time goes")
    ap.add_argument("--tiny", action="store_true", help="small model and lengths: a CPU dry run")
    args = ap.parse_args()
    if args.tiny:
        args.lengths, args.layers, args.budget, args.steps = "600", 2, 64, 3
    AttentionInterface.register("skip", skip_attention)
    AttentionMaskInterface.register("skip", sdpa_mask)
    model, vocab = qwen25_7b(args.layers, args.tiny)
    rows = []
    for T in (parse_length(x) for x in args.lengths.split(",")):
        ids = torch.randint(0, vocab, (1, T), device=DEVICE)
        setup(model, None)
        with torch.inference_mode():
            out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
        cache, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
        times = {}
        for name, how in [("dense (sdpa)", None), ("attention off", "skip"), (f"quest {args.budget}", "quest")]:
            if how == "quest":
                hf.attach(model, get_method("quest", token_budget=args.budget))
            else:
                setup(model, how)
            times[name] = decode_ms(model, cache, token, args.steps)
            print(f"T={T} {name}: {times[name]:.2f} ms per token", flush=True)
            if args.profile:
                print(profile(model, cache, token), flush=True)
        off = times.pop("attention off")
        rows += [(T, name, ms, ms - off, times["dense (sdpa)"] / ms) for name, ms in times.items()]
        del out, cache, ids
        if DEVICE == "cuda":
            torch.cuda.empty_cache()
    name = torch.cuda.get_device_name() if DEVICE == "cuda" else "cpu"
    print(f"\ndevice: {name}  torch {torch.__version__}  {args.layers} layers, batch 1, median of {args.steps} steps\n")
    print("| T | attention | ms per token | attention ms | vs dense |\n| --- | --- | --- | --- | --- |")
    for T, method, ms, attn, speed in rows:
        print(f"| {T} | {method} | {ms:.2f} | {attn:.2f} | {speed:.2f}x |")


if __name__ == "__main__":
    main()
