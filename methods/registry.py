"""Methods by name: built-ins, classes registered with `@register_method`, and third-party packages
that expose a Method subclass (or a module that registers one) in the `sftasks.methods` entry point group.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any, Callable

from sftasks.errors import InputError

from .base import Method

_BUILTIN_MODULES = ("dense", "vertical_slash", "block_sparse", "flexprefill", "quest", "snapkv")
_REGISTRY: dict[str, type[Method]] = {}
_loaded = False


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator: make a Method subclass available to `get_method(cls.name)` and `sftasks eval`."""
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise TypeError(f"register_method expects a Method subclass, got {cls!r}")
    _REGISTRY[cls.name] = cls
    return cls


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in _BUILTIN_MODULES:
        importlib.import_module(f"{__package__}.{module}")
    for ep in entry_points(group="sftasks.methods"):
        obj = ep.load()
        if isinstance(obj, type) and issubclass(obj, Method):
            _REGISTRY.setdefault(obj.name, obj)


def method_names() -> list[str]:
    _load()
    return sorted(_REGISTRY)


def get_method_class(name: str) -> type[Method]:
    _load()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise InputError(f"unknown method {name!r}; known methods: {', '.join(sorted(_REGISTRY))}") from None


def get_method(name: str, **params: Any) -> Method:
    """A fresh method instance; string knobs (from the CLI) are converted and every knob is validated."""
    return get_method_class(name)(**params)


def dispatch(name: str, reference: Callable, tensor) -> Callable:
    """The Triton twin `sftasks.kernels.<name>` for CUDA tensors when kernels are available, else `reference`.

    The import is guarded so that CPU-only installs never need triton.
    """
    if not getattr(tensor, "is_cuda", False):
        return reference
    try:
        kernels = importlib.import_module("sftasks.kernels")
    except ImportError:
        return reference
    available = getattr(kernels, "available", None)
    if available is None or not available():
        return reference
    return getattr(kernels, name, reference)
