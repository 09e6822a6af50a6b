"""Scorers of the story tasks: retrieval (fraction of questions right), multi-hop (exact match),
aggregation (IoU of chapter sets, with precision and recall). `fuzzy` is reported separately."""

from __future__ import annotations

import re

from .base import Score, register_scorer
from .extract import answer_region, extract_ints, extract_list, extract_numbered, extract_single, is_none_answer
from .normalize import exact_match, fuzzy_score

_PARENTHESES = re.compile(r"\([^()]*\)")


@register_scorer("story_retrieval")
def score_retrieval(prediction: str, record: dict) -> Score:
    """Question i is right when the i-th answer (by its number, else by position) matches exactly."""
    gold = list(record["answer"])
    region = answer_region(prediction)
    numbered = extract_numbered(region)
    if numbered:
        answers = [numbered.get(i + 1) for i in range(len(gold))]
    else:
        items = extract_list(region)
        answers = [items[i] if i < len(items) else None for i in range(len(gold))]
    if not gold or all(a is None for a in answers):
        return Score(0.0, False, {"accuracy": 0.0, "fuzzy": 0.0})
    accuracy = sum(exact_match(a, g) for a, g in zip(answers, gold)) / len(gold)
    fuzzy = sum(fuzzy_score(a, g) for a, g in zip(answers, gold)) / len(gold)
    return Score(accuracy, True, {"accuracy": accuracy, "fuzzy": fuzzy})


@register_scorer("story_multihop")
def score_multihop(prediction: str, record: dict) -> Score:
    """1 when the answered item equals the gold item after normalisation, else 0."""
    gold = record["answer"][0] if len(record["answer"]) else ""
    answer = extract_single(answer_region(prediction))
    if answer is None:
        return Score(0.0, False, {"exact": 0.0, "fuzzy": 0.0})
    exact = float(exact_match(answer, gold))
    return Score(exact, True, {"exact": exact, "fuzzy": fuzzy_score(answer, gold)})


def chapter_set(region: str | None) -> set[int] | None:
    """Chapter numbers of an aggregation answer, or None when none can be read.

    Numbers of a numbered list ("1. Chapter 3") and parenthesised remarks ("(2 sales)") are not chapters.
    """
    if not region:
        return None
    if is_none_answer(region):
        return set()
    numbered = extract_numbered(region)
    if numbered:
        found = {n for item in numbered.values() for n in extract_ints(item)}
        if found:
            return found
    found = set(extract_ints(_PARENTHESES.sub(" ", region)))
    return found or None


@register_scorer("story_aggregation")
def score_aggregation(prediction: str, record: dict) -> Score:
    """Intersection over union of the answered and gold chapter sets (empty vs empty counts as 1)."""
    gold = {int(a) for a in record["answer"]}
    predicted = chapter_set(answer_region(prediction))
    if predicted is None:
        return Score(0.0, False, {"iou": 0.0, "precision": 0.0, "recall": 0.0})
    hits = len(gold & predicted)
    union = len(gold | predicted)
    iou = hits / union if union else 1.0
    precision = hits / len(predicted) if predicted else float(not gold)
    recall = hits / len(gold) if gold else 1.0
    return Score(iou, True, {"iou": iou, "precision": precision, "recall": recall})
