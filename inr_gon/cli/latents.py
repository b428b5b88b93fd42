"""Latents in and out: ``inr-gon encode`` writes a data set's latents (one ``.npz``,
:mod:`inr_gon.training.latents_file`); ``render --latents`` and ``mesh --latents`` decode them,
and ``--index``, ``--sample`` and ``--slerp`` pick, sample or interpolate them."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

__all__ = ["add_encode_parser", "add_latents_options", "cmd_encode", "file_latents"]


def add_latents_options(parser, command: str) -> None:
    what = "images" if command == "render" else "meshes"
    g = parser.add_argument_group("latents from a file ('inr-gon encode')")
    g.add_argument(
        "--latents",
        metavar="FILE",
        help=f"decode these latents into {what} (encoded by this model; --sample and --slerp then work on them)",
    )
    g.add_argument(
        "--index",
        nargs="+",
        metavar="I",
        help="which latents of --latents: indices or names (default: the first 64 images, 8 meshes)",
    )


def file_latents(run, args, *, clash=None, first: int = 64) -> tuple[torch.Tensor, list]:
    """The latents ``(n, k)`` (on the run's device) and their names that ``--latents`` with
    ``--index``, ``--sample N`` or ``--slerp A B`` (indices or names in the file) asks for
    (without any of them: the ``first`` ones)."""
    from ..core.sampling import GaussianLatentSampler, slerp_path
    from ..training.latents_file import read_latents

    if clash:
        raise ValueError(f"{clash} and --latents both give latents: give one")
    lat = read_latents(args.latents, run.model)
    z = lat.latents.to(run.device)
    n = len(z)
    if n == 0:
        raise ValueError(f"{args.latents}: holds no latents")

    def pick(ref) -> int:
        ref = str(ref)
        if ref in lat.names:
            return lat.names.index(ref)
        if ref.lstrip("-").isdigit() and -n <= int(ref) < n:
            return int(ref) % n
        raise ValueError(f"{args.latents}: no latent {ref!r} (indices 0..{n - 1}, or a name in the file)")

    if args.sample is not None:
        if n < 2:
            raise ValueError(f"{args.latents}: --sample fits a Gaussian to the latents and needs at least two")
        g = torch.Generator().manual_seed(args.seed)
        return GaussianLatentSampler(z).sample(args.sample, generator=g).to(run.device), [
            f"sample {k}" for k in range(args.sample)
        ]
    if args.slerp is not None:
        a, b = (pick(r) for r in args.slerp)
        frames = args.frames
        return slerp_path(z[a], z[b], frames), [f"t={k / max(frames - 1, 1):.2f}" for k in range(frames)]
    index = [pick(i) for i in args.index] if args.index else list(range(min(n, first)))
    return z[index], [lat.names[i] for i in index]


def add_encode_parser(sub, common, positive_int) -> None:
    e = sub.add_parser(
        "encode",
        parents=[common],
        help="write the latents of a data set to one .npz",
        description="Encode a data set with a trained or pretrained model: images (--dataset, the run's own by "
        "default; --subset train|test), a tree of meshes (--meshes) or DeepSDF data (--deepsdf, with --split). "
        "The .npz holds the latents, their names, labels where they exist and the model's identity, so "
        "that 'render --latents' and 'mesh --latents' refuse latents of another model.",
    )
    e.add_argument("--out", required=True, help="the .npz to write")
    g = e.add_argument_group("images")
    g.add_argument("--dataset", help="mnist, fashion or an image folder (default: the run's own)")
    g.add_argument("--subset", choices=("train", "test"), default="test", help="which images (default: test)")
    g.add_argument("--num", type=positive_int, help="at most this many (default: all)")
    g.add_argument("--batch-size", type=positive_int, default=256, help="images encoded at once (default: 256)")
    s = e.add_argument_group("shapes")
    s.add_argument("--meshes", metavar="DIR", help="every mesh under this folder (any layout 'inr-gon prepare' reads)")
    s.add_argument("--deepsdf", metavar="DIR", help="a DeepSDF data folder")
    s.add_argument("--split", metavar="JSON", help="the shapes of this split file (with --deepsdf; default: all)")
    e.set_defaults(func=cmd_encode)


def cmd_encode(args: argparse.Namespace) -> int:
    from ..training.latents_file import save_latents
    from .checkpoints import _load

    run = _load(args, None)
    commands = run.task_class.commands
    if "render" not in commands and "mesh" not in commands:
        raise ValueError(f"'inr-gon encode' takes image and shape models, not a {run.task_name!r} one")
    if "mesh" in commands:
        if args.dataset:
            raise ValueError("--dataset is for image models; give --meshes DIR or --deepsdf DIR")
        z, names, source = _encode_shapes(run, args)
        labels = None
    else:
        if args.meshes or args.deepsdf or args.split:
            raise ValueError("--meshes, --deepsdf and --split are for shape models; give --dataset")
        z, names, labels, source = _encode_images(run, args)
    path = save_latents(args.out, z, model=run.model, task=run.task_name, source=source, names=names, labels=labels)
    print(f"wrote {len(z)} latents of size {z.shape[1]} ({source}) to {path}")
    return 0


def _encode_images(run, args):
    import dataclasses

    from tqdm.auto import tqdm

    from ..training.tasks.image import load_dataset
    from .checkpoints import _encode

    cfg = run.config
    changes = {"dataset": args.dataset} if args.dataset else {}
    if args.data_dir:
        changes["data_dir"] = args.data_dir
    ds = load_dataset(dataclasses.replace(cfg, **changes) if changes else cfg)
    if tuple(ds.test_images.shape[1:]) != tuple(run.state["dataset"]["image_shape"]):
        raise ValueError(
            f"{ds.name}: images of shape {tuple(ds.test_images.shape[1:])}, the model was trained on "
            f"{tuple(run.state['dataset']['image_shape'])}"
        )
    images = ds.test_images if args.subset == "test" else ds.train_images
    labels = ds.test_labels if args.subset == "test" else ds.train_labels
    n = min(len(images), args.num or len(images))
    zs = []
    for j in tqdm(range(0, n, args.batch_size), desc="encode", unit="batch"):
        zs.append(_encode(run, images[j : min(j + args.batch_size, n)].to(run.device)).cpu())
    names = [f"{args.subset}/{i}" for i in range(n)]
    return torch.cat(zs), names, labels[:n].numpy(), f"{ds.name} {args.subset}"


def _encode_shapes(run, args):
    from tqdm.auto import tqdm

    from ..training.tasks.sdf_encoding import encode_samples

    cfg = run.config
    if bool(args.meshes) == bool(args.deepsdf):
        raise ValueError("give one of --meshes DIR or --deepsdf DIR")
    if args.split and not args.deepsdf:
        raise ValueError("--split names shapes of --deepsdf data")
    zs, names = [], []
    if args.meshes:
        from ..data.prepare import find_meshes
        from .checkpoints import _mesh_samples

        for e in tqdm(find_meshes(args.meshes), desc="encode", unit="shape"):
            pts, sdf, _ = _mesh_samples(e.path, cfg, run.device)
            zs.append(encode_samples(run.model, cfg, pts, sdf).cpu())
            names.append(f"{e.class_id}/{e.shape_id}")
        return torch.cat(zs), names, f"meshes under {Path(args.meshes).resolve()}"
    from ..data.deepsdf import deepsdf_files
    from ..data.prepare import read_split
    from ..data.sample_pools import SamplePools

    files = deepsdf_files(args.deepsdf, read_split(args.split) if args.split else None)
    pools = SamplePools(files, 8192, cfg.seed)
    for i in tqdm(range(len(files)), desc="encode", unit="shape"):
        pts, sdf = pools.take([i])
        zs.append(encode_samples(run.model, cfg, pts.to(run.device), sdf.to(run.device)).cpu())
        names.append(f"{files[i].parent.name}/{files[i].stem}")
    return (
        torch.cat(zs),
        names,
        f"DeepSDF data {Path(args.deepsdf).resolve()}" + (f" ({args.split})" if args.split else ""),
    )
