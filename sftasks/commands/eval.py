"""`sftasks eval --backend hf --model PATH --method quest --param token_budget=1024 --task story_multihop
--len 8k --samples 20 --out runs/x`: generate records, run a model with a sparse method, write
predictions (resumable), score."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from . import parse_params


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "eval",
        help="run a model with a sparse attention method on a task and score it",
        description="Generate TASK samples at LENGTH, run MODEL with METHOD greedily, append one line per sample "
        "to OUT/predictions.jsonl (a rerun resumes), then score. See `sftasks eval --list-methods`.",
    )
    p.add_argument("--backend", choices=["hf", "vllm"], default="hf", help="engine (default hf: transformers)")
    p.add_argument("--model", help="model folder or Hub name")
    p.add_argument("--method", default="dense", help="sparse attention method (default dense)")
    p.add_argument("--param", action="append", metavar="NAME=VALUE",
                   help="method knob, repeatable (e.g. --param token_budget=1024 or --param sparsity=0.9)")
    p.add_argument("--task", help="task name, e.g. story_multihop")
    p.add_argument("--task-param", action="append", metavar="NAME=VALUE", help="task knob, repeatable")
    p.add_argument("--len", "--length", dest="length", default="4k", help="input length: 4k, 128k, ... (default 4k)")
    p.add_argument("--samples", type=int, default=10, help="samples (default 10)")
    p.add_argument("--seed", type=int, default=0, help="data seed (default 0)")
    p.add_argument("--tokenizer", default=None, help="tokenizer that measures lengths (default: Qwen2.5's)")
    p.add_argument("--max-new-tokens", type=int, default=128, help="greedy tokens per answer (default 128)")
    p.add_argument("--batch-size", type=int, default=8,
                   help="prompts handed to the backend at once; results are saved after each batch (default 8)")
    p.add_argument("--tp", type=int, default=None, help="tensor-parallel GPUs (vllm backend)")
    p.add_argument("--dtype", default=None, help="model dtype, e.g. bfloat16 (default: the model's)")
    p.add_argument("--device", default=None, help="hf backend device, e.g. cuda (default cpu)")
    p.add_argument("--contact", default="", help="contact written into the predictions' meta line")
    p.add_argument("--out", help="run folder: predictions.jsonl, run.json, scores.json")
    p.add_argument("--evidence", action="store_true",
                   help="also write OUT/evidence.jsonl: per layer, the share of evidence tokens the method's "
                   "pattern keeps for the last prompt query (hf backend)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--list-methods", action="store_true", help="list methods and their knobs, then exit")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..lengths import format_length, parse_length

    if args.list_methods:
        return _list_methods()
    for flag in ("model", "task", "out"):
        if not getattr(args, flag):
            raise InputError(f"--{flag} is required (see sftasks eval --help)")
    for flag in ("samples", "max_new_tokens", "batch_size"):
        if getattr(args, flag) <= 0:
            raise InputError(f"--{flag.replace('_', '-')} must be a positive integer, got {getattr(args, flag)}")
    if args.tp is not None and args.tp <= 0:
        raise InputError(f"--tp must be a positive integer, got {args.tp}")

    from ..generate import generate_records
    from ..methods.registry import get_method
    from ..runner import EvalRun, check_model_path, run_eval
    from ..tasks import get_task

    method = get_method(args.method, **parse_params(args.param))
    check_model_path(args.model)
    get_task(args.task)
    task_params = parse_params(args.task_param)
    options = {k: v for k, v in (("tp", args.tp), ("dtype", args.dtype), ("device", args.device)) if v is not None}
    run_ = EvalRun(backend=args.backend, model=args.model, method=method, task=args.task,
                   length=format_length(parse_length(args.length)), samples=args.samples, out=Path(args.out),
                   seed=args.seed, tokenizer=args.tokenizer, task_params=task_params,
                   max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, backend_options=options,
                   contact=args.contact, evidence=args.evidence)
    records = list(generate_records(args.task, args.length, samples=args.samples, seed=args.seed,
                                    tokenizer=args.tokenizer, params=task_params, progress=not args.no_progress))
    summary = run_eval(run_, records, progress=not args.no_progress)
    print(json.dumps(summary, indent=1))
    return 0


def _list_methods() -> int:
    import dataclasses

    from ..methods.registry import get_method_class, method_names

    for name in method_names():
        cls = get_method_class(name)
        knobs = ", ".join(f"{f.name}={f.default}" for f in dataclasses.fields(cls.Config))
        hooks = "/".join(h for h in ("prefill", "compress", "decode") if cls.overrides(h)) or "dense"
        print(f"{name:16s} {hooks:10s} [{knobs}]")
    return 0
