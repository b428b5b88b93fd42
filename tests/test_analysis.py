"""Latent statistics (skew, excess kurtosis, histograms) and the encoder baselines' sizing."""

import numpy as np
import pytest
import scipy.stats
import torch

import inr_gon as ig
from inr_gon.eval.latent import excess_kurtosis, histogram, latent_normality, skewness
from inr_gon.variants.autoencoder import VAE, Autoencoder, MLPEncoder, count_parameters, encoder_width_for


def test_normal_samples_have_zero_skew_and_excess_kurtosis():
    x = np.random.default_rng(0).standard_normal(400_000)
    assert abs(skewness(x)) < 0.02
    assert abs(excess_kurtosis(x)) < 0.04


def test_exponential_samples_have_skew_2_and_excess_kurtosis_6():
    x = np.random.default_rng(1).exponential(size=2_000_000)
    assert skewness(x) == pytest.approx(2.0, abs=0.05)
    assert excess_kurtosis(x) == pytest.approx(6.0, abs=0.5)


def test_matches_scipy_and_accepts_tensors_and_axes():
    x = torch.randn(300, 5, generator=torch.Generator().manual_seed(0)) ** 3
    np.testing.assert_allclose(skewness(x, axis=0), scipy.stats.skew(x.double().numpy(), axis=0), rtol=1e-10)
    np.testing.assert_allclose(excess_kurtosis(x, axis=0), scipy.stats.kurtosis(x.double().numpy(), axis=0), rtol=1e-10)
    assert isinstance(skewness(x), float)
    assert skewness(np.ones(10)) == 0.0 and excess_kurtosis(np.ones(10)) == 0.0


def test_latent_normality_and_histogram():
    rng = np.random.default_rng(2)
    z = rng.standard_normal((20_000, 4)) * np.array([1.0, 10.0, 0.1, 3.0]) + 5
    r = latent_normality(z)
    assert abs(r["skew"]) < 0.05 and abs(r["excess_kurtosis"]) < 0.1
    assert r["skew_per_dim"].shape == (4,) and r["values"].shape == (80_000,)
    raw = latent_normality(z, standardize=False)
    assert raw["excess_kurtosis"] > 1.0  # pooling unequal scales: a heavy-tailed mixture
    counts, edges = histogram(r["values"], bins=40, range=(-4, 4))
    assert counts.shape == (40,) and edges.shape == (41,)
    assert np.sum(counts * np.diff(edges)) == pytest.approx(1.0, abs=1e-3)
    c2, _ = histogram(torch.arange(10.0), bins=5, density=False)
    assert c2.tolist() == [2, 2, 2, 2, 2]


def test_bad_input_errors():
    with pytest.raises(ValueError, match="NaN"):
        skewness([1.0, float("nan")])
    with pytest.raises(ValueError, match="empty"):
        excess_kurtosis([])
    with pytest.raises(ValueError, match=r"\(N >= 2, k\)"):
        latent_normality(np.zeros(5))
    with pytest.raises(ValueError, match="bins"):
        histogram([1.0, 2.0], bins=0)
    with pytest.raises(TypeError, match="numbers"):
        skewness(["a", "b"])


def test_encoder_is_sized_like_the_decoder():
    dec = ig.LatentSiren(2, 32, 1, 128, 3)
    n = count_parameters(dec)
    h = encoder_width_for(n, 784, 32)
    enc = MLPEncoder(784, h, 32)
    assert abs(count_parameters(enc) - n) <= 784 + 1 + 32  # within one hidden unit
    ae = Autoencoder(dec, (1, 28, 28))
    assert count_parameters(ae) == count_parameters(enc) + n
    loss, z = ae.loss(torch.rand(3, 1, 28, 28))
    assert loss.dim() == 0 and z.shape == (3, 32)
    vae = VAE(ig.LatentSiren(2, 8, 1, 16, 2), (1, 12, 12))
    loss, mu, p = vae.loss(torch.rand(3, 1, 12, 12))
    assert mu.shape == (3, 8) and p["bce"].shape == (3,) and p["kl"].shape == (3,)
    torch.testing.assert_close(loss, (p["bce"] + p["kl"]).mean())
    with pytest.raises(ValueError, match="target_params"):
        encoder_width_for(0, 784, 32)
