"""Training objectives: each the whole step's loss as one ``nn.Module`` forward.

The trainer wraps the task's objective (not the bare model) in ``DistributedDataParallel``, so
every use of every parameter — the inner latent and the outer loss — happens inside one DDP
forward. Every objective is called as ``objective(*batch, generator=g)`` and returns an
:class:`~inr_gon.core.protocols.ObjectiveResult` ``(loss, z, parts)``: the scalar to
differentiate, the ``(B, k)`` latents, and detached scalars to log (``parts["loss"]`` is the
reported training loss).

Mixed precision (``amp="bf16"``/``"fp16"``) autocasts the *outer* pass only: the latent ``z``
and its graph (the second-order part of the step) stay float32 and losses are reduced in
float32.
"""

from __future__ import annotations

import torch
from torch import nn

from ..core.gon import gon_latent
from ..core.integrators import GridIntegrator, Integrator, integrate
from ..core.losses import get_loss
from ..core.protocols import ObjectiveResult
from ..core.sdf import sdf_gon_loss

__all__ = ["AMP_DTYPES", "GONObjective", "SdfGONObjective", "LossObjective"]

AMP_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def _amp_dtype(amp: str):
    if amp not in AMP_DTYPES:
        raise ValueError(f"amp must be one of {sorted(AMP_DTYPES)}, got {amp!r}")
    return AMP_DTYPES[amp]


class GONObjective(nn.Module):
    """The GON objective: ``forward(coords, target[, inner_coords, inner_target]) -> (loss, z, parts)``.

    Same value as :func:`inr_gon.core.gon.gon_loss` with ``create_graph=True`` (bit-identical
    with ``amp="off"``): ``z = -∇_{z0}`` of the inner integral (on ``inner_coords`` /
    ``inner_target`` when given — modality conversion — else on the outer points), then the
    outer integral through ``z``, averaged over the batch.

    Args:
        model: a :class:`~inr_gon.nn.siren.LatentSiren` (or any model ``gon_latent`` accepts).
        loss: the inner point loss (``"mse"``, ``"bce"``, ``"l1"``, ...); ``outer_loss``: the
            outer integral's (default: the same).
        inner: the inner integral's integrator (default: the full grid, weight 1).
        outer: the outer integral's (default: the full grid).
        amp: ``"off"``, ``"bf16"`` or ``"fp16"``: autocast dtype of the outer pass.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        loss="mse",
        outer_loss=None,
        inner: Integrator | None = None,
        outer: Integrator | None = None,
        amp: str = "off",
    ):
        super().__init__()
        self.dtype = _amp_dtype(amp)
        self.model = model
        self.loss = loss
        self.outer_loss = loss if outer_loss is None else outer_loss
        self.inner = inner or GridIntegrator()
        self.outer = outer or GridIntegrator()
        self.amp = amp

    def forward(
        self,
        coords: torch.Tensor,
        target: torch.Tensor,
        inner_coords: torch.Tensor | None = None,
        inner_target: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ):
        """Args:
            coords: ``(P, n)`` shared or ``(B, P, n)`` per-sample outer points; target ``(B, P, O)``.
            inner_coords: the inner integral's points (default: the outer).
            inner_target: its values (default: the outer).
            generator: for Monte-Carlo integrators (identical on every rank, so the ranks draw
                the same point subset, as one process with the whole batch would).
        Returns:
            ``(loss, z, parts)``: the batch mean of the outer integral (float32), ``(B, k)``
            latents, ``{"loss": loss / (P·O)}`` (the per-point loss).
        """
        ic, it = (coords, target) if inner_coords is None else (inner_coords, inner_target)
        z = gon_latent(
            self.model,
            ic,
            it,
            loss=self.loss,
            integrator=self.inner,
            create_graph=True,
            generator=generator,
            check=False,
        )
        c, t, w = self.outer.select(coords, target, generator=generator)
        if self.dtype is None:
            y = self.model(c, z)
        else:
            with torch.autocast(device_type=target.device.type, dtype=self.dtype):
                y = self.model(c, z)
            y = y.float()
        loss = integrate(get_loss(self.outer_loss)(y, t), w).mean()
        return ObjectiveResult(loss, z, {"loss": loss.detach() / (target.shape[1] * target.shape[2])})


class SdfGONObjective(nn.Module):
    """The SDF-GON objective: ``forward(inner_points, inner_sdf, points, sdf) -> (loss, z, parts)``.

    :func:`inr_gon.core.sdf.sdf_gon_loss` ``(model, points, sdf, inner_points=...,
    inner_sdf=..., **options)``: inner points ``(B, P, 3)`` or shared ``(P, 3)`` with
    ``inner_sdf (B, P)``, outer points ``(B, M, 3)`` with ``sdf (B, M)``. ``parts``: ``"loss"``
    (the outer SDF term) and ``"eikonal"``.
    """

    def __init__(self, model: nn.Module, *, amp: str = "off", **options):
        super().__init__()
        self.dtype = _amp_dtype(amp)
        self.model = model
        self.options = options

    def forward(self, inner_points, inner_sdf, points, sdf, *, generator=None):
        loss, z, parts = sdf_gon_loss(
            self.model,
            points,
            sdf,
            inner_points=inner_points,
            inner_sdf=inner_sdf,
            outer_dtype=self.dtype,
            **self.options,
        )
        return ObjectiveResult(loss, z, {"loss": parts["sdf"], "eikonal": parts["eikonal"]})


class LossObjective(nn.Module):
    """A model with its own ``loss(*batch)`` method (the classifier and variational GONs, the
    autoencoder baselines) as an objective.

    Args:
        model: the module whose parameters train.
        loss_fn: ``loss_fn(model, *batch) -> (loss, z, parts)`` with detached scalar ``parts``
            (``parts["loss"]`` the reported loss).
    """

    def __init__(self, model: nn.Module, loss_fn):
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, *batch, generator=None):
        loss, z, parts = self.loss_fn(self.model, *batch)
        return ObjectiveResult(loss, z, parts)
