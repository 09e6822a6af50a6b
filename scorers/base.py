"""The scorer interface and registry: one function per task, `fn(prediction, record) -> Score`.

A sample whose prediction has no extractable answer gets `Score(0.0, parsed=False, ...)` and STAYS in
every mean: dropping it (as the paper's code did) rewards models that fail to answer.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import InputError

# Modules whose import registers scorers; a module still being written may be absent.
_SCORER_MODULES = ("sftasks.scorers.story", "sftasks.scorers.ruler", "sftasks.scorers.qa")
_REGISTRY: dict[str, Callable[[str, dict], "Score"]] = {}


@dataclass
class Score:
    """`value`: the task's main metric in [0, 1]; `metrics`: named extras (fuzzy, precision, ...)."""

    value: float
    parsed: bool
    metrics: dict[str, float] = field(default_factory=dict)


def register_scorer(task_name: str):
    """Decorator: `@register_scorer("story_multihop") def score(prediction, record) -> Score`."""

    def decorate(fn: Callable[[str, dict], Score]) -> Callable[[str, dict], Score]:
        _REGISTRY[task_name] = fn
        return fn

    return decorate


def _load_builtin() -> None:
    for module in _SCORER_MODULES:
        importlib.import_module(module)


def scorer_names() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def get_scorer(task_name: str) -> Callable[[str, dict], Score]:
    _load_builtin()
    try:
        return _REGISTRY[task_name]
    except KeyError:
        raise InputError(
            f"no scorer for task {task_name!r}; scorers exist for: {', '.join(sorted(_REGISTRY)) or 'none'}"
        ) from None


def score_record(prediction: Any, record: dict) -> Score:
    """Score one prediction against its gold record; a missing (None) prediction scores 0, unparsed."""
    scorer = get_scorer(record["task"])
    if prediction is None:
        prediction = ""
    elif not isinstance(prediction, str):
        prediction = str(prediction)
    return scorer(prediction, record)
