"""Chamfer distance, normal consistency and volumetric IoU against analytic values."""

import math

import numpy as np
import pytest
import torch
import trimesh

from inr_gon import shapes as S
from inr_gon.eval.shape import (
    chamfer_distance,
    normal_consistency,
    sample_surface,
    volumetric_iou,
)


@pytest.fixture(scope="module")
def sphere():
    return trimesh.creation.icosphere(subdivisions=4, radius=1.0)


def test_sample_surface_shapes(sphere):
    pts, normals = sample_surface(sphere, 1000, seed=1)
    assert pts.shape == (1000, 3) and normals.shape == (1000, 3)
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-9)
    assert np.array_equal(pts, sample_surface(sphere, 1000, seed=1)[0])


def test_chamfer_self_is_zero(sphere):
    # independent samples of the same surface: only sampling error, well below area / num_samples
    assert chamfer_distance(sphere, sphere, num_samples=10_000) < 4 * math.pi / 10_000
    pts = sample_surface(sphere, 500)[0]
    assert chamfer_distance(pts, torch.from_numpy(pts)) == 0.0


def test_chamfer_concentric_spheres(sphere):
    inner = trimesh.creation.icosphere(subdivisions=4, radius=0.9)
    cd = chamfer_distance(sphere, inner)
    assert cd == pytest.approx(2 * 0.1**2, rel=0.05)
    assert chamfer_distance(sphere, inner) == cd  # seeded


def test_normal_consistency(sphere):
    assert normal_consistency(sphere, sphere) > 0.99
    flipped = sphere.copy()
    flipped.invert()
    assert normal_consistency(sphere, flipped) > 0.99
    box = trimesh.creation.box((1.5, 1.5, 1.5))
    assert normal_consistency(sphere, box) < 0.95


def _lens_iou(r, d):
    lens = math.pi * (4 * r + d) * (2 * r - d) ** 2 / 12
    ball = 4 / 3 * math.pi * r**3
    return lens / (2 * ball - lens)


def test_iou_sdf_vs_sdf():
    a = S.Sphere(0.0, 0.5)
    assert volumetric_iou(a, a, bounds=(-1, 1)) == 1.0
    b = S.Sphere((0.3, 0.0, 0.0), 0.5)
    iou = volumetric_iou(a, b, bounds=(-1, 1), num_points=200_000)
    assert iou == pytest.approx(_lens_iou(0.5, 0.3), abs=0.01)
    assert volumetric_iou(S.Sphere((5, 5, 5), 0.1), S.Sphere((-5, 5, 5), 0.1), bounds=(-1, 1)) == 1.0


def test_iou_mesh_vs_sdf_and_mesh(sphere):
    shifted = sphere.copy()
    shifted.apply_translation((0.6, 0.0, 0.0))
    expected = _lens_iou(1.0, 0.6)
    assert volumetric_iou(sphere, shifted, num_points=20_000) == pytest.approx(expected, abs=0.02)
    box = ((-1.0, -1.0, -1.0), (1.6, 1.0, 1.0))
    assert volumetric_iou(sphere, S.Sphere((0.6, 0, 0), 1.0), num_points=20_000, bounds=box) == pytest.approx(
        expected, abs=0.02
    )
    assert volumetric_iou(sphere, sphere, num_points=5_000) == 1.0


def test_mesh_contains_matches_trimesh(sphere):
    from inr_gon.eval.shape import mesh_contains

    pts = np.random.default_rng(0).uniform(-1.2, 1.2, (300, 3))
    assert np.array_equal(mesh_contains(sphere, pts), sphere.contains(pts))


def test_errors(sphere):
    with pytest.raises(ValueError, match="bounds are required"):
        volumetric_iou(S.Sphere(), S.Sphere())
    with pytest.raises(ValueError, match="empty"):
        chamfer_distance(trimesh.Trimesh(), sphere)
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        chamfer_distance(np.zeros((4, 2)), sphere)
