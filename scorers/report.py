"""Score a predictions file against gold records: per-sample scores, per task-and-length summaries with
bootstrap CIs, a printable table and a JSON report. Missing and unparsed samples count as 0."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import DataError
from ..lengths import parse_length
from .base import score_record
from .stats import DEFAULT_RESAMPLES, bootstrap_ci

REPORT_VERSION = 1


@dataclass
class SampleScore:
    id: str
    task: str
    length: str
    score: float
    parsed: bool
    missing: bool
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class GroupSummary:
    """One task at one length: the mean of the main metric, its bootstrap CI and the failure counts."""

    task: str
    length: str
    n: int
    mean: float
    ci_low: float
    ci_high: float
    unparsed: int
    missing: int
    metrics: dict[str, float] = field(default_factory=dict)  # means of each named metric


def score_samples(predictions: dict[str, dict[str, Any]], gold: list[dict]) -> list[SampleScore]:
    """A score for every gold record, sorted by (task, length, id); a missing prediction scores 0."""
    from tqdm.auto import tqdm

    if predictions and not any(r["id"] in predictions for r in gold):
        raise DataError("no prediction id matches a gold id; are --predictions and --gold for the same data?")
    scores = []
    for record in tqdm(sorted(gold, key=_order), desc="scoring", unit="sample", disable=None, leave=False):
        row = predictions.get(record["id"])
        result = score_record(None if row is None else row.get("prediction"), record)
        scores.append(SampleScore(
            id=record["id"], task=record["task"], length=record["length"], score=float(result.value),
            parsed=bool(result.parsed) and row is not None, missing=row is None,
            metrics={k: float(v) for k, v in result.metrics.items()},
        ))
    return scores


def _order(record: dict) -> tuple:
    return (record["task"], _length_key(record["length"]), record["id"])


def _length_key(length: str) -> int:
    try:
        return parse_length(length)
    except Exception:
        return 0


def group_scores(scores: list[SampleScore]) -> dict[tuple[str, str], list[SampleScore]]:
    groups: dict[tuple[str, str], list[SampleScore]] = defaultdict(list)
    for s in scores:
        groups[(s.task, s.length)].append(s)
    return dict(sorted(groups.items(), key=lambda kv: (kv[0][0], _length_key(kv[0][1]))))


def summarize(scores: list[SampleScore], *, confidence: float = 0.95, resamples: int = DEFAULT_RESAMPLES,
              seed: int = 0) -> list[GroupSummary]:
    """One summary per (task, length), samples in id order so the CI does not depend on file order."""
    summaries = []
    for (task, length), group in group_scores(scores).items():
        group = sorted(group, key=lambda s: s.id)
        values = [s.score for s in group]
        low, high = bootstrap_ci(values, confidence=confidence, resamples=resamples, seed=seed)
        names = sorted({k for s in group for k in s.metrics})
        metrics = {k: sum(s.metrics.get(k, 0.0) for s in group) / len(group) for k in names}
        summaries.append(GroupSummary(
            task=task, length=length, n=len(group), mean=sum(values) / len(values), ci_low=low, ci_high=high,
            unparsed=sum(not s.parsed and not s.missing for s in group), missing=sum(s.missing for s in group),
            metrics=metrics,
        ))
    return summaries


def format_table(summaries: list[GroupSummary], confidence: float = 0.95) -> str:
    """A fixed-width table: task, length, n, mean, CI, unparsed, missing, then the named metrics."""
    label = f"{round(confidence * 100)}% CI"
    header = f"{'task':<20} {'length':>7} {'n':>5} {'mean':>7} {label:>17} {'unparsed':>8} {'missing':>7}  metrics"
    lines = [header, "-" * len(header)]
    for s in summaries:
        ci = f"[{_fmt(s.ci_low)}, {_fmt(s.ci_high)}]"
        extra = " ".join(f"{k}={v:.3f}" for k, v in s.metrics.items())
        lines.append(f"{s.task:<20} {s.length:>7} {s.n:>5} {_fmt(s.mean):>7} {ci:>17} {s.unparsed:>8} "
                     f"{s.missing:>7}  {extra}")
    return "\n".join(lines)


def _fmt(x: float) -> str:
    return "nan" if math.isnan(x) else f"{x:.3f}"


def build_report(*, meta: dict, gold_source: str, scores: list[SampleScore], summaries: list[GroupSummary],
                 extra_ids: int, confidence: float, resamples: int, seed: int) -> dict[str, Any]:
    """The JSON report: settings, summaries and per-sample scores (never gold answers)."""
    return {
        "report_version": REPORT_VERSION,
        "meta": meta,
        "gold": gold_source,
        "bootstrap": {"confidence": confidence, "resamples": resamples, "seed": seed},
        "summary": [asdict(s) for s in summaries],
        "extra_predictions": extra_ids,
        "samples": [asdict(s) for s in scores],
    }


def summaries_from_report(report: dict[str, Any]) -> list[GroupSummary]:
    try:
        return [GroupSummary(**s) for s in report["summary"]]
    except (KeyError, TypeError) as exc:
        raise DataError(f"not a score report written by `sftasks score` ({exc})") from None
