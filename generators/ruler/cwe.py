"""`ruler_cwe`: common-word extraction. A numbered list of words in which `num_common_words` words
(default 10) appear `common_word_frequency` times (30) and every other word `rare_word_frequency`
times (3); the answer is the common words. Words come from `words.word_pool()`; lists longer than
those ~8,000 words can fill (about 190k tokens at the defaults) also use compound words
(`words.compound_words`: adjective + noun, never a common word's compound), which reach tens of
millions of tokens. Lengths the plain pool fills are generated exactly as before compounds existed.

Exact length: the number of rare words sets the length coarsely (prefix sums of counted pieces, as in
`generators/fill.py`); the last few tokens are closed by swapping rare words for longer or shorter
ones, which keeps every frequency intact (filler sentences would break the list).
"""

from __future__ import annotations

import collections
import functools
import json
import math
import re
from dataclasses import dataclass

import numpy as np

from sftasks.errors import InputError, LengthError
from sftasks.lengths import lower_bound
from sftasks.records import Sample
from sftasks.tasks import Task, register

from ..fill import FillError, count_pieces
from .prompt import Frame
from .words import compound_words, word_pool

INTRO = ("Below is a numbered list of words. Find the words that occur most often. Read the list carefully "
         "and keep count yourself; do not write code.")
QUESTION = ("Exactly {k} words occur {common} times each; every other word occurs {rare} times. The order is random. "
            "Which {k} words occur {common} times each?")
NOTES = ("List exactly {k} words, one per line, numbered.",)
LINE = re.compile(r"^(\d+)\. ([a-z]+)$")


@dataclass
class CweParams:
    num_common_words: int = 10
    common_word_frequency: int = 30
    rare_word_frequency: int = 3


def question_for(p: CweParams) -> str:
    return QUESTION.format(k=p.num_common_words, common=p.common_word_frequency, rare=p.rare_word_frequency)


def frame_for(p: CweParams) -> Frame:
    question = question_for(p)
    answer_format = "\n".join(f"{i}. word{i}" for i in range(1, min(p.num_common_words, 3) + 1))
    if p.num_common_words > 3:
        answer_format += f"\n...\n{p.num_common_words}. word{p.num_common_words}"
    return Frame.build(INTRO, question, answer_format, [n.format(k=p.num_common_words) for n in NOTES])


# Compounds added to the pool when its plain words cannot fill a length: the smallest of these counts
# that can, so every length uses one fixed pool. The largest reaches tens of millions of tokens.
TIERS = tuple(2**j for j in range(13, 21))


@functools.lru_cache(maxsize=4)
def _plain_costs(tokenizer) -> np.ndarray:
    """Token cost of every pool word as it appears in a line (` word`)."""
    return count_pieces(tokenizer, [" " + w for w in word_pool()])


_COMPOUND_COSTS: dict[str, np.ndarray] = {}


def _word_costs(tokenizer, extra: int = 0) -> np.ndarray:
    """Costs of the pool words followed by the first `extra` compounds (counted once, grown on demand)."""
    plain = _plain_costs(tokenizer)
    if not extra:
        return plain
    have = _COMPOUND_COSTS.get(tokenizer.name, np.zeros(0, dtype=plain.dtype))
    if len(have) < extra:
        compounds = compound_words(extra)[0]
        have = _COMPOUND_COSTS[tokenizer.name] = np.concatenate(
            [have, count_pieces(tokenizer, [" " + w for w in compounds[len(have):]])])
    return np.concatenate([plain, have[:extra]])


_NUMBER_PREFIX: dict[str, np.ndarray] = {}


def _number_prefix(tokenizer, lines: int) -> np.ndarray:
    """Prefix sums of the costs of line numbers (`\n{i}.`) for at least `lines` lines, grown on demand."""
    prefix = _NUMBER_PREFIX.get(tokenizer.name)
    if prefix is None:
        first = tokenizer.count("1.")  # the first line has no line break before it
        prefix = np.array([0, first], dtype=np.int64)
    if len(prefix) <= lines:
        size = max(lines + 1, 4096)
        costs = count_pieces(tokenizer, [f"\n{i}." for i in range(len(prefix), size)])
        prefix = np.concatenate([prefix, prefix[-1] + np.cumsum(costs)])
    _NUMBER_PREFIX[tokenizer.name] = prefix
    return prefix


def _capacity(p: CweParams, tokenizer, cheapest: bool, cap: int) -> int:
    """Tokens of the list with the fewest (one) or the most (all) rare plain words, roughly; counting
    stops past `cap` lines (a line costs at least two tokens, so more lines only exceed twice `cap` tokens)."""
    words = _plain_costs(tokenizer)
    ordered = np.sort(words)
    k, fc, fr = p.num_common_words, p.common_word_frequency, p.rare_word_frequency
    frame = frame_for(p).cost(tokenizer, "1. word")
    if cheapest:  # one rare word, the most expensive words: an upper bound of the shortest list
        n = k * fc + fr
        return int(frame + _number_prefix(tokenizer, n)[n] + fc * ordered[-k:].sum() + fr * ordered[-k - 1] + 2 * fr)
    n = min(k * fc + fr * (len(words) - k), cap)
    return int(frame + _number_prefix(tokenizer, n)[n] + fc * ordered[:k].sum() + fr * ordered[k:].sum())


def _least_capacity(p: CweParams, tokenizer, extra: int, target: int) -> int:
    """A lower bound of the longest list the pool plus `extra` compounds can make, whichever words
    are common (compounds made with a common word are left out)."""
    plain, words = _plain_costs(tokenizer), _word_costs(tokenizer, extra)
    k, fc, fr = p.num_common_words, p.common_word_frequency, p.rare_word_frequency
    ordered = np.sort(plain)
    parts = compound_words(extra)[1]
    per_part = np.bincount(parts.ravel(), weights=np.repeat(words[len(plain):], 2), minlength=len(plain))
    uses = np.bincount(parts.ravel(), minlength=len(plain))
    lost_tokens, lost_words = np.sort(per_part)[-k:].sum(), np.sort(uses)[-k:].sum()
    rare = ordered[:-k].sum() + words[len(plain):].sum() - lost_tokens
    lines = k * fc + fr * (len(words) - k - lost_words)
    return int(frame_for(p).cost(tokenizer, "1. word") + fc * ordered[:k].sum() + fr * rare
               + _number_tokens_at_least(tokenizer, lines, target))


def _number_tokens_at_least(tokenizer, lines: int, target: int) -> int:
    """Tokens of the first `lines` line numbers, counting no more than about a line per 16 tokens of
    `target` and bounding the rest by the last counted ones (numbers do not get shorter)."""
    known = min(lines, max(4096, target // 16))
    prefix = _number_prefix(tokenizer, known)
    last = int(np.diff(prefix[max(known - 100, 0): known + 1]).min())
    return int(prefix[known]) + (lines - known) * last


def _most_characters(p: CweParams, extra: int) -> int:
    """Characters of the longest list with `extra` compounds: more than its tokens, cheaply."""
    k, fc, fr = p.num_common_words, p.common_word_frequency, p.rare_word_frequency
    pool = word_pool()
    lengths = np.sort([len(w) + 1 for w in pool])
    lines = k * fc + fr * (len(pool) - k + extra)
    numbers = sum(max(0, min(lines, 10**d - 1) - 10 ** (d - 1) + 1) * (d + 2) for d in range(1, len(str(lines)) + 1))
    compounds = 16 * extra  # parts have at most 7 letters, plus the space
    return 4096 + numbers + fc * int(lengths[-k:].sum()) + fr * (int(lengths.sum()) + compounds)


def _extra_words(p: CweParams, tokenizer, target: int) -> int:
    """How many compounds the list at `target` tokens adds to the plain pool (0 while it suffices)."""
    if lower_bound(target) <= _capacity(p, tokenizer, cheapest=False, cap=target // 2 + 1):
        return 0
    for extra in TIERS:
        if _most_characters(p, extra) >= target and _least_capacity(p, tokenizer, extra, target) >= target:
            return extra
    raise LengthError(f"{target} tokens is longer than {RulerCwe.name}'s word pool can fill; "
                      "raise rare_word_frequency or choose a shorter length")


@register
class RulerCwe(Task):
    name = "ruler_cwe"
    version = "1"
    Params = CweParams
    description = "common-word extraction: the words that occur most often in a long numbered list"
    metric = "overlap of the first k words answered with the k common words, divided by k"

    def validate(self, params: CweParams) -> None:
        super().validate(params)
        if params.num_common_words < 1 or params.rare_word_frequency < 1:
            raise InputError(f"num_common_words and rare_word_frequency of {self.name} must be >= 1")
        if params.common_word_frequency <= params.rare_word_frequency:
            raise InputError(f"common_word_frequency ({params.common_word_frequency}) of {self.name} must be "
                             f"greater than rare_word_frequency ({params.rare_word_frequency})")
        if params.num_common_words > len(word_pool()) // 2:
            raise InputError(f"num_common_words of {self.name} must be <= {len(word_pool()) // 2}")
        if params.common_word_frequency > 40:
            raise InputError(f"common_word_frequency of {self.name} must be <= 40")

    def min_tokens(self, params: CweParams, tokenizer) -> int:
        return math.ceil(_capacity(params, tokenizer, cheapest=True, cap=0) / 0.995)

    def check_length(self, target_tokens: int, params: CweParams, tokenizer) -> None:
        super().check_length(target_tokens, params, tokenizer)
        _extra_words(params, tokenizer, target_tokens)

    def build(self, target_tokens: int, rng: np.random.Generator, tokenizer, params: CweParams) -> Sample:
        pool, extra = word_pool(), _extra_words(params, tokenizer, target_tokens)
        words = _word_costs(tokenizer, extra)
        k, fc, fr = params.num_common_words, params.common_word_frequency, params.rare_word_frequency
        order = rng.permutation(len(pool))
        common, candidates = order[:k].tolist(), order[k:]
        if extra:  # all plain words first, then compounds that contain no common word, in random order
            compounds, parts = compound_words(extra)
            allowed = np.flatnonzero(~np.isin(parts, common).any(axis=1))
            candidates = np.concatenate([candidates, len(pool) + rng.permutation(allowed)])
            pool = pool + compounds
        frame = frame_for(params)
        fixed = frame.cost(tokenizer, "1. word") + fc * int(words[common].sum())
        low, high = lower_bound(target_tokens), target_tokens
        error = 0  # measured minus predicted tokens of the last full count (0 for additive tokenizers)
        for _ in range(8):
            chosen, predicted = _choose_rare(tokenizer, words, candidates, fixed, k * fc, fr,
                                             low - error, high - error)
            entries = [pool[i] for i in common] * fc + [pool[i] for i in chosen] * fr
            entries = [entries[i] for i in rng.permutation(len(entries))]
            lines = [("" if i == 1 else "\n") + f"{i}. {w}" for i, w in enumerate(entries, 1)]
            context = "".join(lines)
            text = frame.text(context)
            actual = tokenizer.count(text)
            if low <= actual <= high:
                break
            error = actual - predicted
        else:
            raise FillError(f"could not fit {self.name} into {target_tokens} tokens: the tokenizer is far from additive")
        common_words = {pool[i] for i in common}
        evidence, position = [], len(frame.head)
        for line, word in zip(lines, entries):
            if word in common_words:
                evidence.append((position + line.startswith("\n"), position + len(line)))
            position += len(line)
        sample = Sample(input=text, context=context, question=question_for(params),
                        answer=sorted(common_words), evidence=evidence,
                        params={"num_common_words": k, "common_word_frequency": fc, "rare_word_frequency": fr})
        sample.num_tokens = actual
        return sample


def _choose_rare(tokenizer, words, candidates, fixed, common_lines, fr, low, high) -> tuple[list[int], int]:
    """Rare words (pool indices) whose list lands in [low, high] predicted tokens, and that prediction."""
    lines_at = common_lines + fr * np.arange(len(candidates) + 1)
    words_at = fixed + fr * np.concatenate([[0], np.cumsum(words[candidates])])
    size = min(max(4096, high // 16), int(lines_at[-1]))  # line numbers to count, grown as needed
    while True:
        numbers = _number_prefix(tokenizer, size)[: size + 1]
        base = words_at + numbers[np.minimum(lines_at, size)]
        n = int(np.searchsorted(base, high, side="right")) - 1
        if lines_at[min(n + 1, len(candidates))] <= size:  # exact up to the first word too many
            break
        # Not counted far enough: extrapolate with the last line number's cost, then count that far.
        guess = words_at + numbers[-1] + (numbers[-1] - numbers[-2]) * np.maximum(lines_at - size, 0)
        far = int(np.searchsorted(guess, high, side="right"))
        size = max(int(lines_at[min(far, len(candidates))]) + 256, size + 256)
    if n < 1:
        raise LengthError(f"{high} tokens is too short for this common-word list; choose a longer length")
    chosen, unused = collections.defaultdict(list), collections.defaultdict(list)
    for i, index in enumerate(candidates.tolist()):
        (chosen if i < n else unused)[int(words[index])].append(index)
    total = int(base[n])
    while total < low:
        # The largest swap of a chosen word for a longer unused one that does not overshoot.
        steps = [(fr * (b - a), a, b) for a in chosen for b in unused
                 if chosen[a] and unused[b] and 0 < fr * (b - a) <= high - total]
        if not steps:
            raise FillError(f"cannot close the last {low - total} tokens of the word list; "
                            "choose another length or a smaller rare_word_frequency")
        step, a, b = max(steps)
        chosen[b].append(unused[b].pop(0))
        unused[a].append(chosen[a].pop())
        total += step
    return sorted(i for group in chosen.values() for i in group), total


def check(record: dict) -> list[str]:
    """Re-derive the answer from the text alone: count the list's words; the most frequent ones,
    checking that exactly the promised number share the top frequency and all others the rare one."""
    params = json.loads(record["params"])
    text = record["input"]
    body = text[text.index("<text>\n") + 7: text.rindex("\n</text>")]
    counts: collections.Counter[str] = collections.Counter()
    for number, line in enumerate(body.split("\n"), 1):
        match = LINE.match(line)
        if not match or int(match.group(1)) != number:
            raise ValueError(f"line {number} of the list is malformed: {line!r}")
        counts[match.group(2)] += 1
    top = sorted(w for w, c in counts.items() if c == params["common_word_frequency"])
    others = {c for w, c in counts.items() if w not in top}
    if len(top) != params["num_common_words"] or others != {params["rare_word_frequency"]}:
        raise ValueError(f"frequencies are off: {len(top)} common words, other counts {sorted(others)}")
    return top
