"""How the cost of one GON training step grows with image resolution.

For square images of 28², 64², 128² and 256² pixels (``P`` points, 1 and 3 channels, synthetic
data) this measures seconds per step and the step's peak memory of

* ``official``: the official formulation (cwkx/GON ``Implicit-GON.py``, from
  ``benchmarks/gon_step.py``): ``c ⊕ z`` built with ``repeat`` + ``cat``, the latent from a
  batched ``autograd.grad(create_graph=True)`` over ``B·P`` points, double backward;
* ``exact``: inr_gon's exact step (:func:`inr_gon.gon_loss`, shared-origin fast path, outer
  integral on the full grid);
* ``mc``: inr_gon's Monte-Carlo step (outer integral on a 25 % subset,
  ``MonteCarloIntegrator(fraction=0.25)``),

all in one process on the same weights (one ``LatentSiren(2, 32, C, 256, 4)`` per channel count:
the paper's 206,593-parameter MNIST network for ``C = 1``), batch ``B = 64``, one Adam step
(learning rate 0, as in ``gon_step.py``, so every formulation sees the same weights) included.
The table gives the ratios official/exact and official/MC of the same run (the official step
always integrates its outer loss over the full grid, as Implicit-GON.py does).

It also times the *inner latent alone* — inr_gon's :func:`inr_gon.gon_latent` with
``create_graph=True`` on the shared grid (one pass over ``P`` points) against the official inner
pass (``autograd.grad`` over ``B·P`` points) — to check the claim "the inner term costs one pass
over ``P`` points instead of ``B·P``": that ratio should be about ``B``. With ``C`` channels
inr_gon's inner pass back-propagates ``C`` Jacobian rows per point, so expect about
``2B / (1 + C)`` there. The step-level ratio is smaller than the inner one wherever the outer
pass (``B·P`` points in every exact formulation) dominates the step; the summary says where.

Measurements:

* seconds: median of ``--repeats`` timed steps after one warm-up step (one timed step at 256²;
  fewer where one step takes a large part of ``--max-seconds-per-cell``; ``--quick`` times its
  single step without a warm-up);
* peak memory: the increase during the first (warm-up) step of a cell. On CPU the peak
  resident set (Linux: reset through ``/proc/self/clear_refs``, read as ``VmHWM`` from
  ``/proc/self/status``, after glibc returned its freed memory with ``malloc_trim``; reported as
  missing elsewhere). On CUDA ``torch.cuda.max_memory_allocated`` above what was allocated
  before the step;
* growth: the log-log slope of seconds against ``P`` for each formulation and channel count.

Guards: a cell whose memory, estimated from its dominant tensors (``(N, H)`` float32
activations saved by the step, ``N`` the points of each pass, plus the ``N·(n+k)`` inputs of the
official formulation), exceeds ``--memory-limit-gib`` (default 70 % of the total RAM on CPU, of
the free GPU memory on CUDA) is not run and is reported as ``skipped: would need ~X GiB >
available Y GiB``; a cell whose first step (or its extrapolation from the previous resolution)
exceeds ``--max-seconds-per-cell`` is reported as ``skipped: too slow, estimated Z s``.

    python benchmarks/scaling.py                              # the full run (sized for a 2-core CPU)
    python benchmarks/scaling.py --quick                      # 28² and 64², 1 channel, 64-wide: seconds
    python benchmarks/scaling.py --json scaling.json --out results/  # + JSON and results/scaling.png
    python benchmarks/scaling.py --device cuda --out results/ --figure-copy docs/figures/scaling.png

``--keep-freed-memory`` applies :func:`inr_gon.training.runtime.keep_freed_memory` to the whole
process, as ``gon_step.py`` does (the trainer's CPU default; the peak memory is still that of the
first step). The run warns when other processes load the CPU: small passes then wait on
descheduled threads and are timed far too long; ``--threads 1`` is steadier there.

The figure ``DIR/scaling.png`` shows seconds per step against pixels, log–log, one line per
formulation (solid: 1 channel, dashed: 3 channels), skipped cells marked with ``x`` at their
estimated time (on the top edge where there is none); a second panel shows the inner latent.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import gc
import json
import math
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository (inr_gon)
sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/ (gon_step)

import inr_gon as ig  # noqa: E402
from gon_step import official_model, official_step, ours_step  # noqa: E402
from memory import proc_kib, reset_peak  # noqa: E402
from inr_gon.training.runtime import keep_freed_memory  # noqa: E402
from inr_gon.viz import pyplot, save_figure  # noqa: E402

MiB, GiB = 2**20, 2**30
FRACTION = 0.25  # the Monte-Carlo outer integral's share of points
STEPS = ("official", "exact", "mc")
INNERS = ("official_inner", "inr_gon_inner")
LABELS = {
    "official": "official (cwkx/GON)",
    "exact": "inr_gon exact",
    "mc": f"inr_gon MC {FRACTION:.0%}",
    "official_inner": "official inner",
    "inr_gon_inner": "inr_gon inner",
}
COLORS = {
    "official": "tab:red",
    "exact": "tab:blue",
    "mc": "tab:green",
    "official_inner": "tab:red",
    "inr_gon_inner": "tab:blue",
}

# (N, H) float32 tensors alive at a step's peak, per sine layer (the "saved activations"), and
# a constant number of transient ones; see estimate_bytes
OFFICIAL_PER_LAYER, OFFICIAL_EXTRA = 7, 3  # inner forward 2 + its create_graph backward 3 + outer forward 2
OFFICIAL_INNER_PER_LAYER, OFFICIAL_INNER_EXTRA = 5, 2
FUSED_PER_LAYER, FUSED_EXTRA = 2, 2  # inr_gon's outer pass: pre-activations + sines, fused backward
EXPLICIT_PER_LAYER = 4  # inr_gon's inner pass on P (·O) points, graph kept


# -- the official inner pass -------------------------------------------------------------------


def official_latent(F, c, x, nz):
    """The inner half of :func:`gon_step.official_step` alone: the latent of Implicit-GON.py from a
    batched ``autograd.grad(create_graph=True)`` over ``B·P`` points (graph kept, as for training).
    ``c`` ``(B, P, n)``, ``x`` ``(B, P, O)``; returns ``(B, 1, nz)``."""
    B, P = x.shape[:2]
    z = torch.zeros(B, 1, nz, device=x.device, requires_grad=True)
    g = F(torch.cat((c, z.repeat(1, P, 1)), dim=-1))
    L_inner = ((g - x) ** 2).sum(1).sum()
    return -torch.autograd.grad(L_inner, [z], create_graph=True, retain_graph=True)[0]


# -- memory ------------------------------------------------------------------------------------


def estimate_bytes(
    form: str, *, B: int, P: int, H: int, L: int, n: int, k: int, O: int, fraction: float = FRACTION
) -> int:
    """Memory of one cell from its dominant float32 tensors.

    ``N`` points of a pass times ``H`` per saved activation: the official step keeps the inner
    forward (2 per sine layer: ``w0·x`` and ``sin``), its ``create_graph`` backward (3: ``cos``,
    the incoming gradient, their product) and the outer forward (2) alive at the start of its
    double backward, over ``N = B·P``, plus the ``B·P·(n+k)`` inputs of both passes; inr_gon's
    outer pass keeps 2 per layer (fused backward: at most one more) over ``B·P`` (``B·m`` for the
    Monte-Carlo step) and its inner pass a few over ``P·O`` points.
    """
    f = 4
    m = max(1, round(fraction * P))
    if form == "official":
        N = B * P
        return f * (N * H * (OFFICIAL_PER_LAYER * L + OFFICIAL_EXTRA) + 3 * N * (n + k))
    if form == "official_inner":
        N = B * P
        return f * (N * H * (OFFICIAL_INNER_PER_LAYER * L + OFFICIAL_INNER_EXTRA) + 2 * N * (n + k))
    inner = P * max(O, 1) * H * (EXPLICIT_PER_LAYER * L + 2) + 2 * B * P * O
    if form == "inr_gon_inner":
        return f * inner
    N = B * (P if form == "exact" else m)
    return f * (N * H * (FUSED_PER_LAYER * L + FUSED_EXTRA) + inner)


_LIBC = None


def _trim_heap() -> None:
    """Return glibc's freed heap memory to the OS (no-op elsewhere), so that the next step's
    resident-set increase is its own."""
    global _LIBC
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return
    try:
        if _LIBC is None:
            _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        _LIBC.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def total_ram_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def default_memory_limit(device: torch.device) -> float:
    """70 % of the total RAM (CPU) or of the free GPU memory (CUDA), in bytes (inf if unknown)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return 0.7 * free
    total = total_ram_bytes()
    return 0.7 * total if total else math.inf


def _loadavg() -> float | None:
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(fn, device, *, peak: bool):
    """Run ``fn()`` once; return ``(seconds, peak increase in bytes or None)``."""
    base = None
    if peak:
        gc.collect()
        if device.type == "cuda":
            _sync(device)
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
        else:
            _trim_heap()
            if reset_peak():
                base = proc_kib("VmRSS")
    t0 = time.perf_counter()
    out = fn()
    _sync(device)
    seconds = time.perf_counter() - t0
    del out
    used = None
    if base is not None:
        if device.type == "cuda":
            used = torch.cuda.max_memory_allocated(device) - base
        else:
            hwm = proc_kib("VmHWM")
            used = None if hwm is None else max(0, hwm - base) * 1024
    return seconds, used


def _is_oom(e: BaseException) -> bool:
    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    text = str(e).lower()
    return (oom is not None and isinstance(e, oom)) or "out of memory" in text or "can't allocate memory" in text


def run_cell(
    fn,
    *,
    device,
    repeats: int,
    warmup: bool,
    max_seconds: float,
    est_bytes: int,
    limit_bytes: float,
    predicted_s: float | None,
) -> dict:
    """Guards, a first step (timed; its peak memory is the cell's; a warm-up unless ``warmup`` is
    false, when it is the first timed step), then up to ``repeats`` timed steps (median), fewer
    where they would take longer than ``max_seconds``."""
    rec = {"estimated_gib": est_bytes / GiB}
    if est_bytes > limit_bytes:
        return dict(
            rec,
            status="skipped",
            estimated_s=predicted_s,
            reason=f"skipped: would need ~{est_bytes / GiB:.3g} GiB > available {limit_bytes / GiB:.3g} GiB",
        )
    if predicted_s is not None and predicted_s > max_seconds:
        return dict(
            rec,
            status="skipped",
            estimated_s=predicted_s,
            reason=f"skipped: too slow, estimated {predicted_s:.0f} s (extrapolated in P)",
        )
    try:
        first, used = measure(fn, device, peak=True)
        rec.update(first_step_s=first, peak_mib=None if used is None else used / MiB)
        if first > max_seconds:
            return dict(rec, status="skipped", estimated_s=first, reason=f"skipped: too slow, estimated {first:.0f} s")
        times = [] if warmup else [first]
        more = min(repeats - len(times), int(max_seconds // max(first, 1e-9)))
        times += [measure(fn, device, peak=False)[0] for _ in range(max(more, 0 if times else 1))]
    except RuntimeError as e:
        if not _is_oom(e):
            raise
        if device.type == "cuda":
            torch.cuda.empty_cache()
        return dict(rec, status="skipped", estimated_s=predicted_s, reason="skipped: out of memory")
    return dict(rec, status="ok", times=times, seconds=float(np.median(times)))


# -- the run -----------------------------------------------------------------------------------


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def slope(points):
    """Least-squares slope of log(seconds) against log(pixels); None with fewer than 2 points."""
    pts = [(p, s) for p, s in points if s and s > 0]
    if len(pts) < 2 or len({p for p, _ in pts}) < 2:
        return None
    x, y = np.log([p for p, _ in pts]), np.log([s for _, s in pts])
    return float(np.polyfit(x, y, 1)[0])


def _fmt(v, spec, width):
    return f"{'-':>{width}}" if v is None else f"{v:>{width}{spec}}"


def print_row(r, ratio):
    s = r.get("seconds")
    print(
        f"{r['resolution']:>5}² {r['channels']:>2} {LABELS[r['formulation']]:<20} {_fmt(s, '.4f', 10)} "
        f"{_fmt(r.get('peak_mib'), '.0f', 9)} {r['estimated_gib']:>8.2f} "
        f"{('-' if ratio is None else f'{ratio:.1f}x'):>13}  {r.get('reason', '')}",
        flush=True,
    )


def run(args) -> dict:
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    kept = keep_freed_memory() if args.keep_freed_memory else False
    limit = args.memory_limit_gib * GiB if args.memory_limit_gib is not None else default_memory_limit(device)
    B, H, L, n, k = args.batch, args.hidden, args.layers, 2, args.latent
    cells, summary = [], []
    info = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device),
        "device_name": device_name(device),
        "threads": torch.get_num_threads(),
        "batch": B,
        "hidden": H,
        "layers": L,
        "latent": k,
        "fraction": FRACTION,
        "sizes": args.sizes,
        "channels": args.channels,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "max_seconds_per_cell": args.max_seconds_per_cell,
        "memory_limit_gib": limit / GiB,
        "total_ram_gib": (total_ram_bytes() or 0) / GiB,
        "keep_freed_memory": kept,
        "quick": args.quick,
        "cpu_count": os.cpu_count(),
        "params": {},
    }
    load = _loadavg()
    info["loadavg_1min_at_start"] = load
    print(
        f"device={device} ({info['device_name']})  torch={torch.__version__}  threads={info['threads']}  "
        f"B={B}  LatentSiren(2, {k}, C, {H}, {L})  memory limit {limit / GiB:.3g} GiB  "
        f"max {args.max_seconds_per_cell:.0f} s/cell  allocator={'glibc, freed memory kept' if kept else 'default'}"
    )
    if device.type == "cpu" and load is not None and load > 0.5:
        print(
            f"warning: load average {load:.1f} on {os.cpu_count()} cores before the run: other processes "
            "compete for the CPU, so the times are inflated and noisy (small passes most)"
        )
    print("official/this: the official step's seconds over this row's (inner rows: the official inner pass's)")
    print(
        f"{'res':>6} {'C':>2} {'formulation':<20} {'s/step':>10} {'peak MiB':>9} {'est GiB':>8} "
        f"{'official/this':>13}  note",
        flush=True,
    )
    last: dict = {}  # (formulation, C) -> (pixels, seconds) measured last
    t_start = time.perf_counter()
    for C in args.channels:
        torch.manual_seed(0)
        model = ig.LatentSiren(2, k, C, H, L).to(device)
        F = official_model(model)  # same weights, the official layers
        info["params"][str(C)] = sum(p.numel() for p in model.parameters())
        opt_o = torch.optim.Adam(F.parameters(), lr=0.0)  # lr 0: the weights stay the same
        opt_n = torch.optim.Adam(model.parameters(), lr=0.0)
        mc = ig.MonteCarloIntegrator(fraction=FRACTION)
        for res in args.sizes:
            P = res * res
            gen = torch.Generator().manual_seed(res * 10 + C)
            c = ig.grid(res, dim=2, device=device)
            x = torch.rand(B, P, C, generator=gen).to(device)
            c_rep = c.unsqueeze(0).expand(B, -1, -1)
            fns = {
                "official": lambda: official_step(F, opt_o, c_rep, x, k),
                "exact": lambda: ours_step(model, opt_n, c, x, None),
                "mc": lambda: ours_step(model, opt_n, c, x, mc),
                "official_inner": lambda: official_latent(F, c_rep, x, k),
                "inr_gon_inner": lambda: ig.gon_latent(model, c, x, create_graph=True, check=False),
            }
            reps = args.repeats if res < 256 else 1
            got, recs = {}, {}
            for form in STEPS + INNERS:
                prev = last.get((form, C))
                pred = prev[1] * P / prev[0] if prev else None
                r = run_cell(
                    fns[form],
                    device=device,
                    repeats=reps,
                    warmup=args.warmup > 0,
                    max_seconds=args.max_seconds_per_cell,
                    est_bytes=estimate_bytes(form, B=B, P=P, H=H, L=L, n=n, k=k, O=C),
                    limit_bytes=limit,
                    predicted_s=pred,
                )
                r = dict(
                    resolution=res,
                    pixels=P,
                    channels=C,
                    formulation=form,
                    label=LABELS[form],
                    kind="inner" if form in INNERS else "step",
                    **r,
                )
                if r["status"] == "ok":
                    last[(form, C)] = (P, r["seconds"])
                got[form] = r.get("seconds")
                ref = got.get("official_inner" if form in INNERS else "official")
                ratio = ref / r["seconds"] if ref and r.get("seconds") and not form.startswith("official") else None
                print_row(r, ratio)
                cells.append(r)
                recs[form] = r
            summary.append(claim_row(res, C, B, got, recs))
    slopes = []
    for form in STEPS + INNERS:
        for C in args.channels:
            pts = [
                (r["pixels"], r["seconds"])
                for r in cells
                if r["formulation"] == form and r["channels"] == C and r["status"] == "ok"
            ]
            slopes.append(
                {
                    "formulation": form,
                    "channels": C,
                    "slope": slope(pts),
                    "sizes": [int(round(math.sqrt(p))) for p, _ in pts],
                }
            )
    info["wall_s"] = time.perf_counter() - t_start
    return {"info": info, "cells": cells, "ratios": summary, "slopes": slopes}


def claim_row(res, C, B, got, recs) -> dict:
    """Ratios of one (resolution, channels) and whether the inner claim holds there."""
    div = lambda a, b: a / b if a and b else None
    inner = div(got["official_inner"], got["inr_gon_inner"])
    outer_share = (1 - got["inr_gon_inner"] / got["exact"]) if got["exact"] and got["inr_gon_inner"] else None
    row = {
        "resolution": res,
        "channels": C,
        "official_over_exact": div(got["official"], got["exact"]),
        "official_over_mc": div(got["official"], got["mc"]),
        "inner_ratio": inner,
        "inner_ratio_over_B": None if inner is None else inner / B,
        "expected_inner_ratio": 2 * B / (1 + C),
        "outer_share_of_exact": outer_share,
    }
    notes = []
    if inner is None:
        for f in INNERS:
            if recs[f]["status"] != "ok":
                notes.append(f"{LABELS[f]} not measured ({recs[f]['reason']})")
        row["holds"] = None
    else:
        row["holds"] = bool(inner >= 0.5 * row["expected_inner_ratio"])
        notes.append("inner claim holds" if row["holds"] else "inner ratio below half the expected")
    if outer_share is not None and outer_share > 0.5:
        notes.append(f"the outer pass is {outer_share:.0%} of inr_gon's exact step")
    row["note"] = "; ".join(notes)
    return row


def report(res: dict) -> None:
    B = res["info"]["batch"]
    print("\ngrowth: log-log slope of seconds against pixels P (1 = linear in P)")
    for s in res["slopes"]:
        v = "-" if s["slope"] is None else f"{s['slope']:.2f}"
        print(
            f"  {LABELS[s['formulation']]:<20} C={s['channels']}  slope {v:>5}  "
            f"({', '.join(f'{q}²' for q in s['sizes']) or 'too few measured sizes'})"
        )
    expected = ", ".join(f"{2 * B / (1 + c):.0f}" for c in res["info"]["channels"])
    print(
        f"\nclaim: the inner term costs one pass over P points instead of B·P (B = {B}): official inner / "
        f"inr_gon inner should be about B (about 2B/(1+C) = {expected} with C channels)"
    )
    print(f"{'res':>6} {'C':>2} {'inner ratio':>12} {'/B':>6} {'off/exact':>10} {'off/MC':>8}  note")
    for r in res["ratios"]:
        print(
            f"{r['resolution']:>5}² {r['channels']:>2} {_fmt(r['inner_ratio'], '.1f', 12)} "
            f"{_fmt(r['inner_ratio_over_B'], '.2f', 6)} {_fmt(r['official_over_exact'], '.1f', 10)} "
            f"{_fmt(r['official_over_mc'], '.1f', 8)}  {r['note']}"
        )
    by = {}
    for r in res["ratios"]:
        key = "holds" if r["holds"] else "not measured" if r["holds"] is None else "does not hold"
        by.setdefault(key, []).append(f"{r['resolution']}² C={r['channels']}")
    print("inner claim: " + "; ".join(f"{k} at {', '.join(v)}" for k, v in by.items()))
    dom = [
        f"{r['resolution']}² C={r['channels']}"
        for r in res["ratios"]
        if r["outer_share_of_exact"] is not None and r["outer_share_of_exact"] > 0.5
    ]
    if dom:
        print(
            "the outer pass (B·P points in every exact step) dominates inr_gon's exact step at "
            f"{', '.join(dom)}: there the step ratio official/exact stays well below the inner ratio"
        )
    print(f"\n{res['info']['wall_s']:.0f} s in all")


def plot(res: dict, path) -> Path:
    """Seconds against pixels, log–log: steps (left), inner latent (right)."""
    plt = pyplot()
    from matplotlib import ticker

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    cells = res["cells"]
    for ax, forms, title in ((axes[0], STEPS, "one training step"), (axes[1], INNERS, "inner latent alone")):
        measured = [r["seconds"] for r in cells if r["formulation"] in forms and r["status"] == "ok"]
        for i, form in enumerate(forms):
            for C in res["info"]["channels"]:
                rs = [r for r in cells if r["formulation"] == form and r["channels"] == C]
                ok = [r for r in rs if r["status"] == "ok"]
                ls = "-" if C == 1 else "--"
                if ok:
                    ax.plot(
                        [r["pixels"] for r in ok],
                        [r["seconds"] for r in ok],
                        ls,
                        marker="o",
                        ms=4,
                        color=COLORS[form],
                        label=f"{LABELS[form]}, {C} ch",
                    )
                for r in rs:
                    if r["status"] != "ok":
                        est = r.get("estimated_s")
                        if est:
                            ax.plot([r["pixels"]], [est], "x", ms=8, mew=2, color=COLORS[form])
                        else:  # no estimate: on the top edge
                            ax.plot(
                                [r["pixels"]],
                                [1.0 - 0.03 * i],
                                "x",
                                ms=8,
                                mew=2,
                                color=COLORS[form],
                                transform=ax.get_xaxis_transform(),
                                clip_on=False,
                            )
        ax.plot([], [], "x", color="gray", mew=2, label="skipped (estimated time / top edge)")
        ax.set_xscale("log")
        if measured or any(r.get("estimated_s") for r in cells if r["formulation"] in forms):
            ax.set_yscale("log")
        else:
            ax.set_yticks([])
        ax.set_xticks([s * s for s in res["info"]["sizes"]], [f"{s}²" for s in res["info"]["sizes"]])
        ax.xaxis.set_minor_locator(ticker.NullLocator())
        if ax.get_yscale() == "log":
            ax.yaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            ax.yaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xlabel("pixels P")
        ax.set_ylabel("seconds" + (" per step" if forms == STEPS else ""))
        ax.set_title(f"{title} (B = {res['info']['batch']}, {res['info']['device']})")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    return save_figure(fig, path)


def _json_safe(o):
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _json_safe(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_json_safe(v) for v in o]
    return o


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    ap.add_argument("--sizes", type=int, nargs="+", default=None, help="square resolutions (default 28 64 128 256)")
    ap.add_argument("--channels", type=int, nargs="+", default=None, help="default 1 3")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=None, help="hidden width (default 256; 64 with --quick)")
    ap.add_argument("--layers", type=int, default=4, help="sine layers")
    ap.add_argument("--latent", type=int, default=32, help="latent dimension k")
    ap.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed steps per cell after a warm-up (median; default 3, 1 at 256² and with --quick)",
    )
    ap.add_argument(
        "--warmup",
        type=int,
        choices=(0, 1),
        default=None,
        help="1: an untimed warm-up step per cell (default); 0: the first step is timed (--quick)",
    )
    ap.add_argument(
        "--max-seconds-per-cell",
        type=float,
        default=120.0,
        help="skip a cell whose first step (or its extrapolation from the previous size) takes longer",
    )
    ap.add_argument(
        "--memory-limit-gib",
        type=float,
        default=None,
        help="skip cells estimated above this (default 70%% of total RAM / of free GPU memory)",
    )
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument(
        "--keep-freed-memory",
        action="store_true",
        help="let glibc keep freed memory for reuse (process-wide, see gon_step.py)",
    )
    ap.add_argument("--quick", action="store_true", help="28² and 64², 1 channel, 1 repeat, 64-wide network")
    ap.add_argument("--json", type=Path, default=None, help="write all cells, slopes and machine info here")
    ap.add_argument("--out", type=Path, default=None, help="write DIR/scaling.png")
    ap.add_argument(
        "--figure-copy", type=Path, default=None, help="also copy the png here (e.g. docs/figures/scaling.png)"
    )
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes = args.sizes or [28, 64]
        args.channels = args.channels or [1]
        args.hidden = args.hidden or 64
        args.repeats = args.repeats or 1
        args.warmup = 0 if args.warmup is None else args.warmup
    args.sizes = sorted(args.sizes or [28, 64, 128, 256])
    args.channels = args.channels or [1, 3]
    args.hidden = args.hidden or 256
    args.repeats = args.repeats or 3
    args.warmup = 1 if args.warmup is None else args.warmup
    if args.repeats < 1:
        ap.error("--repeats must be >= 1")
    if args.figure_copy and not args.out:
        ap.error("--figure-copy needs --out")
    res = run(args)
    report(res)
    if args.out:
        fig = plot(res, args.out / "scaling.png")
        res["figure"] = str(fig)
        print(f"figure: {fig}")
        if args.figure_copy:
            args.figure_copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(fig, args.figure_copy)
            print(f"copied to {args.figure_copy}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(_json_safe(res), indent=1))
        print(f"json: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
