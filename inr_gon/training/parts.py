"""The config parts every task shares (see :mod:`.config` for how a task's config is composed):

* :class:`TrainerConfig`: the training loop, every task's;
* :class:`LatentConfig`: the latent's size, every task's;
* :class:`SirenConfig`: the latent-conditioned SIREN decoder;
* :class:`GradientOriginConfig`: the gradient-origin encoder (the latent is a gradient at the origin);
* :class:`EncodingConfig`: how a trained gradient-origin model encodes signals after training.

The parts of one modality live with its tasks (:mod:`.tasks.image_data`, :mod:`.tasks.shapes`,
:mod:`.tasks.autodecoder`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from .config import Config, at_least, fraction, nonneg, option, positive

__all__ = ["TrainerConfig", "LatentConfig", "SirenConfig", "GradientOriginConfig", "EncodingConfig"]


@dataclass
class TrainerConfig(Config):
    """The loop's options, shared by every task (``None``: the task's default for the device)."""

    preset: str | None = option(None, "named defaults (see the task's --help)")
    steps: int | None = option(None, "total steps; with --resume, continue up to this step", check=at_least(0))
    seconds: float | None = option(
        None, "stop after this many seconds of training; evaluations do not count (0: no limit)", check=nonneg
    )
    batch_size: int | None = option(
        None,
        "items per step, in all (under torchrun: the global batch, split evenly over the processes)",
        check=at_least(1),
    )
    lr: float | None = option(None, "Adam learning rate", check=positive)
    lr_schedule: str | None = option(
        None, "constant, or cosine decay to lr/20 at --steps", choices=("constant", "cosine")
    )
    warmup_steps: int = option(0, "linear learning-rate warm-up over the first N steps", check=at_least(0))
    grad_clip: float = option(
        0.0, "clip the gradients' global norm to this value before each step (0: off)", check=nonneg
    )
    schedule_by: str | None = option(
        None,
        "the schedule's progress: step / --steps, or the larger of that and elapsed / "
        "--seconds (a run cut by its time budget still anneals; not bit-identical on "
        "resume)",
        choices=("steps", "time"),
    )
    eval_every: int | None = option(None, "steps between evaluations", check=at_least(1))
    checkpoint_every: int | None = option(None, "steps between checkpoints", check=at_least(1))
    keep_checkpoints: int | None = option(None, "checkpoints kept", check=at_least(1))
    log_every: int = option(10, "steps between log lines (and deferred non-finite checks)", check=at_least(1))
    seed: int = option(0, "random seed")
    init_from: str | None = option(
        None,
        "start from these weights (fine-tuning): a checkpoint, a run folder or a pretrained model's name "
        "(inr_gon.pretrained()); the rest of the run starts afresh",
        metavar="CKPT",
    )
    device: str = option("auto", "'auto' (CUDA when present), 'cpu', 'cuda', 'cuda:1', ...")
    on_nonfinite: str = option(
        "stop", "on a NaN/Inf loss: stop (the last good checkpoint stays) or skip the batch", choices=("stop", "skip")
    )
    nonfinite_check: str | None = option(
        None,
        "check the loss every step (a host sync) or read a device-side "
        "flag every log interval, never applying a non-finite update",
        choices=("immediate", "deferred"),
    )
    out: str | None = option(None, "run folder (default: runs/<task name>)", group="output")
    strict: bool = option(
        False,
        "exit with an error (status 3) when the run failed to learn (e.g. a collapsed "
        "shape space); without it a warning is printed and recorded",
        group="output",
    )
    tensorboard: bool = option(
        False, "also write TensorBoard event files into <out>/tb (needs the tensorboard package)", group="output"
    )
    amp: str | None = option(
        None,
        "autocast the outer pass to bf16/fp16 (the latent and the first layer stay "
        "float32); auto: bf16 on a CPU whose bf16 matmuls measure >= 1.5x float32's "
        "speed, else off",
        choices=("off", "bf16", "fp16", "auto"),
        group="speed",
    )
    tf32: bool = option(False, "allow TF32 matmuls on CUDA (faster, ~1e-3 relative error)", group="speed")
    compile: bool = option(
        False, "torch.compile the training objective (slow to start; docs/guides/gpus.md)", group="speed"
    )
    keep_freed_memory: bool = option(
        True,
        "CPU: keep glibc's default of returning large freed blocks to the OS "
        "(slower steps; by default freed memory is kept for reuse)",
        flag="--release-memory",
        negate=True,
        group="speed",
    )
    threads: int | None = option(
        None, "CPU threads (default: PyTorch's, one per core)", check=at_least(0), group="speed"
    )

    ABSENT = dict(amp="off")  # a run saved without the option trained in float32
    DEFAULTS = dict(
        lr_schedule="constant",
        schedule_by="steps",
        keep_checkpoints=3,
        eval_every=1000,
        checkpoint_every=1000,
        amp="off",
    )

    def resolved(self, device):
        if self.nonfinite_check is None:  # a host sync per step costs little on a CPU, much on a GPU
            check = "deferred" if getattr(device, "type", str(device)) == "cuda" else "immediate"
            return dataclasses.replace(self, nonfinite_check=check).resolved(device)
        return super().resolved(device)


@dataclass
class LatentConfig(Config):
    """The latent code's size (every task's, whatever its decoder or encoder)."""

    latent: int | None = option(None, "latent size", check=at_least(1), group="model")

    DEFAULTS = dict(latent=32)


@dataclass
class SirenConfig(Config):
    """The latent-conditioned SIREN decoder (``None``: the task's default or preset)."""

    hidden: int | None = option(None, "SIREN width", check=at_least(1), group="model")
    layers: int | None = option(None, "number of sine layers", check=at_least(1), group="model")
    w0: float | None = option(None, "SIREN frequency of the hidden layers", check=positive, group="model")
    w0_first: float | None = option(
        None, "SIREN frequency of the first layer (its coordinate columns)", check=positive, group="model"
    )
    w0_latent: float | None = option(
        None, "SIREN frequency of the first layer's latent columns (none: as --w0-first)", check=positive, group="model"
    )
    latent_shifts: bool | None = option(
        None,
        "the latent also shifts every hidden layer (a linear map per layer, "
        "functa's shift modulations); the paper's model conditions the first "
        "layer only",
        group="model",
    )

    DEFAULTS = dict(w0=30.0, w0_first=30.0, latent_shifts=False)
    # what a run saved without these fields did: no shifts, the latent at the first layer's frequency
    ABSENT = dict(latent_shifts=False, w0_latent=lambda d: d.get("w0_first", 30.0))
    SIREN_FIELDS: ClassVar[tuple] = ("hidden", "layers", "w0", "w0_first", "w0_latent", "latent_shifts")

    def siren_options(self) -> dict:
        """The :class:`~inr_gon.nn.siren.LatentSiren` keyword arguments of the decoder's fields."""
        return dict(w0=self.w0, w0_first=self.w0_first, w0_latent=self.w0_latent, latent_shifts=self.latent_shifts)


@dataclass
class GradientOriginConfig(Config):
    """The gradient-origin encoder: the latent is ``-inner_weight ·`` the gradient of the inner
    loss at the origin (one step, or K differentiated steps, plain or Gauss-Newton)."""

    inner_weight: float | None = option(
        None,
        "the latent's scale: z = -inner_weight * the gradient of the inner integral at the origin",
        check=positive,
        group="encoder",
    )
    latent_steps: int = option(
        1,
        "gradient steps of the latent (1: the paper's single step; more are differentiated through)",
        check=at_least(1),
        group="encoder",
    )
    step_size: float = option(
        1.0, "step size of latent steps 2..K relative to the first", check=positive, group="encoder"
    )
    learn_step_size: bool = option(
        False, "learn a per-step, per-dimension latent step size with the network", group="encoder"
    )
    gauss_newton: float | None = option(
        None,
        "damping of Gauss-Newton latent steps, z = -(damping I + H)^-1 grad "
        "(H: the inner loss's Gauss-Newton curvature in z; 0: the paper's plain "
        "gradient step)",
        check=nonneg,
        group="encoder",
    )

    later_fraction: float = option(
        1.0,
        "fraction of the inner points (a fresh random subset each step) on which latent steps 2..K "
        "are taken in training; encoding always uses all points",
        check=fraction,
        group="encoder",
    )
    DEFAULTS = dict(gauss_newton=0.0)
    ABSENT = dict(gauss_newton=0.0)  # a run saved without the option took plain gradient steps

    def step_options(self) -> dict:
        """The :class:`~inr_gon.nn.siren.LatentSiren` keyword arguments of the latent's steps."""
        return dict(
            latent_steps=self.latent_steps,
            step_size=self.step_size,
            learn_step_size=self.learn_step_size,
            gauss_newton=self.gauss_newton or None,
            later_fraction=self.later_fraction,
        )


@dataclass
class EncodingConfig(Config):
    """How a trained gradient-origin model encodes signals after training (its evaluation and the
    commands that start from its checkpoint); tasks whose later parts read the trained latent
    itself (the classifier's head) do not take it."""

    encode_steps: int | None = option(
        None,
        "latent steps when encoding signals after training (evaluation; render, eval, mesh, encode): more "
        "Gauss-Newton steps fit each signal better, each further one a per-signal pass "
        "(default: --latent-steps)",
        check=at_least(1),
        group="encoder",
    )
