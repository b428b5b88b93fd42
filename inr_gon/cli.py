"""The ``inr-gon`` command line: ``train``, ``render`` and ``eval``.

``examples/fit_mnist_siren.py`` is ``inr-gon train``; every option is documented by ``--help``.
Documented failures (bad options, missing/corrupt data or checkpoints, an occupied output
folder, a non-finite loss) print one line ``inr-gon: error: …`` and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import torch

from .config import fraction, nonneg_int, positive_float, positive_int

__all__ = ["main", "build_parser", "train_main"]


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """The training options (shared by ``inr-gon train`` and the examples)."""
    from .train import CPU_DEFAULTS, CUDA_DEFAULTS
    d = lambda k: f"default: {CPU_DEFAULTS.get(k)} on CPU, {CUDA_DEFAULTS.get(k)} on CUDA"
    g = p.add_argument_group("data")
    g.add_argument("--dataset", default="mnist",
                   help="'mnist', 'fashion' or a folder of PNG/JPEG images (class sub-folders become labels)")
    g.add_argument("--data-dir", help="folder holding the four IDX files of the data set (else $INR_GON_DATA/<name>, "
                                      "then datasets/, then download, then the embedded MNIST subset)")
    g.add_argument("--resolution", type=positive_int, help="image folders: resize images to this size")
    g.add_argument("--channels", type=int, choices=(1, 3), default=1, help="image folders: 1 (gray) or 3 (RGB)")
    g = p.add_argument_group("model")
    g.add_argument("--hidden", type=positive_int, help=f"SIREN width ({d('hidden')})")
    g.add_argument("--layers", type=positive_int, help=f"number of sine layers ({d('layers')})")
    g.add_argument("--latent", type=positive_int, default=32, help="latent size (default: 32)")
    g.add_argument("--w0", type=positive_float, default=30.0, help="SIREN frequency of the hidden layers (default: 30)")
    g.add_argument("--w0-first", type=positive_float, default=30.0, help="SIREN frequency of the first layer (default: 30)")
    g = p.add_argument_group("training")
    g.add_argument("--steps", type=nonneg_int, help=f"total steps; with --resume, continue up to this step ({d('steps')})")
    g.add_argument("--seconds", type=float, help=f"stop training after this many seconds, 0: no limit ({d('seconds')})")
    g.add_argument("--batch-size", type=positive_int, help=f"images per step, in all (under torchrun: the global batch, split evenly over the "
                        f"processes) ({d('batch_size')})")
    g.add_argument("--lr", type=positive_float, help=f"Adam learning rate ({d('lr')})")
    g.add_argument("--lr-schedule", choices=("constant", "cosine"),
                   help=f"constant, or cosine decay to lr/20 at --steps ({d('lr_schedule')})")
    g.add_argument("--loss", choices=("mse", "bce", "l1"), default="mse", help="inner and outer loss (default: mse)")
    g.add_argument("--inner-scale", type=positive_float, default=1 / 64,
                   help="weight of each pixel in the inner integral: z = -scale * grad of the per-image sum "
                        "(default: 1/64, cwkx/GON's latent at batch 64; independent of the batch)")
    g.add_argument("--outer-fraction", type=fraction,
                   help=f"fraction of pixels in the Monte-Carlo outer integral ({d('outer_fraction')})")
    g.add_argument("--eval-every", type=positive_int, help=f"steps between test evaluations ({d('eval_every')})")
    g.add_argument("--eval-images", type=positive_int, default=1000,
                   help="test images in periodic evaluations (the final one uses the whole test set; default: 1000)")
    g.add_argument("--checkpoint-every", type=positive_int, help=f"steps between checkpoints ({d('checkpoint_every')})")
    g.add_argument("--keep-checkpoints", type=positive_int, default=3, help="checkpoints kept (default: 3)")
    g.add_argument("--on-nonfinite", choices=("stop", "skip"), default="stop",
                   help="on a NaN/Inf loss: stop (default; the last good checkpoint stays) or skip the batch")
    g.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    g.add_argument("--device", default="auto", help="'auto' (CUDA when present), 'cpu', 'cuda', 'cuda:1', ...")
    g = p.add_argument_group("output")
    g.add_argument("--out", help="run folder (default: runs/<dataset>_siren)")
    g.add_argument("--resume", action="store_true", help="continue the run in --out from its newest checkpoint")
    g.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g = p.add_argument_group("speed (under torchrun every process trains on its share of --batch-size)")
    g.add_argument("--amp", choices=("off", "bf16", "fp16"), default="off",
                   help="autocast the outer pass to bf16/fp16 (the latent stays float32; default: off)")
    g.add_argument("--tf32", action="store_true", help="allow TF32 matmuls on CUDA (faster, ~1e-3 relative error)")
    g.add_argument("--release-memory", action="store_true",
                   help="CPU: keep glibc's default of returning large freed blocks to the OS (slower steps; "
                        "by default freed memory is kept for reuse)")
    g.add_argument("--nonfinite-check", choices=("immediate", "deferred"),
                   help="check the loss every step (host sync; CPU default) or read a device-side flag every "
                        "log interval, never applying a non-finite update (CUDA default)")


def _config_from_args(args):
    from .train import TrainConfig
    name = Path(args.dataset).name if Path(args.dataset).is_dir() else args.dataset
    return TrainConfig(
        dataset=args.dataset, data_dir=args.data_dir, resolution=args.resolution, channels=args.channels,
        steps=args.steps, seconds=args.seconds, batch_size=args.batch_size, lr=args.lr,
        lr_schedule=args.lr_schedule, hidden=args.hidden,
        layers=args.layers, latent=args.latent, w0=args.w0, w0_first=args.w0_first, loss=args.loss,
        inner_scale=args.inner_scale, outer_fraction=args.outer_fraction, eval_every=args.eval_every,
        eval_images=args.eval_images, checkpoint_every=args.checkpoint_every,
        keep_checkpoints=args.keep_checkpoints, seed=args.seed, device=args.device,
        out=args.out or str(Path("runs") / f"{name}_siren"), on_nonfinite=args.on_nonfinite,
        amp=args.amp, tf32=args.tf32, keep_freed_memory=not args.release_memory,
        nonfinite_check=args.nonfinite_check)


def cmd_train(args) -> int:
    from .train import ImageGONTrainer, write_outputs
    cfg = _config_from_args(args)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t = ImageGONTrainer(cfg, quiet=args.quiet)
    try:
        return _train_and_write(t, args, caught, write_outputs)
    finally:
        t.dist.close()        # the process group, if torchrun started one


def _train_and_write(t, args, caught, write_outputs) -> int:
    """Train; rank 0 (the only process without torchrun) prints and writes the outputs."""
    main = t.dist.is_main
    for w in caught if main else ():
        print(f"note: {w.message}", file=sys.stderr)
    if main:
        print(f"data: {t.train_images.shape[0]} train / {t.test_images.shape[0]} test images from {t.dataset.source}")
        print(f"model: LatentSiren {t.cfg.layers}x{t.cfg.hidden}, latent {t.cfg.latent}, "
              f"{sum(p.numel() for p in t.model.parameters()):,} parameters on {t.device}; "
              f"batch {t.cfg.batch_size}, lr {t.cfg.lr:g}, outer fraction {t.cfg.outer_fraction:g}, "
              f"steps {t.cfg.steps}")
        if t.dist.enabled:
            print(f"data parallel: {t.dist.world_size} processes, {t.cfg.batch_size // t.dist.world_size} "
                  f"images each per step (global batch {t.cfg.batch_size})")
    t.prepare_run_dir(resume=args.resume, overwrite=args.overwrite)
    metrics = t.fit()
    if not main:
        return 0
    paths = write_outputs(t, metrics, t.out)
    print(f"test PSNR {metrics['test_psnr']:.2f} dB, SSIM {metrics['test_ssim']:.4f} on {metrics['num_test']} "
          f"unseen images after {metrics['steps']} steps ({metrics['train_seconds']:.0f} s)")
    print(f"wrote to {t.out}/: " + ", ".join(sorted(p.name for p in paths.values()) + ["config.json",
                                                                                       Path(metrics['checkpoint']).name]))
    return 0


def _load(args):
    from .train import load_trained, select_device
    device = select_device(args.device)
    model, state = load_trained(args.checkpoint, device=device)
    return model, state, device


def _dataset_for(state, args):
    from .train import TrainConfig, load_dataset
    cfg = TrainConfig.from_dict(state["config"])
    if getattr(args, "data_dir", None):
        cfg.data_dir = args.data_dir
    return load_dataset(cfg)


def _encode(model, state, images):
    from .train import encode_images
    return encode_images(model, images, loss=state["config"]["loss"], inner_scale=state["config"]["inner_scale"])


def _decode(model, state, z, resolution, chunk):
    from .train import decode_latents
    return decode_latents(model, z, resolution, loss=state["config"]["loss"], chunk_size=chunk)


def _read_images(files, state, device):
    from .data.images import read_image
    import torch.nn.functional as F
    C, H, W = state["dataset"]["image_shape"]
    imgs = []
    for f in files:
        a = torch.from_numpy(read_image(f, channels=C)).float()
        a = a.permute(2, 0, 1) if a.dim() == 3 else a[None]
        imgs.append(F.interpolate(a[None], size=(H, W), mode="area")[0] if a.shape[1:] != (H, W) else a)
    return torch.stack(imgs).to(device)


def cmd_render(args) -> int:
    from .sampling import GaussianLatentSampler, slerp_path
    from .viz import save_gif, save_grid
    model, state, device = _load(args)
    res = args.resolution
    out = Path(args.out)
    modes = sum(x is not None and x is not False for x in (args.images, args.sample, args.slerp))
    if modes != 1:
        raise ValueError("give exactly one of --images, --sample or --slerp")
    if args.images:
        z = _encode(model, state, _read_images(args.images, state, device))
    elif args.sample is not None:
        stats = state.get("latent_stats")
        if stats is not None:
            sampler = GaussianLatentSampler.from_moments(stats["mean"], stats["cov"])
        else:
            ds = _dataset_for(state, args)
            sampler = GaussianLatentSampler(_encode(model, state, ds.train_images[:5000].to(device)))
        z = sampler.sample(args.sample, generator=torch.Generator().manual_seed(args.seed)).to(device)
    else:
        a, b = args.slerp
        if a.isdigit() and b.isdigit():
            ds = _dataset_for(state, args)
            pair = ds.test_images[[int(a), int(b)]].to(device)
        else:
            pair = _read_images([a, b], state, device)
        za, zb = _encode(model, state, pair)
        z = slerp_path(za, zb, args.frames)
    imgs = _decode(model, state, z, res, args.chunk_size)
    if out.suffix.lower() == ".gif":
        save_gif(imgs, out)                 # one frame per image
    else:
        save_grid(imgs, out, nrow=args.nrow)
    print(f"wrote {imgs.shape[0]} image(s) at {res}x{res} to {out}")
    return 0


def cmd_eval(args) -> int:
    from .metrics import psnr, ssim
    model, state, device = _load(args)
    ds = _dataset_for(state, args)
    x = ds.test_images[:args.num].to(device)
    if x.shape[0] == 0:
        raise ValueError("the data set has no test images")
    rec = _decode(model, state, _encode(model, state, x), tuple(x.shape[2:]), args.chunk_size)
    res = {"test_psnr": float(psnr(rec, x).mean()), "test_ssim": float(ssim(rec, x).mean()),
           "num_test": int(x.shape[0]), "dataset": ds.name, "step": state["step"]}
    print(json.dumps(res, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="inr-gon", description="Gradient Origin Networks: train, render, evaluate.")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train an implicit GON on MNIST, Fashion-MNIST or an image folder",
                       description="Train an implicit GON (SIREN over pixel coordinates); writes pictures, "
                                   "metrics and checkpoints into --out.")
    add_train_arguments(t)
    t.set_defaults(func=cmd_train)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--checkpoint", required=True, help="a checkpoint written by 'inr-gon train'")
    common.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda', ...")
    common.add_argument("--data-dir", help="override the data folder recorded in the checkpoint")
    common.add_argument("--chunk-size", type=positive_int, default=2 ** 16,
                        help="points evaluated at once (bounds memory; default: 65536)")
    r = sub.add_parser("render", parents=[common], help="render latents at any resolution to PNG/GIF",
                       description="Render encoded, sampled or interpolated latents at any resolution.")
    r.add_argument("--resolution", type=positive_int, default=256, help="output size in pixels (default: 256)")
    r.add_argument("--images", nargs="+", metavar="FILE", help="encode these image files and render them")
    r.add_argument("--sample", type=positive_int, metavar="N", help="render N latents sampled from the fitted Gaussian")
    r.add_argument("--slerp", nargs=2, metavar=("A", "B"),
                   help="interpolate between two image files, or two test-set indices")
    r.add_argument("--frames", type=positive_int, default=16, help="frames of --slerp (default: 16)")
    r.add_argument("--nrow", type=positive_int, default=8, help="images per row of a PNG grid (default: 8)")
    r.add_argument("--seed", type=int, default=0, help="seed for --sample (default: 0)")
    r.add_argument("--out", required=True, help="output .png (grid) or .gif (one frame per image)")
    r.set_defaults(func=cmd_render)
    e = sub.add_parser("eval", parents=[common], help="print test metrics of a checkpoint",
                       description="Encode the test set in one gradient step each and print PSNR/SSIM.")
    e.add_argument("--num", type=positive_int, default=10_000, help="test images to use (default: all, up to 10000)")
    e.set_defaults(func=cmd_eval)
    return p


def main(argv=None) -> int:
    from .checkpoint import CheckpointError
    from .train import NonFiniteLossError
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, CheckpointError, NonFiniteLossError, OSError) as e:   # OSError: files, disk
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"inr-gon: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("inr-gon: interrupted", file=sys.stderr)
        return 130


def train_main(argv=None) -> int:
    """``inr-gon train`` with ``argv`` (the examples' entry point)."""
    return main(["train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
