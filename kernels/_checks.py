"""Shape and dtype checks shared by the kernel wrappers: a wrong call fails here with a clear message,
not inside a kernel with a wild memory access."""

from __future__ import annotations

import torch

from sftasks.errors import InputError

DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[int, int, int, int]:
    """q [T, Hq, D], k/v [T, Hkv, D], Hq a multiple of Hkv -> (T, Hq, Hkv, D)."""
    if q.dim() != 3 or k.dim() != 3 or k.shape != v.shape:
        raise InputError(f"expected q [T, Hq, D] and k, v [T, Hkv, D]; got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    T, Hq, D = q.shape
    if k.shape[0] != T or k.shape[2] != D or Hq % k.shape[1]:
        raise InputError(f"q {tuple(q.shape)} and k {tuple(k.shape)} disagree: same T and D, Hq a multiple of Hkv")
    check_head_dim(D)
    check_tensors(q, k, v)
    return T, Hq, k.shape[1], D


def check_head_dim(D: int) -> None:
    if D not in (16, 32, 64, 128, 256):
        raise InputError(f"head_dim {D} is not supported by the Triton kernels; use 16, 32, 64, 128 or 256")


def check_tensors(*xs: torch.Tensor) -> None:
    if any(x.dtype != xs[0].dtype or x.device != xs[0].device for x in xs):
        raise InputError("q, k and v must share one dtype and device")
    if xs[0].dtype not in DTYPES:
        raise InputError(f"dtype {xs[0].dtype} is not supported; use float16, bfloat16 or float32")
    if any(x.stride(-1) != 1 for x in xs):
        raise InputError("the last (head_dim) dimension must be contiguous")


def tma_rows(x: torch.Tensor) -> bool:
    """Whether x [T, H, D] can be read through a TMA descriptor as T rows of H * D elements: heads packed
    in a row, rows 16-byte aligned (what the descriptor needs). Views that are not (transformers'
    head-major ones) go through pointer loads."""
    return (x.stride(2) == 1 and x.stride(1) == x.shape[2] and x.stride(0) * x.element_size() % 16 == 0
            and x.data_ptr() % 16 == 0)
