"""The SDF task's linear baseline (a PCA shape model on truncated SDF grids): its keys in a run's
metrics, its IoU against an independent float64 SVD projection, exact reconstruction when it has
as many components as shapes, its fit set, and the summary of a run behind it."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from inr_gon.cli import main
from inr_gon.training import SdfConfig, Trainer
from inr_gon.training.tasks import sdf_baseline as sb
from inr_gon.training.tasks.sdf_data import new_shape_family

TINY = {
    "num_shapes": 6,
    "num_unseen": 2,
    "pool": 256,
    "points": 64,
    "batch_size": 2,
    "hidden": 16,
    "layers": 2,
    "latent": 4,
    "device": "cpu",
    "eval_every": 10**6,
    "mesh_resolution": 16,
    "eval_shapes": 3,
}
KEYS = (
    "pca_train_iou",
    "pca_unseen_iou",
    "pca_seconds",
    "pca_grid",
    "pca_num_train",
    "pca_components",
    "grid_train_iou",
    "grid_unseen_iou",
    "pca_margin_train_iou",
    "pca_margin_unseen_iou",
    "below_linear_baseline",
)


def trainer(**kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Trainer(SdfConfig(**{**TINY, **kw}), quiet=True)


def run(tmp_path, **kw):
    """A tiny trained run: ``(trainer, metrics as written to metrics.json)``."""
    t = trainer(out=str(tmp_path), **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t.prepare_run_dir(resume=False, overwrite=False)
        _, m = t.write_outputs(t.fit())
    assert json.loads((tmp_path / "metrics.json").read_text()) == json.loads(json.dumps(m))
    return t, m


# -- an independent reference: its own grid, float64 SVD, numpy IoU -------------------------------------
def centres(n, *, linspace=False):
    """``(n³, 3)`` float32 cell centres of [-1, 1]^3 (``linspace``: the cell corners instead)."""
    ax = np.linspace(-1, 1, n) if linspace else -1 + (np.arange(n) + 0.5) * (2 / n)
    x, y, z = np.meshgrid(ax, ax, ax, indexing="ij")
    return torch.from_numpy(np.stack([x.ravel(), y.ravel(), z.ravel()], 1).astype(np.float32))


def reference_iou(fit_grids, eval_grids, k):
    """Mean sign IoU of ``eval_grids`` projected (float64 SVD) on the top-``k`` affine subspace of ``fit_grids``."""
    X, E = fit_grids.double().numpy(), eval_grids.double().numpy()
    mean = X.mean(0)
    _, _, Vt = np.linalg.svd(X - mean, full_matrices=False)
    V = Vt[:k]
    rec = mean + (E - mean) @ V.T @ V
    ious = [np.logical_and(r < 0, e < 0).sum() / np.logical_or(r < 0, e < 0).sum() for r, e in zip(rec, E)]
    return float(np.mean(ious))


def analytic_grids(shapes, points, clamp=0.1):
    with torch.no_grad():
        g = torch.stack([s(points).float() for s in shapes])
    return g.clamp(-clamp, clamp) if clamp else g


def test_the_keys_are_in_a_tiny_runs_metrics_and_summary(tmp_path):
    t, m = run(tmp_path, steps=4)  # the procedural default: a bank of new shapes mixed in
    for k in KEYS:
        assert k in m, k
        assert m[k] is not None, k
    assert m["pca_grid"] == 32 and m["pca_components"] == 4
    # 6 fixed shapes plus one new shape per step of a batch of 2 (a quarter, at least one)
    assert m["pca_num_train"] == 6 + 4
    assert 0 <= m["pca_train_iou"] <= 1 and 0 <= m["grid_unseen_iou"] <= 1
    assert m["pca_margin_unseen_iou"] == pytest.approx(m["grid_unseen_iou"] - m["pca_unseen_iou"])
    assert m["below_linear_baseline"] == (m["grid_unseen_iou"] < m["pca_unseen_iou"])
    assert m["train"]["per_shape"]["grid_iou"] and len(m["unseen"]["per_shape"]["grid_iou"]) == 2
    lines = [x for x in t.task.summary(t, m, {}) if x.startswith("linear baseline")]
    assert len(lines) == 1 and "PCA shape model, 4 components, 32³ truncated SDF, fitted on 10 shapes" in lines[0]
    assert f"train IoU {m['pca_train_iou']:.3f}, unseen IoU {m['pca_unseen_iou']:.3f}" in lines[0]


def test_pca_iou_equals_a_float64_svd_projection_of_the_same_grids(tmp_path):
    t, m = run(tmp_path, steps=2, fresh_shapes=0.0, latent=3)
    task = t.task
    shapes = task.shapes.analytic
    train, unseen = task.shapes.train_index[:3], task.shapes.unseen_index[:3]
    P = centres(32)
    fit = analytic_grids([shapes[i] for i in task.shapes.train_index], P)
    assert m["pca_num_train"] == 6 and m["pca_components"] == 3
    ref_train = reference_iou(fit, fit[train], 3)
    ref_unseen = reference_iou(fit, analytic_grids([shapes[i] for i in unseen], P), 3)
    assert m["pca_train_iou"] == pytest.approx(ref_train, abs=2e-4)  # a cell or so of float32 rounding
    assert m["pca_unseen_iou"] == pytest.approx(ref_unseen, abs=2e-4)
    # controls: the grid's corners instead of its cell centres, or no truncation, move the figure by 5x that
    Pl = centres(32, linspace=True)
    fit_l = analytic_grids([shapes[i] for i in task.shapes.train_index], Pl)
    assert abs(reference_iou(fit_l, analytic_grids([shapes[i] for i in unseen], Pl), 3) - ref_unseen) > 1e-3
    fit_u = analytic_grids([shapes[i] for i in task.shapes.train_index], P, clamp=None)
    assert abs(reference_iou(fit_u, analytic_grids([shapes[i] for i in unseen], P, clamp=None), 3) - ref_unseen) > 1e-3
    # the GON's grid IoU: its field at the same cell centres against the ground truth's signs
    for split, idx in (("train", train), ("unseen", unseen)):
        z = task.encode(idx)
        ious = []
        for j, i in enumerate(idx):
            with torch.no_grad():
                pred = task.sdf_of(z[j])(P).reshape(-1).numpy()
            true = shapes[i](P).numpy()
            ious.append(np.logical_and(pred < 0, true < 0).sum() / np.logical_or(pred < 0, true < 0).sum())
        assert m[f"grid_{split}_iou"] == pytest.approx(float(np.mean(ious)), abs=1e-6)


def test_as_many_components_as_shapes_reconstruct_the_training_grids_exactly():
    t = trainer(steps=0, num_shapes=4, latent=8, fresh_shapes=0.0, eval_shapes=6)
    b = sb.linear_baseline(t.task, 0)
    assert b["pca_components"] == 3 and b["pca_num_train"] == 4  # 4 shapes span 3 directions
    assert b["pca_train_iou"] == 1.0
    assert b["pca_unseen_iou"] < 0.99  # new shapes are not in their span
    fewer = sb.linear_baseline(trainer(steps=0, num_shapes=4, latent=1, fresh_shapes=0.0, eval_shapes=6).task, 0)
    assert fewer["pca_components"] == 1 and fewer["pca_train_iou"] < 1.0


def test_the_fit_set_is_the_shapes_the_run_trained_on():
    t = trainer(steps=0, fresh_shapes=0.5, fresh_bank=40)
    task = t.task
    fixed = [("shape", i) for i in range(6)]
    assert sb.fit_shapes(task, 0) == fixed  # nothing drawn yet
    assert sb.fit_shapes(task, 3) == fixed + [("new", j) for j in range(3)]  # one new shape a step
    assert sb.fit_shapes(task, 10**6) == fixed + [("new", j) for j in range(40)]  # the whole bank
    big = trainer(steps=0, fresh_shapes=0.25, fresh_bank=2048, batch_size=16).task
    assert len(sb.fit_shapes(big, 10**6)) == 6 + sb.FIT_NEW  # capped
    every = trainer(steps=0, fresh_shapes=1.0, fresh_bank=0).task
    every._fresh_next = 5  # five new shapes made
    assert sb.fit_shapes(every, 10**6) == [("new", j) for j in range(5)]  # never trained on the fixed
    # a bank shape's grid is its family shape's, made for training or not
    made, _, _ = task.bank.take([2])
    P = sb.grid_points()
    fam = new_shape_family(task.cfg.seed)
    torch.testing.assert_close(made[0](P), fam[2](P), rtol=0, atol=0)
    # deterministic: the same figures twice; the thread count is left as it was
    threads = torch.get_num_threads()
    a, b = sb.linear_baseline(task, 5), sb.linear_baseline(task, 5)
    assert {k: v for k, v in a.items() if k != "pca_seconds"} == {k: v for k, v in b.items() if k != "pca_seconds"}
    assert a["pca_num_train"] == 6 + 5 and torch.get_num_threads() == threads


def test_a_run_behind_its_baseline_says_so(tmp_path, capsys):
    out = tmp_path / "run"
    args = [
        "train",
        "sdf",
        "--num-shapes",
        "6",
        "--num-unseen",
        "2",
        "--pool",
        "256",
        "--points",
        "64",
        "--hidden",
        "8",
        "--layers",
        "1",
        "--latent",
        "4",
        "--steps",
        "1",
        "--mesh-resolution",
        "16",
        "--eval-shapes",
        "3",
        "--device",
        "cpu",
        "--quiet",
        "--lr",
        "1e-9",
        "--fresh-shapes",
        "0",
        "--out",
        str(out),
    ]
    assert main(args) == 0  # behind its baseline is not an error
    printed = capsys.readouterr().out
    m = json.loads((out / "metrics.json").read_text())
    assert m["below_linear_baseline"] is True and m["pca_margin_unseen_iou"] < 0
    assert "BELOW ITS LINEAR BASELINE" in printed and "behind on unseen ones" in printed
    # a run ahead of it does not say so
    ahead = {**m, "grid_train_iou": 0.99, "grid_unseen_iou": 0.98, **sb.baseline_metrics(m, 0.99, 0.98)}
    (line,) = sb.baseline_lines(ahead)
    assert ahead["below_linear_baseline"] is False and "BELOW" not in line and "ahead on unseen ones" in line
    # without unseen shapes the training shapes decide
    alone = sb.baseline_metrics({**m, "pca_unseen_iou": None}, 0.0, None)
    assert alone["below_linear_baseline"] is True and "BELOW ITS LINEAR BASELINE" in sb.baseline_lines(alone)[0]


def test_mesh_folders_get_a_baseline_and_deepsdf_samples_report_none(tmp_path):
    import trimesh

    folder = tmp_path / "meshes"
    folder.mkdir()
    meshes = [
        trimesh.creation.icosphere(subdivisions=2, radius=0.7),
        trimesh.creation.box((1.0, 0.6, 0.8)),
        trimesh.creation.capsule(height=0.8, radius=0.3),
        trimesh.creation.icosphere(radius=0.4),
    ]
    for k, m in enumerate(meshes):
        m.export(folder / f"m{k}.obj")
    t = trainer(steps=0, meshes=str(folder), num_unseen=1, cache_dir=str(tmp_path / "cache"))
    b = sb.linear_baseline(t.task, 0)
    assert b["pca_num_train"] == 3 and b["pca_components"] == 2 and b["pca_train_iou"] == 1.0
    assert 0 <= b["pca_unseen_iou"] < 1
    # the ground truth on the grid: the normalised mesh's signed distances (a faceted sphere of radius 1 / 1.03)
    r = sb.grid_points().norm(dim=1)
    torch.testing.assert_close(sb.truth_grid(t.task, 0), r - 1 / 1.03, rtol=0, atol=0.03)
    # DeepSDF samples: no ground truth on a grid, the keys are None and the summary says nothing
    d = tmp_path / "deepsdf" / "SdfSamples" / "ShapeNetV2" / "02691156"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(4):
        pts = rng.uniform(-1, 1, (400, 3))
        sdf = np.linalg.norm(pts, axis=1) - 0.3 - 0.1 * i
        rows = np.concatenate([pts, sdf[:, None]], 1).astype(np.float32)
        np.savez(d / f"s{i}.npz", pos=rows[sdf >= 0], neg=rows[sdf < 0])
    ds, m = run(tmp_path / "ds_run", steps=1, deepsdf=str(tmp_path / "deepsdf"))
    for k in KEYS:
        assert m[k] is None or k == "pca_seconds", k
    assert not any(x.startswith("linear baseline") for x in ds.task.summary(ds, m, {}))
