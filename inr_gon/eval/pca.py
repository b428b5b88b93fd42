"""The linear baseline: PCA, the best linear code of a given size.

With a squared-error inner loss the one-step GON latent is an affine function of the signal,
so the first yardstick for any reconstruction figure is the optimal *linear* code of the same
size ``k``: the principal subspace of the training signals. :class:`PCA` fits it in closed form
on the signals' device and encodes / decodes flattened signals.

Shapes: ``N`` signals, ``D`` values each (pixels × channels, or SDF grid values), ``k``
components.
"""

from __future__ import annotations

import torch

__all__ = ["PCA"]


def _top_eigh(S: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` largest eigenvalues ``(k,)`` and eigenvectors ``(n, k)`` of a symmetric PSD
    matrix, largest first."""
    scale = S.diagonal().max().clamp_min(1e-300)  # solved at unit scale
    evals, evecs = torch.linalg.eigh(S / scale)  # ascending
    return evals.flip(0)[:k].clamp_min(0) * scale, evecs.flip(1)[:, :k]


class PCA:
    """Principal component analysis of ``(N, D)`` signals, ``k`` components.

    Fitting picks the cheapest exact method for the shape (``method="auto"``):

    * ``"covariance"``: the ``D × D`` covariance ``XᵀX`` and its eigendecomposition (``D``
      up to a few thousand: MNIST's 784 pixels, whatever ``N``);
    * ``"gram"``: the ``N × N`` Gram matrix ``XXᵀ`` when there are fewer signals than values
      (a few thousand SDF grids of 32³);
    * ``"randomized"``: ``torch.svd_lowrank`` (Halko et al.) when both are large, in the
      signals' dtype.

    The covariance method forms chunks of ``chunk`` signals in the signals' dtype and sums them
    in float64, the Gram method works in float64; the eigendecompositions are float64.

    Attributes:
        mean: ``(D,)`` the training mean.
        components: ``(k, D)`` orthonormal principal directions, by decreasing variance (a
            direction without variance — ``k`` beyond the centred data's rank — is zero).
        explained_variance: ``(k,)`` the variance along each direction.
    """

    def __init__(self, k: int, *, method: str = "auto", chunk: int = 8192):
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be an int >= 1, got {k!r}")
        if method not in ("auto", "covariance", "gram", "randomized"):
            raise ValueError(f"method must be 'auto', 'covariance', 'gram' or 'randomized', got {method!r}")
        self.k, self.method, self.chunk = k, method, chunk
        self.mean = self.components = self.explained_variance = None

    def _choose(self, N: int, D: int) -> str:
        if self.method != "auto":
            return self.method
        if D <= 4096:
            return "covariance"
        return "gram" if N <= 4096 else "randomized"

    def fit(self, X: torch.Tensor) -> PCA:
        """Fit on ``X`` ``(N, D)`` (any float dtype; flattened signals). Returns ``self``."""
        if not isinstance(X, torch.Tensor) or X.dim() != 2 or not X.is_floating_point():
            raise ValueError(
                f"PCA fits a floating-point (N, D) tensor, got "
                f"{tuple(X.shape) if isinstance(X, torch.Tensor) else type(X).__name__}"
            )
        N, D = X.shape
        if N < 2:
            raise ValueError(f"PCA needs at least 2 signals, got {N}")
        if self.k > min(N, D):
            raise ValueError(f"PCA with k={self.k} needs at least k signals and k values each; got ({N}, {D})")
        if not bool(torch.isfinite(X).all()):
            raise ValueError("PCA's training signals contain NaN or Inf values")
        method = self._choose(N, D)
        mean = X.double().mean(0)
        if method == "covariance":
            C = torch.zeros(D, D, dtype=torch.float64, device=X.device)
            m = mean.to(X.dtype)
            for i in range(0, N, self.chunk):  # chunk products summed in float64
                xc = X[i : i + self.chunk] - m
                C += (xc.T @ xc).double()
            # constant values (MNIST's border pixels) carry no variance: left out of the solve
            keep = C.diagonal() > 0
            if int(keep.sum()) < self.k:
                keep = torch.ones_like(keep)
            evals, evecs = _top_eigh(C[keep][:, keep], self.k)
            V = torch.zeros(self.k, D, dtype=torch.float64, device=X.device)
            V[:, keep] = evecs.T  # (k, D)
        elif method == "gram":
            xc = X.double() - mean
            evals, U = _top_eigh(xc @ xc.T, self.k)  # (k,), (N, k)
            live = evals > evals[0] * 1e-12  # k may exceed the rank N - 1
            V = (U.T @ xc) / evals.clamp_min(1e-300).sqrt().unsqueeze(1)  # (k, D): u_i^T X / s_i
            V = V * live.unsqueeze(1)  # no variance: a zero component
        else:
            xc = X - mean.to(X.dtype)
            q = min(self.k + 10, N, D)
            _, S, Vq = torch.svd_lowrank(xc, q=q, niter=6)  # Vq: (D, q)
            evals, V = S[: self.k].double().square(), Vq[:, : self.k].T.double()
        self.mean = mean.to(X.dtype)
        self.components = V.to(X.dtype).contiguous()
        self.explained_variance = (evals / (N - 1)).to(X.dtype)
        return self

    def _check(self, X: torch.Tensor, D: int | None, what: str) -> None:
        if self.components is None:
            raise RuntimeError("PCA is not fitted: call fit(X) first")
        D = self.components.shape[1] if D is None else D
        if X.dim() != 2 or X.shape[1] != D:
            raise ValueError(f"{what} must be (N, {D}), got {tuple(X.shape)}")

    def encode(self, X: torch.Tensor) -> torch.Tensor:
        """Codes ``(N, k)`` of signals ``X`` ``(N, D)``: their coordinates in the principal subspace."""
        self._check(X, None, "signals")
        return (X.to(self.mean) - self.mean) @ self.components.T

    def decode(self, Z: torch.Tensor) -> torch.Tensor:
        """Signals ``(N, D)`` of codes ``Z`` ``(N, k)``."""
        self._check(Z, self.k, "codes")
        return self.mean + Z.to(self.mean) @ self.components

    def reconstruct(self, X: torch.Tensor) -> torch.Tensor:
        """``decode(encode(X))``: the orthogonal projection of ``X`` onto the affine principal subspace."""
        return self.decode(self.encode(X))
