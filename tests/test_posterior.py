"""Latents under a Gaussian prior (core.posterior.map_latent) against a naive autograd reference."""

import pytest
import torch

import inr_gon as ig
from inr_gon.core.sdf import bounded_loss


def rel_err(a, b):
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


def prior(k, seed=1):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(k, k, generator=g, dtype=torch.float64)
    return 0.1 * torch.randn(k, generator=g, dtype=torch.float64), A @ A.T / k + 0.05 * torch.eye(
        k, dtype=torch.float64
    )


def naive_map(m, coords, target, loss_fn, mean, cov, s, iterations, weight):
    """z ← z - (sΣ⁻¹ + JᵀDJ)⁻¹ (∇E + sΣ⁻¹(z-μ)) sample by sample, J and the curvature D by autograd."""
    B, k = target.shape[0], m.latent_dim
    prec = s * torch.linalg.inv(cov)
    z = mean.expand(B, k).clone()
    for _ in range(iterations):
        rows = []
        for b in range(B):
            cb = coords if coords.dim() == 2 else coords[b]
            f = lambda zz: m(cb, zz[None])[0]  # noqa: E731  (P, O)
            zb = z[b].clone().requires_grad_()
            (g,) = torch.autograd.grad((loss_fn(f(zb), target[b : b + 1])[0] * weight).sum(), zb)
            J = torch.autograd.functional.jacobian(f, zb.detach()).reshape(-1, k)
            F = f(zb.detach())[None].clone().requires_grad_()  # (1, P, O)
            (d1,) = torch.autograd.grad(loss_fn(F, target[b : b + 1]).sum(), F, create_graph=True)
            h = torch.autograd.grad(d1.sum(), F)[0].clamp_min(0).reshape(-1) * weight
            A = prec + J.T @ (h[:, None] * J)
            rows.append(zb.detach() - torch.linalg.solve(A, g + prec @ (zb.detach() - mean)))
        z = torch.stack(rows)
    return z


@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("O,options", [(1, {}), (2, dict(latent_shifts=True))])
@pytest.mark.parametrize("bounded", [False, True])
def test_map_latent_equals_the_naive_iterations(shared, O, options, bounded):
    torch.manual_seed(0)
    k = 5
    m = ig.LatentSiren(3, k, O, 16, 3, fused=False, **options).double().requires_grad_(False)
    c = (torch.rand(40, 3) if shared else torch.rand(3, 40, 3)).double() * 2 - 1
    x = 0.2 * torch.randn(3, 40, O, dtype=torch.float64)
    mean, cov = prior(k)
    free = torch.rand(3, 40, O) < 0.4  # bounded: these targets are lower bounds (free space)
    w = 0.3
    z = ig.map_latent(
        m,
        c,
        x,
        mean=mean,
        cov=cov,
        strength=0.5,
        iterations=3,
        loss=bounded_loss("l2", free) if bounded else "mse",
        integrator=ig.GridIntegrator(scale=w),
    )
    rows = []  # the naive reference one sample at a time, each with its own bounds
    for b in range(3):
        fb = bounded_loss("l2", free[b : b + 1]) if bounded else (lambda p, t: (p - t).square())
        rows.append(naive_map(m, c if shared else c[b : b + 1], x[b : b + 1], fb, mean, cov, 0.5, 3, w)[0])
    zn = torch.stack(rows)
    assert not z.requires_grad and rel_err(z, zn) <= 1e-9


def test_one_iteration_from_an_isotropic_prior_at_the_origin_is_the_gauss_newton_step():
    torch.manual_seed(0)
    m = ig.LatentSiren(2, 6, 1, 16, 3).double().requires_grad_(False)
    c, x = torch.rand(30, 2, dtype=torch.float64), torch.rand(4, 30, 1, dtype=torch.float64)
    eye = torch.eye(6, dtype=torch.float64)
    z = ig.map_latent(m, c, x, mean=torch.zeros(6, dtype=torch.float64), cov=eye, strength=0.7, iterations=1)
    assert rel_err(z, ig.gon_latent(m, c, x, gauss_newton=0.7)) <= 1e-10


def test_converged_iterations_are_a_stationary_point_of_the_posterior_energy():
    torch.manual_seed(0)
    k = 4
    m = ig.LatentSiren(3, k, 1, 16, 2).double().requires_grad_(False)
    c, x = torch.rand(2, 50, 3, dtype=torch.float64), 0.1 * torch.randn(2, 50, 1, dtype=torch.float64)
    mean, cov = prior(k)
    z = ig.map_latent(m, c, x, mean=mean, cov=cov, strength=2.0, iterations=40)
    zz = z.clone().requires_grad_()
    prec = 2.0 * torch.linalg.inv(cov)
    d = zz - mean
    energy = (m(c, zz) - x).square().sum() + 0.5 * torch.einsum("bi,ij,bj->", d, prec, d)
    (g,) = torch.autograd.grad(energy, zz)
    assert g.abs().max() < 1e-8
    # started there (init), a further iteration stays: a fixed point
    again = ig.map_latent(m, c, x, mean=mean, cov=cov, strength=2.0, iterations=1, init=z)
    assert rel_err(again, z) < 1e-9
    # a prior far stronger than the data keeps the latent at its mean
    strong = ig.map_latent(m, c, x, mean=mean, cov=cov, strength=1e10, iterations=2)
    assert rel_err(strong, mean.expand(2, k)) < 1e-6


def test_map_latent_bad_input_is_one_line():
    m = ig.LatentSiren(2, 3, 1, 8, 2)
    c, x = torch.rand(5, 2), torch.rand(1, 5, 1)
    mean, cov = torch.zeros(3), torch.eye(3)
    for kwargs, msg in [
        (dict(mean=torch.zeros(4), cov=cov), "mean \\(k,\\) and cov \\(k, k\\) with k = 3"),
        (dict(mean=mean, cov=-torch.eye(3)), "not positive definite"),
        (dict(mean=mean, cov=cov, strength=0), "strength must be a number > 0"),
        (dict(mean=mean, cov=cov, iterations=0), "iterations must be an int >= 1"),
        (dict(mean=mean, cov=cov, init=torch.zeros(2, 3)), "init must have shape \\(B, k\\) = \\(1, 3\\)"),
    ]:
        with pytest.raises(ValueError, match=msg):
            ig.map_latent(m, c, x, **kwargs)

    class Plain(torch.nn.Module):
        latent_dim = 3

        def forward(self, coords, z):
            return coords[..., :1] + z[:, None, :1]

    with pytest.raises(TypeError, match="needs an explicit latent model"):
        ig.map_latent(Plain(), c, x, mean=mean, cov=cov)
