"""The latent-size frontier: every method's reconstruction against the latent size k, beside PCA.

    python benchmarks/latent_frontier.py --json docs/figures/frontier/image.json           # hours: cells resume
    python benchmarks/latent_frontier.py --cells 'mnist/32/*' --seconds 100                 # a subset
    python benchmarks/latent_frontier.py --task sdf --ks 16,32,64 --json frontier_sdf.json  # shapes
    python benchmarks/latent_frontier.py --quick --json /tmp/f.json                         # seconds (tests)

Images (``--task image``; ``--datasets mnist,fashion`` or image folders): for each latent size
``k`` and data set, one *cell* per method, each on the same training and test images:

* ``pca``: the best linear code of size k (closed form; its "training" is the fit);
* ``gon``: the image task's CPU defaults with the paper's plain gradient step, ``--seconds`` of
  training; ``gon_gn``: the same with one Gauss–Newton step (``--damping``); ``gon_gn2``: two
  Gauss–Newton steps (the second on ``--later-fraction`` of the pixels in training);
  ``gon_gn_enc``: trained as ``gon_gn``, test images encoded in ``--encode-steps`` Gauss–Newton
  steps (its encoding time measured on the first 1,000 test images, scaled to the whole set);
* ``autoencoder``: the same decoder with an MLP encoder of about its size (the ``autoencoder``
  task), ``--seconds`` of training;
* ``autodecoder``: a code per training image optimised with the same decoder for ``--seconds``;
  a test image's code is ``--ad-steps`` Adam steps from zero (each count reported, on the first
  ``--ad-test-images`` test images; its encoding time is scaled to the whole test set).

Each cell records test PSNR / SSIM, training seconds and the seconds to encode the test set, and
is written to ``--json`` as soon as it finishes; a rerun skips finished cells (``--redo`` runs
them again), so the frontier is built over several runs. ``--plot`` (default: ``frontier.png``,
shapes ``frontier_sdf.png``, beside the JSON) draws PSNR against k, one line per method, and PSNR
against encoding time.

Shapes (``--task sdf``): the procedural family, ``pca`` (a PCA shape model of the truncated SDF on
a grid, fitted on the shapes a whole run's baseline is: the fixed training shapes and the first
512 of the family), ``gon`` / ``gon_gn`` / ``gon_gn2`` / ``gon_gn_enc`` and the ``autodecoder`` (``--ad-steps`` Adam
steps per unseen shape), each with train / unseen IoU and Chamfer.
"""

from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import json
import shlex
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inr_gon.cli import build_parser
from inr_gon.core.coords import grid, image_to_points, points_to_image
from inr_gon.data import load_mnist
from inr_gon.eval.image import psnr, ssim
from inr_gon.eval.pca import PCA
from inr_gon.training import ImageConfig, Trainer
from inr_gon.training.checkpoint import atomic_write_bytes
from inr_gon.training.tasks import TASKS
from inr_gon.training.tasks.image import load_dataset
from inr_gon.training.tasks.sdf_baseline import linear_baseline
from inr_gon.training.trainer import learning_rate

IMAGE_METHODS = ("pca", "gon", "gon_gn", "gon_gn2", "gon_gn_enc", "autoencoder", "autodecoder")
SDF_METHODS = ("pca", "gon", "gon_gn", "gon_gn2", "gon_gn_enc", "autodecoder")
LABELS = {
    "pca": "PCA (linear)",
    "gon": "GON, plain step",
    "gon_gn": "GON, Gauss–Newton step",
    "gon_gn2": "GON, 2 Gauss–Newton steps",
    "gon_gn_enc": "GON, Gauss–Newton step, more to encode",
    "autoencoder": "autoencoder (MLP encoder)",
    "autodecoder": "auto-decoder",
}


def ints(text: str) -> list[int]:
    try:
        out = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        out = []
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}")
    return out


def fmt(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def words(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


# -- image cells ----------------------------------------------------------------------------------------
def train_args(task: str, options: str):
    args = build_parser().parse_args(["train", task, *shlex.split(options)])
    return TASKS[task].config_class.from_args(args)


def fit_quietly(cfg, **data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = Trainer(cfg, quiet=True, **data)
        info = t.fit()
    return t, info


def scores(recon: torch.Tensor, test: torch.Tensor) -> dict:
    return {"test_psnr": float(psnr(recon, test).mean()), "test_ssim": float(ssim(recon, test).mean())}


def pca_cell(ds, k: int, a) -> dict:
    train, test = ds.train_images.flatten(1), ds.test_images
    t0 = time.perf_counter()
    pca = PCA(k).fit(train)
    fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    z = pca.encode(test.flatten(1))
    enc = time.perf_counter() - t0
    return {
        **scores(pca.decode(z).view_as(test), test),
        "train_seconds": round(fit, 2),
        "encode_seconds": round(enc, 3),
    }


def common_options(a, k: int, *, image: bool = True) -> str:
    """The options every trained image cell shares (``image``: the image task's own as well)."""
    return (
        f"--latent {k} --seconds {a.seconds:g} --steps 1000000 --schedule-by time --device {a.device} --quiet "
        f"--eval-every 1000000 --seed {a.seed}" + (f" --snapshots '' {a.common}" if image else "")
    )


def later_fraction(a) -> str:
    """The ``gon_gn2`` cells' ``--later-fraction`` option (none: the second step on all points)."""
    return "" if a.later_fraction == 1 else f" --later-fraction {a.later_fraction:g}"


def gon_cell(ds, k: int, a, method: str) -> dict:
    step = {
        "gon": "--gauss-newton 0",
        "gon_gn": f"--gauss-newton {a.damping:g}",
        "gon_gn2": f"--gauss-newton {a.damping:g} --latent-steps 2" + later_fraction(a),
        "gon_gn_enc": f"--gauss-newton {a.damping:g} --encode-steps {a.encode_steps}",
    }[method]
    cfg = train_args("image", common_options(a, k) + " " + step)
    t, info = fit_quietly(cfg, dataset=ds)
    test = t.task.test_images
    timed = test[:1000] if method == "gon_gn_enc" else test  # a per-image pass a step: timed on a part
    t0 = time.perf_counter()
    t.task.encode(timed)
    enc = (time.perf_counter() - t0) * test.shape[0] / max(timed.shape[0], 1)
    return {
        "test_psnr": info["test_psnr"],
        "test_ssim": info["test_ssim"],
        "train_seconds": info["train_seconds"],
        "steps": info["steps"],
        "encode_seconds": round(enc, 3),
        "options": " ".join(f"{step} {a.common}".split()),
        "decoder": f"SIREN {t.cfg.layers}×{t.cfg.hidden}",  # as the trainer resolved it
        "lr": t.cfg.lr,
        "failed": bool(info.get("collapsed")),
    }


def autoencoder_cell(ds, k: int, a) -> dict:
    image = train_args("image", common_options(a, k))  # the GON's decoder, resolved for the device
    r = image.resolved(torch.device(a.device))
    dec = (
        f"--hidden {r.hidden} --layers {r.layers} --w0-first {r.w0_first:g} --w0-latent {r.w0_latent:g} "
        f"--batch-size {r.batch_size} --lr {r.lr:g} --lr-schedule {r.lr_schedule}"
        + (" --latent-shifts" if r.latent_shifts else "")
    )
    cfg = train_args("autoencoder", common_options(a, k, image=False) + " " + dec)
    t, info = fit_quietly(cfg, dataset=ds)
    test = t.task.test_images
    t0 = time.perf_counter()
    recon = t.task.reconstruct(test)
    enc = time.perf_counter() - t0
    return {
        **scores(recon, test),
        "train_seconds": info["train_seconds"],
        "steps": info["steps"],
        "encode_seconds": round(enc, 3),
        "options": dec,
    }


def autodecoder_cell(ds, k: int, a) -> dict:
    """A code per training image, optimised with the decoder (Adam, the GON's lr for the network,
    ``--ad-lr`` for the codes, ``1e-4 ‖z‖²``), the outer points a 25 % random subset as the GON's;
    unseen images get ``--ad-steps`` Adam steps on a fresh code (the decoder frozen)."""
    from inr_gon.nn.siren import LatentSiren

    image = train_args("image", common_options(a, k)).resolved(torch.device(a.device))
    dev = torch.device(a.device)
    torch.manual_seed(a.seed)
    train, test = ds.train_images.to(dev), ds.test_images[: a.ad_test_images].to(dev)
    C, H, W = train.shape[1:]
    net = LatentSiren(
        2,
        k,
        C,
        image.hidden,
        image.layers,
        w0=image.w0,
        w0_first=image.w0_first,
        w0_latent=image.w0_latent,
        latent_shifts=image.latent_shifts,
    ).to(dev)
    codes = torch.nn.Embedding(train.shape[0], k, device=dev)
    torch.nn.init.normal_(codes.weight, std=0.01)
    opt = torch.optim.Adam(
        [{"params": net.parameters(), "lr": image.lr}, {"params": codes.parameters(), "lr": a.ad_lr}]
    )
    coords = grid((H, W), device=dev)
    target = image_to_points(train)
    P, m = coords.shape[0], max(1, round(0.25 * coords.shape[0]))
    g = torch.Generator(device="cpu").manual_seed(a.seed)
    t0, steps = time.perf_counter(), 0
    while time.perf_counter() - t0 < a.seconds:
        idx = torch.randint(train.shape[0], (image.batch_size,), generator=g).to(dev)
        pts = torch.randperm(P, generator=g)[:m].to(dev)
        z = codes(idx)
        loss = (net(coords[pts], z) - target[idx][:, pts]).square().mean() + 1e-4 * z.square().sum(-1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        steps += 1
        frac = (time.perf_counter() - t0) / a.seconds  # the GON's cosine, by the clock
        for group, base in zip(opt.param_groups, (image.lr, a.ad_lr)):
            group["lr"] = learning_rate(steps, lr=base, steps=0, schedule=image.lr_schedule, progress=frac)
    train_seconds = time.perf_counter() - t0
    net.requires_grad_(False)
    z = torch.zeros(test.shape[0], k, device=dev, requires_grad=True)
    zopt = torch.optim.Adam([z], lr=a.ad_lr)
    tt = image_to_points(test)
    by_steps, done, spent = {}, 0, 0.0
    for n in sorted(a.ad_steps):
        t0 = time.perf_counter()
        for _ in range(n - done):
            loss = (net(coords, z) - tt).square().sum((1, 2)).mean() / P + 1e-4 * z.square().sum(-1).mean()
            zopt.zero_grad(set_to_none=True)
            loss.backward()
            zopt.step()
        done, spent = n, spent + time.perf_counter() - t0  # the encoding time of n steps
        with torch.no_grad():
            recon = points_to_image(net(coords, z), (H, W))
        by_steps[str(n)] = {
            **scores(recon, test),
            "encode_seconds": round(spent * ds.test_images.shape[0] / test.shape[0], 2),
        }
    last = by_steps[str(max(a.ad_steps))]
    return {
        **last,
        "train_seconds": round(train_seconds, 2),
        "steps": steps,
        "by_test_steps": by_steps,
        "test_images": int(test.shape[0]),
        "encode_seconds_note": "scaled to the whole test set",
    }


# -- shape cells ----------------------------------------------------------------------------------------
def sdf_cell(k: int, a, method: str, shapes_cache: dict) -> dict:
    from inr_gon.training.tasks.sdf_data import load_shapes

    common = (
        f"--latent {k} --seconds {a.seconds:g} --steps 10000000 --schedule-by time --device {a.device} "
        f"--quiet --eval-every 10000000 --seed {a.seed} {a.common}"
    )
    step = ""
    if method == "autodecoder":
        cfg = train_args("autodecoder", common + f" --encode-iterations {max(a.ad_steps)}")
    else:
        step = {
            "pca": "",
            "gon": "--gauss-newton 0",
            "gon_gn": f"--gauss-newton {a.sdf_damping:g}",
            "gon_gn2": f"--gauss-newton {a.sdf_damping:g} --latent-steps 2" + later_fraction(a),
            "gon_gn_enc": f"--gauss-newton {a.sdf_damping:g} --encode-steps {a.encode_steps}",
        }[method]
        cfg = train_args("sdf", f"{common} {step}")
    if "shapes" not in shapes_cache:  # every cell on the same shapes
        shapes_cache["shapes"] = load_shapes(cfg)
    shapes = shapes_cache["shapes"]
    if method == "pca":  # a one-step run only to build the task; its baseline is fitted below
        cfg = dataclasses.replace(cfg, seconds=0.0, schedule_by="steps", steps=1)
    t, info = fit_quietly(cfg, shapes=shapes)
    if method == "pca":  # fitted on as many family shapes as a whole run draws, not one step's
        info = linear_baseline(t.task, step=10**9)
        return {
            "train_grid_iou": info.get("pca_train_iou"),
            "unseen_grid_iou": info.get("pca_unseen_iou"),
            "train_seconds": info.get("pca_seconds"),
            "num_train": info.get("pca_num_train"),
        }
    row = {
        "train_seconds": info["train_seconds"],
        "steps": info["steps"],
        "options": " ".join(f"{step} {a.common}".split()),
    }
    if method == "autodecoder":  # training shapes keep their trained codes; unseen ones are fitted
        row["encode_iterations"] = cfg.encode_iterations
    for split, idx in (("train", shapes.train_index), ("unseen", shapes.unseen_index)):
        idx = idx[: cfg.eval_shapes]
        if idx:
            t0 = time.perf_counter()
            t.task.encode(idx)
            row[f"{split}_encode_seconds"] = round(time.perf_counter() - t0, 3)
            m = t.task.evaluate_shapes(idx, num_samples=10_000)
            row.update({f"{split}_{n}": m.get(n) for n in ("iou", "grid_iou", "chamfer")})
    return row


# -- the run --------------------------------------------------------------------------------------------
def quick_dataset(name: str):
    """A few hundred images of the named set (the embedded MNIST subset offline): seconds per cell."""
    ds = load_mnist(name)
    return dataclasses.replace(
        ds,
        train_images=ds.train_images[:256],
        train_labels=ds.train_labels[:256],
        test_images=ds.test_images[:64],
        test_labels=ds.test_labels[:64],
    )


def load_image_data(name: str, a):
    if a.quick:
        return quick_dataset(name)
    cfg = train_args("image", f"--dataset {shlex.quote(name)}")
    ds = load_dataset(cfg)
    if a.test_images:
        ds = dataclasses.replace(
            ds, test_images=ds.test_images[: a.test_images], test_labels=ds.test_labels[: a.test_images]
        )
    return ds


def save(results: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, json.dumps(results, indent=1).encode())


def plot(results: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    cells = results["cells"]
    sets = sorted({c["dataset"] for c in cells.values()})
    metric = "test_psnr" if results["task"] == "image" else "unseen_grid_iou"
    ylabel = "test PSNR (dB)" if results["task"] == "image" else "unseen IoU (32³ grid)"
    color = {m: f"C{i}" for i, m in enumerate(LABELS)}  # one colour a method, in both panels
    fig, axes = plt.subplots(1, len(sets) + 1, figsize=(5 * (len(sets) + 1), 4), squeeze=False)
    for ax, name in zip(axes[0], sets):
        for method, label in LABELS.items():
            pts = sorted(
                (c["k"], c[metric])
                for c in cells.values()
                if c["dataset"] == name and c["method"] == method and c.get(metric) is not None
            )
            if pts:
                ax.plot(*zip(*pts), "o-" if method != "pca" else "s--", label=label, color=color[method])
        ax.set_xscale("log", base=2)
        ax.set_xlabel("latent size k")
        ax.set_ylabel(ylabel)
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    ax = axes[0][-1]
    enc = "encode_seconds" if results["task"] == "image" else "unseen_encode_seconds"
    for method, label in LABELS.items():
        pts = [
            (c[enc], c[metric])
            for c in cells.values()
            if c["method"] == method and c.get(enc) and c.get(metric) is not None
        ]
        for c in cells.values():
            if c["method"] == method and c.get("by_test_steps"):
                pts += [(v["encode_seconds"], v["test_psnr"]) for v in c["by_test_steps"].values()]
        if pts:
            ax.scatter(*zip(*pts), label=label, s=14, color=color[method])
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # a narrow range: no crowded minor labels
    ax.set_xlabel(
        "seconds to encode the test set" if results["task"] == "image" else "seconds to encode the unseen shapes"
    )
    ax.set_ylabel(ylabel)
    ax.set_title("quality against encoding time (all k)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", choices=("image", "sdf"), default="image")
    p.add_argument(
        "--datasets",
        type=words,
        default=None,
        help="image task: comma-separated 'mnist', 'fashion' or image folders (default: mnist,fashion)",
    )
    p.add_argument("--ks", type=ints, default=None, help="latent sizes (default: 8,16,32,64,128)")
    p.add_argument(
        "--methods",
        type=words,
        default=None,
        help=f"image: {','.join(IMAGE_METHODS)}; sdf: {','.join(SDF_METHODS)} (default: all)",
    )
    p.add_argument(
        "--cells",
        type=words,
        default=None,
        help="only cells matching these patterns, DATASET/K/METHOD with * wildcards",
    )
    p.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="training budget of each trained cell (default: the main job's, 250; sdf 420)",
    )
    p.add_argument(
        "--damping",
        type=float,
        default=ImageConfig.presets()["cpu"].values["gauss_newton"],
        help="Gauss–Newton damping of the image GON cells (default: the image task's)",
    )
    p.add_argument(
        "--sdf-damping",
        type=float,
        default=1.0,
        help="Gauss–Newton damping of the SDF GON cells (default: the SDF task's)",
    )
    p.add_argument(
        "--later-fraction",
        type=float,
        default=None,
        help="share of the inner points of the gon_gn2 cells' second step in training (default: images 1, sdf 0.5)",
    )
    p.add_argument(
        "--encode-steps",
        type=int,
        default=3,
        help="Gauss–Newton steps with which the gon_gn_enc cells encode test signals (default: 3)",
    )
    p.add_argument(
        "--ad-steps",
        type=ints,
        default=None,
        help="auto-decoder Adam steps per unseen sample, each reported (default: 10,50,200)",
    )
    p.add_argument("--ad-lr", type=float, default=1e-2, help="auto-decoder code learning rate")
    p.add_argument("--ad-test-images", type=int, default=1000, help="test images the auto-decoder encodes")
    p.add_argument("--test-images", type=int, default=None, help="test images of every cell (default: all)")
    p.add_argument("--common", default="", help="more inr-gon train options for the trained GON cells")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="tiny data, 1 s cells, k 4 and 8: a smoke test")
    p.add_argument("--redo", action="store_true", help="run matching cells again even if finished")
    p.add_argument("--json", metavar="PATH", default="frontier.json")
    p.add_argument(
        "--plot", metavar="PATH", default=None, help="default: frontier.png (shapes: frontier_sdf.png) beside the JSON"
    )
    a = p.parse_args(argv)
    methods_all = IMAGE_METHODS if a.task == "image" else SDF_METHODS
    a.methods = a.methods or list(methods_all)
    bad = [m for m in a.methods if m not in methods_all]
    if bad:
        p.error(f"unknown method(s) {', '.join(bad)} for --task {a.task}; choose from {', '.join(methods_all)}")
    a.ks = a.ks or ([4, 8] if a.quick else [8, 16, 32, 64, 128])
    a.seconds = a.seconds if a.seconds is not None else (1.0 if a.quick else 250.0 if a.task == "image" else 420.0)
    if a.later_fraction is None:
        a.later_fraction = 1.0 if a.task == "image" else 0.5
    if not 0 < a.later_fraction <= 1:
        p.error(f"--later-fraction must be in (0, 1], got {a.later_fraction:g}")
    if a.encode_steps < 1:
        p.error(f"--encode-steps must be >= 1, got {a.encode_steps}")
    a.ad_steps = a.ad_steps or ([2, 5] if a.quick else [10, 50, 200])
    if a.quick:
        a.ad_test_images = min(a.ad_test_images, 16)
        a.common += " --amp off"  # no bf16 probe: seconds, not a measurement
        if a.task == "sdf":
            a.common += " --num-shapes 8 --num-unseen 2 --eval-shapes 2 --points 256 --batch-size 4 --hidden 32"
    datasets = a.datasets or (["mnist", "fashion"] if a.task == "image" else ["procedural"])
    path = Path(a.json)
    results = json.loads(path.read_text()) if path.is_file() else {}
    if results.get("task", a.task) != a.task:
        p.error(f"{path} holds a {results['task']} frontier, not {a.task}")
    results.setdefault("task", a.task)
    cells = results.setdefault("cells", {})
    shapes_cache: dict = {}
    for name in datasets:
        ds = load_image_data(name, a) if a.task == "image" else None
        label = Path(name).name if Path(name).is_dir() else name
        for k in a.ks:
            for method in a.methods:
                key = f"{label}/{k}/{method}"
                if a.cells and not any(fnmatch.fnmatch(key, pat) for pat in a.cells):
                    continue
                if key in cells and not a.redo:
                    print(f"{key}: done before, skipped", flush=True)
                    continue
                t0 = time.perf_counter()
                if a.task == "sdf":
                    row = sdf_cell(k, a, method, shapes_cache)
                elif method == "pca":
                    row = pca_cell(ds, k, a)
                elif method.startswith("gon"):
                    row = gon_cell(ds, k, a, method)
                elif method == "autoencoder":
                    row = autoencoder_cell(ds, k, a)
                else:
                    row = autodecoder_cell(ds, k, a)
                cells[key] = {
                    "dataset": label,
                    "k": k,
                    "method": method,
                    **row,
                    "wall_seconds": round(time.perf_counter() - t0, 1),
                    "budget_seconds": a.seconds,
                    "threads": torch.get_num_threads(),
                    "date": time.strftime("%Y-%m-%d"),
                }
                save(results, path)
                shown = (
                    f"PSNR {row['test_psnr']:.2f} dB, SSIM {row['test_ssim']:.3f}"
                    if a.task == "image"
                    else f"train / unseen IoU on the 32³ grid {fmt(row.get('train_grid_iou'))} / "
                    f"{fmt(row.get('unseen_grid_iou'))}"
                )
                print(f"{key}: {shown} ({cells[key]['wall_seconds']:.0f} s)", flush=True)
    default = "frontier.png" if a.task == "image" else "frontier_sdf.png"
    out = plot(results, Path(a.plot) if a.plot else path.with_name(default))
    print(f"wrote {path} and {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
