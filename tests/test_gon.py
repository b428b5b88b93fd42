"""The gradient-origin latent and loss against the naive formulation (concat + autograd)."""

import pytest
import torch

import inr_gon as ig


def naive_latent(m, coords, target, loss_fn, weight=1.0, create_graph=False):
    """cwkx/GON's formulation per sample: c ⊕ z0 concatenated, batched autograd.grad."""
    B = target.shape[0]
    z0 = torch.zeros(B, m.latent_dim, dtype=target.dtype, requires_grad=True)
    L = (loss_fn(m.forward_concat(coords, z0), target) * weight).sum()
    return -torch.autograd.grad(L, z0, create_graph=create_graph)[0]


LOSSES = {
    "mse": lambda p, x: (p - x) ** 2,
    "l1": lambda p, x: (p - x).abs(),
    "bce": lambda p, x: torch.nn.functional.binary_cross_entropy_with_logits(p, x, reduction="none"),
}


def make(n, O, dtype, shared, B=3, P=17, seed=0, k=6):
    torch.manual_seed(seed)
    m = ig.LatentSiren(n, k, O, 24, 3).to(dtype)
    coords = (torch.rand(P, n) if shared else torch.rand(B, P, n)).to(dtype) * 2 - 1
    target = torch.rand(B, P, O, dtype=dtype)
    return m, coords, target


def rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("n,O", [(1, 1), (2, 1), (2, 3), (3, 1), (3, 3)])
@pytest.mark.parametrize("loss", ["mse", "l1", "bce"])
def test_latent_and_parameter_gradients_equal_naive(dtype, tol, shared, n, O, loss):
    m, c, x = make(n, O, dtype, shared)
    z = ig.gon_latent(m, c, x, loss=loss)
    zn = naive_latent(m, c, x, LOSSES[loss])
    assert rel_err(z, zn) <= tol
    # training: loss and parameter gradients through the second-order graph
    L, z = ig.gon_loss(m, c, x, inner_loss=loss)
    g = torch.autograd.grad(L, list(m.parameters()))
    zn = naive_latent(m, c, x, LOSSES[loss], create_graph=True)
    Ln = LOSSES[loss](m.forward_concat(c, zn), x).sum(dim=(1, 2)).mean()
    gn = torch.autograd.grad(Ln, list(m.parameters()))
    assert rel_err(L, Ln) <= tol
    for a, b in zip(g, gn):
        assert rel_err(a, b) <= 10 * tol


@pytest.mark.parametrize("shared", [True, False])
def test_autograd_method_equals_explicit(shared):
    m, c, x = make(2, 3, torch.float64, shared)
    torch.testing.assert_close(ig.gon_latent(m, c, x, method="autograd"), ig.gon_latent(m, c, x, method="explicit"))


@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("O,K", [(1, 1), (3, 1), (1, 2)])
@pytest.mark.parametrize(
    "options",
    [
        dict(w0_first=60.0, w0_latent=12.0),
        dict(latent_shifts=True),
        dict(latent_shifts=True, w0_latent=12.0, num_layers=4),
    ],
)
def test_latent_options_latents_and_gradients_equal_autograd(shared, O, K, options):
    """With ``w0_latent != w0_first`` or ``latent_shifts`` the explicit paths (which pull the
    gradient back through ``latent_readout()``) agree with autograd through the plain forward."""
    torch.manual_seed(3)
    options = {"num_layers": 3, **options}
    m = ig.LatentSiren(2, 6, O, 24, **options).double()
    c = torch.rand(17, 2, dtype=torch.float64) * 2 - 1 if shared else torch.rand(3, 17, 2, dtype=torch.float64) * 2 - 1
    x = torch.rand(3, 17, O, dtype=torch.float64)
    grads = []
    for method in ("explicit", "autograd"):
        z = ig.gon_latent(m, c, x, method=method, steps=K, step_size=0.5, create_graph=True)
        grads.append([z, *torch.autograd.grad(((m(c, z) - x) ** 2).sum(), list(m.parameters()))])
    for a, b in zip(*grads):
        assert rel_err(a, b) <= 1e-10


def test_output_activation_and_custom_callable_loss():
    torch.manual_seed(0)
    m = ig.LatentSiren(2, 5, 1, 16, 2, out_activation="sigmoid").double()
    c, x = torch.rand(9, 2, dtype=torch.float64), torch.rand(2, 9, 1, dtype=torch.float64)
    huber = lambda p, t: torch.nn.functional.huber_loss(p, t, reduction="none", delta=0.1)
    z = ig.gon_latent(m, c, x, loss=huber)
    z0 = torch.zeros(2, 5, dtype=torch.float64, requires_grad=True)
    zn = -torch.autograd.grad(huber(m(c, z0), x).sum(), z0)[0]
    torch.testing.assert_close(z, zn)
    L, _ = ig.gon_loss(m, c, x, inner_loss=huber)
    L.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())


def test_clamped_l1_matches_autograd():
    m, c, x = make(3, 1, torch.float64, False)
    x = (x - 0.5) * 0.5
    loss = ig.ClampedL1(delta=0.1)
    torch.testing.assert_close(ig.gon_latent(m, c, x, loss=loss), ig.gon_latent(m, c, x, loss=loss, method="autograd"))


def test_latent_is_batch_invariant():
    m, c, x = make(2, 1, torch.float64, True, B=7)
    z_all = ig.gon_latent(m, c, x)
    for i in range(7):
        torch.testing.assert_close(ig.gon_latent(m, c, x[i : i + 1]), z_all[i : i + 1])
    perm = torch.randperm(7)
    torch.testing.assert_close(ig.gon_latent(m, c, x[perm]), z_all[perm])
    # per-sample coordinates too
    m, c, x = make(3, 1, torch.float64, False, B=5)
    z_all = ig.gon_latent(m, c, x)
    torch.testing.assert_close(ig.gon_latent(m, c[2:3], x[2:3]), z_all[2:3])


def test_default_latent_is_official_per_sample_sum():
    """z_i = -∇ Σ_p (F - x_ip)^2 without the 1/B factor of Implicit-GON.py."""
    m, c, x = make(2, 1, torch.float64, True, B=4)
    z0 = torch.zeros(4, 1, m.latent_dim, dtype=torch.float64, requires_grad=True)
    g = m.forward_concat(c, z0[:, 0])  # same values as the official repeat+cat model
    official = ((g - x) ** 2).sum(1).mean()  # the official inner loss (mean over B)
    z_official = -torch.autograd.grad(official, z0)[0][:, 0]
    torch.testing.assert_close(ig.gon_latent(m, c, x), z_official * 4)  # undo the 1/B


def test_inference_mode_detaches_and_training_keeps_graph():
    m, c, x = make(2, 1, torch.float32, True)
    z = ig.gon_latent(m, c, x)
    assert not z.requires_grad
    L, z = ig.gon_loss(m, c, x)
    assert z.requires_grad and L.requires_grad and L.dim() == 0


def test_mc_latent_from_subset_estimates_full_latent():
    m, c, x = make(2, 1, torch.float64, True, P=64)
    z_full = ig.gon_latent(m, c, x)
    g = torch.Generator().manual_seed(0)
    mc = ig.MonteCarloIntegrator(num_points=16)
    zs = torch.stack([ig.gon_latent(m, c, x, integrator=mc, generator=g) for _ in range(3000)])
    err = zs.mean(0) - z_full
    se = zs.std(0) / 3000**0.5
    assert (err.abs() <= 5 * se + 1e-12).all()


def test_modality_conversion_inner_and_outer_sets_are_independent():
    torch.manual_seed(0)
    m = ig.LatentSiren(2, 4, 1, 16, 2).double()
    hi = torch.rand(3, 1, 8, 8, dtype=torch.float64)
    lo = torch.nn.functional.avg_pool2d(hi, 2)
    c_hi, c_lo = ig.grid(8, dim=2, dtype=torch.float64), ig.grid(4, dim=2, dtype=torch.float64)
    L, z = ig.gon_loss(
        m,
        c_hi,
        ig.image_to_points(hi),
        inner_coords=c_lo,
        inner_target=ig.image_to_points(lo),
        inner_loss="mse",
        outer_loss="l1",
    )
    zn = naive_latent(m, c_lo, ig.image_to_points(lo), LOSSES["mse"], create_graph=True)
    Ln = (m(c_hi, zn) - ig.image_to_points(hi)).abs().sum((1, 2)).mean()
    torch.testing.assert_close(L, Ln)
    for a, b in zip(torch.autograd.grad(L, list(m.parameters())), torch.autograd.grad(Ln, list(m.parameters()))):
        torch.testing.assert_close(a, b)


def test_generic_model_uses_autograd_path():
    class Concat(torch.nn.Module):
        latent_dim, coord_dim, out_dim = 3, 2, 1

        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))

        def forward(self, c, z):
            c = c.expand(z.shape[0], *c.shape[-2:])
            return self.net(torch.cat([c, z[:, None].expand(-1, c.shape[1], -1)], -1))

    torch.manual_seed(0)
    m = Concat()
    c, x = torch.rand(6, 2), torch.rand(2, 6, 1)
    z0 = torch.zeros(2, 3, requires_grad=True)
    zn = -torch.autograd.grad(((m(c, z0) - x) ** 2).sum(), z0)[0]
    torch.testing.assert_close(ig.gon_latent(m, c, x), zn)
    with pytest.raises(TypeError, match="explicit"):
        ig.gon_latent(m, c, x, method="explicit")


@pytest.mark.parametrize(
    "coords,target,match",
    [
        (torch.rand(10, 2), torch.rand(2, 9, 1), "points"),
        (torch.rand(10, 3), torch.rand(2, 10, 1), "coord_dim"),
        (torch.rand(10, 2), torch.rand(2, 10, 2), "out_dim"),
        (torch.rand(10, 2), torch.rand(2, 10), r"\(B, P, O\)"),
        (torch.rand(3, 10, 2), torch.rand(2, 10, 1), "batch"),
        (torch.rand(10, 2), torch.full((2, 10, 1), float("nan")), "NaN"),
        (torch.rand(10, 2), torch.randint(0, 2, (2, 10, 1)), "floating-point"),
    ],
)
def test_bad_input_errors(coords, target, match):
    m = ig.LatentSiren(2, 4, 1, 8, 1)
    with pytest.raises((ValueError, TypeError), match=match):
        ig.gon_latent(m, coords, target)


def test_unknown_loss_and_method():
    m, c, x = make(2, 1, torch.float32, True)
    with pytest.raises(ValueError, match="unknown loss"):
        ig.gon_latent(m, c, x, loss="hinge")
    with pytest.raises(ValueError, match="method"):
        ig.gon_latent(m, c, x, method="fast")
    with pytest.raises(ValueError, match="inner_coords"):
        ig.gon_loss(m, c, x, inner_coords=c)


# -- K gradient steps ------------------------------------------------------------------------------
def naive_k_steps(m, coords, target, loss_fn, K, alpha, weight=1.0):
    """Unrolled: z_0 = 0, z_{t+1} = z_t - α_t ⊙ ∇_z Σ w ℓ(F(c ⊕ z_t), x), through concat + autograd."""
    z = torch.zeros(target.shape[0], m.latent_dim, dtype=target.dtype, requires_grad=True)
    for t in range(K):
        L = (loss_fn(m.forward_concat(coords, z), target) * weight).sum()
        (g,) = torch.autograd.grad(L, z, create_graph=True)
        z = z - alpha[t] * g
    return z


@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("loss", ["mse", "l1", "bce"])
@pytest.mark.parametrize("K,alpha", [(2, None), (3, "per_dim"), (3, "per_step")])
def test_k_step_latents_and_gradients_equal_unrolled_autograd(shared, loss, K, alpha):
    m, c, x = make(2, 2, torch.float64, shared)
    k = m.latent_dim
    g = torch.Generator().manual_seed(1)
    if alpha is None:
        a, step_size = torch.ones(K, 1, dtype=torch.float64), 1.0
    elif alpha == "per_dim":
        a = (0.5 + torch.rand(k, generator=g, dtype=torch.float64)).requires_grad_()  # a learnable step
        step_size, a = a, a.unsqueeze(0).expand(K, -1)
    else:
        step_size = a = 0.5 + torch.rand(K, k, generator=g, dtype=torch.float64)
    w = 0.3
    z = ig.gon_latent(
        m, c, x, loss=loss, steps=K, step_size=step_size, integrator=ig.GridIntegrator(scale=w), create_graph=True
    )
    zn = naive_k_steps(m, c, x, LOSSES[loss], K, a, weight=w)
    assert rel_err(z, zn) <= 1e-10
    params = list(m.parameters()) + ([step_size] if alpha == "per_dim" else [])
    L = LOSSES[loss](m(c, z), x).sum()
    Ln = LOSSES[loss](m.forward_concat(c, zn), x).sum()
    for a_, b_ in zip(torch.autograd.grad(L, params), torch.autograd.grad(Ln, params)):
        assert rel_err(a_, b_) <= 1e-9
    # inference gives the same latent without a graph
    z_inf = ig.gon_latent(
        m,
        c,
        x,
        loss=loss,
        steps=K,
        step_size=step_size.detach() if alpha == "per_dim" else step_size,
        integrator=ig.GridIntegrator(scale=w),
    )
    assert not z_inf.requires_grad and rel_err(z_inf, zn) <= 1e-10


def test_more_steps_fit_the_inner_loss_better():
    m, c, x = make(2, 1, torch.float64, True, B=4)
    inner = lambda z: ((m(c, z) - x) ** 2).sum(dim=(1, 2))
    losses = [
        inner(ig.gon_latent(m, c, x, steps=K, integrator=ig.GridIntegrator(scale=0.02))).mean().item()
        for K in (1, 2, 4)
    ]
    assert losses[0] > losses[1] > losses[2]


def test_bad_steps_and_step_sizes():
    m, c, x = make(2, 1, torch.float64, True)
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="steps must be an int"):
            ig.gon_latent(m, c, x, steps=bad)
    with pytest.raises(ValueError, match="step_size must be > 0"):
        ig.gon_latent(m, c, x, steps=2, step_size=0.0)
    with pytest.raises(ValueError, match="step_size must have shape"):
        ig.gon_latent(m, c, x, steps=2, step_size=torch.ones(3, m.latent_dim))


def test_a_model_with_k_learned_steps_encodes_with_them_and_learns_them():
    torch.manual_seed(0)
    m = ig.LatentSiren(2, 4, 1, 16, 2, latent_steps=3, step_size=0.5, learn_step_size=True).double()
    assert m.config()["latent_steps"] == 3 and m.config()["learn_step_size"] is True
    c, x = torch.rand(10, 2, dtype=torch.float64), torch.rand(2, 10, 1, dtype=torch.float64)
    torch.testing.assert_close(m.latent_step_sizes()[:, 0], torch.tensor([1.0, 0.5, 0.5], dtype=torch.float64))
    z_default = ig.gon_latent(m, c, x)
    z_explicit = ig.gon_latent(m, c, x, steps=3, step_size=m.latent_step_sizes().detach())
    torch.testing.assert_close(z_default, z_explicit, rtol=0, atol=0)
    L, _ = ig.gon_loss(m, c, x)
    L.backward()
    assert m.log_step_size.grad is not None and bool((m.log_step_size.grad != 0).any())
    again = ig.LatentSiren(**m.config()).double()
    again.load_state_dict(m.state_dict())
    torch.testing.assert_close(ig.gon_latent(again, c, x), z_default)
    # a single-step model's configuration and state are those of inr_gon 0.1
    plain = ig.LatentSiren(2, 4, 1, 16, 2)
    assert set(plain.config()) == {
        "coord_dim",
        "latent_dim",
        "out_dim",
        "hidden_dim",
        "num_layers",
        "w0",
        "w0_first",
        "out_activation",
    }
    assert "log_step_size" not in plain.state_dict()


# -- Gauss–Newton steps ------------------------------------------------------------------------------
CURVATURE = {  # ℓ'' in the raw output, analytic (the explicit path differentiates the loss)
    "mse": lambda p, x: torch.full_like(p, 2.0),
    "l1": lambda p, x: torch.zeros_like(p),
    "bce": lambda p, x: torch.sigmoid(p) * (1 - torch.sigmoid(p)),
}


def naive_gauss_newton(m, coords, target, loss_fn, curv, K, lam, weight=1.0):
    """z_0 = 0, z_{t+1} = z_t - (λI + Σ_p w ℓ''(F_p) J_pᵀ J_p)⁻¹ ∇_z Σ_p w ℓ(F_p), sample by sample,
    with J from torch.autograd.functional.jacobian through the model's plain forward."""
    B, k = target.shape[0], m.latent_dim
    z = torch.zeros(B, k, dtype=target.dtype, requires_grad=True)
    for _ in range(K):
        rows = []
        for b in range(B):
            cb = coords if coords.dim() == 2 else coords[b]
            f = lambda zz: m(cb, zz[None])[0]  # (P, O)
            zb = z[b]
            Fb = f(zb)
            (g,) = torch.autograd.grad((loss_fn(Fb, target[b]) * weight).sum(), zb, create_graph=True)
            J = torch.autograd.functional.jacobian(f, zb, create_graph=True).reshape(-1, k)  # (P·O, k)
            h = (curv(Fb, target[b]) * weight).reshape(-1, 1)
            A = lam * torch.eye(k, dtype=target.dtype) + J.T @ (h * J)
            rows.append(zb - torch.linalg.solve(A, g))
        z = torch.stack(rows)
    return z


@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("loss", ["mse", "l1", "bce"])
@pytest.mark.parametrize(
    "O,K,lam,options", [(1, 1, 1.0, {}), (2, 1, 0.3, {}), (1, 2, 1.0, {}), (2, 2, 0.5, dict(latent_shifts=True))]
)
def test_gauss_newton_latents_and_gradients_equal_naive(shared, loss, O, K, lam, options):
    torch.manual_seed(0)
    m = ig.LatentSiren(2, 5, O, 16, 3, fused=False, **options).double()
    c = (torch.rand(13, 2) if shared else torch.rand(3, 13, 2)).double() * 2 - 1
    x = torch.rand(3, 13, O, dtype=torch.float64)
    w = 0.7
    z = ig.gon_latent(
        m, c, x, loss=loss, steps=K, gauss_newton=lam, integrator=ig.GridIntegrator(scale=w), create_graph=True
    )
    zn = naive_gauss_newton(m, c, x, LOSSES[loss], CURVATURE[loss], K, lam, weight=w)
    assert rel_err(z, zn) <= 1e-10
    params = list(m.parameters())
    L, Ln = LOSSES[loss](m(c, z), x).sum(), LOSSES[loss](m(c, zn), x).sum()
    for a_, b_ in zip(torch.autograd.grad(L, params), torch.autograd.grad(Ln, params)):
        assert rel_err(a_, b_) <= 1e-9
    z_inf = ig.gon_latent(m, c, x, loss=loss, steps=K, gauss_newton=lam, integrator=ig.GridIntegrator(scale=w))
    assert not z_inf.requires_grad and rel_err(z_inf, zn) <= 1e-10


def test_gauss_newton_step_minimises_the_damped_quadratic_model_and_tends_to_the_plain_step():
    m, c, x = make(2, 1, torch.float64, False)
    w = 0.5
    z = ig.gon_latent(m, c, x, gauss_newton=1.0, integrator=ig.GridIntegrator(scale=w))
    # the Gauss–Newton model of the inner integral plus ½‖z‖²: its gradient vanishes at the step
    z0 = torch.zeros_like(z)
    for b in range(z.shape[0]):
        f = lambda zz: m.forward_concat(c[b], zz[None])[0, :, 0]
        J = torch.autograd.functional.jacobian(f, z0[b])  # (P, k)
        r = f(z0[b]) - x[b, :, 0]
        model_grad = 2 * w * J.T @ (r + J @ z[b]) + z[b]
        assert model_grad.abs().max() < 1e-10
    # heavily damped, the step is the plain gradient step scaled by 1/λ
    torch.testing.assert_close(
        ig.gon_latent(m, c, x, gauss_newton=1e8) * 1e8, ig.gon_latent(m, c, x), rtol=1e-6, atol=1e-12
    )


def test_a_gauss_newton_model_encodes_with_it_and_rebuilds_from_its_config():
    torch.manual_seed(0)
    m = ig.LatentSiren(2, 4, 1, 16, 2, gauss_newton=0.5).double()
    assert m.config()["gauss_newton"] == 0.5 and "gauss_newton" not in ig.LatentSiren(2, 4, 1, 16, 2).config()
    c, x = torch.rand(10, 2, dtype=torch.float64), torch.rand(2, 10, 1, dtype=torch.float64)
    z = ig.gon_latent(m, c, x)
    torch.testing.assert_close(z, ig.gon_latent(m, c, x, gauss_newton=0.5), rtol=0, atol=0)
    assert rel_err(z, ig.gon_latent(ig.LatentSiren(2, 4, 1, 16, 2).double().requires_grad_(False), c, x)) > 0
    again = ig.LatentSiren(**m.config()).double()
    again.load_state_dict(m.state_dict())
    torch.testing.assert_close(ig.gon_latent(again, c, x), z)


def test_bad_gauss_newton_dampings_and_models():
    m, c, x = make(2, 1, torch.float64, True)
    for bad in (0.0, -1.0, True, "1"):
        with pytest.raises(ValueError, match="gauss_newton must be a damping > 0"):
            ig.gon_latent(m, c, x, gauss_newton=bad)
        with pytest.raises(ValueError, match="gauss_newton must be a damping > 0"):
            ig.LatentSiren(2, 4, 1, gauss_newton=bad)
    with pytest.raises(TypeError, match="gauss_newton needs the explicit"):
        ig.gon_latent(m, c, x, gauss_newton=1.0, method="autograd")


@pytest.mark.parametrize("loss", ["mse", "bce", "l1"])
def test_gauss_newton_shared_curvature_equals_the_per_sample_path(loss):
    """Shared points at the origin with a target-free curvature take one (k, k) solve for the
    batch; the same points given per sample take B solves: latents and parameter gradients agree."""
    torch.manual_seed(1)
    m = ig.LatentSiren(2, 6, 2, 16, 3, fused=False, latent_shifts=True).double()
    c = torch.rand(17, 2, dtype=torch.float64) * 2 - 1
    x = torch.rand(4, 17, 2, dtype=torch.float64)
    from inr_gon.core import gon as gon_mod

    assert gon_mod._shared_curvature(ig.get_loss(loss), torch.zeros(17, 2), None) is not None
    assert gon_mod._shared_curvature(ig.get_loss("clamped_l1"), torch.zeros(17, 2), None) is None
    kw = dict(loss=loss, gauss_newton=0.3, integrator=ig.GridIntegrator(scale=0.5), create_graph=True)
    z_shared = ig.gon_latent(m, c, x, **kw)
    z_each = ig.gon_latent(m, c.expand(4, -1, -1), x, **kw)
    assert rel_err(z_shared, z_each) <= 1e-12
    params = list(m.parameters())
    gs = torch.autograd.grad(LOSSES[loss](m(c, z_shared), x).sum(), params)
    ge = torch.autograd.grad(LOSSES[loss](m(c, z_each), x).sum(), params)
    for a_, b_ in zip(gs, ge):
        assert rel_err(a_, b_) <= 1e-10


# -- later steps on a subset of the points ------------------------------------------------------------
def naive_gauss_newton_step(m, coords, target, z, loss_fn, curv, lam, weight):
    """One step ``z - (λI + H)⁻¹ ∇`` from ``z (B, k)`` on the given points, sample by sample."""
    rows = []
    for b in range(target.shape[0]):
        cb = coords if coords.dim() == 2 else coords[b]
        f = lambda zz: m(cb, zz[None])[0]
        zb = z[b]
        Fb = f(zb)
        (g,) = torch.autograd.grad((loss_fn(Fb, target[b]) * weight).sum(), zb, create_graph=True)
        J = torch.autograd.functional.jacobian(f, zb, create_graph=True).reshape(-1, m.latent_dim)
        A = lam * torch.eye(m.latent_dim, dtype=target.dtype) + J.T @ (
            (curv(Fb, target[b]) * weight).reshape(-1, 1) * J
        )
        rows.append(zb - torch.linalg.solve(A, g))
    return torch.stack(rows)


@pytest.mark.parametrize("shared", [True, False])
def test_later_steps_on_a_subset_equal_naive_steps_on_that_subset(shared):
    """With ``later_fraction`` the first step takes every point and the second a random subset
    drawn from the generator, its weights scaled by P / m: the same as a naive Gauss–Newton step
    on those points, for the latents and the parameters' gradients."""
    torch.manual_seed(0)
    m = ig.LatentSiren(2, 5, 1, 16, 3, fused=False, latent_shifts=True).double()
    c = (torch.rand(20, 2) if shared else torch.rand(3, 20, 2)).double() * 2 - 1
    x = torch.rand(3, 20, 1, dtype=torch.float64)
    w, lam = 0.7, 0.4
    gen = torch.Generator().manual_seed(5)
    kw = dict(steps=2, gauss_newton=lam, integrator=ig.GridIntegrator(scale=w), create_graph=True)
    z = ig.gon_latent(m, c, x, later_fraction=0.25, generator=gen, **kw)
    idx = torch.randperm(20, generator=torch.Generator().manual_seed(5))[:5]
    z1 = naive_gauss_newton(m, c, x, LOSSES["mse"], CURVATURE["mse"], 1, lam, weight=w)
    zn = naive_gauss_newton_step(m, c[..., idx, :], x[:, idx], z1, LOSSES["mse"], CURVATURE["mse"], lam, w * 20 / 5)
    assert rel_err(z, zn) <= 1e-10
    assert rel_err(z, ig.gon_latent(m, c, x, **kw)) > 1e-3  # the subset changed the step
    params = list(m.parameters())
    for a_, b_ in zip(
        torch.autograd.grad((m(c, z) - x).pow(2).sum(), params),
        torch.autograd.grad((m(c, zn) - x).pow(2).sum(), params),
    ):
        assert rel_err(a_, b_) <= 1e-9


def test_later_plain_steps_on_a_subset_are_unbiased_and_inference_takes_every_point():
    """A plain later step is linear in the point sum, so its mean over many subsets is the step
    on every point; encoding (no graph) ignores the fraction and is deterministic."""
    m, c, x = make(2, 1, torch.float64, True, P=12)
    kw = dict(steps=2, step_size=0.5)
    full = ig.gon_latent(m, c, x, create_graph=True, **kw)
    gen = torch.Generator().manual_seed(0)
    draws = torch.stack(
        [
            ig.gon_latent(m, c, x, create_graph=True, later_fraction=0.25, generator=gen, **kw).detach()
            for _ in range(3000)
        ]
    )
    spread = draws.std(0).max() / 3000**0.5
    assert rel_err(draws[0], full) > 1e-2  # one draw differs from the full step ...
    assert (draws.mean(0) - full).abs().max() < 5 * spread  # ... their mean does not
    m.later_fraction = 0.25
    torch.testing.assert_close(ig.gon_latent(m, c, x, **kw), ig.gon_latent(m, c, x, later_fraction=1.0, **kw))


def test_a_later_fraction_model_rebuilds_from_its_config_and_bad_fractions_are_refused():
    m = ig.LatentSiren(2, 4, 1, 16, 2, latent_steps=2, later_fraction=0.5)
    assert m.config()["later_fraction"] == 0.5 and ig.LatentSiren(**m.config()).later_fraction == 0.5
    assert "later_fraction" not in ig.LatentSiren(2, 4, 1, 16, 2, later_fraction=1.0).config()
    _, c, x = make(2, 1, torch.float32, True)
    for bad in (0.0, 1.5, -0.1, True, "0.5"):
        with pytest.raises(ValueError, match="later_fraction must be in"):
            ig.gon_latent(ig.LatentSiren(2, 6, 1, 24, 3), c, x, later_fraction=bad)
    for bad in (0.0, 1.5, -0.1, True, "0.5"):
        with pytest.raises(ValueError, match="later_fraction must be in"):
            ig.LatentSiren(2, 4, 1, later_fraction=bad)


# -- encoding with more steps than training ---------------------------------------------------------
def test_encoding_with_more_steps_than_trained_equals_a_naive_gauss_newton_chain():
    """A model trained with one Gauss–Newton step, asked for three when encoding, takes three
    unit-size steps at its own damping: the naive per-sample chain (autograd Jacobians)."""
    torch.manual_seed(0)
    m = ig.LatentSiren(2, 5, 1, 16, 3, fused=False, gauss_newton=0.3).double()
    c = torch.rand(13, 2, dtype=torch.float64) * 2 - 1
    x = torch.rand(3, 13, 1, dtype=torch.float64)
    inner = ig.GridIntegrator(scale=0.7)
    z3 = ig.gon_latent(m, c, x, steps=3, integrator=inner)
    zn = naive_gauss_newton(m, c, x, LOSSES["mse"], CURVATURE["mse"], 3, 0.3, weight=0.7)
    assert not z3.requires_grad and rel_err(z3, zn) <= 1e-10
    assert rel_err(ig.gon_latent(m, c, x, integrator=inner), z3) > 1e-3  # the default: the trained single step


def test_step_sizes_of_more_steps_than_trained_repeat_the_last_trained_size():
    plain = ig.LatentSiren(2, 4, 1, 16, 2)
    assert plain.latent_step_sizes() == 1.0 and plain.latent_step_sizes(5) == 1.0
    fixed = ig.LatentSiren(2, 4, 1, 16, 2, latent_steps=2, step_size=0.5)
    assert fixed.latent_step_sizes(1) == 1.0
    torch.testing.assert_close(fixed.latent_step_sizes(4)[:, 0], torch.tensor([1.0, 0.5, 0.5, 0.5]))
    torch.manual_seed(0)
    learned = ig.LatentSiren(2, 4, 1, 16, 2, latent_steps=2, step_size=0.5, learn_step_size=True).double()
    with torch.no_grad():
        learned.log_step_size.normal_()
    a, a4, a1 = learned.latent_step_sizes(), learned.latent_step_sizes(4), learned.latent_step_sizes(1)
    assert a4.shape == (4, 4) and a1.shape == (1, 4)
    torch.testing.assert_close(a4[:2], a)
    torch.testing.assert_close(a4[2:], a[1:].expand(2, -1))
    torch.testing.assert_close(a1, a[:1])
    c, x = torch.rand(10, 2, dtype=torch.float64), torch.rand(2, 10, 1, dtype=torch.float64)
    torch.testing.assert_close(
        ig.gon_latent(learned, c, x, steps=4), ig.gon_latent(learned, c, x, steps=4, step_size=a4.detach())
    )
