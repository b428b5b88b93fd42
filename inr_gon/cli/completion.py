"""Shape completion from what a sensor saw: ``inr-gon mesh --points FILE`` or ``--depth FILE
--intrinsics K.json [--pose T.json]`` encodes the observation's samples
(:mod:`inr_gon.geometry.observe`) in the model's step, optionally refines the latent, and the
mesh command decodes it."""

from __future__ import annotations

from pathlib import Path

import torch

from ..training.tasks.sdf_encoding import PRIOR_ITERATIONS, PRIOR_STRENGTH

__all__ = ["add_completion_options", "observation", "complete"]

#: uniform points of the box tested against a depth map for free space (--depth)
FREE_SPACE_POINTS = 16_384

#: samples each refinement step evaluates (a random subset of the observation's)
REFINE_POINTS = 16_384


def add_completion_options(parser, positive_int, nonneg_int, positive_float) -> None:
    g = parser.add_argument_group("completion: a shape from one observation (in the model's frame)")
    g.add_argument("--points", metavar="FILE", help="a point cloud (.ply, .xyz, .npy; normals used when present)")
    g.add_argument("--depth", metavar="FILE", help="a depth map (.npy/.exr in metres, 16-bit .png in --depth-scale)")
    g.add_argument("--intrinsics", metavar="JSON", help="the depth map's camera: fx, fy, cx, cy (or K)")
    g.add_argument("--pose", metavar="JSON", help="camera-to-model 4x4 transform (default: identity)")
    g.add_argument("--camera", nargs=3, type=float, metavar=("X", "Y", "Z"), help="--points: where the sensor was")
    g.add_argument("--depth-scale", type=positive_float, help="metres per depth unit (default: 16-bit 0.001, float 1)")
    g.add_argument(
        "--offset",
        type=positive_float,
        nargs="+",
        default=[0.01, 0.03, 0.06, 0.1],
        help="distances of the ±offset samples from the surface (default: 0.01 0.03 0.06 0.1)",
    )
    g.add_argument(
        "--free", type=nonneg_int, default=1, help="free-space samples per seen point, on its ray (default: 1)"
    )
    g.add_argument(
        "--no-silhouette",
        action="store_true",
        help="--depth: unseen pixels are sensor dropouts, not rays that miss the shape (no free space there)",
    )
    g.add_argument(
        "--normalize", action="store_true", help="centre and scale the observation as a mesh file is normalised"
    )
    g.add_argument(
        "--prior-strength",
        type=float,
        default=PRIOR_STRENGTH,
        help="weight of the training latents' Gaussian: the most probable latent given what was seen "
        f"(default {PRIOR_STRENGTH:g}; 0: the model's own step from the origin)",
    )
    g.add_argument(
        "--prior-iterations",
        type=positive_int,
        default=PRIOR_ITERATIONS,
        help=f"its Gauss–Newton iterations (default {PRIOR_ITERATIONS})",
    )
    g.add_argument("--refine", type=nonneg_int, default=0, help="Adam steps on the latent after the step (default 0)")
    g.add_argument("--refine-lr", type=positive_float, default=1e-3, help="their learning rate (default: 0.001)")


def observation(args, *, generator: torch.Generator | None = None):
    """The :class:`~inr_gon.geometry.observe.Observation` that ``--points`` or ``--depth`` names."""
    from ..data.observations import read_depth, read_intrinsics, read_point_cloud, read_pose
    from ..geometry.observe import backproject, depth_free_space, depth_normals, observation_samples

    if args.depth:
        if not args.intrinsics:
            raise ValueError("--depth needs --intrinsics JSON (the camera's fx, fy, cx, cy)")
        depth, unseen = read_depth(args.depth, scale=args.depth_scale)
        K = read_intrinsics(args.intrinsics, size=tuple(depth.shape))
        pose = read_pose(args.pose) if args.pose else None
        pts, seen, camera = backproject(depth, K, pose)
        normals, ok = depth_normals(pts, seen, camera)
        surface, normals = pts[seen], torch.where(ok[seen].unsqueeze(-1), normals[seen], torch.zeros(1))
        outside = None
        if args.free:
            outside = depth_free_space(
                depth,
                K,
                pose,
                FREE_SPACE_POINTS,
                margin=2 * min(args.offset),
                silhouette=not args.no_silhouette,
                generator=generator,
            )
        if unseen:
            print(f"{args.depth}: {unseen} pixel(s) without a positive depth were left out")
    else:
        if args.intrinsics or args.pose:
            raise ValueError("--intrinsics and --pose go with --depth")
        outside = None
        surface, normals = read_point_cloud(args.points)
        camera = torch.tensor(args.camera, dtype=torch.float64) if args.camera else None
        if normals is None and camera is None:
            print(f"{args.points}: no normals and no --camera: only the surface itself is known (SDF 0)")
    if args.normalize and outside is not None:
        raise ValueError(
            "--normalize moves the observation, so the depth map's free space no longer fits; give a --pose"
        )
    if args.normalize:  # as a mesh file's vertices are (inr_gon.data.meshes.normalize_mesh)
        import trimesh

        from ..data.meshes import normalize_mesh

        _, offset, scale = normalize_mesh(trimesh.PointCloud(surface.numpy()))
        offset = torch.from_numpy(offset)
        surface = (surface + offset) * scale
        camera = (camera + offset) * scale if camera is not None else None
    return observation_samples(
        surface,
        normals=normals,
        camera=camera,
        offset=args.offset,
        free_per_point=args.free,
        generator=generator,
        outside=outside,
    )


def complete(run, args) -> tuple[torch.Tensor, object]:
    """The latent ``(k,)`` of the observation ``args`` names, and the observation."""
    from ..training.tasks.sdf_encoding import encode_samples, refine_latent

    if args.prior_strength < 0:
        raise ValueError(f"--prior-strength must be >= 0, got {args.prior_strength:g}")
    cfg, device = run.config, run.device
    obs = observation(args, generator=torch.Generator().manual_seed(cfg.seed))
    if len(obs) == 0:
        raise ValueError(f"{args.points or args.depth}: no sample lies in the model's box [-1, 1]^3 (try --normalize)")
    pts, sdf, free = obs.points[None].to(device), obs.sdf[None].to(device), obs.free[None].to(device)
    stats = run.state.get("latent_stats") if args.prior_strength > 0 else None
    if args.prior_strength > 0 and stats is None:
        print("this checkpoint holds no latent statistics: encoded by the model's own step, without a prior")
    prior = None
    if stats is not None:
        prior = {**stats, "strength": args.prior_strength, "iterations": args.prior_iterations}
    z = encode_samples(run.model, cfg, pts, sdf, free=free, prior=prior)
    if args.refine:
        keep = torch.randperm(pts.shape[1], generator=torch.Generator().manual_seed(cfg.seed))[:REFINE_POINTS]
        pts, sdf, free = pts[:, keep.to(device)], sdf[:, keep.to(device)], free[:, keep.to(device)]
        z = refine_latent(run.model, cfg, pts, sdf, z, steps=args.refine, lr=args.refine_lr, free=free)
    name = Path(args.points or args.depth).stem
    print(f"{name}: {int((~obs.free).sum())} surface-side and {int(obs.free.sum())} free-space samples encoded")
    return z[0], obs
