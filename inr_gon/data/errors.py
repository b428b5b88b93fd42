"""Exceptions and warnings of the data layer."""

from __future__ import annotations

__all__ = ["DataError", "DownloadError", "DataFallbackWarning"]


class DataError(ValueError):
    """A data file or folder is missing, corrupt or not in the expected format.

    The message is one line and names the file (or folder) and the problem.
    """


class DownloadError(DataError):
    """Every mirror failed (offline, timeout, HTTP error or bad checksum)."""


class DataFallbackWarning(UserWarning):
    """The loader fell back to smaller embedded data (one-line notice)."""
