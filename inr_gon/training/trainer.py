"""The one training loop: :class:`Trainer` owns everything that is not about a modality.

A :class:`~inr_gon.training.tasks.base.Task` supplies what differs (data, model, objective,
batches, evaluation, outputs); the trainer does the rest, the same way for every task:

* seeded batching (a permutation of the training items, epoch by epoch, identical on every
  rank; rank ``r`` of ``W`` takes the ``r``-th contiguous slice of each global batch);
* the learning-rate schedule (constant or cosine to ``lr/20``, with an optional linear
  warm-up), the wall-clock budget, the evaluation and checkpoint cadence;
* the progress bar (the task's loss and quality figures, steps/s), messages, ``metrics.jsonl``
  and optional TensorBoard logs;
* the non-finite guard (immediate or deferred checks, stop or skip), AMP (fp16 adds a gradient
  scaler), TF32 on CUDA, glibc memory reuse on CPU, ``torch.compile`` of the objective;
* data parallelism under ``torchrun`` (``DistributedDataParallel`` around the objective; only
  rank 0 writes);
* atomic checkpoints with exact resume (model, optimizer, step, data order, generators), the
  run-folder protection, and the final save.

Use::

    from inr_gon.training import Trainer, ImageConfig
    trainer = Trainer(ImageConfig(dataset="mnist", out="runs/mnist"))
    trainer.prepare_run_dir(resume=False, overwrite=False)
    metrics = trainer.fit()
    paths, metrics = trainer.write_outputs(metrics)
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .checkpoint import atomic_write_bytes, open_run_dir, restore_generator, retarget_adam, save_step_checkpoint
from .config import Config
from .parts import TrainerConfig
from .schedule import BatchSampler, learning_rate
from .distributed import DistContext, init_distributed
from .guard import NonFiniteGuard, require_finite_parameters
from .metrics_log import MetricsLog
from .runtime import configure_tf32, keep_freed_memory, resolve_amp

__all__ = ["TrainerConfig", "Trainer", "BatchSampler", "select_device", "learning_rate"]


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


class Trainer:
    """Train one task (see the module docstring).

    Args:
        task: a :class:`~inr_gon.training.tasks.base.Task`, or a task's config (the task is
            built from it with ``**task_data``, e.g. ``dataset=`` or ``shapes=``).
        quiet: no progress bar or messages.
        dist: ``"auto"`` (data-parallel when launched by ``torchrun`` with several processes) or
            a :class:`~inr_gon.training.distributed.DistContext`.

    Attributes (for tasks and tests): ``task``, ``cfg`` (the resolved config), ``device``,
    ``dist``, ``model``, ``opt``, ``scaler``, ``objective``, ``step_module`` (what a step calls:
    the objective, DDP-wrapped and/or compiled), ``guard``, ``sampler``, ``mc_gen`` (the
    generator of random points), ``step``, ``elapsed``, ``history``, ``out``,
    ``last_checkpoint``.
    """

    def __init__(self, task, *, quiet: bool = False, dist="auto", **task_data):
        if isinstance(task, Config):
            if type(task).task_class is None:
                raise TypeError(f"no task takes a {type(task).__name__}")
            task = type(task).task_class(task, **task_data)
        elif task_data:
            raise TypeError(f"unexpected arguments {sorted(task_data)} with a task object")
        self.task = task
        device = select_device(task.cfg.device)
        self.dist: DistContext = init_distributed(device=device) if dist == "auto" else dist
        self.device = self.dist.device if self.dist.enabled else device
        cfg = task.cfg.resolved(self.device)
        if cfg.batch_size % self.dist.world_size:
            raise ValueError(
                f"batch_size={cfg.batch_size} (the global batch) must be divisible by the "
                f"number of processes ({self.dist.world_size})"
            )
        if cfg.amp == "auto":  # measured once, on rank 0; the run (and its config.json) records the choice
            cfg = dataclasses.replace(cfg, amp=self.dist.run_on_main(resolve_amp, "auto", self.device))
        self.cfg = task.cfg = cfg
        self.quiet = quiet or not self.dist.is_main
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        if self.device.type == "cuda":
            configure_tf32(cfg.tf32)
        elif cfg.keep_freed_memory:
            keep_freed_memory()
        self.out = Path(cfg.out) if cfg.out else None
        self.last_checkpoint: Path | None = None
        self.metrics_log = MetricsLog(self.out if self.dist.is_main else None, tensorboard=cfg.tensorboard)
        task.setup(self)
        n = task.num_train()
        if n < 1:
            raise ValueError("the training set is empty")
        if self.dist.enabled and n < cfg.batch_size:
            raise ValueError(
                f"batch_size={cfg.batch_size} exceeds the {n} training items (required with several processes)"
            )
        torch.manual_seed(cfg.seed)
        self.model = task.build_model().to(self.device)
        if cfg.init_from:
            self._init_weights(cfg.init_from)
        self.deferred = cfg.nonfinite_check == "deferred"
        # fused Adam skips an update on the device when told to (found_inf): no host sync
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, fused=True if self.deferred else None)
        self.scaler = torch.amp.GradScaler(self.device.type) if cfg.amp == "fp16" else None
        self.objective = task.build_objective(self.model)
        module = self.dist.wrap(self.objective)
        self.step_module = torch.compile(module) if cfg.compile else module
        self.guard = NonFiniteGuard(
            self.opt, deferred=self.deferred, on_nonfinite=cfg.on_nonfinite, device=self.device, scaler=self.scaler
        )
        self.sampler = BatchSampler(n, cfg.batch_size, cfg.seed)
        self.mc_gen = torch.Generator(device=self.device).manual_seed(cfg.seed + 1)
        self.step = 0
        self.elapsed = 0.0
        self.history: dict[str, list] = {"step": [], "seconds": [], "eval_step": [], "eval_seconds": []}
        self.last_eval: dict = {}
        self._t0: float | None = None  # fit(): the clock origin of the elapsed training time
        self._shared_clock: float | None = None  # the ranks' mean clock (time schedule, DDP)
        self.eval_seconds = 0.0  # of the elapsed time, spent in evaluations

    def _init_weights(self, ref: str) -> None:
        """The model's weights from ``ref`` (a checkpoint, a run folder or a pretrained model's
        name) of the same task and architecture; a one-line ``ValueError`` otherwise."""
        from pathlib import Path

        from .checkpoint import load_checkpoint
        from .pretrained import names, weights_path
        from .run import _find

        path = weights_path(ref) if not Path(ref).exists() and ref in names() else _find(ref)
        state = load_checkpoint(path, map_location="cpu")
        if state.get("kind") != self.task.checkpoint_kind:
            raise ValueError(
                f"init_from={ref!r}: a {state.get('task', state.get('kind'))!r} checkpoint, "
                f"not a {self.task.name!r} one"
            )
        mine = self.model.state_dict()
        theirs = state.get("model", {})
        wrong = [k for k in mine if k not in theirs or theirs[k].shape != mine[k].shape]
        if wrong or set(theirs) - set(mine):
            raise ValueError(
                f"init_from={ref!r}: its model ({state.get('model_config')}) does not match this run's "
                f"({self.task.model_config(self.model)}); give the same architecture options"
            )
        self.model.load_state_dict(theirs)
        self.log(f"weights from {path} (step {state.get('step', '?')})")

    # -- messages -----------------------------------------------------------------------------------
    def log(self, msg: str) -> None:
        if not self.quiet:
            tqdm.write(msg)

    # -- one step -------------------------------------------------------------------------------------
    def next_batch(self) -> tuple:
        """This rank's part of the next global batch, as the task builds it (random point
        subsets are drawn from :attr:`mc_gen` for the whole global batch, then sliced)."""
        idx = self.sampler.next()
        b = idx.numel() // self.dist.world_size
        mine = slice(self.dist.rank * b, (self.dist.rank + 1) * b) if self.dist.enabled else slice(None)
        return self.task.make_batch(idx, mine, self.mc_gen)

    def train_step(self, batch: tuple):
        """Loss and gradients of one step on ``batch`` (gradients in ``.grad``, averaged over the
        ranks, not yet applied). Returns detached ``(loss, parts)``, averaged over the ranks (no
        host sync)."""
        loss, _, parts = self.step_module(*batch, generator=self.mc_gen)
        self.opt.zero_grad(set_to_none=True)
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
        if self.cfg.grad_clip:  # on the averaged, unscaled gradients; no host sync
            if self.scaler is not None:
                self.scaler.unscale_(self.opt)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip, foreach=True)
        if not self.dist.enabled:
            return loss.detach(), parts
        keys = list(parts)
        avg = self.dist.average(torch.stack([loss.detach(), *(parts[k].float() for k in keys)]))
        return avg[0], dict(zip(keys, avg[1:]))

    @property
    def skipped(self) -> int:
        """Steps skipped for a non-finite loss (``on_nonfinite="skip"``)."""
        return self.guard.skipped

    def lr_at(self, step: int, elapsed: float | None = None) -> float:
        """The learning rate of step ``step`` (0-based); with ``schedule_by="time"`` and a time
        budget, ``elapsed`` seconds of training count too."""
        cfg = self.cfg
        progress = None
        if cfg.schedule_by == "time" and cfg.seconds and elapsed is not None:
            progress = max(step / cfg.steps if cfg.steps else 0.0, elapsed / cfg.seconds)
        return learning_rate(
            step, lr=cfg.lr, steps=cfg.steps, schedule=cfg.lr_schedule, warmup_steps=cfg.warmup_steps, progress=progress
        )

    def _schedule_clock(self) -> float | None:
        """Seconds of training the time-following schedule sees (``None`` when it follows steps),
        evaluations left out as in the budget. With several processes it is the ranks' mean,
        refreshed every ``log_every`` steps, so every rank uses the same learning rate (each
        rank's own clock would let them drift)."""
        if self.cfg.schedule_by != "time" or not self.cfg.seconds or self._t0 is None:
            return None
        now = self.train_seconds
        if not self.dist.enabled:
            return now
        if self._shared_clock is None or self.step % self.cfg.log_every == 0:
            self._shared_clock = float(
                self.dist.average(torch.tensor([now], dtype=torch.float64, device=self.device))[0]
            )
        return self._shared_clock

    def advance(self):
        """One optimisation step on the next batch; returns the detached reported parts
        (``parts["loss"]`` etc., averaged over the ranks), or ``None`` for a step skipped in
        immediate mode."""
        for group in self.opt.param_groups:
            group["lr"] = self.lr_at(self.step, self._schedule_clock())
        loss, parts = self.train_step(self.next_batch())
        applied = self.guard.step(loss, step=self.step, last_checkpoint=self.last_checkpoint)
        self.step += 1
        return parts if applied else None

    def check_nonfinite(self) -> None:
        """Deferred mode: read the device flags (one host sync); see :class:`NonFiniteGuard`."""
        self.guard.check(last_checkpoint=self.last_checkpoint)

    # -- evaluation ---------------------------------------------------------------------------------------
    @property
    def train_seconds(self) -> float:
        """Seconds of training so far (now, during :meth:`fit`): the elapsed time without the time
        spent in evaluations."""
        elapsed = time.perf_counter() - self._t0 if self._t0 is not None else self.elapsed
        return elapsed - self.eval_seconds

    def evaluate(self) -> dict:
        """The task's periodic evaluation (every rank calls it); recorded in the history."""
        self.check_nonfinite()
        was = self.model.training
        self.model.eval()
        t0 = time.perf_counter()
        try:
            m = self.task.evaluate(self)
        finally:
            self.model.train(was)
            self.eval_seconds += time.perf_counter() - t0
        if not m:
            return m
        self.history["eval_step"].append(self.step)
        self.history["eval_seconds"].append(self.elapsed)
        for k, v in m.items():
            self.history.setdefault(k, []).append(v)
        self.last_eval = m
        self.metrics_log.write("eval", self.step, self.elapsed, m)
        self.log(f"step {self.step}: " + self.task.describe_eval(m))
        return m

    # -- checkpoints ----------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "kind": self.task.checkpoint_kind,
            "version": 1,
            "task": self.task.name,
            "model_config": self.task.model_config(self.model),
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "step": self.step,
            "elapsed": self.elapsed,
            "eval_seconds": self.eval_seconds,
            "skipped": self.skipped,
            "config": self.cfg.to_dict(),
            "data": self.sampler.state_dict(),
            "mc_generator": self.mc_gen.get_state(),
            "torch_rng": torch.get_rng_state(),
            "history": self.history,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            **self.task.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        retarget_adam(self.opt, fused=self.deferred)  # e.g. a CPU checkpoint resumed on CUDA
        self.step, self.elapsed = state["step"], state["elapsed"]
        self.eval_seconds = state.get("eval_seconds", 0.0)
        self.guard.skipped = state.get("skipped", 0)
        self.sampler.load_state_dict(state["data"])
        if not restore_generator(self.mc_gen, state["mc_generator"]):
            self.log("note: checkpoint from another device type: random points continue from a new stream")
        torch.set_rng_state(state["torch_rng"])
        self.history = state["history"]
        for k in ("step", "seconds", "eval_step", "eval_seconds"):
            self.history.setdefault(k, [])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.task.load_state_dict(state)

    def save(self) -> Path | None:
        """Atomically write ``ckpt_step<N>.pt`` into the run folder, keeping the newest K
        (rank 0 writes; every rank waits for it and gets its path)."""
        if self.out is None:
            return None
        if self._t0 is not None:  # the clock as of now (after any evaluation)
            self.elapsed = time.perf_counter() - self._t0
        self.guard.check(last_checkpoint=self.last_checkpoint)  # never checkpoint past a bad step
        require_finite_parameters(self.model, step=self.step, last_checkpoint=self.last_checkpoint)
        self.last_checkpoint = self.dist.run_on_main(
            lambda: save_step_checkpoint(self.out, self.step, self.state_dict(), keep=self.cfg.keep_checkpoints)
        )
        return self.last_checkpoint

    def prepare_run_dir(self, *, resume: bool, overwrite: bool) -> None:
        """Create the run folder; refuse one holding another run unless resuming/overwriting.
        On resume, load the newest checkpoint there (if any). With several processes rank 0
        does the file work and sends the checkpoint to every rank."""
        if self.out is None:
            return

        def files():
            found = open_run_dir(
                self.out,
                resume=resume,
                overwrite=overwrite,
                kind=self.task.checkpoint_kind,
                model_config=self.task.model_config(self.model),
            )
            config = {"task": self.task.name, **self.cfg.to_dict()}
            atomic_write_bytes(self.out / "config.json", json.dumps(config, indent=2).encode())
            return found

        state, ckpt = self.dist.run_on_main(files)
        if state is not None:
            self.load_state_dict(state)
            self.last_checkpoint = ckpt
            self.log(f"resumed from {ckpt} at step {self.step}")

    def _out_of_time(self) -> bool:
        """The ``seconds`` budget (``None``/0: none) of training (:attr:`train_seconds`) is spent:
        the time of evaluations and snapshots (``eval_seconds``) is not training, so a run that
        evaluates often trains as long as one that does not. With several processes the ranks
        decide together, every ``log_every`` steps (so all stop at the same step)."""
        if not self.cfg.seconds:
            return False
        if self.dist.enabled and self.step % self.cfg.log_every:
            return False
        return self.dist.any(self.train_seconds >= self.cfg.seconds)

    # -- the loop ----------------------------------------------------------------------------------------------
    def fit(self) -> dict:
        """Train until ``steps`` (total) or ``seconds``; then the task's end-of-training work
        and a final checkpoint. Returns ``{"steps", "train_seconds", "skipped_steps", ...}``
        with the task's final metrics."""
        t0 = self._t0 = time.perf_counter() - self.elapsed
        bar = tqdm(
            total=self.cfg.steps, initial=self.step, disable=self.quiet, desc="train", unit="step", dynamic_ncols=True
        )
        self.metrics_log.start(self.step)
        self.model.train()
        try:
            self._loop(bar, t0)
        finally:
            bar.close()
            self.elapsed, self._t0 = time.perf_counter() - t0, None  # the clock stops with the loop
        self.check_nonfinite()
        self.task.on_fit_end(self)
        self.save()
        metrics = {
            "steps": self.step,
            "train_seconds": round(self.train_seconds, 2),
            "eval_seconds": round(self.eval_seconds, 2),
            "skipped_steps": self.skipped,
            "params": sum(p.numel() for p in self.model.parameters()),
            "device": str(self.device),
            "processes": self.dist.world_size,
            "checkpoint": str(self.last_checkpoint) if self.last_checkpoint else None,
        }
        metrics.update(self.task.final_metrics(self))
        self.metrics_log.write(
            "final", self.step, self.elapsed, {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
        )
        self.metrics_log.close()
        return metrics

    def _loop(self, bar, t0: float) -> None:
        cfg = self.cfg
        last_log_t, last_log_step = time.perf_counter(), self.step
        while self.step < cfg.steps:
            if self._out_of_time():
                self.log(f"time budget of {cfg.seconds:g} s reached at step {self.step}")
                break
            parts = self.advance()
            bar.update(1)
            if parts is None:  # skipped (immediate mode)
                continue
            self.elapsed = time.perf_counter() - t0
            if self.step % cfg.log_every == 0:
                self.check_nonfinite()
                values = {k: float(v) for k, v in parts.items()}
                now = time.perf_counter()
                rate = (self.step - last_log_step) / max(now - last_log_t, 1e-9)
                last_log_t, last_log_step = now, self.step
                self.history["step"].append(self.step)
                self.history["seconds"].append(self.elapsed)
                for k, v in values.items():
                    self.history.setdefault(k, []).append(v)
                self.metrics_log.write("train", self.step, self.elapsed, {**values, "steps_per_second": rate})
                bar.set_postfix(**self.task.progress(values, self.last_eval), steps_s=f"{rate:.1f}")
            if self.step % cfg.eval_every == 0:
                self.evaluate()
            if self.step % cfg.checkpoint_every == 0:
                self.save()
            self.task.on_step_end(self)

    # -- outputs -----------------------------------------------------------------------------------------------
    def write_outputs(self, metrics: dict, out=None) -> tuple[dict, dict]:
        """The task's pictures, meshes and ``metrics.json`` (every rank calls it; rank 0 writes).
        Returns ``(paths, metrics)``."""
        return self.task.write_outputs(self, metrics, Path(out) if out is not None else self.out)
