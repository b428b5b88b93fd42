"""Latent-space statistics: how normal are the latents? (the paper's Figure 8).

* :func:`skewness` and :func:`excess_kurtosis`: the population (biased, moment) estimators
  ``m3 / m2^{3/2}`` and ``m4 / m2² - 3`` — ``scipy.stats.skew`` / ``scipy.stats.kurtosis`` with
  their defaults (``bias=True``, Fisher) — computed in float64; both are 0 for a normal
  distribution, (2, 6) for an exponential one.
* :func:`latent_normality`: per-dimension statistics and those of all values pooled, raw or
  after standardising each dimension (pooling dimensions with different scales adds kurtosis
  of the scale mixture, so ``standardize=True`` is the default).
* :func:`histogram`: counts/density and bin edges as numpy arrays (plotting is the caller's).

Shapes: ``N`` latents, ``k`` latent dimension.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["skewness", "excess_kurtosis", "latent_normality", "histogram"]


def _as_array(x, name: str = "values") -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a tensor or array of numbers, got {type(x).__name__}") from None
    if a.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or Inf values")
    return a


def _central_moments(a: np.ndarray, axis):
    d = a - a.mean(axis=axis, keepdims=True)
    m2 = (d**2).mean(axis=axis)
    return d, m2


def skewness(x, *, axis=None) -> float | np.ndarray:
    """Sample skewness ``m3 / m2^{3/2}`` of ``x`` (any shape; ``axis=None`` pools all values).

    Returns a float (``axis=None``) or an array over the remaining axes; 0 for constant data.
    """
    a = _as_array(x)
    d, m2 = _central_moments(a, axis)
    m3 = (d**3).mean(axis=axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(m2 > 0, m3 / np.maximum(m2, 1e-300) ** 1.5, 0.0)
    return float(s) if np.ndim(s) == 0 else s


def excess_kurtosis(x, *, axis=None) -> float | np.ndarray:
    """Sample excess kurtosis ``m4 / m2² - 3`` of ``x`` (``axis=None`` pools all values);
    0 for constant data."""
    a = _as_array(x)
    d, m2 = _central_moments(a, axis)
    m4 = (d**4).mean(axis=axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        k = np.where(m2 > 0, m4 / np.maximum(m2, 1e-300) ** 2 - 3.0, 0.0)
    return float(k) if np.ndim(k) == 0 else k


def latent_normality(latents, *, standardize: bool = True) -> dict:
    """Normality statistics of latents ``(N, k)``.

    Returns a dict with ``"skew"`` and ``"excess_kurtosis"`` of all values pooled (after
    z-scoring each dimension when ``standardize``), ``"skew_per_dim"`` and
    ``"excess_kurtosis_per_dim"`` (``(k,)`` arrays), their means ``"mean_abs_skew"`` (mean of
    ``|skew|``) and ``"mean_excess_kurtosis"``, and ``"values"`` (the pooled ``(N·k,)`` array).
    """
    a = _as_array(latents, "latents")
    if a.ndim != 2 or a.shape[0] < 2:
        raise ValueError(f"latents must have shape (N >= 2, k), got {a.shape}")
    sk, ku = skewness(a, axis=0), excess_kurtosis(a, axis=0)
    if standardize:
        sd = a.std(axis=0)
        a = (a - a.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    v = a.reshape(-1)
    return {
        "skew": skewness(v),
        "excess_kurtosis": excess_kurtosis(v),
        "skew_per_dim": np.atleast_1d(sk),
        "excess_kurtosis_per_dim": np.atleast_1d(ku),
        "mean_abs_skew": float(np.mean(np.abs(sk))),
        "mean_excess_kurtosis": float(np.mean(ku)),
        "values": v,
    }


def histogram(
    values, *, bins: int = 50, range: tuple[float, float] | None = None, density: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Histogram of all ``values`` (any shape, pooled): ``(counts_or_density (bins,), edges (bins+1,))``."""
    if not isinstance(bins, int) or bins < 1:
        raise ValueError(f"bins must be a positive int, got {bins!r}")
    a = _as_array(values).reshape(-1)
    if range is not None and not range[0] < range[1]:
        raise ValueError(f"range must be (lo, hi) with lo < hi, got {range!r}")
    return np.histogram(a, bins=bins, range=range, density=density)
