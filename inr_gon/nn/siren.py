"""SIREN networks (Sitzmann et al., 2020) and the latent-conditioned SIREN used by GONs.

Notation used in every docstring of this package:

* ``B`` batch (samples), ``P`` points per sample, ``n`` coordinate dimension,
  ``k`` latent dimension, ``H`` hidden width, ``O`` output channels.

A sine layer computes ``sin(w0 * (W x + b))``. Initialisation follows SIREN: the first
layer's weights are ``U(-1/n_in, 1/n_in)``, every later layer's (the linear output layer
included, as in cwkx/GON) ``U(-sqrt(6/n_in)/w0, +sqrt(6/n_in)/w0)``; biases keep PyTorch's
default ``U(-1/sqrt(n_in), 1/sqrt(n_in))``.

The ``w0`` factor is folded into the (small) weight matrices at run time
(``sin(x @ (w0 W)^T + w0 b)``) instead of scaling the large ``(B, P, H)`` activations, which
saves one elementwise pass per layer; the parametrisation (and so the optimiser's view of
it) is unchanged.
"""

from __future__ import annotations

import contextlib
import math
from typing import Callable

import torch
from torch import nn
import torch.nn.functional as F

from .fused import _FusedSineTrunk, _sine_trunk

__all__ = ["SineLayer", "Siren", "LatentSiren", "siren_uniform_"]


def siren_uniform_(weight: torch.Tensor, *, fan_in: int, w0: float, is_first: bool) -> torch.Tensor:
    """Fill ``weight`` in place with SIREN's principled initialisation and return it."""
    bound = 1.0 / fan_in if is_first else math.sqrt(6.0 / fan_in) / w0
    with torch.no_grad():
        return weight.uniform_(-bound, bound)


def _default_bias_(bias: torch.Tensor, fan_in: int) -> torch.Tensor:
    bound = 1.0 / math.sqrt(fan_in)
    with torch.no_grad():
        return bias.uniform_(-bound, bound)


class SineLayer(nn.Module):
    """``x (..., n_in) -> sin(w0 (x W^T + b)) (..., n_out)`` with SIREN initialisation."""

    def __init__(
        self, in_features: int, out_features: int, *, w0: float = 30.0, is_first: bool = False, bias: bool = True
    ):
        super().__init__()
        self.in_features, self.out_features, self.w0 = in_features, out_features, float(w0)
        self.linear = nn.Linear(in_features, out_features, bias=bias)
        siren_uniform_(self.linear.weight, fan_in=in_features, w0=w0, is_first=is_first)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = None if self.linear.bias is None else self.w0 * self.linear.bias
        return torch.sin(F.linear(x, self.w0 * self.linear.weight, b))

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, w0={self.w0}"


def _activation(name: str | Callable | None) -> Callable[[torch.Tensor], torch.Tensor] | None:
    if name is None or callable(name):
        return name
    table = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}
    if name not in table:
        raise ValueError(f"unknown out_activation {name!r}; choose one of {sorted(table)} or a callable")
    return table[name]


class Siren(nn.Module):
    """Plain SIREN MLP: ``x (..., in_dim) -> (..., out_dim)``.

    ``num_layers`` sine layers of width ``hidden_dim`` followed by a linear output layer
    and an optional ``out_activation`` (``"sigmoid"``, ``"tanh"``, ``"relu"`` or a callable).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden_dim: int = 256,
        num_layers: int = 4,
        *,
        w0: float = 30.0,
        w0_first: float = 30.0,
        out_activation=None,
    ):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        dims = [in_dim] + [hidden_dim] * num_layers
        self.layers = nn.ModuleList(
            SineLayer(a, b, w0=w0_first if i == 0 else w0, is_first=i == 0)
            for i, (a, b) in enumerate(zip(dims[:-1], dims[1:]))
        )
        self.out = nn.Linear(hidden_dim, out_dim)
        siren_uniform_(self.out.weight, fan_in=hidden_dim, w0=w0, is_first=False)
        self.out_activation = _activation(out_activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        y = self.out(x)
        return y if self.out_activation is None else self.out_activation(y)


class LatentSiren(nn.Module):
    """Latent-conditioned SIREN ``F(c ⊕ z)``: coordinates plus a per-sample latent to signal values.

    Mathematically the first layer is one ``nn.Linear(n + k, H)`` over the concatenation
    ``c ⊕ z`` (and is initialised as such: ``U(-1/(n+k), 1/(n+k))``), but its coordinate
    columns ``W_c`` (``coord_weight``, ``(H, n)``) and latent columns ``W_z``
    (``latent_weight``, ``(H, k)``) are applied separately, so the ``(B, P, n + k)`` tensor is
    never built and, for coordinates shared by the batch, ``c W_c^T + b`` is computed once.

    ``num_layers`` counts the sine layers; the official MNIST model
    ``[34, 256, 256, 256, 256, 1]`` is ``LatentSiren(2, 32, 1, 256, 4)`` (206,593 parameters).

    Args:
        coord_dim: ``n``.  latent_dim: ``k``.  out_dim: ``O``.
        hidden_dim: ``H``.  num_layers: number of sine layers (>= 1).
        w0: frequency factor of the hidden sine layers (and the output init).
        w0_first: frequency factor of the first sine layer (its coordinate columns and bias).
        w0_latent: frequency factor of the first layer's latent columns (default ``w0_first``,
            the paper's single ``nn.Linear(n + k, H)``): a high ``w0_first`` sharpens the
            coordinates' frequencies without also amplifying the latent.
        out_activation: ``None`` (linear output), ``"sigmoid"``, ``"tanh"``, ``"relu"`` or a
            callable applied to the output. GON losses on logits (e.g. ``"bce"``) expect
            ``None``.
        fused: train with the buffer-reusing backward of the sine stack (same values and
            gradients, fewer large allocations; docs/findings/speed.md). Turn it off to apply
            ``torch.func`` transforms or saved-tensor hooks (offloading, checkpointing), which do
            not see that custom backward.
        latent_steps: ``K``, the gradient steps of this model's latents
            (:func:`~inr_gon.core.gon.gon_latent` takes them from the model unless told
            otherwise): ``1`` is the paper's single step.
        step_size: the step size of steps ``2..K`` relative to the first (whose size is the
            inner integral's weight).
        learn_step_size: learn a per-step, per-dimension step size ``α = exp(θ)`` (``(K, k)``,
            initialised to the above) with the network, in place of the hand-set sizes.
        latent_shifts: the latent also shifts every hidden layer's pre-activation by its own
            linear map, ``sin(w0 (W_l h + b_l + M_l z))`` (``shift_weight`` ``(L - 1, H, k)``,
            initialised like the hidden weights; functa's shift modulations). The paper's model
            (``False``) conditions the first layer only. At ``z = 0`` the network is the same,
            so the shared-origin fast path holds; the shifts cost ``O(B·k·H)`` per layer, not
            per point.
        gauss_newton: the damping ``λ > 0`` of Gauss–Newton latent steps
            ``z ← z - α (λI + H)⁻¹ ∇_z`` (:func:`~inr_gon.core.gon.gon_latent` takes it from the
            model unless told otherwise); ``None``: the paper's plain gradient steps.
        later_fraction: in training, steps ``2..K`` are taken on a random subset of this
            fraction of the inner points (:func:`~inr_gon.core.gon.gon_latent`); ``None`` or
            ``1``: all points.
    """

    def __init__(
        self,
        coord_dim: int,
        latent_dim: int,
        out_dim: int,
        hidden_dim: int = 256,
        num_layers: int = 4,
        *,
        w0: float = 30.0,
        w0_first: float = 30.0,
        w0_latent: float | None = None,
        out_activation=None,
        fused: bool = True,
        latent_steps: int = 1,
        step_size: float = 1.0,
        learn_step_size: bool = False,
        latent_shifts: bool = False,
        gauss_newton: float | None = None,
        later_fraction: float | None = None,
    ):
        super().__init__()
        if not isinstance(latent_steps, int) or isinstance(latent_steps, bool) or latent_steps < 1:
            raise ValueError(f"latent_steps must be an int >= 1, got {latent_steps!r}")
        if not (isinstance(step_size, (int, float)) and step_size > 0):
            raise ValueError(f"step_size must be > 0, got {step_size!r}")
        if gauss_newton is not None and (
            isinstance(gauss_newton, bool) or not isinstance(gauss_newton, (int, float)) or not gauss_newton > 0
        ):
            raise ValueError(f"gauss_newton must be a damping > 0 or None, got {gauss_newton!r}")
        for name, v in (
            ("coord_dim", coord_dim),
            ("latent_dim", latent_dim),
            ("out_dim", out_dim),
            ("hidden_dim", hidden_dim),
            ("num_layers", num_layers),
        ):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        self.coord_dim, self.latent_dim, self.out_dim = coord_dim, latent_dim, out_dim
        self.hidden_dim, self.num_layers = hidden_dim, num_layers
        if w0_latent is not None and not (isinstance(w0_latent, (int, float)) and w0_latent > 0):
            raise ValueError(f"w0_latent must be > 0, got {w0_latent!r}")
        self.w0, self.w0_first = float(w0), float(w0_first)
        self.w0_latent = self.w0_first if w0_latent is None else float(w0_latent)
        self.out_activation_spec = out_activation if isinstance(out_activation, str) else None
        self.out_activation = _activation(out_activation)
        self.fused = bool(fused)

        fan_in = coord_dim + latent_dim
        first = torch.empty(hidden_dim, fan_in)
        siren_uniform_(first, fan_in=fan_in, w0=w0_first, is_first=True)
        self.coord_weight = nn.Parameter(first[:, :coord_dim].clone())  # (H, n)
        self.latent_weight = nn.Parameter(first[:, coord_dim:].clone())  # (H, k)
        self.first_bias = nn.Parameter(_default_bias_(torch.empty(hidden_dim), fan_in))
        self.hidden = nn.ModuleList(SineLayer(hidden_dim, hidden_dim, w0=w0) for _ in range(num_layers - 1))
        self.out = nn.Linear(hidden_dim, out_dim)
        siren_uniform_(self.out.weight, fan_in=hidden_dim, w0=w0, is_first=False)
        # the latent's gradient steps (created last, so the network's own initialisation does not
        # depend on these options)
        self.latent_steps, self.step_size, self.learn_step_size = (
            int(latent_steps),
            float(step_size),
            bool(learn_step_size),
        )
        if self.learn_step_size:
            init = torch.tensor([1.0] + [self.step_size] * (self.latent_steps - 1)).log()
            self.log_step_size = nn.Parameter(init[:, None].repeat(1, latent_dim))  # (K, k)
        self.gauss_newton = None if gauss_newton is None else float(gauss_newton)
        if later_fraction is not None and (
            isinstance(later_fraction, bool)
            or not isinstance(later_fraction, (int, float))
            or not 0 < later_fraction <= 1
        ):
            raise ValueError(f"later_fraction must be in (0, 1] or None, got {later_fraction!r}")
        self.later_fraction = None if later_fraction in (None, 1) else float(later_fraction)
        self.latent_shifts = bool(latent_shifts)
        if self.latent_shifts:
            M = torch.empty(num_layers - 1, hidden_dim, latent_dim)
            siren_uniform_(M, fan_in=hidden_dim + latent_dim, w0=w0, is_first=False)
            self.shift_weight = nn.Parameter(M)  # (L - 1, H, k)

    # -- configuration (what a checkpoint needs to rebuild the model) -------------------------
    def config(self) -> dict:
        """Keyword arguments that rebuild this architecture: ``LatentSiren(**m.config())``."""
        cfg = dict(
            coord_dim=self.coord_dim,
            latent_dim=self.latent_dim,
            out_dim=self.out_dim,
            hidden_dim=self.hidden_dim,
            num_layers=self.num_layers,
            w0=self.w0,
            w0_first=self.w0_first,
            out_activation=self.out_activation_spec,
        )
        # the options below only when set, so a plain model's config holds the base keys alone
        if self.w0_latent != self.w0_first:
            cfg["w0_latent"] = self.w0_latent
        if self.latent_steps != 1:
            cfg["latent_steps"] = self.latent_steps
        if self.step_size != 1.0:
            cfg["step_size"] = self.step_size
        if self.learn_step_size:
            cfg["learn_step_size"] = True
        if self.latent_shifts:
            cfg["latent_shifts"] = True
        if self.gauss_newton is not None:
            cfg["gauss_newton"] = self.gauss_newton
        if self.later_fraction is not None:
            cfg["later_fraction"] = self.later_fraction
        return cfg

    def latent_step_sizes(self, steps: int | None = None) -> torch.Tensor | float:
        """The step sizes ``α`` of ``steps`` latent gradient steps (default: the trained ``K``):
        ``(steps, k)`` when learned, else ``(steps, 1)`` (``1`` for the first step, ``step_size``
        for the others), or ``1.0`` when every step is the plain unit step. Steps beyond the
        trained ``K`` (more steps when encoding) repeat the last trained step's size."""
        steps = self.latent_steps if steps is None else steps
        if self.learn_step_size:
            a = self.log_step_size.exp()
            return torch.cat([a, a[-1:].expand(max(steps - a.shape[0], 0), -1)])[:steps]
        if steps == 1 or self.step_size == 1.0:
            return 1.0
        return torch.tensor(
            [1.0] + [self.step_size] * (steps - 1),
            device=self.coord_weight.device,
            dtype=self.coord_weight.dtype,
        )[:, None]

    # -- pieces ---------------------------------------------------------------------------------
    def coord_preactivation(self, coords: torch.Tensor) -> torch.Tensor:
        """``w0_first (c W_c^T + b)``: coords ``(..., n)`` -> ``(..., H)``."""
        return F.linear(coords, self.w0_first * self.coord_weight, self.w0_first * self.first_bias)

    def latent_preactivation(self, z: torch.Tensor) -> torch.Tensor:
        """``w0_latent z W_z^T``: z ``(B, k)`` -> ``(B, H)``."""
        return F.linear(z, self.w0_latent * self.latent_weight)

    def hidden_shifts(self, z: torch.Tensor | None) -> torch.Tensor | None:
        """The latent's shifts of the hidden pre-activations, ``w0 M_l z``: z ``(B, k)`` ->
        ``(B, L - 1, H)``; ``None`` without ``latent_shifts`` (or for ``z = None``)."""
        if not self.latent_shifts or z is None:
            return None
        return torch.einsum("lhk,bk->blh", self.w0 * self.shift_weight, z)

    def latent_readout(self) -> torch.Tensor:
        """``(H', k)``: maps :meth:`backward_from`'s ``(…, H')`` to the gradient in ``z``: ``W_z``
        (``H' = H``), stacked with the shift maps ``M_1 … M_{L-1}`` with ``latent_shifts``
        (``H' = L·H``)."""
        if not self.latent_shifts:
            return self.latent_weight
        return torch.cat([self.latent_weight, *self.shift_weight], dim=0)

    def trunk_params(self) -> list[torch.Tensor]:
        """``[W_2, b_2, ..., W_L, b_L, W_out, b_out]`` with the hidden ``w0`` folded in."""
        params = []
        for layer in self.hidden:
            params += [layer.w0 * layer.linear.weight, layer.w0 * layer.linear.bias]
        return params + [self.out.weight, self.out.bias]

    def trunk(self, u1: torch.Tensor, shifts: torch.Tensor | None = None, *, fused: bool | None = None) -> torch.Tensor:
        """Network after the first pre-activation: ``u1 (..., H)`` (already scaled by w0_first)
        -> raw output ``(..., O)`` (before ``out_activation``); ``shifts`` ``(B, L - 1, H)``
        (:meth:`hidden_shifts`, with ``u1`` ``(B, P, H)``) are added to the hidden pre-activations.

        ``fused`` (default: ``self.fused``) uses the buffer-reusing backward of
        ``_FusedSineTrunk`` when gradients are recorded, autocast is off and ``torch.compile``
        is not tracing; results and gradients are those of the plain stack.
        """
        fused = self.fused if fused is None else fused
        # under torch.compile the plain ops are traced (and fused by the compiler) instead
        if (
            fused
            and torch.is_grad_enabled()
            and not torch.is_autocast_enabled(u1.device.type)
            and not torch.compiler.is_compiling()
        ):
            out = _FusedSineTrunk.apply(u1.reshape(-1, u1.shape[-1]), shifts, *self.trunk_params())
            return out.reshape(*u1.shape[:-1], out.shape[-1])
        return _sine_trunk(u1, self.trunk_params(), shifts)[0]

    def check_inputs(self, coords: torch.Tensor, z: torch.Tensor) -> None:
        """Raise a clear ``TypeError``/``ValueError`` if ``coords``/``z`` do not fit this model."""
        for name, t in (("coords", coords), ("z", z)):
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
            if not t.is_floating_point():
                raise TypeError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
        if coords.dim() not in (2, 3) or coords.shape[-1] != self.coord_dim:
            raise ValueError(
                f"coords must have shape (P, {self.coord_dim}) or (B, P, {self.coord_dim}), got {tuple(coords.shape)}"
            )
        if z.dim() != 2 or z.shape[-1] != self.latent_dim:
            raise ValueError(f"z must have shape (B, {self.latent_dim}), got {tuple(z.shape)}")
        if coords.dim() == 3 and coords.shape[0] != z.shape[0]:
            raise ValueError(f"per-sample coords have batch {coords.shape[0]} but z has batch {z.shape[0]}")

    def forward(self, coords: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Evaluate ``F(c ⊕ z)``.

        Args:
            coords: ``(P, n)`` shared by the batch, or ``(B, P, n)`` per sample.
            z: ``(B, k)`` latents.
        Returns:
            ``(B, P, O)`` signal values (after ``out_activation`` if any).
        """
        self.check_inputs(coords, z)
        # the first layer stays float32 under autocast: its pre-activations reach tens of radians
        # (w0_first · (c W_c^T + b)), beyond what bf16's 8-bit mantissa resolves
        dev = coords.device.type
        with torch.autocast(dev, enabled=False) if torch.is_autocast_enabled(dev) else contextlib.nullcontext():
            u_c = self.coord_preactivation(coords)  # (P, H) or (B, P, H)
            u1 = u_c + self.latent_preactivation(z).unsqueeze(-2)  # (B, P, H)
            shifts = self.hidden_shifts(z)  # (B, L - 1, H) or None
        # derivatives w.r.t. the coordinates (eikonal terms) are usually differentiated again:
        # the plain stack serves that directly, the fused one only by recomputing
        y = self.trunk(u1, shifts, fused=self.fused and not coords.requires_grad)
        return y if self.out_activation is None else self.out_activation(y)

    def forward_concat(self, coords: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Reference forward that builds ``c ⊕ z`` explicitly (the official formulation);
        for tests and benchmarks only. Same shapes as :meth:`forward`."""
        self.check_inputs(coords, z)
        B = z.shape[0]
        if coords.dim() == 2:
            coords = coords.unsqueeze(0).expand(B, -1, -1)
        cz = torch.cat([coords, z.unsqueeze(1).expand(-1, coords.shape[1], -1)], dim=-1)
        w = torch.cat([self.coord_weight, (self.w0_latent / self.w0_first) * self.latent_weight], dim=1)
        y = self.trunk(self.w0_first * F.linear(cz, w, self.first_bias), self.hidden_shifts(z), fused=False)
        return y if self.out_activation is None else self.out_activation(y)

    # -- the explicit inner gradient used by the gradient-origin latent --------------------------
    def origin_forward(
        self, u1: torch.Tensor, z: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Forward from ``u1 (..., H)`` returning the raw output ``(..., O)`` and the list of
        pre-activations ``[u1, u2, ...]`` (each ``(..., H)``) for :meth:`backward_from`.
        ``z`` ``(B, k)`` (with ``u1`` ``(B, P, H)``): away from the origin, with the latent's
        hidden shifts (``None``: at the origin, where they vanish)."""
        return _sine_trunk(u1, self.trunk_params(), self.hidden_shifts(z))

    def backward_from(self, us: list[torch.Tensor], cotangent: torch.Tensor) -> torch.Tensor:
        """Explicit VJP given the saved pre-activations of :meth:`origin_forward`.

        Args:
            us: pre-activations, each ``(..., H)`` (broadcastable against the cotangent's batch).
            cotangent: ``(..., O)`` cotangent on the raw output.
        Returns:
            ``(..., H)`` gradient with respect to the latent's unscaled contribution ``z W_z^T``
            to the first pre-activation (``w0_latent`` times the gradient with respect to it);
            with ``latent_shifts`` ``(..., L·H)``: that, then the gradients with respect to
            each hidden layer's unscaled shift ``M_l z`` (the rows of :meth:`latent_readout`).
        """
        g = cotangent @ self.out.weight
        parts = []
        for i in range(len(self.hidden), 0, -1):
            layer = self.hidden[i - 1]
            g = g * torch.cos(us[i])
            if self.latent_shifts:
                parts.append(layer.w0 * g)
            g = g @ (layer.w0 * layer.linear.weight)
        first = self.w0_latent * (g * torch.cos(us[0]))
        return torch.cat([first, *parts[::-1]], dim=-1) if self.latent_shifts else first
