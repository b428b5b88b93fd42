"""Wrong shapes, dtypes and values through the public API raise a one-line ValueError/TypeError."""

from __future__ import annotations

import pytest
import torch


def _api_cases():
    from inr_gon import LatentSiren, extract_mesh, gon_latent, gon_loss, render
    from inr_gon.core.coords import grid

    m = LatentSiren(2, 3, 1, 8, 1)
    c = grid((4, 4))
    x = torch.rand(2, 16, 1)
    nan_x = x.clone()
    nan_x[0, 0, 0] = float("nan")
    sphere = lambda p: p.norm(dim=-1) - 0.5  # noqa: E731
    return {
        "latent_target_2d": lambda: gon_latent(m, c, x[0]),
        "latent_points_mismatch": lambda: gon_latent(m, c[:5], x),
        "latent_channels": lambda: gon_latent(m, c, torch.rand(2, 16, 3)),
        "latent_coord_dim": lambda: gon_latent(m, torch.rand(16, 3), x),
        "latent_int_target": lambda: gon_latent(m, c, (x * 10).long()),
        "latent_numpy_target": lambda: gon_latent(m, c, x.numpy()),
        "latent_nan_target": lambda: gon_latent(m, c, nan_x),
        "latent_inf_coords": lambda: gon_latent(m, c * float("inf"), x),
        "latent_bad_method": lambda: gon_latent(m, c, x, method="magic"),
        "latent_bad_loss": lambda: gon_latent(m, c, x, loss="hinge"),
        "loss_batch_mismatch": lambda: gon_loss(m, c, x, inner_coords=c, inner_target=x[:1]),
        "loss_inner_only_coords": lambda: gon_loss(m, c, x, inner_coords=c),
        "loss_nan_target": lambda: gon_loss(m, c, nan_x),
        "render_z_1d": lambda: render(m, torch.zeros(3), 8),
        "render_z_wrong_k": lambda: render(m, torch.zeros(1, 5), 8),
        "render_z_list": lambda: render(m, [[0.0, 0.0, 0.0]], 8),
        "render_z_int": lambda: render(m, torch.zeros(1, 3, dtype=torch.long), 8),
        "render_resolution_0": lambda: render(m, torch.zeros(1, 3), 0),
        "render_resolution_3axes": lambda: render(m, torch.zeros(1, 3), (4, 4, 4)),
        "render_bad_bounds": lambda: render(m, torch.zeros(1, 3), 8, bounds=(1.0, -1.0)),
        "render_chunk_0": lambda: render(m, torch.zeros(1, 3), 8, chunk_size=0),
        "siren_hidden_0": lambda: LatentSiren(2, 3, 1, 0, 1),
        "siren_float_dims": lambda: LatentSiren(2.0, 3, 1, 8, 1),
        "siren_forward_bad_z": lambda: m(c, torch.zeros(2, 4)),
        "siren_forward_int_coords": lambda: m(c.long(), torch.zeros(2, 3)),
        "siren_per_sample_batch": lambda: m(torch.rand(3, 16, 2), torch.zeros(2, 3)),
        "mesh_resolution_1": lambda: extract_mesh(sphere, 1),
        "mesh_bad_method": lambda: extract_mesh(sphere, 8, method="octree"),
        "mesh_chunk_0": lambda: extract_mesh(sphere, 8, chunk_size=0),
        "mesh_bad_bounds": lambda: extract_mesh(sphere, 8, bounds=(1.0, 1.0)),
        "mesh_bad_lipschitz": lambda: extract_mesh(sphere, 8, method="coarse_to_fine", lipschitz=0),
        "mesh_bad_stride": lambda: extract_mesh(sphere, 8, method="coarse_to_fine", coarse_stride=3),
        "mesh_sdf_wrong_shape": lambda: extract_mesh(lambda p: p, 8),
        "mesh_sdf_nan": lambda: extract_mesh(lambda p: p[:, 0] * float("nan"), 8),
        "mesh_sdf_not_tensor": lambda: extract_mesh(lambda p: p.numpy()[:, 0], 8),
        "mesh_empty_refused": lambda: extract_mesh(lambda p: p[:, 0] * 0 + 1, 8, allow_empty=False),
    }


@pytest.mark.parametrize("name", list(_api_cases()))
def test_public_api_rejects_bad_input_with_one_line(name):
    with pytest.raises((ValueError, TypeError)) as e:
        _api_cases()[name]()
    msg = str(e.value)
    assert msg and "\n" not in msg.strip(), msg
