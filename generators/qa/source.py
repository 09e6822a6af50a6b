"""QA source data: load SQuAD-, QuALITY- and TOEFL-shaped data from the Hub or a local file/folder,
and normalise it to documents plus questions.

Accepted shapes (detected from the columns, so Hub exports and the paper's files both work):
- SQuAD: official JSON (`data` / `paragraphs` / `qas`) or flat rows `context, question, answers`
  (`answers` a dict with `text`, a list of dicts or of strings); unanswerable questions are dropped.
- QuALITY: flat rows `article, question, options, gold_label` (1-based), or per-article rows
  `article, questions` (a list of `{question, options, gold_label}` or parallel lists).
- The paper's JSONL (TOEFL, QuALITY): `context, questions, answer` with the options inside the
  question text (`... Options: A.xxx B.yyy`) and letters as answers (`"B"`, `"AD"`).
- L-Eval's exam files: `input, instructions, outputs`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from sftasks.errors import DataError, InputError

LETTERS = "ABCDEFGH"
_SUFFIXES = (".json", ".jsonl", ".parquet")


@dataclass(frozen=True)
class Item:
    """One question about one document: options are empty for open questions; answers are the
    acceptable answer strings (open) or the correct option letters (multiple choice)."""

    document: int
    question: str
    options: tuple[str, ...]
    answers: tuple[str, ...]


@dataclass
class Source:
    documents: list[str]
    items: list[Item]
    origin: dict[str, str] = field(default_factory=dict)
    # Token counts and question pools per tokenizer, computed once per loaded source.
    cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def multiple_correct(self) -> bool:
        return any(len(i.answers) > 1 for i in self.items if i.options)


def is_path(spec: str) -> bool:
    return os.path.exists(spec) or spec.startswith((".", "/", "~")) or spec.endswith(_SUFFIXES)


@functools.lru_cache(maxsize=4)
def load_source(spec: str, hub_default: tuple[str, str | None, str], kind: str) -> Source:
    """Documents and questions from `spec` (a local path, a Hub `NAME[:CONFIG]`, or "" for `hub_default`)."""
    if spec and is_path(spec):
        path = Path(spec).expanduser()
        if not path.exists():
            raise InputError(f"source {spec!r} does not exist: pass --source PATH (or --param source=PATH) to a "
                             ".jsonl/.json/.parquet file or folder")
        rows, origin = _read_local(path)
    else:
        rows, origin = _read_hub(spec, hub_default, kind)
    source = _normalise(rows, kind)
    if not source.items:
        raise DataError(f"no usable {kind} questions in {origin['source']}: check that it has the columns "
                        "of SQuAD, QuALITY or the paper's TOEFL file")
    source.origin = origin
    return source


def _read_local(path: Path) -> tuple[list[dict], dict[str, str]]:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix in _SUFFIXES and p.is_file())
    if not files:
        raise InputError(f"no .json, .jsonl or .parquet files in {path}")
    digest = hashlib.sha256()
    rows: list[dict] = []
    for file in files:
        data = file.read_bytes()
        digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode() + b"\0" + data)
        try:
            rows += _parse(file, data)
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"cannot read {file}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    return rows, {"source": path.name, "source_sha256": digest.hexdigest()}


def _parse(file: Path, data: bytes) -> list[dict]:
    if file.suffix == ".parquet":
        import io

        import pyarrow.parquet as pq

        return pq.read_table(io.BytesIO(data)).to_pylist()
    text = data.decode("utf-8")
    if file.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    loaded = json.loads(text)
    if isinstance(loaded, dict) and "data" in loaded:
        return _squad_official(loaded["data"])
    return loaded if isinstance(loaded, list) else [loaded]


def _squad_official(articles: list[dict]) -> list[dict]:
    return [{"context": p["context"], "question": qa["question"], "answers": qa.get("answers", []),
             "is_impossible": qa.get("is_impossible", False)}
            for article in articles for p in article["paragraphs"] for qa in p["qas"]]


def _read_hub(spec: str, hub_default: tuple[str, str | None, str], kind: str) -> tuple[list[dict], dict[str, str]]:
    name, config, split = hub_default
    if spec:
        name, _, config = spec.partition(":")
        config = config or None
    how = f"download it and pass --source /path/to/{kind}.jsonl (or --param source=PATH; a folder works too)"
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        raise DataError(f"the {kind} source {name!r} is on the Hugging Face Hub but HF_HUB_OFFLINE is set: {how}")
    try:
        from huggingface_hub import HfApi

        revision = HfApi().dataset_info(name, timeout=10).sha
        import datasets

        rows = datasets.load_dataset(name, config, split=split, revision=revision).to_list()
    except Exception as exc:  # network, missing dataset, bad config: all end the same way for the user
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
        raise DataError(f"cannot load the {kind} source {name!r} from the Hugging Face Hub ({first}); {how}") from None
    return rows, {"source": name + (f":{config}" if config else ""), "source_revision": revision or ""}


def _normalise(rows: list[dict], kind: str) -> Source:
    documents: dict[str, int] = {}
    items: dict[tuple[int, str], Item] = {}

    def add(document: str, question: str, options, answers) -> None:
        document, question = document.strip(), " ".join(str(question).split())
        answers = tuple(a for a in (str(a).strip() for a in answers) if a)
        if not document or not question or not answers:
            return
        index = documents.setdefault(document, len(documents))
        items.setdefault((index, question.lower()), Item(index, question, tuple(options), answers))

    for row in rows:
        for document, question, options, answers in _row_items(row):
            add(document, question, options, answers)
    return Source(list(documents), list(items.values()))


def _row_items(row: dict):
    """(document, question, options, answers) tuples of one row of any accepted shape."""
    if "qas" in row:  # a SQuAD paragraph that slipped through as a row
        for r in _squad_official([{"paragraphs": [row]}]):
            yield from _row_items(r)
    elif "answers" in row and "context" in row:  # SQuAD flat
        if not row.get("is_impossible"):
            yield row["context"], row["question"], (), _answer_texts(row["answers"])
    elif "article" in row and "question" in row:  # QuALITY, one question per row
        yield row["article"], row["question"], tuple(row["options"]), _gold_letters(row["gold_label"])
    elif "article" in row and "questions" in row:  # QuALITY, one article per row
        questions = row["questions"]
        if questions and isinstance(questions[0], dict):
            for q in questions:
                yield row["article"], q["question"], tuple(q["options"]), _gold_letters(q["gold_label"])
        else:
            labels = row.get("gold_label", row.get("gold_labels"))
            for q, options, label in zip(questions, row["options"], labels):
                yield row["article"], q, tuple(options), _gold_letters(label)
    elif "context" in row and "questions" in row:  # the paper's JSONL
        for q, answer in zip(row["questions"], row["answer"]):
            yield (row["context"], *split_options(q), tuple(_letters(answer)))
    elif "input" in row and "instructions" in row:  # L-Eval exams
        for q, answer in zip(row["instructions"], row["outputs"]):
            yield (row["input"], *split_options(q), tuple(_letters(answer)))


def _answer_texts(answers) -> list[str]:
    if isinstance(answers, dict):
        return list(answers.get("text", []))
    return [a["text"] if isinstance(a, dict) else a for a in answers]


def _gold_letters(label) -> tuple[str, ...]:
    return (LETTERS[int(label) - 1],)


def _letters(answer: str) -> list[str]:
    return sorted(set(re.findall(r"[A-H]", str(answer).upper().replace("ANSWER", ""))))


def split_options(question: str) -> tuple[str, tuple[str, ...]]:
    """`"Question: why? Options: A.x B.y"` -> ("why?", ("x", "y")); letters must follow in order."""
    text = re.sub(r"^\s*Question\s*:\s*", "", question.strip())
    head, sep, rest = text.partition("Options:")
    if not sep:
        return text, ()
    starts, position = [], 0
    for letter in LETTERS:
        match = re.compile(rf"(?:^|\s){letter}\s*[.)]").search(rest, position)
        if not match:
            break
        starts.append((match.start(), match.end()))
        position = match.end()
    if len(starts) < 2:
        return text, ()
    options = [rest[s[1]: (starts[i + 1][0] if i + 1 < len(starts) else len(rest))].strip()
               for i, s in enumerate(starts)]
    return head.strip(), tuple(options)
