"""What every shape task shares: the shape set, its evaluation and outputs.

:class:`ShapeTask` is the base of the SDF GON (:mod:`.sdf`, latents by the gradient-origin step)
and DeepSDF's auto-decoder (:mod:`.autodecoder`, a code per shape fitted by Adam): the two
differ only in the model, the objective, the batches and :meth:`ShapeTask.encode` (the
encoder interface). Everything after encoding is here: the cheap periodic evaluation (the
field on the shapes' own points), the shape-space checks, the final evaluation (meshes against
the ground truth, the linear baseline) and the outputs (:mod:`.sdf_outputs`).

The config parts of shape tasks are in :mod:`.shape_parts`.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import torch

from ...core.sdf import latent_sdf
from ...eval.shape import chamfer_distance, nearest_own_truth, normal_consistency, sign_iou, volumetric_iou
from ...eval.shape_space import collapse_reasons, field_agreement, shape_space_health
from ...geometry.mesh import extract_mesh
from ...nn.siren import LatentSiren
from .base import CollapseWarning, Task
from .sdf_baseline import baseline_lines, baseline_metrics, gon_grid_iou, linear_baseline
from .sdf_data import SdfShapeSet, load_shapes

__all__ = ["ShapeTask"]

#: training shapes whose latents the sampling Gaussian is fitted to (a k-dimensional Gaussian needs a
#: few hundred; encoding every shape of a large set would take minutes at the end of a run)
LATENT_STATS_SHAPES = 1024


class ShapeTask(Task):
    """Base of the shape tasks (see the module docstring). Subclasses implement
    :meth:`build_objective`, :meth:`make_batch`, :meth:`encode` and :meth:`encoder_metrics`.

    Args:
        config: the run's config (a :class:`ShapeDataConfig`, :class:`ShapeLossConfig` and
            :class:`ShapeOutputConfig`).
        shapes: an :class:`~inr_gon.training.tasks.sdf_data.SdfShapeSet` (default: loaded from
            the config).
    """

    def __init__(self, config, *, shapes: SdfShapeSet | None = None):
        super().__init__(config)
        self.shapes = shapes
        self._truth_cache: dict = {}
        self._grid_cache: dict = {}  # ground-truth SDF grids of the linear baseline (sdf_baseline)
        self._evals: dict = {}  # the final evaluation's meshes (final_metrics -> write_outputs)

    @classmethod
    def default_out(cls, cfg) -> str:
        return f"runs/{cls.name}_{cfg.source}"

    # -- set-up ---------------------------------------------------------------------------------------
    def setup(self, trainer) -> None:
        super().setup(trainer)
        cfg, dist = self.cfg, trainer.dist
        if self.shapes is None:
            with dist.main_first():  # rank 0 samples and caches mesh folders first
                self.shapes = load_shapes(cfg, quiet=trainer.quiet)
        if not self.shapes.train_index:
            raise ValueError("the training set is empty")
        if dist.enabled:
            if len(self.shapes.train_index) < cfg.batch_size:
                raise ValueError(
                    f"{len(self.shapes.train_index)} training shapes are fewer than the global "
                    f"batch_size={cfg.batch_size}"
                )
            if self.shapes.stream is not None:
                total = float(sum(f.stat().st_size for f in self.shapes.stream.files) + self.shapes.pool_size)
            else:
                total = float(self.shapes.points.double().sum() + self.shapes.sdf.double().sum())
            if dist.broadcast_object(total) != total:
                raise ValueError("the ranks loaded different shape pools (the same --seed and data are needed)")
        if self.shapes.pool_size < cfg.points:
            raise ValueError(f"pools hold {self.shapes.pool_size} points per shape, fewer than points={cfg.points}")
        self.device = trainer.device
        streamed = self.shapes.stream is not None
        self.points = None if streamed else self.shapes.points.to(self.device)
        self.sdf = None if streamed else self.shapes.sdf.to(self.device)
        self._prefetched = None  # streaming: (positions, future) of the next batch's pools
        self.train_index = torch.tensor(self.shapes.train_index)
        self.setup_encoder()

    def pools(self, index) -> tuple[torch.Tensor, torch.Tensor]:
        """The pools of shapes ``index`` on the device: ``(points (B, N, 3), sdf (B, N))``, from
        memory or read from the sample files (streaming)."""
        if self.points is not None:
            idx = torch.as_tensor([int(i) for i in index], dtype=torch.long, device=self.device)
            return self.points[idx], self.sdf[idx]
        pts, sdf = self.shapes.take(index)
        return pts.to(self.device, non_blocking=True), sdf.to(self.device, non_blocking=True)

    def batch_pools(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`pools` of the training shapes at ``positions`` (the sampler's batch, or its first
        shapes). Streaming, the next batch's are read in the background meanwhile (the
        sampler's next batch, as many of its first shapes)."""
        if self.points is not None:
            return self.pools(self.train_index[positions.cpu()])
        key = tuple(int(i) for i in positions)
        ready, self._prefetched = self._prefetched, None
        if ready is not None and ready[0] == key:
            pts, sdf = ready[1].result()
        else:
            pts, sdf = self.shapes.take(self.train_index[list(key)])
        sampler = getattr(self.trainer, "sampler", None)
        if sampler is not None:
            nxt = sampler.peek()[: len(key)]
            future = self.shapes.stream.prefetch(self.train_index[nxt].tolist())
            self._prefetched = (tuple(int(i) for i in nxt), future)
        return pts.to(self.device, non_blocking=True), sdf.to(self.device, non_blocking=True)

    def num_train(self) -> int:
        return len(self.shapes.train_index)

    def build_model(self):
        c = self.cfg
        steps = c.step_options() if hasattr(c, "step_options") else {}
        return LatentSiren(3, c.latent, 1, c.hidden, c.layers, **c.siren_options(), **steps)

    def setup_encoder(self) -> None:
        """After the shapes are on the device: the encoder's own set-up (e.g. fixed point orders)."""

    # -- encoding ---------------------------------------------------------------------------------------
    def encode(self, index) -> torch.Tensor:
        """Latents ``(len(index), k)`` of shapes ``index`` (training or unseen)."""
        raise NotImplementedError

    def encoder_metrics(self) -> dict:
        """What ``metrics.json`` records of the encoder; ``"encoding"``: how a shape is encoded, in words."""
        raise NotImplementedError

    def progress(self, parts, last_eval):
        out = {"loss": f"{parts['loss']:.4f}"}
        if "unseen_sign_iou" in last_eval:
            out["iou"] = f"{last_eval['train_sign_iou']:.2f}/{last_eval['unseen_sign_iou']:.2f}"
        elif "train_sign_iou" in last_eval:
            out["iou"] = f"{last_eval['train_sign_iou']:.2f}"
        return out

    def on_fit_end(self, trainer) -> None:
        from ...core.sampling import GaussianLatentSampler

        if self.shapes.stream is not None:  # no batch is read ahead any more
            self._prefetched = None
            self.shapes.stream.close()
        # the Gaussian that --sample draws from: fitted to (at most) the first LATENT_STATS_SHAPES training latents
        index = self.shapes.train_index[:LATENT_STATS_SHAPES]
        z = torch.cat([self.encode(index[j : j + 64]) for j in range(0, len(index), 64)])
        if z.shape[0] >= 2:
            s = GaussianLatentSampler(z)
            self.latent_stats = {"mean": s.mean, "cov": s.cov}

    def sdf_of(self, z: torch.Tensor):
        """The ``(N, 3) -> (N,)`` SDF callable of one latent ``(k,)``."""
        return latent_sdf(self.trainer.model, z)

    # -- periodic evaluation: the field on the shapes' own points --------------------------------------
    @torch.no_grad()
    def field_metrics(self, index) -> dict:
        """:func:`~inr_gon.eval.shape_space.field_agreement` of the encoded shapes ``index`` on their pools."""
        index = [int(i) for i in index]
        if not index:
            return field_agreement([], [], [], self.cfg.delta)
        z = self.encode(index)
        pts, sdf = self.pools(index)
        return field_agreement([self.sdf_of(z[j]) for j in range(len(index))], list(pts), list(sdf), self.cfg.delta)

    @torch.no_grad()
    def health(self, index) -> dict:
        """:func:`~inr_gon.eval.shape_space.shape_space_health` of the encoded training shapes ``index``."""
        index = [int(i) for i in index]
        if not index:
            return shape_space_health([], [], [])
        z = self.encode(index)
        pts, sdf = self.pools(index)
        return shape_space_health([self.sdf_of(z[j]) for j in range(len(index))], list(pts), list(sdf))

    def evaluate(self, trainer) -> dict:
        out = {}
        for split, idx in (("train", self.shapes.train_index), ("unseen", self.shapes.unseen_index)):
            m = self.field_metrics(idx[: self.cfg.eval_shapes])
            out.update({f"{split}_{k}": v for k, v in m.items()})
        h = self.health(self.shapes.train_index[: max(self.cfg.eval_shapes, 2)])
        out.update({k: v for k, v in h.items() if k != "shapes"})
        return out

    def final_metrics(self, trainer) -> dict:
        """The shape-space checks, the meshes of ``eval_shapes`` training and unseen shapes against
        their ground truth, and the linear baseline (a collective under DDP)."""

        h = self.health(self.shapes.train_index[: max(self.cfg.eval_shapes, 2)])
        why = collapse_reasons(h)
        for w in why:
            warnings.warn(f"the shape space collapsed: {w}", CollapseWarning, stacklevel=2)
        base = trainer.dist.run_on_main(linear_baseline, self, trainer.step)  # the PCA shape model, from rank 0
        t0 = time.perf_counter()
        model = trainer.model
        was = model.training
        model.eval()
        self._evals = {"train": self.evaluate_shapes(self.shapes.train_index[: self.cfg.eval_shapes])}
        if self.shapes.unseen_index:
            self._evals["unseen"] = self.evaluate_shapes(self.shapes.unseen_index[: self.cfg.eval_shapes])
        model.train(was)
        m = {}
        for split in ("train", "unseen"):
            e = self._evals.get(split)
            for k in ("chamfer", "iou", "normal_consistency", "nearest_own_truth", "chamfer_deepsdf"):
                m[f"{split}_{k}"] = e[k] if e else None
        m.update(
            baseline_metrics(
                base,
                self._evals["train"]["grid_iou"],
                self._evals["unseen"]["grid_iou"] if "unseen" in self._evals else None,
            )
        )
        m.update(
            {
                "eval_seconds": round(time.perf_counter() - t0, 2),
                "params": sum(p.numel() for p in model.parameters()),
                "source": self.shapes.name,
                "data": self.shapes.source,
                "num_train": len(self.shapes.train_index),
                "num_unseen": len(self.shapes.unseen_index),
                "outer_loss": self.cfg.outer_loss,
                **self.encoder_metrics(),
                "mesh_resolution": self.cfg.mesh_resolution,
                "device": str(self.device),
                "processes": trainer.dist.world_size,
                "collapsed": bool(why),
                "collapse_reasons": why,
                "health": h,
                **{
                    split: {k: v for k, v in e.items() if k not in ("meshes", "truths")}
                    for split, e in self._evals.items()
                },
            }
        )
        m.setdefault("unseen", None)
        return {**base, **m}

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
                self._truth_cache[i] = extract_mesh(self.shapes.analytic[i], res, method="coarse_to_fine", device="cpu")
            return self._truth_cache[i]
        t = self.shapes.truth[i] if self.shapes.truth else None
        return t if hasattr(t, "faces") else None

    def evaluate_shapes(self, index, *, num_samples: int = 10_000) -> dict:
        """Encode shapes ``index``, extract meshes and compare them with the ground truth.

        Returns per-shape lists and means of ``chamfer`` (DeepSDF's, squared units),
        ``normal_consistency``, ``iou`` and ``grid_iou`` (the sign IoU on the linear baseline's grid,
        :mod:`.sdf_baseline`; ``None`` where the ground truth cannot give them), and
        ``empty_meshes``, and the ``meshes`` and ``truths`` themselves. A collective under DDP:
        each rank evaluates its share of the shapes; every rank returns the whole result.
        """
        model, dist = self.trainer.model, self.trainer.dist
        was = model.training
        model.eval()
        index = [int(i) for i in index]
        mine = index[dist.shard(len(index))]
        z = self.encode(mine)
        results = dist.gather_list([self._evaluate_one(i, z[j], num_samples) for j, i in enumerate(mine)])
        model.train(was)
        rows = {"names": [r["name"] for r in results]}
        for k in ("chamfer", "normal_consistency", "iou", "grid_iou", "chamfer_deepsdf"):
            if k == "chamfer_deepsdf" and not any(k in r for r in results):
                continue
            rows[k] = [r.get(k) for r in results]
        mean = lambda v: float(np.mean([x for x in v if x is not None])) if any(x is not None for x in v) else None
        own = nearest_own_truth([r["mesh"] for r in results], [r["truth"] for r in results], num_samples)
        rows["nearest_own_truth"] = own
        return {
            "num": len(index),
            "empty_meshes": sum(len(r["mesh"].faces) == 0 for r in results),
            "chamfer": mean(rows["chamfer"]),
            "normal_consistency": mean(rows["normal_consistency"]),
            "iou": mean(rows["iou"]),
            "grid_iou": mean(rows["grid_iou"]),
            "nearest_own_truth": mean([float(x) for x in own if x is not None]),
            "chamfer_deepsdf": mean(rows["chamfer_deepsdf"]) if "chamfer_deepsdf" in rows else None,
            "per_shape": rows,
            "meshes": [r["mesh"] for r in results],
            "truths": [r["truth"] for r in results],
        }

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
        else:  # DeepSDF: agreement of inside/outside on the shape's own samples
            pts, sdf = self.pools([i])
            iou = float(sign_iou(f(pts[0]), sdf[0]))
        out = {
            "name": self.shapes.names[i],
            "mesh": mesh,
            "truth": gt,
            "chamfer": ch,
            "normal_consistency": nc,
            "iou": iou,
            "grid_iou": gon_grid_iou(self, i, f),
        }
        norm = self.shapes.normalization[i] if self.shapes.normalization else None
        if norm is not None:  # DeepSDF's convention: in the original frame, 30,000 points
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
        return {
            "shapes": {
                "name": s.name,
                "source": s.source,
                "names": list(s.names),
                "train_index": list(s.train_index),
                "unseen_index": list(s.unseen_index),
            },
            "latent_stats": getattr(self, "latent_stats", None),
        }

    def load_state_dict(self, state: dict) -> None:
        self.latent_stats = state.get("latent_stats")

    def write_outputs(self, trainer, metrics, out):
        from .sdf_outputs import write_sdf_outputs

        return write_sdf_outputs(self, metrics, out)

    def describe(self, trainer) -> list[str]:
        lines = [f"shape pools: {self.shapes.storage}"] if self.shapes.name != "procedural" else []
        if trainer.dist.enabled:
            c = trainer.cfg
            lines.append(
                f"data parallel: {trainer.dist.world_size} processes, {c.batch_size // trainer.dist.world_size}"
                f" shapes each per step (global batch {c.batch_size})"
            )
        return lines

    def summary(self, trainer, m, paths) -> list[str]:
        fmt = lambda v, f: "n/a" if v is None else format(v, f)
        lines = [
            f"data: {self.shapes.name} ({len(self.shapes.train_index)} train, "
            f"{len(self.shapes.unseen_index)} unseen shapes)",
            f"trained {m['steps']} steps in {m['train_seconds']:.1f} s ({m['params']:,} parameters, {m['device']})",
            f"train  shapes: Chamfer {fmt(m['train_chamfer'], '.5f')}  IoU {fmt(m['train_iou'], '.3f')}  "
            f"normal consistency {fmt(m['train_normal_consistency'], '.3f')}",
            f"unseen shapes ({m['encoding']}): Chamfer {fmt(m['unseen_chamfer'], '.5f')}  "
            f"IoU {fmt(m['unseen_iou'], '.3f')}  normal consistency {fmt(m['unseen_normal_consistency'], '.3f')}",
            *baseline_lines(m),
        ]
        lines += [f"  {name:16s} {path}" for name, path in paths.items()]
        lines += [f"  {'checkpoint':16s} {trainer.last_checkpoint}", f"  {'config':16s} {trainer.out / 'config.json'}"]
        return lines
