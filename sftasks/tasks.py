"""The task interface and registry: generators register tasks; the CLI and API find them by name."""

from __future__ import annotations

import dataclasses
import importlib
import zlib
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from .errors import InputError, LengthError
from .knobs import make_config
from .lengths import format_length
from .records import Sample
from .tokenizers import Tokenizer

# Modules whose import registers tasks.
_TASK_MODULES = ("sftasks.generators.story", "sftasks.generators.ruler", "sftasks.generators.qa")
_REGISTRY: dict[str, "Task"] = {}


class Task(ABC):
    """A task family: knobs (`Params`, a dataclass with defaults), a version, and `build`.

    `build` must return a Sample whose `input` has `target*(1-0.005) <= tokens <= target` under the
    tokenizer and whose answer is supported by `evidence` spans of that input. It gets a seeded
    numpy Generator and must use no other randomness. `generate_records` calls `build_sample`
    (seed and sample index), which by default hands `build` the generator `sample_rng` makes.
    """

    name: ClassVar[str]
    version: ClassVar[str]
    Params: ClassVar[type]
    description: ClassVar[str] = ""

    def make_params(self, overrides: dict[str, Any] | None = None):
        """Defaults updated with `overrides` (strings are converted to the knob's type), validated."""
        params = make_config(self.Params, f"task {self.name}", overrides)
        self.validate(params)
        return params

    def validate(self, params) -> None:
        """Raise InputError for knobs out of range. Default: positive integers stay positive."""
        for f in dataclasses.fields(params):
            value = getattr(params, f.name)
            if isinstance(value, int) and not isinstance(value, bool) and value < 0:
                raise InputError(f"parameter {f.name} of task {self.name} must be >= 0, got {value}")

    def min_tokens(self, params, tokenizer: Tokenizer) -> int:
        """The smallest target length that fits these knobs (the refusal message names it)."""
        return 1024

    def check_length(self, target_tokens: int, params, tokenizer: Tokenizer) -> None:
        smallest = self.min_tokens(params, tokenizer)
        if target_tokens < smallest:
            raise LengthError(
                f"{format_length(target_tokens)} is too short for {self.name} with these parameters; "
                f"the smallest length that works is {smallest} tokens ({_round_up_k(smallest)})"
            )

    @abstractmethod
    def build(self, target_tokens: int, rng: np.random.Generator, tokenizer: Tokenizer, params) -> Sample:
        """One sample filled exactly to `target_tokens`; sets `sample.num_tokens`."""

    def build_sample(self, target_tokens: int, *, seed: int, index: int, tokenizer: Tokenizer, params) -> Sample:
        """Sample `index` of `seed` (what `generate_records` calls). The default builds from
        `sample_rng(name, target_tokens, seed, index)`; a task whose content must not depend on the
        length (QA asks the same question at every length) overrides this and still calls `build`."""
        return self.build(target_tokens, sample_rng(self.name, target_tokens, seed, index), tokenizer, params)


def _round_up_k(tokens: int) -> str:
    return f"{-(-tokens // 1024)}k"


def register(cls: type[Task]) -> type[Task]:
    """Class decorator: make a task available by its `name`."""
    _REGISTRY[cls.name] = cls()
    return cls


def _load_builtin() -> None:
    for module in _TASK_MODULES:
        importlib.import_module(module)


def task_names() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def get_task(name: str) -> Task:
    _load_builtin()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise InputError(f"unknown task {name!r}; known tasks: {', '.join(sorted(_REGISTRY))}") from None


def sample_rng(task: str, target_tokens: int, seed: int, index: int) -> np.random.Generator:
    """The per-sample generator: a pure function of its inputs (no Python hash seed involved)."""
    return np.random.default_rng([zlib.crc32(task.encode()), int(target_tokens), int(seed), int(index)])
