"""The GON paper's MNIST claims (Bond-Taylor & Willcocks, ICLR 2021), measured with inr_gon.

    python benchmarks/paper_claims.py --quick [--json figures.json] [--out figs/]

Claims and what is measured (test = the 10,000 MNIST test images unless the embedded
5,000-image fallback is in use):

(a) MNIST is represented by a tiny implicit GON: 3 sine layers of 32 units, latent 32
    (``LatentSiren(2, 32, 1, 32, 3)``: 3,265 parameters; the paper quotes 4,385, which is four
    layers of 32 with 36 inputs, e.g. latent 34). PSNR of one-step reconstructions on train and
    test (mean over images of ``10 log10(1 / MSE)``, outputs clamped to [0, 1]); beside it the
    test PSNR against steps of 3×32 / latent 32, 4×32 / latent 32 and 4×32 / latent 34 (4,385).
(b) GON vs an autoencoder with the *same decoder* plus an MLP encoder sized to the decoder's
    parameter count (so the AE has about twice the GON's parameters), same steps, batch, lr:
    test reconstruction MSE (per pixel) and parameter counts.
(c) Figure 8: the distribution of GON latents (from (b)) vs a comparable VAE's encoder mean μ
    (same encoder size and decoder): skew and excess kurtosis of all values pooled after
    z-scoring each dimension, and histograms.
(d) Classifier GON (Eq. 4): a linear softmax classifier on the gradient latent, trained solely
    by cross-entropy (through z into F) and jointly with the reconstruction loss; test accuracy,
    beside its bound: with a squared-error inner loss at the origin the latent is an affine
    function of the image, so a softmax on it is a linear classifier on the pixels, and a linear
    softmax trained on the raw pixels (``linear_pixel_accuracy``) bounds it; a classifier GON with
    two latent steps (not affine in the image) is measured against that bound. Figure 7: a
    2-D-latent classifier GON's test latents coloured by class.
(e) Variational GON (Eq. 2) with the paper's convolutional decoder at 28²: test negative ELBO in
    nats per image and bits per dimension (BCE on continuous [0, 1] targets: the paper's
    BCE-based bound, not a discrete log-likelihood), and samples from the prior.

``--quick`` runs everything on a CPU with short step counts; they are far
below the paper's (which trains for many epochs), so the figures show the trends, not the
paper's final numbers. Without ``--quick`` every step count is multiplied by ``--scale``
(default 20) — use a GPU; ``--scale 0.05`` makes a seconds-long smoke run.

Every model trains through :class:`inr_gon.training.Trainer` (the ``image``, ``autoencoder``,
``classifier`` and ``variational`` tasks), with batches from its seeded permutation.

Data: ``inr_gon.data.load_mnist`` (``INR_GON_DATA`` points at the IDX files; otherwise the
embedded 5,000-image subset).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import time

import numpy as np
import torch

import inr_gon as ig
from inr_gon.eval.latent import histogram, latent_normality
from inr_gon.training import AutoencoderConfig, ClassifierConfig, ImageConfig, Trainer, VariationalConfig
from inr_gon.variants.autoencoder import count_parameters

PAPER_TINY_PARAMS = 4385


# -- helpers ---------------------------------------------------------------------------------
def fit(name: str, cfg, ds, a, *, eval_every: int = 10**9, lr_schedule: str = "constant"):
    """Train ``cfg``'s task on ``ds`` through the one trainer (no run folder); returns the trainer."""
    cfg = dataclasses.replace(
        cfg,
        batch_size=a.batch,
        device=a.device,
        seed=a.seed,
        seconds=0.0,
        lr_schedule=lr_schedule,
        eval_every=eval_every,
        checkpoint_every=10**9,
        out=None,
    )
    t = Trainer(cfg, dataset=ds, quiet=True)
    t0 = time.perf_counter()
    t.fit()
    print(f"    {name}: {t.step} steps in {time.perf_counter() - t0:.0f} s", flush=True)
    return t


def gon_reconstruct(t, images):
    """One-step GON reconstructions ``(N, C, H, W)`` (raw outputs, CPU) and latents ``(N, k)`` of a
    trained image task."""
    t.model.eval()
    recs, zs = [], []
    for s in range(0, images.shape[0], 500):
        x = images[s : s + 500].to(t.device)
        z = t.task.encode(x)
        recs.append(ig.render(t.model, z, tuple(images.shape[2:])).cpu())
        zs.append(z.cpu())
    return torch.cat(recs), torch.cat(zs)


def mse_psnr(rec, images):
    """Per-pixel MSE (mean over everything) and mean per-image PSNR of clamped outputs."""
    mse = (rec - images).square().mean().item()
    per = (rec.clamp(0, 1) - images).square().flatten(1).mean(1).clamp_min(1e-10)
    return mse, float((10 * torch.log10(1.0 / per)).mean())


def siren(a, hidden, layers=3, latent=32):
    """The paper's network (the latent at the first layer only, ω0 30, float32), whatever the image
    task's CPU defaults are."""
    return dict(hidden=hidden, layers=layers, latent=latent, lr=a.lr, latent_shifts=False, w0_first=30.0, amp="off")


# -- claims ----------------------------------------------------------------------------------
def claim_a(ds, a):
    t = fit(
        "(a) tiny GON",
        ImageConfig(**siren(a, 32), steps=a.steps_tiny, outer_fraction=1.0, inner_weight=a.inner_scale),
        ds,
        a,
    )
    ntr = min(ds.train_images.shape[0], a.eval_train)
    rec_tr, _ = gon_reconstruct(t, ds.train_images[:ntr])
    rec_te, _ = gon_reconstruct(t, ds.test_images)
    _, psnr_tr = mse_psnr(rec_tr, ds.train_images[:ntr])
    mse_te, psnr_te = mse_psnr(rec_te, ds.test_images)
    out = {
        "tiny_siren_params": count_parameters(t.model),
        "tiny_siren_paper_params": PAPER_TINY_PARAMS,
        "tiny_siren_train_psnr": psnr_tr,
        "tiny_siren_test_psnr": psnr_te,
        "tiny_siren_test_mse": mse_te,
        "tiny_siren_steps": a.steps_tiny,
    }
    # the configurations nearest the paper's 4,385 parameters, with their test PSNR against steps
    rows = []
    for layers, latent in ((3, 32), (4, 32), (4, 34)):
        cfg = ImageConfig(
            **{**siren(a, 32, layers=layers, latent=latent)},
            steps=a.steps_tiny,
            outer_fraction=1.0,
            inner_weight=a.inner_scale,
        )
        tt = fit(f"(a) 32x{layers}, latent {latent}", cfg, ds, a, eval_every=max(1, a.steps_tiny // 6))
        rows.append(
            {
                "layers": layers,
                "hidden": 32,
                "latent": latent,
                "params": count_parameters(tt.model),
                "test_psnr_1000": tt.history["test_psnr"][-1] if tt.history.get("test_psnr") else None,
                "curve": list(zip(tt.history["eval_step"], [round(v, 2) for v in tt.history.get("test_psnr", [])])),
            }
        )
    out["tiny_models"] = rows
    return out, rec_te[:16]


def claim_b_c(ds, a):
    gon = fit(
        "(b) GON",
        ImageConfig(**siren(a, a.hidden), steps=a.steps_ae, outer_fraction=1.0, inner_weight=a.inner_scale),
        ds,
        a,
    )
    ae = fit("(b) AE", AutoencoderConfig(**siren(a, a.hidden), kind="ae", steps=a.steps_ae), ds, a)
    rec_g, z_gon = gon_reconstruct(gon, ds.test_images)
    ae.model.eval()
    rec_a = ae.task.reconstruct(ds.test_images.to(ae.device)).cpu()
    gon_mse, _ = mse_psnr(rec_g, ds.test_images)
    ae_mse, _ = mse_psnr(rec_a, ds.test_images)
    # (c) a comparable VAE: same encoder size (2k outputs) and decoder
    vae = fit("(c) VAE", AutoencoderConfig(**siren(a, a.hidden), kind="vae", steps=a.steps_ae), ds, a)
    vae.model.eval()
    with torch.no_grad():
        mu = torch.cat(
            [
                vae.model.encode(ds.test_images[s : s + 500].to(vae.device))[0].cpu()
                for s in range(0, ds.test_images.shape[0], 500)
            ]
        )
    ng, nv = latent_normality(z_gon), latent_normality(mu)
    out = {
        "gon_test_mse": gon_mse,
        "ae_test_mse": ae_mse,
        "gon_params": count_parameters(gon.model),
        "ae_params": count_parameters(ae.model),
        "ae_encoder_hidden": ae.model.encoder.hidden_dim,
        "ae_gon_steps": a.steps_ae,
        "latent_skew": ng["skew"],
        "latent_excess_kurtosis": ng["excess_kurtosis"],
        "vae_latent_skew": nv["skew"],
        "vae_latent_excess_kurtosis": nv["excess_kurtosis"],
    }
    return out, ng["values"], nv["values"]


def linear_pixel_accuracy(ds, a) -> float:
    """Test accuracy of a multinomial logistic regression on the raw pixels (full-batch L-BFGS, a
    little L2), trained here: the bound of a one-step squared-error classifier GON, whose latent
    is an affine function of the image."""
    x, y = ds.train_images.flatten(1).to(a.device), ds.train_labels.to(a.device)
    W = torch.zeros(x.shape[1], 10, device=a.device, requires_grad=True)
    b = torch.zeros(10, device=a.device, requires_grad=True)
    opt = torch.optim.LBFGS(
        [W, b],
        lr=1,
        max_iter=a.linear_iterations,
        history_size=20,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-9,
        tolerance_change=1e-12,
    )

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ W + b, y) + 1e-5 * W.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        pred = (ds.test_images.flatten(1).to(a.device) @ W + b).argmax(1).cpu()
    return float((pred == ds.test_labels).float().mean())


def claim_d(ds, a):
    res = {"linear_pixel_accuracy": linear_pixel_accuracy(ds, a)}
    print(f"    linear softmax on the pixels: {res['linear_pixel_accuracy']:.4f}", flush=True)
    # solely a classifier (and with two latent steps): its own recipe (lr, inner scale, cosine
    # schedule; evidence: docs/findings/paper-claims.md); jointly: the reconstruction GON's
    # settings, whose inner scale the decoder needs
    recipe = dict(lr=a.lr_cls, inner_scale=a.inner_scale_cls)
    runs = (
        ("classifier", a.steps_cls, 1, recipe, a.lr_schedule_cls),
        ("joint", a.steps_joint, 1, dict(lr=a.lr, inner_scale=a.inner_scale), "constant"),
        ("classifier_k2", a.steps_cls_k2, 2, recipe, a.lr_schedule_cls),
    )
    for mode, steps, k, opts, schedule in runs:
        t = fit(
            f"(d) {mode}",
            ClassifierConfig(
                **{**siren(a, a.hidden), "lr": opts["lr"]},
                mode=mode.split("_")[0],
                steps=steps,
                inner_weight=opts["inner_scale"],
                latent_steps=k,
            ),
            ds,
            a,
            lr_schedule=schedule,
        )
        t.model.eval()
        res[mode] = t.model.accuracy(ds.test_images, ds.test_labels, device=t.device)
    t2 = fit(
        "(d) 2-D latent",
        ClassifierConfig(**siren(a, a.hidden, latent=2), steps=a.steps_cls, inner_weight=a.inner_scale),
        ds,
        a,
    )
    m2 = t2.model.eval()
    n = min(5000, ds.test_images.shape[0])
    with torch.no_grad():
        z2 = torch.cat([m2.latent(ds.test_images[s : s + 500].to(t2.device)).cpu() for s in range(0, n, 500)])
    acc2 = m2.accuracy(ds.test_images, ds.test_labels, device=t2.device)
    return (
        {
            "linear_pixel_accuracy": res["linear_pixel_accuracy"],
            "classifier_accuracy": res["classifier"],
            "joint_classifier_accuracy": res["joint"],
            "classifier_k2_accuracy": res["classifier_k2"],
            "classifier_2d_accuracy": acc2,
            "classifier_steps": a.steps_cls,
            "joint_steps": a.steps_joint,
            "classifier_k2_steps": a.steps_cls_k2,
            "classifier_lr": a.lr_cls,
            "classifier_inner_scale": a.inner_scale_cls,
            "classifier_lr_schedule": a.lr_schedule_cls,
        },
        z2.numpy(),
        ds.test_labels[:n].numpy(),
    )


def claim_e(ds, a):
    t = fit("(e) VGON", VariationalConfig(latent=a.vgon_latent, lr=a.lr_vgon, steps=a.steps_vgon), ds, a)
    v = t.model.eval()
    r = v.evaluate(ds.test_images, generator=torch.Generator(device=t.device).manual_seed(a.seed), device=t.device)
    samples = v.sample(64, generator=torch.Generator(device=t.device).manual_seed(a.seed)).cpu()
    return {
        "vgon_test_nelbo_nats": r["nelbo_nats"],
        "vgon_test_bce_nats": r["bce_nats"],
        "vgon_test_kl_nats": r["kl_nats"],
        "vgon_bits_per_dim": r["bits_per_dim"],
        "vgon_params": count_parameters(v),
        "vgon_steps": a.steps_vgon,
    }, samples


# -- figures ---------------------------------------------------------------------------------
def save_figures(out, z2, labels2, gon_vals, vae_vals, samples, recon):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(out, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 6))
    sc = ax.scatter(z2[:, 0], z2[:, 1], c=labels2, cmap="tab10", s=3, alpha=0.7)
    ax.legend(*sc.legend_elements(), title="class", loc="best", fontsize=7)
    ax.set_title("Fig. 7: 2-D latents of a classifier GON (MNIST test)")
    fig.savefig(os.path.join(out, "fig7_latent_scatter.png"), dpi=120, bbox_inches="tight")
    plt.close(fig)
    fig, axs = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    xs = np.linspace(-4, 4, 200)
    for ax, vals, title in ((axs[0], gon_vals, "GON latents"), (axs[1], vae_vals, "VAE encoder μ")):
        d, e = histogram(vals, bins=60, range=(-4, 4))
        ax.bar(e[:-1], d, width=np.diff(e), align="edge", alpha=0.7)
        ax.plot(xs, np.exp(-(xs**2) / 2) / math.sqrt(2 * math.pi), "k--", lw=1, label="N(0, 1)")
        ax.set_title(f"Fig. 8: {title} (z-scored per dim)")
        ax.legend()
    fig.savefig(os.path.join(out, "fig8_latent_histograms.png"), dpi=120, bbox_inches="tight")
    plt.close(fig)
    for name, imgs in (("vgon_prior_samples.png", samples), ("tiny_gon_test_recon.png", recon)):
        n = imgs.shape[0]
        cols = int(math.ceil(math.sqrt(n)))
        rows = int(math.ceil(n / cols))
        canvas = np.zeros((rows * 28, cols * 28), dtype=np.float32)
        for i in range(n):
            r, cc = divmod(i, cols)
            canvas[r * 28 : (r + 1) * 28, cc * 28 : (cc + 1) * 28] = imgs[i, 0].clamp(0, 1).numpy()
        plt.imsave(os.path.join(out, name), canvas, cmap="gray", vmin=0, vmax=1)


# -- main ------------------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="a short CPU run (small models, few steps)")
    p.add_argument(
        "--scale", type=float, default=None, help="multiply every step count (default 1 with --quick, 20 without)"
    )
    p.add_argument("--json", metavar="PATH", help="write the figures as JSON")
    p.add_argument("--out", metavar="DIR", help="write PNG figures here")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--data-dir", default=None, help="folder with the MNIST IDX files (default: search)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-4, help="Adam lr of the SIREN models")
    p.add_argument(
        "--inner-scale",
        type=float,
        default=1 / 64,
        help="GON latent = -scale * grad of the per-image sum (default 1/64, as the trainer)",
    )
    p.add_argument("--lr-vgon", type=float, default=1e-3, help="Adam lr of the variational GON")
    p.add_argument("--lr-cls", type=float, default=1e-3, help="Adam lr of the classifier GONs (d)")
    p.add_argument("--inner-scale-cls", type=float, default=1.0, help="inner scale of the classifier GONs (d)")
    p.add_argument(
        "--lr-schedule-cls",
        default="cosine",
        choices=("constant", "cosine"),
        help="lr schedule of the classifier GONs (d)",
    )
    p.add_argument("--linear-iterations", type=int, default=100, help="L-BFGS iterations of the linear bound")
    p.add_argument("--hidden", type=int, default=64, help="SIREN width for claims (b)-(d)")
    p.add_argument("--vgon-latent", type=int, default=48)
    p.add_argument("--eval-train", type=int, default=10000, help="train images used for train PSNR")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    a = p.parse_args(argv)
    base = dict(steps_tiny=600, steps_ae=500, steps_cls=2400, steps_cls_k2=1200, steps_joint=400, steps_vgon=700)
    if a.scale is not None and a.scale <= 0:
        p.error(f"--scale must be > 0, got {a.scale}")
    mult = a.scale if a.scale is not None else (1 if a.quick else 20)
    for k, v in base.items():
        setattr(a, k, max(1, round(v * mult)))
    return a


def main(argv=None):
    a = parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    from inr_gon.data import load_mnist

    device = torch.device(a.device)
    a.device = str(device)
    t0 = time.time()
    ds = load_mnist("mnist", data_dir=a.data_dir)
    print(f"data: {ds.source} (train {ds.train_images.shape[0]}, test {ds.test_images.shape[0]}); device {device}")
    figs = {
        "quick": a.quick,
        "device": str(device),
        "data_source": ds.source,
        "n_train": int(ds.train_images.shape[0]),
        "n_test": int(ds.test_images.shape[0]),
        "batch": a.batch,
        "lr": a.lr,
        "hidden": a.hidden,
    }
    timings = {}

    def run(name, fn):
        t = time.time()
        r = fn()
        timings[name] = round(time.time() - t, 1)
        print(f"  {name} done in {timings[name]:.0f} s", flush=True)
        return r

    fa, recon = run("a", lambda: claim_a(ds, a))
    figs.update(fa)
    fb, gon_vals, vae_vals = run("b_c", lambda: claim_b_c(ds, a))
    figs.update(fb)
    fd, z2, l2 = run("d", lambda: claim_d(ds, a))
    figs.update(fd)
    fe, samples = run("e", lambda: claim_e(ds, a))
    figs.update(fe)
    figs["seconds"] = timings
    figs["total_seconds"] = round(time.time() - t0, 1)

    print("\nGON paper claims (MNIST)" + (" --quick" if a.quick else ""))
    print(
        f"(a) tiny SIREN GON: {figs['tiny_siren_params']:,} parameters (paper quotes {PAPER_TINY_PARAMS:,}); "
        f"PSNR train {figs['tiny_siren_train_psnr']:.2f} dB, test {figs['tiny_siren_test_psnr']:.2f} dB "
        f"after {a.steps_tiny} steps"
    )
    for r in figs["tiny_models"]:
        print(
            f"    SIREN {r['layers']}x{r['hidden']}, latent {r['latent']}: {r['params']:,} parameters, test PSNR "
            f"(1,000 images) against steps {r['curve']}"
        )
    print(
        f"(b) test MSE: GON {figs['gon_test_mse']:.5f} ({figs['gon_params']:,} params) vs "
        f"AE {figs['ae_test_mse']:.5f} ({figs['ae_params']:,} params, encoder hidden {figs['ae_encoder_hidden']}), "
        f"{a.steps_ae} steps each"
    )
    print(
        f"(c) latents: GON skew {figs['latent_skew']:.3f}, excess kurtosis {figs['latent_excess_kurtosis']:.3f}; "
        f"VAE μ skew {figs['vae_latent_skew']:.3f}, excess kurtosis {figs['vae_latent_excess_kurtosis']:.3f}"
    )
    print(
        f"(d) test accuracy: classifier GON {figs['classifier_accuracy']:.4f} ({a.steps_cls} steps), "
        f"joint {figs['joint_classifier_accuracy']:.4f} ({a.steps_joint} steps), "
        f"2-D latent {figs['classifier_2d_accuracy']:.4f}; linear bound (softmax on the pixels) "
        f"{figs['linear_pixel_accuracy']:.4f}; with 2 latent steps (not affine in x) "
        f"{figs['classifier_k2_accuracy']:.4f} "
        f"({a.steps_cls_k2} steps)"
    )
    print(
        f"(e) variational GON: test -ELBO {figs['vgon_test_nelbo_nats']:.2f} nats/image "
        f"(BCE {figs['vgon_test_bce_nats']:.2f} + KL {figs['vgon_test_kl_nats']:.2f}), "
        f"{figs['vgon_bits_per_dim']:.4f} bits/dim (BCE-based bound on [0, 1] data), {a.steps_vgon} steps"
    )
    print(f"total {figs['total_seconds']:.0f} s")
    if a.json:
        os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
        with open(a.json, "w") as f:
            json.dump(figs, f, indent=2)
    if a.out:
        save_figures(a.out, z2, l2, gon_vals, vae_vals, samples, recon)
    return figs


if __name__ == "__main__":
    main()
