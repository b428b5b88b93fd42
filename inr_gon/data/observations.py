"""Reading what a sensor saw: depth maps, camera intrinsics and poses, point clouds.

Each reader returns tensors for :mod:`inr_gon.geometry.observe` and raises a one-line
:class:`~inr_gon.data.errors.DataError` naming the file for anything it cannot use.

* depth: ``.npy`` (float, metres unless ``scale`` says otherwise), ``.exr`` or ``.tif`` (float),
  16-bit ``.png`` (integers; ``scale`` metres per unit, default 0.001: millimetres);
* intrinsics: JSON ``{"fx":…, "fy":…, "cx":…, "cy":…}`` or ``{"K": [[…], […], […]]}``, with
  optional ``"width"`` and ``"height"`` that must match the depth map;
* pose: JSON ``{"pose": 4x4}`` (or a bare 4x4 list): camera coordinates to the model's frame;
* point clouds: ``.ply`` (normals where the file has them), ``.xyz``/``.txt`` (``x y z`` or
  ``x y z nx ny nz`` rows), ``.npy`` ``(N, 3)`` or ``(N, 6)``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .errors import DataError, read_json

__all__ = ["read_depth", "read_intrinsics", "read_pose", "read_point_cloud"]


def read_depth(path: str | os.PathLike, *, scale: float | None = None) -> tuple[torch.Tensor, int]:
    """A depth map ``(H, W)`` float64 in metres (unseen pixels NaN) and how many pixels were
    unseen (non-finite, zero or negative depths: masked, not fatal)."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            d = np.load(path, allow_pickle=False)
        else:
            import imageio.v3 as iio

            d = iio.imread(path)
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: not a readable depth map ({str(err).splitlines()[0] if str(err) else err})") from None
    d = np.asarray(d)
    if d.ndim == 3 and d.shape[-1] == 1:
        d = d[..., 0]
    if d.ndim != 2 or d.size == 0:
        raise DataError(f"{path}: a depth map must be one channel (H, W), got shape {d.shape}")
    if np.issubdtype(d.dtype, np.integer):
        d = d.astype(np.float64) * (0.001 if scale is None else scale)
    elif np.issubdtype(d.dtype, np.floating):
        d = d.astype(np.float64) * (1.0 if scale is None else scale)
    else:
        raise DataError(f"{path}: depth values must be numbers, got {d.dtype}")
    bad = ~np.isfinite(d) | (d <= 0)
    d[bad] = np.nan
    if bad.all():
        raise DataError(f"{path}: no pixel has a positive depth")
    return torch.from_numpy(d), int(bad.sum())


def read_intrinsics(path: str | os.PathLike, *, size: tuple[int, int] | None = None) -> torch.Tensor:
    """The ``(3, 3)`` intrinsics of a JSON file; ``size`` ``(H, W)``: the depth map's, which the
    file's ``width``/``height`` (when given) must match."""
    path = Path(path)
    d = read_json(path, "intrinsics")
    try:
        if isinstance(d, dict) and "K" in d:
            K = np.asarray(d["K"], dtype=np.float64)
        elif isinstance(d, dict):
            K = np.array([[d["fx"], 0, d["cx"]], [0, d["fy"], d["cy"]], [0, 0, 1]], dtype=np.float64)
        else:
            K = np.asarray(d, dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        raise DataError(f"{path}: intrinsics need fx, fy, cx, cy (or K, a 3x3 matrix)") from None
    if K.shape != (3, 3) or not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise DataError(f"{path}: intrinsics must be a finite 3x3 matrix with fx, fy > 0")
    if size is not None and isinstance(d, dict) and ("width" in d or "height" in d):
        want = (int(d.get("height", size[0])), int(d.get("width", size[1])))
        if want != tuple(size):
            raise DataError(
                f"{path}: the intrinsics are for {want[1]}x{want[0]} images, the depth map is {size[1]}x{size[0]}"
            )
    return torch.from_numpy(K)


def read_pose(path: str | os.PathLike) -> torch.Tensor:
    """The ``(4, 4)`` camera-to-model transform of a JSON file (checked to be rigid)."""
    from ..geometry.observe import check_pose

    path = Path(path)
    d = read_json(path, "pose")
    try:
        pose = torch.tensor(d["pose"] if isinstance(d, dict) else d, dtype=torch.float64)
        return check_pose(pose)
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(f"{path}: {str(err).splitlines()[0] if str(err) else 'needs a 4x4 pose'}") from None


def read_point_cloud(path: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Points ``(N, 3)`` and normals ``(N, 3)`` (``None`` when the file has none) of a point cloud
    file; rows with NaN are dropped."""
    path = Path(path)
    suffix = path.suffix.lower()
    normals = None
    try:
        if suffix == ".npy":
            a = np.load(path, allow_pickle=False)
        elif suffix in (".xyz", ".txt", ".pts"):
            a = np.loadtxt(path, ndmin=2)
        else:
            import trimesh

            cloud = trimesh.load(path)
            a = np.asarray(getattr(cloud, "vertices", np.zeros((0, 3))), dtype=np.float64)
            n = getattr(cloud, "vertex_normals", None) if hasattr(cloud, "faces") else None
            extra = getattr(cloud, "metadata", {}).get("_ply_raw", {}).get("vertex", {}).get("data")
            if extra is not None and all(k in extra.dtype.names for k in ("nx", "ny", "nz")):
                n = np.stack([extra["nx"], extra["ny"], extra["nz"]], axis=1)
            if n is not None and len(n) == len(a):
                a = np.concatenate([a, np.asarray(n, dtype=np.float64)], axis=1)
    except (OSError, ValueError, KeyError, IndexError) as err:
        raise DataError(
            f"{path}: not a readable point cloud ({str(err).splitlines()[0] if str(err) else err})"
        ) from None
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] not in (3, 6):
        raise DataError(f"{path}: a point cloud must be (N, 3) points or (N, 6) points and normals, got {a.shape}")
    a = a[np.isfinite(a).all(axis=1)]
    if len(a) == 0:
        raise DataError(f"{path}: the point cloud is empty")
    if a.shape[1] == 6:
        normals = torch.from_numpy(a[:, 3:].copy())
    return torch.from_numpy(a[:, :3].copy()), normals
