"""Overhead of the sftasks vLLM adapter: method=dense through the adapter vs native vLLM, side by side.

    python bench/vllm_overhead.py                 # tiny random Qwen2 on vLLM's CPU build
    python bench/vllm_overhead.py --model PATH    # any local model (GPU vLLM too)

Both engines live in this process with identical engine arguments (chunked prefill and prefix caching
off, as the adapter needs); measurements alternate native/adapter to cancel drift in machine load.
Prints prefill and decode throughput and the adapter/native ratio (goal: >= 0.95); on a shared machine
the best-of-N ratio is the overhead, the median shows the noise.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="model folder (default: a tiny random Qwen2 built in a temp dir)")
    p.add_argument("--prompt-len", type=int, default=1000)
    p.add_argument("--batch", type=int, default=8, help="prompts per generate call")
    p.add_argument("--decode-tokens", type=int, default=64)
    p.add_argument("--reps", type=int, default=8, help="alternating repetitions per engine and phase")
    p.add_argument("--dtype", default="float32")
    args = p.parse_args()
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # both engines in this process

    import vllm

    from sftasks.methods.vllm import LLM

    model = args.model or build_model()
    engine = dict(enforce_eager=True, max_model_len=args.prompt_len + args.decode_tokens + 16, dtype=args.dtype,
                  max_num_seqs=args.batch, enable_chunked_prefill=False, enable_prefix_caching=False, seed=0)
    engines = {"native": vllm.LLM(model, **engine)}
    adapter_args = {k: v for k, v in engine.items() if k not in ("enable_chunked_prefill", "enable_prefix_caching")}
    engines["adapter"] = LLM(model, method="dense", **adapter_args)

    prompts = [{"prompt_token_ids": [10 + (7 * i + 31 * b) % 200 for i in range(args.prompt_len)]}
               for b in range(args.batch)]
    short = [{"prompt_token_ids": p["prompt_token_ids"][:16]} for p in prompts]
    prefill = vllm.SamplingParams(temperature=0.0, max_tokens=1)
    decode = vllm.SamplingParams(temperature=0.0, max_tokens=args.decode_tokens + 1, ignore_eos=True)
    phases = {
        # prompt tokens per second: long prompts, one new token
        "prefill": (prompts, prefill, args.batch * args.prompt_len),
        # generated tokens per second: short prompts, many new tokens (minus the one-token run's time)
        "decode": (short, decode, args.batch * args.decode_tokens),
    }
    base = {name: vllm.SamplingParams(temperature=0.0, max_tokens=1) for name in engines}
    times: dict[tuple[str, str], list[float]] = {}
    for name, llm in engines.items():  # warm-up
        llm.generate(prompts[:2], prefill, use_tqdm=False)
    order = list(engines.items())
    for rep in range(args.reps):
        for phase, (batch, params, _) in phases.items():
            for name, llm in (order if rep % 2 == 0 else order[::-1]):  # ABBA: neither engine always goes first
                start = time.perf_counter()
                llm.generate(batch, params, use_tqdm=False)
                elapsed = time.perf_counter() - start
                if phase == "decode":  # remove the prefill of the short prompts
                    start = time.perf_counter()
                    llm.generate(batch, base[name], use_tqdm=False)
                    elapsed -= time.perf_counter() - start
                times.setdefault((phase, name), []).append(elapsed)
    print(f"\nvLLM {vllm.__version__}, model {model if args.model else 'tiny random Qwen2 (2 layers, head_dim 64)'}, "
          f"batch {args.batch}, prompt {args.prompt_len} tokens, {args.decode_tokens} decode tokens, {args.reps} reps; "
          f"best = fastest rep (least disturbed by other load), median = typical")
    print("| phase   | native tok/s (best) | adapter tok/s (best) | adapter/native (best) | adapter/native (median) |")
    print("|---------|--------------------:|---------------------:|----------------------:|------------------------:|")
    for phase, (_, _, tokens) in phases.items():
        native, adapter = times[(phase, "native")], times[(phase, "adapter")]
        best = min(native) / min(adapter)
        median = statistics.median(native) / statistics.median(adapter)
        print(f"| {phase:7s} | {tokens / min(native):19.0f} | {tokens / min(adapter):20.0f} | {best:21.3f} | "
              f"{median:23.3f} |")
    del engines
    gc.collect()


def build_model() -> str:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_vllm_tiny_model import build_tiny_qwen2

    return str(build_tiny_qwen2(Path(tempfile.mkdtemp(prefix="sftasks-bench-")) / "tiny-qwen2"))


if __name__ == "__main__":
    main()
