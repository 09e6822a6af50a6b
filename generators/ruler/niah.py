"""`ruler_niah`: multi-key needle in a haystack. Retrieve the values of N keys (default 4) hidden
among distractor needles of the same form.

Two haystacks: `needles` (the paper's: nothing but distractor needles) and `prose` (natural
narrative sentences with `num_distractors` distractor needles; natural text is the harder case).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from sftasks.errors import InputError
from sftasks.records import Sample
from sftasks.tasks import Task, register

from .haystack import fill_haystack
from .needles import CODE_PATTERN, NEEDLE_PATTERN, needle, unique_codes
from .prompt import Frame
from .prose import prose_sentences

HAYSTACKS = ("needles", "prose")
INTRO = ("The text below contains many key-value pairs. Find the values of the keys you are asked about. "
         "Keys and values are codes of four groups of eight letters and digits.")
QUESTION = "What are the values of these keys, in this order?\n{keys}"
NOTES = ("Answer the keys in the order they are asked, one per line, numbered.",
         "Copy each value exactly as it appears in the text.")


@dataclass
class NiahParams:
    num_queries: int = 4
    haystack: str = "needles"
    num_distractors: int = 8  # `prose` haystack only; in `needles` every other sentence is a distractor


def question_text(keys: list[str]) -> str:
    return QUESTION.format(keys="\n".join(f"{i}. {k}" for i, k in enumerate(keys, 1)))


def frame_for(keys: list[str]) -> Frame:
    answer_format = "\n".join(f"{i}. {k}: <value>" for i, k in enumerate(keys, 1))
    return Frame.build(INTRO, question_text(keys), answer_format, NOTES)


@register
class RulerNiah(Task):
    name = "ruler_niah"
    version = "1"
    Params = NiahParams
    description = "multi-key needle in a haystack: values of N keys among distractor needles"
    metric = "per-key recall: the fraction of asked keys whose value is given correctly"

    def validate(self, params: NiahParams) -> None:
        super().validate(params)
        if params.num_queries < 1:
            raise InputError(f"num_queries of {self.name} must be >= 1, got {params.num_queries}")
        if params.haystack not in HAYSTACKS:
            raise InputError(f"haystack of {self.name} must be one of {', '.join(HAYSTACKS)}, got {params.haystack!r}")

    def min_tokens(self, params: NiahParams, tokenizer) -> int:
        rng = np.random.default_rng(0)
        codes = unique_codes(rng, 2 * params.num_queries + 2, set())
        keys, values = codes[: params.num_queries + 1], codes[params.num_queries + 1:]
        one = tokenizer.count(needle(keys[0], values[0]))
        extra = params.num_distractors if params.haystack == "prose" else 0
        fixed = frame_for(keys[:-1]).cost(tokenizer, needle(keys[0], values[0]))
        # Room for every needle, one more sentence, and the filler's last step.
        return math.ceil((fixed + (params.num_queries + extra + 1) * one + 16) / 0.995)

    def build(self, target_tokens: int, rng: np.random.Generator, tokenizer, params: NiahParams) -> Sample:
        used: set[str] = set()
        keys = unique_codes(rng, params.num_queries, used)
        values = unique_codes(rng, params.num_queries, used)
        queried = [needle(k, v) for k, v in zip(keys, values)]
        inserts = list(queried)
        if params.haystack == "prose":
            inserts += [needle(*unique_codes(rng, 2, used)) for _ in range(params.num_distractors)]

            def make_units(k: int) -> list[str]:
                return prose_sentences(rng, k)
        else:
            def make_units(k: int) -> list[str]:
                codes = unique_codes(rng, 2 * k, used)
                return [needle(codes[2 * i], codes[2 * i + 1]) for i in range(k)]
        depths = rng.random(len(inserts)).tolist()
        frame = frame_for(keys)
        hay = fill_haystack(tokenizer, target_tokens, frame, make_units, inserts, depths, rng)
        knobs = {"num_queries": params.num_queries, "haystack": params.haystack,
                 "num_distractors": params.num_distractors if params.haystack == "prose" else 0}
        sample = Sample(input=hay.input, context=hay.context, question=question_text(keys), answer=values,
                        evidence=hay.spans[: len(queried)], params={**knobs, "keys": keys})
        sample.num_tokens = hay.num_tokens
        return sample


def check(record: dict) -> list[str]:
    """Re-derive the answer from the text alone: the value stated for each asked key.

    Raises ValueError when a key is stated more than once or never, which would make the sample ambiguous.
    """
    text = record["input"]
    body = text[text.index("<text>\n") + 7: text.rindex("\n</text>")]
    found: dict[str, list[str]] = {}
    for key, value in NEEDLE_PATTERN.findall(body):
        found.setdefault(key, []).append(value)
    question = re.search(r"<question>\n(.*?)\n</question>", text, re.DOTALL).group(1)
    keys = CODE_PATTERN.findall(question)
    answer = []
    for key in keys:
        if len(found.get(key, [])) != 1:
            raise ValueError(f"key {key} is stated {len(found.get(key, []))} times")
        answer.append(found[key][0])
    return answer
