"""Configs by composition: each task offers only the options of the parts it takes, refuses the
ones its other choices ignore, takes named presets, reads earlier versions' names, and every
kind of checkpoint opens through one loader."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch

import inr_gon as ig
from inr_gon.cli import build_parser, main
from inr_gon.training import Trainer
from inr_gon.training.compat import upgrade
from inr_gon.training.parts import GradientOriginConfig, SirenConfig
from inr_gon.training.tasks import TASKS, AutoDecoderConfig, ClassifierConfig, ImageConfig, SdfConfig, VariationalConfig

FIXTURES = Path(__file__).parent / "fixtures" / "checkpoints"
CPU = torch.device("cpu")
CUDA = type("D", (), {"type": "cuda"})()


def _help(task: str) -> str:
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["train", task, "--help"])


def help_text(task, capsys) -> str:
    _help(task)
    return capsys.readouterr().out


def _flags(cls) -> set[str]:
    return {"--" + f.name.replace("_", "-") for f in dataclasses.fields(cls)}


def test_autodecoder_offers_no_gradient_origin_option(capsys):
    text = help_text("autodecoder", capsys)
    for flag in _flags(GradientOriginConfig) | {
        "--inner-loss",
        "--inner-fraction",
        "--inner-sampling",
        "--fresh-shapes",
        "--eikonal",
    }:
        assert flag not in text.split(), flag
    assert "--encode-iterations" in text and "--outer-loss" in text
    assert "--gauss-newton" in help_text("sdf", capsys)  # the GON task offers them


def test_every_task_takes_its_declared_parts():
    parts = {"siren": SirenConfig, "gradient origin": GradientOriginConfig}
    for name, task in TASKS.items():
        cfg = task.config_class
        assert cfg.PARTS, name
        for part, klass in parts.items():
            takes = any(p.startswith(part) for p in cfg.PARTS)
            assert issubclass(cfg, klass) == takes, (name, part)


def test_options_the_run_ignores_fail_with_one_line(capsys):
    argv = ["train", "variational", "--decoder", "conv", "--hidden", "64", "--steps", "1", "--device", "cpu"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "hidden=64" in err[0] and "conv decoder" in err[0]
    with pytest.raises(ValueError, match="base_channels=8 is the conv decoder's"):
        VariationalConfig(decoder="siren", base_channels=8).validate()
    with pytest.raises(ValueError, match="ce_weight=2.0 is read in joint mode only"):
        ClassifierConfig(ce_weight=2.0).validate()
    ClassifierConfig(mode="joint", ce_weight=2.0).validate()
    with pytest.raises(ValueError, match="cache_dir='x' is the mesh folders'"):
        SdfConfig(cache_dir="x").validate()
    with pytest.raises(ValueError, match="outer_loss='mse' and inner_loss='bce'"):
        ImageConfig(inner_loss="bce", outer_loss="mse").resolved(CPU)
    # the decoder not chosen stays unset in the resolved config (and so in config.json)
    conv = VariationalConfig().resolved(CPU)
    assert conv.hidden is None and conv.w0 is None and conv.base_channels == 32
    siren = VariationalConfig(decoder="siren").resolved(CPU)
    assert siren.hidden == 64 and siren.base_channels is None


def test_presets_replace_the_device_tables(capsys):
    cpu, cuda = ImageConfig().resolved(CPU), ImageConfig().resolved(CUDA)
    assert (cpu.preset, cpu.hidden, cpu.layers, cpu.latent, cpu.gauss_newton) == ("cpu", 128, 4, 64, 0.03)
    assert (cuda.preset, cuda.hidden, cuda.latent, cuda.gauss_newton) == ("paper", 256, 32, 0.0)
    paper_on_cpu = ImageConfig(preset="paper").resolved(CPU)
    assert dataclasses.replace(paper_on_cpu, nonfinite_check=None) == dataclasses.replace(cuda, nonfinite_check=None)
    assert ImageConfig(preset="paper", hidden=64).resolved(CPU).hidden == 64  # options given win
    assert SdfConfig(preset="gpu").resolved(CPU).points == SdfConfig().resolved(CUDA).points == 4096
    with pytest.raises(ValueError, match="preset='huge' is not a preset of task 'image' \\(cpu, paper\\)"):
        ImageConfig(preset="huge").resolved(CPU)
    text = help_text("image", capsys)
    assert "--preset {cpu,paper}" in text and "the paper's configuration" in text
    assert "with --preset cpu" in text  # per-preset defaults beside an option


def test_the_cpu_preset_trains_at_the_same_learning_rate_at_every_latent_size():
    assert ImageConfig().resolved(CPU).lr == ImageConfig(latent=128).resolved(CPU).lr == 2.5e-4
    assert ImageConfig(latent=128, lr=1e-3).resolved(CPU).lr == 1e-3  # a rate given wins
    assert ImageConfig(latent=128).resolved(CUDA).lr == ImageConfig().resolved(CUDA).lr == 1e-4  # the paper's own


def test_config_json_records_the_preset(tmp_path):
    from conftest import tiny_dataset

    cfg = ImageConfig(preset="paper", hidden=8, layers=1, latent=2, steps=1, device="cpu", out=str(tmp_path))
    t = Trainer(cfg, dataset=tiny_dataset(), quiet=True)
    t.prepare_run_dir(resume=False, overwrite=False)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["preset"] == "paper" and saved["batch_size"] == 64 and saved["inner_weight"] == 1 / 64


def test_earlier_names_are_mapped_in_one_place():
    image = upgrade("image", {"loss": "bce", "inner_scale": 0.5, "resolution": 20})
    assert image == {"inner_loss": "bce", "outer_loss": "bce", "inner_weight": 0.5, "image_size": 20}
    assert upgrade("classifier", {"loss": "mse", "ce_weight": 1.0}) == {"inner_loss": "mse"}
    assert upgrade("sdf", {"loss": "l1", "inner_loss": "l2", "resolution": 32}) == {
        "outer_loss": "l1",
        "inner_loss": "l2",
        "mesh_resolution": 32,
    }
    # a 0.3 auto-decoder config.json (it carried the GON's options) re-runs strictly
    old = {
        "task": "autodecoder",
        "loss": "clamped_l1",
        "gauss_newton": 0.0,
        "latent_steps": 1,
        "inner_weight": 10.0,
        "inner": "per_sample",
        "fresh_shapes": 0.0,
        "resolution": 48,
        "hidden": 16,
    }
    cfg = AutoDecoderConfig.from_dict(old, strict=True)
    assert (cfg.outer_loss, cfg.mesh_resolution, cfg.hidden) == ("clamped_l1", 48, 16)
    conv = VariationalConfig.from_dict({"decoder": "conv", "hidden": 64, "w0": 30.0, "latent_steps": 1}, strict=True)
    assert conv.hidden is None
    conv.validate()


def test_one_loader_for_every_checkpoint(tmp_path, capsys):
    # the 0.1 fixtures
    img = ig.load(FIXTURES / "image_v1" / "ckpt_step0000004.pt", device="cpu")
    assert img.task_name == "image" and img.config.outer_loss == img.config.inner_loss and img.step == 4
    sdf = ig.load(FIXTURES / "sdf_v1", device="cpu")  # a run folder: its newest checkpoint
    assert sdf.task_name == "sdf" and sdf.config.outer_loss == "clamped_l1"
    # the 0.1 SDF fixture meshes a training shape
    assert (
        main(
            [
                "mesh",
                "--checkpoint",
                str(sdf.path),
                "--shape",
                "0",
                "--resolution",
                "24",
                "--device",
                "cpu",
                "--out",
                str(tmp_path / "m0.ply"),
            ]
        )
        == 0
    )
    assert (tmp_path / "m0.ply").is_file()
    capsys.readouterr()
    # a command that does not fit the checkpoint names the ones that do
    assert main(["render", "--checkpoint", str(sdf.path), "--sample", "1", "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'sdf' checkpoint cannot be used with 'inr-gon render'" in err[0] and "mesh" in err[0]
    # eval of an auto-decoder and of a classifier checkpoint
    ad = tmp_path / "ad"
    assert (
        main(
            [
                "train",
                "autodecoder",
                "--num-shapes",
                "3",
                "--num-unseen",
                "1",
                "--pool",
                "256",
                "--points",
                "64",
                "--batch-size",
                "2",
                "--hidden",
                "8",
                "--layers",
                "1",
                "--latent",
                "2",
                "--steps",
                "2",
                "--encode-iterations",
                "2",
                "--mesh-resolution",
                "12",
                "--eval-shapes",
                "1",
                "--slerp-frames",
                "2",
                "--device",
                "cpu",
                "--quiet",
                "--out",
                str(ad),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(ad), "--device", "cpu"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["task"] == "autodecoder" and res["step"] == 2 and res["train_iou"] is not None
    shutil.rmtree(ad)
