"""The convolutional decoder of the paper's convolutional (variational) GONs."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ConvDecoder"]


class ConvDecoder(nn.Module):
    """DCGAN-style decoder of the paper's convolutional GONs: ``z (B, k) -> logits (B, C, S, S)``.

    ``image_size=32`` is cwkx/GON's ``Variational-GON.py`` generator: transposed convolutions
    ``k -> 4c (4×4) -> 2c (8×8) -> c (16×16) -> C (32×32)`` (``c = base_channels``); for
    ``image_size=28`` the first layer makes ``7×7`` and two stride-2 layers give ``28×28``.
    Each hidden layer is ConvTranspose -> BatchNorm (``batch_norm=True``) -> ReLU. The output is
    *logits* (cwkx/GON applies a sigmoid; here the loss applies it, which is stabler).

    Note: with batch norm in training mode the decoder's output for one sample depends on the
    others in its batch (as in cwkx/GON); in ``eval()`` mode the running statistics are used.
    """

    def __init__(
        self,
        latent_dim: int,
        out_channels: int = 1,
        *,
        image_size: int = 28,
        base_channels: int = 32,
        batch_norm: bool = True,
    ):
        super().__init__()
        for name, v in (("latent_dim", latent_dim), ("out_channels", out_channels), ("base_channels", base_channels)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if image_size not in (28, 32):
            raise ValueError(f"image_size must be 28 or 32, got {image_size!r}")
        self.latent_dim, self.out_channels, self.image_size = latent_dim, out_channels, image_size
        c = base_channels
        if image_size == 32:
            specs = [(latent_dim, 4 * c, 4, 1, 0), (4 * c, 2 * c, 4, 2, 1), (2 * c, c, 4, 2, 1)]
        else:
            specs = [(latent_dim, 2 * c, 7, 1, 0), (2 * c, c, 4, 2, 1)]
        layers: list[nn.Module] = []
        for cin, cout, ks, st, pad in specs:
            layers.append(nn.ConvTranspose2d(cin, cout, ks, st, pad))
            if batch_norm:
                layers.append(nn.BatchNorm2d(cout))
            layers.append(nn.ReLU(True))
        layers.append(nn.ConvTranspose2d(specs[-1][1], out_channels, 4, 2, 1))
        self.main = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``z (B, k)`` -> logits ``(B, C, S, S)``."""
        if not isinstance(z, torch.Tensor):
            raise TypeError(f"z must be a torch.Tensor, got {type(z).__name__}")
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z must have shape (B, {self.latent_dim}), got {tuple(z.shape)}")
        return self.main(z[:, :, None, None])
