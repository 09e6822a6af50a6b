"""One normalisation for every exact-match metric (SQuAD-style), and the separately named fuzzy score."""

from __future__ import annotations

import re
import unicodedata

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_MARKUP = re.compile(r"[*_`~]+")


def normalize_answer(s: str) -> str:
    """Case-fold, drop markdown emphasis, punctuation and the articles a/an/the, collapse whitespace.

    Follows the SQuAD evaluation script (punctuation is deleted, so "U.S." == "US"), extended to
    Unicode: NFKC first, and every Unicode punctuation character counts as punctuation.
    """
    s = unicodedata.normalize("NFKC", str(s)).casefold()
    s = _MARKUP.sub(" ", s)
    s = "".join(ch for ch in s if not unicodedata.category(ch).startswith("P"))
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def exact_match(prediction: str | None, gold: str) -> bool:
    """Equal after `normalize_answer`; a missing prediction never matches."""
    return prediction is not None and normalize_answer(prediction) == normalize_answer(gold)


def fuzzy_score(prediction: str | None, gold: str) -> float:
    """rapidfuzz similarity in [0, 1] of the normalised strings: a separate metric, never exact match."""
    if prediction is None:
        return 0.0
    from rapidfuzz import fuzz

    return fuzz.ratio(normalize_answer(prediction), normalize_answer(gold)) / 100.0
