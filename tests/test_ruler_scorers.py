"""Scorers of ruler_niah, ruler_vt, ruler_cwe on realistic model outputs (tables of expected scores)."""

import pytest

from sftasks.generate import generate_records
from sftasks.scorers.base import get_scorer, score_record


@pytest.fixture(scope="module")
def niah():
    return next(generate_records("ruler_niah", "2k", seed=5))


@pytest.fixture(scope="module")
def vt():
    return next(generate_records("ruler_vt", "2k", seed=5))


@pytest.fixture(scope="module")
def cwe():
    return next(generate_records("ruler_cwe", "4k", seed=5))


def _niah_outputs(record):
    import json

    keys, values = json.loads(record["params"])["keys"], record["answer"]
    wrong = "aaaaaaaa-bbbbbbbb-cccccccc-dddddddd"
    listed = "\n".join(f"{i}. {k}: {v}" for i, (k, v) in enumerate(zip(keys, values), 1))
    sentences = "\n".join(f"{i}. The value of key {k} is {v}." for i, (k, v) in enumerate(zip(keys, values), 1))
    return [
        (f"<explanation>I searched the text.</explanation>\n<answer>\n{listed}\n</answer>", 1.0, True),
        (f"<answer>\n{sentences}\n</answer>", 1.0, True),
        # Tags eaten by a stop string, values only, numbered.
        ("Here are the values:\n" + "\n".join(f"{i}. {v}" for i, v in enumerate(values, 1)), 1.0, True),
        # Values in the wrong order but each next to its key: still right.
        ("<answer>\n" + "\n".join(f"- {k} -> {v}" for k, v in reversed(list(zip(keys, values)))) + "\n</answer>",
         1.0, True),
        # One value wrong.
        ("<answer>\n" + listed.replace(values[2], wrong) + "\n</answer>", 0.75, True),
        # Only the first two keys answered.
        ("<answer>\n" + "\n".join(listed.splitlines()[:2]) + "\n</answer>", 0.5, True),
        # Values without keys, in the wrong order: matched by position, so wrong.
        ("<answer>\n" + "\n".join(reversed(values)) + "\n</answer>", 0.0, True),
        # Upper-case copy of the values (normalised).
        ("<answer>\n" + listed.upper() + "\n</answer>", 1.0, True),
        ("I could not find any of these keys in the text.", 0.0, False),
        ("", 0.0, False),
        # A distractor's value for the first key, the rest right.
        ("<answer>\n" + listed.replace(values[0], wrong) + "\n</answer>", 0.75, True),
    ]


def _vt_outputs(record):
    gold = record["answer"]
    return [
        ("<answer>\n" + " ".join(gold) + "\n</answer>", 1.0, True),
        ("<answer>" + ", ".join(f"VAR {g}" for g in gold) + "</answer>", 1.0, True),
        ("<answer>\n" + "\n".join(f"{i}. {g}" for i, g in enumerate(gold, 1)) + "\n</answer>", 1.0, True),
        ("<answer>" + " ".join(gold[:3]) + "</answer>", 0.6, True),
        ("<answer>" + " ".join(gold[:1] + ["QQQQQ", "ZZZZZ"]) + "</answer>", 0.2, True),
        ("The variables are " + " ".join(gold[::-1]) + ".", 1.0, True),
        ("<think>VAR " + gold[0] + " = 1</think><answer>" + gold[1] + "</answer>", 0.2, True),
        ("<answer>none</answer>", 0.0, False),
        ("", 0.0, False),
        ("<answer>" + " ".join(gold).lower() + "</answer>", 0.0, False),
        ("**Answer:** " + " ".join(gold), 1.0, True),
    ]


def _cwe_outputs(record):
    gold = record["answer"]
    numbered = "\n".join(f"{i}. {w}" for i, w in enumerate(gold, 1))
    return [
        (f"<answer>\n{numbered}\n</answer>", 1.0, True),
        ("<answer>" + ", ".join(gold) + "</answer>", 1.0, True),
        ("<answer>\n" + "\n".join(f"{i}. **{w.capitalize()}** (30 times)" for i, w in enumerate(gold, 1)) + "\n</answer>",
         1.0, True),
        ("<answer>\n" + "\n".join(f"{i}. {w}" for i, w in enumerate(gold[:7] + ["zzyzx", "qwop", "blorf"], 1))
         + "\n</answer>", 0.7, True),
        # Extra words after the first ten do not count.
        ("<answer>\n" + "\n".join(f"{i}. {w}" for i, w in enumerate(["zzyzx"] * 1 + gold, 1)) + "\n</answer>", 0.9, True),
        ("<answer>\n" + "\n".join(f"- {w}" for w in gold[:5]) + "\n</answer>", 0.5, True),
        ("The most common words are " + ", ".join(gold[:9]) + " and " + gold[9] + ".", 1.0, True),
        # Duplicates count once.
        ("<answer>\n" + "\n".join(f"{i}. {w}" for i, w in enumerate([gold[0]] * 10, 1)) + "\n</answer>", 0.1, True),
        ("<answer></answer>", 0.0, False),
        ("", 0.0, False),
        ("<answer>\n" + numbered + "\n", 1.0, True),  # unclosed tag
    ]


@pytest.mark.parametrize("family", ["niah", "vt", "cwe"])
def test_scorer_tables(family, request):
    record = request.getfixturevalue(family)
    table = {"niah": _niah_outputs, "vt": _vt_outputs, "cwe": _cwe_outputs}[family](record)
    assert len(table) >= 10
    scorer = get_scorer(record["task"])
    for output, value, parsed in table:
        score = scorer(output, record)
        assert (score.value, score.parsed) == (pytest.approx(value), parsed), output
        assert 0.0 <= score.value <= 1.0


def test_missing_prediction_scores_zero_unparsed(niah, vt, cwe):
    for record in (niah, vt, cwe):
        score = score_record(None, record)
        assert score.value == 0.0 and not score.parsed


def test_vt_reports_precision_and_iou(vt):
    gold = vt["answer"]
    score = get_scorer("ruler_vt")("<answer>" + " ".join(gold + ["QQQQQ"] * 1 + ["ZZZZZ"]) + "</answer>", vt)
    assert score.value == 1.0
    assert score.metrics["precision"] == pytest.approx(len(gold) / (len(gold) + 2))
    assert score.metrics["iou"] == pytest.approx(len(gold) / (len(gold) + 2))
