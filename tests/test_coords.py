import pytest
import torch

import inr_gon as ig
from inr_gon.core.coords import normalize_bounds


def test_grid_shape_order_and_bounds():
    g = ig.grid((3, 4), bounds=(0.0, 1.0))
    assert g.shape == (12, 2)
    img = g.reshape(3, 4, 2)
    # axis 0 varies along rows, axis 1 along columns; cell centres
    torch.testing.assert_close(img[:, 0, 0], torch.tensor([1 / 6, 3 / 6, 5 / 6]))
    torch.testing.assert_close(img[0, :, 1], torch.tensor([1 / 8, 3 / 8, 5 / 8, 7 / 8]))


def test_align_corners_grid_is_linspace_with_exact_spacing():
    g = ig.grid(5, dim=3, bounds=(-1.0, 2.0), align_corners=True, dtype=torch.float64)
    axis = g[:, 2][:5]
    torch.testing.assert_close(axis, torch.linspace(-1, 2, 5, dtype=torch.float64))
    assert (axis[1] - axis[0]).item() == pytest.approx(3 / 4)
    assert g[-1].tolist() == [2.0, 2.0, 2.0]


def test_grids_align_across_resolutions():
    """Each 28² point is the centre of the matching 10×10 block of the 280² grid."""
    g28 = ig.grid(28, dim=2, dtype=torch.float64).reshape(28, 28, 2)
    g280 = ig.grid(280, dim=2, dtype=torch.float64).reshape(28, 10, 28, 10, 2)
    torch.testing.assert_close(g280.mean(dim=(1, 3)), g28)
    # an image upsampled by block replication and rendered on the fine grid lines up with the
    # coarse one: the value at a coarse point equals the fine block's mean
    img = torch.rand(1, 1, 28, 28, dtype=torch.float64)
    fine = img.repeat_interleave(10, 2).repeat_interleave(10, 3)
    torch.testing.assert_close(torch.nn.functional.avg_pool2d(fine, 10), img)


def test_image_points_round_trip():
    img = torch.rand(2, 3, 4, 5)
    pts = ig.image_to_points(img)
    assert pts.shape == (2, 20, 3)
    assert pts[1, 2 * 5 + 3, 1] == img[1, 1, 2, 3]
    torch.testing.assert_close(ig.points_to_image(pts, (4, 5)), img)


def test_random_subset_without_replacement():
    g = torch.Generator().manual_seed(0)
    idx = ig.random_subset(100, 30, generator=g)
    assert idx.shape == (30,) and idx.unique().numel() == 30 and idx.max() < 100
    idx = ig.random_subset(50, 50, batch=4, generator=g)
    assert all(sorted(row.tolist()) == list(range(50)) for row in idx)
    with pytest.raises(ValueError):
        ig.random_subset(10, 11)


def test_random_subset_is_uniform():
    g = torch.Generator().manual_seed(0)
    counts = torch.zeros(20)
    for _ in range(2000):
        counts[ig.random_subset(20, 5, generator=g)] += 1
    # each index is chosen with probability 5/20 -> 500 expected, sd ~ 19
    assert (counts - 500).abs().max() < 90


def test_jittered_grid_stays_in_cells():
    g = torch.Generator().manual_seed(0)
    res = (4, 6)
    pts = ig.jittered_grid(res, bounds=(-1.0, 1.0), batch=3, generator=g)
    centres = ig.grid(res)
    assert pts.shape == (3, 24, 2)
    half = torch.tensor([1 / 4, 1 / 6])
    assert ((pts - centres).abs() <= half + 1e-6).all()


def test_uniform_points_in_box():
    p = ig.uniform_points(1000, 3, bounds=[(0, 1), (-2, -1), (5, 9)], generator=torch.Generator().manual_seed(0))
    assert p.shape == (1000, 3)
    assert (p[:, 0] >= 0).all() and (p[:, 1] <= -1).all() and (p[:, 2] >= 5).all()


def test_interpolate_exact_at_grid_points_and_linear_between():
    img = torch.rand(2, 3, 6, 5, dtype=torch.float64)
    pts = ig.interpolate(img, ig.grid((6, 5), dtype=torch.float64))
    torch.testing.assert_close(pts, ig.image_to_points(img))
    # a linear ramp along axis 1 is reproduced exactly in the interior
    ramp = ig.grid((8, 8), dtype=torch.float64)[:, 1].reshape(1, 1, 8, 8)
    q = ig.uniform_points(50, 2, bounds=(-0.85, 0.85), dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(ig.interpolate(ramp, q)[0, :, 0], q[:, 1])


def test_interpolate_3d():
    vol = ig.grid((4, 5, 6), dtype=torch.float64)[:, 0].reshape(1, 1, 4, 5, 6)
    q = ig.uniform_points(20, 3, bounds=(-0.7, 0.7), dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(ig.interpolate(vol, q)[0, :, 0], q[:, 0])


@pytest.mark.parametrize("res", [0, -3, (2, 0), 2.5])
def test_bad_resolution(res):
    with pytest.raises((ValueError, TypeError), match="resolution"):
        ig.grid(res, dim=2)


def test_bad_bounds():
    with pytest.raises(ValueError, match="lo < hi"):
        ig.grid(4, dim=2, bounds=(1.0, -1.0))
    with pytest.raises(ValueError, match="axes"):
        normalize_bounds([(0, 1)] * 3, 2)
