import pytest
import torch

import inr_gon as ig


@pytest.mark.parametrize(
    "b",
    [
        torch.tensor([0.0, 2.0, 0.0]),  # orthogonal, other norm
        torch.tensor([1.0, 1e-9, 0.0]),  # near-parallel
        torch.tensor([-1.0, 0.0, 0.0]),  # anti-parallel
        torch.tensor([-3.0, 1e-12, 0.0]),  # nearly anti-parallel
        torch.zeros(3),  # zero vector
    ],
)
def test_slerp_safe_edge_cases(b):
    a = torch.tensor([1.0, 0.0, 0.0])
    p = ig.slerp_path(a, b, 9)
    assert torch.isfinite(p).all()
    torch.testing.assert_close(p[0], a)
    torch.testing.assert_close(p[-1], b)
    # norm interpolated linearly (zero vector: linear path)
    torch.testing.assert_close(p.norm(dim=-1), torch.linspace(1, b.norm().item(), 9), atol=1e-5, rtol=1e-5)


def test_slerp_is_on_the_great_circle():
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    mid = ig.slerp(a, b, 0.5)
    torch.testing.assert_close(mid, torch.tensor([2**-0.5, 2**-0.5]))
    # batched vectors and a vector of times
    A, Bv = torch.randn(4, 6), torch.randn(4, 6)
    out = ig.slerp(A, Bv, torch.tensor([0.0, 0.3, 1.0]))
    assert out.shape == (3, 4, 6)
    torch.testing.assert_close(out[0], A)
    torch.testing.assert_close(out[2], Bv)
    cos = lambda u, v: (u * v).sum(-1) / u.norm(dim=-1) / v.norm(dim=-1)
    ang = torch.arccos(cos(A, Bv))
    torch.testing.assert_close(torch.arccos(cos(A, out[1]).clamp(-1, 1)), 0.3 * ang, atol=1e-4, rtol=1e-4)


def test_gaussian_sampler_statistics():
    g = torch.Generator().manual_seed(0)
    L = torch.tensor([[1.0, 0, 0], [0.8, 0.5, 0], [-0.3, 0.2, 0.1]])
    data = torch.randn(20000, 3, generator=g) @ L.T + torch.tensor([1.0, -2.0, 0.5])
    s = ig.GaussianLatentSampler(data)
    x = s.sample(50000, generator=g)
    torch.testing.assert_close(x.mean(0), data.mean(0), atol=0.02, rtol=0)
    torch.testing.assert_close(torch.cov(x.T), torch.cov(data.T), atol=0.02, rtol=0.05)


def test_gaussian_sampler_rank_deficient_is_safe():
    data = torch.randn(4, 1) * torch.ones(1, 8)  # rank 1, N < k
    x = ig.GaussianLatentSampler(data).sample(10)
    assert x.shape == (10, 8) and torch.isfinite(x).all()
    with pytest.raises(ValueError, match="NaN"):
        ig.GaussianLatentSampler(torch.tensor([[0.0, float("nan")], [1.0, 2.0]]))
