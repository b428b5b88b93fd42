"""Property tests (hypothesis) over the public API: random sizes and options either work and
give the documented shapes and invariants, or fail with the documented ValueError/TypeError."""

from __future__ import annotations

import math
import warnings

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inr_gon import (
    ContinuousIntegrator,
    GridIntegrator,
    LatentSiren,
    MonteCarloIntegrator,
    extract_mesh,
    gon_latent,
    gon_loss,
    grid,
    image_to_points,
    points_to_image,
    render,
)
from inr_gon.core.coords import axis_coordinates, normalize_resolution

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOWER = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DOCUMENTED = (ValueError, TypeError)

sizes = st.lists(st.integers(1, 6), min_size=1, max_size=3)
finite = st.floats(-5, 5, allow_nan=False, allow_infinity=False)


@st.composite
def bounds_pair(draw):
    lo = draw(finite)
    return lo, lo + draw(st.floats(0.01, 5))


# -- coordinate grids -------------------------------------------------------------------------
@FAST
@given(res=sizes, b=bounds_pair(), align=st.booleans())
def test_grid_shape_bounds_order(res, b, align):
    lo, hi = b
    g = grid(tuple(res), bounds=b, align_corners=align, dtype=torch.float64)
    n = len(res)
    assert g.shape == (math.prod(res), n)
    assert bool((g >= lo - 1e-12).all()) and bool((g <= hi + 1e-12).all())
    cube = g.reshape(*res, n)
    for a, r in enumerate(res):
        axis = cube.select(-1, a).movedim(a, 0).reshape(r, -1)[:, 0]  # C order, "ij"
        assert torch.equal(axis, axis_coordinates(r, lo, hi, align_corners=align, dtype=torch.float64))
        if r > 1:
            assert bool((axis.diff() > 0).all())  # strictly increasing
            step = (hi - lo) / ((r - 1) if align else r)
            assert torch.allclose(axis.diff(), torch.full((r - 1,), step, dtype=torch.float64))
        # symmetric about the centre of the box; endpoints at the corners or half a cell inside
        assert math.isclose(float(axis[0] + axis[-1]), lo + hi, abs_tol=1e-9)
        if align and r > 1:
            assert math.isclose(float(axis[0]), lo, abs_tol=1e-9) and math.isclose(float(axis[-1]), hi, abs_tol=1e-9)
        elif not align:
            assert math.isclose(float(axis[0]), lo + (hi - lo) / (2 * r), abs_tol=1e-9)


@FAST
@given(res=sizes, b=st.integers(1, 3), c=st.integers(1, 3))
def test_image_points_round_trip(res, b, c):
    img = torch.randn(b, c, *res)
    pts = image_to_points(img)
    assert pts.shape == (b, math.prod(res), c)
    assert torch.equal(points_to_image(pts, res), img)


@FAST
@given(
    value=st.one_of(
        st.integers(-3, 0),
        st.floats(allow_nan=True),
        st.none(),
        st.text(max_size=3),
        st.booleans(),
        st.lists(st.integers(-2, 4), max_size=4),
        st.lists(st.floats(-2, 4), min_size=1, max_size=3),
    ),
    dim=st.one_of(st.none(), st.integers(1, 3)),
)
def test_normalize_resolution_only_documented_errors(value, dim):
    try:
        res = normalize_resolution(value, dim)
    except DOCUMENTED:
        return
    assert all(isinstance(r, int) and r >= 1 for r in res) and len(res) >= 1
    assert dim is None or len(res) == dim


# -- integrators ------------------------------------------------------------------------------
@FAST
@given(
    P=st.integers(1, 60),
    B=st.integers(1, 4),
    O=st.integers(1, 3),
    n=st.integers(1, 3),
    frac=st.floats(0.001, 1.0),
    scale=st.floats(0.01, 10),
    per_sample=st.booleans(),
    shared=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_monte_carlo_integrator_weights_and_shapes(P, B, O, n, frac, scale, per_sample, shared, seed):
    coords = torch.randn(P, n) if shared else torch.randn(B, P, n)
    target = torch.randn(B, P, O)
    integ = MonteCarloIntegrator(fraction=frac, scale=scale, per_sample=per_sample)
    c, t, w = integ.select(coords, target, generator=torch.Generator().manual_seed(seed))
    m = max(1, round(frac * P))
    assert t.shape == (B, m, O)
    assert c.shape == ((B, m, n) if per_sample or not shared else (m, n))
    assert math.isclose(w * m, scale * P, rel_tol=1e-9)  # inclusion probability m/P: unbiased
    # the selected targets are the rows of the selected points, all distinct
    full = coords if coords.dim() == 3 else coords.expand(B, -1, -1)
    cb = c if c.dim() == 3 else c.expand(B, -1, -1)
    for i in range(B):
        rows = [int(((full[i] == cb[i, j]).all(-1)).nonzero()[0]) for j in range(m)]
        assert len(set(rows)) == m or coords.unique(dim=-2).shape[-2] < P
        assert torch.equal(t[i], target[i, rows])
    g = GridIntegrator(scale=scale).select(coords, target)
    assert g[0] is coords and g[1] is target and g[2] == scale


@FAST
@given(
    res=st.lists(st.integers(2, 6), min_size=2, max_size=3),
    B=st.integers(1, 3),
    O=st.integers(1, 2),
    frac=st.floats(0.05, 1.0),
    stratified=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_continuous_integrator_shapes_and_convexity(res, B, O, frac, stratified, seed):
    P = math.prod(res)
    target = torch.rand(B, P, O)
    integ = ContinuousIntegrator(fraction=frac, resolution=tuple(res), stratified=stratified)
    c, t, w = integ.select(grid(tuple(res)), target, generator=torch.Generator().manual_seed(seed))
    m = max(1, round(frac * P))
    assert c.shape == (B, m, len(res)) and t.shape == (B, m, O)
    assert bool((c.abs() <= 1 + 1e-6).all())
    assert math.isclose(w * m, P, rel_tol=1e-9)
    # linear interpolation: values stay within each sample's range
    assert bool((t >= target.amin(1, keepdim=True) - 1e-6).all() and (t <= target.amax(1, keepdim=True) + 1e-6).all())


@FAST
@given(
    kw=st.fixed_dictionaries(
        {}, optional={"num_points": st.integers(-3, 5), "fraction": st.floats(-1, 2), "scale": st.floats(0.1, 2)}
    )
)
def test_monte_carlo_integrator_options_only_documented_errors(kw):
    try:
        integ = MonteCarloIntegrator(**kw)
    except DOCUMENTED:
        return
    c, t, w = integ.select(torch.randn(7, 2), torch.randn(2, 7, 1))
    assert t.shape[1] == c.shape[0] >= 1 and w > 0


# -- latents and losses for random model sizes --------------------------------------------------
models = st.fixed_dictionaries(
    {
        "coord_dim": st.integers(1, 3),
        "latent_dim": st.integers(1, 5),
        "out_dim": st.integers(1, 3),
        "hidden_dim": st.integers(1, 8),
        "num_layers": st.integers(1, 3),
    }
)


@SLOWER
@given(
    cfg=models,
    B=st.integers(1, 3),
    P=st.integers(1, 12),
    per_sample=st.booleans(),
    loss=st.sampled_from(["mse", "l1", "bce", "clamped_l1"]),
    seed=st.integers(0, 1000),
)
def test_latent_and_loss_shapes_for_random_models(cfg, B, P, per_sample, loss, seed):
    torch.manual_seed(seed)
    m = LatentSiren(**cfg, w0=3.0, w0_first=3.0).double()
    coords = torch.rand(B, P, cfg["coord_dim"]) if per_sample else torch.rand(P, cfg["coord_dim"])
    coords = coords.double() * 2 - 1
    target = torch.rand(B, P, cfg["out_dim"], dtype=torch.float64)
    z = gon_latent(m, coords, target, loss=loss)
    assert z.shape == (B, cfg["latent_dim"]) and bool(torch.isfinite(z).all()) and not z.requires_grad
    z_ref = gon_latent(m, coords, target, loss=loss, method="autograd")  # explicit path == autograd
    assert torch.allclose(z, z_ref, atol=1e-9, rtol=1e-7)
    out, z2 = gon_loss(m, coords, target, inner_loss=loss)
    assert out.shape == () and bool(torch.isfinite(out)) and out.requires_grad
    assert torch.allclose(z2.detach(), z, atol=1e-9, rtol=1e-7)
    out.backward()
    assert all(p.grad is not None and bool(torch.isfinite(p.grad).all()) for p in m.parameters())
    assert m(coords, z).shape == (B, P, cfg["out_dim"])


@SLOWER
@given(
    B=st.integers(1, 2),
    P=st.integers(1, 6),
    zdim=st.integers(0, 3),
    cdim=st.integers(0, 4),
    odim=st.integers(0, 3),
    tdim=st.integers(1, 4),
    dtype=st.sampled_from([torch.float32, torch.int64]),
)
def test_latent_wrong_shapes_only_documented_errors(B, P, zdim, cdim, odim, tdim, dtype):
    m = LatentSiren(2, 3, 1, 4, 1)
    coords = torch.rand(*([B] if cdim == 4 else []), P, max(cdim, 1) if cdim != 4 else 2)
    target = torch.rand(*[B, P, max(odim, 1)][:tdim] if tdim <= 3 else (B, P, 1, 1)).to(dtype)
    try:
        z = gon_latent(m, coords, target)
    except DOCUMENTED:
        return
    assert z.shape == (B, 3)


# -- render options -----------------------------------------------------------------------------
@SLOWER
@given(
    n=st.integers(1, 3),
    B=st.integers(1, 3),
    O=st.integers(1, 2),
    res=st.lists(st.integers(1, 7), min_size=3, max_size=3),
    chunk=st.integers(1, 200),
    align=st.booleans(),
    b=bounds_pair(),
    seed=st.integers(0, 1000),
)
def test_render_shapes_and_chunk_invariance(n, B, O, res, chunk, align, b, seed):
    torch.manual_seed(seed)
    m = LatentSiren(n, 2, O, 6, 2, w0=5.0, w0_first=5.0)
    z = torch.randn(B, 2)
    res = tuple(res[:n])
    img = render(m, z, res, bounds=b, align_corners=align, chunk_size=chunk)
    assert img.shape == (B, O, *res)
    ref = render(m, z, res, bounds=b, align_corners=align, chunk_size=10**6)
    assert torch.allclose(img, ref, atol=1e-6)  # chunking never changes the result
    same = render(m, z, res, bounds=b, window=b, align_corners=align)
    assert torch.allclose(same, ref, atol=1e-6)  # window == bounds is the full render
    pts = m(grid(res, bounds=b, align_corners=align), z)  # the render is the model on the grid
    assert torch.allclose(points_to_image(pts, res), ref, atol=1e-5)


@SLOWER
@given(
    resolution=st.one_of(st.integers(-2, 5), st.lists(st.integers(-1, 4), max_size=3), st.floats(0, 3), st.none()),
    chunk=st.integers(-2, 50),
    window=st.one_of(st.none(), st.tuples(finite, finite)),
    z=st.sampled_from(["ok", "1d", "wrong_k", "int", "list"]),
)
def test_render_options_only_documented_errors(resolution, chunk, window, z):
    m = LatentSiren(2, 2, 1, 4, 1)
    zs = {
        "ok": torch.zeros(1, 2),
        "1d": torch.zeros(2),
        "wrong_k": torch.zeros(1, 3),
        "int": torch.zeros(1, 2, dtype=torch.long),
        "list": [[0.0, 0.0]],
    }[z]
    try:
        img = render(m, zs, resolution, window=window, chunk_size=chunk)
    except DOCUMENTED:
        return
    assert z == "ok" and chunk >= 1
    assert img.shape[:2] == (1, 1) and img.dim() == 4


# -- mesh options -----------------------------------------------------------------------------
@SLOWER
@given(
    resolution=st.integers(2, 14),
    chunk=st.integers(1, 3000),
    radius=st.floats(0.05, 1.5),
    center=st.tuples(*[st.floats(-0.5, 0.5)] * 3),
    stride=st.sampled_from([None, 1, 2, 4, 8]),
)
def test_mesh_coarse_to_fine_equals_dense(resolution, chunk, radius, center, stride):
    c = torch.tensor(center)
    sdf = lambda p: (p - c.to(p.dtype)).norm(dim=-1) - radius  # noqa: E731 (exact, 1-Lipschitz)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # empty meshes warn (documented)
        dense = extract_mesh(sdf, resolution, chunk_size=chunk)
        fine = extract_mesh(sdf, resolution, method="coarse_to_fine", chunk_size=chunk, coarse_stride=stride)
    assert dense.vertices.shape == fine.vertices.shape and dense.faces.shape == fine.faces.shape
    if len(dense.faces):
        assert torch.allclose(torch.as_tensor(dense.vertices), torch.as_tensor(fine.vertices), atol=1e-6)
        assert bool((abs(dense.vertices) <= 1 + 1e-9).all())


@SLOWER
@given(
    resolution=st.one_of(st.integers(-1, 6), st.floats(0, 5), st.booleans()),
    chunk=st.integers(-1, 100),
    method=st.sampled_from(["dense", "coarse_to_fine", "octree"]),
    lo=finite,
    width=st.floats(-1, 3),
    level=st.floats(-1, 1),
    lipschitz=st.floats(-1, 3),
    stride=st.sampled_from([None, 0, 1, 2, 3, 4]),
)
def test_mesh_options_only_documented_errors(resolution, chunk, method, lo, width, level, lipschitz, stride):
    sdf = lambda p: p.norm(dim=-1) - 0.5  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        try:
            mesh = extract_mesh(
                sdf,
                resolution,
                (lo, lo + width),
                method=method,
                chunk_size=chunk,
                level=level,
                lipschitz=lipschitz,
                coarse_stride=stride,
            )
        except DOCUMENTED:
            return
    assert mesh.vertices.ndim == 2 and (len(mesh.vertices) == 0 or mesh.vertices.shape[1] == 3)
