"""`sftasks compare dense.jsonl sparse.jsonl --gold data/`: is accuracy preserved? (paired test)."""

from __future__ import annotations

import argparse

from .score import add_bootstrap_options, add_gold_options, check_bootstrap_args


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "compare",
        help="paired non-inferiority test: does B (sparse) preserve A's (dense) accuracy?",
        description="Score two predictions files on the same gold samples and test, per task and length and "
                    "overall, whether B is non-inferior to A within an absolute tolerance DELTA: one-sided "
                    "paired bootstrap over the sample ids. Both files must cover the same sample ids.",
    )
    p.add_argument("baseline", metavar="A", help="baseline predictions (e.g. dense)")
    p.add_argument("candidate", metavar="B", help="candidate predictions (e.g. sparse)")
    add_gold_options(p)
    p.add_argument("--delta", type=float, default=0.05,
                   help="non-inferiority margin: the largest acceptable drop in mean score, absolute (default 0.05)")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level of the one-sided test (default 0.05)")
    p.add_argument("--report", default=None, help="also write the results as JSON here")
    add_bootstrap_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import json

    from ..errors import InputError
    from ..io import write_text
    from ..scorers.gold import load_gold
    from ..scorers.report import group_scores, score_samples
    from ..scorers.stats import TEST_DESCRIPTION, paired_noninferiority
    from ..scorers.submission import read_predictions, show

    check_bootstrap_args(args)
    if not 0.0 <= args.delta < 1.0:
        raise InputError(f"--delta must be in [0, 1), got {args.delta}")
    if not 0.0 < args.alpha < 0.5:
        raise InputError(f"--alpha must be in (0, 0.5), got {args.alpha}")
    gold = load_gold(args.gold, length=args.length, split=args.split)
    gold_ids = {r["id"] for r in gold}
    _, preds_a = read_predictions(args.baseline)
    _, preds_b = read_predictions(args.candidate)
    ids_a, ids_b = set(preds_a) & gold_ids, set(preds_b) & gold_ids
    if ids_a != ids_b:
        only_a, only_b = sorted(ids_a - ids_b), sorted(ids_b - ids_a)
        example = show((only_a or only_b)[0])
        raise InputError(f"unpaired inputs: {len(only_a)} sample ids only in A, {len(only_b)} only in B "
                         f"(e.g. {example}); compare needs predictions for the same samples")
    if not ids_a:
        raise InputError("no predictions for any gold id; are A, B and --gold for the same data?")
    paired = [r for r in gold if r["id"] in ids_a]
    groups_a = group_scores(score_samples(preds_a, paired))
    groups_b = group_scores(score_samples(preds_b, paired))
    confidence = round((1 - 2 * args.alpha) * 100, 1)
    print(f"Test: {TEST_DESCRIPTION}.")
    print(f"A = {args.baseline}, B = {args.candidate}; delta = {args.delta} (absolute), alpha = {args.alpha} "
          f"(one-sided), {args.resamples} resamples, seed {args.seed}; CI = two-sided {confidence:g}% "
          f"interval of mean(B - A), whose low end is the one-sided {100 * (1 - args.alpha):g}% lower bound.")
    if len(paired) < len(gold):
        print(f"{len(gold) - len(paired)} gold samples have a prediction in neither file and are left out.")
    header = f"{'task':<20} {'length':>7} {'n':>5} {'A':>7} {'B':>7} {'B-A':>7} {'CI':>18} {'p':>7}  verdict"
    print(header)
    print("-" * len(header))
    results = []
    rows = [(key, [s.score for s in groups_a[key]], [s.score for s in groups_b[key]]) for key in groups_a]
    all_a = [x for _, a, _ in rows for x in a]
    all_b = [x for _, _, b in rows for x in b]
    if len(rows) > 1:
        rows.append((("ALL", "all"), all_a, all_b))
    for (task, length), a, b in rows:
        r = paired_noninferiority(a, b, delta=args.delta, alpha=args.alpha, resamples=args.resamples, seed=args.seed)
        ci = f"[{r.ci_low:+.3f}, {r.ci_high:+.3f}]"
        print(f"{task:<20} {length:>7} {r.n:>5} {r.mean_a:>7.3f} {r.mean_b:>7.3f} {r.diff:>+7.3f} {ci:>18} "
              f"{r.p_value:>7.4f}  {r.verdict}")
        results.append({"task": task, "length": length, **r.as_dict()})
    if args.report:
        write_text(args.report, json.dumps({"test": TEST_DESCRIPTION, "baseline": args.baseline,
                                            "candidate": args.candidate, "resamples": args.resamples,
                                            "seed": args.seed, "results": results}, indent=1) + "\n")
        print(f"wrote {args.report}")
    return 0
