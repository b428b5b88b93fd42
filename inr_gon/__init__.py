"""inr_gon: Gradient Origin Networks for implicit neural representations.

Data flow: data -> coordinates -> integrator -> gradient-origin latent -> decoder
(image / render / SDF -> mesh) -> outputs. The mathematical core (this package's top-level
modules) does no file I/O; readers, the trainer and the CLI build on it.
"""

from .siren import LatentSiren, Siren, SineLayer
from .coords import (grid, image_to_points, points_to_image, random_subset, jittered_grid,
                     uniform_points, interpolate)
from .integrators import GridIntegrator, MonteCarloIntegrator, ContinuousIntegrator, integrate
from .losses import MSE, BCE, L1, ClampedL1, PointLoss, get_loss
from .gon import gon_latent, gon_loss
from .render import render, render_points, encode, encode_render
from .sampling import slerp, slerp_path, GaussianLatentSampler
from . import shapes, modality
from .mesh import extract_mesh, sdf_grid, sdf_slice
from .shape_metrics import chamfer_distance, normal_consistency, volumetric_iou
from .sdf_gon import sdf_gon_latent, sdf_gon_loss, latent_sdf, LatentSDF, eikonal_loss

__version__ = "0.1.0"

__all__ = [
    "LatentSiren", "Siren", "SineLayer",
    "grid", "image_to_points", "points_to_image", "random_subset", "jittered_grid",
    "uniform_points", "interpolate",
    "GridIntegrator", "MonteCarloIntegrator", "ContinuousIntegrator", "integrate",
    "MSE", "BCE", "L1", "ClampedL1", "PointLoss", "get_loss",
    "gon_latent", "gon_loss",
    "render", "render_points", "encode", "encode_render",
    "slerp", "slerp_path", "GaussianLatentSampler",
    "shapes", "modality", "extract_mesh", "sdf_grid", "sdf_slice",
    "chamfer_distance", "normal_consistency", "volumetric_iou",
    "sdf_gon_latent", "sdf_gon_loss", "latent_sdf", "LatentSDF", "eikonal_loss",
]
