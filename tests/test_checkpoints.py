"""Checkpoints: atomic writes (a failed or killed save keeps the previous file), rotation, clear
errors for truncated files, and checkpoints of earlier versions still load."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from inr_gon.training import Trainer
from inr_gon.training.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    load_checkpoint,
    rotate_checkpoints,
    save_checkpoint,
)

from conftest import tiny_config, tiny_dataset


def _partial_save(nbytes=100, exc=OSError("No space left on device")):
    """A torch.save that writes a truncated checkpoint and then fails."""
    real = torch.save

    def bad(obj, f, *a, **k):
        import io

        buf = io.BytesIO()
        real(obj, buf)
        f.write(buf.getvalue()[:nbytes])
        f.flush()
        raise exc

    return bad


@pytest.mark.parametrize("same_name", [False, True])
def test_failed_save_keeps_previous_checkpoint_and_leaves_no_temp(tmp_path, monkeypatch, same_name):
    good = save_checkpoint(tmp_path / "ckpt_step0000001.pt", {"step": 1, "w": torch.arange(1000.0)})
    before = good.read_bytes()
    monkeypatch.setattr(torch, "save", _partial_save())
    target = good if same_name else tmp_path / "ckpt_step0000002.pt"
    with pytest.raises(OSError, match="No space"):
        save_checkpoint(target, {"step": 2, "w": torch.zeros(1000)})
    monkeypatch.undo()
    assert good.read_bytes() == before  # untouched, byte for byte
    assert sorted(p.name for p in tmp_path.iterdir()) == [good.name]  # no temp file, no partial
    assert latest_checkpoint(tmp_path) == good
    assert load_checkpoint(good)["step"] == 1


def test_trainer_crash_during_save_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    t = Trainer(tiny_config(tmp_path, steps=8, checkpoint_every=2, eval_every=100), dataset=tiny_dataset(), quiet=True)
    t.prepare_run_dir(resume=False, overwrite=False)
    real, calls = torch.save, []

    def second_save_fails(obj, f, *a, **k):
        calls.append(obj["step"])
        if len(calls) == 2:
            return _partial_save(exc=OSError("disk full"))(obj, f, *a, **k)
        return real(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", second_save_fails)
    with pytest.raises(OSError, match="disk full"):
        t.fit()
    monkeypatch.undo()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["ckpt_step0000002.pt", "config.json", "metrics.jsonl"], files
    assert load_checkpoint(tmp_path / "ckpt_step0000002.pt")["step"] == 2


def test_rotation_keeps_newest_k_and_removes_stale_temp_files(tmp_path):
    for s in (1, 5, 10, 20, 100):
        save_checkpoint(tmp_path / f"ckpt_step{s:07d}.pt", {"step": s})
    stale = tmp_path / ".ckpt_step0000200.pt.abc123.tmp"  # left by a save killed mid-write
    stale.write_bytes(b"PK\x03\x04 half a checkpoint")
    other = tmp_path / "notes.txt"
    other.write_text("keep me")
    removed = rotate_checkpoints(tmp_path, keep=3)
    assert sorted(p.name for p in removed) == ["ckpt_step0000001.pt", "ckpt_step0000005.pt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ckpt_step0000010.pt",
        "ckpt_step0000020.pt",
        "ckpt_step0000100.pt",
        "notes.txt",
    ]
    assert latest_checkpoint(tmp_path).name == "ckpt_step0000100.pt"


@pytest.mark.parametrize("cut", [0, 1, 30, 200, -50, -1])
def test_truncated_checkpoint_is_a_clear_error(tmp_path, cut):
    good = save_checkpoint(tmp_path / "c.pt", {"step": 3, "w": torch.randn(64, 64)})
    data = good.read_bytes()
    bad = tmp_path / "t.pt"
    bad.write_bytes(data[:cut] if cut >= 0 else data[: len(data) + cut])
    with pytest.raises(CheckpointError, match=r"t\.pt") as e:
        load_checkpoint(bad)
    assert "\n" not in str(e.value)


# -- checkpoints written by inr_gon 0.1 (before the trainer redesign) -------------------------------
FIXTURES = Path(__file__).parent / "fixtures" / "checkpoints"


def _copy_run(name, dst):
    dst.mkdir(parents=True)
    for f in (FIXTURES / name).iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


@pytest.fixture
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # the fixtures were written with one thread
    yield
    torch.set_num_threads(n)


def _resumes_like_a_new_run(old, new_out, make_config, **data):
    """Train a new run to step 4, then resume it and the 0.1 run ``old`` to step 6: identical weights."""
    new = Trainer(make_config(new_out, 4), quiet=True, **data)
    new.prepare_run_dir(resume=False, overwrite=False)
    new.fit()
    results = []
    for run in (old, new_out):
        t = Trainer(make_config(run, 6), quiet=True, **data)
        t.prepare_run_dir(resume=True, overwrite=False)
        assert t.step == 4
        t.fit()
        results.append(t.model.state_dict())
    # equal up to float rounding: the 0.1 run's step-4 weights were computed on another CPU, whose kernels
    # may sum in another order (1e-9 apart here); a setting resumed differently moves them by far more
    assert all(torch.allclose(results[0][k], results[1][k], rtol=0, atol=1e-6) for k in results[0])


def test_a_0_1_image_checkpoint_resumes_like_a_new_one(tmp_path, one_thread):
    kw = dict(
        batch_size=8,
        hidden=8,
        layers=1,
        latent=2,
        eval_every=100,
        checkpoint_every=4,
        seconds=0.0,
        lr=5e-4,  # the 0.1 run's (then the cpu preset's) rate
        lr_schedule=None,
        w0_first=30.0,
        latent_shifts=False,
        gauss_newton=0.0,
    )  # the 0.1 run's model

    def image(out, steps):
        return tiny_config(out, **kw, steps=steps)

    _resumes_like_a_new_run(_copy_run("image_v1", tmp_path / "old"), tmp_path / "new", image, dataset=tiny_dataset())


def test_a_0_1_sdf_checkpoint_resumes_like_a_new_one(tmp_path, one_thread):
    from inr_gon.training import SdfConfig

    kw = dict(
        num_shapes=4,
        num_unseen=1,
        pool=128,
        points=32,
        batch_size=2,
        hidden=8,
        layers=1,
        latent=2,
        checkpoint_every=4,
        device="cpu",
        eval_every=100,
        # the options of the 0.1 run (its defaults then)
        outer_loss="clamped_l1",
        inner_loss="clamped_l1",
        inner_weight=0.3,
        lr=2e-4,
        lr_schedule="constant",
        schedule_by="steps",
        w0_first=30.0,
        fresh_shapes=0.0,
        amp="off",
        gauss_newton=0.0,
    )

    def sdf(out, steps):
        return SdfConfig(steps=steps, out=str(out), **kw)

    _resumes_like_a_new_run(_copy_run("sdf_v1", tmp_path / "old"), tmp_path / "new", sdf)


def test_0_1_checkpoints_render_and_evaluate(tmp_path, capsys):
    import json
    from inr_gon.cli import main

    img = FIXTURES / "image_v1" / "ckpt_step0000004.pt"
    assert (
        main(
            [
                "render",
                "--checkpoint",
                str(img),
                "--resolution",
                "20",
                "--sample",
                "4",
                "--out",
                str(tmp_path / "s.png"),
            ]
        )
        == 0
    )
    assert (tmp_path / "s.png").is_file()
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(img), "--num", "20"]) == 0  # MNIST (or its embedded subset)
    res = json.loads(capsys.readouterr().out)
    assert res["num_test"] == 20 and res["step"] == 4
    sdf = FIXTURES / "sdf_v1" / "ckpt_step0000004.pt"
    assert main(["eval", "--checkpoint", str(sdf), "--device", "cpu"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["step"] == 4 and 0 <= res["train_sign_iou"] <= 1 and "unseen_iou" in res


def test_encode_steps_on_the_command_line_overrides_the_runs_encoding(capsys):
    import json
    from inr_gon.cli import build_parser, main
    from inr_gon.cli.checkpoints import _dataset_for, _encode, _load
    from inr_gon.training.tasks.image import encode_images

    img = FIXTURES / "image_v1" / "ckpt_step0000004.pt"  # trained with the single plain step
    args = build_parser().parse_args(["eval", "--checkpoint", str(img), "--encode-steps", "3"])
    run = _load(args, "eval")
    assert run.config.encode_steps == 3
    x = _dataset_for(run, args).test_images[:4]
    kw = dict(loss=run.config.inner_loss, inner_weight=run.config.inner_weight)
    torch.testing.assert_close(_encode(run, x), encode_images(run.model, x, steps=3, **kw))
    assert not torch.allclose(_encode(run, x), encode_images(run.model, x, **kw))
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(img), "--num", "20", "--encode-steps", "3"]) == 0
    assert json.loads(capsys.readouterr().out)["num_test"] == 20
    with pytest.raises(SystemExit):
        main(["eval", "--checkpoint", str(img), "--encode-steps", "0"])
