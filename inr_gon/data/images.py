"""A generic image-folder data set (PNG/JPEG/BMP read with ``imageio.v3``).

Layouts:

- ``folder/<class>/.../*.png``: one sub-folder per class; label ``k`` is the ``k``-th class
  folder name in sorted order (``ImageDataset.classes``).
- ``folder/*.png``: no sub-folders; every label is 0 and ``classes`` is empty.

Hidden files and folders (names starting with ``.``) are ignored; every other file must be
a readable image.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .dataset import ImageDataset
from .errors import DataError

__all__ = ["IMAGE_EXTENSIONS", "load_image_folder", "read_image"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")

# file signatures: checked before decoding so that a non-image gets a clear message
_SIGNATURES = {
    ".png": (b"\x89PNG\r\n\x1a\n",),
    ".jpg": (b"\xff\xd8\xff",),
    ".jpeg": (b"\xff\xd8\xff",),
    ".bmp": (b"BM",),
}


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _files_under(folder: Path) -> list[Path]:
    """Non-hidden regular files below ``folder`` (recursively, hidden folders skipped), sorted."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        out.extend(Path(dirpath) / f for f in filenames if not f.startswith("."))
    return sorted(out)


def read_image(path: str | os.PathLike, *, channels: int = 1) -> np.ndarray:
    """Read one PNG/JPEG/BMP image as float32 in [0, 1].

    Colour is converted with luminance weights (``skimage.color.rgb2gray``) for
    ``channels=1``; grey is repeated for ``channels=3``; an alpha channel is dropped.

    Args:
        path: the image file.
        channels: 1 (grey) or 3 (RGB).

    Returns:
        float32 array of shape ``(H, W, channels)``.

    Raises:
        DataError: not an image (unknown extension or wrong file signature), undecodable,
            or an unsupported pixel layout; the message names the file.
    """
    import imageio.v3 as iio
    from skimage.color import rgb2gray
    from skimage.util import img_as_float32

    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in _SIGNATURES:
        raise DataError(
            f"{path}: not an image file (extension {ext or 'none'!r}; expected one of {', '.join(IMAGE_EXTENSIONS)})"
        )
    try:
        with path.open("rb") as handle:
            head = handle.read(8)
    except OSError as exc:
        raise DataError(f"{path}: cannot read file ({exc.strerror or exc})") from exc
    if not any(head.startswith(sig) for sig in _SIGNATURES[ext]):
        raise DataError(f"{path}: not a valid {ext[1:].upper()} image (wrong file signature)")
    try:
        image = np.asarray(iio.imread(path))
    except Exception as exc:  # imageio plugins raise many unrelated types on corrupt data
        raise DataError(f"{path}: cannot decode image ({type(exc).__name__}: {exc})") from exc

    if image.ndim == 3 and image.shape[-1] in (2, 4):  # drop alpha
        image = image[..., :-1]
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    layout_ok = image.ndim == 2 or (image.ndim == 3 and image.shape[-1] == 3)
    if not layout_ok or min(image.shape[:2]) < 1:
        raise DataError(f"{path}: unsupported pixel array of shape {image.shape}")
    if image.dtype == np.bool_ or np.issubdtype(image.dtype, np.integer):
        image = img_as_float32(image)
    else:
        image = np.clip(image.astype(np.float32), 0.0, 1.0)

    if channels == 1:
        image = rgb2gray(image) if image.ndim == 3 else image
        image = image[..., None]
    elif image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    return np.ascontiguousarray(image, dtype=np.float32)


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from skimage.transform import resize

    if image.shape[:2] == size:
        return image
    out = resize(
        image,
        (*size, image.shape[2]),
        order=1,
        anti_aliasing=True,
        preserve_range=True,
        mode="reflect",
    )
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def _parse_resolution(resolution: int | tuple[int, int] | None) -> tuple[int, int] | None:
    if resolution is None:
        return None
    if isinstance(resolution, int):
        size = (resolution, resolution)
    else:
        size = tuple(int(r) for r in resolution)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"resolution must be a positive int or (H, W), got {resolution!r}")
    return size  # type: ignore[return-value]


def load_image_folder(
    path: str | os.PathLike,
    *,
    resolution: int | tuple[int, int] | None = None,
    channels: int = 1,
    test_fraction: float = 0.1,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> ImageDataset:
    """Load a folder of images (optionally in class sub-folders) as an :class:`ImageDataset`.

    Args:
        path: the folder (see the module docstring for the layouts).
        resolution: ``(H, W)`` or ``S`` for ``(S, S)``; images are resized with
            ``skimage.transform.resize`` (bilinear, anti-aliased). ``None`` keeps the native
            size, which then must be the same for every image.
        channels: 1 (grey) or 3 (RGB).
        test_fraction: share of images (rounded) put in the test split, in [0, 1).
        seed: seed of the random (numpy ``default_rng``) split; each split keeps file order.
        device: move the tensors there (default: CPU).

    Returns:
        ImageDataset: ``train_images`` ``(N_train, channels, H, W)`` and ``test_images``
        ``(N_test, channels, H, W)`` float32 in [0, 1]; labels int64 ``(N,)`` (class index
        of the sub-folder, or 0); ``classes`` the sorted sub-folder names (or empty);
        ``name`` the folder name.

    Raises:
        DataError: folder missing or without images, files beside class folders, a file
            that is not a readable image, or differing sizes with ``resolution=None``.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    size = _parse_resolution(resolution)
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: image folder does not exist")

    entries = sorted(p for p in root.iterdir() if _visible(p))
    class_dirs = [p for p in entries if p.is_dir()]
    if class_dirs:
        stray = [p.name for p in entries if not p.is_dir()]
        if stray:
            raise DataError(
                f"{root}: files {', '.join(stray[:3])}{' ...' if len(stray) > 3 else ''} beside "
                "class sub-folders (put every image inside a class folder)"
            )
        classes = tuple(p.name for p in class_dirs)
        files = [(f, k) for k, d in enumerate(class_dirs) for f in _files_under(d)]
    else:
        classes = ()
        files = [(f, 0) for f in entries]
    if not files:
        raise DataError(f"{root}: no images found (expected {', '.join(IMAGE_EXTENSIONS)} files)")

    images = []
    for file, _ in files:
        image = read_image(file, channels=channels)
        if size is not None:
            image = _resize(image, size)
        elif images and image.shape[:2] != images[0].shape[:2]:
            raise DataError(
                f"{file}: size {image.shape[:2]} differs from {images[0].shape[:2]} of "
                f"{files[0][0].name}; pass resolution= to resize"
            )
        images.append(image)

    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()  # (N, C, H, W)
    y = torch.tensor([label for _, label in files], dtype=torch.int64)
    n = len(files)
    n_test = int(round(n * test_fraction))
    perm = np.random.default_rng(seed).permutation(n)
    test_idx = torch.from_numpy(np.sort(perm[:n_test]))
    train_idx = torch.from_numpy(np.sort(perm[n_test:]))
    h, w = x.shape[-2:]
    return ImageDataset(
        name=root.name,
        train_images=x[train_idx],
        train_labels=y[train_idx],
        test_images=x[test_idx],
        test_labels=y[test_idx],
        source=f"{n} images ({h}x{w}, {channels} channel{'s' if channels > 1 else ''}) from {root}",
        classes=classes,
    ).to(device)
