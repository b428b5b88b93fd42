"""The SDF GON: latents of a shape set's signed distance fields by the gradient-origin step.

Each shape's latent is the gradient at the origin over that shape's points (per-sample
coordinates, or uniform points shared by the batch for analytic shapes: the exact fast path);
the outer loss is on a disjoint random subset of the shape's points. Data, evaluation and
outputs are every shape task's (:mod:`.shapes`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from ...core.sdf import random_shape_points, sdf_gon_latent, smallest_keys, split_points
from ...geometry.observe import seen_from
from ...nn.siren import LatentSiren
from ..config import Check, at_least, nonneg, option
from ..parts import EncodingConfig, GradientOriginConfig, LatentConfig, SirenConfig
from ..objectives import SdfGONObjective
from ..trainer import TrainerConfig
from .base import CollapseWarning
from .sdf_data import ShapeBank, family_shapes
from .shape_parts import SDF_LOSSES, SHAPE_PRESETS, ShapeDataConfig, ShapeLossConfig, ShapeOutputConfig
from .shapes import ShapeTask

__all__ = [
    "SdfConfig",
    "SdfTask",
    "CollapseWarning",
    "SDF_CHECKPOINT_KIND",
]

SDF_CHECKPOINT_KIND = "inr_gon.sdf_gon"


@dataclass
class SdfConfig(
    ShapeDataConfig,
    LatentConfig,
    SirenConfig,
    GradientOriginConfig,
    EncodingConfig,
    ShapeLossConfig,
    ShapeOutputConfig,
    TrainerConfig,
):
    """An SDF GON on a shape set (``None`` fields: the preset's values)."""

    inner_loss: str = option(
        "l2",
        "point loss whose gradient is the latent (L2: the residual's size counts, "
        "so different shapes get different latents)",
        choices=SDF_LOSSES,
        group="encoder",
    )
    inner_fraction: float = option(
        0.5,
        "the share of each shape's points per step that are inner points (the latent's "
        "gradient); the rest are the outer loss's",
        check=Check(lambda v: 0 < v < 1, "must be in (0, 1)"),
        group="encoder",
    )
    inner: str = option(
        "per_sample",
        "inner points per shape from its pool, or shared uniform points (procedural; the exact fast path)",
        choices=("per_sample", "shared"),
        group="encoder",
    )
    inner_sampling: str | None = option(
        None,
        "per-sample inner points: a fresh random subset of the pool every "
        "step, or the same fixed subset of each shape (as it is encoded)",
        choices=("random", "fixed"),
        group="encoder",
    )
    fresh_shapes: float | None = option(
        None,
        "procedural: the share of each batch made of new random shapes of the "
        "family (1: all; the fixed training shapes are still the ones evaluated; "
        "default: 0.25 with per-sample inner points, else 0; other sources: 0)",
        check=Check(lambda v: 0 <= v <= 1, "must be in [0, 1]"),
        group="data",
    )
    fresh_bank: int | None = option(
        None,
        "procedural fresh_shapes: draw the new shapes from a bank of this many (each "
        "made when first drawn, then kept; default 2,048; 0: new ones made every "
        "step, never repeated, at a cost every step)",
        check=at_least(0),
        group="data",
    )
    partial_inner: float = option(
        0.0,
        "the share of each batch's shapes encoded from one side only: their inner points taken from the "
        "half of space facing a random direction (what one view sees), the outer loss on the whole shape "
        "(trains the step to complete shapes from partial observations)",
        check=Check(lambda v: 0 <= v <= 1, "must be in [0, 1]"),
        group="encoder",
    )
    partial_region: str | None = option(
        None,
        "partial_inner: what one side is; the half of space facing the direction, or what a depth view "
        "from that direction sees (in front of the first surface along each ray, or a thin band behind it)",
        choices=("half_space", "view"),
        group="encoder",
    )
    eikonal: float = option(0.0, "eikonal term weight", check=nonneg)

    TASK = "sdf"
    PARTS = ("trainer", "shape data", "latent", "siren", "gradient origin", "encoding", "shape loss", "shape outputs")
    # the first layer at frequency 60 (finer fields and a better-spread shape space than SIREN's 30), the
    # latent one Gauss-Newton step of damping 1 (new shapes encoded far better than by the plain gradient
    # step), float32 (docs/findings/shapes.md)
    DEFAULTS = dict(
        lr=5e-4,
        lr_schedule="cosine",
        keep_checkpoints=2,
        w0_first=60.0,
        amp="off",
        gauss_newton=1.0,
        inner_weight=10.0,
        inner_sampling="random",
        partial_region="half_space",
    )
    PRESETS = SHAPE_PRESETS
    DEVICE_PRESETS = dict(cpu="cpu", cuda="gpu")
    # what a run saved without the options did: it trained on the fixed shapes only
    ABSENT = dict(fresh_shapes=0.0, fresh_bank=0)
    # procedural, per-sample inner points: a quarter of each batch from a bank of the family's other shapes (the
    # fixed shapes fit as well, new ones are encoded better; docs/findings/shapes.md)
    PROCEDURAL_FRESH = dict(fresh_shapes=0.25, fresh_bank=2048)

    def resolved(self, device):
        if self.fresh_shapes is None or self.fresh_bank is None:
            mix = self.source == "procedural" and self.inner == "per_sample"
            fresh = (
                self.fresh_shapes
                if self.fresh_shapes is not None
                else (self.PROCEDURAL_FRESH["fresh_shapes"] if mix else 0.0)
            )
            bank = (
                self.fresh_bank
                if self.fresh_bank is not None
                else (self.PROCEDURAL_FRESH["fresh_bank"] if fresh > 0 else 0)
            )
            return dataclasses.replace(self, fresh_shapes=fresh, fresh_bank=bank).resolved(device)
        return super().resolved(device)

    @property
    def num_inner(self) -> int:
        """Inner points per shape per step (at least one inner and one outer point)."""
        return min(self.points - 1, max(1, round(self.points * self.inner_fraction)))

    def inactive(self):
        out = super().inactive()
        if self.inner == "shared":
            out["inner_sampling"] = "is read with per-sample inner points only (--inner per_sample)"
        if not self.partial_inner:
            out["partial_region"] = "is read with --partial-inner > 0 only"
        return out

    def _checks(self):
        return super()._checks() + [
            (
                "inner",
                self.inner == "per_sample" or self.source == "procedural",
                "'shared' needs analytic shapes (the procedural source)",
            ),
            ("fresh_shapes", not self.fresh_shapes or self.source == "procedural", "needs the procedural source"),
            ("fresh_bank", not self.fresh_bank or bool(self.fresh_shapes), "needs fresh_shapes > 0"),
            (
                "partial_inner",
                not self.partial_inner or (self.inner == "per_sample" and self.inner_sampling != "fixed"),
                "draws random per-sample inner points (--inner per_sample --inner-sampling random)",
            ),
        ]


class SdfTask(ShapeTask):
    """Train an SDF GON (``LatentSiren(3, k, 1, ...)``) on a shape set.

    Args:
        config: the run's :class:`SdfConfig`.
        shapes: an :class:`~inr_gon.training.tasks.sdf_data.SdfShapeSet` (default: loaded from
            the config).
    """

    name = "sdf"
    about = "SDF GON on shapes: procedural, a mesh folder or DeepSDF samples"
    config_class = SdfConfig
    checkpoint_kind = SDF_CHECKPOINT_KIND
    commands = ("eval", "mesh")

    @classmethod
    def model_from_checkpoint(cls, state):
        return LatentSiren(**state["model_config"])

    def __init__(self, config, *, shapes=None):
        super().__init__(config, shapes=shapes)
        self._fresh_next = 0  # fresh_shapes: the next new shape's index

    def setup_encoder(self) -> None:
        cfg = self.cfg
        if cfg.inner == "shared" and self.shapes.analytic is None:
            raise ValueError("inner='shared' needs analytic shapes (source 'procedural')")
        self.bank = (
            ShapeBank(cfg.seed, cfg.fresh_bank, cfg.pool, device=self.device)
            if cfg.fresh_shapes and cfg.fresh_bank
            else None
        )

    def fixed_order(self, index) -> torch.Tensor:
        """Each shape's fixed order of its pool ``(B, N)`` (``inner_sampling="fixed"``: the first
        points are its inner points in training and in encoding), seeded by the shape's index."""
        N = self.shapes.pool_size
        seed = self.cfg.seed + 12345
        order = [torch.randperm(N, generator=torch.Generator().manual_seed(seed + int(i))) for i in index]
        return torch.stack(order).to(self.device)

    def build_objective(self, model):
        c = self.cfg
        return SdfGONObjective(
            model,
            loss=c.inner_loss,
            outer_loss=c.outer_loss,
            delta=c.delta,
            inner_weight=c.inner_weight,
            eikonal_weight=c.eikonal,
            check=False,
            amp=c.amp,
        )

    # -- batches --------------------------------------------------------------------------------------
    def make_batch(self, index, mine, generator):
        """Inner and outer points of the shapes ``train_index[index]``: the random subsets are
        drawn for the whole global batch (the same generator state on every rank), then each rank
        keeps its slice ``mine``. Returns ``(inner_points (b, P, 3) or shared (P, 3),
        inner_sdf (b, P), outer_points (b, M, 3), outer_sdf (b, M))``."""
        cfg = self.cfg
        m_in, m_out = cfg.num_inner, cfg.points - cfg.num_inner
        if cfg.fresh_shapes == 1:
            return self._fresh_batch(index.numel(), mine, generator, m_in, m_out)
        if cfg.fresh_shapes > 0:
            return self._mixed_batch(index, mine, generator, m_in, m_out)
        idx = self.train_index[index]
        pts, sdf = self.batch_pools(index)  # (B, N, 3), (B, N)
        if cfg.inner == "shared":
            ip, isdf = self._shared_inner([self.shapes.analytic[int(i)] for i in idx[mine]], m_in, generator)
            op, osdf = random_shape_points(pts, sdf, m_out, generator)
            return ip, isdf, op[mine], osdf[mine]
        if cfg.inner_sampling == "fixed":
            fixed = self.fixed_order(idx.tolist())  # (B, N): inner first
            ip = pts.gather(1, fixed[:, :m_in, None].expand(-1, -1, 3))
            isdf = sdf.gather(1, fixed[:, :m_in])
            rest = fixed[:, m_in:]
            sel = smallest_keys(torch.rand(rest.shape, generator=generator, device=generator.device), m_out)
            sel = rest.gather(1, sel.to(rest.device))
            op, osdf = pts.gather(1, sel[..., None].expand(-1, -1, 3)), sdf.gather(1, sel)
            return ip[mine], isdf[mine], op[mine], osdf[mine]
        ip, isdf, op, osdf = self._split(pts, sdf, m_in, m_out, generator)
        return ip[mine], isdf[mine], op[mine], osdf[mine]

    def _split(self, pts, sdf, m_in: int, m_out: int, generator):
        """:func:`~inr_gon.core.sdf.split_points`; with ``partial_inner``, that share of the shapes
        takes its inner points from one side first (the half of space facing a random direction,
        or what a depth view from it sees: :func:`~inr_gon.geometry.observe.seen_from`), the outer
        points from all of the shape."""
        if not self.cfg.partial_inner:
            return split_points(pts, sdf, m_in, m_out, generator=generator)
        B, N = sdf.shape
        dev = generator.device
        keys = torch.rand(B, N, generator=generator, device=dev)
        v = torch.nn.functional.normalize(torch.randn(B, 3, generator=generator, device=dev), dim=1)
        partial = torch.rand(B, generator=generator, device=dev) < self.cfg.partial_inner
        if self.cfg.partial_region == "view":
            hidden = ~seen_from(pts.to(dev), sdf.to(dev), v)
        else:
            hidden = (pts.to(dev) * v[:, None]).sum(-1) < 0
        inner = smallest_keys(keys + 2.0 * (partial[:, None] & hidden), m_in)
        rest = torch.rand(B, N, generator=generator, device=dev).scatter(1, inner, 3.0)
        outer = smallest_keys(rest, m_out)
        take = lambda idx: (  # noqa: E731
            pts.gather(1, idx.to(pts.device)[..., None].expand(-1, -1, 3)),
            sdf.gather(1, idx.to(sdf.device)),
        )
        return (*take(inner), *take(outer))

    def _shared_inner(self, sdfs, m_in: int, generator):
        """``m_in`` uniform points ``(P, 3)`` for the batch and each of ``sdfs`` there ``(b, P)``."""
        ip = torch.rand(m_in, 3, generator=generator, device=self.device) * 2 - 1
        return ip, torch.stack([f(ip) for f in sdfs]).float()

    def _new_shapes(self, B: int, n: int, generator):
        """``B`` new procedural shapes with ``n`` samples each: ``(shapes, points (B, n, 3), sdf (B, n))``,
        the same on every rank (a counter into a seeded family disjoint from the fixed shapes, or
        ``B`` distinct random shapes of the bank, each with ``n`` random points of its pool)."""
        if self.bank is not None:
            pick = torch.randperm(len(self.bank), generator=generator, device=generator.device)[:B]
            shapes, pts, sdf = self.bank.take(pick.tolist())
            p, d = random_shape_points(pts, sdf, n, generator)
            return shapes, p, d
        first = self._fresh_next
        self._fresh_next += B
        return family_shapes(self.cfg.seed, first, B, n, device=self.device)

    def _fresh_batch(self, B: int, mine, generator, m_in: int, m_out: int):
        """A batch of ``B`` new procedural shapes (``fresh_shapes=1``)."""
        shared = self.cfg.inner == "shared"
        shapes, pts, sdf = self._new_shapes(B, m_out if shared else m_in + m_out, generator)
        if shared:
            ip, isdf = self._shared_inner([shapes[j] for j in range(B)[mine]], m_in, generator)
            return ip, isdf, pts[mine], sdf[mine]
        ip_, isdf_, op, osdf = self._split(pts, sdf, m_in, m_out, generator)
        return ip_[mine], isdf_[mine], op[mine], osdf[mine]

    def _mixed_batch(self, index, mine, generator, m_in: int, m_out: int):
        """The global batch's first shapes from the fixed training set, the last
        ``round(fresh_shapes · B)`` new ones; per-sample or shared inner points."""
        B = index.numel()
        n_new = min(B, max(1, round(self.cfg.fresh_shapes * B)))
        idx = self.train_index[index[: B - n_new]]
        shared = self.cfg.inner == "shared"
        m = m_out if shared else m_in + m_out
        fixed_p, fixed_s = random_shape_points(*self.batch_pools(index[: B - n_new]), m, generator)
        shapes, new_p, new_s = self._new_shapes(n_new, m, generator)
        pts, sdf = torch.cat([fixed_p, new_p]), torch.cat([fixed_s, new_s])
        if shared:
            analytic = [self.shapes.analytic[int(i)] for i in idx.tolist()] + list(shapes)
            ip, isdf = self._shared_inner([analytic[j] for j in range(B)[mine]], m_in, generator)
            return ip, isdf, pts[mine], sdf[mine]
        ip, isdf, op, osdf = self._split(pts, sdf, m_in, m_out, generator)
        return ip[mine], isdf[mine], op[mine], osdf[mine]

    # -- encoding -------------------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, index, *, num_points: int = 8192) -> torch.Tensor:
        """Gradient-origin latents ``(len(index), k)`` of shapes ``index`` (training or unseen).

        Per-sample mode: ``num_points`` fixed points of each shape's pool (at most the pool), or
        with ``inner_sampling="fixed"`` the shape's fixed inner points of training; shared mode:
        ``num_points`` fixed uniform points, SDFs evaluated analytically (the distribution the
        model was trained with).
        """
        model = self.trainer.model
        index = [int(i) for i in index]
        if not index:
            return torch.zeros(0, self.cfg.latent, device=self.device)
        g = torch.Generator(device=self.device).manual_seed(self.cfg.seed + 12345)
        c = self.cfg
        common = dict(loss=c.inner_loss, delta=c.delta, inner_weight=c.inner_weight, steps=c.encode_steps)
        if self.cfg.inner == "shared":
            ip = torch.rand(num_points, 3, generator=g, device=self.device) * 2 - 1
            isdf = torch.stack([self.shapes.analytic[i](ip) for i in index]).float()
            return sdf_gon_latent(model, ip, isdf, **common)
        pool_pts, pool_sdf = self.pools(index)
        if self.cfg.inner_sampling == "fixed":
            sel = self.fixed_order(index)[:, : self.cfg.num_inner]
            pts = pool_pts.gather(1, sel[..., None].expand(-1, -1, 3))
            return sdf_gon_latent(model, pts, pool_sdf.gather(1, sel), **common)
        N = pool_pts.shape[1]
        n = min(num_points, N)
        zs = []
        for j, i in enumerate(index):  # each shape its own seeded subset: the same in any batch or shard
            g.manual_seed(self.cfg.seed + 12345 + i)
            sel = torch.randperm(N, generator=g, device=self.device)[:n]
            zs.append(sdf_gon_latent(model, pool_pts[j, sel][None], pool_sdf[j, sel][None], **common))
        return torch.cat(zs)

    def encoder_metrics(self) -> dict:
        c = self.cfg
        many = c.latent_steps > 1
        return {
            "inner": c.inner,
            "inner_loss": c.inner_loss,
            "latent_steps": c.latent_steps,
            "gauss_newton": c.gauss_newton,
            "encoding": (f"{c.latent_steps} " if many else "one ")
            + ("Gauss-Newton" if c.gauss_newton else "gradient")
            + (" steps" if many else " step"),
        }

    def progress(self, parts, last_eval):
        out = super().progress(parts, last_eval)
        if self.cfg.eikonal > 0:
            out["eik"] = f"{parts['eikonal']:.3f}"
        return out

    def state_dict(self) -> dict:
        return {**super().state_dict(), "fresh_next": self._fresh_next}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self._fresh_next = state.get("fresh_next", 0)


SdfConfig.task_class = SdfTask
