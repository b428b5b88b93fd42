"""The image task: implicit GONs on MNIST, Fashion-MNIST or a folder of images.

:class:`ImageTask` trains ``LatentSiren(2, k, C)`` over pixel coordinates: exact GON steps,
the outer integral optionally on a Monte-Carlo subset, unseen test images encoded by the single
gradient step for evaluation, and the pictures of :func:`write_image_outputs`.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from ...data import is_mnist_name
from ...core.coords import image_to_points
from ...core.integrators import GridIntegrator, MonteCarloIntegrator, StratifiedIntegrator
from ...core.sampling import GaussianLatentSampler
from ...eval.image import psnr, ssim
from ...eval.pca import PCA
from ...geometry.render import decode, encode
from ...nn.siren import LatentSiren
from ..parts import EncodingConfig, GradientOriginConfig, LatentConfig, SirenConfig
from ..config import Check, Preset, fraction, option
from ..objectives import GONObjective
from ..trainer import TrainerConfig
from .base import CollapseWarning
from .image_data import ImageDataConfig, ImageDataTask, ImageLossConfig, load_dataset
from .image_outputs import baseline_lines, write_image_outputs

__all__ = [
    "ImageDataConfig",
    "ImageConfig",
    "ImageDataTask",
    "ImageTask",
    "load_dataset",
    "encode_images",
    "encode_as_run",
    "decode_latents",
    "write_image_outputs",
    "IMAGE_CHECKPOINT_KIND",
]

IMAGE_CHECKPOINT_KIND = "inr_gon.image_gon"


def _seconds_list(text: str) -> list[float]:
    return sorted(float(x) for x in text.split(",") if x.strip())


def _seconds_list_ok(text: str) -> bool:
    try:
        return all(v > 0 and math.isfinite(v) for v in _seconds_list(text))
    except ValueError:
        return False


@dataclass
class ImageConfig(
    ImageDataConfig, ImageLossConfig, LatentConfig, SirenConfig, GradientOriginConfig, EncodingConfig, TrainerConfig
):
    """An implicit GON on images (``None`` fields: the preset's values)."""

    outer_fraction: float | None = option(None, "fraction of pixels in the Monte-Carlo outer integral", check=fraction)
    outer_sampling: str | None = option(
        None,
        "the outer integral's pixels when --outer-fraction < 1: a uniform "
        "random subset, or stratified (one random pixel per block; the fraction "
        "must be 1/b² for an integer b)",
        choices=("random", "stratified"),
    )
    snapshots: str = option(
        "3,10,30,60",
        "training seconds at which 8 fixed test images are reconstructed for "
        "convergence.png (comma-separated; empty: none)",
        check=Check(_seconds_list_ok, "must be comma-separated positive seconds"),
        group="output",
    )

    TASK = "image"
    PARTS = ("trainer", "image data", "image losses", "latent", "siren", "gradient origin", "encoding")
    # inner_weight 1/64: each pixel's weight in the inner sum (cwkx/GON's latent at batch 64, independent of the batch)
    DEFAULTS = dict(inner_weight=1.0 / 64, outer_sampling="random")
    PRESETS = {
        "cpu": Preset(
            "a run of a few minutes on a CPU: a smaller SIREN, a time budget, latent 64 shifting every "
            "layer, one Gauss-Newton latent step (chosen by the margin over PCA at the same latent size)",
            dict(
                hidden=128,
                layers=4,
                batch_size=32,
                # 5e-4 destabilises the second-order step while the rate is high (a longer budget ends lower
                # at latent 128, runs spread by a dB at 64); half of it trains (docs/findings/images.md)
                lr=2.5e-4,
                lr_schedule="cosine",
                schedule_by="time",
                outer_fraction=0.25,
                steps=20_000,
                seconds=250.0,
                eval_every=1000,
                checkpoint_every=500,
                latent=64,
                latent_shifts=True,
                w0_latent=30.0,
                gauss_newton=0.03,
                amp="auto",
            ),
        ),
        "paper": Preset(
            "the paper's configuration: SIREN 4x256, latent 32, batch 64, lr 1e-4, 20,000 steps",
            dict(
                hidden=256,
                layers=4,
                batch_size=64,
                lr=1e-4,
                lr_schedule="constant",
                outer_fraction=1.0,
                steps=20_000,
                eval_every=1000,
                checkpoint_every=1000,
            ),
        ),
    }
    DEVICE_PRESETS = dict(cpu="cpu", cuda="paper")
    # the first layer's frequency sets the finest detail per pixel: the sharp strokes of the 28²
    # digits and garments need more than the paper's 30 (docs/findings/images.md); elsewhere (smooth or
    # larger images) the paper's 30 stays the default
    MNIST_W0_FIRST = 90.0

    def resolved(self, device):
        preset = self.preset or self.default_preset(getattr(device, "type", str(device)))
        if self.w0_first is None and preset == "cpu" and is_mnist_name(self.dataset):
            return dataclasses.replace(self, w0_first=self.MNIST_W0_FIRST).resolved(device)
        return super().resolved(device)

    def inactive(self):
        out = super().inactive()
        if self.outer_fraction is not None and self.outer_fraction >= 1:
            out["outer_sampling"] = "is read with --outer-fraction < 1 only (the whole grid is the outer integral)"
        return out


def encode_images(
    model,
    images: torch.Tensor,
    *,
    loss: str = "mse",
    inner_weight: float = 1 / 64,
    batch_size: int = 500,
    steps: int | None = None,
) -> torch.Tensor:
    """Latents ``(N, k)`` of images ``(N, C, H, W)`` on the cell-centred grid over [-1, 1]²,
    with the inner integral a trained model was trained with, in ``steps`` latent steps
    (default: the model's)."""
    return encode(
        model,
        images,
        loss=loss,
        integrator=GridIntegrator(scale=inner_weight),
        batch_size=batch_size,
        check=False,
        steps=steps,
    )


def encode_as_run(model, images: torch.Tensor, cfg) -> torch.Tensor:
    """Latents ``(N, k)`` of ``images (N, C, H, W)`` as a run with config ``cfg`` encodes them: its
    inner loss and inner weight, in its ``encode_steps`` (default: the model's trained steps)."""
    return encode_images(model, images, loss=cfg.inner_loss, inner_weight=cfg.inner_weight, steps=cfg.encode_steps)


# latents -> images in [0, 1] (sigmoid for BCE-trained models)
decode_latents = decode


class ImageTask(ImageDataTask):
    """An implicit GON (``LatentSiren`` over 2-D pixel coordinates) on an image data set."""

    name = "image"
    about = "implicit GON on MNIST, Fashion-MNIST or an image folder (the main job)"
    config_class = ImageConfig
    checkpoint_kind = IMAGE_CHECKPOINT_KIND
    commands = ("render", "eval")

    @classmethod
    def model_from_checkpoint(cls, state):
        return LatentSiren(**state["model_config"])

    def __init__(self, config, *, dataset=None):
        super().__init__(config, dataset=dataset)
        self.latent_stats: dict | None = None
        self.snapshots: list[dict] = []  # the convergence figure's columns
        self._snap_times = _seconds_list(config.snapshots)

    @classmethod
    def default_out(cls, cfg) -> str:
        name = Path(cfg.dataset).name if Path(cfg.dataset).is_dir() else cfg.dataset
        return str(Path("runs") / f"{name}_siren")

    def build_model(self):
        return self.siren()

    def build_objective(self, model):
        c = self.cfg
        if c.outer_fraction >= 1:
            outer = GridIntegrator()
        elif c.outer_sampling == "stratified":
            b = round(c.outer_fraction**-0.5)
            if abs(b * b * c.outer_fraction - 1) > 1e-6:
                raise ValueError(
                    f"outer_fraction={c.outer_fraction} is not 1/b² (stratified sampling takes one pixel per b×b block)"
                )
            outer = StratifiedIntegrator(self.resolution, block=b)
        else:
            outer = MonteCarloIntegrator(fraction=c.outer_fraction)
        return GONObjective(
            model,
            loss=c.inner_loss,
            outer_loss=c.outer_loss,
            inner=GridIntegrator(scale=c.inner_weight),
            outer=outer,
            amp=c.amp,
        )

    def make_batch(self, index, mine, generator):
        return self.coords, image_to_points(self.images_of(index, mine))

    def progress(self, parts, last_eval):
        lv = parts["loss"]
        out = {"loss": f"{lv:.4f}", "psnr": f"{-10 * math.log10(max(lv, 1e-10)):.1f}dB"}
        if "test_psnr" in last_eval:
            out["test"] = f"{last_eval['test_psnr']:.1f}dB"
        return out

    # -- encoding ---------------------------------------------------------------------------------------
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Gradient-origin latents ``(N, k)`` of ``images (N, C, H, W)`` (``--encode-steps`` steps each)."""
        return encode_as_run(self.trainer.model, images, self.cfg)

    def decode(self, z: torch.Tensor, resolution=None) -> torch.Tensor:
        """Images ``(N, C, *resolution)`` in [0, 1] for latents ``(N, k)`` (default: training size)."""
        return decode_latents(self.trainer.model, z, resolution or self.resolution, loss=self.cfg.outer_loss)

    def reconstruction_metrics(self, images: torch.Tensor, *, with_ssim: bool = False) -> dict:
        """Encode unseen images (in ``--encode-steps`` steps, default the trained ones), decode; mean
        PSNR (and SSIM). Under DDP each rank takes its shard and the sums are all-reduced: every rank
        returns the global means."""
        dist = self.trainer.dist
        part = images[dist.shard(images.shape[0])] if dist.enabled else images
        sums = torch.zeros(3, dtype=torch.float64, device=self.device)  # psnr, ssim, count
        if part.shape[0]:  # a rank's shard may be empty (fewer images than ranks)
            recon = self.decode(self.encode(part))
            sums[0] = psnr(recon, part).double().sum()
            if with_ssim:
                sums[1] = ssim(recon, part).double().sum()
        sums[2] = part.shape[0]
        sums = dist.all_reduce_sum(sums).tolist()
        n = max(sums[2], 1.0)
        out = {"psnr": sums[0] / n}
        if with_ssim:
            out["ssim"] = sums[1] / n
        return out

    def evaluate(self, trainer) -> dict:
        eval_set = self.test_images[: self.cfg.eval_images]
        if not eval_set.shape[0]:
            return {}
        self._eval_n = int(eval_set.shape[0])
        return {"test_psnr": self.reconstruction_metrics(eval_set)["psnr"]}

    def describe_eval(self, m):
        return f"test PSNR {m['test_psnr']:.2f} dB on {self._eval_n} unseen images"

    def on_step_end(self, trainer) -> None:
        """Snapshots of fixed test images at the configured training times (Figure 6 of the paper);
        their time is not counted as training. No collectives: safe under DDP."""
        if not self._snap_times or not self.test_images.shape[0]:
            return
        now = trainer.train_seconds
        if now < self._snap_times[0]:
            return
        if trainer.device.type == "cuda":  # queued training kernels count as training
            torch.cuda.synchronize(trainer.device)
            now = trainer.train_seconds
        t0 = time.perf_counter()
        passed = [s for s in self._snap_times if s <= now]
        self._snap_times = self._snap_times[len(passed) :]
        was = trainer.model.training
        trainer.model.eval()
        x = self.test_images[:8]
        part = self.test_images[:500]
        rec = self.decode(self.encode(part))
        trainer.model.train(was)
        self.snapshots.append(
            {
                "target_seconds": passed[-1],
                "seconds": round(now, 2),
                "step": trainer.step,
                "psnr": float(psnr(rec, part).mean()),
                "images": rec[: x.shape[0]].detach().cpu(),
            }
        )
        trainer.eval_seconds += time.perf_counter() - t0

    def on_fit_end(self, trainer) -> None:
        sampler = GaussianLatentSampler(self.encode(self.train_images[:5000]))
        self.latent_stats = {"mean": sampler.mean, "cov": sampler.cov}

    def final_metrics(self, trainer) -> dict:
        was = trainer.model.training
        trainer.model.eval()
        test = self.test_images
        m = (
            self.reconstruction_metrics(test, with_ssim=True)
            if test.shape[0]
            else {"psnr": float("nan"), "ssim": float("nan")}
        )
        trainer.model.train(was)
        out = {
            "test_psnr": m["psnr"],
            "test_ssim": m["ssim"],
            "dataset": self.dataset.name,
            "data_source": self.dataset.source,
            "num_test": int(test.shape[0]),
            "num_train": int(self.train_images.shape[0]),
        }
        base = trainer.dist.run_on_main(self.linear_baseline, m["psnr"], m["ssim"])  # every rank gets rank 0's
        return {**out, **base, **self.failure_check(m["psnr"])}

    def linear_baseline(self, test_psnr: float, test_ssim: float) -> dict:
        """The best linear code of the run's latent size: PCA with ``k = latent`` fitted on the
        training images, the same test images reconstructed, scored by the same ``psnr`` and
        ``ssim``. A one-step latent of a squared-error inner loss is affine in the image, so this
        is the figure a GON has to beat; ``pca_margin_psnr`` is the GON's lead (negative: behind)."""
        test, k = self.test_images, self.cfg.latent
        n_train = int(self.train_images.shape[0])
        if not test.shape[0] or n_train < 2 or k > min(n_train, self.train_images[0].numel()):
            return {
                "pca_test_psnr": None,
                "pca_test_ssim": None,
                "pca_margin_psnr": None,
                "pca_margin_ssim": None,
                "pca_seconds": 0.0,
                "below_linear_baseline": None,
            }
        t0 = time.perf_counter()
        pca = PCA(k).fit(self.train_images.flatten(1))
        recon = pca.reconstruct(test.flatten(1)).view_as(test)
        p, q = float(psnr(recon, test).mean()), float(ssim(recon, test).mean())
        return {
            "pca_test_psnr": p,
            "pca_test_ssim": q,
            "pca_margin_psnr": test_psnr - p,
            "pca_margin_ssim": test_ssim - q,
            "pca_seconds": round(time.perf_counter() - t0, 2),
            "below_linear_baseline": bool(test_psnr < p),
        }

    def failure_check(self, test_psnr: float) -> dict:
        """Did the run learn? Its test PSNR against the mean training image's (a reconstruction
        that ignores the image): within 1 dB of it, or not finite, is a failed run (a warning;
        ``--strict``: exit status 3)."""
        test = self.test_images
        if not test.shape[0]:
            return {}
        mean = self.train_images.mean(0, keepdim=True).expand_as(test)
        baseline = float(psnr(mean, test).mean())
        reasons = []
        if not math.isfinite(test_psnr):
            reasons.append(f"the test PSNR is {test_psnr} (the model diverged)")
        elif test_psnr < baseline + 1.0:
            reasons.append(
                f"test PSNR {test_psnr:.2f} dB is within 1 dB of the mean training image's "
                f"{baseline:.2f} dB: the reconstructions ignore the image (diverged or constant output; "
                f"try a lower --lr)"
            )
        for why in reasons:
            warnings.warn(f"the run failed to learn: {why}", CollapseWarning, stacklevel=2)
        return {"mean_image_psnr": baseline, "collapsed": bool(reasons), "collapse_reasons": reasons}

    def state_dict(self) -> dict:
        return {**super().state_dict(), "latent_stats": self.latent_stats, "snapshots": self.snapshots}

    def load_state_dict(self, state: dict) -> None:
        self.latent_stats = state.get("latent_stats")
        self.snapshots = list(state.get("snapshots") or [])
        last = self.snapshots[-1]["target_seconds"] if self.snapshots else 0.0
        self._snap_times = [t for t in _seconds_list(self.cfg.snapshots) if t > last]

    def write_outputs(self, trainer, metrics, out):
        if not trainer.dist.is_main:
            return {}, metrics
        return write_image_outputs(self, metrics, out)

    def describe(self, trainer) -> list[str]:
        c = trainer.cfg
        lines = super().describe(trainer)
        m = trainer.model
        w0 = f"w0 {m.w0_first:g}" + (f"/{m.w0_latent:g} (latent)" if m.w0_latent != m.w0_first else "")
        lines[1] = (
            f"model: LatentSiren {c.layers}x{c.hidden}, latent {c.latent}"
            f"{' shifting every layer' if c.latent_shifts else ''}, {w0}, "
            f"{sum(p.numel() for p in m.parameters()):,} parameters on {trainer.device}"
            f"{', bf16 outer pass' if c.amp == 'bf16' else ''}; "
            f"batch {c.batch_size}, lr {c.lr:g}, outer fraction {c.outer_fraction:g}, steps {c.steps}"
        )
        return lines

    def summary(self, trainer, metrics, paths) -> list[str]:
        files = sorted(p.name for p in paths.values()) + ["config.json", "metrics.jsonl"]
        if metrics.get("checkpoint"):
            files.append(Path(metrics["checkpoint"]).name)
        return [
            f"test PSNR {metrics['test_psnr']:.2f} dB, SSIM {metrics['test_ssim']:.4f} on {metrics['num_test']} "
            f"unseen images after {metrics['steps']} steps ({metrics['train_seconds']:.0f} s)",
            *baseline_lines(metrics, trainer.cfg.latent),
            f"wrote to {trainer.out}/: " + ", ".join(files),
        ]


ImageConfig.task_class = ImageTask
