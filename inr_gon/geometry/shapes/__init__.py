"""Analytic signed distance functions, CSG operators and a procedural shape family.

Every shape is a callable ``sdf(points (N, 3)) -> (N,)`` signed distances (negative inside);
see :mod:`.operators` (the :class:`SDF` base class, CSG, transforms), :mod:`.primitives` (exact
primitives; it re-exports :mod:`.operators`), all Lipschitz-1, and :mod:`.procedural` (random
shapes, :class:`ProceduralShapes`, uniform sampling).
"""

from .operators import SDF, Difference, Intersection, Rotate, Scale, SmoothUnion, Translate, Union, random_rotation
from .primitives import Box, Capsule, Cylinder, RoundedBox, Sphere, Torus
from .procedural import ProceduralShapes, random_shape, sample_uniform

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
