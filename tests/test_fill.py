"""generators/fill.py: exact fitting to a token window, for additive and non-additive tokenizers."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sftasks.generators.fill import (
    FINE_SENTENCES, Filler, FillError, count_pieces, default_filler, fit, units_that_fit,
)
from sftasks.lengths import lower_bound
from sftasks.tokenizers import HFTokenizer, get_tokenizer

HEAD = "Read the text and answer.\n\n<context>\n"
# The tail starts with a space: "." + "\n" would fuse into one pre-token (see the fused-join test).
TAIL = " </context>\n\nQuestion: what colour was the sky?"


def _sentences(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    words = "stone river lantern quiet market golden harbor whisper narrow ancient gate merchant".split()
    return [" " + " ".join(rng.choice(words, size=int(rng.integers(2, 12)))).capitalize() + "." for _ in range(n)]


def _render(units):
    return lambda n, fine: HEAD + "".join(units[:n]) + "".join(fine) + TAIL


@pytest.fixture(scope="module")
def qwen():
    return get_tokenizer()


@pytest.fixture(scope="module")
def bpe_without_pretokenizer(tmp_path_factory):
    """A BPE trained with no pre-tokenizer: merges cross spaces, so piece counts do NOT add up."""
    from tokenizers import Tokenizer, models, trainers

    backend = Tokenizer(models.BPE(unk_token="[UNK]"))
    trainer = trainers.BpeTrainer(vocab_size=1000, special_tokens=["[UNK]"], show_progress=False)
    sentences = _sentences(3000, seed=7)  # trained on runs of sentences: it learns merges across them
    corpus = ["".join(sentences[i:i + 8]) for i in range(0, 3000, 8)] + list(FINE_SENTENCES) + [HEAD, TAIL]
    backend.train_from_iterator(corpus, trainer)
    path = tmp_path_factory.mktemp("bpe") / "tokenizer.json"
    backend.save(str(path))
    return HFTokenizer("local-bpe", Tokenizer.from_file(str(path)))


class CountingTokenizer:
    """Wraps a tokenizer and records how many strings it was asked to count."""

    def __init__(self, inner):
        self.inner, self.name, self.counted = inner, inner.name, []

    def count(self, text):
        self.counted.append(text)
        return self.inner.count(text)

    def count_batch(self, texts):
        self.counted.extend(texts)
        return self.inner.count_batch(texts)


def test_count_pieces_counts_each_distinct_string_once(qwen):
    tok = CountingTokenizer(qwen)
    pieces = [" Rain fell.", " The sky was clear.", " Rain fell.", "Chapter 1:\n"]
    cache: dict[str, int] = {}
    counts = count_pieces(tok, pieces, cache)
    assert counts.tolist() == [qwen.count(p) for p in pieces]
    assert sorted(tok.counted) == sorted(set(pieces))
    count_pieces(tok, [" Rain fell.", " Dawn."], cache)
    assert tok.counted[-1] == " Dawn." and len(tok.counted) == 4


def test_units_that_fit_matches_brute_force():
    rng = np.random.default_rng(1)
    for _ in range(200):
        costs = rng.integers(0, 20, size=int(rng.integers(0, 15)))
        budget = int(rng.integers(-5, 120))
        expected = max((n for n in range(len(costs) + 1) if costs[:n].sum() <= budget), default=0)
        assert units_that_fit(costs, budget) == expected


def _brute_reachable(sizes, low, high):
    low = max(low, 0)
    reach = {0}
    for _ in range(high):
        reach |= {r + s for r in reach for s in sizes if r + s <= high}
    return any(low <= r <= high for r in reach)


def test_filler_pick_lands_in_window_exactly_when_possible(qwen):
    rng = np.random.default_rng(2)
    pools = [list(FINE_SENTENCES), [" Silence.", " The hours went by."], [" Rain fell.", " All was calm."]]
    for pool in pools:
        filler = Filler(qwen, pool)
        sizes = filler.sizes.tolist()
        for _ in range(60):
            high = int(rng.integers(-3, 60))
            low = high - int(rng.integers(0, 4))
            picked = filler.pick(low, high, rng)
            possible = _brute_reachable(sizes, low, high) if high >= 0 else False
            assert (picked is not None) == possible, (pool, low, high)
            if picked is not None:
                assert max(low, 0) <= filler.cost(picked) <= high
                assert filler.cost(picked) == sum(qwen.count(p) for p in picked)
    # far beyond the reachability table, a pick still sums exactly into the window
    big = Filler(qwen).pick(9_990, 10_000, rng)
    assert 9_990 <= default_filler(qwen).cost(big) <= 10_000


@pytest.mark.parametrize("target", [24, 40, 100, 1000, 1024, 4096, 32768])
def test_fit_lands_in_window_with_qwen(qwen, target):
    units = _sentences(3000)
    costs = count_pieces(qwen, units)
    tok = CountingTokenizer(qwen)
    overhead = qwen.count(HEAD) + qwen.count(TAIL)
    result = fit(tok, target, _render(units), unit_costs=costs, overhead=overhead, rng=np.random.default_rng(target))
    assert lower_bound(target) <= result.num_tokens <= target
    assert result.num_tokens == qwen.count(result.text)
    assert result.text == _render(units)(result.units, result.fine)
    full_counts = [t for t in tok.counted if t.startswith(HEAD)]
    assert len(full_counts) == 1  # additive pieces: one full count, no correction round


def test_fit_corrects_a_join_that_is_not_a_boundary(qwen):
    """"." followed by a newline fuses into one pre-token: the measured error is corrected."""
    units = _sentences(3000)
    tok = CountingTokenizer(qwen)
    render = lambda n, fine: HEAD + "".join(units[:n] + fine) + "\n</context>"  # noqa: E731
    overhead = qwen.count(HEAD) + qwen.count("\n</context>")
    for target in (24, 31, 1024, 5000):
        result = fit(tok, target, render, unit_costs=count_pieces(qwen, units), overhead=overhead,
                     rng=np.random.default_rng(target))
        assert lower_bound(target) <= result.num_tokens <= target == target
        assert result.num_tokens == qwen.count(result.text)
    assert len([t for t in tok.counted if t.startswith(HEAD)]) <= 2 * 4


@pytest.mark.parametrize("target", [200, 1024, 4096, 20000])
def test_fit_corrects_a_non_additive_tokenizer(bpe_without_pretokenizer, target):
    tok = bpe_without_pretokenizer
    units = _sentences(6000, seed=3)
    costs = count_pieces(tok, units)
    assert sum(costs[:200]) > 1.2 * tok.count("".join(units[:200]))  # really not additive
    filler = Filler(tok)
    overhead = tok.count(HEAD) + tok.count(TAIL)
    result = fit(tok, target, _render(units), unit_costs=costs, overhead=overhead, filler=filler,
                 rng=np.random.default_rng(0))
    assert lower_bound(target) <= result.num_tokens <= target
    assert result.num_tokens == tok.count(result.text)


def test_fit_with_overhead_depending_on_units(qwen):
    units = _sentences(500)
    costs = count_pieces(qwen, units)

    def render(n, fine):
        return f"There are {n} sentences.\n" + "".join(units[:n] + fine)

    result = fit(qwen, 2000, render, unit_costs=costs, overhead=lambda n: qwen.count(f"There are {n} sentences.\n"),
                 rng=np.random.default_rng(5))
    assert lower_bound(2000) <= result.num_tokens <= 2000 and result.text.startswith(f"There are {result.units} ")


def test_fit_refuses_a_frame_longer_than_the_target(qwen):
    with pytest.raises(FillError):
        fit(qwen, 5, lambda n, fine: HEAD + "".join(fine) + TAIL,
            overhead=qwen.count(HEAD) + qwen.count(TAIL), rng=np.random.default_rng(0))
    units = _sentences(50)
    with pytest.raises(FillError):  # needs 40 units, only 50 short ones would fit in far more tokens
        fit(qwen, 200, _render(units), unit_costs=count_pieces(qwen, units), min_units=40,
            overhead=qwen.count(HEAD) + qwen.count(TAIL), rng=np.random.default_rng(0))


class DriftingTokenizer:
    """Counts full texts with a wild error that never settles: fit must give up, not loop."""

    name = "drift"

    def __init__(self, inner):
        self.inner, self.calls = inner, itertools.count()

    def count(self, text):
        return self.inner.count(text) + (-1) ** next(self.calls) * 500

    def count_batch(self, texts):
        return self.inner.count_batch(texts)


def test_fit_gives_up_after_bounded_rounds_and_never_returns_too_long(qwen):
    units = _sentences(2000)
    tok = DriftingTokenizer(qwen)
    with pytest.raises(FillError, match="rounds"):
        fit(tok, 8000, _render(units), unit_costs=count_pieces(qwen, units),
            overhead=qwen.count(HEAD) + qwen.count(TAIL), rng=np.random.default_rng(0), max_rounds=5)
    assert next(tok.calls) == 5
