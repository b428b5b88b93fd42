"""Modality conversion with GONs: the latent comes from one signal, the loss from another.

The gradient-origin latent is computed from a *source* signal (the inner integral) and the
network is trained to reproduce a *target* signal from it (the outer integral)::

    z_i   = -w Σ_{p ∈ source grid} ∇_{z0} ℓ(F(c_p ⊕ z0), s_ip)   at z0 = 0
    loss  = mean_i Σ_{q ∈ target grid} ℓ(F(c_q ⊕ z_i), x_iq)

With the source a downsampled copy of the target this is *learned super-resolution*: after
training, one gradient step on a low-resolution image gives a latent whose render at the high
resolution is the model's estimate of the original (the paper's generalisation to modality
conversion). Grids use the cell-centred convention of :func:`inr_gon.coords.grid`, so a 14²
grid's points are the centres of the 2×2 blocks of the 28² grid that area downsampling
averages.

The functions here are pure tensor code (no file I/O); training is the ``superres`` task of
:mod:`inr_gon.training` (:func:`inr_gon.training.fit_conversion` for given pairs). Source and target images share the
channel count (the model's ``out_dim``); their resolutions are arbitrary.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..core.coords import grid, image_to_points, normalize_resolution
from ..core.gon import gon_loss
from ..core.integrators import GridIntegrator
from ..geometry.render import decode, encode

__all__ = ["area_downsample", "upsample", "check_pair", "conversion_loss", "encode_source", "convert"]


def area_downsample(images: torch.Tensor, factor: int) -> torch.Tensor:
    """Average ``factor × factor`` blocks: ``(B, C, H, W)`` -> ``(B, C, H/factor, W/factor)``.

    ``H`` and ``W`` must be multiples of ``factor`` (area resampling, exactly).
    """
    if not isinstance(factor, int) or isinstance(factor, bool) or factor < 1:
        raise ValueError(f"factor must be a positive int, got {factor!r}")
    if images.dim() != 4:
        raise ValueError(f"images must have shape (B, C, H, W), got {tuple(images.shape)}")
    H, W = images.shape[2:]
    if H % factor or W % factor:
        raise ValueError(f"image size {H}x{W} is not a multiple of factor {factor}")
    return F.avg_pool2d(images, factor) if factor > 1 else images


def upsample(images: torch.Tensor, size, *, mode: str = "bicubic") -> torch.Tensor:
    """Classical upsampling baseline: ``(B, C, h, w)`` -> ``(B, C, *size)`` clamped to [0, 1].

    ``mode``: ``"nearest"``, ``"bilinear"`` or ``"bicubic"`` (``align_corners=False``, the
    cell-centred convention of the GON grids).
    """
    if mode not in ("nearest", "bilinear", "bicubic"):
        raise ValueError(f"mode must be 'nearest', 'bilinear' or 'bicubic', got {mode!r}")
    size = (size, size) if isinstance(size, int) else tuple(size)
    kw = {} if mode == "nearest" else {"align_corners": False}
    return F.interpolate(images, size=size, mode=mode, **kw).clamp(0, 1)


def check_pair(source: torch.Tensor, target: torch.Tensor) -> None:
    """A one-line ``ValueError`` unless ``source`` and ``target`` are ``(B, C, ·, ·)`` images with the
    same batch and channels."""
    if source.dim() != 4 or target.dim() != 4:
        raise ValueError(
            f"source and target must be (B, C, H, W) images, got {tuple(source.shape)} and {tuple(target.shape)}"
        )
    if source.shape[:2] != target.shape[:2]:
        raise ValueError(f"source {tuple(source.shape)} and target {tuple(target.shape)} differ in batch or channels")


def conversion_loss(
    model,
    source: torch.Tensor,
    target: torch.Tensor,
    *,
    loss="mse",
    inner_scale: float = 1.0,
    outer_integrator=None,
    generator: torch.Generator | None = None,
    create_graph: bool = True,
    method: str = "auto",
    check: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GON loss with the inner integral on ``source`` and the outer integral on ``target``.

    Args:
        model: a latent-conditioned network over 2-D coordinates (e.g. ``LatentSiren(2, k, C, …)``).
        source: ``(B, C, h, w)`` images that give the latents (e.g. 14² downsampled digits).
        target: ``(B, C, H, W)`` images the latents must reproduce (e.g. the 28² originals).
        loss: inner and outer loss (``"mse"``, ``"bce"`` on logits, ``"l1"``, …).
        inner_scale: weight of each source pixel: ``z = -inner_scale · ∇ Σ_p ℓ``.
        outer_integrator: points of the outer integral (default: every target pixel, weight 1);
            e.g. ``MonteCarloIntegrator(fraction=0.25)``.
        create_graph: ``True`` to train (the loss differentiates through ``z``).
    Returns:
        ``(loss, z)``: the batch mean of the outer per-image sums (scalar) and ``(B, k)`` latents.
    """
    check_pair(source, target)
    ic = grid(tuple(source.shape[2:]), device=source.device, dtype=source.dtype)
    oc = grid(tuple(target.shape[2:]), device=target.device, dtype=target.dtype)
    return gon_loss(
        model,
        oc,
        image_to_points(target),
        inner_coords=ic,
        inner_target=image_to_points(source),
        inner_loss=loss,
        inner_integrator=GridIntegrator(scale=inner_scale),
        outer_integrator=outer_integrator,
        create_graph=create_graph,
        generator=generator,
        method=method,
        check=check,
    )


@torch.no_grad()
def encode_source(
    model,
    source: torch.Tensor,
    *,
    loss="mse",
    inner_scale: float = 1.0,
    batch_size: int = 1000,
    steps: int | None = None,
) -> torch.Tensor:
    """Latents ``(B, k)`` of source images ``(B, C, h, w)`` (the model's latent steps from the
    origin, or ``steps``)."""
    if source.dim() != 4:
        raise ValueError(f"source must have shape (B, C, H, W), got {tuple(source.shape)}")
    inner = GridIntegrator(scale=inner_scale)
    return encode(model, source, loss=loss, integrator=inner, batch_size=batch_size, steps=steps)


@torch.no_grad()
def convert(
    model,
    source: torch.Tensor,
    resolution,
    *,
    loss="mse",
    inner_scale: float = 1.0,
    batch_size: int = 1000,
    chunk_size: int = 2**16,
    steps: int | None = None,
) -> torch.Tensor:
    """Source images ``(B, C, h, w)`` -> latents (``steps`` latent steps, default the model's) ->
    renders ``(B, C, *resolution)`` in [0, 1] for ``"mse"``/``"l1"`` models (a sigmoid is applied
    for ``"bce"``, which trains logits).

    ``resolution`` is free: the training target size, or any other (the render is continuous).
    """
    outs = []
    for i in range(0, source.shape[0], batch_size):
        z = encode_source(model, source[i : i + batch_size], loss=loss, inner_scale=inner_scale, steps=steps)
        outs.append(decode(model, z, resolution, loss=loss, chunk_size=chunk_size))
    if not outs:
        return source.new_zeros(0, model.out_dim, *normalize_resolution(resolution, model.coord_dim))
    return torch.cat(outs)
