"""The three story tasks: records, evidence, knobs, smallest lengths, determinism, other tokenizers."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from sftasks.errors import InputError, LengthError
from sftasks.generate import generate_records
from sftasks.lengths import lower_bound
from sftasks.generators.story.checker import derive_answer
from sftasks.tasks import get_task, sample_rng, task_names
from sftasks.tokenizers import HFTokenizer, get_tokenizer

TASKS = ["story_retrieval", "story_multihop", "story_aggregation"]
KNOBS = {"story_retrieval": "num_queries", "story_multihop": "hops", "story_aggregation": "chapters_in_question"}


def test_tasks_are_registered_with_their_knobs():
    import sftasks.generators.story  # noqa: F401

    assert set(TASKS) <= set(task_names())
    assert get_task("story_retrieval").make_params().num_queries == 16
    assert get_task("story_multihop").make_params().hops == 1
    assert get_task("story_aggregation").make_params().chapters_in_question == 3


@pytest.mark.parametrize("task", TASKS)
def test_record_parts_answer_and_evidence(task):
    for record in generate_records(task, "8k", samples=4, seed=5):
        text, context, question = record["input"], record["context"], record["question"]
        assert text.count(context) == 1 and text.count(question) == 2  # asked before and after the story
        start = text.index(context)
        assert text.index(question) < start < text.rindex(question)
        assert "<answer>" in text and "</answer>" in text
        assert record["evidence"] and all(start <= e["start"] < e["end"] <= start + len(context)
                                          for e in record["evidence"])
        spans = [text[e["start"]:e["end"]] for e in record["evidence"]]
        params = json.loads(record["params"])
        if task == "story_retrieval":
            assert len(record["answer"]) == len(spans) == params["num_queries"] == 16
            assert all(answer in span for answer, span in zip(record["answer"], spans))
            assert len(set(record["answer"])) == 16
        elif task == "story_multihop":
            (answer,) = record["answer"]
            asked = question.split("acquiring the ")[1].split("?")[0]
            assert len(spans) == params["hops"] + 1
            assert answer in spans[0] and asked in spans[-1] and asked in question
        else:
            assert len(record["answer"]) == len(spans) == params["chapters_in_question"]
            assert [int(a) for a in record["answer"]] == sorted(int(a) for a in record["answer"])
            for answer, span in zip(record["answer"], spans):
                assert span.startswith(f"Chapter {answer}:\n") and " bought " not in span


@pytest.mark.parametrize("task,knob,value", [
    ("story_retrieval", "num_queries", 40), ("story_multihop", "hops", 4),
    ("story_aggregation", "chapters_in_question", 7),
])
def test_knobs_change_the_question(task, knob, value):
    (record,) = generate_records(task, "16k", samples=1, seed=2, params={knob: value})
    assert json.loads(record["params"]) == {knob: value}
    if task == "story_retrieval":
        assert len(record["answer"]) == 40 and record["question"].count("\n") == 39
    elif task == "story_multihop":
        assert "4 purchases before" in record["question"] and len(record["evidence"]) == 5
    else:
        assert len(record["answer"]) == 7 and "Exactly 7 chapters" in record["question"]


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("bad", [0, -3, "abc", "1.5", True, 2.5, None])
def test_bad_knob_values_are_input_errors(task, bad):
    with pytest.raises(InputError):
        get_task(task).make_params({KNOBS[task]: bad})


def test_unknown_knob_is_an_input_error():
    with pytest.raises(InputError, match="unknown parameter"):
        list(generate_records("story_multihop", "4k", params={"hop": 2}))


@pytest.mark.parametrize("task,knobs", [
    ("story_retrieval", {}), ("story_retrieval", {"num_queries": 64}), ("story_multihop", {"hops": 20}),
    ("story_aggregation", {}), ("story_aggregation", {"chapters_in_question": 12}),
])
def test_smallest_length_is_named_and_really_works(task, knobs):
    spec = get_task(task)
    tok = get_tokenizer()
    smallest = spec.min_tokens(spec.make_params(knobs), tok)
    with pytest.raises(LengthError, match=f"smallest length that works is {smallest} tokens"):
        list(generate_records(task, smallest - 1, params=knobs))
    for record in generate_records(task, smallest, samples=6, seed=1, params=knobs):
        assert lower_bound(smallest) <= record["num_tokens"] <= smallest


def test_lengths_beyond_the_name_pools_are_refused_before_any_work():
    with pytest.raises(LengthError, match="unique names"):
        next(generate_records("story_multihop", "64m"))


def test_default_retrieval_at_1k_is_refused_but_fits_4k():
    with pytest.raises(LengthError, match="smallest length that works"):
        list(generate_records("story_retrieval", "1k"))
    (record,) = generate_records("story_retrieval", "4k")
    assert len(record["answer"]) == 16


_DUMP = """
import json, sys
from sftasks.generate import generate_records
for task in {tasks!r}:
    for length in ("1k", "8k", "64k"):
        params = {{"num_queries": 3}} if (task, length) == ("story_retrieval", "1k") else \\
                 {{"chapters_in_question": 1}} if (task, length) == ("story_aggregation", "1k") else {{}}
        for record in generate_records(task, length, samples=2, seed=7, params=params):
            sys.stdout.write(json.dumps(record, sort_keys=True) + "\\n")
"""


def test_records_are_byte_identical_across_processes():
    outputs = []
    for hash_seed in ("1", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        result = subprocess.run([sys.executable, "-c", _DUMP.format(tasks=TASKS)], env=env,
                                capture_output=True, text=True, check=True)
        outputs.append(result.stdout)
    assert outputs[0] == outputs[1] and outputs[0].count("\n") == 18
    records = [json.loads(line) for line in outputs[0].splitlines()]
    assert len({r["input"] for r in records}) == 18  # different samples differ


def _train(texts, pre_tokenizer, folder):
    from tokenizers import Tokenizer, models, trainers

    backend = Tokenizer(models.BPE(unk_token="[UNK]"))
    if pre_tokenizer is not None:
        backend.pre_tokenizer = pre_tokenizer
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=["[UNK]"], show_progress=False)
    backend.train_from_iterator(texts, trainer)
    backend.save(str(folder / "tokenizer.json"))
    return HFTokenizer(str(folder), Tokenizer.from_file(str(folder / "tokenizer.json")))


@pytest.fixture(scope="module")
def story_texts():
    return [r["input"] for r in generate_records("story_multihop", "8k", samples=2, seed=9)]


@pytest.fixture(scope="module")
def byte_level_bpe(tmp_path_factory, story_texts):
    """A small byte-level BPE with a GPT-2 style pre-tokenizer (pieces add up, like Qwen's)."""
    from tokenizers import pre_tokenizers

    return _train(story_texts, pre_tokenizers.ByteLevel(add_prefix_space=False), tmp_path_factory.mktemp("bl"))


@pytest.fixture(scope="module")
def odd_bpe(tmp_path_factory, story_texts):
    """A small BPE without a pre-tokenizer: merges cross word boundaries, piece counts do not add up."""
    return _train(story_texts, None, tmp_path_factory.mktemp("odd"))


@pytest.mark.parametrize("task", TASKS)
def test_other_tokenizers_fit_exactly(task, byte_level_bpe, odd_bpe):
    spec = get_task(task)
    params = spec.make_params()
    for tok in (byte_level_bpe, odd_bpe):
        for target in (spec.min_tokens(params, tok), 8192, 40000):
            sample = spec.build(target, sample_rng(task, target, 0, 0), tok, params)
            assert lower_bound(target) <= sample.num_tokens == tok.count(sample.input) <= target
            assert derive_answer(sample.input) == sample.answer
