"""`sftasks publish TASK --lengths 4k,8k --samples 100 --out hub/TASK [--push-to ORG/NAME]`."""

from __future__ import annotations

import argparse
import sys

from . import parse_params
from .generate import add_source_argument, with_source


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "publish",
        help="build a Hugging Face Hub dataset folder for a task (one config per length), optionally push it",
        description="Generate TASK at each length and write a Hub-ready folder: LENGTH/test.parquet per config, "
        "README.md (dataset card with YAML configs, token counts, checksums, how to score) and sftasks.json "
        "(everything needed to regenerate). Nothing leaves the machine unless --push-to is given. "
        "An interrupted build resumes when rerun.",
    )
    p.add_argument("task", help="task name, e.g. story_multihop (see `sftasks generate --list`)")
    p.add_argument("--lengths", "--len", "--length", dest="lengths", default="4k,8k,16k,32k,64k,128k",
                   help="comma list of target lengths, one config each (default 4k,8k,16k,32k,64k,128k)")
    p.add_argument("--samples", type=int, default=100, help="samples per length (default 100)")
    p.add_argument("--seed", type=int, default=None,
                   help="seed (default 0; with --hidden a secret random seed, kept only in the gold file)")
    p.add_argument("--tokenizer", default=None,
                   help="Hugging Face tokenizer name or local folder (default: Qwen2.5's, built in)")
    p.add_argument("--param", action="append", metavar="NAME=VALUE", help="task knob, repeatable")
    add_source_argument(p)
    p.add_argument("--out", default=None, help="output folder (default hub/TASK)")
    p.add_argument("--hidden", action="store_true",
                   help="hold the answers back: public folder without answers, evidence or seed; gold to --gold-out")
    p.add_argument("--gold-out", default=None, metavar="PATH",
                   help="with --hidden: JSONL file for the gold records (outside the public folder)")
    p.add_argument("--push-to", default=None, metavar="ORG/NAME",
                   help="upload the folder to this Hub dataset repo (token from HF_TOKEN or `hf auth login`)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder / gold file")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..lengths import parse_lengths
    from ..publish import build_folder, check_push, push_folder
    from ..tasks import get_task

    get_task(args.task)
    lengths = parse_lengths(args.lengths)
    params = with_source(args.task, parse_params(args.param), args.source)
    token = check_push(args.push_to) if args.push_to else None
    if args.hidden and args.seed is not None and args.seed < 2**32:
        print("note: a small --seed can be guessed and the answers regenerated; omit --seed for a secret one",
              file=sys.stderr)
    out = args.out or f"hub/{args.task}"
    manifest = build_folder(
        args.task, lengths, out, samples=args.samples, seed=args.seed, tokenizer=args.tokenizer, params=params,
        hidden=args.hidden, gold_out=args.gold_out, overwrite=args.overwrite, repo_id=args.push_to,
    )
    for config in manifest["configs"].values():
        tokens = config["num_tokens"]
        print(f"{out}/{config['data_file']}: {config['num_samples']} samples, "
              f"{tokens['min']}-{tokens['max']} tokens, {config['checksum'][:23]}...")
    print(f"wrote {out}/README.md and {out}/sftasks.json")
    if args.hidden:
        print(f"wrote the gold records to {args.gold_out} (keep it private)")
    if token:
        print(f"uploaded to {push_folder(out, args.push_to, token)}")
    return 0
