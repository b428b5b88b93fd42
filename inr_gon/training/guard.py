"""Non-finite losses and parameters: never apply, never save, say which step.

:class:`NonFiniteGuard` applies each optimizer step only when the step's loss is finite, either
checking every step (``immediate``: one host sync per step) or with no host sync in the step
(``deferred``: fused Adam's ``found_inf`` skips the update on the device, and the flags are read
at log, evaluation and checkpoint steps). :func:`require_finite_parameters` runs before every
save, so a NaN/Inf model never replaces or rotates away a good checkpoint.
"""

from __future__ import annotations

import torch

__all__ = ["NonFiniteLossError", "NonFiniteGuard", "require_finite_parameters"]


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN/Inf (the message names the step and the last good checkpoint)."""


def require_finite_parameters(model, *, step: int, last_checkpoint=None) -> None:
    """:class:`NonFiniteLossError` if any parameter is NaN/Inf — called before every save, so a
    NaN/Inf model never replaces or rotates away a good checkpoint."""
    if not bool(torch.stack([torch.isfinite(p).all() for p in model.parameters()]).all()):
        where = f"; the last good checkpoint is {last_checkpoint}" if last_checkpoint else ""
        raise NonFiniteLossError(f"non-finite model parameters at step {step}; not saved{where}")


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

    def __init__(
        self, opt: torch.optim.Optimizer, *, deferred: bool, on_nonfinite: str, device: torch.device, scaler=None
    ):
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
        if self.scaler is not None:  # the scaler skips steps with non-finite gradients: make them so
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
        raise NonFiniteLossError(
            f"non-finite training loss at step {first} (no update applied from it on){_where(last_checkpoint)}"
        )


def _where(last_checkpoint) -> str:
    return f"; the last good checkpoint is {last_checkpoint}" if last_checkpoint else ""
