"""Analytic signed distance functions (SDFs) in torch, CSG operators and a procedural shape family.

Every shape is a callable ``sdf(points) -> distances`` mapping a ``(N, 3)`` tensor of points to a
``(N,)`` tensor of signed distances (negative inside, positive outside). Parameters are stored as
plain Python floats, and tensors are created on the device and dtype of the query points, so a
shape runs on whatever device its input lives on (CPU, CUDA, MPS) without ``.to()`` calls.

Primitives are exact Euclidean SDFs (formulas after Inigo Quilez,
https://iquilezles.org/articles/distfunctions/). ``Union`` of exact SDFs is exact outside and a
bound inside; ``Intersection``, ``Difference`` and ``SmoothUnion`` give bounds. All of them, and
every transform here, keep the Lipschitz constant at 1, which the coarse-to-fine mesh extraction
in :mod:`inr_gon.mesh` relies on (``lipschitz=1.0``).

Each shape also has ``aabb()`` returning a conservative axis-aligned bounding box of its interior,
``(lo, hi)`` as two 3-tuples of floats, used to fit random shapes inside ``[-0.9, 0.9]^3``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

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
    "random_shape",
    "ProceduralShapes",
    "sample_uniform",
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
        raise TypeError(
            f"points must be a torch.Tensor of shape (N, 3), got {type(points).__name__}"
        )
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

    def __init__(
        self, half_extents: float | Sequence[float] = 0.5, center: float | Sequence[float] = 0.0
    ):
        self.half_extents = tuple(
            _positive(v, "half_extents") for v in _vec3(half_extents, "half_extents")
        )
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
        self.half_extents = tuple(
            _positive(v, "half_extents") for v in _vec3(half_extents, "half_extents")
        )
        self.radius = _positive(radius, "radius")
        if self.radius >= min(self.half_extents):
            raise ValueError(
                f"radius {self.radius} must be smaller than every half extent {self.half_extents}"
            )
        self.center = _vec3(center, "center")

    def distance(self, points: torch.Tensor) -> torch.Tensor:
        inner = _like([h - self.radius for h in self.half_extents], points)
        return _box_distance(points - _like(self.center, points), inner) - self.radius

    def aabb(self) -> AABB:
        return Box(self.half_extents, self.center).aabb()

    def __repr__(self) -> str:
        return (
            f"RoundedBox(half_extents={self.half_extents}, radius={self.radius:.4g}, "
            f"center={self.center})"
        )


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

    def __init__(
        self, radius: float = 0.3, half_height: float = 0.5, center: float | Sequence[float] = 0.0
    ):
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
        return (
            f"Cylinder(radius={self.radius:.4g}, half_height={self.half_height:.4g}, "
            f"center={self.center})"
        )


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
        corners = np.array(
            [[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
        )
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


# ----------------------------------------------------------------------------------------------
# procedural family
# ----------------------------------------------------------------------------------------------
def _uniform(generator: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=generator, dtype=torch.float64))


def _random_primitive(generator: torch.Generator) -> SDF:
    """One primitive of random kind and size, randomly rotated, centred at the origin."""
    u = lambda lo, hi: _uniform(generator, lo, hi)  # noqa: E731
    kind = int(torch.randint(0, 6, (), generator=generator))
    if kind == 0:
        shape: SDF = Sphere(0.0, u(0.2, 0.45))
    elif kind == 1:
        shape = Box((u(0.12, 0.4), u(0.12, 0.4), u(0.12, 0.4)))
    elif kind == 2:
        half = (u(0.15, 0.4), u(0.15, 0.4), u(0.15, 0.4))
        shape = RoundedBox(half, u(0.02, 0.6) * min(half))
    elif kind == 3:
        big = u(0.2, 0.4)
        shape = Torus(big, u(0.25, 0.6) * big)
    elif kind == 4:
        length = u(0.15, 0.4)
        shape = Capsule((0.0, 0.0, -length), (0.0, 0.0, length), u(0.08, 0.25))
    else:
        shape = Cylinder(u(0.12, 0.35), u(0.12, 0.4))
    return Rotate(shape, random_rotation(generator))


def _fit(shape: SDF, *, size: float) -> SDF:
    """``shape`` centred and scaled so its bounding box's largest half extent is ``size``."""
    lo, hi = shape.aabb()
    center = [(a + b) / 2 for a, b in zip(lo, hi)]
    half = max((b - a) / 2 for a, b in zip(lo, hi))
    return Scale(Translate(shape, [-c for c in center]), size / half)


def _has_interior(shape: SDF, *, resolution: int = 24, thickness: float = 0.02) -> bool:
    """Whether some point of a coarse grid over [-1, 1]^3 lies deeper than ``thickness`` inside."""
    axis = torch.linspace(-1.0, 1.0, resolution, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)
    return bool((shape(grid) < -thickness).any())


def random_shape(
    generator: torch.Generator,
    *,
    max_primitives: int = 3,
    extent: float = 0.85,
    max_tries: int = 20,
) -> SDF:
    """A random primitive or CSG combination that fits inside ``[-extent, extent]^3``.

    Draws 1 to ``max_primitives`` randomly rotated primitives (sphere, box, rounded box, torus,
    capsule, cylinder), places them near the origin and combines them one by one with union,
    smooth union, difference or intersection; the result is centred and scaled so that its
    conservative bounding box has a largest half extent drawn from ``[0.6 extent, extent]``
    (so by default it lies inside ``[-0.85, 0.85]^3``, within ``[-0.9, 0.9]^3`` with margin).
    Draws that leave no interior thicker than 0.02 are redrawn.

    Everything is drawn from ``generator`` (a CPU ``torch.Generator``), so a seeded generator gives
    the same shape every time. The returned shape is Lipschitz-1 and runs on any device.
    """
    if max_primitives < 1:
        raise ValueError(f"max_primitives must be >= 1, got {max_primitives}")
    if not 0 < extent <= 1:
        raise ValueError(f"extent must be in (0, 1], got {extent}")
    for _ in range(max_tries):
        count = int(torch.randint(1, max_primitives + 1, (), generator=generator))
        shape = _random_primitive(generator)
        for _ in range(count - 1):
            offset = [_uniform(generator, -0.3, 0.3) for _ in range(3)]
            other = Translate(_random_primitive(generator), offset)
            op = int(torch.randint(0, 4, (), generator=generator))
            if op == 0:
                shape = Union(shape, other)
            elif op == 1:
                shape = SmoothUnion(shape, other, k=_uniform(generator, 0.03, 0.12))
            elif op == 2:
                shape = Difference(shape, Scale(other, 0.7))
            else:
                shape = Intersection(shape, other)
        shape = _fit(shape, size=_uniform(generator, 0.6 * extent, extent))
        if _has_interior(shape):
            return shape
    raise RuntimeError(f"random_shape: no shape with an interior after {max_tries} draws")


class ProceduralShapes:
    """A deterministic, file-free family of ``num`` random shapes (see :func:`random_shape`).

    ``shapes[i]`` is the same SDF for the same ``(seed, i)``, independent of ``num`` and of the
    order of access. Each is a callable ``(N, 3) -> (N,)`` fitting inside ``[-0.9, 0.9]^3``.
    """

    def __init__(self, num: int, seed: int = 0, *, max_primitives: int = 3, extent: float = 0.85):
        if num < 0:
            raise ValueError(f"num must be >= 0, got {num}")
        self.num = int(num)
        self.seed = int(seed)
        self.max_primitives = int(max_primitives)
        self.extent = float(extent)

    def __len__(self) -> int:
        return self.num

    def generator(self, index: int) -> torch.Generator:
        """The CPU generator shape ``index`` is drawn from (seeded from ``(seed, index)``)."""
        state = np.random.SeedSequence([self.seed, index]).generate_state(2, dtype=np.uint32)
        return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))

    def __getitem__(self, index: int) -> SDF:
        if not isinstance(index, (int, np.integer)):
            raise TypeError(f"index must be an int, got {type(index).__name__}")
        if index < 0:
            index += self.num
        if not 0 <= index < self.num:
            raise IndexError(f"shape index {index} out of range for {self.num} shapes")
        return random_shape(
            self.generator(int(index)), max_primitives=self.max_primitives, extent=self.extent
        )

    def __iter__(self):
        return (self[i] for i in range(self.num))

    def __repr__(self) -> str:
        return f"ProceduralShapes(num={self.num}, seed={self.seed})"


def sample_uniform(
    shape,
    num_points: int,
    *,
    bounds: tuple[float, float] = (-1.0, 1.0),
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Uniform points in the cube ``bounds^3`` with their signed distances.

    Returns ``points`` ``(num_points, 3)`` float32 and ``sdf`` ``(num_points,)`` float32 on
    ``device`` (points are drawn on the CPU from ``generator``, so they do not depend on the
    device).
    """
    lo, hi = float(bounds[0]), float(bounds[1])
    if not hi > lo:
        raise ValueError(f"bounds must satisfy lo < hi, got {bounds}")
    pts = lo + (hi - lo) * torch.rand(num_points, 3, generator=generator)
    pts = pts.to(device) if device is not None else pts
    with torch.no_grad():
        return pts, shape(pts).reshape(-1).float()
