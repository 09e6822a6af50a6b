"""sftasks: controllable long-context tasks at exact token lengths, and a sparse-attention harness."""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import DataError, Error, InputError, LengthError, TokenizerError  # noqa: E402
from .lengths import format_length, parse_length  # noqa: E402

__all__ = [
    "DataError", "Error", "InputError", "LengthError", "TokenizerError", "__version__",
    "format_length", "generate_records", "get_tokenizer", "load_dataset", "parse_length",
]


def generate_records(task: str, length, samples: int = 1, seed: int = 0, tokenizer: str | None = None, **params):
    """Records of `task` at `length` as a list of dicts (the published schema)."""
    from .generate import generate_records as _generate

    return list(_generate(task, length, samples=samples, seed=seed, tokenizer=tokenizer, params=params))


def get_tokenizer(name: str | None = None):
    from .tokenizers import get_tokenizer as _get

    return _get(name)


def load_dataset(name: str, length=None, split: str = "test", **kwargs):
    """Load a published task as a `datasets.Dataset` (local folder, Hub, or regenerated locally)."""
    from .hub import load_dataset as _load

    return _load(name, length=length, split=split, **kwargs)
