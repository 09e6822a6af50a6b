"""Scorer registry, normalisation, and properties that must hold for any model output."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_scoring_gold import GOLD_ANSWERS, PERFECT, gold_record

from sftasks.errors import InputError
from sftasks.scorers.base import Score, get_scorer, register_scorer, score_record, scorer_names
from sftasks.scorers.normalize import exact_match, fuzzy_score, normalize_answer

STORY_TASKS = sorted(GOLD_ANSWERS)
PROPERTY_SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,  # same examples in every CI run
                             suppress_health_check=[HealthCheck.too_slow])

# Text that looks like model output: tags, numbering, markdown, digits, unicode, control characters.
model_text = st.lists(
    st.one_of(
        st.text(max_size=30),
        st.sampled_from(["<answer>", "</answer>", "<think>", "</think>", "\n", "1. ", "2) ", "3: ", "**",
                         "Chapter ", " and ", ", ", "Answer: ", "the ", "(", ")", "- ", "None", "\x00", "é"]),
        st.integers(min_value=-5, max_value=10**20).map(str),
    ),
    max_size=25,
).map("".join)


def test_story_scorers_are_registered():
    assert set(STORY_TASKS) <= set(scorer_names())


def test_unknown_task_is_a_clear_error():
    with pytest.raises(InputError, match="no scorer for task 'nope'"):
        get_scorer("nope")


def test_registering_a_scorer_makes_it_available():
    @register_scorer("test_only_task")
    def score(prediction, record):
        return Score(1.0 if prediction == record["answer"][0] else 0.0, True, {})

    assert get_scorer("test_only_task") is score
    assert score_record("x", {"task": "test_only_task", "answer": ["x"]}).value == 1.0


@pytest.mark.parametrize("task", STORY_TASKS)
def test_missing_prediction_scores_zero_unparsed_with_the_same_metric_names(task):
    record = gold_record(task, 0)
    missing = score_record(None, record)
    perfect = score_record(PERFECT[task], record)
    assert (missing.value, missing.parsed) == (0.0, False)
    assert set(missing.metrics) == set(perfect.metrics), "every sample reports the same metrics"


@pytest.mark.parametrize("raw,normal", [
    ("The Ancient Bronze Amulet.", "ancient bronze amulet"),
    ("  **Rome**  ", "rome"),
    ("U.S.A.", "usa"),
    ("an apple and a pear", "apple and pear"),
    ("Théâtre  «Grand»", "théâtre grand"),
    ("ＲＯＭＥ", "rome"),  # full-width letters (NFKC)
    ("the", ""),
])
def test_normalize_answer(raw, normal):
    assert normalize_answer(raw) == normal


def test_exact_match_and_fuzzy_are_distinct():
    assert exact_match("the Rome.", "rome") and not exact_match(None, "rome")
    assert fuzzy_score("rome", "Rome") == 1.0 and fuzzy_score(None, "rome") == 0.0
    assert 0.0 < fuzzy_score("romes", "rome") < 1.0 and not exact_match("romes", "rome")


@pytest.mark.parametrize("task", STORY_TASKS)
@PROPERTY_SETTINGS
@given(text=model_text)
def test_scoring_never_raises_and_stays_in_range(task, text):
    score = score_record(text, gold_record(task, 0))
    assert 0.0 <= score.value <= 1.0
    assert isinstance(score.parsed, bool)
    if not score.parsed:
        assert score.value == 0.0
    assert all(0.0 <= v <= 1.0 for v in score.metrics.values())


@PROPERTY_SETTINGS
@given(text=st.text(max_size=200))
def test_scoring_never_raises_on_arbitrary_unicode(text):
    for task in STORY_TASKS:
        assert 0.0 <= score_record(text, gold_record(task, 0)).value <= 1.0


item_words = st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1,
                              max_size=10).filter(lambda w: w.lower() not in ("a", "an", "the", "and")),
                      min_size=1, max_size=4).map(" ".join)


@PROPERTY_SETTINGS
@given(answers=st.lists(item_words, min_size=1, max_size=8),
       style=st.sampled_from(["{i}. {a}", "{i}) {a}", "{i}: {a}", "**{i}.** {a}"]),
       tags=st.booleans())
def test_perfect_retrieval_prediction_scores_one(answers, style, tags):
    body = "\n".join(style.format(i=i, a=a) for i, a in enumerate(answers, 1))
    prediction = f"<answer>\n{body}\n</answer>" if tags else body
    score = score_record(prediction, gold_record("story_retrieval", 0, answer=answers))
    assert score.parsed and score.value == 1.0


@PROPERTY_SETTINGS
@given(item=item_words, style=st.sampled_from(["<answer>{a}</answer>", "<answer>**{a}**</answer>",
                                                "Answer: {a}", "<answer>\n{a}\n</answer>\nBecause."]))
def test_perfect_multihop_prediction_scores_one(item, style):
    score = score_record(style.format(a=item), gold_record("story_multihop", 0, answer=[item]))
    assert score.parsed and score.value == 1.0


@PROPERTY_SETTINGS
@given(chapters=st.sets(st.integers(min_value=1, max_value=500), min_size=1, max_size=30),
       style=st.sampled_from(["{n}", "Chapter {n}"]), sep=st.sampled_from([", ", " and ", "\n", "; "]))
def test_perfect_aggregation_prediction_scores_one(chapters, style, sep):
    gold = [str(c) for c in sorted(chapters)]
    prediction = "<answer>" + sep.join(style.format(n=c) for c in sorted(chapters, reverse=True)) + "</answer>"
    score = score_record(prediction, gold_record("story_aggregation", 0, answer=gold))
    assert score.parsed and score.value == 1.0
    assert score.metrics["precision"] == 1.0 and score.metrics["recall"] == 1.0


@pytest.mark.parametrize("text", [
    "<answer>" * 8000, "<think>" * 8000, "<answer>" * 8000 + "x</answer>", "**" + "a" * 65000, "1" * 65000,
    "1. " * 20000, "(" * 65000, "answer: " * 8000, "1. a\n" * 13000,
], ids=["opens", "thinks", "opens-close", "stars", "digit-run", "markers", "parens", "labels", "lines"])
def test_adversarial_64k_outputs_are_scored_not_crashed(text):
    """Submissions are untrusted and predictions may be 64 KiB: no crash (huge digit runs, tag soup)."""
    for task in STORY_TASKS:
        assert score_record(text, gold_record(task, 0)).value == 0.0
