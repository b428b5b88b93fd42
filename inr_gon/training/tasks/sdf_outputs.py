"""The SDF task's outputs: meshes beside their ground truth, pictures of them, SDF slices with both
zero levels, a slerp between shapes, and ``metrics.json``."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import trimesh

from ...core.sampling import slerp_path
from ...geometry.mesh import extract_mesh, sdf_slice
from ...viz import save_mesh_grid, save_slices_with_truth
from ..checkpoint import atomic_write_bytes

__all__ = ["write_sdf_outputs", "truth_slice"]

SLICE_RES = 96


def truth_slice(task, i: int, res: int = SLICE_RES):
    """The ground truth's ``z = 0`` SDF slice ``(res, res)`` of shape ``i`` (analytic shapes, or
    signed distances to a normalised mesh), or ``None`` when there is only a point cloud."""
    if task.shapes.analytic is not None:
        return sdf_slice(task.shapes.analytic[i], res, device="cpu").numpy()
    mesh = task.truth_mesh(i)
    if mesh is None:
        return None
    from ...data.meshes import signed_distance

    ax = np.linspace(-1.0, 1.0, res)
    x, y = np.meshgrid(ax, ax, indexing="ij")
    pts = np.stack([x.ravel(), y.ravel(), np.zeros(x.size)], axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return signed_distance(mesh, pts).reshape(res, res)


def _mesh(f, resolution):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return extract_mesh(f, resolution, (-1.0, 1.0))


def write_sdf_outputs(task, metrics: dict, out) -> tuple[dict, dict]:
    """Meshes, pictures, slices, slerp and ``metrics.json`` of a trained run, written into ``out``
    (the final evaluation is :meth:`~.shapes.ShapeTask.final_metrics`'s; this only writes).

    * ``meshes/train_<name>.ply``, ``meshes/unseen_<name>.ply`` (unseen shapes encoded from their
      points) and beside each its ground truth ``..._gt.ply`` in the same frame (the analytic
      shape, the normalised mesh file, or DeepSDF's surface samples as a point cloud);
    * ``meshes.png``: the evaluated training and unseen reconstructions, each above its ground
      truth (shaded, same view and scale);
    * ``slices_train.png``, ``slices_unseen.png``: ``z = 0`` slices of the field with its zero
      level (black) and the ground truth's (dashed);
    * ``slerp/slerp_<t>.ply``, ``slerp.png`` (the meshes along a slerp between two shapes) and
      ``slerp_slices.png``;
    * ``metrics.json``: ``metrics`` with the fields' meanings (``notes``).

    Rank 0 writes; the other ranks return ``({}, metrics)``. Returns ``(paths, metrics)``.
    """
    t, cfg, out = task, task.cfg, Path(out)
    if not t.trainer.dist.is_main:
        return {}, metrics
    evals = t._evals
    paths = {}
    train_idx = t.shapes.train_index[: cfg.eval_shapes]
    unseen_idx = t.shapes.unseen_index[: cfg.eval_shapes]
    out.mkdir(parents=True, exist_ok=True)
    paths["meshes"] = _write_meshes(evals, out / "meshes")
    # meshes.png: per split a row of reconstructions above a row of ground truths
    rows, labels, titles = [], [], []
    ncols = max(len(e["meshes"]) for e in evals.values())
    for split, e in evals.items():
        names = e["per_shape"]["names"]
        pad = [None] * (ncols - len(names))
        rows += [list(e["meshes"]) + pad, list(e["truths"]) + pad]
        labels += [f"{split} {t.name}", f"{split} truth"]
        titles += [
            [f"{n}  IoU {v:.2f}" if v is not None else n for n, v in zip(names, e["per_shape"]["iou"])]
            + [""] * len(pad),
            [""] * ncols,
        ]
    paths["meshes_png"] = save_mesh_grid(rows, out / "meshes.png", titles=titles, row_labels=labels)
    # slices with both zero levels
    for split, idx in (("train", train_idx), ("unseen", unseen_idx)):
        if not idx:
            continue
        z = t.encode(idx)
        pred = [sdf_slice(t.sdf_of(z[j]), SLICE_RES).cpu().numpy() for j in range(len(idx))]
        truth = [truth_slice(t, i) for i in idx]
        paths[f"slices_{split}"] = save_slices_with_truth(
            pred,
            out / f"slices_{split}.png",
            truth_slices=truth if any(x is not None for x in truth) else None,
            titles=[t.shapes.names[i] for i in idx],
        )
    # slerp between two shapes (unseen if there are two, else training)
    src = unseen_idx if len(unseen_idx) >= 2 else t.shapes.train_index
    if len(src) >= 2:
        za, zb = t.encode(src[:2])
        path_z = slerp_path(za, zb, cfg.slerp_frames)
        (out / "slerp").mkdir(parents=True, exist_ok=True)
        meshes, slices, ts = [], [], []
        for k in range(path_z.shape[0]):
            f = t.sdf_of(path_z[k])
            mesh = _mesh(f, cfg.mesh_resolution)
            if len(mesh.faces):
                mesh.export(out / "slerp" / f"slerp_{k:02d}.ply")
            meshes.append(mesh)
            slices.append(sdf_slice(f, SLICE_RES).cpu().numpy())
            ts.append(f"t={k / (path_z.shape[0] - 1):.2f}")
        a, b = (t.shapes.names[i] for i in src[:2])
        paths["slerp_meshes"] = out / "slerp"
        paths["slerp"] = save_mesh_grid([meshes], out / "slerp.png", titles=ts, row_labels=[f"{a} -> {b}"])
        paths["slerp_slices"] = save_slices_with_truth(slices, out / "slerp_slices.png", titles=ts)
    metrics = {
        **metrics,
        "checkpoint": str(t.trainer.last_checkpoint) if t.trainer.last_checkpoint else None,
        "notes": NOTES,
    }
    paths["metrics"] = atomic_write_bytes(out / "metrics.json", json.dumps(metrics, indent=2).encode())
    return paths, metrics


def _write_meshes(evals: dict, folder: Path) -> Path:
    """``<split>_<name>.ply`` and its ground truth ``<split>_<name>_gt.ply`` for every evaluated shape."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, e in evals.items():
        for name, mesh, gt in zip(e["per_shape"]["names"], e["meshes"], e["truths"]):
            if len(mesh.faces):
                mesh.export(folder / f"{split}_{name}.ply")
            if hasattr(gt, "faces") and len(gt.faces):
                gt.export(folder / f"{split}_{name}_gt.ply")
            elif gt is not None and not hasattr(gt, "faces"):  # surface samples (DeepSDF)
                trimesh.PointCloud(np.asarray(gt)).export(folder / f"{split}_{name}_gt.ply")
    return folder


NOTES = (
    "chamfer: DeepSDF's (mean squared NN distance both ways, 10k surface samples, units of the [-1,1]^3 box); "
    "iou: 50k uniform points in [-1,1]^3 (DeepSDF data: sign agreement on the shape's samples); chamfer_deepsdf "
    "(DeepSDF data): DeepSDF's convention, the reconstruction mapped to the original frame against the "
    "SurfaceSamples, 30k points; nearest_own_truth: fraction of reconstructions nearer (Chamfer) their own "
    "ground truth than any other evaluated shape's; pca_*: the linear baseline, a PCA shape model of the "
    "latent's size fitted on pca_num_train training shapes' truncated SDFs (clamped to +-delta) at the cell "
    "centres of a pca_grid^3 grid over [-1,1]^3, the evaluated shapes' ground-truth grids projected on it, sign "
    "IoU on that grid; grid_*_iou: the GON's sign IoU on the same grid, pca_margin_*_iou: the GON's lead there"
)
