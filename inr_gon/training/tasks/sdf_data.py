"""Shape sets for the SDF task: per-shape point pools with signed distances, and ground truth.

Sources: the procedural family of analytic shapes (:class:`~inr_gon.geometry.shapes.ProceduralShapes`,
offline), a folder of mesh files (normalised DeepSDF-style, sampled with libigl signed
distances, cached), or DeepSDF ``SdfSamples`` files. Some shapes are held out as *unseen*
shapes: never trained on, encoded by the model's single step at evaluation.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ...geometry.shapes import ProceduralShapes

__all__ = [
    "SdfShapeSet",
    "load_shapes",
    "analytic_pool",
    "new_shape_family",
    "family_shapes",
    "ShapeBank",
    "mesh_files",
    "MESH_SUFFIXES",
]

MESH_SUFFIXES = (".obj", ".ply", ".stl", ".off", ".glb", ".gltf")


@dataclass
class SdfShapeSet:
    """Shapes as point pools plus ground truth.

    Attributes:
        name, source: description.
        names: ``S`` shape names; ``train_index`` / ``unseen_index``: which are which.
        points: ``(S, N, 3)`` float32; ``sdf``: ``(S, N)`` float32 (CPU).
        analytic: ``S`` SDF callables (procedural) or ``None``.
        truth: ``S`` ground truths for the metrics, in the samples' frame: a ``trimesh.Trimesh`` (a
            mesh or, for analytic shapes, built lazily), an ``(M, 3)`` surface point array
            (DeepSDF), or ``None``.
        normalization: DeepSDF data: per shape ``(offset (3,), scale, surface points in the
            original frame)`` (``normalised = (original + offset) * scale``), or ``None``.
        stream: DeepSDF data read from the files at each use (``points`` and ``sdf`` are then
            ``None``): the :class:`~inr_gon.data.sample_pools.SamplePools`; ``None`` when the
            pools are held in memory.
        storage: where the pools are, in words (a run prints it).

    DeepSDF ground truths (``truth``, ``normalization``) are read from their files when indexed.
    """

    name: str
    source: str
    names: list
    points: torch.Tensor
    sdf: torch.Tensor
    train_index: list
    unseen_index: list
    analytic: list | None = None
    truth: list | None = None
    normalization: list | None = None
    stream: object | None = None
    storage: str = "in memory"

    @property
    def pool_size(self) -> int:
        """Points in each shape's pool."""
        return self.stream.pool if self.stream is not None else self.points.shape[1]

    def take(self, index) -> tuple[torch.Tensor, torch.Tensor]:
        """The pools of shapes ``index`` (CPU): ``(points (B, N, 3), sdf (B, N))``."""
        if self.stream is not None:
            return self.stream.take(index)
        idx = torch.as_tensor([int(i) for i in index], dtype=torch.long)
        return self.points[idx], self.sdf[idx]


class _Lazy(Sequence):
    """``n`` items made by ``fn(i)`` when indexed (the last few kept)."""

    def __init__(self, fn, n: int):
        self._fn, self._n = functools.lru_cache(maxsize=4)(fn), n

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i):
        if not -self._n <= i < self._n:
            raise IndexError(i)
        return self._fn(i % self._n)


#: ``stream="auto"`` streams when the pools held in memory would take more bytes than this
STREAM_ABOVE = 1 << 30


#: seed offsets of the procedural held-out family and of the new shapes of ``fresh_shapes``
UNSEEN_SEED, FRESH_SEED = 2_000_003, 1_000_003


def analytic_pool(shape, n: int, generator: torch.Generator, *, band: float = 0.1) -> tuple:
    """``n`` points of an analytic shape: half uniform in ``[-1, 1]^3``, half with ``|sdf| < band``
    (rejection sampling). Returns ``(points (n, 3), sdf (n,))``."""
    n_uni = n // 2
    pts = [torch.rand(n_uni, 3, generator=generator) * 2 - 1]
    need, tries, size = n - n_uni, 0, max(8 * (n - n_uni), 4096)
    while need > 0:
        cand = torch.rand(size, 3, generator=generator) * 2 - 1
        with torch.no_grad():
            hit = shape(cand).abs() < band
        near = cand[hit][:need]
        pts.append(near)
        need -= near.shape[0]
        tries += 1
        if tries > 50:
            raise RuntimeError("could not sample near-surface points of a procedural shape")
        # a shape with little surface: the next draw sized by the acceptance seen so far
        rate = max(int(hit.sum()), 1) / size
        size = int(min(max(size, 1.25 * need / rate), 2**22))
    p = torch.cat(pts)
    with torch.no_grad():
        return p, shape(p).float()


def new_shape_family(seed: int) -> ProceduralShapes:
    """The family the new shapes of a run with ``seed`` come from (``fresh_shapes``, ``fresh_bank``)."""
    return ProceduralShapes(2**62, seed=seed + FRESH_SEED)


def family_shapes(seed: int, first: int, count: int, n: int, *, device=None) -> tuple:
    """Shapes ``first .. first + count - 1`` of the new-shape family of a run with ``seed`` (the
    procedural ``fresh_shapes``: disjoint from the fixed and the held-out shapes), each with a pool
    of ``n`` points seeded by its index: ``(shapes, points (count, n, 3), sdf (count, n))``."""
    fam = new_shape_family(seed)
    shapes, pts, sdf = [], [], []
    for j in range(first, first + count):
        shapes.append(fam[j])
        p, d = analytic_pool(shapes[-1], n, torch.Generator().manual_seed(j))
        pts.append(p)
        sdf.append(d)
    return shapes, torch.stack(pts).to(device), torch.stack(sdf).to(device)


class ShapeBank:
    """``fresh_bank``: the first ``size`` shapes of :func:`family_shapes` with pools of ``pool``
    points (the same on every rank and after a resume). A shape is made the first time it is
    drawn and kept, so a run starts at once and no shape is made twice."""

    def __init__(self, seed: int, size: int, pool: int, *, device=None):
        self.seed, self.pool = seed, pool
        self.shapes: list = [None] * size
        self.points = torch.zeros(size, pool, 3, device=device)
        self.sdf = torch.zeros(size, pool, device=device)

    def __len__(self) -> int:
        return len(self.shapes)

    def take(self, index) -> tuple:
        """``(shapes, points (B, pool, 3), sdf (B, pool))`` of the bank's shapes ``index``."""
        index = [int(i) for i in index]
        for j in index:
            if self.shapes[j] is None:
                (shape,), p, d = family_shapes(self.seed, j, 1, self.pool, device=self.points.device)
                self.points[j], self.sdf[j], self.shapes[j] = p[0], d[0], shape
        sel = torch.tensor(index, device=self.points.device)
        return [self.shapes[j] for j in index], self.points[sel], self.sdf[sel]


def _split(num: int, num_unseen: int | None) -> tuple[list, list]:
    u = num_unseen if num_unseen is not None else (max(1, num // 4) if num >= 2 else 0)
    if u >= num:
        raise ValueError(f"num_unseen={u} leaves no training shapes out of {num}")
    return list(range(num - u)), list(range(num - u, num))


def _mesh_tree(cfg) -> tuple[list[Path], list[int], list[int]]:
    """The mesh files of ``cfg.meshes`` (a flat folder, nested folders or ShapeNet's layout) and
    the training and unseen positions: the split files' shapes (matched by class and id, whatever
    the dataset key), or the last quarter held out."""
    from ...data.prepare import find_meshes, read_split

    entries = find_meshes(cfg.data)
    if not cfg.split:
        tr, un = _split(len(entries), cfg.num_unseen)
        return [e.path for e in entries], tr, un
    by_key = {(e.class_id, e.shape_id): e.path for e in entries}

    def pick(path):
        keys = [(c, i) for classes in read_split(path).values() for c, ids in classes.items() for i in ids]
        missing = [f"{c}/{i}" for c, i in keys if (c, i) not in by_key]
        if missing:
            raise ValueError(f"{path}: {len(missing)} id(s) have no mesh under {cfg.data}: {', '.join(missing[:3])}")
        return [by_key[k] for k in keys]

    train = pick(cfg.split)
    test = pick(cfg.test_split) if cfg.test_split else []
    return train + test, list(range(len(train))), list(range(len(train), len(train) + len(test)))


def mesh_files(folder) -> list[Path]:
    """Mesh files (``MESH_SUFFIXES``) directly in ``folder``, sorted; a one-line ``ValueError``
    when the folder is missing or holds none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: mesh folder not found")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in MESH_SUFFIXES)
    if not files:
        raise ValueError(f"{folder}: no mesh files ({', '.join(MESH_SUFFIXES)}) found")
    return files


def load_shapes(cfg, *, quiet: bool = True) -> SdfShapeSet:
    """The shape set named by ``cfg`` (an :class:`~inr_gon.training.tasks.sdf.SdfConfig`; pools of
    ``cfg.pool`` points per shape, CPU; a config not yet
    resolved for a device takes the CPU defaults)."""
    if cfg.pool is None:
        cfg = cfg.resolved(torch.device("cpu"))
    g = torch.Generator().manual_seed(cfg.seed)
    if cfg.source == "procedural":
        # the held-out shapes come from a family of their own, so they stay the same whatever
        # num_shapes is, with pools of their own (and are disjoint from the training and the fresh shapes)
        u = 8 if cfg.num_unseen is None else cfg.num_unseen
        fam, held = ProceduralShapes(cfg.num_shapes, seed=cfg.seed), ProceduralShapes(u, seed=cfg.seed + UNSEEN_SEED)
        shapes = list(fam) + list(held)
        g_held = torch.Generator().manual_seed(cfg.seed + UNSEEN_SEED)
        pools = [analytic_pool(s, cfg.pool, g_held if i >= cfg.num_shapes else g) for i, s in enumerate(shapes)]
        names = [f"shape{i:04d}" for i in range(cfg.num_shapes)] + [f"held{i:04d}" for i in range(u)]
        return SdfShapeSet(
            "procedural",
            f"{fam!r} + held-out {held!r}",
            names,
            torch.stack([p for p, _ in pools]),
            torch.stack([s for _, s in pools]),
            list(range(cfg.num_shapes)),
            list(range(cfg.num_shapes, cfg.num_shapes + u)),
            analytic=shapes,
            truth=[None] * len(shapes),
        )
    if cfg.source == "meshes":
        from ...data.meshes import load_mesh, normalize_mesh, sample_sdf_cached

        files, tr, un = _mesh_tree(cfg)
        cache = Path(cfg.cache_dir) if cfg.cache_dir else Path(cfg.out or "runs") / "cache"
        pts, sdfs, truth = [], [], []
        for f in tqdm(files, desc="sample meshes", disable=quiet):
            s = sample_sdf_cached(
                f,
                cache,
                num_uniform=cfg.pool // 2,
                num_surface=cfg.pool - cfg.pool // 2,
                sigmas=(0.05, 0.01, 0.002),
                seed=cfg.seed,
            )
            pts.append(s.points)
            sdfs.append(s.sdf)
            truth.append(normalize_mesh(load_mesh(f))[0])
        names = [f.stem if f.stem != "model_normalized" else f.parent.parent.name for f in files]
        return SdfShapeSet("meshes", str(cfg.data), names, torch.stack(pts), torch.stack(sdfs), tr, un, truth=truth)
    return _deepsdf_shapes(cfg, quiet)


def _deepsdf_shapes(cfg, quiet: bool) -> SdfShapeSet:
    """A DeepSDF data folder's shapes (see :class:`SdfShapeSet`): the split files' or every
    shape, pools in memory or streamed (``cfg.stream``), ground truths read when indexed."""
    from ...data.deepsdf import deepsdf_files, read_record
    from ...data.sample_pools import SamplePools

    if cfg.split:
        from ...data.prepare import read_split

        train_files = deepsdf_files(cfg.data, read_split(cfg.split))
        test_files = deepsdf_files(cfg.data, read_split(cfg.test_split)) if cfg.test_split else []
        files = train_files + test_files
        tr, un = list(range(len(train_files))), list(range(len(train_files), len(files)))
    else:
        files = deepsdf_files(cfg.data)
        tr, un = _split(len(files), cfg.num_unseen)
    pools = SamplePools(files, cfg.pool, cfg.seed)
    size = f"{len(files):,} shapes x {cfg.pool:,} points, {pools.nbytes / 2**20:,.0f} MiB"
    mode = cfg.stream or "auto"
    stream = mode == "on" or (mode == "auto" and pools.nbytes > STREAM_ABOVE)
    if stream:
        pts = sdf = None
        where = pools.write_pool_file(Path(cfg.out or "runs") / "pools.f32", progress=not quiet)
        storage = f"streamed from {where} ({size}; --stream off holds them in memory)"
    else:
        chunks = [range(j, min(j + 64, len(files))) for j in range(0, len(files), 64)]
        parts = [pools.take(c) for c in tqdm(chunks, desc="read samples", disable=quiet)]
        pts, sdf = torch.cat([p for p, _ in parts]), torch.cat([d for _, d in parts])
        storage = f"in memory ({size}" + (")" if mode == "off" else "; --stream on reads them per step)")
    # a shape's normalisation and surface file, read when its ground truth is asked for
    record = functools.lru_cache(maxsize=4)(lambda i: read_record(files[i], samples=False))

    def truth(i):
        r = record(i)
        return r.surface_points(normalised=True) if r.surface_path is not None and r.offset is not None else None

    def norm(i):
        r = record(i)
        if r.surface_path is None or r.offset is None:
            return None
        return np.asarray(r.offset, dtype=np.float64), float(r.scale), r.surface_points()

    return SdfShapeSet(
        "deepsdf",
        str(cfg.data),
        [f.stem for f in files],
        pts,
        sdf,
        tr,
        un,
        truth=_Lazy(truth, len(files)),
        normalization=_Lazy(norm, len(files)),
        stream=pools if stream else None,
        storage=storage,
    )
