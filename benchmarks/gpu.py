"""GPU benchmark: GON step throughput, time to a test PSNR on MNIST, render/mesh throughput.

    python benchmarks/gpu.py                      # on a GPU: time limits total ~8 minutes
    python benchmarks/gpu.py --quick              # tiny sizes (runs on CPU in seconds; for tests)
    python benchmarks/gpu.py --json results.json  # also write the rows as JSON

Sections (each has its own time limit; a failure, e.g. out of memory, is recorded in its row
and the next section runs):

1. ``step``: steps/s and points/s (``B · 28²`` per step) of the exact step (outer integral on
   the full grid) and the Monte-Carlo step (outer integral on 25 % of the points) of
   ``LatentSiren(2, 32, 1, 256, 4)`` (206,593 parameters) at ``B = 64``, in float32, with TF32
   matmuls and with the bf16 outer pass (CUDA only), with the trainer's optimizer (fused Adam
   on CUDA).
2. ``large_batch``: the exact step at growing batches (until out of memory or the time limit);
   the largest one that ran shows the throughput of a full GPU.
3. ``time_to_psnr``: the trainer's default CUDA configuration (``inr-gon train`` with no
   options) on MNIST (``inr_gon.data.load_mnist``: ``$INR_GON_DATA/mnist``, else the
   embedded 5,000-image subset; no download): training seconds (evaluation excluded) and steps
   until the test PSNR on 1,000 unseen images first reaches 18 dB and 24 dB.
4. ``render_mesh``: megapixels/s of ``inr_gon.render`` (16 latents at 256²) and points/s of
   dense ``inr_gon.extract_mesh`` at 256³ on a network SDF (a sphere plus a random 3-D
   ``LatentSiren``), marching cubes included.

``--compile`` adds a ``torch.compile`` row to the step section (its compile time, which can be
long, is reported separately).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import inr_gon as ig  # noqa: E402
from inr_gon.training.objectives import GONObjective  # noqa: E402
from inr_gon.training.runtime import configure_tf32  # noqa: E402

GB = 2**30


class Section:
    """A deadline for one section: ``left()`` seconds remain; ``over`` once it has passed."""

    def __init__(self, seconds: float):
        self.end = time.perf_counter() + seconds

    def left(self) -> float:
        return self.end - time.perf_counter()

    @property
    def over(self) -> bool:
        return self.left() <= 0


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_gb(device: torch.device) -> float | None:
    return round(torch.cuda.max_memory_allocated(device) / GB, 2) if device.type == "cuda" else None


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def time_steps(
    step, device: torch.device, *, seconds: float, warmup: int = 3, max_steps: int = 10_000
) -> tuple[float, int]:
    """Run ``step()`` ``warmup`` times, then repeatedly for about ``seconds``; returns
    ``(steps per second, timed steps)``."""
    for _ in range(warmup):
        step()
    sync(device)
    n, t0 = 0, time.perf_counter()
    while n < max_steps:
        step()
        n += 1
        if n in (1, 2, 4) or n % 8 == 0:  # check the clock (and sync) only now and then
            sync(device)
            if time.perf_counter() - t0 >= seconds:
                break
    sync(device)
    return n / (time.perf_counter() - t0), n


def gon_step_fn(model, *, batch: int, res: int, fraction: float, amp: str, device: torch.device, compile: bool = False):
    """A closure doing one full training step (forward, backward, Adam) on random targets."""
    c = ig.grid((res, res), device=device)
    x = torch.rand(batch, res * res, 1, device=device)
    outer = ig.MonteCarloIntegrator(fraction=fraction) if fraction < 1 else ig.GridIntegrator()
    obj = GONObjective(model, inner=ig.GridIntegrator(scale=1 / 64), outer=outer, amp=amp)
    if compile:
        obj = torch.compile(obj)
    opt = torch.optim.Adam(model.parameters(), lr=1e-6, fused=True if device.type == "cuda" else None)
    gen = torch.Generator(device=device).manual_seed(0)

    def step():
        loss, _, _ = obj(c, x, generator=gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def row_step(name, *, hidden, layers, batch, res, fraction, amp, tf32, device, seconds, compile=False):
    configure_tf32(tf32)
    reset_peak(device)
    torch.manual_seed(0)
    model = ig.LatentSiren(2, 32, 1, hidden, layers).to(device)
    t0 = time.perf_counter()
    try:
        step = gon_step_fn(model, batch=batch, res=res, fraction=fraction, amp=amp, device=device, compile=compile)
        if compile:
            step()  # compilation, not timed as steps
        warm_s = time.perf_counter() - t0
        rate, n = time_steps(step, device, seconds=seconds)
    finally:
        configure_tf32(False)
    return {
        "name": name,
        "model": f"{layers}x{hidden}",
        "params": sum(p.numel() for p in model.parameters()),
        "batch": batch,
        "outer": "grid" if fraction == 1 else f"MC {fraction:g}",
        "amp": amp,
        "tf32": tf32,
        "steps_per_s": round(rate, 2),
        "points_per_s": round(rate * batch * res * res),
        "timed_steps": n,
        "peak_gb": peak_gb(device),
        **({"compile_s": round(warm_s, 1)} if compile else {}),
    }


def section_step(args, device, limit):
    sec = Section(limit)
    h, L, B, res = (32, 2, 8, 12) if args.quick else (256, 4, 64, 28)
    per = 0.2 if args.quick else 5.0
    variants = [("fp32", "off", False)]
    if device.type == "cuda":
        variants += [("tf32", "off", True), ("bf16 outer", "bf16", False), ("bf16 outer + tf32", "bf16", True)]
    rows = []
    if args.compile:
        rows.append(
            guard(
                lambda: row_step(
                    "exact fp32 torch.compile",
                    hidden=h,
                    layers=L,
                    batch=B,
                    res=res,
                    fraction=1.0,
                    amp="off",
                    tf32=False,
                    device=device,
                    seconds=min(per, max(sec.left(), 0.05)),
                    compile=True,
                )
            )
        )
    for fraction in (1.0, 0.25):
        for label, amp, tf32 in variants:
            if sec.over:
                rows.append({"name": f"{'exact' if fraction == 1 else 'MC'} {label}", "error": "time limit"})
                continue
            rows.append(
                guard(
                    lambda: row_step(
                        f"{'exact' if fraction == 1 else 'MC'} {label}",
                        hidden=h,
                        layers=L,
                        batch=B,
                        res=res,
                        fraction=fraction,
                        amp=amp,
                        tf32=tf32,
                        device=device,
                        seconds=min(per, max(sec.left(), 0.05)),
                    )
                )
            )
    return rows


def section_large_batch(args, device, limit):
    sec = Section(limit)
    h, L, res = (32, 2, 12) if args.quick else (256, 4, 28)
    batches = (16, 32) if args.quick else (256, 1024, 4096, 8192)
    per = 0.2 if args.quick else 5.0
    rows = []
    for B in batches:
        if sec.over:
            rows.append({"name": f"exact B={B}", "error": "time limit"})
            break
        r = guard(
            lambda: row_step(
                f"exact B={B}",
                hidden=h,
                layers=L,
                batch=B,
                res=res,
                fraction=1.0,
                amp="off",
                tf32=False,
                device=device,
                seconds=min(per, max(sec.left(), 0.05)),
            )
        )
        rows.append(r)
        if "error" in r:  # out of memory: larger batches will not fit either
            break
    return rows


def section_time_to_psnr(args, device, limit):
    from inr_gon.data import load_mnist
    from inr_gon.training import ImageConfig, Trainer

    t_setup = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = load_mnist("mnist", download=False)
    targets = (18.0, 24.0)
    if args.quick:
        cfg = ImageConfig(device=str(device), hidden=32, layers=2, batch_size=16, steps=10**9, lr=1e-3)
        every, n_eval = 10, 100
    else:  # the main job's defaults on this device (the paper preset on a GPU)
        cfg = ImageConfig(device=str(device), steps=10**9)
        every, n_eval = 100, 1000
    t = Trainer(cfg, dataset=ds, quiet=True)
    t.model.train()
    eval_set = t.task.test_images[:n_eval]
    setup_s = time.perf_counter() - t_setup
    sec = Section(max(limit - setup_s, 0.0))  # at least one chunk runs even past the limit
    reached, train_s, curve = {}, 0.0, []
    while (not curve or not sec.over) and len(reached) < len(targets):
        t0 = time.perf_counter()
        for _ in range(every):
            t.advance()
        sync(device)
        train_s += time.perf_counter() - t0
        t.check_nonfinite()
        t.model.eval()
        p = t.task.reconstruction_metrics(eval_set)["psnr"]
        t.model.train()
        curve.append((t.step, round(train_s, 2), round(p, 2)))
        for thr in targets:
            if thr not in reached and p >= thr:
                reached[thr] = {"seconds": round(train_s, 2), "steps": t.step}
    rows = []
    for thr in targets:
        r = {
            "name": f"time to {thr:g} dB",
            "config": f"{t.cfg.layers}x{t.cfg.hidden} B={t.cfg.batch_size} "
            f"lr={t.cfg.lr:g} outer={t.cfg.outer_fraction:g}",
            "data": t.task.dataset.source,
            "eval_images": int(eval_set.shape[0]),
            "setup_s": round(setup_s, 1),
        }
        if thr in reached:
            r.update(reached[thr])
        else:
            r.update(
                error=f"not reached in {train_s:.0f} s of training ({t.step} steps, best "
                f"{max((c[2] for c in curve), default=float('nan')):.2f} dB)"
            )
        rows.append(r)
    rows.append({"name": "psnr curve (step, train s, dB)", "curve": curve[-40:]})
    return rows


def section_render_mesh(args, device, limit):
    sec = Section(limit)
    h, L, res, B, mres = (32, 2, 32, 4, 32) if args.quick else (256, 4, 256, 16, 256)
    torch.manual_seed(0)
    rows = []
    model = ig.LatentSiren(2, 32, 1, h, L).to(device).eval()
    z = torch.randn(B, 32, device=device) * 0.1

    def render_row():
        reps, t0 = 0, time.perf_counter()
        ig.render(model, z, res)
        sync(device)
        t_first = time.perf_counter() - t0
        t0 = time.perf_counter()
        while reps < 3 and time.perf_counter() - t0 < max(sec.left() / 4, 0.05):
            ig.render(model, z, res)
            reps += 1
        sync(device)
        dt = (time.perf_counter() - t0) / max(reps, 1) if reps else t_first
        return {
            "name": f"render {B}x{res}²",
            "megapixels_per_s": round(B * res * res / dt / 1e6, 2),
            "seconds": round(dt, 4),
        }

    rows.append(guard(render_row))
    model3 = ig.LatentSiren(3, 32, 1, h, L).to(device).eval()
    z3 = torch.randn(1, 32, device=device) * 0.1

    def sdf(p):
        return (p.norm(dim=-1) - 0.5) + 0.05 * model3(p, z3)[0, :, 0]

    def mesh_row():
        if sec.over:
            return {"name": f"mesh dense {mres}³", "error": "time limit"}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mesh, st = ig.extract_mesh(sdf, mres, method="dense", return_stats=True, device=device)
        return {
            "name": f"mesh dense {mres}³",
            "points_per_s": round(st["evaluations"] / st["seconds"]),
            "seconds": round(st["seconds"], 3),
            "faces": int(len(mesh.faces)),
        }

    rows.append(guard(mesh_row))
    return rows


def guard(fn) -> dict:
    """Run one benchmark row; an out-of-memory or other runtime failure becomes the row's error."""
    try:
        return fn()
    except (RuntimeError, ValueError, MemoryError) as e:  # torch.OutOfMemoryError is a RuntimeError
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return {"name": getattr(fn, "__name__", "row"), "error": str(e).strip().splitlines()[0][:200]}


SECTIONS = {
    "step": (section_step, 70),
    "large_batch": (section_large_batch, 60),
    "time_to_psnr": (section_time_to_psnr, 270),
    "render_mesh": (section_render_mesh, 60),
}


def print_table(name: str, rows: list[dict]) -> None:
    print(f"\n== {name}")
    for r in rows:
        items = [f"{k}={v}" for k, v in r.items() if k not in ("name", "curve")]
        if "curve" in r:
            items.append("curve=" + " ".join(f"{s}:{p}" for s, _, p in r["curve"][-12:]))
        print(f"  {r.get('name', ''):<24} " + "  ".join(items))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny sizes and limits (CPU smoke test)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--json", help="also write the results to this JSON file")
    ap.add_argument("--sections", nargs="+", choices=sorted(SECTIONS), default=list(SECTIONS))
    ap.add_argument(
        "--compile",
        action="store_true",
        help="step section: also time torch.compile of the GON step (compilation can take minutes)",
    )
    ap.add_argument("--threads", type=int, help="CPU threads (default: torch's; 1 with --quick on CPU)")
    ap.add_argument(
        "--scale-limits",
        type=float,
        default=1.0,
        help="multiply every section's time limit (default 1: about 8 minutes in all)",
    )
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if args.threads or (args.quick and device.type == "cpu"):
        torch.set_num_threads(args.threads or 1)
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda but CUDA is not available")
    info = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "quick": args.quick,
        "threads": torch.get_num_threads(),
    }
    print("  ".join(f"{k}={v}" for k, v in info.items()))
    results = {"info": info}
    t_all = time.perf_counter()
    for name in args.sections:
        fn, limit = SECTIONS[name]
        limit = (5.0 if args.quick else limit) * args.scale_limits
        t0 = time.perf_counter()
        rows = fn(args, device, limit)
        results[name] = rows
        print_table(f"{name} ({time.perf_counter() - t0:.0f} s, limit {limit:.0f} s)", rows)
    results["info"]["total_seconds"] = round(time.perf_counter() - t_all, 1)
    print(f"\ntotal {results['info']['total_seconds']} s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
