"""Process-wide speed settings that a training process (not the mathematical core) opts into."""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

import torch

__all__ = ["configure_tf32", "keep_freed_memory"]

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3      # glibc <malloc.h>


def configure_tf32(enabled: bool) -> None:
    """Allow (or forbid) TF32 tensor-core matmuls and convolutions on CUDA (process-wide; no
    effect on CPU). TF32 keeps float32 range with a 10-bit mantissa (~1e-3 relative error
    per product), for faster float32 matmuls on Ampere and later GPUs."""
    torch.backends.cuda.matmul.allow_tf32 = bool(enabled)
    torch.backends.cudnn.allow_tf32 = bool(enabled)


def keep_freed_memory(*, threshold: int = 1 << 30) -> bool:
    """Let glibc's ``malloc`` keep freed memory for reuse instead of handing it back to the OS.

    By default glibc maps every block above 32 MiB afresh from the kernel and unmaps it when
    freed, so each large activation of a CPU training step (a ``(B·P, H)`` float32 tensor is
    51 MB at the paper's size) is paid for again with a zero-filled page fault per 4 KiB (the
    README's "Speed" section has the figures). Raising ``M_MMAP_THRESHOLD`` and
    ``M_TRIM_THRESHOLD`` to ``threshold`` bytes serves such blocks from the heap and keeps it.
    Process-wide: the resident size then stays at the step's peak (which it reaches anyway).

    Returns:
        ``True`` if applied; ``False`` (nothing changed) where the C library is not glibc
        (macOS, Windows, musl).
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    if not 0 < threshold < 2 ** 31:
        raise ValueError(f"threshold must be in (0, 2**31) bytes, got {threshold}")
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, threshold)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, threshold))
