"""story_multihop: which item did Arion acquire k purchases before acquiring X?"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sftasks.tasks import register

from . import names
from .task import Question, Span, StoryTask

RULES = "Give only the item's name, exactly as written in the story, without an article.\n"


@dataclass
class Params:
    hops: int = 1


@register
class StoryMultihop(StoryTask):
    name = "story_multihop"
    description = "which item was bought k purchases before a given item (k = hops)"
    Params = Params
    knob = "hops"

    def required_chapters(self, params) -> int:
        return params.hops + 1

    def choose(self, world, chapters, rng, params):
        """(chapter of the purchase asked about, hops); every chapter of this task has one purchase."""
        return int(rng.integers(params.hops, chapters)), params.hops

    def last_chapter(self, subject) -> int:
        return subject[0]

    def question(self, subject, world, params) -> Question:
        chapter, hops = subject
        return _question(names.ITEMS.names(world.item[[chapter]])[0], hops)

    def worst_question(self, params, costs) -> Question:
        longest = [int(np.argmax(c)) for c in (costs.adjective, costs.material, costs.obj)]
        item = " ".join(words[i] for words, i in zip(names.ITEMS.parts, longest))
        return _question(item, params.hops)

    def answer(self, subject, renderer) -> list[str]:
        chapter, hops = subject
        return [renderer.items[chapter - hops]]

    def evidence(self, subject) -> list[Span]:
        chapter, hops = subject
        return [Span(c, "buy") for c in range(chapter - hops, chapter + 1)]


def _question(item: str, hops: int) -> Question:
    if hops == 1:
        text = f"Which item did Arion acquire immediately before acquiring the {item}?"
    else:
        text = (f"Counting purchases only, which item did Arion acquire {hops} purchases before acquiring "
                f"the {item}? (One purchase before means the purchase immediately before it.)")
    return Question(text, "ITEM NAME", RULES, plural=False)
