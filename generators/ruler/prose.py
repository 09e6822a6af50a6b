"""Natural-language haystack for the NIAH task's `prose` haystack: the story world's sentences.

The paper's point is that a haystack of natural text is harder (and more realistic) than one of
repeated needles. The story generator (`generators/story`) already writes varied narrative prose;
we draw fresh story worlds and use their sentences in chapter order, without chapter headers.
The story's facts (places, purchases) are never asked about here, so they are neutral filler.
"""

from __future__ import annotations

import numpy as np

from ..story.world import Renderer, make_world

_CHAPTERS_PER_WORLD = 400  # worlds draw unique names; several small worlds stay within the name pools


def prose_sentences(rng: np.random.Generator, count: int) -> list[str]:
    """`count` sentences, each with a leading space (they follow one another in a paragraph)."""
    sentences: list[str] = []
    while len(sentences) < count:
        chapters = min(_CHAPTERS_PER_WORLD, (count - len(sentences)) // 7 + 1)
        world = make_world(rng, chapters)
        renderer = Renderer(world)
        sentences += [" " + s for c in range(chapters) for s in renderer.sentences(c).values()]
    return sentences[:count]
