"""Data layer: MNIST / Fashion-MNIST (IDX files, download, offline fallback) and image folders.

Every loader returns an :class:`ImageDataset` whose images are float32 tensors of shape
``(N, C, H, W)`` in [0, 1] and whose labels are int64 tensors of shape ``(N,)``.
"""

from .dataset import ImageDataset
from .errors import DataError, DataFallbackWarning, DownloadError
from .images import load_image_folder
from .meshes import (
    DeepSDFRecord,
    SdfSamples,
    load_mesh,
    normalize_mesh,
    read_deepsdf,
    sample_sdf,
    sample_sdf_cached,
    signed_distance,
)
from .mnist import (
    CANONICAL_MD5,
    download_mnist,
    find_mnist_dir,
    is_mnist_name,
    load_embedded_mnist,
    load_mnist,
    read_idx,
    read_mnist_file,
    write_idx,
)

__all__ = [
    "ImageDataset",
    "DataError",
    "DownloadError",
    "DataFallbackWarning",
    "CANONICAL_MD5",
    "read_idx",
    "write_idx",
    "read_mnist_file",
    "find_mnist_dir",
    "download_mnist",
    "load_mnist",
    "load_embedded_mnist",
    "is_mnist_name",
    "load_image_folder",
    "SdfSamples",
    "DeepSDFRecord",
    "load_mesh",
    "normalize_mesh",
    "signed_distance",
    "sample_sdf",
    "sample_sdf_cached",
    "read_deepsdf",
]
