"""Scorers of the QA tasks: SQuAD by token F1 (value) and exact match; QuALITY and TOEFL by the
chosen option letters (all correct letters and no others, since TOEFL has multi-answer questions)."""

from __future__ import annotations

import collections
import re

from .base import Score, register_scorer
from .extract import answer_region, extract_letter
from .normalize import normalize_answer

_OPTION_LINE = re.compile(r"^([A-H])\. ", re.MULTILINE)
_MARKUP = re.compile(r"[*_`]+")
# A bare set of letters: "AC", "A, C", "A and D", "(B)", "B.".
_LETTER_SET = re.compile(r"^[\s(\[]*([A-H](?:\s*(?:,|;|/|&|\+|and|AND)?\s*[A-H])*)[\s)\].]*$")


def token_f1(prediction: str, gold: str) -> float:
    """SQuAD's token-overlap F1 of the normalised strings (bags of words)."""
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    common = sum((collections.Counter(pred) & collections.Counter(ref)).values())
    if not pred or not ref:
        return float(pred == ref)
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def short_answer(text: str | None) -> str | None:
    """The first non-empty line of the answer region, without markdown or a trailing period."""
    for line in (text or "").splitlines():
        line = _MARKUP.sub("", line).strip().rstrip(".").strip()
        if line:
            return line
    return None


@register_scorer("qa_squad")
def score_squad(prediction: str, record: dict) -> Score:
    """value = the best F1 over the acceptable answers; exact_match reported too."""
    answer = short_answer(answer_region(prediction))
    if answer is None or not normalize_answer(answer):
        return Score(0.0, False, {"f1": 0.0, "exact_match": 0.0})
    golds = list(record["answer"]) or [""]
    f1 = max(token_f1(answer, g) for g in golds)
    exact = float(any(normalize_answer(answer) == normalize_answer(g) for g in golds))
    return Score(f1, True, {"f1": f1, "exact_match": exact})


def chosen_letters(text: str | None, choices: str = "ABCD") -> set[str] | None:
    """The option letters an answer chooses ("AC", "A and D", "(B)", "The answer is C"), or None."""
    if not text:
        return None
    for line in _MARKUP.sub("", text).splitlines():
        match = _LETTER_SET.match(line)
        if match:
            letters = set(re.findall(r"[A-H]", match.group(1)))
            if letters <= set(choices):
                return letters
    letter = extract_letter(text, choices)
    return {letter} if letter else None


def _score_choice(prediction: str, record: dict) -> Score:
    options = _OPTION_LINE.findall(record.get("question") or "")
    choices = "".join(options) or "ABCD"
    chosen = chosen_letters(answer_region(prediction), choices)
    if chosen is None:
        return Score(0.0, False, {"accuracy": 0.0})
    correct = float(chosen == set(record["answer"]))
    return Score(correct, True, {"accuracy": correct})


register_scorer("qa_quality")(_score_choice)
register_scorer("qa_toefl")(_score_choice)
