"""The shape space of SDF GONs: the truncated L1, the collapse check, the auto-decoder baseline,
the ``inr-gon mesh`` command, and mesh folders in any units and batch sizes."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

import inr_gon as ig
from inr_gon.eval.shape_space import MIN_SENSITIVITY, collapse_reasons
from inr_gon.cli import main
from inr_gon.core.losses import MSE, ClampedL1, TruncatedL1, TruncatedL2
from inr_gon.training import AutoDecoderConfig, SdfConfig, Trainer
from inr_gon.variants.autodecoder import fit_codes

TINY = dict(
    num_shapes=6,
    num_unseen=2,
    pool=256,
    points=64,
    batch_size=2,
    hidden=16,
    layers=2,
    latent=4,
    device="cpu",
    eval_every=10**6,
    mesh_resolution=24,
    eval_shapes=3,
)


def trainer(**kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Trainer(SdfConfig(**{**TINY, **kw}), quiet=True)


# -- the truncated L1 ------------------------------------------------------------------------------------
def _grid_and_autograd(loss):
    """Predictions across ±0.5 against five targets (far, at ±δ, near), and autograd's gradient of ``loss``."""
    pred = torch.linspace(-0.5, 0.5, 101, dtype=torch.float64).repeat(5)
    target = torch.tensor([-0.3, -0.1, 0.0, 0.05, 0.4], dtype=torch.float64).repeat_interleave(101)
    p = pred.clone().requires_grad_()
    (g_auto,) = torch.autograd.grad(loss(p, target).sum(), p)
    return pred, target, g_auto


def test_truncated_l1_is_clamped_l1_without_dead_zones():
    d = 0.1
    t, c = TruncatedL1(delta=d), ClampedL1(delta=d)
    pred, target, g_auto = _grid_and_autograd(t)
    torch.testing.assert_close(t.grad(pred, target), g_auto)  # the closed form is autograd's
    inside = pred.abs() <= d
    torch.testing.assert_close(t(pred, target)[inside], c(pred, target)[inside])
    # where the clamped L1 has no gradient but the point is wrong, the truncated one pulls it back
    wrong = (target >= d) & (pred < -d) | (target.abs() < d) & (pred.abs() > d)
    assert bool(wrong.any()) and bool((c.grad(pred, target)[wrong] == 0).all())
    assert bool((t.grad(pred, target)[wrong] != 0).all())
    # far on the right side: no gradient in either (a far field may stay far)
    right = (target >= d) & (pred > d)
    assert bool((t.grad(pred, target)[right] == 0).all()) and bool((t(pred, target)[right] == 0).all())


def test_truncated_l2_is_the_squared_truncated_l1():
    """``truncated_l2`` = (truncated L1)²: its closed-form gradient is autograd's, it is the plain L2
    wherever target and prediction are within ±δ, and far points on the right side are free."""
    d = 0.1
    t2, t1 = TruncatedL2(delta=d), TruncatedL1(delta=d)
    pred, target, g_auto = _grid_and_autograd(t2)
    torch.testing.assert_close(t2.grad(pred, target), g_auto)
    torch.testing.assert_close(t2(pred, target), t1(pred, target).square())
    near = (pred.abs() <= d) & (target.abs() <= d)
    torch.testing.assert_close(t2(pred, target)[near], MSE()(pred, target)[near])
    right = (target >= d) & (pred > d)
    assert bool((t2.grad(pred, target)[right] == 0).all())
    from inr_gon.core.sdf import sdf_point_loss

    assert sdf_point_loss("truncated_l2", delta=0.2) == TruncatedL2(delta=0.2)


@pytest.mark.parametrize("loss", ["truncated_l1", "truncated_l2"])
def test_truncated_latent_matches_autograd(loss):
    torch.manual_seed(0)
    m = ig.LatentSiren(3, 4, 1, 16, 2).double()
    pts, sdf = torch.rand(2, 30, 3, dtype=torch.float64) * 2 - 1, (torch.rand(2, 30, dtype=torch.float64) - 0.5) * 0.5
    a = ig.sdf_gon_latent(m, pts, sdf, loss=loss)
    b = ig.sdf_gon_latent(m, pts, sdf, loss=loss, method="autograd")
    torch.testing.assert_close(a, b)


# -- the collapse check ----------------------------------------------------------------------------------
def test_collapse_check_fires_on_a_field_that_ignores_the_latent():
    t = trainer(steps=0)
    with torch.no_grad():
        t.model.latent_weight.zero_()  # F(c ⊕ z) = F(c ⊕ 0) for every z
    h = t.task.health(t.task.shapes.train_index[:3])
    assert h["latent_sensitivity"] < 1e-6
    why = collapse_reasons(h)
    assert any("barely depends on the latent" in w for w in why)
    assert any("indistinguishable" in w for w in why)


def test_collapse_check_fires_on_an_empty_field():
    t = trainer(steps=0)
    with torch.no_grad():
        t.model.out.bias.fill_(5.0)  # positive (outside) everywhere
    why = collapse_reasons(t.task.health(t.task.shapes.train_index[:3]))
    assert any("no zero crossing on the training points of 3 of 3 shapes" in w for w in why)


def test_collapse_check_is_quiet_on_a_field_that_is_each_shape():
    t = trainer(steps=0)
    task = t.task
    truth = task.shapes.analytic
    # a perfect decoder: the latent names the shape, the field is its analytic SDF
    task.encode = lambda index, **kw: torch.nn.functional.one_hot(torch.tensor(list(index)), 16).float()
    task.sdf_of = lambda z: truth[int(z.argmax())]
    h = task.health(task.shapes.train_index[:4])
    assert h["zero_crossing"] == 1.0 and h["identified"] == 1.0 and h["latent_sensitivity"] > 3 * MIN_SENSITIVITY
    assert collapse_reasons(h) == []


def test_a_collapsed_run_says_so_and_strict_makes_it_an_error(tmp_path, capsys):
    out = tmp_path / "run"
    args = [
        "train",
        "sdf",
        "--num-shapes",
        "4",
        "--num-unseen",
        "1",
        "--pool",
        "256",
        "--points",
        "64",
        "--hidden",
        "8",
        "--layers",
        "1",
        "--latent",
        "2",
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
        "--out",
        str(out),
    ]
    assert main(args) == 0
    err = capsys.readouterr().err
    m = json.loads((out / "metrics.json").read_text())
    assert m["collapsed"] is True and m["collapse_reasons"] and "warning: the run failed to learn" in err
    assert main(args[:-1] + [str(tmp_path / "strict"), "--strict"]) == 3
    assert "the run failed to learn" in capsys.readouterr().err


# -- the auto-decoder ------------------------------------------------------------------------------------
def test_test_time_code_optimisation_lowers_the_loss():
    torch.manual_seed(0)
    net = ig.LatentSiren(3, 8, 1, 32, 2)
    sphere = ig.shapes.Sphere(0.0, 0.5)
    pts = torch.rand(1, 512, 3) * 2 - 1
    sdf = sphere(pts[0])[None]
    loss = lambda z: ClampedL1()(net(pts, z), sdf[..., None]).mean().item()
    z0 = fit_codes(net, pts, sdf, iterations=0, generator=torch.Generator().manual_seed(1))
    z20 = fit_codes(net, pts, sdf, iterations=20, lr=1e-2, generator=torch.Generator().manual_seed(1))
    z = fit_codes(net, pts, sdf, iterations=100, lr=1e-2, generator=torch.Generator().manual_seed(1))
    assert loss(z) < loss(z20) < loss(z0) and loss(z) < 0.9 * loss(z0)
    assert all(p.requires_grad for p in net.parameters())  # the network is left trainable


def test_autodecoder_task_trains_and_writes_outputs(tmp_path):
    cfg = AutoDecoderConfig(**{**TINY, "steps": 6, "encode_iterations": 5, "out": str(tmp_path)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = Trainer(cfg, quiet=True)
        t.prepare_run_dir(resume=False, overwrite=False)
        codes0 = t.model.codes.weight.detach().clone()
        info = t.fit()
        paths, m = t.write_outputs(info)
    assert not torch.equal(codes0, t.model.codes.weight)  # the codes trained
    assert m["steps"] == 6 and m["unseen_iou"] is not None and (tmp_path / "meshes.png").is_file()
    # the linear baseline beside it, fitted on the training shapes (no new shapes for an auto-decoder)
    assert m["pca_num_train"] == 6 and m["pca_unseen_iou"] is not None and m["grid_unseen_iou"] is not None
    # the checkpoint rebuilds the model; a new shape is encoded by optimising a fresh code
    from inr_gon.training.tasks.sdf_encoding import encode_samples

    run = ig.load(tmp_path, device="cpu")  # the run folder: its newest checkpoint
    model, c = run.model, run.config
    assert (
        run.task_name == "autodecoder"
        and c.encode_iterations == 5
        and torch.equal(model.codes.weight, t.model.codes.weight)
    )
    pts = torch.rand(1, 200, 3) * 2 - 1
    z = encode_samples(model, c, pts, ig.shapes.Sphere(0.0, 0.5)(pts[0])[None])
    assert z.shape == (1, 4) and bool(torch.isfinite(z).all())


# -- the mesh command ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sdf_run(tmp_path_factory):
    import trimesh

    d = tmp_path_factory.mktemp("mesh_cmd")
    folder = d / "meshes"
    folder.mkdir()
    for k, m in enumerate(
        [
            trimesh.creation.icosphere(subdivisions=2),
            trimesh.creation.box((1.0, 0.5, 0.8)),
            trimesh.creation.capsule(height=1.0, radius=0.3),
            trimesh.creation.cylinder(0.4, 1.0),
            trimesh.creation.box((0.4, 1.0, 1.0)),
        ]
    ):
        m.export(folder / f"m{k}.obj")
    args = [
        "train",
        "sdf",
        "--meshes",
        str(folder),
        "--pool",
        "1024",
        "--points",
        "256",
        "--hidden",
        "32",
        "--layers",
        "2",
        "--latent",
        "8",
        "--steps",
        "60",
        "--outer-loss",
        "l2",
        "--inner-weight",
        "10",
        "--lr",
        "1e-3",
        "--mesh-resolution",
        "24",
        "--eval-shapes",
        "2",
        "--device",
        "cpu",
        "--quiet",
        "--out",
        str(d / "run"),
        "--batch-size",
        "4",
    ]
    assert main(args) == 0
    return d, sorted((d / "run").glob("ckpt_step*.pt"))[-1]


def test_mesh_command_round_trip(sdf_run, capsys):
    import trimesh

    d, ckpt = sdf_run
    common = ["--checkpoint", str(ckpt), "--resolution", "32", "--lipschitz", "50"]
    assert main(["mesh", *common, "--shape", "0", "--out", str(d / "shape0.obj"), "--render"]) == 0
    m = trimesh.load(d / "shape0.obj")
    assert len(m.faces) > 10 and np.abs(m.vertices).max() <= 1.0 + 1e-6 and (d / "shape0.png").is_file()
    # a new mesh file, in millimetres: normalised, sampled, encoded in one step
    ball = trimesh.creation.icosphere(subdivisions=2, radius=40.0)  # a new shape, in millimetres, off-centre
    ball.apply_translation([100.0, 0, 0])
    ball.export(d / "ball_mm.ply")
    assert main(["mesh", *common, "--mesh", str(d / "ball_mm.ply"), "--out", str(d / "ball.glb")]) == 0
    assert len(trimesh.load(d / "ball.glb", force="mesh").faces) > 10
    assert main(["mesh", *common, "--slerp", "0", "1", "--frames", "3", "--out", str(d / "sl.ply")]) == 0
    assert len(list(d.glob("sl_*.ply"))) == 3
    assert main(["mesh", *common, "--sample", "2", "--out", str(d / "sample.ply")]) == 0
    assert len(list(d.glob("sample_*.ply"))) == 2
    capsys.readouterr()
    # bad input: one line, exit 2
    for argv in (
        ["mesh", "--checkpoint", str(d / "nope.pt"), "--shape", "0", "--out", str(d / "x.ply")],
        ["mesh", *common, "--shape", "99", "--out", str(d / "x.ply")],
        ["mesh", *common, "--shape", "0", "--out", str(d / "x.txt")],
        ["mesh", *common, "--shape", "0", "--sample", "2", "--out", str(d / "x.ply")],
        ["mesh", *common, "--mesh", str(d / "missing.obj"), "--out", str(d / "x.ply")],
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("inr-gon: error:") and "\n" not in err, err


def test_image_checkpoints_are_refused_by_the_mesh_command(tmp_path, capsys):
    from pathlib import Path

    img = Path(__file__).parent / "fixtures" / "checkpoints" / "image_v1" / "ckpt_step0000004.pt"
    assert main(["mesh", "--checkpoint", str(img), "--shape", "0", "--out", str(tmp_path / "x.ply")]) == 2
    assert "'image' checkpoint cannot be used with 'inr-gon mesh'" in capsys.readouterr().err


# -- mesh folders in any units, any batch size ---------------------------------------------------------------
@pytest.mark.parametrize("scale,batch", [(1000.0, 16), (0.2, 1)])
def test_mesh_folders_in_any_units_train_at_any_batch_size(tmp_path, scale, batch):
    import trimesh

    folder = tmp_path / "meshes"
    folder.mkdir()
    trimesh.creation.icosphere(subdivisions=2, radius=0.7 * scale).export(folder / "sphere.obj")
    trimesh.creation.box(extents=(scale, 0.6 * scale, 0.8 * scale)).export(folder / "box.ply")
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "sdf",
                "--meshes",
                str(folder),
                "--steps",
                "3",
                "--batch-size",
                str(batch),
                "--pool",
                "512",
                "--points",
                "128",
                "--hidden",
                "16",
                "--layers",
                "2",
                "--latent",
                "4",
                "--mesh-resolution",
                "24",
                "--device",
                "cpu",
                "--quiet",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    m = json.loads((out / "metrics.json").read_text())
    assert m["num_train"] == 1 and m["num_unseen"] == 1
    gt = trimesh.load(next((out / "meshes").glob("train_*_gt.ply")))
    assert 0.8 < np.linalg.norm(gt.vertices, axis=1).max() <= 1.0  # normalised to the unit sphere


# -- unlimited data: new procedural shapes every step -----------------------------------------------------
@pytest.mark.parametrize("share", [1.0, 0.5])
def test_fresh_shapes_are_new_every_step_and_resume_where_they_left_off(tmp_path, share):
    t = trainer(steps=3, batch_size=4, fresh_shapes=share, fresh_bank=0, out=str(tmp_path), checkpoint_every=3)
    t.prepare_run_dir(resume=False, overwrite=False)
    a = t.next_batch()
    b = t.next_batch()
    n_new = round(share * 4)
    assert t.task._fresh_next == 2 * n_new
    assert a[0].shape == (4, 32, 3) and not torch.equal(a[0][-n_new:], b[0][-n_new:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t.fit()
    r = trainer(steps=5, batch_size=4, fresh_shapes=share, fresh_bank=0, out=str(tmp_path), checkpoint_every=3)
    r.prepare_run_dir(resume=True, overwrite=False)
    assert r.step == 3 and r.task._fresh_next == t.task._fresh_next
    with pytest.raises(ValueError, match="procedural"):
        SdfConfig(meshes="x", fresh_shapes=1.0).validate()


@pytest.mark.parametrize("share,inner", [(1.0, "per_sample"), (0.5, "per_sample"), (1.0, "shared"), (0.5, "shared")])
def test_fresh_shapes_from_a_bank(tmp_path, share, inner):
    """``fresh_bank``: the new shapes are distinct shapes of a bank (the first shapes of the
    on-the-fly family, each made when first drawn and then kept), each point with its true
    distance; the on-the-fly counter never moves."""
    t = trainer(steps=3, batch_size=4, fresh_shapes=share, fresh_bank=5, inner=inner, out=str(tmp_path))
    t.prepare_run_dir(resume=False, overwrite=False)
    assert len(t.task.bank) == 5 and all(s is None for s in t.task.bank.shapes)  # nothing made up front
    shapes, pts, sdf = t.task.bank.take(range(5))
    assert len(shapes) == 5 and pts.shape == (5, 256, 3) and sdf.shape == (5, 256)
    again = t.task.bank.take([3, 1])  # kept, not made anew
    assert again[0][0] is shapes[3] and torch.equal(again[1], pts[[3, 1]]) and torch.equal(again[2], sdf[[3, 1]])
    from inr_gon.geometry.shapes import ProceduralShapes

    fam = ProceduralShapes(5, seed=t.cfg.seed + 1_000_003)
    probe = torch.rand(50, 3) * 2 - 1
    assert all(torch.equal(shapes[j](probe), fam[j](probe)) for j in range(5))
    n_new = round(share * 4)
    for _ in range(3):
        ip, isdf, op, osdf = t.next_batch()
        new_out = op[-n_new:]  # (n_new, M, 3), from the bank's pools
        owners = [
            [j for j in range(5) if torch.allclose(shapes[j](p).float(), d, atol=1e-5)]
            for p, d in zip(new_out, osdf[-n_new:])
        ]
        assert all(len(o) >= 1 for o in owners)
        assert len({o[0] for o in owners}) == n_new  # distinct shapes in one batch
        if inner == "per_sample":
            for p, d in zip(ip[-n_new:], isdf[-n_new:]):  # inner points: the same shapes' pools
                assert any(torch.allclose(shapes[j](p).float(), d, atol=1e-5) for j in range(5))
        else:  # one set of uniform points, each row its shape's SDF
            assert ip.dim() == 2 and isdf.shape == (4, ip.shape[0])
            for r, o in enumerate(owners):
                assert torch.allclose(isdf[4 - n_new + r], shapes[o[0]](ip).float(), atol=1e-5)
            for r in range(4 - n_new):  # the fixed shapes: the analytic SDF of the row's own shape
                assert any(
                    torch.allclose(a(op[r]).float(), osdf[r], atol=1e-5)
                    and torch.allclose(a(ip).float(), isdf[r], atol=1e-5)
                    for a in t.task.shapes.analytic
                )
    assert t.task._fresh_next == 0
    with pytest.raises(ValueError, match="fresh_bank"):
        SdfConfig(fresh_bank=10, fresh_shapes=0.0).validate()


def test_procedural_default_mixes_a_bank_in_and_other_sources_do_not():
    """The procedural default trains on a quarter of new shapes from a bank of 2,048; mesh folders,
    DeepSDF data, shared inner points and the auto-decoder (a code per fixed shape) mix nothing in;
    options given win; runs saved before the default read as the fixed shapes only."""
    from inr_gon.training import AutoDecoderConfig

    cpu = torch.device("cpu")
    r = SdfConfig().resolved(cpu)
    assert (r.fresh_shapes, r.fresh_bank) == (0.25, 2048)
    for cfg in (SdfConfig(meshes="m"), SdfConfig(deepsdf="d"), SdfConfig(inner="shared")):
        r = cfg.resolved(cpu)
        assert (r.fresh_shapes, r.fresh_bank) == (0.0, 0)
    assert not hasattr(AutoDecoderConfig().resolved(cpu), "fresh_shapes")
    assert (
        SdfConfig(fresh_shapes=1.0).resolved(cpu).fresh_bank,
        SdfConfig(fresh_bank=0).resolved(cpu).fresh_bank,
        SdfConfig(fresh_shapes=0.0).resolved(cpu).fresh_bank,
    ) == (2048, 0, 0)
    with pytest.raises(TypeError, match="fresh_shapes"):  # the auto-decoder takes no such option
        AutoDecoderConfig(fresh_shapes=0.5)
    old = SdfConfig.from_dict(SdfConfig.fill_absent({"num_shapes": 8}))
    assert (old.fresh_shapes, old.fresh_bank) == (0.0, 0)


def test_the_sdf_latent_is_one_gauss_newton_step_by_default_and_older_runs_keep_the_plain_step():
    """The SDF task's model takes a Gauss–Newton step of damping 1 (and encodes with it), the image
    task's on CPU one of damping 0.01; the image task on CUDA and runs saved before the option
    existed take the paper's plain gradient step."""
    from inr_gon.training import ImageConfig

    cpu, cuda = torch.device("cpu"), type("D", (), {"type": "cuda"})()
    assert (
        SdfConfig().resolved(cpu).gauss_newton == 1.0
        and ImageConfig(dataset="mnist").resolved(cpu).gauss_newton == 0.03
    )
    assert ImageConfig(dataset="mnist").resolved(cuda).gauss_newton == 0
    assert ImageConfig.from_dict(ImageConfig.fill_absent({"latent": 8})).resolved(cpu).gauss_newton == 0
    assert SdfConfig.from_dict(SdfConfig.fill_absent({"num_shapes": 8})).resolved(cpu).gauss_newton == 0
    assert not hasattr(AutoDecoderConfig().resolved(cpu), "gauss_newton")  # codes are fitted, not a step
    gn, plain = trainer(steps=0), trainer(steps=0, gauss_newton=0.0)
    assert (
        gn.model.gauss_newton == 1.0 and gn.model.config()["gauss_newton"] == 1.0 and plain.model.gauss_newton is None
    )
    plain.model.load_state_dict(gn.model.state_dict())
    index = gn.task.shapes.train_index[:3]
    z_gn, z_plain = gn.task.encode(index), plain.task.encode(index)
    pts, sdf = gn.task.pools(index)
    kw = dict(loss="l2", inner_weight=gn.task.cfg.inner_weight)
    torch.testing.assert_close(z_gn, ig.sdf_gon_latent(gn.model, pts, sdf, gauss_newton=1.0, **kw))
    torch.testing.assert_close(z_plain, ig.sdf_gon_latent(plain.model, pts, sdf, **kw))
    assert (z_gn - z_plain).abs().max() > 1e-4


@pytest.mark.parametrize(
    "kw",
    [
        dict(fresh_shapes=0.0),
        dict(fresh_shapes=0.5, fresh_bank=5),
        dict(fresh_shapes=1.0, fresh_bank=0),
        dict(fresh_shapes=0.0, inner_sampling="fixed"),
        dict(inner="shared", fresh_shapes=0.0),
    ],
)
def test_inner_fraction_splits_each_shapes_points(tmp_path, kw):
    """``inner_fraction``: of ``points`` per shape per step, that share are inner points and the
    rest outer ones, whatever the source path; per shape the two sets are disjoint."""
    t = trainer(batch_size=4, inner_fraction=0.25, out=str(tmp_path), **kw)
    t.prepare_run_dir(resume=False, overwrite=False)
    ip, isdf, op, osdf = t.next_batch()
    assert ip.shape[-2] == isdf.shape[1] == 16 and op.shape[1] == osdf.shape[1] == 48  # 64 points: 16 + 48
    if ip.dim() == 3:
        for a, b in zip(ip, op):  # no point both inner and outer
            assert not (a[:, None, :] == b[None, :, :]).all(-1).any()
    assert (
        SdfConfig(points=3, inner_fraction=0.01).num_inner == 1
        and SdfConfig(points=3, inner_fraction=0.99).num_inner == 2
    )
    for bad in (0.0, 1.0):
        with pytest.raises(ValueError, match="inner_fraction"):
            SdfConfig(inner_fraction=bad).validate()
