"""A data set's latents in one ``.npz``, tied to the model that encoded them.

Arrays (no pickles): ``latents`` ``(N, k)`` float32; ``names`` ``(N,)`` str (file names, shape ids
or ``test/17``-style indices); ``labels`` ``(N,)`` int64 where the data has them; ``model_sha256``
(the SHA-256 of the model's weights, :func:`model_identity`), ``task``, ``source`` and ``format``.
:func:`read_latents` given a model refuses latents that another model encoded, since they would
decode to nonsense without any error.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = ["FORMAT", "LatentsFile", "model_identity", "save_latents", "read_latents"]

FORMAT = "inr_gon.latents/1"


def model_identity(model: torch.nn.Module) -> str:
    """The SHA-256 of a model's weights (names, dtypes, shapes and values, in order)."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


@dataclass
class LatentsFile:
    """What :func:`read_latents` returns: ``latents`` ``(N, k)`` (CPU), ``names``, ``labels``
    (``None`` when absent), the encoding model's ``model_sha256``, its ``task`` and the ``source``."""

    latents: torch.Tensor
    names: list
    labels: np.ndarray | None
    model_sha256: str
    task: str
    source: str


def save_latents(path, latents: torch.Tensor, *, model, task: str, source: str, names=None, labels=None) -> Path:
    """Write ``latents`` ``(N, k)`` of ``model`` (written to a temporary name, then renamed)."""
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"{path}: latents are written as .npz")
    z = latents.detach().float().cpu().numpy()
    names = [str(n) for n in (names if names is not None else range(len(z)))]
    if len(names) != len(z):
        raise ValueError(f"{len(names)} names for {len(z)} latents")
    arrays = dict(
        latents=z,
        names=np.array(names, dtype=str),
        model_sha256=np.array(model_identity(model)),
        task=np.array(task),
        source=np.array(str(source)),
        format=np.array(FORMAT),
    )
    if labels is not None:
        arrays["labels"] = np.asarray(labels, dtype=np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}.npz")
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_latents(path, model=None) -> LatentsFile:
    """The latents file ``path``; given ``model``, a one-line ``ValueError`` unless that model
    encoded them."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as d:
            if "format" not in d.files or str(d["format"]) != FORMAT:
                raise ValueError(f"{path}: not an inr_gon latents file (written by 'inr-gon encode')")
            out = LatentsFile(
                latents=torch.from_numpy(np.asarray(d["latents"], dtype=np.float32)),
                names=[str(n) for n in d["names"]],
                labels=np.asarray(d["labels"]) if "labels" in d.files else None,
                model_sha256=str(d["model_sha256"]),
                task=str(d["task"]),
                source=str(d["source"]),
            )
    except (OSError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path}: not a readable latents file ({err})") from None
    if out.latents.ndim != 2 or len(out.names) != len(out.latents):
        raise ValueError(f"{path}: latents must be (N, k) with a name each")
    if model is not None and model_identity(model) != out.model_sha256:
        raise ValueError(
            f"{path}: these latents were encoded by another model (weights {out.model_sha256[:12]}…, "
            f"a {out.task!r} model on {out.source}); decode them with that model"
        )
    return out
