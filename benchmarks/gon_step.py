"""One GON training step: the official formulation (cwkx/GON ``Implicit-GON.py``) vs inr_gon.

Both run in this process on the same weights and data; the table prints seconds per step and
the speed-up (official / inr_gon). The official step builds ``c ⊕ z`` with ``repeat`` + ``cat``,
takes the latent with a batched ``autograd.grad(create_graph=True)`` and back-propagates the
outer loss through that double backward. inr_gon's step uses the exact shared-origin fast path
and the fused (buffer-reusing) backward of the sine stack; the last columns time inr_gon's step
with ``LatentSiren(..., fused=False)`` (plain autograd through the sine stack) for comparison.

``--keep-freed-memory`` applies :func:`inr_gon.training.runtime.keep_freed_memory` to the whole process
(both formulations): glibc then stops returning large freed blocks to the OS, which speeds up
both steps on a CPU; the trainer does this by default.

    python benchmarks/gon_step.py [--repeats 5] [--device cpu] [--keep-freed-memory]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

import inr_gon as ig
from inr_gon.training.runtime import keep_freed_memory


class OfficialSirenLayer(nn.Module):
    """cwkx/GON's SirenLayer (the w0 multiply is an elementwise pass on the activations)."""

    def __init__(self, linear: nn.Linear, w0: float, is_last: bool):
        super().__init__()
        self.linear, self.w0, self.is_last = linear, w0, is_last

    def forward(self, x):
        x = self.linear(x)
        return x if self.is_last else torch.sin(self.w0 * x)


def official_model(m: ig.LatentSiren) -> nn.Sequential:
    """cwkx/GON's ``gon_model`` with ``m``'s weights (first layer over ``c ⊕ z``)."""
    first = nn.Linear(m.coord_dim + m.latent_dim, m.hidden_dim)
    with torch.no_grad():
        first.weight.copy_(torch.cat([m.coord_weight, m.latent_weight], 1))
        first.bias.copy_(m.first_bias)
    layers = [OfficialSirenLayer(first, m.w0_first, False)]
    for h in m.hidden:
        lin = nn.Linear(m.hidden_dim, m.hidden_dim)
        lin.load_state_dict(h.linear.state_dict())
        layers.append(OfficialSirenLayer(lin, h.w0, False))
    out = nn.Linear(m.hidden_dim, m.out_dim)
    out.load_state_dict(m.out.state_dict())
    layers.append(OfficialSirenLayer(out, m.w0, True))
    return nn.Sequential(*layers).to(m.coord_weight.device, m.coord_weight.dtype)


def official_step(F, opt, c, x, nz, mc_idx=None):
    """One step of Implicit-GON.py (without its 1/B factor in the latent, to compute the same z)."""
    B, P = x.shape[:2]
    z = torch.zeros(B, 1, nz, device=x.device, requires_grad=True)
    g = F(torch.cat((c, z.repeat(1, P, 1)), dim=-1))
    L_inner = ((g - x) ** 2).sum(1).sum()
    z = -torch.autograd.grad(L_inner, [z], create_graph=True, retain_graph=True)[0]
    if mc_idx is not None:  # the outer integral on a Monte-Carlo subset
        c, x = c[:, mc_idx], x[:, mc_idx]
        w = P / len(mc_idx)
    else:
        w = 1.0
    g = F(torch.cat((c, z.repeat(1, c.shape[1], 1)), dim=-1))
    L_outer = (((g - x) ** 2).sum(1) * w).mean()
    opt.zero_grad(set_to_none=True)
    L_outer.backward()
    opt.step()
    return L_outer.detach()


def ours_step(model, opt, c, x, outer):
    loss, _ = ig.gon_loss(model, c, x, outer_integrator=outer, check=False)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach()


def timeit(fn, repeats, sync):
    fn()  # warm-up
    sync()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def run(hidden, layers, batch, res, fraction, repeats, device):
    torch.manual_seed(0)
    model = ig.LatentSiren(2, 32, 1, hidden, layers).to(device)
    F = official_model(model)
    c = ig.grid(res, dim=2, device=device)
    x = torch.rand(batch, res * res, 1, device=device)
    c_rep = c.unsqueeze(0).expand(batch, -1, -1)
    opt_o = torch.optim.Adam(F.parameters(), lr=0.0)  # lr 0: both keep identical weights
    opt_n = torch.optim.Adam(model.parameters(), lr=0.0)
    outer = ig.MonteCarloIntegrator(fraction=fraction) if fraction < 1 else None
    gen = torch.Generator(device="cpu").manual_seed(0)
    m = max(1, round(fraction * res * res))
    idx = torch.randperm(res * res, generator=gen)[:m].to(device) if fraction < 1 else None
    sync = (lambda: torch.cuda.synchronize()) if device.type == "cuda" else (lambda: None)
    plain = ig.LatentSiren(2, 32, 1, hidden, layers, fused=False).to(device)
    plain.load_state_dict(model.state_dict())
    opt_p = torch.optim.Adam(plain.parameters(), lr=0.0)
    t_off = timeit(lambda: official_step(F, opt_o, c_rep, x, 32, idx), repeats, sync)
    t_ours = timeit(lambda: ours_step(model, opt_n, c, x, outer), repeats, sync)
    t_plain = timeit(lambda: ours_step(plain, opt_p, c, x, outer), repeats, sync)
    params = sum(p.numel() for p in model.parameters())
    return params, t_off, t_ours, t_plain


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5, help="timed steps per configuration (median)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument(
        "--keep-freed-memory",
        action="store_true",
        help="let glibc keep freed memory for reuse (process-wide: both formulations)",
    )
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    kept = keep_freed_memory() if args.keep_freed_memory else False
    print(
        f"device={device}  torch={torch.__version__}  threads={torch.get_num_threads()}  B={args.batch}  28x28  "
        f"allocator={'glibc, freed memory kept' if kept else 'default'}"
    )
    print(
        f"{'model':>14} {'outer':>8} {'params':>8} {'official s/step':>16} {'inr_gon s/step':>15} "
        f"{'speed-up':>9} {'fused=False s/step':>19} {'fused gain':>11}"
    )
    for hidden, layers in ((256, 4), (32, 3)):
        for fraction in (1.0, 0.25):
            params, t_off, t_ours, t_plain = run(hidden, layers, args.batch, 28, fraction, args.repeats, device)
            print(
                f"{f'{layers}x{hidden} SIREN':>14} {('grid' if fraction == 1 else f'MC {fraction:.0%}'):>8} "
                f"{params:>8,} {t_off:>16.4f} {t_ours:>15.4f} {t_off / t_ours:>8.1f}x "
                f"{t_plain:>19.4f} {t_plain / t_ours:>10.2f}x"
            )


if __name__ == "__main__":
    main()
