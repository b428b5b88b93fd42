"""Analytic SDFs against closed forms, CSG semantics and the procedural shape family."""

import math

import pytest
import torch
from hypothesis import given, settings, strategies as st

from inr_gon import shapes as S


def _points(n=500, seed=0, scale=1.5):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 3, generator=g, dtype=torch.float64) * 2 - 1) * scale


def test_sphere_exact():
    p = _points()
    c = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)
    d = S.Sphere(c.tolist(), 0.4)(p)
    assert d.shape == (500,)
    torch.testing.assert_close(d, (p - c).norm(dim=1) - 0.4)


def test_box_known_points():
    box = S.Box((0.5, 0.25, 1.0))
    p = torch.tensor(
        [
            [0.0, 0.0, 0.0],  # centre: -(smallest half extent)
            [1.5, 0.0, 0.0],  # face distance
            [1.5, 1.25, 0.0],  # edge: sqrt(1 + 1)
            [1.5, 1.25, 3.0],  # corner: sqrt(1 + 1 + 4)
            [0.4, 0.0, 0.0],
        ]
    )  # inside near the x face
    torch.testing.assert_close(box(p), torch.tensor([-0.25, 1.0, math.sqrt(2), math.sqrt(6), -0.1]))


def test_rounded_box_and_cylinder_and_capsule():
    rb = S.RoundedBox(0.5, 0.1)
    torch.testing.assert_close(rb(torch.tensor([[1.0, 0.0, 0.0]])), torch.tensor([0.5]))
    corner = 0.4 + 0.5 / math.sqrt(3) * torch.ones(1, 3)  # along the diagonal from the inner corner
    torch.testing.assert_close(rb(corner), torch.tensor([0.5 - 0.1]), atol=1e-6, rtol=0)
    cyl = S.Cylinder(radius=0.3, half_height=0.5)
    p = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 2.0], [1.3, 0.0, 1.5]])
    torch.testing.assert_close(cyl(p), torch.tensor([-0.3, 0.7, 1.5, math.sqrt(2)]))
    cap = S.Capsule((0, 0, -0.5), (0, 0, 0.5), 0.2)
    p = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.5], [0.0, 0.0, 0.0]])
    torch.testing.assert_close(cap(p), torch.tensor([0.8, 0.8, -0.2]))


def test_torus_closed_form():
    p = _points()
    R, r = 0.6, 0.2
    d = S.Torus(R, r)(p)
    expected = torch.sqrt((p[:, :2].norm(dim=1) - R) ** 2 + p[:, 2] ** 2) - r
    torch.testing.assert_close(d, expected)
    torch.testing.assert_close(
        S.Torus(R, r)(torch.tensor([[0.6, 0.0, 0.0], [0.0, 0.0, 0.0]])),
        torch.tensor([-0.2, math.sqrt(0.36) - 0.2]),
    )


def test_csg_semantics():
    p = _points()
    a, b = S.Sphere((0.2, 0, 0), 0.5), S.Box(0.4)
    da, db = a(p), b(p)
    torch.testing.assert_close((a | b)(p), torch.minimum(da, db))
    torch.testing.assert_close((a & b)(p), torch.maximum(da, db))
    torch.testing.assert_close((a - b)(p), torch.maximum(da, -db))
    smooth = S.SmoothUnion(a, b, k=0.2)(p)
    assert torch.all(smooth <= torch.minimum(da, db) + 1e-12)
    assert torch.all(smooth >= torch.minimum(da, db) - 0.2 / 4 - 1e-12)
    far = (da - db).abs() > 0.2  # outside the blend region it equals the min
    torch.testing.assert_close(smooth[far], torch.minimum(da, db)[far])


def test_transforms():
    p = _points()
    s = S.Sphere(0.0, 0.3)
    torch.testing.assert_close(s.translate((0.1, 0.2, 0.3))(p), S.Sphere((0.1, 0.2, 0.3), 0.3)(p))
    torch.testing.assert_close(s.scale(2.0)(p), S.Sphere(0.0, 0.6)(p))
    rot = S.random_rotation(torch.Generator().manual_seed(3))
    box = S.Box((0.5, 0.2, 0.1))
    torch.testing.assert_close(box.rotate(rot)(p @ torch.from_numpy(rot).T), box(p))


def test_input_validation():
    with pytest.raises(ValueError, match="shape"):
        S.Sphere()(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="radius"):
        S.Sphere(0.0, -1.0)
    with pytest.raises(ValueError, match="smaller"):
        S.Torus(0.2, 0.3)


def test_device_and_dtype_follow_points():
    p = _points().float()
    assert S.Torus()(p).dtype == torch.float32
    assert S.Torus()(p.double()).dtype == torch.float64


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000))
def test_procedural_shapes_lipschitz_and_bounded(seed):
    shape = S.random_shape(torch.Generator().manual_seed(seed))
    lo, hi = shape.aabb()
    assert min(lo) >= -0.9 and max(hi) <= 0.9
    # Lipschitz 1: |f(x) - f(y)| <= |x - y|
    x = _points(300, seed, 1.0)
    y = x + 0.05 * _points(300, seed + 1, 1.0)
    assert torch.all((shape(x) - shape(y)).abs() <= (x - y).norm(dim=1) + 1e-9)
    # negative somewhere, positive near the boundary of [-0.9, 0.9]^3
    faces = torch.cat([_points(200, seed, 1.0)[:, :2], torch.full((200, 1), 0.9, dtype=torch.float64)], 1)
    assert torch.all(shape(faces) > 0)
    assert torch.any(shape(_points(4000, seed, 0.9)) < 0)


def test_procedural_family_is_deterministic():
    fam = S.ProceduralShapes(5, seed=7)
    assert len(fam) == 5
    p = _points(100)
    torch.testing.assert_close(fam[3](p), S.ProceduralShapes(10, seed=7)[3](p))
    assert not torch.allclose(fam[3](p), S.ProceduralShapes(5, seed=8)[3](p))
    with pytest.raises(IndexError):
        fam[5]


def test_sample_uniform():
    pts, sdf = S.sample_uniform(S.Sphere(0, 0.5), 1000, generator=torch.Generator().manual_seed(0))
    assert pts.shape == (1000, 3) and sdf.shape == (1000,)
    assert pts.abs().max() <= 1
    torch.testing.assert_close(sdf, pts.norm(dim=1) - 0.5)


def test_interior_check_equals_the_whole_grid():
    """The early-exit, centre-first interior test answers as the whole grid does, for shapes with
    and without an interior deeper than the threshold (thin boxes, shells, off-centre spheres)."""
    from inr_gon.geometry.shapes.procedural import _has_interior

    def naive(shape, resolution=24, thickness=0.02):
        axis = torch.linspace(-1.0, 1.0, resolution, dtype=torch.float64)
        grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)
        return bool((shape(grid) < -thickness).any())

    shapes = [S.random_shape(torch.Generator().manual_seed(s)) for s in range(20)]
    shapes += [S.Box((0.5, 0.5, w)) for w in (0.005, 0.02, 0.03, 0.2)]
    shapes += [S.Translate(S.Sphere(0.0, r), (0.8, -0.8, 0.8)) for r in (0.01, 0.05, 0.15)]
    shapes += [
        S.Difference(S.Sphere(0.0, 0.8), S.Sphere(0.0, 0.78)),
        S.Difference(S.Sphere(0.0, 0.8), S.Sphere(0.0, 0.7)),
    ]
    answers = [_has_interior(s) for s in shapes]
    assert answers == [naive(s) for s in shapes]
    assert True in answers and False in answers


def test_procedural_kind_is_the_first_primitive_drawn():
    from inr_gon.geometry.shapes.procedural import KINDS, ProceduralShapes

    fam = ProceduralShapes(30, seed=5, max_primitives=1)
    kinds = [fam.kind(i) for i in range(30)]
    assert kinds == [ProceduralShapes(30, seed=5, max_primitives=1).kind(i) for i in range(30)]  # deterministic
    assert len(set(kinds)) >= 4 and all(0 <= k < len(KINDS) for k in kinds) and fam.kind(-1) == kinds[-1]
    p = torch.rand(2000, 3) * 2 - 1
    radial = [float(torch.corrcoef(torch.stack([fam[i](p), p.norm(dim=1)]))[0, 1]) for i in range(30)]
    # one primitive, centred: exactly the spheres' fields are a function of the distance to the origin
    assert [r > 0.9999 for r in radial] == [KINDS[k] == "sphere" for k in kinds] and "sphere" in map(
        KINDS.__getitem__, kinds
    )
