"""Per-shape sample pools of a DeepSDF data folder, read from the files without loading them whole.

A shape's *pool* is ``pool`` rows of its ``SdfSamples`` file (``pos`` then ``neg``), drawn with
replacement by a generator seeded with ``(seed, position)``: the same rows every time they are
read. :class:`SamplePools` is a torch ``Dataset`` of these pools; the shape tasks either read them
all once (pools held in memory) or read the pools of each step's shapes (streaming), and get the
same batches either way.

A pool is read from the ``.npz`` members' bytes where they lie (``np.savez`` stores members
uncompressed, as DeepSDF's preprocessing and ``inr-gon prepare`` write them) into a reused buffer,
and only the chosen rows are kept, so resident memory does not grow with the number of shapes
read. Compressed members are read whole.

Shapes: points ``(pool, 3)``, signed distances ``(pool,)``, float32.
"""

from __future__ import annotations

import functools
import mmap
import os
import struct
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from .deepsdf import _NPZ_ERRORS
from .errors import DataError

__all__ = ["SamplePools", "npz_rows", "pool_generator"]

_LOCAL = threading.local()

#: draws of a pool's rows before a file whose rows are mostly non-finite is refused
_MAX_REDRAWS = 8


@functools.lru_cache(maxsize=1 << 16)
def _layout(path: str, size: int, mtime_ns: int, keys: tuple) -> tuple:
    """Where each array ``keys`` of an ``.npz`` lies: ``(offset, dtype, shape, fortran)`` of a
    stored member, or ``None`` for a compressed one (read whole). Cached per file version."""
    out = []
    with zipfile.ZipFile(path) as zf, open(path, "rb") as fh:
        for key in keys:
            name = f"{key}.npy"
            try:
                info = zf.getinfo(name)
            except KeyError:
                has = sorted(n[:-4] for n in zf.namelist())
                raise DataError(f"{path}: missing array {key!r} (has {has})") from None
            if info.compress_type != zipfile.ZIP_STORED:
                out.append(None)
                continue
            fh.seek(info.header_offset)
            local = fh.read(30)
            if local[:4] != b"PK\x03\x04":
                raise DataError(f"{path}: damaged zip member {name}")
            name_len, extra_len = struct.unpack("<HH", local[26:30])
            fh.seek(info.header_offset + 30 + name_len + extra_len)
            version = np.lib.format.read_magic(fh)
            header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = header(fh)
            if dtype.hasobject:
                raise DataError(f"{path}: {key!r} holds Python objects, not numbers")
            out.append((fh.tell(), dtype, shape, fortran))
    return tuple(out)


def _buffer(n: int) -> bytearray:
    """This thread's read buffer, at least ``n`` bytes (reused: no fresh pages per read)."""
    buf = getattr(_LOCAL, "buf", None)
    if buf is None or len(buf) < n:
        buf = _LOCAL.buf = bytearray(max(n, 1 << 20))
    return buf


def npz_rows(path: str | os.PathLike, keys=("pos", "neg"), *, scratch: bool = False) -> tuple[list, list[int]]:
    """The arrays ``keys`` of an ``.npz`` and their row counts. Stored members are views of a
    read-only memory map (closed when they are dropped) or, with ``scratch=True``, of this thread's
    read buffer (valid until its next call: for a caller that copies rows out at once);
    compressed members are read whole. Each must be a float ``(N, 4)`` array (a one-line
    :class:`DataError` naming the file)."""
    path = Path(path)
    try:
        st = path.stat()
        layout = _layout(str(path), st.st_size, st.st_mtime_ns, tuple(keys))
        sizes = [0 if w is None else int(np.prod(w[2])) * w[1].itemsize for w in layout]
        arrays, mm, used = [], None, 0
        buf = _buffer(sum(sizes)) if scratch else None
        with open(path, "rb", buffering=0) as fh:
            for key, where, size in zip(keys, layout, sizes):
                if where is None:
                    with np.load(path, allow_pickle=False) as data:
                        arrays.append(np.asarray(data[key]))
                    continue
                offset, dtype, shape, fortran = where
                count = size // dtype.itemsize
                if count == 0:
                    arrays.append(np.zeros(shape, dtype))
                    continue
                if buf is not None:
                    fh.seek(offset)
                    view = memoryview(buf)[used : used + size]
                    if fh.readinto(view) != size:
                        raise DataError(f"{path}: {key!r} is cut short")
                    flat = np.frombuffer(buf, dtype=dtype, count=count, offset=used)
                    used += size
                else:
                    if mm is None:
                        mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
                    flat = np.frombuffer(mm, dtype=dtype, count=count, offset=offset)
                arrays.append(flat.reshape(shape[::-1]).T if fortran else flat.reshape(shape))
    except DataError:
        raise
    except _NPZ_ERRORS as err:
        raise DataError(f"{path}: not a readable .npz file ({err})") from err
    for k, a in zip(keys, arrays):
        if a.ndim != 2 or a.shape[1] != 4 or not np.issubdtype(a.dtype, np.floating):
            raise DataError(f"{path}: {k!r} must be a float (N, 4) array of x, y, z, sdf, got {a.dtype} {a.shape}")
    return arrays, [a.shape[0] for a in arrays]


def pool_generator(seed: int, i: int) -> np.random.Generator:
    """The generator of shape ``i``'s pool rows in a run with ``seed``."""
    return np.random.default_rng((int(seed), int(i)))


def _pool(path: Path, pool: int, seed: int, i: int) -> torch.Tensor:
    """Shape ``i``'s ``(pool, 4)`` float32 rows (see the module docstring)."""
    arrays, counts = npz_rows(path, scratch=True)
    total = sum(counts)
    if total == 0:
        raise DataError(f"{path}: no SDF samples")
    g = pool_generator(seed, i)
    out = np.empty((pool, 4), dtype=np.float32)
    need = np.arange(pool)
    pick = g.integers(total, size=pool)
    for _ in range(_MAX_REDRAWS):
        first = pick < counts[0]
        out[need[first]] = arrays[0][pick[first]]
        out[need[~first]] = arrays[1][pick[~first] - counts[0]]
        bad = ~np.isfinite(out if len(need) == pool else out[need]).all(axis=1)
        if not bad.any():
            break
        need = need[bad]  # rows with NaN/inf (DeepSDF's remove_nans): drawn again
        pick = g.integers(total, size=len(need))
    else:
        raise DataError(f"{path}: too many samples are NaN/inf")
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
