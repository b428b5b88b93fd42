"""Shape completion from depth views of held-out shapes, against encoding from full observation.

    python benchmarks/sdf_completion.py --json docs/figures/sdf_completion.json

For each of ``--shapes`` held-out shapes of the procedural family (never trained on) and ``--views``
random cameras on a sphere of radius 2.5 looking at the origin, a ``--size``² depth map is rendered
by sphere tracing the analytic SDF, turned into samples (:mod:`inr_gon.geometry.observe`: surface,
±offset along the depth map's normals, free space on the rays) and encoded:

* ``one step``: the model's Gauss–Newton step on the samples (free space as bounds);
* ``prior``: the most probable latent under the Gaussian of the model's training latents
  (:func:`~inr_gon.core.posterior.map_latent`: ``--prior-iterations`` Gauss–Newton iterations at
  ``--prior-strength``), what ``inr-gon mesh --depth``/``--points`` does by default;
* ``one step + refine N``, ``prior + refine N``: then N Adam steps on the latent, decoder fixed;
* ``Adam from noise N``: DeepSDF's test-time encoding (N Adam steps from a small random code) on
  the same decoder and samples;
* ``surface only``: the one step on the surface points alone (no offsets, no free space);
* ``no free space``: the one step or the prior (and refined) on the surface and offset samples only;
* ``full observation``: the reference, the model's encoding of the shape's own sample pool;
* ``retrieval from N`` (``--retrieval N``, one view): the candidate latent that fits the view best
  (least outer loss on as many of its samples as the prior takes, free space as bounds), among the
  full-observation latents of the run's first N training shapes (``--split train``: does one view
  identify a known shape?) or of the first N shapes of the procedural family's bank (``--split
  unseen``: is a new shape's hidden side found among other shapes of its family?); ``retrieval
  from N, best of 8`` keeps, of the 8 best-fitting candidates, the one nearest the truth (an
  oracle: what a perfect tie-break among them would reach).

Every one-view row also records ``view_energy``: the mean outer loss of its latent on the view's
samples; the full observation's latent is scored on the same samples, so the two say whether the
view tells the completion from the full observation's shape.

Volumetric IoU (50,000 uniform points in [-1, 1]³, against the true shape), DeepSDF's Chamfer
distance (the completion's ``--chamfer-resolution``³ marching-cubes mesh against the truth's, 30,000
surface samples each way; 0 skips it) and seconds per shape (sampling the depth maps and encoding;
rendering them is not counted: a sensor gives them); 1, 2 and 4 views (``--views-list``). The
model: ``--checkpoint`` or ``--pretrained`` (default: ``shapes``). ``--picture PNG``: for each
shape, the points one view saw beside the one step's and the prior's completions, the full
observation's encoding and the true shape.

The shapes follow the model's training data. A procedural model: the held-out family
(``--split unseen``) or the first training shapes (``--split train``), rendered from their
analytic SDFs. A model trained on a mesh folder (``inr-gon train sdf --meshes DIR``): that run's
unseen or training meshes, normalised as in training, rendered by sphere tracing the mesh's
signed distance (libigl) and scored against the mesh. ``--split train`` asks whether one view of
a known shape finds its latent again; ``unseen`` whether the model completes a new one.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import trimesh

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import inr_gon  # noqa: E402
from inr_gon.core.sdf import bounded_loss, latent_sdf  # noqa: E402
from inr_gon.eval.shape import chamfer_distance, volumetric_iou  # noqa: E402
from inr_gon.geometry.mesh import extract_mesh  # noqa: E402
from inr_gon.geometry.observe import (  # noqa: E402
    Observation,
    backproject,
    depth_free_space,
    depth_normals,
    observation_samples,
)
from inr_gon.geometry.shapes import ProceduralShapes  # noqa: E402
from inr_gon.training.tasks.sdf_encoding import (  # noqa: E402
    PRIOR_ITERATIONS,
    PRIOR_POINTS,
    PRIOR_STRENGTH,
    encode_samples,
    refine_latent,
)
from inr_gon.core.sampling import GaussianLatentSampler  # noqa: E402
from inr_gon.training.tasks.sdf_data import UNSEEN_SEED, analytic_pool, family_shapes, load_shapes  # noqa: E402


def look_at(eye: torch.Tensor) -> torch.Tensor:
    """The camera-to-world pose ``(4, 4)`` of a camera at ``eye`` looking at the origin (OpenCV axes)."""
    z = -eye / eye.norm()
    up = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    if abs(float(z @ up)) > 0.95:
        up = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    x = torch.linalg.cross(z, up)
    x = x / x.norm()
    y = torch.linalg.cross(z, x)
    T = torch.eye(4, dtype=torch.float64)
    T[:3, :3] = torch.stack([x, y, z], dim=1)
    T[:3, 3] = eye
    return T


def render_depth(shape, pose: torch.Tensor, size: int, fov_deg: float = 40.0, iterations: int = 96) -> tuple:
    """Depth map ``(size, size)`` (z distance; NaN where the ray misses) of an SDF by sphere tracing,
    and the intrinsics ``(3, 3)``."""
    f = (size / 2) / torch.tan(torch.deg2rad(torch.tensor(fov_deg / 2, dtype=torch.float64)))
    c = (size - 1) / 2
    K = torch.tensor([[f, 0, c], [0, f, c], [0, 0, 1]], dtype=torch.float64)
    v, u = torch.meshgrid(
        torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64), indexing="ij"
    )
    d_cam = torch.stack([(u - c) / f, (v - c) / f, torch.ones_like(u)], -1).reshape(-1, 3)  # z = 1
    d = d_cam @ pose[:3, :3].T
    o = pose[:3, 3]
    t = torch.full((d.shape[0],), 1.0, dtype=torch.float64)
    hit = torch.zeros(d.shape[0], dtype=torch.bool)
    with torch.no_grad():
        for _ in range(iterations):
            live = ~hit & (t < 6.0)
            if not live.any():
                break
            p = o + t[live, None] * d[live]
            s = shape(p.float()).double()
            done = s.abs() < 1e-4
            idx = live.nonzero().squeeze(1)
            hit[idx[done]] = True
            t[idx[~done]] += s[~done] * 0.9
    depth = torch.where(hit, t, torch.full_like(t, float("nan")))  # t is the z distance: rays have z = 1
    return depth.reshape(size, size), K


def mesh_sdf(mesh):
    """The signed distance ``(N, 3) -> (N,)`` of a closed mesh (negative inside; libigl), for
    :func:`render_depth`."""
    from inr_gon.data.meshes import signed_distance

    return lambda p: torch.from_numpy(signed_distance(mesh, p)).to(p.dtype)


def shape_cases(run, split: str, count: int):
    """The shapes to complete, as ``(name, sdf callable, truth, pool points (1, N, 3), pool sdf (1, N))``:
    the truth is the analytic SDF (procedural) or the normalised mesh, and the pool is what the full
    observation encodes (a fresh analytic pool, or the run's own pool of the mesh)."""
    cfg = run.config
    if cfg.source == "procedural":
        family = (
            ProceduralShapes(max(count, 8), seed=cfg.seed + UNSEEN_SEED)
            if split == "unseen"
            else ProceduralShapes(cfg.num_shapes, seed=cfg.seed)
        )
        for i in range(min(count, len(family))):
            shape = family[i]
            pts, sdf = analytic_pool(shape, cfg.pool, torch.Generator().manual_seed(1000 + i))
            yield f"{split}{i:04d}", shape, shape, pts[None], sdf[None]
        return
    if cfg.source != "meshes":
        raise SystemExit(
            f"sdf_completion: a {cfg.source!r} model has no closed ground truth to render; "
            "use a procedural or mesh-folder model"
        )
    shapes = load_shapes(cfg)
    index = shapes.unseen_index if split == "unseen" else shapes.train_index
    if not index:
        raise SystemExit(f"sdf_completion: the run has no {split} shapes")
    for i in index[:count]:
        pts, sdf = shapes.take([i])
        yield shapes.names[i], mesh_sdf(shapes.truth[i]), shapes.truth[i], pts, sdf


_RENDERS: dict = {}


def family_latents(run, count: int, what: str) -> torch.Tensor:
    """The full-observation latents ``(count, k)`` of the first ``count`` shapes of a procedural
    run's new-shape family (the bank it drew from)."""
    cfg = run.config
    if cfg.source != "procedural":
        raise SystemExit(f"sdf_completion: {what} needs a procedural model")
    z = []
    for first in range(0, count, 64):
        _, pts, sdf = family_shapes(cfg.seed, first, min(64, count - first), cfg.pool)
        z.append(encode_samples(run.model, cfg, pts, sdf))
    return torch.cat(z)


def family_latent_stats(run, count: int) -> dict:
    """``{"mean", "cov"}`` of the Gaussian fitted to :func:`family_latents`."""
    s = GaussianLatentSampler(family_latents(run, count, "--prior-shapes"))
    return {"mean": s.mean, "cov": s.cov}


def retrieval_candidates(run, split: str, count: int) -> torch.Tensor:
    """``(count, k)`` full-observation latents to retrieve from: the run's first ``count`` training
    shapes (``split == "train"``) or the first ``count`` shapes of its family's bank."""
    if split == "unseen":
        return family_latents(run, count, "--retrieval with --split unseen")
    return torch.cat([encode_samples(run.model, run.config, p, d) for *_, p, d in shape_cases(run, "train", count)])


def retrieve(model, cfg, obs, bank: torch.Tensor, *, seed: int) -> torch.Tensor:
    """The indices of the candidate latents ``bank (M, k)`` by their fit to an observation, best
    first: :func:`view_energy` on as many of its samples as the prior takes (drawn with ``seed``)."""
    pick = torch.randperm(len(obs), generator=torch.Generator().manual_seed(seed))[:PRIOR_POINTS]
    return view_energy(
        model, cfg, Observation(obs.points[pick], obs.sdf[pick], obs.free[pick], obs.surface), bank
    ).argsort()


@torch.no_grad()
def view_energy(model, cfg, obs, z: torch.Tensor) -> torch.Tensor:
    """The mean outer loss ``(M,)`` of latents ``z (M, k)`` on an observation's samples (free space
    as bounds), in chunks of candidates, in the model's precision."""
    z = z.to(next(model.parameters()).dtype)
    p, d = obs.points.to(z.dtype), obs.sdf.to(z.dtype)
    out = []
    for s in range(0, z.shape[0], 128):
        pred = model(p, z[s : s + 128])  # (M, P, 1)
        m = pred.shape[0]
        loss = bounded_loss(cfg.outer_loss, obs.free[None].expand(m, -1), delta=cfg.delta)
        out.append(loss(pred, d[None, :, None].expand(m, -1, -1)).mean(dim=(1, 2)))
    return torch.cat(out)


def view_samples(shape, pose, size, offset, free, g, *, surface_only=False):
    """The samples of one view; the depth map is rendered once per (shape, pose, size) and the
    rendering is not timed (a sensor gives it): ``SAMPLING[0]`` adds up the sampling's seconds."""
    key = (id(shape), tuple(pose.flatten().tolist()), size)
    if key not in _RENDERS:
        _RENDERS[key] = render_depth(shape, pose, size)
    depth, K = _RENDERS[key]
    t0 = time.perf_counter()
    out = _samples(depth, K, pose, offset, free, g, surface_only)
    SAMPLING[0] += time.perf_counter() - t0
    return out


SAMPLING = [0.0]


def _samples(depth, K, pose, offset, free, g, surface_only):
    pts, seen, cam = backproject(depth, K, pose)
    if surface_only:
        return observation_samples(pts[seen], offset=offset, free_per_point=0, generator=g)
    n, ok = depth_normals(pts, seen, cam)
    normals = torch.where(ok[seen].unsqueeze(-1), n[seen], torch.zeros(1, dtype=n.dtype))
    outside = depth_free_space(depth, K, pose, 16_384, margin=2 * min(offset), generator=g) if free else None
    return observation_samples(
        pts[seen], normals=normals, camera=cam, offset=offset, free_per_point=free, generator=g, outside=outside
    )


def merge(observations):
    return Observation(
        *(torch.cat([getattr(o, k) for o in observations]) for k in ("points", "sdf", "free", "surface"))
    )


def picture(model, seen, path: Path) -> None:
    """One row per shape: the points one view saw, the one step's and the prior's completions
    from them, the full observation's encoding, the true shape (64³ marching cubes)."""
    from inr_gon.viz import save_mesh_grid

    grid = []
    for surface, *zs, truth in seen:
        keep = torch.randperm(surface.shape[0], generator=torch.Generator().manual_seed(0))[:3000]
        meshes = [extract_mesh(latent_sdf(model, z), 64) for z in zs]
        grid.append([surface[keep].numpy(), *meshes, truth])
    titles = ["seen (one view)", "one step", "prior", "full observation", "truth"]
    print(f"wrote {save_mesh_grid(grid, path, titles=titles)}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pretrained", default="shapes")
    ap.add_argument("--checkpoint")
    ap.add_argument("--shapes", type=int, default=8)
    ap.add_argument("--views-list", default="1,2,4")
    ap.add_argument("--size", type=int, default=128, help="depth map size (pixels per side)")
    ap.add_argument("--offset", type=float, nargs="+", default=[0.01, 0.03, 0.06, 0.1])
    ap.add_argument("--free", type=int, default=1)
    ap.add_argument("--refine", default="10,100")
    ap.add_argument("--prior-strength", type=float, default=PRIOR_STRENGTH)
    ap.add_argument("--prior-iterations", type=int, default=PRIOR_ITERATIONS)
    ap.add_argument(
        "--prior-shapes",
        type=int,
        default=0,
        help="procedural: fit the prior to the full-observation latents of this many shapes of the run's "
        "new-shape family (its bank) instead of the checkpoint's latent_stats (0: the checkpoint's)",
    )
    ap.add_argument(
        "--retrieval",
        type=int,
        default=0,
        help="also retrieve, from one view, the best-fitting of this many full-observation latents: the "
        "run's training shapes (--split train) or its family's bank (--split unseen; procedural) (0: no)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timing-size", type=int, default=256, help="also time the one step from this size (3 shapes)")
    ap.add_argument(
        "--split",
        choices=("unseen", "train"),
        default="unseen",
        help="the model's held-out shapes or its first training shapes",
    )
    ap.add_argument(
        "--chamfer-resolution", type=int, default=64, help="marching-cubes grid of the completions' Chamfer (0: none)"
    )
    ap.add_argument("--json", type=Path)
    ap.add_argument("--picture", type=Path, help="a PNG of each shape's view, completions and truth")
    args = ap.parse_args(argv)
    if args.prior_shapes < 0 or args.prior_shapes == 1:
        ap.error(f"--prior-shapes must be 0 (the checkpoint's prior) or at least 2, got {args.prior_shapes}")
    if args.retrieval < 0:
        ap.error(f"--retrieval must be >= 0, got {args.retrieval}")
    torch.set_grad_enabled(True)
    run = (
        inr_gon.load(args.checkpoint, device="cpu")
        if args.checkpoint
        else inr_gon.pretrained(args.pretrained, device="cpu")
    )
    cfg, model = run.config, run.model
    stats = run.state["latent_stats"] if not args.prior_shapes else family_latent_stats(run, args.prior_shapes)
    prior = {**stats, "strength": args.prior_strength, "iterations": args.prior_iterations}
    g = torch.Generator().manual_seed(args.seed)
    refine = [int(x) for x in args.refine.split(",") if x]
    bank = retrieval_candidates(run, args.split, args.retrieval) if args.retrieval else None
    rows = []
    seen = []  # one view of each shape: (its surface points, the step's, the prior's, the full latent, truth)

    def score(name, views, z, seconds, truth, energy_of=None):
        field = latent_sdf(model, z)
        iou = volumetric_iou(field, truth, bounds=(-1.0, 1.0), num_points=50_000)
        chamfer = None
        if args.chamfer_resolution:
            mesh = extract_mesh(field, args.chamfer_resolution)
            chamfer = chamfer_distance(mesh, truth_mesh) if len(mesh.faces) else None  # None: nothing decoded
        rows.append(
            {"shape": name_i, "method": name, "views": views, "iou": iou, "chamfer": chamfer, "seconds": seconds}
        )
        if energy_of is not None:  # the latent's fit to one view's samples
            rows[-1]["view_energy"] = view_energy(model, cfg, energy_of, z[None]).item()

    def timed(fn):
        t0 = time.perf_counter()
        z = fn()
        return z, time.perf_counter() - t0

    for i, (name_i, shape, truth, pool_p, pool_s) in enumerate(shape_cases(run, args.split, args.shapes)):
        _RENDERS.clear()
        truth_mesh = truth  # the surface that Chamfer and the picture compare with
        if not isinstance(truth, trimesh.Trimesh):
            truth_mesh = extract_mesh(truth, 128) if args.chamfer_resolution or args.picture else None
        z, s = timed(lambda: encode_samples(model, cfg, pool_p, pool_s)[0])
        score("full observation", 0, z, s, truth)
        full_row = rows[-1]  # its fit to the first view is added below
        z_full = z
        eyes = (
            torch.nn.functional.normalize(
                torch.randn(max(int(v) for v in args.views_list.split(",")), 3, generator=g, dtype=torch.float64), dim=1
            )
            * 2.5
        )
        for views in (int(v) for v in args.views_list.split(",")):

            def encode(observations, refine_steps=0, noise=False, map_prior=False):
                obs = merge(observations)
                p, d, f = obs.points[None], obs.sdf[None], obs.free[None]
                z = None if noise else encode_samples(model, cfg, p, d, free=f, prior=prior if map_prior else None)
                if noise or refine_steps:  # Adam on the latent: from noise (DeepSDF) or from the step
                    keep = torch.randperm(p.shape[1], generator=torch.Generator().manual_seed(i))[:16384]
                    z = refine_latent(
                        model,
                        cfg,
                        p[:, keep],
                        d[:, keep],
                        z,
                        steps=refine_steps,
                        lr=5e-3 if noise else 1e-3,
                        free=f[:, keep],
                        generator=torch.Generator().manual_seed(i),
                    )
                return z[0]

            SAMPLING[0] = 0.0
            obs = [view_samples(shape, look_at(eyes[j]), args.size, args.offset, args.free, g) for j in range(views)]
            sampling = SAMPLING[0]
            one = obs[0] if views == 1 else None  # the view whose fit each one-view row records
            z, s = timed(lambda: encode(obs))
            score("one step", views, z, s + sampling, truth, one)
            z_step = z
            z, s = timed(lambda: encode(obs, map_prior=True))
            score("prior", views, z, s + sampling, truth, one)
            if views == 1:
                seen.append((obs[0].surface, z_step, z, z_full, truth_mesh))
                full_row["view_energy"] = view_energy(model, cfg, one, z_full[None]).item()
                if bank is not None:
                    t0 = time.perf_counter()
                    order = retrieve(model, cfg, one, bank, seed=i)
                    z, s = bank[order[0]], time.perf_counter() - t0
                    score(f"retrieval from {len(bank)}", views, z, s + sampling, truth, one)
                    best = max(
                        order[:8].tolist(),
                        key=lambda j: volumetric_iou(
                            latent_sdf(model, bank[j]), truth, bounds=(-1.0, 1.0), num_points=50_000
                        ),
                    )
                    score(f"retrieval from {len(bank)}, best of 8", views, bank[best], s + sampling, truth, one)
            for n in refine:
                z, s = timed(lambda: encode(obs, n))
                score(f"one step + refine {n}", views, z, s + sampling, truth)
                z, s = timed(lambda: encode(obs, n, map_prior=True))
                score(f"prior + refine {n}", views, z, s + sampling, truth)
                z, s = timed(lambda: encode(obs, n, noise=True))
                score(f"Adam from noise {n}", views, z, s + sampling, truth)
            if views == 1:
                SAMPLING[0] = 0.0
                no_free = [view_samples(shape, look_at(eyes[0]), args.size, args.offset, 0, g)]
                sampling = SAMPLING[0]
                z, s = timed(lambda: encode(no_free))
                score("one step, no free space", views, z, s + sampling, truth)
                z, s = timed(lambda: encode(no_free, map_prior=True))
                score("prior, no free space", views, z, s + sampling, truth)
                for n in refine:
                    z, s = timed(lambda: encode(no_free, n))
                    score(f"one step + refine {n}, no free space", views, z, s + sampling, truth)
                    z, s = timed(lambda: encode(no_free, n, map_prior=True))
                    score(f"prior + refine {n}, no free space", views, z, s + sampling, truth)
                SAMPLING[0] = 0.0
                bare = [view_samples(shape, look_at(eyes[0]), args.size, args.offset, 0, g, surface_only=True)]
                z, s = timed(lambda: encode(bare))
                score("surface only", views, z, s + SAMPLING[0], truth)
                if args.timing_size and i < 3:  # the encoding time from a larger depth map (sampling included)
                    SAMPLING[0] = 0.0
                    big = [view_samples(shape, look_at(eyes[0]), args.timing_size, args.offset, args.free, g)]
                    z, s = timed(lambda: encode(big))
                    score(f"one step, {args.timing_size}² depth map", views, z, s + SAMPLING[0], truth)
                    z, s = timed(lambda: encode(big, map_prior=True))
                    score(f"prior, {args.timing_size}² depth map", views, z, s + SAMPLING[0], truth)
        print(
            f"shape {i}: " + ", ".join(f"{r['method']} ({r['views']}) {r['iou']:.3f}" for r in rows if r is rows[-1]),
            flush=True,
        )
    summary = {}
    for r in rows:
        summary.setdefault((r["method"], r["views"]), []).append(r)
    table = []
    for (m, v), rs in summary.items():
        cds = [x["chamfer"] for x in rs if x["chamfer"] is not None]
        table.append(
            {
                "method": m,
                "views": v,
                "iou_mean": statistics.mean(x["iou"] for x in rs),
                "chamfer_mean": statistics.mean(cds) if cds else None,
                "chamfer_median": statistics.median(cds) if cds else None,
                "empty": sum(x["chamfer"] is None for x in rs) if args.chamfer_resolution else 0,
                "seconds_mean": statistics.mean(x["seconds"] for x in rs),
            }
        )
        energies = [x["view_energy"] for x in rs if "view_energy" in x]
        if energies:
            table[-1]["view_energy_mean"] = statistics.mean(energies)
    full = next(t["iou_mean"] for t in table if t["method"] == "full observation")
    for t in table:
        t["of_full"] = t["iou_mean"] / full if full else None
        cd = "" if t["chamfer_median"] is None else f"  Chamfer median {t['chamfer_median'] * 1e3:.2f}e-3"
        e = f"  view energy {t['view_energy_mean'] * 1e3:.2f}e-3" if "view_energy_mean" in t else ""
        print(
            f"{t['method']:24s} views {t['views']}  IoU {t['iou_mean']:.3f} "
            f"({t['of_full']:.2f} of full){cd}{e}  {t['seconds_mean']:.3f} s"
        )
    if args.picture:
        picture(model, seen, args.picture)
    if args.json:
        record = {
            "benchmark": "sdf_completion",
            "model": args.checkpoint or f"pretrained:{args.pretrained}",
            "source": cfg.source,
            "split": args.split,
            "shapes": len({r["shape"] for r in rows}),
            "chamfer_resolution": args.chamfer_resolution,
            "size": args.size,
            "offset": args.offset,
            "free": args.free,
            "prior_strength": args.prior_strength,
            "prior_iterations": args.prior_iterations,
            "prior_shapes": args.prior_shapes or "the checkpoint's latent_stats",
            "retrieval": args.retrieval,
            "summary": table,
            "rows": rows,
        }
        args.json.write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
