"""CLI subcommands: each module has add_parser(subparsers) and run(args)."""

from __future__ import annotations

from ..errors import InputError


def parse_params(pairs: list[str] | None) -> dict[str, str]:
    """`["k=v", ...]` from repeated `--param` options; values stay strings for the owner to convert."""
    params: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"bad --param {pair!r}: write NAME=VALUE")
        params[key.strip()] = value.strip()
    return params
