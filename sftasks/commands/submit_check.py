"""`sftasks submit-check SUBMISSION --gold DIR`: validate an untrusted leaderboard submission."""

from __future__ import annotations

import argparse

from .score import add_gold_options


def add_parser(subparsers) -> None:
    from ..scorers.submission import MAX_FILE_BYTES, MAX_PREDICTION_BYTES, SHOWN_PROBLEMS

    p = subparsers.add_parser(
        "submit-check",
        help="validate a leaderboard submission (format, meta, ids, coverage, sizes)",
        description="Check a submission JSONL (meta line, then {\"id\", \"prediction\"} lines) against the gold "
                    f"ids. Prints each problem with its line number (the first {SHOWN_PROBLEMS}, then a count) and "
                    "the coverage. The file is only parsed as JSON; gold answers never appear in the output. "
                    "Exit status: 0 valid, 1 problems found, 2 bad arguments.",
    )
    p.add_argument("submission", help="the submission .jsonl file")
    add_gold_options(p)
    p.add_argument("--allow-missing", action="store_true",
                   help="accept a submission that leaves some gold ids out (they score 0)")
    p.add_argument("--max-bytes", type=int, default=MAX_FILE_BYTES,
                   help=f"largest accepted file in bytes (default {MAX_FILE_BYTES})")
    p.add_argument("--max-prediction-bytes", type=int, default=MAX_PREDICTION_BYTES,
                   help=f"largest accepted prediction in UTF-8 bytes (default {MAX_PREDICTION_BYTES})")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..scorers.gold import load_gold
    from ..scorers.submission import check_submission, format_problems

    if args.max_bytes <= 0 or args.max_prediction_bytes <= 0:
        raise InputError("--max-bytes and --max-prediction-bytes must be positive")
    gold = load_gold(args.gold, length=args.length, split=args.split, require_answers=False)
    result = check_submission(args.submission, [r["id"] for r in gold], allow_missing=args.allow_missing,
                              max_bytes=args.max_bytes, max_prediction_bytes=args.max_prediction_bytes)
    for line in format_problems(args.submission, result.problems):
        print(line)
    share = result.covered / result.gold_total if result.gold_total else 0.0
    print(f"coverage: {result.covered}/{result.gold_total} gold ids ({share:.1%})")
    if result.ok:
        print(f"OK: {args.submission} is a valid submission")
        return 0
    count = len(result.problems)
    print(f"FAILED: {count} problem{'' if count == 1 else 's'}")
    return 1
