"""Gold loading for `sftasks score`, and hand-built gold records shared by the scoring test modules.

Records are built with `sftasks.records.make_record` (not the story generators) so these tests do not
depend on generator output.
"""

import json
import sys
import types

import pytest

from sftasks.errors import DataError, InputError
from sftasks.io import write_jsonl, write_parquet
from sftasks.records import Sample, make_record
from sftasks.scorers.gold import load_gold

GOLD_ANSWERS = {
    "story_retrieval": ["Rome", "Selene", "ancient bronze amulet"],
    "story_multihop": ["ornate jade comb"],
    "story_aggregation": ["3", "7", "12"],
}
PERFECT = {
    "story_retrieval": "<answer>\n1. Rome\n2. Selene\n3. ancient bronze amulet\n</answer>",
    "story_multihop": "<answer>ornate jade comb</answer>",
    "story_aggregation": "<answer>3, 7, 12</answer>",
}
META = {"method": "dense", "model": "tiny", "params": {}, "sparsity": 0.0, "code_version": "0.1.0",
        "contact": "someone@example.org"}


def gold_record(task, index, answer=None, length="4k", seed=0):
    """A record with the published schema; the secret answer defaults to the task's example answer."""
    sample = Sample(input=f"story {index} ...", context=f"story {index}", question="question?",
                    answer=list(GOLD_ANSWERS[task] if answer is None else answer), evidence=[(0, 5)],
                    params={"num_queries": 3})
    target = {"4k": 4096, "8k": 8192}[length]
    return make_record(task=task, length=length, target_tokens=target, num_tokens=target - 3, tokenizer="qwen2.5",
                       seed=seed, index=index, sample=sample, generator_version="test-1")


def write_gold(root, records, fmt="parquet", name="test"):
    """`root/TASK/LENGTH/test.FMT`, the layout `sftasks generate` writes."""
    by_folder = {}
    for r in records:
        by_folder.setdefault((r["task"], r["length"]), []).append(r)
    for (task, length), rows in by_folder.items():
        path = root / task / length / f"{name}.{fmt}"
        (write_parquet if fmt == "parquet" else write_jsonl)(path, rows)
    return root


def write_predictions(path, predictions, meta=META):
    """A predictions file: meta line, then one {"id", "prediction"} line per item of `predictions`."""
    rows = ([{"meta": meta}] if meta is not None else []) + [{"id": i, "prediction": p} for i, p in predictions.items()]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_folder_of_parquet_and_jsonl_with_length_filter(tmp_path):
    records = [gold_record("story_multihop", i, length=length) for i in range(3) for length in ("4k", "8k")]
    write_gold(tmp_path, [r for r in records if r["length"] == "4k"], "parquet")
    write_gold(tmp_path, [r for r in records if r["length"] == "8k"], "jsonl")
    loaded = load_gold(str(tmp_path))
    assert sorted(r["id"] for r in loaded) == sorted(r["id"] for r in records)
    assert all("input" not in r and "context" not in r for r in loaded), "long columns are never read"
    only = load_gold(str(tmp_path), length="8192")
    assert {r["length"] for r in only} == {"8k"} and len(only) == 3
    assert only[0]["answer"] == ["ornate jade comb"]


def test_hub_style_folder_prefers_the_split_files(tmp_path):
    test_rows = [gold_record("story_aggregation", i) for i in range(2)]
    train_rows = [gold_record("story_aggregation", i, seed=9) for i in range(2)]
    write_parquet(tmp_path / "story_aggregation" / "4k" / "test-00000-of-00001.parquet", test_rows)
    write_parquet(tmp_path / "story_aggregation" / "4k" / "train-00000-of-00001.parquet", train_rows)
    assert sorted(r["id"] for r in load_gold(str(tmp_path))) == sorted(r["id"] for r in test_rows)
    assert sorted(r["id"] for r in load_gold(str(tmp_path), split="train")) == sorted(r["id"] for r in train_rows)


@pytest.mark.parametrize("case,message", [
    ("duplicate", "appears twice"),
    ("hidden", "no answers"),
    ("not_records", "not a records file"),
    ("empty", "no .parquet or .jsonl"),
    ("wrong_length", "no gold records of length 64k"),
])
def test_bad_gold_is_refused_with_a_clear_error(tmp_path, case, message):
    length = None
    if case == "duplicate":
        record = gold_record("story_multihop", 0)
        write_jsonl(tmp_path / "a" / "test.jsonl", [record])
        write_jsonl(tmp_path / "b" / "test.jsonl", [record])
    elif case == "hidden":
        write_gold(tmp_path, [gold_record("story_multihop", 0, answer=[])])
    elif case == "not_records":
        write_jsonl(tmp_path / "test.jsonl", [{"id": "x", "prediction": "y"}])
    elif case == "wrong_length":
        write_gold(tmp_path, [gold_record("story_multihop", 0)])
        length = "64k"
    with pytest.raises(DataError, match=message):
        load_gold(str(tmp_path), length=length)


def test_hidden_split_is_enough_for_checking_ids(tmp_path):
    write_gold(tmp_path, [gold_record("story_multihop", 0, answer=[])])
    assert [r["id"] for r in load_gold(str(tmp_path), require_answers=False)] == ["story_multihop-4k-0-0"]


def test_a_name_goes_to_sftasks_load_dataset_lazily(monkeypatch):
    from datasets import Dataset

    calls = []

    def fake_load_dataset(name, length=None, split="test"):
        calls.append((name, length, split))
        return Dataset.from_list([gold_record("story_multihop", 0)])

    monkeypatch.setitem(sys.modules, "sftasks.hub", types.SimpleNamespace(load_dataset=fake_load_dataset))
    rows = load_gold("someorg/sftasks-story", length="4k")
    assert calls == [("someorg/sftasks-story", "4k", "test")]
    assert rows[0]["id"] == "story_multihop-4k-0-0" and "input" not in rows[0]


def test_a_name_without_the_hub_module_says_what_to_pass(monkeypatch):
    monkeypatch.setitem(sys.modules, "sftasks.hub", None)  # import of sftasks.hub fails
    with pytest.raises(InputError, match="not a folder or file"):
        load_gold("no/such-folder-or-dataset")
