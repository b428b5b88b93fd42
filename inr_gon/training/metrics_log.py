"""The run's metrics log: ``metrics.jsonl`` always, TensorBoard event files on request.

Each line of ``<run>/metrics.jsonl`` is one JSON object: ``{"step", "seconds", "kind":
"train", <parts>...}`` every ``log_every`` steps, ``{"step", "seconds", "kind": "eval",
<metrics>...}`` at every evaluation, and one ``"kind": "final"`` line. ``pandas.read_json(path,
lines=True)`` or ``jq`` read it. On resume, lines past the checkpoint's step (from the part of
an interrupted run that is trained again) are dropped first, so the log has one line per step.

With ``tensorboard=True`` the same scalars go to TensorBoard event files in ``<run>/tb``
(``torch.utils.tensorboard``; needs the optional ``tensorboard`` package:
``pip install "inr_gon[tensorboard]"``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

__all__ = ["MetricsLog", "tensorboard_available"]


def tensorboard_available() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


class MetricsLog:
    """Append-only metrics of one run (a no-op without a run folder or off rank 0).

    Args:
        folder: the run folder, or ``None``.
        tensorboard: also write TensorBoard event files (a one-line ``ValueError`` when the
            ``tensorboard`` package is missing).
    """

    def __init__(self, folder, *, tensorboard: bool = False):
        if tensorboard and not tensorboard_available():
            raise ValueError("--tensorboard needs the tensorboard package: pip install tensorboard")
        self.path = Path(folder) / "metrics.jsonl" if folder is not None else None
        self.tensorboard = tensorboard
        self._writer = None

    def start(self, step: int) -> None:
        """Open the log at ``step`` (0: a new run, which replaces any old log; else a resume)."""
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keep = []
        if step > 0 and self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    if json.loads(line).get("step", 0) <= step:
                        keep.append(line)
                except json.JSONDecodeError:  # a line cut by a crash
                    continue
        self.path.write_text("".join(k + "\n" for k in keep))
        if self.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.path.parent / "tb"), purge_step=step if step > 0 else None)

    def write(self, kind: str, step: int, seconds: float, values: dict) -> None:
        """One line: ``values`` are numbers (``None``/non-finite are written as ``null``)."""
        if self.path is None:
            return
        row = {"step": int(step), "seconds": round(float(seconds), 3), "kind": kind}
        for k, v in values.items():
            v = None if v is None else float(v)
            row[k] = v if v is not None and math.isfinite(v) else None
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        if self._writer is not None:
            for k, v in row.items():
                if k not in ("step", "seconds", "kind") and v is not None:
                    self._writer.add_scalar(f"{kind}/{k}", v, global_step=step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
