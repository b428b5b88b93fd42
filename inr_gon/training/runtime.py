"""Process-wide speed settings that a training process (not the mathematical core) opts into."""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
import time

import torch

__all__ = ["configure_tf32", "keep_freed_memory", "bf16_matmul_speedup", "resolve_amp"]

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc <malloc.h>


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
    figures are in docs/findings/speed.md). Raising ``M_MMAP_THRESHOLD`` and
    ``M_TRIM_THRESHOLD`` to ``threshold`` bytes serves such blocks from the heap and keeps it.
    Process-wide: the resident size then stays at the step's peak (which it reaches anyway).

    Returns:
        ``True`` if applied; ``False`` (nothing changed) where the C library is not glibc
        (macOS, Windows, musl).
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    if not 0 < threshold < 2**31:
        raise ValueError(f"threshold must be in (0, 2**31) bytes, got {threshold}")
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, threshold)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, threshold))


def bf16_matmul_speedup(device="cpu", *, rows: int = 4096, width: int = 256, repeats: int = 5) -> float:
    """How many times faster a ``(rows, width) @ (width, width)`` matmul runs in bfloat16 than in
    float32 on ``device`` (the best of ``repeats`` timings each, after one warm-up).

    CPUs with native bf16 dot products (AVX512-BF16, AMX) measure about 2-4x; CPUs without them
    emulate bf16 and measure below 1. About 20 ms on a CPU.
    """
    device = torch.device(device)
    g = torch.Generator().manual_seed(0)
    a32, b32 = torch.randn(rows, width, generator=g).to(device), torch.randn(width, width, generator=g).to(device)
    best = {}
    for dtype in (torch.float32, torch.bfloat16):
        a, b = a32.to(dtype), b32.to(dtype)
        a @ b
        times = []
        for _ in range(repeats):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t = time.perf_counter()
            a @ b
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - t)
        best[dtype] = min(times)
    return best[torch.float32] / max(best[torch.bfloat16], 1e-12)


def resolve_amp(amp: str, device, *, min_speedup: float = 1.5) -> str:
    """The autocast mode for ``amp``: ``"auto"`` is ``"bf16"`` on a CPU whose bf16 matmuls run at
    least ``min_speedup`` times faster than float32 (:func:`bf16_matmul_speedup`), else
    ``"off"`` (also on CUDA, whose defaults stay the paper's float32); other values unchanged."""
    if amp != "auto":
        return amp
    if torch.device(device).type != "cpu":
        return "off"
    return "bf16" if bf16_matmul_speedup("cpu") >= min_speedup else "off"
