"""Pointwise data-fitting losses ``ℓ(pred, target)`` for the inner and outer GON integrals.

Each loss maps ``pred, target (B, P, O)`` to elementwise values ``(B, P, O)``; the integrators
sum them over points and channels. A loss also knows its derivative with respect to ``pred``
in closed form, so that the gradient-origin latent needs no ``autograd.grad`` call. The
derivatives follow PyTorch's autograd conventions at kinks (``sign(0) = 0``; ``clamp`` passes
gradient on the closed interval), so both ways agree everywhere.

Any callable ``f(pred, target) -> (B, P, O)`` can be used instead; its derivative is then
taken with autograd.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

__all__ = ["PointLoss", "MSE", "BCE", "L1", "ClampedL1", "TruncatedL1", "TruncatedL2", "get_loss"]


@dataclass(frozen=True)
class PointLoss:
    """A pointwise loss with its closed-form derivative."""

    name: str

    def __call__(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def grad(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``∂ℓ/∂pred``, same shape as ``pred``."""
        raise NotImplementedError

    def target_free_curvature(self, pred: torch.Tensor) -> torch.Tensor | None:
        """``∂²ℓ/∂pred²`` (same shape as ``pred``) where it does not depend on the target, else
        ``None``. Where it exists, the Gauss–Newton curvature at the shared origin is one matrix
        for the whole batch (:mod:`inr_gon.core.gon`)."""
        return None


@dataclass(frozen=True)
class MSE(PointLoss):
    """Squared error ``(pred - target)^2`` (cwkx/GON's loss)."""

    name: str = "mse"

    def __call__(self, pred, target):
        return (pred - target).square()

    def grad(self, pred, target):
        return 2 * (pred - target)

    def target_free_curvature(self, pred):
        return torch.full_like(pred, 2.0)


@dataclass(frozen=True)
class BCE(PointLoss):
    """Binary cross-entropy on logits: ``pred`` are logits, ``target`` in [0, 1]."""

    name: str = "bce"

    def __call__(self, pred, target):
        return F.binary_cross_entropy_with_logits(pred, target.expand_as(pred), reduction="none")

    def grad(self, pred, target):
        return torch.sigmoid(pred) - target

    def target_free_curvature(self, pred):
        s = torch.sigmoid(pred)
        return s * (1 - s)


@dataclass(frozen=True)
class L1(PointLoss):
    """Absolute error ``|pred - target|``."""

    name: str = "l1"

    def __call__(self, pred, target):
        return (pred - target).abs()

    def grad(self, pred, target):
        return torch.sign(pred - target)

    def target_free_curvature(self, pred):
        return torch.zeros_like(pred)


@dataclass(frozen=True)
class ClampedL1(PointLoss):
    """DeepSDF's clamped L1: ``|clamp(pred, ±δ) - clamp(target, ±δ)|``."""

    name: str = "clamped_l1"
    delta: float = 0.1

    def __call__(self, pred, target):
        d = self.delta
        return (pred.clamp(-d, d) - target.clamp(-d, d)).abs()

    def grad(self, pred, target):
        d = self.delta
        inside = (pred >= -d) & (pred <= d)
        return torch.sign(pred.clamp(-d, d) - target.clamp(-d, d)) * inside


@dataclass(frozen=True)
class TruncatedL1(PointLoss):
    """DeepSDF's clamped L1 without its dead zones: ``|F_c - clamp(target, ±δ)|`` where the
    prediction is clamped only on the side of a far target (``F_c = min(F, δ)`` where
    ``target >= δ``, ``max(F, -δ)`` where ``target <= -δ``, ``F`` near the surface).

    It equals :class:`ClampedL1` wherever ``|F| <= δ`` or ``F`` is beyond ``±δ`` on the target's
    side; elsewhere — ``F`` beyond ``±δ`` on the wrong side of a far target, or beyond ``±δ`` at a
    near-surface point — the clamped L1 is constant (zero gradient: such points never move back),
    while this loss keeps the slope ``±1``.
    """

    name: str = "truncated_l1"
    delta: float = 0.1

    def _residual(self, pred, target):
        """``F_c - clamp(target, ±δ)``, with ``F_c`` clamped only on a far target's side."""
        d = self.delta
        f_c = torch.where(target >= d, pred.clamp(max=d), torch.where(target <= -d, pred.clamp(min=-d), pred))
        return f_c - target.clamp(-d, d)

    def _live(self, pred, target):
        """Where the clamped prediction still moves (not far on the far target's side)."""
        d = self.delta
        return ~(((target >= d) & (pred > d)) | ((target <= -d) & (pred < -d)))

    def __call__(self, pred, target):
        return self._residual(pred, target).abs()

    def grad(self, pred, target):
        return torch.sign(self._residual(pred, target)) * self._live(pred, target)


@dataclass(frozen=True)
class TruncatedL2(TruncatedL1):
    """The squared counterpart of :class:`TruncatedL1`: ``(F_c - clamp(target, ±δ))²`` with the
    same one-sided clamp of the prediction (no dead zones). As an inner loss at the origin
    (``|F| <= δ``) the latent is affine in the *clamped* distances: far points count by their side
    of the surface only."""

    name: str = "truncated_l2"

    def __call__(self, pred, target):
        return self._residual(pred, target).square()

    def grad(self, pred, target):
        return 2 * self._residual(pred, target) * self._live(pred, target)


_NAMED = {
    "mse": MSE(),
    "l2": MSE(),
    "bce": BCE(),
    "l1": L1(),
    "clamped_l1": ClampedL1(),
    "truncated_l1": TruncatedL1(),
    "truncated_l2": TruncatedL2(),
}


def get_loss(loss: str | PointLoss | Callable) -> PointLoss | Callable:
    """A :class:`PointLoss` from a name (``"mse"``, ``"l2"``, ``"bce"``, ``"l1"``,
    ``"clamped_l1"``, ``"truncated_l1"``), or the given loss object/callable unchanged."""
    if isinstance(loss, str):
        try:
            return _NAMED[loss]
        except KeyError:
            raise ValueError(f"unknown loss {loss!r}; choose one of {sorted(_NAMED)} or pass a callable") from None
    if callable(loss):
        return loss
    raise TypeError(f"loss must be a name or a callable, got {type(loss).__name__}")
