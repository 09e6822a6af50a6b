"""Answer extraction from real model outputs, shared by every scorer.

Models are asked to answer inside `<answer>...</answer>`, but real outputs add reasoning, repeat or
drop the tags (a stop string often eats `</answer>`), number items `1.` / `1)` / `1:`, bold them, and
explain after the answer. Typical use: `region = answer_region(text)`, then `extract_list(region)`,
`extract_numbered(region)`, `extract_ints(region)` or `extract_letter(region)`.
"""

from __future__ import annotations

import re

_REASONING_TAG = re.compile(r"<\s*(/?)\s*(?:think|thinking|reasoning|explanation)\s*>", re.IGNORECASE)
_OPEN = re.compile(r"<\s*answer\s*>", re.IGNORECASE)
_CLOSE = re.compile(r"<\s*/\s*answer\s*>", re.IGNORECASE)
_TAG = re.compile(r"<\s*(/?)\s*answer\s*>", re.IGNORECASE)
# "Answer: X", "Final answer - X", "**Answer:** X", "the answer is X" (but not "Answer 1: X", a list item).
_MARKER = re.compile(
    r"\b(?:final\s+)?answers?\s*(?:\*\*|__)?\s*(?::|-|–|—|\bis\b:?|\bwas\b:?)\s*(?:\*\*|__)?", re.IGNORECASE
)

# A numbered line: optional bullet / bold / "Q" / "Answer", the number, a separator, the item.
_NUMBERED_LINE = re.compile(
    r"^\s*(?:[-*•+]\s+)?(?:\*\*|__)?\s*(?:(?:q|question|answer|ans)\.?\s*)?[#(\[]?(\d{1,3})\s*[.):\]]?"
    r"\s*(?:\*\*|__)?\s*(?:[.):\]]|\s[-–—])\s*(.*)$",
    re.IGNORECASE,
)
_INLINE_NUMBER = re.compile(r"(?:(?<=\s)|^|(?<=[(\[]))\(?(\d{1,3})\s*[.):](?=\s)")
_BULLET_LINE = re.compile(r"^\s*(?:[-*•+]|\d{1,3}[.)])\s+(.*)$")
_SPLIT = re.compile(r"\s*(?:[,;]\s*(?:and\s+|&\s*)?|\s+(?:and|&)\s+)\s*", re.IGNORECASE)
_BOLD = re.compile(r"(\*\*|__)(.+?)\1")
_LABEL = re.compile(r"^\s*[A-Za-z][\w'’]*(?:\s+[\w'’]+){0,3}\s*:\s+(?=\S)")
_EXPLANATION = re.compile(r"\s+[-–—]\s+|\s*[–—]\s*|\s+\(|,\s|;\s|\.\s|\s+because\b|\s+since\b|\s+as\s+it\b|\n",
                          re.IGNORECASE)
_QUOTES = "\"'“”‘’`*_ \t"
_INT = re.compile(r"(?<![\d.])\d{1,18}(?![\d]|\.\d)")  # longer digit runs are no chapter numbers
_NONE = re.compile(r"^\W*(none|no chapters?|nothing|n/?a|empty)\W*$", re.IGNORECASE)


def answer_region(text: str | None) -> str | None:
    """The answer part of a model output, or None when there is nothing at all.

    In order: the last non-empty complete `<answer>...</answer>`; the text after the last unclosed
    `<answer>`; the text before a lone `</answer>`; the text after the last "Answer:" / "the answer
    is" marker; otherwise the whole output. Reasoning up to the last `</think>` or `</explanation>`
    is dropped first.
    """
    if not text:
        return None
    text = _after_reasoning(str(text))
    pairs, opened, last_open, last_close = [], None, None, None
    for tag in _TAG.finditer(text):  # one linear pass: adversarial tag soup cannot make this quadratic
        if tag.group(1):
            if opened is not None and text[opened:tag.start()].strip():
                pairs.append(text[opened:tag.start()].strip())
            opened, last_close = None, tag
        else:
            opened, last_open = tag.end(), tag
    if pairs:
        return pairs[-1]
    if last_open is not None:
        tail = text[last_open.end():]
        tail = _CLOSE.split(tail)[0].strip()
        if tail:
            return tail
    if last_close is not None:
        head = _OPEN.sub(" ", text[: last_close.start()]).strip()
        if head:
            return head
    text = _REASONING_TAG.sub(" ", _TAG.sub(" ", text)).strip()
    markers = list(_MARKER.finditer(text))
    if markers:
        tail = text[markers[-1].end():].strip()
        if tail:
            return tail
    return text or None


def _after_reasoning(text: str) -> str:
    """The text after the last `</think>` / `</explanation>`, if any is left (the prompts ask for an
    explanation first; chat templates often open `<think>` themselves, so only the end tag counts)."""
    ends = [m for m in _REASONING_TAG.finditer(text) if m.group(1)]
    if ends and text[ends[-1].end():].strip():
        return text[ends[-1].end():]
    return text


def clean_item(item: str) -> str:
    """One answer item without markdown, a leading label ("Location: "), quotes or a trailing explanation.

    "**Rome** - visited in Chapter 4" -> "Rome"; "Item: gilded jade comb (bought from Selene)" ->
    "gilded jade comb".
    """
    item = item.strip()
    bold = [m for m in _BOLD.finditer(item) if m.group(2).strip(" :")]
    if bold:
        first, after = bold[0].group(2).strip(), item[bold[0].end():]
        if first.endswith(":") or after.lstrip().startswith(":"):
            # "**Location:** Rome" or "**Location**: Rome": the bold part is a label.
            rest = after.lstrip().lstrip(":").strip()
            item = _BOLD.sub(r"\2", rest) if rest else first.rstrip(":")
        else:
            item = first
    item = _LABEL.sub("", item, count=1)
    item = _EXPLANATION.split(item, maxsplit=1)[0]
    return item.strip(_QUOTES).rstrip(".!?:;,").strip(_QUOTES)


def extract_numbered(text: str | None) -> dict[int, str]:
    """Items of a numbered list by number: `1. X`, `1) X`, `1: X`, `**1.** X`, `Q1: X`, or inline `1. X 2. Y`.

    The first item for a number wins; items are cleaned with `clean_item`.
    """
    if not text:
        return {}
    by_line: dict[int, str] = {}
    for line in text.splitlines():
        match = _NUMBERED_LINE.match(line)
        if match:
            number, item = int(match.group(1)), clean_item(match.group(2))
            if item and number not in by_line:
                by_line[number] = item
    inline = _inline_numbered(text)
    return inline if len(inline) > len(by_line) else by_line


def _inline_numbered(text: str) -> dict[int, str]:
    """`1. X 2. Y 3. Z` on one line; the markers must count 1, 2, 3 so "Chapter 3. Then" is no marker."""
    chain, expected = [], 1
    for match in _INLINE_NUMBER.finditer(text):
        if int(match.group(1)) == expected:
            chain.append(match)
            expected += 1
    if len(chain) < 2:
        return {}
    items: dict[int, str] = {}
    for i, match in enumerate(chain):
        end = chain[i + 1].start() if i + 1 < len(chain) else len(text)
        item = clean_item(text[match.end():end].strip().rstrip(","))
        if item:
            items[i + 1] = item
    return items


def extract_list(text: str | None) -> list[str]:
    """Items of a numbered, bulleted, one-per-line, comma or "and" list, in order, cleaned."""
    if not text:
        return []
    numbered = extract_numbered(text)
    if numbered:
        return [numbered[k] for k in sorted(numbered)]
    lines = [line for line in text.splitlines() if line.strip()]
    bullets = [m.group(1) for m in map(_BULLET_LINE.match, lines) if m]
    if bullets:
        parts = bullets
    else:
        parts = [p for line in lines for p in _SPLIT.split(line.strip())]
    items = [clean_item(p) for p in parts]
    return [i for i in items if i]


def extract_single(text: str | None) -> str | None:
    """One answer: the lowest-numbered item of a numbered list, else the first non-empty line, cleaned.

    Unlike `extract_list`, "X and Y" stays one (wrong) answer: hedging between items earns nothing.
    """
    numbered = extract_numbered(text)
    if numbered:
        return numbered[min(numbered)]
    for line in (text or "").splitlines():
        bullet = _BULLET_LINE.match(line)
        item = clean_item(bullet.group(1) if bullet else line)
        if item:
            return item
    return None


def extract_ints(text: str | None) -> list[int]:
    """Every integer in the text, in order ("Chapter 3 and Chapter 7" -> [3, 7]; "3,7,12" -> [3, 7, 12])."""
    if not text:
        return []
    return [int(m) for m in _INT.findall(text)]


def is_none_answer(text: str | None) -> bool:
    """True when the answer explicitly says there is nothing ("None", "no chapters", "N/A")."""
    return bool(text) and bool(_NONE.match(text.replace("*", "")))


_LETTER_RULES = (
    # "answer is (B)", "Answer: B", "correct option is B", "**Answer: C**"
    r"(?i:answer|option|choice)\s*(?i:is|:|=)?\s*(?i:option\s+|choice\s+)?[*_(\[\s]*([{c}])\b(?![’']\w)",
    # Starts with "B)", "(B)", "B.", "B:", "**B**", "B" alone.
    r"^[\s*_(\[]*([{c}])(?:[).:\]*_]|\s*$)",
)


def extract_letter(text: str | None, choices: str = "ABCD") -> str | None:
    """The chosen option letter: "The answer is (B)", "B) Paris", "**C**", "Option D" -> the letter, else None.

    When nothing explicit is found, a single distinct standalone capital letter among `choices` is taken
    (a leading article "A word" does not count); several different ones are ambiguous -> None.
    """
    if not text:
        return None
    c = re.escape("".join(sorted(set(choices.upper()))))
    for rule in _LETTER_RULES:
        found = re.findall(rule.format(c=c), text)
        found = [f.upper() for f in found if f.upper() in choices.upper()]
        if found:
            return found[-1]
    standalone = re.finditer(rf"(?<![\w'’])([{c}])(?![\w'’])", text)
    # "A word" and "I think" are an article and a pronoun, not choices.
    distinct = {m.group(1) for m in standalone
                if not (m.group(1) in "AI" and re.match(r"\s+[a-z]", text[m.end():]))}
    return distinct.pop() if len(distinct) == 1 else None
