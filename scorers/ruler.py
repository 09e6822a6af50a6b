"""Scorers of the RULER-style tasks: NIAH and VT by per-item recall, CWE by overlap with the common words.

Unlike the paper's code, a NIAH answer need not repeat the exact sentence template, a VT answer may
keep the `VAR` prefix or commas, and a CWE answer may be a comma list; listing extra items never
raises a score above the fraction of gold items found (CWE counts only the first k words given).
"""

from __future__ import annotations

import json
import re

from .base import Score, register_scorer
from .extract import answer_region, extract_list

_CODE = re.compile(r"[a-z0-9]{8}(?:-[a-z0-9]{8}){3}")
_NAME = re.compile(r"(?<![A-Za-z])[A-Z]{5}(?![A-Za-z])")
_WORD = re.compile(r"[a-z]+")
_LINE_NUMBER = re.compile(r"^\W*(\d{1,3})\s*[.):]")


@register_scorer("ruler_niah")
def score_niah(prediction: str, record: dict) -> Score:
    """Key i is right when the value given for it (on the line naming the key, else on answer line i)
    is its gold value. value = fraction of keys right."""
    values = list(record["answer"])
    keys = json.loads(record.get("params") or "{}").get("keys", [])
    region = answer_region(prediction)
    lines = [line.lower() for line in (region or "").splitlines() if _CODE.search(line.lower())]
    if not values or not lines:
        return Score(0.0, False, {"recall": 0.0, "all_correct": 0.0})
    numbered = {int(m.group(1)): line for line in lines if (m := _LINE_NUMBER.match(line))}
    hits = 0
    for i, value in enumerate(values):
        key = keys[i] if i < len(keys) else None
        candidates = [line for line in lines if key and key in line]
        if not candidates:
            line = numbered.get(i + 1) or (lines[i] if len(lines) == len(values) else None)
            candidates = [line] if line else []
        hits += any(value in _CODE.findall(line) for line in candidates)
    recall = hits / len(values)
    return Score(recall, True, {"recall": recall, "all_correct": float(hits == len(values))})


@register_scorer("ruler_vt")
def score_vt(prediction: str, record: dict) -> Score:
    """value = fraction of the gold variables named (recall); precision and IoU are reported too."""
    gold = set(record["answer"])
    region = answer_region(prediction) or ""
    named = set(_NAME.findall(region)) - {"VALUE", "NAMES"}
    if not named:
        return Score(0.0, False, {"recall": 0.0, "precision": 0.0, "iou": 0.0})
    hits = len(gold & named)
    recall = hits / len(gold) if gold else 1.0
    return Score(recall, True, {"recall": recall, "precision": hits / len(named), "iou": hits / len(gold | named)})


@register_scorer("ruler_cwe")
def score_cwe(prediction: str, record: dict) -> Score:
    """value = |first k distinct words answered ∩ the k common words| / k (one word per list item)."""
    gold = {w.lower() for w in record["answer"]}
    words: list[str] = []
    for item in extract_list(answer_region(prediction)):
        # A multi-word item is a phrase ending in the word ("The most common words are apple").
        found = _WORD.findall(item.lower())
        if found and found[-1] not in words:
            words.append(found[-1])
    if not words:
        return Score(0.0, False, {"overlap": 0.0, "precision": 0.0})
    first = words[: len(gold)]
    hits = len(gold & set(first))
    overlap = hits / len(gold) if gold else 0.0
    return Score(overlap, True, {"overlap": overlap, "precision": hits / len(first)})
