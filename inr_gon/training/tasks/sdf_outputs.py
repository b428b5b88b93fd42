"""The SDF task's outputs: meshes, SDF slices, a slerp between shapes, and ``metrics.json``."""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np

from ...core.sampling import slerp_path
from ...geometry.mesh import extract_mesh, sdf_slice
from ...viz import pyplot, save_figure
from ..checkpoint import atomic_write_bytes

__all__ = ["write_sdf_outputs"]


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


def write_sdf_outputs(task, fit_info: dict, out) -> tuple[dict, dict]:
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
    t, cfg, out = task, task.cfg, Path(out)
    paths = {}
    train_idx = t.shapes.train_index[:cfg.eval_shapes]
    unseen_idx = t.shapes.unseen_index[:cfg.eval_shapes]
    t0 = time.perf_counter()
    train_m = t.evaluate_shapes(train_idx, write_dir=out / "meshes", prefix="train")
    unseen_m = t.evaluate_shapes(unseen_idx, write_dir=out / "meshes", prefix="unseen") if unseen_idx else None
    if not t.trainer.dist.is_main:
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
        for k in range(path_z.shape[0]):
            f = t.sdf_of(path_z[k])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                mesh = extract_mesh(f, cfg.mesh_resolution, (-1.0, 1.0))
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
        "params": sum(p.numel() for p in t.trainer.model.parameters()),
        "source": t.shapes.name, "data": t.shapes.source, "num_train": len(t.shapes.train_index),
        "num_unseen": len(t.shapes.unseen_index), "inner": cfg.inner, "loss": cfg.loss,
        "mesh_resolution": cfg.mesh_resolution, "device": str(t.device), "processes": t.trainer.dist.world_size,
        "checkpoint": str(t.trainer.last_checkpoint) if t.trainer.last_checkpoint else None,
        "train": train_m, "unseen": unseen_m,
        "notes": "chamfer: DeepSDF's (mean squared NN distance both ways, 10k surface samples, "
                 "units of the [-1,1]^3 box); iou: 50k uniform points in [-1,1]^3 (DeepSDF data: "
                 "sign agreement on the shape's samples)",
    }
    paths["metrics"] = atomic_write_bytes(out / "metrics.json", json.dumps(metrics, indent=2).encode())
    return paths, metrics
