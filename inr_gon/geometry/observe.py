"""Signed-distance samples from what a sensor sees: a depth map (pinhole camera) or a point cloud.

An observation says, at each seen surface point ``p``: the SDF is 0 at ``p``; a small distance
``η`` in front of the surface it is about ``+η`` and behind it ``−η`` (for ``η`` small against the
surface's curvature) (along the surface normal
where it is known, else along the viewing ray); and every point between the camera and ``p`` is
outside the shape — there the SDF is only known to be positive, a *lower bound*
(``free = True``), which a loss should penalise only when the prediction is below it
(:func:`inr_gon.core.sdf.bounded_loss`).

Conventions: OpenCV's pinhole camera (``x`` right, ``y`` down, ``z`` forward; pixel ``(u, v)``
at column ``u``, row ``v``, centres at integers), intrinsics ``K = [[fx, 0, cx], [0, fy, cy],
[0, 0, 1]]``, a ``pose`` ``(4, 4)`` mapping camera coordinates to the model's frame. Depth is the
``z`` distance (not the ray length); pixels with a non-finite or non-positive depth are unseen.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = [
    "Observation",
    "backproject",
    "depth_normals",
    "observation_samples",
    "depth_free_space",
    "check_pose",
    "seen_from",
]


@dataclass
class Observation:
    """Samples of an observation: ``points`` ``(M, 3)``, ``sdf`` ``(M,)`` (exact values, or lower
    bounds where ``free``), ``free`` ``(M,)`` bool, and ``surface`` ``(S, 3)`` the seen surface
    points themselves (for pictures)."""

    points: torch.Tensor
    sdf: torch.Tensor
    free: torch.Tensor
    surface: torch.Tensor

    def __len__(self) -> int:
        return self.points.shape[0]


def check_pose(pose: torch.Tensor, *, tol: float = 1e-3) -> torch.Tensor:
    """``pose`` as a float64 ``(4, 4)`` rigid transform (a one-line ``ValueError`` otherwise:
    its rotation must be orthonormal with determinant 1 and its last row ``0 0 0 1``)."""
    pose = torch.as_tensor(pose, dtype=torch.float64)
    if pose.shape != (4, 4):
        raise ValueError(f"a pose must be a 4x4 matrix, got shape {tuple(pose.shape)}")
    R = pose[:3, :3]
    if not torch.isfinite(pose).all():
        raise ValueError("the pose holds NaN or inf")
    if (pose[3] - torch.tensor([0.0, 0, 0, 1], dtype=torch.float64)).abs().max() > tol:
        raise ValueError(f"the pose's last row must be 0 0 0 1, got {pose[3].tolist()}")
    if (R @ R.T - torch.eye(3, dtype=torch.float64)).abs().max() > tol or abs(float(torch.det(R)) - 1) > tol:
        raise ValueError("the pose is not a rigid transform (its 3x3 rotation is not orthonormal with det 1)")
    return pose


def backproject(depth: torch.Tensor, intrinsics: torch.Tensor, pose: torch.Tensor | None = None) -> tuple:
    """The points ``(H, W, 3)`` (in the pose's frame) of a depth map ``(H, W)``, whether each
    pixel was seen ``(H, W)`` bool, and the camera's centre ``(3,)``."""
    depth = torch.as_tensor(depth, dtype=torch.float64)
    K = torch.as_tensor(intrinsics, dtype=torch.float64)
    if depth.dim() != 2:
        raise ValueError(f"a depth map must be (H, W), got shape {tuple(depth.shape)}")
    if K.shape != (3, 3) or not torch.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ValueError("intrinsics must be a finite 3x3 matrix [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] with fx, fy > 0")
    H, W = depth.shape
    v, u = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij")
    seen = torch.isfinite(depth) & (depth > 0)
    d = torch.where(seen, depth, torch.zeros_like(depth))
    cam = torch.stack([(u - K[0, 2]) * d / K[0, 0], (v - K[1, 2]) * d / K[1, 1], d], dim=-1)
    pose = check_pose(pose) if pose is not None else torch.eye(4, dtype=torch.float64)
    pts = cam @ pose[:3, :3].T + pose[:3, 3]
    return pts, seen, pose[:3, 3].clone()


def depth_normals(points: torch.Tensor, seen: torch.Tensor, camera: torch.Tensor) -> tuple:
    """Normals ``(H, W, 3)`` of a back-projected depth map (the cross product of its row and column
    differences, turned towards the camera) and where they exist ``(H, W)`` bool (the pixel and
    its four neighbours seen, the two differences not parallel)."""
    H, W, _ = points.shape
    n = torch.zeros_like(points)
    ok = torch.zeros(H, W, dtype=torch.bool)
    if H < 3 or W < 3:
        return n, ok
    dx = points[1:-1, 2:] - points[1:-1, :-2]
    dy = points[2:, 1:-1] - points[:-2, 1:-1]
    c = torch.cross(dx, dy, dim=-1)
    norm = c.norm(dim=-1, keepdim=True)
    inner = seen[1:-1, 1:-1] & seen[1:-1, 2:] & seen[1:-1, :-2] & seen[2:, 1:-1] & seen[:-2, 1:-1]
    scale = torch.maximum(dx.norm(dim=-1), dy.norm(dim=-1)).unsqueeze(-1)
    good = inner & (norm.squeeze(-1) > 1e-8 * scale.squeeze(-1).square().clamp_min(1e-30))
    c = c / norm.clamp_min(1e-30)
    to_cam = camera - points[1:-1, 1:-1]
    c = torch.where(((c * to_cam).sum(-1, keepdim=True) < 0), -c, c)
    n[1:-1, 1:-1] = torch.where(good.unsqueeze(-1), c, torch.zeros_like(c))
    ok[1:-1, 1:-1] = good
    return n, ok


def observation_samples(
    surface: torch.Tensor,
    *,
    normals: torch.Tensor | None = None,
    camera: torch.Tensor | None = None,
    offset: float | tuple = (0.01, 0.03, 0.06, 0.1),
    free_per_point: int = 1,
    bounds: tuple[float, float] = (-1.0, 1.0),
    generator: torch.Generator | None = None,
    outside: torch.Tensor | None = None,
) -> Observation:
    """Samples of seen surface points ``surface`` ``(S, 3)`` (see the module docstring).

    Args:
        normals: ``(S, 3)`` unit normals pointing out of the shape (rows of zeros: unknown), or
            ``None``: offsets along the ray from ``camera`` instead where there is a camera, none
            where there is neither.
        camera: ``(3,)`` the camera's centre: free-space points on the segments from it to the
            surface (``free_per_point`` each, uniformly between the camera and ``2·offset`` before
            the surface), and the ray direction where a normal is unknown.
        offset: ``η``, the distance in front of and behind the surface of the ``±η`` samples, or
            several (a pair of samples at each: the default spreads them over the band the
            shape models are trained on, which encodes better than one small offset).
        bounds: samples outside this box (the model's) are dropped.
        outside: ``(F, 3)`` more points known to be outside (e.g. :func:`depth_free_space`'s),
            taken as free-space samples.
    """
    if surface.dim() != 2 or surface.shape[1] != 3:
        raise ValueError(f"surface points must be (S, 3), got shape {tuple(surface.shape)}")
    surface = surface[torch.isfinite(surface).all(dim=1)].to(torch.float64)
    if surface.shape[0] == 0:
        raise ValueError("the observation holds no finite surface point")
    offsets = [float(o) for o in (offset if isinstance(offset, (tuple, list)) else (offset,))]
    if not offsets or not all(o > 0 for o in offsets):
        raise ValueError(f"offsets must be > 0, got {offset}")
    pts, sdf, free = (
        [surface],
        [torch.zeros(len(surface), dtype=torch.float64)],
        [torch.zeros(len(surface), dtype=torch.bool)],
    )
    direction = torch.zeros_like(surface)
    known = torch.zeros(len(surface), dtype=torch.bool)
    if normals is not None:
        normals = torch.as_tensor(normals, dtype=torch.float64)[: len(surface)]
        length = normals.norm(dim=1)
        known = torch.isfinite(length) & (length > 1e-6)
        direction[known] = normals[known] / length[known].unsqueeze(1)
    if camera is not None:
        camera = torch.as_tensor(camera, dtype=torch.float64)
        ray = camera - surface
        dist = ray.norm(dim=1).clamp_min(1e-12)
        toward = ray / dist.unsqueeze(1)
        direction[~known] = toward[~known]  # no normal: along the ray (towards the camera: outside)
        known = torch.ones_like(known)
        if free_per_point > 0:
            t = torch.rand(len(surface), free_per_point, generator=generator, dtype=torch.float64)
            gap = (2 * min(offsets) / dist).clamp(max=1.0).unsqueeze(1)
            s = gap + (1 - gap) * t  # the fraction of the way back to the camera
            f = surface.unsqueeze(1) + s.unsqueeze(-1) * ray.unsqueeze(1)
            pts.append(f.reshape(-1, 3))
            sdf.append(torch.zeros(f.shape[0] * f.shape[1], dtype=torch.float64))
            free.append(torch.ones(f.shape[0] * f.shape[1], dtype=torch.bool))
    if outside is not None and len(outside):
        pts.append(torch.as_tensor(outside, dtype=torch.float64))
        sdf.append(torch.zeros(len(outside), dtype=torch.float64))
        free.append(torch.ones(len(outside), dtype=torch.bool))
    for eta in offsets:
        for sign in (1.0, -1.0):
            p = surface[known] + sign * eta * direction[known]
            pts.append(p)
            sdf.append(torch.full((len(p),), sign * eta, dtype=torch.float64))
            free.append(torch.zeros(len(p), dtype=torch.bool))
    points, values, is_free = torch.cat(pts), torch.cat(sdf), torch.cat(free)
    lo, hi = bounds
    inside = ((points >= lo) & (points <= hi)).all(dim=1)
    return Observation(points[inside].float(), values[inside].float(), is_free[inside], surface.float())


def depth_free_space(
    depth: torch.Tensor,
    intrinsics: torch.Tensor,
    pose: torch.Tensor | None,
    count: int,
    *,
    margin: float = 0.02,
    silhouette: bool = True,
    bounds: tuple[float, float] = (-1.0, 1.0),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Points ``(M, 3)`` of the box that a depth map shows to be outside the shape: of ``count``
    uniform points, those inside the camera's view whose ray meets the surface more than
    ``margin`` beyond them or, with ``silhouette``, misses it (an unseen pixel: outside the
    silhouette; ``False`` where unseen pixels may be sensor dropouts). Points out of view, or
    behind the seen surface, are unknown and left out."""
    depth = torch.as_tensor(depth, dtype=torch.float64)
    K = torch.as_tensor(intrinsics, dtype=torch.float64)
    pose = check_pose(pose) if pose is not None else torch.eye(4, dtype=torch.float64)
    lo, hi = bounds
    p = lo + (hi - lo) * torch.rand(count, 3, generator=generator, dtype=torch.float64)
    cam = (p - pose[:3, 3]) @ pose[:3, :3]  # world -> camera: R^T (p - t)
    z = cam[:, 2]
    H, W = depth.shape
    front = z > 1e-6
    u = torch.where(front, K[0, 0] * cam[:, 0] / z.clamp_min(1e-6) + K[0, 2], torch.full_like(z, -1.0))
    v = torch.where(front, K[1, 1] * cam[:, 1] / z.clamp_min(1e-6) + K[1, 2], torch.full_like(z, -1.0))
    col, row = u.round().long(), v.round().long()
    inview = front & (col >= 0) & (col < W) & (row >= 0) & (row < H)
    # conservative at pixel edges: the nearest depth of the 3x3 pixels around the projection, and a
    # miss only where all nine miss
    hit = torch.isfinite(depth) & (depth > 0)
    near = torch.where(hit, depth, torch.full_like(depth, float("inf")))
    near = -torch.nn.functional.max_pool2d(-near[None, None], 3, stride=1, padding=1)[0, 0]
    any_hit = torch.nn.functional.max_pool2d(hit[None, None].double(), 3, stride=1, padding=1)[0, 0] > 0
    d = torch.full_like(z, float("inf"))
    missed = torch.zeros_like(inview)
    d[inview] = near[row[inview], col[inview]]
    missed[inview] = ~any_hit[row[inview], col[inview]]
    outside = inview & ((missed & silhouette) | (~missed & (z < d - margin)))
    return p[outside].float()


def seen_from(
    points: torch.Tensor,
    sdf: torch.Tensor,
    direction: torch.Tensor,
    *,
    bins: int = 24,
    band: float = 0.1,
    extent: float = 3**0.5,
) -> torch.Tensor:
    """Which of each shape's samples one depth view sees: ``(B, N)`` bool.

    For training an encoder on what a sensor will give it, from samples whose signed distances are
    all known. ``points`` ``(B, N, 3)``, ``sdf`` ``(B, N)`` (negative inside), ``direction``
    ``(B, 3)`` unit vectors: an orthographic camera on the side of ``+direction`` looks towards
    ``−direction``. Its pixels are a ``bins × bins`` grid over the plane perpendicular to
    ``direction``, covering ``[−extent, extent]²`` (the default holds the ``[−1, 1]³`` box). A
    pixel's first surface is the nearest of its samples inside the shape; a sample is seen when it
    lies in front of its pixel's first surface or at most ``band`` behind it (the thin band a depth
    map's offsets reach). Every sample of a pixel with no inside sample is seen (its ray misses
    the shape).
    """
    if points.dim() != 3 or points.shape[-1] != 3 or sdf.shape != points.shape[:2]:
        raise ValueError(f"points must be (B, N, 3) and sdf (B, N), got {tuple(points.shape)} and {tuple(sdf.shape)}")
    if direction.shape != (points.shape[0], 3):
        raise ValueError(f"direction must be (B, 3) = ({points.shape[0]}, 3), got {tuple(direction.shape)}")
    d = torch.nn.functional.normalize(direction.to(points), dim=-1)
    e_x, e_y = points.new_tensor([1.0, 0.0, 0.0]), points.new_tensor([0.0, 1.0, 0.0])
    helper = torch.where(d[:, :1].abs() < 0.9, e_x, e_y)  # (B, 3): not parallel to d
    a = torch.nn.functional.normalize(torch.linalg.cross(d, helper), dim=-1)
    b = torch.linalg.cross(d, a)
    to_pixel = lambda x: ((x + extent) / (2 * extent) * bins).long().clamp_(0, bins - 1)  # noqa: E731
    pixel = to_pixel((points * a[:, None]).sum(-1)) * bins + to_pixel((points * b[:, None]).sum(-1))  # (B, N)
    depth = -(points * d[:, None]).sum(-1)  # distance from the camera's plane, up to a constant
    inf = torch.full_like(depth, float("inf"))
    first = torch.full((points.shape[0], bins * bins), float("inf"), dtype=depth.dtype, device=depth.device)
    first = first.scatter_reduce(1, pixel, torch.where(sdf < 0, depth, inf), "amin")
    return depth <= first.gather(1, pixel) + band
