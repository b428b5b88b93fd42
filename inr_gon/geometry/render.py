"""Rendering latents at any resolution and over any sub-window of the domain.

Renders evaluate ``F(c ⊕ z)`` on a grid of the same convention as training
(:func:`inr_gon.coords.grid`, cell centres by default), so a render at the training resolution
reproduces the training reconstruction exactly and renders at other resolutions stay aligned.
Points are evaluated in chunks under ``torch.no_grad()``: peak memory is bounded by
``chunk_size`` (points × batch × hidden width), not by the resolution.
"""

from __future__ import annotations

import math

import torch

from ..core.coords import axis_coordinates, grid, image_to_points, normalize_bounds, normalize_resolution
from ..core.gon import gon_latent

__all__ = ["render", "render_points", "encode", "decode", "encode_render"]


def _check_latents(z) -> None:
    """One-line ``TypeError``/``ValueError`` unless ``z`` is a floating-point ``(B, k)`` tensor."""
    if not isinstance(z, torch.Tensor):
        raise TypeError(f"z must be a torch.Tensor of shape (B, k), got {type(z).__name__}")
    if not z.is_floating_point():
        raise TypeError(f"z must be a floating-point tensor, got dtype {z.dtype}")
    if z.dim() != 2:
        raise ValueError(f"z must have shape (B, k), got {tuple(z.shape)}")


def render_points(
    model, coords: torch.Tensor, z: torch.Tensor, *, chunk_size: int = 2**16, out: torch.Tensor | None = None
) -> torch.Tensor:
    """Evaluate ``model(coords, z)`` in chunks of ``chunk_size`` points × the batch.

    Args:
        coords: ``(P, n)`` points shared by the batch.
        z: ``(B, k)`` latents.
    Returns:
        ``(B, P, O)`` values (in ``out`` if given).
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    _check_latents(z)
    B, P = z.shape[0], coords.shape[0]
    per = max(1, chunk_size // max(B, 1))
    with torch.no_grad():
        for s in range(0, P, per):
            y = model(coords[s : s + per], z)
            if out is None:
                out = y.new_empty(B, P, y.shape[-1])
            out[:, s : s + per] = y
    return out


def render(
    model,
    z: torch.Tensor,
    resolution,
    *,
    bounds=(-1.0, 1.0),
    window=None,
    align_corners: bool = False,
    chunk_size: int = 2**16,
    device=None,
) -> torch.Tensor:
    """Render latents as images at any resolution.

    Args:
        model: a latent-conditioned network ``model(coords (P, n), z (B, k)) -> (B, P, O)``.
        z: ``(B, k)`` latents.
        resolution: ``int`` (square/cubic, ``n = model.coord_dim`` axes) or one size per axis.
        bounds: the training domain (``(lo, hi)`` or one pair per axis); it fixes the grid
            convention so that renders line up with the training grid.
        window: optional sub-window (zoom/crop), ``(lo, hi)`` or one pair per axis, inside or
            beyond ``bounds``. The window is split into ``resolution`` cells; with
            ``window == bounds`` the render equals the full render.
        chunk_size: points evaluated at once (times the batch); bounds peak memory.
    Returns:
        ``(B, O, *resolution)`` images (on the model's device).
    """
    _check_latents(z)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    n = model.coord_dim
    res = normalize_resolution(resolution, n)
    pairs = normalize_bounds(window if window is not None else bounds, n)
    device = device or z.device
    B = z.shape[0]
    axes = [
        axis_coordinates(r, lo, hi, align_corners=align_corners, device=device, dtype=z.dtype)
        for r, (lo, hi) in zip(res, pairs)
    ]
    P = math.prod(res)
    per = max(1, chunk_size // max(B, 1))
    z = z.to(device)
    out, flat = None, None
    # stream over flat C-order point indices: each chunk's coordinates are gathered from the
    # per-axis coordinates, so no (P, n) grid, row or slab is ever built and the working memory
    # is O(chunk_size × hidden) whatever the resolution and the number of axes
    with torch.no_grad():
        for s in range(0, P, per):
            idx = torch.arange(s, min(s + per, P), device=device)
            cols = []
            for d in range(n - 1, -1, -1):
                cols.append(axes[d][idx % res[d]])
                idx = idx // res[d]
            y = model(torch.stack(cols[::-1], -1), z)  # (B, m, O)
            if out is None:
                out = y.new_empty(B, y.shape[-1], *res)
                flat = out.view(B, y.shape[-1], P)
            flat[:, :, s : s + y.shape[1]] = y.transpose(1, 2)
    return out


def decode(model, z: torch.Tensor, resolution, *, loss="mse", chunk_size: int = 2**16) -> torch.Tensor:
    """:func:`render` mapped to the targets' range: a sigmoid for models trained with the
    BCE-on-logits loss (``loss="bce"``), the raw output otherwise. ``(B, O, *resolution)``."""
    y = render(model, z, resolution, chunk_size=chunk_size)
    return torch.sigmoid(y) if loss == "bce" else y


def encode(
    model,
    images: torch.Tensor,
    *,
    bounds=(-1.0, 1.0),
    loss="mse",
    integrator=None,
    batch_size: int = 256,
    check: bool = True,
    steps: int | None = None,
) -> torch.Tensor:
    """Encode images ``(B, C, *spatial)`` into gradient-origin latents ``(B, k)`` (no training
    graph), in batches of ``batch_size``. ``integrator`` fixes the inner integral (e.g.
    ``GridIntegrator(scale=...)`` as a model was trained with); ``steps``: the latent's steps
    (default: the model's trained ``latent_steps``; more fit each image better, each further step
    costs a per-image pass); ``check=False`` skips the per-batch input validation (one host sync
    each on CUDA)."""
    if images.dim() != model.coord_dim + 2:
        raise ValueError(
            f"images must have shape (B, C, {', '.join(['size'] * model.coord_dim)}), got {tuple(images.shape)}"
        )
    c = grid(tuple(images.shape[2:]), bounds=bounds, device=images.device, dtype=images.dtype)
    zs = [
        gon_latent(
            model,
            c,
            image_to_points(images[i : i + batch_size]),
            loss=loss,
            integrator=integrator,
            check=check,
            steps=steps,
        )
        for i in range(0, images.shape[0], batch_size)
    ]
    return torch.cat(zs) if zs else images.new_zeros(0, model.latent_dim)


def encode_render(
    model, images: torch.Tensor, resolution, *, bounds=(-1.0, 1.0), window=None, loss="mse", chunk_size: int = 2**16
) -> torch.Tensor:
    """Image(s) in -> latent(s) -> image(s) at another resolution ``(B, O, *resolution)``."""
    z = encode(model, images, bounds=bounds, loss=loss)
    return render(model, z, resolution, bounds=bounds, window=window, chunk_size=chunk_size)
