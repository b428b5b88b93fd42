"""Side-by-side SDF-GON runs: the same data, seed and wall-clock budget, one option changed.

    python benchmarks/sdf_ablation.py --seconds 60 --variant base "" --variant truncated "--outer-loss truncated_l1"
    python benchmarks/sdf_ablation.py --meshes ../shared/datasets/meshes --variant a "..." --variant b "..."

Each variant is a string of ``inr-gon train sdf`` options added to the common ones (``--common``).
Every run trains through the one trainer for ``--seconds`` (the step count is the cap), then
encodes the training and unseen shapes in the model's one step (or K steps), extracts
meshes and prints Chamfer (DeepSDF's), IoU, normal consistency, the shape-space health
(zero crossings, latent sensitivity, shapes identified) and steps/s; ``--json`` writes them,
with each run's periodic evaluations (``curve``: sign IoU on the shapes' own points by step).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inr_gon.cli import build_parser  # noqa: E402
from inr_gon.training import SdfConfig, Trainer  # noqa: E402
from inr_gon.training.tasks.sdf_data import load_shapes  # noqa: E402


def config_of(options: str) -> SdfConfig:
    args = build_parser().parse_args(["train", "sdf", *shlex.split(options)])
    return SdfConfig.from_args(args)


def run(cfg: SdfConfig, shapes) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = Trainer(cfg, shapes=shapes, quiet=True)
        info = t.fit()
    task = t.task
    t0 = time.perf_counter()
    out = {
        "steps": info["steps"],
        "train_seconds": info["train_seconds"],
        "steps_per_second": info["steps"] / max(info["train_seconds"], 1e-9),
        "collapsed": info["collapsed"],
        "collapse_reasons": info["collapse_reasons"],
        **info["health"],
    }
    for split, idx in (("train", task.shapes.train_index), ("unseen", task.shapes.unseen_index)):
        if not idx:
            continue
        m = task.evaluate_shapes(idx[: cfg.eval_shapes], num_samples=10_000)
        out.update({f"{split}_{k}": m[k] for k in ("chamfer", "iou", "normal_consistency", "empty_meshes")})
        out[f"{split}_per_shape"] = m["per_shape"]
    out["eval_seconds"] = round(time.perf_counter() - t0, 1)
    out["curve"] = eval_curve(t.metrics_log.path)
    return out


def eval_curve(path) -> list:
    """The periodic evaluations of a run (``metrics.jsonl`` rows of kind ``eval``): step, seconds
    and the sign IoU of the training and unseen shapes on their own points."""
    if path is None or not Path(path).exists():
        return []
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    keys = ("step", "seconds", "train_sign_iou", "unseen_sign_iou")
    return [{k: r[k] for k in keys if k in r} for r in rows if r.get("kind") == "eval"]


def fmt(v, f=".4f"):
    return "n/a" if v is None else format(v, f)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=60.0, help="training budget of each run")
    p.add_argument("--common", default="", help="options shared by every variant")
    p.add_argument("--meshes", help="a mesh folder (else the procedural family)")
    p.add_argument("--variant", nargs=2, action="append", metavar=("NAME", "OPTIONS"), required=True)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--json", metavar="PATH")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    common = f"--seconds {a.seconds:g} --steps 1000000 --device cpu --quiet " + a.common
    if a.meshes:
        common += f" --meshes {shlex.quote(a.meshes)}"
    shapes_cache: dict = {}
    rows = {}
    for name, opts in a.variant:
        cfg = config_of(common + " " + opts)
        key = (cfg.meshes, cfg.deepsdf, cfg.num_shapes, cfg.num_unseen, cfg.pool, cfg.seed)
        if key not in shapes_cache:
            shapes_cache[key] = load_shapes(cfg)
        r = rows[name] = run(cfg, shapes_cache[key])
        print(
            f"{name:>14s}: {r['steps']:6d} steps ({r['steps_per_second']:.1f}/s) | "
            f"train CD {fmt(r.get('train_chamfer'))}"
            f" IoU {fmt(r.get('train_iou'), '.3f')} | unseen CD {fmt(r.get('unseen_chamfer'))} IoU "
            f"{fmt(r.get('unseen_iou'), '.3f')} | sens {r['latent_sensitivity']:.3f} ident {r['identified']:.2f} "
            f"cross {r['zero_crossing']:.2f}{' COLLAPSED' if r['collapsed'] else ''}",
            flush=True,
        )
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(
            json.dumps({"seconds": a.seconds, "common": common, "variants": dict(a.variant), "results": rows}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
