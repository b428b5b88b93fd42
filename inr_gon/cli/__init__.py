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
import sys
import warnings
from pathlib import Path


from ..training.config import at_least, load_config_file

from .checkpoints import cmd_eval, cmd_mesh, cmd_render
from .data import add_prepare_parser, cmd_prepare
from .completion import add_completion_options
from .latents import add_encode_parser, add_latents_options
from ..training.pretrained import names as pretrained_names

__all__ = [
    "main",
    "build_parser",
    "train_main",
    "sdf_main",
    "cmd_train",
    "cmd_render",
    "cmd_eval",
    "cmd_mesh",
    "cmd_prepare",
]


def add_train_parsers(sub) -> None:
    """``train <task>`` sub-commands, one per task, with options from its config class."""
    from ..training.tasks import TASKS

    t = sub.add_parser(
        "train",
        help="train a GON (tasks: " + ", ".join(TASKS) + ")",
        description="Train a GON; writes pictures, metrics and checkpoints into --out.",
    )
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
    from ..training.checkpoint import check_run_dir
    from ..training.tasks import TASKS
    from ..training.tasks.base import CollapseWarning
    from ..training.trainer import Trainer

    task_cls = TASKS[args.task]
    base = {}
    if args.config:
        base = load_config_file(args.config)
        if base.get("task", args.task) != args.task:
            raise ValueError(f"{args.config} is a {base['task']!r} config, not {args.task!r}")
        if "task" in base:  # a run's own config.json (a hand-written file takes today's defaults)
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
    check_run_dir(cfg.out, resume=args.resume, overwrite=args.overwrite)  # before loading any data
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = Trainer(cfg, quiet=args.quiet)
    warnings.filterwarnings("ignore", category=CollapseWarning)  # printed below, once, as "warning:"
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
        trainer.dist.barrier()  # every rank done (rank 0 writes the outputs) before the group goes
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
        print(
            f"inr-gon: error: the run failed to learn ({'; '.join(metrics['collapse_reasons'])}); --strict",
            file=sys.stderr,
        )
        return 3
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="inr-gon", description="Gradient Origin Networks: train, render, evaluate, mesh.")
    sub = p.add_subparsers(dest="command", required=True)
    add_train_parsers(sub)
    model = argparse.ArgumentParser(add_help=False)
    which = model.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--checkpoint",
        help="a checkpoint written by 'inr-gon train' (or its run folder: the newest checkpoint there)",
    )
    which.add_argument(
        "--pretrained",
        metavar="NAME",
        help="a model shipped with inr_gon (its hash checked first): " + (", ".join(pretrained_names()) or "none"),
    )
    model.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda', ...")
    model.add_argument(
        "--encode-steps",
        type=_positive_int,
        metavar="K",
        help="encode signals in K latent steps (default: the run's --encode-steps, else its trained steps)",
    )
    common = argparse.ArgumentParser(add_help=False, parents=[model])
    common.add_argument("--data-dir", help="override the data folder recorded in the checkpoint")
    common.add_argument(
        "--chunk-size",
        type=_positive_int,
        default=2**16,
        help="points evaluated at once (bounds memory; default: 65536)",
    )
    r = sub.add_parser(
        "render",
        parents=[common],
        help="render latents at any resolution to PNG/GIF",
        description="Render encoded, sampled or interpolated latents at any resolution.",
    )
    r.add_argument("--resolution", type=_positive_int, default=256, help="output size in pixels (default: 256)")
    r.add_argument("--images", nargs="+", metavar="FILE", help="encode these image files and render them")
    r.add_argument(
        "--sample", type=_positive_int, metavar="N", help="render N latents sampled from the fitted Gaussian"
    )
    r.add_argument(
        "--slerp", nargs=2, metavar=("A", "B"), help="interpolate between two image files, or two test-set indices"
    )
    r.add_argument("--frames", type=_positive_int, default=16, help="frames of --slerp (default: 16)")
    r.add_argument("--nrow", type=_positive_int, default=8, help="images per row of a PNG grid (default: 8)")
    r.add_argument("--seed", type=int, default=0, help="seed for --sample (default: 0)")
    r.add_argument("--out", required=True, help="output .png (grid) or .gif (one frame per image)")
    add_latents_options(r, "render")
    r.set_defaults(func=cmd_render)
    e = sub.add_parser(
        "eval",
        parents=[common],
        help="print test metrics of a checkpoint",
        description="Image checkpoints: encode the test set (the run's latent steps, or --encode-steps) and print "
        "PSNR/SSIM. Shape checkpoints (SDF GON, auto-decoder): field and mesh metrics of "
        "training and unseen shapes. Other tasks: their final evaluation.",
    )
    e.add_argument("--num", type=_positive_int, default=10_000, help="test images to use (default: all, up to 10000)")
    s = e.add_argument_group("shapes: every shape of a split (DeepSDF data)")
    s.add_argument("--deepsdf", metavar="DIR", help="a DeepSDF data folder (default: the run's own --deepsdf)")
    s.add_argument("--split", metavar="JSON", help="evaluate every shape of this split file, one row each")
    s.add_argument("--csv", metavar="PATH", help="write the per-shape rows here")
    s.add_argument(
        "--refine", type=_nonneg_int, default=0, help="Adam steps on each latent after encoding (default: 0)"
    )
    s.add_argument("--refine-lr", type=_positive_float, default=1e-3, help="their learning rate (default: 0.001)")
    s.add_argument("--mesh-resolution", type=_positive_int, default=64, help="marching-cubes grid (default: 64)")
    e.set_defaults(func=cmd_eval)
    m = sub.add_parser(
        "mesh",
        parents=[model],
        help="meshes from an SDF checkpoint (a shape, a new mesh, a slerp, samples)",
        description="Extract meshes from an SDF-GON (or auto-decoder) checkpoint: a training shape, "
        "a new mesh file encoded from its samples, a slerp, or samples of a Gaussian "
        "fitted to the training latents.",
    )
    m.add_argument("--shape", type=_nonneg_int, metavar="I", help="training shape I (its index in the shape set)")
    m.add_argument("--mesh", metavar="FILE", help="a mesh file: normalised, sampled and encoded")
    m.add_argument(
        "--slerp", nargs=2, metavar=("A", "B"), help="interpolate between two shapes (indices or mesh files)"
    )
    m.add_argument("--frames", type=_positive_int, default=8, help="meshes of --slerp (default: 8)")
    m.add_argument(
        "--sample", type=_positive_int, metavar="N", help="N shapes from a Gaussian fitted to the training latents"
    )
    m.add_argument("--seed", type=int, default=0, help="seed of --sample (default: 0)")
    m.add_argument(
        "--resolution", type=_positive_int, default=128, help="marching-cubes samples per axis (default: 128)"
    )
    m.add_argument(
        "--method",
        choices=("coarse_to_fine", "dense"),
        default="coarse_to_fine",
        help="coarse-to-fine (default; evaluates the field only near the surface) or dense",
    )
    m.add_argument(
        "--lipschitz",
        type=_positive_float,
        default=4.0,
        help="Lipschitz bound assumed by coarse-to-fine extraction (larger: safer; default: 4)",
    )
    m.add_argument("--out", required=True, help="output mesh: .ply, .obj, .glb, .stl or .off (several: _NN suffixes)")
    m.add_argument("--render", action="store_true", help="also write a PNG picture beside the mesh")
    add_latents_options(m, "mesh")
    add_completion_options(m, _positive_int, _nonneg_int, _positive_float)
    m.set_defaults(func=cmd_mesh)
    add_encode_parser(sub, common, _positive_int)
    add_prepare_parser(sub, _positive_int)
    return p


def _positive_int(s: str) -> int:
    from ..training.config import _parser

    return _parser(int, at_least(1), False)(s)


def _nonneg_int(s: str) -> int:
    from ..training.config import _parser

    return _parser(int, at_least(0), False)(s)


def _positive_float(s: str) -> float:
    from ..training.config import _parser, positive

    return _parser(float, positive, False)(s)


def _with_task(argv: list) -> list:
    """``train --dataset x`` (no task name) is ``train image --dataset x``."""
    from ..training.tasks import TASKS

    if argv and argv[0] == "train" and (len(argv) == 1 or argv[1] not in (*TASKS, "-h", "--help")):
        return ["train", "image", *argv[1:]]
    return argv


def main(argv=None) -> int:
    from ..training.checkpoint import CheckpointError
    from ..training.guard import NonFiniteLossError

    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(_with_task(argv))
    try:
        return args.func(args)
    except (ValueError, CheckpointError, NonFiniteLossError, OSError) as e:  # OSError: files, disk
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
