"""The cost of later latent steps: a training step with one, two and three Gauss–Newton steps, the
later ones on every point or on a random share of them (``later_fraction``), against one step.

    python benchmarks/later_steps.py [--latent 64] [--batch 32] [--repeats 6] [--device cpu]

The image task's CPU model (SIREN 4×128, latent shifts, damping 0.03; 28² images, a 25 %
Monte-Carlo outer integral). All variants live in this process and are timed interleaved (one
step of each in turn, ``--repeats`` rounds, the median kept), so the ratios compare like with
like on a busy machine. The first step is shared by the batch (one pass over the 784 pixels); a
later step runs per image, so its cost grows with ``batch × later_fraction × pixels``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import inr_gon as ig  # noqa: E402
from inr_gon.training.objectives import GONObjective  # noqa: E402
from inr_gon.training.runtime import keep_freed_memory  # noqa: E402

#: (steps, later_fraction) of each variant; the first is the reference
VARIANTS = ((1, None), (2, None), (2, 0.5), (2, 0.25), (2, 0.0625), (3, 0.25))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--latent", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=6, help="timed rounds (the median is kept)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    if a.repeats < 1:
        ap.error("--repeats must be >= 1")
    device = torch.device(a.device)
    keep_freed_memory()
    torch.manual_seed(0)
    c = ig.grid((28, 28), device=device)
    x = torch.rand(a.batch, 28 * 28, 1, device=device)
    runs = []
    for steps, frac in VARIANTS:
        torch.manual_seed(0)  # the same weights for every variant
        m = ig.LatentSiren(
            2, a.latent, 1, 128, 4, w0_latent=30.0, latent_shifts=True, gauss_newton=0.03, latent_steps=steps,
            later_fraction=frac,
        ).to(device)  # fmt: skip
        obj = GONObjective(m, inner=ig.GridIntegrator(scale=1 / 64), outer=ig.MonteCarloIntegrator(fraction=0.25))
        runs.append((steps, frac, obj, torch.optim.Adam(m.parameters(), lr=0.0), []))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for r in range(a.repeats + 1):  # round 0 warms up
        for _, _, obj, opt, times in runs:
            sync()
            t0 = time.perf_counter()
            loss = obj(c, x)[0]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sync()
            if r:
                times.append(time.perf_counter() - t0)
    base = statistics.median(runs[0][4])
    rows = []
    print(f"device={device} threads={torch.get_num_threads()} batch={a.batch} latent={a.latent} repeats={a.repeats}")
    print(f"{'steps':>5}  {'later fraction':>14}  {'ms / step':>9}  {'vs one step':>11}")
    for steps, frac, _, _, times in runs:
        t = statistics.median(times)
        rows.append({"steps": steps, "later_fraction": frac or 1.0, "seconds": t, "ratio": t / base})
        print(f"{steps:>5}  {frac or 1.0:>14g}  {t * 1e3:>9.1f}  {t / base:>10.2f}x")
    if a.json:
        a.json.write_text(
            json.dumps({"device": str(device), "batch": a.batch, "latent": a.latent, "rows": rows}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
