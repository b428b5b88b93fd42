"""GONs over signed distance fields: the gradient-origin latent of a shape and its training loss.

A shape ``i`` is given by signed distances ``s_ip`` (negative inside) at 3-D points ``c_ip``.
Its latent is the negative gradient, at the origin, of the inner data-fitting sum over that
shape's points::

    z_i = -w ∇_{z0} Σ_p ℓ(F(c_ip ⊕ z0), s_ip)   at z0 = 0,        w = inner_scale,

and training minimises the outer loss on *fresh* points of the same shape (a different random
subset from the one that gave ``z_i``), differentiating through ``z_i`` (second order)::

    L = mean_i mean_p ℓ'(F(c'_ip ⊕ z_i), s'_ip)
        + eikonal_weight · mean_i mean_p (‖∇_c F(c'_ip ⊕ z_i)‖ - 1)².

Losses: DeepSDF's clamped L1 ``|clamp(F, ±δ) - clamp(s, ±δ)|`` (default, ``δ = 0.1``) and L2
(``"l2"``/``"mse"``), or any loss :func:`inr_gon.losses.get_loss` knows.

Per-sample points (each shape its own ``(P, 3)`` points, e.g. DeepSDF's near-surface samples)
use the general per-sample path of :func:`inr_gon.gon.gon_latent`: ``B · P`` network passes.
When every shape's SDF is known at the *same* points (``inner_points`` of shape ``(P, 3)``,
e.g. uniform points drawn once per step for analytic shapes), the exact shared-origin fast path
applies: one pass over ``P`` points for the whole batch (``benchmarks/sdf_step.py`` measures
both).

Inner scale. The latent is linear in ``w``. ``w = inner_weight / P`` makes ``z`` an estimate of
``-inner_weight ∇ mean_p ℓ``, independent of how many points encode a shape (training and
encoding unseen shapes may use different ``P``). :data:`DEFAULT_INNER_WEIGHT` comes from the
inner-weight sweep of ``benchmarks/sdf_step.py --scales`` (evidence: docs/findings/shapes.md).

This module is part of the core: no file I/O.
"""

from __future__ import annotations

import contextlib

import torch

from .gon import gon_latent
from .integrators import GridIntegrator
from .losses import ClampedL1, TruncatedL1, TruncatedL2, get_loss

__all__ = [
    "bounded_loss",
    "sdf_gon_latent",
    "sdf_gon_loss",
    "sdf_point_loss",
    "eikonal_loss",
    "latent_sdf",
    "LatentSDF",
    "split_points",
    "smallest_keys",
    "random_shape_points",
    "DEFAULT_INNER_WEIGHT",
]

#: Default total inner weight: ``inner_scale = DEFAULT_INNER_WEIGHT / P`` (see the module docstring).
DEFAULT_INNER_WEIGHT = 0.3


def _autocast(device_type: str, dtype):
    return torch.autocast(device_type=device_type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


#: The SDF losses that take a clamp ``delta``.
_CLAMPED = {"clamped_l1": ClampedL1, "truncated_l1": TruncatedL1, "truncated_l2": TruncatedL2}


def sdf_point_loss(loss="clamped_l1", *, delta: float = 0.1):
    """The pointwise loss object for a name: ``"clamped_l1"``, ``"truncated_l1"`` or
    ``"truncated_l2"`` (with ``delta``), ``"l2"``/``"mse"``, ``"l1"``, or a
    :class:`~inr_gon.losses.PointLoss` / callable passed through."""
    if isinstance(loss, str) and loss in _CLAMPED:
        if not delta > 0:
            raise ValueError(f"delta must be > 0, got {delta}")
        return _CLAMPED[loss](delta=float(delta))
    if loss == "bce":
        raise ValueError("loss 'bce' is for occupancies, not signed distances; use 'clamped_l1' or 'l2'")
    return get_loss(loss)


def bounded_loss(loss, free: torch.Tensor, *, delta: float = 0.1):
    """A point loss for observations (:mod:`inr_gon.geometry.observe`): ``loss`` (a name or a
    loss, as :func:`sdf_point_loss` takes it) where the target is a signed distance, and where
    ``free`` ``(B, P)`` is true the target is a lower bound, penalised only when the prediction is
    below it (``ℓ(min(pred, bound), bound)``: zero for a satisfied bound). Returns a callable
    ``(pred, target) (B, P, 1) -> (B, P, 1)`` for exactly those ``B × P`` points."""
    base = sdf_point_loss(loss, delta=delta)
    mask = free.unsqueeze(-1) if free.dim() == 2 else free

    def observed(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return base(torch.where(mask, torch.minimum(pred, target), pred), target)

    return observed


def _check(points: torch.Tensor, sdf: torch.Tensor, name: str, *, shared_ok: bool) -> None:
    for nm, t in ((f"{name}points", points), (f"{name}sdf", sdf)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{nm} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"{nm} must be a floating-point tensor, got dtype {t.dtype}")
    dims = (2, 3) if shared_ok else (3,)
    if points.dim() not in dims or points.shape[-1] != 3:
        want = "(P, 3) or (B, P, 3)" if shared_ok else "(B, P, 3)"
        raise ValueError(f"{name}points must have shape {want}, got {tuple(points.shape)}")
    if sdf.dim() != 2:
        raise ValueError(f"{name}sdf must have shape (B, P), got {tuple(sdf.shape)}")
    if points.shape[-2] != sdf.shape[1]:
        raise ValueError(f"{name}points have {points.shape[-2]} points but {name}sdf has {sdf.shape[1]}")
    if points.dim() == 3 and points.shape[0] != sdf.shape[0]:
        raise ValueError(f"{name}points have batch {points.shape[0]} but {name}sdf has {sdf.shape[0]}")
    if points.shape[-2] < 1:
        raise ValueError(f"{name}points are empty")


def sdf_gon_latent(
    model,
    points: torch.Tensor,
    sdf: torch.Tensor,
    *,
    loss="clamped_l1",
    delta: float = 0.1,
    inner_scale: float | None = None,
    inner_weight: float = DEFAULT_INNER_WEIGHT,
    create_graph: bool = False,
    method: str = "auto",
    check: bool = True,
    steps: int | None = None,
    step_size=None,
    gauss_newton: float | None = None,
) -> torch.Tensor:
    """Gradient-origin latents of shapes from their signed distances.

    Args:
        model: a :class:`~inr_gon.siren.LatentSiren` with ``coord_dim=3, out_dim=1`` (or any
            ``model(coords, z) -> (B, P, 1)`` with ``latent_dim``).
        points: ``(B, P, 3)`` per-shape points (general path) or ``(P, 3)`` shared by every
            shape (exact shared-origin fast path).
        sdf: ``(B, P)`` signed distances at ``points``.
        loss: the inner point loss (see :func:`sdf_point_loss`).
        delta: its clamp.
        inner_scale: weight per point ``w``; default ``inner_weight / P``.
        create_graph: keep the graph (training); ``False`` returns a detached latent.
        method: ``"auto"``, ``"explicit"`` or ``"autograd"`` (see :func:`~inr_gon.core.gon.gon_latent`).
        steps: gradient steps of the latent (see :func:`~inr_gon.core.gon.gon_latent`; default:
            the model's).
        step_size: the size of steps 2..K (default: the model's).
        gauss_newton: Gauss–Newton damping of the steps (default: the model's).
    Returns:
        ``(B, k)`` latents.
    """
    if check:
        _check(points, sdf, "", shared_ok=True)
    w = _scale(inner_scale, inner_weight, sdf.shape[1])
    return gon_latent(
        model,
        points,
        sdf.unsqueeze(-1),
        loss=sdf_point_loss(loss, delta=delta),
        integrator=GridIntegrator(scale=w),
        create_graph=create_graph,
        method=method,
        check=check,
        steps=steps,
        step_size=step_size,
        gauss_newton=gauss_newton,
    )


def _scale(inner_scale, inner_weight, P):
    if inner_scale is not None:
        if not inner_scale > 0:
            raise ValueError(f"inner_scale must be > 0, got {inner_scale}")
        return float(inner_scale)
    if not inner_weight > 0:
        raise ValueError(f"inner_weight must be > 0, got {inner_weight}")
    return float(inner_weight) / P


def split_points(
    points: torch.Tensor, sdf: torch.Tensor, num_inner: int, num_outer: int, *, generator: torch.Generator | None = None
):
    """Two disjoint random subsets of each shape's points (a fresh permutation per shape).

    Args:
        points: ``(B, N, 3)``; sdf: ``(B, N)``; ``num_inner + num_outer <= N``.
    Returns:
        ``(inner_points (B, m_in, 3), inner_sdf (B, m_in), outer_points (B, m_out, 3),
        outer_sdf (B, m_out))``.
    """
    B, N = sdf.shape
    if num_inner < 1 or num_outer < 1 or num_inner + num_outer > N:
        raise ValueError(
            f"need 1 <= num_inner, num_outer and num_inner + num_outer <= {N} points, got {num_inner} + {num_outer}"
        )
    p, s = random_shape_points(points, sdf, num_inner + num_outer, generator)
    return p[:, :num_inner], s[:, :num_inner], p[:, num_inner:], s[:, num_inner:]


def smallest_keys(keys: torch.Tensor, m: int) -> torch.Tensor:
    """Positions of the ``m`` smallest of each row of ``keys (B, N)``, smallest first: ``(B, min(m, N))``,
    the same as ``keys.argsort(dim=1)[:, :m]``. With random keys, a uniformly random subset in
    random order. A partial selection: cheaper than the full sort when ``m`` ≪ ``N``."""
    return keys.topk(min(m, keys.shape[1]), dim=1, largest=False).indices


def random_shape_points(points, sdf, m: int, generator=None):
    """``m`` distinct random points of each shape: ``points (B, N, 3)`` (or ``(N, 3)`` shared),
    ``sdf (B, N)`` -> ``(B, m, 3)``, ``(B, m)``."""
    B, N = sdf.shape
    dev = generator.device if generator is not None else sdf.device
    idx = smallest_keys(torch.rand(B, N, generator=generator, device=dev), m).to(sdf.device)
    if points.dim() == 2:
        points = points.unsqueeze(0).expand(B, -1, -1)
    return points.gather(1, idx.unsqueeze(-1).expand(-1, -1, 3)), sdf.gather(1, idx)


def eikonal_loss(
    model, points: torch.Tensor, z: torch.Tensor, *, create_graph: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """``mean (‖∇_c F(c ⊕ z)‖ - 1)²`` over ``points`` and the batch (autograd w.r.t. coordinates).

    Args:
        points: ``(B, P, 3)`` or ``(P, 3)``; z: ``(B, k)``.
    Returns:
        ``(loss (scalar), values (B, P, 1))``: the eikonal term and the network's values there.
    """
    with torch.enable_grad():
        c = points.detach().requires_grad_(True)
        y = model(c, z)  # (B, P, 1)
        (g,) = torch.autograd.grad(y.sum(), c, create_graph=create_graph)  # (B, P, 3) or (P, 3)
    return (g.norm(dim=-1) - 1).square().mean(), y


def sdf_gon_loss(
    model,
    points: torch.Tensor,
    sdf: torch.Tensor,
    *,
    inner_points: torch.Tensor | None = None,
    inner_sdf: torch.Tensor | None = None,
    num_inner: int | None = None,
    num_outer: int | None = None,
    loss="clamped_l1",
    outer_loss=None,
    delta: float = 0.1,
    inner_scale: float | None = None,
    inner_weight: float = DEFAULT_INNER_WEIGHT,
    eikonal_weight: float = 0.0,
    eikonal_points: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    create_graph: bool = True,
    method: str = "auto",
    check: bool = True,
    outer_dtype: torch.dtype | None = None,
    steps: int | None = None,
    step_size=None,
):
    """SDF-GON training objective for a batch of shapes.

    Two ways to give the points:

    * a pool per shape, ``points (B, N, 3)``, ``sdf (B, N)``, and no ``inner_points``: each
      shape's pool is split into two disjoint random subsets, ``num_inner`` points (default
      ``N // 2``) for the latent and ``num_outer`` (default the rest) for the outer loss;
    * explicit ``inner_points`` ``(B, P, 3)`` — or ``(P, 3)`` shared by the batch, the exact
      shared-origin fast path — with ``inner_sdf`` ``(B, P)``; then ``points``/``sdf`` are the
      outer points (``(B, M, 3)``/``(P', 3)`` and ``(B, M)``), subsampled per shape to
      ``num_outer`` if given.

    Args:
        loss: inner loss; ``outer_loss`` defaults to it. ``delta``: the clamp of ``"clamped_l1"``.
        inner_scale: weight per inner point; default ``inner_weight / P_inner``.
        eikonal_weight: weight of ``mean (‖∇_c F‖ - 1)²`` at the outer points (or at
            ``eikonal_points`` ``(B, E, 3)`` / ``(E, 3)`` if given, e.g. uniform points).
        generator: for the random subsets.
        steps: gradient steps of the latent (see :func:`~inr_gon.core.gon.gon_latent`).
        step_size: the size of steps 2..K.
        outer_dtype: autocast dtype of the outer network pass (``torch.bfloat16`` or
            ``torch.float16``; ``None``: off). The latent and the losses stay float32.
    Returns:
        ``(loss, z, parts)``: scalar loss (batch mean of the per-point mean outer loss, plus the
        eikonal term), ``(B, k)`` latents and ``{"sdf": float tensor, "eikonal": float tensor}``
        (detached scalars).
    """
    if (inner_points is None) != (inner_sdf is None):
        raise ValueError("give both inner_points and inner_sdf, or neither")
    if eikonal_weight < 0:
        raise ValueError(f"eikonal_weight must be >= 0, got {eikonal_weight}")
    if check:
        _check(points, sdf, "", shared_ok=inner_points is not None)
    if inner_points is None:
        N = sdf.shape[1]
        m_in = num_inner if num_inner is not None else N // 2
        m_out = num_outer if num_outer is not None else N - m_in
        ip, isdf, op, osdf = split_points(points, sdf, m_in, m_out, generator=generator)
    else:
        if check:
            _check(inner_points, inner_sdf, "inner_", shared_ok=True)
            if inner_sdf.shape[0] != sdf.shape[0]:
                raise ValueError(f"inner_sdf has batch {inner_sdf.shape[0]} but sdf has {sdf.shape[0]}")
        ip, isdf, op, osdf = inner_points, inner_sdf, points, sdf
        if num_outer is not None and num_outer < sdf.shape[1]:
            if num_outer < 1:
                raise ValueError(f"num_outer must be >= 1, got {num_outer}")
            op, osdf = random_shape_points(op, osdf, num_outer, generator)
    z = sdf_gon_latent(
        model,
        ip,
        isdf,
        loss=loss,
        delta=delta,
        inner_scale=inner_scale,
        inner_weight=inner_weight,
        create_graph=create_graph,
        method=method,
        check=False,
        steps=steps,
        step_size=step_size,
    )
    outer = sdf_point_loss(outer_loss if outer_loss is not None else loss, delta=delta)
    eik = torch.zeros((), device=sdf.device, dtype=sdf.dtype)
    with _autocast(op.device.type, outer_dtype):
        if eikonal_weight > 0 and eikonal_points is None:
            eik, y = eikonal_loss(model, op, z, create_graph=create_graph)
        else:
            y = model(op, z)
            if eikonal_weight > 0:
                eik, _ = eikonal_loss(model, eikonal_points, z, create_graph=create_graph)
    if outer_dtype is not None:
        y, eik = y.float(), eik.float()
    data = outer(y, osdf.unsqueeze(-1)).mean()
    total = data + eikonal_weight * eik if eikonal_weight > 0 else data
    return total, z, {"sdf": data.detach(), "eikonal": eik.detach()}


class LatentSDF(torch.nn.Module):
    """The SDF of one latent: ``(N, 3) -> (N,)`` on the model's device, in chunks, without grad.

    An ``nn.Module`` so that :func:`inr_gon.mesh.extract_mesh` picks the model's device. Points
    on another device are moved to the model's and the values returned on the points' device.
    """

    def __init__(self, model, z: torch.Tensor, *, chunk_size: int = 2**16):
        super().__init__()
        if not isinstance(z, torch.Tensor):
            raise TypeError(f"z must be a torch.Tensor, got {type(z).__name__}")
        if z.dim() == 2 and z.shape[0] == 1:
            z = z[0]
        k = getattr(model, "latent_dim", z.shape[-1])
        if z.dim() != 1 or z.shape[0] != k:
            raise ValueError(f"z must have shape ({k},) or (1, {k}), got {tuple(z.shape)}")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.model = model
        self.chunk_size = int(chunk_size)
        p = next(model.parameters(), None)
        dev = p.device if p is not None else z.device
        dtype = p.dtype if p is not None else z.dtype
        self.register_buffer("z", z.detach().to(device=dev, dtype=dtype)[None])  # (1, k)

    @torch.no_grad()
    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """``points (N, 3)`` -> ``(N,)`` signed distances."""
        if points.dim() != 2 or points.shape[-1] != 3:
            raise ValueError(f"points must have shape (N, 3), got {tuple(points.shape)}")
        dev, z = points.device, self.z
        out = torch.empty(points.shape[0], device=z.device, dtype=z.dtype)
        for s in range(0, points.shape[0], self.chunk_size):
            c = points[s : s + self.chunk_size].to(device=z.device, dtype=z.dtype)
            out[s : s + c.shape[0]] = self.model(c, z)[0, :, 0]
        return out.to(dev)


def latent_sdf(model, z: torch.Tensor, *, chunk_size: int = 2**16) -> LatentSDF:
    """A callable ``(N, 3) -> (N,)`` for one latent ``z`` (``(k,)`` or ``(1, k)``), ready for
    :func:`~inr_gon.mesh.extract_mesh`, :func:`~inr_gon.mesh.sdf_slice` and the shape metrics."""
    return LatentSDF(model, z, chunk_size=chunk_size)
