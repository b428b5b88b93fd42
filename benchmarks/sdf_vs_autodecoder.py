"""SDF GON vs a DeepSDF-style auto-decoder: the same network, data and wall-clock budget.

    python benchmarks/sdf_vs_autodecoder.py [--meshes DIR | --deepsdf DIR] [--seconds 240] --json out.json

Both methods train through the one trainer (the ``sdf`` and ``autodecoder`` tasks) on the same
shape set, with the same SIREN, points per step, batch, learning-rate schedule and seed, for
``--seconds`` each. Then, for the training and the unseen shapes: Chamfer (DeepSDF's: the sum of
the two mean squared nearest-neighbour distances; with ``--deepsdf`` also in DeepSDF's original
frame with 30,000 points), IoU, normal consistency, the fraction of reconstructions nearest their
own ground truth, and the seconds it took to encode the unseen shapes: the model's one step (by
default Gauss–Newton) or K steps for the GON, ``--encode-iterations`` Adam steps on a fresh code
for the auto-decoder. Extra options for both go in ``--common`` (``inr-gon train sdf`` options).
``--encode-sweep 1,5,20,50,200`` also evaluates the auto-decoder's unseen shapes after each of
those numbers of Adam steps (the same trained network): how many it needs to match the GON's one.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inr_gon.cli import build_parser  # noqa: E402
from inr_gon.training import AutoDecoderConfig, SdfConfig, Trainer  # noqa: E402
from inr_gon.training.tasks.sdf_data import load_shapes  # noqa: E402


def config(task: str, options: str):
    args = build_parser().parse_args(["train", task, *shlex.split(options)])
    return (SdfConfig if task == "sdf" else AutoDecoderConfig).from_args(args)


def timed_evaluation(task, idx) -> tuple[float, dict]:
    """``(seconds of the encoding alone, task.evaluate_shapes(idx))`` for shapes ``idx``."""
    t0 = time.perf_counter()
    task.encode(idx)
    seconds = round(time.perf_counter() - t0, 3)
    return seconds, task.evaluate_shapes(idx, num_samples=10_000)


def evaluate(cfg, shapes, sweep=()) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = Trainer(cfg, shapes=shapes, quiet=True)
        info = t.fit()
    task, row = (
        t.task,
        {
            "steps": info["steps"],
            "train_seconds": info["train_seconds"],
            "collapsed": info["collapsed"],
            "params": info["params"],
        },
    )
    for split, idx in (("train", shapes.train_index), ("unseen", shapes.unseen_index)):
        idx = idx[: cfg.eval_shapes]
        if not idx:
            continue
        row[f"{split}_encode_seconds"], m = timed_evaluation(task, idx)
        for k in ("chamfer", "chamfer_deepsdf", "iou", "normal_consistency", "nearest_own_truth", "empty_meshes"):
            row[f"{split}_{k}"] = m.get(k)
    idx = shapes.unseen_index[: cfg.eval_shapes]
    for n in sweep if idx else ():  # the same network, n Adam steps on each unseen shape's fresh code
        task.cfg = dataclasses.replace(task.cfg, encode_iterations=n)
        sec, m = timed_evaluation(task, idx)
        row.setdefault("unseen_by_encode_iterations", {})[str(n)] = {
            "encode_seconds": sec,
            **{k: m.get(k) for k in ("iou", "chamfer", "chamfer_deepsdf")},
        }
    return row


def iterations(text: str) -> list[int]:
    try:
        out = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        out = None
    if not out or min(out) < 0:
        raise argparse.ArgumentTypeError(f"expected comma-separated step counts >= 0, got {text!r}")
    return out


def fmt(v, f=".4f"):
    return "n/a" if v is None else format(v, f)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    g = p.add_mutually_exclusive_group()
    g.add_argument("--meshes", metavar="DIR")
    g.add_argument("--deepsdf", metavar="DIR")
    p.add_argument("--seconds", type=float, default=240.0, help="training budget of each method (default: 240)")
    p.add_argument("--encode-iterations", type=int, default=200, help="auto-decoder steps per unseen shape")
    p.add_argument(
        "--encode-sweep",
        type=iterations,
        default=[],
        metavar="N,N,...",
        help="also evaluate the auto-decoder's unseen shapes after each of these numbers of Adam steps",
    )
    p.add_argument("--common", default="", help="more options for both (inr-gon train sdf options)")
    p.add_argument("--gon", default="", help="options for the GON only")
    p.add_argument("--json", metavar="PATH")
    a = p.parse_args(argv)
    # the same data: the GON too trains on the fixed training shapes only (no new procedural shapes mixed in)
    common = f"--seconds {a.seconds:g} --steps 10000000 --quiet --eval-every 10000000 " + a.common
    if a.meshes:
        common += f" --meshes {shlex.quote(a.meshes)}"
    if a.deepsdf:
        common += f" --deepsdf {shlex.quote(a.deepsdf)}"
    gon = config("sdf", common + " --fresh-shapes 0 " + a.gon)
    ad = config("autodecoder", common + f" --encode-iterations {a.encode_iterations}")
    shapes = load_shapes(gon)
    print(
        f"data: {shapes.name} ({len(shapes.train_index)} train, {len(shapes.unseen_index)} unseen); "
        f"{a.seconds:g} s of training each; {torch.get_num_threads()} threads",
        flush=True,
    )
    rows = {"gon": evaluate(gon, shapes), "autodecoder": evaluate(ad, shapes, a.encode_sweep)}
    print(
        f"{'':12s} {'steps':>6s} | {'train CD':>8s} {'IoU':>5s} {'NC':>5s} {'own':>4s} | {'unseen CD':>9s} {'IoU':>5s} "
        f"{'NC':>5s} {'own':>4s} {'enc s':>6s}"
    )
    for name, r in rows.items():
        print(
            f"{name:12s} {r['steps']:6d} | {fmt(r.get('train_chamfer')):>8s} {fmt(r.get('train_iou'), '.3f'):>5s} "
            f"{fmt(r.get('train_normal_consistency'), '.3f'):>5s} {fmt(r.get('train_nearest_own_truth'), '.2f'):>4s} | "
            f"{fmt(r.get('unseen_chamfer')):>9s} {fmt(r.get('unseen_iou'), '.3f'):>5s} "
            f"{fmt(r.get('unseen_normal_consistency'), '.3f'):>5s} {fmt(r.get('unseen_nearest_own_truth'), '.2f'):>4s} "
            f"{fmt(r.get('unseen_encode_seconds'), '.2f'):>6s}"
        )
        if r.get("train_chamfer_deepsdf") is not None:
            print(
                f"{'':12s} DeepSDF frame, 30k points: train CD {fmt(r['train_chamfer_deepsdf'], '.2e')}, "
                f"unseen CD {fmt(r.get('unseen_chamfer_deepsdf'), '.2e')}"
            )
    gon_iou = rows["gon"].get("unseen_iou")
    for n, r in rows["autodecoder"].get("unseen_by_encode_iterations", {}).items():
        print(
            f"auto-decoder, {n:>4s} Adam steps per unseen shape: IoU {fmt(r['iou'], '.3f')}, "
            f"CD {fmt(r['chamfer'])}, {fmt(r['encode_seconds'], '.2f')} s (GON, one step: IoU {fmt(gon_iou, '.3f')})"
        )
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(
            json.dumps(
                {
                    "seconds": a.seconds,
                    "common": common,
                    "gon_options": a.gon,
                    "encode_iterations": a.encode_iterations,
                    "encode_sweep": a.encode_sweep,
                    "results": rows,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
