"""A linear probe on exported latents: how much of the label a GON's latent keeps, beside the
same probe on the pixels (a squared-error one-step latent is an affine function of the image, so
a linear probe on it is a linear probe on the pixels: with unlimited data and no penalty the
pixels' probe would bound it; with a finite training set and the same L2 penalty the smaller
latent can do better).

    python examples/latent_probe.py                                # the pretrained MNIST model
    python examples/latent_probe.py --pretrained fashion
    inr-gon encode --pretrained mnist --subset train --num 10000 --out train.npz
    inr-gon encode --pretrained mnist --subset test --out test.npz
    python examples/latent_probe.py --latents train.npz --test-latents test.npz
    python examples/latent_probe.py --shapes 400                  # shape latents: the primitive kinds

With ``--latents`` the probe reads the files ``inr-gon encode`` wrote (labels included); otherwise
it encodes the model's own data set (the real files when found, else the embedded subset).
``--shapes N``: N new shapes of the procedural family encoded by the shipped shape model (or
``--checkpoint``), labelled by the kind of their first primitive (sphere, box, ...; the others are
combined into it), half for fitting and half for testing, beside the same probe on their signed
distances on a 16³ grid.
"""

from __future__ import annotations

import argparse
import sys

import torch

import inr_gon
from inr_gon.training.latents_file import read_latents


def softmax_probe(x_train, y_train, x_test, y_test, *, weight_decay: float = 1e-4, iterations: int = 200) -> float:
    """Test accuracy of a multinomial logistic regression (features standardised on the training
    set, L2 penalty ``weight_decay``, full-batch L-BFGS)."""
    mean, std = x_train.mean(0), x_train.std(0).clamp_min(1e-6)
    a, b = (x_train - mean) / std, (x_test - mean) / std
    classes = int(y_train.max()) + 1
    lin = torch.nn.Linear(a.shape[1], classes)
    opt = torch.optim.LBFGS(lin.parameters(), max_iter=iterations, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(lin(a), y_train) + weight_decay * lin.weight.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return float((lin(b).argmax(1) == y_test).float().mean())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pretrained", default="mnist", help="a shipped image model (default: mnist)")
    ap.add_argument("--checkpoint", help="a trained image run instead of --pretrained")
    ap.add_argument("--latents", help="training latents written by 'inr-gon encode' (with --test-latents)")
    ap.add_argument("--test-latents", help="test latents written by 'inr-gon encode'")
    ap.add_argument("--train", type=int, default=10_000, help="training images to encode (default: 10,000)")
    ap.add_argument("--shapes", type=int, help="probe a shape model on this many new procedural shapes instead")
    args = ap.parse_args(argv)
    if args.shapes:
        return shape_probe(args)
    if bool(args.latents) != bool(args.test_latents):
        ap.error("give --latents and --test-latents together")
    if args.latents:
        tr, te = read_latents(args.latents), read_latents(args.test_latents)
        if tr.labels is None or te.labels is None or tr.model_sha256 != te.model_sha256:
            ap.error("the two files need labels and the same model")
        acc = softmax_probe(tr.latents, torch.from_numpy(tr.labels), te.latents, torch.from_numpy(te.labels))
        print(f"linear probe on {tr.latents.shape[1]}-d latents ({tr.source} -> {te.source}): {acc:.4f}")
        return 0
    from inr_gon.cli.checkpoints import _dataset_for, _encode

    run = inr_gon.load(args.checkpoint, device="cpu") if args.checkpoint else inr_gon.pretrained(args.pretrained)
    ds = _dataset_for(run, argparse.Namespace(data_dir=None))
    xs = {"train": ds.train_images[: args.train], "test": ds.test_images}
    ys = {"train": ds.train_labels[: args.train], "test": ds.test_labels}
    z = {
        k: torch.cat([_encode(run, x[j : j + 500].to(run.device)).cpu() for j in range(0, len(x), 500)])
        for k, x in xs.items()
    }
    latent = softmax_probe(z["train"], ys["train"], z["test"], ys["test"])
    pixels = softmax_probe(xs["train"].flatten(1), ys["train"], xs["test"].flatten(1), ys["test"])
    print(f"data: {ds.name} ({len(xs['train'])} train, {len(xs['test'])} test images)")
    print(f"linear probe on the {z['train'].shape[1]}-d GON latent: {latent:.4f}")
    print(f"linear probe on the {xs['train'][0].numel()} pixels:     {pixels:.4f}")
    return 0


def shape_probe(args) -> int:
    """The probe on shape latents (``--shapes N``)."""
    from inr_gon.geometry.shapes.procedural import KINDS
    from inr_gon.training.tasks.sdf_encoding import encode_samples
    from inr_gon.training.tasks.sdf_baseline import grid_points
    from inr_gon.training.tasks.sdf_data import analytic_pool, new_shape_family

    run = inr_gon.load(args.checkpoint, device="cpu") if args.checkpoint else inr_gon.pretrained("shapes", device="cpu")
    cfg = run.config
    family = new_shape_family(cfg.seed)
    grid = grid_points(16)
    z, sdf, labels = [], [], []
    for i in range(args.shapes):
        shape = family[i]
        p, d = analytic_pool(shape, cfg.pool, torch.Generator().manual_seed(i))
        z.append(encode_samples(run.model, cfg, p[None], d[None])[0])
        sdf.append(shape(grid).float().clamp(-0.1, 0.1))
        labels.append(family.kind(i))
    z, sdf, y = torch.stack(z), torch.stack(sdf), torch.tensor(labels)
    half = args.shapes // 2
    latent = softmax_probe(z[:half], y[:half], z[half:], y[half:])
    grid_acc = softmax_probe(sdf[:half], y[:half], sdf[half:], y[half:])
    chance = float((y[half:] == torch.bincount(y[:half], minlength=len(KINDS)).argmax()).float().mean())
    print(
        f"{args.shapes} new procedural shapes ({half} to fit, {args.shapes - half} to test), labels: {', '.join(KINDS)}"
    )
    print(f"linear probe on the {z.shape[1]}-d GON latent: {latent:.4f}")
    print(f"linear probe on the 16³ truncated SDF:       {grid_acc:.4f}")
    print(f"the most common kind of the fitting half:    {chance:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
