"""Random codes, key-value needles and variable names: the small facts RULER-style tasks hide."""

from __future__ import annotations

import re

import numpy as np

_ALNUM = np.array(list("abcdefghijklmnopqrstuvwxyz0123456789"))
_UPPER = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))

# A needle states one key's value; the checker and the scorer read this exact form back.
NEEDLE = " The value of key {key} is {value}."
NEEDLE_PATTERN = re.compile(r"The value of key ([a-z0-9]{8}(?:-[a-z0-9]{8}){3}) is ([a-z0-9]{8}(?:-[a-z0-9]{8}){3})\.")
CODE_PATTERN = re.compile(r"[a-z0-9]{8}(?:-[a-z0-9]{8}){3}")


def unique_codes(rng: np.random.Generator, count: int, used: set[str]) -> list[str]:
    """`count` new codes like `k3j9x0aa-0pq8w1zz-...` (4 groups of 8), none in `used` (which grows)."""
    codes: list[str] = []
    while len(codes) < count:
        chars = _ALNUM[rng.integers(0, len(_ALNUM), size=(count - len(codes), 32))]
        for row in chars:
            code = "-".join("".join(row[i:i + 8]) for i in range(0, 32, 8))
            if code not in used:
                used.add(code)
                codes.append(code)
    return codes


def needle(key: str, value: str) -> str:
    return NEEDLE.format(key=key, value=value)


def unique_names(rng: np.random.Generator, count: int, length: int = 5, avoid: frozenset[str] = frozenset()) -> list[str]:
    """`count` distinct upper-case names of `length` letters (variable names), none in `avoid`."""
    names: list[str] = []
    seen = set(avoid)
    while len(names) < count:
        for row in _UPPER[rng.integers(0, len(_UPPER), size=(count - len(names), length))]:
            name = "".join(row)
            if name not in seen:
                seen.add(name)
                names.append(name)
    return names
