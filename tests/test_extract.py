"""Answer extraction over tables of real-looking model outputs, scored by the story scorers.

Each row: (model output, expected main score, expected `parsed`). Gold answers are in
test_scoring_gold.GOLD_ANSWERS: retrieval ["Rome", "Selene", "ancient bronze amulet"], multi-hop
["ornate jade comb"], aggregation ["3", "7", "12"].
"""

import pytest
from test_scoring_gold import gold_record

from sftasks.scorers.base import get_scorer
from sftasks.scorers.extract import (
    answer_region, clean_item, extract_ints, extract_letter, extract_list, extract_numbered, extract_single,
)

R = "1. Rome\n2. Selene\n3. ancient bronze amulet"

RETRIEVAL = [
    (f"<answer>\n{R}\n</answer>", 1, True),
    ("<answer>1. Rome\n2. Selene\n3. ancient bronze amulet</answer>", 1, True),
    ("<answer>\n1) Rome\n2) Selene\n3) ancient bronze amulet\n</answer>", 1, True),
    ("<answer>\n1: Rome\n2: Selene\n3: ancient bronze amulet\n</answer>", 1, True),
    ("<answer>\n1. **Rome**\n2. **Selene**\n3. **ancient bronze amulet**\n</answer>", 1, True),
    ("**1.** Rome\n**2.** Selene\n**3.** ancient bronze amulet", 1, True),
    ("<answer>\n1. Rome (visited in Chapter 4)\n2. Selene - she traded with the protagonist\n"
     "3. ancient bronze amulet, bought from Marcus\n</answer>", 1, True),
    ("Let me go through the chapters.\nIn Chapter 4 the protagonist reached Rome.\n"
     f"<answer>\n{R}\n</answer>\nI hope this helps!", 1, True),
    (f"Format: <answer>\n1. ANSWER_ONE\n2. ANSWER_TWO\n</answer>\nNow the real answer:\n<answer>\n{R}\n</answer>", 1, True),
    (f"<answer>\n{R}", 1, True),
    (f"{R}\n</answer>", 1, True),
    ("1. Rome 2. Selene 3. ancient bronze amulet", 1, True),
    ("<answer>1. Rome 2. Selene 3. ancient bronze amulet</answer>", 1, True),
    ("<answer>1. rome\n2. SELENE\n3. The Ancient Bronze Amulet.</answer>", 1, True),
    ("<answer>\n1. Rome\n2. Marcus\n3. ancient bronze amulet\n</answer>", 2 / 3, True),
    ("<answer>\n1. Athens\n2. Marcus\n3. gilded jade comb\n</answer>", 0, True),
    ("<answer>\n1. Rome\n3. ancient bronze amulet\n</answer>", 2 / 3, True),
    ("<answer>\n2. Selene\n1. Rome\n3. ancient bronze amulet\n</answer>", 1, True),
    ("<answer>\n1. Rome\n</answer>", 1 / 3, True),
    ("", 0, False),
    ("   \n\n  ", 0, False),
    ("<answer></answer>", 0, False),
    ("<answer>\n   \n</answer>", 0, False),
    ("<answer>\n- Rome\n- Selene\n- ancient bronze amulet\n</answer>", 1, True),
    ("<answer>Rome, Selene, ancient bronze amulet</answer>", 1, True),
    ("<answer>Rome\nSelene\nancient bronze amulet</answer>", 1, True),
    ("<answer>\n1. Location: Rome\n2. Character: Selene\n3. Item: ancient bronze amulet\n</answer>", 1, True),
    ("<answer>\n1. **Location:** Rome\n2. **Character:** Selene\n3. **Item:** ancient bronze amulet\n</answer>", 1, True),
    ("<answer>\n1. The protagonist visited **Rome**.\n2. The protagonist met **Selene**.\n"
     "3. The protagonist acquired the **ancient bronze amulet**.\n</answer>", 1, True),
    ("<answer>\n1. \"Rome\"\n2. 'Selene'\n3. `ancient bronze amulet`\n</answer>", 1, True),
    (f"<think>The answer might be 1. Athens</think>\n<answer>\n{R}\n</answer>", 1, True),
    ("<answer>\n1. Rome.\n2. Selene.\n3. an ancient bronze amulet.\n</answer>", 1, True),
    (f"Answer:\n{R}", 1, True),
    (f"Here are my answers:\n\n{R}\n\nExplanation: In Chapter 4 the protagonist meets Selene.", 1, True),
    ("Q1: Rome\nQ2: Selene\nQ3: ancient bronze amulet", 1, True),
    ("Answer 1: Rome\nAnswer 2: Selene\nAnswer 3: ancient bronze amulet", 1, True),
    ("(1) Rome\n(2) Selene\n(3) ancient bronze amulet", 1, True),
    ("1 - Rome\n2 - Selene\n3 - ancient bronze amulet", 1, True),
    (f"<answer>\n{R}\n</answer>\n<answer>\n{R}\n</answer>", 1, True),
    (f"<answer>\n{R}\n</answer>\n\nExplanation:\n1. Athens is wrong because...\n2. Marcus left early.", 1, True),
    ("<answer>\n1. Rome\n2. Selene\n3. None\n</answer>", 2 / 3, True),
    ("<answer>\n1. Rome, Italy\n2. Selene\n3. ancient bronze amulet\n</answer>", 1, True),
    ("<answer>\n1. Rom\n2. Selene\n3. ancient bronze amulets\n</answer>", 1 / 3, True),
    (f"{R}\n4. Athens", 1, True),
    ("1.Rome\n2.Selene\n3.ancient bronze amulet", 1, True),
    (f"<ANSWER>\n{R}\n</ANSWER>", 1, True),
    ("1. **Rome** – the protagonist arrives there at dusk\n2. **Selene** – a merchant\n"
     "3. **ancient bronze amulet** – bought in the market", 1, True),
    ("<answer>\n1. Selene\n2. Rome\n3. ancient bronze amulet\n</answer>", 1 / 3, True),
    ("<explanation>\n1. Chapter 4 names Athens first, then Rome.\n2. Marcus appears.\n</explanation>\n" + R, 1, True),
    ("Chapter 4 mentions it.</think>\n" + R, 1, True),
]

MULTIHOP = [
    ("<answer>ornate jade comb</answer>", 1, True),
    ("<answer>Ornate Jade Comb</answer>", 1, True),
    ("<answer>ORNATE JADE COMB</answer>", 1, True),
    ("<answer>the ornate jade comb</answer>", 1, True),
    ("<answer>An ornate jade comb</answer>", 1, True),
    ("<answer>**ornate jade comb**</answer>", 1, True),
    ("<answer>ornate jade comb.</answer>", 1, True),
    ("<answer>ornate jade comb!</answer>", 1, True),
    ("<answer>\nornate jade comb\n</answer>", 1, True),
    ("<answer>ornate jade comb</answer>\n\nThe protagonist bought the comb in Chapter 12, just before the amulet.", 1, True),
    ("Let me trace the purchases: Chapter 10 ring, Chapter 12 comb.\n<answer>ornate jade comb</answer>", 1, True),
    ("Format: <answer>ITEM_NAME</answer>\n\n<answer>ornate jade comb</answer>", 1, True),
    ("<answer>ornate jade comb", 1, True),
    ("ornate jade comb</answer>", 1, True),
    ("The answer is ornate jade comb.", 1, True),
    ("The answer is:\nornate jade comb", 1, True),
    ("Answer: ornate jade comb", 1, True),
    ("**Answer:** ornate jade comb", 1, True),
    ("Final answer: **ornate jade comb**", 1, True),
    ("The protagonist bought several items. Answer: ornate jade comb\nThis is because it came right before.", 1, True),
    ("<answer>ornate jade comb (bought from Selene in Chapter 7)</answer>", 1, True),
    ("<answer>ornate jade comb - acquired in Chapter 7</answer>", 1, True),
    ("<answer>ornate jade comb, which the protagonist bought from Selene</answer>", 1, True),
    ("<answer>Item: ornate jade comb</answer>", 1, True),
    ("<answer>1. ornate jade comb</answer>", 1, True),
    ("<answer>\n- ornate jade comb\n</answer>", 1, True),
    ("<answer>\"ornate jade comb\"</answer>", 1, True),
    ("<answer>`ornate jade comb`</answer>", 1, True),
    ("<answer>\n**ornate jade comb**\n</answer>", 1, True),
    ("<answer>Ornate jade comb</answer>\n<answer>Ornate jade comb</answer>", 1, True),
    ("<think>Maybe the silver ring? No, that came later.</think><answer>ornate jade comb</answer>", 1, True),
    ("ornate jade comb", 1, True),
    ("ornate jade comb\n\nExplanation: The protagonist acquired it in Chapter 5 before buying the amulet.", 1, True),
    ("**ornate jade comb**", 1, True),
    ("<answer>gilded jade comb</answer>", 0, True),
    ("<answer>ornate jade</answer>", 0, True),
    ("<answer>jade comb</answer>", 0, True),
    ("<answer>silver ring</answer>", 0, True),
    ("<answer>ornate jade comb and silver ring</answer>", 0, True),  # hedging earns nothing
    ("<answer>ornate jade comb</answer> <answer>silver ring</answer>", 0, True),  # the last answer counts
    ("", 0, False),
    ("<answer></answer>", 0, False),
    ("<answer>\n\n</answer>", 0, False),
    ("I don't know.", 0, True),  # a refusal is a wrong answer, not a format failure
]

AGGREGATION = [
    ("<answer>3, 7, 12</answer>", 1, True),
    ("<answer>Chapter 3, Chapter 7, Chapter 12</answer>", 1, True),
    ("<answer>Chapters 3, 7 and 12</answer>", 1, True),
    ("<answer>Chapter 3 and Chapter 7 and Chapter 12</answer>", 1, True),
    ("<answer>chapter 3, chapter 7, chapter 12</answer>", 1, True),
    ("<answer>12, 7, 3</answer>", 1, True),
    ("<answer>\n1. Chapter 3\n2. Chapter 7\n3. Chapter 12\n</answer>", 1, True),
    ("<answer>\n1) Chapter 3\n2) Chapter 7\n3) Chapter 12\n</answer>", 1, True),
    ("<answer>\n1. Chapter 3 (sold 2 items)\n2. Chapter 7\n3. Chapter 12\n</answer>", 1, True),
    ("<answer>\n- Chapter 3\n- Chapter 7\n- Chapter 12\n</answer>", 1, True),
    ("<answer>\n* Chapter 3: the protagonist sold the amulet\n* Chapter 7: sold the ring\n* Chapter 12: sold the comb\n</answer>", 1, True),
    ("<answer>3\n7\n12</answer>", 1, True),
    ("<answer>\n3\n7\n12\n</answer>", 1, True),
    ("<answer>Chapter 3\nChapter 7\nChapter 12</answer>", 1, True),
    ("<answer>**3**, **7**, **12**</answer>", 1, True),
    ("<answer>[3, 7, 12]</answer>", 1, True),
    ("<answer>3,7,12</answer>", 1, True),
    ("<answer>3; 7; 12</answer>", 1, True),
    ("<answer>3 and 7 and 12</answer>", 1, True),
    ("<answer>3, 7, and 12.</answer>", 1, True),
    ("<answer>03, 07, 12</answer>", 1, True),
    ("<answer>3, 3, 7, 7, 12</answer>", 1, True),
    ("<answer>Chapters: 3, 7, 12</answer>", 1, True),
    ("<answer>Ch. 3, Ch. 7, Ch. 12</answer>", 1, True),
    ("<answer>3, 7, 12 (three chapters)</answer>", 1, True),
    ("<answer>3, 7, 12 (3 chapters in total)</answer>", 1, True),
    ("<answer>3, 7, 12</answer>\nIn Chapter 3 he sold the ring; Chapter 20 had no sale.", 1, True),
    ("<answer>3, 7, 12", 1, True),
    ("3, 7, 12</answer>", 1, True),
    ("<answer>chapter numbers</answer>\n...\n<answer>3, 7, 12</answer>", 1, True),
    ("<think>maybe chapter 5</think><answer>3, 7, 12</answer>", 1, True),
    ("Answer: 3, 7, 12", 1, True),
    ("**Answer:** Chapters 3, 7, and 12", 1, True),
    ("The protagonist sold items in Chapter 3, Chapter 7 and Chapter 12.", 1, True),
    ("Chapter 3 and Chapter 7", 2 / 3, True),
    ("<answer>3, 7</answer>", 2 / 3, True),
    ("<answer>7</answer>", 1 / 3, True),
    ("<answer>3, 7, 12, 20</answer>", 3 / 4, True),
    ("<answer>3, 7, 12</answer><answer>3</answer>", 1 / 3, True),
    ("<answer>1, 2</answer>", 0, True),
    ("<answer>None</answer>", 0, True),
    ("<answer>No chapters</answer>", 0, True),
    ("", 0, False),
    ("<answer></answer>", 0, False),
    ("I could not find any relevant chapters in the text.", 0, False),
]


def _check(task, output, expected, parsed, index):
    record = gold_record(task, index)
    score = get_scorer(task)(output, record)
    assert score.value == pytest.approx(expected), f"{output!r}: {score}"
    assert score.parsed is parsed, f"{output!r}: {score}"
    assert 0.0 <= score.value <= 1.0


@pytest.mark.parametrize("output,expected,parsed", RETRIEVAL)
def test_story_retrieval_outputs(output, expected, parsed):
    _check("story_retrieval", output, expected, parsed, 0)


@pytest.mark.parametrize("output,expected,parsed", MULTIHOP)
def test_story_multihop_outputs(output, expected, parsed):
    _check("story_multihop", output, expected, parsed, 0)


@pytest.mark.parametrize("output,expected,parsed", AGGREGATION)
def test_story_aggregation_outputs(output, expected, parsed):
    _check("story_aggregation", output, expected, parsed, 0)


def test_tables_are_large_enough():
    assert min(len(RETRIEVAL), len(MULTIHOP), len(AGGREGATION)) >= 40


def test_aggregation_reports_precision_and_recall():
    record = gold_record("story_aggregation", 0)
    score = get_scorer("story_aggregation")("<answer>3, 7, 12, 20</answer>", record)
    assert score.metrics == pytest.approx({"iou": 0.75, "precision": 0.75, "recall": 1.0})
    score = get_scorer("story_aggregation")("<answer>7</answer>", record)
    assert score.metrics == pytest.approx({"iou": 1 / 3, "precision": 1.0, "recall": 1 / 3})


def test_fuzzy_is_a_separate_metric_never_mixed_into_exact():
    record = gold_record("story_multihop", 0)
    near = get_scorer("story_multihop")("<answer>ornate jade combs</answer>", record)
    assert near.value == 0.0 and near.metrics["exact"] == 0.0
    assert 0.9 < near.metrics["fuzzy"] < 1.0
    record = gold_record("story_retrieval", 0)
    near = get_scorer("story_retrieval")("<answer>\n1. Rom\n2. Selene\n3. ancient bronze amulets\n</answer>", record)
    assert near.value == pytest.approx(1 / 3) and near.metrics["accuracy"] == pytest.approx(1 / 3)
    assert near.metrics["fuzzy"] > 0.9


@pytest.mark.parametrize("text,region", [
    ("<answer>a</answer> then <answer>b</answer>", "b"),
    ("<answer>a</answer> then <answer> </answer>", "a"),
    ("prefix <answer>open only", "open only"),
    ("close only</answer> trailing", "close only"),
    ("<think>x</think>plain text", "plain text"),
    ("<explanation>see 1. x</explanation>\nplain text", "plain text"),
    ("only reasoning</think>", "only reasoning"),
    ("The final answer is: Rome", "Rome"),
    ("", None),
    ("<answer></answer>", None),
])
def test_answer_region(text, region):
    assert answer_region(text) == region


@pytest.mark.parametrize("text,items", [
    ("Chapter 3 and Chapter 7", ["Chapter 3", "Chapter 7"]),
    ("red, green, and blue", ["red", "green", "blue"]),
    ("red; green & blue", ["red", "green", "blue"]),
    ("* red\n* green\n* blue", ["red", "green", "blue"]),
    ("• red\n• green", ["red", "green"]),
    ("1. red\n2. green", ["red", "green"]),
    ("red\ngreen", ["red", "green"]),
    ("", []),
])
def test_extract_list(text, items):
    assert extract_list(text) == items


def test_extract_numbered_keeps_numbers_and_first_occurrence():
    assert extract_numbered("3. c\n1. a\n1. not this") == {3: "c", 1: "a"}
    assert extract_numbered("In Chapter 3. the protagonist left") == {}
    assert extract_single("2. b\n1. a") == "a"


def test_extract_ints_and_clean_item():
    assert extract_ints("Chapter 3 and Chapter 7") == [3, 7]
    assert extract_ints("3,7,12.") == [3, 7, 12]
    assert extract_ints("version 1.5 of chapter 9") == [9]
    assert clean_item("**Rome** - visited in Chapter 4") == "Rome"
    assert clean_item("Item: gilded jade comb (bought from Selene)") == "gilded jade comb"


@pytest.mark.parametrize("text,letter", [
    ("B", "B"),
    ("(C)", "C"),
    ("B) Paris", "B"),
    ("D. The protagonist", "D"),
    ("**C**", "C"),
    ("The answer is (B).", "B"),
    ("Answer: D", "D"),
    ("The correct option is A.", "A"),
    ("Option C is correct", "C"),
    ("A merchant sold it, so the answer is C", "C"),
    ("I think it is B because of chapter 2.", "B"),
    ("A", "A"),
    ("Answer: a", None),  # lowercase "a" is an article, not a choice
    ("C and D both fit", None),  # ambiguous
    ("A merchant sold it", None),
    ("", None),
    ("E", None),
])
def test_extract_letter(text, letter):
    assert extract_letter(text) == letter


def test_extract_letter_with_more_choices():
    assert extract_letter("The answer is E", choices="ABCDE") == "E"
