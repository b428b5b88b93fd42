"""The paper's variants as tasks: the classifier GON, the variational GON, and the autoencoder
baselines (an AE or a VAE with the GON's decoder), all on image data sets.

Each wraps the variant's own ``loss`` method (:mod:`inr_gon.variants`) in a
:class:`~inr_gon.training.objectives.LossObjective`; the periodic evaluation is the variant's
figure on ``eval_images`` test images (accuracy, negative ELBO, reconstruction MSE), drawn with
a seeded generator so that evaluating never changes the training run.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...core.coords import points_to_image
from ...variants.autoencoder import VAE, Autoencoder
from ...variants.classifier import ClassifierGON
from ...variants.variational import ConvDecoder, VariationalGON
from ..config import at_least, nonneg, option
from ..parts import GradientOriginConfig, LatentConfig, SirenConfig
from ..objectives import LossObjective
from ..trainer import TrainerConfig
from .image import ImageDataConfig, ImageDataTask

__all__ = [
    "ClassifierConfig",
    "ClassifierTask",
    "VariationalConfig",
    "VariationalTask",
    "AutoencoderConfig",
    "AutoencoderTask",
]


def _shape_config(model) -> dict:
    """A model's class and parameter shapes (what a resume must match)."""
    return {"class": type(model).__name__, "shapes": {k: list(v.shape) for k, v in model.state_dict().items()}}


class _VariantTask(ImageDataTask):
    """Shared by the variant tasks: evaluation on ``eval_images`` test images in batches."""

    def model_config(self, model):
        return _shape_config(model)

    def eval_split(self, n: int | None = None):
        n = self.cfg.eval_images if n is None else n
        return self.test_images[:n], self.test_labels[:n]

    def final_metrics(self, trainer) -> dict:
        was = trainer.model.training
        trainer.model.eval()
        m = self.evaluate_on(*self.eval_split(self.test_images.shape[0])) if self.test_images.shape[0] else {}
        trainer.model.train(was)
        return {
            **m,
            "dataset": self.dataset.name,
            "num_test": int(self.test_images.shape[0]),
            "num_train": int(self.train_images.shape[0]),
        }

    def evaluate(self, trainer) -> dict:
        x, y = self.eval_split()
        return self.evaluate_on(x, y) if x.shape[0] else {}


# -- the classifier GON ----------------------------------------------------------------------------------
@dataclass
class ClassifierConfig(ImageDataConfig, LatentConfig, SirenConfig, GradientOriginConfig, TrainerConfig):
    """A classifier GON (a linear softmax on the gradient-origin latent, Eq. 4)."""

    mode: str = option(
        "classifier",
        "train solely by cross-entropy, or jointly with the reconstruction",
        choices=("classifier", "joint"),
    )
    inner_loss: str = option(
        "mse",
        "point loss of the inner integral (whose gradient at the origin is the latent)",
        choices=("mse", "bce"),
        group="encoder",
    )
    ce_weight: float | None = option(None, "weight of the cross-entropy in joint mode", check=nonneg)

    TASK = "classifier"
    PARTS = ("trainer", "image data", "latent", "siren", "gradient origin")
    DEFAULTS = dict(
        hidden=64,
        layers=3,
        steps=400,
        batch_size=64,
        lr=3e-4,
        eval_every=200,
        checkpoint_every=1000,
        inner_weight=1.0 / 64,
        ce_weight=1.0,
    )

    def inactive(self):
        out = super().inactive()
        if self.mode != "joint":
            out["ce_weight"] = "is read in joint mode only (--mode joint)"
        return out


class ClassifierTask(_VariantTask):
    name = "classifier"
    about = "classifier GON: a linear softmax on the latent (Eq. 4)"
    config_class = ClassifierConfig
    checkpoint_kind = "inr_gon.classifier_gon"

    def build_model(self):
        c = self.cfg
        k = int(self.dataset.train_labels.max()) + 1 if self.dataset.train_labels.numel() else 2
        return ClassifierGON(
            self.siren(),
            max(k, 2),
            inner_loss=c.inner_loss,
            inner_scale=c.inner_weight,
            mode=c.mode,
            ce_weight=c.ce_weight or 0.0,
        )

    def build_objective(self, model):
        def loss_fn(m, images, labels):
            loss, z, parts = m.loss(images, labels)
            return loss, z, {"loss": loss.detach(), "ce": parts["ce"], "recon": parts["recon"]}

        return LossObjective(model, loss_fn)

    def make_batch(self, index, mine, generator):
        i = index[mine].to(self.device)
        return self.train_images[i], self.train_labels[i]

    def evaluate_on(self, x, y) -> dict:
        return {"test_accuracy": self.trainer.model.accuracy(x, y)}

    def describe_eval(self, m):
        return f"test accuracy {100 * m['test_accuracy']:.2f} %"

    def progress(self, parts, last_eval):
        out = {"ce": f"{parts['ce']:.4f}"}
        if "test_accuracy" in last_eval:
            out["acc"] = f"{100 * last_eval['test_accuracy']:.1f}%"
        return out


ClassifierConfig.task_class = ClassifierTask


# -- the variational GON ---------------------------------------------------------------------------------
@dataclass
class VariationalConfig(ImageDataConfig, LatentConfig, SirenConfig, TrainerConfig):
    """A variational GON (Eq. 2): the negative ELBO through the gradient-origin latent. The SIREN
    options are read with ``--decoder siren`` only, ``--base-channels`` with the conv decoder."""

    decoder: str = option(
        "conv", "the paper's convolutional decoder, or a SIREN", choices=("conv", "siren"), group="model"
    )
    base_channels: int | None = option(
        None, "convolutional decoder: channels of its last hidden layer", check=at_least(1), group="model"
    )
    kl_weight: float = option(1.0, "weight of the KL term", check=nonneg)

    TASK = "variational"
    PARTS = ("trainer", "image data", "latent", "siren or conv decoder")
    DEFAULTS = dict(
        latent=48,
        hidden=64,
        layers=3,
        steps=700,
        batch_size=64,
        lr=1e-3,
        eval_every=350,
        checkpoint_every=1000,
        base_channels=32,
    )

    def inactive(self):
        if self.decoder == "conv":
            return {
                **super().inactive(),
                **{
                    k: "is a SIREN option; the conv decoder does not read it (--decoder siren does)"
                    for k in self.SIREN_FIELDS
                },
            }
        return {**super().inactive(), "base_channels": "is the conv decoder's; the SIREN decoder does not read it"}


class VariationalTask(_VariantTask):
    name = "variational"
    about = "variational GON (Eq. 2), convolutional or SIREN decoder"
    config_class = VariationalConfig
    checkpoint_kind = "inr_gon.variational_gon"

    def build_model(self):
        c = self.cfg
        if c.decoder == "conv":
            dec = ConvDecoder(c.latent, self.channels, image_size=self.resolution[0], base_channels=c.base_channels)
            return VariationalGON(dec)
        return VariationalGON(self.siren(), image_shape=(self.channels, *self.resolution))

    def build_objective(self, model):
        kl_weight = self.cfg.kl_weight

        def loss_fn(m, images):
            loss, z, parts = m.loss(images, kl_weight=kl_weight)
            return (
                loss,
                z,
                {"loss": loss.detach(), "bce": parts["bce"].detach().mean(), "kl": parts["kl"].detach().mean()},
            )

        return LossObjective(model, loss_fn)

    def evaluate_on(self, x, y) -> dict:
        g = torch.Generator(device=self.device).manual_seed(self.cfg.seed + 7)
        r = self.trainer.model.evaluate(x, generator=g, device=self.device)
        return {
            "test_nelbo": r["nelbo_nats"],
            "test_bce": r["bce_nats"],
            "test_kl": r["kl_nats"],
            "test_bits_per_dim": r["bits_per_dim"],
        }

    def describe_eval(self, m):
        return f"test -ELBO {m['test_nelbo']:.2f} nats/image ({m['test_bits_per_dim']:.4f} bits/dim)"


VariationalConfig.task_class = VariationalTask


# -- the autoencoder baselines ---------------------------------------------------------------------------
@dataclass
class AutoencoderConfig(ImageDataConfig, LatentConfig, SirenConfig, TrainerConfig):
    """An autoencoder (``kind="ae"``) or VAE (``"vae"``) with the GON's implicit decoder and an MLP
    encoder sized to the decoder (the paper's comparison)."""

    kind: str = option("ae", "plain autoencoder (MSE) or VAE (negative ELBO)", choices=("ae", "vae"), group="model")
    encoder_hidden: int | None = option(
        None, "encoder width (default: sized to the decoder's parameter count)", check=at_least(1), group="model"
    )

    TASK = "autoencoder"
    PARTS = ("trainer", "image data", "latent", "siren", "MLP encoder")
    DEFAULTS = dict(hidden=64, layers=3, steps=500, batch_size=64, lr=3e-4, eval_every=250, checkpoint_every=1000)


class AutoencoderTask(_VariantTask):
    name = "autoencoder"
    about = "autoencoder / VAE baseline with the GON decoder"
    config_class = AutoencoderConfig
    checkpoint_kind = "inr_gon.autoencoder"

    def build_model(self):
        c = self.cfg
        shape = (self.channels, *self.resolution)
        cls = Autoencoder if c.kind == "ae" else VAE
        return cls(self.siren(), shape, hidden_dim=c.encoder_hidden)

    def build_objective(self, model):
        def loss_fn(m, images):
            out = m.loss(images)
            return out[0], out[1], {"loss": out[0].detach()}

        return LossObjective(model, loss_fn)

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor, *, batch_size: int = 500) -> torch.Tensor:
        """Encoder -> decoder reconstructions (VAE: at the encoder mean) ``(N, C, H, W)``."""
        m = self.trainer.model
        out = []
        for s in range(0, images.shape[0], batch_size):
            x = images[s : s + batch_size]
            z = m.encode(x) if self.cfg.kind == "ae" else m.encode(x)[0]
            y = m.decoder(self.coords, z)
            out.append(points_to_image(torch.sigmoid(y) if self.cfg.kind == "vae" else y, self.resolution))
        return torch.cat(out)

    def evaluate_on(self, x, y) -> dict:
        return {"test_mse": float((self.reconstruct(x) - x).square().mean())}

    def describe_eval(self, m):
        return f"test MSE {m['test_mse']:.5f}"


AutoencoderConfig.task_class = AutoencoderTask
