"""Checkpoints: atomic writes, rotation, and safe loading (no code runs from a file).

* :func:`save_checkpoint` writes to a temporary file in the destination folder, flushes and
  ``fsync``\\ s it, then ``os.replace``\\ s it over the destination (atomic on POSIX and Windows)
  and ``fsync``\\ s the folder: a crash leaves either the old file or the new one, never a
  truncated one.
* :func:`load_checkpoint` uses ``torch.load(..., weights_only=True)``: only tensors, numbers,
  strings and containers are accepted; a pickle that would import or call anything is refused
  with :class:`CheckpointError` before any of it runs.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import tempfile
import warnings
from pathlib import Path

import torch

__all__ = [
    "CheckpointError",
    "RunDirectoryError",
    "check_run_dir",
    "open_run_dir",
    "save_step_checkpoint",
    "save_checkpoint",
    "load_checkpoint",
    "rotate_checkpoints",
    "latest_checkpoint",
    "atomic_write_bytes",
    "restore_generator",
    "retarget_adam",
]


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt, unsafe or of the wrong kind (one-line message)."""


class RunDirectoryError(ValueError):
    """The output directory holds another run (and neither resume nor overwrite was asked)."""


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open folders; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic(path: Path, write) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file + fsync + rename)."""
    return _atomic(Path(path), lambda f: f.write(data))


def save_checkpoint(path, state: dict) -> Path:
    """Atomically save ``state`` (tensors, numbers, strings, lists, dicts) to ``path``."""
    return _atomic(Path(path), lambda f: torch.save(state, f))


def load_checkpoint(path, *, map_location="cpu", kind: str | None = None) -> dict:
    """Load a checkpoint safely (``weights_only=True``).

    Args:
        kind: if given, the checkpoint's ``"kind"`` entry must equal it (e.g. ``"image_gon"``).
    Raises:
        CheckpointError: missing file, not a checkpoint, truncated/corrupt, unsafe content
            (a pickle that would run code) or the wrong kind.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickle protocols
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights_only" in str(e) or "Weights only" in str(e):
            raise CheckpointError(
                f"{path}: refused to load unsafe content "
                f"({_unsafe_reason(str(e))}); only weights-only checkpoints "
                f"are loaded"
            ) from None
        raise CheckpointError(f"{path}: corrupt checkpoint ({_first_sentence(e)})") from None
    except Exception as e:  # torch raises RuntimeError, KeyError, EOFError, ... on damaged files
        raise CheckpointError(
            f"{path}: not a readable checkpoint (truncated or corrupt: {_first_sentence(e)})"
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not an inr_gon checkpoint (top level is {type(state).__name__}, not a dict)")
    if kind is not None and state.get("kind") != kind:
        raise CheckpointError(f"{path}: expected a {kind!r} checkpoint, found {state.get('kind')!r}")
    return state


def _first_sentence(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text.split(". ")[0]


def _unsafe_reason(message: str) -> str:
    m = re.search(r"(GLOBAL [^\s]+|Unsupported global: [^\s]+|global [^\s]+)", message)
    if m:
        return f"it would import or call {m.group(1)}"
    m = re.search(r"Unsupported operand (\d+)", message)
    if m:
        return f"a pickle opcode ({m.group(1)}) that torch's weights-only loader does not accept"
    return "content not allowed by torch's weights-only loader"


_STEP_RE = re.compile(r"step(\d+)\.pt$")


def rotate_checkpoints(folder, *, keep: int, pattern: str = "ckpt_step*.pt") -> list[Path]:
    """Delete all but the ``keep`` newest ``ckpt_step<N>.pt`` files in ``folder`` (by step), and
    temporary files left by interrupted saves. Returns the deleted checkpoint paths.

    Call it only from the process that writes the checkpoints (after its save): a temporary file
    of another process's save in progress would be removed too."""
    files = sorted(
        Path(folder).glob(pattern),
        key=lambda p: int(_STEP_RE.search(p.name).group(1)) if _STEP_RE.search(p.name) else -1,
    )
    old = files[:-keep] if keep > 0 else files
    for p in old:
        p.unlink(missing_ok=True)
    # temporary files of saves interrupted by a crash (kill -9, power loss) of an earlier process
    for p in Path(folder).glob(f".{pattern}.*.tmp"):
        p.unlink(missing_ok=True)
    return old


def latest_checkpoint(folder, *, pattern: str = "ckpt_step*.pt") -> Path | None:
    """The ``ckpt_step<N>.pt`` in ``folder`` with the largest step, or ``None``."""
    files = [p for p in Path(folder).glob(pattern) if _STEP_RE.search(p.name)]
    return max(files, key=lambda p: int(_STEP_RE.search(p.name).group(1))) if files else None


def check_run_dir(out, *, resume: bool, overwrite: bool) -> bool:
    """Whether ``out`` holds a run (checkpoints or ``config.json``); :class:`RunDirectoryError`
    if it does and neither ``resume`` nor ``overwrite`` is set. Touches nothing."""
    out = Path(out)
    existing = out.is_dir() and (any(out.glob("ckpt_step*.pt")) or (out / "config.json").exists())
    if existing and not (resume or overwrite):
        raise RunDirectoryError(f"{out} holds another run; pass --resume to continue it or --overwrite to replace it")
    return existing


def open_run_dir(out, *, resume: bool, overwrite: bool, kind: str, model_config: dict):
    """Prepare a run folder and return ``(state, path)`` of the checkpoint to resume from.

    Refuses a folder holding another run unless ``resume``/``overwrite``; ``overwrite`` (without
    ``resume``) deletes the old checkpoints; ``resume`` loads the newest ``ckpt_step*.pt``
    safely and checks its ``kind`` and model configuration. Returns ``(None, None)`` when there
    is nothing to resume.
    """
    out = Path(out)
    existing = check_run_dir(out, resume=resume, overwrite=overwrite)
    if existing and overwrite and not resume:
        for p in out.glob("ckpt_step*.pt"):
            p.unlink()
    out.mkdir(parents=True, exist_ok=True)
    ckpt = latest_checkpoint(out) if resume else None
    if ckpt is None:
        return None, None
    state = load_checkpoint(ckpt, kind=kind)
    if state.get("model_config") != model_config:
        raise CheckpointError(f"{ckpt}: its model {state.get('model_config')} does not match this run's {model_config}")
    return state, ckpt


def save_step_checkpoint(folder, step: int, state: dict, *, keep: int) -> Path:
    """Atomically write ``folder/ckpt_step<step>.pt`` and keep only the newest ``keep``."""
    path = save_checkpoint(Path(folder) / f"ckpt_step{step:07d}.pt", state)
    rotate_checkpoints(folder, keep=keep)
    return path


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
    gen.manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))
    return False


def retarget_adam(opt: torch.optim.Adam, *, fused: bool) -> None:
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
