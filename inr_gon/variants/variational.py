"""Variational GON (Bond-Taylor & Willcocks, ICLR 2021, Eq. 2).

The gradient-origin latent ``z`` does not feed the decoder directly: two linear maps give the
parameters of a diagonal Gaussian posterior ``q(z' | x) = N(μ(z), diag σ(z)²)`` and the decoder
sees a reparameterised sample ``z' = μ + σ ⊙ ε``, ``ε ~ N(0, I)``. Both the inner loss (which
gives ``z``) and the outer loss (the training objective) are the negative ELBO::

    L(x, z) = KL(N(μ(z), σ(z)²) ‖ N(0, I)) + Σ_d BCE(D(z')_d, x_d)

and, as in cwkx/GON's ``Variational-GON.py``, the inner loss is taken at ``z0 = 0`` *through*
the μ/σ maps and the sampling: ``z0 -> (μ, σ) -> z' -> D -> L``, ``z = -∇_{z0} L`` (per-sample
sums, no ``1/B`` factor, like :func:`inr_gon.gon_latent`); the outer loss then uses
``z -> (μ, σ) -> z'' -> D -> L`` with a fresh ``ε``. The decoder outputs *logits* and the data
are in [0, 1].

σ parametrisation (``sigma=``):

* ``"exp"`` (default, as cwkx/GON): a linear map gives ``log σ²``; ``σ = exp(½ log σ²)``. The
  KL term is computed from ``log σ²`` directly.
* ``"softplus"``: ``σ = softplus(linear(z)) + min_sigma`` (``min_sigma = 1e-4`` by default),
  which cannot overflow for large ``z``.

What the reported ELBO is
-------------------------
With continuous targets in [0, 1] the "reconstruction" term ``Σ_d BCE(logit_d, x_d)`` is the
Bernoulli cross-entropy evaluated at non-binary ``x`` — as in the paper and in most VAE papers
on MNIST — and not the log-likelihood of a discrete (or dequantised) model. The test-set
negative ELBO in nats per image and in bits per dimension (``nats / (D ln 2)``, ``D`` = number
of pixel values, 784 for MNIST) is therefore this BCE-based bound, not comparable to
discrete-likelihood figures.

Shapes: ``B`` batch, ``k`` latent dimension, ``C, H, W`` image channels and size, ``P``
points, ``n`` coordinate dimension, ``O`` output channels.
"""

from __future__ import annotations

import math

import torch
from torch import nn
import torch.nn.functional as F

from ..nn.conv import ConvDecoder
from ..core.coords import grid, image_to_points, normalize_resolution, points_to_image

__all__ = ["ConvDecoder", "VariationalGON", "kl_standard_normal", "kl_diag_gaussians", "reparameterize", "bits_per_dim"]


# -- closed forms ----------------------------------------------------------------------------
def kl_diag_gaussians(
    mu_q: torch.Tensor, sigma_q: torch.Tensor, mu_p: torch.Tensor, sigma_p: torch.Tensor
) -> torch.Tensor:
    """``KL(N(μ_q, diag σ_q²) ‖ N(μ_p, diag σ_p²))`` summed over the last axis.

    All arguments broadcast against each other, ``(..., k)``; returns ``(...)``::

        Σ_j log(σ_p/σ_q) + (σ_q² + (μ_q - μ_p)²) / (2 σ_p²) - ½
    """
    var_q, var_p = sigma_q.square(), sigma_p.square()
    kl = torch.log(sigma_p) - torch.log(sigma_q) + (var_q + (mu_q - mu_p).square()) / (2 * var_p) - 0.5
    return kl.sum(-1)


def kl_standard_normal(
    mu: torch.Tensor, *, sigma: torch.Tensor | None = None, logvar: torch.Tensor | None = None
) -> torch.Tensor:
    """``KL(N(μ, diag σ²) ‖ N(0, I))`` summed over the last axis: ``(..., k) -> (...)``.

    Give exactly one of ``sigma`` or ``logvar`` (``log σ²``, numerically preferable)::

        ½ Σ_j (σ_j² + μ_j² - 1 - log σ_j²)
    """
    if (sigma is None) == (logvar is None):
        raise ValueError("give exactly one of sigma or logvar")
    if logvar is None:
        logvar = 2 * torch.log(sigma)
        var = sigma.square()
    else:
        var = logvar.exp()
    return 0.5 * (var + mu.square() - 1 - logvar).sum(-1)


def reparameterize(
    mu: torch.Tensor, sigma: torch.Tensor, *, generator: torch.Generator | None = None, eps: torch.Tensor | None = None
) -> torch.Tensor:
    """``z' = μ + σ ⊙ ε`` with ``ε ~ N(0, I)`` (or the given ``eps``); all ``(B, k)``."""
    if eps is None:
        eps = torch.randn(
            mu.shape,
            generator=generator,
            dtype=mu.dtype,
            device=generator.device if generator is not None else mu.device,
        ).to(mu.device)
    elif eps.shape != mu.shape:
        raise ValueError(f"eps has shape {tuple(eps.shape)} but mu has {tuple(mu.shape)}")
    return mu + sigma * eps


def bits_per_dim(nats: float | torch.Tensor, dims: int) -> float | torch.Tensor:
    """Nats per example -> bits per dimension: ``nats / (dims · ln 2)``."""
    if dims < 1:
        raise ValueError(f"dims must be >= 1, got {dims}")
    return nats / (dims * math.log(2.0))


# -- the variational GON ---------------------------------------------------------------------
class VariationalGON(nn.Module):
    """Variational GON around a decoder.

    Args:
        decoder: either an implicit decoder (a :class:`~inr_gon.siren.LatentSiren` or any module
            with ``coord_dim``, ``latent_dim`` and ``decoder(coords (P, n), z (B, k)) -> (B, P, O)``
            logits; its ``out_activation`` must be ``None``), or an image decoder with
            ``latent_dim`` and ``decoder(z (B, k)) -> (B, C, H, W)`` logits such as
            :class:`ConvDecoder`.
        sigma: ``"exp"`` (``σ = exp(½ · linear(z))``, cwkx/GON) or ``"softplus"``
            (``σ = softplus(linear(z)) + min_sigma``).
        image_shape: ``(C, H, W)`` generated by :meth:`sample` for an implicit decoder (an image
            decoder knows its own).
        bounds: the coordinate domain of an implicit decoder (grid cell centres, as training).
        device: where to create the μ/σ layers (the decoder is moved there too).
        dtype: their dtype.

    Attributes: ``fc_mu`` and ``fc_sigma`` (``nn.Linear(k, k)``).
    """

    def __init__(
        self,
        decoder: nn.Module,
        *,
        sigma: str = "exp",
        min_sigma: float = 1e-4,
        image_shape: tuple[int, int, int] | None = None,
        bounds=(-1.0, 1.0),
        device=None,
        dtype=None,
    ):
        super().__init__()
        k = getattr(decoder, "latent_dim", None)
        if not isinstance(k, int) or k < 1:
            raise TypeError(f"decoder must have a positive int attribute latent_dim, got {k!r}")
        if sigma not in ("exp", "softplus"):
            raise ValueError(f"sigma must be 'exp' or 'softplus', got {sigma!r}")
        self.implicit = hasattr(decoder, "coord_dim")
        if self.implicit and getattr(decoder, "out_activation", None) is not None:
            raise ValueError("an implicit decoder must output logits: build it with out_activation=None")
        if image_shape is not None:
            if len(image_shape) != 3 or any(int(s) < 1 for s in image_shape):
                raise ValueError(f"image_shape must be (C, H, W), got {image_shape!r}")
            image_shape = tuple(int(s) for s in image_shape)
        self.decoder = decoder.to(device=device, dtype=dtype)
        self.latent_dim, self.sigma_mode, self.min_sigma = k, sigma, float(min_sigma)
        self.image_shape, self.bounds = image_shape, bounds
        self.fc_mu = nn.Linear(k, k, device=device, dtype=dtype)
        self.fc_sigma = nn.Linear(k, k, device=device, dtype=dtype)

    # -- pieces -------------------------------------------------------------------------------
    def posterior(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``z (B, k)`` -> ``(μ, σ, log σ²)``, each ``(B, k)``."""
        mu, s = self.fc_mu(z), self.fc_sigma(z)
        if self.sigma_mode == "exp":
            return mu, torch.exp(0.5 * s), s
        sigma = F.softplus(s) + self.min_sigma
        return mu, sigma, 2 * torch.log(sigma)

    def decode(self, z: torch.Tensor, *, coords: torch.Tensor | None = None, resolution=None) -> torch.Tensor:
        """Decoder logits for latents ``z (B, k)`` (the decoder's input, i.e. ``z'``).

        Image decoder: ``(B, C, H, W)``. Implicit decoder: with ``coords`` ``(P, n)``/``(B, P, n)``
        the values ``(B, P, O)``; otherwise an image ``(B, O, *resolution)`` on the grid of
        ``resolution`` (default: ``image_shape``'s spatial size).
        """
        if not self.implicit:
            return self.decoder(z)
        if coords is not None:
            return self.decoder(coords, z)
        if resolution is None:
            if self.image_shape is None:
                raise ValueError("give coords or resolution (or build with image_shape=) to decode an implicit decoder")
            resolution = self.image_shape[1:]
        res = normalize_resolution(resolution, self.decoder.coord_dim)
        c = grid(res, bounds=self.bounds, device=z.device, dtype=z.dtype)
        return points_to_image(self.decoder(c, z), res)

    def _prepare(self, x: torch.Tensor, coords: torch.Tensor | None):
        """Validate and return ``(target, coords)`` in the decoder's layout."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"x must be a floating-point tensor, got dtype {x.dtype}")
        if coords is not None:
            if not self.implicit:
                raise ValueError("coords are only used with an implicit decoder")
            if x.dim() != 3:
                raise ValueError(f"with coords, x must be targets of shape (B, P, O), got {tuple(x.shape)}")
            return x, coords
        if x.dim() != 4:
            raise ValueError(f"x must be images of shape (B, C, H, W), got {tuple(x.shape)}")
        if self.implicit:
            c = grid(tuple(x.shape[2:]), bounds=self.bounds, device=x.device, dtype=x.dtype)
            return image_to_points(x), c
        return x, None

    def _nelbo_parts(self, z, target, coords, generator, sample):
        """Per-sample ``(bce (B,), kl (B,), logits)`` of the negative ELBO at gradient latent z."""
        mu, sigma, logvar = self.posterior(z)
        zp = reparameterize(mu, sigma, generator=generator) if sample else mu
        logits = self.decode(zp, coords=coords) if self.implicit else self.decode(zp)
        if logits.shape != target.shape:
            raise ValueError(f"decoder output {tuple(logits.shape)} does not match target {tuple(target.shape)}")
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(1).sum(1)
        return bce, kl_standard_normal(mu, logvar=logvar), logits

    def latent(
        self,
        x: torch.Tensor,
        *,
        coords: torch.Tensor | None = None,
        kl_weight: float = 1.0,
        create_graph: bool = False,
        generator: torch.Generator | None = None,
        sample: bool = True,
    ) -> torch.Tensor:
        """Gradient-origin latent ``z = -∇_{z0} Σ_b [BCE_b + w·KL_b]`` at ``z0 = 0``, through the
        μ/σ maps and the sampling. ``x``: images ``(B, C, H, W)`` (or targets ``(B, P, O)`` with
        ``coords``). Returns ``(B, k)`` (detached unless ``create_graph``)."""
        target, c = self._prepare(x, coords)
        return self._latent(target, c, kl_weight, create_graph, generator, sample)

    def _latent(self, target, c, kl_weight, create_graph, generator, sample):
        with torch.enable_grad():
            z0 = torch.zeros(
                target.shape[0], self.latent_dim, device=target.device, dtype=target.dtype, requires_grad=True
            )
            bce, kl, _ = self._nelbo_parts(z0, target, c, generator, sample)
            (g,) = torch.autograd.grad((bce + kl_weight * kl).sum(), z0, create_graph=create_graph)
        return -g if create_graph else -g.detach()

    # -- the objective --------------------------------------------------------------------------
    def loss(
        self,
        x: torch.Tensor,
        *,
        coords: torch.Tensor | None = None,
        kl_weight: float = 1.0,
        create_graph: bool = True,
        generator: torch.Generator | None = None,
        sample: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """Negative ELBO through the gradient-origin latent.

        Args:
            x: images ``(B, C, H, W)`` in [0, 1], or targets ``(B, P, O)`` with ``coords``
                ``(P, n)``/``(B, P, n)`` (implicit decoder only).
            kl_weight: weight of the KL term in both losses (1 for the ELBO; < 1 for annealing).
            create_graph: ``True`` for training (the outer loss differentiates through ``z``).
            sample: draw ``z' = μ + σ ε`` (``False``: use ``z' = μ``, not an ELBO).
        Returns:
            ``(loss, z, parts)``: ``loss`` the batch mean of ``BCE + kl_weight · KL`` (scalar),
            ``z`` ``(B, k)`` gradient latents, and ``parts`` with per-sample ``"bce"``, ``"kl"``,
            ``"nelbo"`` (``BCE + KL``, weight 1) ``(B,)`` tensors, ``"logits"`` and ``"mu"``,
            ``"sigma"`` ``(B, k)``.
        """
        target, c = self._prepare(x, coords)
        z = self._latent(target, c, kl_weight, create_graph and torch.is_grad_enabled(), generator, sample)
        bce, kl, logits = self._nelbo_parts(z, target, c, generator, sample)
        mu, sigma, _ = self.posterior(z)
        loss = (bce + kl_weight * kl).mean()
        return loss, z, {"bce": bce, "kl": kl, "nelbo": bce + kl, "logits": logits, "mu": mu, "sigma": sigma}

    @torch.no_grad()
    def evaluate(
        self, images: torch.Tensor, *, batch_size: int = 500, generator: torch.Generator | None = None, device=None
    ) -> dict:
        """Mean negative ELBO of ``images (N, C, H, W)`` in [0, 1] (one ``ε`` draw per image).

        Returns a dict with ``"nelbo_nats"`` (per image), ``"bce_nats"``, ``"kl_nats"`` and
        ``"bits_per_dim"`` (``nelbo / (C·H·W · ln 2)``; BCE-based, see the module docstring).
        Runs in the module's current mode (call ``eval()`` first for batch-norm running stats).
        """
        if images.dim() != 4:
            raise ValueError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}")
        device = device or next(self.parameters()).device
        tot = torch.zeros(3, dtype=torch.float64)
        for s in range(0, images.shape[0], batch_size):
            x = images[s : s + batch_size].to(device)
            _, _, p = self.loss(x, create_graph=False, generator=generator)
            tot += torch.stack([p["nelbo"].sum(), p["bce"].sum(), p["kl"].sum()]).double().cpu()
        n = images.shape[0]
        nelbo, bce, kl = (tot / n).tolist()
        D = int(images[0].numel())
        return {"nelbo_nats": nelbo, "bce_nats": bce, "kl_nats": kl, "bits_per_dim": bits_per_dim(nelbo, D)}

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None, resolution=None, device=None) -> torch.Tensor:
        """``n`` images from the prior: ``z' ~ N(0, I)`` -> decoder -> sigmoid, ``(n, C, H, W)`` in
        [0, 1] (an implicit decoder renders at ``resolution`` or ``image_shape``)."""
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        p = next(self.parameters())
        device = device or p.device
        zp = torch.randn(
            n,
            self.latent_dim,
            generator=generator,
            dtype=p.dtype,
            device=generator.device if generator is not None else device,
        ).to(device)
        return torch.sigmoid(self.decode(zp, resolution=resolution))
