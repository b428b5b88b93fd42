"""IDX files (the MNIST format): reading (raw or gzip, checked) and writing.

Checksums are MD5s of the *uncompressed* bytes, so re-compressed ``.gz`` files verify.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from pathlib import Path

import numpy as np

from .errors import DataError

__all__ = ["read_idx", "write_idx"]

_GZIP_MAGIC = b"\x1f\x8b"
_IDX_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _uncompressed_name(path: Path) -> str:
    return path.name[:-3] if path.name.endswith(".gz") else path.name


def _read_bytes(path: Path) -> bytes:
    """The uncompressed bytes of ``path`` (gzip detected from its first two bytes)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read file ({exc.strerror or exc})") from exc
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except EOFError as exc:
            raise DataError(f"{path}: truncated gzip stream ({exc})") from exc
        except (OSError, zlib.error) as exc:
            raise DataError(f"{path}: corrupt gzip stream ({exc})") from exc
    elif path.name.endswith(".gz"):
        raise DataError(f"{path}: named .gz but is not gzip-compressed")
    return data


def _parse_idx(data: bytes, where: str) -> np.ndarray:
    if len(data) < 4:
        raise DataError(f"{where}: truncated IDX file ({len(data)} bytes, no header)")
    if data[0:2] != b"\x00\x00" or data[2] not in _IDX_TYPES or data[3] == 0:
        magic = int.from_bytes(data[:4], "big")
        raise DataError(f"{where}: not an IDX file (bad magic number {magic} = 0x{magic:08x})")
    dtype = _IDX_TYPES[data[2]]
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{where}: truncated IDX header ({len(data)} of {header} bytes)")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    found = len(data) - header
    if found < expected:
        raise DataError(f"{where}: truncated IDX data (shape {shape} needs {expected} bytes, found {found})")
    if found > expected:
        raise DataError(f"{where}: {found - expected} unexpected trailing bytes after IDX data of shape {shape}")
    array = np.frombuffer(data, dtype=dtype, count=expected // dtype.itemsize, offset=header)
    return array.reshape(shape).astype(dtype.newbyteorder("="))  # native order, writable copy


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _check_md5(data: bytes, expected_md5: str, where: str) -> None:
    actual = _md5(data)
    if actual != expected_md5.lower():
        raise DataError(
            f"{where}: MD5 mismatch of uncompressed bytes (expected {expected_md5}, got {actual}); "
            "the file is corrupt or not the canonical one"
        )


def read_idx(path: str | os.PathLike, *, expected_md5: str | None = None) -> np.ndarray:
    """Read any IDX file, raw or gzip-compressed.

    Args:
        path: the file; gzip compression is detected from the content.
        expected_md5: if given, the MD5 (hex) of the *uncompressed* bytes must match.

    Returns:
        An array with the shape stored in the header (e.g. ``(N, 28, 28)`` for images,
        ``(N,)`` for labels) and the stored element type (``uint8`` for MNIST), native
        byte order, writable.

    Raises:
        DataError: unreadable, corrupt or truncated file, bad magic number, trailing bytes or
            MD5 mismatch; the one-line message names the file.
    """
    path = Path(path)
    data = _read_bytes(path)
    if expected_md5 is not None:
        _check_md5(data, expected_md5, str(path))
    return _parse_idx(data, str(path))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write ``array`` as an IDX file (gzip-compressed when ``path`` ends in ``.gz``).

    Args:
        path: destination file.
        array: any shape with 1 to 255 dimensions, dtype uint8, int8, int16, int32,
            float32 or float64.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    array = np.asarray(array)
    codes = {dt.newbyteorder("="): code for code, dt in _IDX_TYPES.items()}
    code = codes.get(array.dtype.newbyteorder("="))
    if code is None or not 1 <= array.ndim <= 255:
        raise ValueError(f"cannot write dtype {array.dtype} with {array.ndim} dims as IDX")
    header = bytes([0, 0, code, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    data = header + np.ascontiguousarray(array, dtype=_IDX_TYPES[code]).tobytes()
    path = Path(path)
    if path.name.endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path
