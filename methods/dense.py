"""Dense attention: the baseline every sparse method is compared with (all hooks dense)."""

from __future__ import annotations

from .base import Method
from .registry import register_method


@register_method
class Dense(Method):
    name = "dense"
