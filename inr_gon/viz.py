"""Pictures: image grids (PNG), GIFs and training curves. Outer layer (writes files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

__all__ = ["image_grid", "save_grid", "save_gif", "plot_curves", "to_uint8", "pyplot", "save_figure"]


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """``(N, C, H, W)`` floats in [0, 1] -> ``(N, H, W, C)`` uint8 (values clipped)."""
    x = images.detach().float().clamp(0, 1).cpu()
    return (x.permute(0, 2, 3, 1).numpy() * 255 + 0.5).astype(np.uint8)


def image_grid(images: torch.Tensor, *, nrow: int = 8, pad: int = 2, pad_value: float = 1.0) -> np.ndarray:
    """Tile ``(N, C, H, W)`` images in [0, 1] into one ``(rows·(H+pad)+pad, …, 3)`` uint8 array
    (grayscale replicated to RGB), ``nrow`` images per row."""
    if images.dim() != 4:
        raise ValueError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}")
    imgs = to_uint8(images)
    if imgs.shape[-1] == 1:
        imgs = np.repeat(imgs, 3, axis=-1)
    N, H, W, _ = imgs.shape
    ncol = min(nrow, N)
    nrows = (N + ncol - 1) // ncol
    out = np.full((nrows * (H + pad) + pad, ncol * (W + pad) + pad, 3), int(pad_value * 255), np.uint8)
    for i in range(N):
        r, c = divmod(i, ncol)
        out[pad + r * (H + pad):pad + r * (H + pad) + H, pad + c * (W + pad):pad + c * (W + pad) + W] = imgs[i]
    return out


def save_grid(images: torch.Tensor, path, *, nrow: int = 8, pad: int = 2) -> Path:
    """Write a PNG grid of ``(N, C, H, W)`` images in [0, 1]."""
    import imageio.v3 as iio
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, image_grid(images, nrow=nrow, pad=pad))
    return path


def save_gif(frames: list[np.ndarray] | torch.Tensor, path, *, duration: float = 0.08, loop: int = 0) -> Path:
    """Write an animated GIF; ``frames`` are uint8 ``(H, W, 3)`` arrays or a ``(T, C, H, W)`` tensor
    in [0, 1]. ``duration`` is seconds per frame."""
    import imageio.v3 as iio
    if isinstance(frames, torch.Tensor):
        frames = [image_grid(f[None], nrow=1, pad=0) for f in frames]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, np.stack(frames), extension=".gif", duration=int(duration * 1000), loop=loop)
    return path


def pyplot():
    """``matplotlib.pyplot`` on the headless Agg backend."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, path, *, dpi: int = 100) -> Path:
    """Lay out, write (creating the folder) and close a matplotlib figure; returns the path."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    return path


def plot_curves(history: dict, path) -> Path:
    """Loss and test PSNR against steps and seconds, as one 2×2 PNG.

    ``history`` holds lists: ``step``, ``seconds``, ``loss`` (training, per log point) and
    ``eval_step``, ``eval_seconds``, ``test_psnr``.
    """
    fig, ax = pyplot().subplots(2, 2, figsize=(10, 7))
    for col, key in ((0, "step"), (1, "seconds")):
        ax[0, col].plot(history.get(key, []), history.get("loss", []), lw=1)
        ax[0, col].set_yscale("log")
        ax[0, col].set_ylabel("training loss (per pixel MSE)")
        ax[1, col].plot(history.get(f"eval_{key}", []), history.get("test_psnr", []), "o-", ms=3)
        ax[1, col].set_ylabel("test PSNR (dB)")
        for r in (0, 1):
            ax[r, col].set_xlabel("step" if key == "step" else "seconds")
            ax[r, col].grid(alpha=0.3)
    return save_figure(fig, path)
