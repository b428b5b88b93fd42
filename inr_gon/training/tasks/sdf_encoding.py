"""Encoding new shapes with a trained SDF model: its own step on samples of a shape (a mesh
file, a DeepSDF record, an observation), the latent under the training latents' prior for a
partial observation, and DeepSDF's test-time refinement of a latent."""

from __future__ import annotations

import torch

from ...core.integrators import GridIntegrator
from ...core.posterior import map_latent
from ...core.sdf import bounded_loss, sdf_gon_latent, sdf_point_loss

__all__ = ["encode_samples", "refine_latent", "PRIOR_STRENGTH", "PRIOR_ITERATIONS", "PRIOR_POINTS"]

#: a partial observation's latent under the training latents' Gaussian (``encode_samples(prior=)``):
#: the prior's strength against the inner integral and the Gauss–Newton iterations, chosen on
#: held-out shapes of the procedural family (benchmarks/sdf_completion.py, docs/findings/shapes.md)
PRIOR_STRENGTH = 1e-3
PRIOR_ITERATIONS = 2
#: the observation's samples those iterations fit (a random subset: more add little)
PRIOR_POINTS = 4096


@torch.no_grad()
def encode_samples(
    model, cfg, points: torch.Tensor, sdf: torch.Tensor, free=None, prior: dict | None = None
) -> torch.Tensor:
    """Latents ``(B, k)`` of new shapes from their own samples ``points (B, N, 3)``, ``sdf (B, N)``
    (e.g. a mesh file sampled like the training pools), as a model trained with ``cfg`` encodes
    shapes: its ``cfg.encode_steps`` gradient step(s) on as many points as a training shape is encoded from (an
    auto-decoder: ``cfg.encode_iterations`` steps on a fresh code). ``free`` ``(B, N)`` bool:
    samples whose ``sdf`` is a lower bound (an observation's free space,
    :func:`~inr_gon.core.sdf.bounded_loss`). ``prior``: for a partial observation, the keyword
    arguments of :func:`~inr_gon.core.posterior.map_latent` (``mean``, ``cov`` — a run's
    ``latent_stats`` —, optionally ``strength`` and ``iterations``; default
    :data:`PRIOR_STRENGTH`, :data:`PRIOR_ITERATIONS`; on :data:`PRIOR_POINTS` of the samples): the
    latent is then the most probable one under the training latents' Gaussian instead of the step
    from the origin (a GON only)."""
    g = torch.Generator(device=points.device).manual_seed(cfg.seed + 999)
    auto = hasattr(model, "codes")
    n = points.shape[1] if auto else min(cfg.num_inner if cfg.inner_sampling == "fixed" else 8192, points.shape[1])
    if prior is not None and not auto:
        n = min(n, PRIOR_POINTS)
    if not auto or free is not None:
        sel = torch.stack(
            [torch.randperm(points.shape[1], generator=g, device=points.device)[:n] for _ in range(points.shape[0])]
        )
        points, sdf = points.gather(1, sel[..., None].expand(-1, -1, 3)), sdf.gather(1, sel)
        free = free.gather(1, sel) if free is not None else None
    name = cfg.outer_loss if auto else cfg.inner_loss
    loss = bounded_loss(name, free, delta=cfg.delta) if free is not None else name
    if auto:
        from ...variants.autodecoder import fit_codes

        return fit_codes(
            model.net,
            points,
            sdf,
            iterations=cfg.encode_iterations,
            lr=cfg.encode_lr,
            loss=loss,
            delta=cfg.delta,
            code_reg=cfg.code_reg,
            init_std=cfg.code_init_std,
            generator=g,
        )
    if prior is not None:
        kw = {"strength": PRIOR_STRENGTH, "iterations": PRIOR_ITERATIONS, **prior}
        w = GridIntegrator(scale=cfg.inner_weight / points.shape[1])
        return map_latent(
            model, points, sdf.unsqueeze(-1), loss=sdf_point_loss(loss, delta=cfg.delta), integrator=w, **kw
        )
    return sdf_gon_latent(
        model, points, sdf, loss=loss, delta=cfg.delta, inner_weight=cfg.inner_weight, steps=cfg.encode_steps
    )


def refine_latent(model, cfg, points, sdf, z=None, *, steps: int, lr: float, free=None, generator=None):
    """``steps`` Adam steps on latents ``z`` ``(B, k)`` against samples ``points (B, N, 3)``,
    ``sdf (B, N)`` with the decoder fixed (DeepSDF's test-time optimisation; started from ``z``,
    e.g. the one-step latents, or with ``z=None`` from small noise drawn from ``generator``): the
    run's outer loss, free-space bounds where ``free`` ``(B, N)`` is true
    (:func:`~inr_gon.core.sdf.bounded_loss`). Returns ``(B, k)`` detached latents."""
    from ...variants.autodecoder import fit_codes

    return fit_codes(
        model.net if hasattr(model, "codes") else model,
        points,
        sdf,
        iterations=steps,
        lr=lr,
        loss=bounded_loss(cfg.outer_loss, free, delta=cfg.delta) if free is not None else cfg.outer_loss,
        delta=cfg.delta,
        code_reg=getattr(cfg, "code_reg", 1e-4),
        init=z,
        generator=generator,
    )
