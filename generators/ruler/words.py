"""The common-word task's word pool: English nouns, adjectives and verbs from the `wonderwords`
package (MIT; the word lists the paper's code used), lower-case letters only, profanity removed.
Lists longer than those ~8,000 words can fill (about 190k tokens) add compound words, an adjective
joined to a noun (`tinyveal`, `lushfate`), in a fixed order: about two million more.

The lists are pinned by SHA-256 so a changed package fails loudly instead of silently changing
every generated sample.
"""

from __future__ import annotations

import functools
import hashlib
import re
from importlib import resources

import numpy as np

from sftasks.errors import DataError

_LISTS = {
    "nounlist.txt": "8d88b3ebc2e2969ed92ebe49cdb0c8a87c2ad3b27493d7afdff608f2e51c5bc9",
    "adjectivelist.txt": "66814d46b7e292c83e839d12fe2fa083c8f66779b14b294e1be4e1342c5d4131",
    "verblist.txt": "9fbf5e4e69b8869aebd88e6d545312ff9f878a747327ede5f6dbbba5c27b08ad",
}
_WORD = re.compile(r"[a-z]+")


def _read(name: str) -> str:
    try:
        data = (resources.files("wonderwords") / "assets" / name).read_bytes()
    except (ModuleNotFoundError, OSError) as exc:
        raise DataError(f"cannot read the word list {name} ({exc}); install it with: pip install 'wonderwords==3.0.1'") from None
    expected = _LISTS.get(name)
    if expected and hashlib.sha256(data).hexdigest() != expected:
        raise DataError(f"word list {name} of the installed wonderwords differs from 3.0.1's; "
                        "install it with: pip install 'wonderwords==3.0.1'")
    return data.decode("utf-8")


@functools.lru_cache(maxsize=1)
def word_pool() -> tuple[str, ...]:
    """About 8,000 distinct words, sorted (the order is part of the generator's determinism)."""
    words = {w.strip() for name in _LISTS for w in _read(name).splitlines()}
    banned = {w.strip() for w in _read("profanitylist.txt").splitlines()}
    return tuple(sorted(w for w in words if _WORD.fullmatch(w) and w not in banned))


# Compound parts have 3 to 7 letters, so a compound is two or three everyday pieces for a BPE.
_PART_LETTERS = range(3, 8)
_COMPOUND_ORDER_SEED = 250417768


@functools.lru_cache(maxsize=1)
def _compound_order() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(adjective pool indices, noun pool indices, a fixed permutation of all their pairs)."""
    index = {w: i for i, w in enumerate(word_pool())}

    def parts(name: str) -> np.ndarray:
        words = {w.strip() for w in _read(name).splitlines()}
        return np.array(sorted(index[w] for w in words if w in index and len(w) in _PART_LETTERS))

    adjectives, nouns = parts("adjectivelist.txt"), parts("nounlist.txt")
    return adjectives, nouns, np.random.default_rng(_COMPOUND_ORDER_SEED).permutation(len(adjectives) * len(nouns))


@functools.lru_cache(maxsize=2)
def compound_words(count: int) -> tuple[tuple[str, ...], np.ndarray]:
    """The first `count` compounds and their parts' `word_pool()` indices (`[count, 2]`). Every
    compound is distinct from every pool word and from the other compounds; the first `count` of a
    longer list are these, so lists of every length share one order."""
    pool = word_pool()
    taken = set(pool)
    adjectives, nouns, order = _compound_order()
    words, parts = [], []
    for pair in order.tolist():
        if len(words) == count:
            break
        a, n = int(adjectives[pair // len(nouns)]), int(nouns[pair % len(nouns)])
        word = pool[a] + pool[n]
        if word not in taken:
            taken.add(word)
            words.append(word)
            parts.append((a, n))
    if len(words) < count:
        raise DataError(f"only {len(words)} compound words exist; asked for {count}")
    return tuple(words), np.array(parts, dtype=np.int64).reshape(-1, 2)
