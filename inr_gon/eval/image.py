"""Image reconstruction metrics: PSNR and SSIM (scikit-image's definition), per image."""

from __future__ import annotations

import torch

__all__ = ["psnr", "ssim"]


def psnr(pred: torch.Tensor, target: torch.Tensor, *, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio per image, in dB.

    Args:
        pred: ``(B, ...)`` images (any channels/spatial shape), values in ``[0, data_range]``.
        target: the reference images, the same shape.
    Returns:
        ``(B,)``; ``pred`` is clipped to the data range first (as images are displayed).
        A perfect reconstruction is capped at 100 dB so that means stay finite.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    mse = (pred.clamp(0, data_range) - target).square().flatten(1).mean(1)
    return (10 * torch.log10(data_range**2 / mse.clamp_min(1e-10))).clamp_max(100.0)


def ssim(
    pred: torch.Tensor, target: torch.Tensor, *, data_range: float = 1.0, win_size: int = 7, chunk: int = 1024
) -> torch.Tensor:
    """Structural similarity per image: scikit-image's ``structural_similarity`` (7×7 uniform
    window, sample covariance, K1 = 0.01, K2 = 0.03, the map cropped by half a window, channels
    averaged), computed in float64 with box filters on the tensors' device.

    Args:
        pred: ``(B, C, H, W)`` images in ``[0, data_range]``, ``H, W >= win_size``.
        target: the reference images, the same shape.
    Returns:
        ``(B,)`` SSIM values (float64, CPU tensor).
    """
    import torch.nn.functional as F

    if pred.shape != target.shape or pred.dim() != 4:
        raise ValueError(
            f"pred and target must both be (B, C, H, W), got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    if min(pred.shape[-2:]) < win_size:
        raise ValueError(f"SSIM needs images of at least {win_size}×{win_size} pixels, got {tuple(pred.shape[-2:])}")
    n = win_size * win_size
    cov_norm = n / (n - 1)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    out = []
    for i in range(0, pred.shape[0], chunk):
        p = pred[i : i + chunk].detach().double().clamp(0, data_range)
        t = target[i : i + chunk].detach().double().to(p.device)
        B, C = p.shape[:2]
        m = F.avg_pool2d(torch.cat([p, t, p * p, t * t, p * t], 1).flatten(0, 1).unsqueeze(1), win_size, stride=1)
        ux, uy, uxx, uyy, uxy = m.reshape(B, 5, C, *m.shape[-2:]).unbind(1)
        vx, vy, vxy = cov_norm * (uxx - ux * ux), cov_norm * (uyy - uy * uy), cov_norm * (uxy - ux * uy)
        s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
        out.append(s.flatten(2).mean(2).mean(1).cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)
