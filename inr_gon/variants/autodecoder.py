"""A DeepSDF-style auto-decoder, the baseline of SDF GONs: one latent code per training shape,
optimised with the network; an unseen shape is encoded by optimising a fresh code against its
points with the network frozen (Park et al., 2019).

Shapes as in the package docstring: ``B`` shapes, ``P`` points, ``k`` latent size.
"""

from __future__ import annotations

import torch
from torch import nn

from ..core.sdf import sdf_point_loss

__all__ = ["AutoDecoder", "fit_codes"]


class AutoDecoder(nn.Module):
    """A latent-conditioned network with a table of per-shape codes.

    Args:
        net: the decoder ``net(coords, z) -> (B, P, 1)`` (e.g. :class:`~inr_gon.nn.siren.LatentSiren`).
        num_codes: training shapes.
        init_std: the codes start at ``N(0, init_std²)`` (DeepSDF: 0.01).

    ``forward(coords, z)`` is the decoder's, so the model renders and meshes like any latent model;
    ``codes(index)`` are the training shapes' latents ``(B, k)``.
    """

    def __init__(self, net: nn.Module, num_codes: int, *, init_std: float = 0.01):
        super().__init__()
        if not isinstance(num_codes, int) or num_codes < 1:
            raise ValueError(f"num_codes must be a positive int, got {num_codes!r}")
        self.net = net
        self.latent_dim = net.latent_dim
        self.num_codes, self.init_std = num_codes, float(init_std)
        self.codes = nn.Embedding(num_codes, net.latent_dim)
        nn.init.normal_(self.codes.weight, std=self.init_std)

    def config(self) -> dict:
        return {"net": self.net.config(), "num_codes": self.num_codes, "init_std": self.init_std}

    def forward(self, coords: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.net(coords, z)


def fit_codes(
    net: nn.Module,
    points: torch.Tensor,
    sdf: torch.Tensor,
    *,
    iterations: int = 200,
    lr: float = 5e-3,
    loss="clamped_l1",
    delta: float = 0.1,
    code_reg: float = 1e-4,
    init_std: float = 0.01,
    generator: torch.Generator | None = None,
    init: torch.Tensor | None = None,
) -> torch.Tensor:
    """Latents of shapes by optimisation with the network frozen (DeepSDF's test-time encoding).

    Args:
        points: ``(B, P, 3)``; sdf: ``(B, P)``.
        iterations: Adam steps on the codes; ``code_reg``: weight of ``mean ||z||²``.
        init: ``(B, k)`` codes to start from (e.g. a GON's one-step latents: test-time
            refinement); default: ``init_std`` times Gaussian noise (DeepSDF's).
    Returns:
        ``(B, k)`` detached codes.
    """
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    point_loss = sdf_point_loss(loss, delta=delta)
    if init is not None:
        if init.shape != (points.shape[0], net.latent_dim):
            raise ValueError(f"init must have shape {(points.shape[0], net.latent_dim)}, got {tuple(init.shape)}")
        z = init.detach().clone().to(points).requires_grad_()
    else:
        z = (
            torch.randn(points.shape[0], net.latent_dim, generator=generator, device=points.device, dtype=points.dtype)
            * init_std
        ).requires_grad_()
    opt = torch.optim.Adam([z], lr=lr)
    req = [p.requires_grad for p in net.parameters()]
    for p in net.parameters():
        p.requires_grad_(False)
    try:
        with torch.enable_grad():
            for _ in range(iterations):
                value = point_loss(net(points, z), sdf.unsqueeze(-1)).mean() + code_reg * z.square().sum(-1).mean()
                opt.zero_grad(set_to_none=True)
                value.backward()
                opt.step()
    finally:
        for p, r in zip(net.parameters(), req):
            p.requires_grad_(r)
    return z.detach()
