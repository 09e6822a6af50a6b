"""The independent checker agrees with gold on many samples, and catches broken stories."""

from __future__ import annotations

import pytest

from sftasks.generate import generate_records
from sftasks.generators.story.checker import CheckError, derive_answer, read_story

TASKS = ["story_retrieval", "story_multihop", "story_aggregation"]
SMALL = {"story_retrieval": {"num_queries": 3}, "story_multihop": {}, "story_aggregation": {"chapters_in_question": 1}}


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("length,samples", [("1k", 15), ("3000", 10), ("8k", 10), ("32k", 4), ("128k", 1)])
def test_checker_agrees_with_gold(task, length, samples):
    params = SMALL[task] if length in ("1k", "3000") else {}
    for seed in (0, 1):
        for record in generate_records(task, length, samples=samples, seed=seed, params=params):
            assert derive_answer(record["input"]) == record["answer"], record["id"]


@pytest.mark.parametrize("task,knobs", [
    ("story_retrieval", {"num_queries": 60}), ("story_multihop", {"hops": 3}),
    ("story_aggregation", {"chapters_in_question": 9}),
])
def test_checker_agrees_with_gold_for_other_knobs(task, knobs):
    for record in generate_records(task, "24k", samples=5, seed=3, params=knobs):
        assert derive_answer(record["input"]) == record["answer"]


@pytest.fixture(scope="module")
def story():
    (record,) = generate_records("story_multihop", "6k", samples=1, seed=4)
    return record


def test_checker_reads_a_consistent_story(story):
    chapters = read_story(story["context"] + "\n\n")
    assert len(chapters) > 10 and all(len(c.bought) == 1 for c in chapters)
    assert sum(len(c.sold) for c in chapters) > 0


def test_checker_rejects_an_item_sold_but_never_bought(story):
    context = story["context"] + "\n\n"
    sold = next(item for c in read_story(context) for item in c.sold)
    renamed_purchase = context.replace(sold, "ornate velvet compass", 1)  # the purchase comes first
    with pytest.raises(CheckError, match="does not hold"):
        read_story(renamed_purchase)
    chapters = read_story(context)
    first, second = chapters[0].bought[0], chapters[1].bought[0]
    with pytest.raises(CheckError, match="second time"):
        read_story(context.replace(second, first, 1))


def test_checker_rejects_unknown_sentences_and_repeated_names(story):
    context = story["context"] + "\n\n"
    with pytest.raises(CheckError, match="no template"):
        read_story(context.replace(" Arion ", " The protagonist ", 1))
    chapters = read_story(context)
    (place_1,), (place_2,) = chapters[0].places, chapters[1].places
    with pytest.raises(CheckError, match="repeats"):
        read_story(context.replace(place_2, place_1))


def test_checker_answer_moves_with_the_text(story):
    """Changing which item was bought changes the derived answer: the checker really reads the text."""
    (gold,) = story["answer"]
    changed = story["input"].replace(gold, "ornate velvet compass")
    assert derive_answer(changed) == ["ornate velvet compass"]
