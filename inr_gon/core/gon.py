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

Gauss–Newton steps
------------------
With ``gauss_newton=λ`` each step is preconditioned by the inner integral's Gauss–Newton
curvature in ``z``::

    z ← z - α (λI + H)⁻¹ ∇_z E,   H = Σ_{p,o} w ℓ''(F_po) J_poᵀ J_po,   J_po = ∂F_o(c_p ⊕ z)/∂z

(``ℓ''`` the loss's second derivative in the raw output, clipped at 0). The Jacobian rows come
from the same explicit backward pass as the plain gradient (with unit cotangents), so the step
costs one ``(k, k)`` solve per sample more. At the shared origin with a loss whose curvature
does not depend on the target (squared error, BCE on logits) ``H`` is the same for the whole
batch: one ``(k, k)`` matrix and one solve with ``B`` right-hand sides, so the step costs about
what the plain one does. From the origin with ``λ = 1`` it is the minimiser
of the inner integral's quadratic (Gauss–Newton) model plus ``½‖z‖²``; the paper's step is
that minimiser without the curvature. For a squared-error inner loss it is ridge regression of
the residual on the Jacobian's columns: the latent is the best linear fit of the signal by the
network's own tangent directions, instead of their inner products with it.
"""

from __future__ import annotations

import torch

from .integrators import GridIntegrator, Integrator, MonteCarloIntegrator, integrate
from .losses import PointLoss, get_loss
from .protocols import ExplicitLatentModel

__all__ = ["gon_latent", "gon_loss", "check_target"]


def _is_explicit(model) -> bool:
    return isinstance(model, ExplicitLatentModel)


def check_target(
    model, coords: torch.Tensor, target: torch.Tensor, *, finite: bool = True, name: str = "target"
) -> None:
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
    if not raw_b.requires_grad:  # inference under no_grad: differentiate a local copy
        with torch.enable_grad():
            raw_b = raw_b.detach().requires_grad_()
            pred = raw_b if activation is None else activation(raw_b)
            return torch.autograd.grad(loss(pred, target).sum(), raw_b)[0]
    pred = raw_b if activation is None else activation(raw_b)
    return torch.autograd.grad(loss(pred, target).sum(), raw_b, create_graph=create_graph)[0]


def _curvature(loss, raw: torch.Tensor, target: torch.Tensor, activation, create_graph: bool) -> torch.Tensor:
    """``max(∂²ℓ(act(raw), target)/∂raw², 0)`` of a pointwise loss, ``(B, P, O)``."""
    with torch.enable_grad():
        x = raw.expand(target.shape)
        if not x.requires_grad:  # inference: a local copy
            x = x.detach().requires_grad_()
        pred = x if activation is None else activation(x)
        (d,) = torch.autograd.grad(loss(pred, target).sum(), x, create_graph=True)
        if not d.requires_grad:  # a piecewise-linear loss
            return torch.zeros_like(target)
        (h,) = torch.autograd.grad(d.sum(), x, create_graph=create_graph, allow_unused=True)
    if h is None:
        return torch.zeros_like(target)
    h = h.clamp_min(0)
    return h if create_graph else h.detach()


def _jacobian_rows(model, us, raw: torch.Tensor) -> torch.Tensor:
    """``∂F_o(c_p)/∂a`` for every point and output, ``(Q, H')`` shared or ``(B, Q, H')``
    (``Q = P·O``), from the saved pre-activations of a pass with raw outputs ``raw``."""
    O = raw.shape[-1]
    if O == 1:
        return model.backward_from(us, torch.ones_like(raw))  # (..., P, H')
    eye = torch.eye(O, device=raw.device, dtype=raw.dtype)
    return model.backward_from([u.unsqueeze(-2) for u in us], eye).flatten(-3, -2)  # (..., P·O, H')


def _inner_gradient(model, us, raw, target, loss, weight, create_graph, gauss_newton):
    """``∇_z`` of the inner integral ``(B, k)`` — with ``gauss_newton = λ`` the direction
    ``(λI + H)⁻¹ ∇_z`` — from the saved pre-activations ``us`` of a pass whose raw outputs are
    ``raw`` (``(P, O)``: at the origin, shared by the batch, or ``(B, P, O)``)."""
    act = getattr(model, "out_activation", None)
    W = model.latent_readout()  # (H', k)
    r = _residual(loss, raw, target, act, create_graph) * weight  # (B, P, O)
    if gauss_newton is None:
        if raw.dim() == 3:  # per-sample points
            return model.backward_from(us, r).sum(dim=1) @ W  # (B, P, H') -> (B, k)
        J = _jacobian_rows(model, us, raw)  # (P·O, H')
        return (r.flatten(1) @ J) @ W  # (B, P·O) @ (P·O, H') @ (H', k)
    Jz = _jacobian_rows(model, us, raw) @ W  # (P·O, k) or (B, P·O, k)
    g = (r.flatten(1).unsqueeze(-2) @ Jz).squeeze(-2)  # (B, k)
    dt = torch.promote_types(g.dtype, torch.float32)  # no low-precision solves
    eye = gauss_newton * torch.eye(Jz.shape[-1], device=Jz.device, dtype=dt)
    shared = _shared_curvature(loss, raw, act)
    if shared is not None:  # one (k, k) matrix for the batch
        hw = (shared * weight).flatten()  # (P·O,)
        A = ((Jz * hw.unsqueeze(-1)).transpose(-1, -2) @ Jz).to(dt) + eye
        return torch.linalg.solve(A, g.to(dt).transpose(0, 1)).transpose(0, 1).to(g.dtype)
    A = _curvature_matrix(loss, raw, target, act, weight, Jz, create_graph).to(dt) + eye
    return torch.linalg.solve(A, g.to(dt).unsqueeze(-1)).squeeze(-1).to(g.dtype)


def _curvature_matrix(loss, raw, target, activation, weight, Jz, create_graph: bool) -> torch.Tensor:
    """The Gauss–Newton curvature ``H = Σ w ℓ''(F) JᵀJ`` ``(B, k, k)`` of the inner integral in
    ``z`` from the latent Jacobian rows ``Jz`` ``(B, P·O, k)`` of a per-sample pass."""
    hw = (_curvature(loss, raw, target, activation, create_graph) * weight).expand(target.shape).flatten(1)
    return (Jz * hw.unsqueeze(-1)).transpose(-1, -2) @ Jz


def _shared_curvature(loss, raw: torch.Tensor, activation) -> torch.Tensor | None:
    """The curvature ``ℓ''(F_po)`` ``(P, O)`` when it is the same for every sample — shared
    points at a shared latent (``raw`` ``(P, O)``) and a loss whose second derivative does not
    depend on the target (squared error, BCE on logits, L1) — else ``None``. Then ``H`` is one
    ``(k, k)`` matrix and the step one solve with ``B`` right-hand sides, instead of ``B``
    curvatures of ``P·k²`` each."""
    if raw.dim() != 2 or activation is not None or not isinstance(loss, PointLoss):
        return None
    h = loss.target_free_curvature(raw)
    return None if h is None else h.clamp_min(0)


def _latent_explicit(model, coords, target, loss, weight, create_graph, gauss_newton=None):
    u_c = model.coord_preactivation(coords)  # (P, H) or (B, P, H)
    raw0, us = model.origin_forward(u_c)  # (P, O) or (B, P, O)
    return -_inner_gradient(model, us, raw0, target, loss, weight, create_graph, gauss_newton)


def _latent_autograd(model, coords, target, loss, weight, create_graph):
    B = target.shape[0]
    k = model.latent_dim
    with torch.enable_grad():
        z0 = torch.zeros(B, k, device=target.device, dtype=target.dtype, requires_grad=True)
        inner = integrate(loss(model(coords, z0), target), weight).sum()
        (g,) = torch.autograd.grad(inner, z0, create_graph=create_graph)
    return -g


def gon_latent(
    model,
    coords: torch.Tensor,
    target: torch.Tensor,
    *,
    loss="mse",
    integrator: Integrator | None = None,
    create_graph: bool = False,
    generator: torch.Generator | None = None,
    method: str = "auto",
    check: bool = True,
    steps: int | None = None,
    step_size=None,
    gauss_newton: float | None = None,
    later_fraction: float | None = None,
) -> torch.Tensor:
    """Gradient-origin latents ``z = -∇_{z0} ∫ ℓ(F(c ⊕ z0), x) dc`` at ``z0 = 0``, optionally
    refined by further gradient steps.

    With ``steps = K``: ``z_1 = -α_1 ⊙ g(0)``, ``z_{t+1} = z_t - α_{t+1} ⊙ g(z_t)``, where ``g(z)``
    is the gradient of the inner integral at ``z`` (on the same points for all steps, but see
    ``later_fraction``) and ``α`` the ``step_size`` (with ``gauss_newton``, ``g`` is
    preconditioned: the module docstring). The first step takes the exact shared-origin fast
    path; for the others an explicit model computes ``g(z_t)`` with its explicit latent backward
    (no double backward; equal to autograd), any other model with autograd, keeping the graph
    for training (``create_graph=True``: the outer loss differentiates through all ``K`` steps,
    still second order). ``K = 1``, ``α = 1`` is the paper's single step.

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
            ``latent_step_sizes(steps)`` (more steps than it was trained with repeat its last
            step's size: encoding with more steps than training), else 1.
        gauss_newton: the damping ``λ > 0`` of Gauss–Newton steps ``(λI + H)⁻¹ ∇`` (module
            docstring; explicit models only), or ``None``: plain gradient steps. Default: the
            model's ``gauss_newton``, else ``None``.
        later_fraction: in training (``create_graph=True``), take steps ``2..K`` on a fresh
            uniform subset of this fraction of the points (shared by the batch, weights scaled
            by ``1 / fraction``: an unbiased estimate of the gradient and curvature), so that
            each later step's per-sample pass costs this fraction of a full one. The first step
            always uses all points, and so does inference (``create_graph=False``): encoding
            stays deterministic. Default: the model's ``later_fraction``, else ``None`` (all
            points).
    Returns:
        ``(B, k)`` latents.
    """
    if steps is None:
        steps = getattr(model, "latent_steps", 1)
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    if step_size is None:
        step_size = model.latent_step_sizes(steps) if hasattr(model, "latent_step_sizes") else 1.0
    if gauss_newton is None:
        gauss_newton = getattr(model, "gauss_newton", None)
    if later_fraction is None:
        later_fraction = getattr(model, "later_fraction", None)
    if later_fraction is not None and (
        isinstance(later_fraction, bool) or not isinstance(later_fraction, (int, float)) or not 0 < later_fraction <= 1
    ):
        raise ValueError(f"later_fraction must be in (0, 1] or None, got {later_fraction!r}")
    if gauss_newton is not None and (
        isinstance(gauss_newton, bool) or not isinstance(gauss_newton, (int, float)) or not gauss_newton > 0
    ):
        raise ValueError(f"gauss_newton must be a damping > 0 or None, got {gauss_newton!r}")
    if check:
        check_target(model, coords, target)
    loss = get_loss(loss)
    integrator = integrator or GridIntegrator()
    if method not in ("auto", "explicit", "autograd"):
        raise ValueError(f"method must be 'auto', 'explicit' or 'autograd', got {method!r}")
    explicit = _is_explicit(model) if method == "auto" else method == "explicit"
    if explicit and not _is_explicit(model):
        raise TypeError(f"{type(model).__name__} does not support the explicit gradient-origin path")
    if gauss_newton is not None and not explicit:
        raise TypeError(
            f"gauss_newton needs the explicit gradient-origin path, which {type(model).__name__} does not support"
        )
    alphas = _step_sizes(step_size, steps, getattr(model, "latent_dim", None))
    graph = create_graph and torch.is_grad_enabled()
    with torch.set_grad_enabled(graph):
        c, t, w = integrator.select(coords, target, generator=generator)
        if explicit:
            z = _latent_explicit(model, c, t, loss, w, create_graph, gauss_newton)
        else:
            z = _latent_autograd(model, c, t, loss, w, create_graph)
        if alphas is not None:
            alphas = alphas.to(z)
            z = alphas[0] * z
        later = MonteCarloIntegrator(fraction=later_fraction) if graph and later_fraction not in (None, 1) else None
        for k in range(1, steps):
            cl, tl, wl = c, t, w
            if later is not None:
                cl, tl, wl = later.select(c, t, generator=generator)
                wl = w * wl
            g = (
                _gradient_explicit(model, cl, tl, loss, wl, z, graph, gauss_newton)
                if explicit
                else _gradient_at(model, cl, tl, loss, wl, z, graph)
            )
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


def _gradient_explicit(model, c, t, loss, w, z, create_graph: bool, gauss_newton=None) -> torch.Tensor:
    """``∇_z`` of the inner integral at latents ``z (B, k)`` (or its Gauss–Newton direction) with
    the model's explicit backward (the per-sample path of :func:`_latent_explicit`, its first
    pre-activation shifted by ``z``): the same arithmetic as autograd, without a double backward."""
    raw, us = _forward_at(model, c, z)
    return _inner_gradient(model, us, raw, t, loss, w, create_graph, gauss_newton)


def _forward_at(model, c, z):
    """The explicit forward pass at latents ``z (B, k)`` (its first pre-activation shifted by
    ``z``): raw outputs ``(B, P, O)`` and the saved pre-activations for the explicit backward."""
    u = model.coord_preactivation(c) + model.latent_preactivation(z).unsqueeze(-2)  # (B, P, H)
    return model.origin_forward(u, z)


def _gradient_at(model, c, t, loss, w, z, create_graph: bool) -> torch.Tensor:
    """``∇_z`` of the inner integral at latents ``z (B, k)`` (autograd through ``model(c, z)``)."""
    with torch.enable_grad():
        zz = z if z.requires_grad else z.detach().requires_grad_()
        inner = integrate(loss(model(c, zz), t), w).sum()
        (g,) = torch.autograd.grad(inner, zz, create_graph=create_graph)
    return g if create_graph else g.detach()


def gon_loss(
    model,
    coords: torch.Tensor,
    target: torch.Tensor,
    *,
    inner_loss="mse",
    outer_loss=None,
    inner_integrator: Integrator | None = None,
    outer_integrator: Integrator | None = None,
    inner_coords: torch.Tensor | None = None,
    inner_target: torch.Tensor | None = None,
    create_graph: bool = True,
    generator: torch.Generator | None = None,
    method: str = "auto",
    check: bool = True,
    steps: int | None = None,
    step_size=None,
    gauss_newton: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GON training objective: the outer integral through the gradient-origin latent.

    The inner integral (which gives ``z``) and the outer integral (the loss) are chosen
    independently: by default both use ``coords``/``target`` with the full grid; pass
    ``inner_coords``/``inner_target`` for modality conversion (e.g. inner on a 14² source,
    outer on the 28² target) and ``outer_integrator=MonteCarloIntegrator(fraction=0.25)`` for
    a Monte-Carlo outer loss.

    Args:
        coords: outer points ``(P, n)`` or ``(B, P, n)``.
        target: outer values ``(B, P, O)``.
        inner_loss: the inner integral's point loss.
        outer_loss: the outer integral's (default: ``inner_loss``).
        inner_coords: inner points (default: ``coords``).
        inner_target: inner values (default: ``target``).
        create_graph: ``True`` for training (the loss differentiates through ``z``).
        steps: the latent's steps (see :func:`gon_latent`).
        step_size: the size of steps 2..K (see :func:`gon_latent`).
        gauss_newton: the Gauss–Newton damping (see :func:`gon_latent`).
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
    z = gon_latent(
        model,
        ic,
        it,
        loss=inner_loss,
        integrator=inner_integrator,
        create_graph=create_graph,
        generator=generator,
        method=method,
        check=False,
        steps=steps,
        step_size=step_size,
        gauss_newton=gauss_newton,
    )
    outer = get_loss(outer_loss if outer_loss is not None else inner_loss)
    c, t, w = (outer_integrator or GridIntegrator()).select(coords, target, generator=generator)
    loss = integrate(outer(model(c, z), t), w).mean()
    return loss, z
