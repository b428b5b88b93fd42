"""Encoder-based baselines with the same implicit decoder as a GON: an autoencoder and a VAE.

The GON paper compares GONs with autoencoders that have the *same decoder* plus an encoder;
a GON has no encoder, so with an encoder about the decoder's size the autoencoder has about
twice the GON's parameters ("lower reconstruction loss with half the parameters").
:func:`encoder_width_for` picks the hidden width of a one-hidden-layer MLP encoder so that its
parameter count is as close as possible to a target (the decoder's count).

Shapes: ``B`` batch, ``C, H, W`` images, ``D = C·H·W``, ``k`` latent dimension, ``h`` hidden width.
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from ..core.coords import grid, image_to_points
from ..core.losses import get_loss
from .variational import kl_standard_normal, reparameterize

__all__ = ["MLPEncoder", "encoder_width_for", "count_parameters", "Autoencoder", "VAE"]


def count_parameters(module: nn.Module) -> int:
    """Number of scalar parameters of ``module``."""
    return sum(p.numel() for p in module.parameters())


def _mlp_params(in_dim: int, hidden: int, out_dim: int) -> int:
    return (in_dim + 1) * hidden + (hidden + 1) * out_dim


def encoder_width_for(target_params: int, in_dim: int, out_dim: int) -> int:
    """Hidden width ``h >= 1`` of ``Linear(in_dim, h) -> ReLU -> Linear(h, out_dim)`` whose
    parameter count ``(in_dim+1)h + (h+1)out_dim`` is closest to ``target_params``."""
    for name, v in (("target_params", target_params), ("in_dim", in_dim), ("out_dim", out_dim)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    h = (target_params - out_dim) / (in_dim + 1 + out_dim)
    cands = {max(1, int(h)), max(1, int(h) + 1)}
    return min(cands, key=lambda c: (abs(_mlp_params(in_dim, c, out_dim) - target_params), c))


class MLPEncoder(nn.Module):
    """``x (B, C, H, W) -> (B, out_dim)``: flatten, ``Linear(D, h)``, ReLU, ``Linear(h, out_dim)``."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, *, device=None, dtype=None):
        super().__init__()
        for name, v in (("in_dim", in_dim), ("hidden_dim", hidden_dim), ("out_dim", out_dim)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        self.in_dim, self.hidden_dim, self.out_dim = in_dim, hidden_dim, out_dim
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden_dim, device=device, dtype=dtype),
            nn.ReLU(),
            nn.Linear(hidden_dim, out_dim, device=device, dtype=dtype),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        if x.shape[1] != self.in_dim:
            raise ValueError(f"input has {x.shape[1]} values per sample but the encoder expects {self.in_dim}")
        return self.net(x)


class _Base(nn.Module):
    def __init__(self, decoder, encoder, bounds):
        super().__init__()
        if not hasattr(decoder, "coord_dim") or not isinstance(getattr(decoder, "latent_dim", None), int):
            raise TypeError("decoder must be an implicit decoder with coord_dim and latent_dim")
        self.decoder, self.encoder, self.bounds = decoder, encoder, bounds
        self.latent_dim = decoder.latent_dim

    def _points(self, images):
        if not isinstance(images, torch.Tensor) or images.dim() != self.decoder.coord_dim + 2:
            raise ValueError(
                f"images must be a tensor of shape (B, C, H, W), got "
                f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}"
            )
        c = grid(tuple(images.shape[2:]), bounds=self.bounds, device=images.device, dtype=images.dtype)
        return c, image_to_points(images)


class Autoencoder(_Base):
    """MLP encoder + implicit decoder: ``z = E(x)``, reconstruction ``F(c ⊕ z)``.

    Args:
        decoder: an implicit decoder (e.g. the GON's :class:`~inr_gon.siren.LatentSiren`).
        image_shape: ``(C, H, W)`` of the inputs.
        hidden_dim: encoder hidden width (default: :func:`encoder_width_for` the decoder's size).
        loss: reconstruction loss (``"mse"`` default).
    """

    def __init__(
        self,
        decoder: nn.Module,
        image_shape: tuple[int, int, int],
        *,
        hidden_dim: int | None = None,
        loss="mse",
        bounds=(-1.0, 1.0),
        device=None,
        dtype=None,
    ):
        D = int(torch.tensor(image_shape).prod())
        k = decoder.latent_dim
        h = hidden_dim or encoder_width_for(count_parameters(decoder), D, k)
        super().__init__(
            decoder.to(device=device, dtype=dtype), MLPEncoder(D, h, k, device=device, dtype=dtype), bounds
        )
        self.loss_fn = get_loss(loss)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """``images (B, C, H, W)`` -> latents ``(B, k)``."""
        return self.encoder(images)

    def loss(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(loss, z)``: batch mean of per-sample summed reconstruction loss (as
        :func:`inr_gon.gon_loss`), and ``(B, k)`` latents."""
        c, t = self._points(images)
        z = self.encoder(images)
        return self.loss_fn(self.decoder(c, z), t).sum((1, 2)).mean(), z


class VAE(_Base):
    """MLP encoder giving ``(μ, log σ²)`` + implicit decoder on logits, trained on the negative
    ELBO ``Σ BCE + KL(N(μ, σ²) ‖ N(0, I))`` (data in [0, 1]).

    Args as :class:`Autoencoder`; the encoder outputs ``2k`` values.
    """

    def __init__(
        self,
        decoder: nn.Module,
        image_shape: tuple[int, int, int],
        *,
        hidden_dim: int | None = None,
        bounds=(-1.0, 1.0),
        device=None,
        dtype=None,
    ):
        if getattr(decoder, "out_activation", None) is not None:
            raise ValueError("the VAE decoder must output logits: build it with out_activation=None")
        D = int(torch.tensor(image_shape).prod())
        k = decoder.latent_dim
        h = hidden_dim or encoder_width_for(count_parameters(decoder), D, 2 * k)
        super().__init__(
            decoder.to(device=device, dtype=dtype), MLPEncoder(D, h, 2 * k, device=device, dtype=dtype), bounds
        )

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``images (B, C, H, W)`` -> ``(μ, log σ²)``, each ``(B, k)``."""
        mu, logvar = self.encoder(images).chunk(2, dim=-1)
        return mu, logvar

    def loss(
        self, images: torch.Tensor, *, generator: torch.Generator | None = None, kl_weight: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """``(loss, μ, parts)``: batch mean of ``BCE + kl_weight·KL``, the encoder means ``(B, k)``,
        and per-sample ``"bce"``, ``"kl"`` ``(B,)``."""
        c, t = self._points(images)
        mu, logvar = self.encode(images)
        zp = reparameterize(mu, torch.exp(0.5 * logvar), generator=generator)
        bce = F.binary_cross_entropy_with_logits(self.decoder(c, zp), t, reduction="none").sum((1, 2))
        kl = kl_standard_normal(mu, logvar=logvar)
        return (bce + kl_weight * kl).mean(), mu, {"bce": bce, "kl": kl}
