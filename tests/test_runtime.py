"""Process-wide runtime settings (each check runs in a fresh interpreter: they are process-wide)."""

import platform
import subprocess
import sys

import pytest
import torch

from inr_gon.training.runtime import configure_tf32, keep_freed_memory

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# allocate, write and free a 64 MB tensor 14 times; print the page faults of the last six
# (the first few may land at new heap addresses while glibc's heap settles)
_PROBE = """
import resource, sys, torch
from inr_gon.training.runtime import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else None
def touch():
    x = torch.empty(16_000_000)
    x.fill_(1.0)
    del x
for _ in range(8):
    touch()
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(6):
    touch()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
"""


def _faults(mode):
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True)
    applied, faults = out.stdout.split()
    return applied, int(faults)


@pytest.mark.skipif(not GLIBC, reason="glibc malloc only")
def test_keep_freed_memory_reuses_large_blocks_without_page_faults():
    pages = 6 * 16_000_000 * 4 // 4096  # pages written by the six reuses
    _, default = _faults("default")
    applied, kept = _faults("keep")
    assert applied == "True"
    assert default > pages // 2  # glibc's default: fresh pages every time
    assert kept < pages // 3  # kept: the freed block is reused


def test_keep_freed_memory_validates_threshold():
    if not GLIBC:
        assert keep_freed_memory() is False
        return
    with pytest.raises(ValueError, match="threshold"):
        keep_freed_memory(threshold=0)


def test_configure_tf32_sets_and_restores_the_backend_flags():
    before = torch.backends.cuda.matmul.allow_tf32
    try:
        configure_tf32(True)
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        configure_tf32(False)
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    finally:
        configure_tf32(before)
