"""Headless mesh pictures: shaded mesh grids (``save_mesh_grid``) and SDF slices with the ground
truth's zero level (``save_slices_with_truth``)."""

import imageio.v3 as iio
import numpy as np
import pytest
import trimesh

import inr_gon
from inr_gon.geometry.mesh import sdf_slice
from inr_gon.viz import save_mesh_grid, save_slices_with_truth

SIZE, DPI = 2.2, 100
LABEL_W, TITLE_H = 0.3, 0.2  # inches, as laid out by save_mesh_grid


def _rgb(path) -> np.ndarray:
    return iio.imread(path)[..., :3].astype(np.int32)


def _cell(img, r, c, *, labels=True, titles=True):
    """Pixels of grid cell (r, c) below its title band."""
    x0 = int(round(((LABEL_W if labels else 0) + c * SIZE) * DPI))
    y0 = int(round((r * SIZE + (TITLE_H if titles else 0)) * DPI))
    n = int(round(SIZE * DPI))
    return img[y0 : y0 + n - int(round(TITLE_H * DPI if titles else 0)), x0 : x0 + n]


@pytest.fixture(scope="module")
def meshes():
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.6)
    box = trimesh.creation.box(extents=(0.8, 0.6, 1.0))
    torus = inr_gon.extract_mesh(inr_gon.shapes.Torus(0.5, 0.2), 32)
    cloud = np.random.default_rng(0).normal(size=(2000, 3))
    cloud = 0.6 * cloud / np.linalg.norm(cloud, axis=1, keepdims=True)
    return sphere, box, torus, cloud


def test_mesh_grid_shaded_and_laid_out(meshes, tmp_path):
    sphere, box, torus, cloud = meshes
    assert len(torus.faces) > 0
    rows = [[sphere, box, torus], [trimesh.Trimesh(), cloud, None]]
    path = save_mesh_grid(
        rows,
        tmp_path / "sub" / "meshes.png",
        titles=["sphere", "box", "torus"],
        row_labels=["GON", "ground truth"],
        size=SIZE,
    )
    assert path == tmp_path / "sub" / "meshes.png" and path.is_file()
    img = _rgb(path)
    H, W = img.shape[:2]
    assert abs(W - (LABEL_W + 3 * SIZE) * DPI) <= 1 and abs(H - 2 * SIZE * DPI) <= 1
    assert img.std() > 10  # not blank
    white = (img == 255).all(-1)
    # shaded sphere: many grey levels of the base colour, not a flat silhouette
    cell = _cell(img, 0, 0)
    drawn = cell[~(cell == 255).all(-1)]
    assert len(drawn) > 0.1 * cell.shape[0] * cell.shape[1]
    assert len(np.unique(drawn @ np.array([1, 256, 65536]))) > 20
    assert drawn.sum(1).max() - drawn.sum(1).min() > 150  # lit and unlit sides differ
    # every mesh cell, the "empty" text and the point cloud draw something; the None cell is blank
    for r, c in ((0, 1), (0, 2), (1, 0), (1, 1)):
        assert (~(_cell(img, r, c) == 255).all(-1)).sum() > 20, (r, c)
    assert (_cell(img, 1, 2) == 255).all()
    assert white.mean() > 0.3  # background stays white


def test_mesh_grid_same_scale(tmp_path):
    """Same limits for every cell: a sphere twice as large covers about four times the pixels."""
    small, large = trimesh.creation.icosphere(2, radius=0.3), trimesh.creation.icosphere(2, radius=0.6)
    img = _rgb(save_mesh_grid([[small, large]], tmp_path / "scale.png", size=SIZE))
    area = [(~(_cell(img, 0, c, labels=False, titles=False) == 255).all(-1)).sum() for c in (0, 1)]
    assert 3.0 < area[1] / area[0] < 5.0


def test_mesh_grid_deterministic_with_subsampling(meshes, tmp_path):
    sphere, _, torus, _ = meshes
    assert len(sphere.faces) > 300 and len(torus.faces) > 300
    a = save_mesh_grid([[sphere, torus]], tmp_path / "a.png", max_faces=300, titles=["s", "t"])
    b = save_mesh_grid([[sphere, torus]], tmp_path / "b.png", max_faces=300, titles=["s", "t"])
    ia, ib = _rgb(a), _rgb(b)
    assert ia.std() > 10
    np.testing.assert_array_equal(ia, ib)


def test_mesh_grid_rejects_bad_input(meshes, tmp_path):
    with pytest.raises(ValueError):
        save_mesh_grid([], tmp_path / "x.png")
    with pytest.raises(ValueError):
        save_mesh_grid([[meshes[0]]], tmp_path / "x.png", row_labels=["a", "b"])


def _lime(img) -> int:
    return int(((img[..., 1] > 200) & (img[..., 0] < 100) & (img[..., 2] < 100)).sum())


def test_slices_with_truth(tmp_path):
    truth = sdf_slice(inr_gon.shapes.Sphere(0, 0.5), 48).numpy()
    pred = sdf_slice(inr_gon.shapes.Sphere(0, 0.56), 48).numpy()
    path = save_slices_with_truth(
        [pred, pred], tmp_path / "s" / "slices.png", truth_slices=[truth, None], titles=["a", "b"]
    )
    assert path.is_file()
    img = _rgb(path)
    assert img.std() > 10
    assert _lime(img) > 20  # the truth's dashed zero level
    w = img.shape[1]
    assert _lime(img[:, w // 2 :]) == 0  # no truth given for the second panel
    plain = _rgb(save_slices_with_truth([pred], tmp_path / "plain.png"))
    assert _lime(plain) == 0 and (plain.sum(-1) < 60).sum() > 20  # black prediction contour only
    with pytest.raises(ValueError):
        save_slices_with_truth([pred], tmp_path / "bad.png", truth_slices=[truth, truth])
