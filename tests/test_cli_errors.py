"""The command line on bad input: one line ``inr-gon: error: ...``, exit status 2, no traceback,
nothing overwritten (real subprocesses for one case of each kind, the rest in-process)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from inr_gon.cli import main
from inr_gon.training import Trainer
from inr_gon.training.checkpoint import load_checkpoint, save_checkpoint

from conftest import (
    CLI,
    assert_one_line_error,
    run_many,
    snapshot,
    tiny_config,
    tiny_dataset,
    write_evil,
    write_image_folder,
)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Files for the CLI cases: a good image folder and run, broken data, crafted checkpoints."""
    from inr_gon.data.mnist import write_idx

    d = tmp_path_factory.mktemp("cli")
    e = {"d": d, "imgs": write_image_folder(d / "imgs", n=8), "marker": d / "MARKER"}
    # a finished run (occupied output folder) and its checkpoint
    t = Trainer(tiny_config(d / "run", steps=2, hidden=8, layers=1, latent=2), dataset=tiny_dataset(), quiet=True)
    t.prepare_run_dir(resume=False, overwrite=False)
    t.fit()
    (d / "run" / "metrics.json").write_text('{"test_psnr": 1.0}')
    e["run"], e["ckpt"] = d / "run", t.last_checkpoint
    e["run_snapshot"] = snapshot(d / "run")
    data = t.last_checkpoint.read_bytes()
    (d / "trunc.pt").write_bytes(data[: len(data) // 2])
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
    return CLI + [
        "train",
        "--dataset",
        *dataset,
        "--steps",
        2,
        "--batch-size",
        2,
        "--hidden",
        8,
        "--layers",
        1,
        "--latent",
        2,
        "--device",
        "cpu",
        "--quiet",
        "--out",
        out or e["d"] / "fresh_out",
        *extra,
    ]


def cli_cases(e) -> dict[str, tuple[list, bool, str]]:
    """name -> (argv, argparse-level?, regex the error line must match)."""
    png = e["d"] / "x.png"
    return {
        # impossible options (argparse-level validation)
        "negative_steps": (_train(e, "--steps", -5), True, "must be >= 0"),
        "zero_batch": (_train(e, "--batch-size", 0), True, "must be >= 1"),
        "image_size_0": (_train(e, "--image-size", 0), True, "must be >= 1"),
        "mc_fraction_0": (_train(e, "--outer-fraction", 0), True, r"\(0, 1\]"),
        "mc_fraction_1.5": (_train(e, "--outer-fraction", 1.5), True, r"\(0, 1\]"),
        "lr_nan": (_train(e, "--lr", "nan"), True, "must be > 0"),
        "lr_inf": (_train(e, "--lr", "inf"), True, "must be > 0"),
        "render_resolution_0": (
            CLI + ["render", "--checkpoint", e["ckpt"], "--resolution", 0, "--sample", 1, "--out", png],
            True,
            "must be >= 1",
        ),
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
        "eval_missing_data": (
            CLI + ["eval", "--checkpoint", e["ckpt"], "--data-dir", e["d"] / "idx_empty"],
            False,
            "missing",
        ),
        "render_not_an_image": (
            CLI + ["render", "--checkpoint", e["ckpt"], "--images", e["d"] / "notimage.png", "--out", png],
            False,
            "notimage.png",
        ),
        # missing / corrupt / truncated checkpoints
        "ckpt_missing": (CLI + ["eval", "--checkpoint", e["d"] / "missing.pt"], False, "not found"),
        "ckpt_truncated": (
            CLI + ["render", "--checkpoint", e["d"] / "trunc.pt", "--sample", 1, "--out", png],
            False,
            "trunc.pt",
        ),
        "ckpt_garbage": (CLI + ["eval", "--checkpoint", e["d"] / "garbage.pt"], False, "garbage.pt"),
        # crafted pickles: refused, the command never runs
        "evil_render": (
            CLI + ["render", "--checkpoint", e["torch_save"], "--sample", 1, "--out", png],
            False,
            "refused to load unsafe content",
        ),
        "evil_eval": (CLI + ["eval", "--checkpoint", e["torch_save"]], False, "refused to load unsafe content"),
        "evil_raw_render": (
            CLI + ["render", "--checkpoint", e["raw_pickle"], "--sample", 1, "--out", png],
            False,
            "refused to load unsafe content",
        ),
        "evil_raw_eval": (CLI + ["eval", "--checkpoint", e["pickle_p0"]], False, "refused to load unsafe content"),
        "evil_resume": (_train(e, "--resume", out=e["evil_run"]), False, "ckpt_step0000009.pt: refused"),
        # an output folder holding another run
        "occupied_out": (_train(e, out=e["run"]), False, "holds another run"),
        "resume_other_model": (_train(e, "--resume", "--hidden", 4, out=e["run"]), False, "does not match"),
        # a non-finite loss (huge learning rate): stops, naming the step and the last good checkpoint
        "nonfinite_loss": (
            _train(e, "--lr", "1e30", "--checkpoint-every", 1, "--steps", 20, out=e["d"] / "nan_run"),
            False,
            r"non-finite .* at step \d+; the last good checkpoint is .*ckpt_step\d+\.pt",
        ),
    }


# the cases run as real subprocesses (all other cases run in-process through main())
# (a representative of each kind; every subprocess pays for importing torch, so not all of them)
SUBPROCESS_CASES = [
    "negative_steps",
    "idx_wrong_md5",
    "ckpt_truncated",
    "evil_render",
    "evil_eval",
    "evil_resume",
    "occupied_out",
    "nonfinite_loss",
]


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


@pytest.mark.parametrize(
    "name",
    [
        k
        for k in cli_cases(
            dict.fromkeys(
                ["d", "imgs", "ckpt", "torch_save", "raw_pickle", "pickle_p0", "evil_run", "run", "marker"], Path("/")
            )
        )
        if k not in SUBPROCESS_CASES
    ],
)
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
