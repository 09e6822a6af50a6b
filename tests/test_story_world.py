"""The story world: name pools, template rules, exact token costs, a consistent trading history."""

from __future__ import annotations

import re

import numpy as np
import pytest

from sftasks.generators.story import names, templates as T
from sftasks.generators.story.world import ROLES, TEMPLATES, Renderer, costs_for, make_world
from sftasks.tokenizers import get_tokenizer


@pytest.fixture(scope="module")
def qwen():
    return get_tokenizer()


@pytest.mark.parametrize("pool", [names.PLACES, names.CHARACTERS, names.ITEMS], ids=["places", "characters", "items"])
def test_every_name_of_a_pool_is_distinct(pool):
    every = pool.names(np.arange(pool.size))
    assert len(set(every)) == pool.size > 100_000
    assert all(re.fullmatch(r"[A-Za-z]+( [A-Za-z]+)*", n) for n in every[:: 997])
    assert not any(re.search(r"(.)\1\1", n) for n in every)  # no "Tallleaf": compounds read well


def test_place_and_family_words_never_coincide():
    place_words = {r + s for r in names.PLACE_ROOTS for s in names.PLACE_SUFFIXES} | set(names.PLACE_KINDS)
    person_words = {r + s for r in names.FAMILY_ROOTS for s in names.FAMILY_SUFFIXES} | set(names.GIVEN_NAMES)
    assert not place_words & person_words


def test_names_stay_unique_in_a_story_beyond_4m_tokens(qwen):
    chapters = 4 * 1024 * 1024 // 150  # more chapters than a 4M-token story holds (about 170 tokens each)
    world = make_world(np.random.default_rng(3), chapters)
    renderer = Renderer(world)
    for pool in (renderer.places, renderer.characters, renderer.items):
        assert len(set(pool)) == chapters


def _slots(template):
    return re.findall(r"\{(\w+)\}", template)


def test_templates_follow_the_rules_token_counting_and_the_checker_rely_on():
    for role, group in TEMPLATES.items():
        assert len(set(group)) == len(group)
        for template in group:
            assert template.endswith(".") and template.count(".") == 1, template
            assert all(f" {{{slot}}}" in template for slot in _slots(template)), template
            assert template[0].isupper(), template
            assert ("{item}" in template) == (role == "buy") and ("{sold}" in template) == (role == "sell")
            if role in ("buy", "sell", "meet", "farewell"):
                assert "{character}" in template
    assert all("{place}" in t for t in T.ARRIVE) and all("{event}" in t for t in T.HAPPEN)
    for filler in T.FILLERS:
        assert filler.startswith(" ") and filler.endswith(".") and filler.count(".") == 1 and "{" not in filler
    assert not any(e.count(".") for e in T.EVENTS)


def test_chapter_costs_equal_the_tokenizer_count_of_each_rendered_chapter(qwen):
    costs = costs_for(qwen)
    world = make_world(np.random.default_rng(11), 600)
    world.remove_purchases(np.array([0, 7, 300]))
    fillers = {5: [" Dusk.", " The wind rose."], 599: [" Silence."]}
    story = Renderer(world).render(len(world), fillers)
    expected = costs.chapters(world)
    for chapter, pieces in fillers.items():
        expected[chapter] += sum(qwen.count(p) for p in pieces)
    assert qwen.count_batch(story.chapters) == expected.tolist()
    assert qwen.count(story.text) == expected.sum()  # chapters add up too
    shortest, longest = costs.chapter_bound(smallest=True), costs.chapter_bound(smallest=False)
    bodies = expected - costs.headers(len(world))
    assert shortest <= bodies.min() and bodies.max() <= longest + 20  # fillers may add a little


def test_trading_history_is_consistent_and_survives_removed_purchases():
    world = make_world(np.random.default_rng(5), 2000)
    sold_chapters = world.sold[world.sold >= 0]
    assert len(sold_chapters) > 500 and len(set(sold_chapters.tolist())) == len(sold_chapters)
    assert all(world.sold[c] < c for c in np.flatnonzero(world.sold >= 0))
    quiet = sold_chapters[:5]
    world.remove_purchases(quiet)
    assert (world.item[quiet] == -1).all()
    assert not np.isin(world.sold, quiet).any()  # an item never bought is never sold


def test_a_chapter_renders_every_role_in_order(qwen):
    world = make_world(np.random.default_rng(2), 50)
    renderer = Renderer(world)
    story = renderer.render(50, {})
    for c in range(50):
        sentences = renderer.sentences(c)
        text = story.chapters[c]
        assert text.startswith(f"Chapter {c + 1}:\n") and text.endswith(".\n\n")
        positions = [text.index(sentences[r]) for r in ROLES if r in sentences]
        assert positions == sorted(positions)
        assert ("sell" in sentences) == (world.sold[c] >= 0)
