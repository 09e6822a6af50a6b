"""The published sample record (DESIGN.md): one schema for every task and length."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

FIELDS = (
    "id", "task", "length", "target_tokens", "num_tokens", "tokenizer", "seed", "input",
    "context", "question", "answer", "evidence", "params", "generator_version",
)


@dataclass
class Sample:
    """What a task builds for one record; the driver adds ids, lengths and token counts.

    `evidence` holds (start, end) character spans of `input` that support the answer.
    """

    input: str
    context: str
    question: str
    answer: list[str]
    evidence: list[tuple[int, int]]
    params: dict[str, Any] = field(default_factory=dict)


def record_id(task: str, length: str, seed: int, index: int) -> str:
    return f"{task}-{length}-{seed}-{index}"


def make_record(
    *, task: str, length: str, target_tokens: int, num_tokens: int, tokenizer: str, seed: int,
    index: int, sample: Sample, generator_version: str,
) -> dict[str, Any]:
    """A record in the published field order; `params` is canonical JSON (sorted keys)."""
    return {
        "id": record_id(task, length, seed, index),
        "task": task,
        "length": length,
        "target_tokens": int(target_tokens),
        "num_tokens": int(num_tokens),
        "tokenizer": tokenizer,
        "seed": int(seed),
        "input": sample.input,
        "context": sample.context,
        "question": sample.question,
        "answer": [str(a) for a in sample.answer],
        "evidence": [{"start": int(s), "end": int(e)} for s, e in sample.evidence],
        "params": json.dumps(sample.params, sort_keys=True, separators=(",", ":")),
        "generator_version": generator_version,
    }


def features():
    """The `datasets.Features` of a record, so parquet and Hub configs share one typed schema."""
    from datasets import Features, List, Value

    return Features({
        "id": Value("string"),
        "task": Value("string"),
        "length": Value("string"),
        "target_tokens": Value("int64"),
        "num_tokens": Value("int64"),
        "tokenizer": Value("string"),
        "seed": Value("int64"),
        "input": Value("string"),
        "context": Value("string"),
        "question": Value("string"),
        "answer": List(Value("string")),
        "evidence": List({"start": Value("int64"), "end": Value("int64")}),
        "params": Value("string"),
        "generator_version": Value("string"),
    })
