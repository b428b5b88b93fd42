"""Shapes from what a sensor sees: samples of depth maps and point clouds, the bounded loss, and
``inr-gon mesh --depth/--points``."""

import argparse
import dataclasses
import json

import numpy as np
import pytest
import torch

from inr_gon.cli import main
from inr_gon.cli.completion import observation
from inr_gon.core.sdf import bounded_loss, sdf_point_loss
from inr_gon.data.errors import DataError
from inr_gon.data.observations import read_depth, read_intrinsics, read_point_cloud, read_pose
from inr_gon.geometry.observe import backproject, depth_normals, observation_samples

R = 0.5  # the sphere's radius, centred at the origin
CAM = (0.0, 0.0, -2.5)  # the camera, looking along +z


def sphere_depth(size=64, f=80.0):
    """The depth map (z distance; NaN off the sphere) of the sphere seen from ``CAM``, and K."""
    K = np.array([[f, 0, (size - 1) / 2], [0, f, (size - 1) / 2], [0, 0, 1]])
    v, u = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    d = np.stack([(u - K[0, 2]) / f, (v - K[1, 2]) / f, np.ones_like(u, dtype=float)], -1)  # z = 1 rays
    o = np.array(CAM)
    a, b, c = (d * d).sum(-1), 2 * (d @ o), o @ o - R**2
    disc = b * b - 4 * a * c
    t = (-b - np.sqrt(np.where(disc >= 0, disc, np.nan))) / (2 * a)  # the z distance, as rays have z = 1
    return t, K


def pose():
    T = np.eye(4)
    T[:3, 3] = CAM
    return T


def test_depth_free_space_is_outside_and_the_silhouette_optional():
    from inr_gon.geometry.observe import depth_free_space

    depth, K = sphere_depth(64)
    g = torch.Generator().manual_seed(0)
    free = depth_free_space(torch.from_numpy(depth), torch.from_numpy(K), torch.from_numpy(pose()), 20_000, generator=g)
    assert len(free) > 1000 and (free.double().norm(dim=1) > R).all()  # all outside the sphere
    g.manual_seed(0)
    rays_only = depth_free_space(
        torch.from_numpy(depth), torch.from_numpy(K), torch.from_numpy(pose()), 20_000, silhouette=False, generator=g
    )
    assert 0 < len(rays_only) < len(free)  # without the silhouette: only points in front of the seen surface
    cam = rays_only.double() - torch.tensor(CAM, dtype=torch.float64)
    assert (cam.norm(dim=1) < 2.5).all()  # between the camera and the sphere


def test_depth_samples_have_the_analytic_signed_distance_and_signs():
    depth, K = sphere_depth()
    pts, seen, camera = backproject(torch.from_numpy(depth), torch.from_numpy(K), torch.from_numpy(pose()))
    assert torch.allclose(camera, torch.tensor(CAM, dtype=torch.float64))
    assert (pts[seen].norm(dim=1) - R).abs().max() < 1e-9  # on the sphere
    normals, ok = depth_normals(pts, seen, camera)
    radial = pts[ok] / pts[ok].norm(dim=1, keepdim=True)
    assert ok.sum() > 0.8 * seen.sum() and ((normals[ok] * radial).sum(1) > 0.98).all()  # outward
    eta = 0.02
    obs = observation_samples(pts[ok], normals=normals[ok], camera=camera, offset=eta, free_per_point=2)
    truth = obs.points.double().norm(dim=1) - R
    exact = ~obs.free
    assert (truth[exact] - obs.sdf[exact].double()).abs().max() < 0.1 * eta  # within the band
    off = exact & (obs.sdf != 0)
    assert torch.equal(torch.sign(truth[off]), torch.sign(obs.sdf[off].double()))  # the ±offset samples' signs
    assert obs.free.sum() > 0 and (truth[obs.free] > 0).all() and (obs.sdf[obs.free] == 0).all()  # outside: bounds
    assert (obs.points.abs() <= 1).all()


def test_a_point_cloud_with_normals_gives_the_samples_of_the_depth_view(tmp_path):
    depth, K = sphere_depth(32)
    np.save(tmp_path / "d.npy", depth)
    (tmp_path / "K.json").write_text(json.dumps({"fx": K[0, 0], "fy": K[1, 1], "cx": K[0, 2], "cy": K[1, 2]}))
    (tmp_path / "T.json").write_text(json.dumps({"pose": pose().tolist()}))
    base = dict(depth_scale=None, offset=[0.02, 0.05], free=0, normalize=False, camera=None, intrinsics=None, pose=None)
    base["no_silhouette"] = False
    view = argparse.Namespace(**base, depth=str(tmp_path / "d.npy"), points=None)
    view.intrinsics, view.pose = str(tmp_path / "K.json"), str(tmp_path / "T.json")
    a = observation(view, generator=torch.Generator().manual_seed(0))
    pts, seen, cam = backproject(torch.from_numpy(depth), torch.from_numpy(K), torch.from_numpy(pose()))
    n, ok = depth_normals(pts, seen, cam)
    cloud = torch.cat([pts[seen], torch.where(ok[seen].unsqueeze(-1), n[seen], torch.zeros(1))], 1).numpy()
    np.save(tmp_path / "c.npy", cloud)
    b = observation(
        argparse.Namespace(**{**base, "points": str(tmp_path / "c.npy"), "depth": None, "camera": list(CAM)}),
        generator=torch.Generator().manual_seed(0),
    )
    for x, y in ((a.points, b.points), (a.sdf, b.sdf), (a.free, b.free)):
        assert torch.equal(x, y)


def test_the_bounded_loss_is_zero_for_satisfied_bounds():
    pred = torch.tensor([[[0.3], [-0.2], [0.1], [0.05]]])
    target = torch.tensor([[[0.0], [0.0], [0.1], [0.0]]])
    free = torch.tensor([[True, True, False, False]])
    got = bounded_loss("l2", free)(pred, target)[0, :, 0]
    base = sdf_point_loss("l2")(pred, target)[0, :, 0]
    assert got[0] == 0 and got[1] == base[1] > 0  # a bound: only a prediction below it costs
    assert torch.equal(got[2:], base[2:])  # exact samples: the loss itself


def test_bad_observations_are_one_line_errors(tmp_path):
    d = np.full((4, 5), 1.0)
    d[0, 0], d[1, 1] = np.nan, -2.0
    np.save(tmp_path / "d.npy", d)
    depth, unseen = read_depth(tmp_path / "d.npy")
    assert unseen == 2 and torch.isnan(depth[0, 0]) and torch.isnan(depth[1, 1])  # masked and counted
    (tmp_path / "K.json").write_text(json.dumps({"fx": 5, "fy": 5, "cx": 2, "cy": 2, "width": 6, "height": 4}))
    with pytest.raises(DataError, match="intrinsics are for 6x4 images, the depth map is 5x4"):
        read_intrinsics(tmp_path / "K.json", size=(4, 5))
    (tmp_path / "T.json").write_text(json.dumps({"pose": (2 * np.eye(4)).tolist()}))
    with pytest.raises(DataError, match="last row|not a rigid transform"):
        read_pose(tmp_path / "T.json")
    np.save(tmp_path / "e.npy", np.zeros((0, 3)))
    with pytest.raises(DataError, match="empty"):
        read_point_cloud(tmp_path / "e.npy")
    np.save(tmp_path / "z.npy", np.zeros((3, 3)))
    with pytest.raises(DataError, match="no pixel has a positive depth"):
        read_depth(tmp_path / "z.npy")


def test_mesh_completes_a_depth_view_and_a_point_cloud(tmp_path, capsys):
    depth, K = sphere_depth(48)
    np.save(tmp_path / "d.npy", depth)
    (tmp_path / "K.json").write_text(json.dumps({"K": K.tolist()}))
    (tmp_path / "T.json").write_text(json.dumps(pose().tolist()))
    out = tmp_path / "done.ply"
    args = [
        "mesh",
        "--pretrained",
        "shapes",
        "--depth",
        str(tmp_path / "d.npy"),
        "--intrinsics",
        str(tmp_path / "K.json"),
    ]
    args += ["--pose", str(tmp_path / "T.json"), "--resolution", "48", "--refine", "2", "--render", "--out", str(out)]
    assert main(args + ["--device", "cpu", "--prior-strength", "0"]) == 0  # the model's own step
    assert main(args + ["--device", "cpu"]) == 0  # the most probable latent under the training latents' prior
    assert out.is_file() and out.with_suffix(".png").is_file()
    import trimesh

    mesh = trimesh.load(out)
    assert abs(np.linalg.norm(mesh.vertices, axis=1).mean() - R) < 0.25  # a ball-like completion of a half-seen ball
    np.save(tmp_path / "p.npy", np.random.default_rng(0).normal(size=(500, 3)) * 0.0 + [0.3, 0.0, 0.0])
    capsys.readouterr()
    assert main(["mesh", "--pretrained", "shapes", "--points", str(tmp_path / "p.npy"), "--out", str(out)]) in (0, 2)
    assert main(
        ["mesh", "--pretrained", "shapes", "--points", str(tmp_path / "p.npy"), "--depth", "x", "--out", str(out)]
    )
    assert "give one of --points or --depth" in capsys.readouterr().err
    assert main(args + ["--prior-strength", "-1"]) == 2
    assert "--prior-strength must be >= 0" in capsys.readouterr().err


def _partial_split(tmp_path, region: str):
    """A tiny partial-inner run on four procedural shapes, one ``_split`` of their pools (20 inner, 40
    outer points), and the direction each shape was seen from."""
    import warnings

    from inr_gon.training.tasks.sdf import SdfConfig
    from inr_gon.training.trainer import Trainer

    cfg = SdfConfig(num_shapes=4, num_unseen=1, pool=512, points=64, batch_size=4, hidden=16, layers=2, latent=4)
    cfg = dataclasses.replace(
        cfg, steps=2, seconds=0.0, device="cpu", out=str(tmp_path), partial_inner=1.0, partial_region=region
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = Trainer(cfg, quiet=True)
    pts, sdf = t.task.pools([0, 1, 2, 3])
    g = torch.Generator().manual_seed(0)
    split = t.task._split(pts, sdf, 20, 40, g)
    g.manual_seed(0)
    torch.rand(4, 512, generator=g)
    v = torch.nn.functional.normalize(torch.randn(4, 3, generator=g), dim=1)
    return t, pts, sdf, split, v


def test_partial_inner_points_come_from_one_side_and_the_outer_from_all(tmp_path):
    t, _, _, (ip, isdf, op, osdf), v = _partial_split(tmp_path, "half_space")
    assert ((ip * v[:, None]).sum(-1) >= 0).all()  # every inner point on the side facing v
    assert ((op * v[:, None]).sum(-1) < 0).any()  # the outer loss sees the other side too
    for b in range(4):  # disjoint, and each point's own signed distance
        assert not (torch.cdist(ip[b], op[b]) == 0).any()
    t.fit()


def test_partial_inner_from_a_view_takes_the_seen_points(tmp_path):
    from inr_gon.geometry.observe import seen_from

    t, pts, sdf, (ip, isdf, op, osdf), v = _partial_split(tmp_path, "view")
    seen = seen_from(pts, sdf, v)
    for b in range(4):
        assert seen[b].sum() >= 20
        match = (ip[b][:, None] == pts[b][None]).all(-1)  # (20, N): each inner point's place in the pool
        assert (match.sum(1) >= 1).all()
        own = match.float().argmax(1)
        assert seen[b, own].all()  # every inner point is one the view sees
        assert torch.equal(isdf[b], sdf[b, own])
    t.fit()


def test_encode_samples_with_a_prior_is_map_latent_with_the_steps_weights():
    import inr_gon
    from inr_gon.training.tasks.sdf_encoding import encode_samples

    run = inr_gon.pretrained("shapes", device="cpu")
    g = torch.Generator().manual_seed(0)
    p = torch.rand(1, 300, 3, generator=g) * 2 - 1
    d = p.norm(dim=-1) - 0.5
    free = torch.rand(1, 300, generator=g) < 0.3
    stats = run.state["latent_stats"]
    prior = {**stats, "strength": 0.01, "iterations": 2}
    z = encode_samples(run.model, run.config, p, d, free=free, prior=prior)
    loss = sdf_point_loss(bounded_loss(run.config.inner_loss, free), delta=run.config.delta)
    w = inr_gon.GridIntegrator(scale=run.config.inner_weight / 300)
    ref = inr_gon.map_latent(run.model, p, d[..., None], loss=loss, integrator=w, **prior)
    torch.testing.assert_close(z, ref, rtol=1e-4, atol=1e-6)
    assert (z - encode_samples(run.model, run.config, p, d, free=free)).norm() > 1e-3  # not the plain step


def test_the_prior_completes_one_view_of_held_out_shapes_better_than_the_step():
    """The shipped shapes model, one depth view of held-out family shapes: the most probable latent
    under the training latents' Gaussian fills in the unseen side better than the step from the
    origin, whose unconstrained directions stay at zero."""
    import inr_gon
    from conftest import load_benchmark
    from inr_gon.core.sdf import latent_sdf
    from inr_gon.eval.shape import volumetric_iou
    from inr_gon.geometry.shapes import ProceduralShapes
    from inr_gon.training.tasks.sdf_data import UNSEEN_SEED
    from inr_gon.training.tasks.sdf_encoding import encode_samples

    bench = load_benchmark("sdf_completion")
    run = inr_gon.pretrained("shapes", device="cpu")
    cfg, model = run.config, run.model
    held = ProceduralShapes(8, seed=cfg.seed + UNSEEN_SEED)
    g = torch.Generator().manual_seed(0)
    step, prior = [], []
    for i in range(3):
        eye = torch.nn.functional.normalize(torch.randn(4, 3, generator=g, dtype=torch.float64), dim=1)[0] * 2.5
        obs = bench.view_samples(held[i], bench.look_at(eye), 64, [0.01, 0.03, 0.06, 0.1], 1, g)
        p, d, f = obs.points[None], obs.sdf[None], obs.free[None]
        for out, pr in ((step, None), (prior, run.state["latent_stats"])):
            z = encode_samples(model, cfg, p, d, free=f, prior=pr)[0]
            out.append(volumetric_iou(latent_sdf(model, z), held[i], bounds=(-1.0, 1.0), num_points=20_000))
    assert sum(prior) / 3 > sum(step) / 3 + 0.03, (prior, step)


def test_the_benchmarks_family_prior_is_the_gaussian_of_the_family_latents():
    """``--prior-shapes N``: the mean and covariance of the full-observation latents of the first N
    shapes of the run's new-shape family, each encoded as ``encode_samples`` encodes a shape."""
    import inr_gon
    from conftest import load_benchmark
    from inr_gon.training.tasks.sdf_data import family_shapes
    from inr_gon.training.tasks.sdf_encoding import encode_samples

    bench = load_benchmark("sdf_completion")
    run = inr_gon.pretrained("shapes", device="cpu")
    stats = bench.family_latent_stats(run, 5)
    _, pts, sdf = family_shapes(run.config.seed, 0, 5, run.config.pool)
    z = encode_samples(run.model, run.config, pts, sdf).double()
    torch.testing.assert_close(stats["mean"], z.mean(0))
    xc = z - z.mean(0)
    ridge = stats["cov"] - xc.T @ xc / 4  # the sampler's relative ridge on the diagonal only
    torch.testing.assert_close(ridge, torch.diag(ridge.diagonal()))
    assert (ridge.diagonal() >= 0).all() and ridge.diagonal().max() < 1e-4 * stats["cov"].diagonal().mean()
    torch.linalg.cholesky(stats["cov"])  # positive definite although 5 latents span 4 dimensions
    with pytest.raises(SystemExit):  # one shape spans no Gaussian
        bench.main(["--prior-shapes", "1"])


def test_the_benchmark_renders_a_mesh_as_its_analytic_depth():
    """Sphere tracing a closed mesh's signed distance (the benchmark's mesh views) gives the depth
    of the analytic sphere the mesh approximates, and misses where the ray misses."""
    import trimesh
    from conftest import load_benchmark

    bench = load_benchmark("sdf_completion")
    mesh = trimesh.creation.icosphere(subdivisions=5, radius=R)
    T = torch.as_tensor(pose(), dtype=torch.float64)
    depth, K = bench.render_depth(bench.mesh_sdf(mesh), T, 32)
    truth, K_ref = sphere_depth(32, f=float(K[0, 0]))
    np.testing.assert_allclose(K.numpy(), K_ref)
    assert np.array_equal(np.isnan(depth.numpy())[2:-2, 2:-2], np.isnan(truth)[2:-2, 2:-2])  # same silhouette
    both = ~np.isnan(truth) & ~np.isnan(depth.numpy())
    assert both.sum() > 100
    assert np.abs(depth.numpy()[both] - truth[both]).max() < 2e-3  # the mesh's facets lie within 1e-3 of it


def test_the_completion_benchmark_runs_on_a_mesh_trained_model(tmp_path):
    """``benchmarks/sdf_completion.py`` on a model trained on a mesh folder: the run's training
    meshes, rendered from the mesh and scored against it (IoU, Chamfer where a surface decodes)."""
    from conftest import load_benchmark
    from test_sdf_gon import TINY, three_meshes

    from inr_gon.cli import sdf_main

    folder = three_meshes(tmp_path / "meshes", subdivisions=3)
    run = tmp_path / "run"
    assert sdf_main(TINY + ["--meshes", str(folder), "--steps", "3", "--out", str(run)]) == 0
    bench = load_benchmark("sdf_completion")
    out = tmp_path / "c.json"
    args = ["--checkpoint", str(run), "--split", "train", "--shapes", "2", "--views-list", "1", "--refine", ""]
    assert (
        bench.main(args + ["--size", "24", "--timing-size", "0", "--chamfer-resolution", "24", "--json", str(out)]) == 0
    )
    d = json.loads(out.read_text())
    assert d["source"] == "meshes" and d["split"] == "train" and d["shapes"] == 2
    names = {r["shape"] for r in d["rows"]}
    assert len(names) == 2 and names <= {"sphere", "box", "small"}  # two of the run's meshes, by name
    assert all(0.0 <= r["iou"] <= 1.0 for r in d["rows"])
    assert all(r["chamfer"] is None or r["chamfer"] >= 0 for r in d["rows"])
    assert {t["method"] for t in d["summary"]} >= {"full observation", "one step", "prior", "surface only"}


def test_seen_from_marks_what_a_depth_view_of_a_sphere_sees():
    """A sphere seen from +z: samples in front of it and beside it are seen, samples deep behind its
    front surface are not, and the binned answer agrees with the exact one on nearly every sample."""
    from inr_gon.geometry.observe import seen_from

    g = torch.Generator().manual_seed(0)
    p = torch.rand(1, 100_000, 3, generator=g) * 2 - 1
    sdf = p.norm(dim=-1) - R
    seen = seen_from(p, sdf, torch.tensor([[0.0, 0.0, 1.0]]), band=0.1)[0]
    x = p[0]
    r = x[:, :2].norm(dim=-1)
    assert seen[x[:, 2] > R].all()  # in front of the whole sphere
    assert seen[r > R + 0.21].all()  # beside it: pixels (0.14 wide) its silhouette does not touch
    assert not seen[(sdf[0] < 0) & (x[:, 2] < -0.3)].any()  # inside, far behind the front surface
    front = torch.sqrt((R**2 - r**2).clamp_min(0))
    exact = (r > R) | (x[:, 2] >= front - 0.1)
    assert (seen == exact).float().mean() > 0.95  # the binning blurs the silhouette
    tilted = seen_from(p, sdf, torch.tensor([[0.0, 0.0, 3.0]]), band=0.1)  # any length: a direction
    assert torch.equal(tilted[0], seen)
    with pytest.raises(ValueError, match="direction must be"):
        seen_from(p, sdf, torch.zeros(2, 3))


def test_the_benchmarks_view_energy_and_retrieval(tmp_path):
    """``view_energy`` is the mean outer loss of each latent on a view's samples (free space as
    bounds), as a per-latent loop computes it; ``retrieve`` orders candidates by it (on all of a
    view with fewer samples than the prior takes); ``--retrieval N`` scores the best-fitting
    candidate, and the best of its eight best by IoU at least as well."""
    import inr_gon
    from conftest import load_benchmark

    bench = load_benchmark("sdf_completion")
    run = inr_gon.pretrained("shapes", device="cpu")
    cfg, model = run.config, run.model
    _, shape, *_ = next(bench.shape_cases(run, "train", 1))
    g = torch.Generator().manual_seed(0)
    eye = torch.tensor([2.5, 0.0, 0.0], dtype=torch.float64)
    obs = bench.view_samples(shape, bench.look_at(eye), 32, [0.01, 0.03, 0.06, 0.1], 1, g)
    z = torch.randn(3, model.latent_dim, generator=g) * 0.1
    loss = bounded_loss(cfg.outer_loss, obs.free[None], delta=cfg.delta)
    naive = [loss(model(obs.points.float(), z[i : i + 1]), obs.sdf.float()[None, :, None]).mean() for i in range(3)]
    torch.testing.assert_close(bench.view_energy(model, cfg, obs, z), torch.stack(naive))
    small = bench.Observation(obs.points[:500], obs.sdf[:500], obs.free[:500], obs.surface)  # all of it ranked
    bank = torch.randn(6, model.latent_dim, generator=g) * 0.1
    assert (
        bench.retrieve(model, cfg, small, bank, seed=0).tolist()
        == bench.view_energy(model, cfg, small, bank).argsort().tolist()
    )

    out = bench.main(
        ["--split", "train", "--shapes", "2", "--views-list", "1", "--refine", "", "--size", "32"]
        + ["--timing-size", "0", "--chamfer-resolution", "0", "--retrieval", "4", "--json", str(tmp_path / "r.json")]
    )
    assert out == 0
    rows = json.loads((tmp_path / "r.json").read_text())["rows"]
    for name in ("train0000", "train0001"):
        by = {r["method"]: r for r in rows if r["shape"] == name}
        assert by["retrieval from 4, best of 8"]["iou"] >= by["retrieval from 4"]["iou"]
        assert {"one step", "prior"} <= {m for m, r in by.items() if "view_energy" in r}
    with pytest.raises(SystemExit):
        bench.main(["--retrieval", "-1"])
