"""The one trainer and its config system: options generated from the config fields, config files
that re-run a run, the learning-rate schedule, metrics.jsonl / TensorBoard, the SDF task's
schedule, AMP and periodic evaluation, ``torch.compile``, the 0.1 module paths."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
import typing

import pytest
import torch

from inr_gon.cli import main
from inr_gon.training import TASKS, ImageConfig, SdfConfig, Trainer, learning_rate
from inr_gon.training.config import _base_type

from conftest import record_lrs, tiny_config, tiny_dataset, write_image_folder


# -- the config system ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_option_has_help_a_flag_and_a_valid_default(name):
    cfg = TASKS[name].config_class
    p = argparse.ArgumentParser()
    cfg.add_arguments(p)
    flags = {a.dest: a for a in p._actions if a.dest != "help"}
    for f in dataclasses.fields(cfg):
        assert f.metadata.get("help"), f"{name}.{f.name} has no help text"
        if f.name == "preset" and not cfg.presets():
            assert f.name not in flags, f"{name} offers --preset without presets"
            continue
        assert f.name in flags, f"{name}.{f.name} has no option"
    # the defaults of both devices are valid
    for device in ("cpu", "cuda"):
        resolved = cfg().resolved(torch.device(device) if device == "cpu" else type("D", (), {"type": "cuda"})())
        for f in dataclasses.fields(cfg):
            kind, optional = _base_type(typing.get_type_hints(cfg)[f.name])
            v = getattr(resolved, f.name)
            assert v is None and optional or isinstance(v, (kind, int) if kind is float else kind), (f.name, v)


def test_help_prints_the_defaults_of_each_preset(capsys):
    with pytest.raises(SystemExit):
        main(["train", "image", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: 128 with --preset cpu, 256 with --preset paper)" in out
    assert "(default: 0.25 with --preset cpu, 1 with --preset paper)" in out
    assert "(default on CPU)" in out and "(default on CUDA)" in out


def test_a_check_failing_names_the_field_and_value():
    with pytest.raises(ValueError, match=r"^outer_fraction=1\.5 must be in \(0, 1\]$"):
        ImageConfig(outer_fraction=1.5).validate()
    with pytest.raises(ValueError, match="pool=10 must be >= points"):
        SdfConfig(pool=10, points=64).validate()
    with pytest.raises(ValueError, match="deepsdf: give one"):
        SdfConfig(meshes="a", deepsdf="b").validate()


def test_dictionaries_of_the_0_1_trainers_load():
    old = {"source": "meshes", "data": "/m", "resolution": 96, "num_shapes": 3, "no_longer_an_option": 1}
    cfg = SdfConfig.from_dict(old)
    assert cfg.meshes == "/m" and cfg.source == "meshes" and cfg.mesh_resolution == 96 and cfg.num_shapes == 3
    with pytest.raises(ValueError, match="unknown option"):
        SdfConfig.from_dict(old, strict=True)
    # early 0.2 configs: inner_loss None meant "the same as loss"
    assert SdfConfig.from_dict({"loss": "l2", "inner_loss": None}).inner_loss == "l2"


def test_sdf_cuda_defaults_follow_steps_not_the_cpu_time_budget():
    cuda = SdfConfig().resolved(type("D", (), {"type": "cuda"})())
    cpu = SdfConfig().resolved(torch.device("cpu"))
    assert (cuda.seconds, cuda.schedule_by, cuda.steps) == (0.0, "steps", 20_000)
    assert (cpu.seconds, cpu.schedule_by) == (420.0, "time")
    # the time budget governs on CPU: a step cap no 2-core CPU reaches in seven minutes (~13-16 steps/s);
    # float32 on both (README "SDF shapes": bf16 cost new shapes 0.04 IoU at equal steps)
    assert cpu.steps >= 10_000 and cpu.amp == "off" and cuda.amp == "off"
    assert cpu.w0_first == cuda.w0_first == 60.0  # README "The first layer's frequency"


def test_resume_continues_with_the_runs_own_settings(tmp_path):
    """``--resume`` starts from the run's config.json (options given still win), not from the
    defaults: a run trained with other settings continues as it was."""
    folder = write_image_folder(tmp_path / "imgs", n=8)
    common = [
        "train",
        "image",
        "--dataset",
        str(folder),
        "--device",
        "cpu",
        "--quiet",
        "--threads",
        "1",
        "--out",
        str(tmp_path / "run"),
    ]
    assert (
        main(
            common
            + [
                "--steps",
                "3",
                "--batch-size",
                "4",
                "--hidden",
                "8",
                "--layers",
                "1",
                "--latent",
                "2",
                "--lr",
                "1e-3",
                "--lr-schedule",
                "constant",
            ]
        )
        == 0
    )
    assert main(common + ["--resume", "--steps", "5"]) == 0
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (saved["steps"], saved["hidden"], saved["lr"], saved["lr_schedule"], saved["batch_size"]) == (
        5,
        8,
        1e-3,
        "constant",
        4,
    )
    assert (tmp_path / "run" / "ckpt_step0000005.pt").is_file()


def test_a_run_saved_before_an_option_existed_resumes_with_what_it_used(tmp_path):
    """A 0.2 run's config.json has no ``latent_shifts`` / ``w0_latent``: resuming (or re-running
    it with ``--config``) rebuilds its model, not today's CPU defaults (shifts, latent ω0 30)."""
    folder = write_image_folder(tmp_path / "imgs", n=8)
    common = ["train", "image", "--dataset", str(folder), "--device", "cpu", "--quiet", "--threads", "1"]
    run = tmp_path / "run"
    assert (
        main(
            common
            + [
                "--out",
                str(run),
                "--steps",
                "2",
                "--batch-size",
                "4",
                "--hidden",
                "8",
                "--layers",
                "2",
                "--latent",
                "2",
                "--w0-first",
                "60",
                "--no-latent-shifts",
                "--w0-latent",
                "60",
                "--amp",
                "off",
            ]
        )
        == 0
    )
    saved = json.loads((run / "config.json").read_text())
    for key in ("latent_shifts", "w0_latent", "amp"):  # as 0.2 wrote it
        del saved[key]
    (run / "config.json").write_text(json.dumps(saved))
    assert main(common + ["--out", str(run), "--resume", "--steps", "4"]) == 0
    again = json.loads((run / "config.json").read_text())
    assert (again["latent_shifts"], again["w0_latent"], again["amp"], again["steps"]) == (False, 60.0, "off", 4)
    assert main(["train", "image", "--config", str(run / "config.json"), "--out", str(tmp_path / "b"), "--quiet"]) == 0
    assert json.loads((tmp_path / "b" / "config.json").read_text())["w0_latent"] == 60.0


def test_config_json_reruns_its_run(tmp_path, capsys):
    folder = write_image_folder(tmp_path / "imgs", n=8)
    args = [
        "train",
        "image",
        "--dataset",
        str(folder),
        "--steps",
        "3",
        "--batch-size",
        "4",
        "--hidden",
        "8",
        "--layers",
        "1",
        "--latent",
        "2",
        "--device",
        "cpu",
        "--quiet",
        "--threads",
        "1",
    ]
    assert main(args + ["--out", str(tmp_path / "a")]) == 0
    saved = json.loads((tmp_path / "a" / "config.json").read_text())
    assert saved["task"] == "image" and saved["hidden"] == 8 and saved["lr"] == 2.5e-4  # the resolved CPU default
    assert (
        main(
            ["train", "image", "--config", str(tmp_path / "a" / "config.json"), "--out", str(tmp_path / "b"), "--quiet"]
        )
        == 0
    )
    again = json.loads((tmp_path / "b" / "config.json").read_text())
    assert {**again, "out": None} == {**saved, "out": None}
    a = torch.load(tmp_path / "a" / "ckpt_step0000003.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "b" / "ckpt_step0000003.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    # a config of another task, or with unknown options, is refused in one line
    capsys.readouterr()
    assert main(["train", "sdf", "--config", str(tmp_path / "a" / "config.json"), "--out", str(tmp_path / "c")]) == 2
    assert "is a 'image' config" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**saved, "hiden": 3}))
    assert main(["train", "image", "--config", str(bad), "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert "unknown option(s) hiden" in err and err.count("\n") == 1


# -- the schedule --------------------------------------------------------------------------------------
def test_learning_rate_schedules():
    lr = [learning_rate(s, lr=1.0, steps=100, schedule="cosine", warmup_steps=10) for s in range(101)]
    assert lr[0] == pytest.approx(0.1 * (0.05 + 0.95 * 0.5 * (1 + math.cos(0)))) and lr[9] == pytest.approx(
        0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * 0.09))
    )
    assert lr[100] == pytest.approx(0.05) and all(a >= b for a, b in zip(lr[9:], lr[10:]))
    assert [learning_rate(s, lr=2.0, steps=10, warmup_steps=4) for s in range(6)] == [0.5, 1.0, 1.5, 2.0, 2.0, 2.0]


def test_warmup_reaches_the_optimizer(tmp_path):
    t = Trainer(tiny_config(None, steps=3, warmup_steps=4, eval_every=100), dataset=tiny_dataset(), quiet=True)
    seen = record_lrs(t)
    t.fit()
    assert seen == pytest.approx([0.25e-3, 0.5e-3, 0.75e-3])


# -- logs ----------------------------------------------------------------------------------------------
def _lines(path):
    return [json.loads(li) for li in path.read_text().splitlines()]


def test_metrics_jsonl_has_every_log_eval_and_final_line_and_resume_drops_the_retrained_part(tmp_path):
    cfg = tiny_config(tmp_path, steps=6, log_every=2, eval_every=3, checkpoint_every=2)
    t = Trainer(cfg, dataset=tiny_dataset(), quiet=True)
    t.prepare_run_dir(resume=False, overwrite=False)
    t.fit()
    rows = _lines(tmp_path / "metrics.jsonl")
    assert [(r["kind"], r["step"]) for r in rows] == [
        ("train", 2),
        ("eval", 3),
        ("train", 4),
        ("train", 6),
        ("eval", 6),
        ("final", 6),
    ]
    assert all(math.isfinite(r["loss"]) for r in rows if r["kind"] == "train")
    assert rows[1]["test_psnr"] > 0 and rows[-1]["test_psnr"] == pytest.approx(t.history["test_psnr"][-1], abs=5)
    # an interrupted run resumed from step 4 logs steps 5.. again: the old lines past 4 are dropped
    (tmp_path / "ckpt_step0000006.pt").unlink()
    r = Trainer(dataclasses.replace(cfg, steps=8), dataset=tiny_dataset(), quiet=True)
    r.prepare_run_dir(resume=True, overwrite=False)
    assert r.step == 4
    r.fit()
    steps = [(x["kind"], x["step"]) for x in _lines(tmp_path / "metrics.jsonl")]
    assert steps == [("train", 2), ("eval", 3), ("train", 4), ("train", 6), ("eval", 6), ("train", 8), ("final", 8)]


def test_tensorboard_option(tmp_path, monkeypatch):
    from inr_gon.training import metrics_log

    monkeypatch.setattr(metrics_log, "tensorboard_available", lambda: False)
    with pytest.raises(ValueError, match="needs the tensorboard package: pip install tensorboard"):
        Trainer(tiny_config(tmp_path, tensorboard=True), dataset=tiny_dataset(), quiet=True)
    monkeypatch.undo()
    if not metrics_log.tensorboard_available():
        return
    t = Trainer(tiny_config(tmp_path / "tb_run", tensorboard=True, log_every=2), dataset=tiny_dataset(), quiet=True)
    t.fit()
    assert list((tmp_path / "tb_run" / "tb").glob("events.out.tfevents.*"))


# -- the SDF task gets what the image task has ------------------------------------------------------------
def test_sdf_task_schedule_amp_and_periodic_evaluation(tmp_path):
    cfg = SdfConfig(
        num_shapes=6,
        num_unseen=2,
        pool=256,
        points=64,
        batch_size=2,
        hidden=16,
        layers=2,
        latent=4,
        steps=8,
        lr=1e-3,
        lr_schedule="cosine",
        warmup_steps=2,
        amp="bf16",
        eval_every=4,
        log_every=2,
        device="cpu",
        out=str(tmp_path),
    )
    t = Trainer(cfg, quiet=True)
    seen = record_lrs(t)
    t.fit()
    assert seen[0] == pytest.approx(0.5e-3) and seen[-1] < seen[2]
    assert t.history["eval_step"] == [4, 8] and len(t.history["unseen_sign_iou"]) == 2
    assert all(0 <= v <= 1 for v in t.history["train_sign_iou"])
    assert all(torch.isfinite(p).all() for p in t.model.parameters())


def test_sdf_bf16_outer_pass_keeps_a_float32_latent():
    from inr_gon.core.sdf import sdf_gon_loss

    torch.manual_seed(0)
    from inr_gon import LatentSiren

    m = LatentSiren(3, 4, 1, 32, 2)
    pts, sdf = torch.rand(3, 64, 3) * 2 - 1, torch.rand(3, 64) - 0.5
    l32, z32, _ = sdf_gon_loss(m, pts, sdf)
    l16, z16, _ = sdf_gon_loss(m, pts, sdf, outer_dtype=torch.bfloat16)
    assert z16.dtype == torch.float32 and l16.dtype == torch.float32
    torch.testing.assert_close(z16, z32, rtol=0, atol=0)
    # bf16 keeps 8 mantissa bits and SIREN's w0 = 30 magnifies phase errors: 12 % measured here
    assert abs(float(l16.detach()) - float(l32.detach())) <= 0.2 * abs(float(l32.detach()))
    g = torch.autograd.grad(l16, list(m.parameters()))
    assert all(torch.isfinite(x).all() for x in g)


def test_autocast_keeps_the_first_layer_in_float32():
    """Under bf16 autocast the first pre-activation (tens of radians at w0_first 90) stays float32;
    the hidden layers run in bf16."""
    from inr_gon import LatentSiren

    torch.manual_seed(0)
    m = LatentSiren(2, 8, 1, 32, 3, w0_first=90.0, latent_shifts=True, fused=False)
    seen = {}
    first, trunk = m.coord_preactivation, m.trunk
    m.coord_preactivation = lambda c: seen.setdefault("first", first(c))
    m.trunk = lambda u1, shifts=None, **kw: (
        seen.setdefault("u1", u1),
        seen.setdefault("out", trunk(u1, shifts, **kw)),
    )[1]
    c, z = torch.rand(50, 2) * 2 - 1, torch.randn(4, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = m(c, z)
    assert seen["first"].dtype == torch.float32 and seen["u1"].dtype == torch.float32
    assert y.dtype == torch.bfloat16
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the float32 shifts do not promote the hidden layers
        _, us = m.origin_forward(seen["u1"], z)
    assert [u.dtype for u in us] == [torch.float32, torch.bfloat16, torch.bfloat16]


def test_amp_auto_measures_the_cpu_and_records_its_choice(monkeypatch):
    from inr_gon.training import runtime

    speedup = runtime.bf16_matmul_speedup("cpu", rows=256, width=32, repeats=2)
    assert math.isfinite(speedup) and speedup > 0
    assert runtime.resolve_amp("auto", "cpu") in ("bf16", "off")
    monkeypatch.setattr(runtime, "bf16_matmul_speedup", lambda *a, **k: 3.0)
    assert runtime.resolve_amp("auto", "cpu") == "bf16" and runtime.resolve_amp("off", "cpu") == "off"
    assert runtime.resolve_amp("fp16", "cpu") == "fp16"
    assert runtime.resolve_amp("auto", torch.device("cuda")) == "off"  # CUDA keeps the paper's float32
    monkeypatch.setattr(runtime, "bf16_matmul_speedup", lambda *a, **k: 0.7)  # emulated bf16: slower
    t = Trainer(tiny_config(None, amp="auto"), dataset=tiny_dataset(), quiet=True)
    assert t.cfg.amp == "off"
    monkeypatch.setattr(runtime, "bf16_matmul_speedup", lambda *a, **k: 3.0)
    t = Trainer(tiny_config(None, amp="auto", steps=2), dataset=tiny_dataset(), quiet=True)
    assert t.cfg.amp == "bf16" and t.objective.amp == "bf16" and t.cfg.to_dict()["amp"] == "bf16"
    t.fit()
    assert all(torch.isfinite(p).all() for p in t.model.parameters())


def test_grad_clip_bounds_the_gradient_norm():
    norms = {}
    for clip in (0.0, 0.05):
        t = Trainer(tiny_config(None, grad_clip=clip), dataset=tiny_dataset(), quiet=True)
        t.train_step(t.next_batch())
        norms[clip] = float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in t.model.parameters()])))
    assert norms[0.0] > 0.1 and norms[0.05] <= 0.05 * (1 + 1e-5)


def test_the_first_layer_frequency_default_follows_the_data_it_was_measured_on(tmp_path):
    cpu, cuda = torch.device("cpu"), type("D", (), {"type": "cuda"})()
    assert ImageConfig(dataset="mnist").resolved(cpu).w0_first == 90.0
    assert ImageConfig(dataset="fashion").resolved(cpu).w0_first == 90.0
    assert ImageConfig(dataset="Fashion_MNIST").resolved(cpu).w0_first == 90.0  # any name load_mnist takes
    assert ImageConfig(dataset=str(tmp_path)).resolved(cpu).w0_first == 30.0  # an image folder
    assert ImageConfig(dataset="mnist").resolved(cuda).w0_first == 30.0  # the paper's on CUDA
    assert ImageConfig(dataset="mnist", w0_first=45.0).resolved(cpu).w0_first == 45.0
    assert ImageConfig(dataset="mnist").resolved(cpu).w0_latent == 30.0


def test_device_dependent_switches_can_be_turned_off():
    from inr_gon.cli import build_parser

    parse = lambda *a: ImageConfig.from_args(build_parser().parse_args(["train", "image", *a]))
    cpu = torch.device("cpu")
    assert parse().resolved(cpu).latent_shifts is True
    assert parse("--no-latent-shifts").resolved(cpu).latent_shifts is False
    assert parse("--latent-shifts").resolved(type("D", (), {"type": "cuda"})()).latent_shifts is True
    assert parse().resolved(type("D", (), {"type": "cuda"})()).latent_shifts is False


@pytest.mark.slow
def test_compile_option_matches_eager():
    kw = dict(steps=2, eval_every=100, hidden=16, layers=2)
    eager = Trainer(tiny_config(None, **kw), dataset=tiny_dataset(), quiet=True)
    eager.fit()
    comp = Trainer(tiny_config(None, compile=True, **kw), dataset=tiny_dataset(), quiet=True)
    comp.fit()
    for a, b in zip(comp.model.parameters(), eager.model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


# -- the 0.1 module paths -------------------------------------------------------------------------------
def test_old_module_paths_import_with_a_deprecation_warning():
    import importlib
    import sys
    import inr_gon as ig

    for old in ("inr_gon.siren", "inr_gon.gon", "inr_gon.shapes"):
        sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match="inr_gon.siren moved to inr_gon.nn.siren"):
        siren = importlib.import_module("inr_gon.siren")
    assert siren.LatentSiren is ig.LatentSiren and siren.__name__ == "inr_gon.nn.siren"
    from inr_gon.gon import gon_latent  # noqa: F401  (a from-import works too)

    assert ig.gon_latent is gon_latent


def test_a_schedule_by_time_anneals_a_run_cut_by_its_budget(monkeypatch):
    import inr_gon.training.trainer as tr

    clock = iter(range(0, 10**6, 10))  # every reading of the clock: 10 s later
    monkeypatch.setattr(tr.time, "perf_counter", lambda: float(next(clock)))
    t = Trainer(
        tiny_config(
            None,
            steps=10**6,
            seconds=100.0,
            lr=1e-3,
            lr_schedule="cosine",
            schedule_by="time",
            eval_every=10**6,
            log_every=10**6,
        ),
        dataset=tiny_dataset(),
        quiet=True,
    )
    seen = record_lrs(t)
    t.fit()
    assert 2 <= len(seen) <= 10 and seen == sorted(seen, reverse=True)
    assert seen[-1] < 0.3e-3  # by the end of the budget the rate is near lr/20
    assert t.lr_at(0, 100.0) == pytest.approx(5e-5) and t.lr_at(0, 50.0) == pytest.approx(5.25e-4)


def test_train_seconds_leave_out_evaluations_and_stop_with_the_loop(tmp_path, monkeypatch):
    """The training clock (snapshots, metrics) excludes the time of an evaluation that just ran,
    and stops when the loop ends; a checkpoint stores the clock as of its writing."""
    t = Trainer(
        tiny_config(tmp_path / "run", steps=4, eval_every=2, checkpoint_every=3), dataset=tiny_dataset(), quiet=True
    )
    evaluate = t.task.evaluate

    def slow_evaluate(trainer):
        time.sleep(0.3)
        return evaluate(trainer)

    monkeypatch.setattr(t.task, "evaluate", slow_evaluate)
    seen = []
    monkeypatch.setattr(
        t.task,
        "on_step_end",
        lambda tr: seen.append((tr.step, tr.train_seconds, time.perf_counter() - tr._t0, tr.eval_seconds)),
    )
    t.prepare_run_dir(resume=False, overwrite=False)
    metrics = t.fit()
    step, train, wall, evaluating = seen[1]  # step 2, right after the first evaluation
    assert step == 2 and evaluating >= 0.3 and abs(wall - evaluating - train) < 0.02
    frozen = t.train_seconds
    time.sleep(0.05)
    # metrics round to 0.01 s, and rounding keeps order: compare with the rounded bound
    assert t.train_seconds == frozen and metrics["train_seconds"] == round(frozen, 2)
    assert metrics["eval_seconds"] >= 0.6  # two evaluations of 0.3 s, reported apart
    state = torch.load(t.out / "ckpt_step0000003.pt", weights_only=False)
    assert state["elapsed"] - state["eval_seconds"] >= 0 and state["eval_seconds"] >= 0.3


def test_the_time_budget_counts_training_not_evaluations(monkeypatch):
    """Evaluations do not eat a time budget: with a slow evaluation every other step the run still
    trains its whole ``seconds``, and the time-following schedule sees training time only."""
    t = Trainer(
        tiny_config(None, steps=10**6, seconds=0.5, lr=1e-3, lr_schedule="cosine", schedule_by="time", eval_every=2),
        dataset=tiny_dataset(),
        quiet=True,
    )
    evaluate = t.task.evaluate

    def slow_evaluate(trainer):
        time.sleep(0.1)
        return evaluate(trainer)

    monkeypatch.setattr(t.task, "evaluate", slow_evaluate)
    seen = record_lrs(t)
    metrics = t.fit()
    assert metrics["train_seconds"] >= 0.5 and metrics["eval_seconds"] >= 0.5
    assert t.elapsed >= metrics["train_seconds"] + metrics["eval_seconds"] - 0.02
    assert seen[-1] < 0.2e-3  # annealed to near lr/20 by the end of the training time


def test_encode_steps_encode_unseen_images_with_that_many_steps():
    from inr_gon.training.tasks.image import encode_images
    from inr_gon.training.tasks.variants import ClassifierConfig

    t = Trainer(tiny_config(None, steps=2, gauss_newton=0.1, encode_steps=3), dataset=tiny_dataset(), quiet=True)
    t.fit()
    images = t.task.test_images[:5]
    kw = dict(loss=t.cfg.inner_loss, inner_weight=t.cfg.inner_weight)
    z = t.task.encode(images)
    torch.testing.assert_close(z, encode_images(t.model, images, steps=3, **kw))
    assert not torch.allclose(z, encode_images(t.model, images, **kw))  # the model's own: one step
    # the classifier's head reads the latent of its trained steps: the option is not offered
    assert "encode_steps" not in {f.name for f in dataclasses.fields(ClassifierConfig)}
    with pytest.raises(ValueError, match="encode_steps"):
        tiny_config(None, encode_steps=0).validate()
