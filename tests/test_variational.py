"""Variational GON: KL closed forms, ELBO parts, reparameterisation gradients, prior sampling."""

import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

import inr_gon as ig
from inr_gon.variants.variational import (
    ConvDecoder,
    VariationalGON,
    bits_per_dim,
    kl_diag_gaussians,
    kl_standard_normal,
    reparameterize,
)


def test_kl_standard_normal_closed_form_and_torch():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(5, 7, generator=g, dtype=torch.float64)
    sigma = torch.rand(5, 7, generator=g, dtype=torch.float64) * 2 + 0.1
    ref = kl_divergence(Normal(mu, sigma), Normal(torch.zeros_like(mu), torch.ones_like(sigma))).sum(-1)
    manual = 0.5 * (sigma**2 + mu**2 - 1 - torch.log(sigma**2)).sum(-1)
    for kl in (
        kl_standard_normal(mu, sigma=sigma),
        kl_standard_normal(mu, logvar=2 * sigma.log()),
        kl_diag_gaussians(mu, sigma, torch.zeros(()), torch.ones(())),
    ):
        assert kl.shape == (5,)
        torch.testing.assert_close(kl, ref)
        torch.testing.assert_close(kl, manual)
    assert kl_standard_normal(torch.zeros(3, 4), sigma=torch.ones(3, 4)).abs().max() == 0


def test_kl_diag_gaussians_general():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(2, 4, 6, generator=g, dtype=torch.float64)
    sa, sb = torch.rand(2, 4, 6, generator=g, dtype=torch.float64) + 0.2
    ref = kl_divergence(Normal(a, sa), Normal(b, sb)).sum(-1)
    torch.testing.assert_close(kl_diag_gaussians(a, sa, b, sb), ref)


def test_kl_needs_exactly_one_scale():
    with pytest.raises(ValueError, match="exactly one"):
        kl_standard_normal(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="exactly one"):
        kl_standard_normal(torch.zeros(2, 3), sigma=torch.ones(2, 3), logvar=torch.zeros(2, 3))


def test_reparameterisation_gradients_analytic():
    # E[f(z')] for f(z') = Σ z'^2 is Σ μ² + σ²: d/dμ = 2μ, d/dσ = 2σ. Monte-Carlo with many ε.
    g = torch.Generator().manual_seed(2)
    mu = torch.tensor([[0.5, -1.0, 2.0]], dtype=torch.float64, requires_grad=True)
    sigma = torch.tensor([[0.3, 1.5, 0.7]], dtype=torch.float64, requires_grad=True)
    N = 200_000
    eps = torch.randn(N, 3, generator=g, dtype=torch.float64)
    z = reparameterize(mu.expand(N, 3), sigma.expand(N, 3), eps=eps)
    z.square().sum(-1).mean().backward()
    torch.testing.assert_close(mu.grad, 2 * mu.detach(), atol=0.02, rtol=0)
    torch.testing.assert_close(sigma.grad, 2 * sigma.detach(), atol=0.02, rtol=0)


def test_reparameterisation_gradients_finite_differences():
    # fixed ε (common random numbers): the pathwise gradient equals the finite difference exactly
    # (up to discretisation) for a smooth non-linear f.
    g = torch.Generator().manual_seed(3)
    eps = torch.randn(1000, 4, generator=g, dtype=torch.float64)
    f = lambda m, s: torch.sin(reparameterize(m.expand(1000, 4), s.expand(1000, 4), eps=eps)).sum(-1).mean()
    mu = torch.randn(1, 4, generator=g, dtype=torch.float64).requires_grad_()
    sigma = (torch.rand(1, 4, generator=g, dtype=torch.float64) + 0.5).requires_grad_()
    f(mu, sigma).backward()
    h = 1e-6
    for j in range(4):
        e = torch.zeros(1, 4, dtype=torch.float64)
        e[0, j] = h
        with torch.no_grad():
            dmu = (f(mu + e, sigma) - f(mu - e, sigma)) / (2 * h)
            dsig = (f(mu, sigma + e) - f(mu, sigma - e)) / (2 * h)
        assert abs(mu.grad[0, j] - dmu) < 1e-7
        assert abs(sigma.grad[0, j] - dsig) < 1e-7
    # and the sample's distribution: mean μ, std σ
    with pytest.raises(ValueError, match="eps has shape"):
        reparameterize(mu, sigma, eps=torch.zeros(2, 4))


@pytest.mark.parametrize("sigma_mode", ["exp", "softplus"])
def test_elbo_parts_match_manual_computation(sigma_mode):
    torch.manual_seed(0)
    v = VariationalGON(ConvDecoder(6, image_size=28, base_channels=4), sigma=sigma_mode).double()
    v.eval()
    x = torch.rand(3, 1, 28, 28, dtype=torch.float64)
    g = torch.Generator().manual_seed(5)
    loss, z, p = v.loss(x, generator=g, create_graph=False)
    assert z.shape == (3, 6) and p["bce"].shape == (3,) and p["kl"].shape == (3,)
    # recompute the outer term by hand with the same ε stream (inner draw, then outer draw)
    g2 = torch.Generator().manual_seed(5)
    torch.randn(3, 6, generator=g2, dtype=torch.float64)  # the inner ε
    eps = torch.randn(3, 6, generator=g2, dtype=torch.float64)
    mu, sigma, _ = v.posterior(z)
    logits = v.decoder(mu + sigma * eps)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").sum((1, 2, 3))
    kl = kl_divergence(Normal(mu, sigma), Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(p["bce"], bce)
    torch.testing.assert_close(p["kl"], kl)
    torch.testing.assert_close(p["nelbo"], bce + kl)
    torch.testing.assert_close(loss, (bce + kl).mean())
    # kl_weight changes the objective but not the reported nelbo's definition
    loss0, _, p0 = v.loss(x, generator=torch.Generator().manual_seed(5), kl_weight=0.0, create_graph=False)
    torch.testing.assert_close(loss0, p0["bce"].mean())


def test_latent_is_negative_gradient_through_reparameterisation():
    torch.manual_seed(1)
    v = VariationalGON(ig.LatentSiren(2, 5, 1, 16, 2), image_shape=(1, 6, 6)).double()
    x = torch.rand(2, 1, 6, 6, dtype=torch.float64)
    z = v.latent(x, generator=torch.Generator().manual_seed(9))
    # the same by hand: z0 -> μ, σ -> z' (fixed ε) -> decoder -> BCE + KL
    eps = torch.randn(2, 5, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    z0 = torch.zeros(2, 5, dtype=torch.float64, requires_grad=True)
    mu, logvar = v.fc_mu(z0), v.fc_sigma(z0)
    zp = mu + torch.exp(0.5 * logvar) * eps
    c = ig.grid((6, 6), dtype=torch.float64)
    logits = v.decoder(c, zp)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, ig.image_to_points(x), reduction="sum")
    L = bce + kl_standard_normal(mu, logvar=logvar).sum()
    (g,) = torch.autograd.grad(L, z0)
    torch.testing.assert_close(z, -g)


def test_training_step_reduces_loss_and_reaches_all_parameters():
    torch.manual_seed(0)
    v = VariationalGON(ig.LatentSiren(2, 8, 1, 32, 2), image_shape=(1, 8, 8))
    x = (torch.rand(16, 1, 8, 8) > 0.5).float()
    opt = torch.optim.Adam(v.parameters(), 1e-3)
    loss, _, _ = v.loss(x)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in v.parameters())
    first = loss.item()
    for _ in range(40):
        opt.zero_grad()
        loss, _, _ = v.loss(x)
        loss.backward()
        opt.step()
    assert loss.item() < first


@pytest.mark.parametrize("size", [28, 32])
def test_prior_sampling_on_cpu(size):
    v = VariationalGON(ConvDecoder(12, image_size=size, base_channels=8), device="cpu")
    v.eval()
    s = v.sample(5, generator=torch.Generator().manual_seed(0))
    assert s.shape == (5, 1, size, size) and s.device.type == "cpu"
    assert s.min() >= 0 and s.max() <= 1
    vi = VariationalGON(ig.LatentSiren(2, 4, 1, 16, 2), image_shape=(1, 10, 12))
    assert vi.sample(3).shape == (3, 1, 10, 12)
    assert vi.sample(2, resolution=(20, 24)).shape == (2, 1, 20, 24)


def test_evaluate_reports_bits_per_dim():
    v = VariationalGON(ConvDecoder(4, image_size=28, base_channels=4)).eval()
    r = v.evaluate(torch.rand(7, 1, 28, 28), batch_size=3, generator=torch.Generator().manual_seed(0))
    assert math.isclose(r["nelbo_nats"], r["bce_nats"] + r["kl_nats"], rel_tol=1e-5)
    assert math.isclose(r["bits_per_dim"], r["nelbo_nats"] / (784 * math.log(2)), rel_tol=1e-9)
    assert bits_per_dim(784 * math.log(2), 784) == pytest.approx(1.0)


def test_bad_input_errors():
    with pytest.raises(ValueError, match="out_activation"):
        VariationalGON(ig.LatentSiren(2, 4, 1, 8, 1, out_activation="sigmoid"))
    with pytest.raises(ValueError, match="sigma must be"):
        VariationalGON(ConvDecoder(4), sigma="relu")
    with pytest.raises(TypeError, match="latent_dim"):
        VariationalGON(torch.nn.Linear(3, 3))
    with pytest.raises(ValueError, match="image_size"):
        ConvDecoder(4, image_size=64)
    v = VariationalGON(ConvDecoder(4, base_channels=4))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        v.loss(torch.rand(3, 28, 28))
    with pytest.raises(TypeError, match="floating-point"):
        v.loss(torch.zeros(2, 1, 28, 28, dtype=torch.long))
    with pytest.raises(ValueError, match="does not match"):
        v.loss(torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match="positive int"):
        v.sample(0)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_loss_and_sampling():
    v = VariationalGON(ConvDecoder(8, image_size=32, base_channels=4), device="cuda")
    x = torch.rand(4, 1, 32, 32, device="cuda")
    loss, z, _ = v.loss(x, generator=torch.Generator(device="cuda").manual_seed(0))
    loss.backward()
    assert z.device.type == "cuda"
    assert v.sample(3, generator=torch.Generator().manual_seed(0)).device.type == "cuda"
    vi = VariationalGON(ig.LatentSiren(2, 4, 1, 16, 2), image_shape=(1, 8, 8), device="cuda")
    assert vi.sample(2).shape == (2, 1, 8, 8)
