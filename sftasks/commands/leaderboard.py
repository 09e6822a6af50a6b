"""`sftasks leaderboard ENTRIES_DIR --out site/`: Markdown + static HTML leaderboard with Pareto plots."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "leaderboard",
        help="build the leaderboard site from scored submissions",
        description="Turn the score reports (*.json from `sftasks score`) in ENTRIES_DIR into OUT/leaderboard.md, "
                    "OUT/index.html and accuracy-vs-sparsity plots (Pareto frontier) per task and length. With "
                    "--gold, raw submissions (*.jsonl) there are validated and scored first; invalid ones are "
                    "skipped with a message.",
    )
    p.add_argument("entries", metavar="ENTRIES_DIR", help="folder of score reports and/or submissions")
    p.add_argument("--out", default="site", help="output folder (default site/)")
    p.add_argument("--gold", default=None, help="gold records to score raw *.jsonl submissions with")
    p.add_argument("--split", default="test", help="split of the gold folder or dataset (default test)")
    p.add_argument("--title", default="sftasks leaderboard", help="page title")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from ..errors import InputError
    from ..scorers.leaderboard import Entry, load_report_entry, render_site

    folder = Path(args.entries)
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder; pass the folder of score reports")
    entries = [load_report_entry(p) for p in sorted(folder.glob("*.json")) if not p.name.endswith(".meta.json")]
    submissions = sorted(folder.glob("*.jsonl"))
    if submissions and args.gold:
        from ..scorers.gold import load_gold
        from ..scorers.report import score_samples, summarize
        from ..scorers.submission import check_submission

        gold = load_gold(args.gold, split=args.split)
        ids = [r["id"] for r in gold]
        scored = {e.name for e in entries}
        for path in submissions:
            name = path.name.removesuffix(".jsonl")
            if name in scored:
                continue
            result = check_submission(path, ids, allow_missing=True)
            if not result.ok:
                print(f"skipped {path.name}: {len(result.problems)} problems (run `sftasks submit-check`)",
                      file=sys.stderr)
                continue
            predictions = {row["id"]: row for _, row in result.submission.rows}
            entries.append(Entry(name, result.submission.meta, summarize(score_samples(predictions, gold),
                                                                         seed=args.seed)))
    elif submissions:
        print(f"{len(submissions)} *.jsonl submissions ignored: pass --gold to score them", file=sys.stderr)
    for path in render_site(entries, args.out, title=args.title):
        print(f"wrote {path}")
    return 0
