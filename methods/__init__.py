"""Sparse attention methods behind one interface, with engine adapters."""
