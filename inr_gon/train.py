"""Training implicit GONs on image data sets (MNIST, Fashion-MNIST, image folders).

The trainer is reusable by every example and by the ``inr-gon`` CLI: a :class:`TrainConfig`
(plain data, stored in checkpoints and ``config.json``) and :class:`ImageGONTrainer`, which
keeps the data on the device, samples batches from a seeded permutation, takes exact GON steps
(optionally with the outer integral on a Monte-Carlo subset), evaluates unseen test images
(encoded by the single gradient step), writes checkpoints atomically and resumes them
bit-identically on CPU.

Launched by ``torchrun`` with several processes, the trainer runs data-parallel
(:mod:`inr_gon.distributed`): ``batch_size`` is the *global* batch, split evenly over the
ranks; gradients are averaged by ``DistributedDataParallel``; evaluation is sharded and
reduced; only rank 0 writes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .config import RunConfig
from .checkpoint import (CheckpointError, RunDirectoryError, atomic_write_bytes, load_checkpoint,
                         open_run_dir, save_step_checkpoint)
from .coords import grid, image_to_points
from .distributed import GONObjective, init_distributed
from .integrators import GridIntegrator, MonteCarloIntegrator
from .metrics import psnr, ssim
from .render import decode, encode
from .runtime import configure_tf32, keep_freed_memory
from .sampling import GaussianLatentSampler
from .siren import LatentSiren

__all__ = ["TrainConfig", "ImageGONTrainer", "RunFiles", "NonFiniteLossError", "NonFiniteGuard", "RunDirectoryError",
           "select_device", "restore_generator", "CPU_DEFAULTS", "CUDA_DEFAULTS", "load_trained", "CHECKPOINT_KIND",
           "encode_images", "decode_latents", "write_outputs"]

CHECKPOINT_KIND = "inr_gon.image_gon"

# Defaults by device. CUDA: the paper's configuration (SIREN 4×256, latent 32, batch 64).
# CPU: measured to finish in about 4 minutes on 2 cores (see README, "Main job").
CUDA_DEFAULTS = dict(hidden=256, layers=4, batch_size=64, lr=1e-4, lr_schedule="constant", outer_fraction=1.0,
                     steps=20_000, eval_every=1000, checkpoint_every=1000, nonfinite_check="deferred")
CPU_DEFAULTS = dict(hidden=128, layers=3, batch_size=64, lr=5e-4, lr_schedule="cosine", outer_fraction=0.25,
                    steps=8000, seconds=250.0, eval_every=1000, checkpoint_every=500, nonfinite_check="immediate")


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN/Inf (the message names the step and the last good checkpoint)."""


@dataclass
class TrainConfig(RunConfig):
    """Everything that defines a training run (``None`` fields take the device's defaults).

    Attributes:
        dataset: ``"mnist"``, ``"fashion"`` or a path to an image folder.
        data_dir: folder with the data set's four IDX files (MNIST/Fashion-MNIST).
        resolution, channels: image-folder images are resized to this and converted to
            grayscale (1) or RGB (3).
        steps: total number of steps (``--resume --steps N`` continues to step N).
        seconds: wall-clock budget for the training loop (0: none; on CPU the default caps a
            run at 250 s so that the default job finishes in about 5 minutes).
        lr_schedule: ``"constant"`` or ``"cosine"`` (decay to lr/20 at ``steps``; the schedule
            follows ``steps``, so extending a run with ``--resume --steps N`` stretches it).
        inner_scale: weight of each point in the inner integral. The latent is
            ``-inner_scale · ∇ Σ_p ℓ`` per sample (no batch factor). ``1/64`` equals cwkx/GON's
            latent at its batch size 64 and trains much faster than the raw sum (measured).
        outer_fraction: fraction of the 28² points in the outer (Monte-Carlo) integral.
        batch_size: the global batch: with ``torchrun``, each of the ``W`` processes takes
            ``batch_size / W`` images of every batch (it must divide evenly).
        amp: ``"off"``, ``"bf16"`` or ``"fp16"``: autocast of the outer pass (the latent stays
            float32); ``"fp16"`` adds a gradient scaler.
        tf32: allow TF32 matmuls on CUDA (faster, ~1e-3 relative matmul error).
        keep_freed_memory: on CPU, let glibc keep freed memory for reuse
            (:func:`inr_gon.runtime.keep_freed_memory`; about 1.3x faster steps at the
            paper's size). Process-wide; ``False`` keeps glibc's default.
        nonfinite_check: ``"immediate"`` (CPU default): check the loss every step (a host sync)
            and stop/skip at once. ``"deferred"`` (CUDA default): no host sync in the step;
            the optimizer (fused Adam) skips any update whose loss is not finite on the device,
            and the flag is read every ``log_every`` steps and before evaluations and
            checkpoints, where "stop" raises naming the first bad step (no update was applied
            from that step on).
    """

    dataset: str = "mnist"
    data_dir: str | None = None
    resolution: int | None = None
    channels: int = 1
    steps: int | None = None
    seconds: float | None = None
    batch_size: int | None = None
    lr: float | None = None
    lr_schedule: str | None = None
    hidden: int | None = None
    layers: int | None = None
    latent: int = 32
    w0: float = 30.0
    w0_first: float = 30.0
    loss: str = "mse"
    inner_scale: float = 1.0 / 64
    outer_fraction: float | None = None
    eval_every: int | None = None
    eval_images: int = 1000
    checkpoint_every: int | None = None
    keep_checkpoints: int = 3
    log_every: int = 10
    seed: int = 0
    device: str = "auto"
    out: str | None = None
    on_nonfinite: str = "stop"
    amp: str = "off"
    tf32: bool = False
    keep_freed_memory: bool = True
    nonfinite_check: str | None = None

    def resolved(self, device: torch.device) -> "TrainConfig":
        """A copy with ``None`` fields filled from :data:`CUDA_DEFAULTS` / :data:`CPU_DEFAULTS`."""
        defaults = CUDA_DEFAULTS if device.type == "cuda" else CPU_DEFAULTS
        cfg = dataclasses.replace(self, **{k: v for k, v in defaults.items() if getattr(self, k) is None})
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Raise a one-line ``ValueError`` for impossible options."""
        checks = [
            ("steps", self.steps is None or self.steps >= 0, "must be >= 0"),
            ("seconds", self.seconds is None or self.seconds >= 0, "must be >= 0 (0: no limit)"),
            ("batch_size", self.batch_size is None or self.batch_size >= 1, "must be >= 1"),
            ("lr", self.lr is None or (self.lr > 0 and math.isfinite(self.lr)), "must be a positive number"),
            ("hidden", self.hidden is None or self.hidden >= 1, "must be >= 1"),
            ("layers", self.layers is None or self.layers >= 1, "must be >= 1"),
            ("latent", self.latent >= 1, "must be >= 1"),
            ("outer_fraction", self.outer_fraction is None or 0 < self.outer_fraction <= 1, "must be in (0, 1]"),
            ("inner_scale", self.inner_scale > 0 and math.isfinite(self.inner_scale), "must be a positive number"),
            ("eval_every", self.eval_every is None or self.eval_every >= 1, "must be >= 1"),
            ("eval_images", self.eval_images >= 1, "must be >= 1"),
            ("checkpoint_every", self.checkpoint_every is None or self.checkpoint_every >= 1, "must be >= 1"),
            ("keep_checkpoints", self.keep_checkpoints >= 1, "must be >= 1"),
            ("resolution", self.resolution is None or self.resolution >= 1, "must be >= 1"),
            ("channels", self.channels in (1, 3), "must be 1 or 3"),
            ("on_nonfinite", self.on_nonfinite in ("stop", "skip"), "must be 'stop' or 'skip'"),
            ("lr_schedule", self.lr_schedule in (None, "constant", "cosine"), "must be 'constant' or 'cosine'"),
            ("loss", self.loss in ("mse", "bce", "l1"), "must be 'mse', 'bce' or 'l1'"),
            ("amp", self.amp in ("off", "bf16", "fp16"), "must be 'off', 'bf16' or 'fp16'"),
            ("nonfinite_check", self.nonfinite_check in (None, "immediate", "deferred"),
             "must be 'immediate' or 'deferred'"),
            ("log_every", self.log_every >= 1, "must be >= 1"),
        ]
        self._check(checks)


def select_device(name: str = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; otherwise ``torch.device(name)``
    (a clear ``ValueError`` if that device is not available)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    return dev


def load_dataset(cfg: TrainConfig):
    """The :class:`~inr_gon.data.ImageDataset` named by the config."""
    from .data import load_image_folder, load_mnist
    if cfg.dataset in ("mnist", "fashion", "fashion-mnist"):
        return load_mnist(cfg.dataset, data_dir=cfg.data_dir)
    if not Path(cfg.dataset).is_dir():
        raise ValueError(f"dataset must be 'mnist', 'fashion' or an image folder; {cfg.dataset!r} is neither")
    return load_image_folder(cfg.dataset, resolution=cfg.resolution, channels=cfg.channels, seed=cfg.seed)


def build_model(cfg: TrainConfig, channels: int) -> LatentSiren:
    return LatentSiren(2, cfg.latent, channels, cfg.hidden, cfg.layers, w0=cfg.w0, w0_first=cfg.w0_first)


def load_trained(path, *, device=None, kind: str = CHECKPOINT_KIND):
    """Rebuild ``(LatentSiren, checkpoint dict)`` from a trainer checkpoint of ``kind`` (safe loading).

    Raises :class:`~inr_gon.checkpoint.CheckpointError` (one line) for a missing, corrupt,
    unsafe or foreign file.
    """
    state = load_checkpoint(path, kind=kind, map_location="cpu")
    try:
        model = LatentSiren(**state["model_config"])
        model.load_state_dict(state["model"])
    except (KeyError, TypeError, RuntimeError) as e:
        raise CheckpointError(f"{path}: checkpoint does not hold a valid model ({str(e).splitlines()[0]})") from None
    return model.to(device or "cpu").eval(), state


def encode_images(model, images: torch.Tensor, *, loss: str = "mse", inner_scale: float = 1 / 64,
                  batch_size: int = 500) -> torch.Tensor:
    """Latents ``(N, k)`` of images ``(N, C, H, W)`` on the cell-centred grid over [-1, 1]²,
    with the inner integral a trained model was trained with."""
    return encode(model, images, loss=loss, integrator=GridIntegrator(scale=inner_scale), batch_size=batch_size,
                  check=False)


# latents -> images in [0, 1] (sigmoid for BCE-trained models); the name the CLI and trainer use
decode_latents = decode


def require_finite_parameters(model, *, step: int, last_checkpoint=None) -> None:
    """:class:`NonFiniteLossError` if any parameter is NaN/Inf — called before every save, so a
    NaN/Inf model never replaces or rotates away a good checkpoint."""
    if not bool(torch.stack([torch.isfinite(p).all() for p in model.parameters()]).all()):
        where = f"; the last good checkpoint is {last_checkpoint}" if last_checkpoint else ""
        raise NonFiniteLossError(f"non-finite model parameters at step {step}; not saved{where}")


def restore_generator(gen: torch.Generator, state: torch.Tensor) -> bool:
    """Restore ``gen`` from a saved ``get_state()``; returns ``True`` if restored exactly.

    A checkpoint resumed on another kind of device (CUDA's Philox state is 16 bytes, the
    CPU's Mersenne twister 5,056) cannot continue the same random stream; ``gen`` is then
    seeded from a hash of the saved state instead (deterministic, and ``False`` is returned).
    """
    if state.numel() == gen.get_state().numel():
        gen.set_state(state)
        return True
    digest = hashlib.sha256(state.cpu().numpy().tobytes()).digest()
    gen.manual_seed(int.from_bytes(digest[:8], "little") & (2 ** 63 - 1))
    return False


class NonFiniteGuard:
    """Applies an optimizer step only when the step's loss is finite.

    * ``deferred=False`` (immediate): reads the loss every step (one host sync); a non-finite
      loss raises :class:`NonFiniteLossError` naming the step (``on_nonfinite="stop"``) or the
      step is skipped and counted (``"skip"``).
    * ``deferred=True``: no host sync in the step. Fused Adam skips the update on the device
      (``found_inf``); with ``"stop"`` every later step is skipped too. The device-side flags
      are read by :meth:`check` (call it at log, evaluation and checkpoint steps), which raises
      naming the first bad step or adds the skipped steps to :attr:`skipped`.

    Args:
        opt: the optimizer (``torch.optim.Adam(..., fused=True)`` when deferred).
        scaler: a ``GradScaler`` (fp16) or ``None``.
    """

    def __init__(self, opt: torch.optim.Optimizer, *, deferred: bool, on_nonfinite: str,
                 device: torch.device, scaler=None):
        if on_nonfinite not in ("stop", "skip"):
            raise ValueError(f"on_nonfinite must be 'stop' or 'skip', got {on_nonfinite!r}")
        self.opt, self.deferred, self.on_nonfinite, self.scaler = opt, deferred, on_nonfinite, scaler
        self.skipped = 0
        self._bad = torch.zeros((), dtype=torch.bool, device=device)
        self._first_bad = torch.full((), -1, dtype=torch.long, device=device)
        self._skipped_dev = torch.zeros((), dtype=torch.long, device=device)

    def step(self, loss: torch.Tensor, *, step: int, last_checkpoint=None) -> bool:
        """Apply the optimizer step for (0-based) step ``step`` with detached loss ``loss``.
        Returns ``False`` for a step skipped in immediate mode (the gradients are cleared)."""
        if not self.deferred:
            if not bool(torch.isfinite(loss)):
                if self.on_nonfinite == "skip":
                    self.opt.zero_grad(set_to_none=True)
                    self.skipped += 1
                    return False
                raise NonFiniteLossError(f"non-finite training loss at step {step + 1}{_where(last_checkpoint)}")
            if self.scaler is not None:
                self.scaler.step(self.opt)
                self.scaler.update()
            else:
                self.opt.step()
            return True
        bad = ~torch.isfinite(loss)
        self._first_bad = torch.where(bad & (self._first_bad < 0), step + 1, self._first_bad)
        self._skipped_dev += bad
        skip = bad | self._bad if self.on_nonfinite == "stop" else bad
        if self.on_nonfinite == "stop":
            self._bad = skip
        if self.scaler is not None:      # the scaler skips steps with non-finite gradients: make them so
            p = next(p for g in self.opt.param_groups for p in g["params"] if p.grad is not None)
            p.grad.add_(torch.where(skip, float("nan"), 0.0).to(p.grad.dtype))
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            self.opt.found_inf = skip.float()
            try:
                self.opt.step()
            finally:
                self.opt.found_inf = None
        return True

    def check(self, *, last_checkpoint=None) -> None:
        """Deferred mode: read the device flags (one host sync); see the class description."""
        if not self.deferred:
            return
        first, n = int(self._first_bad), int(self._skipped_dev)
        if first < 0:
            return
        if self.on_nonfinite == "skip":
            self.skipped += n
            self._skipped_dev.zero_()
            self._first_bad.fill_(-1)
            return
        raise NonFiniteLossError(f"non-finite training loss at step {first} (no update applied from it on)"
                                 f"{_where(last_checkpoint)}")


def _where(last_checkpoint) -> str:
    return f"; the last good checkpoint is {last_checkpoint}" if last_checkpoint else ""


class RunFiles:
    """Plumbing shared by the trainers: checkpoints, resume, messages, the time budget.

    The trainer provides ``out`` (run folder or ``None``), ``dist``, ``guard``
    (:class:`NonFiniteGuard`), ``model``, ``step``, ``cfg`` (``keep_checkpoints``, ``seconds``,
    ``log_every``, ``to_dict``),
    ``quiet``, ``last_checkpoint``, ``state_dict()``/``load_state_dict()`` and the class
    attribute ``checkpoint_kind``.
    """

    checkpoint_kind: str

    def save(self) -> Path | None:
        """Atomically write ``ckpt_step<N>.pt`` into the run folder, keeping the newest K
        (rank 0 writes; every rank waits for it and gets its path)."""
        if self.out is None:
            return None
        self.guard.check(last_checkpoint=self.last_checkpoint)     # never checkpoint past a bad step
        require_finite_parameters(self.model, step=self.step, last_checkpoint=self.last_checkpoint)
        # rank 0 builds and writes the state; raises on every rank if it failed
        self.last_checkpoint = self.dist.run_on_main(
            lambda: save_step_checkpoint(self.out, self.step, self.state_dict(), keep=self.cfg.keep_checkpoints))
        return self.last_checkpoint

    def prepare_run_dir(self, *, resume: bool, overwrite: bool) -> None:
        """Create the run folder; refuse one holding another run unless resuming/overwriting.
        On resume, load the newest checkpoint there (if any). With several processes rank 0
        does the file work and sends the checkpoint to every rank."""
        if self.out is None:
            return

        def files():
            found = open_run_dir(self.out, resume=resume, overwrite=overwrite, kind=self.checkpoint_kind,
                                 model_config=self.model.config())
            atomic_write_bytes(self.out / "config.json", json.dumps(self.cfg.to_dict(), indent=2).encode())
            return found
        state, ckpt = self.dist.run_on_main(files)
        if state is not None:
            self.load_state_dict(state)
            self.last_checkpoint = ckpt
            self.log(f"resumed from {ckpt} at step {self.step}")

    def log(self, msg: str) -> None:
        if not self.quiet:
            tqdm.write(msg)

    def _out_of_time(self, t0: float) -> bool:
        """The ``cfg.seconds`` budget (``None``/0: none) since ``t0`` is spent. With several
        processes the ranks decide together, every ``log_every`` steps (so that all stop at the
        same step)."""
        if not self.cfg.seconds:
            return False
        if self.dist.enabled and self.step % self.cfg.log_every:
            return False
        return self.dist.any(time.perf_counter() - t0 >= self.cfg.seconds)


class ImageGONTrainer(RunFiles):
    """Train an implicit GON (``LatentSiren`` over 2-D pixel coordinates) on an image data set.

    Args:
        config: the run's :class:`TrainConfig`.
        dataset: an :class:`~inr_gon.data.ImageDataset` (default: loaded from the config).
        quiet: no progress bar or messages.
        dist: a :class:`~inr_gon.distributed.DistContext`, or ``"auto"`` (default):
            data-parallel when launched by ``torchrun`` with several processes.
    """

    checkpoint_kind = CHECKPOINT_KIND

    def __init__(self, config: TrainConfig, *, dataset=None, quiet: bool = False, dist="auto"):
        device = select_device(config.device)
        self.dist = init_distributed(device=device) if dist == "auto" else dist
        self.device = self.dist.device if self.dist.enabled else device
        self.cfg = config.resolved(self.device)
        self.quiet = quiet or not self.dist.is_main
        if self.cfg.batch_size % self.dist.world_size:
            raise ValueError(f"batch_size={self.cfg.batch_size} (the global batch) must be divisible by the "
                             f"number of processes ({self.dist.world_size})")
        if self.device.type == "cuda":
            configure_tf32(self.cfg.tf32)
        elif self.cfg.keep_freed_memory:
            keep_freed_memory()
        if dataset is None:
            with self.dist.main_first():       # rank 0 downloads/unpacks first
                dataset = load_dataset(self.cfg)
        self.dataset = dataset
        for split in ("train", "test"):
            imgs = getattr(self.dataset, f"{split}_images")
            if not bool(torch.isfinite(imgs).all()):
                raise ValueError(f"{split} images contain NaN or Inf values")
        if self.dataset.train_images.shape[0] < 1:
            raise ValueError("the training set is empty")
        if self.dist.enabled and self.dataset.train_images.shape[0] < self.cfg.batch_size:
            raise ValueError(f"batch_size={self.cfg.batch_size} exceeds the {self.dataset.train_images.shape[0]} "
                             f"training images (required with several processes)")
        # data on the device (MNIST is 188 MB as float32; fits any GPU)
        self.train_images = self.dataset.train_images.to(self.device)
        self.test_images = self.dataset.test_images.to(self.device)
        C, H, W = self.train_images.shape[1:]
        self.resolution = (H, W)
        self.coords = grid((H, W), device=self.device)
        torch.manual_seed(self.cfg.seed)
        self.model = build_model(self.cfg, C).to(self.device)
        self.deferred = self.cfg.nonfinite_check == "deferred"
        # fused Adam skips an update on the device when told to (found_inf): no host sync
        self.opt = torch.optim.Adam(self.model.parameters(), lr=self.cfg.lr, fused=True if self.deferred else None)
        self.scaler = torch.amp.GradScaler(self.device.type) if self.cfg.amp == "fp16" else None
        self.inner = GridIntegrator(scale=self.cfg.inner_scale)
        self.outer = (MonteCarloIntegrator(fraction=self.cfg.outer_fraction)
                      if self.cfg.outer_fraction < 1 else GridIntegrator())
        # the whole GON step is one module's forward, so DDP sees every use of every parameter
        self.objective = GONObjective(self.model, loss=self.cfg.loss, inner=self.inner, outer=self.outer,
                                      amp=self.cfg.amp)
        self.step_module = self.dist.wrap(self.objective)
        self.guard = NonFiniteGuard(self.opt, deferred=self.deferred, on_nonfinite=self.cfg.on_nonfinite,
                                    device=self.device, scaler=self.scaler)
        self.data_gen = torch.Generator().manual_seed(self.cfg.seed)
        self.mc_gen = torch.Generator(device=self.device).manual_seed(self.cfg.seed + 1)
        self.perm = torch.randperm(self.train_images.shape[0], generator=self.data_gen)
        self.pos = 0
        self.step = 0
        self.elapsed = 0.0
        self.history = {k: [] for k in ("step", "seconds", "loss", "eval_step", "eval_seconds", "test_psnr")}
        self.out = Path(self.cfg.out) if self.cfg.out else None
        self.last_checkpoint: Path | None = None
        self.latent_stats: dict | None = None

    # -- data ------------------------------------------------------------------------------------
    def next_batch(self) -> torch.Tensor:
        """This process's ``(B / W, C, H, W)`` part of the next global batch of ``B`` training
        images (a seeded permutation, epoch by epoch, identical on every rank; rank ``r`` takes
        the ``r``-th contiguous slice: ``DistributedSampler`` for on-device data)."""
        B, N = self.cfg.batch_size, self.perm.numel()
        if self.pos + B > N:
            self.perm = torch.randperm(N, generator=self.data_gen)
            self.pos = 0
        idx = self.perm[self.pos:self.pos + min(B, N)]
        self.pos += B
        if self.dist.enabled:
            b = B // self.dist.world_size
            idx = idx[self.dist.rank * b:(self.dist.rank + 1) * b]
        return self.train_images[idx.to(self.device)]

    # -- one step ----------------------------------------------------------------------------------
    def train_step(self, images: torch.Tensor) -> torch.Tensor:
        """Loss and gradients of one GON step on ``images (b, C, H, W)`` (this rank's shard);
        returns the (detached) per-pixel loss, averaged over all ranks (no host sync)."""
        x = image_to_points(images)
        loss, _ = self.step_module(self.coords, x, generator=self.mc_gen)
        self.opt.zero_grad(set_to_none=True)
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
        return self.dist.average(loss.detach() / (x.shape[1] * x.shape[2]))

    @property
    def skipped(self) -> int:
        """Steps skipped for a non-finite loss (``on_nonfinite="skip"``)."""
        return self.guard.skipped

    @skipped.setter
    def skipped(self, n: int) -> None:
        self.guard.skipped = n

    def _apply_update(self, loss: torch.Tensor) -> bool:
        """Apply the optimizer step for this step's detached loss (see :class:`NonFiniteGuard`)."""
        return self.guard.step(loss, step=self.step, last_checkpoint=self.last_checkpoint)

    def check_nonfinite(self) -> None:
        """Deferred mode: read the device flags (one host sync); see :meth:`NonFiniteGuard.check`."""
        self.guard.check(last_checkpoint=self.last_checkpoint)

    def lr_at(self, step: int) -> float:
        """Learning rate of step ``step`` (0-based): constant, or a cosine decay from ``lr`` to
        ``lr / 20`` over ``steps`` (a function of the step alone, so resuming needs no state)."""
        lr = self.cfg.lr
        if self.cfg.lr_schedule != "cosine" or not self.cfg.steps:
            return lr
        t = min(step / self.cfg.steps, 1.0)
        return lr / 20 + (lr - lr / 20) * 0.5 * (1 + math.cos(math.pi * t))

    def advance(self) -> torch.Tensor | None:
        """One optimisation step on the next batch; returns the detached per-pixel loss
        (averaged over the ranks), or ``None`` for a step skipped in immediate mode."""
        for group in self.opt.param_groups:
            group["lr"] = self.lr_at(self.step)
        loss = self.train_step(self.next_batch())
        applied = self._apply_update(loss)
        self.step += 1
        return loss if applied else None

    # -- evaluation -----------------------------------------------------------------------------
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Gradient-origin latents ``(N, k)`` of ``images (N, C, H, W)`` (one gradient step each)."""
        return encode_images(self.model, images, loss=self.cfg.loss, inner_scale=self.cfg.inner_scale)

    def decode(self, z: torch.Tensor, resolution=None) -> torch.Tensor:
        """Images ``(N, C, *resolution)`` in [0, 1] for latents ``(N, k)`` (default: training size)."""
        return decode_latents(self.model, z, resolution or self.resolution, loss=self.cfg.loss)

    def evaluate(self, images: torch.Tensor, *, with_ssim: bool = False) -> dict:
        """Encode unseen images in one step, decode, and return mean PSNR (and SSIM).

        With several processes, each rank evaluates its shard of ``images`` (the same on every
        rank) and the sums and counts are all-reduced: every rank returns the global means."""
        was = self.model.training
        self.model.eval()
        part = images[self.dist.shard(images.shape[0])] if self.dist.enabled else images
        sums = torch.zeros(3, dtype=torch.float64, device=self.device)   # psnr, ssim, count
        if part.shape[0]:                 # a rank's shard may be empty (fewer images than ranks)
            recon = self.decode(self.encode(part))
            sums[0] = psnr(recon, part).double().sum()
            if with_ssim:
                sums[1] = ssim(recon, part).double().sum()
        self.model.train(was)
        sums[2] = part.shape[0]
        sums = self.dist.all_reduce_sum(sums).tolist()
        n = max(sums[2], 1.0)
        out = {"psnr": sums[0] / n}
        if with_ssim:
            out["ssim"] = sums[1] / n
        return out

    # -- checkpoints ----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "kind": CHECKPOINT_KIND, "version": 1,
            "model_config": self.model.config(), "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(), "step": self.step, "elapsed": self.elapsed,
            "skipped": self.skipped, "config": self.cfg.to_dict(),
            "data": {"perm": self.perm, "pos": self.pos, "generator": self.data_gen.get_state()},
            "mc_generator": self.mc_gen.get_state(), "torch_rng": torch.get_rng_state(),
            "history": self.history, "latent_stats": self.latent_stats,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "dataset": {"name": self.dataset.name, "source": self.dataset.source,
                        "image_shape": list(self.train_images.shape[1:])},
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        _retarget_adam(self.opt, fused=self.deferred)      # e.g. a CPU checkpoint resumed on CUDA
        self.step, self.elapsed, self.skipped = state["step"], state["elapsed"], state.get("skipped", 0)
        self.perm, self.pos = state["data"]["perm"], state["data"]["pos"]
        self.data_gen.set_state(state["data"]["generator"])
        if not restore_generator(self.mc_gen, state["mc_generator"]):
            self.log("note: checkpoint from another device type: Monte-Carlo points continue from a new stream")
        torch.set_rng_state(state["torch_rng"])
        self.history = state["history"]
        self.latent_stats = state.get("latent_stats")
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])

    # -- the loop -------------------------------------------------------------------------------
    def fit(self) -> dict:
        """Train until ``steps`` (total) or ``seconds``; returns the final metrics dict."""
        cfg = self.cfg
        t0 = time.perf_counter() - self.elapsed
        bar = tqdm(total=cfg.steps, initial=self.step, disable=self.quiet, desc="train", unit="step",
                   dynamic_ncols=True)
        eval_set = self.test_images[:cfg.eval_images]
        self.model.train()
        try:
            self._loop(bar, t0, eval_set)
        finally:
            bar.close()
        self.check_nonfinite()
        sampler = GaussianLatentSampler(self.encode(self.train_images[:5000]))
        self.latent_stats = {"mean": sampler.mean, "cov": sampler.cov}
        self.save()
        return self.final_metrics()

    def _loop(self, bar, t0: float, eval_set: torch.Tensor) -> None:
        cfg = self.cfg
        last_log_t, last_log_step = time.perf_counter(), self.step
        while self.step < cfg.steps:
            if self._out_of_time(t0):
                self.log(f"time budget of {cfg.seconds:g} s reached at step {self.step}")
                break
            loss = self.advance()
            bar.update(1)
            if loss is None:            # skipped (immediate mode)
                continue
            self.elapsed = time.perf_counter() - t0
            if self.step % cfg.log_every == 0:
                self.check_nonfinite()
                lv = float(loss)
                now = time.perf_counter()
                rate = (self.step - last_log_step) / max(now - last_log_t, 1e-9)
                last_log_t, last_log_step = now, self.step
                self.history["step"].append(self.step)
                self.history["seconds"].append(self.elapsed)
                self.history["loss"].append(lv)
                bar.set_postfix(loss=f"{lv:.4f}", psnr=f"{-10 * math.log10(max(lv, 1e-10)):.1f}dB",
                                steps_s=f"{rate:.1f}")
            if self.step % cfg.eval_every == 0 and eval_set.shape[0]:
                self.check_nonfinite()
                m = self.evaluate(eval_set)
                self.history["eval_step"].append(self.step)
                self.history["eval_seconds"].append(self.elapsed)
                self.history["test_psnr"].append(m["psnr"])
                self.log(f"step {self.step}: test PSNR {m['psnr']:.2f} dB on {eval_set.shape[0]} unseen images")
            if self.step % cfg.checkpoint_every == 0:
                self.save()

    def final_metrics(self) -> dict:
        test = self.test_images
        m = self.evaluate(test, with_ssim=True) if test.shape[0] else {"psnr": float("nan"), "ssim": float("nan")}
        return {
            "test_psnr": m["psnr"], "test_ssim": m["ssim"], "steps": self.step,
            "train_seconds": round(self.elapsed, 2), "params": sum(p.numel() for p in self.model.parameters()),
            "dataset": self.dataset.name, "data_source": self.dataset.source, "num_test": int(test.shape[0]),
            "num_train": int(self.train_images.shape[0]), "skipped_steps": self.skipped,
            "device": str(self.device), "processes": self.dist.world_size, "checkpoint": str(self.last_checkpoint) if self.last_checkpoint else None,
        }


def _retarget_adam(opt: torch.optim.Adam, *, fused: bool) -> None:
    """After ``load_state_dict`` (which restores the saved ``fused`` flag and ``step`` tensors),
    set this run's implementation and put each ``step`` where it expects it (fused: float32
    on the parameter's device; otherwise a CPU float32 scalar)."""
    for group in opt.param_groups:
        group["fused"] = True if fused else None
        if fused:
            group["foreach"] = None
        for p in group["params"]:
            st = opt.state.get(p)
            if st and "step" in st:
                st["step"] = st["step"].to(device=p.device if fused else "cpu", dtype=torch.float32)


def write_outputs(trainer: ImageGONTrainer, metrics: dict, out, *, num_show: int = 16, seed: int = 0) -> dict:
    """Write the run's pictures and figures into ``out``; returns ``{name: path}``.

    ``recon_train.png`` / ``recon_test.png`` (originals above their one-step reconstructions),
    ``samples.png`` (latents from a full-covariance Gaussian fitted to training latents),
    ``slerp.png`` / ``slerp.gif`` (spherical interpolation between test latents),
    ``superres.png`` (test latents rendered at 1×, 4× and 10×, shown at the same size),
    ``curves.png``, ``metrics.json``.
    """
    import torch.nn.functional as F

    from .sampling import slerp_path
    from .viz import image_grid, plot_curves, save_gif, save_grid

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    g = torch.Generator().manual_seed(seed)
    t = trainer
    t.model.eval()
    H, W = t.resolution
    for split, imgs in (("train", t.train_images), ("test", t.test_images)):
        if imgs.shape[0] == 0:
            continue
        x = imgs[:num_show]
        rec = t.decode(t.encode(x))
        paths[f"recon_{split}"] = save_grid(torch.cat([x, rec]), out / f"recon_{split}.png", nrow=x.shape[0])
    stats = t.latent_stats
    sampler = (GaussianLatentSampler.from_moments(stats["mean"], stats["cov"]) if stats is not None
               else GaussianLatentSampler(t.encode(t.train_images[:5000])))
    paths["samples"] = save_grid(t.decode(sampler.sample(64, generator=g).to(t.device)), out / "samples.png", nrow=8)
    src = t.test_images if t.test_images.shape[0] >= 2 else t.train_images
    z_src = t.encode(src[:16])
    pairs = [(i, (i + 1) % z_src.shape[0]) for i in range(0, min(16, z_src.shape[0]), 2)]
    frames = 10
    rows = [slerp_path(z_src[a], z_src[b], frames) for a, b in pairs]
    paths["slerp"] = save_grid(t.decode(torch.cat(rows)), out / "slerp.png", nrow=frames)
    # GIF: the first four pairs at 4x resolution, there and back
    n_gif = min(4, len(pairs))
    steps = 24
    path_z = torch.stack([slerp_path(z_src[a], z_src[b], steps) for a, b in pairs[:n_gif]], 1)   # (T, n, k)
    gif_frames = []
    for k in list(range(steps)) + list(range(steps - 2, 0, -1)):
        gif_frames.append(image_grid(t.decode(path_z[k], (4 * H, 4 * W)), nrow=n_gif, pad=4))
    paths["slerp_gif"] = save_gif(gif_frames, out / "slerp.gif")
    # super-resolution: originals (nearest ×10), renders at 4× and 10× (shown at 10× size)
    x = src[:8]
    z = t.encode(x)
    big = (10 * H, 10 * W)
    shown = [F.interpolate(x, size=big, mode="nearest"),
             F.interpolate(t.decode(z, (4 * H, 4 * W)), size=big, mode="nearest"),
             t.decode(z, big)]
    paths["superres"] = save_grid(torch.cat(shown), out / "superres.png", nrow=x.shape[0], pad=4)
    paths["curves"] = plot_curves(t.history, out / "curves.png")
    paths["metrics"] = atomic_write_bytes(out / "metrics.json", json.dumps(metrics, indent=2).encode())
    return paths
