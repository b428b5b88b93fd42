"""Rendering speed and peak memory at 256², 1024² and 4096² (chunked ``inr_gon.render``).

Every (model, resolution) cell runs in a *fresh subprocess*, so its peak memory is its own:

* CPU: the increase of the process's resident-set high-water mark (``VmHWM`` in
  ``/proc/self/status``, reset through ``/proc/self/clear_refs`` just before the render) over
  the resident set at that moment (model, latents and imports already loaded). PyTorch's CPU
  allocations are invisible to ``tracemalloc``/``getrusage`` deltas; this is not.
* CUDA: ``torch.cuda.max_memory_allocated()`` minus the memory allocated before the render.

The output image itself is ``B × O × N² × 4`` bytes (64 MiB per image-channel at 4096²); the
``extra`` column is the peak minus that output: the working memory, which chunking bounds by
``chunk_size × hidden × a few layers`` whatever the resolution. The ``direct`` row evaluates
``model(grid, z)`` in one call (no chunking; under ``no_grad`` like ``render``) at the smallest
size for comparison; ratios
are chunked / direct.

    python benchmarks/render.py                      # CPU, 1 thread, B=4
    python benchmarks/render.py --device cuda --full # every cell, on the GPU
    python benchmarks/render.py --json render.json   # also write the rows as JSON

On CPU, cells whose estimated time (from the measured 256² rate) exceeds ``--max-seconds`` are
listed as skipped with the estimate, unless ``--full``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

MODELS = {
    # name: LatentSiren(coord_dim, latent, out, hidden, layers)
    "206k": (2, 32, 1, 256, 4),  # the official MNIST model [34, 256, 256, 256, 256, 1]
    "small": (2, 32, 1, 64, 3),
}


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not found in /proc/self/status")


def worker(spec: dict) -> dict:
    """Run one cell in this (fresh) process; return its measurements."""
    import torch

    import inr_gon as ig

    torch.set_num_threads(spec["threads"])
    dev = torch.device(spec["device"])
    torch.manual_seed(0)
    model = ig.LatentSiren(*MODELS[spec["model"]]).to(dev).eval()
    z = torch.randn(spec["batch"], model.latent_dim, device=dev)
    N, B = spec["resolution"], spec["batch"]
    ig.render(model, z, 8, chunk_size=spec["chunk_size"])  # warm up kernels/allocator
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
    else:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to VmRSS
        base = _status_kib("VmRSS") * 1024
    t0 = time.perf_counter()
    if spec["direct"]:
        with torch.no_grad():  # same inference mode as render
            out = model(ig.grid(N, dim=2, device=dev), z)  # (B, N², O), one call
    else:
        out = ig.render(model, z, N, chunk_size=spec["chunk_size"])  # (B, O, N, N)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    seconds = time.perf_counter() - t0
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated(dev) - base
    else:
        peak = _status_kib("VmHWM") * 1024 - base
    assert bool(torch.isfinite(out).all())
    return dict(
        spec,
        seconds=seconds,
        points=B * N * N,
        points_per_s=B * N * N / seconds,
        peak_bytes=peak,
        output_bytes=out.numel() * out.element_size(),
        params=sum(p.numel() for p in model.parameters()),
    )


def run_cell(spec: dict) -> dict:
    r = subprocess.run([sys.executable, __file__, "--_worker", json.dumps(spec)], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"benchmark cell {spec} failed:\n{r.stderr.strip()}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")
    p.add_argument("--batch", type=int, default=4, help="latents rendered at once (default: 4)")
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 1024, 4096])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--chunk-size", type=int, default=2**16, help="points × batch per chunk (default: 65536)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default: 1)")
    p.add_argument(
        "--max-seconds", type=float, default=150.0, help="CPU: skip cells estimated to take longer (default: 150)"
    )
    p.add_argument("--full", action="store_true", help="run every cell, however long")
    p.add_argument("--json", help="also write the rows to this JSON file")
    p.add_argument("--_worker", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a._worker:
        print(json.dumps(worker(json.loads(a._worker))))
        return 0

    import torch

    dev = "cuda" if a.device == "auto" and torch.cuda.is_available() else ("cpu" if a.device == "auto" else a.device)
    if dev.startswith("cuda") and not torch.cuda.is_available():
        p.error("--device cuda requested but CUDA is not available")
    MiB = 2**20
    rows = []
    hdr = (
        f"{'model':>6} {'params':>7} {'mode':>7} {'res':>6} {'points':>10} {'s':>8} {'Mpts/s':>7} "
        f"{'peak MiB':>9} {'out MiB':>8} {'extra MiB':>9} {'t/direct':>8} {'mem/direct':>10}"
    )
    print(f"device={dev} batch={a.batch} chunk_size={a.chunk_size} threads={a.threads}")
    print(hdr)
    print("-" * len(hdr))
    for name in a.models:
        base = dict(model=name, device=dev, batch=a.batch, chunk_size=a.chunk_size, threads=a.threads)
        direct = run_cell(dict(base, resolution=min(a.sizes), direct=True))
        rate = direct["points_per_s"]
        cells = [direct]
        for N in a.sizes:
            est = a.batch * N * N / rate
            if dev == "cpu" and not a.full and est > a.max_seconds:
                cells.append(dict(base, resolution=N, direct=False, skipped=est))
                continue
            cells.append(run_cell(dict(base, resolution=N, direct=False)))
            rate = cells[-1]["points_per_s"]
        for c in cells:
            mode = "direct" if c["direct"] else "render"
            if "skipped" in c:
                print(
                    f"{name:>6} {direct['params']:>7} {mode:>7} {c['resolution']:>5}² "
                    f"{a.batch * c['resolution'] ** 2:>10}   skipped (estimated {c['skipped']:.0f} s > "
                    f"--max-seconds; --full runs it)"
                )
                rows.append(c)
                continue
            same = not c["direct"] and c["resolution"] == direct["resolution"]
            t_ratio = f"{c['seconds'] / direct['seconds']:.2f}" if same else ""
            m_ratio = f"{c['peak_bytes'] / max(direct['peak_bytes'], 1):.2f}" if same else ""
            print(
                f"{name:>6} {c['params']:>7} {mode:>7} {c['resolution']:>5}² {c['points']:>10} "
                f"{c['seconds']:>8.2f} {c['points_per_s'] / 1e6:>7.3f} {c['peak_bytes'] / MiB:>9.1f} "
                f"{c['output_bytes'] / MiB:>8.1f} {(c['peak_bytes'] - c['output_bytes']) / MiB:>9.1f} "
                f"{t_ratio:>8} {m_ratio:>10}"
            )
            rows.append(c)
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
