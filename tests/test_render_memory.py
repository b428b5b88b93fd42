"""render(): working memory bounded by chunk_size (not the resolution); any number of axes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import inr_gon as ig

ROOT = Path(__file__).resolve().parents[1]

# Peak resident-set increase of one render in a fresh process (PyTorch's CPU allocations are
# invisible to tracemalloc): VmHWM is reset through /proc/self/clear_refs just before it.
PEAK_SCRIPT = r"""
import json, sys, time
from pathlib import Path
import torch
import inr_gon as ig

def kib(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])

torch.set_num_threads(1)
torch.manual_seed(0)
N, chunk = int(sys.argv[1]), int(sys.argv[2])
model = ig.LatentSiren(2, 4, 1, 32, 2).eval()
z = torch.randn(1, 4)
ig.render(model, z, 8, chunk_size=chunk)
Path("/proc/self/clear_refs").write_text("5")
base = kib("VmRSS")
out = ig.render(model, z, N, chunk_size=chunk)
print(json.dumps({"peak": (kib("VmHWM") - base) * 1024, "output": out.numel() * out.element_size()}))
"""


def _clear_refs_works() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return "VmHWM" in Path("/proc/self/status").read_text()
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux") or not _clear_refs_works(),
                    reason="needs Linux /proc/self/clear_refs to measure peak memory")
def test_2048_render_peak_memory_is_bounded_by_the_chunk():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, "2048", "4096"], capture_output=True, text=True,
                       env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout.strip().splitlines()[-1])
    MiB = 2 ** 20
    assert m["output"] == 2048 * 2048 * 4                  # the (1, 1, 2048, 2048) float32 output: 16 MiB
    # unchunked, each (1, 2048², 32) activation alone is 512 MiB; chunked, the working memory is
    # a few (4096, 32) tensors (0.5 MiB each) plus allocator slack
    assert m["peak"] - m["output"] < 24 * MiB, m


def test_3d_render_equals_direct_output_for_any_chunk():
    torch.manual_seed(0)
    m3 = ig.LatentSiren(3, 4, 2, 16, 2).double()
    z = torch.randn(3, 4, dtype=torch.float64)
    res = (5, 7, 6)
    direct = ig.points_to_image(m3(ig.grid(res, dtype=torch.float64), z), res).detach()
    for chunk in (1, 10, 3 * 31, 10 ** 6):
        torch.testing.assert_close(ig.render(m3, z, res, chunk_size=chunk), direct, rtol=0, atol=1e-12)


def test_render_window_and_align_corners_with_small_chunks():
    torch.manual_seed(0)
    m = ig.LatentSiren(2, 4, 1, 16, 2).double()
    z = torch.randn(2, 4, dtype=torch.float64)
    win = [(-0.5, 0.25), (0.0, 1.5)]
    c = ig.grid((9, 4), bounds=win, align_corners=True, dtype=torch.float64)
    direct = ig.points_to_image(m(c, z), (9, 4)).detach()
    got = ig.render(m, z, (9, 4), window=win, align_corners=True, chunk_size=7)
    torch.testing.assert_close(got, direct, rtol=0, atol=1e-12)


def test_render_bad_chunk_size():
    m = ig.LatentSiren(2, 4, 1, 8, 1)
    with pytest.raises(ValueError, match="chunk_size"):
        ig.render(m, torch.randn(1, 4), 4, chunk_size=0)
