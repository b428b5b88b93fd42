"""Exact analytic signed distance functions (SDFs) in torch: the primitive shapes.

``Sphere``, ``Box``, ``RoundedBox``, ``Torus``, ``Capsule`` and ``Cylinder`` are exact Euclidean
SDFs (formulas after Inigo Quilez, https://iquilezles.org/articles/distfunctions/), so their
Lipschitz constant is 1. Each maps a ``(N, 3)`` tensor of points to a ``(N,)`` tensor of signed
distances (negative inside), stores its parameters as plain Python floats and computes on the
device and dtype of the query points, and has ``aabb()``, a conservative axis-aligned bounding box
``(lo, hi)`` of its interior.

The base class :class:`SDF`, the CSG operators (``Union``, ``Intersection``, ``Difference``,
``SmoothUnion``), the transforms (``Translate``, ``Scale``, ``Rotate``) and :func:`random_rotation`
live in :mod:`.operators`, apart from the shapes they combine; they are re-exported here so that
every name of the shape library can still be imported from this module.
"""

from __future__ import annotations

from typing import Sequence

import torch

from .operators import (
    AABB,
    SDF,
    Difference,
    Intersection,
    Rotate,
    Scale,
    SmoothUnion,
    Translate,
    Union,
    _like,
    _positive,
    _vec3,
    random_rotation,
)

__all__ = [
    "SDF",
    "Sphere",
    "Box",
    "RoundedBox",
    "Torus",
    "Capsule",
    "Cylinder",
    "Union",
    "Intersection",
    "Difference",
    "SmoothUnion",
    "Translate",
    "Scale",
    "Rotate",
    "random_rotation",
]


# ----------------------------------------------------------------------------------------------
# primitives
# ----------------------------------------------------------------------------------------------
class Sphere(SDF):
    """Sphere of ``radius`` around ``center`` (3 floats): ``|p - c| - r`` (exact)."""

    def __init__(self, center: float | Sequence[float] = 0.0, radius: float = 0.5):
        self.center = _vec3(center, "center")
        self.radius = _positive(radius, "radius")

    def distance(self, points: torch.Tensor) -> torch.Tensor:
        return torch.linalg.vector_norm(points - _like(self.center, points), dim=-1) - self.radius

    def aabb(self) -> AABB:
        c, r = self.center, self.radius
        return tuple(x - r for x in c), tuple(x + r for x in c)  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"Sphere(center={self.center}, radius={self.radius:.4g})"


def _box_distance(points: torch.Tensor, half: torch.Tensor) -> torch.Tensor:
    """Exact SDF of an origin-centred box with half extents ``half`` (3,); ``(N, 3) -> (N,)``."""
    q = points.abs() - half
    outside = torch.linalg.vector_norm(q.clamp(min=0), dim=-1)
    inside = q.max(dim=-1).values.clamp(max=0)
    return outside + inside


class Box(SDF):
    """Axis-aligned box with ``half_extents`` (3 floats or one) centred at ``center`` (exact)."""

    def __init__(self, half_extents: float | Sequence[float] = 0.5, center: float | Sequence[float] = 0.0):
        self.half_extents = tuple(_positive(v, "half_extents") for v in _vec3(half_extents, "half_extents"))
        self.center = _vec3(center, "center")

    def distance(self, points: torch.Tensor) -> torch.Tensor:
        return _box_distance(points - _like(self.center, points), _like(self.half_extents, points))

    def aabb(self) -> AABB:
        return (
            tuple(c - h for c, h in zip(self.center, self.half_extents)),  # type: ignore
            tuple(c + h for c, h in zip(self.center, self.half_extents)),
        )

    def __repr__(self) -> str:
        return f"Box(half_extents={self.half_extents}, center={self.center})"


class RoundedBox(SDF):
    """Box with ``half_extents`` (outer size) whose edges are rounded with ``radius`` (exact).

    ``radius`` must be smaller than every half extent.
    """

    def __init__(
        self,
        half_extents: float | Sequence[float] = 0.5,
        radius: float = 0.1,
        center: float | Sequence[float] = 0.0,
    ):
        self.half_extents = tuple(_positive(v, "half_extents") for v in _vec3(half_extents, "half_extents"))
        self.radius = _positive(radius, "radius")
        if self.radius >= min(self.half_extents):
            raise ValueError(f"radius {self.radius} must be smaller than every half extent {self.half_extents}")
        self.center = _vec3(center, "center")

    def distance(self, points: torch.Tensor) -> torch.Tensor:
        inner = _like([h - self.radius for h in self.half_extents], points)
        return _box_distance(points - _like(self.center, points), inner) - self.radius

    def aabb(self) -> AABB:
        return Box(self.half_extents, self.center).aabb()

    def __repr__(self) -> str:
        return f"RoundedBox(half_extents={self.half_extents}, radius={self.radius:.4g}, center={self.center})"


class Torus(SDF):
    """Torus around the z axis through ``center``: ring radius ``R`` in the xy plane, tube ``r``.

    ``sdf(p) = |(|p.xy| - R, p.z)| - r`` (exact); needs ``r < R``.
    """

    def __init__(self, R: float = 0.5, r: float = 0.2, center: float | Sequence[float] = 0.0):
        self.R = _positive(R, "R")
        self.r = _positive(r, "r")
        if self.r >= self.R:
            raise ValueError(f"tube radius r={self.r} must be smaller than ring radius R={self.R}")
        self.center = _vec3(center, "center")

    def distance(self, points: torch.Tensor) -> torch.Tensor:
        p = points - _like(self.center, points)
        ring = torch.linalg.vector_norm(p[:, :2], dim=-1) - self.R
        return torch.sqrt(ring * ring + p[:, 2] * p[:, 2]) - self.r

    def aabb(self) -> AABB:
        e = (self.R + self.r, self.R + self.r, self.r)
        return (
            tuple(c - x for c, x in zip(self.center, e)),  # type: ignore[return-value]
            tuple(c + x for c, x in zip(self.center, e)),
        )

    def __repr__(self) -> str:
        return f"Torus(R={self.R:.4g}, r={self.r:.4g}, center={self.center})"


class Capsule(SDF):
    """Capsule: points within ``r`` of the segment from ``a`` to ``b`` (3 floats each) (exact)."""

    def __init__(self, a: Sequence[float], b: Sequence[float], r: float):
        self.a = _vec3(a, "a")
        self.b = _vec3(b, "b")
        self.r = _positive(r, "r")

    def distance(self, points: torch.Tensor) -> torch.Tensor:
        a, b = _like(self.a, points), _like(self.b, points)
        pa, ba = points - a, b - a
        denom = sum((y - x) ** 2 for x, y in zip(self.a, self.b))
        if denom == 0.0:
            h = torch.zeros_like(points[:, 0])
        else:
            h = ((pa @ ba) / denom).clamp(0.0, 1.0)
        return torch.linalg.vector_norm(pa - h[:, None] * ba, dim=-1) - self.r

    def aabb(self) -> AABB:
        return (
            tuple(min(x, y) - self.r for x, y in zip(self.a, self.b)),  # type: ignore[return-value]
            tuple(max(x, y) + self.r for x, y in zip(self.a, self.b)),
        )

    def __repr__(self) -> str:
        return f"Capsule(a={self.a}, b={self.b}, r={self.r:.4g})"


class Cylinder(SDF):
    """Capped cylinder along z through ``center``: ``radius``, z in ``±half_height`` (exact)."""

    def __init__(self, radius: float = 0.3, half_height: float = 0.5, center: float | Sequence[float] = 0.0):
        self.radius = _positive(radius, "radius")
        self.half_height = _positive(half_height, "half_height")
        self.center = _vec3(center, "center")

    def distance(self, points: torch.Tensor) -> torch.Tensor:
        p = points - _like(self.center, points)
        d = torch.stack(
            [
                torch.linalg.vector_norm(p[:, :2], dim=-1) - self.radius,
                p[:, 2].abs() - self.half_height,
            ],
            dim=-1,
        )
        return d.max(dim=-1).values.clamp(max=0) + torch.linalg.vector_norm(d.clamp(min=0), dim=-1)

    def aabb(self) -> AABB:
        e = (self.radius, self.radius, self.half_height)
        return (
            tuple(c - x for c, x in zip(self.center, e)),  # type: ignore[return-value]
            tuple(c + x for c, x in zip(self.center, e)),
        )

    def __repr__(self) -> str:
        return f"Cylinder(radius={self.radius:.4g}, half_height={self.half_height:.4g}, center={self.center})"
