"""DeepSDF data folders: pre-computed signed-distance samples, normalisation parameters, surface samples.

A DeepSDF data folder holds ``SdfSamples/<dataset>/<class>/<id>.npz`` (``pos`` and ``neg`` arrays of
``x, y, z, sdf`` rows) and, when present, ``NormalizationParameters/<dataset>/<class>/<id>.npz``
(``offset``, ``scale``) and ``SurfaceSamples/<dataset>/<class>/<id>.ply``; :func:`read_deepsdf` reads
them into :class:`DeepSDFRecord` objects. This reader of sample files is kept apart from
:mod:`.meshes` (mesh files, normalising and sampling them), which re-exports both names; nothing
here loads or samples a mesh.

Conventions as in :mod:`.meshes`: points ``(N, 3)``, signed distances negative inside,
``normalised = (original + offset) * scale``.
"""

from __future__ import annotations

import dataclasses
import os
import zipfile
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
import trimesh

from .errors import DataError

__all__ = ["DeepSDFRecord", "read_deepsdf", "deepsdf_files", "read_record", "read_samples"]

# what np.load(..., allow_pickle=False) of a damaged, foreign or pickled .npz raises (the sample
# cache in .meshes catches the same)
_NPZ_ERRORS = (OSError, ValueError, KeyError, EOFError, TypeError, AttributeError, zipfile.BadZipFile)


@dataclasses.dataclass
class DeepSDFRecord:
    """One shape of a DeepSDF data folder.

    ``pos`` ``(Np, 4)`` and ``neg`` ``(Nn, 4)`` float32 tensors of ``x, y, z, sdf`` rows (outside
    and inside samples, in normalised coordinates); ``offset`` ``(3,)`` / ``scale`` from
    NormalizationParameters (``None`` when that file is absent); ``surface_path``: the
    SurfaceSamples ``.ply`` (``None`` when absent); ``dropped_nans``: rows removed for NaNs.
    """

    id: str
    dataset: str
    class_id: str
    pos: torch.Tensor
    neg: torch.Tensor
    offset: np.ndarray | None
    scale: float | None
    surface_path: Path | None
    dropped_nans: int = 0

    def surface_points(self, *, normalised: bool = False) -> np.ndarray:
        """Surface points ``(M, 3)`` float64 from ``surface_path``: in the mesh's original frame (as
        DeepSDF stores them), or with ``normalised=True`` mapped into the samples' frame,
        ``(p + offset) * scale`` (a one-line :class:`DataError` without NormalizationParameters)."""
        if normalised and (self.offset is None or self.scale is None):
            raise DataError(f"{self.id}: no NormalizationParameters to map the surface samples with")
        if self.surface_path is None:
            raise DataError(f"{self.id}: no SurfaceSamples file")
        try:
            cloud = trimesh.load(self.surface_path)
        except (ValueError, KeyError, IndexError, TypeError, OSError) as err:
            raise DataError(f"{self.surface_path}: unreadable surface samples ({err})") from err
        vertices = np.asarray(getattr(cloud, "vertices", np.zeros((0, 3))), dtype=np.float64)
        if vertices.ndim != 2 or vertices.shape[1] != 3 or len(vertices) == 0:
            raise DataError(f"{self.surface_path}: no surface points")
        return (vertices + self.offset) * self.scale if normalised else vertices


def _read_samples(path: Path, key: str, drop_nans: bool) -> tuple[torch.Tensor, int]:
    try:
        with np.load(path, allow_pickle=False) as data:
            files = list(data.files)
            arr = np.asarray(data[key]) if key in files else None
    except _NPZ_ERRORS as err:
        raise DataError(f"{path}: not a readable .npz file ({err})") from err
    if arr is None:
        raise DataError(f"{path}: missing array {key!r} (has {sorted(files)})")
    if arr.ndim != 2 or arr.shape[1] != 4 or not np.issubdtype(arr.dtype, np.floating):
        raise DataError(f"{path}: {key!r} must be a float (N, 4) array of x, y, z, sdf, got {arr.dtype} {arr.shape}")
    bad = ~np.isfinite(arr).all(axis=1)
    dropped = int(bad.sum())
    if dropped:
        if not drop_nans:
            raise DataError(f"{path}: {key!r} has {dropped} rows with NaN/inf")
        arr = arr[~bad]
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)), dropped


def _read_normalization(path: Path) -> tuple[np.ndarray, float]:
    try:
        with np.load(path, allow_pickle=False) as data:
            offset = np.asarray(data["offset"], dtype=np.float64).reshape(-1)
            scale = np.asarray(data["scale"], dtype=np.float64).reshape(-1)
    except _NPZ_ERRORS as err:
        raise DataError(f"{path}: bad normalisation file, needs 'offset' (3,) and 'scale' ({err})") from err
    if offset.shape != (3,) or scale.shape != (1,) or not np.isfinite(offset).all() or not scale[0] > 0:
        raise DataError(f"{path}: need 'offset' of 3 finite values and a positive 'scale'")
    return offset, float(scale[0])


def deepsdf_files(root: str | os.PathLike, split: Iterable[str] | dict | None = None) -> list[Path]:
    """The ``SdfSamples/<dataset>/<class>/<id>.npz`` files of a DeepSDF data folder that ``split``
    names (see :func:`read_deepsdf`), in order, without reading them. Missing folders and ids
    raise :class:`DataError` naming the file."""
    root = Path(root)
    sdf_root = root / "SdfSamples"
    if not sdf_root.is_dir():
        raise DataError(f"{root}: no SdfSamples folder (not a DeepSDF data folder)")
    if isinstance(split, dict):
        files = []
        for dataset, classes in split.items():
            for class_id, ids in classes.items():
                for shape_id in ids:
                    f = sdf_root / dataset / class_id / f"{shape_id}.npz"
                    if not f.is_file():
                        raise DataError(f"{f}: missing SdfSamples file for split entry {shape_id}")
                    files.append(f)
        if not files:
            raise DataError(f"{sdf_root}: the split names no shapes")
        return files
    found = {}
    for f in sorted(sdf_root.glob("*/*/*.npz")):
        found.setdefault(f.stem, []).append(f)
    if split is None:
        files = [f for fs in found.values() for f in fs]
        files.sort(key=lambda f: (f.parent.parent.name, f.parent.name, f.stem))
    else:
        if isinstance(split, str):
            raise TypeError("split must be a list of ids or a split dict, not a single string")
        files = []
        for shape_id in split:
            if shape_id not in found:
                raise DataError(f"{sdf_root}: no SdfSamples/*/*/{shape_id}.npz")
            if len(found[shape_id]) > 1:
                raise DataError(
                    f"{sdf_root}: id {shape_id} is ambiguous ({len(found[shape_id])} files); use a split dict"
                )
            files.append(found[shape_id][0])
    if not files:
        raise DataError(f"{sdf_root}: no sample files found")
    return files


def read_record(file: str | os.PathLike, *, drop_nans: bool = True, samples: bool = True) -> DeepSDFRecord:
    """The :class:`DeepSDFRecord` of one ``SdfSamples/<dataset>/<class>/<id>.npz`` file (its data
    folder is three levels up). ``samples=False``: only the normalisation and the surface file's
    path (``pos``/``neg`` empty), for a reader that takes the samples later."""
    f = Path(file)
    root = f.parent.parent.parent.parent
    dataset, class_id, shape_id = f.parent.parent.name, f.parent.name, f.stem
    if samples:
        pos, dropped_pos = _read_samples(f, "pos", drop_nans)
        neg, dropped_neg = _read_samples(f, "neg", drop_nans)
    else:
        pos = neg = torch.zeros(0, 4)
        dropped_pos = dropped_neg = 0
    norm = root / "NormalizationParameters" / dataset / class_id / f"{shape_id}.npz"
    offset, scale = _read_normalization(norm) if norm.is_file() else (None, None)
    surface = root / "SurfaceSamples" / dataset / class_id / f"{shape_id}.ply"
    return DeepSDFRecord(
        id=shape_id,
        dataset=dataset,
        class_id=class_id,
        pos=pos,
        neg=neg,
        offset=offset,
        scale=scale,
        surface_path=surface if surface.is_file() else None,
        dropped_nans=dropped_pos + dropped_neg,
    )


def read_samples(file: str | os.PathLike, *, drop_nans: bool = True) -> torch.Tensor:
    """The ``(Np + Nn, 4)`` float32 rows ``x, y, z, sdf`` of one ``SdfSamples`` file, ``pos`` then
    ``neg`` (NaN/inf rows dropped, or a :class:`DataError` with ``drop_nans=False``)."""
    f = Path(file)
    pos, _ = _read_samples(f, "pos", drop_nans)
    neg, _ = _read_samples(f, "neg", drop_nans)
    return torch.cat([pos, neg])


def read_deepsdf(
    root: str | os.PathLike, split: Iterable[str] | dict | None = None, *, drop_nans: bool = True
) -> list[DeepSDFRecord]:
    """Read a DeepSDF data folder: ``SdfSamples/<dataset>/<class>/<id>.npz`` plus, when present,
    ``NormalizationParameters/<dataset>/<class>/<id>.npz`` and
    ``SurfaceSamples/<dataset>/<class>/<id>.ply``.

    ``split``: ``None`` for every shape found (sorted by dataset, class, id); an iterable of shape
    ids; or a DeepSDF split dict ``{dataset: {class: [ids]}}``. Rows with NaN/inf are dropped
    (DeepSDF's ``remove_nans``) and counted, or raise with ``drop_nans=False``. Missing folders,
    missing ids and malformed arrays raise :class:`DataError` naming the file. Every shape's
    samples are held in memory: :func:`deepsdf_files` and :func:`read_record` read one at a time.
    """
    return [read_record(f, drop_nans=drop_nans) for f in deepsdf_files(root, split)]
