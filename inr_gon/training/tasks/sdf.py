"""The SDF task: GONs over signed distance fields of a shape set (procedural, meshes, DeepSDF).

Each shape's latent is the gradient at the origin over that shape's points (per-sample
coordinates, or uniform points shared by the batch for analytic shapes: the exact fast path);
the outer loss is on a disjoint random subset of the shape's points. The periodic evaluation is
cheap (one-step latents of some training and unseen shapes, the field on their own points); the
final one extracts meshes and compares them with the ground truth (:mod:`.sdf_outputs`).
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import trimesh

from ...core.sdf import latent_sdf, random_shape_points, sdf_gon_latent, split_points
from ...eval.shape import (
    chamfer_distance,
    nearest_own_truth,
    normal_consistency,
    sign_iou,
    volumetric_iou,
)
from ...geometry.mesh import extract_mesh
from ...nn.siren import LatentSiren
from ..config import Check, SirenConfig, at_least, nonneg, option, positive
from ..objectives import SdfGONObjective
from ..trainer import TrainerConfig
from .base import CollapseWarning, Task
from .image import load_trained
from .sdf_baseline import baseline_lines, gon_grid_iou, linear_baseline
from .sdf_data import SdfShapeSet, ShapeBank, family_shapes, load_shapes

__all__ = ["SdfConfig", "SdfTask", "load_sdf_trained", "encode_samples", "CollapseWarning", "SDF_CHECKPOINT_KIND"]

SDF_CHECKPOINT_KIND = "inr_gon.sdf_gon"
SDF_LOSSES = ("clamped_l1", "truncated_l1", "truncated_l2", "l2", "mse", "l1")


@dataclass
class SdfConfig(SirenConfig, TrainerConfig):
    """An SDF GON on a shape set (``None`` fields: the defaults below)."""

    meshes: str | None = option(None, "a folder of mesh files (normalised, sampled, cached)", metavar="DIR",
                                group="data")
    deepsdf: str | None = option(None, "a DeepSDF data folder (SdfSamples/...)", metavar="DIR", group="data")
    num_shapes: int = option(64, "procedural: training shapes", check=at_least(1), group="data")
    num_unseen: int | None = option(None, "shapes held out (default: procedural 8, folders 1/4)", check=at_least(0),
                                    group="data")
    pool: int | None = option(None, "points kept per shape (half uniform in [-1, 1]^3, half near the surface)",
                              check=at_least(2), group="data")
    cache_dir: str | None = option(None, "mesh sample cache (default: <out>/cache)", group="data")
    points: int | None = option(None, "points per shape per step, inner and outer (--inner-fraction)", check=at_least(2))
    inner_fraction: float = option(0.5, "the share of each shape's points per step that are inner points (the latent's "
                                         "gradient); the rest are the outer loss's",
                                   check=Check(lambda v: 0 < v < 1, "must be in (0, 1)"))
    loss: str = option("truncated_l1", "point loss of the outer integral (truncated_l1: DeepSDF's clamped L1 "
                                       "without its dead zones)", choices=SDF_LOSSES)
    inner_loss: str = option("l2", "point loss whose gradient is the latent (L2: the residual's size counts, "
                                   "so different shapes get different latents)", choices=SDF_LOSSES)
    delta: float = option(0.1, "clamp of clamped_l1 / truncated_l1 / truncated_l2", check=positive)
    inner: str = option("per_sample", "inner points per shape from its pool, or shared uniform points "
                                      "(procedural; the exact fast path)", choices=("per_sample", "shared"))
    fresh_shapes: float | None = option(None, "procedural: the share of each batch made of new random shapes of the "
                                             "family (1: all; the fixed training shapes are still the ones evaluated; "
                                             "default: 0.25 with per-sample inner points, else 0; other sources: 0)",
                                        check=Check(lambda v: 0 <= v <= 1, "must be in [0, 1]"), group="data")
    fresh_bank: int | None = option(None, "procedural fresh_shapes: draw the new shapes from a bank of this many (each "
                                          "made when first drawn, then kept; default 2,048; 0: new ones made every "
                                          "step, never repeated, at a cost every step)", check=at_least(0), group="data")
    inner_sampling: str = option("random", "per-sample inner points: a fresh random subset of the pool every step, "
                                           "or the same fixed subset of each shape (as it is encoded)",
                                 choices=("random", "fixed"))
    inner_weight: float = option(10.0, "latent = -inner_weight * grad of the mean inner loss", check=positive)
    eikonal: float = option(0.0, "eikonal term weight", check=nonneg)
    eval_shapes: int = option(6, "training/unseen shapes evaluated and written", check=at_least(1), group="output")
    mesh_resolution: int = option(64, "marching-cubes samples per axis", check=at_least(8), flag="--resolution",
                                  aliases=("--mesh-resolution",), group="output")
    slerp_frames: int = option(6, "meshes along the slerp between two shapes", check=at_least(2), group="output")

    TASK = "sdf"
    # measured on the procedural family (README, "SDF shapes"): seven minutes of training on 2 CPU cores (the first
    # layer at frequency 60: finer fields and a better-spread shape space than SIREN's 30; the latent one Gauss-Newton
    # step, damping 1: new shapes encoded far better than by the plain gradient step, README "SDF shapes")
    DEFAULTS = dict(hidden=128, layers=3, pool=4096, points=1024, steps=10_000, seconds=420.0, batch_size=16, lr=5e-4,
                    lr_schedule="cosine", schedule_by="time", checkpoint_every=1000, keep_checkpoints=2, eval_every=500,
                    w0_first=60.0, amp="off", gauss_newton=1.0)
    # float32, not amp "auto": on a CPU with AMX (bf16 matmuls 4.9x float32's) the bf16 outer pass made the step only
    # 1.04-1.09x faster and cost new shapes 0.04 IoU at equal steps (README "SDF shapes", 2026-12-02)
    # a GPU's share: 4x256 SIREN, 4x the points of each shape, bigger batches, longer; to be measured
    # when a GPU is lent (benchmarks/gpu_session.sh)
    CUDA_DEFAULTS = dict(hidden=256, layers=4, pool=16384, points=4096, batch_size=64, steps=20_000, seconds=0.0,
                         schedule_by="steps", eval_every=1000, checkpoint_every=1000)
    LEGACY = {"resolution": "mesh_resolution"}
    # runs saved before the procedural default mixed new shapes in trained on the fixed shapes only
    ABSENT = dict(fresh_shapes=0.0, fresh_bank=0)
    # procedural, per-sample inner points: a quarter of each batch from a bank of the family's other shapes (the
    # fixed shapes fit as well, new ones are encoded better; README "SDF shapes", "The default run")
    PROCEDURAL_FRESH = dict(fresh_shapes=0.25, fresh_bank=2048)

    def resolved(self, device):
        if self.fresh_shapes is None or self.fresh_bank is None:
            mix = self.source == "procedural" and self.inner == "per_sample"
            fresh = self.fresh_shapes if self.fresh_shapes is not None else (
                self.PROCEDURAL_FRESH["fresh_shapes"] if mix else 0.0)
            bank = self.fresh_bank if self.fresh_bank is not None else (
                self.PROCEDURAL_FRESH["fresh_bank"] if fresh > 0 else 0)
            return dataclasses.replace(self, fresh_shapes=fresh, fresh_bank=bank).resolved(device)
        return super().resolved(device)

    @property
    def source(self) -> str:
        return "meshes" if self.meshes else "deepsdf" if self.deepsdf else "procedural"

    @property
    def data(self) -> str | None:
        return self.meshes or self.deepsdf

    @property
    def num_inner(self) -> int:
        """Inner points per shape per step (at least one inner and one outer point)."""
        return min(self.points - 1, max(1, round(self.points * self.inner_fraction)))

    def _checks(self):
        return [("meshes", not (self.meshes and self.deepsdf), "and deepsdf: give one of them"),
                ("pool", self.pool is None or self.points is None or self.pool >= self.points,
                 f"must be >= points ({self.points})"),
                ("inner", self.inner == "per_sample" or self.source == "procedural",
                 "'shared' needs analytic shapes (the procedural source)"),
                ("fresh_shapes", not self.fresh_shapes or self.source == "procedural",
                 "needs the procedural source"),
                ("fresh_bank", not self.fresh_bank or bool(self.fresh_shapes), "needs fresh_shapes > 0")]

    @classmethod
    def _upgrade(cls, d: dict) -> dict:
        if ("source" in d and "inner_loss" not in d) or ("inner_loss" in d and d["inner_loss"] is None):
            # inr_gon 0.1 (one loss for both integrals) and early 0.2 configs (None: the same as loss)
            d["inner_loss"] = d.get("loss", "clamped_l1")
        source, data = d.pop("source", None), d.pop("data", None)
        if source in ("meshes", "deepsdf") and data:
            d.setdefault(source, data)
        return d


@torch.no_grad()
def encode_samples(model, cfg: SdfConfig, points: torch.Tensor, sdf: torch.Tensor) -> torch.Tensor:
    """Latents ``(B, k)`` of new shapes from their own samples ``points (B, N, 3)``, ``sdf (B, N)``
    (e.g. a mesh file sampled like the training pools), as a model trained with ``cfg`` encodes
    shapes: its gradient step(s) on as many points as a training shape is encoded from (an
    auto-decoder: ``cfg.encode_iterations`` steps on a fresh code)."""
    g = torch.Generator(device=points.device).manual_seed(cfg.seed + 999)
    if hasattr(model, "codes"):
        from ...variants.autodecoder import fit_codes
        return fit_codes(model.net, points, sdf, iterations=cfg.encode_iterations, lr=cfg.encode_lr, loss=cfg.loss,
                         delta=cfg.delta, code_reg=cfg.code_reg, init_std=cfg.code_init_std, generator=g)
    n = min(cfg.num_inner if cfg.inner_sampling == "fixed" else 8192, points.shape[1])
    sel = torch.stack([torch.randperm(points.shape[1], generator=g, device=points.device)[:n]
                       for _ in range(points.shape[0])])
    return sdf_gon_latent(model, points.gather(1, sel[..., None].expand(-1, -1, 3)), sdf.gather(1, sel),
                          loss=cfg.inner_loss, delta=cfg.delta, inner_weight=cfg.inner_weight)


def load_sdf_trained(path, *, device=None):
    """Rebuild ``(model, checkpoint dict)`` from an SDF-GON checkpoint (``weights_only`` loading);
    :class:`~inr_gon.training.checkpoint.CheckpointError` (one line) for a bad file."""
    return load_trained(path, device=device, kind=SDF_CHECKPOINT_KIND)


class SdfTask(Task):
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

    def __init__(self, config, *, shapes: SdfShapeSet | None = None):
        super().__init__(config)
        self.shapes = shapes
        self._truth_cache: dict = {}
        self._grid_cache: dict = {}      # ground-truth SDF grids of the linear baseline (sdf_baseline)
        self._fresh_next = 0             # fresh_shapes: the next new shape's index

    @classmethod
    def default_out(cls, cfg) -> str:
        return f"runs/sdf_{cfg.source}"

    # -- set-up ---------------------------------------------------------------------------------------
    def setup(self, trainer) -> None:
        super().setup(trainer)
        cfg, dist = self.cfg, trainer.dist
        if self.shapes is None:
            with dist.main_first():        # rank 0 samples and caches mesh folders first
                self.shapes = load_shapes(cfg, quiet=trainer.quiet)
        if not self.shapes.train_index:
            raise ValueError("the training set is empty")
        if dist.enabled:
            if len(self.shapes.train_index) < cfg.batch_size:
                raise ValueError(f"{len(self.shapes.train_index)} training shapes are fewer than the global "
                                 f"batch_size={cfg.batch_size}")
            total = float(self.shapes.points.double().sum() + self.shapes.sdf.double().sum())
            if dist.broadcast_object(total) != total:
                raise ValueError("the ranks loaded different shape pools (the same --seed and data are needed)")
        if cfg.inner == "shared" and self.shapes.analytic is None:
            raise ValueError("inner='shared' needs analytic shapes (source 'procedural')")
        if self.shapes.points.shape[1] < cfg.points:
            raise ValueError(f"pools hold {self.shapes.points.shape[1]} points per shape, fewer than "
                             f"points={cfg.points}")
        self.device = trainer.device
        self.points = self.shapes.points.to(self.device)
        self.sdf = self.shapes.sdf.to(self.device)
        self.train_index = torch.tensor(self.shapes.train_index)
        # each shape's fixed order of its pool (inner_sampling="fixed": the first points are its
        # inner points in training and in encoding); seeded by the shape's index
        S, N = self.sdf.shape
        order = [torch.randperm(N, generator=torch.Generator().manual_seed(cfg.seed + 12345 + i)) for i in range(S)]
        self.fixed_order = torch.stack(order).to(self.device)
        self.bank = ShapeBank(cfg.seed, cfg.fresh_bank, cfg.pool, device=self.device) if cfg.fresh_shapes and cfg.fresh_bank else None

    def num_train(self) -> int:
        return len(self.shapes.train_index)

    def build_model(self):
        c = self.cfg
        return LatentSiren(3, c.latent, 1, c.hidden, c.layers, **c.siren_options())

    def build_objective(self, model):
        c = self.cfg
        return SdfGONObjective(model, loss=c.inner_loss, outer_loss=c.loss, delta=c.delta,
                               inner_weight=c.inner_weight, eikonal_weight=c.eikonal, check=False, amp=c.amp)

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
        dev_idx = idx.to(self.device)
        pts, sdf = self.points[dev_idx], self.sdf[dev_idx]                # (B, N, 3), (B, N)
        if cfg.inner == "shared":
            ip, isdf = self._shared_inner([self.shapes.analytic[int(i)] for i in idx[mine]], m_in, generator)
            op, osdf = random_shape_points(pts, sdf, m_out, generator)
            return ip, isdf, op[mine], osdf[mine]
        if cfg.inner_sampling == "fixed":
            fixed = self.fixed_order[dev_idx]                                # (B, N): inner first
            ip = pts.gather(1, fixed[:, :m_in, None].expand(-1, -1, 3))
            isdf = sdf.gather(1, fixed[:, :m_in])
            rest = fixed[:, m_in:]
            sel = torch.rand(rest.shape, generator=generator, device=generator.device).argsort(dim=1)[:, :m_out]
            sel = rest.gather(1, sel.to(rest.device))
            op, osdf = pts.gather(1, sel[..., None].expand(-1, -1, 3)), sdf.gather(1, sel)
            return ip[mine], isdf[mine], op[mine], osdf[mine]
        ip, isdf, op, osdf = split_points(pts, sdf, m_in, m_out, generator=generator)
        return ip[mine], isdf[mine], op[mine], osdf[mine]

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
        ip_, isdf_, op, osdf = split_points(pts, sdf, m_in, m_out, generator=generator)
        return ip_[mine], isdf_[mine], op[mine], osdf[mine]

    def _mixed_batch(self, index, mine, generator, m_in: int, m_out: int):
        """The global batch's first shapes from the fixed training set, the last
        ``round(fresh_shapes · B)`` new ones; per-sample or shared inner points."""
        B = index.numel()
        n_new = min(B, max(1, round(self.cfg.fresh_shapes * B)))
        idx = self.train_index[index[:B - n_new]].to(self.device)
        shared = self.cfg.inner == "shared"
        m = m_out if shared else m_in + m_out
        fixed_p, fixed_s = random_shape_points(self.points[idx], self.sdf[idx], m, generator)
        shapes, new_p, new_s = self._new_shapes(n_new, m, generator)
        pts, sdf = torch.cat([fixed_p, new_p]), torch.cat([fixed_s, new_s])
        if shared:
            analytic = [self.shapes.analytic[int(i)] for i in idx.tolist()] + list(shapes)
            ip, isdf = self._shared_inner([analytic[j] for j in range(B)[mine]], m_in, generator)
            return ip, isdf, pts[mine], sdf[mine]
        ip, isdf, op, osdf = split_points(pts, sdf, m_in, m_out, generator=generator)
        return ip[mine], isdf[mine], op[mine], osdf[mine]

    def progress(self, parts, last_eval):
        out = {"loss": f"{parts['loss']:.4f}"}
        if self.cfg.eikonal > 0:
            out["eik"] = f"{parts['eikonal']:.3f}"
        if "unseen_sign_iou" in last_eval:
            out["iou"] = f"{last_eval['train_sign_iou']:.2f}/{last_eval['unseen_sign_iou']:.2f}"
        elif "train_sign_iou" in last_eval:
            out["iou"] = f"{last_eval['train_sign_iou']:.2f}"
        return out

    # -- encoding -------------------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, index, *, num_points: int = 8192) -> torch.Tensor:
        """One-step latents ``(len(index), k)`` of shapes ``index`` (training or unseen).

        Per-sample mode: ``num_points`` fixed points of each shape's pool (at most the pool), or
        with ``inner_sampling="fixed"`` the shape's fixed inner points of training; shared mode: ``num_points`` fixed uniform points, SDFs evaluated analytically (the
        distribution the model was trained with).
        """
        model = self.trainer.model
        index = [int(i) for i in index]
        if not index:
            return torch.zeros(0, self.cfg.latent, device=self.device)
        g = torch.Generator(device=self.device).manual_seed(self.cfg.seed + 12345)
        common = dict(loss=self.cfg.inner_loss, delta=self.cfg.delta, inner_weight=self.cfg.inner_weight)
        if self.cfg.inner == "shared":
            ip = torch.rand(num_points, 3, generator=g, device=self.device) * 2 - 1
            isdf = torch.stack([self.shapes.analytic[i](ip) for i in index]).float()
            return sdf_gon_latent(model, ip, isdf, **common)
        if self.cfg.inner_sampling == "fixed":
            sel = self.fixed_order[index][:, :self.cfg.num_inner]
            pts = self.points[index].gather(1, sel[..., None].expand(-1, -1, 3))
            return sdf_gon_latent(model, pts, self.sdf[index].gather(1, sel), **common)
        n = min(num_points, self.points.shape[1])
        zs = []
        for i in index:       # each shape its own seeded subset: the same in any batch or shard
            g.manual_seed(self.cfg.seed + 12345 + i)
            sel = torch.randperm(self.points.shape[1], generator=g, device=self.device)[:n]
            zs.append(sdf_gon_latent(model, self.points[i, sel][None], self.sdf[i, sel][None], **common))
        return torch.cat(zs)

    def on_fit_end(self, trainer) -> None:
        from ...core.sampling import GaussianLatentSampler
        z = self.encode(self.shapes.train_index)
        if z.shape[0] >= 2:
            s = GaussianLatentSampler(z)
            self.latent_stats = {"mean": s.mean, "cov": s.cov}

    def sdf_of(self, z: torch.Tensor):
        """The ``(N, 3) -> (N,)`` SDF callable of one latent ``(k,)``."""
        return latent_sdf(self.trainer.model, z)

    # -- periodic evaluation: the field on the shapes' own points --------------------------------------
    @torch.no_grad()
    def field_metrics(self, index) -> dict:
        """Sign IoU (inside = negative, predicted vs true) and the mean absolute error near the
        surface (``|s| < delta``) on each shape's pool, for one-step latents of ``index``."""
        index = [int(i) for i in index]
        if not index:
            return {}
        z = self.encode(index)
        ious, errs = [], []
        for j, i in enumerate(index):
            pred = self.sdf_of(z[j])(self.points[i])
            true = self.sdf[i]
            ious.append(float(sign_iou(pred, true)))
            near = true.abs() < self.cfg.delta
            errs.append(float((pred - true)[near].abs().mean()) if bool(near.any()) else float("nan"))
        return {"sign_iou": float(np.mean(ious)), "near_l1": float(np.nanmean(errs)) if any(
            np.isfinite(errs)) else float("nan")}

    @torch.no_grad()
    def health(self, index) -> dict:
        """Symptoms of a shape space that did not form, on the training shapes ``index``.

        * ``zero_crossing``: the fraction of shapes whose field changes sign on their own points
          (an empty or full field has none);
        * ``latent_sensitivity``: how much the field moves when the latent changes,
          ``mean_{i≠j} mean_p |F(p, z_i) - F(p, z_j)|`` over shape ``j``'s points ``p``, relative to
          the spread ``std_p s_j(p)`` of the true distances there (0 when the field ignores the
          latent; the exact SDFs of distinct shapes give a few tenths);
        * ``identified``: the fraction of shapes whose field agrees (sign IoU on the shape's
          points) better with their own ground truth than with every other shape's.
        """
        index = [int(i) for i in index]
        n = len(index)
        if n == 0:
            return {}
        z = self.encode(index)
        preds = [[self.sdf_of(z[a])(self.points[j]) for j in index] for a in range(n)]   # [a][b]: F_a on pool_b
        truth = [self.sdf[j] for j in index]
        cross = [bool((preds[a][a] < 0).any() and (preds[a][a] > 0).any()) for a in range(n)]
        m = [[float(sign_iou(preds[a][b], truth[b])) for b in range(n)] for a in range(n)]
        identified = [all(m[a][a] > m[a][b] for b in range(n) if b != a) for a in range(n)] if n > 1 else [True]
        spread = float(np.mean([float(t.std()) for t in truth])) or 1.0
        moves = [float((preds[a][b] - preds[b][b]).abs().mean()) for a in range(n) for b in range(n) if a != b]
        return {"zero_crossing": float(np.mean(cross)), "identified": float(np.mean(identified)),
                "latent_sensitivity": float(np.mean(moves)) / spread if moves else float("nan"), "shapes": n}

    #: below these the run is reported as collapsed (see :meth:`collapse`)
    MIN_SENSITIVITY, MIN_IDENTIFIED = 0.05, 0.5

    def collapse(self, h: dict) -> list[str]:
        """The symptoms of :meth:`health` that say the run failed to learn a shape space."""
        why = []
        if h.get("zero_crossing", 1.0) < 1.0:
            k = round((1 - h["zero_crossing"]) * h["shapes"])
            why.append(f"no zero crossing on the training points of {k} of {h['shapes']} shapes (an empty field)")
        if h.get("shapes", 0) > 1 and h["latent_sensitivity"] < self.MIN_SENSITIVITY:
            why.append(f"the field barely depends on the latent (sensitivity {h['latent_sensitivity']:.3f} < "
                       f"{self.MIN_SENSITIVITY})")
        if h.get("shapes", 0) > 1 and h["identified"] < self.MIN_IDENTIFIED:
            why.append(f"the training shapes are indistinguishable (only {round(h['identified'] * h['shapes'])} of "
                       f"{h['shapes']} nearer their own ground truth than another's)")
        return why

    def evaluate(self, trainer) -> dict:
        out = {}
        for split, idx in (("train", self.shapes.train_index), ("unseen", self.shapes.unseen_index)):
            m = self.field_metrics(idx[:self.cfg.eval_shapes])
            out.update({f"{split}_{k}": v for k, v in m.items()})
        h = self.health(self.shapes.train_index[:max(self.cfg.eval_shapes, 2)])
        out.update({k: v for k, v in h.items() if k != "shapes"})
        return out

    def final_metrics(self, trainer) -> dict:
        h = self.health(self.shapes.train_index[:max(self.cfg.eval_shapes, 2)])
        why = self.collapse(h)
        for w in why:
            warnings.warn(f"the shape space collapsed: {w}", CollapseWarning, stacklevel=2)
        base = trainer.dist.run_on_main(linear_baseline, self, trainer.step)     # the PCA shape model, from rank 0
        return {"collapsed": bool(why), "collapse_reasons": why, "health": h, **base}

    def describe_eval(self, m):
        text = f"train sign IoU {m['train_sign_iou']:.3f}, near-surface L1 {m['train_near_l1']:.4f}"
        if "unseen_sign_iou" in m:
            text += f"; unseen {m['unseen_sign_iou']:.3f}, {m['unseen_near_l1']:.4f}"
        return text

    # -- the final evaluation: meshes against the ground truth ----------------------------------------
    def truth_mesh(self, i: int):
        """Ground-truth mesh of shape ``i`` (analytic: extracted at 2× the output resolution), or
        ``None`` when there is only a point cloud or nothing."""
        if self.shapes.analytic is not None:
            if i not in self._truth_cache:
                res = min(2 * self.cfg.mesh_resolution, 192)
                self._truth_cache[i] = extract_mesh(self.shapes.analytic[i], res, method="coarse_to_fine",
                                                    device="cpu")
            return self._truth_cache[i]
        t = self.shapes.truth[i] if self.shapes.truth else None
        return t if hasattr(t, "faces") else None

    def evaluate_shapes(self, index, *, write_dir=None, prefix: str = "shape", num_samples: int = 10_000) -> dict:
        """Encode shapes ``index`` in one step, extract meshes and compare with the ground truth.

        Returns per-shape lists and means of ``chamfer`` (DeepSDF's, squared units),
        ``normal_consistency``, ``iou`` and ``grid_iou`` (the sign IoU on the linear baseline's grid,
        :mod:`.sdf_baseline`; ``None`` where the ground truth cannot give them), and
        ``empty_meshes``. Writes ``<prefix>_<name>.ply`` (and the ground-truth ``..._gt.ply`` for
        analytic shapes) into ``write_dir`` if given. A collective under DDP: each rank
        evaluates its share of the shapes; every rank returns the whole result and rank 0 writes.
        """
        model, dist = self.trainer.model, self.trainer.dist
        was = model.training
        model.eval()
        index = [int(i) for i in index]
        mine = index[dist.shard(len(index))]
        z = self.encode(mine)
        results = dist.gather_list([self._evaluate_one(i, z[j], num_samples) for j, i in enumerate(mine)])
        model.train(was)
        if write_dir is not None and dist.is_main:
            Path(write_dir).mkdir(parents=True, exist_ok=True)
            for r in results:
                if len(r["mesh"].faces):
                    r["mesh"].export(Path(write_dir) / f"{prefix}_{r['name']}.ply")
                gt = r["truth"]
                if hasattr(gt, "faces") and len(gt.faces):
                    gt.export(Path(write_dir) / f"{prefix}_{r['name']}_gt.ply")
                elif gt is not None and not hasattr(gt, "faces"):          # surface samples (DeepSDF)
                    trimesh.PointCloud(np.asarray(gt)).export(Path(write_dir) / f"{prefix}_{r['name']}_gt.ply")
        rows = {"names": [r["name"] for r in results]}
        for k in ("chamfer", "normal_consistency", "iou", "grid_iou", "chamfer_deepsdf"):
            if k == "chamfer_deepsdf" and not any(k in r for r in results):
                continue
            rows[k] = [r.get(k) for r in results]
        mean = lambda v: (float(np.mean([x for x in v if x is not None])) if any(x is not None for x in v)
                          else None)
        own = nearest_own_truth([r["mesh"] for r in results], [r["truth"] for r in results], num_samples)
        rows["nearest_own_truth"] = own
        return {"num": len(index), "empty_meshes": sum(len(r["mesh"].faces) == 0 for r in results),
                "chamfer": mean(rows["chamfer"]), "normal_consistency": mean(rows["normal_consistency"]),
                "iou": mean(rows["iou"]), "grid_iou": mean(rows["grid_iou"]),
                "nearest_own_truth": mean([float(x) for x in own if x is not None]),
                "chamfer_deepsdf": mean(rows["chamfer_deepsdf"]) if "chamfer_deepsdf" in rows else None,
                "per_shape": rows, "meshes": [r["mesh"] for r in results], "truths": [r["truth"] for r in results]}

    def _evaluate_one(self, i: int, z: torch.Tensor, num_samples: int) -> dict:
        """Mesh and metrics of shape ``i`` encoded as ``z (k,)``; ``gt_mesh``: the analytic
        ground-truth mesh to write (``None`` for data shapes)."""
        f = self.sdf_of(z)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            mesh = extract_mesh(f, self.cfg.mesh_resolution, (-1.0, 1.0))
        gt_mesh = self.truth_mesh(i)
        gt = gt_mesh if gt_mesh is not None else (self.shapes.truth[i] if self.shapes.truth else None)
        ch = nc = None
        if gt is not None and len(mesh.faces):
            ch = chamfer_distance(mesh, gt, num_samples=num_samples)
            if gt_mesh is not None:
                nc = normal_consistency(mesh, gt_mesh, num_samples=num_samples)
        if self.shapes.analytic is not None:
            iou = volumetric_iou(f, self.shapes.analytic[i], bounds=(-1.0, 1.0), num_points=50_000)
        elif gt_mesh is not None:
            iou = volumetric_iou(f, gt_mesh, bounds=(-1.0, 1.0), num_points=50_000)
        else:       # DeepSDF: agreement of inside/outside on the shape's own samples
            iou = float(sign_iou(f(self.points[i]), self.sdf[i]))
        out = {"name": self.shapes.names[i], "mesh": mesh, "truth": gt, "chamfer": ch, "normal_consistency": nc,
               "iou": iou, "grid_iou": gon_grid_iou(self, i, f)}
        norm = self.shapes.normalization[i] if self.shapes.normalization else None
        if norm is not None:       # DeepSDF's convention: in the original frame, 30,000 points
            offset, scale, original = norm
            if len(mesh.faces):
                m = mesh.copy()
                m.vertices = m.vertices / scale - offset
                out["chamfer_deepsdf"] = chamfer_distance(m, original, num_samples=30_000)
            else:
                out["chamfer_deepsdf"] = None
        return out

    # -- checkpoints and outputs ----------------------------------------------------------------------
    def state_dict(self) -> dict:
        s = self.shapes
        return {"shapes": {"name": s.name, "source": s.source, "names": list(s.names),
                           "train_index": list(s.train_index), "unseen_index": list(s.unseen_index)},
                "latent_stats": getattr(self, "latent_stats", None), "fresh_next": self._fresh_next}

    def load_state_dict(self, state: dict) -> None:
        self.latent_stats = state.get("latent_stats")
        self._fresh_next = state.get("fresh_next", 0)

    def write_outputs(self, trainer, metrics, out):
        from .sdf_outputs import write_sdf_outputs
        return write_sdf_outputs(self, metrics, out)

    def describe(self, trainer) -> list[str]:
        lines = []
        if trainer.dist.enabled:
            c = trainer.cfg
            lines.append(f"data parallel: {trainer.dist.world_size} processes, {c.batch_size // trainer.dist.world_size}"
                         f" shapes each per step (global batch {c.batch_size})")
        return lines

    def summary(self, trainer, m, paths) -> list[str]:
        fmt = lambda v, f: "n/a" if v is None else format(v, f)
        lines = [f"data: {self.shapes.name} ({len(self.shapes.train_index)} train, "
                 f"{len(self.shapes.unseen_index)} unseen shapes)",
                 f"trained {m['steps']} steps in {m['train_seconds']:.1f} s ({m['params']:,} parameters, {m['device']})",
                 f"train  shapes: Chamfer {fmt(m['train_chamfer'], '.5f')}  IoU {fmt(m['train_iou'], '.3f')}  "
                 f"normal consistency {fmt(m['train_normal_consistency'], '.3f')}",
                 f"unseen shapes ({m.get('encoding', 'one gradient step')}): Chamfer {fmt(m['unseen_chamfer'], '.5f')}  "
                 f"IoU {fmt(m['unseen_iou'], '.3f')}  normal consistency {fmt(m['unseen_normal_consistency'], '.3f')}",
                 *baseline_lines(m)]
        lines += [f"  {name:16s} {path}" for name, path in paths.items()]
        lines += [f"  {'checkpoint':16s} {trainer.last_checkpoint}", f"  {'config':16s} {trainer.out / 'config.json'}"]
        return lines


SdfConfig.task_class = SdfTask
