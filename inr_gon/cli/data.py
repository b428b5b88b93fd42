"""``inr-gon prepare``: a collection of meshes to DeepSDF's data layout (:mod:`inr_gon.data.prepare`)."""

from __future__ import annotations

import sys

__all__ = ["add_prepare_parser", "cmd_prepare"]


def add_prepare_parser(sub, positive_int) -> None:
    p = sub.add_parser(
        "prepare",
        help="meshes (ShapeNet layout, flat or nested folders) to DeepSDF's SdfSamples layout",
        description="Normalise and sample every mesh under SRC into OUT in DeepSDF's layout (SdfSamples, "
        "SurfaceSamples, NormalizationParameters), headless and resumable: finished shapes are verified and "
        "skipped, a failed mesh is named in OUT/failures.json and the others go on (exit status 1 if any failed).",
    )
    p.add_argument("src", metavar="SRC", help="a folder of meshes: <class>/<id>/models/<file>, flat, or nested")
    p.add_argument("out", metavar="OUT", help="the DeepSDF data folder to write")
    p.add_argument("--split", metavar="JSON", help="prepare only the shapes of this DeepSDF split file")
    p.add_argument("--dataset", default="meshes", help="the dataset folder name under SdfSamples (default: meshes)")
    p.add_argument("--samples", type=positive_int, default=250_000, help="SDF samples per shape (default: 250000)")
    p.add_argument("--surface", type=positive_int, default=30_000, help="surface samples per shape (default: 30000)")
    p.add_argument("--workers", type=positive_int, default=1, help="processes (default: 1)")
    p.add_argument("--shard", default="0/1", metavar="I/N", help="prepare the I-th of N disjoint shards (default: 0/1)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_prepare)


def cmd_prepare(args) -> int:
    from ..data.prepare import parse_shard, prepare

    rec = prepare(
        args.src,
        args.out,
        dataset=args.dataset,
        split=args.split,
        samples=args.samples,
        surface=args.surface,
        workers=args.workers,
        shard=parse_shard(args.shard),
        seed=args.seed,
        progress=not args.quiet,
    )
    rate = f", {rec['meshes_per_minute']:g} meshes/min" if rec["meshes_per_minute"] else ""
    print(
        f"{rec['prepared']} prepared, {rec['skipped']} already done, {rec['failed']} failed of {rec['meshes']} "
        f"meshes in {rec['seconds']:.1f} s{rate} -> {args.out}"
    )
    if rec["failed"]:
        print(f"inr-gon: error: {rec['failed']} mesh(es) failed, see {args.out}/failures.json", file=sys.stderr)
        return 1
    return 0
