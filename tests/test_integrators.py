import math

import pytest
import torch

import inr_gon as ig


def values(B=2, P=400, O=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(B, P, O, generator=g, dtype=torch.float64) ** 3


def mc_estimates(integrator, v, draws, seed=0):
    g = torch.Generator().manual_seed(seed)
    coords = ig.grid((20, 20), dtype=torch.float64)
    out = []
    for _ in range(draws):
        c, t, w = integrator.select(coords, v, generator=g)
        out.append(ig.integrate(t, w))
    return torch.stack(out)  # (draws, B)


def test_grid_integrator_is_the_sum():
    v = values()
    c, t, w = ig.GridIntegrator().select(ig.grid((20, 20)), v)
    torch.testing.assert_close(ig.integrate(t, w), v.sum((1, 2)))
    c, t, w = ig.GridIntegrator(scale=4 / 400).select(ig.grid((20, 20)), v)
    torch.testing.assert_close(ig.integrate(t, w), v.sum((1, 2)) * 0.01)


@pytest.mark.parametrize("per_sample", [False, True])
def test_mc_integrator_unbiased_and_variance_shrinks_like_one_over_sqrt_m(per_sample):
    v = values()
    full = v.sum((1, 2))
    sds = {}
    for m in (25, 100):
        est = mc_estimates(ig.MonteCarloIntegrator(num_points=m, per_sample=per_sample), v, 3000)
        se = est.std(0) / math.sqrt(est.shape[0])
        assert ((est.mean(0) - full).abs() <= 5 * se).all()
        sds[m] = est.std(0)
    # sampling without replacement: sd ∝ sqrt((P - m) / (P - 1) / m); check the ratio
    fpc = lambda m: math.sqrt((400 - m) / m)
    ratio = sds[25] / sds[100]
    assert torch.allclose(ratio, torch.full_like(ratio, fpc(25) / fpc(100)), rtol=0.12)


def test_mc_fraction_one_is_exact():
    v = values()
    est = mc_estimates(ig.MonteCarloIntegrator(fraction=1.0), v, 3)
    torch.testing.assert_close(est, v.sum((1, 2)).expand(3, -1))


def test_mc_per_sample_returns_per_sample_coords():
    v = values(B=3)
    c, t, w = ig.MonteCarloIntegrator(num_points=10, per_sample=True).select(
        ig.grid((20, 20), dtype=torch.float64), v, generator=torch.Generator().manual_seed(0)
    )
    assert c.shape == (3, 10, 2) and t.shape == (3, 10, 2) and w == 40
    # targets still belong to their coordinates
    g = ig.grid((20, 20), dtype=torch.float64)
    for b in range(3):
        for j in range(10):
            p = ((g - c[b, j]).abs().sum(1) == 0).nonzero().item()
            assert torch.equal(t[b, j], v[b, p])


def test_continuous_integrator_unbiased_for_linear_field():
    # a field linear in the coordinates: interpolation is exact, ∫ over [-1,1]² of (a + b·c)
    g = ig.grid((16, 16), dtype=torch.float64)
    f = (1.5 + 0.7 * g[:, 0] - 0.3 * g[:, 1]).reshape(1, 256, 1)
    full = f.sum()
    for stratified in (True, False):
        integ = ig.ContinuousIntegrator(num_points=32, resolution=(16, 16), stratified=stratified)
        gen = torch.Generator().manual_seed(0)
        est = torch.stack([ig.integrate(*integ.select(g, f, generator=gen)[1:]) for _ in range(2000)])
        se = est.std() / math.sqrt(2000)
        # border padding makes the outer half-cells constant; the linear field's mean is unchanged
        assert abs(est.mean() - full) <= 5 * se + 1e-9


@pytest.mark.parametrize(
    "kw", [dict(fraction=0.0), dict(fraction=1.5), dict(num_points=0), dict(), dict(num_points=3, fraction=0.5)]
)
def test_bad_mc_options(kw):
    with pytest.raises(ValueError):
        ig.MonteCarloIntegrator(**kw)


def test_stratified_integrator_is_unbiased_and_covers_every_block():
    res = (8, 6)
    integ = ig.StratifiedIntegrator(res, block=2, scale=0.5)
    c = ig.grid(res)
    x = torch.rand(3, 48, 1, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    est = torch.zeros(3, dtype=torch.float64)
    n = 4000
    for _ in range(n):
        cc, t, w = integ.select(c, x, generator=g)
        assert cc.shape == (12, 2) and t.shape == (3, 12, 1) and w == 0.5 * 4
        blocks = {(int((p[0] + 1) / 2 * 8) // 2, int((p[1] + 1) / 2 * 6) // 2) for p in cc}
        assert len(blocks) == 12  # one point in every 2×2 block
        est += ig.integrate(t, w)
    exact = 0.5 * x.sum(dim=(1, 2))
    torch.testing.assert_close(est / n, exact, rtol=0.02, atol=0)
    with pytest.raises(ValueError, match="multiple of block"):
        ig.StratifiedIntegrator((7, 6), block=2)
