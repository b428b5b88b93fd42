"""Analytic signed distance functions, CSG operators and a procedural shape family.

Every shape is a callable ``sdf(points (N, 3)) -> (N,)`` signed distances (negative inside);
see :mod:`.primitives` (exact primitives, CSG, transforms; all Lipschitz-1) and
:mod:`.procedural` (random shapes, :class:`ProceduralShapes`, uniform sampling).
"""

from .primitives import (SDF, Box, Capsule, Cylinder, Difference, Intersection, Rotate, RoundedBox, Scale,
                         SmoothUnion, Sphere, Torus, Translate, Union, random_rotation)
from .procedural import ProceduralShapes, random_shape, sample_uniform

__all__ = ["SDF", "Sphere", "Box", "RoundedBox", "Torus", "Capsule", "Cylinder", "Union", "Intersection",
           "Difference", "SmoothUnion", "Translate", "Scale", "Rotate", "random_rotation", "random_shape",
           "ProceduralShapes", "sample_uniform"]
