"""End-to-end prefill time of a Qwen2.5-7B-shaped model (random weights, built on the GPU from its
config: no download) through the transformers adapter, dense vs each prefill method; with a GPU-vs-CPU
correctness check of the methods' GPU paths and a per-stage timing of one attention layer.

  python bench/e2e.py [--lengths 64k,128k] [--layers 28] [--stages 64k,128k] [--no-check] [--tiny]

1. check (small T): each method's GPU prefill against the CPU reference (float32) given the same
   pattern (bf16 relative error < 1e-2), the GPU pattern against the CPU pattern, the chunked
   block-index build against the one-shot build, and the pair counts (sparsity) computed on the GPU
   against the CPU count.
2. stages (one layer, random q/k/v [T, 28, 128] bf16): pattern estimation, attention and pair counting
   per method, timed apart (synchronised wall clock, median of 3); "before" rows time the old ways
   (block index built in one shot, pair counts on the CPU).
3. end to end: `attention share` = (time - time with attention skipped) / time, the skipped run using
   an attention function that returns zeros.
`--tiny` shrinks the model and lengths so the whole script runs on a CPU in seconds (a dry run).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from sftasks.lengths import parse_length
from sftasks.methods import hf
from sftasks.methods.block_sparse import block_sparse_attention, block_sparse_pairs, build_block_index
from sftasks.methods.flexprefill import flexprefill_pattern
from sftasks.methods.registry import dispatch, get_method
from sftasks.methods.vertical_slash import estimate_vertical_slash, vertical_slash_attention, vertical_slash_pairs

METHODS = ("block_sparse", "vertical_slash", "flexprefill")
HQ, HKV, D = 28, 4, 128
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def qwen25_7b(layers: int, tiny: bool):
    from transformers import AutoModelForCausalLM, Qwen2Config

    size = dict(vocab_size=1000, hidden_size=HQ * 16, intermediate_size=512) if tiny else \
        dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944)
    cfg = Qwen2Config(**size, num_hidden_layers=layers, num_attention_heads=HQ, num_key_value_heads=HKV,
                      max_position_embeddings=131072, rope_theta=1e6, rms_norm_eps=1e-6, tie_word_embeddings=False)
    with torch.device(DEVICE):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16, attn_implementation="sdpa")
    return model.eval(), cfg.vocab_size


def skip_attention(module, query, key, value, attention_mask, **kwargs):
    return torch.zeros_like(query).transpose(1, 2), None


def sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def seconds(fn, reps: int = 1) -> float:
    """Median synchronised wall time of fn() (the first call is not counted when reps > 1)."""
    times = []
    for _ in range(reps + (reps > 1)):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:] if reps > 1 else times)


def prefill_seconds(model, ids) -> float:
    def run():
        with torch.inference_mode():
            model(input_ids=ids, use_cache=False, logits_to_keep=1)
    return seconds(run)


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    out, ref = out.double().cpu(), ref.double().cpu()
    if not torch.isfinite(out).all():
        return float("nan")
    return float((out - ref).norm() / ref.norm())


def random_qkv(T: int, seed: int, dtype=torch.bfloat16):
    g = torch.Generator(device=DEVICE).manual_seed(seed)
    return tuple(torch.randn(T, h, D, generator=g, device=DEVICE).to(dtype) for h in (HQ, HKV, HKV))


def check(T: int) -> bool:
    """GPU paths vs CPU reference at a small T; prints one line per check, returns True if all pass."""
    q, k, v = random_qkv(T, seed=1)
    qc, kc, vc = (x.float().cpu() for x in (q, k, v))
    results = []

    def report(what: str, ok: bool, detail: str) -> None:
        results.append(ok)
        print(f"check T={T} {what}: {'ok' if ok else 'FAIL'} ({detail})", flush=True)

    # block_sparse: chunked == one-shot on this device, GPU pattern vs CPU pattern, output vs reference, pairs
    bs = get_method("block_sparse")
    top, bsz = bs.top_chunks(T), bs.config.chunk_size
    index = build_block_index(q, k, bsz, top)
    one_shot = build_block_index(q, k, bsz, top, rows_per_chunk=index.shape[1])
    report("block_sparse chunked index == one-shot", torch.equal(index, build_block_index(q, k, bsz, top, rows_per_chunk=3))
           and torch.equal(index, one_shot), f"{index.shape[1]} query blocks")
    cpu_index = build_block_index(qc, kc, bsz, top)
    agree = float((index.cpu() == cpu_index).float().mean())
    report("block_sparse GPU pattern vs CPU pattern", agree > 0.99, f"{agree:.4f} of entries equal")
    out = bs.prefill(q, k, v, 0)
    err = rel_err(out, block_sparse_attention(qc, kc, vc, index.cpu(), bsz))
    report("block_sparse prefill vs reference", err < 1e-2, f"rel err {err:.2e}")
    gpu_pairs = bs.stats.counts[("prefill", 0)][0]
    report("block_sparse pairs on GPU == CPU count", torch.equal(gpu_pairs, block_sparse_pairs(index.cpu(), T, bsz)),
           f"sparsity {bs.stats.summary()['prefill']['overall']:.4f}")

    # vertical_slash and flexprefill: the pattern the GPU path uses, the reference attention given it
    for name in ("vertical_slash", "flexprefill"):
        method = get_method(name)
        c = method.config
        if name == "vertical_slash":
            sizes = method.sizes(T)
            pattern = dispatch("estimate_vertical_slash", estimate_vertical_slash, q)(q, k, c.approximation_size, *sizes)
            cpu_pattern = estimate_vertical_slash(qc, kc, c.approximation_size, *sizes)
        else:
            pattern = flexprefill_pattern(q, k, c.alpha, c.approximation_size, c.min_budget)
            cpu_pattern = flexprefill_pattern(qc, kc, c.alpha, c.approximation_size, c.min_budget)
        cols, offs = (x.cpu() for x in pattern)
        pairs = vertical_slash_pairs(cols, offs, T)
        cpu_pairs = vertical_slash_pairs(*cpu_pattern, T)
        report(f"{name} GPU pattern vs CPU pattern (pair counts)",
               float((pairs - cpu_pairs).abs().sum() / cpu_pairs.sum()) < 0.02,
               f"pairs {float(pairs.sum()):.0f} vs {float(cpu_pairs.sum()):.0f}")
        out = method.prefill(q, k, v, 0)
        err = rel_err(out, vertical_slash_attention(qc, kc, vc, cols, offs))
        report(f"{name} prefill vs reference", err < 1e-2, f"rel err {err:.2e}")
        gpu_pairs = method.stats.counts[("prefill", 0)][0]
        report(f"{name} pairs on GPU == CPU count", torch.equal(gpu_pairs, pairs) and
               torch.equal(vertical_slash_pairs(*pattern, T).cpu(), pairs), f"sparsity {method.stats.summary()['prefill']['overall']:.4f}")
    return all(results)


def stages(T: int) -> list[tuple[int, str, str, float]]:
    """Per-stage times of one layer at length T: (T, method, stage, seconds)."""
    q, k, v = random_qkv(T, seed=2)
    rows = []

    def stage(method: str, what: str, fn, reps: int = 3):
        result = {}
        rows.append((T, method, what, seconds(lambda: result.update(x=fn()), reps)))
        print(f"stage T={T} {method:15s} {what:40s} {rows[-1][3] * 1e3:9.2f} ms", flush=True)
        return result["x"]

    qs, ks, vs = (x.unsqueeze(0).transpose(1, 2) for x in (q, k, v))
    sdpa = torch.nn.functional.scaled_dot_product_attention
    stage("dense", "sdpa (enable_gqa)", lambda: sdpa(qs, ks, vs, is_causal=True, enable_gqa=True))

    bs = get_method("block_sparse")
    top, bsz = bs.top_chunks(T), bs.config.chunk_size
    nb = -(-T // bsz)
    index = stage("block_sparse", "pattern: block index (chunked)", lambda: build_block_index(q, k, bsz, top))
    if T <= 65536 or DEVICE == "cpu" or torch.cuda.get_device_properties(0).total_memory > 70e9:
        stage("block_sparse", "before: block index (one shot)", lambda: build_block_index(q, k, bsz, top, rows_per_chunk=nb), reps=1)
    attend = dispatch("block_sparse_attention", block_sparse_attention, q)
    stage("block_sparse", "attention (kernel)", lambda: attend(q, k, v, index, bsz))
    stage("block_sparse", "pairs on device", lambda: block_sparse_pairs(index, T, bsz).cpu())
    stage("block_sparse", "before: pairs on CPU", lambda: block_sparse_pairs(index.cpu(), T, bsz), reps=1)

    vsm = get_method("vertical_slash")
    estimate = dispatch("estimate_vertical_slash", estimate_vertical_slash, q)
    attend = dispatch("vertical_slash_attention", vertical_slash_attention, q)
    cols, offs = stage("vertical_slash", "pattern: estimate", lambda: estimate(q, k, vsm.config.approximation_size, *vsm.sizes(T)))
    stage("vertical_slash", "attention (kernel)", lambda: attend(q, k, v, cols, offs))
    stage("vertical_slash", "pairs on device", lambda: vertical_slash_pairs(cols, offs, T).cpu())
    stage("vertical_slash", "pairs on CPU (vectorised, index copied)", lambda: vertical_slash_pairs(cols.cpu(), offs.cpu(), T), reps=1)

    fp = get_method("flexprefill").config
    cols, offs = stage("flexprefill", "pattern: scores + cover + top-k",
                       lambda: flexprefill_pattern(q, k, fp.alpha, fp.approximation_size, fp.min_budget))
    stage("flexprefill", "attention (kernel)", lambda: attend(q, k, v, cols, offs))
    stage("flexprefill", "pairs on device", lambda: vertical_slash_pairs(cols, offs, T).cpu())
    stage("flexprefill", "pairs on CPU (vectorised, index copied)", lambda: vertical_slash_pairs(cols.cpu(), offs.cpu(), T), reps=1)
    kept = float(vertical_slash_pairs(cols, offs, T).sum()) / (HQ * T * (T + 1) / 2)
    print(f"stage T={T} flexprefill kept pairs {kept:.3f}, columns per head {float((cols >= 0).sum(1).float().mean()):.0f}, "
          f"diagonals per head {float((offs >= 0).sum(1).float().mean()):.0f}", flush=True)
    del q, k, v
    if DEVICE == "cuda":
        torch.cuda.empty_cache()
    return rows


def end_to_end(lengths: list[int], layers: int, tiny: bool) -> list[tuple]:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register("skip", skip_attention)
    AttentionMaskInterface.register("skip", sdpa_mask)
    model, vocab = qwen25_7b(layers, tiny)
    warm = torch.randint(0, vocab, (1, 256 if tiny else 4096), device=DEVICE)
    configs = [("dense (sdpa)", None), ("attention skipped", "skip")] + [(m, m) for m in METHODS]
    for name, how in list(configs):  # compile kernels, warm the allocator; drop a config that fails
        try:
            setup(model, how)
            prefill_seconds(model, warm)
        except Exception as e:  # noqa: BLE001 - reported, and the other configs still run
            print(f"{name} failed: {type(e).__name__}: {str(e)[:300]}", flush=True)
            configs.remove((name, how))
    rows = []
    for T in lengths:
        ids = torch.randint(0, vocab, (1, T), device=DEVICE)
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
        if DEVICE == "cuda":
            torch.cuda.empty_cache()
    return rows


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", default="64k,128k", help="end-to-end lengths ('' to skip)")
    ap.add_argument("--layers", type=int, default=28)
    ap.add_argument("--stages", default="64k,128k", help="per-stage timing lengths ('' to skip)")
    ap.add_argument("--check-length", type=int, default=4096)
    ap.add_argument("--no-check", action="store_true")
    ap.add_argument("--tiny", action="store_true", help="small model and lengths: a CPU dry run")
    args = ap.parse_args()
    if args.tiny:
        args.lengths, args.stages, args.layers, args.check_length = "600", "600", 2, 300
    ok = True if args.no_check else check(args.check_length)
    stage_rows = [row for T in filter(None, args.stages.split(",")) for row in stages(parse_length(T))]
    lengths = [parse_length(x) for x in filter(None, args.lengths.split(","))]
    rows = end_to_end(lengths, args.layers, args.tiny) if lengths else []
    name = torch.cuda.get_device_name() if DEVICE == "cuda" else "cpu"
    print(f"\ndevice: {name}  torch {torch.__version__}  checks {'passed' if ok else 'FAILED'}")
    if stage_rows:
        print(f"\none layer (28 q heads, 4 kv heads, d 128, bf16):\n{'T':>7s} {'method':15s} {'stage':40s} {'ms':>9s}")
        for T, method, what, s in stage_rows:
            print(f"{T:>7d} {method:15s} {what:40s} {s * 1e3:9.2f}")
    if rows:
        print(f"\nend to end, {args.layers} layers:\n{'T':>7s} {'method':16s} {'prefill s':>9s} {'attn share':>10s} "
              f"{'sparsity':>8s} {'vs dense':>8s}")
        for T, method, t, share, s, speed in rows:
            print(f"{T:>7d} {method:16s} {t:9.2f} {share:10.0%} {'' if s is None else f'{s:.3f}':>8s} {speed:7.2f}x")


if __name__ == "__main__":
    main()
