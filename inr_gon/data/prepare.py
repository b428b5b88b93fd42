"""Prepare any collection of meshes in DeepSDF's data layout, headless and resumable.

``inr-gon prepare SRC OUT`` (:func:`prepare`) finds the meshes of ``SRC`` — ShapeNet's layout
``<synset>/<id>/models/<file>``, a flat folder, or nested folders of any ``trimesh.load`` format —
and writes, per shape, what DeepSDF's code and :func:`~inr_gon.data.deepsdf.read_deepsdf` read:

* ``SdfSamples/<dataset>/<class>/<id>.npz``: ``pos`` and ``neg``, float32 ``(N, 4)`` rows of
  ``x, y, z, sdf`` in the normalised frame (outside and inside samples);
* ``SurfaceSamples/<dataset>/<class>/<id>.ply``: surface points in the mesh's original frame;
* ``NormalizationParameters/<dataset>/<class>/<id>.npz``: ``offset``, ``scale`` with
  ``normalised = (original + offset) * scale`` (the unit sphere with DeepSDF's 1.03 margin).

Samples follow DeepSDF's preprocessing: 94 % near the surface, moved by Gaussian noise of two
scales (standard deviations √0.005 and √0.0005), the rest uniform in the normalised cube; signs
from libigl, by generalised winding numbers when a mesh is not watertight.
Every file is written to a temporary name and renamed, the samples last, so a shape whose sample
file verifies is finished: a rerun skips it and redoes the others. ``prepare.json`` records the
parameters (a rerun with other parameters into the same ``OUT`` is refused), the versions and the
counts; ``failures.json`` names each mesh that failed and why. With ``workers`` > 1 each worker
process runs on one thread (libigl's loops otherwise spread over every core in each process).
"""

from __future__ import annotations

import errno
import json
import os
import re
import time
import warnings
import zipfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import __version__
from .errors import DataError, read_json

__all__ = ["MeshEntry", "find_meshes", "read_split", "shard_of", "prepare", "prepare_one", "MESH_SUFFIXES"]

MESH_SUFFIXES = (".obj", ".ply", ".stl", ".off", ".glb", ".gltf")
#: the parameters a prepared folder is made with (a rerun must use the same)
PARAMETERS = ("dataset", "samples", "surface", "uniform_fraction", "sigmas", "seed")


@dataclass(frozen=True)
class MeshEntry:
    """One mesh to prepare: its class folder, its id and its file."""

    class_id: str
    shape_id: str
    path: Path


def find_meshes(src) -> list[MeshEntry]:
    """The meshes under ``src``, sorted by class and id. ShapeNet's ``<class>/<id>/models/<file>``
    gives class and id from the folders; any other mesh file is ``<parent folder>/<file stem>``
    (a flat folder: the folder's own name is the class). Two files with one class and id are a
    one-line :class:`DataError` naming both."""
    src = Path(src)
    if not src.is_dir():
        raise DataError(f"{src}: not a folder of meshes")
    found: dict[tuple[str, str], Path] = {}
    for path in sorted(p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in MESH_SUFFIXES):
        rel = path.relative_to(src).parts
        if len(rel) >= 4 and rel[-2] == "models":  # ShapeNet: <class>/<id>/models/<file>
            key = (rel[-4], rel[-3])
        else:
            key = (rel[-2] if len(rel) >= 2 else src.name, path.stem)
        if key in found:
            raise DataError(f"{path}: class {key[0]} id {key[1]} is also {found[key]}")
        found[key] = path
    if not found:
        raise DataError(f"{src}: no mesh files ({', '.join(MESH_SUFFIXES)}) found")
    return [MeshEntry(c, i, p) for (c, i), p in sorted(found.items())]


def read_split(path) -> dict:
    """A DeepSDF split file ``{dataset: {class: [ids]}}`` (one-line :class:`DataError` for a
    missing, malformed or empty file)."""
    path = Path(path)
    split = read_json(path, "split")
    ok = isinstance(split, dict) and all(
        isinstance(c, dict) and all(isinstance(ids, list) for ids in c.values()) for c in split.values()
    )
    if not ok:
        raise DataError(f"{path}: a split is {{dataset: {{class: [ids]}}}}")
    if not any(ids for c in split.values() for ids in c.values()):
        raise DataError(f"{path}: the split names no shapes")
    return split


def shard_of(items: list, shard: tuple[int, int]) -> list:
    """Shard ``i`` of ``n``: every ``n``-th item from the ``i``-th (disjoint and complete over ``i``)."""
    i, n = shard
    if not (n >= 1 and 0 <= i < n):
        raise ValueError(f"shard must be I/N with 0 <= I < N, got {i}/{n}")
    return items[i::n]


def parse_shard(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if not m:
        raise ValueError(f"shard must be I/N (e.g. 0/4), got {text!r}")
    i, n = int(m.group(1)), int(m.group(2))
    shard_of([], (i, n))
    return i, n


def _files(out: Path, dataset: str, entry: MeshEntry) -> dict[str, Path]:
    rel = Path(dataset) / entry.class_id
    return {
        "samples": out / "SdfSamples" / rel / f"{entry.shape_id}.npz",
        "surface": out / "SurfaceSamples" / rel / f"{entry.shape_id}.ply",
        "normalization": out / "NormalizationParameters" / rel / f"{entry.shape_id}.npz",
    }


class DiskFull(DataError):
    """No space left to write a prepared file: the run stops (every other mesh would fail too)."""


def _atomic(path: Path, write) -> None:
    """``write(tmp)`` then rename to ``path`` (a crash leaves no file under the final name); a
    full disk raises :class:`DiskFull` naming the file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}{path.suffix}")
        try:
            write(tmp)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFull(
                f"{path}: no space left on the device; the shapes finished so far are kept, rerun to resume"
            ) from err
        raise


def is_finished(files: dict[str, Path], samples: int) -> bool:
    """Whether a shape's files are complete: all three present and its samples readable with
    ``samples`` rows in all."""
    if not all(f.is_file() for f in files.values()):
        return False
    try:
        with np.load(files["samples"], allow_pickle=False) as data:
            rows = data["pos"].shape[0] + data["neg"].shape[0]
            ok = data["pos"].shape[1:] == (4,) and data["neg"].shape[1:] == (4,)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return False
    return ok and rows == samples


def prepare_one(entry: MeshEntry, out, params: dict) -> dict:
    """Normalise, sample and write one mesh (see the module docstring); returns its record
    (``seconds``, ``vertices``, ``watertight``). Raises :class:`DataError` naming the file."""
    from .meshes import load_mesh, normalize_mesh, signed_distance

    t0 = time.perf_counter()
    out = Path(out)
    files = _files(out, params["dataset"], entry)
    mesh = load_mesh(entry.path)
    if len(mesh.faces) == 0:
        raise DataError(f"{entry.path}: no faces")
    normalised, offset, scale = normalize_mesh(mesh)
    rng = np.random.default_rng([params["seed"], *map(ord, f"{entry.class_id}/{entry.shape_id}")])
    n = params["samples"]
    n_uniform = int(round(n * params["uniform_fraction"]))
    n_near = n - n_uniform
    import trimesh

    surface, _ = trimesh.sample.sample_surface(normalised, n_near, seed=rng)
    sigmas = params["sigmas"]
    std = np.repeat(sigmas, np.diff(np.linspace(0, n_near, len(sigmas) + 1).round().astype(int)))[:, None]
    points = np.concatenate(
        [np.asarray(surface) + rng.normal(size=(n_near, 3)) * std, rng.uniform(-1, 1, (n_uniform, 3))]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # not watertight: winding-number signs, recorded below
        sdf = signed_distance(normalised, points)
    rows = np.concatenate([points, sdf[:, None]], axis=1).astype(np.float32)
    if not np.isfinite(rows).all():
        raise DataError(f"{entry.path}: non-finite signed distances")
    surface_pts, _ = trimesh.sample.sample_surface(mesh, params["surface"], seed=rng)
    _atomic(files["normalization"], lambda t: np.savez(t, offset=offset, scale=np.float64(scale)))
    _atomic(files["surface"], lambda t: trimesh.PointCloud(np.asarray(surface_pts)).export(t, file_type="ply"))
    _atomic(files["samples"], lambda t: np.savez(t, pos=rows[rows[:, 3] > 0], neg=rows[rows[:, 3] <= 0]))
    return {
        "class": entry.class_id,
        "id": entry.shape_id,
        "seconds": round(time.perf_counter() - t0, 3),
        "vertices": int(len(mesh.vertices)),
        "watertight": bool(mesh.is_watertight),
    }


def _one_thread() -> None:
    """A worker process's set-up: one thread each (libigl's loops, BLAS, torch), so ``workers``
    processes share the cores instead of each spreading over all of them."""
    for var in ("IGL_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass


def _work(args):
    entry, out, params = args
    try:
        return entry, prepare_one(entry, out, params), None
    except DiskFull:
        raise
    except Exception as err:  # noqa: BLE001 - a failed mesh is named with its reason; the others go on
        return entry, None, f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"


def _select(entries: list[MeshEntry], split: dict | None, dataset: str) -> list[MeshEntry]:
    if split is None:
        return entries
    if dataset not in split:
        raise DataError(f"the split has no dataset {dataset!r} (it has {', '.join(split) or 'none'}); see --dataset")
    by_key = {(e.class_id, e.shape_id): e for e in entries}
    wanted = [(c, i) for c, ids in split[dataset].items() for i in ids]
    missing = [f"{c}/{i}" for c, i in wanted if (c, i) not in by_key]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise DataError(f"the split names meshes that are not in the source: {', '.join(missing[:3])}{more}")
    return [by_key[k] for k in wanted]


def prepare(
    src,
    out,
    *,
    dataset: str = "meshes",
    split=None,
    samples: int = 250_000,
    surface: int = 30_000,
    uniform_fraction: float = 0.06,
    sigmas=(0.0707, 0.0224),
    workers: int = 1,
    shard: tuple[int, int] = (0, 1),
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Prepare the meshes of ``src`` (or of the ``split`` dict/file) into ``out`` in DeepSDF's
    layout; returns the ``prepare.json`` record (``prepared``, ``skipped``, ``failed``, ``seconds``,
    ``meshes_per_minute``, the parameters, versions). Raises :class:`DataError` for a bad source,
    split or an ``out`` prepared with other parameters."""
    from tqdm.auto import tqdm

    if samples < 2 or surface < 1 or not 0 <= uniform_fraction < 1 or workers < 1:
        raise ValueError("need samples >= 2, surface >= 1, 0 <= uniform_fraction < 1 and workers >= 1")
    if not re.fullmatch(r"[\w.-]+", dataset):
        raise ValueError(f"dataset must be a folder name, got {dataset!r}")
    out = Path(out)
    params = dict(
        dataset=dataset,
        samples=int(samples),
        surface=int(surface),
        uniform_fraction=float(uniform_fraction),
        sigmas=[float(s) for s in sigmas],
        seed=int(seed),
    )
    record_path = out / "prepare.json"
    if record_path.is_file():
        try:
            before = json.loads(record_path.read_text()).get("parameters", {})
        except (OSError, json.JSONDecodeError):
            before = {}
        if {k: before.get(k) for k in PARAMETERS} != params:
            diff = ", ".join(
                f"{k} {before.get(k)!r} -> {params[k]!r}" for k in PARAMETERS if before.get(k) != params[k]
            )
            raise DataError(f"{out}: prepared with other parameters ({diff}); use another OUT")
    if isinstance(split, (str, os.PathLike)):
        split = read_split(split)
    entries = shard_of(_select(find_meshes(src), split, dataset), shard)
    todo = [e for e in entries if not is_finished(_files(out, dataset, e), samples)]
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    done, failed = [], []
    jobs = [(e, out, params) for e in todo]
    bar = tqdm(total=len(jobs), desc="prepare", unit="mesh", disable=not progress)
    if workers == 1:
        results = map(_work, jobs)
    else:
        pool = ProcessPoolExecutor(max_workers=workers, initializer=_one_thread)
        results = (f.result() for f in as_completed([pool.submit(_work, j) for j in jobs]))
    try:
        for entry, rec, why in results:
            if why is None:
                done.append(rec)
            else:
                failed.append({"class": entry.class_id, "id": entry.shape_id, "path": str(entry.path), "error": why})
            bar.update(1)
    finally:
        bar.close()
        if workers > 1:
            pool.shutdown()
    seconds = time.perf_counter() - t0
    import torch
    import trimesh

    record = {
        "source": str(Path(src).resolve()),
        "parameters": params,
        "shard": f"{shard[0]}/{shard[1]}",
        "workers": workers,
        "threads_per_worker": 1 if workers > 1 else "all",
        "meshes": len(entries),
        "prepared": len(done),
        "skipped": len(entries) - len(todo),
        "failed": len(failed),
        "seconds": round(seconds, 2),
        "meshes_per_minute": round(60 * len(done) / seconds, 2) if done and seconds > 0 else None,
        "not_watertight": sum(not r["watertight"] for r in done),
        "versions": {
            "inr_gon": __version__,
            "torch": torch.__version__,
            "trimesh": trimesh.__version__,
            "numpy": np.__version__,
            "libigl": _igl_version(),
        },
    }
    _atomic(record_path, lambda t: t.write_text(json.dumps(record, indent=2) + "\n"))
    if failed or (out / "failures.json").exists():
        _atomic(out / "failures.json", lambda t: t.write_text(json.dumps(failed, indent=2) + "\n"))
    return record


def _igl_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("libigl")
    except Exception:  # noqa: BLE001 - libigl is optional
        return None
