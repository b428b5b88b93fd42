"""Peak resident memory of this process, for the benchmarks (Linux ``/proc``; ``None`` elsewhere)."""

from __future__ import annotations

__all__ = ["proc_kib", "reset_peak"]


def proc_kib(field: str) -> int | None:
    """A ``/proc/self/status`` field in KiB (``"VmRSS"``, ``"VmHWM"``), or ``None``."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak() -> bool:
    """Reset the peak (``VmHWM := VmRSS``) through ``/proc/self/clear_refs``; ``False`` where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False
