"""The story world and its three tasks: retrieval, multi-hop, aggregation."""
