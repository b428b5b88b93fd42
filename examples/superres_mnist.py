"""Learned super-resolution with a GON (modality conversion): 14² in, 28² out.

The latent of each digit is the gradient at the origin of the INNER loss on its 14² copy
(2×2 area average); the network is trained with the OUTER loss on the 28² original. On the
MNIST test set, each 14² input is encoded with one gradient step and rendered at 28², and
the PSNR is compared with classical upsampling of the same 14² input (bicubic, bilinear,
nearest; ``align_corners=False``, clamped to [0, 1]).

    python examples/superres_mnist.py                       # CPU: about 5 minutes
    python examples/superres_mnist.py --device cuda --steps 20000 --hidden 256 --layers 4
    python examples/superres_mnist.py --help

Writes into --out (default runs/superres_mnist): ``superres_vs_bicubic.png`` (rows: the 14²
input shown nearest-upscaled, bicubic, GON, ground truth; every cell shown at 4× its 28² size)
and ``metrics.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from inr_gon import LatentSiren
from inr_gon.data import load_mnist
from inr_gon.metrics import psnr, ssim
from inr_gon.modality import area_downsample, convert, fit_conversion, upsample
from inr_gon.train import select_device
from inr_gon.viz import save_grid


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataset", default="mnist", choices=("mnist", "fashion"))
    p.add_argument("--data-dir", help="folder with the four IDX files (else $INR_GON_DATA/<name>, then the "
                                      "embedded MNIST subset)")
    p.add_argument("--factor", type=int, default=2, help="downsampling factor of the inputs (28 -> 28/factor)")
    p.add_argument("--steps", type=int, default=2000, help="maximum training steps")
    p.add_argument("--seconds", type=float, default=200.0, help="training time budget (0: no limit)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-4, help="Adam learning rate")
    p.add_argument("--hidden", type=int, default=128, help="SIREN width")
    p.add_argument("--layers", type=int, default=3, help="sine layers")
    p.add_argument("--latent", type=int, default=32)
    p.add_argument("--inner-scale", type=float, default=None,
                   help="weight of each input pixel in the inner sum (default: factor²/64, i.e. the "
                        "28² trainer's 1/64 per unit area)")
    p.add_argument("--outer-fraction", type=float, default=0.25,
                   help="fraction of 28² pixels in the Monte-Carlo outer loss")
    p.add_argument("--test-images", type=int, default=0, help="evaluate on the first N test images (0: all)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: PyTorch's default)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:i]")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/superres_mnist")
    return p


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    try:
        return run(a)
    except (ValueError, FloatingPointError) as e:     # bad options, data errors, a diverged run
        print(f"superres_mnist: error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2


def run(a: argparse.Namespace) -> int:
    """Train, evaluate on the test set and write the figure and metrics."""
    device = select_device(a.device)
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    inner_scale = a.inner_scale if a.inner_scale is not None else a.factor ** 2 / 64
    torch.manual_seed(a.seed)
    ds = load_mnist(a.dataset, data_dir=a.data_dir)
    hi_train = ds.train_images.to(device)
    hi_test = ds.test_images[:a.test_images or None].to(device)
    lo_train, lo_test = area_downsample(hi_train, a.factor), area_downsample(hi_test, a.factor)
    size = tuple(hi_test.shape[2:])

    model = LatentSiren(2, a.latent, hi_train.shape[1], a.hidden, a.layers).to(device)
    t_start = time.perf_counter()
    log = lambda step, lv: print(f"step {step}: train MSE {lv:.5f} ({time.perf_counter() - t_start:.0f} s)", flush=True)
    hist = fit_conversion(model, lo_train, hi_train, steps=a.steps, seconds=a.seconds or None,
                          batch_size=a.batch_size, lr=a.lr, inner_scale=inner_scale,
                          outer_fraction=a.outer_fraction, seed=a.seed, log_every=100, callback=log)

    t0 = time.perf_counter()
    preds = {"gon": convert(model, lo_test, size, inner_scale=inner_scale)}
    eval_seconds = time.perf_counter() - t0
    for mode in ("bicubic", "bilinear", "nearest"):
        preds[mode] = upsample(lo_test, size, mode=mode)
    metrics = {f"psnr_{k}": float(psnr(v, hi_test).mean()) for k, v in preds.items()}
    metrics.update({f"ssim_{k}": float(ssim(v, hi_test).mean()) for k, v in preds.items()})
    metrics.update({
        "psnr_gon_minus_bicubic": metrics["psnr_gon"] - metrics["psnr_bicubic"],
        "fraction_images_gon_beats_bicubic": float((psnr(preds["gon"], hi_test) > psnr(preds["bicubic"], hi_test))
                                                   .float().mean()),
        "steps": hist["steps"], "train_seconds": round(hist["seconds"], 1), "eval_seconds": round(eval_seconds, 1),
        "final_train_mse": hist["loss"][-1] if hist["loss"] else None,
        "num_test": int(hi_test.shape[0]), "input_size": list(lo_test.shape[2:]), "output_size": list(size),
        "params": sum(p.numel() for p in model.parameters()), "dataset": ds.name, "data_source": ds.source,
        "device": str(device), "threads": torch.get_num_threads(),
        "config": {k: v for k, v in vars(a).items()} | {"inner_scale": inner_scale},
    })

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    n = min(12, hi_test.shape[0])
    rows = [upsample(lo_test[:n], size, mode="nearest"), preds["bicubic"][:n], preds["gon"][:n].clamp(0, 1),
            hi_test[:n]]
    show = F.interpolate(torch.cat(rows), scale_factor=4, mode="nearest")
    save_grid(show, out / "superres_vs_bicubic.png", nrow=n, pad=4)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(" ".join(f"{k}={metrics[k]:.2f}" for k in ("psnr_gon", "psnr_bicubic", "psnr_bilinear", "psnr_nearest")),
          f"on {metrics['num_test']} test images; outputs in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
