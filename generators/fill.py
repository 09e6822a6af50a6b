"""Fill a prompt exactly to a token target: ``lower_bound(target) <= tokens <= target``.

Why this module exists: counting a long text is the expensive step of generation, so we count
*pieces* once and add the counts up. Qwen's pre-tokenizer (and most byte-level BPEs) never merges
across a boundary before `` Word`` (space + letter), after sentence punctuation, or around a line
break, so pieces that start at such a boundary have token counts that ADD UP EXACTLY. A generator
sums piece counts (prefix sums over its units), renders the text once, verifies it with ONE full
count, and corrects the rare mismatch (a tokenizer that is not additive) in a few bounded rounds.

Rules for pieces (what makes the sums exact):
- count each piece in the form it has in the text, e.g. ``" The grass is green."`` with its
  leading space when it follows another sentence; a paragraph unit ending in ``".\\n\\n"``;
- join pieces only where a new pre-token starts (before `` Word``, after ``.``/``!``/``?``/newline);
  beware that punctuation FUSES with following newlines (``".\\n\\n"`` is one pre-token), so a unit
  that ends a paragraph should carry its own trailing newlines, and the frame after the last unit
  should start with a letter, ``<`` or a space rather than a newline;
- keep the fixed frame (instructions, question) as one or two pieces whose joins are also boundaries.

API (all deterministic: randomness only from the numpy Generator you pass):

``count_pieces(tokenizer, pieces, cache=None) -> np.ndarray``
    Token counts of `pieces`; each distinct string is counted once (one ``count_batch`` call).
    Pass a dict as `cache` to reuse counts of repeated strings across calls.

``default_filler(tokenizer) -> Filler``
    ``Filler(tokenizer)`` with the default sentences, built once per tokenizer.

``units_that_fit(costs, budget) -> int``
    How many leading units (in order) fit into `budget` tokens, by prefix sums.

``Filler(tokenizer, pieces=FINE_SENTENCES)``
    A pool of short pieces of varied token sizes (default: short neutral sentences with a leading
    space, 2 to 20 Qwen tokens) used for the last, exact step. ``filler.pick(low, high, rng)`` returns
    pieces whose counts sum to a value in ``[max(low, 0), high]`` (``[]`` when ``low <= 0``), or
    None when no combination can; ``filler.cost(pieces)`` is their summed count.

``fit(tokenizer, target, render, *, unit_costs=(), overhead=0, filler=None, rng, lower=None,
      min_units=0, max_rounds=8) -> Fit``
    The whole procedure. `render(n, fine)` must return the full text made of the fixed frame, the
    first `n` units and the filler pieces `fine` (placed wherever the caller wants, at boundaries).
    `overhead` is the token count of the frame (an int, or a function of `n` when the frame
    depends on how many units there are). `fit` takes as many units as fit, closes the remaining
    gap with filler pieces, renders, counts once, and if the count is off re-plans with the
    measured error (at most `max_rounds` full counts). It never returns more than `target`
    tokens; it raises ``FillError`` when it cannot fit (frame alone too long, or a tokenizer so
    far from additive that the rounds run out). The result: ``Fit(text, num_tokens, units, fine)``.

Typical use (a haystack of sentences with a needle)::

    costs = count_pieces(tok, sentences)                   # " Sentence one." ...
    frame = tok.count(head) + tok.count(tail) + needle_cost
    result = fit(tok, target, lambda n, fine: head + "".join(sentences[:n] + fine) + tail,
                 unit_costs=costs, overhead=frame, filler=Filler(tok), rng=rng)
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from sftasks.errors import Error
from sftasks.lengths import lower_bound

# Short neutral sentences (leading space: they follow a sentence ending in punctuation). Their
# Qwen2.5 sizes cover 2..14 tokens so any small gap is reachable in a few pieces.
FINE_SENTENCES = (
    " Rain fell.", " Wind rose.", " Night came.", " Birds sang.", " Time passed.",
    " The air was still.", " A bell rang somewhere.", " Clouds drifted past.", " The road was quiet.",
    " Somewhere a dog barked twice.", " The evening light turned gold.", " Smoke curled from a chimney.",
    " A cart rattled over the cobblestones.", " The river murmured beyond the walls.",
    " Lanterns flickered along the narrow street.", " A cool breeze carried the scent of salt and pine.",
    " Far away, thunder rolled over the hills and faded.", " Children laughed in a courtyard nearby.",
    " The market square slowly emptied as the day wore on.", " Gulls circled above the rooftops.",
    " A gentle drizzle began, then stopped as quickly as it had started.", " Stars appeared one by one.",
    " The scent of fresh bread drifted from an open window.", " Footsteps echoed in the distance.",
    " Silence.", " Dawn.", " Evening.", " All was calm.", " Morning came slowly.", " Then silence.",
    " A door creaked open.", " The sky was clear.", " Nothing stirred.",
    " An old man swept the steps of the temple while pigeons watched him.",
    " Somewhere beyond the hills, a shepherd was calling his flock home for the night.",
    " The last light of the day lingered on the towers, and the streets grew calm and cool.",
)


class FillError(Error):
    """A text could not be fitted into its target window (frame too long, or rounds exhausted)."""


def count_pieces(tokenizer, pieces: Sequence[str], cache: dict[str, int] | None = None) -> np.ndarray:
    """Token counts of `pieces`, counting each distinct string once (one batched call)."""
    cache = {} if cache is None else cache
    missing = list(dict.fromkeys(p for p in pieces if p not in cache))
    if missing:
        cache.update(zip(missing, tokenizer.count_batch(missing)))
    return np.fromiter((cache[p] for p in pieces), dtype=np.int64, count=len(pieces))


def units_that_fit(costs: Sequence[int] | np.ndarray, budget: int) -> int:
    """The largest n with sum(costs[:n]) <= budget (costs are non-negative)."""
    if budget < 0:
        return 0
    prefix = np.cumsum(np.asarray(costs, dtype=np.int64))
    return int(np.searchsorted(prefix, budget, side="right"))


class Filler:
    """Short pieces of varied token sizes for closing the last gap exactly (see module docstring)."""

    def __init__(self, tokenizer, pieces: Sequence[str] = FINE_SENTENCES, cache: dict[str, int] | None = None):
        pieces = list(dict.fromkeys(pieces))
        costs = count_pieces(tokenizer, pieces, cache)
        self._by_size: dict[int, list[str]] = {}
        self._cost: dict[str, int] = {}
        for piece, cost in zip(pieces, costs.tolist()):
            if cost > 0:
                self._by_size.setdefault(cost, []).append(piece)
                self._cost[piece] = cost
        self.sizes = np.array(sorted(self._by_size), dtype=np.int64)
        if len(self.sizes) == 0:
            raise ValueError("a Filler needs at least one piece with a positive token count")
        self._gcd = math.gcd(*self.sizes.tolist())
        # Beyond this bound every multiple of the gcd is a sum of sizes (Frobenius bound).
        self._cap = int(self.sizes.max()) ** 2 + int(self.sizes.max())
        reach = np.zeros(self._cap + 1, dtype=bool)
        reach[0] = True
        for r in range(1, self._cap + 1):
            reach[r] = bool(reach[r - self.sizes[self.sizes <= r]].any())
        self._reach_prefix = np.concatenate([[0], np.cumsum(reach)])

    def cost(self, pieces: Sequence[str]) -> int:
        return sum(self._cost[p] for p in pieces)

    def _reachable_in(self, low: int, high: int) -> bool:
        """Is some sum of sizes (the empty sum included) in [low, high]?"""
        low = max(low, 0)
        if high < low:
            return False
        above = max(low, self._cap + 1)  # past the cap, exactly the multiples of the gcd are sums
        if high >= above and (high // self._gcd) * self._gcd >= above:
            return True
        top = min(high, self._cap)
        return top >= low and self._reach_prefix[top + 1] - self._reach_prefix[low] > 0

    def pick(self, low: int, high: int, rng: np.random.Generator) -> list[str] | None:
        """Pieces whose counts sum into [max(low, 0), high]; [] if low <= 0; None if impossible."""
        if high < 0 or not self._reachable_in(low, high):
            return None
        chosen: list[str] = []
        biggest = int(self.sizes[-1])
        while low > 0:
            # Sizes that keep the rest solvable; while far from the goal prefer the bigger half.
            ok = [int(s) for s in self.sizes if s <= high and self._reachable_in(low - s, high - s)]
            if high > 2 * biggest:
                ok = ok[len(ok) // 2:]
            size = ok[int(rng.integers(len(ok)))]
            options = self._by_size[size]
            chosen.append(options[int(rng.integers(len(options)))])
            low -= size
            high -= size
        return chosen


@functools.lru_cache(maxsize=8)
def default_filler(tokenizer) -> Filler:
    """The Filler of FINE_SENTENCES for `tokenizer`, built once per tokenizer object."""
    return Filler(tokenizer)


@dataclass
class Fit:
    """A fitted text: its token count, how many units it holds, and the filler pieces used."""

    text: str
    num_tokens: int
    units: int
    fine: list[str] = field(default_factory=list)


def fit(
    tokenizer, target: int, render: Callable[[int, list[str]], str], *,
    unit_costs: Sequence[int] | np.ndarray = (), overhead: int | Callable[[int], int] = 0,
    filler: Filler | None = None, rng: np.random.Generator, lower: int | None = None,
    min_units: int = 0, max_rounds: int = 8,
) -> Fit:
    """Render the text with as many units as fit and filler for the rest; see the module docstring."""
    low = lower_bound(target) if lower is None else lower
    filler = filler or default_filler(tokenizer)
    prefix = np.concatenate([[0], np.cumsum(np.asarray(unit_costs, dtype=np.int64))]).tolist()
    frame = overhead if callable(overhead) else (lambda n, _o=int(overhead): _o)
    # Model of the full count: frame(n) + scale * (unit and filler counts) + error. Exact pieces
    # keep scale 1 and error 0; otherwise the first miss sets scale, later ones the error.
    scale, error = 1.0, 0
    tried: set[tuple[int, int]] = set()
    for round_ in range(max_rounds):
        plan = _plan(prefix, frame, filler, low - error, target - error, scale, min_units, rng, tried)
        if plan is None:
            raise FillError(
                f"cannot fit {target} tokens: the fixed part alone needs about "
                f"{frame(min_units) + round(scale * prefix[min_units]) + error}"
            )
        n, fine, content = plan
        tried.add((n, content))
        text = render(n, fine)
        actual = tokenizer.count(text)
        if low <= actual <= target:
            return Fit(text, actual, n, fine)
        if round_ == 0 and content > 0:
            scale = max(actual - frame(n), 1) / content
        else:
            error = actual - frame(n) - round(scale * content)
    raise FillError(f"could not fit {target} tokens in {max_rounds} rounds: the tokenizer is far from additive")


def _plan(prefix, frame, filler, low, high, scale, min_units, rng, tried):
    """(units, filler pieces, their summed count) whose modelled total lies in [low, high]."""
    n = int(np.searchsorted(prefix, (high - frame(0)) / scale, side="right")) - 1
    n = min(n, len(prefix) - 1)
    while n >= min_units:
        room_high = math.floor((high - frame(n)) / scale) - prefix[n]
        room_low = min(math.ceil((low - frame(n)) / scale) - prefix[n], room_high)
        if room_high >= 0:
            fine = filler.pick(room_low, room_high, rng)
            if fine is not None:
                content = prefix[n] + filler.cost(fine)
                if (n, content) not in tried:
                    return n, fine, content
        n -= 1
    return None
