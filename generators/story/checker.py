"""An independent checker: re-derive a story record's answer by reading only its text.

It knows the sentence templates (how the story is worded) but nothing of the world the generator
drew: it splits the prompt into chapters and sentences with regexes, requires every sentence to
match exactly one template or filler, reads places, characters, purchases and sales from the
matches, checks the story is consistent (unique names; an item is sold only after it was bought,
and only once), and answers the question(s) it parses from the prompt.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from . import templates as T

_NAME = {
    "place": r"[A-Z][a-z]+ [A-Z][a-z]+",
    "character": r"[A-Z][a-z]+ [A-Z][a-z]+",
    "item": r"[a-z]+ [a-z]+ [a-z]+",
    "sold": r"[a-z]+ [a-z]+ [a-z]+",
    "event": "|".join(re.escape(e) for e in sorted(T.EVENTS, key=len, reverse=True)),
}
_ROLES = {
    "arrive": T.ARRIVE, "reason": T.REASON, "happen": T.HAPPEN, "meet": T.MEET, "talk": T.TALK,
    "buy": T.BUY, "sell": T.SELL, "farewell": T.FAREWELL, "close": T.CLOSE,
}


class CheckError(AssertionError):
    """The text is malformed or inconsistent, so no answer can be trusted."""


def _pattern(template: str, tag: str) -> str:
    out, seen = [], set()
    for piece in re.split(r"(\{\w+\})", template):
        slot = piece[1:-1] if piece.startswith("{") else None
        if slot is None:
            out.append(re.escape(piece))
        elif slot in seen:
            out.append(f"(?P={tag}_{slot})")
        else:
            seen.add(slot)
            out.append(f"(?P<{tag}_{slot}>{_NAME[slot]})")
    return f"(?P<{tag}>{''.join(out)})"


_TAGS = {f"{role}{i}": (role, template) for role, group in _ROLES.items() for i, template in enumerate(group)}
_SENTENCE = re.compile("|".join(_pattern(t, tag) for tag, (_, t) in _TAGS.items()))
_FILLERS = {f.strip() for f in T.FILLERS}
_CHAPTER = re.compile(r"Chapter (\d+):\n(.*?)\n\n", re.S)
_SPLIT = re.compile(r"(?<=\.) (?=[A-Z])")


@dataclass
class Chapter:
    number: int
    places: set = field(default_factory=set)
    characters: set = field(default_factory=set)
    bought: list = field(default_factory=list)
    sold: list = field(default_factory=list)
    roles: list = field(default_factory=list)


def read_story(context: str) -> list[Chapter]:
    """Chapters parsed from the story text; raises CheckError on anything unexpected."""
    chapters, position = [], 0
    for match in _CHAPTER.finditer(context):
        if match.start() != position:
            raise CheckError(f"unparsed text before chapter {match.group(1)}")
        position = match.end()
        chapter = Chapter(int(match.group(1)))
        for sentence in _SPLIT.split(match.group(2)):
            if sentence in _FILLERS:
                continue
            m = _SENTENCE.fullmatch(sentence)
            if m is None:
                raise CheckError(f"chapter {chapter.number}: no template matches {sentence!r}")
            role, _ = _TAGS[m.lastgroup]
            chapter.roles.append(role)
            slots = {k.split("_", 1)[1]: v for k, v in m.groupdict().items()
                     if v is not None and k.startswith(m.lastgroup + "_")}
            if "place" in slots:
                chapter.places.add(slots["place"])
            if "character" in slots:
                chapter.characters.add(slots["character"])
            if "item" in slots:
                chapter.bought.append(slots["item"])
            if "sold" in slots:
                chapter.sold.append(slots["sold"])
        chapters.append(chapter)
    if position != len(context):
        raise CheckError("unparsed text after the last chapter")
    _check_consistency(chapters)
    return chapters


def _check_consistency(chapters: list[Chapter]) -> None:
    if [c.number for c in chapters] != list(range(1, len(chapters) + 1)):
        raise CheckError("chapters are not numbered 1, 2, 3, ...")
    seen_places, seen_characters, held, ever = set(), set(), set(), set()
    for c in chapters:
        if c.roles[0] != "arrive" or c.roles[-1] != "close" or "meet" not in c.roles:
            raise CheckError(f"chapter {c.number} does not arrive, meet and close")
        if len(c.places) != 1 or len(c.characters) != 1 or len(c.bought) > 1:
            raise CheckError(f"chapter {c.number} mixes places, characters or purchases")
        (place,), (character,) = c.places, c.characters
        if place in seen_places or character in seen_characters:
            raise CheckError(f"chapter {c.number} repeats a place or character")
        seen_places.add(place)
        seen_characters.add(character)
        for item in c.sold:
            if item not in held:
                raise CheckError(f"chapter {c.number} sells {item!r}, which Arion does not hold")
            held.remove(item)
        for item in c.bought:
            if item in ever:
                raise CheckError(f"chapter {c.number} buys {item!r} a second time")
            held.add(item)
            ever.add(item)


_RETRIEVAL = re.compile(
    r"^(\d+)\. In Chapter (\d+), which (place|character|item) did Arion (?:visit|meet|buy)\?$", re.M)
_MULTIHOP = re.compile(
    r"[Ww]hich item did Arion acquire (?:immediately|(\d+) purchases) before acquiring the ([a-z ]+)\?")
_AGGREGATION = re.compile(r"In which chapters did Arion buy nothing at all\? Exactly (\d+) chapters? ")
_QUESTION = re.compile(r"<(questions?)>\n(.*?)\n</\1>", re.S)
_CONTEXT = re.compile(r"<context>\n(.*)</context>", re.S)


def derive_answer(prompt: str) -> list[str]:
    """The answer to the prompt's question(s), from its text alone."""
    context = _CONTEXT.search(prompt)
    question = _QUESTION.search(prompt)
    if context is None or question is None:
        raise CheckError("prompt has no <context> or question section")
    chapters = read_story(context.group(1))
    text = question.group(2)
    if f"<{question.group(1)}_repeated>\n{text}\n</{question.group(1)}_repeated>" not in prompt:
        raise CheckError("the question is not repeated after the story")
    by_number = {c.number: c for c in chapters}
    if asks := _RETRIEVAL.findall(text):
        answers = []
        for i, (index, number, kind) in enumerate(asks, start=1):
            chapter = by_number[int(number)]
            if int(index) != i:
                raise CheckError("questions are not numbered 1, 2, 3, ...")
            value = {"place": chapter.places, "character": chapter.characters, "item": set(chapter.bought)}[kind]
            if len(value) != 1:
                raise CheckError(f"chapter {number} has no single {kind}")
            answers.append(next(iter(value)))
        return answers
    if m := _MULTIHOP.search(text):
        hops = int(m.group(1) or 1)
        purchases = [item for c in chapters for item in c.bought]
        at = purchases.index(m.group(2))
        if at < hops:
            raise CheckError("the question reaches before the first purchase")
        return [purchases[at - hops]]
    if m := _AGGREGATION.search(text):
        quiet = [str(c.number) for c in chapters if not c.bought]
        if len(quiet) != int(m.group(1)):
            raise CheckError(f"the question promises {m.group(1)} quiet chapters, the story has {len(quiet)}")
        return quiet
    raise CheckError("unknown question")
