"""The interfaces the core relies on, declared as protocols (structural: nothing to inherit).

* :class:`LatentModel`: any ``model(coords, z) -> values`` with a ``latent_dim``; its
  gradient-origin latents are computed with autograd (the naive, general path).
* :class:`ExplicitLatentModel`: a latent model that also exposes its first layer and an
  explicit backward pass (:class:`~inr_gon.nn.siren.LatentSiren` does), which gives the exact
  shared-origin fast path of :func:`~inr_gon.core.gon.gon_latent` and a training step without a
  double backward.
* :class:`ObjectiveResult`: what every training objective returns, ``(loss, z, parts)``.

Shapes as in the package docstring (``B, P, n, k, H, O``).
"""

from __future__ import annotations

from typing import NamedTuple, Protocol, runtime_checkable

import torch

__all__ = ["LatentModel", "ExplicitLatentModel", "ObjectiveResult"]


@runtime_checkable
class LatentModel(Protocol):
    """``model(coords (P, n) or (B, P, n), z (B, k)) -> (B, P, O)``."""

    latent_dim: int

    def __call__(self, coords: torch.Tensor, z: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class ExplicitLatentModel(Protocol):
    """A latent model whose inner backward pass is written out (the fast paths).

    * ``latent_preactivation(z) -> (B, H)``: the latent's contribution to the first pre-activation;
    * ``coord_preactivation(coords) -> (…, H)``: the first pre-activation at ``z = 0``;
    * ``origin_forward(u1, z=None) -> (raw (…, O), us)``: the rest of the network from that
      pre-activation, with the saved pre-activations ``us`` (``z``: wherever else the latent
      enters the network; ``None`` at the origin);
    * ``backward_from(us, cotangent (…, O)) -> (…, H')``: the gradient with respect to the
      latent's (unscaled) contributions to the pre-activations, in differentiable tensor
      operations;
    * ``latent_readout() -> (H', k)``: the matrix that turns those into the gradient in ``z``
      (``W_z``, the first layer's latent columns, when only the first layer sees ``z``).
    """

    latent_dim: int

    def latent_readout(self) -> torch.Tensor: ...

    def coord_preactivation(self, coords: torch.Tensor) -> torch.Tensor: ...

    def latent_preactivation(self, z: torch.Tensor) -> torch.Tensor: ...

    def origin_forward(self, u1: torch.Tensor, z: torch.Tensor | None = None): ...

    def backward_from(self, us, cotangent: torch.Tensor) -> torch.Tensor: ...


class ObjectiveResult(NamedTuple):
    """A training objective's result.

    Attributes:
        loss: the scalar that is differentiated (float32).
        z: ``(B, k)`` latents (in the graph).
        parts: detached scalar tensors to log; ``parts["loss"]`` is the figure reported as the
            training loss (e.g. the per-point loss), the others are extra terms.
    """

    loss: torch.Tensor
    z: torch.Tensor
    parts: dict
