"""Lengths are token counts written `4k`, `64k`, `1m` (1k = 1024, 1m = 1024k) or plain integers."""

from __future__ import annotations

import re

from .errors import LengthError

_LENGTH = re.compile(r"^\s*(\d+)\s*([kKmM]?)\s*$")
_UNITS = {"": 1, "k": 1024, "m": 1024 * 1024}


def parse_length(value: str | int) -> int:
    """`"64k"` -> 65536; `65536` -> 65536. Raises LengthError on anything else."""
    if isinstance(value, bool):
        raise LengthError(f"bad length {value!r}: write e.g. 4k, 64k, 1m or a positive integer")
    if isinstance(value, int):
        tokens = value
    else:
        match = _LENGTH.match(str(value))
        if not match:
            raise LengthError(f"bad length {value!r}: write e.g. 4k, 64k, 1m or a positive integer")
        tokens = int(match.group(1)) * _UNITS[match.group(2).lower()]
    if tokens <= 0:
        raise LengthError(f"bad length {value!r}: a length must be positive")
    return tokens


def format_length(tokens: int) -> str:
    """65536 -> `"64k"`, 1048576 -> `"1m"`, 1000 -> `"1000"`: the config name of a length."""
    if tokens % _UNITS["m"] == 0:
        return f"{tokens // _UNITS['m']}m"
    if tokens % _UNITS["k"] == 0:
        return f"{tokens // _UNITS['k']}k"
    return str(tokens)


def parse_lengths(value: str) -> list[int]:
    """`"4k,8k,16k"` -> [4096, 8192, 16384], in the given order, without duplicates."""
    lengths: list[int] = []
    for part in str(value).split(","):
        tokens = parse_length(part)
        if tokens not in lengths:
            lengths.append(tokens)
    return lengths


def lower_bound(target: int, tolerance: float = 0.005) -> int:
    """Smallest admissible token count for a target: target*(1-tolerance) <= n <= target."""
    import math

    return math.ceil(target * (1.0 - tolerance))
