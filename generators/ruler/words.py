"""The common-word task's word pool: English nouns, adjectives and verbs from the `wonderwords`
package (MIT; the word lists the paper's code used), lower-case letters only, profanity removed.

The lists are pinned by SHA-256 so a changed package fails loudly instead of silently changing
every generated sample.
"""

from __future__ import annotations

import functools
import hashlib
import re
from importlib import resources

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
