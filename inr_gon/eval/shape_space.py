"""Checks of a learned shape space: the field on each shape's own samples, and the symptoms of a
space that did not form (an empty field, a field that ignores the latent, shapes it cannot tell
apart).

A field is a callable ``(N, 3) -> (N,)`` (negative inside); each shape comes with its own sample
points ``(N, 3)`` and true signed distances ``(N,)`` there.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from .shape import sign_iou

__all__ = ["field_agreement", "shape_space_health", "collapse_reasons", "MIN_SENSITIVITY", "MIN_IDENTIFIED"]

#: below these a shape space is reported as collapsed (:func:`collapse_reasons`)
MIN_SENSITIVITY, MIN_IDENTIFIED = 0.05, 0.5


@torch.no_grad()
def field_agreement(
    fields: Sequence[Callable], points: Sequence[torch.Tensor], truths: Sequence[torch.Tensor], delta: float
) -> dict:
    """Mean sign IoU (inside = negative, predicted vs true) and mean absolute error near the
    surface (``|s| < delta``) of ``fields[i]`` on ``points[i]`` against ``truths[i]``;
    ``{}`` for no shapes."""
    if not len(fields):
        return {}
    ious, errs = [], []
    for f, p, true in zip(fields, points, truths):
        pred = f(p)
        ious.append(float(sign_iou(pred, true)))
        near = true.abs() < delta
        errs.append(float((pred - true)[near].abs().mean()) if bool(near.any()) else float("nan"))
    return {
        "sign_iou": float(np.mean(ious)),
        "near_l1": float(np.nanmean(errs)) if any(np.isfinite(errs)) else float("nan"),
    }


@torch.no_grad()
def shape_space_health(
    fields: Sequence[Callable], points: Sequence[torch.Tensor], truths: Sequence[torch.Tensor]
) -> dict:
    """Symptoms of a shape space that did not form, for shapes ``i`` with fields ``fields[i]``
    (e.g. decoded from their latents), samples ``points[i]`` and true distances ``truths[i]``.

    * ``zero_crossing``: the fraction of shapes whose field changes sign on their own points
      (an empty or full field has none);
    * ``latent_sensitivity``: how much the field moves from shape to shape,
      ``mean_{a≠b} mean_p |F_a(p) - F_b(p)|`` over shape ``b``'s points ``p``, relative to the
      spread ``std_p s_b(p)`` of the true distances there (0 when the field ignores the latent;
      the exact SDFs of distinct shapes give a few tenths);
    * ``identified``: the fraction of shapes whose field agrees (sign IoU on the shape's points)
      better with their own ground truth than with every other shape's;
    * ``shapes``: how many.
    """
    n = len(fields)
    if n == 0:
        return {}
    preds = [[fields[a](points[b]) for b in range(n)] for a in range(n)]  # [a][b]: F_a on pool b
    cross = [bool((preds[a][a] < 0).any() and (preds[a][a] > 0).any()) for a in range(n)]
    m = [[float(sign_iou(preds[a][b], truths[b])) for b in range(n)] for a in range(n)]
    identified = [all(m[a][a] > m[a][b] for b in range(n) if b != a) for a in range(n)] if n > 1 else [True]
    spread = float(np.mean([float(t.std()) for t in truths])) or 1.0
    moves = [float((preds[a][b] - preds[b][b]).abs().mean()) for a in range(n) for b in range(n) if a != b]
    return {
        "zero_crossing": float(np.mean(cross)),
        "identified": float(np.mean(identified)),
        "latent_sensitivity": float(np.mean(moves)) / spread if moves else float("nan"),
        "shapes": n,
    }


def collapse_reasons(
    h: dict, *, min_sensitivity: float = MIN_SENSITIVITY, min_identified: float = MIN_IDENTIFIED
) -> list[str]:
    """The symptoms in a :func:`shape_space_health` result that say the shape space collapsed,
    one sentence each (``[]``: none)."""
    why = []
    if h.get("zero_crossing", 1.0) < 1.0:
        k = round((1 - h["zero_crossing"]) * h["shapes"])
        why.append(f"no zero crossing on the training points of {k} of {h['shapes']} shapes (an empty field)")
    if h.get("shapes", 0) > 1 and h["latent_sensitivity"] < min_sensitivity:
        why.append(
            f"the field barely depends on the latent (sensitivity {h['latent_sensitivity']:.3f} < {min_sensitivity})"
        )
    if h.get("shapes", 0) > 1 and h["identified"] < min_identified:
        why.append(
            f"the training shapes are indistinguishable (only {round(h['identified'] * h['shapes'])} of "
            f"{h['shapes']} nearer their own ground truth than another's)"
        )
    return why
