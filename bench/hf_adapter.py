"""Cost of the transformers adapter: plain transformers vs `dense` through the adapter vs each method's
reference path, on one random Qwen2-shaped model, measured side by side in one run.

    python bench/hf_adapter.py --len 2048 --new 16 [--repeat 3] [--device cuda] [--hidden 256 --layers 4]

Prints prefill seconds and decode tokens/s (best of --repeat, engines interleaved in each round so that
load on a shared machine hits all alike), both as ratios to plain transformers, and measured sparsity.
On CPU the sparse methods run their PyTorch references (mask-based, for correctness, not speed); on
CUDA with triton they dispatch to `sftasks.kernels`.
"""

from __future__ import annotations

import argparse
import time

import torch

from sftasks.methods.hf import _Clock, attach
from sftasks.methods.registry import get_method
from sftasks.runner import primary_hook

METHODS = [
    ("dense", {}),
    ("block_sparse", {"sparsity": 0.9}),
    ("vertical_slash", {"sparsity": 0.9}),
    ("flexprefill", {}),
    ("quest", {"sparsity": 0.9}),
    ("snapkv", {"sparsity": 0.9}),
    ("ada_snapkv", {"sparsity": 0.9}),
]


def build(hidden: int, layers: int, device: str):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=1024, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                         num_attention_heads=hidden // 64 * 2, num_key_value_heads=2, head_dim=32,
                         max_position_embeddings=1 << 17)
    return Qwen2ForCausalLM(config).to(device).eval()


def timed_generate(model, ids, new_tokens: int) -> tuple[float, float]:
    clock = _Clock()
    with torch.inference_mode():
        model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                       do_sample=False, streamer=clock, pad_token_id=0)
    if ids.is_cuda:
        torch.cuda.synchronize()
    return clock.marks[1] - clock.marks[0], (len(clock.marks) - 3) / (clock.marks[-1] - clock.marks[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--len", type=int, default=2048, help="prompt tokens (default 2048)")
    parser.add_argument("--new", type=int, default=16, help="generated tokens (default 16)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the best of each is shown (default 3)")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--methods", default=",".join(name for name, _ in METHODS), help="comma list")
    args = parser.parse_args()
    ids = torch.randint(0, 1024, (1, args.len), generator=torch.Generator().manual_seed(0)).to(args.device)

    engines = [("transformers (sdpa)", build(args.hidden, args.layers, args.device), None)]
    for name, params in METHODS:
        if name in args.methods.split(","):
            model, method = build(args.hidden, args.layers, args.device), get_method(name, **params)
            attach(model, method)
            label = f"{name} " + ",".join(f"{k}={v}" for k, v in params.items())
            engines.append((label, model, method))
    for _, model, _ in engines:
        timed_generate(model, ids[:, :64], 2)  # warm-up
    best = {label: (float("inf"), 0.0) for label, _, _ in engines}
    for _ in range(args.repeat):
        for label, model, method in engines:
            if method is not None:
                method.stats.reset()
            prefill, rate = timed_generate(model, ids, args.new)
            best[label] = (min(best[label][0], prefill), max(best[label][1], rate))
    base_prefill, base_rate = best[engines[0][0]]
    print(f"device={args.device} prompt={args.len} new={args.new} hidden={args.hidden} layers={args.layers} "
          f"best of {args.repeat}")
    print(f"{'engine':28s} {'prefill s':>10s} {'x plain':>8s} {'decode tok/s':>13s} {'x plain':>8s} {'sparsity':>9s}")
    for label, _, method in engines:
        prefill, rate = best[label]
        sparsity = "-" if method is None else \
            f"{method.stats.summary().get(primary_hook(method), {}).get('overall', 0.0):.3f}"
        print(f"{label:28s} {prefill:10.3f} {prefill / base_prefill:8.2f} {rate:13.1f} {rate / base_rate:8.2f} "
              f"{sparsity:>9s}")


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"total {time.perf_counter() - start:.1f} s")
