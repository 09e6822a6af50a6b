"""The story world and its three tasks: retrieval, multi-hop, aggregation (importing registers them)."""

from . import aggregation, multihop, retrieval  # noqa: F401
