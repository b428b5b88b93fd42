"""Integrators: estimates of ``∫ L dc`` over a sample's coordinates.

An integrator chooses which points enter an integral and with what weight:
``select(coords, target) -> (coords', target', weight)``; the estimate of the integral is then
``weight * Σ_{p, o} ℓ(F(c'_p ⊕ z), x'_po)``.

All integrators share one scale: the *grid sum* ``scale * Σ_{p ∈ grid}``. With the default
``scale=1`` the full-grid estimate is cwkx/GON's per-sample sum over points; a Monte-Carlo
integrator over ``m`` of the ``P`` points weighs each by ``scale * P / m``, which makes its
estimate (and the gradient-origin latent, which is linear in it) an unbiased estimate of the
full-grid value. ``scale = volume / P`` turns every estimate into the continuous integral.
"""

from __future__ import annotations

import torch

from .coords import (
    interpolate,
    jittered_grid,
    normalize_bounds,
    normalize_resolution,
    points_to_image,
    random_subset,
    uniform_points,
)

__all__ = [
    "Integrator",
    "GridIntegrator",
    "MonteCarloIntegrator",
    "StratifiedIntegrator",
    "ContinuousIntegrator",
    "integrate",
]


def integrate(values: torch.Tensor, weight: float | torch.Tensor) -> torch.Tensor:
    """``values (B, P, O)`` -> ``(B,)`` estimates ``weight * Σ_{p,o} values``."""
    return values.sum(dim=(1, 2)) * weight


class Integrator:
    """Base class. Subclasses implement :meth:`select`."""

    def select(self, coords: torch.Tensor, target: torch.Tensor, *, generator=None):
        """Pick the points of one integral.

        Args:
            coords: ``(P, n)`` shared or ``(B, P, n)`` per sample.
            target: ``(B, P, O)`` values at those points.
        Returns:
            ``(coords', target', weight)`` with ``coords'`` ``(m, n)`` or ``(B, m, n)``,
            ``target'`` ``(B, m, O)`` and a float weight per point.
        """
        raise NotImplementedError


class GridIntegrator(Integrator):
    """All points, each with weight ``scale`` (default 1: the per-sample sum over the grid)."""

    def __init__(self, *, scale: float = 1.0):
        self.scale = float(scale)

    def select(self, coords, target, *, generator=None):
        return coords, target, self.scale

    def __repr__(self):
        return f"GridIntegrator(scale={self.scale})"


def _count(P: int, num_points: int | None, fraction: float | None) -> int:
    if (num_points is None) == (fraction is None):
        raise ValueError("give exactly one of num_points or fraction")
    if fraction is not None:
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        return max(1, round(fraction * P))
    if num_points < 1:
        raise ValueError(f"num_points must be >= 1, got {num_points}")
    return min(int(num_points), P)


class MonteCarloIntegrator(Integrator):
    """``m`` grid points drawn uniformly without replacement, each weighted ``scale * P / m``.

    Unbiased for the grid integral: each point enters with probability ``m / P``.

    Args:
        num_points: ``m``; or ``fraction``: ``m = round(fraction * P)``.
        per_sample: an independent subset per sample (per-sample coordinates ``(B, m, n)``);
            by default one subset shared by the batch, which keeps shared coordinates shared.
    """

    def __init__(
        self,
        num_points: int | None = None,
        *,
        fraction: float | None = None,
        scale: float = 1.0,
        per_sample: bool = False,
    ):
        _count(10**9, num_points, fraction)  # validate now, not at the first step
        self.num_points, self.fraction = num_points, fraction
        self.scale, self.per_sample = float(scale), per_sample

    def select(self, coords, target, *, generator=None):
        B, P = target.shape[0], target.shape[1]
        m = _count(P, self.num_points, self.fraction)
        weight = self.scale * P / m
        dev = target.device
        if generator is not None and generator.device != dev:
            dev = generator.device
        if not self.per_sample:
            idx = random_subset(P, m, generator=generator, device=dev).to(target.device)
            return coords[..., idx, :], target[:, idx], weight
        idx = random_subset(P, m, batch=B, generator=generator, device=dev).to(target.device)
        if coords.dim() == 2:
            coords = coords.unsqueeze(0).expand(B, -1, -1)
        gather = lambda t: t.gather(1, idx.unsqueeze(-1).expand(-1, -1, t.shape[-1]))
        return gather(coords), gather(target), weight

    def __repr__(self):
        n = f"fraction={self.fraction}" if self.fraction is not None else f"num_points={self.num_points}"
        return f"MonteCarloIntegrator({n}, scale={self.scale}, per_sample={self.per_sample})"


class StratifiedIntegrator(Integrator):
    """One grid point drawn uniformly in every ``block^n`` block of the grid, each weighted
    ``scale * block^n``: unbiased for the grid integral (every point enters with probability
    ``1 / block^n``) with less variance than a uniform subset of the same size, since the points
    cover the domain evenly (stratified sampling).

    Args:
        resolution: the grid of the targets (``(H, W)`` / ``(D, H, W)``; cell-centred, C order, as
            :func:`~inr_gon.core.coords.grid`); each size a multiple of ``block``.
        block: the block's side in grid points (``2``: a quarter of a 2-D grid).
        per_sample: independent offsets per sample (per-sample coordinates); by default shared.
    """

    def __init__(self, resolution, *, block: int = 2, scale: float = 1.0, per_sample: bool = False):
        self.resolution = normalize_resolution(resolution, None if isinstance(resolution, int) else len(resolution))
        if not isinstance(block, int) or block < 1:
            raise ValueError(f"block must be a positive int, got {block!r}")
        if any(r % block for r in self.resolution):
            raise ValueError(f"resolution {self.resolution} is not a multiple of block {block}")
        self.block, self.scale, self.per_sample = block, float(scale), per_sample
        # the flat grid index of every block's first point, and the offsets within a block
        n = len(self.resolution)
        strides = [int(torch.tensor(self.resolution[i + 1 :]).prod()) for i in range(n)]
        starts = torch.zeros(1, dtype=torch.long)
        offsets = torch.zeros(1, dtype=torch.long)
        for r, st in zip(self.resolution, strides):
            starts = (starts[:, None] + torch.arange(0, r, block)[None] * st).reshape(-1)
            offsets = (offsets[:, None] + torch.arange(block)[None] * st).reshape(-1)
        self._starts, self._offsets = starts, offsets  # (P / block^n,), (block^n,)

    def select(self, coords, target, *, generator=None):
        B, P = target.shape[0], target.shape[1]
        if P != self._starts.numel() * self._offsets.numel():
            raise ValueError(f"the targets have {P} points, not the {tuple(self.resolution)} grid's")
        dev = generator.device if generator is not None else target.device
        m = self._starts.numel()
        shape = (B, m) if self.per_sample else (m,)
        pick = torch.randint(0, self._offsets.numel(), shape, generator=generator, device=dev)
        idx = (self._starts.to(dev) + self._offsets.to(dev)[pick]).to(target.device)
        weight = self.scale * self._offsets.numel()
        if not self.per_sample:
            return coords[..., idx, :], target[:, idx], weight
        if coords.dim() == 2:
            coords = coords.unsqueeze(0).expand(B, -1, -1)
        gather = lambda t: t.gather(1, idx.unsqueeze(-1).expand(-1, -1, t.shape[-1]))
        return gather(coords), gather(target), weight

    def __repr__(self):
        return f"StratifiedIntegrator(resolution={self.resolution}, block={self.block}, scale={self.scale})"


class ContinuousIntegrator(Integrator):
    """Monte-Carlo over the continuous domain, targets looked up by linear interpolation.

    The target ``(B, P, O)`` must be on the cell-centred grid of ``resolution`` (2-D or 3-D).
    ``stratified=True`` draws ``m`` distinct cells and one uniform point inside each (jittered
    sampling); otherwise ``m`` points uniform in the domain. Weight ``scale * P / m``: the
    estimate is on the grid-sum scale, unbiased for ``P / volume · ∫ ℓ dc``.
    Returns per-sample coordinates ``(B, m, n)``.
    """

    def __init__(
        self,
        num_points: int | None = None,
        *,
        fraction: float | None = None,
        resolution,
        bounds=(-1.0, 1.0),
        stratified: bool = True,
        scale: float = 1.0,
    ):
        _count(10**9, num_points, fraction)
        self.resolution = normalize_resolution(resolution, None if isinstance(resolution, int) else len(resolution))
        self.bounds = normalize_bounds(bounds, len(self.resolution))
        self.num_points, self.fraction = num_points, fraction
        self.stratified, self.scale = stratified, float(scale)

    def select(self, coords, target, *, generator=None):
        B, P = target.shape[0], target.shape[1]
        n = len(self.resolution)
        m = _count(P, self.num_points, self.fraction)
        dev = generator.device if generator is not None else target.device
        if self.stratified:
            cells = jittered_grid(
                self.resolution, bounds=self.bounds, batch=B, generator=generator, device=dev, dtype=target.dtype
            )
            idx = random_subset(P, m, batch=B, generator=generator, device=dev)
            pts = cells.gather(1, idx.unsqueeze(-1).expand(-1, -1, n)).to(target.device)
        else:
            pts = uniform_points(
                m, n, bounds=self.bounds, batch=B, generator=generator, device=dev, dtype=target.dtype
            ).to(target.device)
        images = points_to_image(target, self.resolution)
        return pts, interpolate(images, pts, bounds=self.bounds), self.scale * P / m
