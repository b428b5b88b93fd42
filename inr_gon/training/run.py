"""One way in: :func:`load_run` reads any checkpoint an ``inr-gon train`` run wrote.

It reads the file once (safe, ``weights_only`` loading), finds the task that wrote it through
the task registry (each task names its ``checkpoint_kind``), rebuilds the run's config (earlier
versions' names mapped by :mod:`.compat`) and its model, and returns a :class:`LoadedRun`. The
``render``, ``eval`` and ``mesh`` commands and ``inr_gon.load`` all start here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .checkpoint import CheckpointError, latest_checkpoint, load_checkpoint

__all__ = ["LoadedRun", "load_run"]


@dataclass
class LoadedRun:
    """A trained run: its task, config, model (in eval mode, on ``device``) and checkpoint.

    Attributes:
        path: the checkpoint file.
        task_class: the :class:`~inr_gon.training.tasks.base.Task` that wrote it.
        config: the run's config (its task's config class, every value resolved).
        model: the trained network.
        state: the whole checkpoint dictionary (``"step"``, ``"latent_stats"``, ...).
        device: where the model lives.
    """

    path: Path
    task_class: type
    config: object
    model: nn.Module
    state: dict
    device: torch.device
    _trainer: object = field(default=None, repr=False)

    @property
    def task_name(self) -> str:
        return self.task_class.name

    @property
    def step(self) -> int:
        return int(self.state.get("step", 0))

    def require(self, command: str) -> None:
        """A one-line ``ValueError`` unless this run's task offers ``command`` (``"render"``, ...)."""
        if command not in self.task_class.commands:
            fits = ", ".join(f"inr-gon {c}" for c in self.task_class.commands) or "none"
            raise ValueError(
                f"{self.path}: a {self.task_name!r} checkpoint cannot be used with "
                f"'inr-gon {command}' (commands that fit it: {fits})"
            )

    def trainer(self, *, data_dir: str | None = None):
        """A :class:`~inr_gon.training.Trainer` of this run's config with its data loaded and
        this model's weights (for what needs the data set: evaluation, shape indices). Built once."""
        if self._trainer is None:
            from .trainer import Trainer

            changes = dict(out=None, device=str(self.device), threads=None)
            if data_dir is not None and hasattr(self.config, "data_dir"):
                changes["data_dir"] = data_dir
            t = Trainer(dataclasses.replace(self.config, **changes), quiet=True)
            t.model.load_state_dict(self.state["model"])
            t.model.eval()
            if "latent_stats" in self.state and hasattr(t.task, "latent_stats"):
                t.task.latent_stats = self.state["latent_stats"]
            self._trainer = t
        return self._trainer


def _find(path) -> Path:
    path = Path(path)
    if path.is_dir():
        found = latest_checkpoint(path)
        if found is None:
            raise CheckpointError(f"{path}: no checkpoint (ckpt_step*.pt) in this folder")
        return found
    return path


def load_run(path, *, device="auto") -> LoadedRun:
    """The run whose checkpoint is ``path`` (a file, or a run folder: its newest checkpoint).

    Raises :class:`~inr_gon.training.checkpoint.CheckpointError` (one line) for a missing,
    corrupt, unsafe or foreign file.
    """
    from .tasks import TASKS
    from .trainer import select_device

    path = _find(path)
    device = select_device(device) if isinstance(device, str) else torch.device(device)
    state = load_checkpoint(path, map_location="cpu")
    kind = state.get("kind")
    by_kind = {t.checkpoint_kind: t for t in TASKS.values()}
    if kind not in by_kind:
        raise CheckpointError(
            f"{path}: not an inr_gon run checkpoint (kind {kind!r}; known: {', '.join(sorted(by_kind))})"
        )
    task = by_kind[kind]
    if not isinstance(state.get("config"), dict):
        raise CheckpointError(f"{path}: checkpoint holds no run config")
    cls = task.config_class
    try:
        config = cls.from_dict(cls.fill_absent(state["config"]))
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: checkpoint holds an unreadable config ({str(e).splitlines()[0]})") from None
    run = LoadedRun(path, task, config, None, state, device)
    try:
        model = task.model_from_checkpoint(state)
        if model is not None:
            model.load_state_dict(state["model"])
    except (KeyError, TypeError, RuntimeError) as e:
        raise CheckpointError(f"{path}: checkpoint does not hold a valid model ({str(e).splitlines()[0]})") from None
    if model is None:  # a model whose shape depends on the data (e.g. the classifier's classes)
        model = run.trainer().model
    run.model = model.to(device).eval()
    return run
