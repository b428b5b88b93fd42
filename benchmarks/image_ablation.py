"""Side-by-side image-GON runs: the same data, seed and wall-clock budget, one option changed.

    python benchmarks/image_ablation.py --seconds 120 --variant base " " --variant k2 " --latent-steps 2"

Each variant is a string of ``inr-gon train image`` options added to the common ones
(``--common``; a leading space keeps argparse from reading it as an option). Every run trains
through the one trainer for ``--seconds`` of training (``--schedule-by time`` is the default
here, so each run's cosine schedule ends with its budget), then reports the test PSNR/SSIM of
one-step (or K-step) reconstructions on ``--test-images`` test images, the steps and steps/s;
``--json`` writes them.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inr_gon.cli import build_parser  # noqa: E402
from inr_gon.data import load_mnist  # noqa: E402
from inr_gon.training import ImageConfig, Trainer  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=120.0)
    p.add_argument("--common", default="")
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--test-images", type=int, default=10_000)
    p.add_argument("--variant", nargs=2, action="append", metavar=("NAME", "OPTIONS"), required=True)
    p.add_argument("--json", metavar="PATH")
    a = p.parse_args(argv)
    ds = load_mnist(a.dataset)
    # the trainer's final evaluation (PSNR and SSIM) on the first --test-images test images
    ds = dataclasses.replace(
        ds, test_images=ds.test_images[: a.test_images], test_labels=ds.test_labels[: a.test_images]
    )
    common = (
        f"--seconds {a.seconds:g} --steps 1000000 --schedule-by time --device cpu --quiet --eval-every 1000000 "
        f"--snapshots '' " + a.common
    )
    rows = {}
    for name, opts in a.variant:
        args = build_parser().parse_args(["train", "image", *shlex.split(common + " " + opts)])
        cfg = ImageConfig.from_args(args)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = Trainer(cfg, dataset=ds, quiet=True)
            t0 = time.perf_counter()
            info = t.fit()
            wall = time.perf_counter() - t0
        r = rows[name] = {
            "steps": info["steps"],
            "train_seconds": info["train_seconds"],
            "steps_per_second": info["steps"] / max(info["train_seconds"], 1e-9),
            "wall": round(wall, 1),
            "test_psnr": info["test_psnr"],
            "test_ssim": info["test_ssim"],
            "params": info["params"],
            "options": opts.strip(),
            "failed": bool(info.get("collapsed")),
        }
        print(
            f"{name:>16s}: {r['steps']:6d} steps ({r['steps_per_second']:.1f}/s) | test PSNR {r['test_psnr']:.2f} dB "
            f"SSIM {r['test_ssim']:.3f} on {info['num_test']} | {r['params']:,} params"
            + (" | FAILED TO LEARN" if r["failed"] else ""),
            flush=True,
        )
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps({"seconds": a.seconds, "common": common, "results": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
