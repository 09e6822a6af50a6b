"""Triton kernels: fast paths of the methods hooks, tested against the PyTorch references."""
