"""End-to-end prefill time of a Qwen2.5-7B-shaped model (random weights, built on the GPU from its
config: no download) through the transformers adapter, dense vs each prefill method.

  python bench/e2e.py [--lengths 64k,128k] [--layers 28]
`attention share` = (time - time with attention skipped) / time, the skipped run using an attention
function that returns zeros. Prints one table.
"""

from __future__ import annotations

import argparse
import time

import torch

from sftasks.lengths import parse_length
from sftasks.methods import hf
from sftasks.methods.registry import get_method

METHODS = ("block_sparse", "vertical_slash", "flexprefill")


def qwen25_7b(layers: int):
    from transformers import AutoModelForCausalLM, Qwen2Config

    cfg = Qwen2Config(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=layers,
                      num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=131072,
                      rope_theta=1e6, rms_norm_eps=1e-6, tie_word_embeddings=False)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.bfloat16, attn_implementation="sdpa")
    return model.eval()


def skip_attention(module, query, key, value, attention_mask, **kwargs):
    return torch.zeros_like(query).transpose(1, 2), None


def prefill_seconds(model, ids) -> float:
    torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.inference_mode():
        model(input_ids=ids, use_cache=False, logits_to_keep=1)
    torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", default="64k,128k")
    ap.add_argument("--layers", type=int, default=28)
    args = ap.parse_args()
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register("skip", skip_attention)
    AttentionMaskInterface.register("skip", sdpa_mask)
    model = qwen25_7b(args.layers)
    lengths = [parse_length(x) for x in args.lengths.split(",")]
    warm = torch.randint(0, 152064, (1, 4096), device="cuda")
    configs = [("dense (sdpa)", None), ("attention skipped", "skip")] + [(m, m) for m in METHODS]
    rows = []
    for name, how in list(configs):  # compile kernels, warm the allocator; drop a config that fails
        try:
            setup(model, how)
            prefill_seconds(model, warm)
        except Exception as e:  # noqa: BLE001 - reported, and the other configs still run
            print(f"{name} failed: {type(e).__name__}: {str(e)[:300]}", flush=True)
            configs.remove((name, how))
    for T in lengths:
        ids = torch.randint(0, 152064, (1, T), device="cuda")
        times, sparsity = {}, {}
        for name, how in configs:
            adapter = setup(model, how)
            times[name] = prefill_seconds(model, ids)
            if adapter is not None:
                sparsity[name] = adapter.method.stats.summary().get("prefill", {}).get("overall")
            print(f"T={T} {name}: {times[name]:.2f} s", flush=True)
        for name, _ in configs:
            if name == "attention skipped":
                continue
            share = (times[name] - times["attention skipped"]) / times[name]
            rows.append((T, name, times[name], share, sparsity.get(name), times["dense (sdpa)"] / times[name]))
        del ids
        torch.cuda.empty_cache()
    print(f"\ndevice: {torch.cuda.get_device_name()}  torch {torch.__version__}  layers {args.layers}")
    print(f"{'T':>7s} {'method':16s} {'prefill s':>9s} {'attn share':>10s} {'sparsity':>8s} {'vs dense':>8s}")
    for T, name, t, share, s, speed in rows:
        print(f"{T:>7d} {name:16s} {t:9.2f} {share:10.0%} {'' if s is None else f'{s:.3f}':>8s} {speed:7.2f}x")


def setup(model, how):
    if how is None:
        model.set_attn_implementation("sdpa")
        return None
    if how == "skip":
        model.set_attn_implementation("skip")
        return None
    adapter = hf.attach(model, get_method(how))
    adapter.reset()
    return adapter


if __name__ == "__main__":
    main()
