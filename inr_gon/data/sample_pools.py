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
import json
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


def _members(path: Path, keys: tuple, scratch: bool) -> tuple[list, np.ndarray | None]:
    """:func:`npz_rows`'s arrays, and where every member is stored with one dtype their rows joined
    (a view of the same buffer: the members are read into it one after the other)."""
    try:
        st = path.stat()
        layout = _layout(str(path), st.st_size, st.st_mtime_ns, keys)
        sizes = [0 if w is None else int(np.prod(w[2])) * w[1].itemsize for w in layout]
        buf = _buffer(sum(sizes)) if scratch else bytearray(sum(sizes))
        arrays, used = [], 0
        with open(path, "rb", buffering=0) as fh:
            for key, where, size in zip(keys, layout, sizes):
                if where is None:
                    with np.load(path, allow_pickle=False) as data:
                        arrays.append(np.asarray(data[key]))
                    continue
                offset, dtype, shape, fortran = where
                fh.seek(offset)
                if fh.readinto(memoryview(buf)[used : used + size]) != size:
                    raise DataError(f"{path}: {key!r} is cut short")
                flat = np.frombuffer(buf, dtype=dtype, count=size // dtype.itemsize, offset=used)
                used += size
                arrays.append(flat.reshape(shape[::-1]).T if fortran else flat.reshape(shape))
    except DataError:
        raise
    except _NPZ_ERRORS as err:
        raise DataError(f"{path}: not a readable .npz file ({err})") from err
    for k, a in zip(keys, arrays):
        if a.ndim != 2 or a.shape[1] != 4 or not np.issubdtype(a.dtype, np.floating):
            raise DataError(f"{path}: {k!r} must be a float (N, 4) array of x, y, z, sdf, got {a.dtype} {a.shape}")
    stored = [w for w in layout if w is not None]
    one = len(stored) == len(keys) and len({w[1] for w in stored}) == 1 and not any(w[3] for w in stored)
    joined = np.frombuffer(buf, dtype=stored[0][1], count=used // stored[0][1].itemsize).reshape(-1, 4) if one else None
    return arrays, joined


def npz_rows(path: str | os.PathLike, keys=("pos", "neg"), *, scratch: bool = False) -> tuple[list, list[int]]:
    """The arrays ``keys`` of an ``.npz`` and their row counts: stored members read from their bytes
    (array headers parsed once per file version), into a buffer of their own or, with
    ``scratch=True``, into this thread's reused read buffer (valid until its next call: for a
    caller that copies rows out at once); compressed members read whole. Each must be a float
    ``(N, 4)`` array (a one-line :class:`DataError` naming the file)."""
    arrays, _ = _members(Path(path), tuple(keys), scratch)
    return arrays, [a.shape[0] for a in arrays]


def pool_generator(seed: int, i: int) -> np.random.Generator:
    """The generator of shape ``i``'s pool rows in a run with ``seed``."""
    return np.random.default_rng((int(seed), int(i)))


def _rows(path: Path) -> np.ndarray:
    """A shape's ``(Np + Nn, 4)`` rows, ``pos`` then ``neg`` (a view of this thread's read buffer
    where both are stored uncompressed)."""
    arrays, joined = _members(path, ("pos", "neg"), True)
    return joined if joined is not None else np.concatenate(arrays)


def _pool(path: Path, pool: int, seed: int, i: int) -> torch.Tensor:
    """Shape ``i``'s ``(pool, 4)`` float32 rows (see the module docstring)."""
    rows = _rows(path)
    total = len(rows)
    if total == 0:
        raise DataError(f"{path}: no SDF samples")
    g = pool_generator(seed, i)
    out = np.take(rows, g.integers(total, size=pool), axis=0).astype(np.float32, copy=False)
    for _ in range(_MAX_REDRAWS):
        if np.isfinite(out).all():
            break
        bad = np.flatnonzero(~np.isfinite(out).all(axis=1))  # NaN/inf rows (DeepSDF's remove_nans): drawn again
        out[bad] = np.take(rows, g.integers(total, size=len(bad)), axis=0)
    if not np.isfinite(out).all():
        raise DataError(f"{path}: too many samples are NaN/inf")
    return torch.from_numpy(out)


def _read(jobs: list, pool: int, seed: int) -> np.ndarray:
    """The pools ``(B, pool, 4)`` of ``jobs``: ``(file, position)`` pairs (run by a background worker)."""
    return np.stack([_pool(f, pool, seed, i).numpy() for f, i in jobs])


def _read_pool_file(path: Path, index: list, pool: int) -> np.ndarray:
    """The pools ``(B, pool, 4)`` of positions ``index`` from a pool file (see
    :meth:`SamplePools.write_pool_file`)."""
    out = np.empty((len(index), pool, 4), dtype=np.float32)
    size = pool * 16
    fd = os.open(path, os.O_RDONLY)
    try:
        for j, i in enumerate(index):
            got = os.preadv(fd, [memoryview(out[j]).cast("B")], i * size)
            if got != size:
                raise DataError(f"{path}: the pool file is cut short (shape {i})")
    finally:
        os.close(fd)
    return out


def _split(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return rows[..., :3].contiguous(), rows[..., 3].contiguous()


class _Pending:
    """A background read: :meth:`result` is :meth:`SamplePools.take`'s."""

    def __init__(self, future):
        self.future = future

    def result(self) -> tuple[torch.Tensor, torch.Tensor]:
        return _split(torch.from_numpy(self.future.result()))


class SamplePools(torch.utils.data.Dataset):
    """The pools of ``files`` (``SdfSamples`` ``.npz``): item ``i`` is shape ``i``'s
    ``(points (pool, 3), sdf (pool,))``.

    Args:
        files: one ``SdfSamples`` file per shape.
        pool: rows per shape.
        seed: the run's seed (with the position, it fixes each pool's rows).

    :meth:`prefetch` reads in one background thread (started on first use): reading the pool file
    releases the GIL, where a worker process would compete with the step for the same cores
    (``docs/findings/shapes.md``).
    """

    def __init__(self, files, pool: int, seed: int):
        self.files = [Path(f) for f in files]
        self.pool, self.seed = int(pool), int(seed)
        self._executor = None
        self.pool_file: Path | None = None

    def write_pool_file(self, path: str | os.PathLike, *, progress: bool = False) -> Path:
        """Write every pool, in order, into one file of float32 rows (``len(self) * pool * 16``
        bytes; written to a temporary name, then renamed) and read pools from it from now on: a
        pool is then one contiguous read of ``pool * 16`` bytes instead of a pass over its
        samples. A file written for the same files, pool and seed is reused."""
        from tqdm.auto import tqdm

        path = Path(path)
        stamp = path.with_name(path.name + ".json")
        want = {
            "files": [str(f.resolve()) for f in self.files],
            "sizes": [f.stat().st_size for f in self.files],
            "pool": self.pool,
            "seed": self.seed,
            "bytes": self.nbytes,
        }
        try:
            if path.is_file() and path.stat().st_size == self.nbytes and json.loads(stamp.read_text()) == want:
                self.pool_file = path
                return path
        except (OSError, ValueError):
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        try:
            with open(tmp, "wb") as fh:
                for i in tqdm(range(len(self)), desc="write pools", unit="shape", disable=not progress):
                    fh.write(_pool(self.files[i], self.pool, self.seed, i).numpy().tobytes())
            os.replace(tmp, path)
            stamp.write_text(json.dumps(want))
        except OSError as err:
            tmp.unlink(missing_ok=True)
            raise DataError(f"{path}: cannot write the pool file ({err.strerror or err})") from err
        self.pool_file = path
        return path

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return _split(_pool(self.files[i], self.pool, self.seed, i))

    @property
    def nbytes(self) -> int:
        """Bytes that every pool held in memory takes."""
        return len(self) * self.pool * 4 * 4

    def _jobs(self, index) -> list:
        return [(self.files[int(i)], int(i)) for i in index]

    def _read(self, index) -> np.ndarray:
        if self.pool_file is not None:
            return _read_pool_file(self.pool_file, [int(i) for i in index], self.pool)
        return _read(self._jobs(index), self.pool, self.seed)

    def take(self, index) -> tuple[torch.Tensor, torch.Tensor]:
        """The pools of shapes ``index``: ``(points (B, pool, 3), sdf (B, pool))``."""
        return _split(torch.from_numpy(self._read(index)))

    def prefetch(self, index) -> _Pending:
        """Start reading the pools of ``index`` in the background; the returned object's
        ``result()`` is :meth:`take`'s."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="inr_gon-pools")
        if self.pool_file is not None:
            future = self._executor.submit(_read_pool_file, self.pool_file, [int(i) for i in index], self.pool)
        else:
            future = self._executor.submit(_read, self._jobs(index), self.pool, self.seed)
        return _Pending(future)

    def close(self) -> None:
        """Stop the background worker (started again by the next :meth:`prefetch`)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def __getstate__(self):  # a DataLoader worker gets the files, not the worker
        state = dict(self.__dict__)
        state["_executor"] = None
        return state
