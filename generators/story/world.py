"""The story world: chapters as numpy arrays, their exact token costs, and their rendering.

A chapter is: arrival at a place, why Arion came, an event, meeting a character, one to three
lines of conversation, buying an item (unless the chapter is "quiet"), sometimes selling an item
bought in an earlier chapter, a farewell and a closing line. Each role's sentence is one of the
templates in `templates.py`; the world stores template ids and name indices, not text.

Token costs are computed without tokenizing the story: a chapter's count is the sum of its
templates' fixed fragments and its names' words (each counted once per tokenizer and cached),
which is exact for Qwen's pre-tokenizer (see fill.py); `fill.fit` verifies with one full count.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import numpy as np

from ..fill import Filler, count_pieces
from . import names, templates as T

SELL_PROBABILITY = 0.4
MAX_TALK = 3
_SLOT = re.compile(r" \{(\w+)\}")
SLOTS = ("place", "character", "event", "item", "sold")

# Roles in chapter order; fillers go right after "happen".
ROLES = ("arrive", "reason", "happen", "meet", "talk", "buy", "sell", "farewell", "close")
TEMPLATES = {
    "arrive": T.ARRIVE, "reason": T.REASON, "happen": T.HAPPEN, "meet": T.MEET, "talk": T.TALK,
    "buy": T.BUY, "sell": T.SELL, "farewell": T.FAREWELL, "close": T.CLOSE,
}


def header(number: int) -> str:
    return f"Chapter {number}:\n"


@dataclass
class World:
    """Chapter i (0-based, "Chapter i+1" in the text) of one story; -1 marks an absent entry."""

    place: np.ndarray       # PLACES index
    character: np.ndarray   # CHARACTERS index
    event: np.ndarray       # EVENTS index
    item: np.ndarray        # ITEMS index bought in this chapter, -1 in a quiet chapter
    sold: np.ndarray        # chapter whose item is sold in this chapter, or -1
    role: dict[str, np.ndarray]  # template id per chapter; "talk" is [chapters, MAX_TALK]

    def __len__(self) -> int:
        return len(self.place)

    def remove_purchases(self, chapters: np.ndarray) -> None:
        """Make `chapters` quiet; a later sale of an item never bought is dropped with it."""
        chapters = np.asarray(chapters, dtype=np.int64)
        self.item[chapters] = -1
        self.sold[np.isin(self.sold, chapters)] = -1

    def purchases(self) -> np.ndarray:
        """Chapters with a purchase, in story order."""
        return np.flatnonzero(self.item >= 0)


def make_world(rng: np.random.Generator, chapters: int) -> World:
    """A random world of `chapters` chapters with unique places, characters and items."""
    n = chapters
    role = {r: rng.integers(len(TEMPLATES[r]), size=n) for r in ROLES if r != "talk"}
    role["talk"] = _distinct_talk(rng, n)
    world = World(
        place=names.draw(names.PLACES, n, rng),
        character=names.draw(names.CHARACTERS, n, rng),
        event=rng.integers(len(T.EVENTS), size=n),
        item=names.draw(names.ITEMS, n, rng),
        sold=np.full(n, -1, dtype=np.int64),
        role=role,
    )
    # Sales: an item bought in an earlier chapter and still held, chosen uniformly.
    wants = (rng.random(n) < SELL_PROBABILITY).tolist()
    picks = rng.random(n).tolist()
    held: list[int] = []
    sold = world.sold
    for c in range(n):
        if wants[c] and held:
            j = int(picks[c] * len(held))
            sold[c] = held[j]
            held[j] = held[-1]
            held.pop()
        held.append(c)
    return world


def _distinct_talk(rng: np.random.Generator, n: int) -> np.ndarray:
    """1..MAX_TALK distinct conversation templates per chapter (-1 pads)."""
    size = len(T.TALK)
    first = rng.integers(size, size=n)
    second = (first + 1 + rng.integers(size - 1, size=n)) % size
    low, high = np.minimum(first, second), np.maximum(first, second)
    third = rng.integers(size - 2, size=n)
    third += third >= low
    third += third >= high
    talk = np.stack([first, second, third], axis=1)
    count = rng.integers(1, MAX_TALK + 1, size=n)
    talk[np.arange(MAX_TALK)[None, :] >= count[:, None]] = -1
    return talk


# ----------------------------------------------------------------------------- token costs


class Costs:
    """Token counts of every template fragment and name word under one tokenizer (cached)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.cache: dict[str, int] = {}
        self.fixed: dict[str, np.ndarray] = {}
        self.occurrences: dict[str, np.ndarray] = {}  # [templates, len(SLOTS)]
        for role in ROLES:
            form = "first" if role == "arrive" else "last" if role == "close" else "middle"
            fixed, occ = self._template_costs(TEMPLATES[role], form)
            self.fixed[role], self.occurrences[role] = fixed, occ
        count = functools.partial(count_pieces, tokenizer, cache=self.cache)
        place_words = [" " + root + suffix for root in names.PLACE_ROOTS for suffix in names.PLACE_SUFFIXES]
        family = [root + suffix for root in names.FAMILY_ROOTS for suffix in names.FAMILY_SUFFIXES]
        self.place_compound = count(place_words)
        self.place_kind = count([" " + w for w in names.PLACE_KINDS])
        self.given = count([" " + w for w in names.GIVEN_NAMES])
        self.family = count([" " + w for w in family])
        self.adjective = count([" " + w for w in names.ITEM_ADJECTIVES])
        self.material = count([" " + w for w in names.ITEM_MATERIALS])
        self.obj = count([" " + w for w in names.ITEM_OBJECTS])
        self.event = count([" " + e for e in T.EVENTS])
        self.filler = Filler(tokenizer, T.FILLERS, cache=self.cache)
        self._headers = np.zeros(0, dtype=np.int64)

    def _template_costs(self, group, form):
        fixed, occ = [], []
        for template in group:
            parts = _SLOT.split(template)
            fragments, slots = parts[0::2], parts[1::2]
            if form != "first":
                fragments[0] = " " + fragments[0]
            if form == "last":
                fragments[-1] += "\n\n"
            fixed.append(int(count_pieces(self.tokenizer, fragments, self.cache).sum()))
            occ.append([slots.count(s) for s in SLOTS])
        return np.array(fixed, dtype=np.int64), np.array(occ, dtype=np.int64)

    def headers(self, chapters: int) -> np.ndarray:
        """Token counts of "Chapter 1:\\n" ... for the first `chapters` chapters."""
        if len(self._headers) < chapters:
            self._headers = count_pieces(self.tokenizer, [header(i + 1) for i in range(chapters)], self.cache)
        return self._headers[:chapters]

    def names(self, world: World) -> np.ndarray:
        """[chapters, len(SLOTS)] token counts of each chapter's slot values (" " included)."""
        root, suffix, kind = names.PLACES.digits(world.place)
        place = self.place_compound[root * len(names.PLACE_SUFFIXES) + suffix] + self.place_kind[kind]
        given, froot, fsuffix = names.CHARACTERS.digits(world.character)
        character = self.given[given] + self.family[froot * len(names.FAMILY_SUFFIXES) + fsuffix]
        adjective, material, obj = names.ITEMS.digits(world.item)
        item = self.adjective[adjective] + self.material[material] + self.obj[obj]
        sold_item = np.where(world.sold >= 0, item[np.maximum(world.sold, 0)], 0)
        item = np.where(world.item >= 0, item, 0)
        return np.stack([place, character, self.event[world.event], item, sold_item], axis=1)

    def chapters(self, world: World) -> np.ndarray:
        """Exact (for additive tokenizers) token count of each rendered chapter, "\\n\\n" included."""
        values = self.names(world)
        total = self.headers(len(world)).copy()
        present = {"buy": world.item >= 0, "sell": world.sold >= 0}
        for role in ROLES:
            ids = world.role[role]
            if role == "talk":
                for col in range(ids.shape[1]):
                    total += self._sentences(role, ids[:, col], values, ids[:, col] >= 0)
            else:
                total += self._sentences(role, ids, values, present.get(role))
        return total

    def _sentences(self, role, ids, values, mask):
        safe = np.maximum(ids, 0)
        cost = self.fixed[role][safe] + (self.occurrences[role][safe] * values).sum(axis=1)
        return cost if mask is None else np.where(mask, cost, 0)

    def chapter_bound(self, smallest: bool) -> int:
        """A bound on any chapter's count (header excluded): the min or the max over all choices."""
        pick = np.min if smallest else np.max
        values = np.array([
            pick(self.place_compound) + pick(self.place_kind), pick(self.given) + pick(self.family),
            pick(self.event), pick(self.adjective) + pick(self.material) + pick(self.obj),
            pick(self.adjective) + pick(self.material) + pick(self.obj),
        ])
        per_role = {r: pick(self.fixed[r] + self.occurrences[r] @ values) for r in ROLES}
        talk = per_role["talk"] * (1 if smallest else MAX_TALK)
        optional = 0 if smallest else per_role["buy"] + per_role["sell"]
        fixed_roles = ("arrive", "reason", "happen", "meet", "farewell", "close")
        return int(sum(per_role[r] for r in fixed_roles) + talk + optional)

    @functools.cached_property
    def mean_chapter(self) -> float:
        """Average chapter count, measured on a fixed calibration world."""
        return float(self.chapters(make_world(np.random.default_rng(0), 512)).mean())


@functools.lru_cache(maxsize=8)
def costs_for(tokenizer) -> Costs:
    """Costs for `tokenizer`, computed once per tokenizer object."""
    return Costs(tokenizer)


# ----------------------------------------------------------------------------- rendering


@dataclass
class Story:
    """Rendered chapters; chapter i starts at `starts[i]` of their concatenation."""

    chapters: list[str]
    starts: list[int]

    @property
    def text(self) -> str:
        return "".join(self.chapters)


def _positional(template: str) -> str:
    """"{place}" -> "{0}" etc., so a sentence renders with one fast positional format call."""
    for i, slot in enumerate(SLOTS):
        template = template.replace("{%s}" % slot, "{%d}" % i)
    return template


_FORMATS = {role: tuple(_positional(t) for t in group) for role, group in TEMPLATES.items()}


class Renderer:
    """Turns the first `limit` chapters of a World into text; names are built once."""

    def __init__(self, world: World, limit: int | None = None):
        limit = len(world) if limit is None else min(limit, len(world))
        self.world, self.limit = world, limit
        self.places = names.PLACES.names(world.place[:limit])
        self.characters = names.CHARACTERS.names(world.character[:limit])
        self.items = names.ITEMS.names(np.maximum(world.item[:limit], 0))
        sold = world.sold[:limit]
        self.sold_items = [self.items[s] if s >= 0 else "" for s in sold.tolist()]
        self.events = [T.EVENTS[e] for e in world.event[:limit].tolist()]
        self.roles = {r: world.role[r][:limit].tolist() for r in ROLES}
        self.buys = (world.item[:limit] >= 0).tolist()
        self.sells = (sold >= 0).tolist()

    def _args(self, c: int) -> tuple[str, ...]:
        return self.places[c], self.characters[c], self.events[c], self.items[c], self.sold_items[c]

    def sentences(self, c: int) -> dict[str, str]:
        """Role -> sentence of chapter c ("talk" sentences joined by spaces; absent roles omitted)."""
        args = self._args(c)
        out = {}
        for role in ROLES:
            tid = self.roles[role][c]
            if role == "talk":
                out[role] = " ".join(_FORMATS[role][t].format(*args) for t in tid if t >= 0)
            elif (role != "buy" or self.buys[c]) and (role != "sell" or self.sells[c]):
                out[role] = _FORMATS[role][tid].format(*args)
        return out

    def render(self, chapters: int, fillers: dict[int, list[str]]) -> Story:
        """The first `chapters` chapters, with filler sentences placed after the event sentence."""
        if chapters > self.limit:
            self.__init__(self.world, chapters)
        columns = list(zip(self.places, self.characters, self.events, self.items, self.sold_items))[:chapters]

        def role(name, present=None):
            fmt, ids = _FORMATS[name], self.roles[name]
            if present is None:
                return [fmt[ids[c]].format(*a) for c, a in enumerate(columns)]
            return [" " + fmt[ids[c]].format(*a) if present[c] else "" for c, a in enumerate(columns)]

        talk_fmt, talk_ids = _FORMATS["talk"], self.roles["talk"]
        talk = [" ".join(talk_fmt[t].format(*a) for t in talk_ids[c] if t >= 0) for c, a in enumerate(columns)]
        fill = [""] * len(columns)
        for c, pieces in fillers.items():
            fill[c] = "".join(pieces)
        parts = zip(role("arrive"), role("reason"), role("happen"), fill, role("meet"), talk,
                    role("buy", self.buys), role("sell", self.sells), role("farewell"), role("close"))
        texts = [f"Chapter {c + 1}:\n{a} {r} {h}{f} {m} {t}{b}{s} {w} {e}\n\n"
                 for c, (a, r, h, f, m, t, b, s, w, e) in enumerate(parts)]
        starts = np.concatenate([[0], np.cumsum([len(t) for t in texts])]).tolist()
        return Story(texts, starts[:-1])
