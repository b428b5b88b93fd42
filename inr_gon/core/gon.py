"""The gradient-origin latent and the GON training loss.

For a sample ``x_i`` with target values ``x_ip`` at coordinates ``c_p``, its latent is the
negative gradient of the inner data-fitting integral at the origin::

    z_i = -∇_{z0} w Σ_{p,o} ℓ(F(c_p ⊕ z0)_o, x_ipo)   at z0 = 0,

computed for each sample separately (no ``1/B`` batch factor: a latent does not depend on the
batch it is in). Training minimises the outer integral ``w' Σ ℓ'(F(c'_p ⊕ z_i), x'_ip)``
averaged over the batch, differentiating through ``z_i`` (second order).

Exact shared-origin fast path
-----------------------------
At ``z0 = 0`` the network's inner pass is the same for every sample and ``z_i`` is linear in
the residual ``r_ipo = w ∂ℓ/∂F``::

    z_i = -Σ_{p,o} r_ipo J_po W_z,   J_po = ∂F_o(c_p) / ∂a_z

(``a_z = z W_z^T``: the latent's part of the first pre-activation; a model whose latent also
shifts later layers stacks their Jacobians and maps, ``model.latent_readout()``)

so for coordinates shared by the batch, one pass over the ``P`` points (not ``B·P``) gives
``F(c_p ⊕ 0)`` and the ``O`` Jacobian rows ``J_po``; the latents are then one contraction.
Both this and the per-sample path write the inner backward pass with explicit tensor
operations (:meth:`LatentSiren.backward_from`), so the training step needs one ordinary
backward pass instead of a double backward through autograd — and the result is the same
(checked against the naive ``autograd.grad(create_graph=True)`` formulation in the tests).
Any other model ``model(coords, z) -> (B, P, O)`` uses that naive formulation.
"""

from __future__ import annotations

import torch

from .integrators import GridIntegrator, Integrator, integrate
from .losses import PointLoss, get_loss
from .protocols import ExplicitLatentModel

__all__ = ["gon_latent", "gon_loss", "check_target"]


def _is_explicit(model) -> bool:
    return isinstance(model, ExplicitLatentModel)


def check_target(model, coords: torch.Tensor, target: torch.Tensor, *, finite: bool = True,
                 name: str = "target") -> None:
    """Validate ``coords`` ``(P, n)``/``(B, P, n)`` and ``target`` ``(B, P, O)`` against each other
    and the model; raise a one-line ``TypeError``/``ValueError`` naming the problem."""
    for nm, t in (("coords", coords), (name, target)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{nm} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"{nm} must be a floating-point tensor, got dtype {t.dtype}")
    if target.dim() != 3:
        raise ValueError(f"{name} must have shape (B, P, O), got {tuple(target.shape)}")
    if coords.dim() not in (2, 3):
        raise ValueError(f"coords must have shape (P, n) or (B, P, n), got {tuple(coords.shape)}")
    cd = getattr(model, "coord_dim", None)
    if cd is not None and coords.shape[-1] != cd:
        raise ValueError(f"coords have {coords.shape[-1]} dimensions but the model expects coord_dim={cd}")
    od = getattr(model, "out_dim", None)
    if od is not None and target.shape[-1] != od:
        raise ValueError(f"{name} has {target.shape[-1]} channels but the model has out_dim={od}")
    if coords.shape[-2] != target.shape[1]:
        raise ValueError(f"coords have {coords.shape[-2]} points but {name} has {target.shape[1]}")
    if coords.dim() == 3 and coords.shape[0] != target.shape[0]:
        raise ValueError(f"per-sample coords have batch {coords.shape[0]} but {name} has {target.shape[0]}")
    if finite and not bool(torch.isfinite(target).all()):
        raise ValueError(f"{name} contains NaN or Inf values")
    if finite and not bool(torch.isfinite(coords).all()):
        raise ValueError("coords contain NaN or Inf values")


def _residual(loss, raw: torch.Tensor, target: torch.Tensor, activation, create_graph: bool) -> torch.Tensor:
    """``∂ℓ(act(raw), target)/∂raw`` broadcast to ``target``'s shape ``(B, P, O)``.

    ``raw`` is ``(P, O)`` (shared) or ``(B, P, O)``.
    """
    if isinstance(loss, PointLoss) and activation is None:
        return loss.grad(raw, target).expand(target.shape)
    raw_b = raw.expand(target.shape)
    if not raw_b.requires_grad:          # inference under no_grad: differentiate a local copy
        with torch.enable_grad():
            raw_b = raw_b.detach().requires_grad_()
            pred = raw_b if activation is None else activation(raw_b)
            return torch.autograd.grad(loss(pred, target).sum(), raw_b)[0]
    pred = raw_b if activation is None else activation(raw_b)
    return torch.autograd.grad(loss(pred, target).sum(), raw_b, create_graph=create_graph)[0]


def _latent_explicit(model, coords, target, loss, weight, create_graph):
    act = getattr(model, "out_activation", None)
    W_z = model.latent_readout()                                    # (H, k) (or (H', k), see the protocol)
    u_c = model.coord_preactivation(coords)                         # (P, H) or (B, P, H)
    raw0, us = model.origin_forward(u_c)                            # (P, O) or (B, P, O)
    r = _residual(loss, raw0, target, act, create_graph) * weight   # (B, P, O)
    if coords.dim() == 3:                                           # per-sample points
        g = model.backward_from(us, r)                              # (B, P, H)
        return -(g.sum(dim=1) @ W_z)
    O = raw0.shape[-1]
    if O == 1:
        J = model.backward_from(us, torch.ones_like(raw0))          # (P, H): the one Jacobian row
        return -((r.squeeze(-1) @ J) @ W_z)                         # (B, P) @ (P, H) @ (H, k)
    eye = torch.eye(O, device=raw0.device, dtype=raw0.dtype)
    J = model.backward_from([u.unsqueeze(-2) for u in us], eye)     # (P, O, H)
    return -((r.flatten(1) @ J.flatten(0, 1)) @ W_z)                # (B, P·O) @ (P·O, H) @ (H, k)


def _latent_autograd(model, coords, target, loss, weight, create_graph):
    B = target.shape[0]
    k = model.latent_dim
    with torch.enable_grad():
        z0 = torch.zeros(B, k, device=target.device, dtype=target.dtype, requires_grad=True)
        inner = integrate(loss(model(coords, z0), target), weight).sum()
        (g,) = torch.autograd.grad(inner, z0, create_graph=create_graph)
    return -g


def gon_latent(model, coords: torch.Tensor, target: torch.Tensor, *, loss="mse",
               integrator: Integrator | None = None, create_graph: bool = False,
               generator: torch.Generator | None = None, method: str = "auto",
               check: bool = True, steps: int | None = None, step_size=None) -> torch.Tensor:
    """Gradient-origin latents ``z = -∇_{z0} ∫ ℓ(F(c ⊕ z0), x) dc`` at ``z0 = 0``, optionally
    refined by further gradient steps.

    With ``steps = K``: ``z_1 = -α_1 ⊙ g(0)``, ``z_{t+1} = z_t - α_{t+1} ⊙ g(z_t)``, where ``g(z)``
    is the gradient of the inner integral at ``z`` (on the same points, for all steps) and ``α``
    the ``step_size``. The first step takes the exact shared-origin fast path; for the others an
    explicit model computes ``g(z_t)`` with its explicit latent backward (no double backward;
    equal to autograd), any other model with autograd, keeping the graph for training
    (``create_graph=True``: the outer loss differentiates through all ``K`` steps, still second
    order). ``K = 1``, ``α = 1`` is the paper's single step.

    Args:
        model: an :class:`~inr_gon.core.protocols.ExplicitLatentModel` such as
            :class:`~inr_gon.nn.siren.LatentSiren` (explicit fast paths) or any
            :class:`~inr_gon.core.protocols.LatentModel` (naive autograd path).
        coords: ``(P, n)`` shared by the batch or ``(B, P, n)`` per sample.
        target: ``(B, P, O)`` signal values at ``coords``.
        loss: ``"mse"`` (default), ``"bce"`` (on logits), ``"l1"``, ``"clamped_l1"``, a
            :class:`~inr_gon.losses.PointLoss` or a callable ``(pred, target) -> (B, P, O)``.
        integrator: which points and weights (default: all points, weight 1).
        create_graph: keep the graph for a second-order training step. ``False`` (inference)
            computes under ``torch.no_grad()`` and returns a detached latent.
        method: ``"auto"`` (explicit if the model supports it), ``"explicit"`` or ``"autograd"``.
        check: validate shapes, dtypes and finiteness (one host sync on CUDA).
        steps: ``K >= 1`` gradient steps (default: the model's ``latent_steps``, else 1).
        step_size: ``α``: a number, a ``(k,)`` tensor (per latent dimension, e.g. a learned
            parameter) or ``(K, k)`` (per step and dimension); it multiplies the integrator's
            weights (``α = 1``: the plain gradient). Default: the model's
            ``latent_step_sizes()``, else 1.
    Returns:
        ``(B, k)`` latents.
    """
    if steps is None:
        steps = getattr(model, "latent_steps", 1)
    if step_size is None:
        step_size = model.latent_step_sizes() if hasattr(model, "latent_step_sizes") else 1.0
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    if check:
        check_target(model, coords, target)
    loss = get_loss(loss)
    integrator = integrator or GridIntegrator()
    if method not in ("auto", "explicit", "autograd"):
        raise ValueError(f"method must be 'auto', 'explicit' or 'autograd', got {method!r}")
    explicit = _is_explicit(model) if method == "auto" else method == "explicit"
    if explicit and not _is_explicit(model):
        raise TypeError(f"{type(model).__name__} does not support the explicit gradient-origin path")
    fn = _latent_explicit if explicit else _latent_autograd
    alphas = _step_sizes(step_size, steps, getattr(model, "latent_dim", None))
    graph = create_graph and torch.is_grad_enabled()
    with torch.set_grad_enabled(graph):
        c, t, w = integrator.select(coords, target, generator=generator)
        z = fn(model, c, t, loss, w, create_graph)
        if alphas is not None:
            alphas = alphas.to(z)
            z = alphas[0] * z
        grad = _gradient_explicit if explicit else _gradient_at
        for k in range(1, steps):
            g = grad(model, c, t, loss, w, z, graph)
            z = z - (alphas[k] * g if alphas is not None else g)
    return z if create_graph else z.detach()


def _step_sizes(step_size, steps: int, k):
    """``None`` (all ones) or a ``(K, k)`` / ``(K, 1)`` tensor of step sizes."""
    if isinstance(step_size, (int, float)) and not isinstance(step_size, bool):
        if not step_size > 0:
            raise ValueError(f"step_size must be > 0, got {step_size}")
        return None if step_size == 1 else torch.full((steps, 1), float(step_size))
    if not isinstance(step_size, torch.Tensor):
        raise TypeError(f"step_size must be a number or a tensor, got {type(step_size).__name__}")
    a = step_size
    if a.dim() == 1:
        a = a.unsqueeze(0).expand(steps, -1)
    if a.dim() != 2 or a.shape[0] != steps or (k is not None and a.shape[1] not in (1, k)):
        raise ValueError(f"step_size must have shape (k,) or (steps, k) = ({steps}, {k}), got {tuple(step_size.shape)}")
    return a


def _gradient_explicit(model, c, t, loss, w, z, create_graph: bool) -> torch.Tensor:
    """``∇_z`` of the inner integral at latents ``z (B, k)`` with the model's explicit backward
    (the per-sample path of :func:`_latent_explicit`, its first pre-activation shifted by ``z``):
    the same arithmetic as autograd, without a double backward in training."""
    act = getattr(model, "out_activation", None)
    u = model.coord_preactivation(c) + model.latent_preactivation(z).unsqueeze(-2)     # (B, P, H)
    raw, us = model.origin_forward(u, z)                                               # (B, P, O)
    r = _residual(loss, raw, t, act, create_graph) * w
    return model.backward_from(us, r).sum(dim=1) @ model.latent_readout()             # (B, k)


def _gradient_at(model, c, t, loss, w, z, create_graph: bool) -> torch.Tensor:
    """``∇_z`` of the inner integral at latents ``z (B, k)`` (autograd through ``model(c, z)``)."""
    with torch.enable_grad():
        zz = z if z.requires_grad else z.detach().requires_grad_()
        inner = integrate(loss(model(c, zz), t), w).sum()
        (g,) = torch.autograd.grad(inner, zz, create_graph=create_graph)
    return g if create_graph else g.detach()


def gon_loss(model, coords: torch.Tensor, target: torch.Tensor, *, inner_loss="mse", outer_loss=None,
             inner_integrator: Integrator | None = None, outer_integrator: Integrator | None = None,
             inner_coords: torch.Tensor | None = None, inner_target: torch.Tensor | None = None,
             create_graph: bool = True, generator: torch.Generator | None = None,
             method: str = "auto", check: bool = True, steps: int | None = None,
             step_size=None) -> tuple[torch.Tensor, torch.Tensor]:
    """GON training objective: the outer integral through the gradient-origin latent.

    The inner integral (which gives ``z``) and the outer integral (the loss) are chosen
    independently: by default both use ``coords``/``target`` with the full grid; pass
    ``inner_coords``/``inner_target`` for modality conversion (e.g. inner on a 14² source,
    outer on the 28² target) and ``outer_integrator=MonteCarloIntegrator(fraction=0.25)`` for
    a Monte-Carlo outer loss.

    Args:
        coords, target: outer points ``(P, n)``/``(B, P, n)`` and values ``(B, P, O)``.
        inner_loss, outer_loss: losses (``outer_loss`` defaults to ``inner_loss``).
        inner_coords, inner_target: inner points/values (default: the outer ones).
        create_graph: ``True`` for training (the loss differentiates through ``z``).
        steps, step_size: gradient steps of the latent (see :func:`gon_latent`).
    Returns:
        ``(loss, z)``: the batch mean of the outer integral estimates (scalar) and ``(B, k)``
        latents.
    """
    if (inner_coords is None) != (inner_target is None):
        raise ValueError("give both inner_coords and inner_target, or neither")
    if check:
        check_target(model, coords, target)
    ic, it = (coords, target) if inner_coords is None else (inner_coords, inner_target)
    if inner_coords is not None and check:
        check_target(model, ic, it, name="inner_target")
        if it.shape[0] != target.shape[0]:
            raise ValueError(f"inner_target has batch {it.shape[0]} but target has {target.shape[0]}")
    z = gon_latent(model, ic, it, loss=inner_loss, integrator=inner_integrator,
                   create_graph=create_graph, generator=generator, method=method, check=False,
                   steps=steps, step_size=step_size)
    outer = get_loss(outer_loss if outer_loss is not None else inner_loss)
    c, t, w = (outer_integrator or GridIntegrator()).select(coords, target, generator=generator)
    loss = integrate(outer(model(c, z), t), w).mean()
    return loss, z
