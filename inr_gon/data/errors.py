"""Exceptions and warnings of the data layer, and reading a small JSON file with one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["DataError", "DownloadError", "DataFallbackWarning", "read_json"]


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
