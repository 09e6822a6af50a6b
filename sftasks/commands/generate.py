"""`sftasks generate TASK --len 128k --samples 20 --out data/`."""

from __future__ import annotations

import argparse

from . import parse_params


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "generate",
        help="generate a task at exact token lengths (offline, deterministic)",
        description="Generate samples of TASK filled exactly to each length and write "
        "OUT/TASK/LENGTH/test.parquet (or .jsonl). An interrupted run resumes where it stopped.",
    )
    p.add_argument("task", help="task name, e.g. story_multihop (see `sftasks generate --list`)", nargs="?")
    p.add_argument("--len", "--length", dest="lengths", default="4k",
                   help="target length(s) in tokens: 4k, 128k, 1m, 65536, or a comma list (default 4k)")
    p.add_argument("--samples", type=int, default=10, help="samples per length (default 10)")
    p.add_argument("--seed", type=int, default=0, help="seed; same seed, same bytes (default 0)")
    p.add_argument("--tokenizer", default=None,
                   help="Hugging Face tokenizer name or local folder (default: Qwen2.5's, built in)")
    p.add_argument("--param", action="append", metavar="NAME=VALUE",
                   help="task knob, repeatable (e.g. --param num_queries=8)")
    add_source_argument(p)
    p.add_argument("--out", default="data", help="output folder (default data/)")
    p.add_argument("--format", choices=["parquet", "jsonl"], default="parquet", help="file format (default parquet)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output for this task and length")
    p.add_argument("--list", action="store_true", help="list the tasks and their knobs, then exit")
    p.set_defaults(run=run)


def add_source_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", metavar="PATH_OR_NAME", default=None,
                   help="source data of a QA task (qa_squad, qa_quality, qa_toefl): a local .jsonl/.json/.parquet "
                   "file or folder, or a Hub dataset NAME[:CONFIG]; the same as --param source=...")


def with_source(task: str, params: dict[str, str], source: str | None) -> dict[str, str]:
    """`params` with `--source` added as the `source` knob; refused for tasks that read no source data."""
    import dataclasses

    from ..errors import InputError
    from ..tasks import get_task, task_names

    if source is None:
        return params

    def has_source(name: str) -> bool:
        return "source" in {f.name for f in dataclasses.fields(get_task(name).Params)}

    if not has_source(task):
        users = ", ".join(n for n in task_names() if has_source(n))
        raise InputError(f"--source does not apply to {task}: it reads no source data (tasks that do: {users})")
    if params.get("source", source) != source:
        raise InputError("give the source once: --source and --param source= disagree")
    return {**params, "source": source}


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from ..errors import InputError
    from ..generate import write_task
    from ..lengths import parse_lengths
    from ..tasks import get_task, task_names

    if args.list:
        for name in task_names():
            task = get_task(name)
            knobs = ", ".join(f"{f.name}={f.default}" for f in dataclasses.fields(task.Params))
            print(f"{name:20s} {task.description}  [{knobs}]")
        return 0
    if not args.task:
        raise InputError("name a task, e.g. `sftasks generate story_multihop --len 4k`; see --list")
    if args.samples <= 0:
        raise InputError(f"--samples must be a positive integer, got {args.samples}")
    get_task(args.task)
    lengths = parse_lengths(args.lengths)
    params = with_source(args.task, parse_params(args.param), args.source)
    for length in lengths:
        path = write_task(args.task, length, args.out, samples=args.samples, seed=args.seed,
                          tokenizer=args.tokenizer, params=params, fmt=args.format, overwrite=args.overwrite)
        print(f"wrote {path}")
    return 0
