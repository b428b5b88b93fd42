"""The SDF task's linear baseline: a PCA shape model of the run's latent size.

With a squared-error inner loss the GON's one-step latent is an affine function of a shape's
samples, so the first yardstick for its shape space is the best *linear* code of the same size:
the principal subspace (:class:`~inr_gon.eval.pca.PCA`, ``k`` = the latent size) of the training
shapes' truncated SDFs (clamped to ``±delta``, the run's truncation) sampled on a regular grid of
``GRID³`` points in the box the task evaluates in, ``[-1, 1]^3``. A shape is reconstructed by
projecting its ground-truth grid onto that subspace (an oracle encoding from the whole grid, as
the image task's PCA is fed the whole image), and scored by the sign IoU (inside: ``sdf < 0``) of
the reconstruction against the ground truth on the same grid: the volumetric IoU at the grid's
resolution. ``pca_train_iou`` / ``pca_unseen_iou`` are means over the shapes the GON's
``train_iou`` / ``unseen_iou`` are averaged over.

Why the GON is scored again, on the grid: its ``train_iou`` / ``unseen_iou`` are estimated on
50,000 uniform random points, while PCA's reconstruction exists only at the grid's points.
Setting the two side by side would mix two estimators (random-point noise against the grid's
discretisation, which misses or thickens parts thinner than a cell), so the GON's field of each
evaluated shape is also sampled at the grid's points (``grid_train_iou`` / ``grid_unseen_iou``)
and the margins ``pca_margin_*_iou`` are taken between the grid figures. The grid is cell-centred
(:func:`~inr_gon.core.coords.grid`): each point stands for an equal volume of the box, the
discrete form of the uniform-volume IoU the task reports.

Ground truth on a grid exists for analytic (procedural) shapes and for mesh folders (libigl signed
distances to the normalised mesh); DeepSDF sample files have none, and there the keys are ``None``.
The fit set is the shapes the GON trained on (see :func:`fit_shapes`), capped so the baseline
stays a small fraction of a run; it is computed on rank 0 only and is the same for any number of
processes.
"""

from __future__ import annotations

import contextlib
import functools
import time
import warnings

import torch

from ...core.coords import grid
from ...eval.pca import PCA
from ...eval.shape import sign_iou
from .sdf_data import new_shape_family

__all__ = [
    "FIT_FIXED",
    "FIT_MESHES",
    "FIT_NEW",
    "GRID",
    "baseline_lines",
    "baseline_metrics",
    "fit_shapes",
    "gon_grid_iou",
    "grid_points",
    "linear_baseline",
    "truth_grid",
]

#: points per axis of the baseline's grid
GRID = 32
#: the fit set's caps: fixed procedural training shapes, shapes of the new-shape family (``fresh_shapes``; on the
#: default run's family the PCA figures stop moving past a few hundred, while the fit's cost grows with their
#: square), training meshes (a mesh's signed distances cost far more than an analytic shape's)
FIT_FIXED, FIT_NEW, FIT_MESHES = 1024, 512, 64

_KEYS = ("pca_train_iou", "pca_unseen_iou", "pca_components", "pca_num_train", "pca_grid")


def grid_points(resolution: int = GRID, device=None) -> torch.Tensor:
    """The baseline's ``(resolution³, 3)`` float32 points: the cell centres of a regular grid over
    ``[-1, 1]^3``, C order."""
    return grid(resolution, dim=3, bounds=(-1.0, 1.0), device=device, dtype=torch.float32)


@functools.lru_cache(maxsize=2)
def _cpu_points(resolution: int) -> torch.Tensor:
    return grid_points(resolution)


@contextlib.contextmanager
def _one_thread():
    """PyTorch's intra-op parallelism off for the block: the baseline is many small ops (making
    analytic shapes, sampling them on the grid) and one modest matrix product, which a second
    thread barely speeds up; on cores shared with other work every op would instead wait for that
    thread to be scheduled, at many times the cost of the work."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def _analytic_grid(shape, resolution: int) -> torch.Tensor:
    with torch.no_grad():
        return shape(_cpu_points(resolution)).reshape(-1).float()


def truth_grid(task, i: int, resolution: int = GRID, *, keep: bool = True) -> torch.Tensor | None:
    """The ground truth's signed distances ``(resolution³,)`` float32 (CPU) of shape ``i`` at
    :func:`grid_points`, or ``None`` without one (DeepSDF samples); ``keep``: kept on the task for
    reuse (the evaluated shapes')."""
    key = (int(i), resolution)
    if key in task._grid_cache:
        return task._grid_cache[key]
    if task.shapes.analytic is not None:
        with _one_thread():
            values = _analytic_grid(task.shapes.analytic[i], resolution)
    else:
        mesh = task.truth_mesh(i)
        if mesh is None:
            return None
        from ...data.meshes import signed_distance

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # not watertight: winding-number signs
            values = torch.from_numpy(signed_distance(mesh, _cpu_points(resolution).numpy())).float()
    if keep:
        task._grid_cache[key] = values
    return values


@torch.no_grad()
def gon_grid_iou(task, i: int, f, resolution: int = GRID) -> float | None:
    """Sign IoU of a field ``f`` (the GON's of shape ``i``) against shape ``i``'s ground truth at
    :func:`grid_points`; ``None`` without a ground truth on the grid."""
    truth = truth_grid(task, i, resolution)
    if truth is None:
        return None
    pred = f(grid_points(resolution, device=task.device)).reshape(-1).cpu()
    return float(sign_iou(pred, truth))


def _fresh(task) -> float:
    """The share of new shapes in the run's batches (0 for a task that draws none)."""
    return getattr(task.cfg, "fresh_shapes", 0.0) or 0.0


def _new_shapes_drawn(task, step: int) -> int:
    """How many shapes of the new-shape family the run drew in ``step`` steps (at most how many exist
    for it to draw: the bank's size, or the counter of shapes made so far)."""
    fresh = _fresh(task)
    if not fresh:
        return 0
    if task.bank is None:
        return task._fresh_next
    B = task.cfg.batch_size
    per_step = B if fresh == 1 else min(B, max(1, round(fresh * B)))
    return min(len(task.bank), step * per_step)


def fit_shapes(task, step: int) -> list:
    """The training shapes the PCA is fitted on, as ``(kind, index)``: ``("shape", i)`` for the
    task's shape ``i``, ``("new", j)`` for shape ``j`` of the run's new-shape family.

    Procedural: the fixed training shapes (up to ``FIT_FIXED``; none when every shape of a batch is
    new, ``fresh_shapes=1``, as the GON never trains on them), then, when the run mixes new shapes
    in, the first ``FIT_NEW`` shapes of their family, never more than the run drew (the bank's shapes
    are i.i.d. draws of the family, so its first ones stand for those drawn). Mesh folders: the
    first ``FIT_MESHES`` training meshes. DeepSDF samples (no mesh): none. The same for the same run
    and step.
    """
    s = task.shapes
    if s.analytic is not None:
        fixed = [] if _fresh(task) == 1 else [("shape", int(i)) for i in s.train_index[:FIT_FIXED]]
        return fixed + [("new", j) for j in range(min(FIT_NEW, _new_shapes_drawn(task, step)))]
    return [("shape", int(i)) for i in s.train_index[:FIT_MESHES] if task.truth_mesh(int(i)) is not None]


@_one_thread()
def linear_baseline(task, step: int, resolution: int = GRID) -> dict:
    """The PCA shape model of ``task``'s run after ``step`` steps: ``pca_train_iou``,
    ``pca_unseen_iou`` (means over the evaluated training / unseen shapes; ``None`` without a
    ground truth on the grid or with fewer than two shapes to fit), ``pca_components`` (the latent
    size, or fewer when the fit set spans fewer), ``pca_num_train``, ``pca_grid`` and
    ``pca_seconds`` (the grids, the fit and the reconstructions). Runs on one thread (see
    :func:`_one_thread`)."""
    t0 = time.perf_counter()
    none = {**dict.fromkeys(_KEYS), "pca_seconds": 0.0}
    cfg, shapes = task.cfg, task.shapes
    evaluated = {"train": shapes.train_index[: cfg.eval_shapes], "unseen": shapes.unseen_index[: cfg.eval_shapes]}
    members = fit_shapes(task, step)
    if len(members) < 2 or any(truth_grid(task, i, resolution) is None for idx in evaluated.values() for i in idx):
        return none
    family = new_shape_family(cfg.seed)
    X = torch.empty(len(members), resolution**3)
    for r, (kind, j) in enumerate(members):
        if kind == "shape":
            X[r] = truth_grid(task, j, resolution, keep=False)
        else:
            made = task.bank.shapes[j] if task.bank is not None else None  # made for training: reused
            X[r] = _analytic_grid(made if made is not None else family[j], resolution)
    delta = cfg.delta
    # the centred fit set spans at most N - 1 directions: more components add nothing
    k = min(cfg.latent, len(members) - 1)
    pca = PCA(k).fit(X.clamp_(-delta, delta))
    out = {"pca_components": k, "pca_num_train": len(members), "pca_grid": resolution}
    for split, idx in evaluated.items():
        if not idx:
            out[f"pca_{split}_iou"] = None
            continue
        truth = torch.stack([truth_grid(task, i, resolution) for i in idx]).clamp(-delta, delta)
        out[f"pca_{split}_iou"] = float(sign_iou(pca.reconstruct(truth), truth).mean())
    return {**out, "pca_seconds": round(time.perf_counter() - t0, 2)}


def baseline_metrics(fit_info: dict, grid_train: float | None, grid_unseen: float | None) -> dict:
    """``metrics.json``'s baseline entries: the PCA figures of ``fit_info`` (``None`` where absent),
    the GON's grid IoUs, the margins (the GON's lead on the grid; negative: behind) and
    ``below_linear_baseline`` (judged on the unseen shapes, or the training shapes when the run
    holds none out; ``None`` without a baseline)."""
    out = {k: fit_info.get(k) for k in _KEYS}
    out["pca_seconds"] = fit_info.get("pca_seconds", 0.0)
    out.update(grid_train_iou=grid_train, grid_unseen_iou=grid_unseen)
    for split, g in (("train", grid_train), ("unseen", grid_unseen)):
        p = out[f"pca_{split}_iou"]
        out[f"pca_margin_{split}_iou"] = None if p is None or g is None else g - p
    m = out["pca_margin_unseen_iou"] if out["pca_margin_unseen_iou"] is not None else out["pca_margin_train_iou"]
    out["below_linear_baseline"] = None if m is None else bool(m < 0)
    return out


def baseline_lines(m: dict) -> list[str]:
    """The summary's line on the linear baseline beside the GON's IoU (on the same grid); a run
    behind it says so."""
    if m.get("pca_train_iou") is None and m.get("pca_unseen_iou") is None:
        return []
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"
    res = m["pca_grid"]
    line = (
        f"linear baseline (PCA shape model, {m['pca_components']} components, {res}³ truncated SDF, fitted on "
        f"{m['pca_num_train']} shapes in {m['pca_seconds']:.1f} s): train IoU {fmt(m['pca_train_iou'])}, "
        f"unseen IoU {fmt(m['pca_unseen_iou'])}"
    )
    leads = [
        f"{abs(v):.3f} {'ahead' if v >= 0 else 'behind'} on {what}"
        for v, what in (
            (m.get("pca_margin_train_iou"), "training shapes"),
            (m.get("pca_margin_unseen_iou"), "unseen ones"),
        )
        if v is not None
    ]
    if leads:
        line += (
            f"; the GON (IoU {fmt(m.get('grid_train_iou'))} / {fmt(m.get('grid_unseen_iou'))} on the same grid) "
            f"is {', '.join(leads)}"
        )
    if m.get("below_linear_baseline"):
        line += (
            " -- BELOW ITS LINEAR BASELINE: a linear code of the same size reconstructs "
            + ("these unseen shapes" if m.get("pca_margin_unseen_iou") is not None else "these shapes")
            + " better"
        )
    return [line]
