"""SDF GONs: the latent and loss against the naive autograd formulation, the shared fast path,
the eikonal term, and the trainer / example end to end (procedural, mesh folder, DeepSDF)."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import inr_gon as ig
from inr_gon.core.sdf import eikonal_loss, latent_sdf, sdf_gon_latent, sdf_gon_loss, smallest_keys, split_points
from inr_gon.cli import sdf_main as main
from inr_gon.training import SdfConfig, Trainer
from inr_gon.training.run import load_run
from inr_gon.training.tasks.sdf_data import mesh_files

LOSSES = {"clamped_l1": lambda p, s: (p.clamp(-0.1, 0.1) - s.clamp(-0.1, 0.1)).abs(), "l2": lambda p, s: (p - s) ** 2}


def make(B=3, P=40, k=5, seed=0, shared=False, dtype=torch.float64):
    torch.manual_seed(seed)
    m = ig.LatentSiren(3, k, 1, 24, 3).to(dtype)
    pts = torch.rand(P, 3, dtype=dtype) * 2 - 1 if shared else torch.rand(B, P, 3, dtype=dtype) * 2 - 1
    sdf = 0.15 * torch.randn(B, P, dtype=dtype)  # inside and outside the clamp
    return m, pts, sdf


def naive_latent(m, pts, sdf, loss, scale, create_graph=False):
    """Concatenate c ⊕ z0, sum the loss, autograd.grad at z0 = 0."""
    z0 = torch.zeros(sdf.shape[0], m.latent_dim, dtype=sdf.dtype, requires_grad=True)
    L = LOSSES[loss](m.forward_concat(pts, z0)[..., 0], sdf).sum() * scale
    return -torch.autograd.grad(L, z0, create_graph=create_graph)[0]


@pytest.mark.parametrize("loss", ["clamped_l1", "l2"])
@pytest.mark.parametrize("shared", [False, True])
def test_latent_equals_naive_autograd(loss, shared):
    m, pts, sdf = make(shared=shared)
    z = sdf_gon_latent(m, pts, sdf, loss=loss, inner_weight=2.0)
    torch.testing.assert_close(z, naive_latent(m, pts, sdf, loss, 2.0 / sdf.shape[1]), rtol=1e-9, atol=1e-12)
    z = sdf_gon_latent(m, pts, sdf, loss=loss, inner_scale=0.25)
    torch.testing.assert_close(z, naive_latent(m, pts, sdf, loss, 0.25), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("loss", ["clamped_l1", "l2"])
def test_training_loss_and_gradients_equal_naive(loss):
    """Explicit inner/outer points: loss value and parameter gradients of the second-order step."""
    m, ip, isdf = make(seed=1)
    _, op, osdf = make(seed=2)
    L, z, parts = sdf_gon_loss(m, op, osdf, inner_points=ip, inner_sdf=isdf, loss=loss, inner_scale=0.1)
    g = torch.autograd.grad(L, list(m.parameters()))
    zn = naive_latent(m, ip, isdf, loss, 0.1, create_graph=True)
    Ln = LOSSES[loss](m.forward_concat(op, zn)[..., 0], osdf).mean()
    gn = torch.autograd.grad(Ln, list(m.parameters()))
    torch.testing.assert_close(L, Ln)
    torch.testing.assert_close(parts["sdf"], Ln.detach())
    for a, b in zip(g, gn):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


def test_shared_fast_path_equals_per_sample_path():
    m, pts, sdf = make(B=4, shared=True)
    per = pts.unsqueeze(0).expand(4, -1, -1).contiguous()
    torch.testing.assert_close(sdf_gon_latent(m, pts, sdf), sdf_gon_latent(m, per, sdf), rtol=1e-10, atol=1e-12)
    _, op, osdf = make(B=4, seed=3)
    L1, _, _ = sdf_gon_loss(m, op, osdf, inner_points=pts, inner_sdf=sdf, eikonal_weight=0.1)
    g1 = torch.autograd.grad(L1, list(m.parameters()))
    L2, _, _ = sdf_gon_loss(m, op, osdf, inner_points=per, inner_sdf=sdf, eikonal_weight=0.1)
    g2 = torch.autograd.grad(L2, list(m.parameters()))
    torch.testing.assert_close(L1, L2)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


def test_pool_split_is_disjoint_and_fresh():
    B, N = 3, 50
    pts = torch.arange(B * N * 3, dtype=torch.float64).reshape(B, N, 3)
    sdf = pts[..., 0]
    g = torch.Generator().manual_seed(0)
    ip, isdf, op, osdf = split_points(pts, sdf, 20, 25, generator=g)
    assert ip.shape == (B, 20, 3) and op.shape == (B, 25, 3) and osdf.shape == (B, 25)
    for b in range(B):
        assert not set(isdf[b].tolist()) & set(osdf[b].tolist())
        assert torch.equal(ip[b, :, 0], isdf[b])
    m, pts, sdf = make(P=60)
    L, z, parts = sdf_gon_loss(m, pts, sdf, num_inner=20, num_outer=30, generator=g)
    assert z.shape == (3, 5) and L.dim() == 0 and parts["eikonal"] == 0
    with pytest.raises(ValueError, match="num_inner"):
        split_points(pts, sdf, 40, 40)


@pytest.mark.parametrize("B, N, m", [(4, 1000, 37), (3, 64, 64), (2, 10, 15)])
def test_smallest_keys_is_the_sorted_prefix(B, N, m):
    """The partial selection picks the same positions, in the same order, as a full argsort."""
    keys = torch.rand(B, N, generator=torch.Generator().manual_seed(N))
    assert torch.equal(smallest_keys(keys, m), keys.argsort(dim=1)[:, :m])
    # with mask offsets as in the one-sided inner points: masked positions come last
    masked = keys + 2.0 * (torch.arange(N) % 3 == 0)
    assert torch.equal(smallest_keys(masked, m), masked.argsort(dim=1)[:, :m])


class SphereModel(torch.nn.Module):
    """F(c ⊕ z) = |c - z[:3]| - 0.5: an exact SDF for every latent (eikonal residual 0)."""

    latent_dim = 3

    def forward(self, coords, z):
        c = coords if coords.dim() == 3 else coords.unsqueeze(0)
        return ((c - z[:, None, :]).norm(dim=-1) - 0.5).unsqueeze(-1)


def test_procedural_held_out_shapes_do_not_depend_on_the_training_set_size():
    """The unseen procedural shapes are their own family: the same shapes and pools for 4 or 9
    training shapes, none equal to a training shape; the training shapes are a prefix."""
    from inr_gon.training.tasks.sdf_data import load_shapes

    a, b = (load_shapes(SdfConfig(num_shapes=n, num_unseen=2, pool=64)) for n in (4, 9))
    assert [a.names[i] for i in a.unseen_index] == [b.names[i] for i in b.unseen_index] == ["held0000", "held0001"]
    probe = torch.rand(200, 3, generator=torch.Generator().manual_seed(0)) * 2 - 1
    for i, j in zip(a.unseen_index, b.unseen_index):
        assert torch.equal(a.analytic[i](probe), b.analytic[j](probe)) and torch.equal(a.points[i], b.points[j])
        assert all(not torch.equal(a.analytic[i](probe), a.analytic[t](probe)) for t in a.train_index)
    for t in a.train_index:  # the training shapes and their pools are a prefix of the larger set
        assert torch.equal(a.points[t], b.points[t]) and torch.equal(a.analytic[t](probe), b.analytic[t](probe))


def test_eikonal_zero_for_exact_sdf_and_matches_finite_differences():
    pts = torch.rand(2, 100, 3, dtype=torch.float64) * 2 - 1
    z = 0.1 * torch.randn(2, 3, dtype=torch.float64)
    e, y = eikonal_loss(SphereModel(), pts, z)
    assert e.item() < 1e-20 and y.shape == (2, 100, 1)
    # a SIREN: autograd gradient norms against central differences
    m, _, _ = make(k=4)
    z = 0.3 * torch.randn(2, 4, dtype=torch.float64)
    e, _ = eikonal_loss(m, pts, z)
    h = 1e-6
    grads = []
    for d in range(3):
        dp = torch.zeros(3, dtype=torch.float64)
        dp[d] = h
        grads.append((m(pts + dp, z) - m(pts - dp, z))[..., 0] / (2 * h))
    e_fd = (torch.stack(grads, -1).norm(dim=-1) - 1).square().mean()
    torch.testing.assert_close(e, e_fd, rtol=1e-6, atol=1e-9)
    # in the training loss: weight * term added, and it is differentiable
    _, p2, s2 = make(seed=4)
    L, _, parts = sdf_gon_loss(m, p2, s2, eikonal_weight=0.5, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(L.detach(), parts["sdf"] + 0.5 * parts["eikonal"])
    assert all(gr is not None for gr in torch.autograd.grad(L, list(m.parameters())))


def test_latent_sdf_feeds_mesh_extraction():
    torch.manual_seed(0)
    m = ig.LatentSiren(3, 4, 1, 16, 2)
    z = torch.randn(4)
    f = latent_sdf(m, z, chunk_size=1000)
    pts = torch.rand(2500, 3) * 2 - 1
    torch.testing.assert_close(f(pts), m(pts, z[None])[0, :, 0])
    sphere = ig.extract_mesh(latent_sdf(SphereModelSiren(), torch.zeros(3)), 24)
    assert len(sphere.faces) > 0 and abs(np.linalg.norm(sphere.vertices, axis=1).mean() - 0.5) < 0.02
    with pytest.raises(ValueError, match="z must have shape"):
        latent_sdf(m, torch.zeros(2, 4))


class SphereModelSiren(SphereModel):
    """SphereModel with a (dummy) parameter, as extract_mesh expects of a module."""

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(()))


def test_clear_errors():
    m, pts, sdf = make()
    with pytest.raises(ValueError, match=r"sdf must have shape \(B, P\)"):
        sdf_gon_latent(m, pts, sdf[..., None])
    with pytest.raises(ValueError, match="inner_points and inner_sdf"):
        sdf_gon_loss(m, pts, sdf, inner_points=pts)
    with pytest.raises(ValueError, match="for occupancies"):
        sdf_gon_latent(m, pts, sdf, loss="bce")
    with pytest.raises(ValueError, match="inner"):
        SdfConfig(meshes="x", inner="shared").validate()


# ------------------------------------------------------------------------------------------------
# end to end
# ------------------------------------------------------------------------------------------------
TINY = [
    "--hidden",
    "16",
    "--layers",
    "2",
    "--latent",
    "4",
    "--points",
    "128",
    "--pool",
    "512",
    "--batch-size",
    "2",
    "--mesh-resolution",
    "24",
    "--eval-shapes",
    "1",
    "--device",
    "cpu",
    "--quiet",
]


def test_example_end_to_end_procedural(tmp_path, capsys):
    out = tmp_path / "run"
    argv = TINY + [
        "--num-shapes",
        "4",
        "--num-unseen",
        "2",
        "--steps",
        "4",
        "--checkpoint-every",
        "2",
        "--out",
        str(out),
        "--eikonal",
        "0.1",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "unseen shapes" in printed and str(out / "metrics.json") in printed
    m = json.loads((out / "metrics.json").read_text())
    for k in (
        "train_chamfer",
        "train_iou",
        "train_normal_consistency",
        "unseen_chamfer",
        "unseen_iou",
        "unseen_normal_consistency",
        "steps",
        "train_seconds",
        "params",
    ):
        assert k in m, k
    assert m["steps"] == 4 and m["num_unseen"] == 2 and 0 <= m["train_iou"] <= 1
    for name in ("config.json", "slices_train.png", "slices_unseen.png", "slerp.png"):
        assert (out / name).is_file(), name
    assert list((out / "meshes").glob("unseen_*_gt.ply"))
    assert list(out.glob("ckpt_step*.pt"))
    # a second run into the same folder is refused; --resume continues it
    assert main(argv) == 2
    assert "holds another run" in capsys.readouterr().err
    assert main(argv[:-6] + ["--steps", "6", "--out", str(out), "--eikonal", "0.1", "--resume"]) == 0
    assert json.loads((out / "metrics.json").read_text())["steps"] == 6
    run = load_run(sorted(out.glob("ckpt_step*.pt"))[-1])
    assert run.step == 6 and run.task_name == "sdf" and run.model.latent_dim == 4


def test_shared_inner_trains(tmp_path):
    cfg = SdfConfig(
        num_shapes=4,
        num_unseen=1,
        pool=512,
        points=128,
        batch_size=2,
        hidden=16,
        layers=2,
        latent=4,
        steps=3,
        inner="shared",
        device="cpu",
    )
    t = Trainer(cfg, quiet=True)
    assert t.fit()["steps"] == 3
    assert t.task.encode([4]).shape == (1, 4)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("inner,eikonal", [("per_sample", 0.1), ("shared", 0.0)])
def test_sdf_trainer_on_cuda_and_resume_on_cpu(tmp_path, inner, eikonal):
    kw = dict(
        num_shapes=4,
        num_unseen=1,
        pool=512,
        points=128,
        batch_size=2,
        hidden=16,
        layers=2,
        latent=4,
        inner=inner,
        eikonal=eikonal,
        checkpoint_every=2,
        out=str(tmp_path / "run"),
    )
    t = Trainer(SdfConfig(steps=4, device="cuda", **kw), quiet=True)
    t.prepare_run_dir(resume=False, overwrite=False)
    assert t.fit()["steps"] == 4 and t.model.coord_weight.device.type == "cuda"
    assert t.task.evaluate_shapes([4], num_samples=1000)["num"] == 1
    r = Trainer(SdfConfig(steps=6, device="cpu", **kw), quiet=True)
    r.prepare_run_dir(resume=True, overwrite=False)
    assert r.step == 4 and r.fit()["steps"] == 6
    assert all(bool(torch.isfinite(p).all()) for p in r.model.parameters())


def three_meshes(folder, subdivisions=2):
    """A folder of three closed meshes (``sphere.obj``, ``box.ply``, ``small.obj``): a run on it
    trains on two and holds one out."""
    import trimesh

    folder.mkdir()
    trimesh.creation.icosphere(subdivisions=subdivisions, radius=0.7).export(folder / "sphere.obj")
    trimesh.creation.box(extents=(1.0, 0.6, 0.8)).export(folder / "box.ply")
    trimesh.creation.icosphere(subdivisions=subdivisions, radius=0.4).export(folder / "small.obj")
    return folder


def test_meshes_folder_end_to_end(tmp_path):
    folder = three_meshes(tmp_path / "meshes")
    out = tmp_path / "run"
    assert main(TINY + ["--meshes", str(folder), "--steps", "3", "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["num_train"] == 2 and m["num_unseen"] == 1 and m["source"] == "meshes"
    assert list((out / "cache").glob("*.npz"))  # samples cached under --out
    assert (out / "slices_unseen.png").is_file()


def test_empty_mesh_folder_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no meshes here")
    with pytest.raises(ValueError, match="no mesh files"):
        mesh_files(tmp_path / "empty")
    assert main(TINY + ["--meshes", str(tmp_path / "empty"), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "no mesh files" in err and len(err.strip().splitlines()) == 1


DATA = os.environ.get("INR_GON_DATA")


@pytest.mark.skipif(
    not DATA or not (Path(DATA) / "deepsdf-samples").is_dir(), reason="INR_GON_DATA/deepsdf-samples not available"
)
def test_deepsdf_folder_end_to_end(tmp_path):
    out = tmp_path / "run"
    assert main(TINY + ["--deepsdf", str(Path(DATA) / "deepsdf-samples"), "--steps", "2", "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["source"] == "deepsdf" and m["num_unseen"] >= 1 and m["unseen_iou"] is not None
