"""Mesh extraction from signed distance functions: dense and coarse-to-fine marching cubes.

An ``sdf`` here is any callable mapping a ``(N, 3)`` float tensor of points to ``(N,)`` or
``(N, 1)`` signed distances (negative inside): an analytic shape from :mod:`inr_gon.shapes`, a
trained network, a lambda.

Grid convention (shared by every function here). ``resolution`` is the number of samples per
axis, ``N``. Axis ``a`` is sampled at ``torch.linspace(lo[a], hi[a], N)`` (float64, then cast to
``dtype``), so the spacing is exactly ``(hi - lo) / (N - 1)`` and the last sample is ``hi``. Volume
index ``(i, j, k)`` holds the value at ``(x_i, y_j, z_k)`` (``indexing="ij"``: array axes 0, 1, 2
are x, y, z). A marching-cubes vertex at fractional index ``u`` lies at ``lo + u * spacing``.
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Callable, Sequence

import numpy as np
import torch
import trimesh
from skimage import measure

__all__ = ["extract_mesh", "sdf_grid", "sdf_slice", "grid_axes"]

SDFCallable = Callable[[torch.Tensor], torch.Tensor]
Bounds = tuple[float, float] | tuple[Sequence[float], Sequence[float]]

_CORNERS = torch.tensor([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], dtype=torch.long)
_CHILD_POINTS = torch.tensor([[i, j, k] for i in (0, 1, 2) for j in (0, 1, 2) for k in (0, 1, 2)], dtype=torch.long)


def _bounds(bounds: Bounds) -> tuple[np.ndarray, np.ndarray]:
    """``(lo, hi)`` as two float64 arrays of shape (3,), from scalars or 3-sequences."""
    if len(bounds) != 2:
        raise ValueError(f"bounds must be (lo, hi), got {bounds!r}")
    lo = np.broadcast_to(np.asarray(bounds[0], dtype=np.float64), (3,)).copy()
    hi = np.broadcast_to(np.asarray(bounds[1], dtype=np.float64), (3,)).copy()
    if not np.all(hi > lo):
        raise ValueError(f"bounds must satisfy lo < hi on every axis, got lo={lo}, hi={hi}")
    return lo, hi


def _check_resolution(resolution: int) -> int:
    if not isinstance(resolution, (int, np.integer)) or resolution < 2:
        raise ValueError(f"resolution must be an int >= 2 (samples per axis), got {resolution!r}")
    return int(resolution)


def _default_device(sdf: SDFCallable, device: torch.device | str | None) -> torch.device:
    """``device`` if given, else the device of ``sdf``'s first parameter (nn.Module), else CPU."""
    if device is not None:
        return torch.device(device)
    if isinstance(sdf, torch.nn.Module):
        for p in sdf.parameters():
            return p.device
    return torch.device("cpu")


def grid_axes(
    resolution: int,
    bounds: Bounds = (-1.0, 1.0),
    *,
    length: int | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> list[torch.Tensor]:
    """Sample coordinates of the three axes, each ``(length or resolution,)``.

    The first ``resolution`` entries are ``torch.linspace(lo, hi, resolution)`` (in float64, cast to
    ``dtype``); entries past that (when ``length > resolution``) continue at the same spacing
    beyond ``hi``.
    """
    resolution = _check_resolution(resolution)
    lo, hi = _bounds(bounds)
    length = resolution if length is None else int(length)
    axes = []
    for a in range(3):
        axis = torch.linspace(float(lo[a]), float(hi[a]), resolution, dtype=torch.float64)
        if length > resolution:
            step = (hi[a] - lo[a]) / (resolution - 1)
            extra = lo[a] + step * torch.arange(resolution, length, dtype=torch.float64)
            axis = torch.cat([axis, extra])
        axes.append(axis[:length].to(device=device, dtype=dtype))
    return axes


def _evaluate_points(sdf: SDFCallable, points: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """Values of ``sdf`` at ``points`` ``(K, 3)``, in chunks of ``chunk_size``: ``(K,)`` float32."""
    out = torch.empty(points.shape[0], dtype=torch.float32, device=points.device)
    for start in range(0, points.shape[0], chunk_size):
        chunk = points[start : start + chunk_size]
        values = sdf(chunk)
        if not isinstance(values, torch.Tensor):
            raise TypeError(f"sdf must return a torch.Tensor, got {type(values).__name__}")
        if values.numel() != chunk.shape[0]:
            raise ValueError(
                f"sdf must map (N, 3) points to (N,) or (N, 1) values; "
                f"got shape {tuple(values.shape)} for N={chunk.shape[0]}"
            )
        out[start : start + chunk.shape[0]] = values.reshape(-1).to(device=out.device, dtype=torch.float32)
    if torch.isnan(out).any():
        raise ValueError("sdf returned NaN values")
    return out


def _evaluate(sdf: SDFCallable, index: torch.Tensor, axes: list[torch.Tensor], chunk_size: int) -> torch.Tensor:
    """Values of ``sdf`` at grid indices ``index`` ``(K, 3)`` (long), chunked: ``(K,)`` float32."""
    out = torch.empty(index.shape[0], dtype=torch.float32, device=index.device)
    for start in range(0, index.shape[0], chunk_size):
        idx = index[start : start + chunk_size]
        points = torch.stack([axes[0][idx[:, 0]], axes[1][idx[:, 1]], axes[2][idx[:, 2]]], dim=-1)
        out[start : start + idx.shape[0]] = _evaluate_points(sdf, points, chunk_size)
    return out


def _unravel(linear: torch.Tensor, size: int) -> torch.Tensor:
    """Linear indices of a ``size^3`` C-ordered volume ``(K,)`` -> ``(K, 3)`` long indices."""
    i = torch.div(linear, size * size, rounding_mode="floor")
    rest = linear - i * size * size
    j = torch.div(rest, size, rounding_mode="floor")
    return torch.stack([i, j, rest - j * size], dim=-1)


def sdf_grid(
    sdf: SDFCallable,
    resolution: int = 256,
    bounds: Bounds = (-1.0, 1.0),
    *,
    chunk_size: int = 2**18,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Dense volume of ``sdf`` on the grid described in the module docstring.

    Evaluates ``resolution^3`` points in chunks of ``chunk_size`` under ``torch.no_grad()`` on
    ``device`` (default: the sdf module's device, else CPU), with coordinates in ``dtype``.
    Returns a float32 tensor of shape ``(resolution, resolution, resolution)`` on ``device``,
    indexed ``[x, y, z]``.
    """
    resolution = _check_resolution(resolution)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    device = _default_device(sdf, device)
    axes = grid_axes(resolution, bounds, dtype=dtype, device=device)
    total = resolution**3
    volume = torch.empty(total, dtype=torch.float32, device=device)
    plane = resolution * resolution
    planes = max(1, chunk_size // plane)  # x planes per slab: a slab holds about chunk_size points
    with torch.no_grad():
        for i0 in range(0, resolution, planes):
            i1 = min(i0 + planes, resolution)
            points = torch.stack(torch.meshgrid(axes[0][i0:i1], axes[1], axes[2], indexing="ij"), dim=-1).reshape(-1, 3)
            volume[i0 * plane : i1 * plane] = _evaluate_points(sdf, points, chunk_size)
    return volume.reshape(resolution, resolution, resolution)


def sdf_slice(
    sdf: SDFCallable,
    resolution: int = 256,
    bounds: Bounds = (-1.0, 1.0),
    *,
    axis: int | str = "z",
    value: float = 0.0,
    chunk_size: int = 2**18,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``sdf`` on the plane ``{axis} = value``, as a ``(resolution, resolution)`` float32 tensor.

    The two remaining axes, in increasing order (for ``axis="z"``: x then y), are sampled like the
    mesh grid, so entry ``[i, j]`` is the value at ``(u_i, v_j)``. Returned on ``device``;
    turning it into an image (colour map, PNG) is for the caller.
    """
    names = {"x": 0, "y": 1, "z": 2}
    a = names.get(axis, axis) if isinstance(axis, str) else int(axis)
    if a not in (0, 1, 2):
        raise ValueError(f"axis must be 0, 1, 2 or 'x', 'y', 'z', got {axis!r}")
    resolution = _check_resolution(resolution)
    device = _default_device(sdf, device)
    axes = grid_axes(resolution, bounds, dtype=dtype, device=device)
    u, v = [axes[b] for b in range(3) if b != a]
    uu, vv = torch.meshgrid(u, v, indexing="ij")
    columns = [None, None, None]
    others = [b for b in range(3) if b != a]
    columns[others[0]], columns[others[1]] = uu.reshape(-1), vv.reshape(-1)
    columns[a] = torch.full_like(columns[others[0]], float(value))
    points = torch.stack(columns, dim=-1)
    with torch.no_grad():
        return _evaluate_points(sdf, points, chunk_size).reshape(resolution, resolution)


def _coarse_to_fine_volume(
    sdf: SDFCallable,
    resolution: int,
    axes_bounds: Bounds,
    *,
    chunk_size: int,
    level: float,
    lipschitz: float,
    coarse_stride: int | None,
    dtype: torch.dtype,
    device: torch.device,
) -> tuple[torch.Tensor, int, list[dict]]:
    """Volume ``(resolution,)*3`` (values minus ``level``) exact wherever marching cubes needs it.

    Octree refinement on a grid padded to ``M = S * ceil((resolution - 1) / S) + 1`` points per
    axis, ``S`` a power of two (the coarse stride). Invariant: every *active* cell of stride ``s``
    (a cube of ``s^3`` fine cells) has its 8 corners evaluated. A cell is refined (split into 8 active
    cells of stride ``s / 2``, whose 27 corner points get evaluated) when its corners differ in
    sign or ``min |value| <= lipschitz * half_diagonal``: any zero inside the cell is within half a
    diagonal of some corner, so otherwise the cell has no zero and one sign throughout. Points
    never evaluated take the mean corner value of the unrefined cell containing them (same sign as
    the truth). Every fine cell the surface touches is therefore active at stride 1, with exact
    corners, so marching cubes gives the dense result.

    Returns the cropped volume (float32, on ``device``), the number of sdf evaluations and a list
    of per-level statistics.
    """
    cells = resolution - 1
    if coarse_stride is None:
        coarse_stride = 1
        while cells / (coarse_stride * 2) >= 16:  # coarse grid of at least 16 cells per axis
            coarse_stride *= 2
    if coarse_stride < 1 or coarse_stride & (coarse_stride - 1):
        raise ValueError(f"coarse_stride must be a power of two >= 1, got {coarse_stride}")
    size = coarse_stride * math.ceil(cells / coarse_stride) + 1  # padded points per axis
    axes = grid_axes(resolution, axes_bounds, length=size, dtype=dtype, device=device)
    lo, hi = _bounds(axes_bounds)
    fine_diagonal = float(np.linalg.norm((hi - lo) / cells))

    volume = torch.full((size**3,), float("nan"), dtype=torch.float32, device=device)
    corners = _CORNERS.to(device)
    child_points = _CHILD_POINTS.to(device)

    def linear(index: torch.Tensor) -> torch.Tensor:
        return (index[..., 0] * size + index[..., 1]) * size + index[..., 2]

    def evaluate_new(index: torch.Tensor) -> int:
        lin = torch.unique(linear(index).reshape(-1))
        lin = lin[torch.isnan(volume[lin])]
        if lin.numel():
            volume[lin] = _evaluate(sdf, _unravel(lin, size), axes, chunk_size) - level
        return int(lin.numel())

    # coarsest level: all cells of stride S are active
    stride = coarse_stride
    count = (size - 1) // stride
    evaluations = 0
    with torch.no_grad():
        ar = torch.arange(count + 1, device=device) * stride
        pts = torch.stack(torch.meshgrid(ar, ar, ar, indexing="ij"), dim=-1).reshape(-1, 3)
        evaluations += evaluate_new(pts)
        ar = torch.arange(count, device=device)
        active = torch.stack(torch.meshgrid(ar, ar, ar, indexing="ij"), dim=-1).reshape(-1, 3)

        fills: list[tuple[int, torch.Tensor]] = []
        levels: list[dict] = []
        while stride > 1:
            count = (size - 1) // stride
            values = volume[linear((active[:, None, :] + corners) * stride)]  # (K, 8)
            margin = lipschitz * 0.5 * stride * fine_diagonal
            mixed = (values > 0).any(dim=1) & (values <= 0).any(dim=1)
            refine = mixed | (values.abs().min(dim=1).values <= margin)
            keep = ~refine
            # fill grid of this level: mean corner value of unrefined active cells, NaN elsewhere
            fill = torch.full((count**3,), float("nan"), dtype=torch.float32, device=device)
            cell_lin = (active[keep, 0] * count + active[keep, 1]) * count + active[keep, 2]
            fill[cell_lin] = values[keep].mean(dim=1)
            fills.append((stride, fill))
            # children of refined cells at stride / 2, and their 27 corner points
            parents = active[refine] * 2
            new = 0
            step = max(1, chunk_size // child_points.shape[0])  # bounded index memory per batch
            for p0 in range(0, parents.shape[0], step):
                # duplicates within a batch: unique; across batches: already evaluated (not NaN)
                new += evaluate_new((parents[p0 : p0 + step, None, :] + child_points) * (stride // 2))
            evaluations += new
            levels.append(
                {
                    "stride": stride,
                    "active_cells": int(active.shape[0]),
                    "refined_cells": int(refine.sum()),
                    "new_evaluations": new,
                }
            )
            active = (parents[:, None, :] + corners).reshape(-1, 3)
            stride //= 2

        # Fill never-evaluated points from the unrefined cell containing them. Along the chain of
        # cells containing a point (cell index floor(i / s), clamped to the last cell) at most one
        # level has an unrefined active cell, so the level fills are first pushed down onto the
        # finest fill grid (cheap: coarse grids), then upsampled once, slab by slab.
        # The result is written into the front of the padded volume's own storage, slab by slab
        # in increasing x (a slab's destination ends before the next slab's source starts, and
        # each slab is read before it is written), so no second resolution^3 volume is allocated:
        # peak memory is the padded volume, the 1/8-resolution fill grids and one slab.
        padded = volume.reshape(size, size, size)
        merged, cell = None, None
        if fills:
            finest = fills[-1][0]
            for s, fill in fills:
                count = (size - 1) // s
                grid = fill.reshape(count, count, count)
                if merged is None:
                    merged = grid
                else:
                    merged = merged.repeat_interleave(2, 0).repeat_interleave(2, 1).repeat_interleave(2, 2)
                    merged = torch.where(torch.isnan(merged), grid, merged)
            del fills, fill, grid
            count = (size - 1) // finest
            cell = torch.clamp(
                torch.div(torch.arange(resolution, device=device), finest, rounding_mode="floor"),
                max=count - 1,
            )
        plane = resolution * resolution
        slab = max(1, chunk_size // plane)
        for x0 in range(0, resolution, slab):
            x1 = min(x0 + slab, resolution)
            values = padded[x0:x1, :resolution, :resolution]
            if merged is not None:
                up = merged[cell[x0:x1, None, None], cell[None, :, None], cell[None, None, :]]
                values = torch.where(torch.isnan(values), up, values)
            else:
                values = values.clone()
            if torch.isnan(values).any():  # pragma: no cover - would be a bug in the refinement
                raise RuntimeError("coarse-to-fine extraction left unfilled grid points")
            volume[x0 * plane : x1 * plane] = values.reshape(-1)
        del padded, merged
        volume = volume[: resolution**3].view(resolution, resolution, resolution)
    return volume, evaluations, levels


def extract_mesh(
    sdf: SDFCallable,
    resolution: int = 256,
    bounds: Bounds = (-1.0, 1.0),
    *,
    method: str = "dense",
    chunk_size: int = 2**18,
    level: float = 0.0,
    lipschitz: float = 1.0,
    coarse_stride: int | None = None,
    allow_empty: bool = True,
    return_stats: bool = False,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> trimesh.Trimesh | tuple[trimesh.Trimesh, dict]:
    """Triangle mesh of the ``level`` set of ``sdf`` inside the box ``bounds``, world coordinates.

    ``sdf`` maps ``(N, 3)`` points to ``(N,)`` or ``(N, 1)`` values (negative inside). It is
    evaluated on the grid of the module docstring (``resolution`` samples per axis) in chunks of
    ``chunk_size`` points, under ``torch.no_grad()``, on ``device`` (default: the device of the
    sdf's parameters if it is an ``nn.Module``, else CPU); then
    ``skimage.measure.marching_cubes(method="lewiner")`` runs on the CPU.

    ``method="dense"`` evaluates every grid point. ``method="coarse_to_fine"`` starts on a coarse
    grid (stride ``coarse_stride``, a power of two; default: the largest giving >= 16 cells per
    axis) and refines, one octree level at a time, only cells where the surface may pass: corners
    of mixed sign or ``min |sdf - level| <= lipschitz * cell half-diagonal``. For a
    ``lipschitz``-Lipschitz sdf (exact SDFs and everything in :mod:`inr_gon.shapes`: 1; trained
    networks: estimate it, or raise it for safety) the mesh equals the dense one. Unevaluated
    points get a value of the right sign. It may evaluate a few points just past ``hi`` (the
    grid is padded to a multiple of the stride).

    Empty result: when the values never cross ``level`` inside ``bounds`` the function warns
    (``UserWarning``) and returns an empty ``trimesh.Trimesh()``, or raises ``ValueError`` if
    ``allow_empty=False``.

    Returns the mesh (vertices ``(V, 3)`` float64 in world coordinates, faces ``(F, 3)``, outward
    winding for a negative-inside sdf, vertex normals from marching cubes), and with
    ``return_stats=True`` also a dict: ``evaluations`` (sdf points evaluated), ``seconds`` (wall
    time of evaluation and marching cubes), ``method``, ``resolution``, ``dense_evaluations``
    (``resolution^3``) and, for coarse-to-fine, ``levels`` (per-level counts).
    """
    resolution = _check_resolution(resolution)
    if method not in ("dense", "coarse_to_fine"):
        raise ValueError(f"method must be 'dense' or 'coarse_to_fine', got {method!r}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if not lipschitz > 0:
        raise ValueError(f"lipschitz must be > 0, got {lipschitz}")
    lo, hi = _bounds(bounds)
    device = _default_device(sdf, device)
    start = time.perf_counter()
    stats: dict = {"method": method, "resolution": resolution, "dense_evaluations": resolution**3}
    if method == "dense":
        volume = sdf_grid(sdf, resolution, bounds, chunk_size=chunk_size, dtype=dtype, device=device)
        if level != 0.0:
            volume.sub_(level)
        stats["evaluations"] = resolution**3
    else:
        volume, evaluations, levels = _coarse_to_fine_volume(
            sdf,
            resolution,
            bounds,
            chunk_size=chunk_size,
            level=level,
            lipschitz=lipschitz,
            coarse_stride=coarse_stride,
            dtype=dtype,
            device=device,
        )
        stats["evaluations"] = evaluations
        stats["levels"] = levels
    values = volume.cpu().numpy()
    del volume
    vmin, vmax = float(values.min()), float(values.max())
    faces = np.zeros((0, 3), dtype=np.int64)
    if vmin <= 0.0 <= vmax and vmin < vmax:
        spacing = tuple(float(v) for v in (hi - lo) / (resolution - 1))
        verts, faces, normals, _ = measure.marching_cubes(values, level=0.0, spacing=spacing, method="lewiner")
    if len(faces) == 0:
        message = (
            f"extract_mesh: sdf does not cross level {level} inside bounds "
            f"(values in [{vmin + level:.4g}, {vmax + level:.4g}]); empty mesh"
        )
        if not allow_empty:
            raise ValueError(message)
        warnings.warn(message, UserWarning, stacklevel=2)
        mesh = trimesh.Trimesh()
    else:
        verts = verts.astype(np.float64) + lo
        # skimage orients normals down the gradient; an SDF grows outwards, so flip them
        mesh = trimesh.Trimesh(vertices=verts, faces=faces, vertex_normals=-normals, process=False)
    stats["seconds"] = time.perf_counter() - start
    return (mesh, stats) if return_stats else mesh
