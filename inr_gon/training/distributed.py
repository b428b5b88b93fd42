"""Data-parallel training on ``torch.distributed`` (``torchrun``).

* :func:`init_distributed` detects a ``torchrun`` launch (``RANK``/``WORLD_SIZE``/``LOCAL_RANK``
  in the environment), initialises the default process group (``nccl`` on CUDA, ``gloo`` on
  CPU) and returns a :class:`DistContext` (rank, world size, device ``cuda:LOCAL_RANK`` on CUDA)
  with the few collectives the trainer needs. Without ``torchrun`` (or with one process) it
  returns a single-process context whose collectives are no-ops.
* The trainer wraps the task's *objective* module (not the bare model) in
  ``DistributedDataParallel`` (:meth:`DistContext.wrap`): every use of every parameter (inner
  latent and outer loss) is inside that one forward, and the explicit inner gradient makes the
  step one ordinary backward pass, so DDP's reducer averages every parameter's gradient.
  Latents are per sample, so sharding a batch changes no sample's latent.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass

import torch
from torch import nn
import torch.distributed as dist


__all__ = ["DistContext", "init_distributed", "torchrun_env"]


def torchrun_env() -> dict | None:
    """``{"rank", "world_size", "local_rank"}`` from a ``torchrun`` environment, else ``None``."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return None
    try:
        env = {
            "rank": int(os.environ["RANK"]),
            "world_size": int(os.environ["WORLD_SIZE"]),
            "local_rank": int(os.environ.get("LOCAL_RANK", "0")),
        }
    except ValueError:
        raise ValueError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (set by torchrun)") from None
    if not 0 <= env["rank"] < env["world_size"]:
        raise ValueError(f"RANK={env['rank']} is outside WORLD_SIZE={env['world_size']}")
    return env


@dataclass
class DistContext:
    """Where this process sits in a (possibly one-process) data-parallel job.

    Attributes:
        rank, world_size, local_rank: as set by ``torchrun`` (0, 1, 0 without it).
        device: this process's device (``cuda:LOCAL_RANK`` for CUDA jobs).
        owns_group: this context initialised the process group (and :meth:`close` destroys it).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False

    @property
    def enabled(self) -> bool:
        """More than one process: collectives are real."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes logs, pictures, checkpoints and metrics."""
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            if self.device.type == "cuda":
                dist.barrier(device_ids=[self.device.index])
            else:
                dist.barrier()

    def all_reduce_sum(self, t: torch.Tensor) -> torch.Tensor:
        """Sum ``t`` over the ranks, in place (no host sync on NCCL); returns ``t``."""
        if self.enabled:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def wrap(self, module: nn.Module) -> nn.Module:
        """``module`` in ``DistributedDataParallel`` with several processes (one device per
        process), else ``module`` itself."""
        if not self.enabled:
            return module
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(module, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def any(self, flag: bool) -> bool:
        """``True`` on every rank if ``flag`` is true on any rank (a collective: all must call)."""
        if not self.enabled:
            return bool(flag)
        return bool(self.all_reduce_sum(torch.tensor(float(flag), device=self.device)) > 0)

    def average(self, t: torch.Tensor) -> torch.Tensor:
        """Mean of ``t`` over the ranks (a new tensor; ``t`` itself when single-process)."""
        return self.all_reduce_sum(t.clone()) / self.world_size if self.enabled else t

    def gather_list(self, items: list) -> list:
        """The concatenation, in rank order, of every rank's ``items`` (pickled; this job only)."""
        if not self.enabled:
            return list(items)
        parts = [None] * self.world_size
        dist.all_gather_object(parts, list(items))
        return [x for part in parts for x in part]

    def broadcast_object(self, obj=None):
        """Rank 0's ``obj`` on every rank (pickled; only between this job's own processes)."""
        if not self.enabled:
            return obj
        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0, device=self.device if self.device.type == "cuda" else None)
        return box[0]

    def run_on_main(self, fn, *args, **kwargs):
        """Run ``fn`` on rank 0 only and return its result on every rank; an exception raised
        there is raised on every rank (so no rank waits forever in a later collective)."""
        if not self.enabled:
            return fn(*args, **kwargs)
        result, error = None, None
        if self.is_main:
            try:
                result = fn(*args, **kwargs)
            except Exception as e:  # forwarded to every rank and re-raised below
                error = e
        result, error = self.broadcast_object((result, error))
        if error is not None:
            raise error
        return result

    @contextlib.contextmanager
    def main_first(self):
        """Rank 0 runs the block first (e.g. a download), then the other ranks."""
        if self.enabled and not self.is_main:
            self.barrier()
        try:
            yield
        finally:
            if self.enabled and self.is_main:
                self.barrier()

    def shard(self, n: int) -> slice:
        """This rank's contiguous part of ``n`` items (sizes differ by at most one)."""
        lo = n * self.rank // self.world_size
        hi = n * (self.rank + 1) // self.world_size
        return slice(lo, hi)

    def close(self) -> None:
        """Destroy the process group if this context created it."""
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()
            self.owns_group = False


def init_distributed(*, device: torch.device, timeout_s: float = 1800.0) -> DistContext:
    """Initialise data parallelism if launched by ``torchrun`` with more than one process.

    Args:
        device: the device the caller selected (``cpu`` or ``cuda``; under ``torchrun`` a
            CUDA job uses ``cuda:LOCAL_RANK`` and must not name another index).
        timeout_s: collective timeout.
    Returns:
        A :class:`DistContext`; single-process (``world_size=1``, ``device`` unchanged) when not
        launched by ``torchrun``, or with ``WORLD_SIZE=1``.
    """
    env = torchrun_env()
    if env is None or env["world_size"] == 1:
        return DistContext(device=device)
    if device.type == "cuda":
        if device.index is not None and device.index != env["local_rank"]:
            raise ValueError(
                f"under torchrun each process uses cuda:LOCAL_RANK; do not pass --device {device} "
                f"(use 'cuda' or 'auto')"
            )
        if env["local_rank"] >= torch.cuda.device_count():
            raise ValueError(
                f"LOCAL_RANK={env['local_rank']} but only {torch.cuda.device_count()} CUDA "
                f"device(s) are visible; lower --nproc_per_node"
            )
        device = torch.device("cuda", env["local_rank"])
        torch.cuda.set_device(device)
        backend = "nccl"
    elif device.type == "cpu":
        backend = "gloo"
    else:
        raise ValueError(f"distributed training supports CPU (gloo) and CUDA (nccl), not {device.type}")
    owns = False
    if not dist.is_initialized():
        kw = {"device_id": device} if backend == "nccl" else {}
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s), **kw)
        owns = True
    if dist.get_world_size() != env["world_size"] or dist.get_rank() != env["rank"]:
        raise ValueError("the initialised process group does not match RANK/WORLD_SIZE")
    return DistContext(
        rank=env["rank"], world_size=env["world_size"], local_rank=env["local_rank"], device=device, owns_group=owns
    )
