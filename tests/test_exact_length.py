"""Every story sample fits its target exactly from below: target*(1-0.005) <= tokens <= target."""

from __future__ import annotations

import pytest

from sftasks.generate import generate_records
from sftasks.lengths import lower_bound, parse_length
from sftasks.tokenizers import get_tokenizer

TASKS = ["story_retrieval", "story_multihop", "story_aggregation"]
SMALL = {"story_retrieval": {"num_queries": 3}, "story_aggregation": {"chapters_in_question": 1}}


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("length,samples", [("1k", 8), ("4k", 6), ("32k", 3), ("128k", 2), ("1m", 1)])
def test_samples_fit_their_target(task, length, samples):
    target = parse_length(length)
    params = SMALL.get(task, {}) if length == "1k" else {}
    tok = get_tokenizer()
    for record in generate_records(task, length, samples=samples, seed=11, params=params):
        assert record["target_tokens"] == target
        assert lower_bound(target) <= record["num_tokens"] <= target
        assert tok.count(record["input"]) == record["num_tokens"]
        _assert_evidence_holds_the_answer(record)


def _assert_evidence_holds_the_answer(record):
    spans = [record["input"][e["start"]:e["end"]] for e in record["evidence"]]
    if record["task"] == "story_aggregation":
        assert [s.split(":")[0] for s in spans] == [f"Chapter {a}" for a in record["answer"]]
    elif record["task"] == "story_multihop":
        assert record["answer"][0] in spans[0]
    else:
        assert all(a in s for a, s in zip(record["answer"], spans, strict=True))


@pytest.mark.slow
def test_a_4m_sample_fits_its_target():
    target = parse_length("4m")
    (record,) = generate_records("story_multihop", "4m", samples=1, seed=0)
    assert lower_bound(target) <= record["num_tokens"] <= target
    assert get_tokenizer().count(record["input"]) == record["num_tokens"]
    chapters = record["context"].count("\nChapter ") + 1
    assert chapters > 20_000
    _assert_evidence_holds_the_answer(record)
