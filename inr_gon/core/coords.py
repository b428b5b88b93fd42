"""Coordinates: n-dimensional grids at any resolution and Monte-Carlo point samplers.

Grid convention
---------------
A grid of resolution ``(N_0, …, N_{n-1})`` over bounds ``[lo_d, hi_d]`` has ``P = Π N_d``
points, flattened in C order (the last axis fastest), and coordinate ``d`` of a point runs
along array axis ``d``. So ``values (B, P, C)`` reshape to images ``(B, C, N_0, …)`` with
:func:`points_to_image` and ``grid((H, W))[:, 0]`` is the row (y) coordinate.

* ``align_corners=False`` (default, for signals sampled on pixels/voxels): point ``i`` of axis
  ``d`` is the *centre* of cell ``i``: ``lo + (i + 1/2) (hi - lo) / N``. Cells tile the domain
  exactly, so grids of different resolutions of the same signal line up: the 28² grid's point
  ``(i, j)`` is the centre of the ``10×10`` block ``(10i…10i+9, 10j…10j+9)`` of the 280² grid.
  This is the convention of area resampling and of ``grid_sample(align_corners=False)``.
* ``align_corners=True`` (for meshing): ``torch.linspace(lo, hi, N)``, spacing exactly
  ``(hi - lo) / (N - 1)``, first and last points on the bounds (cwkx/GON's ``np.linspace``).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange

__all__ = [
    "grid",
    "axis_coordinates",
    "normalize_resolution",
    "normalize_bounds",
    "image_to_points",
    "points_to_image",
    "random_subset",
    "jittered_grid",
    "uniform_points",
    "interpolate",
]


def normalize_resolution(resolution, dim: int | None = None) -> tuple[int, ...]:
    """``int`` or sequence of ints -> tuple of ``dim`` positive ints (clear ``ValueError`` otherwise)."""
    if isinstance(resolution, bool):
        raise TypeError("resolution must be an int or a sequence of ints, got a bool")
    if isinstance(resolution, int):
        if dim is None:
            raise ValueError("an int resolution needs dim= (the number of coordinate axes)")
        resolution = (resolution,) * dim
    try:
        res = tuple(int(r) for r in resolution)
    except TypeError:
        raise TypeError(f"resolution must be an int or a sequence of ints, got {resolution!r}") from None
    if any(int(r) != r for r in resolution) or any(r < 1 for r in res) or not res:
        raise ValueError(f"resolution must be positive integers, got {tuple(resolution)}")
    if dim is not None and len(res) != dim:
        raise ValueError(f"resolution {res} has {len(res)} axes but dim={dim}")
    return res


def normalize_bounds(bounds, dim: int) -> tuple[tuple[float, float], ...]:
    """``(lo, hi)`` for every axis, or one ``(lo, hi)`` per axis -> ``dim`` pairs with lo < hi."""
    try:
        if len(bounds) == 2 and all(isinstance(b, (int, float)) for b in bounds):
            pairs = ((float(bounds[0]), float(bounds[1])),) * dim
        else:
            pairs = tuple((float(lo), float(hi)) for lo, hi in bounds)
    except (TypeError, ValueError):
        raise ValueError(f"bounds must be (lo, hi) or one (lo, hi) per axis, got {bounds!r}") from None
    if len(pairs) != dim:
        raise ValueError(f"bounds give {len(pairs)} axes but dim={dim}")
    for lo, hi in pairs:
        if not lo < hi:
            raise ValueError(f"bounds need lo < hi, got ({lo}, {hi})")
    return pairs


def axis_coordinates(
    n: int, lo: float, hi: float, *, align_corners: bool = False, device=None, dtype=None
) -> torch.Tensor:
    """The ``n`` coordinates of one grid axis, ``(n,)`` (see the module's convention)."""
    dtype = dtype or torch.get_default_dtype()
    if align_corners:
        if n == 1:
            return torch.full((1,), (lo + hi) / 2, device=device, dtype=dtype)
        return torch.linspace(lo, hi, n, device=device, dtype=dtype)
    step = (hi - lo) / n
    return lo + (torch.arange(n, device=device, dtype=dtype) + 0.5) * step


def grid(
    resolution, *, dim: int | None = None, bounds=(-1.0, 1.0), align_corners: bool = False, device=None, dtype=None
) -> torch.Tensor:
    """Regular grid of points.

    Args:
        resolution: ``int`` (with ``dim``) or ``(N_0, …, N_{n-1})``.
        bounds: ``(lo, hi)`` for all axes or one pair per axis.
        align_corners: see the module docstring.
    Returns:
        ``(P, n)`` coordinates, ``P = Π N_d``, C order.
    """
    if dim is None and not isinstance(resolution, int):
        dim = len(tuple(resolution))
    res = normalize_resolution(resolution, dim)
    pairs = normalize_bounds(bounds, len(res))
    axes = [
        axis_coordinates(n, lo, hi, align_corners=align_corners, device=device, dtype=dtype)
        for n, (lo, hi) in zip(res, pairs)
    ]
    mesh = torch.meshgrid(*axes, indexing="ij")
    return torch.stack(mesh, dim=-1).reshape(-1, len(res))


def image_to_points(images: torch.Tensor) -> torch.Tensor:
    """Images ``(B, C, N_0, …, N_{n-1})`` -> point values ``(B, P, C)`` in grid order."""
    if images.dim() < 3:
        raise ValueError(f"images must have shape (B, C, *spatial), got {tuple(images.shape)}")
    return rearrange(images.reshape(*images.shape[:2], -1), "b c p -> b p c")


def points_to_image(values: torch.Tensor, resolution: Sequence[int]) -> torch.Tensor:
    """Point values ``(B, P, C)`` in grid order -> images ``(B, C, *resolution)``."""
    res = tuple(resolution)
    n = 1
    for r in res:
        n *= r
    if values.dim() != 3 or values.shape[1] != n:
        raise ValueError(f"values must have shape (B, {n}, C) for resolution {res}, got {tuple(values.shape)}")
    return rearrange(values, "b p c -> b c p").reshape(values.shape[0], values.shape[2], *res)


def random_subset(num_points: int, m: int, *, batch: int | None = None, generator=None, device=None) -> torch.Tensor:
    """``m`` distinct indices out of ``num_points`` drawn uniformly without replacement.

    Returns ``(m,)`` long, or ``(batch, m)`` with an independent subset per row.
    """
    if not 1 <= m <= num_points:
        raise ValueError(f"need 1 <= m <= num_points, got m={m}, num_points={num_points}")
    if batch is None:
        return torch.randperm(num_points, generator=generator, device=device)[:m]
    keys = torch.rand(batch, num_points, generator=generator, device=device)
    return keys.topk(m, dim=1, sorted=False).indices


def jittered_grid(
    resolution,
    *,
    dim: int | None = None,
    bounds=(-1.0, 1.0),
    batch: int | None = None,
    generator=None,
    device=None,
    dtype=None,
) -> torch.Tensor:
    """Stratified samples: one uniform point inside each cell of the cell-centred grid.

    Returns ``(P, n)`` or ``(batch, P, n)`` (independent jitter per sample).
    """
    if dim is None and not isinstance(resolution, int):
        dim = len(tuple(resolution))
    res = normalize_resolution(resolution, dim)
    pairs = normalize_bounds(bounds, len(res))
    centres = grid(res, bounds=pairs, device=device, dtype=dtype)
    step = torch.tensor([(hi - lo) / n for n, (lo, hi) in zip(res, pairs)], device=device, dtype=centres.dtype)
    shape = centres.shape if batch is None else (batch, *centres.shape)
    u = torch.rand(shape, generator=generator, device=device, dtype=centres.dtype) - 0.5
    return centres + u * step


def uniform_points(
    m: int, dim: int, *, bounds=(-1.0, 1.0), batch: int | None = None, generator=None, device=None, dtype=None
) -> torch.Tensor:
    """``m`` points uniform in the box: ``(m, dim)`` or ``(batch, m, dim)``."""
    pairs = normalize_bounds(bounds, dim)
    dtype = dtype or torch.get_default_dtype()
    lo = torch.tensor([p[0] for p in pairs], device=device, dtype=dtype)
    hi = torch.tensor([p[1] for p in pairs], device=device, dtype=dtype)
    shape = (m, dim) if batch is None else (batch, m, dim)
    return lo + torch.rand(shape, generator=generator, device=device, dtype=dtype) * (hi - lo)


def interpolate(
    images: torch.Tensor,
    coords: torch.Tensor,
    *,
    bounds=(-1.0, 1.0),
    align_corners: bool = False,
    mode: str = "bilinear",
) -> torch.Tensor:
    """Look up images at continuous coordinates (linear interpolation, border padding).

    Args:
        images: ``(B, C, H, W)`` or ``(B, C, D, H, W)`` sampled on the grid convention above.
        coords: ``(P, n)`` shared or ``(B, P, n)`` per sample, ``n`` = number of spatial axes.
    Returns:
        ``(B, P, C)`` interpolated values; at grid points it returns the pixel values exactly.
    """
    n = images.dim() - 2
    if n not in (2, 3):
        raise ValueError(f"interpolate supports 2-D and 3-D images, got shape {tuple(images.shape)}")
    if coords.shape[-1] != n or coords.dim() not in (2, 3):
        raise ValueError(f"coords must have shape (P, {n}) or (B, P, {n}), got {tuple(coords.shape)}")
    B = images.shape[0]
    if coords.dim() == 2:
        coords = coords.unsqueeze(0).expand(B, -1, -1)
    pairs = normalize_bounds(bounds, n)
    lo = coords.new_tensor([p[0] for p in pairs])
    hi = coords.new_tensor([p[1] for p in pairs])
    g = (2 * (coords - lo) / (hi - lo) - 1).flip(-1)  # grid_sample wants (x=last axis, y, z)
    g = g.reshape(B, -1, *([1] * (n - 1)), n)
    out = F.grid_sample(images, g.to(images.dtype), mode=mode, padding_mode="border", align_corners=align_corners)
    return rearrange(out.reshape(B, images.shape[1], -1), "b c p -> b p c")
