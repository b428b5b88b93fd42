"""Shared test fixtures-as-functions (importable from the tests: pytest puts tests/ on sys.path)."""

import torch

from inr_gon.data import ImageDataset


def tiny_dataset(n_train=40, n_test=12, size=12, seed=0) -> ImageDataset:
    """Soft disks of random centre and radius: ``(N, 1, size, size)`` images in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")

    def blobs(n):
        c = torch.rand(n, 2, generator=g) - 0.5
        r = 0.2 + 0.3 * torch.rand(n, 1, 1, generator=g)
        d = ((yy - c[:, 0, None, None]) ** 2 + (xx - c[:, 1, None, None]) ** 2).sqrt()
        return torch.sigmoid((r - d) * 20)[:, None]

    return ImageDataset("blobs", blobs(n_train), torch.zeros(n_train, dtype=torch.long), blobs(n_test),
                        torch.zeros(n_test, dtype=torch.long), "synthetic blobs")
