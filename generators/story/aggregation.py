"""story_aggregation: list every chapter in which Arion bought nothing (the paper's "filtering")."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sftasks.tasks import register

from .task import Question, Span, StoryTask

RULES = "List the chapter numbers in ascending order, one per line, digits only.\n"


@dataclass
class Params:
    chapters_in_question: int = 3


@register
class StoryAggregation(StoryTask):
    name = "story_aggregation"
    description = "list the chapters in which nothing was bought"
    Params = Params
    knob = "chapters_in_question"

    def required_chapters(self, params) -> int:
        return params.chapters_in_question + 1  # at least one chapter still has a purchase

    def choose(self, world, chapters, rng, params):
        """The quiet chapters, ascending."""
        return np.sort(rng.choice(chapters, size=params.chapters_in_question, replace=False))

    def last_chapter(self, subject) -> int:
        return int(subject[-1])

    def question(self, subject, world, params) -> Question:
        return _question(len(subject))

    def worst_question(self, params, costs) -> Question:
        return _question(params.chapters_in_question)

    def prepare(self, world, subject) -> bool:
        world.remove_purchases(subject)
        return True

    def answer(self, subject, renderer) -> list[str]:
        return [str(int(c) + 1) for c in subject]

    def evidence(self, subject) -> list[Span]:
        return [Span(int(c)) for c in subject]


def _question(count: int) -> Question:
    chapters = "chapter" if count == 1 else "chapters"
    text = (f"In which chapters did Arion buy nothing at all? Exactly {count} {chapters} of the story "
            f"{'has' if count == 1 else 'have'} no purchase.")
    return Question(text, "CHAPTER NUMBER\nCHAPTER NUMBER\n...", RULES, plural=False)
