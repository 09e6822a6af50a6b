"""`ruler_vt`: variable tracking. Chains of assignments (default 8 chains of 4 hops) are scattered
in filler; the question names one chain's value and the answer is every variable bound to it.

Each chain starts `VAR A = 12345` and continues `VAR B = VAR A`, ...; its statements appear in
chain order at random depths, interleaved with the other chains.
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
from .needles import unique_names
from .prompt import Frame

INTRO = ("The text below contains variable assignments hidden among other sentences. An assignment either "
         "sets a variable to a number (VAR ABCDE = 12345) or to another variable (VAR FGHIJ = VAR ABCDE). "
         "Variable names are five capital letters.")
QUESTION = ("Which variables hold the value {value}? A variable holds it if it is assigned {value} directly, "
            "or assigned a variable that holds it.")
ANSWER_FORMAT = "NAME1 NAME2 NAME3 ..."
NOTES = ("List every such variable name, separated by spaces, in any order.",
         "Write only the names: no VAR prefix and no punctuation.")
# Filler sentences, cycled in order (the paper's haystack repeats a few plain sentences).
NOISE = (" The grass is green.", " The sky is blue.", " The sun is warm.", " Here we go.", " There and back again.")
ASSIGN = re.compile(r"VAR ([A-Z]{5}) = (?:(\d+)|VAR ([A-Z]{5}))\.")


@dataclass
class VtParams:
    num_chains: int = 8
    num_hops: int = 4


def statements(chain: list[str], value: int) -> list[str]:
    return [f" VAR {chain[0]} = {value}."] + [f" VAR {b} = VAR {a}." for a, b in zip(chain, chain[1:])]


@register
class RulerVt(Task):
    name = "ruler_vt"
    version = "1"
    Params = VtParams
    description = "variable tracking: every variable bound to a value through chains of assignments"
    metric = "recall of the gold variable names (precision and IoU reported too)"

    def validate(self, params: VtParams) -> None:
        super().validate(params)
        if params.num_chains < 1 or params.num_hops < 1:
            raise InputError(f"num_chains and num_hops of {self.name} must be >= 1, "
                             f"got {params.num_chains} and {params.num_hops}")
        if params.num_chains > 80000:
            raise InputError(f"num_chains of {self.name} must be <= 80000 (distinct 5-digit values)")

    def min_tokens(self, params: VtParams, tokenizer) -> int:
        frame = Frame.build(INTRO, QUESTION.format(value=12345), ANSWER_FORMAT, NOTES)
        # Random names tokenize into 2-5 tokens each: estimate from a few random chains, with a margin.
        names = unique_names(np.random.default_rng(0), 4 * (params.num_hops + 1))
        size = params.num_hops + 1
        chains = [statements(names[i * size:(i + 1) * size], 12345) for i in range(4)]
        one_chain = max(sum(tokenizer.count_batch(chain)) for chain in chains)
        return math.ceil((frame.cost(tokenizer, NOISE[0]) + 1.1 * params.num_chains * one_chain + 32) / 0.995)

    def build(self, target_tokens: int, rng: np.random.Generator, tokenizer, params: VtParams) -> Sample:
        size = params.num_hops + 1
        names = unique_names(rng, params.num_chains * size, avoid=frozenset({"VALUE"}))
        values = (rng.choice(90000, size=params.num_chains, replace=False) + 10000).tolist()
        inserts, depths = [], []
        for c in range(params.num_chains):
            inserts += statements(names[c * size:(c + 1) * size], values[c])
            depths += sorted(rng.random(size).tolist())
        position = [0]

        def make_units(k: int) -> list[str]:
            units = [NOISE[(position[0] + i) % len(NOISE)] for i in range(k)]
            position[0] += k
            return units

        question = QUESTION.format(value=values[0])
        frame = Frame.build(INTRO, question, ANSWER_FORMAT, NOTES)
        hay = fill_haystack(tokenizer, target_tokens, frame, make_units, inserts, depths, rng)
        sample = Sample(input=hay.input, context=hay.context, question=question, answer=sorted(names[:size]),
                        evidence=hay.spans[:size], params={"num_chains": params.num_chains,
                                                            "num_hops": params.num_hops, "value": str(values[0])})
        sample.num_tokens = hay.num_tokens
        return sample


def check(record: dict) -> list[str]:
    """Re-derive the answer from the text alone: resolve every assignment, keep those equal to the value."""
    text = record["input"]
    body = text[text.index("<text>\n") + 7: text.rindex("\n</text>")]
    value = re.search(r"hold the value (\d+)\?", text).group(1)
    bound: dict[str, str] = {}
    links: dict[str, str] = {}
    for name, number, source in ASSIGN.findall(body):
        if name in bound or name in links:
            raise ValueError(f"variable {name} is assigned twice")
        if number:
            bound[name] = number
        else:
            links[name] = source
    while links:
        resolved = {n: bound[s] for n, s in links.items() if s in bound}
        if not resolved:
            raise ValueError(f"unresolvable variables: {sorted(links)}")
        bound.update(resolved)
        links = {n: s for n, s in links.items() if n not in resolved}
    return sorted(n for n, v in bound.items() if v == value)
