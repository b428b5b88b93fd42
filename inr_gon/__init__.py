"""inr_gon: Gradient Origin Networks for implicit neural representations.

Data flow, and the direction of every import (a layer imports only the layers left of it)::

    core -> nn -> geometry, eval -> variants -> data, viz -> training -> cli

* ``core``: coordinates, integrators, losses, gradient-origin latents, SDF latents, latent
  sampling, the model protocols (pure tensors);
* ``nn``: SIREN, the latent-conditioned SIREN and its fused kernel, the convolutional decoder;
* ``geometry``: rendering at any resolution, marching cubes, analytic shapes; ``eval``: image,
  shape and latent metrics;
* ``variants``: variational, classifier, modality conversion, autoencoder baselines;
* ``data``: data-set readers; ``viz``: pictures;
* ``training``: the Trainer, its tasks and configs, checkpoints, DDP, logs; ``cli``: the command.

``core``, ``nn``, ``geometry``, ``eval`` and ``variants`` do no file I/O; ``data`` reads data
sets, ``training`` writes runs, ``viz`` writes pictures.

Shape notation, used in every docstring:

* ``B`` batch (samples), ``P`` points per sample, ``n`` coordinate dimension, ``k`` latent
  dimension, ``H`` hidden width, ``O`` output channels (``C, H, W`` for images).

The names below are the public API (``import inr_gon as ig``; ``ig.LatentSiren``,
``ig.gon_loss``, ``ig.render``, ``ig.extract_mesh``, ``ig.shapes``, ...). Training is in
:mod:`inr_gon.training` (``from inr_gon.training import Trainer, ImageConfig``).
"""

from .core.coords import (
    grid,
    image_to_points,
    points_to_image,
    random_subset,
    jittered_grid,
    uniform_points,
    interpolate,
)
from .core.integrators import (
    GridIntegrator,
    MonteCarloIntegrator,
    StratifiedIntegrator,
    ContinuousIntegrator,
    integrate,
)
from .core.losses import MSE, BCE, L1, ClampedL1, PointLoss, get_loss
from .core.gon import gon_latent, gon_loss
from .core.posterior import map_latent
from .core.protocols import ExplicitLatentModel, LatentModel, ObjectiveResult
from .core.sampling import slerp, slerp_path, GaussianLatentSampler
from .core.sdf import sdf_gon_latent, sdf_gon_loss, latent_sdf, LatentSDF, eikonal_loss
from .nn.siren import LatentSiren, Siren, SineLayer
from .geometry.render import render, render_points, encode, encode_render
from .geometry import shapes
from .geometry.mesh import extract_mesh, sdf_grid, sdf_slice
from .eval.shape import chamfer_distance, normal_consistency, volumetric_iou
from .variants import modality
from . import _compat

from importlib.metadata import PackageNotFoundError as _NotInstalled, version as _version

try:  # pyproject.toml is the version's one source, read here through the installed metadata
    __version__ = _version("inr_gon")
except _NotInstalled:  # a source checkout that is not installed
    __version__ = "0+unknown"


def load(path, *, device="auto"):
    """A trained run from its checkpoint (or run folder): ``run.model``, ``run.config``,
    ``run.task_name``, ``run.state`` (:class:`inr_gon.training.run.LoadedRun`; safe loading, a
    one-line error for a bad file)."""
    from .training.run import load_run

    return load_run(path, device=device)


def pretrained(name: str | None = None, *, device="auto"):
    """A model shipped with inr_gon, ready to encode and decode (a
    :class:`~inr_gon.training.run.LoadedRun`: ``.model``, ``.config``; its weights' SHA-256 is
    checked against its model card first), or with no name the list of names. The cards:
    :func:`inr_gon.training.pretrained.card`."""
    from .training.pretrained import load_pretrained, names

    return names() if name is None else load_pretrained(name, device=device)


__all__ = [
    "load",
    "pretrained",
    "LatentSiren",
    "Siren",
    "SineLayer",
    "grid",
    "image_to_points",
    "points_to_image",
    "random_subset",
    "jittered_grid",
    "uniform_points",
    "interpolate",
    "GridIntegrator",
    "MonteCarloIntegrator",
    "StratifiedIntegrator",
    "ContinuousIntegrator",
    "integrate",
    "MSE",
    "BCE",
    "L1",
    "ClampedL1",
    "PointLoss",
    "get_loss",
    "gon_latent",
    "map_latent",
    "gon_loss",
    "ExplicitLatentModel",
    "LatentModel",
    "ObjectiveResult",
    "render",
    "render_points",
    "encode",
    "encode_render",
    "slerp",
    "slerp_path",
    "GaussianLatentSampler",
    "shapes",
    "modality",
    "extract_mesh",
    "sdf_grid",
    "sdf_slice",
    "chamfer_distance",
    "normal_consistency",
    "volumetric_iou",
    "sdf_gon_latent",
    "sdf_gon_loss",
    "latent_sdf",
    "LatentSDF",
    "eikonal_loss",
]

_compat.install()
