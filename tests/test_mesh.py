"""Marching-cubes extraction: accuracy, world coordinates, coarse-to-fine == dense, empty cases."""

import math

import numpy as np
import pytest
import torch
import trimesh
from scipy.spatial import cKDTree

from inr_gon import shapes as S
from inr_gon.geometry.mesh import extract_mesh, grid_axes, sdf_grid, sdf_slice


def _same_vertices(a: trimesh.Trimesh, b: trimesh.Trimesh, tol: float = 1e-6) -> bool:
    """Every vertex of either mesh is within ``tol`` of a vertex of the other."""
    da, _ = cKDTree(b.vertices).query(a.vertices)
    db, _ = cKDTree(a.vertices).query(b.vertices)
    return da.max() <= tol and db.max() <= tol


def test_sphere_accuracy_and_volume():
    c, r = np.array([0.1, -0.05, 0.0]), 0.6
    mesh = extract_mesh(S.Sphere(c, r), 128)
    dist = np.abs(np.linalg.norm(mesh.vertices - c, axis=1) - r)
    assert dist.max() < 1e-3
    assert mesh.is_watertight
    assert mesh.volume == pytest.approx(4 / 3 * math.pi * r**3, rel=0.01)  # positive: outward winding
    normals = mesh.vertex_normals
    radial = (mesh.vertices - c) / np.linalg.norm(mesh.vertices - c, axis=1, keepdims=True)
    assert np.mean(np.sum(normals * radial, axis=1)) > 0.99


def test_world_coordinates_off_centre_bounds():
    mesh = extract_mesh(S.Sphere((1.0, 1.0, 1.0), 0.5), 65, (0.0, 2.0))
    assert np.allclose(mesh.vertices.mean(axis=0), [1, 1, 1], atol=1e-3)
    assert np.abs(np.linalg.norm(mesh.vertices - 1.0, axis=1) - 0.5).max() < 5e-3
    # per-axis bounds, anisotropic spacing
    mesh = extract_mesh(S.Sphere((1.0, 0.0, -2.0), 0.4), 64, ((0.0, -1.0, -3.0), (2.0, 0.5, -1.0)))
    assert np.allclose(mesh.bounds, [[0.6, -0.4, -2.4], [1.4, 0.4, -1.6]], atol=5e-3)


def test_grid_convention():
    ax = grid_axes(5, (0.0, 2.0), length=7)
    torch.testing.assert_close(ax[0], torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0]))
    vol = sdf_grid(lambda p: p[:, 0] + 10 * p[:, 1] + 100 * p[:, 2], 3, (0.0, 1.0), chunk_size=4)
    assert vol.shape == (3, 3, 3)
    assert vol[2, 0, 0] == 1.0 and vol[0, 2, 0] == 10.0 and vol[0, 0, 1] == 50.0
    # a plane at x = 0.3 lands exactly there, including a far-corner-aligned grid
    mesh = extract_mesh(lambda p: (p[:, 0] - 0.3)[:, None], 11, (-1.0, 1.0))
    assert np.allclose(mesh.vertices[:, 0], 0.3, atol=1e-6)
    assert mesh.vertices[:, 1:].min() == pytest.approx(-1.0) and mesh.vertices[:, 1:].max() == pytest.approx(1.0)


def test_slice():
    img = sdf_slice(S.Sphere(0.0, 0.5), 33, axis="z", value=0.25)
    assert img.shape == (33, 33)
    assert img[16, 16].item() == pytest.approx(0.25 - 0.5)
    assert img[32, 16].item() == pytest.approx(math.sqrt(1 + 0.0625) - 0.5, abs=1e-6)


@pytest.mark.parametrize(
    "shape",
    [
        S.Sphere((0.1, 0.0, -0.1), 0.55),
        S.SmoothUnion(
            S.Box((0.5, 0.3, 0.2)) - S.Cylinder(0.15, 0.5),
            S.Torus(0.4, 0.1).translate((0, 0, 0.3)),
            k=0.1,
        ),
    ],
    ids=["sphere", "csg"],
)
@pytest.mark.parametrize("resolution", [64, 97])
def test_coarse_to_fine_equals_dense(shape, resolution):
    dense, sd = extract_mesh(shape, resolution, method="dense", return_stats=True)
    c2f, sc = extract_mesh(shape, resolution, method="coarse_to_fine", return_stats=True)
    assert len(dense.faces) > 0 and len(c2f.faces) == len(dense.faces)
    assert _same_vertices(dense, c2f)
    assert sd["evaluations"] == resolution**3
    assert sc["evaluations"] < sd["evaluations"] / 4
    assert sc["seconds"] > 0


def test_coarse_to_fine_procedural_and_level():
    shape = S.ProceduralShapes(3, seed=0)[2]
    for level in (0.0, 0.05):
        dense = extract_mesh(shape, 48, method="dense", level=level)
        c2f = extract_mesh(shape, 48, method="coarse_to_fine", level=level, coarse_stride=4)
        assert _same_vertices(dense, c2f)


def test_coarse_to_fine_256_saves_eightfold():
    shape = S.Sphere(0.0, 0.5) | S.Box(0.3).translate((0.3, 0.3, 0.3))
    mesh, stats = extract_mesh(shape, 256, method="coarse_to_fine", return_stats=True)
    assert stats["evaluations"] * 8 <= 256**3
    assert np.abs(np.linalg.norm(mesh.vertices, axis=1) - 0.5).min() < 1e-3


def test_nn_module_sdf_with_column_output():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    sphere = S.Sphere(0.0, 0.5)
    f = lambda p: net(p) * 1e-3 + sphere(p)[:, None]  # noqa: E731
    mesh = extract_mesh(f, 32)
    assert len(mesh.faces) > 0
    assert extract_mesh(net, 16, level=float(sdf_grid(net, 16).median())).vertices.shape[1] == 3


def test_empty_sdf_warns_or_raises():
    far = S.Sphere((5.0, 5.0, 5.0), 0.5)
    for method in ("dense", "coarse_to_fine"):
        with pytest.warns(UserWarning, match="does not cross"):
            mesh = extract_mesh(far, 16, method=method)
        assert isinstance(mesh, trimesh.Trimesh) and len(mesh.faces) == 0
        with pytest.raises(ValueError, match="does not cross"):
            extract_mesh(far, 16, method=method, allow_empty=False)


def test_bad_arguments():
    with pytest.raises(ValueError, match="method"):
        extract_mesh(S.Sphere(), 16, method="sparse")
    with pytest.raises(ValueError, match="resolution"):
        extract_mesh(S.Sphere(), 1)
    with pytest.raises(ValueError, match="bounds"):
        extract_mesh(S.Sphere(), 16, (1.0, -1.0))
    with pytest.raises(ValueError, match=r"\(N,\)"):
        extract_mesh(lambda p: p, 8)
    with pytest.raises(ValueError, match="NaN"):
        extract_mesh(lambda p: p[:, 0] * float("nan"), 8)
