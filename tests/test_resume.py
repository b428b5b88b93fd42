"""Resume: ``kill -9`` during training (or during a save), then ``--resume``, loses at most one
checkpoint interval and continues bit-identically on CPU."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import torch

from inr_gon.training import Trainer
from inr_gon.training.checkpoint import latest_checkpoint, load_checkpoint, restore_generator

from conftest import CLI, ENV, TIMEOUT, finish, start, tiny_config, tiny_dataset, write_image_folder


KILL_WRAPPER = r"""
import os, signal, sys, torch
mode, at = os.environ["KILL_MODE"], int(os.environ["KILL_AT"])
if mode == "save":            # SIGKILL ourselves half-way through writing the checkpoint of step `at`
    real_save = torch.save
    def save(obj, f, *a, **k):
        if isinstance(obj, dict) and obj.get("step") == at:
            import io
            buf = io.BytesIO(); real_save(obj, buf)
            f.write(buf.getvalue()[: len(buf.getvalue()) // 2]); f.flush(); os.fsync(f.fileno())
            os.kill(os.getpid(), signal.SIGKILL)
        return real_save(obj, f, *a, **k)
    torch.save = save
from inr_gon.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _train_args(folder, out, steps):
    return [
        "train",
        "--dataset",
        folder,
        "--steps",
        steps,
        "--batch-size",
        4,
        "--hidden",
        8,
        "--layers",
        1,
        "--latent",
        2,
        "--outer-fraction",
        0.5,
        "--eval-every",
        1000,
        "--eval-images",
        1,
        "--checkpoint-every",
        10,
        "--keep-checkpoints",
        3,
        "--seed",
        7,
        "--device",
        "cpu",
        "--quiet",
        "--out",
        out,
    ]


def _final_state(run: Path, steps: int) -> dict:
    return load_checkpoint(run / f"ckpt_step{steps:07d}.pt")


def test_kill9_then_resume_is_bit_identical(tmp_path):
    N, EVERY = 60, 10
    folder = write_image_folder(tmp_path / "imgs", n=12)
    wrapper = tmp_path / "kill_wrapper.py"
    wrapper.write_text(KILL_WRAPPER)
    runs = {k: tmp_path / k for k in ("full", "external", "save")}

    def killer(mode, at):
        return start(
            [sys.executable, wrapper, *_train_args(folder, runs[mode], N)],
            env={**ENV, "KILL_MODE": mode, "KILL_AT": str(at)},
        )

    # wave 1: the uninterrupted run, a run killed from outside after its first checkpoint, and a
    # run that kills itself half-way through writing the checkpoint of step 30
    procs = {
        "full": start(CLI + _train_args(folder, runs["full"], N)),
        "external": start(CLI + _train_args(folder, runs["external"], N)),
        "save": killer("save", 30),
    }
    deadline = time.monotonic() + TIMEOUT
    while not list(runs["external"].glob("ckpt_step*.pt")):  # kill -9 after the first checkpoint
        assert procs["external"].poll() is None and time.monotonic() < deadline, "run ended too early"
        time.sleep(0.005)
    procs["external"].send_signal(signal.SIGKILL)
    res = finish(procs)
    assert res["full"].returncode == 0, res["full"].stderr
    for k in ("external", "save"):
        assert res[k].returncode == -signal.SIGKILL, (k, res[k].returncode, res[k].stderr)

    # what a crash leaves: complete checkpoints only, the newest at most one interval behind
    for k in ("external", "save"):
        latest = latest_checkpoint(runs[k])
        assert latest is not None, k
        state = load_checkpoint(latest)  # never truncated
        assert state["step"] % EVERY == 0 and state["step"] >= EVERY
    assert load_checkpoint(latest_checkpoint(runs["save"]))["step"] == 20  # killed at 30: one interval
    assert not (runs["save"] / "ckpt_step0000030.pt").exists()
    assert list(runs["save"].glob(".ckpt_step0000030.pt.*.tmp"))  # the half-written temp

    # wave 2: resume each to N steps
    res = finish({k: start(CLI + _train_args(folder, runs[k], N) + ["--resume"]) for k in ("external", "save")})
    full = _final_state(runs["full"], N)
    for k, r in res.items():
        assert r.returncode == 0, (k, r.stderr)
        got = _final_state(runs[k], N)
        assert got["step"] == N
        for name, v in full["model"].items():
            assert torch.equal(v, got["model"][name]), (k, name)
        for a, b in zip(full["optimizer"]["state"].values(), got["optimizer"]["state"].values()):
            assert all(torch.equal(a[n], b[n]) for n in a), k
        assert torch.equal(full["data"]["perm"], got["data"]["perm"]) and full["data"]["pos"] == got["data"]["pos"]
        assert torch.equal(full["data"]["generator"], got["data"]["generator"])
        assert torch.equal(full["mc_generator"], got["mc_generator"])
        assert torch.equal(full["torch_rng"], got["torch_rng"])
        assert not list(runs[k].glob("*.tmp")) and not list(runs[k].glob(".*.tmp")), k  # stale temp gone
        assert len(list(runs[k].glob("ckpt_step*.pt"))) <= 3


def test_resume_continues_bit_identically(tmp_path):
    ds = tiny_dataset()
    full = Trainer(tiny_config(tmp_path / "a", steps=8), dataset=ds, quiet=True)
    full.prepare_run_dir(resume=False, overwrite=False)
    full.fit()
    half = Trainer(tiny_config(tmp_path / "b", steps=4), dataset=ds, quiet=True)
    half.prepare_run_dir(resume=False, overwrite=False)
    half.fit()
    resumed = Trainer(tiny_config(tmp_path / "b", steps=8), dataset=ds, quiet=True)
    resumed.prepare_run_dir(resume=True, overwrite=False)
    assert resumed.step == 4
    resumed.fit()
    assert resumed.step == 8
    for a, b in zip(full.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)


def test_restore_generator_exact_and_across_device_types():
    g = torch.Generator().manual_seed(3)
    torch.rand(5, generator=g)
    state, want = g.get_state(), torch.rand(4, generator=g)
    h = torch.Generator()
    assert restore_generator(h, state) and torch.equal(torch.rand(4, generator=h), want)
    # a CUDA generator's state (Philox seed and offset, 16 bytes) cannot continue on the CPU:
    # both resumes draw the same new stream instead of failing
    philox = torch.tensor([7, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0], dtype=torch.uint8)
    a, b = torch.Generator(), torch.Generator()
    assert not restore_generator(a, philox) and not restore_generator(b, philox)
    torch.testing.assert_close(torch.rand(4, generator=a), torch.rand(4, generator=b), rtol=0, atol=0)
