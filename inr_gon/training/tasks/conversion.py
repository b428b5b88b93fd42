"""The modality-conversion task: the latent from one signal, the loss on another.

Learned super-resolution (``inr-gon train superres``, ``examples/superres_mnist.py``): the
inner integral on the ``factor``-times area-downsampled image, the outer integral on the
original; test images are encoded from their low-resolution copy only and rendered at the
original size, and compared with classical upsampling (bicubic, bilinear, nearest) of the same
input. :func:`fit_conversion` trains a given model on given pairs through the same trainer.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ...core.coords import grid, image_to_points
from ...core.integrators import GridIntegrator, MonteCarloIntegrator
from ...data.dataset import ImageDataset
from ...eval.image import psnr, ssim
from ...variants.modality import area_downsample, check_pair, convert, upsample
from ..checkpoint import atomic_write_bytes
from ...nn.siren import LatentSiren
from ..config import at_least, fraction, option
from ..parts import EncodingConfig, GradientOriginConfig, LatentConfig, SirenConfig
from ..objectives import GONObjective
from ..trainer import TrainerConfig
from .image_data import ImageDataConfig, ImageDataTask, ImageLossConfig

__all__ = ["ConversionConfig", "ConversionTask", "fit_conversion", "CONVERSION_CHECKPOINT_KIND"]

CONVERSION_CHECKPOINT_KIND = "inr_gon.conversion_gon"


@dataclass
class ConversionConfig(
    ImageDataConfig, ImageLossConfig, LatentConfig, SirenConfig, GradientOriginConfig, EncodingConfig, TrainerConfig
):
    """Super-resolution by modality conversion (``None`` fields: the defaults below)."""

    factor: int = option(2, "downsampling factor of the inputs (28 -> 28/factor)", check=at_least(1), group="data")
    outer_fraction: float = option(0.25, "fraction of the target pixels in the Monte-Carlo outer loss", check=fraction)
    max_test_images: int = option(0, "evaluate on the first N test images (0: all)", check=at_least(0), group="output")

    TASK = "superres"
    PARTS = ("trainer", "image data", "image losses", "latent", "siren", "gradient origin", "encoding")
    # a short CPU run: a cosine following the time budget, a Monte-Carlo outer integral
    DEFAULTS = dict(
        hidden=128,
        layers=3,
        steps=12_000,
        seconds=300.0,
        batch_size=64,
        lr=5e-4,
        lr_schedule="cosine",
        schedule_by="time",
        eval_every=1000,
        checkpoint_every=1000,
    )

    def resolved(self, device):
        if self.inner_weight is None:  # the 28² trainer's 1/64 per unit area, at the input's pixel size
            return dataclasses.replace(self, inner_weight=self.factor**2 / 64).resolved(device)
        return super().resolved(device)


class ConversionTask(ImageDataTask):
    """Learned super-resolution: inner on the downsampled image, outer on the original.

    Args:
        config: a :class:`ConversionConfig`.
        dataset: an :class:`~inr_gon.data.ImageDataset` of originals (default: loaded).
        sources: instead of a data set, explicit training inputs ``(N, C, h, w)`` with their
            ``targets`` ``(N, C, H, W)`` (any resolutions).
    """

    name = "superres"
    about = "modality conversion: learned super-resolution (14² in, 28² out)"
    config_class = ConversionConfig
    checkpoint_kind = CONVERSION_CHECKPOINT_KIND
    commands = ("eval",)

    @classmethod
    def model_from_checkpoint(cls, state):
        return LatentSiren(**state["model_config"])

    def __init__(self, config, *, dataset=None, sources=None, targets=None):
        if (sources is None) != (targets is None):
            raise ValueError("give both sources and targets, or neither")
        if sources is not None:
            check_pair(sources, targets)
            empty = targets[:0]
            dataset = ImageDataset(
                "pairs",
                targets,
                torch.zeros(len(targets), dtype=torch.long),
                empty,
                torch.zeros(0, dtype=torch.long),
                "given pairs",
            )
        super().__init__(config, dataset=dataset)
        self._sources = sources

    @classmethod
    def default_out(cls, cfg) -> str:
        return f"runs/superres_{cfg.dataset}"

    def setup(self, trainer) -> None:
        super().setup(trainer)
        f = self.cfg.factor
        self.lo_train = (
            self._sources.to(self.device) if self._sources is not None else area_downsample(self.train_images, f)
        )
        n_test = self.cfg.max_test_images or None
        self.test_images = self.test_images[:n_test]
        self.lo_test = area_downsample(self.test_images, f) if self.test_images.shape[0] else self.test_images
        self.inner_coords = grid(tuple(self.lo_train.shape[2:]), device=self.device)

    def build_model(self):
        return self.siren()

    def build_objective(self, model):
        c = self.cfg
        outer = MonteCarloIntegrator(fraction=c.outer_fraction) if c.outer_fraction < 1 else GridIntegrator()
        return GONObjective(
            model,
            loss=c.inner_loss,
            outer_loss=c.outer_loss,
            inner=GridIntegrator(scale=c.inner_weight),
            outer=outer,
            amp=c.amp,
        )

    def make_batch(self, index, mine, generator):
        i = index[mine].to(self.device)
        return self.coords, image_to_points(self.train_images[i]), self.inner_coords, image_to_points(self.lo_train[i])

    def predict(self, lo: torch.Tensor) -> torch.Tensor:
        c = self.cfg
        return convert(
            self.trainer.model, lo, self.resolution, loss=c.inner_loss, inner_scale=c.inner_weight, steps=c.encode_steps
        )

    def evaluate(self, trainer) -> dict:
        n = min(self.cfg.eval_images, self.test_images.shape[0])
        if not n:
            return {}
        hi, lo = self.test_images[:n], self.lo_test[:n]
        return {
            "test_psnr": float(psnr(self.predict(lo), hi).mean()),
            "bicubic_psnr": float(psnr(upsample(lo, self.resolution, mode="bicubic"), hi).mean()),
        }

    def describe_eval(self, m):
        return f"test PSNR {m['test_psnr']:.2f} dB (bicubic {m['bicubic_psnr']:.2f} dB)"

    def progress(self, parts, last_eval):
        out = {"loss": f"{parts['loss']:.4f}"}
        if "test_psnr" in last_eval:
            out["test"] = f"{last_eval['test_psnr']:.1f}dB"
        return out

    def final_metrics(self, trainer) -> dict:
        hi, lo = self.test_images, self.lo_test
        if not hi.shape[0]:
            return {}
        was = trainer.model.training
        trainer.model.eval()
        t0 = time.perf_counter()
        preds = {"gon": self.predict(lo)}
        eval_seconds = time.perf_counter() - t0
        trainer.model.train(was)
        for mode in ("bicubic", "bilinear", "nearest"):
            preds[mode] = upsample(lo, self.resolution, mode=mode)
        self._preds = preds
        m = {f"psnr_{k}": float(psnr(v, hi).mean()) for k, v in preds.items()}
        m.update({f"ssim_{k}": float(ssim(v, hi).mean()) for k, v in preds.items()})
        m.update(
            {
                "psnr_gon_minus_bicubic": m["psnr_gon"] - m["psnr_bicubic"],
                "fraction_images_gon_beats_bicubic": float(
                    (psnr(preds["gon"], hi) > psnr(preds["bicubic"], hi)).float().mean()
                ),
                "eval_seconds": round(eval_seconds, 1),
                "final_train_mse": trainer.history["loss"][-1] if trainer.history.get("loss") else None,
                "num_test": int(hi.shape[0]),
                "input_size": list(lo.shape[2:]),
                "output_size": list(self.resolution),
                "dataset": self.dataset.name,
                "data_source": self.dataset.source,
                "threads": torch.get_num_threads(),
                "inner_weight": self.cfg.inner_weight,
            }
        )
        return m

    def write_outputs(self, trainer, metrics, out):
        if not trainer.dist.is_main or not self.test_images.shape[0]:
            return {}, metrics
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        from ...viz import save_grid

        n = min(12, self.test_images.shape[0])
        rows = [
            upsample(self.lo_test[:n], self.resolution, mode="nearest"),
            self._preds["bicubic"][:n],
            self._preds["gon"][:n].clamp(0, 1),
            self.test_images[:n],
        ]
        show = F.interpolate(torch.cat(rows), scale_factor=4, mode="nearest")
        paths = {"figure": save_grid(show, out / "superres_vs_bicubic.png", nrow=n, pad=4)}
        paths["metrics"] = atomic_write_bytes(out / "metrics.json", json.dumps(metrics, indent=2).encode())
        return paths, metrics

    def summary(self, trainer, m, paths) -> list[str]:
        if "psnr_gon" not in m:
            return super().summary(trainer, m, paths)
        return [
            " ".join(f"{k}={m[k]:.2f}" for k in ("psnr_gon", "psnr_bicubic", "psnr_bilinear", "psnr_nearest"))
            + f" on {m['num_test']} test images ({100 * m['fraction_images_gon_beats_bicubic']:.0f} % of them "
            f"better than bicubic); outputs in {trainer.out}"
        ]


ConversionConfig.task_class = ConversionTask


class _GivenModel(ConversionTask):
    """A conversion task training a model built by the caller."""

    def __init__(self, config, model, **kw):
        super().__init__(config, **kw)
        self._model = model

    def build_model(self):
        return self._model

    def model_config(self, model):
        return model.config() if hasattr(model, "config") else {"class": type(model).__name__}


def fit_conversion(
    model,
    sources: torch.Tensor,
    targets: torch.Tensor,
    *,
    steps: int,
    seconds: float | None = None,
    batch_size: int = 64,
    lr: float = 3e-4,
    loss="mse",
    inner_weight: float = 1.0,
    outer_fraction: float = 1.0,
    seed: int = 0,
    log_every: int = 50,
    quiet: bool = True,
) -> dict:
    """Train ``model`` in place for source -> target conversion through the :class:`Trainer`
    (constant learning rate, no checkpoints).

    Args:
        sources: ``(N, C, h, w)`` training inputs; targets: ``(N, C, H, W)`` matching outputs.
        steps: maximum number of steps; seconds: optional wall-clock budget.
        loss: the inner and outer point loss; inner_weight: the latent's scale (each input
            pixel's weight in the inner sum).
        outer_fraction: fraction of target pixels in a Monte-Carlo outer integral (1: all).
    Returns:
        ``{"steps", "seconds", "step": [...], "loss": [...]}`` with the per-pixel losses logged
        every ``log_every`` steps.

    Raises:
        ValueError: bad options; NonFiniteLossError: the loss became NaN/Inf (names the step).
    """
    from ..trainer import Trainer

    dev = next(model.parameters()).device
    cfg = ConversionConfig(
        steps=steps,
        seconds=seconds or 0.0,
        batch_size=batch_size,
        lr=lr,
        inner_loss=loss,
        outer_loss=loss,
        inner_weight=inner_weight,
        outer_fraction=outer_fraction,
        seed=seed,
        log_every=log_every,
        lr_schedule="constant",
        eval_every=10**9,
        checkpoint_every=10**9,
        device=str(dev),
        keep_freed_memory=False,
        hidden=1,
        layers=1,
    )
    cfg.validate()
    t = Trainer(_GivenModel(cfg, model, sources=sources, targets=targets), quiet=quiet)
    info = t.fit()
    model.eval()
    return {
        "steps": info["steps"],
        "seconds": info["train_seconds"],
        "step": list(t.history["step"]),
        "loss": list(t.history.get("loss", [])),
    }
