"""Pretrained models shipped inside the package: ``inr_gon/pretrained_models/<name>.pt`` with its model
card ``<name>.json``.

Each model is a run of the project's own default command, its checkpoint slimmed to what encoding
and decoding need (:func:`slim_checkpoint`: no optimiser or sampler state). The card says what it
was trained on and how (the command, the resolved config), its test metrics beside the linear
baseline, the package version and the SHA-256 of the weights file. :func:`load_pretrained` checks
that hash before anything is read, so a damaged or replaced file is refused in one line.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..data.errors import file_sha256 as sha256  # the weights' hash, as the model cards record it
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint

__all__ = ["PRETRAINED_DIR", "names", "card", "weights_path", "load_pretrained", "slim_checkpoint", "sha256"]

#: where the shipped models live
PRETRAINED_DIR = Path(__file__).resolve().parents[1] / "pretrained_models"

#: the checkpoint entries a pretrained model keeps (the rest resume training, which it is not for)
KEEP = ("kind", "version", "task", "model_config", "model", "step", "elapsed", "config", "dataset", "latent_stats")
KEEP_SHAPES = ("shapes",)


def names(root: str | os.PathLike = PRETRAINED_DIR) -> list[str]:
    """The shipped models' names (those with both a weights file and a card)."""
    root = Path(root)
    return sorted(p.stem for p in root.glob("*.json") if (root / f"{p.stem}.pt").is_file())


def card(name: str, root: str | os.PathLike = PRETRAINED_DIR) -> dict:
    """The model card of ``name`` (a one-line ``CheckpointError`` for an unknown name)."""
    root = Path(root)
    path = root / f"{name}.json"
    if not path.is_file() or not (root / f"{name}.pt").is_file():
        raise CheckpointError(f"no pretrained model {name!r} (there are: {', '.join(names(root)) or 'none'})")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{path}: unreadable model card ({err})") from None


def weights_path(name: str, root: str | os.PathLike = PRETRAINED_DIR) -> Path:
    """The weights file of ``name`` once its SHA-256 matches its card's (else a one-line
    ``CheckpointError``: the file is never read as a model)."""
    info = card(name, root)
    path = Path(root) / f"{name}.pt"
    got = sha256(path)
    if got != info.get("sha256"):
        raise CheckpointError(
            f"{path}: SHA-256 {got[:16]}… does not match its model card's {str(info.get('sha256'))[:16]}…; "
            "the file is damaged or was replaced (reinstall inr_gon)"
        )
    return path


def load_pretrained(name: str, *, device="auto", root: str | os.PathLike = PRETRAINED_DIR):
    """The pretrained model ``name`` as a :class:`~inr_gon.training.run.LoadedRun` (``.model``
    ready to encode and decode, ``.config``, ``.state``), its hash checked first."""
    from .run import load_run

    return load_run(weights_path(name, root), device=device)


def slim_checkpoint(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Write the entries of checkpoint ``src`` that encoding and decoding need (``KEEP``; a shape
    model's shape-set description too) into ``dst``, atomically; returns ``dst``. The config's
    run folder (``out``, a path on the machine that trained it) is not kept."""
    from .run import _find

    state = load_checkpoint(_find(src), map_location="cpu")
    keep = KEEP + (KEEP_SHAPES if "shapes" in state else ())
    slim = {k: state[k] for k in keep if k in state}
    slim["config"] = {**slim["config"], "out": None}
    return save_checkpoint(dst, slim)
