"""The in-memory image data set container shared by all loaders."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

__all__ = ["ImageDataset"]


@dataclass(frozen=True, eq=False)  # tensors: compare fields explicitly
class ImageDataset:
    """Images with labels, split into train and test.

    Attributes:
        name: data set name, e.g. ``"mnist"``, ``"fashion-mnist"`` or the folder name.
        train_images: float32 tensor of shape ``(N_train, C, H, W)``, values in [0, 1].
        train_labels: int64 tensor of shape ``(N_train,)``.
        test_images: float32 tensor of shape ``(N_test, C, H, W)``, values in [0, 1]
            (``N_test`` may be 0).
        test_labels: int64 tensor of shape ``(N_test,)``.
        source: a one-line human description of where the data came from, e.g.
            ``"mnist IDX files from ../shared/datasets/mnist"``.
        classes: class names; ``classes[k]`` names label ``k`` (empty when unlabelled).
    """

    name: str
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    source: str
    classes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            images = getattr(self, f"{split}_images")
            labels = getattr(self, f"{split}_labels")
            if images.ndim != 4:
                raise ValueError(f"{split}_images must have shape (N, C, H, W), got {tuple(images.shape)}")
            if labels.shape != (images.shape[0],):
                raise ValueError(f"{split}_labels must have shape ({images.shape[0]},), got {tuple(labels.shape)}")
        if self.train_images.shape[1:] != self.test_images.shape[1:]:
            raise ValueError(
                f"train and test image shapes differ: {tuple(self.train_images.shape[1:])} "
                f"vs {tuple(self.test_images.shape[1:])}"
            )

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of every image."""
        c, h, w = self.train_images.shape[1:]
        return int(c), int(h), int(w)

    @property
    def num_classes(self) -> int:
        """Number of class names (0 when unlabelled)."""
        return len(self.classes)

    def to(self, device: torch.device | str | None) -> "ImageDataset":
        """A copy with all four tensors on ``device`` (``None``: unchanged, returns ``self``)."""
        if device is None:
            return self
        return dataclasses.replace(
            self,
            train_images=self.train_images.to(device),
            train_labels=self.train_labels.to(device),
            test_images=self.test_images.to(device),
            test_labels=self.test_labels.to(device),
        )

    def __repr__(self) -> str:
        c, h, w = self.image_shape
        return (
            f"ImageDataset(name={self.name!r}, train={self.train_images.shape[0]}, "
            f"test={self.test_images.shape[0]}, image=({c}, {h}, {w}), "
            f"classes={self.num_classes}, source={self.source!r})"
        )
