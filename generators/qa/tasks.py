"""`qa_squad`, `qa_quality`, `qa_toefl`: one question about one document, hidden among other
documents of the same dataset until the length is filled; the question names the document's number.

The same questions appear at every length: the pool is the source's questions whose own prompt
(frame plus their document alone) fits `base_length`, in source order, and sample `index` of a seed
asks pool question `permutation(seed)[index]`, whatever the length (`QaTask.build_sample` picks it
from seed and index alone, then `build` fills the length). Shorter lengths are refused.
"""

from __future__ import annotations

import os
import re
import zlib
from dataclasses import dataclass

import numpy as np

from sftasks.errors import DataError, InputError, LengthError
from sftasks.lengths import format_length, lower_bound, parse_length
from sftasks.records import Sample
from sftasks.tasks import Task, register, sample_rng

from ..fill import FillError, count_pieces, fit
from ..ruler.prompt import Frame, join_marked, spread
from .source import LETTERS, Item, Source, is_path, load_source

INTRO = "Below are several numbered documents. Answer a question about one of them."
OPEN_NOTES = ("Answer with the shortest phrase from the document that answers the question, not a full sentence.",)
ONE_NOTES = ("Exactly one option is correct: answer with its letter only.",)
MANY_NOTES = ("One or more options may be correct: answer with all their letters (for example AC) and nothing else.",)
HEADER = "Document {k}:\n"
SEPARATOR = "\n\n"
# Split a document before every single space that starts a word: pieces like " word" (line breaks
# stay inside a piece), whose token counts add up under byte-level BPE pre-tokenizers.
_WORD_START = re.compile(r"(?<=\S)(?= \S)")


@dataclass
class QaParams:
    source: str = ""  # local .jsonl/.json/.parquet file or folder, or a Hub NAME[:CONFIG]; "" = the task's default
    base_length: str = "8k"  # the smallest length; only questions whose document fits it are asked


def question_text(item: Item, number: int) -> str:
    text = f"Question about document {number}:\n{item.question}"
    return text + "".join(f"\n{LETTERS[i]}. {o}" for i, o in enumerate(item.options))


def frame_for(item: Item, number: int, multiple_correct: bool) -> Frame:
    if not item.options:
        return Frame.build(INTRO, question_text(item, number), "<short answer>", OPEN_NOTES)
    return Frame.build(INTRO, question_text(item, number), "<letter>" if not multiple_correct else "<letter(s)>",
                       MANY_NOTES if multiple_correct else ONE_NOTES)


class QaTask(Task):
    """One dataset's QA task; subclasses name the dataset and its default Hub source."""

    kind: str
    hub: tuple[str, str | None, str]
    version = "1"
    Params = QaParams

    def validate(self, params: QaParams) -> None:
        super().validate(params)
        try:
            base = parse_length(params.base_length)
        except LengthError as exc:
            raise InputError(f"base_length of {self.name}: {exc}") from None
        if base < 512:
            raise InputError(f"base_length of {self.name} must be at least 512 tokens, got {params.base_length!r}")
        if params.source and is_path(params.source) and not os.path.exists(os.path.expanduser(params.source)):
            raise InputError(f"source {params.source!r} of {self.name} does not exist: pass --source PATH "
                             "to a .jsonl/.json/.parquet file or folder")

    def source(self, params: QaParams) -> Source:
        return load_source(params.source, self.hub, self.kind)

    def card_info(self, params: QaParams) -> dict[str, str]:
        """Which source produced the samples (name and revision, or file name and SHA-256)."""
        return dict(self.source(params).origin)

    def min_tokens(self, params: QaParams, tokenizer) -> int:
        return parse_length(params.base_length)

    def check_length(self, target_tokens: int, params: QaParams, tokenizer) -> None:
        super().check_length(target_tokens, params, tokenizer)
        pool = _pool(self, params, tokenizer)
        if not pool:
            raise DataError(f"no question of {self.source(params).origin['source']} fits base_length "
                            f"{params.base_length}; raise base_length")
        capacity = _capacity(self.source(params), tokenizer)
        if lower_bound(target_tokens) > capacity:
            raise LengthError(f"{format_length(target_tokens)} is longer than the documents of "
                              f"{self.source(params).origin['source']} can fill (about {capacity} tokens)")

    def question(self, seed: int, index: int, tokenizer, params: QaParams) -> Item:
        """The question sample `index` of `seed` asks, at every length: pool item `permutation(seed)[index]`."""
        pool = _pool(self, params, tokenizer)
        if index >= len(pool):
            raise InputError(f"{self.name} has {len(pool)} questions that fit base_length {params.base_length}; "
                             f"ask for at most {len(pool)} samples")
        order = np.random.default_rng([zlib.crc32(self.name.encode()), seed]).permutation(len(pool))
        return pool[int(order[index])]

    def build_sample(self, target_tokens: int, *, seed: int, index: int, tokenizer, params: QaParams) -> Sample:
        rng = sample_rng(self.name, target_tokens, seed, index)
        return self.build(target_tokens, rng, tokenizer, params, item=self.question(seed, index, tokenizer, params))

    def build(self, target_tokens: int, rng: np.random.Generator, tokenizer, params: QaParams,
              item: Item | None = None) -> Sample:
        """`item` is the question to ask (`build_sample` passes the one chosen by seed and index);
        without it the question is drawn from `rng`, so it then varies with the length."""
        source = self.source(params)
        if item is None:
            pool = _pool(self, params, tokenizer)
            item = pool[int(rng.integers(len(pool)))]
        packed = _pack(source, item, target_tokens, rng, tokenizer)
        sample = Sample(input=packed.input, context=packed.context, question=packed.question,
                        answer=list(item.answers), evidence=packed.evidence,
                        params={"base_length": format_length(parse_length(params.base_length)),
                                **source.origin, "target_document": packed.number,
                                "num_documents": packed.num_documents})
        sample.num_tokens = packed.num_tokens
        return sample


@dataclass
class _Packed:
    input: str
    context: str
    question: str
    evidence: list[tuple[int, int]]
    number: int
    num_documents: int
    num_tokens: int


def _document_costs(source: Source, tokenizer) -> np.ndarray:
    """Token cost of every document as it appears in the context (`text` + blank line), cached."""
    key = ("costs", tokenizer.name)
    if key not in source.cache:
        source.cache[key] = count_pieces(tokenizer, [d + SEPARATOR for d in source.documents])
    return source.cache[key]


def _header_prefix(tokenizer, count: int) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(count_pieces(tokenizer, [HEADER.format(k=k) for k in range(1, count + 1)]))])


def _capacity(source: Source, tokenizer) -> int:
    costs = _document_costs(source, tokenizer)
    return int(costs.sum() + _header_prefix(tokenizer, len(costs))[-1])


def _pool(task: QaTask, params: QaParams, tokenizer) -> list[Item]:
    """The source's questions whose prompt with their document alone fits `base_length`, in source order."""
    source = task.source(params)
    key = ("pool", tokenizer.name, parse_length(params.base_length))
    if key not in source.cache:
        costs = _document_costs(source, tokenizer)
        many = source.multiple_correct
        frames = [frame_for(item, 99, many) for item in source.items]
        frame_costs = tokenizer.count_batch([f.head + f.tail for f in frames])
        header = tokenizer.count(HEADER.format(k=99))
        source.cache[key] = [item for item, cost in zip(source.items, frame_costs)
                             if cost + header + costs[item.document] + 8 <= lower_bound(key[2])]
    return source.cache[key]


def _pack(source: Source, item: Item, target: int, rng: np.random.Generator, tokenizer) -> _Packed:
    """Target document plus whole distractor documents in random order, then a prefix of one more."""
    costs = _document_costs(source, tokenizer)
    others = [d for d in rng.permutation(len(source.documents)).tolist() if d != item.document]
    depth_target, depth_partial = rng.random(2).tolist()
    # The frame's cost does not depend on the document number's digits enough to matter: fit re-plans.
    frame = frame_for(item, 1, source.multiple_correct)
    typical = HEADER.format(k=1) + source.documents[item.document] + SEPARATOR
    fixed = frame.cost(tokenizer, typical) + int(costs[item.document])
    headers = _header_prefix(tokenizer, len(source.documents) + 1)
    budget = target - fixed - int(headers[2])
    full = int(np.searchsorted(np.cumsum(costs[others]) + headers[2:len(others) + 2], budget, side="right"))
    partial_words = []
    if full < len(others):
        partial_words = _WORD_START.split(source.documents[others[full]])
    unit_costs = np.concatenate([costs[others[:full]], count_pieces(tokenizer, partial_words)])
    separator = tokenizer.count(SEPARATOR)
    last: dict = {}

    def overhead(n: int) -> int:
        documents = min(n, full) + 1 + (n > full)
        return fixed + int(headers[documents]) + separator * (n > full)

    def render(n: int, fine: list[str]) -> str:
        bodies = [source.documents[d] + SEPARATOR for d in others[:min(n, full)]]
        inserts, depths = [source.documents[item.document] + SEPARATOR], [depth_target]
        if n > full or fine:
            inserts.append("".join(partial_words[:max(0, n - full)]) + "".join(fine) + SEPARATOR)
            depths.append(depth_partial)
        order, where = spread(bodies, inserts, depths)
        number = where[0] + 1
        local = frame_for(item, number, source.multiple_correct)
        parts = [HEADER.format(k=k) + body for k, body in enumerate(order, 1)]
        context, spans = join_marked(parts, [where[0]], offset=len(local.head))
        last.update(context=context, span=spans[0], number=number, frame=local, count=len(parts))
        return local.text(context)

    try:
        result = fit(tokenizer, target, render, unit_costs=unit_costs, overhead=overhead, rng=rng)
    except FillError as exc:
        raise LengthError(f"cannot fill {target} tokens from this source: {exc}") from None
    start, end = last["span"]
    evidence = [(start, end - len(SEPARATOR))]
    body_start = start + len(HEADER.format(k=last["number"]))
    for answer in item.answers if not item.options else ():
        found = result.text.find(answer, body_start, end)
        if found >= 0:
            evidence.append((found, found + len(answer)))
            break
    question = question_text(item, last["number"])
    return _Packed(result.text, last["context"], question, evidence, last["number"], last["count"],
                   result.num_tokens)


def check(record: dict, source: Source) -> list[str]:
    """Re-derive the answer from the text and the source alone: split the context into numbered
    documents, read the asked document's number and question, find that question about that
    document in the source, and return its answers. Raises ValueError on any inconsistency."""
    text = record["input"]
    body = text[text.index("<text>\n") + 7: text.rindex("\n</text>")]
    question = re.search(r"<question>\nQuestion about document (\d+):\n(.*?)\n</question>", text, re.DOTALL)
    number, asked = int(question.group(1)), question.group(2).split("\nA. ")[0]
    pieces = re.split(r"(?:^|\n\n)Document (\d+):\n", body)
    numbers = [int(n) for n in pieces[1::2]]
    if numbers != list(range(1, len(numbers) + 1)):
        raise ValueError(f"documents are not numbered 1..n: {numbers[:10]}")
    documents = [d.strip() for d in pieces[2::2]]
    target = documents[number - 1]
    if documents.count(target) != 1:
        raise ValueError("the asked document appears more than once")
    matches = [i for i in source.items
               if source.documents[i.document] == target and i.question == asked]
    if len(matches) != 1:
        raise ValueError(f"{len(matches)} source questions match the asked one")
    return list(matches[0].answers)


@register
class QaSquad(QaTask):
    name = "qa_squad"
    kind = "squad"
    hub = ("rajpurkar/squad_v2", None, "validation")
    description = "SQuAD question about one of many Wikipedia paragraphs (open answer, F1 / exact match)"
    metric = "token F1 against the best acceptable answer (exact match reported too)"


@register
class QaQuality(QaTask):
    name = "qa_quality"
    kind = "quality"
    hub = ("tasksource/QuALITY", None, "validation")
    description = "QuALITY multiple-choice question about one of many long articles (option letter)"
    metric = "accuracy: the chosen option letters equal the correct ones"


@register
class QaToefl(QaTask):
    name = "qa_toefl"
    kind = "toefl"
    hub = ("L4NLP/LEval", "tofel", "test")
    description = "TOEFL listening multiple-choice question about one of many transcripts (option letters)"
    metric = "accuracy: the chosen option letters equal the correct ones"
