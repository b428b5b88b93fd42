"""Shape metrics: chamfer distance, normal consistency, volumetric IoU and the sign IoU of sampled fields.

Meshes are ``trimesh.Trimesh``; point sets are ``(N, 3)`` arrays or tensors; an "sdf" is any
callable mapping a ``(N, 3)`` float32 tensor to ``(N,)`` or ``(N, 1)`` signed distances (negative
inside). Nearest neighbours use ``scipy.spatial.cKDTree``. Everything is seeded, so a metric
called twice with the same arguments returns the same number.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
import trimesh
from scipy.spatial import cKDTree

__all__ = [
    "sample_surface",
    "chamfer_distance",
    "normal_consistency",
    "volumetric_iou",
    "mesh_contains",
    "nearest_own_truth",
    "sign_iou",
    "f_score",
]

SDFCallable = Callable[[torch.Tensor], torch.Tensor]


def _check_mesh(mesh: trimesh.Trimesh, name: str) -> trimesh.Trimesh:
    if not isinstance(mesh, trimesh.Trimesh):
        raise TypeError(f"{name} must be a trimesh.Trimesh, got {type(mesh).__name__}")
    if len(mesh.faces) == 0:
        raise ValueError(f"{name} is an empty mesh (no faces)")
    return mesh


def sample_surface(mesh: trimesh.Trimesh, num_samples: int = 30_000, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Area-uniform surface samples: points ``(num_samples, 3)``, face normals ``(num_samples, 3)``.

    Uses ``trimesh.sample.sample_surface(mesh, num_samples, seed=seed)``; float64 arrays.
    """
    mesh = _check_mesh(mesh, "mesh")
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    points, face_index = trimesh.sample.sample_surface(mesh, num_samples, seed=seed)
    return np.asarray(points, dtype=np.float64), np.asarray(mesh.face_normals[face_index], dtype=np.float64)


def _points(x: trimesh.Trimesh | np.ndarray | torch.Tensor, num_samples: int, seed: int, name: str) -> np.ndarray:
    """``(N, 3)`` float64 points: surface samples of a mesh, or the given points."""
    if isinstance(x, trimesh.Trimesh):
        return sample_surface(x, num_samples, seed=seed)[0]
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 3 or len(arr) == 0:
        raise ValueError(f"{name} must be a mesh or a non-empty (N, 3) point set, got shape {arr.shape}")
    return arr


def chamfer_distance(
    a: trimesh.Trimesh | np.ndarray | torch.Tensor,
    b: trimesh.Trimesh | np.ndarray | torch.Tensor,
    *,
    num_samples: int = 30_000,
    seed: int = 0,
) -> float:
    """Chamfer distance as in DeepSDF: mean squared nearest-neighbour distance a->b plus b->a.

    Meshes are replaced by ``num_samples`` surface samples (``a`` with ``seed``, ``b`` with
    ``seed + 1``); point sets ``(N, 3)`` are used as given. Not divided by two: two concentric
    spheres of radii r1, r2 give about ``2 (r1 - r2)^2``. Units are squared lengths.
    """
    pa = _points(a, num_samples, seed, "a")
    pb = _points(b, num_samples, seed + 1, "b")
    d_ab, _ = cKDTree(pb).query(pa)
    d_ba, _ = cKDTree(pa).query(pb)
    return float(np.mean(d_ab**2) + np.mean(d_ba**2))


def normal_consistency(a: trimesh.Trimesh, b: trimesh.Trimesh, *, num_samples: int = 30_000, seed: int = 0) -> float:
    """Mean ``|cos|`` between the normals of nearest surface samples, averaged over both directions.

    ``num_samples`` area-uniform samples per mesh (``a`` with ``seed``, ``b`` with ``seed + 1``),
    face normals; in ``[0, 1]``, 1 for identical surfaces; insensitive to flipped orientation.
    """
    pa, na = sample_surface(a, num_samples, seed=seed)
    pb, nb = sample_surface(b, num_samples, seed=seed + 1)
    _, ia = cKDTree(pb).query(pa)
    _, ib = cKDTree(pa).query(pb)
    cos_ab = np.abs(np.sum(na * nb[ia], axis=1))
    cos_ba = np.abs(np.sum(nb * na[ib], axis=1))
    return float(0.5 * (cos_ab.mean() + cos_ba.mean()))


def mesh_contains(mesh: trimesh.Trimesh, points: np.ndarray) -> np.ndarray:
    """Inside test of ``points`` ``(N, 3)`` against ``mesh``: boolean ``(N,)``.

    Uses libigl's fast generalised winding number (``> 0.5`` is inside; robust to small holes and
    fast) when ``igl`` is installed, else ``mesh.contains`` (ray tests: correct for watertight
    meshes but far slower).
    """
    points = np.ascontiguousarray(points, dtype=np.float64)
    try:
        import igl
    except ImportError:
        return np.asarray(mesh.contains(points), dtype=bool)
    vertices = np.ascontiguousarray(mesh.vertices, dtype=np.float64)
    faces = np.ascontiguousarray(mesh.faces, dtype=np.int64)
    return np.asarray(igl.fast_winding_number(vertices, faces, points)) > 0.5


def _inside(
    shape: trimesh.Trimesh | SDFCallable,
    points: np.ndarray,
    *,
    chunk_size: int,
    device: torch.device | str | None,
    name: str,
) -> np.ndarray:
    """Boolean ``(N,)`` inside test: ``mesh.contains`` for meshes, ``sdf < 0`` for callables."""
    if isinstance(shape, trimesh.Trimesh):
        _check_mesh(shape, name)
        return mesh_contains(shape, points)
    if not callable(shape):
        raise TypeError(f"{name} must be a trimesh.Trimesh or an sdf callable, got {type(shape).__name__}")
    out = np.empty(len(points), dtype=bool)
    with torch.no_grad():
        for start in range(0, len(points), chunk_size):
            chunk = torch.as_tensor(points[start : start + chunk_size], dtype=torch.float32, device=device)
            values = shape(chunk)
            if values.numel() != chunk.shape[0]:
                raise ValueError(
                    f"{name}: sdf must map (N, 3) points to (N,) or (N, 1) values, got shape {tuple(values.shape)}"
                )
            out[start : start + chunk.shape[0]] = (values.reshape(-1) < 0).cpu().numpy()
    return out


def volumetric_iou(
    a: trimesh.Trimesh | SDFCallable,
    b: trimesh.Trimesh | SDFCallable,
    *,
    num_points: int = 100_000,
    bounds: tuple[Sequence[float], Sequence[float]] | tuple[float, float] | None = None,
    seed: int = 0,
    chunk_size: int = 2**16,
    device: torch.device | str | None = None,
) -> float:
    """Volumetric intersection over union of two solids, estimated on uniform random points.

    Each of ``a``, ``b`` is a closed ``trimesh.Trimesh`` (inside: :func:`mesh_contains`) or an sdf
    callable (inside: value < 0, evaluated in chunks on ``device``). ``num_points`` points are
    drawn uniformly in ``bounds`` (``(lo, hi)``, scalars or 3-sequences; default: the union of the
    meshes' bounding boxes, so pass ``bounds`` when a callable's solid may reach outside them;
    required when both are callables) with
    ``numpy.random.default_rng(seed)``. Returns a float in ``[0, 1]``; ``1.0`` when both are empty
    in the box. Standard error is about ``sqrt(IoU (1 - IoU) / (num_points * fraction occupied))``.
    """
    if num_points < 1:
        raise ValueError(f"num_points must be >= 1, got {num_points}")
    if bounds is None:
        boxes = [s.bounds for s in (a, b) if isinstance(s, trimesh.Trimesh) and len(s.faces)]
        if not boxes:
            raise ValueError("volumetric_iou: bounds are required when neither input is a mesh")
        lo = np.min([bx[0] for bx in boxes], axis=0)
        hi = np.max([bx[1] for bx in boxes], axis=0)
    else:
        lo = np.broadcast_to(np.asarray(bounds[0], dtype=np.float64), (3,))
        hi = np.broadcast_to(np.asarray(bounds[1], dtype=np.float64), (3,))
    if not np.all(hi > lo):
        raise ValueError(f"bounds must satisfy lo < hi on every axis, got lo={lo}, hi={hi}")
    points = np.random.default_rng(seed).uniform(lo, hi, size=(num_points, 3))
    ia = _inside(a, points, chunk_size=chunk_size, device=device, name="a")
    ib = _inside(b, points, chunk_size=chunk_size, device=device, name="b")
    union = np.count_nonzero(ia | ib)
    return 1.0 if union == 0 else float(np.count_nonzero(ia & ib) / union)


def sign_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of the insides (value < 0) of two fields sampled at the same points: ``(..., P)`` pairs
    -> ``(...,)`` float64, ``1.0`` where both are empty.

    On the points of a regular grid it is the volumetric IoU at the grid's resolution.
    """
    if a.shape != b.shape:
        raise ValueError(f"sign_iou needs two fields on the same points, got {tuple(a.shape)} and {tuple(b.shape)}")
    ia, ib = a < 0, b < 0
    inter = (ia & ib).sum(-1).double()
    union = (ia | ib).sum(-1).double()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))


def nearest_own_truth(meshes: Sequence, truths: Sequence, num_samples: int = 5000) -> list:
    """For each reconstruction ``meshes[a]``, whether it is nearer (:func:`chamfer_distance` on
    ``num_samples`` surface samples, at most 5,000) to its own ground truth ``truths[a]`` (a mesh or
    a point set) than to any other's: a list of bools, ``None`` for an empty mesh, all ``None``
    when a ground truth is missing or there are fewer than two shapes."""
    n = len(meshes)
    if n < 2 or any(t is None for t in truths):
        return [None] * n
    out = []
    for a in range(n):
        if not len(meshes[a].faces):
            out.append(None)
            continue
        d = [chamfer_distance(meshes[a], truths[b], num_samples=min(num_samples, 5000)) for b in range(n)]
        out.append(bool(np.argmin(d) == a))
    return out


def f_score(
    a: trimesh.Trimesh | np.ndarray | torch.Tensor,
    b: trimesh.Trimesh | np.ndarray | torch.Tensor,
    tau: float,
    *,
    num_samples: int = 30_000,
    seed: int = 0,
) -> float:
    """F-score at distance ``tau`` of a reconstruction ``a`` against the ground truth ``b``: the
    harmonic mean of precision (the share of ``a``'s points within ``tau`` of ``b``) and recall
    (the share of ``b``'s within ``tau`` of ``a``); meshes sampled as in :func:`chamfer_distance`.
    0 when both are 0."""
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    pa = _points(a, num_samples, seed, "a")
    pb = _points(b, num_samples, seed + 1, "b")
    precision = float(np.mean(cKDTree(pb).query(pa)[0] <= tau))
    recall = float(np.mean(cKDTree(pa).query(pb)[0] <= tau))
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
