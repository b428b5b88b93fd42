"""The SDF base class and the operators that build shapes from shapes: CSG and transforms.

Every shape is a callable ``sdf(points) -> distances`` mapping a ``(N, 3)`` tensor of points to a
``(N,)`` tensor of signed distances (negative inside, positive outside). Parameters are stored as
plain Python floats, and tensors are created on the device and dtype of the query points, so a
shape runs on whatever device its input lives on (CPU, CUDA, MPS) without ``.to()`` calls.

This module holds what every shape shares -- :class:`SDF` (whose ``|``, ``&``, ``-``,
``.translate``, ``.scale`` and ``.rotate`` build the operators below), the argument helpers and the
``AABB`` type -- and the operators, which depend only on that interface, never on a concrete shape;
the concrete shapes are in :mod:`.primitives`, which re-exports everything here. ``Union`` of exact
SDFs is exact outside and a bound inside; ``Intersection``, ``Difference`` and ``SmoothUnion`` give
bounds. All of them, and every transform (``Translate``, ``Scale``, ``Rotate``), keep the Lipschitz
constant at 1, which the coarse-to-fine mesh extraction in :mod:`inr_gon.geometry.mesh` relies on
(``lipschitz=1.0``).

Each shape also has ``aabb()`` returning a conservative axis-aligned bounding box of its interior,
``(lo, hi)`` as two 3-tuples of floats, used to fit random shapes inside ``[-0.9, 0.9]^3``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

__all__ = [
    "SDF",
    "Union",
    "Intersection",
    "Difference",
    "SmoothUnion",
    "Translate",
    "Scale",
    "Rotate",
    "random_rotation",
]

AABB = tuple[tuple[float, float, float], tuple[float, float, float]]


def _vec3(value: float | Sequence[float], name: str) -> tuple[float, float, float]:
    """Turn a scalar or a length-3 sequence into a 3-tuple of floats (scalar is broadcast)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().reshape(-1).tolist()
    if isinstance(value, (int, float)):
        return (float(value),) * 3
    values = tuple(float(v) for v in value)
    if len(values) != 3:
        raise ValueError(f"{name} must be a scalar or have 3 entries, got {len(values)}")
    return values  # type: ignore[return-value]


def _positive(value: float, name: str) -> float:
    value = float(value)
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


def _check_points(points: torch.Tensor) -> torch.Tensor:
    if not isinstance(points, torch.Tensor):
        raise TypeError(f"points must be a torch.Tensor of shape (N, 3), got {type(points).__name__}")
    if points.ndim != 2 or points.shape[-1] != 3:
        raise ValueError(f"points must have shape (N, 3), got {tuple(points.shape)}")
    return points


def _like(values: Sequence[float], points: torch.Tensor) -> torch.Tensor:
    """A (len(values),) tensor on the device and dtype of ``points``."""
    return torch.tensor(values, device=points.device, dtype=points.dtype)


class SDF:
    """Base class of analytic SDFs.

    Call with ``points`` of shape ``(N, 3)`` (any float dtype, any device); returns ``(N,)``.
    Subclasses implement :meth:`distance` and :meth:`aabb`. Operators: ``a | b`` union,
    ``a & b`` intersection, ``a - b`` difference; ``.translate(offset)``, ``.scale(factor)``,
    ``.rotate(matrix)`` return transformed shapes.
    """

    def __call__(self, points: torch.Tensor) -> torch.Tensor:
        """Signed distances, ``(N, 3) -> (N,)``."""
        return self.distance(_check_points(points))

    def distance(self, points: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """Signed distances of validated ``(N, 3)`` points, ``(N,)``."""
        raise NotImplementedError

    def aabb(self) -> AABB:  # pragma: no cover - abstract
        """Conservative bounding box ``(lo, hi)`` of the interior (two 3-tuples)."""
        raise NotImplementedError

    def __or__(self, other: "SDF") -> "Union":
        return Union(self, other)

    def __and__(self, other: "SDF") -> "Intersection":
        return Intersection(self, other)

    def __sub__(self, other: "SDF") -> "Difference":
        return Difference(self, other)

    def translate(self, offset: float | Sequence[float]) -> "Translate":
        """This shape moved by ``offset`` (3 floats)."""
        return Translate(self, offset)

    def scale(self, factor: float) -> "Scale":
        """This shape scaled uniformly by ``factor`` about the origin."""
        return Scale(self, factor)

    def rotate(self, matrix: Sequence[Sequence[float]] | np.ndarray | torch.Tensor) -> "Rotate":
        """This shape rotated about the origin by the ``(3, 3)`` rotation ``matrix``."""
        return Rotate(self, matrix)


# ----------------------------------------------------------------------------------------------
# CSG
# ----------------------------------------------------------------------------------------------
def _check_sdf(shape: object, name: str) -> "SDF":
    if not isinstance(shape, SDF):
        raise TypeError(f"{name} must be an SDF shape, got {type(shape).__name__}")
    return shape


class Union(SDF):
    """Union of shapes: pointwise ``min`` of their distances."""

    def __init__(self, *shapes: SDF):
        if len(shapes) < 1:
            raise ValueError("Union needs at least one shape")
        self.shapes = tuple(_check_sdf(s, "shape") for s in shapes)

    def distance(self, points: torch.Tensor) -> torch.Tensor:
        out = self.shapes[0].distance(points)
        for s in self.shapes[1:]:
            out = torch.minimum(out, s.distance(points))
        return out

    def aabb(self) -> AABB:
        boxes = [s.aabb() for s in self.shapes]
        return (
            tuple(min(b[0][i] for b in boxes) for i in range(3)),  # type: ignore[return-value]
            tuple(max(b[1][i] for b in boxes) for i in range(3)),
        )

    def __repr__(self) -> str:
        return f"Union{self.shapes}"


class Intersection(SDF):
    """Intersection of shapes: pointwise ``max`` of their distances (a bound, Lipschitz 1)."""

    def __init__(self, *shapes: SDF):
        if len(shapes) < 1:
            raise ValueError("Intersection needs at least one shape")
        self.shapes = tuple(_check_sdf(s, "shape") for s in shapes)

    def distance(self, points: torch.Tensor) -> torch.Tensor:
        out = self.shapes[0].distance(points)
        for s in self.shapes[1:]:
            out = torch.maximum(out, s.distance(points))
        return out

    def aabb(self) -> AABB:
        boxes = [s.aabb() for s in self.shapes]
        return (
            tuple(max(b[0][i] for b in boxes) for i in range(3)),  # type: ignore[return-value]
            tuple(min(b[1][i] for b in boxes) for i in range(3)),
        )

    def __repr__(self) -> str:
        return f"Intersection{self.shapes}"


class Difference(SDF):
    """``a`` minus ``b``: ``max(sdf_a, -sdf_b)`` (a bound, Lipschitz 1)."""

    def __init__(self, a: SDF, b: SDF):
        self.a = _check_sdf(a, "a")
        self.b = _check_sdf(b, "b")

    def distance(self, points: torch.Tensor) -> torch.Tensor:
        return torch.maximum(self.a.distance(points), -self.b.distance(points))

    def aabb(self) -> AABB:
        return self.a.aabb()

    def __repr__(self) -> str:
        return f"Difference({self.a!r}, {self.b!r})"


class SmoothUnion(SDF):
    """Smooth union of ``a`` and ``b`` with blend radius ``k`` (polynomial smooth min, Quilez).

    ``h = clamp(0.5 + 0.5 (d_b - d_a) / k, 0, 1)``; ``d = h d_a + (1 - h) d_b - k h (1 - h)``.
    Always ``min(d_a, d_b) - k/4 <= d <= min(d_a, d_b)``; the gradient is
    ``h ∇d_a + (1-h) ∇d_b``, so the Lipschitz constant stays 1.
    """

    def __init__(self, a: SDF, b: SDF, k: float = 0.1):
        self.a = _check_sdf(a, "a")
        self.b = _check_sdf(b, "b")
        self.k = _positive(k, "k")

    def distance(self, points: torch.Tensor) -> torch.Tensor:
        da, db = self.a.distance(points), self.b.distance(points)
        h = (0.5 + 0.5 * (db - da) / self.k).clamp(0.0, 1.0)
        return h * da + (1.0 - h) * db - self.k * h * (1.0 - h)

    def aabb(self) -> AABB:
        lo, hi = Union(self.a, self.b).aabb()
        m = self.k / 4.0
        return tuple(x - m for x in lo), tuple(x + m for x in hi)  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"SmoothUnion({self.a!r}, {self.b!r}, k={self.k:.4g})"


# ----------------------------------------------------------------------------------------------
# transforms
# ----------------------------------------------------------------------------------------------
class Translate(SDF):
    """``shape`` moved by ``offset`` (3 floats): ``sdf(p - offset)``."""

    def __init__(self, shape: SDF, offset: float | Sequence[float]):
        self.shape = _check_sdf(shape, "shape")
        self.offset = _vec3(offset, "offset")

    def distance(self, points: torch.Tensor) -> torch.Tensor:
        return self.shape.distance(points - _like(self.offset, points))

    def aabb(self) -> AABB:
        lo, hi = self.shape.aabb()
        return (
            tuple(x + o for x, o in zip(lo, self.offset)),  # type: ignore[return-value]
            tuple(x + o for x, o in zip(hi, self.offset)),
        )

    def __repr__(self) -> str:
        return f"Translate({self.shape!r}, {self.offset})"


class Scale(SDF):
    """``shape`` scaled uniformly by ``factor`` about the origin: ``factor * sdf(p / factor)``."""

    def __init__(self, shape: SDF, factor: float):
        self.shape = _check_sdf(shape, "shape")
        self.factor = _positive(factor, "factor")

    def distance(self, points: torch.Tensor) -> torch.Tensor:
        return self.factor * self.shape.distance(points / self.factor)

    def aabb(self) -> AABB:
        lo, hi = self.shape.aabb()
        f = self.factor
        return tuple(x * f for x in lo), tuple(x * f for x in hi)  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"Scale({self.shape!r}, {self.factor:.4g})"


class Rotate(SDF):
    """``shape`` rotated about the origin by the ``(3, 3)`` rotation ``matrix``: ``sdf(R^T p)``."""

    def __init__(self, shape: SDF, matrix: Sequence[Sequence[float]] | np.ndarray | torch.Tensor):
        self.shape = _check_sdf(shape, "shape")
        if isinstance(matrix, torch.Tensor):
            matrix = matrix.detach().cpu().numpy()
        m = np.asarray(matrix, dtype=np.float64)
        if m.shape != (3, 3):
            raise ValueError(f"rotation matrix must have shape (3, 3), got {m.shape}")
        if not np.allclose(m @ m.T, np.eye(3), atol=1e-5) or np.linalg.det(m) < 0:
            raise ValueError("matrix must be a proper rotation (orthonormal, det +1)")
        self.matrix = tuple(tuple(float(v) for v in row) for row in m)

    def distance(self, points: torch.Tensor) -> torch.Tensor:
        m = torch.tensor(self.matrix, device=points.device, dtype=points.dtype)
        return self.shape.distance(points @ m)  # row vectors: (R^T p)^T = p^T R

    def aabb(self) -> AABB:
        lo, hi = self.shape.aabb()
        corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
        rotated = corners @ np.asarray(self.matrix).T
        return tuple(rotated.min(0).tolist()), tuple(rotated.max(0).tolist())  # type: ignore

    def __repr__(self) -> str:
        return f"Rotate({self.shape!r}, ...)"


def random_rotation(generator: torch.Generator) -> np.ndarray:
    """A uniformly random rotation matrix, ``(3, 3)`` float64, drawn from ``generator``."""
    q = torch.randn(4, generator=generator, dtype=torch.float64)
    w, x, y, z = (q / q.norm()).tolist()
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )
