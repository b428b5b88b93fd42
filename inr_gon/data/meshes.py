"""Mesh files: loading, normalisation, signed-distance sampling, caching.

This is the file I/O layer for SDF shapes given as meshes; the mathematical core
(:mod:`inr_gon.geometry.shapes`, :mod:`inr_gon.geometry.mesh`, :mod:`inr_gon.eval.shape`) never
imports it. The reader of DeepSDF sample folders (:class:`DeepSDFRecord`, :func:`read_deepsdf`) is
in :mod:`.deepsdf` and re-exported here.

Conventions: points are ``(N, 3)``, signed distances ``(N,)``, negative inside. Normalisation
follows DeepSDF: ``normalised = (original + offset) * scale``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import trimesh

from .deepsdf import _NPZ_ERRORS, DeepSDFRecord, read_deepsdf
from .errors import DataError, file_sha256

__all__ = [
    "DataError",
    "SdfSamples",
    "DeepSDFRecord",
    "load_mesh",
    "normalize_mesh",
    "signed_distance",
    "sample_sdf",
    "sample_sdf_cached",
    "read_deepsdf",
]

_CACHE_VERSION = 1


def load_mesh(path: str | os.PathLike) -> trimesh.Trimesh:
    """Read a triangle mesh with ``trimesh.load(path, force="mesh")`` (OBJ, PLY, STL, OFF, GLB).

    Scenes are concatenated into one mesh. Raises :class:`DataError` (a ``ValueError``) naming the
    file when it is missing, unreadable or has no triangles.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such mesh file")
    try:
        mesh = trimesh.load(path, force="mesh")
    except Exception as err:  # noqa: BLE001 - trimesh's many parsers raise almost anything on bad input
        detail = " ".join(str(err).split())[:200]
        raise DataError(f"{path}: not a readable mesh ({type(err).__name__}: {detail})") from err
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise DataError(f"{path}: not a triangle mesh (no faces read)")
    return mesh


def normalize_mesh(
    mesh: trimesh.Trimesh, *, mode: str = "sphere", buffer: float = 1.03
) -> tuple[trimesh.Trimesh, np.ndarray, float]:
    """Centre and scale ``mesh`` DeepSDF-style; returns ``(normalised copy, offset (3,), scale)``.

    ``offset = -(bounding-box centre)``; ``mode="sphere"``: the farthest vertex lands at radius
    ``1 / buffer`` (DeepSDF's unit sphere with its 1.03 margin); ``mode="cube"``: the largest half
    extent becomes ``1 / buffer`` (inside ``[-1, 1]^3``).
    ``normalised = (original + offset) * scale``, so ``original = normalised / scale - offset``.
    The input is not modified.
    """
    if mode not in ("sphere", "cube"):
        raise ValueError(f"mode must be 'sphere' or 'cube', got {mode!r}")
    if not buffer > 0:
        raise ValueError(f"buffer must be > 0, got {buffer}")
    if len(mesh.vertices) == 0:
        raise ValueError("cannot normalise an empty mesh")
    lo, hi = mesh.bounds
    offset = -(lo + hi) / 2.0
    centred = mesh.vertices + offset
    size = np.linalg.norm(centred, axis=1).max() if mode == "sphere" else np.abs(centred).max()
    if not size > 0:
        raise ValueError("cannot normalise a mesh whose vertices all coincide")
    scale = float(1.0 / (size * buffer))
    out = mesh.copy()
    out.vertices = centred * scale
    return out, offset.astype(np.float64), scale


def signed_distance(
    mesh: trimesh.Trimesh,
    points: np.ndarray | torch.Tensor,
    *,
    sign_method: str = "auto",
    chunk_size: int = 2**17,
) -> np.ndarray:
    """Signed distances ``(N,)`` float64 from ``points`` ``(N, 3)`` to ``mesh``, negative inside.

    With libigl: ``igl.signed_distance`` in chunks of ``chunk_size`` points (memory is bounded by
    the chunk), sign from the angle-weighted pseudonormal (``sign_method="pseudonormal"``, exact
    for closed meshes) or ``igl.fast_winding_number`` > 0.5 over exact unsigned distances
    (``"winding_number"``, robust to holes); ``"auto"`` picks pseudonormal for watertight meshes
    and winding number otherwise.
    Without libigl: ``trimesh.proximity.signed_distance`` (far slower) with a warning.
    A mesh that is not watertight triggers a warning: signs may be wrong near holes.
    """
    if sign_method not in ("auto", "pseudonormal", "winding_number"):
        raise ValueError(f"sign_method must be 'auto', 'pseudonormal' or 'winding_number', got {sign_method!r}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if isinstance(points, torch.Tensor):
        points = points.detach().cpu().numpy()
    points = np.ascontiguousarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points must have shape (N, 3), got {points.shape}")
    watertight = mesh.is_watertight
    if not watertight:
        warnings.warn(
            "mesh is not watertight: signed distances may have wrong signs",
            UserWarning,
            stacklevel=2,
        )
    try:
        import igl
    except ImportError:
        warnings.warn(
            "libigl (pip install libigl) is not installed: falling back to trimesh, which is very slow",
            UserWarning,
            stacklevel=2,
        )
        out = np.empty(len(points))
        for start in range(0, len(points), chunk_size):
            # trimesh's convention is positive inside
            out[start : start + chunk_size] = -trimesh.proximity.signed_distance(
                mesh, points[start : start + chunk_size]
            )
        return out
    if sign_method == "auto":
        sign_method = "pseudonormal" if watertight else "winding_number"
    # igl's FAST_WINDING_NUMBER sign type also approximates the distance itself, so
    # winding-number signs are taken from igl.fast_winding_number over exact unsigned distances
    pseudo = sign_method == "pseudonormal"
    sign_type = igl.SIGNED_DISTANCE_TYPE_PSEUDONORMAL if pseudo else igl.SIGNED_DISTANCE_TYPE_UNSIGNED
    vertices = np.ascontiguousarray(mesh.vertices, dtype=np.float64)
    faces = np.ascontiguousarray(mesh.faces, dtype=np.int64)
    out = np.empty(len(points))
    for start in range(0, len(points), chunk_size):
        chunk = points[start : start + chunk_size]
        result = igl.signed_distance(chunk, vertices, faces, sign_type=sign_type)
        dist = np.asarray(result[0] if isinstance(result, tuple) else result)
        if not pseudo:
            inside = np.asarray(igl.fast_winding_number(vertices, faces, chunk)) > 0.5
            dist = np.where(inside, -np.abs(dist), np.abs(dist))
        out[start : start + chunk_size] = dist
    return out


@dataclasses.dataclass
class SdfSamples:
    """Signed-distance samples of one mesh.

    ``points`` ``(N, 3)`` float32 and ``sdf`` ``(N,)`` float32 tensors (CPU), in the coordinates the
    mesh was sampled in; ``offset`` ``(3,)`` and ``scale`` map the original mesh there
    (``(original + offset) * scale``; zeros and 1 when it was not normalised); ``num_uniform``: the
    first ``num_uniform`` points are uniform in the box, the rest near the surface.
    """

    points: torch.Tensor
    sdf: torch.Tensor
    offset: np.ndarray
    scale: float
    num_uniform: int


def _box(mesh: trimesh.Trimesh, bounds, padding: float) -> tuple[np.ndarray, np.ndarray]:
    if bounds is not None:
        lo = np.broadcast_to(np.asarray(bounds[0], dtype=np.float64), (3,))
        hi = np.broadcast_to(np.asarray(bounds[1], dtype=np.float64), (3,))
    else:
        centre = mesh.bounds.mean(axis=0)
        half = (mesh.bounds[1] - mesh.bounds[0]).max() / 2 * (1.0 + padding)
        lo, hi = centre - half, centre + half
    if not np.all(hi > lo):
        raise ValueError(f"bounds must satisfy lo < hi on every axis, got lo={lo}, hi={hi}")
    return lo, hi


def sample_sdf(
    mesh: trimesh.Trimesh,
    *,
    num_uniform: int = 25_000,
    num_surface: int = 250_000,
    sigmas: Sequence[float] = (0.005, 0.0005),
    bounds=None,
    padding: float = 0.1,
    seed: int = 0,
    sign_method: str = "auto",
    chunk_size: int = 2**17,
) -> SdfSamples:
    """DeepSDF-style signed-distance samples of ``mesh``.

    ``num_uniform`` points uniform in ``bounds`` (``(lo, hi)``, scalars or 3-sequences; default: the
    cube around the mesh's bounding box, padded by ``padding`` times its half size), then
    ``num_surface`` near-surface points: area-uniform surface samples, split evenly over ``sigmas``,
    each moved by isotropic Gaussian noise with that standard deviation (mesh units; the defaults
    suit a mesh normalised to the unit sphere). Signed distances by :func:`signed_distance`
    (libigl, chunks of ``chunk_size``). Deterministic for a given ``seed``.

    Returns :class:`SdfSamples` with ``points`` ``(num_uniform + num_surface, 3)`` and ``sdf``
    ``(num_uniform + num_surface,)``, float32 CPU tensors.
    """
    if num_uniform < 0 or num_surface < 0 or num_uniform + num_surface == 0:
        raise ValueError(f"need num_uniform, num_surface >= 0 and some points, got {num_uniform}, {num_surface}")
    sigmas = [float(s) for s in sigmas]
    if num_surface and (not sigmas or min(sigmas) < 0):
        raise ValueError(f"sigmas must be a non-empty list of standard deviations >= 0, got {sigmas}")
    if len(mesh.faces) == 0:
        raise ValueError("cannot sample an empty mesh")
    rng = np.random.default_rng(seed)
    lo, hi = _box(mesh, bounds, padding)
    parts = [rng.uniform(lo, hi, size=(num_uniform, 3))]
    if num_surface:
        surface, _ = trimesh.sample.sample_surface(mesh, num_surface, seed=rng)
        counts = np.diff(np.linspace(0, num_surface, len(sigmas) + 1).round().astype(int))
        std = np.repeat(np.asarray(sigmas), counts)[:, None]
        parts.append(np.asarray(surface) + rng.normal(size=(num_surface, 3)) * std)
    points = np.concatenate(parts, axis=0)
    sdf = signed_distance(mesh, points, sign_method=sign_method, chunk_size=chunk_size)
    return SdfSamples(
        points=torch.from_numpy(points.astype(np.float32)),
        sdf=torch.from_numpy(sdf.astype(np.float32)),
        offset=np.zeros(3),
        scale=1.0,
        num_uniform=num_uniform,
    )


def sample_sdf_cached(
    path: str | os.PathLike,
    cache_dir: str | os.PathLike,
    *,
    normalize: str | None = "sphere",
    num_uniform: int = 25_000,
    num_surface: int = 250_000,
    sigmas: Sequence[float] = (0.005, 0.0005),
    bounds=None,
    padding: float = 0.1,
    seed: int = 0,
    sign_method: str = "auto",
    chunk_size: int = 2**17,
) -> SdfSamples:
    """:func:`sample_sdf` of the mesh file ``path``, cached as ``.npz`` in ``cache_dir``.

    The mesh is loaded with :func:`load_mesh` and, unless ``normalize=None``, normalised with
    :func:`normalize_mesh` (``mode=normalize``) first; the returned offset/scale say how. The
    cache key is the SHA-256 of the file's bytes plus every sampling parameter, so an edited file
    or a new parameter gives a new entry; entries are written to a temporary file and moved into
    place with ``os.replace`` (safe with concurrent writers). A corrupt entry is recomputed.
    """
    path = Path(path)
    cache_dir = Path(cache_dir)
    if not path.is_file():
        raise DataError(f"{path}: no such mesh file")
    params = {
        "version": _CACHE_VERSION,
        "normalize": normalize,
        "num_uniform": num_uniform,
        "num_surface": num_surface,
        "sigmas": [float(s) for s in sigmas],
        "padding": padding,
        "bounds": None if bounds is None else np.asarray(bounds, dtype=np.float64).tolist(),
        "seed": seed,
        "sign_method": sign_method,
    }
    key = hashlib.sha256((file_sha256(path) + json.dumps(params, sort_keys=True)).encode()).hexdigest()[:24]
    entry = cache_dir / f"{path.stem}-{key}.npz"
    if entry.is_file():
        try:
            with np.load(entry, allow_pickle=False) as data:
                return SdfSamples(
                    points=torch.from_numpy(data["points"]),
                    sdf=torch.from_numpy(data["sdf"]),
                    offset=data["offset"],
                    scale=float(data["scale"]),
                    num_uniform=int(data["num_uniform"]),
                )
        except _NPZ_ERRORS as err:
            warnings.warn(f"{entry}: unreadable cache entry ({err}); recomputing", UserWarning, stacklevel=2)
    mesh = load_mesh(path)
    offset, scale = np.zeros(3), 1.0
    if normalize is not None:
        mesh, offset, scale = normalize_mesh(mesh, mode=normalize)
    samples = sample_sdf(
        mesh,
        num_uniform=num_uniform,
        num_surface=num_surface,
        sigmas=sigmas,
        bounds=bounds,
        padding=padding,
        seed=seed,
        sign_method=sign_method,
        chunk_size=chunk_size,
    )
    samples.offset, samples.scale = offset, scale
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=f".{entry.stem}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(
                fh,
                points=samples.points.numpy(),
                sdf=samples.sdf.numpy(),
                offset=offset,
                scale=np.float64(scale),
                num_uniform=np.int64(samples.num_uniform),
            )
        os.replace(tmp, entry)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return samples
