"""Latent-space sampling and interpolation.

* :func:`slerp`: spherical interpolation, safe for parallel, anti-parallel and zero vectors.
* :class:`GaussianLatentSampler`: a full-covariance Gaussian fitted to latents (as the GON paper
  samples implicit GONs), regularised and factorised by Cholesky.
"""

from __future__ import annotations

import torch

__all__ = ["slerp", "slerp_path", "GaussianLatentSampler"]


def slerp(a: torch.Tensor, b: torch.Tensor, t) -> torch.Tensor:
    """Spherical interpolation between ``a`` and ``b`` ``(..., k)`` at ``t`` (scalar or ``(T,)``).

    The angle is taken between the directions and the norm is interpolated linearly, so the
    path goes from ``a`` (t=0) to ``b`` (t=1). Near-parallel vectors (angle < 1e-4) fall back to
    linear interpolation (the slerp limit); anti-parallel vectors (no unique great circle) rotate
    through a fixed direction orthogonal to ``a``; a zero vector has no direction, so the path
    is the linear one. Never produces NaN for finite input.

    Returns ``(..., k)`` for scalar ``t``, or ``(T, ..., k)``.
    """
    t = torch.as_tensor(t, dtype=a.dtype, device=a.device)
    scalar = t.dim() == 0
    t = t.reshape(-1, *([1] * a.dim()))  # (T, ..., 1)
    na, nb = a.norm(dim=-1, keepdim=True), b.norm(dim=-1, keepdim=True)
    tiny = torch.finfo(a.dtype).tiny ** 0.5
    ua, ub = a / na.clamp_min(tiny), b / nb.clamp_min(tiny)
    cos = (ua * ub).sum(-1, keepdim=True).clamp(-1.0, 1.0)
    # anti-parallel: replace ub's direction by one orthogonal to ua (Gram-Schmidt on a basis vector)
    anti = cos < -1 + 1e-7
    idx = ua.abs().argmin(dim=-1, keepdim=True)
    e = torch.zeros_like(ua).scatter_(-1, idx, 1.0)
    ortho = e - (e * ua).sum(-1, keepdim=True) * ua
    ortho = ortho / ortho.norm(dim=-1, keepdim=True).clamp_min(tiny)
    omega = torch.arccos(cos)
    omega = torch.where(anti, torch.full_like(omega, torch.pi), omega)
    # for anti-parallel use the great circle through `ortho`: direction(t) = cos(πt) ua + sin(πt) ortho
    so = torch.sin(omega)
    small = (omega < 1e-4) | (na <= tiny) | (nb <= tiny)
    safe_so = torch.where(small | anti, torch.ones_like(so), so)
    w_a = torch.sin((1 - t) * omega) / safe_so
    w_b = torch.sin(t * omega) / safe_so
    dir_slerp = w_a * ua + w_b * ub
    dir_anti = torch.cos(torch.pi * t) * ua + torch.sin(torch.pi * t) * ortho
    direction = torch.where(anti, dir_anti, dir_slerp)
    norm = (1 - t) * na + t * nb
    out = torch.where(small, (1 - t) * a + t * b, direction * norm)
    out = torch.where(t == 0, a, torch.where(t == 1, b, out))  # exact end points
    return out[0] if scalar else out


def slerp_path(a: torch.Tensor, b: torch.Tensor, frames: int) -> torch.Tensor:
    """``frames`` latents from ``a`` to ``b`` (both ``(k,)``) inclusive: ``(frames, k)``."""
    if frames < 2:
        raise ValueError(f"frames must be >= 2, got {frames}")
    return slerp(a, b, torch.linspace(0, 1, frames, dtype=a.dtype, device=a.device))


class GaussianLatentSampler:
    """Full-covariance Gaussian fitted to latents ``(N, k)``.

    The covariance is regularised by ``eps · mean(diag) · I`` (relative ridge) before its
    Cholesky factorisation, so a rank-deficient set of latents (``N <= k``, or collinear ones)
    still gives a valid sampler.
    """

    def __init__(self, latents: torch.Tensor, *, eps: float = 1e-5):
        if latents.dim() != 2 or latents.shape[0] < 2:
            raise ValueError(f"latents must have shape (N >= 2, k), got {tuple(latents.shape)}")
        if not torch.isfinite(latents).all():
            raise ValueError("latents contain NaN or Inf values")
        x = latents.detach().double()
        self.mean = x.mean(0)
        xc = x - self.mean
        cov = xc.T @ xc / (x.shape[0] - 1)
        ridge = eps * cov.diagonal().mean().clamp_min(1e-12)
        self.cov = cov + ridge * torch.eye(cov.shape[0], dtype=cov.dtype, device=cov.device)
        self.chol = torch.linalg.cholesky(self.cov)
        self.dtype = latents.dtype

    @classmethod
    def from_moments(cls, mean: torch.Tensor, cov: torch.Tensor) -> "GaussianLatentSampler":
        """A sampler with a given mean ``(k,)`` and (regularised, positive-definite) covariance ``(k, k)``."""
        self = cls.__new__(cls)
        self.mean, self.cov = mean.double(), cov.double()
        self.chol = torch.linalg.cholesky(self.cov)
        self.dtype = mean.dtype if mean.dtype != torch.float64 else torch.float32
        return self

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` latents ``(n, k)`` drawn from the fitted Gaussian."""
        eps = torch.randn(n, self.mean.shape[0], generator=generator, dtype=torch.float64, device=self.mean.device)
        return (self.mean + eps @ self.chol.T).to(self.dtype)
