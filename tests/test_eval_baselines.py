"""The linear baseline (PCA) against a float64 SVD reference, and SSIM against scikit-image."""

import pytest
import torch
from skimage.metrics import structural_similarity

from inr_gon.eval.image import psnr, ssim
from inr_gon.eval.pca import PCA


def low_rank_data(N, D, rank=6, seed=0):
    """Signals with a decaying spectrum (distinct leading singular values) plus a little noise."""
    g = torch.Generator().manual_seed(seed)
    U = torch.randn(N, rank, generator=g, dtype=torch.float64)
    V = torch.randn(rank, D, generator=g, dtype=torch.float64)
    scale = 2.0 ** -torch.arange(rank, dtype=torch.float64)
    return (U * scale) @ V + 0.01 * torch.randn(N, D, generator=g, dtype=torch.float64) + 3.0


def svd_reference(X, k):
    mean = X.mean(0)
    _, S, Vh = torch.linalg.svd(X - mean, full_matrices=False)
    V = Vh[:k]
    return mean + (X - mean) @ V.T @ V, S[:k] ** 2 / (X.shape[0] - 1)


@pytest.mark.parametrize(
    "method,N,D", [("covariance", 60, 20), ("gram", 15, 40), ("randomized", 80, 30), ("auto", 40, 25)]
)
@pytest.mark.parametrize("k", [1, 4])
def test_pca_reconstruction_equals_a_float64_svd_reference(method, N, D, k):
    X = low_rank_data(N, D)
    ref, var = svd_reference(X, k)
    pca = PCA(k, method=method).fit(X)
    torch.testing.assert_close(pca.reconstruct(X), ref, rtol=0, atol=1e-8)
    torch.testing.assert_close(pca.explained_variance, var, rtol=1e-8, atol=0)
    torch.testing.assert_close(pca.components @ pca.components.T, torch.eye(k, dtype=torch.float64), rtol=0, atol=1e-10)
    # unseen signals are projected onto the same subspace
    Y = low_rank_data(7, D, seed=1)
    Yr = pca.reconstruct(Y)
    mean = X.mean(0)
    torch.testing.assert_close(Yr - mean, (Y - mean) @ pca.components.T @ pca.components, rtol=0, atol=1e-10)


def test_pca_float32_fit_matches_float64_and_keeps_the_dtype():
    X = low_rank_data(500, 64)
    p64, p32 = PCA(5).fit(X), PCA(5).fit(X.float())
    assert p32.components.dtype == torch.float32 and p32.encode(X.float()).dtype == torch.float32
    torch.testing.assert_close(p32.reconstruct(X.float()).double(), p64.reconstruct(X), rtol=0, atol=1e-4)


def test_pca_is_the_best_rank_k_code_in_psnr_terms():
    """PCA's error on its training signals is no larger than any other k-dim affine code's
    (here: a random subspace through the same mean)."""
    X = low_rank_data(100, 30).clamp(0, 6) / 6
    pca = PCA(3).fit(X)
    Q, _ = torch.linalg.qr(torch.randn(30, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2)))
    rand = X.mean(0) + (X - X.mean(0)) @ Q @ Q.T
    assert (pca.reconstruct(X) - X).square().sum() <= (rand - X).square().sum()
    assert psnr(pca.reconstruct(X), X).mean() > psnr(rand, X).mean()


@pytest.mark.parametrize("method", ["gram", "covariance", "auto"])
def test_pca_with_k_beyond_the_rank_still_projects(method):
    """k = N signals span only N - 1 centred directions: the fit stays finite and reconstructs
    the training signals exactly."""
    X = torch.randn(4, 50, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    pca = PCA(4, method=method).fit(X)
    assert bool(torch.isfinite(pca.components).all())
    torch.testing.assert_close(pca.reconstruct(X), X, rtol=0, atol=1e-9)


def test_pca_bad_input_names_the_problem():
    with pytest.raises(ValueError, match="k must be an int >= 1"):
        PCA(0)
    with pytest.raises(ValueError, match="method must be"):
        PCA(2, method="qr")
    with pytest.raises(ValueError, match="needs at least k signals"):
        PCA(5).fit(torch.rand(3, 10))
    with pytest.raises(ValueError, match="NaN or Inf"):
        PCA(1).fit(torch.tensor([[0.0, float("nan")], [1.0, 2.0]]))
    with pytest.raises(ValueError, match=r"floating-point \(N, D\)"):
        PCA(1).fit(torch.rand(3, 4, 5))
    with pytest.raises(RuntimeError, match="not fitted"):
        PCA(1).encode(torch.rand(2, 3))
    with pytest.raises(ValueError, match=r"must be \(N, 3\)"):
        PCA(1).fit(torch.rand(4, 3)).encode(torch.rand(2, 4))


@pytest.mark.parametrize("shape", [(9, 1, 28, 28), (4, 3, 17, 31), (2, 2, 7, 7)])
def test_ssim_equals_scikit_image(shape):
    g = torch.Generator().manual_seed(0)
    a = torch.rand(*shape, generator=g) * 1.2 - 0.1  # pred is clipped first
    b = (a + 0.2 * torch.randn(*shape, generator=g)).clamp(0, 1)
    ref = torch.tensor(
        [
            structural_similarity(
                b[i].double().numpy(), a[i].clamp(0, 1).double().numpy(), data_range=1.0, channel_axis=0
            )
            for i in range(shape[0])
        ]
    )
    torch.testing.assert_close(ssim(a, b, chunk=3), ref, rtol=0, atol=1e-12)
    assert float(ssim(b, b).min()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least 7×7"):
        ssim(torch.rand(1, 1, 6, 9), torch.rand(1, 1, 6, 9))
