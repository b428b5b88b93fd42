"""End to end: the trainer, the `inr-gon` CLI and the main example on tiny data."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from inr_gon.cli import main
from inr_gon.eval.image import psnr, ssim
from inr_gon.training import ImageConfig, Trainer

from conftest import tiny_config, tiny_dataset, write_image_folder

ROOT = Path(__file__).resolve().parents[1]
OUTPUTS = [
    "recon_train.png",
    "recon_test.png",
    "samples.png",
    "slerp.png",
    "slerp.gif",
    "superres.png",
    "curves.png",
    "metrics.json",
    "config.json",
]


def test_trainer_learns_and_writes_every_output(tmp_path):
    t = Trainer(tiny_config(tmp_path / "run", steps=60, eval_every=30), dataset=tiny_dataset(), quiet=True)
    t.prepare_run_dir(resume=False, overwrite=False)
    before = t.task.reconstruction_metrics(t.task.test_images)["psnr"]
    metrics = t.fit()
    paths, _ = t.write_outputs(metrics)
    assert metrics["test_psnr"] > before + 1.0  # it learned something on unseen images
    for name in OUTPUTS:
        assert (t.out / name).is_file(), name
    m = json.loads((t.out / "metrics.json").read_text())
    for k in ("test_psnr", "test_ssim", "steps", "train_seconds", "params", "dataset", "num_test"):
        assert k in m
    assert m["steps"] == 60 and m["num_test"] == 12
    assert m["collapsed"] is False and m["test_psnr"] > m["mean_image_psnr"] + 1.0
    assert len(list(t.out.glob("ckpt_step*.pt"))) <= 3  # rotation keeps the newest 3
    assert {p.name for p in paths.values()} >= set(OUTPUTS) - {"config.json"}
    # the linear baseline beside the GON: PCA of the latent's size, scored by the same psnr/ssim
    for k in (
        "pca_test_psnr",
        "pca_test_ssim",
        "pca_margin_psnr",
        "pca_margin_ssim",
        "pca_seconds",
        "below_linear_baseline",
    ):
        assert k in m, k
    ds = tiny_dataset()
    X, Y = ds.train_images.flatten(1).double(), ds.test_images.flatten(1).double()
    mean = X.mean(0)
    V = torch.linalg.svd(X - mean, full_matrices=False)[2][:4]  # latent 4
    ref = (mean + (Y - mean) @ V.T @ V).float().view_as(ds.test_images)
    assert m["pca_test_psnr"] == pytest.approx(float(psnr(ref, ds.test_images).mean()), abs=1e-4)
    assert m["pca_test_ssim"] == pytest.approx(float(ssim(ref, ds.test_images).mean()), abs=1e-4)
    assert m["pca_margin_psnr"] == pytest.approx(m["test_psnr"] - m["pca_test_psnr"])
    assert m["below_linear_baseline"] is (m["pca_margin_psnr"] < 0)


def test_the_summary_names_the_linear_baseline_and_a_run_behind_it(tmp_path):
    from inr_gon.training.tasks.image import baseline_lines

    ahead = dict(
        pca_test_psnr=20.0, pca_test_ssim=0.8, pca_margin_psnr=1.5, pca_seconds=0.4, below_linear_baseline=False
    )
    (line,) = baseline_lines(ahead, 32)
    assert "PCA, 32 components" in line and "1.50 dB ahead" in line and "BELOW" not in line
    (line,) = baseline_lines({**ahead, "pca_margin_psnr": -1.27, "below_linear_baseline": True}, 128)
    assert "1.27 dB behind" in line and "BELOW ITS LINEAR BASELINE" in line
    assert baseline_lines({"pca_test_psnr": None}, 8) == []


def test_a_run_that_did_not_learn_says_so(tmp_path):
    """Reconstructions no better than the mean training image (here: an untrained model, and a
    diverged one) are a failed run: a warning, ``collapsed`` in the metrics, and status 3 with
    --strict."""
    from inr_gon.training.tasks.base import CollapseWarning

    t = Trainer(tiny_config(tmp_path / "run", steps=1), dataset=tiny_dataset(), quiet=True)
    untrained = t.task.reconstruction_metrics(t.task.test_images)["psnr"]
    with pytest.warns(CollapseWarning, match="failed to learn: test PSNR .* mean training image"):
        m = t.task.failure_check(untrained)
    assert m["collapsed"] and untrained < m["mean_image_psnr"] + 1.0
    with pytest.warns(CollapseWarning, match="diverged"):
        assert t.task.failure_check(float("nan"))["collapsed"]
    folder = write_image_folder(tmp_path / "imgs", n=8)
    args = [
        "train",
        "image",
        "--dataset",
        str(folder),
        "--steps",
        "1",
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
        "--strict",
    ]
    assert main(args + ["--out", str(tmp_path / "strict")]) == 3
    assert json.loads((tmp_path / "strict" / "metrics.json").read_text())["collapsed"] is True


def test_cosine_schedule_and_cpu_defaults(tmp_path):
    t = Trainer(tiny_config(tmp_path, steps=100, lr=1e-3, lr_schedule="cosine"), dataset=tiny_dataset(), quiet=True)
    lrs = [t.lr_at(s) for s in range(101)]
    assert lrs[0] == pytest.approx(1e-3) and lrs[100] == pytest.approx(5e-5) and lrs[50] == pytest.approx(5.25e-4)
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))
    cfg = ImageConfig(device="cpu").resolved(torch.device("cpu"))
    assert cfg.lr_schedule == "cosine" and cfg.seconds == 250.0 and cfg.outer_fraction == 0.25
    assert ImageConfig(seconds=0).resolved(torch.device("cpu")).seconds == 0  # 0: no limit


def test_occupied_run_dir_is_refused(tmp_path):
    from inr_gon.training.checkpoint import RunDirectoryError

    ds = tiny_dataset()
    t = Trainer(tiny_config(tmp_path, steps=2), dataset=ds, quiet=True)
    t.prepare_run_dir(resume=False, overwrite=False)
    t.fit()
    t2 = Trainer(tiny_config(tmp_path, steps=2), dataset=ds, quiet=True)
    with pytest.raises(RunDirectoryError, match="--resume"):
        t2.prepare_run_dir(resume=False, overwrite=False)
    t2.prepare_run_dir(resume=False, overwrite=True)
    assert not list(tmp_path.glob("ckpt_step*.pt"))


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(steps=-1), "steps"),
        (dict(batch_size=0), "batch_size"),
        (dict(outer_fraction=1.5), "outer_fraction"),
        (dict(lr=-1.0), "lr"),
    ],
)
def test_impossible_options(tmp_path, kw, match):
    with pytest.raises(ValueError, match=match):
        Trainer(tiny_config(tmp_path, **kw), dataset=tiny_dataset(), quiet=True)


def test_nan_data_is_refused(tmp_path):
    ds = tiny_dataset()
    ds.train_images[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        Trainer(tiny_config(tmp_path), dataset=ds, quiet=True)


def test_cli_train_render_eval_round_trip(tmp_path, capsys):
    folder = write_image_folder(tmp_path / "imgs", n=10, seed=0)
    out = tmp_path / "run"
    rc = main(
        [
            "train",
            "--dataset",
            str(folder),
            "--steps",
            "4",
            "--batch-size",
            "4",
            "--hidden",
            "16",
            "--layers",
            "2",
            "--latent",
            "4",
            "--eval-every",
            "2",
            "--out",
            str(out),
            "--device",
            "cpu",
            "--quiet",
        ]
    )
    assert rc == 0
    for name in OUTPUTS:
        assert (out / name).is_file(), name
    ckpt = sorted(out.glob("ckpt_step*.pt"))[-1]
    import imageio.v3 as iio

    assert (
        main(
            [
                "render",
                "--checkpoint",
                str(ckpt),
                "--resolution",
                "40",
                "--sample",
                "6",
                "--nrow",
                "3",
                "--out",
                str(tmp_path / "s.png"),
            ]
        )
        == 0
    )
    img = iio.imread(tmp_path / "s.png")
    assert img.shape == (2 * 42 + 2, 3 * 42 + 2, 3)
    files = [str(p) for p in sorted(folder.glob("*.png"))[:2]]
    assert (
        main(
            [
                "render",
                "--checkpoint",
                str(ckpt),
                "--resolution",
                "24",
                "--images",
                *files,
                "--out",
                str(tmp_path / "e.png"),
            ]
        )
        == 0
    )
    assert iio.imread(tmp_path / "e.png").shape == (24 + 4, 2 * 26 + 2, 3)
    assert (
        main(
            [
                "render",
                "--checkpoint",
                str(ckpt),
                "--resolution",
                "16",
                "--slerp",
                *files,
                "--frames",
                "5",
                "--out",
                str(tmp_path / "i.gif"),
            ]
        )
        == 0
    )
    assert iio.imread(tmp_path / "i.gif", index=None).shape[:3] == (5, 16, 16)
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(ckpt)]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["num_test"] == 1 and np.isfinite(res["test_psnr"])


def test_cli_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["render", "--checkpoint", str(bad), "--sample", "2", "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("inr-gon: error:") and "bad.pt" in err and "\n" not in err
    assert main(["eval", "--checkpoint", str(tmp_path / "missing.pt")]) == 2
    assert "not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--steps", "-3"])
    assert "must be >= 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--outer-fraction", "0"])


def test_main_example_runs_as_a_script(tmp_path):
    """The README's main command, shortened: a fresh process, real data loading, all outputs."""
    folder = write_image_folder(tmp_path / "imgs", n=6, seed=0)
    out = tmp_path / "run"
    r = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "fit_mnist_siren.py"),
            "--dataset",
            str(folder),
            "--steps",
            "2",
            "--batch-size",
            "2",
            "--hidden",
            "8",
            "--layers",
            "1",
            "--latent",
            "2",
            "--out",
            str(out),
            "--device",
            "cpu",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert "test PSNR" in r.stdout and str(out) in r.stdout
    r2 = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "fit_mnist_siren.py"),
            "--dataset",
            str(folder),
            "--steps",
            "2",
            "--out",
            str(out),
            "--device",
            "cpu",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r2.returncode == 2 and "holds another run" in r2.stderr and r2.stderr.count("\n") == 1


def test_convergence_snapshots_at_training_times(tmp_path, monkeypatch):
    """Figure 6: reconstructions of fixed test images at given training times, PSNR under each."""
    import inr_gon.training.trainer as tr

    clock = iter(x * 0.5 for x in range(10**6))  # every reading of the clock: 0.5 s later
    monkeypatch.setattr(tr.time, "perf_counter", lambda: next(clock))
    t = Trainer(
        tiny_config(tmp_path / "run", steps=12, snapshots="5,15,1000", eval_every=100, seconds=0.0),
        dataset=tiny_dataset(),
        quiet=True,
    )
    t.prepare_run_dir(resume=False, overwrite=False)
    metrics = t.fit()
    monkeypatch.undo()
    paths, metrics = t.write_outputs(metrics)
    conv = metrics["convergence"]
    assert [c["target_seconds"] for c in conv] == [5.0, 15.0]  # 1000 s never came
    assert conv[0]["step"] < conv[1]["step"] and all(np.isfinite(c["psnr"]) for c in conv)
    assert all(c["seconds"] >= c["target_seconds"] for c in conv)
    assert (t.out / "convergence.png").is_file() and "convergence" in paths
    with pytest.raises(ValueError, match="snapshots"):
        ImageConfig(snapshots="3,-1").validate()
