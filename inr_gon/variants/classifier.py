"""Classifier GON (Bond-Taylor & Willcocks, ICLR 2021, Eq. 4).

A linear classifier ``f`` with softmax reads the gradient-origin latent::

    ŷ = softmax(f(z)),   z = -∇_{z0} L(x, F(z0))  at z0 = 0

and is trained either

* *solely* as a classifier (``mode="classifier"``): the loss is the cross-entropy only; its
  gradient flows through ``z`` (a second-order term) into ``F``, so ``F`` learns to make its
  gradients at the origin linearly separable without ever being asked to reconstruct; or
* *jointly* (``mode="joint"``): the GON outer reconstruction loss plus ``ce_weight`` times the
  cross-entropy.

With ``latent_dim=2`` the latents can be scattered directly (the paper's Figure 7).

Shapes: ``B`` batch, ``C, H, W`` images, ``P`` points, ``n`` coordinate dimension, ``O``
channels, ``k`` latent dimension, ``K`` classes.
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from ..core.coords import grid, image_to_points
from ..core.gon import gon_latent, gon_loss
from ..core.integrators import GridIntegrator
from ..core.losses import get_loss

__all__ = ["ClassifierGON"]


class ClassifierGON(nn.Module):
    """A latent-conditioned decoder ``F`` plus a linear classifier on its gradient-origin latents.

    Args:
        decoder: a :class:`~inr_gon.siren.LatentSiren` (or any model accepted by
            :func:`inr_gon.gon_latent`) with ``coord_dim`` and ``latent_dim``.
        num_classes: ``K`` (>= 2).
        inner_loss: the loss whose gradient at the origin is the latent (and the outer
            reconstruction loss in joint mode): ``"mse"``, ``"bce"`` (logits), ...
        mode: default training mode, ``"classifier"`` or ``"joint"``.
        ce_weight: weight of the cross-entropy in joint mode.
        bounds: coordinate domain of the image grid.
        device: where to create the classifier (the decoder is moved there too).
        dtype: its dtype.

    Attributes: ``decoder``, ``classifier`` (``nn.Linear(k, K)``).
    """

    MODES = ("classifier", "joint")

    def __init__(
        self,
        decoder: nn.Module,
        num_classes: int,
        *,
        inner_loss="mse",
        inner_scale: float = 1.0 / 64,
        mode: str = "classifier",
        ce_weight: float = 1.0,
        bounds=(-1.0, 1.0),
        device=None,
        dtype=None,
    ):
        super().__init__()
        k = getattr(decoder, "latent_dim", None)
        if not isinstance(k, int) or k < 1:
            raise TypeError(f"decoder must have a positive int attribute latent_dim, got {k!r}")
        if not hasattr(decoder, "coord_dim"):
            raise TypeError("decoder must be an implicit decoder with a coord_dim attribute")
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
        self._check_mode(mode)
        self.decoder = decoder.to(device=device, dtype=dtype)
        self.classifier = nn.Linear(k, num_classes, device=device, dtype=dtype)
        self.latent_dim, self.num_classes = k, num_classes
        self.inner_loss, self.mode, self.ce_weight, self.bounds = inner_loss, mode, float(ce_weight), bounds
        self.inner = GridIntegrator(scale=inner_scale)  # the latent: -inner_scale · ∇ Σ_p ℓ

    def _check_mode(self, mode):
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {self.MODES}, got {mode!r}")

    def _points(self, images: torch.Tensor):
        if not isinstance(images, torch.Tensor):
            raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
        if images.dim() != self.decoder.coord_dim + 2:
            raise ValueError(
                f"images must have shape (B, C, {', '.join(['size'] * self.decoder.coord_dim)}), "
                f"got {tuple(images.shape)}"
            )
        c = grid(tuple(images.shape[2:]), bounds=self.bounds, device=images.device, dtype=images.dtype)
        return c, image_to_points(images)

    def latent(self, images: torch.Tensor, *, create_graph: bool = False) -> torch.Tensor:
        """Gradient-origin latents of ``images (B, C, H, W)``: ``(B, k)``."""
        c, t = self._points(images)
        return gon_latent(self.decoder, c, t, loss=self.inner_loss, integrator=self.inner, create_graph=create_graph)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits ``(B, K)`` of ``images (B, C, H, W)`` (no training graph)."""
        return self.classifier(self.latent(images))

    @torch.no_grad()
    def predict(self, images: torch.Tensor, *, batch_size: int = 500) -> torch.Tensor:
        """Predicted classes ``(B,)`` int64, in batches of ``batch_size``."""
        return torch.cat(
            [self.logits(images[s : s + batch_size]).argmax(-1) for s in range(0, images.shape[0], batch_size)]
        )

    def accuracy(self, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 500, device=None) -> float:
        """Fraction of ``images (N, C, H, W)`` whose predicted class equals ``labels (N,)``."""
        if labels.shape != (images.shape[0],):
            raise ValueError(f"labels must have shape ({images.shape[0]},), got {tuple(labels.shape)}")
        device = device or self.classifier.weight.device
        correct = 0
        for s in range(0, images.shape[0], batch_size):
            pred = self.predict(images[s : s + batch_size].to(device), batch_size=batch_size)
            correct += int((pred.cpu() == labels[s : s + batch_size].cpu()).sum())
        return correct / max(1, images.shape[0])

    def loss(
        self, images: torch.Tensor, labels: torch.Tensor, *, mode: str | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """Training objective.

        Args:
            images: ``(B, C, H, W)``; labels: ``(B,)`` int64 in ``[0, K)``.
            mode: ``"classifier"`` (cross-entropy only, through ``z`` into ``F``) or ``"joint"``
                (per-point reconstruction + ``ce_weight`` · cross-entropy); default ``self.mode``.
        Returns:
            ``(loss, z, parts)``: scalar loss, ``(B, k)`` latents, and ``parts`` with scalar
            ``"ce"``, ``"recon"`` (the GON outer loss, batch mean of per-sample sums; computed
            without gradient in classifier mode), ``"accuracy"`` (float) and ``"logits"``
            ``(B, K)``.
        """
        mode = mode or self.mode
        self._check_mode(mode)
        if not isinstance(labels, torch.Tensor) or labels.dtype != torch.long:
            raise TypeError("labels must be an int64 torch.Tensor")
        if labels.shape != (images.shape[0],):
            raise ValueError(f"labels must have shape ({images.shape[0]},), got {tuple(labels.shape)}")
        c, t = self._points(images)
        if mode == "joint":
            recon, z = gon_loss(self.decoder, c, t, inner_loss=self.inner_loss, inner_integrator=self.inner)
        else:
            z = gon_latent(self.decoder, c, t, loss=self.inner_loss, integrator=self.inner, create_graph=True)
        logits = self.classifier(z)
        ce = F.cross_entropy(logits, labels)
        if mode == "joint":
            # the reconstruction per point (not the per-image sum over P points), so that the
            # cross-entropy is not swamped by a P-times larger term
            loss = recon / t.shape[1] + self.ce_weight * ce
        else:
            loss = ce
            with torch.no_grad():
                recon = get_loss(self.inner_loss)(self.decoder(c, z.detach()), t).sum((1, 2)).mean()
        acc = (logits.argmax(-1) == labels).float().mean().item()
        return loss, z, {"ce": ce.detach(), "recon": recon.detach(), "accuracy": acc, "logits": logits}
