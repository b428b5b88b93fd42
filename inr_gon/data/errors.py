"""Exceptions and warnings of the data layer, and two file helpers: a small JSON file read with
one-line errors, a file's SHA-256."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

__all__ = ["DataError", "DownloadError", "DataFallbackWarning", "read_json", "file_sha256"]


class DataError(ValueError):
    """A data file or folder is missing, corrupt or not in the expected format.

    The message is one line and names the file (or folder) and the problem.
    """


class DownloadError(DataError):
    """Every mirror failed (offline, timeout, HTTP error or bad checksum)."""


class DataFallbackWarning(UserWarning):
    """The loader fell back to smaller embedded data (one-line notice)."""


def read_json(path, what: str, *, error: type[Exception] = DataError):
    """The JSON value of the file ``path``, or one line raised as ``error``:
    ``"<path>: <what> file not found"`` or ``"<path>: not a readable JSON <what> (<reason>)"``."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise error(f"{path}: {what} file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise error(f"{path}: not a readable JSON {what} ({str(err).splitlines()[0]})") from None


def file_sha256(path) -> str:
    """The SHA-256 of a file's bytes, as hex (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
