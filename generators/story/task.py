"""What the three story tasks share: world -> subject -> prompt -> exact-length fit -> Sample.

A subclass says which chapters its question is about (`choose`), how it words the question
(`question`), what the gold answer is (`answer`) and which sentences support it (`evidence`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from sftasks.errors import InputError, LengthError
from sftasks.records import Sample
from sftasks.tasks import Task

from ..fill import count_pieces, fit, units_that_fit
from . import names
from .templates import prompt_pieces
from .world import Costs, Renderer, Story, World, costs_for, make_world

_FILLER_SLOTS = 256  # pre-drawn positions for filler sentences


@dataclass
class Question:
    text: str           # the question(s), as shown before and after the story
    answer_format: str  # what goes between the <answer> tags
    rules: str          # extra lines of instructions ("" or ending in a newline)
    plural: bool


@dataclass
class Span:
    """A piece of evidence: chapter `chapter` (0-based), the sentence of `role`, or the whole chapter."""

    chapter: int
    role: str | None = None


class StoryTask(Task):
    """Base class; subclasses set name, description, Params and the five hooks below."""

    version = "1"
    knob: str  # the knob that must be a positive integer

    # ---- hooks
    def required_chapters(self, params) -> int:
        raise NotImplementedError

    def choose(self, world: World, chapters: int, rng: np.random.Generator, params) -> Any:
        """The subject of the question, using only chapters < `chapters`."""
        raise NotImplementedError

    def last_chapter(self, subject) -> int:
        raise NotImplementedError

    def question(self, subject, world: World, params) -> Question:
        raise NotImplementedError

    def worst_question(self, params, costs: Costs) -> Question:
        """The longest question these knobs can produce (for min_tokens)."""
        raise NotImplementedError

    def prepare(self, world: World, subject) -> bool:
        """Change the world for the subject (e.g. remove purchases); True if it changed."""
        return False

    def answer(self, subject, renderer: Renderer) -> list[str]:
        raise NotImplementedError

    def evidence(self, subject) -> list[Span]:
        raise NotImplementedError

    # ---- shared machinery
    def validate(self, params) -> None:
        value = getattr(params, self.knob)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"parameter {self.knob} of task {self.name} must be a positive integer, got {value!r}")

    def min_tokens(self, params, tokenizer) -> int:
        costs = costs_for(tokenizer)
        needed = self.required_chapters(params)
        frame = _frame_tokens(tokenizer, self.worst_question(params, costs))
        headers = int(costs.headers(needed).sum())
        return frame + headers + needed * costs.chapter_bound(smallest=False)

    def check_length(self, target_tokens: int, params, tokenizer) -> None:
        """Too short for the knobs, or too long for the name pools: refused before any work."""
        super().check_length(target_tokens, params, tokenizer)
        _chapters_for(target_tokens, costs_for(tokenizer).mean_chapter / 1.15)

    def build(self, target_tokens: int, rng: np.random.Generator, tokenizer, params) -> Sample:
        costs = costs_for(tokenizer)
        world = make_world(rng, _chapters_for(target_tokens, costs.mean_chapter / 1.15))
        unit_costs = costs.chapters(world)
        if unit_costs.sum() < 1.05 * target_tokens:  # practically never: fall back to a sure bound
            world = make_world(rng, _chapters_for(target_tokens, costs.chapter_bound(smallest=True)))
            unit_costs = costs.chapters(world)
        chapters = units_that_fit(unit_costs, target_tokens - _frame_tokens(tokenizer, None))
        while True:  # `chapters` only shrinks, so this ends
            if chapters < self.required_chapters(params):
                raise LengthError(f"{target_tokens} tokens is too short for {self.name} with these parameters")
            subject = self.choose(world, chapters, rng, params)
            question = self.question(subject, world, params)
            overhead = _frame_tokens(tokenizer, question)
            fitting = units_that_fit(unit_costs, target_tokens - overhead)
            if self.last_chapter(subject) < fitting:
                break
            chapters = min(chapters - 1, fitting)
        if self.prepare(world, subject):
            unit_costs = costs.chapters(world)
        renderer = Renderer(world, units_that_fit(unit_costs, target_tokens) + 1)
        pieces = prompt_pieces(question.text, question.answer_format, question.rules, question.plural)
        head, tail = "".join(pieces[:3]), "".join(pieces[3:])
        slots = rng.random(_FILLER_SLOTS)
        rendered: list[Story] = []

        def render(n: int, fine: list[str]) -> str:
            placed: dict[int, list[str]] = {}
            for i, piece in enumerate(fine):
                placed.setdefault(int(slots[i % _FILLER_SLOTS] * n), []).append(piece)
            rendered.append(renderer.render(n, placed))
            return "".join([head, *rendered[-1].chapters, tail])

        result = fit(tokenizer, target_tokens, render, unit_costs=unit_costs, overhead=overhead,
                     filler=costs.filler, rng=rng, min_units=self.last_chapter(subject) + 1)
        story = rendered[-1]
        sample = Sample(
            input=result.text,
            context=result.text[len(head):-len(tail) - 2],
            question=question.text,
            answer=self.answer(subject, renderer),
            evidence=[_locate(span, story, renderer, len(head)) for span in self.evidence(subject)],
            params=dataclasses.asdict(params),
        )
        sample.num_tokens = result.num_tokens
        return sample


def _frame_tokens(tokenizer, question: Question | None) -> int:
    """Tokens of the prompt around the story: the wording's pieces are counted once per tokenizer
    (cached), the question itself once per call."""
    q = question or Question("", "", "", False)
    pieces = prompt_pieces(q.text, q.answer_format, q.rules, q.plural)
    fixed = count_pieces(tokenizer, pieces[0::3] + pieces[2::3], costs_for(tokenizer).cache).sum()
    return int(fixed) + 2 * tokenizer.count(pieces[1])


def _chapters_for(target: int, tokens_per_chapter: float) -> int:
    """Chapters to generate for `target` tokens at `tokens_per_chapter`; refuses what the name pools cannot hold."""
    chapters = math.ceil(target / max(tokens_per_chapter, 1.0)) + 16
    limit = min(p.size for p in (names.PLACES, names.CHARACTERS, names.ITEMS))
    if chapters > limit:
        most = int(limit * tokens_per_chapter) // 1024 // 1024
        raise LengthError(f"story tasks hold unique names for about {most}m tokens at most; use a shorter length")
    return chapters


def _locate(span: Span, story: Story, renderer: Renderer, offset: int) -> tuple[int, int]:
    """(start, end) in the prompt of a chapter's sentence of `span.role`, or of the whole chapter."""
    text = story.chapters[span.chapter]
    start = offset + story.starts[span.chapter]
    if span.role is None:  # the whole chapter, its "Chapter N:" line included
        return start, start + len(text) - 2
    sentence = renderer.sentences(span.chapter)[span.role]
    at = text.index(sentence)
    return start + at, start + at + len(sentence)
