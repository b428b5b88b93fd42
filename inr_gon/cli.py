"""The ``inr-gon`` command line: ``train TASK``, ``render``, ``eval``, ``mesh``.

``inr-gon train image|sdf|superres|classifier|variational|autoencoder [options]`` trains any
task through the one :class:`~inr_gon.training.Trainer`; its options are generated from the
task's config dataclass (``--help`` lists them with their defaults), and ``--config
runs/x/config.json`` re-runs a saved run (options given beside it win). ``inr-gon train`` with
no task name trains images. The examples are these commands. Documented failures (bad options,
missing/corrupt data or checkpoints, an occupied output folder, a non-finite loss) print one line
``inr-gon: error: …`` and exit with status 2.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import warnings
from pathlib import Path

import torch

from .training.config import at_least, load_config_file

__all__ = ["main", "build_parser", "train_main", "sdf_main"]


def add_train_parsers(sub) -> None:
    """``train <task>`` sub-commands, one per task, with options from its config class."""
    from .training.tasks import TASKS
    t = sub.add_parser("train", help="train a GON (tasks: " + ", ".join(TASKS) + ")",
                       description="Train a GON; writes pictures, metrics and checkpoints into --out.")
    tasks = t.add_subparsers(dest="task", required=True, metavar="TASK")
    for name, task in TASKS.items():
        cfg = task.config_class
        doc = " ".join((task.__doc__ or cfg.__doc__ or "").strip().split("\n\n")[0].replace("``", "").split())
        p = tasks.add_parser(name, help=task.about, description=doc or task.about)
        cfg.add_arguments(p)
        g = p.add_argument_group("run")
        g.add_argument("--config", metavar="JSON", help="start from a saved config.json (options given here win)")
        g.add_argument("--resume", action="store_true", help="continue the run in --out from its newest checkpoint")
        g.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
        g.add_argument("--quiet", action="store_true", help="no progress bar")
        p.set_defaults(func=cmd_train)


def cmd_train(args) -> int:
    from .training.checkpoint import check_run_dir
    from .training.tasks import TASKS
    from .training.tasks.base import CollapseWarning
    from .training.trainer import Trainer
    task_cls = TASKS[args.task]
    base = {}
    if args.config:
        base = load_config_file(args.config)
        if base.get("task", args.task) != args.task:
            raise ValueError(f"{args.config} is a {base['task']!r} config, not {args.task!r}")
        if "task" in base:              # a run's own config.json (a hand-written file takes today's defaults)
            base = task_cls.config_class.fill_absent(base)
    cfg = task_cls.config_class.from_args(args, base=base)
    if cfg.out is None:
        cfg.out = task_cls.default_out(cfg)
    saved = Path(cfg.out) / "config.json"
    if args.resume and not args.config and saved.is_file():
        # continue the run with its own settings (options given here still win), not today's defaults
        base = load_config_file(saved)
        if base.get("task", args.task) != args.task:
            raise ValueError(f"{cfg.out} holds a {base['task']!r} run, not {args.task!r}")
        base = task_cls.config_class.fill_absent(base)
        out, cfg = cfg.out, task_cls.config_class.from_args(args, base=base)
        cfg.out = out
    cfg.validate()
    check_run_dir(cfg.out, resume=args.resume, overwrite=args.overwrite)     # before loading any data
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = Trainer(cfg, quiet=args.quiet)
    warnings.filterwarnings("ignore", category=CollapseWarning)        # printed below, once, as "warning:"
    try:
        main_rank = trainer.dist.is_main
        if main_rank:
            for w in caught:
                print(f"note: {w.message}", file=sys.stderr)
            for line in trainer.task.describe(trainer):
                print(line)
        trainer.prepare_run_dir(resume=args.resume, overwrite=args.overwrite)
        metrics = trainer.fit()
        paths, metrics = trainer.write_outputs(metrics)
        trainer.dist.barrier()      # every rank done (rank 0 writes the outputs) before the group goes
        if main_rank:
            for line in trainer.task.summary(trainer, metrics, paths):
                print(line)
            for why in metrics.get("collapse_reasons", []):
                print(f"warning: the run failed to learn: {why}", file=sys.stderr)
    finally:
        # the process group, if torchrun started one; the DDP module holds it, so release the trainer
        # first (a group left to interpreter shutdown can abort the process: pytorch/pytorch#179291)
        group = trainer.dist
        del trainer
        gc.collect()
        group.close()
    if metrics.get("collapsed") and cfg.strict:
        print(f"inr-gon: error: the run failed to learn ({'; '.join(metrics['collapse_reasons'])}); --strict",
              file=sys.stderr)
        return 3
    return 0


def _load(args, command: str):
    from .training.run import load_run
    run = load_run(args.checkpoint, device=args.device)
    run.require(command)
    return run


def _dataset_for(run, args):
    return run.trainer(data_dir=getattr(args, "data_dir", None)).task.dataset


def _encode(run, images):
    from .training.tasks.image import encode_images
    return encode_images(run.model, images, loss=run.config.inner_loss, inner_weight=run.config.inner_weight)


def _decode(run, z, resolution, chunk):
    from .training.tasks.image import decode_latents
    return decode_latents(run.model, z, resolution, loss=run.config.outer_loss, chunk_size=chunk)


def _read_images(files, run):
    from .data.images import read_image
    import torch.nn.functional as F
    C, H, W = run.state["dataset"]["image_shape"]
    imgs = []
    for f in files:
        a = torch.from_numpy(read_image(f, channels=C)).float()
        a = a.permute(2, 0, 1) if a.dim() == 3 else a[None]
        imgs.append(F.interpolate(a[None], size=(H, W), mode="area")[0] if a.shape[1:] != (H, W) else a)
    return torch.stack(imgs).to(run.device)


def cmd_render(args) -> int:
    from .core.sampling import GaussianLatentSampler, slerp_path
    from .viz import save_gif, save_grid
    run = _load(args, "render")
    res = args.resolution
    out = Path(args.out)
    modes = sum(x is not None and x is not False for x in (args.images, args.sample, args.slerp))
    if modes != 1:
        raise ValueError("give exactly one of --images, --sample or --slerp")
    if args.images:
        z = _encode(run, _read_images(args.images, run))
    elif args.sample is not None:
        stats = run.state.get("latent_stats")
        if stats is not None:
            sampler = GaussianLatentSampler.from_moments(stats["mean"], stats["cov"])
        else:
            ds = _dataset_for(run, args)
            sampler = GaussianLatentSampler(_encode(run, ds.train_images[:5000].to(run.device)))
        z = sampler.sample(args.sample, generator=torch.Generator().manual_seed(args.seed)).to(run.device)
    else:
        a, b = args.slerp
        if a.isdigit() and b.isdigit():
            ds = _dataset_for(run, args)
            pair = ds.test_images[[int(a), int(b)]].to(run.device)
        else:
            pair = _read_images([a, b], run)
        za, zb = _encode(run, pair)
        z = slerp_path(za, zb, args.frames)
    imgs = _decode(run, z, res, args.chunk_size)
    if out.suffix.lower() == ".gif":
        save_gif(imgs, out)                 # one frame per image
    else:
        save_grid(imgs, out, nrow=args.nrow)
    print(f"wrote {imgs.shape[0]} image(s) at {res}x{res} to {out}")
    return 0


def cmd_eval(args) -> int:
    """Test metrics of any run's checkpoint: images (PSNR/SSIM of one-step reconstructions),
    shapes (field and mesh metrics), the other tasks (their final evaluation)."""
    from .eval.image import psnr, ssim
    from .training.tasks.image import ImageTask
    from .training.tasks.shapes import ShapeTask
    run = _load(args, "eval")
    if issubclass(run.task_class, ShapeTask):
        return _eval_shapes(run)
    if not issubclass(run.task_class, ImageTask):
        t = run.trainer(data_dir=args.data_dir)
        res = {"task": run.task_name, "step": run.step, **t.task.final_metrics(t)}
        print(json.dumps(res, indent=2, default=str))
        return 0
    ds = _dataset_for(run, args)
    x = ds.test_images[:args.num].to(run.device)
    if x.shape[0] == 0:
        raise ValueError("the data set has no test images")
    rec = _decode(run, _encode(run, x), tuple(x.shape[2:]), args.chunk_size)
    res = {"test_psnr": float(psnr(rec, x).mean()), "test_ssim": float(ssim(rec, x).mean()),
           "num_test": int(x.shape[0]), "dataset": ds.name, "step": run.step}
    print(json.dumps(res, indent=2))
    return 0


def _eval_shapes(run) -> int:
    """Field and mesh metrics of a shape checkpoint (SDF GON or auto-decoder) on its training and
    unseen shapes."""
    t = run.trainer()
    task, cfg = t.task, run.config
    res = {"task": run.task_name, "step": run.step, **task.evaluate(t)}
    for split, idx in (("train", task.shapes.train_index), ("unseen", task.shapes.unseen_index)):
        if idx:
            m = task.evaluate_shapes(idx[:cfg.eval_shapes])
            res.update({f"{split}_{k}": m[k] for k in ("chamfer", "iou", "normal_consistency", "empty_meshes")})
    print(json.dumps(res, indent=2))
    return 0


def _mesh_samples(path, cfg, device):
    """A mesh file normalised and sampled like the training pools: ``(points (1, N, 3), sdf (1, N), mesh)``."""
    from .data.meshes import load_mesh, normalize_mesh, sample_sdf
    try:
        mesh = load_mesh(path)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable mesh ({str(e).splitlines()[0]})") from None
    mesh, _, _ = normalize_mesh(mesh)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        s = sample_sdf(mesh, num_uniform=cfg.pool // 2, num_surface=cfg.pool - cfg.pool // 2,
                       sigmas=(0.05, 0.01, 0.002), seed=cfg.seed)
    return s.points[None].to(device), s.sdf[None].to(device), mesh


def cmd_mesh(args) -> int:
    """Meshes from an SDF checkpoint: a training shape, a new mesh file, a slerp or samples."""
    from .core.sampling import GaussianLatentSampler, slerp_path
    from .geometry.mesh import extract_mesh
    from .training.tasks.sdf import encode_samples
    from .viz import save_mesh_grid
    run = _load(args, "mesh")
    model, cfg, state, device = run.model, run.config, run.state, run.device
    modes = sum(x is not None for x in (args.shape, args.mesh, args.slerp, args.sample))
    if modes != 1:
        raise ValueError("give exactly one of --shape, --mesh, --slerp or --sample")
    out = Path(args.out)
    if out.suffix.lower() not in (".ply", ".obj", ".glb", ".stl", ".off"):
        raise ValueError(f"--out must end in .ply, .obj, .glb, .stl or .off, got {out.name!r}")
    def shapes_task():         # the checkpoint's shape set, rebuilt from its config
        return run.trainer().task

    def latent_of(ref: str):
        if ref.isdigit():
            i = int(ref)
            n = len(state["shapes"]["names"])
            if not 0 <= i < n:
                raise ValueError(f"shape index {i} is outside the checkpoint's {n} shapes")
            return shapes_task().encode([i])[0]
        pts, sdf, _ = _mesh_samples(ref, cfg, device)
        return encode_samples(model, cfg, pts, sdf)[0]

    if args.shape is not None:
        zs, names = [latent_of(str(args.shape))], [state["shapes"]["names"][args.shape]
                                                  if args.shape < len(state["shapes"]["names"]) else str(args.shape)]
    elif args.mesh is not None:
        zs, names = [latent_of(args.mesh)], [Path(args.mesh).stem]
    elif args.slerp is not None:
        za, zb = (latent_of(r) for r in args.slerp)
        zs = list(slerp_path(za, zb, args.frames))
        names = [f"t={k / max(args.frames - 1, 1):.2f}" for k in range(args.frames)]
    else:
        stats = state.get("latent_stats")
        if stats is None:
            z_train = shapes_task().encode(shapes_task().shapes.train_index)
            sampler = GaussianLatentSampler(z_train)
        else:
            sampler = GaussianLatentSampler.from_moments(stats["mean"], stats["cov"])
        zs = list(sampler.sample(args.sample, generator=torch.Generator().manual_seed(args.seed)).to(device))
        names = [f"sample {k}" for k in range(args.sample)]
    from .core.sdf import latent_sdf
    meshes, files = [], []
    for k, z in enumerate(zs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            mesh = extract_mesh(latent_sdf(model, z), args.resolution, (-1.0, 1.0), method=args.method,
                                lipschitz=args.lipschitz)
        path = out if len(zs) == 1 else out.with_name(f"{out.stem}_{k:02d}{out.suffix}")
        path.parent.mkdir(parents=True, exist_ok=True)
        if len(mesh.faces):
            mesh.export(path)
            files.append(path)
        else:
            print(f"warning: {names[k]}: the field has no zero crossing in [-1, 1]^3; no mesh written", file=sys.stderr)
        meshes.append(mesh)
    for f in files:
        print(f"wrote {f}")
    if args.render:
        png = save_mesh_grid([meshes], out.with_suffix(".png"), titles=names)
        print(f"wrote {png}")
    return 0 if files else 2


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="inr-gon", description="Gradient Origin Networks: train, render, evaluate, mesh.")
    sub = p.add_subparsers(dest="command", required=True)
    add_train_parsers(sub)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--checkpoint", required=True, help="a checkpoint written by 'inr-gon train' (or its run folder: the newest checkpoint there)")
    common.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda', ...")
    common.add_argument("--data-dir", help="override the data folder recorded in the checkpoint")
    common.add_argument("--chunk-size", type=_positive_int, default=2 ** 16,
                        help="points evaluated at once (bounds memory; default: 65536)")
    r = sub.add_parser("render", parents=[common], help="render latents at any resolution to PNG/GIF",
                       description="Render encoded, sampled or interpolated latents at any resolution.")
    r.add_argument("--resolution", type=_positive_int, default=256, help="output size in pixels (default: 256)")
    r.add_argument("--images", nargs="+", metavar="FILE", help="encode these image files and render them")
    r.add_argument("--sample", type=_positive_int, metavar="N", help="render N latents sampled from the fitted Gaussian")
    r.add_argument("--slerp", nargs=2, metavar=("A", "B"),
                   help="interpolate between two image files, or two test-set indices")
    r.add_argument("--frames", type=_positive_int, default=16, help="frames of --slerp (default: 16)")
    r.add_argument("--nrow", type=_positive_int, default=8, help="images per row of a PNG grid (default: 8)")
    r.add_argument("--seed", type=int, default=0, help="seed for --sample (default: 0)")
    r.add_argument("--out", required=True, help="output .png (grid) or .gif (one frame per image)")
    r.set_defaults(func=cmd_render)
    e = sub.add_parser("eval", parents=[common], help="print test metrics of a checkpoint",
                       description="Image checkpoints: encode the test set in one gradient step each and print "
                                   "PSNR/SSIM. Shape checkpoints (SDF GON, auto-decoder): field and mesh metrics of "
                                   "training and unseen shapes. Other tasks: their final evaluation.")
    e.add_argument("--num", type=_positive_int, default=10_000, help="test images to use (default: all, up to 10000)")
    e.set_defaults(func=cmd_eval)
    m = sub.add_parser("mesh", help="meshes from an SDF checkpoint (a shape, a new mesh, a slerp, samples)",
                       description="Extract meshes from an SDF-GON (or auto-decoder) checkpoint: a training shape, "
                                   "a new mesh file encoded from its samples, a slerp, or samples of a Gaussian "
                                   "fitted to the training latents.")
    m.add_argument("--checkpoint", required=True, help="a checkpoint written by 'inr-gon train sdf|autodecoder'")
    m.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda', ...")
    m.add_argument("--shape", type=_nonneg_int, metavar="I", help="training shape I (its index in the shape set)")
    m.add_argument("--mesh", metavar="FILE", help="a mesh file: normalised, sampled and encoded")
    m.add_argument("--slerp", nargs=2, metavar=("A", "B"), help="interpolate between two shapes (indices or mesh files)")
    m.add_argument("--frames", type=_positive_int, default=8, help="meshes of --slerp (default: 8)")
    m.add_argument("--sample", type=_positive_int, metavar="N", help="N shapes from a Gaussian fitted to the training latents")
    m.add_argument("--seed", type=int, default=0, help="seed of --sample (default: 0)")
    m.add_argument("--resolution", type=_positive_int, default=128, help="marching-cubes samples per axis (default: 128)")
    m.add_argument("--method", choices=("coarse_to_fine", "dense"), default="coarse_to_fine",
                   help="coarse-to-fine (default; evaluates the field only near the surface) or dense")
    m.add_argument("--lipschitz", type=_positive_float, default=4.0,
                   help="Lipschitz bound assumed by coarse-to-fine extraction (larger: safer; default: 4)")
    m.add_argument("--out", required=True, help="output mesh: .ply, .obj, .glb, .stl or .off (several: _NN suffixes)")
    m.add_argument("--render", action="store_true", help="also write a PNG picture beside the mesh")
    m.set_defaults(func=cmd_mesh)
    return p


def _positive_int(s: str) -> int:
    from .training.config import _parser
    return _parser(int, at_least(1), False)(s)


def _nonneg_int(s: str) -> int:
    from .training.config import _parser
    return _parser(int, at_least(0), False)(s)


def _positive_float(s: str) -> float:
    from .training.config import _parser, positive
    return _parser(float, positive, False)(s)


def _with_task(argv: list) -> list:
    """``train --dataset x`` (no task name) is ``train image --dataset x``."""
    from .training.tasks import TASKS
    if argv and argv[0] == "train" and (len(argv) == 1 or argv[1] not in (*TASKS, "-h", "--help")):
        return ["train", "image", *argv[1:]]
    return argv


def main(argv=None) -> int:
    from .training.checkpoint import CheckpointError
    from .training.guard import NonFiniteLossError
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(_with_task(argv))
    try:
        return args.func(args)
    except (ValueError, CheckpointError, NonFiniteLossError, OSError) as e:   # OSError: files, disk
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"inr-gon: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("inr-gon: interrupted", file=sys.stderr)
        return 130


def train_main(argv=None, *, task: str = "image") -> int:
    """``inr-gon train TASK`` with ``argv`` (the examples' entry point)."""
    return main(["train", task, *(sys.argv[1:] if argv is None else argv)])


def sdf_main(argv=None) -> int:
    """``inr-gon-sdf``: ``inr-gon train sdf``."""
    return train_main(argv, task="sdf")


if __name__ == "__main__":
    sys.exit(main())
