"""Knobs: dataclass configs of tasks and methods built from CLI strings or Python values, type-checked."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from .errors import InputError


def make_config(config_cls: type, owner: str, values: dict[str, Any] | None):
    """`config_cls(**values)` with each value converted to its field's type; `owner` names it in errors
    (e.g. "task story_multihop", "method quest")."""
    kinds = field_types(config_cls)
    unknown = sorted(set(values or {}) - set(kinds))
    if unknown:
        raise InputError(f"unknown parameter {unknown[0]!r} for {owner}; known: {', '.join(kinds) or 'none'}")
    return config_cls(**{key: coerce(owner, key, value, kinds[key]) for key, value in (values or {}).items()})


def field_types(config_cls: type) -> dict[str, Any]:
    """Field name -> type, in field order; the default's type where an annotation cannot be resolved."""
    try:
        hints = typing.get_type_hints(config_cls)
    except Exception:  # e.g. a config declared in a function, annotated with a local name
        hints = {}
    return {f.name: hints.get(f.name, type(f.default)) for f in dataclasses.fields(config_cls)}


def coerce(owner: str, key: str, value: Any, kind: Any) -> Any:
    """A knob value (a string from the CLI, or a Python value) as the field's type, or InputError."""
    optional = typing.get_origin(kind) in (typing.Union, types.UnionType) and type(None) in typing.get_args(kind)
    if optional:
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            return None
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    bad = InputError(f"parameter {key} of {owner} must be {getattr(kind, '__name__', kind)}, got {value!r}")
    if isinstance(value, str) and kind is not str:
        text = value.strip().lower()
        if kind is bool:
            if text not in ("true", "false", "1", "0", "yes", "no"):
                raise bad
            return text in ("true", "1", "yes")
        try:
            value = float(text) if kind is float else int(text) if kind is int else kind(value)
        except (TypeError, ValueError):
            raise bad from None
    if kind is bool and not isinstance(value, bool):
        raise bad
    if kind in (int, float) and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise bad
    if kind is int and isinstance(value, float):
        if not value.is_integer():
            raise bad
        value = int(value)
    return float(value) if kind is float else value
