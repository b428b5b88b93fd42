"""What each step trains on and at which rate: the seeded batch order (identical on every rank)
and the learning-rate schedule (a function of the step alone, so resuming needs no state)."""

from __future__ import annotations

import math

import torch

__all__ = ["BatchSampler", "learning_rate"]


def learning_rate(
    step: int,
    *,
    lr: float,
    steps: int,
    schedule: str = "constant",
    warmup_steps: int = 0,
    progress: float | None = None,
) -> float:
    """The learning rate of (0-based) step ``step``: a function of the step (or of ``progress``)
    alone, so resuming needs no scheduler state.

    ``"constant"``: ``lr``. ``"cosine"``: from ``lr`` down to ``lr/20`` as the progress
    ``t = step / steps`` (or the given ``progress``) goes from 0 to 1. A linear warm-up
    multiplies the first ``warmup_steps`` steps by ``(step + 1) / warmup_steps``.
    """
    value = lr
    if schedule == "cosine" and (steps or progress is not None):
        t = min(step / steps if progress is None else progress, 1.0)
        value = lr / 20 + (lr - lr / 20) * 0.5 * (1 + math.cos(math.pi * t))
    if warmup_steps and step < warmup_steps:
        value *= (step + 1) / warmup_steps
    return value


class BatchSampler:
    """Seeded batches of item positions ``0..n-1``: a permutation, epoch by epoch.

    :meth:`next` returns the next global batch ``(min(B, n),)`` (int64, CPU); an epoch's last
    incomplete batch is dropped and a new permutation drawn. Identical on every rank (the same
    seed), so the ranks agree on every batch.
    """

    def __init__(self, n: int, batch_size: int, seed: int):
        if n < 1:
            raise ValueError("the training set is empty")
        self.n, self.batch_size = int(n), int(batch_size)
        self.generator = torch.Generator().manual_seed(seed)
        self.perm = torch.randperm(self.n, generator=self.generator)
        self.pos = 0

    def next(self) -> torch.Tensor:
        B, N = self.batch_size, self.perm.numel()
        if self.pos + B > N:
            self.perm = torch.randperm(N, generator=self.generator)
            self.pos = 0
        idx = self.perm[self.pos : self.pos + min(B, N)]
        self.pos += B
        return idx

    def peek(self) -> torch.Tensor:
        """The batch :meth:`next` returns next, without drawing it."""
        B, N = self.batch_size, self.perm.numel()
        if self.pos + B > N:
            g = torch.Generator().set_state(self.generator.get_state())
            return torch.randperm(N, generator=g)[: min(B, N)]
        return self.perm[self.pos : self.pos + min(B, N)]

    def state_dict(self) -> dict:
        return {"perm": self.perm, "pos": self.pos, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.perm, self.pos = state["perm"], state["pos"]
        self.generator.set_state(state["generator"])
