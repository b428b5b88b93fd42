"""Latents of partial observations under a Gaussian prior on latent space.

A gradient-origin latent is fitted to what a sample shows. When the observation covers only
part of the signal (one depth view of a shape, a masked image), the latent directions that the
observed points do not constrain stay where the step's isotropic damping ``λI`` leaves them: at
the origin, so the unseen part is whatever the origin decodes to. A Gaussian ``N(μ, Σ)`` fitted to
the training latents (the one ``--sample`` draws from) instead fills those directions in as the
training samples co-vary with the visible part — Gaussian conditioning, linearised around the
current latent. :func:`map_latent` takes Gauss–Newton iterations on the inner integral ``E`` plus
the prior's energy, from the prior's mean::

    z ← z - (sΣ⁻¹ + H)⁻¹ (∇_z E(z) + sΣ⁻¹ (z - μ)),   z₀ = μ,

``H = Σ w ℓ''(F) JᵀJ`` the Gauss–Newton curvature of ``E`` in ``z`` (as in
:func:`~inr_gon.core.gon.gon_latent`'s Gauss–Newton steps) and ``s`` the prior's strength: the
inner integral's weights are not a likelihood's, so ``s`` is a temperature to be chosen on
held-out data, not derived. With a squared-error loss and a linear decoder one iteration is
exactly the Gaussian posterior's mean. Inference only (no graph is kept).
"""

from __future__ import annotations

import torch

from .gon import _curvature_matrix, _forward_at, _is_explicit, _jacobian_rows, _residual, check_target
from .integrators import GridIntegrator, Integrator
from .losses import get_loss

__all__ = ["map_latent"]


def _precision(mean: torch.Tensor, cov: torch.Tensor, k: int, strength: float) -> torch.Tensor:
    if mean.shape != (k,) or cov.shape != (k, k):
        raise ValueError(
            f"the prior must have mean (k,) and cov (k, k) with k = {k}, got {tuple(mean.shape)} and {tuple(cov.shape)}"
        )
    if not (isinstance(strength, (int, float)) and not isinstance(strength, bool) and strength > 0):
        raise ValueError(f"strength must be a number > 0, got {strength!r}")
    L, info = torch.linalg.cholesky_ex(cov.double())
    if int(info) != 0:
        raise ValueError("the prior's covariance is not positive definite")
    return strength * torch.cholesky_inverse(L)


@torch.no_grad()
def map_latent(
    model,
    coords: torch.Tensor,
    target: torch.Tensor,
    *,
    mean: torch.Tensor,
    cov: torch.Tensor,
    strength: float = 1e-3,
    iterations: int = 3,
    loss="mse",
    integrator: Integrator | None = None,
    init: torch.Tensor | None = None,
    check: bool = True,
) -> torch.Tensor:
    """Maximum a posteriori latents ``(B, k)`` of ``target`` under the prior ``N(mean, cov)``
    (module docstring): ``iterations`` Gauss–Newton steps from ``mean``.

    Args:
        model: an :class:`~inr_gon.core.protocols.ExplicitLatentModel` (its explicit backward
            gives the Jacobian rows).
        coords: ``(P, n)`` shared by the batch or ``(B, P, n)`` per sample.
        target: ``(B, P, O)`` observed values.
        mean: ``(k,)``; cov: ``(k, k)`` positive definite (e.g. a run's ``latent_stats``).
        strength: ``s > 0``, the prior's weight against the inner integral.
        iterations: Gauss–Newton steps (``>= 1``).
        loss: the inner point loss (a name, a :class:`~inr_gon.core.losses.PointLoss` or a
            callable ``(pred, target) -> (B, P, O)``, e.g. :func:`~inr_gon.core.sdf.bounded_loss`).
        integrator: which points and weights (default: all points, weight 1).
        init: ``(B, k)`` latents to start from (default: ``mean``).
    """
    if not _is_explicit(model):
        raise TypeError(f"map_latent needs an explicit latent model, which {type(model).__name__} is not")
    if not isinstance(iterations, int) or isinstance(iterations, bool) or iterations < 1:
        raise ValueError(f"iterations must be an int >= 1, got {iterations!r}")
    if check:
        check_target(model, coords, target)
    k = model.latent_dim
    dt = torch.promote_types(target.dtype, torch.float32)  # no low-precision solves
    prec = _precision(mean, cov, k, strength).to(device=target.device, dtype=dt)
    mu = mean.to(device=target.device, dtype=target.dtype)
    loss = get_loss(loss)
    act = getattr(model, "out_activation", None)
    c, t, w = (integrator or GridIntegrator()).select(coords, target)
    W = model.latent_readout()  # (H', k)
    if init is not None and init.shape != (t.shape[0], k):
        raise ValueError(f"init must have shape (B, k) = ({t.shape[0]}, {k}), got {tuple(init.shape)}")
    z = mu.expand(t.shape[0], k).clone() if init is None else init.to(mu).clone()
    for _ in range(iterations):
        raw, us = _forward_at(model, c, z)  # (B, P, O)
        Jz = _jacobian_rows(model, us, raw) @ W  # (B, P·O, k)
        r = (_residual(loss, raw, t, act, False) * w).flatten(1)  # (B, P·O)
        g = (r.unsqueeze(-2) @ Jz).squeeze(-2).to(dt) + (z - mu).to(dt) @ prec  # (B, k)
        A = _curvature_matrix(loss, raw, t, act, w, Jz, False).to(dt) + prec  # (B, k, k)
        z = z - torch.linalg.solve(A, g.unsqueeze(-1)).squeeze(-1).to(z.dtype)
    return z
