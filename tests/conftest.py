"""Shared test helpers and fixtures (pytest puts tests/ on sys.path: ``from conftest import ...``)."""

import hashlib
import importlib.util
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from inr_gon.data import ImageDataset

ROOT = Path(__file__).resolve().parents[1]
#: subprocesses run the worktree's code, offline, single-threaded
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    "INR_GON_OFFLINE": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "PYTHONWARNINGS": "ignore::DeprecationWarning",
}
ENV.pop("INR_GON_DATA", None)
CLI = [sys.executable, "-m", "inr_gon.cli"]
TIMEOUT = 240


def load_benchmark(name: str):
    """The module ``benchmarks/<name>.py`` (the benchmarks are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_dataset(n_train=40, n_test=12, size=12, seed=0) -> ImageDataset:
    """Soft disks of random centre and radius: ``(N, 1, size, size)`` images in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")

    def blobs(n):
        c = torch.rand(n, 2, generator=g) - 0.5
        r = 0.2 + 0.3 * torch.rand(n, 1, 1, generator=g)
        d = ((yy - c[:, 0, None, None]) ** 2 + (xx - c[:, 1, None, None]) ** 2).sqrt()
        return torch.sigmoid((r - d) * 20)[:, None]

    return ImageDataset(
        "blobs",
        blobs(n_train),
        torch.zeros(n_train, dtype=torch.long),
        blobs(n_test),
        torch.zeros(n_test, dtype=torch.long),
        "synthetic blobs",
    )


class Evil:
    """Unpickling this runs ``touch <marker>`` (the classic ``__reduce__`` exploit)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def write_evil(folder: Path, marker: Path) -> dict[str, Path]:
    """The crafted files: a torch.save zip checkpoint, and raw pickles (protocols 4 and 0)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "torch_save": folder / "evil_torch.pt",
        "raw_pickle": folder / "evil_raw.pt",
        "pickle_p0": folder / "evil_p0.pt",
    }
    torch.save({"kind": "inr_gon.image_gon", "model": {"w": torch.zeros(2)}, "x": Evil(marker)}, files["torch_save"])
    files["raw_pickle"].write_bytes(pickle.dumps({"kind": "inr_gon.image_gon", "x": Evil(marker)}))
    files["pickle_p0"].write_bytes(pickle.dumps(Evil(marker), protocol=0))
    return files


def tiny_config(out, **kw):
    """A seconds-long image run on :func:`tiny_dataset` (CPU, constant lr)."""
    from inr_gon.training import ImageConfig

    base = dict(
        steps=6,
        batch_size=8,
        hidden=16,
        layers=2,
        latent=4,
        eval_every=3,
        checkpoint_every=2,
        eval_images=12,
        out=str(out) if out is not None else None,
        device="cpu",
        lr=1e-3,
        lr_schedule="constant",
        amp="off",  # not the probed CPU default: the same on every machine
        w0_first=30.0,
    )  # blobs, not MNIST's strokes (the name says "mnist")
    base.update(kw)
    return ImageConfig(**base)


def write_image_folder(folder: Path, n=12, size=12, seed=3) -> Path:
    """``n`` PNG files of :func:`tiny_dataset` blobs in ``folder``."""
    import imageio.v3 as iio

    ds = tiny_dataset(n, 0, size, seed=seed)
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
    return subprocess.Popen(
        [str(a) for a in argv], cwd=ROOT, env=env or ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


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
        results.update(finish({n: start(cases[n]) for n in names[i : i + max_parallel]}))
    return results


def assert_one_line_error(
    r: subprocess.CompletedProcess | tuple, *, argparse_ok: bool = False, match: str | None = None
) -> str:
    """Non-zero exit; stderr is one ``inr-gon: error:`` line (or argparse's usage + error)."""
    rc, err = (r.returncode, r.stderr) if isinstance(r, subprocess.CompletedProcess) else r
    assert rc not in (0, None), err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    if argparse_ok and lines and lines[0].startswith("usage:"):
        assert re.match(r"inr-gon( \w+)*: error: ", lines[-1]), err  # e.g. "inr-gon train image: error:"
        assert rc == 2
    else:
        assert len(lines) == 1 and lines[0].startswith("inr-gon: error: "), err
    if match is not None:
        assert re.search(match, lines[-1]), lines[-1]
    return lines[-1]


def poison(trainer, at_steps) -> None:
    """Make the loss reported for the given (1-based) steps NaN, after a real forward/backward
    (its gradients stay finite, so only the non-finite check can keep the update out)."""
    steps = {at_steps} if isinstance(at_steps, int) else set(at_steps)
    real = trainer.train_step

    def step(batch):
        loss, parts = real(batch)
        return (loss * float("nan"), parts) if trainer.step + 1 in steps else (loss, parts)

    trainer.train_step = step


def record_lrs(trainer) -> list:
    """The learning rate each step of ``trainer`` runs with (appended as it trains)."""
    seen, real = [], trainer.train_step

    def step(batch):
        seen.append(trainer.opt.param_groups[0]["lr"])
        return real(batch)

    trainer.train_step = step
    return seen


def write_deepsdf_folder(root: Path, ids, nan_rows=0, pos_rows=50, neg_rows=30, seed=0) -> Path:
    """A DeepSDF data folder of random samples (class 02691156): ``pos_rows + i`` outside and
    ``neg_rows`` inside rows for the ``i``-th id (the first ``nan_rows`` inside rows' SDF NaN),
    NormalizationParameters and SurfaceSamples (20 points)."""
    import trimesh

    rng = np.random.default_rng(seed)
    for i, shape_id in enumerate(ids):
        d = root / "SdfSamples" / "ShapeNetV2" / "02691156"
        d.mkdir(parents=True, exist_ok=True)
        pos = np.concatenate([rng.uniform(-1, 1, (pos_rows + i, 3)), rng.uniform(0, 0.1, (pos_rows + i, 1))], 1)
        neg = np.concatenate([rng.uniform(-1, 1, (neg_rows, 3)), -rng.uniform(0, 0.1, (neg_rows, 1))], 1)
        neg[:nan_rows, 3] = np.nan
        np.savez(d / f"{shape_id}.npz", pos=pos.astype(np.float32), neg=neg.astype(np.float32))
        n = root / "NormalizationParameters" / "ShapeNetV2" / "02691156"
        n.mkdir(parents=True, exist_ok=True)
        np.savez(
            n / f"{shape_id}.npz",
            offset=np.array([0.1, 0.2, 0.3], np.float32),
            scale=np.array([2.0], np.float32),
        )
        s = root / "SurfaceSamples" / "ShapeNetV2" / "02691156"
        s.mkdir(parents=True, exist_ok=True)
        trimesh.PointCloud(rng.uniform(-1, 1, (20, 3))).export(s / f"{shape_id}.ply")
    return root
