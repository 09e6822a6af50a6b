"""Scorers of qa_squad (F1 / exact match) and qa_quality / qa_toefl (option letters) on realistic outputs."""

import pytest

from sftasks.scorers.base import get_scorer, score_record
from sftasks.scorers.qa import chosen_letters, token_f1

SQUAD = {"id": "qa_squad-8k-0-0", "task": "qa_squad", "question": "Question about document 3:\nWho built the bridge?",
         "answer": ["the Roman engineers", "Roman engineers", "Romans"]}
QUESTION = ("Question about document 7:\nwhy does the student visit the office?\nA. to pay a fee\n"
            "B. to ask about a class\nC. to return a book\nD. to meet a friend")
ONE = {"id": "qa_quality-8k-0-0", "task": "qa_quality", "question": QUESTION, "answer": ["B"]}
MANY = {"id": "qa_toefl-8k-0-1", "task": "qa_toefl", "question": QUESTION, "answer": ["A", "D"]}

SQUAD_TABLE = [
    ("<explanation>Document 3 says so.</explanation>\n<answer>Roman engineers</answer>", 1.0, 1.0, True),
    ("<answer>\nThe Roman engineers.\n</answer>", 1.0, 1.0, True),
    ("<answer>**Romans**</answer>", 1.0, 1.0, True),
    ("The answer is Romans", 1.0, 1.0, True),
    ("<answer>Roman engineers and slaves</answer>", 2 / 3, 0.0, True),  # P = 2/4, R = 2/2
    ("<answer>engineers</answer>", 2 / 3, 0.0, True),  # P = 1, R = 1/2 against "Roman engineers"
    ("<answer>Greek architects</answer>", 0.0, 0.0, True),
    ("<answer>\nRoman engineers\nThey built it in 100 AD.\n</answer>", 1.0, 1.0, True),
    ("I don't know.", 0.0, 0.0, True),
    ("", 0.0, 0.0, False),
    ("<answer>   </answer>", 0.0, 0.0, False),
    ("<think>Hmm, Greeks?</think>Answer: the romans", 1.0, 1.0, True),
]

CHOICE_TABLE = [  # (output, score for gold B, score for gold AD, parsed)
    ("<explanation>The student asks about a class.</explanation>\n<answer>B</answer>", 1.0, 0.0, True),
    ("<answer>(B)</answer>", 1.0, 0.0, True),
    ("<answer>B) to ask about a class</answer>", 1.0, 0.0, True),
    ("The answer is B.", 1.0, 0.0, True),
    ("**Answer: B**", 1.0, 0.0, True),
    ("<answer>AD</answer>", 0.0, 1.0, True),
    ("<answer>A, D</answer>", 0.0, 1.0, True),
    ("<answer>A and D</answer>", 0.0, 1.0, True),
    ("<answer>D</answer>", 0.0, 0.0, True),  # only one of two correct letters
    ("<answer>ABD</answer>", 0.0, 0.0, True),
    ("I am not sure which option is right.", 0.0, 0.0, False),
    ("", 0.0, 0.0, False),
    ("<answer>E</answer>", 0.0, 0.0, False),  # no option E
]


def test_squad_table():
    scorer = get_scorer("qa_squad")
    assert len(SQUAD_TABLE) >= 10
    for output, f1, exact, parsed in SQUAD_TABLE:
        score = scorer(output, SQUAD)
        assert (score.value, score.metrics["exact_match"], score.parsed) == (pytest.approx(f1), exact, parsed), output
        assert score.metrics["f1"] == score.value


def test_token_f1_matches_squad_definition():
    assert token_f1("Roman engineers and slaves", "the Roman engineers") == pytest.approx(2 * 0.5 * 1 / 1.5)
    assert token_f1("the the cat", "cat") == pytest.approx(1.0)  # articles dropped
    assert token_f1("cat cat", "cat") == pytest.approx(2 * 0.5 * 1 / 1.5)  # bags, not sets
    assert token_f1("", "") == 1.0 and token_f1("x", "") == 0.0


@pytest.mark.parametrize("record,column", [(ONE, 1), (MANY, 2)])
def test_choice_table(record, column):
    scorer = get_scorer(record["task"])
    assert len(CHOICE_TABLE) >= 10
    for row in CHOICE_TABLE:
        score = scorer(row[0], record)
        assert (score.value, score.parsed) == (row[column], row[3]), row[0]


def test_letters_are_limited_to_the_question_options():
    assert chosen_letters("AB", "ABCD") == {"A", "B"}
    assert chosen_letters("F", "ABCDEF") == {"F"}
    assert chosen_letters("F", "ABCD") is None


def test_missing_prediction_is_unparsed_zero():
    for record in (SQUAD, ONE, MANY):
        score = score_record(None, record)
        assert score.value == 0.0 and not score.parsed
