"""The image-data part of every image task: which images, loaded and checked.

:class:`ImageDataConfig` names the data set; :class:`ImageDataTask` (the base of the image,
super-resolution, classifier, variational and autoencoder tasks) loads it, refuses NaN/Inf data
and keeps the images on the device.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from ...core.coords import grid
from ...data import is_mnist_name
from ...nn.siren import LatentSiren
from ..config import Config, at_least, option
from ..parts import GradientOriginConfig
from .base import Task

__all__ = ["ImageDataConfig", "ImageLossConfig", "ImageDataTask", "load_dataset", "IMAGE_LOSSES"]


@dataclass
class ImageDataConfig(Config):
    """Which images (the data part of every image-data task)."""

    dataset: str = option(
        "mnist", "'mnist', 'fashion' or a folder of PNG/JPEG images (class sub-folders become labels)", group="data"
    )
    data_dir: str | None = option(
        None,
        "folder holding the four IDX files of the data set (else "
        "$INR_GON_DATA/<name>, then datasets/, then download, then the embedded "
        "MNIST subset)",
        group="data",
    )
    image_size: int | None = option(
        None, "image folders: resize images to this size (pixels per side)", check=at_least(1), group="data"
    )
    channels: int = option(1, "image folders: 1 (gray) or 3 (RGB)", choices=(1, 3), group="data")
    eval_images: int = option(
        1000, "test images in periodic evaluations (the final one uses the whole test set)", check=at_least(1)
    )


IMAGE_LOSSES = ("mse", "bce", "l1")


@dataclass
class ImageLossConfig(Config):
    """The point losses of an image GON's two integrals (the latent's and the reconstruction's)."""

    inner_loss: str = option(
        "mse",
        "point loss of the inner integral (whose gradient at the origin is the latent)",
        choices=IMAGE_LOSSES,
        group="encoder",
    )
    outer_loss: str | None = option(
        None, "point loss of the outer integral (default: the inner loss)", choices=IMAGE_LOSSES
    )

    def resolved(self, device):
        if self.outer_loss is None:
            return dataclasses.replace(self, outer_loss=self.inner_loss).resolved(device)
        return super().resolved(device)

    def _checks(self):
        # the two losses must read the network's output alike (BCE: as logits)
        same = self.outer_loss is None or (self.inner_loss == "bce") == (self.outer_loss == "bce")
        why = f"and inner_loss={self.inner_loss!r}: BCE reads the output as logits, so both or neither must be bce"
        return super()._checks() + [("outer_loss", same, why)]


def load_dataset(cfg: ImageDataConfig):
    """The :class:`~inr_gon.data.ImageDataset` named by the config."""
    from ...data import load_image_folder, load_mnist

    if is_mnist_name(cfg.dataset):
        return load_mnist(cfg.dataset, data_dir=cfg.data_dir)
    if not Path(cfg.dataset).is_dir():
        raise ValueError(f"dataset must be 'mnist', 'fashion' or an image folder; {cfg.dataset!r} is neither")
    return load_image_folder(cfg.dataset, resolution=cfg.image_size, channels=cfg.channels, seed=cfg.seed)


class ImageDataTask(Task):
    """Base of the image-data tasks: data on the device, batches of images.

    Args:
        config: an :class:`ImageDataConfig` subclass.
        dataset: an :class:`~inr_gon.data.ImageDataset` (default: loaded from the config).
    """

    def __init__(self, config, *, dataset=None):
        super().__init__(config)
        self.dataset = dataset

    def setup(self, trainer) -> None:
        super().setup(trainer)
        if self.dataset is None:
            with trainer.dist.main_first():  # rank 0 downloads/unpacks first
                self.dataset = load_dataset(self.cfg)
        for split in ("train", "test"):
            imgs = getattr(self.dataset, f"{split}_images")
            if not bool(torch.isfinite(imgs).all()):
                raise ValueError(f"{split} images contain NaN or Inf values")
        # data on the device (MNIST is 188 MB as float32; fits any GPU)
        self.device = trainer.device
        self.train_images = self.dataset.train_images.to(self.device)
        self.test_images = self.dataset.test_images.to(self.device)
        self.train_labels = self.dataset.train_labels.to(self.device)
        self.test_labels = self.dataset.test_labels.to(self.device)
        C, H, W = self.train_images.shape[1:]
        self.channels, self.resolution = C, (H, W)
        self.coords = grid((H, W), device=self.device)

    def num_train(self) -> int:
        return int(self.train_images.shape[0])

    def images_of(self, index: torch.Tensor, mine: slice) -> torch.Tensor:
        """This rank's ``(b, C, H, W)`` training images of the global batch ``index``."""
        return self.train_images[index[mine].to(self.device)]

    def make_batch(self, index, mine, generator):
        return (self.images_of(index, mine),)

    def siren(self, out_dim: int | None = None, *, latent: int | None = None) -> LatentSiren:
        c = self.cfg
        steps = c.step_options() if isinstance(c, GradientOriginConfig) else {}
        return LatentSiren(
            2,
            c.latent if latent is None else latent,
            out_dim or self.channels,
            c.hidden,
            c.layers,
            **c.siren_options(),
            **steps,
        )

    def state_dict(self) -> dict:
        return {
            "dataset": {
                "name": self.dataset.name,
                "source": self.dataset.source,
                "image_shape": list(self.train_images.shape[1:]),
            }
        }

    def describe(self, trainer) -> list[str]:
        c = trainer.cfg
        lines = [
            f"data: {self.train_images.shape[0]} train / {self.test_images.shape[0]} test images from "
            f"{self.dataset.source}",
            f"model: {type(trainer.model).__name__}, {sum(p.numel() for p in trainer.model.parameters()):,} "
            f"parameters on {trainer.device}; batch {c.batch_size}, lr {c.lr:g}, steps {c.steps}",
        ]
        if trainer.dist.enabled:
            lines.append(
                f"data parallel: {trainer.dist.world_size} processes, {c.batch_size // trainer.dist.world_size}"
                f" images each per step (global batch {c.batch_size})"
            )
        return lines
