"""Training on many prepared shapes: pools streamed from the sample files against pools held in
memory — steps per second and peak resident memory, each run in a process of its own.

    python benchmarks/sdf_streaming.py --shapes 2000 --samples 100000 --json docs/figures/sdf_streaming.json

1. A DeepSDF data folder of ``--shapes`` shapes with ``--samples`` rows each (``--data``; made once,
   reused): spheres and boxes of random size and centre, half the rows uniform in ``[-1, 1]^3``
   and half near the surface, with their exact signed distances (written as ``np.savez`` stores
   them, as ``inr-gon prepare`` and DeepSDF's preprocessing do).
2. ``inr-gon train sdf`` with the CPU preset for ``--steps`` steps, once per mode: ``--stream off``
   (every pool read into memory first), ``--stream on`` (each step's shapes read from their files,
   the next batch in the background), and ``--stream on --pool SAMPLES`` (every sample of a shape
   can be drawn, DeepSDF's samples-per-scene; held in memory it would not fit the goal).
   Each run reports its steps/s (training time only), the seconds before the first step (reading
   the pools) and its peak resident memory (``VmHWM``).

The modes are run one after the other on an otherwise idle machine; compare them as ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def make_folder(root: Path, shapes: int, samples: int, seed: int = 0) -> Path:
    """The data folder of step 1 (shapes already written are kept)."""
    from tqdm.auto import tqdm

    out = root / "SdfSamples" / "bench" / "shapes"
    out.mkdir(parents=True, exist_ok=True)
    for i in tqdm(range(shapes), desc="write shapes"):
        f = out / f"s{i:05d}.npz"
        if f.is_file():
            continue
        rng = np.random.default_rng([seed, i])
        centre, size, box = rng.uniform(-0.3, 0.3, 3), rng.uniform(0.2, 0.6), bool(i % 2)
        half = samples // 2
        uni = rng.uniform(-1, 1, (samples - half, 3))
        direction = rng.normal(size=(half, 3))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        near = centre + direction * size + rng.normal(scale=0.02, size=(half, 3))
        p = np.concatenate([uni, near]) - centre
        if box:
            q = np.abs(p) - size
            d = np.linalg.norm(np.maximum(q, 0), axis=1) + np.minimum(q.max(1), 0)
        else:
            d = np.linalg.norm(p, axis=1) - size
        rows = np.concatenate([p + centre, d[:, None]], 1).astype(np.float32)
        tmp = f.with_suffix(".tmp.npz")
        np.savez(tmp, pos=rows[d > 0], neg=rows[d <= 0])
        os.replace(tmp, f)
    return root


def child(args) -> None:
    """One training run (in this process); prints one JSON line."""
    import warnings

    from inr_gon.training.tasks.sdf import SdfConfig
    from inr_gon.training.trainer import Trainer

    kw = dict(pool=args.pool) if args.pool else {}
    cfg = SdfConfig(
        deepsdf=str(args.data),
        stream=args.stream,
        num_unseen=8,
        steps=args.steps,
        seconds=0.0,
        eval_every=10**9,
        checkpoint_every=10**9,
        eval_shapes=2,
        mesh_resolution=32,
        slerp_frames=2,
        device="cpu",
        out=str(args.out),
        **kw,
    )
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = Trainer(cfg, quiet=True)
        setup = time.perf_counter() - t0
        m = trainer.fit()
    status = Path("/proc/self/status").read_text()
    hwm = int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1])
    print(
        json.dumps(
            {
                "stream": args.stream,
                "pool": trainer.cfg.pool,
                "storage": trainer.task.shapes.storage,
                "steps": m["steps"],
                "train_seconds": m["train_seconds"],
                "steps_per_second": m["steps"] / m["train_seconds"],
                "setup_seconds": round(setup, 2),
                "peak_rss_mib": round(hwm / 1024, 1),
            }
        )
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shapes", type=int, default=2000)
    ap.add_argument("--samples", type=int, default=100_000)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--data", type=Path, default=Path("/tmp/inr_gon_streaming"))
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--modes", default="off,on,on-all", help="comma-separated: off, on, on-all")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--stream", default="on", help=argparse.SUPPRESS)
    ap.add_argument("--pool", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args)
        return 0
    make_folder(args.data, args.shapes, args.samples)
    results = []
    for mode in args.modes.split(","):
        stream, pool = ("on", args.samples) if mode == "on-all" else (mode, None)
        out = args.data.parent / f"{args.data.name}_run_{mode}"
        cmd = [sys.executable, __file__, "--child", "--data", str(args.data), "--stream", stream]
        cmd += ["--steps", str(args.steps), "--out", str(out)] + (["--pool", str(pool)] if pool else [])
        subprocess.run(["rm", "-rf", str(out)], check=True)
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if done.returncode:
            print(done.stderr[-3000:], file=sys.stderr)
            return done.returncode
        row = {"mode": mode, **json.loads(done.stdout.strip().splitlines()[-1])}
        results.append(row)
        print(
            f"{mode:7s} pool {row['pool']:>7,}  {row['steps_per_second']:.2f} steps/s  "
            f"set-up {row['setup_seconds']:.1f} s  peak RSS {row['peak_rss_mib']:,.0f} MiB  ({row['storage']})"
        )
    record = {
        "benchmark": "sdf_streaming",
        "shapes": args.shapes,
        "samples": args.samples,
        "steps": args.steps,
        "cpu_threads": os.cpu_count(),
        "results": results,
    }
    by = {r["mode"]: r for r in results}
    if "off" in by and "on" in by:
        record["streamed_over_in_memory_steps"] = by["on"]["steps_per_second"] / by["off"]["steps_per_second"]
        print(f"streamed / in memory, steps/s: {record['streamed_over_in_memory_steps']:.3f}")
    if args.json:
        args.json.write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
