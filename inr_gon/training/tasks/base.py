"""What a task tells the :class:`~inr_gon.training.trainer.Trainer`: only what differs by modality.

A task is built from its config (one ``@dataclass`` deriving from
:class:`~inr_gon.training.trainer.TrainerConfig`) and, optionally, data passed in from code.
The trainer calls, in this order:

1. :meth:`Task.setup` (load and check the data, on ``trainer.device``);
2. :meth:`Task.num_train`, :meth:`Task.build_model` (after ``torch.manual_seed(seed)``),
   :meth:`Task.build_objective` (the one module DDP wraps);
3. every step :meth:`Task.make_batch` and :meth:`Task.on_step_end`; every ``log_every`` steps
   :meth:`Task.progress`; every ``eval_every`` steps :meth:`Task.evaluate` (and
   :meth:`Task.describe_eval`);
4. :meth:`Task.on_fit_end`, then :meth:`Task.final_metrics`; :meth:`Task.write_outputs` when
   asked; :meth:`Task.state_dict` / :meth:`Task.load_state_dict` with every checkpoint.

Evaluation must not draw from torch's global random stream (use a seeded generator): the
training steps after it would otherwise change.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

__all__ = ["Task", "CollapseWarning"]


class CollapseWarning(UserWarning):
    """A run did not learn: an empty field, a field that ignores the latent, shapes it cannot tell
    apart, or reconstructions no better than the mean training image."""


class Task:
    """Base class of the tasks (see the module docstring). Subclasses set ``name``,
    ``config_class`` and ``checkpoint_kind`` and implement the hooks that raise here."""

    name: ClassVar[str] = ""
    about: ClassVar[str] = ""  # one line for ``inr-gon train --help``
    config_class: ClassVar[type] = type(None)
    checkpoint_kind: ClassVar[str] = ""
    commands: ClassVar[tuple] = ("eval",)  # the ``inr-gon`` commands that take this task's checkpoints

    def __init__(self, config):
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} needs a {self.config_class.__name__}, got {type(config).__name__}")
        self.cfg = config
        self.trainer = None

    # -- set-up ----------------------------------------------------------------------------------------
    def setup(self, trainer) -> None:
        """Load and check the data (``trainer.device``, ``trainer.dist``, ``trainer.log``)."""
        self.trainer = trainer

    def num_train(self) -> int:
        """How many training items the batch sampler draws from."""
        raise NotImplementedError

    def build_model(self) -> nn.Module:
        """The network (on the CPU; the trainer moves it). Must have ``config()``."""
        raise NotImplementedError

    def model_config(self, model: nn.Module) -> dict:
        """What rebuilds the model (stored in checkpoints; a resume must match it)."""
        return model.config()

    @classmethod
    def model_from_checkpoint(cls, state: dict) -> nn.Module | None:
        """The untrained model of a checkpoint ``state``, from its ``model_config`` alone
        (``None``: it needs the data set too, so :func:`~inr_gon.training.run.load_run` builds
        the run's task)."""
        return None

    def build_objective(self, model: nn.Module) -> nn.Module:
        """``objective(*batch, generator=g) -> (loss, z, parts)`` (see :mod:`..objectives`)."""
        raise NotImplementedError

    # -- every step ----------------------------------------------------------------------------------------
    def make_batch(self, index: torch.Tensor, mine: slice, generator: torch.Generator) -> tuple:
        """This rank's arguments of the objective for the global batch of item positions
        ``index (B,)``: draw any random points for the whole batch from ``generator``, then
        keep the items ``index[mine]``."""
        raise NotImplementedError

    def on_step_end(self, trainer) -> None:
        """After every applied step (e.g. snapshots at given training times); must be cheap."""

    def progress(self, parts: dict, last_eval: dict) -> dict:
        """The progress bar's figures (strings) from the logged ``parts`` and the last evaluation."""
        return {"loss": f"{parts['loss']:.4f}"}

    # -- evaluation and outputs ----------------------------------------------------------------------------
    def evaluate(self, trainer) -> dict:
        """Periodic (cheap) evaluation: ``{name: number}``; ``{}`` for none. A collective under DDP."""
        return {}

    def describe_eval(self, metrics: dict) -> str:
        return ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())

    def on_fit_end(self, trainer) -> None:
        """After the last step, before the final checkpoint (e.g. latent statistics)."""

    def final_metrics(self, trainer) -> dict:
        """Metrics returned by :meth:`Trainer.fit` beside the step counts."""
        return {}

    def write_outputs(self, trainer, metrics: dict, out) -> tuple[dict, dict]:
        """Write the pictures and ``metrics.json`` into ``out``; returns ``(paths, metrics)``."""
        return {}, metrics

    def state_dict(self) -> dict:
        """Extra checkpoint entries (merged into the trainer's)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`'s entries from a checkpoint."""

    # -- the command line ----------------------------------------------------------------------------------
    @classmethod
    def default_out(cls, cfg) -> str:
        return f"runs/{cls.name}"

    def describe(self, trainer) -> list[str]:
        """Lines printed before training (data, model)."""
        return []

    def summary(self, trainer, metrics: dict, paths: dict) -> list[str]:
        """Lines printed after the outputs are written."""
        return [f"trained {metrics['steps']} steps in {metrics['train_seconds']:.1f} s"]
