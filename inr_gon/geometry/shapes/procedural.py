"""A procedural, file-free family of random shapes built from the primitives and CSG operators,
and uniform point sampling of any SDF."""

from __future__ import annotations

import functools

import numpy as np
import torch

from .primitives import (
    SDF,
    Box,
    Capsule,
    Cylinder,
    Difference,
    Intersection,
    Rotate,
    RoundedBox,
    Scale,
    SmoothUnion,
    Sphere,
    Torus,
    Translate,
    Union,
    random_rotation,
)

__all__ = ["random_shape", "ProceduralShapes", "sample_uniform", "KINDS"]


def _uniform(generator: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=generator, dtype=torch.float64))


#: the primitives' kinds, in the order their index is drawn (:meth:`ProceduralShapes.kind`)
KINDS = ("sphere", "box", "rounded box", "torus", "capsule", "cylinder")


def _random_primitive(generator: torch.Generator, kinds: list | None = None) -> SDF:
    """One primitive of random kind and size, randomly rotated, centred at the origin (its kind's
    index appended to ``kinds`` when given)."""
    u = lambda lo, hi: _uniform(generator, lo, hi)  # noqa: E731
    kind = int(torch.randint(0, 6, (), generator=generator))
    if kinds is not None:
        kinds.append(kind)
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


@functools.lru_cache(maxsize=4)
def _centre_first_grid(resolution: int) -> torch.Tensor:
    """The points of a ``resolution^3`` grid over [-1, 1]^3 (float64), nearest the origin first."""
    axis = torch.linspace(-1.0, 1.0, resolution, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)
    return grid[grid.norm(dim=1).argsort(stable=True)]


def _has_interior(shape: SDF, *, resolution: int = 24, thickness: float = 0.02, chunk: int = 1024) -> bool:
    """Whether some point of a coarse grid over [-1, 1]^3 lies deeper than ``thickness`` inside.

    The grid is tested centre first in chunks and stops at the first point inside: the shapes are
    centred, so most stop after one chunk (the answer is that of the whole grid)."""
    grid = _centre_first_grid(resolution)
    return any(bool((shape(grid[i : i + chunk]) < -thickness).any()) for i in range(0, grid.shape[0], chunk))


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
    return _random_shape(generator, max_primitives=max_primitives, extent=extent, max_tries=max_tries)[0]


def _random_shape(generator: torch.Generator, *, max_primitives: int, extent: float, max_tries: int) -> tuple:
    """:func:`random_shape` and the kind (index in :data:`KINDS`) of its first primitive."""
    if max_primitives < 1:
        raise ValueError(f"max_primitives must be >= 1, got {max_primitives}")
    if not 0 < extent <= 1:
        raise ValueError(f"extent must be in (0, 1], got {extent}")
    for _ in range(max_tries):
        count = int(torch.randint(1, max_primitives + 1, (), generator=generator))
        kinds: list = []
        shape = _random_primitive(generator, kinds)
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
            return shape, kinds[0]
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
        return random_shape(self.generator(int(index)), max_primitives=self.max_primitives, extent=self.extent)

    def kind(self, index: int) -> int:
        """The kind (an index in :data:`KINDS`) of shape ``index``'s first primitive, the one
        the others are combined into: a label for probes of the shape space."""
        self[index]  # checks the index
        index = index + self.num if index < 0 else index
        return _random_shape(
            self.generator(int(index)), max_primitives=self.max_primitives, extent=self.extent, max_tries=20
        )[1]

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
