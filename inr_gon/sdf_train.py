"""Training SDF GONs on shape families: procedural (analytic) shapes, mesh folders, DeepSDF samples.

Outer layer (file I/O): :class:`SdfTrainConfig` (plain data, stored in ``config.json`` and in
checkpoints), :func:`load_shapes` (an :class:`SdfShapeSet` of per-shape point pools with signed
distances and ground truth for the metrics), :class:`SdfGONTrainer` (exact second-order GON
steps via :func:`inr_gon.sdf_gon.sdf_gon_loss`, tqdm bar, atomic checkpoints, resume) and
:func:`write_sdf_outputs` (meshes, slices, slerp, ``metrics.json``). :func:`main` is the
command line of ``examples/fit_sdf_shapes.py``.

Some shapes are held out as *unseen* shapes: never trained on, encoded by the single gradient
step at evaluation.

Data-parallel: launched by ``torchrun`` with several processes, the trainer wraps the objective
in ``DistributedDataParallel`` (gloo on CPU, NCCL on CUDA). ``batch_size`` is the global batch;
every rank draws the same random point subsets for the whole batch and keeps its own contiguous
slice of the shapes, so N processes take the steps one process would (tested to 1e-5); rank 0
alone prints and writes; evaluation is split over the ranks and gathered.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .checkpoint import CheckpointError, atomic_write_bytes, check_run_dir
from .config import RunConfig, nonneg_float, positive_float, positive_int
from .mesh import extract_mesh, sdf_slice
from .sampling import slerp_path
from .distributed import DistContext, SdfGONObjective, init_distributed
from .sdf_gon import DEFAULT_INNER_WEIGHT, _random_subset, latent_sdf, sdf_gon_latent, split_points
from .shape_metrics import chamfer_distance, normal_consistency, volumetric_iou
from .shapes import ProceduralShapes
from .siren import LatentSiren
from .train import (NonFiniteGuard, NonFiniteLossError, RunFiles, _retarget_adam, load_trained,
                    restore_generator, select_device)
from .viz import pyplot, save_figure

__all__ = ["SdfTrainConfig", "SdfShapeSet", "SdfGONTrainer", "load_shapes", "load_sdf_trained",
           "check_run_dir", "mesh_files", "build_sdf_model", "config_from_args",
           "write_sdf_outputs", "build_parser", "main", "SDF_CHECKPOINT_KIND", "MESH_SUFFIXES"]

SDF_CHECKPOINT_KIND = "inr_gon.sdf_gon"
MESH_SUFFIXES = (".obj", ".ply", ".stl", ".off", ".glb", ".gltf")


@dataclass
class SdfTrainConfig(RunConfig):
    """Everything that defines an SDF-GON run.

    Attributes:
        source: ``"procedural"``, ``"meshes"`` or ``"deepsdf"``; ``data``: the folder for the
            last two.
        num_shapes: procedural: training shapes (plus ``num_unseen`` held out). Meshes/DeepSDF:
            ignored (every shape found is used).
        num_unseen: shapes held out (default: procedural 8, folders a quarter, at least one
            when there are two or more shapes).
        pool: points kept per shape (half uniform in ``[-1, 1]^3``, half near the surface).
        points: points per shape per step (half inner, half outer, disjoint).
        inner: ``"per_sample"`` (each shape its own pool points; the general path) or
            ``"shared"`` (procedural only: one set of fresh uniform points per step for the
            whole batch, SDFs evaluated analytically; the exact shared-origin fast path).
        inner_weight: ``inner_scale = inner_weight / (points per shape in the inner sum)``.
        eikonal: weight of the eikonal term on the outer points (0: off).
        resolution: marching-cubes samples per axis of the written meshes.
        on_nonfinite: ``"stop"`` (raise naming the step; the last good checkpoint stays) or
            ``"skip"`` (skip and count the batch) on a NaN/Inf loss.
        nonfinite_check: ``"immediate"`` (checks every step: a host sync) or ``"deferred"``
            (no host sync in the step; read every ``log_every`` steps and before checkpoints,
            never applying a bad update); default: deferred on CUDA, immediate on CPU
            (:class:`~inr_gon.train.NonFiniteGuard`).
        eval_shapes: training shapes evaluated and written (unseen: up to this many too).
    """

    source: str = "procedural"
    data: str | None = None
    num_shapes: int = 64
    num_unseen: int | None = None
    pool: int = 4096
    steps: int = 500
    seconds: float | None = None
    batch_size: int = 16
    points: int = 1024
    lr: float = 2e-4
    hidden: int = 128
    layers: int = 3
    latent: int = 32
    w0: float = 30.0
    w0_first: float = 30.0
    loss: str = "clamped_l1"
    delta: float = 0.1
    inner: str = "per_sample"
    inner_weight: float = DEFAULT_INNER_WEIGHT
    eikonal: float = 0.0
    resolution: int = 64
    eval_shapes: int = 6
    slerp_frames: int = 6
    checkpoint_every: int = 300
    keep_checkpoints: int = 2
    log_every: int = 10
    seed: int = 0
    device: str = "auto"
    out: str | None = None
    cache_dir: str | None = None
    on_nonfinite: str = "stop"
    nonfinite_check: str | None = None

    def validate(self) -> None:
        """Raise a one-line ``ValueError`` for impossible options."""
        checks = [
            ("source", self.source in ("procedural", "meshes", "deepsdf"),
             "must be 'procedural', 'meshes' or 'deepsdf'"),
            ("data", self.source == "procedural" or self.data, "is required for meshes/deepsdf"),
            ("num_shapes", self.num_shapes >= 1, "must be >= 1"),
            ("num_unseen", self.num_unseen is None or self.num_unseen >= 0, "must be >= 0"),
            ("steps", self.steps >= 0, "must be >= 0"),
            ("seconds", self.seconds is None or self.seconds > 0, "must be > 0"),
            ("batch_size", self.batch_size >= 1, "must be >= 1"),
            ("points", self.points >= 2, "must be >= 2"),
            ("pool", self.pool >= self.points, f"must be >= points ({self.points})"),
            ("lr", self.lr > 0 and math.isfinite(self.lr), "must be a positive number"),
            ("hidden", self.hidden >= 1, "must be >= 1"),
            ("layers", self.layers >= 1, "must be >= 1"),
            ("latent", self.latent >= 1, "must be >= 1"),
            ("loss", self.loss in ("clamped_l1", "l2", "mse", "l1"), "must be 'clamped_l1', 'l2' or 'l1'"),
            ("delta", self.delta > 0, "must be > 0"),
            ("inner", self.inner in ("per_sample", "shared"), "must be 'per_sample' or 'shared'"),
            ("inner", self.inner == "per_sample" or self.source == "procedural",
             "'shared' needs analytic shapes (source 'procedural')"),
            ("inner_weight", self.inner_weight > 0 and math.isfinite(self.inner_weight), "must be > 0"),
            ("eikonal", self.eikonal >= 0, "must be >= 0"),
            ("resolution", self.resolution >= 8, "must be >= 8"),
            ("eval_shapes", self.eval_shapes >= 1, "must be >= 1"),
            ("slerp_frames", self.slerp_frames >= 2, "must be >= 2"),
            ("checkpoint_every", self.checkpoint_every >= 1, "must be >= 1"),
            ("keep_checkpoints", self.keep_checkpoints >= 1, "must be >= 1"),
            ("on_nonfinite", self.on_nonfinite in ("stop", "skip"), "must be 'stop' or 'skip'"),
            ("nonfinite_check", self.nonfinite_check in (None, "immediate", "deferred"),
             "must be 'immediate' or 'deferred'"),
        ]
        self._check(checks)


# ------------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------------
@dataclass
class SdfShapeSet:
    """Shapes as point pools plus ground truth.

    Attributes:
        name, source: description.
        names: ``S`` shape names; ``train_index`` / ``unseen_index``: which are which.
        points: ``(S, N, 3)`` float32; ``sdf``: ``(S, N)`` float32 (CPU).
        analytic: ``S`` SDF callables (procedural) or ``None``.
        truth: ``S`` ground truths for the metrics: a ``trimesh.Trimesh`` (a mesh or, for
            analytic shapes, built lazily), an ``(M, 3)`` surface point array (DeepSDF), or
            ``None``.
    """

    name: str
    source: str
    names: list
    points: torch.Tensor
    sdf: torch.Tensor
    train_index: list
    unseen_index: list
    analytic: list | None = None
    truth: list | None = None


def _analytic_pool(shape, n: int, generator: torch.Generator, *, band: float = 0.1) -> tuple:
    """``n`` points of an analytic shape: half uniform in ``[-1, 1]^3``, half with ``|sdf| < band``
    (rejection sampling). Returns ``(points (n, 3), sdf (n,))``."""
    n_uni = n // 2
    pts = [torch.rand(n_uni, 3, generator=generator) * 2 - 1]
    need, tries = n - n_uni, 0
    while need > 0:
        cand = torch.rand(max(8 * need, 4096), 3, generator=generator) * 2 - 1
        with torch.no_grad():
            near = cand[shape(cand).abs() < band][:need]
        pts.append(near)
        need -= near.shape[0]
        tries += 1
        if tries > 50:
            raise RuntimeError("could not sample near-surface points of a procedural shape")
    p = torch.cat(pts)
    with torch.no_grad():
        return p, shape(p).float()


def _split(num: int, num_unseen: int | None) -> tuple[list, list]:
    u = num_unseen if num_unseen is not None else (max(1, num // 4) if num >= 2 else 0)
    if u >= num:
        raise ValueError(f"num_unseen={u} leaves no training shapes out of {num}")
    return list(range(num - u)), list(range(num - u, num))


def mesh_files(folder) -> list[Path]:
    """Mesh files (``MESH_SUFFIXES``) directly in ``folder``, sorted; a one-line ``ValueError``
    when the folder is missing or holds none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: mesh folder not found")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in MESH_SUFFIXES)
    if not files:
        raise ValueError(f"{folder}: no mesh files ({', '.join(MESH_SUFFIXES)}) found")
    return files


def load_shapes(cfg: SdfTrainConfig, *, quiet: bool = True) -> SdfShapeSet:
    """The shape set named by ``cfg`` (pools of ``cfg.pool`` points per shape, CPU)."""
    g = torch.Generator().manual_seed(cfg.seed)
    if cfg.source == "procedural":
        u = 8 if cfg.num_unseen is None else cfg.num_unseen
        fam = ProceduralShapes(cfg.num_shapes + u, seed=cfg.seed)
        shapes = list(fam)
        pools = [_analytic_pool(s, cfg.pool, g) for s in shapes]
        return SdfShapeSet("procedural", repr(fam), [f"shape{i:04d}" for i in range(len(shapes))],
                           torch.stack([p for p, _ in pools]), torch.stack([s for _, s in pools]),
                           list(range(cfg.num_shapes)), list(range(cfg.num_shapes, cfg.num_shapes + u)),
                           analytic=shapes, truth=[None] * len(shapes))
    if cfg.source == "meshes":
        from .data.meshes import load_mesh, normalize_mesh, sample_sdf_cached
        files = mesh_files(cfg.data)
        cache = Path(cfg.cache_dir) if cfg.cache_dir else Path(cfg.out or "runs") / "cache"
        pts, sdfs, truth = [], [], []
        for f in tqdm(files, desc="sample meshes", disable=quiet):
            s = sample_sdf_cached(f, cache, num_uniform=cfg.pool // 2, num_surface=cfg.pool - cfg.pool // 2,
                                  sigmas=(0.05, 0.01, 0.002), seed=cfg.seed)
            pts.append(s.points)
            sdfs.append(s.sdf)
            truth.append(normalize_mesh(load_mesh(f))[0])
        tr, un = _split(len(files), cfg.num_unseen)
        return SdfShapeSet("meshes", str(cfg.data), [f.stem for f in files], torch.stack(pts),
                           torch.stack(sdfs), tr, un, truth=truth)
    from .data.meshes import read_deepsdf
    records = read_deepsdf(cfg.data)
    pts, sdfs, truth = [], [], []
    for r in records:
        rows = torch.cat([r.pos, r.neg])
        if rows.shape[0] < 1:
            raise ValueError(f"{r.id}: no SDF samples")
        idx = torch.randint(rows.shape[0], (cfg.pool,), generator=g) if rows.shape[0] < cfg.pool else \
            torch.randperm(rows.shape[0], generator=g)[:cfg.pool]
        pts.append(rows[idx, :3].contiguous())
        sdfs.append(rows[idx, 3].contiguous())
        truth.append(r.surface_points() if r.surface_path is not None else None)
    tr, un = _split(len(records), cfg.num_unseen)
    return SdfShapeSet("deepsdf", str(cfg.data), [r.id for r in records], torch.stack(pts),
                       torch.stack(sdfs), tr, un, truth=truth)


# ------------------------------------------------------------------------------------------------
# trainer
# ------------------------------------------------------------------------------------------------
def build_sdf_model(cfg: SdfTrainConfig) -> LatentSiren:
    return LatentSiren(3, cfg.latent, 1, cfg.hidden, cfg.layers, w0=cfg.w0, w0_first=cfg.w0_first)


def load_sdf_trained(path, *, device=None):
    """Rebuild ``(model, checkpoint dict)`` from an SDF-GON checkpoint (``weights_only`` loading);
    :class:`~inr_gon.checkpoint.CheckpointError` (one line) for a bad file."""
    return load_trained(path, device=device, kind=SDF_CHECKPOINT_KIND)


class SdfGONTrainer(RunFiles):
    """Train an SDF GON (``LatentSiren(3, k, 1, ...)``) on a shape set.

    Args:
        config: the run's :class:`SdfTrainConfig`.
        shapes: an :class:`SdfShapeSet` (default: :func:`load_shapes` of the config).
        quiet: no progress bar or messages.
        dist: ``"auto"`` (data-parallel when launched by ``torchrun`` with several processes) or
            a :class:`~inr_gon.distributed.DistContext`.
    """

    checkpoint_kind = SDF_CHECKPOINT_KIND

    def __init__(self, config: SdfTrainConfig, *, shapes: SdfShapeSet | None = None, quiet: bool = False,
                 dist="auto"):
        config.validate()
        self.cfg = config
        device = select_device(config.device)
        self.dist: DistContext = init_distributed(device=device) if dist == "auto" else dist
        self.device = self.dist.device if self.dist.enabled else device
        self.quiet = quiet or not self.dist.is_main
        if config.batch_size % self.dist.world_size:
            raise ValueError(f"batch_size={config.batch_size} (the global batch) must be divisible by the "
                             f"number of processes ({self.dist.world_size})")
        if shapes is None:
            with self.dist.main_first():        # rank 0 samples and caches mesh folders first
                shapes = load_shapes(config, quiet=self.quiet)
        self.shapes = shapes
        if not self.shapes.train_index:
            raise ValueError("the training set is empty")
        if self.dist.enabled:
            if len(self.shapes.train_index) < config.batch_size:
                raise ValueError(f"{len(self.shapes.train_index)} training shapes are fewer than the global "
                                 f"batch_size={config.batch_size}")
            total = float(self.shapes.points.double().sum() + self.shapes.sdf.double().sum())
            if self.dist.broadcast_object(total) != total:
                raise ValueError("the ranks loaded different shape pools (the same --seed and data are needed)")
        if self.cfg.inner == "shared" and self.shapes.analytic is None:
            raise ValueError("inner='shared' needs analytic shapes (source 'procedural')")
        if self.shapes.points.shape[1] < self.cfg.points:
            raise ValueError(f"pools hold {self.shapes.points.shape[1]} points per shape, fewer than points={self.cfg.points}")
        self.points = self.shapes.points.to(self.device)
        self.sdf = self.shapes.sdf.to(self.device)
        torch.manual_seed(self.cfg.seed)
        self.model = build_sdf_model(self.cfg).to(self.device)
        mode = config.nonfinite_check or ("deferred" if self.device.type == "cuda" else "immediate")
        self.deferred = mode == "deferred"
        # fused Adam skips an update on the device when told to (found_inf): no host sync
        self.opt = torch.optim.Adam(self.model.parameters(), lr=self.cfg.lr, fused=True if self.deferred else None)
        self.guard = NonFiniteGuard(self.opt, deferred=self.deferred, on_nonfinite=config.on_nonfinite,
                                    device=self.device)
        # the whole step is one module's forward, so DDP sees every use of every parameter
        self.objective = SdfGONObjective(self.model, loss=config.loss, delta=config.delta,
                                         inner_weight=config.inner_weight, eikonal_weight=config.eikonal,
                                         check=False)
        self.step_module = self.dist.wrap(self.objective)
        self.data_gen = torch.Generator().manual_seed(self.cfg.seed)
        self.mc_gen = torch.Generator(device=self.device).manual_seed(self.cfg.seed + 1)
        self.train_index = torch.tensor(self.shapes.train_index)
        self.perm = self.train_index[torch.randperm(len(self.train_index), generator=self.data_gen)]
        self.pos = 0
        self.step = 0
        self.elapsed = 0.0
        self.history = {"step": [], "seconds": [], "loss": [], "eikonal": []}
        self.out = Path(self.cfg.out) if self.cfg.out else None
        self.last_checkpoint: Path | None = None

    # -- data -------------------------------------------------------------------------------------
    def next_batch(self) -> torch.Tensor:
        """Indices ``(B,)`` of the next global batch of training shapes (a seeded permutation,
        epoch by epoch, identical on every rank)."""
        B, N = self.cfg.batch_size, self.perm.numel()
        if self.pos + B > N:
            self.perm = self.train_index[torch.randperm(N, generator=self.data_gen)]
            self.pos = 0
        idx = self.perm[self.pos:self.pos + min(B, N)]
        self.pos += B
        return idx

    @property
    def num_inner(self) -> int:
        return self.cfg.points // 2

    def batch_points(self, idx: torch.Tensor):
        """This rank's inner and outer points for the global batch of shapes ``idx (B,)``.

        The random subsets are drawn for the whole batch on every rank (the same generator
        state), then each rank keeps its contiguous slice of the shapes.
        Returns ``(inner_points (b, P, 3) or shared (P, 3), inner_sdf (b, P), outer_points
        (b, M, 3), outer_sdf (b, M))`` with ``b = B / world_size``.
        """
        cfg = self.cfg
        dev_idx = idx.to(self.device)
        pts, sdf = self.points[dev_idx], self.sdf[dev_idx]                # (B, N, 3), (B, N)
        m_in, m_out = self.num_inner, cfg.points - self.num_inner
        b = idx.numel() // self.dist.world_size
        mine = slice(self.dist.rank * b, (self.dist.rank + 1) * b)
        if cfg.inner == "shared":
            ip = torch.rand(m_in, 3, generator=self.mc_gen, device=self.device) * 2 - 1   # (P, 3)
            op, osdf = _random_subset(pts, sdf, m_out, self.mc_gen)
            isdf = torch.stack([self.shapes.analytic[int(i)](ip) for i in idx[mine]]).float()
            return ip, isdf, op[mine], osdf[mine]
        ip, isdf, op, osdf = split_points(pts, sdf, m_in, m_out, generator=self.mc_gen)
        return ip[mine], isdf[mine], op[mine], osdf[mine]

    def loss_for(self, idx: torch.Tensor):
        """``(loss, z, parts)`` of :func:`~inr_gon.sdf_gon.sdf_gon_loss` on this rank's part of
        the global batch ``idx (B,)``."""
        return self.step_module(*self.batch_points(idx))

    def train_step(self, idx: torch.Tensor):
        """One GON step (gradients in ``.grad``, averaged over the ranks, not yet applied);
        returns detached ``(loss, parts)``, averaged over the ranks."""
        loss, _, parts = self.loss_for(idx)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if not self.dist.enabled:
            return loss.detach(), parts
        avg = self.dist.average(torch.stack([loss.detach(), parts["sdf"], parts["eikonal"]]))
        return avg[0], {"sdf": avg[1], "eikonal": avg[2]}

    # -- encoding / evaluation ------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, index, *, num_points: int = 8192) -> torch.Tensor:
        """One-step latents ``(len(index), k)`` of shapes ``index`` (training or unseen).

        Per-sample mode: ``num_points`` fixed points of each shape's pool (at most the pool);
        shared mode: ``num_points`` fixed uniform points, SDFs evaluated analytically (the
        distribution the model was trained with).
        """
        index = [int(i) for i in index]
        if not index:
            return torch.zeros(0, self.cfg.latent, device=self.device)
        g = torch.Generator(device=self.device).manual_seed(self.cfg.seed + 12345)
        common = dict(loss=self.cfg.loss, delta=self.cfg.delta, inner_weight=self.cfg.inner_weight)
        if self.cfg.inner == "shared":
            ip = torch.rand(num_points, 3, generator=g, device=self.device) * 2 - 1
            isdf = torch.stack([self.shapes.analytic[i](ip) for i in index]).float()
            return sdf_gon_latent(self.model, ip, isdf, **common)
        n = min(num_points, self.points.shape[1])
        zs = []
        for i in index:       # each shape its own seeded subset: the same in any batch or shard
            g.manual_seed(self.cfg.seed + 12345 + i)
            sel = torch.randperm(self.points.shape[1], generator=g, device=self.device)[:n]
            zs.append(sdf_gon_latent(self.model, self.points[i, sel][None], self.sdf[i, sel][None], **common))
        return torch.cat(zs)

    def sdf_of(self, z: torch.Tensor):
        """The ``(N, 3) -> (N,)`` SDF callable of one latent ``(k,)``."""
        return latent_sdf(self.model, z)

    def truth_mesh(self, i: int):
        """Ground-truth mesh of shape ``i`` (analytic: extracted at 2× the output resolution), or
        ``None`` when there is only a point cloud or nothing."""
        if self.shapes.analytic is not None:
            cache = getattr(self, "_truth_cache", {})
            self._truth_cache = cache
            if i not in cache:
                res = min(2 * self.cfg.resolution, 192)
                cache[i] = extract_mesh(self.shapes.analytic[i], res, method="coarse_to_fine", device="cpu")
            return cache[i]
        t = self.shapes.truth[i] if self.shapes.truth else None
        return t if hasattr(t, "faces") else None

    # -- checkpoints ------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "kind": SDF_CHECKPOINT_KIND, "version": 1,
            "model_config": self.model.config(), "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(), "step": self.step, "elapsed": self.elapsed,
            "skipped": self.guard.skipped, "config": self.cfg.to_dict(),
            "data": {"perm": self.perm, "pos": self.pos, "generator": self.data_gen.get_state()},
            "mc_generator": self.mc_gen.get_state(), "torch_rng": torch.get_rng_state(),
            "history": self.history,
            "shapes": {"name": self.shapes.name, "source": self.shapes.source, "names": list(self.shapes.names),
                       "train_index": list(self.shapes.train_index),
                       "unseen_index": list(self.shapes.unseen_index)},
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        _retarget_adam(self.opt, fused=self.deferred)      # e.g. a CUDA checkpoint resumed on CPU
        self.step, self.elapsed = state["step"], state["elapsed"]
        self.guard.skipped = state.get("skipped", 0)
        self.perm, self.pos = state["data"]["perm"], state["data"]["pos"]
        self.data_gen.set_state(state["data"]["generator"])
        if not restore_generator(self.mc_gen, state["mc_generator"]):
            self.log("note: checkpoint from another device type: point subsets continue from a new stream")
        torch.set_rng_state(state["torch_rng"])
        self.history = state["history"]

    # -- the loop ---------------------------------------------------------------------------------
    def fit(self) -> dict:
        """Train until ``steps`` (total) or ``seconds``; returns ``{"steps", "train_seconds",
        "skipped_steps"}``."""
        t0 = time.perf_counter() - self.elapsed
        bar = tqdm(total=self.cfg.steps, initial=self.step, disable=self.quiet, desc="train", unit="step",
                   dynamic_ncols=True)
        self.model.train()
        try:
            self._loop(bar, t0)
        finally:
            bar.close()
        self.save()
        self.guard.check(last_checkpoint=self.last_checkpoint)
        return {"steps": self.step, "train_seconds": round(self.elapsed, 2), "skipped_steps": self.guard.skipped}

    def _loop(self, bar, t0: float) -> None:
        cfg = self.cfg
        while self.step < cfg.steps:
            if self._out_of_time(t0):
                self.log(f"time budget of {cfg.seconds:g} s reached at step {self.step}")
                break
            loss, parts = self.train_step(self.next_batch())
            applied = self.guard.step(loss, step=self.step, last_checkpoint=self.last_checkpoint)
            self.step += 1
            bar.update(1)
            if not applied:             # skipped (immediate mode)
                continue
            self.elapsed = time.perf_counter() - t0
            if self.step % cfg.log_every == 0:
                self.guard.check(last_checkpoint=self.last_checkpoint)
                self.history["step"].append(self.step)
                self.history["seconds"].append(self.elapsed)
                self.history["loss"].append(float(parts["sdf"]))
                self.history["eikonal"].append(float(parts["eikonal"]))
                post = {"loss": f"{float(parts['sdf']):.4f}"}
                if cfg.eikonal > 0:
                    post["eik"] = f"{float(parts['eikonal']):.3f}"
                bar.set_postfix(**post)
            if self.step % cfg.checkpoint_every == 0:
                self.save()

    def evaluate(self, index, *, write_dir=None, prefix: str = "shape", num_samples: int = 10_000) -> dict:
        """Encode shapes ``index`` in one step, extract meshes and compare with the ground truth.

        Returns per-shape lists and means of ``chamfer`` (DeepSDF's, squared units),
        ``normal_consistency`` and ``iou`` (``None`` where the ground truth cannot give it), and
        ``empty`` (shapes whose extracted mesh is empty). Writes ``<prefix>_<name>.ply`` (and the
        ground-truth ``..._gt.ply`` for analytic shapes) into ``write_dir`` if given.
        With several processes (a collective: every rank calls it) each rank evaluates its
        share of the shapes; every rank returns the whole result and rank 0 writes the meshes.
        """
        was = self.model.training
        self.model.eval()
        index = [int(i) for i in index]
        mine = index[self.dist.shard(len(index))]
        z = self.encode(mine)
        results = self.dist.gather_list([self._evaluate_one(i, z[j], num_samples) for j, i in enumerate(mine)])
        self.model.train(was)
        if write_dir is not None and self.dist.is_main:
            Path(write_dir).mkdir(parents=True, exist_ok=True)
            for r in results:
                for suffix, mesh in (("", r["mesh"]), ("_gt", r["gt_mesh"])):
                    if mesh is not None and len(mesh.faces):
                        mesh.export(Path(write_dir) / f"{prefix}_{r['name']}{suffix}.ply")
        rows = {"names": [r["name"] for r in results]}
        for k in ("chamfer", "normal_consistency", "iou"):
            rows[k] = [r[k] for r in results]
        mean = lambda v: (float(np.mean([x for x in v if x is not None])) if any(x is not None for x in v)
                          else None)
        return {"num": len(index), "empty_meshes": sum(len(r["mesh"].faces) == 0 for r in results),
                "chamfer": mean(rows["chamfer"]), "normal_consistency": mean(rows["normal_consistency"]),
                "iou": mean(rows["iou"]), "per_shape": rows}

    def _evaluate_one(self, i: int, z: torch.Tensor, num_samples: int) -> dict:
        """Mesh and metrics of shape ``i`` encoded as ``z (k,)``; ``gt_mesh``: the analytic
        ground-truth mesh to write (``None`` for data shapes)."""
        import warnings
        f = self.sdf_of(z)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            mesh = extract_mesh(f, self.cfg.resolution, (-1.0, 1.0))
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
            s_pred = f(self.points[i]) < 0
            s_true = self.sdf[i] < 0
            union = int((s_pred | s_true).sum())
            iou = 1.0 if union == 0 else int((s_pred & s_true).sum()) / union
        return {"name": self.shapes.names[i], "mesh": mesh,
                "gt_mesh": gt_mesh if self.shapes.analytic is not None else None,
                "chamfer": ch, "normal_consistency": nc, "iou": iou}


# ------------------------------------------------------------------------------------------------
# outputs
# ------------------------------------------------------------------------------------------------
def _slice_figure(panels, path, *, ncols: int, titles):
    """PNG of SDF slices ``panels`` (list of ``(R, R)`` arrays) with the zero level set drawn."""
    nrows = (len(panels) + ncols - 1) // ncols
    fig, axes = pyplot().subplots(nrows, ncols, figsize=(2.2 * ncols, 2.2 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, v, title in zip(axes.flat, panels, titles):
        v = np.asarray(v).T                      # [x, y] -> image rows = y
        lim = max(float(np.abs(v).max()), 1e-6)
        ax.imshow(v, origin="lower", extent=(-1, 1, -1, 1), cmap="RdBu", vmin=-lim, vmax=lim)
        if v.min() < 0 < v.max():
            ax.contour(v, levels=[0.0], colors="k", linewidths=1.2, extent=(-1, 1, -1, 1))
        ax.set_title(title, fontsize=7)
    return save_figure(fig, path)


def write_sdf_outputs(trainer: SdfGONTrainer, fit_info: dict, out) -> tuple[dict, dict]:
    """Meshes, slices, slerp and ``metrics.json`` of a trained run, written into ``out``.

    * ``meshes/train_<name>.ply``, ``meshes/unseen_<name>.ply`` (unseen shapes encoded in one
      step) and, for analytic shapes, the ``..._gt.ply`` ground truths;
    * ``slerp/slerp_<t>.ply`` and ``slerp.png`` (z = 0 slices along a slerp between two shapes);
    * ``slices_train.png``, ``slices_unseen.png`` (ground truth above the reconstruction, z = 0,
      zero level set in black);
    * ``metrics.json``: mean Chamfer, IoU, normal consistency (train and unseen), steps,
      seconds, params.

    With several processes every rank must call it (the evaluation is split over the ranks);
    rank 0 writes everything and the other ranks return ``({}, {})``.

    Returns ``(paths, metrics)``.
    """
    t, cfg, out = trainer, trainer.cfg, Path(out)
    paths = {}
    train_idx = t.shapes.train_index[:cfg.eval_shapes]
    unseen_idx = t.shapes.unseen_index[:cfg.eval_shapes]
    t0 = time.perf_counter()
    train_m = t.evaluate(train_idx, write_dir=out / "meshes", prefix="train")
    unseen_m = t.evaluate(unseen_idx, write_dir=out / "meshes", prefix="unseen") if unseen_idx else None
    if not t.dist.is_main:
        return {}, {}
    out.mkdir(parents=True, exist_ok=True)
    paths["meshes"] = out / "meshes"
    # slices: truth (pool points can't give a slice for folders, so the truth row is analytic only)
    res = 96
    for split, idx in (("train", train_idx), ("unseen", unseen_idx)):
        if not idx:
            continue
        z = t.encode(idx)
        panels, titles = [], []
        if t.shapes.analytic is not None:
            for i in idx:
                panels.append(sdf_slice(t.shapes.analytic[i], res, device="cpu").numpy())
                titles.append(f"{t.shapes.names[i]} truth")
        for j, i in enumerate(idx):
            panels.append(sdf_slice(t.sdf_of(z[j]), res).cpu().numpy())
            titles.append(f"{t.shapes.names[i]} GON")
        paths[f"slices_{split}"] = _slice_figure(panels, out / f"slices_{split}.png", ncols=len(idx), titles=titles)
    # slerp between two shapes (unseen if there are two, else training)
    src = unseen_idx if len(unseen_idx) >= 2 else t.shapes.train_index
    if len(src) >= 2:
        za, zb = t.encode(src[:2])
        path_z = slerp_path(za, zb, cfg.slerp_frames)
        panels, titles = [], []
        (out / "slerp").mkdir(parents=True, exist_ok=True)
        import warnings
        for k in range(path_z.shape[0]):
            f = t.sdf_of(path_z[k])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                mesh = extract_mesh(f, cfg.resolution, (-1.0, 1.0))
            if len(mesh.faces):
                mesh.export(out / "slerp" / f"slerp_{k:02d}.ply")
            panels.append(sdf_slice(f, res).cpu().numpy())
            titles.append(f"t={k / (path_z.shape[0] - 1):.2f}")
        paths["slerp_meshes"] = out / "slerp"
        paths["slerp"] = _slice_figure(panels, out / "slerp.png", ncols=len(panels), titles=titles)
    metrics = {
        "train_chamfer": train_m["chamfer"], "train_iou": train_m["iou"],
        "train_normal_consistency": train_m["normal_consistency"],
        "unseen_chamfer": unseen_m["chamfer"] if unseen_m else None,
        "unseen_iou": unseen_m["iou"] if unseen_m else None,
        "unseen_normal_consistency": unseen_m["normal_consistency"] if unseen_m else None,
        "steps": fit_info["steps"], "train_seconds": fit_info["train_seconds"],
        "skipped_steps": fit_info.get("skipped_steps", 0),
        "eval_seconds": round(time.perf_counter() - t0, 2),
        "params": sum(p.numel() for p in t.model.parameters()),
        "source": t.shapes.name, "data": t.shapes.source, "num_train": len(t.shapes.train_index),
        "num_unseen": len(t.shapes.unseen_index), "inner": cfg.inner, "loss": cfg.loss,
        "mesh_resolution": cfg.resolution, "device": str(t.device), "processes": t.dist.world_size,
        "checkpoint": str(t.last_checkpoint) if t.last_checkpoint else None,
        "train": train_m, "unseen": unseen_m,
        "notes": "chamfer: DeepSDF's (mean squared NN distance both ways, 10k surface samples, "
                 "units of the [-1,1]^3 box); iou: 50k uniform points in [-1,1]^3 (DeepSDF data: "
                 "sign agreement on the shape's samples)",
    }
    paths["metrics"] = atomic_write_bytes(out / "metrics.json", json.dumps(metrics, indent=2).encode())
    return paths, metrics


# ------------------------------------------------------------------------------------------------
# command line
# ------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``examples/fit_sdf_shapes.py``."""
    d = SdfTrainConfig()
    p = argparse.ArgumentParser(
        prog="fit_sdf_shapes",
        description="Train an implicit GON over signed distance fields (default: procedural shapes, offline).")
    g = p.add_argument_group("data").add_mutually_exclusive_group()
    g.add_argument("--meshes", metavar="DIR", help="a folder of mesh files (normalised, sampled, cached)")
    g.add_argument("--deepsdf", metavar="DIR", help="a DeepSDF data folder (SdfSamples/...)")
    p.add_argument("--num-shapes", type=positive_int, default=d.num_shapes,
                   help=f"procedural: training shapes (default: {d.num_shapes})")
    p.add_argument("--num-unseen", type=int, help="shapes held out (default: procedural 8, folders 1/4)")
    p.add_argument("--pool", type=positive_int, default=d.pool, help=f"points kept per shape (default: {d.pool})")
    p.add_argument("--cache-dir", help="mesh sample cache (default: <out>/cache)")
    g = p.add_argument_group("model")
    g.add_argument("--hidden", type=positive_int, default=d.hidden, help=f"SIREN width (default: {d.hidden})")
    g.add_argument("--layers", type=positive_int, default=d.layers, help=f"sine layers (default: {d.layers})")
    g.add_argument("--latent", type=positive_int, default=d.latent, help=f"latent size (default: {d.latent})")
    g.add_argument("--w0", type=positive_float, default=d.w0, help=f"hidden SIREN frequency (default: {d.w0:g})")
    g.add_argument("--w0-first", type=positive_float, default=d.w0_first,
                   help=f"first-layer SIREN frequency (default: {d.w0_first:g})")
    g = p.add_argument_group("training")
    g.add_argument("--steps", type=int, default=d.steps, help=f"total steps (default: {d.steps})")
    g.add_argument("--seconds", type=positive_float, help="stop training after this many seconds")
    g.add_argument("--batch-size", type=positive_int, default=d.batch_size, help=f"shapes per step (default: {d.batch_size})")
    g.add_argument("--lr", type=positive_float, default=d.lr, help=f"Adam learning rate (default: {d.lr:g})")
    g.add_argument("--points", type=positive_int, default=d.points,
                   help=f"points per shape per step, half inner, half outer (default: {d.points})")
    g.add_argument("--loss", choices=("clamped_l1", "l2", "l1"), default=d.loss, help=f"default: {d.loss}")
    g.add_argument("--delta", type=positive_float, default=d.delta, help=f"clamp of clamped_l1 (default: {d.delta:g})")
    g.add_argument("--inner", choices=("per_sample", "shared"), default=d.inner,
                   help="inner points per shape from its pool, or shared uniform points (procedural; fast path)")
    g.add_argument("--inner-weight", type=positive_float, default=d.inner_weight,
                   help=f"latent = -inner_weight * grad of the mean inner loss (default: {d.inner_weight:g})")
    g.add_argument("--eikonal", type=nonneg_float, default=d.eikonal, help="eikonal term weight (default: 0)")
    g.add_argument("--checkpoint-every", type=positive_int, default=d.checkpoint_every)
    g.add_argument("--on-nonfinite", choices=("stop", "skip"), default=d.on_nonfinite,
                   help="on a NaN/Inf loss: stop (default; the last good checkpoint stays) or skip the batch")
    g.add_argument("--nonfinite-check", choices=("immediate", "deferred"),
                   help="check the loss every step (host sync; CPU default) or read a device-side flag every "
                        "log interval, never applying a non-finite update (CUDA default)")
    g.add_argument("--seed", type=int, default=d.seed)
    g.add_argument("--device", default="auto", help="'auto' (CUDA when present), 'cpu', 'cuda', ...")
    g.add_argument("--threads", type=positive_int,
                   help="CPU threads (default: PyTorch's, one per core; lower it when sharing the machine)")
    g = p.add_argument_group("output")
    g.add_argument("--resolution", type=positive_int, default=d.resolution,
                   help=f"marching-cubes samples per axis (default: {d.resolution})")
    g.add_argument("--eval-shapes", type=positive_int, default=d.eval_shapes,
                   help=f"training/unseen shapes evaluated and written (default: {d.eval_shapes})")
    g.add_argument("--out", help="run folder (default: runs/sdf_<source>)")
    g.add_argument("--resume", action="store_true", help="continue the run in --out from its newest checkpoint")
    g.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def config_from_args(args) -> SdfTrainConfig:
    source = "meshes" if args.meshes else "deepsdf" if args.deepsdf else "procedural"
    cfg = SdfTrainConfig(
        source=source, data=args.meshes or args.deepsdf, num_shapes=args.num_shapes,
        num_unseen=args.num_unseen, pool=args.pool, points=args.points, steps=args.steps, seconds=args.seconds,
        batch_size=args.batch_size, lr=args.lr, hidden=args.hidden, layers=args.layers,
        latent=args.latent, w0=args.w0, w0_first=args.w0_first, loss=args.loss, delta=args.delta,
        inner=args.inner, inner_weight=args.inner_weight, eikonal=args.eikonal,
        resolution=args.resolution, eval_shapes=args.eval_shapes,
        checkpoint_every=args.checkpoint_every, seed=args.seed, device=args.device,
        on_nonfinite=args.on_nonfinite, nonfinite_check=args.nonfinite_check,
        out=args.out or f"runs/sdf_{source}", cache_dir=args.cache_dir)
    cfg.validate()
    return cfg


def main(argv=None) -> int:
    """Train, evaluate and write every output; print where they went. Returns an exit code."""
    from .data.errors import DataError
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        cfg = config_from_args(args)
        check_run_dir(cfg.out, resume=args.resume, overwrite=args.overwrite)   # before loading data
        t0 = time.perf_counter()
        trainer = SdfGONTrainer(cfg, quiet=args.quiet)
        try:
            if trainer.dist.enabled and trainer.dist.is_main:
                print(f"data parallel: {trainer.dist.world_size} processes, "
                      f"{cfg.batch_size // trainer.dist.world_size} shapes each per step (global batch {cfg.batch_size})")
            trainer.prepare_run_dir(resume=args.resume, overwrite=args.overwrite)
            load_s = time.perf_counter() - t0
            fit_info = trainer.fit()
            paths, m = write_sdf_outputs(trainer, fit_info, trainer.out)
        finally:
            trainer.dist.close()        # the process group, if torchrun started one
    except (ValueError, TypeError, CheckpointError, DataError, NonFiniteLossError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not trainer.dist.is_main:
        return 0
    fmt = lambda v, f: "n/a" if v is None else format(v, f)
    print(f"data: {trainer.shapes.name} ({len(trainer.shapes.train_index)} train, "
          f"{len(trainer.shapes.unseen_index)} unseen shapes; prepared in {load_s:.1f} s)")
    print(f"trained {m['steps']} steps in {m['train_seconds']:.1f} s ({m['params']:,} parameters, {m['device']})")
    print(f"train  shapes: Chamfer {fmt(m['train_chamfer'], '.5f')}  IoU {fmt(m['train_iou'], '.3f')}  "
          f"normal consistency {fmt(m['train_normal_consistency'], '.3f')}")
    print(f"unseen shapes (one gradient step): Chamfer {fmt(m['unseen_chamfer'], '.5f')}  "
          f"IoU {fmt(m['unseen_iou'], '.3f')}  normal consistency {fmt(m['unseen_normal_consistency'], '.3f')}")
    for name, path in paths.items():
        print(f"  {name:16s} {path}")
    print(f"  {'checkpoint':16s} {trainer.last_checkpoint}")
    print(f"  {'config':16s} {trainer.out / 'config.json'}")
    return 0
