"""story_retrieval: N questions, each about one chapter: the place visited, the character met, or the item bought."""

from __future__ import annotations

from dataclasses import dataclass

from sftasks.tasks import register

from .task import Question, Span, StoryTask

KINDS = ("place", "character", "item")
ASK = {
    "place": "which place did Arion visit?",
    "character": "which character did Arion meet?",
    "item": "which item did Arion buy?",
}
ROLE = {"place": "arrive", "character": "meet", "item": "buy"}
RULES = ("Answer every question on its own numbered line, in the order asked, with the exact name from "
         "the story and no article.\n")


@dataclass
class Params:
    num_queries: int = 16


@register
class StoryRetrieval(StoryTask):
    name = "story_retrieval"
    description = "questions about single chapters: which place, character or item bought"
    Params = Params
    knob = "num_queries"

    def required_chapters(self, params) -> int:
        return -(-params.num_queries // len(KINDS))

    def choose(self, world, chapters, rng, params):
        """Distinct (chapter, kind) pairs, so a chapter is asked about at most once per kind."""
        picks = rng.choice(chapters * len(KINDS), size=params.num_queries, replace=False)
        return [(int(p) // len(KINDS), KINDS[int(p) % len(KINDS)]) for p in picks]

    def last_chapter(self, subject) -> int:
        return max(chapter for chapter, _ in subject)

    def question(self, subject, world, params) -> Question:
        return _question([(chapter + 1, kind) for chapter, kind in subject])

    def worst_question(self, params, costs) -> Question:
        # The longest wording, on the highest chapter number the smallest story can hold.
        last = self.required_chapters(params)
        candidates = [_question([(last, kind)] * params.num_queries) for kind in KINDS]
        return max(candidates, key=lambda q: costs.tokenizer.count(q.text))

    def answer(self, subject, renderer) -> list[str]:
        values = {"place": renderer.places, "character": renderer.characters, "item": renderer.items}
        return [values[kind][chapter] for chapter, kind in subject]

    def evidence(self, subject) -> list[Span]:
        return [Span(chapter, ROLE[kind]) for chapter, kind in subject]


def _question(asks: list[tuple[int, str]]) -> Question:
    lines = [f"{i}. In Chapter {number}, {ASK[kind]}" for i, (number, kind) in enumerate(asks, start=1)]
    answer_format = "\n".join(f"{i}. ANSWER {i}" for i in range(1, min(len(asks), 2) + 1))
    if len(asks) > 2:
        answer_format += "\n..."
    return Question("\n".join(lines), answer_format, RULES, plural=len(asks) > 1)

