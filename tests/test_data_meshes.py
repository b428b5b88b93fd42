"""Mesh files, SDF sampling with libigl, the sample cache and the DeepSDF reader."""

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh

from inr_gon.data.meshes import (
    DataError,
    load_mesh,
    normalize_mesh,
    read_deepsdf,
    sample_sdf,
    sample_sdf_cached,
    signed_distance,
)

from conftest import write_deepsdf_folder

DATA = os.environ.get("INR_GON_DATA")
needs_data = pytest.mark.skipif(not DATA, reason="INR_GON_DATA is not set")


@pytest.fixture(scope="module")
def sphere():
    return trimesh.creation.icosphere(subdivisions=3, radius=0.5)


@pytest.mark.parametrize("ext", ["obj", "ply", "stl", "off"])
def test_load_mesh_formats(tmp_path, sphere, ext):
    path = tmp_path / f"sphere.{ext}"
    sphere.export(path)
    mesh = load_mesh(path)
    assert len(mesh.faces) == len(sphere.faces)
    assert np.allclose(mesh.bounds, sphere.bounds, atol=1e-5)


@pytest.mark.parametrize(
    "name,content",
    [
        ("a.obj", b"hello, not a mesh\n"),
        ("b.ply", b"garbage\x00\x01"),
        ("c.txt", b"1 2 3\n"),
        ("d.stl", b""),
        ("e.obj", bytes(range(256)) * 4),
        ("f.glb", b"\x07" * 37),
    ],
)
def test_not_a_mesh_is_a_clear_error(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=name) as info:
        load_mesh(path)
    assert isinstance(info.value, ValueError) and "\n" not in str(info.value)
    with pytest.raises(DataError, match="no such"):
        load_mesh(tmp_path / "missing.obj")


def test_normalize_round_trip(sphere):
    mesh = sphere.copy()
    mesh.apply_scale((3.0, 1.0, 2.0))
    mesh.apply_translation((10.0, -4.0, 2.5))
    for mode in ("sphere", "cube"):
        norm, offset, scale = normalize_mesh(mesh, mode=mode)
        np.testing.assert_allclose((mesh.vertices + offset) * scale, norm.vertices)
        np.testing.assert_allclose(norm.vertices / scale - offset, mesh.vertices, atol=1e-9)
        np.testing.assert_allclose(norm.bounds.mean(axis=0), 0.0, atol=1e-9)
        size = np.linalg.norm(norm.vertices, axis=1).max() if mode == "sphere" else np.abs(norm.vertices).max()
        assert size == pytest.approx(1 / 1.03)
    assert np.allclose(mesh.bounds.mean(axis=0), (10.0, -4.0, 2.5))  # input untouched


def test_sample_sdf_signs_agree_with_contains(sphere):
    s = sample_sdf(sphere, num_uniform=200, num_surface=200, sigmas=(0.05, 0.01), seed=3)
    assert s.points.shape == (400, 3) and s.sdf.shape == (400,) and s.points.dtype == torch.float32
    assert s.num_uniform == 200 and s.points[:200].abs().max() <= 0.5 * 1.1 + 1e-6
    inside = sphere.contains(s.points.double().numpy())
    assert np.array_equal(s.sdf.numpy() < 0, inside)
    # distances: polyhedron inscribed in the sphere of radius 0.5
    err = np.abs(s.sdf.numpy() - (np.linalg.norm(s.points.numpy(), axis=1) - 0.5))
    assert err.max() < 0.01
    again = sample_sdf(sphere, num_uniform=200, num_surface=200, sigmas=(0.05, 0.01), seed=3)
    assert torch.equal(again.points, s.points) and torch.equal(again.sdf, s.sdf)
    chunked = sample_sdf(sphere, num_uniform=200, num_surface=200, sigmas=(0.05, 0.01), seed=3, chunk_size=7)
    torch.testing.assert_close(chunked.sdf, s.sdf)


def test_winding_number_sign_and_open_mesh_warning(sphere):
    pts = np.random.default_rng(0).uniform(-0.6, 0.6, (300, 3))
    a = signed_distance(sphere, pts, sign_method="pseudonormal")
    b = signed_distance(sphere, pts, sign_method="winding_number")
    np.testing.assert_allclose(a, b, atol=1e-9)
    open_mesh = sphere.copy()
    open_mesh.update_faces(np.arange(len(sphere.faces)) != 0)
    with pytest.warns(UserWarning, match="not watertight"):
        signed_distance(open_mesh, pts)


def test_trimesh_fallback_without_igl(sphere, monkeypatch):
    monkeypatch.setitem(sys.modules, "igl", None)  # makes `import igl` raise ImportError
    pts = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.3, 0.0]])
    with pytest.warns(UserWarning, match="slow"):
        d = signed_distance(sphere, pts)
    np.testing.assert_allclose(d, [-0.5, 0.5, -0.2], atol=0.01)


@needs_data
def test_sample_real_mesh_signs():
    mesh = load_mesh(Path(DATA) / "meshes" / "nut.ply")
    assert mesh.is_watertight
    s = sample_sdf(mesh, num_uniform=150, num_surface=150, seed=0, sigmas=(0.01 * mesh.scale,))
    assert np.array_equal(s.sdf.numpy() < 0, mesh.contains(s.points.double().numpy()))


def test_sample_cache(tmp_path, sphere):
    path = tmp_path / "ball.obj"
    sphere.export(path)
    cache = tmp_path / "cache"
    kw = dict(num_uniform=100, num_surface=100, seed=1)
    first = sample_sdf_cached(path, cache, **kw)
    entries = list(cache.glob("*.npz"))
    assert len(entries) == 1 and not list(cache.glob("*.tmp"))
    mtime = entries[0].stat().st_mtime_ns
    second = sample_sdf_cached(path, cache, **kw)
    assert entries[0].stat().st_mtime_ns == mtime
    assert torch.equal(first.points, second.points) and torch.equal(first.sdf, second.sdf)
    assert second.scale == pytest.approx(first.scale) and np.allclose(second.offset, first.offset)
    sample_sdf_cached(path, cache, **{**kw, "seed": 2})
    assert len(list(cache.glob("*.npz"))) == 2
    entries[0].write_bytes(b"corrupt")
    with pytest.warns(UserWarning, match="unreadable cache entry"):
        third = sample_sdf_cached(path, cache, **kw)
    assert torch.equal(third.sdf, first.sdf)
    # normalised: the mesh was mapped into the unit sphere
    assert first.scale == pytest.approx(1 / (0.5 * 1.03), rel=1e-6)


def test_read_deepsdf_generated(tmp_path):
    write_deepsdf_folder(tmp_path, ["b", "a"], nan_rows=2)
    records = read_deepsdf(tmp_path)
    assert [r.id for r in records] == ["a", "b"]
    r = records[1]
    assert r.dataset == "ShapeNetV2" and r.class_id == "02691156"
    assert r.pos.shape == (50, 4) and r.neg.shape == (28, 4) and r.dropped_nans == 2
    assert r.pos.dtype == torch.float32 and torch.isfinite(r.neg).all()
    np.testing.assert_allclose(r.offset, [0.1, 0.2, 0.3], rtol=1e-6) and r.scale == 2.0
    assert r.surface_points().shape == (20, 3)
    assert [x.id for x in read_deepsdf(tmp_path, ["b"])] == ["b"]
    assert [x.id for x in read_deepsdf(tmp_path, {"ShapeNetV2": {"02691156": ["a"]}})] == ["a"]
    with pytest.raises(DataError, match="NaN"):
        read_deepsdf(tmp_path, drop_nans=False)
    with pytest.raises(DataError, match="zzz"):
        read_deepsdf(tmp_path, ["zzz"])
    with pytest.raises(DataError, match="SdfSamples"):
        read_deepsdf(tmp_path / "nowhere")


def test_read_deepsdf_bad_arrays(tmp_path):
    write_deepsdf_folder(tmp_path, ["a"])
    f = tmp_path / "SdfSamples" / "ShapeNetV2" / "02691156" / "a.npz"
    np.savez(f, pos=np.zeros((5, 3), np.float32), neg=np.zeros((5, 4), np.float32))
    with pytest.raises(DataError, match=r"a\.npz.*\(N, 4\)"):
        read_deepsdf(tmp_path)
    np.savez(f, pos=np.zeros((5, 4), np.float32))
    with pytest.raises(DataError, match="missing array 'neg'"):
        read_deepsdf(tmp_path)
    f.write_bytes(b"not an npz")
    with pytest.raises(DataError, match="not a readable"):
        read_deepsdf(tmp_path)


@needs_data
def test_read_deepsdf_real():
    root = Path(DATA) / "deepsdf-samples"
    records = read_deepsdf(root)
    assert len(records) >= 1
    for r in records:
        assert r.pos.shape[1] == 4 and r.neg.shape[1] == 4 and len(r.pos) > 1000
        assert (r.pos[:, 3] >= 0).all() and (r.neg[:, 3] <= 0).all()
        assert r.scale > 0 and r.offset.shape == (3,)
    surface = records[0].surface_points()
    assert surface.shape[1] == 3 and np.linalg.norm(surface, axis=1).max() < 1.05


@needs_data
def test_deepsdf_surface_samples_map_onto_the_zero_level_of_the_sdf_samples():
    """SurfaceSamples are in the original frame; normalised=True maps them onto the SdfSamples' surface."""
    from scipy.spatial import cKDTree

    r = read_deepsdf(Path(DATA) / "deepsdf-samples")[0]
    rows = torch.cat([r.pos, r.neg]).numpy()
    near = rows[np.abs(rows[:, 3]) < 0.002, :3]
    tree = cKDTree(near)
    d_norm = tree.query(r.surface_points(normalised=True)[:2000])[0]
    d_raw = tree.query(r.surface_points()[:2000])[0]
    assert np.median(d_norm) < 0.02 < np.median(d_raw)
