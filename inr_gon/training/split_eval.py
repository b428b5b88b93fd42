"""Whole-split evaluation of a shape model: every shape of a DeepSDF split, one row each.

Each shape is encoded from its own samples as the run encodes new shapes (the GON: its
gradient-origin step; the auto-decoder: Adam steps on a fresh code), optionally refined by
``refine`` Adam steps of learning rate ``refine_lr`` on the latent with the decoder fixed
(DeepSDF's test-time optimisation, started from the encoder's latent instead of noise; a step
smaller than the auto-decoder's keeps a good start good), meshed, and compared with its ground
truth:

* ``chamfer``: DeepSDF's convention — the mesh mapped back to the original frame, 30,000 points
  each way against the SurfaceSamples, mean squared distances summed;
* ``fscore@0.01``, ``fscore@0.02``: the F-score at those distances in the normalised frame (the
  unit sphere);
* ``sign_iou``: inside/outside agreement on the shape's own samples;
* ``encode_seconds``: the encoding (and refinement) time.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
import time
import warnings

import numpy as np
import torch

from ..core.sdf import latent_sdf
from ..data.deepsdf import deepsdf_files, read_record
from ..data.prepare import read_split
from ..eval.shape import chamfer_distance, f_score, sign_iou
from ..geometry.mesh import extract_mesh
from .checkpoint import atomic_write_bytes

__all__ = ["evaluate_split", "summarize", "write_csv", "COLUMNS"]

COLUMNS = ("class", "id", "chamfer", "fscore@0.01", "fscore@0.02", "sign_iou", "encode_seconds", "empty_mesh")


def evaluate_split(
    run,
    data,
    split,
    *,
    refine: int = 0,
    refine_lr: float = 1e-3,
    resolution: int = 64,
    num_points: int = 8192,
    chamfer_points: int = 30_000,
    progress: bool = False,
) -> list[dict]:
    """One row (:data:`COLUMNS`) per shape of ``split`` (a split file or dict) of the DeepSDF data
    folder ``data``, reconstructed by the shape model of ``run`` (a
    :class:`~inr_gon.training.run.LoadedRun` of the ``sdf`` or ``autodecoder`` task)."""
    from tqdm.auto import tqdm

    from .tasks.sdf_encoding import encode_samples, refine_latent

    if refine < 0:
        raise ValueError(f"refine must be >= 0, got {refine}")
    files = deepsdf_files(data, read_split(split) if not isinstance(split, dict) else split)
    model, cfg = run.model, run.config
    net = model.net if hasattr(model, "codes") else model
    rows = []
    for k, file in enumerate(tqdm(files, desc="evaluate", unit="shape", disable=not progress)):
        r = read_record(file)  # one shape in memory at a time
        g = torch.Generator().manual_seed(cfg.seed + 4242 + k)
        samples = torch.cat([r.pos, r.neg])
        pick = torch.randperm(samples.shape[0], generator=g)[:num_points]
        pts = samples[pick, :3][None].to(run.device)
        sdf = samples[pick, 3][None].to(run.device)
        t0 = time.perf_counter()
        z = encode_samples(model, cfg, pts, sdf)
        if refine:
            z = refine_latent(model, cfg, pts, sdf, z, steps=refine, lr=refine_lr)
        seconds = time.perf_counter() - t0
        f = latent_sdf(net, z[0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            mesh = extract_mesh(f, resolution, (-1.0, 1.0))
        held = torch.randperm(samples.shape[0], generator=g)[:50_000]
        with torch.no_grad():
            iou = float(sign_iou(f(samples[held, :3].to(run.device)), samples[held, 3].to(run.device)))
        row = {
            "class": r.class_id,
            "id": r.id,
            "chamfer": None,
            "fscore@0.01": None,
            "fscore@0.02": None,
            "sign_iou": iou,
            "encode_seconds": round(seconds, 4),
            "empty_mesh": len(mesh.faces) == 0,
        }
        if len(mesh.faces) and r.surface_path is not None and r.offset is not None:
            original = mesh.copy()
            original.vertices = mesh.vertices / r.scale - r.offset
            row["chamfer"] = chamfer_distance(original, r.surface_points(), num_samples=chamfer_points)
            truth = r.surface_points(normalised=True)
            for tau in (0.01, 0.02):
                row[f"fscore@{tau}"] = f_score(mesh, truth, tau, num_samples=chamfer_points)
        rows.append(row)
    return rows


def summarize(rows: list[dict]) -> dict:
    """Mean and median of every numeric column over the shapes that have it, and the counts."""
    out = {"shapes": len(rows), "empty_meshes": sum(bool(r["empty_mesh"]) for r in rows)}
    for col in COLUMNS[2:-1]:
        vals = [r[col] for r in rows if r[col] is not None and math.isfinite(r[col])]
        out[col] = (
            {"mean": float(np.mean(vals)), "median": float(statistics.median(vals)), "n": len(vals)} if vals else None
        )
    return out


def write_csv(rows: list[dict], path) -> None:
    """The rows as CSV, one line per shape (written atomically)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(COLUMNS))
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r[k] is None else r[k]) for k in COLUMNS})
    atomic_write_bytes(path, buf.getvalue().encode())
