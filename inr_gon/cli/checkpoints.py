"""The commands that start from a trained run's checkpoint: ``render`` (images at any
resolution), ``eval`` (test metrics of any run) and ``mesh`` (shapes). Each opens the checkpoint
with :func:`~inr_gon.training.run.load_run` and refuses a kind it does not fit in one line."""

from __future__ import annotations

import dataclasses
import json
import sys
import warnings
from pathlib import Path

import torch

__all__ = ["cmd_render", "cmd_eval", "cmd_mesh"]


def _load(args, command: str):
    from ..training.pretrained import load_pretrained
    from ..training.run import load_run

    if getattr(args, "pretrained", None):
        run = load_pretrained(args.pretrained, device=args.device)
    else:
        run = load_run(args.checkpoint, device=args.device)
    if command is not None:
        run.require(command)
    if getattr(args, "encode_steps", None) is not None:
        if not hasattr(run.config, "encode_steps"):
            raise ValueError(f"--encode-steps: a {run.task_name!r} model does not encode by latent steps")
        run.config = dataclasses.replace(run.config, encode_steps=args.encode_steps)
    return run


def _dataset_for(run, args):
    """The run's image data set (read directly: no trainer, model or speed probe is built for it)."""
    from ..training.tasks.image import load_dataset

    cfg = run.config
    if getattr(args, "data_dir", None):
        cfg = dataclasses.replace(cfg, data_dir=args.data_dir)
    return load_dataset(cfg)


def _encode(run, images):
    from ..training.tasks.image import encode_as_run

    return encode_as_run(run.model, images, run.config)


def _decode(run, z, resolution, chunk):
    from ..training.tasks.image import decode_latents

    return decode_latents(run.model, z, resolution, loss=run.config.outer_loss, chunk_size=chunk)


def _read_images(files, run):
    from ..data.images import read_image
    import torch.nn.functional as F

    C, H, W = run.state["dataset"]["image_shape"]
    imgs = []
    for f in files:
        a = torch.from_numpy(read_image(f, channels=C)).float()
        a = a.permute(2, 0, 1) if a.dim() == 3 else a[None]
        imgs.append(F.interpolate(a[None], size=(H, W), mode="area")[0] if a.shape[1:] != (H, W) else a)
    return torch.stack(imgs).to(run.device)


def cmd_render(args) -> int:
    from ..core.sampling import GaussianLatentSampler, slerp_path
    from ..viz import save_gif, save_grid

    run = _load(args, "render")
    res = args.resolution
    out = Path(args.out)
    modes = sum(x is not None and x is not False for x in (args.images, args.sample, args.slerp))
    if args.latents:
        from .latents import file_latents

        z, _ = file_latents(run, args, clash=args.images and "--images")
    elif args.index:
        raise ValueError("--index picks latents of --latents FILE")
    elif modes != 1:
        raise ValueError("give exactly one of --images, --sample, --slerp or --latents")
    elif args.images:
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
        save_gif(imgs, out)  # one frame per image
    else:
        save_grid(imgs, out, nrow=args.nrow)
    print(f"wrote {imgs.shape[0]} image(s) at {res}x{res} to {out}")
    return 0


def cmd_eval(args) -> int:
    """Test metrics of any run's checkpoint: images (PSNR/SSIM of one-step reconstructions),
    shapes (field and mesh metrics), the other tasks (their final evaluation)."""
    from ..eval.image import psnr, ssim
    from ..training.tasks.image import ImageTask
    from ..training.tasks.shapes import ShapeTask

    run = _load(args, "eval")
    split_options = [o for o in ("deepsdf", "split", "csv") if getattr(args, o, None)] + (
        ["refine"] if args.refine else []
    )
    if split_options and not issubclass(run.task_class, ShapeTask):
        raise ValueError(f"--{split_options[0]} is for shape checkpoints (sdf, autodecoder), not {run.task_name!r}")
    if split_options:
        return _eval_split(run, args)
    if issubclass(run.task_class, ShapeTask):
        return _eval_shapes(run)
    if not issubclass(run.task_class, ImageTask):
        t = run.trainer(data_dir=args.data_dir)
        res = {"task": run.task_name, "step": run.step, **t.task.final_metrics(t)}
        print(json.dumps(res, indent=2, default=str))
        return 0
    ds = _dataset_for(run, args)
    x = ds.test_images[: args.num].to(run.device)
    if x.shape[0] == 0:
        raise ValueError("the data set has no test images")
    rec = _decode(run, _encode(run, x), tuple(x.shape[2:]), args.chunk_size)
    res = {
        "test_psnr": float(psnr(rec, x).mean()),
        "test_ssim": float(ssim(rec, x).mean()),
        "num_test": int(x.shape[0]),
        "dataset": ds.name,
        "step": run.step,
    }
    print(json.dumps(res, indent=2))
    return 0


def _eval_split(run, args) -> int:
    """Every shape of a DeepSDF split: one row each (``--csv``), mean and median printed."""
    from ..training.split_eval import evaluate_split, summarize, write_csv

    data = args.deepsdf or getattr(run.config, "deepsdf", None)
    if not data:
        raise ValueError("--split needs --deepsdf DIR (the run did not train on DeepSDF data)")
    if not args.split:
        raise ValueError("give --split JSON: the shapes to evaluate")
    rows = evaluate_split(
        run,
        data,
        args.split,
        refine=args.refine,
        refine_lr=args.refine_lr,
        resolution=args.mesh_resolution,
        progress=True,
    )
    if args.csv:
        write_csv(rows, args.csv)
    res = {
        "task": run.task_name,
        "step": run.step,
        "refine": args.refine,
        "refine_lr": args.refine_lr,
        **summarize(rows),
    }
    if args.csv:
        res["csv"] = str(args.csv)
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
            m = task.evaluate_shapes(idx[: cfg.eval_shapes])
            res.update({f"{split}_{k}": m[k] for k in ("chamfer", "iou", "normal_consistency", "empty_meshes")})
    print(json.dumps(res, indent=2))
    return 0


def _mesh_samples(path, cfg, device):
    """A mesh file normalised and sampled like the training pools: ``(points (1, N, 3), sdf (1, N), mesh)``."""
    from ..data.meshes import load_mesh, normalize_mesh, sample_sdf

    try:
        mesh = load_mesh(path)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable mesh ({str(e).splitlines()[0]})") from None
    mesh, _, _ = normalize_mesh(mesh)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        s = sample_sdf(
            mesh,
            num_uniform=cfg.pool // 2,
            num_surface=cfg.pool - cfg.pool // 2,
            sigmas=(0.05, 0.01, 0.002),
            seed=cfg.seed,
        )
    return s.points[None].to(device), s.sdf[None].to(device), mesh


def cmd_mesh(args) -> int:
    """Meshes from an SDF checkpoint: a training shape, a new mesh file, a slerp or samples."""
    from ..core.sampling import GaussianLatentSampler, slerp_path
    from ..geometry.mesh import extract_mesh
    from ..training.tasks.sdf_encoding import encode_samples
    from ..viz import save_mesh_grid

    run = _load(args, "mesh")
    model, cfg, state, device = run.model, run.config, run.state, run.device
    observed = args.points or args.depth
    modes = sum(x is not None for x in (args.shape, args.mesh, args.slerp, args.sample)) + bool(observed)
    if args.points and args.depth:
        raise ValueError("give one of --points or --depth")
    if not args.latents and args.index:
        raise ValueError("--index picks latents of --latents FILE")
    if not args.latents and modes != 1:
        raise ValueError("give exactly one of --shape, --mesh, --slerp, --sample, --points, --depth or --latents")
    out = Path(args.out)
    if out.suffix.lower() not in (".ply", ".obj", ".glb", ".stl", ".off"):
        raise ValueError(f"--out must end in .ply, .obj, .glb, .stl or .off, got {out.name!r}")

    def shapes_task():  # the checkpoint's shape set, rebuilt from its config
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

    obs = None
    if observed and not args.latents:
        from .completion import complete

        z, obs = complete(run, args)
        zs, names = [z], [Path(observed).stem]
    elif args.latents:
        from .latents import file_latents

        clash = (args.shape is not None and "--shape") or (args.mesh and "--mesh") or (observed and "--points/--depth")
        z, names = file_latents(run, args, clash=clash, first=8)
        zs = list(z)
    elif args.shape is not None:
        zs, names = (
            [latent_of(str(args.shape))],
            [state["shapes"]["names"][args.shape] if args.shape < len(state["shapes"]["names"]) else str(args.shape)],
        )
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
    from ..core.sdf import latent_sdf

    meshes, files = [], []
    for k, z in enumerate(zs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            mesh = extract_mesh(
                latent_sdf(model, z), args.resolution, (-1.0, 1.0), method=args.method, lipschitz=args.lipschitz
            )
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
    if args.render and obs is not None:  # the observed surface points beside the completion
        rows = [[obs.surface.cpu().numpy(), meshes[0]]]
        png = save_mesh_grid(rows, out.with_suffix(".png"), titles=["observed points", "completed"])
        print(f"wrote {png}")
    elif args.render:
        png = save_mesh_grid([meshes], out.with_suffix(".png"), titles=names)
        print(f"wrote {png}")
    return 0 if files else 2
