import pytest
import torch

import inr_gon as ig


@pytest.fixture
def model():
    torch.manual_seed(0)
    return ig.LatentSiren(2, 8, 3, 32, 2).double()


def test_render_at_training_resolution_equals_direct_output(model):
    z = torch.randn(4, 8, dtype=torch.float64)
    img = ig.render(model, z, (28, 20))
    direct = ig.points_to_image(model(ig.grid((28, 20), dtype=torch.float64), z), (28, 20))
    assert img.shape == (4, 3, 28, 20)
    torch.testing.assert_close(img, direct.detach(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("chunk", [1, 7, 100, 10**6])
def test_chunk_size_does_not_change_result(model, chunk):
    z = torch.randn(3, 8, dtype=torch.float64)
    torch.testing.assert_close(ig.render(model, z, 17, chunk_size=chunk), ig.render(model, z, 17), rtol=0, atol=1e-12)


def test_sub_window_matches_part_of_full_render(model):
    z = torch.randn(2, 8, dtype=torch.float64)
    full = ig.render(model, z, 40)
    # the window [-1, 0] x [0, 1] covers rows 0..19 and columns 20..39 of the full render
    part = ig.render(model, z, 20, window=[(-1.0, 0.0), (0.0, 1.0)])
    torch.testing.assert_close(part, full[:, :, :20, 20:], rtol=0, atol=1e-12)


def test_render_3d_and_encode_render(model):
    m3 = ig.LatentSiren(3, 4, 1, 16, 2)
    assert ig.render(m3, torch.randn(2, 4), 5).shape == (2, 1, 5, 5, 5)
    imgs = torch.rand(3, 3, 14, 14, dtype=torch.float64)
    out = ig.encode_render(model, imgs, 56)
    assert out.shape == (3, 3, 56, 56)
    z = ig.encode(model, imgs, batch_size=2)
    torch.testing.assert_close(
        z, ig.gon_latent(model, ig.grid(14, dim=2, dtype=torch.float64), ig.image_to_points(imgs))
    )


def test_render_bad_resolution(model):
    with pytest.raises(ValueError, match="resolution"):
        ig.render(model, torch.randn(1, 8, dtype=torch.float64), 0)


def test_3d_render_equals_direct_output_for_any_chunk():
    torch.manual_seed(0)
    m3 = ig.LatentSiren(3, 4, 2, 16, 2).double()
    z = torch.randn(3, 4, dtype=torch.float64)
    res = (5, 7, 6)
    direct = ig.points_to_image(m3(ig.grid(res, dtype=torch.float64), z), res).detach()
    for chunk in (1, 10, 3 * 31, 10**6):
        torch.testing.assert_close(ig.render(m3, z, res, chunk_size=chunk), direct, rtol=0, atol=1e-12)


def test_render_window_and_align_corners_with_small_chunks():
    torch.manual_seed(0)
    m = ig.LatentSiren(2, 4, 1, 16, 2).double()
    z = torch.randn(2, 4, dtype=torch.float64)
    win = [(-0.5, 0.25), (0.0, 1.5)]
    c = ig.grid((9, 4), bounds=win, align_corners=True, dtype=torch.float64)
    direct = ig.points_to_image(m(c, z), (9, 4)).detach()
    got = ig.render(m, z, (9, 4), window=win, align_corners=True, chunk_size=7)
    torch.testing.assert_close(got, direct, rtol=0, atol=1e-12)


def test_render_bad_chunk_size():
    m = ig.LatentSiren(2, 4, 1, 8, 1)
    with pytest.raises(ValueError, match="chunk_size"):
        ig.render(m, torch.randn(1, 4), 4, chunk_size=0)
