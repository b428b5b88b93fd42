"""The image task's outputs: reconstructions, samples, slerps, renders at 4× and 10×, curves,
the convergence figure and ``metrics.json``; and the summary's line on the linear baseline."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ...core.sampling import GaussianLatentSampler
from ..checkpoint import atomic_write_bytes

__all__ = ["write_image_outputs", "baseline_lines"]


def baseline_lines(metrics: dict, k: int) -> list[str]:
    """The summary's line on the linear baseline (PCA of the latent's size), with the margin;
    a run behind it says so."""
    p = metrics.get("pca_test_psnr")
    if p is None:
        return []
    margin = metrics["pca_margin_psnr"]
    line = (
        f"linear baseline (PCA, {k} components, fitted in {metrics['pca_seconds']:.1f} s): PSNR {p:.2f} dB, SSIM "
        f"{metrics['pca_test_ssim']:.4f}; the GON is {abs(margin):.2f} dB {'ahead' if margin >= 0 else 'behind'}"
    )
    if metrics.get("below_linear_baseline"):
        line += " -- BELOW ITS LINEAR BASELINE: a linear code of the same size reconstructs these images better"
    return [line]


def write_image_outputs(task, metrics: dict, out, *, num_show: int = 16, seed: int = 0) -> tuple[dict, dict]:
    """Write the run's pictures and figures into ``out``; returns ``({name: path}, metrics)``.

    ``recon_train.png`` / ``recon_test.png`` (originals above their one-step reconstructions),
    ``samples.png`` (latents from a full-covariance Gaussian fitted to training latents),
    ``slerp.png`` / ``slerp.gif`` (spherical interpolation between test latents),
    ``superres.png`` (test latents rendered at 1×, 4× and 10×, shown at the same size),
    ``curves.png``, ``convergence.png`` (the paper's Figure 6: fixed test images reconstructed at
    the configured training times, PSNR under each), ``metrics.json``.
    """
    import torch.nn.functional as F

    from ...core.sampling import slerp_path
    from ...viz import image_grid, plot_curves, save_convergence_figure, save_gif, save_grid

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    g = torch.Generator().manual_seed(seed)
    t = task
    t.trainer.model.eval()
    H, W = t.resolution
    for split, imgs in (("train", t.train_images), ("test", t.test_images)):
        if imgs.shape[0] == 0:
            continue
        x = imgs[:num_show]
        rec = t.decode(t.encode(x))
        paths[f"recon_{split}"] = save_grid(torch.cat([x, rec]), out / f"recon_{split}.png", nrow=x.shape[0])
    stats = t.latent_stats
    sampler = (
        GaussianLatentSampler.from_moments(stats["mean"], stats["cov"])
        if stats is not None
        else GaussianLatentSampler(t.encode(t.train_images[:5000]))
    )
    paths["samples"] = save_grid(t.decode(sampler.sample(64, generator=g).to(t.device)), out / "samples.png", nrow=8)
    src = t.test_images if t.test_images.shape[0] >= 2 else t.train_images
    z_src = t.encode(src[:16])
    pairs = [(i, (i + 1) % z_src.shape[0]) for i in range(0, min(16, z_src.shape[0]), 2)]
    frames = 10
    rows = [slerp_path(z_src[a], z_src[b], frames) for a, b in pairs]
    paths["slerp"] = save_grid(t.decode(torch.cat(rows)), out / "slerp.png", nrow=frames)
    # GIF: the first four pairs at 4x resolution, there and back
    n_gif = min(4, len(pairs))
    steps = 24
    path_z = torch.stack([slerp_path(z_src[a], z_src[b], steps) for a, b in pairs[:n_gif]], 1)  # (T, n, k)
    gif_frames = []
    for k in list(range(steps)) + list(range(steps - 2, 0, -1)):
        gif_frames.append(image_grid(t.decode(path_z[k], (4 * H, 4 * W)), nrow=n_gif, pad=4))
    paths["slerp_gif"] = save_gif(gif_frames, out / "slerp.gif")
    # super-resolution: originals (nearest ×10), renders at 4× and 10× (shown at 10× size)
    x = src[:8]
    z = t.encode(x)
    big = (10 * H, 10 * W)
    shown = [
        F.interpolate(x, size=big, mode="nearest"),
        F.interpolate(t.decode(z, (4 * H, 4 * W)), size=big, mode="nearest"),
        t.decode(z, big),
    ]
    paths["superres"] = save_grid(torch.cat(shown), out / "superres.png", nrow=x.shape[0], pad=4)
    paths["curves"] = plot_curves(t.trainer.history, out / "curves.png")
    if t.snapshots:
        paths["convergence"] = save_convergence_figure(t.test_images[:8], t.snapshots, out / "convergence.png")
        metrics = {**metrics, "convergence": [{k: v for k, v in s.items() if k != "images"} for s in t.snapshots]}
    paths["metrics"] = atomic_write_bytes(out / "metrics.json", json.dumps(metrics, indent=2).encode())
    return paths, metrics
