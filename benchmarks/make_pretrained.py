"""Build a pretrained model shipped in the package from a finished run: its checkpoint slimmed
into ``inr_gon/pretrained_models/<name>.pt`` and its model card ``<name>.json``.

    python examples/fit_mnist_siren.py --out runs/mnist_siren
    python benchmarks/make_pretrained.py --run runs/mnist_siren --name mnist \
        --command "python examples/fit_mnist_siren.py"

The card records what the model was trained on and by which command, the resolved config, the
run's test metrics beside its linear baseline (from the run's ``metrics.json``), the version,
the weights' SHA-256 and size; an MNIST model also gets its PSNR/SSIM on the embedded MNIST test
subset (``embedded_test_psnr``: what the tests re-measure, with no data installed).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import inr_gon  # noqa: E402
from inr_gon.training.pretrained import PRETRAINED_DIR, sha256, slim_checkpoint  # noqa: E402

IMAGE_KEYS = ("test_psnr", "test_ssim", "pca_test_psnr", "pca_test_ssim", "num_test", "train_seconds", "steps")
SHAPE_KEYS = (
    "train_iou",
    "unseen_iou",
    "train_chamfer",
    "unseen_chamfer",
    "grid_train_iou",
    "grid_unseen_iou",
    "pca_train_iou",
    "pca_unseen_iou",
    "num_train",
    "num_unseen",
    "train_seconds",
    "steps",
)


def embedded_metrics(run) -> dict:
    """PSNR/SSIM of an image model on the embedded MNIST test subset (1,000 images)."""
    from inr_gon.data.mnist_files import load_embedded_mnist
    from inr_gon.eval.image import psnr, ssim
    from inr_gon.training.tasks.image import decode_latents, encode_images

    x = load_embedded_mnist().test_images.to(run.device)
    c = run.config
    z = encode_images(run.model, x, loss=c.inner_loss, inner_weight=c.inner_weight)
    rec = decode_latents(run.model, z, tuple(x.shape[2:]), loss=c.outer_loss)
    return {"embedded_test_psnr": float(psnr(rec, x).mean()), "embedded_test_ssim": float(ssim(rec, x).mean())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", type=Path, required=True, help="a finished run folder")
    ap.add_argument("--name", required=True)
    ap.add_argument("--command", required=True, help="the command that trained it")
    ap.add_argument("--about", default="", help="one line: what the model is")
    ap.add_argument("--out", type=Path, default=PRETRAINED_DIR)
    args = ap.parse_args(argv)
    metrics = json.loads((args.run / "metrics.json").read_text())
    args.out.mkdir(parents=True, exist_ok=True)
    weights = slim_checkpoint(args.run, args.out / f"{args.name}.pt")
    run = inr_gon.load(weights, device="cpu")
    shapes = "mesh" in run.task_class.commands
    keys = SHAPE_KEYS if shapes else IMAGE_KEYS
    card = {
        "name": args.name,
        "about": args.about,
        "task": run.task_name,
        "trained_on": metrics.get("source") if shapes else metrics.get("dataset"),
        "command": args.command,
        "config": run.state["config"],
        "metrics": {k: metrics.get(k) for k in keys},
        "parameters": sum(p.numel() for p in run.model.parameters()),
        "device": metrics.get("device"),
        "inr_gon_version": inr_gon.__version__,
        "sha256": sha256(weights),
        "bytes": weights.stat().st_size,
    }
    if card["trained_on"] == "mnist":  # what a test re-measures with no data installed
        card["metrics"].update(embedded_metrics(run))
    (args.out / f"{args.name}.json").write_text(json.dumps(card, indent=1) + "\n")
    print(json.dumps({k: card[k] for k in ("name", "task", "trained_on", "metrics", "bytes")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
