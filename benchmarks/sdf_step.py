"""SDF-GON training steps: per-sample inner points (general path) vs shared points (fast path).

Per-sample: every shape's latent comes from its own points (half uniform, half near its surface),
``B · P`` inner network passes. Shared: one set of ``P`` fresh uniform points per step for the
whole batch (SDFs evaluated analytically), the exact shared-origin fast path: ``P`` inner passes.
The outer loss is the same in both (fresh points from each shape's pool).

Both take the SDF default latent step (one Gauss–Newton step); the per-sample step is also timed
with the paper's plain gradient step (``--gauss-newton 0``).

Prints (1) seconds per step and the ratios, (2) the exactness of the fast path on identical
points, (3) quality after the same number of steps (IoU / Chamfer of training and unseen shapes,
unseen encoded in one step) and the ratios; ``--scales`` adds a sweep of the inner
weight (``latent = -w ∇ mean_p ℓ``).

    python benchmarks/sdf_step.py [--steps 150] [--repeats 10] [--scales 0.03 0.1 0.3 1]

Figures: docs/findings/shapes.md.
"""

from __future__ import annotations

import argparse
import time

import torch

from inr_gon.core.sdf import sdf_gon_latent
from inr_gon.training import SdfConfig, Trainer
from inr_gon.training.tasks.sdf_data import load_shapes


def time_steps(trainer: Trainer, repeats: int) -> float:
    """Median seconds of one full step (loss, backward, Adam) over ``repeats`` (after 2 warm-ups)."""
    times = []
    for r in range(repeats + 2):
        batch = trainer.next_batch()
        t0 = time.perf_counter()
        trainer.train_step(batch)
        trainer.opt.step()
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        if r >= 2:
            times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def quality(trainer: Trainer, steps: int, eval_shapes: int) -> dict:
    trainer.cfg.steps = steps
    t0 = time.perf_counter()
    trainer.fit()
    secs = time.perf_counter() - t0
    task = trainer.task
    tr = task.evaluate_shapes(task.shapes.train_index[:eval_shapes], num_samples=5000)
    un = task.evaluate_shapes(task.shapes.unseen_index[:eval_shapes], num_samples=5000)
    return {
        "seconds": secs,
        "train_iou": tr["iou"],
        "train_cd": tr["chamfer"],
        "unseen_iou": un["iou"],
        "unseen_cd": un["chamfer"],
        "empty": tr["empty_meshes"] + un["empty_meshes"],
    }


def fmt(v, f=".4f"):
    return "  n/a " if v is None else format(v, f)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--points", type=int, default=1024, help="points per shape per step (half inner)")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--num-shapes", type=int, default=64)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--steps", type=int, default=150, help="training steps of the quality comparison (0: skip)")
    p.add_argument("--eval-shapes", type=int, default=6)
    p.add_argument("--scales", type=float, nargs="*", default=[], help="inner weights to sweep (per-sample)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    base = dict(
        num_shapes=args.num_shapes,
        pool=4096,
        points=args.points,
        batch_size=args.batch_size,
        hidden=args.hidden,
        layers=args.layers,
        device=args.device,
        mesh_resolution=32,
        eval_every=10**9,
    )
    shapes = load_shapes(SdfConfig(**base))
    make = lambda **kw: Trainer(SdfConfig(**{**base, **kw}), shapes=shapes, quiet=True)

    print(
        f"B={args.batch_size} shapes x {args.points} points/step (inner {args.points // 2}), "
        f"SIREN {args.layers}x{args.hidden}, device {args.device}, {args.threads} thread(s)"
    )
    t_per = time_steps(make(inner="per_sample"), args.repeats)
    t_sh = time_steps(make(inner="shared"), args.repeats)
    print(f"seconds/step  per-sample {t_per:.4f}   shared {t_sh:.4f}   ratio per-sample/shared {t_per / t_sh:.2f}x")
    t_plain = time_steps(make(inner="per_sample", gauss_newton=0.0), args.repeats)
    print(
        f"seconds/step  per-sample with the plain gradient step {t_plain:.4f}   ratio Gauss-Newton/plain "
        f"{t_per / t_plain:.2f}x"
    )

    # exactness of the fast path: shared points given as (P, 3) vs the same points per sample
    t = make()
    ip = torch.rand(args.points // 2, 3, device=t.device) * 2 - 1
    sdf = torch.stack([shapes.analytic[i](ip) for i in range(args.batch_size)]).float()
    z_fast = sdf_gon_latent(t.model, ip, sdf)
    z_gen = sdf_gon_latent(t.model, ip.expand(args.batch_size, -1, -1), sdf)
    rel = ((z_fast - z_gen).abs().max() / z_gen.abs().max()).item()
    print(f"fast path vs general path on identical points: max relative latent difference {rel:.1e}")

    if args.steps:
        rows = {}
        for inner in ("per_sample", "shared"):
            rows[inner] = q = quality(make(inner=inner), args.steps, args.eval_shapes)
            print(
                f"{inner:10s} {args.steps} steps in {q['seconds']:6.1f} s: train IoU {fmt(q['train_iou'], '.3f')} "
                f"CD {fmt(q['train_cd'])} | unseen IoU {fmt(q['unseen_iou'], '.3f')} CD {fmt(q['unseen_cd'])} "
                f"| empty meshes {q['empty']}"
            )
        a, b = rows["per_sample"], rows["shared"]
        ratio = lambda x, y: "n/a" if not x or not y else f"{x / y:.2f}"
        print(
            f"ratios per-sample/shared: time {ratio(a['seconds'], b['seconds'])}, unseen IoU "
            f"{ratio(a['unseen_iou'], b['unseen_iou'])}, unseen Chamfer {ratio(a['unseen_cd'], b['unseen_cd'])}, "
            f"train IoU {ratio(a['train_iou'], b['train_iou'])}"
        )
    for w in args.scales:
        q = quality(make(inner_weight=w), args.steps or 150, args.eval_shapes)
        print(
            f"inner weight {w:<6g}: train IoU {fmt(q['train_iou'], '.3f')} CD {fmt(q['train_cd'])} | "
            f"unseen IoU {fmt(q['unseen_iou'], '.3f')} CD {fmt(q['unseen_cd'])} | empty meshes {q['empty']}"
        )


if __name__ == "__main__":
    main()
