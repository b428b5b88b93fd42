"""Reliability and security (issue 7): nothing lost, no code run from files, clear errors.

* checkpoints: atomic, rotated, never a truncated "latest"; ``kill -9`` then ``--resume`` loses
  at most one checkpoint interval and continues bit-identically on CPU;
* safe loading: a pickle that would run a command is refused everywhere a file is loaded;
* bad input: one line ``inr-gon: error: ...``, a non-zero exit, no traceback, nothing overwritten;
* non-finite losses: stop naming the step (or skip), the last good checkpoint stays;
* memory: 8192² renders and 512³ meshes stay within the output size plus a bounded amount.

Subprocesses run the worktree's code (``cwd`` and ``PYTHONPATH`` = the repository root), offline,
single-threaded, and are started concurrently in waves to keep the file fast on loaded machines.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from inr_gon.checkpoint import (CheckpointError, latest_checkpoint, load_checkpoint,
                                rotate_checkpoints, save_checkpoint)
from inr_gon.cli import main
from inr_gon.train import ImageGONTrainer, NonFiniteLossError, TrainConfig

from helpers import tiny_dataset

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
       "INR_GON_OFFLINE": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
       "PYTHONWARNINGS": "ignore::DeprecationWarning"}
ENV.pop("INR_GON_DATA", None)
CLI = [sys.executable, "-m", "inr_gon.cli"]
TIMEOUT = 240


# -- helpers ------------------------------------------------------------------------------------
class Evil:
    """Unpickling this runs ``touch <marker>`` (the classic ``__reduce__`` exploit)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def write_evil(folder: Path, marker: Path) -> dict[str, Path]:
    """The crafted files: a torch.save zip checkpoint, and raw pickles (protocols 4 and 0)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {"torch_save": folder / "evil_torch.pt", "raw_pickle": folder / "evil_raw.pt",
             "pickle_p0": folder / "evil_p0.pt"}
    torch.save({"kind": "inr_gon.image_gon", "model": {"w": torch.zeros(2)}, "x": Evil(marker)},
               files["torch_save"])
    files["raw_pickle"].write_bytes(pickle.dumps({"kind": "inr_gon.image_gon", "x": Evil(marker)}))
    files["pickle_p0"].write_bytes(pickle.dumps(Evil(marker), protocol=0))
    return files


def tiny_config(out, **kw):
    base = dict(steps=6, batch_size=8, hidden=16, layers=2, latent=4, eval_every=3, checkpoint_every=2,
                eval_images=12, out=str(out), device="cpu", lr=1e-3, lr_schedule="constant")
    base.update(kw)
    return TrainConfig(**base)


def write_image_folder(folder: Path, n=12, size=12) -> Path:
    import imageio.v3 as iio
    ds = tiny_dataset(n, 0, size, seed=3)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        iio.imwrite(folder / f"img{i:02d}.png", (ds.train_images[i, 0].numpy() * 255).astype(np.uint8))
    return folder


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def start(argv, env=None) -> subprocess.Popen:
    return subprocess.Popen([str(a) for a in argv], cwd=ROOT, env=env or ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(procs: dict[str, subprocess.Popen]) -> dict[str, subprocess.CompletedProcess]:
    out = {}
    for name, p in procs.items():
        so, se = p.communicate(timeout=TIMEOUT)
        out[name] = subprocess.CompletedProcess(p.args, p.returncode, so, se)
    return out


def run_many(cases: dict[str, list], max_parallel: int = 8) -> dict[str, subprocess.CompletedProcess]:
    """Run command lines concurrently (at most ``max_parallel`` at a time)."""
    results, names = {}, list(cases)
    for i in range(0, len(names), max_parallel):
        results.update(finish({n: start(cases[n]) for n in names[i:i + max_parallel]}))
    return results


def assert_one_line_error(r: subprocess.CompletedProcess | tuple, *, argparse_ok: bool = False,
                          match: str | None = None) -> str:
    """Non-zero exit; stderr is one ``inr-gon: error:`` line (or argparse's usage + error)."""
    rc, err = (r.returncode, r.stderr) if isinstance(r, subprocess.CompletedProcess) else r
    assert rc not in (0, None), err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    if argparse_ok and lines and lines[0].startswith("usage:"):
        assert re.match(r"inr-gon( \w+)?: error: ", lines[-1]), err
        assert rc == 2
    else:
        assert len(lines) == 1 and lines[0].startswith("inr-gon: error: "), err
    if match is not None:
        assert re.search(match, lines[-1]), lines[-1]
    return lines[-1]


# -- 1. checkpoints: atomic writes, rotation ---------------------------------------------------
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
    assert good.read_bytes() == before                       # untouched, byte for byte
    assert sorted(p.name for p in tmp_path.iterdir()) == [good.name]   # no temp file, no partial
    assert latest_checkpoint(tmp_path) == good
    assert load_checkpoint(good)["step"] == 1


def test_trainer_crash_during_save_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    t = ImageGONTrainer(tiny_config(tmp_path, steps=8, checkpoint_every=2, eval_every=100),
                        dataset=tiny_dataset(), quiet=True)
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
    assert files == ["ckpt_step0000002.pt", "config.json"], files
    assert load_checkpoint(tmp_path / "ckpt_step0000002.pt")["step"] == 2


def test_rotation_keeps_newest_k_and_removes_stale_temp_files(tmp_path):
    for s in (1, 5, 10, 20, 100):
        save_checkpoint(tmp_path / f"ckpt_step{s:07d}.pt", {"step": s})
    stale = tmp_path / ".ckpt_step0000200.pt.abc123.tmp"    # left by a save killed mid-write
    stale.write_bytes(b"PK\x03\x04 half a checkpoint")
    other = tmp_path / "notes.txt"
    other.write_text("keep me")
    removed = rotate_checkpoints(tmp_path, keep=3)
    assert sorted(p.name for p in removed) == ["ckpt_step0000001.pt", "ckpt_step0000005.pt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ckpt_step0000010.pt", "ckpt_step0000020.pt", "ckpt_step0000100.pt", "notes.txt"]
    assert latest_checkpoint(tmp_path).name == "ckpt_step0000100.pt"


@pytest.mark.parametrize("cut", [0, 1, 30, 200, -50, -1])
def test_truncated_checkpoint_is_a_clear_error(tmp_path, cut):
    good = save_checkpoint(tmp_path / "c.pt", {"step": 3, "w": torch.randn(64, 64)})
    data = good.read_bytes()
    bad = tmp_path / "t.pt"
    bad.write_bytes(data[:cut] if cut >= 0 else data[:len(data) + cut])
    with pytest.raises(CheckpointError, match=r"t\.pt") as e:
        load_checkpoint(bad)
    assert "\n" not in str(e.value)


# -- 2. kill -9 during training, then --resume ---------------------------------------------------
KILL_WRAPPER = r'''
import os, signal, sys, torch
from inr_gon import train
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
'''


def _train_args(folder, out, steps):
    return ["train", "--dataset", folder, "--steps", steps, "--batch-size", 4, "--hidden", 8, "--layers", 1,
            "--latent", 2, "--outer-fraction", 0.5, "--eval-every", 1000, "--eval-images", 1,
            "--checkpoint-every", 10, "--keep-checkpoints", 3, "--seed", 7, "--device", "cpu", "--quiet",
            "--out", out]


def _final_state(run: Path, steps: int) -> dict:
    return load_checkpoint(run / f"ckpt_step{steps:07d}.pt")


def test_kill9_then_resume_is_bit_identical(tmp_path):
    N, EVERY = 60, 10
    folder = write_image_folder(tmp_path / "imgs", n=12)
    wrapper = tmp_path / "kill_wrapper.py"
    wrapper.write_text(KILL_WRAPPER)
    runs = {k: tmp_path / k for k in ("full", "external", "save")}

    def killer(mode, at):
        return start([sys.executable, wrapper, *_train_args(folder, runs[mode], N)],
                     env={**ENV, "KILL_MODE": mode, "KILL_AT": str(at)})

    # wave 1: the uninterrupted run, a run killed from outside after its first checkpoint, and a
    # run that kills itself half-way through writing the checkpoint of step 30
    procs = {"full": start(CLI + _train_args(folder, runs["full"], N)),
             "external": start(CLI + _train_args(folder, runs["external"], N)),
             "save": killer("save", 30)}
    deadline = time.monotonic() + TIMEOUT
    while not list(runs["external"].glob("ckpt_step*.pt")):        # kill -9 after the first checkpoint
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
        state = load_checkpoint(latest)                        # never truncated
        assert state["step"] % EVERY == 0 and state["step"] >= EVERY
    assert load_checkpoint(latest_checkpoint(runs["save"]))["step"] == 20   # killed at 30: one interval
    assert not (runs["save"] / "ckpt_step0000030.pt").exists()
    assert list(runs["save"].glob(".ckpt_step0000030.pt.*.tmp"))             # the half-written temp

    # wave 2: resume each to N steps
    res = finish({k: start(CLI + _train_args(folder, runs[k], N) + ["--resume"])
                  for k in ("external", "save")})
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
        assert not list(runs[k].glob("*.tmp")) and not list(runs[k].glob(".*.tmp")), k   # stale temp gone
        assert len(list(runs[k].glob("ckpt_step*.pt"))) <= 3


# -- 3. safe loading: no code runs from a file ------------------------------------------------
def test_crafted_pickles_would_run_code_when_unpickled_unsafely(tmp_path):
    """Control: the crafted payload is real (plain pickle runs it)."""
    marker = tmp_path / "CONTROL"
    pickle.loads(pickle.dumps(Evil(marker)))
    assert marker.exists()


def test_load_checkpoint_refuses_code(tmp_path):
    marker = tmp_path / "MARKER"
    for kind, f in write_evil(tmp_path / "files", marker).items():
        with pytest.raises(CheckpointError, match="refused to load unsafe content") as e:
            load_checkpoint(f)
        assert "\n" not in str(e.value) and f.name in str(e.value)
        assert not marker.exists(), kind


def test_sdf_cache_and_deepsdf_reader_refuse_pickles(tmp_path):
    import trimesh
    from inr_gon.data import read_deepsdf, sample_sdf_cached
    from inr_gon.data.errors import DataError
    marker = tmp_path / "MARKER"
    mesh_file = tmp_path / "ball.obj"
    trimesh.creation.icosphere(subdivisions=1).export(mesh_file)
    kw = dict(num_uniform=50, num_surface=50, seed=1)
    first = sample_sdf_cached(mesh_file, tmp_path / "cache", **kw)
    (entry,) = (tmp_path / "cache").glob("*.npz")
    # (a) the cache entry replaced by a raw pickle, (b) by an .npz holding a pickled object array
    for payload in ("raw", "object_array"):
        if payload == "raw":
            entry.write_bytes(pickle.dumps(Evil(marker)))
        else:
            np.savez(entry.with_suffix(""), points=np.array([Evil(marker)], dtype=object))
        with pytest.warns(UserWarning, match="unreadable cache entry"):
            again = sample_sdf_cached(mesh_file, tmp_path / "cache", **kw)
        assert torch.equal(again.points, first.points)                 # recomputed
        assert not marker.exists(), payload
    # DeepSDF sample files
    for i, payload in enumerate(("raw", "object_array", "npy")):
        root = tmp_path / f"deepsdf{i}"
        f = root / "SdfSamples" / "ds" / "cls" / "shape.npz"
        f.parent.mkdir(parents=True)
        if payload == "raw":
            f.write_bytes(pickle.dumps(Evil(marker)))
        elif payload == "object_array":
            with open(f, "wb") as fh:
                np.savez(fh, pos=np.array([Evil(marker)], dtype=object), neg=np.zeros((1, 4)))
        else:
            with open(f, "wb") as fh:
                np.save(fh, np.zeros((3, 4)))                           # an .npy named .npz
        with pytest.raises(DataError, match="shape.npz") as e:
            read_deepsdf(root)
        assert "\n" not in str(e.value)
        assert not marker.exists(), payload


# -- 4. the CLI: bad input gives one line, a non-zero exit, and overwrites nothing ---------------
@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Files for the CLI cases: a good image folder and run, broken data, crafted checkpoints."""
    from inr_gon.data.mnist import write_idx
    d = tmp_path_factory.mktemp("cli")
    e = {"d": d, "imgs": write_image_folder(d / "imgs", n=8), "marker": d / "MARKER"}
    # a finished run (occupied output folder) and its checkpoint
    t = ImageGONTrainer(tiny_config(d / "run", steps=2, hidden=8, layers=1, latent=2), dataset=tiny_dataset(),
                        quiet=True)
    t.prepare_run_dir(resume=False, overwrite=False)
    t.fit()
    (d / "run" / "metrics.json").write_text('{"test_psnr": 1.0}')
    e["run"], e["ckpt"] = d / "run", t.last_checkpoint
    e["run_snapshot"] = snapshot(d / "run")
    data = t.last_checkpoint.read_bytes()
    (d / "trunc.pt").write_bytes(data[:len(data) // 2])
    (d / "garbage.pt").write_bytes(os.urandom(3000))
    e.update(write_evil(d / "evil", e["marker"]))
    # a run folder whose newest checkpoint is crafted
    evil_run = d / "evil_run"
    evil_run.mkdir()
    (evil_run / "config.json").write_text('{"steps": 5}')
    save_checkpoint(evil_run / "ckpt_step0000002.pt", {"step": 2})
    (evil_run / "ckpt_step0000009.pt").write_bytes(e["torch_save"].read_bytes())
    e["evil_run"], e["evil_run_snapshot"] = evil_run, snapshot(evil_run)
    # image folders with a non-image and a truncated PNG
    bad = write_image_folder(d / "notimg", n=3)
    (bad / "zz.png").write_text("this is text, not a PNG")
    trunc = write_image_folder(d / "truncimg", n=3)
    (trunc / "zz.png").write_bytes((trunc / "img00.png").read_bytes()[:60])
    (d / "notimage.png").write_text("hello")
    # MNIST-style IDX folders: well-formed but not the canonical bytes (MD5), truncated gzip, empty
    md5 = d / "idx_md5"
    md5.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("t10k", 4)):
        write_idx(md5 / f"{split}-images-idx3-ubyte", rng.integers(0, 255, (n, 28, 28), dtype=np.uint8))
        write_idx(md5 / f"{split}-labels-idx1-ubyte", rng.integers(0, 10, n).astype(np.uint8))
    gz = d / "idx_gz"
    gz.mkdir()
    for f in md5.iterdir():
        write_idx(gz / (f.name + ".gz"), np.zeros((2, 28, 28) if "images" in f.name else 2, np.uint8))
    img_gz = gz / "train-images-idx3-ubyte.gz"
    img_gz.write_bytes(img_gz.read_bytes()[:20])
    (d / "idx_empty").mkdir()
    (d / "a_file").write_text("x")
    return e


def _train(e, *extra, out=None, dataset=None):
    dataset = dataset or [e["imgs"]]
    return CLI + ["train", "--dataset", *dataset, "--steps", 2, "--batch-size", 2, "--hidden", 8,
                  "--layers", 1, "--latent", 2, "--device", "cpu", "--quiet",
                  "--out", out or e["d"] / "fresh_out", *extra]


def cli_cases(e) -> dict[str, tuple[list, bool, str]]:
    """name -> (argv, argparse-level?, regex the error line must match)."""
    png = e["d"] / "x.png"
    return {
        # impossible options (argparse-level validation)
        "negative_steps": (_train(e, "--steps", -5), True, "must be >= 0"),
        "zero_batch": (_train(e, "--batch-size", 0), True, "must be >= 1"),
        "resolution_0": (_train(e, "--resolution", 0), True, "must be >= 1"),
        "mc_fraction_0": (_train(e, "--outer-fraction", 0), True, r"\(0, 1\]"),
        "mc_fraction_1.5": (_train(e, "--outer-fraction", 1.5), True, r"\(0, 1\]"),
        "lr_nan": (_train(e, "--lr", "nan"), True, "must be > 0"),
        "lr_inf": (_train(e, "--lr", "inf"), True, "must be > 0"),
        "render_resolution_0": (CLI + ["render", "--checkpoint", e["ckpt"], "--resolution", 0, "--sample", 1,
                                       "--out", png], True, "must be >= 1"),
        # impossible options found after parsing
        "out_under_a_file": (_train(e, out=e["d"] / "a_file" / "run"), False, "a_file"),
        "no_render_mode": (CLI + ["render", "--checkpoint", e["ckpt"], "--out", png], False, "exactly one"),
        "no_such_device": (_train(e, "--device", "tpu9"), False, "device"),
        # missing / corrupt / truncated data
        "missing_folder": (_train(e, dataset=[e["d"] / "nope"]), False, "neither"),
        "not_an_image": (_train(e, dataset=[e["d"] / "notimg"]), False, "zz.png"),
        "truncated_png": (_train(e, dataset=[e["d"] / "truncimg"]), False, "zz.png"),
        "idx_wrong_md5": (_train(e, dataset=["mnist", "--data-dir", e["d"] / "idx_md5"]), False, "MD5 mismatch"),
        "idx_truncated_gz": (_train(e, dataset=["mnist", "--data-dir", e["d"] / "idx_gz"]), False, "gzip"),
        "idx_missing": (_train(e, dataset=["fashion", "--data-dir", e["d"] / "idx_empty"]), False, "missing"),
        "eval_missing_data": (CLI + ["eval", "--checkpoint", e["ckpt"], "--data-dir", e["d"] / "idx_empty"],
                              False, "missing"),
        "render_not_an_image": (CLI + ["render", "--checkpoint", e["ckpt"], "--images", e["d"] / "notimage.png",
                                       "--out", png], False, "notimage.png"),
        # missing / corrupt / truncated checkpoints
        "ckpt_missing": (CLI + ["eval", "--checkpoint", e["d"] / "missing.pt"], False, "not found"),
        "ckpt_truncated": (CLI + ["render", "--checkpoint", e["d"] / "trunc.pt", "--sample", 1, "--out", png],
                           False, "trunc.pt"),
        "ckpt_garbage": (CLI + ["eval", "--checkpoint", e["d"] / "garbage.pt"], False, "garbage.pt"),
        # crafted pickles: refused, the command never runs
        "evil_render": (CLI + ["render", "--checkpoint", e["torch_save"], "--sample", 1, "--out", png],
                        False, "refused to load unsafe content"),
        "evil_eval": (CLI + ["eval", "--checkpoint", e["torch_save"]], False, "refused to load unsafe content"),
        "evil_raw_render": (CLI + ["render", "--checkpoint", e["raw_pickle"], "--sample", 1, "--out", png],
                            False, "refused to load unsafe content"),
        "evil_raw_eval": (CLI + ["eval", "--checkpoint", e["pickle_p0"]], False, "refused to load unsafe content"),
        "evil_resume": (_train(e, "--resume", out=e["evil_run"]), False, "ckpt_step0000009.pt: refused"),
        # an output folder holding another run
        "occupied_out": (_train(e, out=e["run"]), False, "holds another run"),
        "resume_other_model": (_train(e, "--resume", "--hidden", 4, out=e["run"]), False, "does not match"),
        # a non-finite loss (huge learning rate): stops, naming the step and the last good checkpoint
        "nonfinite_loss": (_train(e, "--lr", "1e30", "--checkpoint-every", 1, "--steps", 20,
                                  out=e["d"] / "nan_run"), False,
                           r"non-finite .* at step \d+; the last good checkpoint is .*ckpt_step\d+\.pt"),
    }


# the cases run as real subprocesses (all other cases run in-process through main())
# (a representative of each kind; every subprocess pays for importing torch, so not all of them)
SUBPROCESS_CASES = ["negative_steps", "idx_wrong_md5", "ckpt_truncated", "evil_render", "evil_eval",
                    "evil_resume", "occupied_out", "nonfinite_loss"]


@pytest.fixture(scope="module")
def cli_results(env):
    cases = cli_cases(env)
    return run_many({k: cases[k][0] for k in SUBPROCESS_CASES})


def _check_side_effects(name, env):
    assert not env["marker"].exists(), f"{name}: the crafted command ran"
    assert snapshot(env["run"]) == env["run_snapshot"], f"{name}: the occupied run was modified"
    assert snapshot(env["evil_run"]) == env["evil_run_snapshot"], f"{name}: the run folder was modified"
    assert not (env["d"] / "x.png").exists(), f"{name}: wrote an output"


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_cli_subprocess_bad_input(name, env, cli_results):
    _, argparse_level, match = cli_cases(env)[name]
    assert_one_line_error(cli_results[name], argparse_ok=argparse_level, match=match)
    _check_side_effects(name, env)


@pytest.mark.parametrize("name", [k for k in cli_cases(dict.fromkeys(
    ["d", "imgs", "ckpt", "torch_save", "raw_pickle", "pickle_p0", "evil_run", "run", "marker"], Path("/")))
    if k not in SUBPROCESS_CASES])
def test_cli_in_process_bad_input(name, env, capsys, monkeypatch):
    for k in ("INR_GON_DATA",):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("INR_GON_OFFLINE", "1")
    argv, argparse_level, match = cli_cases(env)[name]
    capsys.readouterr()
    try:
        rc = main([str(a) for a in argv[3:]])
    except SystemExit as exc:
        rc = exc.code
    assert_one_line_error((rc, capsys.readouterr().err), argparse_ok=argparse_level, match=match)
    _check_side_effects(name, env)


def test_nonfinite_cli_run_keeps_its_last_good_checkpoint(env, cli_results):
    run = env["d"] / "nan_run"
    step = int(re.search(r"at step (\d+)", cli_results["nonfinite_loss"].stderr).group(1))
    ckpts = sorted(run.glob("ckpt_step*.pt"))
    assert ckpts and all(int(p.stem[9:]) < step for p in ckpts)
    for p in ckpts:
        assert all(bool(torch.isfinite(v).all()) for v in load_checkpoint(p)["model"].values())


# -- 5. non-finite losses in training ------------------------------------------------------------
def _inject_nan(trainer, at_steps):
    """Make the loss of the given (1-based) steps NaN, after a real forward/backward."""
    real = trainer.train_step

    def step(images):
        loss = real(images)
        return loss * float("nan") if trainer.step + 1 in at_steps else loss
    trainer.train_step = step


def test_nonfinite_loss_stops_at_once_and_keeps_last_good_checkpoint(tmp_path):
    t = ImageGONTrainer(tiny_config(tmp_path, steps=12, checkpoint_every=2, eval_every=100),
                        dataset=tiny_dataset(), quiet=True)
    t.prepare_run_dir(resume=False, overwrite=False)
    _inject_nan(t, {7})
    hashes = {}
    real_save = t.save

    def save():
        p = real_save()
        hashes[p.name] = sha(p)
        return p
    t.save = save
    with pytest.raises(NonFiniteLossError, match=r"at step 7; the last good checkpoint is .*ckpt_step0000006\.pt"):
        t.fit()
    assert t.step == 6                                          # stopped at once, no update from step 7
    names = sorted(p.name for p in tmp_path.glob("ckpt_step*.pt"))
    assert names == ["ckpt_step0000002.pt", "ckpt_step0000004.pt", "ckpt_step0000006.pt"]
    assert all(sha(tmp_path / n) == hashes[n] for n in names)   # untouched since written
    state = load_checkpoint(tmp_path / "ckpt_step0000006.pt")
    for name, v in t.model.state_dict().items():
        assert torch.equal(v, state["model"][name])
    # resuming continues from the last good checkpoint
    t2 = ImageGONTrainer(tiny_config(tmp_path, steps=8, checkpoint_every=2, eval_every=100),
                         dataset=tiny_dataset(), quiet=True)
    t2.prepare_run_dir(resume=True, overwrite=False)
    assert t2.step == 6
    t2.fit()
    assert t2.step == 8


def test_nonfinite_loss_skip_mode_skips_the_batch(tmp_path):
    t = ImageGONTrainer(tiny_config(tmp_path, steps=10, checkpoint_every=2, eval_every=100, on_nonfinite="skip"),
                        dataset=tiny_dataset(), quiet=True)
    t.prepare_run_dir(resume=False, overwrite=False)
    _inject_nan(t, {3, 8})
    before = {}
    real = t.train_step

    def step(images):
        if t.step + 1 == 3:
            before.update({k: v.clone() for k, v in t.model.state_dict().items()})
        if t.step + 1 == 4:       # the model entering step 4 is the one that entered step 3
            assert all(torch.equal(before[k], v) for k, v in t.model.state_dict().items())
        return real(images)
    t.train_step = step
    metrics = t.fit()
    assert t.step == 10 and t.skipped == 2 and metrics["skipped_steps"] == 2
    assert all(bool(torch.isfinite(p).all()) for p in t.model.parameters())
    assert load_checkpoint(tmp_path / "ckpt_step0000010.pt")["skipped"] == 2


def test_nonfinite_model_is_never_saved(tmp_path):
    t = ImageGONTrainer(tiny_config(tmp_path, steps=4, checkpoint_every=2, eval_every=100, on_nonfinite="skip"),
                        dataset=tiny_dataset(), quiet=True)
    t.prepare_run_dir(resume=False, overwrite=False)
    t.fit()
    good = {p.name: sha(p) for p in tmp_path.glob("ckpt_step*.pt")}
    with torch.no_grad():
        next(t.model.parameters())[0] = float("inf")
    t.step += 2
    with pytest.raises(NonFiniteLossError, match=r"step 6; not saved; the last good checkpoint is .*step0000004"):
        t.save()
    assert {p.name: sha(p) for p in tmp_path.glob("ckpt_step*.pt")} == good


@pytest.mark.parametrize("split,value", [("train", float("nan")), ("test", float("inf")), ("train", -float("inf"))])
def test_nonfinite_data_is_refused_before_anything_is_written(tmp_path, split, value):
    ds = tiny_dataset()
    getattr(ds, f"{split}_images")[3, 0, 5, 5] = value
    with pytest.raises(ValueError, match=f"{split} images contain NaN or Inf"):
        ImageGONTrainer(tiny_config(tmp_path / "run"), dataset=ds, quiet=True)
    assert not (tmp_path / "run").exists()


# -- 6. wrong shapes, dtypes and values through the public API -----------------------------------
def _api_cases():
    from inr_gon import LatentSiren, extract_mesh, gon_latent, gon_loss, render
    from inr_gon.coords import grid
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


# -- 7. memory: bounded by the chunk size, not the resolution ------------------------------------
MEMORY_PROBE = r'''
import re, sys, time, torch
torch.set_num_threads(1)
def kb(key):
    return int(re.search(key + r":\s+(\d+) kB", open("/proc/self/status").read()).group(1)) * 1024
what, n = sys.argv[1], int(sys.argv[2])
if what == "render":
    from inr_gon import LatentSiren, render
    torch.manual_seed(0)
    model, z = LatentSiren(2, 4, 1, 8, 1), torch.randn(1, 4)
    render(model, z, 64)                                 # warm up (allocator, kernels)
    base, t = kb("VmRSS"), time.perf_counter()
    out = render(model, z, n, chunk_size=2 ** 16)
    extra, seconds = kb("VmHWM") - base, time.perf_counter() - t
    assert out.shape == (1, 1, n, n) and bool(torch.isfinite(out).all())
    out_bytes = out.numel() * 4
else:
    from inr_gon import extract_mesh
    from inr_gon.shapes import Sphere
    extract_mesh(Sphere(radius=0.5), 16, method=what)    # warm up
    base, t = kb("VmRSS"), time.perf_counter()
    mesh = extract_mesh(Sphere(radius=0.5), n, method=what, chunk_size=2 ** 18)
    extra, seconds = kb("VmHWM") - base, time.perf_counter() - t
    assert len(mesh.faces) > 1000 and mesh.is_watertight
    out_bytes = n ** 3 * 4
print(f"RESULT {what} {n} seconds={seconds:.1f} extra_mib={extra / 2**20:.0f} "
      f"output_mib={out_bytes / 2**20:.0f}")
'''


@pytest.fixture(scope="module")
def memory_results(tmp_path_factory):
    probe = tmp_path_factory.mktemp("mem") / "probe.py"
    probe.write_text(MEMORY_PROBE)
    cases = {"render": ("render", 8192), "dense": ("dense", 256), "c2f": ("coarse_to_fine", 512)}
    res = run_many({k: [sys.executable, probe, *v] for k, v in cases.items()}, max_parallel=3)
    out = {}
    for k, r in res.items():
        assert r.returncode == 0, r.stderr
        line = next(li for li in r.stdout.splitlines() if li.startswith("RESULT"))
        print(line)
        out[k] = {kv.split("=")[0]: float(kv.split("=")[1]) for kv in line.split()[3:]}
    return out


@pytest.mark.slow
def test_render_8192_memory_is_output_plus_a_constant(memory_results):
    r = memory_results["render"]                     # 8192² float32 = 256 MiB of output
    assert r["output_mib"] == 256
    assert r["extra_mib"] < r["output_mib"] + 64, r  # measured: ~263 MiB


@pytest.mark.slow
def test_dense_mesh_memory_is_output_plus_a_constant(memory_results):
    r = memory_results["dense"]                      # 256³ float32 = 64 MiB volume
    assert r["extra_mib"] < r["output_mib"] + 64, r  # measured: ~83 MiB (512³: ~580 for 512 MiB)


@pytest.mark.slow
def test_coarse_to_fine_512_mesh_memory_is_bounded(memory_results):
    r = memory_results["c2f"]                        # 512³ float32 = 512 MiB volume
    # the padded volume (513³) plus 1/8-resolution fill grids and chunk-sized buffers;
    # before issue 7 a second 512³ volume and a 512³ NaN mask were allocated (~1400 MiB)
    assert r["extra_mib"] < 1.75 * r["output_mib"], r  # measured: ~820 MiB
