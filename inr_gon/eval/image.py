"""Image reconstruction metrics: PSNR and SSIM (scikit-image), per image."""

from __future__ import annotations

import numpy as np
import torch
from skimage.metrics import structural_similarity

__all__ = ["psnr", "ssim"]


def psnr(pred: torch.Tensor, target: torch.Tensor, *, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio per image, in dB.

    Args:
        pred, target: ``(B, ...)`` images (any channels/spatial shape), values in ``[0, data_range]``.
    Returns:
        ``(B,)``; ``pred`` is clipped to the data range first (as images are displayed).
        A perfect reconstruction is capped at 100 dB so that means stay finite.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    mse = (pred.clamp(0, data_range) - target).square().flatten(1).mean(1)
    return (10 * torch.log10(data_range ** 2 / mse.clamp_min(1e-10))).clamp_max(100.0)


def ssim(pred: torch.Tensor, target: torch.Tensor, *, data_range: float = 1.0) -> torch.Tensor:
    """Structural similarity per image (scikit-image, 7×7 uniform window, channels averaged).

    Args:
        pred, target: ``(B, C, H, W)`` images in ``[0, data_range]``.
    Returns:
        ``(B,)`` SSIM values (CPU tensor).
    """
    if pred.shape != target.shape or pred.dim() != 4:
        raise ValueError(f"pred and target must both be (B, C, H, W), got {tuple(pred.shape)} and {tuple(target.shape)}")
    p = pred.detach().clamp(0, data_range).cpu().double().numpy()
    t = target.detach().cpu().double().numpy()
    out = np.empty(p.shape[0])
    for i in range(p.shape[0]):
        out[i] = structural_similarity(t[i], p[i], data_range=data_range, channel_axis=0)
    return torch.from_numpy(out)
