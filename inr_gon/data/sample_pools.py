"""Per-shape sample pools of a DeepSDF data folder, read from the files without loading them whole.

A shape's *pool* is ``pool`` rows of its ``SdfSamples`` file (``pos`` then ``neg``), drawn with
replacement by a generator seeded with ``(seed, position)``: the same rows every time they are
read. :class:`SamplePools` is a torch ``Dataset`` of these pools; the shape tasks either read them
all once (pools held in memory) or read the pools of each step's shapes (streaming), and get the
same batches either way.

A pool is read through a memory map of the ``.npz`` member (``np.savez`` stores members
uncompressed, as DeepSDF's preprocessing and ``inr-gon prepare`` write them): only the chosen rows
are copied, and the map is closed at once, so resident memory does not grow with the number of
shapes read. Compressed members are read whole.

Shapes: points ``(pool, 3)``, signed distances ``(pool,)``, float32.
"""

from __future__ import annotations

import os
import struct
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from .deepsdf import _NPZ_ERRORS
from .errors import DataError

__all__ = ["SamplePools", "npz_rows", "pool_generator"]

#: draws of a pool's rows before a file whose rows are mostly non-finite is refused
_MAX_REDRAWS = 8


def _member(path: Path, zf: zipfile.ZipFile, key: str):
    """``key`` of an open ``.npz``: a read-only memory map (stored member) or an array (compressed)."""
    name = f"{key}.npy"
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise DataError(f"{path}: missing array {key!r} (has {sorted(n[:-4] for n in zf.namelist())})") from None
    if info.compress_type != zipfile.ZIP_STORED:
        with zf.open(name) as fh:
            return np.lib.format.read_array(fh, allow_pickle=False)
    with open(path, "rb") as fh:
        fh.seek(info.header_offset)
        local = fh.read(30)
        if local[:4] != b"PK\x03\x04":
            raise DataError(f"{path}: damaged zip member {name}")
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        fh.seek(info.header_offset + 30 + name_len + extra_len)
        version = np.lib.format.read_magic(fh)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(fh)
        offset = fh.tell()
    if dtype.hasobject:
        raise DataError(f"{path}: {key!r} holds Python objects, not numbers")
    if int(np.prod(shape)) == 0:
        return np.zeros(shape, dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=shape, offset=offset, order="F" if fortran else "C")


def npz_rows(path: str | os.PathLike, keys=("pos", "neg")) -> tuple[list[np.ndarray], list[int]]:
    """The arrays ``keys`` of an ``.npz`` (memory maps where stored uncompressed) and their row
    counts; each must be a float ``(N, 4)`` array (a one-line :class:`DataError` naming the file)."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            arrays = [_member(path, zf, k) for k in keys]
    except DataError:
        raise
    except _NPZ_ERRORS as err:
        raise DataError(f"{path}: not a readable .npz file ({err})") from err
    for k, a in zip(keys, arrays):
        if a.ndim != 2 or a.shape[1] != 4 or not np.issubdtype(a.dtype, np.floating):
            raise DataError(f"{path}: {k!r} must be a float (N, 4) array of x, y, z, sdf, got {a.dtype} {a.shape}")
    return arrays, [a.shape[0] for a in arrays]


def pool_generator(seed: int, i: int) -> torch.Generator:
    """The generator of shape ``i``'s pool rows in a run with ``seed``."""
    return torch.Generator().manual_seed((int(seed) * 1_000_003 + 7919 * int(i) + 17) % (2**63))


def _pool(path: Path, pool: int, seed: int, i: int) -> torch.Tensor:
    """Shape ``i``'s ``(pool, 4)`` float32 rows (see the module docstring)."""
    arrays, counts = npz_rows(path)
    total = sum(counts)
    if total == 0:
        raise DataError(f"{path}: no SDF samples")
    g = pool_generator(seed, i)
    out = np.empty((pool, 4), dtype=np.float32)
    need = np.arange(pool)
    pick = torch.randint(total, (pool,), generator=g).numpy()
    for _ in range(_MAX_REDRAWS):
        first = pick < counts[0]
        out[need[first]] = arrays[0][pick[first]]
        out[need[~first]] = arrays[1][pick[~first] - counts[0]]
        bad = ~np.isfinite(out[need]).all(axis=1)
        if not bad.any():
            break
        need = need[bad]  # rows with NaN/inf (DeepSDF's remove_nans): drawn again
        pick = torch.randint(total, (len(need),), generator=g).numpy()
    else:
        raise DataError(f"{path}: too many samples are NaN/inf")
    del arrays  # closes the maps
    return torch.from_numpy(out)


class SamplePools(torch.utils.data.Dataset):
    """The pools of ``files`` (``SdfSamples`` ``.npz``): item ``i`` is shape ``i``'s
    ``(points (pool, 3), sdf (pool,))``.

    Args:
        files: one ``SdfSamples`` file per shape.
        pool: rows per shape.
        seed: the run's seed (with the position, it fixes each pool's rows).
        threads: readers of :meth:`take` (files are read in parallel: reading releases the GIL).
    """

    def __init__(self, files, pool: int, seed: int, *, threads: int = 4):
        self.files = [Path(f) for f in files]
        self.pool, self.seed = int(pool), int(seed)
        self.threads = max(1, int(threads))
        self._executor: ThreadPoolExecutor | None = None

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = _pool(self.files[i], self.pool, self.seed, i)
        return rows[:, :3], rows[:, 3].contiguous()

    @property
    def nbytes(self) -> int:
        """Bytes that every pool held in memory takes."""
        return len(self) * self.pool * 4 * 4

    def _rows(self, index) -> torch.Tensor:
        index = [int(i) for i in index]
        if len(index) == 1 or self.threads == 1:
            return torch.stack([_pool(self.files[i], self.pool, self.seed, i) for i in index])
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix="inr_gon-pools")
        return torch.stack(list(self._executor.map(lambda i: _pool(self.files[i], self.pool, self.seed, i), index)))

    def take(self, index) -> tuple[torch.Tensor, torch.Tensor]:
        """The pools of shapes ``index``: ``(points (B, pool, 3), sdf (B, pool))``."""
        rows = self._rows(index)
        return rows[..., :3].contiguous(), rows[..., 3].contiguous()

    def prefetch(self, index):
        """Start reading the pools of ``index`` in the background; returns a future whose
        ``result()`` is :meth:`take`'s."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix="inr_gon-pools")
        return self._executor.submit(self.take, list(index))

    def __getstate__(self):  # a DataLoader worker gets the files, not the threads
        state = dict(self.__dict__)
        state["_executor"] = None
        return state
