"""Benchmark: seconds per generated sample, and that time over one tokenizer pass of the sample.

    python bench/generate.py                       # story tasks at 32k, 128k, 1m
    python bench/generate.py --lengths 4m --samples 1
    python bench/generate.py --tasks story_multihop --tokenizer /path/to/hf_tokenizer_folder

Each sample is built, then its input is tokenized once with the same tokenizer, side by side, so
the ratio is robust to a busy machine. One warm-up sample per task is not timed (per-tokenizer
tables are built once per process). Goals: a 128k sample in <= 0.15 s and <= 1.5x one pass;
a 4M-token sample in < 10 s.
"""

from __future__ import annotations

import argparse
import statistics
import time

from sftasks.lengths import format_length, lower_bound, parse_lengths
from sftasks.tasks import get_task, sample_rng
from sftasks.tokenizers import get_tokenizer

STORY_TASKS = "story_retrieval,story_multihop,story_aggregation"


def bench(task_name: str, target: int, samples: int, tokenizer) -> tuple[float, float]:
    """(median seconds per sample, median ratio to one tokenizer pass)."""
    task = get_task(task_name)
    params = task.make_params()
    task.check_length(target, params, tokenizer)
    task.build(target, sample_rng(task_name, target, 999, 0), tokenizer, params)  # warm-up
    seconds, ratios = [], []
    for index in range(samples):
        start = time.perf_counter()
        sample = task.build(target, sample_rng(task_name, target, 0, index), tokenizer, params)
        built = time.perf_counter() - start
        start = time.perf_counter()
        count = tokenizer.count(sample.input)
        one_pass = time.perf_counter() - start
        assert count == sample.num_tokens and lower_bound(target) <= count <= target
        seconds.append(built)
        ratios.append(built / one_pass)
    return statistics.median(seconds), statistics.median(ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default=STORY_TASKS, help="comma list of tasks")
    parser.add_argument("--lengths", default="32k,128k,1m", help="comma list of lengths")
    parser.add_argument("--samples", type=int, default=0, help="samples per cell (default: 10 up to 128k, else 3)")
    parser.add_argument("--tokenizer", default=None, help="tokenizer name or folder (default Qwen2.5)")
    args = parser.parse_args()
    tokenizer = get_tokenizer(args.tokenizer)
    print(f"tokenizer: {tokenizer.name}")
    print(f"{'task':20s} {'length':>7s} {'s/sample':>9s} {'x one tokenizer pass':>21s}")
    for task in args.tasks.split(","):
        for target in parse_lengths(args.lengths):
            samples = args.samples or (10 if target <= 131072 else 3)
            seconds, ratio = bench(task, target, samples, tokenizer)
            print(f"{task:20s} {format_length(target):>7s} {seconds:9.3f} {ratio:21.2f}", flush=True)


if __name__ == "__main__":
    main()
