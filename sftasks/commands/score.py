"""`sftasks score --predictions preds.jsonl --gold data/ [--length 64k]`: a table and a JSON report."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_gold_options(p: argparse.ArgumentParser) -> None:
    """The options that pick gold records, shared by score / compare / submit-check / leaderboard."""
    p.add_argument("--gold", required=True, metavar="DIR_OR_NAME",
                   help="gold records: the data/ folder of `sftasks generate`, a Hub-style folder of parquet "
                        "files, one records file, or a dataset name for sftasks.load_dataset")
    p.add_argument("--length", default=None, help="score only this length (e.g. 64k)")
    p.add_argument("--split", default="test", help="split of a folder or dataset to read (default test)")


def add_bootstrap_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed; same seed, same numbers (default 0)")
    p.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples (default 10000)")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "score",
        help="score a predictions file against gold records",
        description="Score predictions (JSONL: a meta line, then {\"id\", \"prediction\"} lines) against gold "
                    "records. Prints n, mean, a bootstrap CI and the unparsed / missing counts per task and "
                    "length, and writes a JSON report with per-sample scores. Unparsed and missing samples "
                    "score 0 and stay in the mean.",
    )
    p.add_argument("--predictions", required=True, help="predictions JSONL written by `sftasks eval`")
    add_gold_options(p)
    p.add_argument("--report", default=None,
                   help="JSON report path (default: PREDICTIONS with .scores.json instead of .jsonl)")
    p.add_argument("--confidence", type=float, default=0.95, help="CI level (default 0.95)")
    add_bootstrap_options(p)
    p.set_defaults(run=run)


def default_report_path(predictions: str) -> Path:
    path = Path(predictions)
    return path.with_name(path.name.removesuffix(".jsonl") + ".scores.json")


def check_bootstrap_args(args: argparse.Namespace) -> None:
    from ..errors import InputError

    if args.resamples < 100:
        raise InputError(f"--resamples must be at least 100, got {args.resamples}")
    confidence = getattr(args, "confidence", 0.95)
    if not 0.5 <= confidence < 1.0:
        raise InputError(f"--confidence must be in [0.5, 1), got {confidence}")


def run(args: argparse.Namespace) -> int:
    import json

    from ..io import write_text
    from ..scorers.gold import load_gold
    from ..scorers.report import build_report, format_table, score_samples, summarize
    from ..scorers.submission import read_predictions

    check_bootstrap_args(args)
    meta, predictions = read_predictions(args.predictions)
    gold = load_gold(args.gold, length=args.length, split=args.split)
    scores = score_samples(predictions, gold)
    summaries = summarize(scores, confidence=args.confidence, resamples=args.resamples, seed=args.seed)
    gold_ids = {r["id"] for r in gold}
    extra = sum(1 for i in predictions if i not in gold_ids)
    print(format_table(summaries, args.confidence))
    if extra:
        print(f"{extra} predictions have ids outside the gold records scored here (ignored)")
    report_path = Path(args.report) if args.report else default_report_path(args.predictions)
    report = build_report(meta=meta, gold_source=str(args.gold), scores=scores, summaries=summaries,
                          extra_ids=extra, confidence=args.confidence, resamples=args.resamples, seed=args.seed)
    write_text(report_path, json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {report_path}")
    return 0
