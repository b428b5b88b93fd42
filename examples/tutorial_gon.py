"""A tour of Gradient Origin Networks through the public API, in cells (``# %%``: run it as a
script, or cell by cell in an editor that knows the markers). Under a minute on a CPU.

    python examples/tutorial_gon.py

1. the latent is a gradient at the origin (``gon_latent``), checked against autograd;
2. the Gauss–Newton step (a ridge fit of the residual by the tangent directions), checked;
3. training through the latent (``gon_loss``) on a handful of images;
4. rendering a latent at any resolution (``render``);
5. shapes: an analytic SDF, its mesh (``extract_mesh``), and an SDF GON's latent.
"""

# %% 0. set-up: small images (soft disks), a small latent-conditioned SIREN
import torch

import inr_gon as ig

torch.manual_seed(0)
H = 16
yy, xx = torch.meshgrid(torch.linspace(-1, 1, H), torch.linspace(-1, 1, H), indexing="ij")
centres = torch.rand(32, 2) - 0.5
radii = 0.3 + 0.3 * torch.rand(32)
dist = ((xx - centres[:, :1, None]) ** 2 + (yy - centres[:, 1:, None]) ** 2).sqrt()
images = torch.sigmoid((radii[:, None, None] - dist) * 20)[:, None]  # (32, 1, 16, 16) in [0, 1]

coords = ig.grid(H, dim=2)  # (256, 2): cell centres in [-1, 1]²
x = ig.image_to_points(images)  # (32, 256, 1)
model = ig.LatentSiren(2, 8, 1, hidden_dim=64, num_layers=3)  # coordinates (2) + latent (8) -> gray (1)
inner = ig.GridIntegrator(scale=1 / 64)  # each pixel's weight in the inner sum (the trainer's convention)

# %% 1. the latent is the negative gradient of the loss at the origin
z = ig.gon_latent(model, coords, x, integrator=inner)  # (32, 8)
z0 = torch.zeros(1, 8, requires_grad=True)  # the same, by autograd, for the first image
loss0 = (model(coords, z0) - x[:1]).square().sum() / 64
(grad,) = torch.autograd.grad(loss0, z0)
print("latent vs autograd, max difference:", float((z[:1] + grad).abs().max()))

# %% 2. the Gauss–Newton step: z = -(λI + H)^-1 ∇ with H = Σ_p w ℓ'' J_pᵀ J_p, the ridge fit of the
#       residual by the network's tangent directions at the origin (from the same backward pass and
#       one k×k solve). Checked here against the Jacobian written out for the first image.
lam, w = 0.01, 1 / 64
z_gn = ig.gon_latent(model, coords, x, integrator=inner, gauss_newton=lam)
J = torch.autograd.functional.jacobian(lambda v: model(coords, v[None])[0, :, 0], torch.zeros(8))  # (P, k)
r = model(coords, torch.zeros(1, 8))[0, :, 0].detach() - x[0, :, 0]  # the residual at the origin
z_ref = -torch.linalg.solve(lam * torch.eye(8) + 2 * w * J.T @ J, 2 * w * J.T @ r)
print("Gauss-Newton latent vs the written-out formula, max difference:", float((z_gn[0] - z_ref).abs().max()))

# %% 3. training through the latent (second order); LatentSiren(..., gauss_newton=λ) trains with the other step
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
for step in range(100):
    loss, z = ig.gon_loss(model, coords, x, inner_integrator=inner)
    opt.zero_grad()
    loss.backward()
    opt.step()
z = ig.gon_latent(model, coords, x, integrator=inner)
with torch.no_grad():
    mse_plain = float((model(coords, z) - x).square().mean())
print(f"after 100 steps: reconstruction MSE {mse_plain:.5f} (the images' variance: {float(x.var()):.3f})")

# %% 4. a latent is a function: render it at any resolution (here 8× the training grid)
big = ig.render(model, z[:4], 128)  # (4, 1, 128, 128)
print("rendered", tuple(big.shape), "from a 16² training grid")

# %% 5. shapes: an analytic SDF, its mesh, and the SDF GON's latent of its samples
shape = ig.shapes.Sphere(0.0, 0.5) - ig.shapes.Box(0.3, center=(0.4, 0.0, 0.0))
mesh = ig.extract_mesh(shape, 48)
print(f"mesh: {len(mesh.vertices)} vertices, {len(mesh.faces)} faces, watertight: {mesh.is_watertight}")
net = ig.LatentSiren(3, 16, 1, hidden_dim=64, num_layers=3)
points = torch.rand(1, 2048, 3) * 2 - 1  # (B, P, 3): the shape's own samples
z_shape = ig.sdf_gon_latent(net, points, shape(points[0])[None])  # (1, 16)
print("an SDF GON latent of the shape:", tuple(z_shape.shape))
