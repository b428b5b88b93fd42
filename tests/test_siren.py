import math

import pytest
import torch

import inr_gon as ig


def test_official_mnist_model_parameter_count():
    assert sum(p.numel() for p in ig.LatentSiren(2, 32, 1, 256, 4).parameters()) == 206_593


@pytest.mark.parametrize("w0,w0_first", [(30.0, 30.0), (10.0, 60.0)])
def test_init_statistics_match_siren_bounds(w0, w0_first):
    torch.manual_seed(0)
    m = ig.LatentSiren(3, 61, 2, 512, 3, w0=w0, w0_first=w0_first)
    first = torch.cat([m.coord_weight, m.latent_weight], 1)
    b = 1 / 64  # fan_in n + k = 64
    assert first.abs().max() <= b and first.abs().max() > 0.99 * b
    # uniform on [-b, b]: variance b^2 / 3
    assert first.var().item() == pytest.approx(b * b / 3, rel=0.05)
    for lin in [h.linear for h in m.hidden] + [m.out]:
        bound = math.sqrt(6 / 512) / w0
        w = lin.weight
        assert w.abs().max() <= bound and w.abs().max() > 0.98 * bound
        # sample variance of n uniforms has relative s.d. sqrt(0.8 / n); allow 5 s.d.
        assert w.var().item() == pytest.approx(bound**2 / 3, rel=5 * math.sqrt(0.8 / w.numel()))
    assert m.hidden[0].w0 == w0 and m.w0_first == w0_first


def test_plain_siren_init_and_shapes():
    torch.manual_seed(0)
    s = ig.Siren(2, 3, 64, 3, out_activation="sigmoid")
    assert s.layers[0].linear.weight.abs().max() <= 1 / 2
    y = s(torch.rand(7, 5, 2))
    assert y.shape == (7, 5, 3) and (y > 0).all() and (y < 1).all()


@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("n,O", [(1, 1), (2, 3), (3, 1)])
def test_forward_equals_explicit_concat(shared, n, O):
    torch.manual_seed(1)
    m = ig.LatentSiren(n, 8, O, 32, 3).double()
    B, P = 4, 11
    c = torch.rand(P, n, dtype=torch.float64) if shared else torch.rand(B, P, n, dtype=torch.float64)
    z = torch.randn(B, 8, dtype=torch.float64)
    y = m(c, z)
    assert y.shape == (B, P, O)
    # independent reference: a Linear over c ⊕ z, then the sine stack, written out here
    cz = torch.cat([c.expand(B, P, n), z[:, None].expand(B, P, 8)], -1)
    w = torch.cat([m.coord_weight, m.latent_weight], 1)
    h = torch.sin(30.0 * (cz @ w.T + m.first_bias))
    for layer in m.hidden:
        h = torch.sin(30.0 * layer.linear(h))
    ref = m.out(h)
    torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(m.forward_concat(c, z), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shared", [True, False])
def test_separate_latent_frequency_scales_only_the_latent_columns(shared):
    torch.manual_seed(2)
    m = ig.LatentSiren(2, 8, 1, 32, 3, w0_first=90.0, w0_latent=20.0).double()
    B, P = 3, 10
    c = torch.rand(P, 2, dtype=torch.float64) if shared else torch.rand(B, P, 2, dtype=torch.float64)
    z = torch.randn(B, 8, dtype=torch.float64)
    h = torch.sin(90.0 * (c @ m.coord_weight.T + m.first_bias) + (20.0 * z @ m.latent_weight.T)[:, None])
    for layer in m.hidden:
        h = torch.sin(30.0 * layer.linear(h))
    torch.testing.assert_close(m(c, z), m.out(h), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(m.forward_concat(c, z), m.out(h), rtol=1e-12, atol=1e-12)
    assert (
        ig.LatentSiren(2, 8, 1, 32, 3).w0_latent == 30.0 and "w0_latent" not in ig.LatentSiren(2, 8, 1, 32, 3).config()
    )
    with pytest.raises(ValueError, match="w0_latent"):
        ig.LatentSiren(2, 8, 1, 32, 3, w0_latent=0)


@pytest.mark.parametrize("shared", [True, False])
def test_latent_shifts_forward_equals_written_out_modulated_siren(shared):
    torch.manual_seed(4)
    m = ig.LatentSiren(2, 8, 2, 32, 3, latent_shifts=True).double()
    assert m.shift_weight.shape == (2, 32, 8)
    B, P = 3, 10
    c = torch.rand(P, 2, dtype=torch.float64) if shared else torch.rand(B, P, 2, dtype=torch.float64)
    z = torch.randn(B, 8, dtype=torch.float64)
    h = torch.sin(30.0 * (c @ m.coord_weight.T + m.first_bias + (z @ m.latent_weight.T)[:, None]))
    for layer, M in zip(m.hidden, m.shift_weight):
        h = torch.sin(30.0 * (layer.linear(h) + (z @ M.T)[:, None]))
    torch.testing.assert_close(m(c, z), m.out(h), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(m.forward_concat(c, z), m.out(h), rtol=1e-12, atol=1e-12)
    # the same network at the origin as without shifts (the fast path's premise)
    plain = ig.LatentSiren(2, 8, 2, 32, 3).double()
    plain.load_state_dict({k: v for k, v in m.state_dict().items() if k != "shift_weight"})
    z0 = torch.zeros(B, 8, dtype=torch.float64)
    torch.testing.assert_close(m(c, z0), plain(c, z0), rtol=0, atol=0)


def test_config_rebuilds_model():
    m = ig.LatentSiren(2, 16, 3, 64, 2, w0=20.0, w0_latent=7.0, latent_shifts=True, out_activation="sigmoid")
    m2 = ig.LatentSiren(**m.config())
    m2.load_state_dict(m.state_dict())
    c, z = torch.rand(9, 2), torch.randn(2, 16)
    torch.testing.assert_close(m(c, z), m2(c, z))


@pytest.mark.parametrize(
    "coords,z,match",
    [
        (torch.rand(5, 3), torch.zeros(2, 4), "coords must have shape"),
        (torch.rand(5, 2), torch.zeros(2, 5), "z must have shape"),
        (torch.rand(3, 5, 2), torch.zeros(2, 4), "batch"),
        (torch.rand(5, 2).long(), torch.zeros(2, 4), "floating-point"),
    ],
)
def test_bad_inputs_raise_clear_errors(coords, z, match):
    m = ig.LatentSiren(2, 4, 1, 8, 1)
    with pytest.raises((ValueError, TypeError), match=match):
        m(coords, z)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="num_layers"):
        ig.LatentSiren(2, 4, 1, 8, 0)
    with pytest.raises(ValueError, match="out_activation"):
        ig.LatentSiren(2, 4, 1, 8, 1, out_activation="softplusss")


# -- the fused (buffer-reusing) backward of the sine stack -------------------------------------
from inr_gon.nn.fused import _FusedSineTrunk, _sine_trunk  # noqa: E402


def _trunk_inputs(L, O, N=13, H=7, seed=0):
    """Random ``u1 (N, H)`` and ``[W_2, b_2, ..., W_out, b_out]`` in float64, all requiring grad."""
    g = torch.Generator().manual_seed(seed)
    u1 = torch.randn(N, H, generator=g, dtype=torch.float64)
    params = []
    for _ in range(L - 1):
        params += [
            torch.randn(H, H, generator=g, dtype=torch.float64),
            torch.randn(H, generator=g, dtype=torch.float64),
        ]
    params += [torch.randn(O, H, generator=g, dtype=torch.float64), torch.randn(O, generator=g, dtype=torch.float64)]
    return [t.requires_grad_() for t in [u1, *params]]


@pytest.mark.parametrize("L,O", [(1, 1), (1, 3), (2, 1), (4, 1), (3, 3)])
def test_fused_trunk_gradients_equal_plain_autograd(L, O):
    inputs = _trunk_inputs(L, O)
    u1_before = inputs[0].detach().clone()
    g = torch.randn(13, O, dtype=torch.float64)
    out = _FusedSineTrunk.apply(inputs[0], None, *inputs[1:])
    ref, _ = _sine_trunk(inputs[0], inputs[1:])
    torch.testing.assert_close(out, ref, rtol=1e-13, atol=1e-13)
    got = torch.autograd.grad(out, inputs, g)  # the in-place fast path
    want = torch.autograd.grad(ref, inputs, g)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(inputs[0].detach(), u1_before, rtol=0, atol=0)  # input untouched


def test_fused_trunk_second_and_double_backward_recompute():
    inputs = _trunk_inputs(3, 2)
    g = torch.randn(13, 2, dtype=torch.float64)
    out = _FusedSineTrunk.apply(inputs[0], None, *inputs[1:])
    ref, _ = _sine_trunk(inputs[0], inputs[1:])
    first = torch.autograd.grad(out, inputs, g, retain_graph=True)
    second = torch.autograd.grad(out, inputs, g)  # buffers consumed: recompute
    want = torch.autograd.grad(ref, inputs, g, retain_graph=True)
    for a, b, c in zip(first, second, want):
        torch.testing.assert_close(a, c, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(b, c, rtol=1e-12, atol=1e-12)
    # create_graph: a gradient penalty differentiated again
    out = _FusedSineTrunk.apply(inputs[0], None, *inputs[1:])
    (gu,) = torch.autograd.grad(out, inputs[0], g, create_graph=True)
    (gu_ref,) = torch.autograd.grad(ref, inputs[0], g, create_graph=True)
    opts = dict(allow_unused=True, materialize_grads=True)  # b_out does not enter ∂F/∂u1
    hess = torch.autograd.grad(gu.square().sum(), inputs, **opts)
    hess_ref = torch.autograd.grad(gu_ref.square().sum(), inputs, **opts)
    for a, b in zip(hess, hess_ref):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_fused_trunk_gradcheck_and_gradgradcheck():
    inputs = _trunk_inputs(2, 2, N=5, H=4, seed=3)
    fn = lambda u1, *params: _FusedSineTrunk.apply(u1, None, *params)
    assert torch.autograd.gradcheck(fn, inputs)
    assert torch.autograd.gradgradcheck(fn, inputs)


@pytest.mark.parametrize("L,O", [(2, 1), (4, 3)])
def test_fused_trunk_with_shifts_equals_plain_autograd(L, O):
    """Per-sample shifts of the hidden pre-activations (``latent_shifts``): the fused backward
    gives the shifts' gradients (sums over each sample's points) and the same others."""
    B, P, H = 3, 5, 7
    inputs = _trunk_inputs(L, O, N=B * P, H=H)
    shifts = torch.randn(B, L - 1, H, dtype=torch.float64, requires_grad=True)
    g = torch.randn(B * P, O, dtype=torch.float64)
    out = _FusedSineTrunk.apply(inputs[0], shifts, *inputs[1:])
    ref, _ = _sine_trunk(inputs[0].view(B, P, H), inputs[1:], shifts)
    # an independent reference: the shift of sample b added to its rows
    h = torch.sin(inputs[0])
    for l in range(L - 1):
        h = torch.sin(h @ inputs[1 + 2 * l].T + inputs[2 + 2 * l] + shifts[:, l].repeat_interleave(P, 0))
    torch.testing.assert_close(out, h @ inputs[-2].T + inputs[-1], rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(out, ref.reshape(B * P, O), rtol=1e-13, atol=1e-13)
    want = torch.autograd.grad(ref.reshape(B * P, O), [*inputs, shifts], g, retain_graph=True)
    got = torch.autograd.grad(out, [*inputs, shifts], g, retain_graph=True)  # in-place path
    again = torch.autograd.grad(out, [*inputs, shifts], g)  # recomputed
    for a, b, c in zip(got, again, want):
        torch.testing.assert_close(a, c, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(b, c, rtol=1e-12, atol=1e-12)
    small = _trunk_inputs(2, 1, N=4, H=3, seed=5)
    s2 = torch.randn(2, 1, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda u1, s, *p: _FusedSineTrunk.apply(u1, s, *p), [small[0], s2, *small[1:]])


@pytest.mark.parametrize("shifts", [False, True])
@pytest.mark.parametrize("coords_grad", [False, True])
def test_fused_model_equals_unfused_model(coords_grad, shifts):
    torch.manual_seed(0)
    m = ig.LatentSiren(2, 6, 1, 16, 3, latent_shifts=shifts).double()
    plain = ig.LatentSiren(2, 6, 1, 16, 3, fused=False, latent_shifts=shifts).double()
    plain.load_state_dict(m.state_dict())
    c = torch.rand(3, 11, 2, dtype=torch.float64, requires_grad=coords_grad)
    x = torch.rand(3, 11, 1, dtype=torch.float64)
    grads = []
    for model in (m, plain):
        loss, _ = ig.gon_loss(model, c, x)
        if coords_grad:  # an eikonal-style term: ∇_c F differentiated again
            (gc,) = torch.autograd.grad(model(c, torch.zeros(3, 6, dtype=torch.float64)).sum(), c, create_graph=True)
            loss = loss + gc.norm(dim=-1).sub(1).square().mean()
        grads.append(torch.autograd.grad(loss, list(model.parameters())))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-11)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_fused_backward_on_cuda_equals_plain_autograd(dtype, tol):
    torch.manual_seed(0)
    m = ig.LatentSiren(2, 8, 3, 64, 4).to("cuda", dtype)
    plain = ig.LatentSiren(2, 8, 3, 64, 4, fused=False).to("cuda", dtype)
    plain.load_state_dict(m.state_dict())
    c = ig.grid(12, dim=2, device="cuda", dtype=dtype)
    x = torch.rand(5, 144, 3, device="cuda", dtype=dtype)
    grads = []
    for model in (m, plain):
        loss, _ = ig.gon_loss(model, c, x)
        grads.append(torch.autograd.grad(loss, list(model.parameters())))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol * b.abs().max().item())
