"""Does an SDF GON train on any subset of a mesh folder, at any batch size? Short runs, collapse check.

    python benchmarks/sdf_subsets.py --meshes ../shared/datasets/meshes [--runs 8] [--steps 300] --json out.json

Draws ``--runs`` random subsets of 2 or more meshes (seeded) and a batch size for each from
``--batch-sizes`` (smaller and larger than the number of training shapes), trains each with the
defaults for ``--steps`` steps through the trainer, and prints the shape-space health (zero
crossings, latent sensitivity, shapes identified), whether the run reported a collapse, and the
training shapes' sign IoU. Sampled meshes are cached in ``--cache-dir``.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inr_gon.training import SdfConfig, Trainer  # noqa: E402
from inr_gon.training.tasks.sdf_data import mesh_files  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--meshes", required=True, metavar="DIR")
    p.add_argument("--runs", type=int, default=8)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 16])
    p.add_argument("--sizes", type=int, nargs="+", help="subset sizes to draw from (default: 2 .. all meshes)")
    p.add_argument(
        "--num-unseen",
        type=int,
        default=None,
        help="meshes of each subset held out (default: the task's split, a quarter; 0: train on all)",
    )
    p.add_argument("--cache-dir", default=None, help="mesh sample cache (default: a temporary folder)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="PATH")
    a = p.parse_args(argv)
    files = mesh_files(a.meshes)
    rng = random.Random(a.seed)
    cache = Path(a.cache_dir) if a.cache_dir else Path(tempfile.mkdtemp(prefix="inr_gon_cache_"))
    rows = []
    for r in range(a.runs):
        k = rng.choice(a.sizes) if a.sizes else rng.randint(2, len(files))
        subset = sorted(rng.sample(files, k))
        batch = rng.choice(a.batch_sizes)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            for f in subset:
                shutil.copy(f, folder / f.name)
            cfg = SdfConfig(
                meshes=str(folder),
                steps=a.steps,
                batch_size=batch,
                cache_dir=str(cache),
                device="cpu",
                out=None,
                eval_every=10**9,
                num_unseen=a.num_unseen,
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t = Trainer(cfg, quiet=True)
                info = t.fit()
            field = t.task.field_metrics(t.task.shapes.train_index)
        row = {
            "meshes": [f.stem for f in subset],
            "batch_size": batch,
            "num_train": len(t.task.shapes.train_index),
            "collapsed": info["collapsed"],
            "reasons": info["collapse_reasons"],
            **info["health"],
            "train_sign_iou": field["sign_iou"],
        }
        rows.append(row)
        print(
            f"{r:2d}: {len(subset)} meshes ({row['num_train']} train), batch {batch:2d}: "
            f"{'COLLAPSED ' + '; '.join(row['reasons']) if row['collapsed'] else 'ok'} | sign IoU "
            f"{row['train_sign_iou']:.3f} cross {row['zero_crossing']:.2f} sens {row['latent_sensitivity']:.3f} "
            f"ident {row['identified']:.2f} | {', '.join(row['meshes'])}",
            flush=True,
        )
    print(f"collapsed: {sum(r['collapsed'] for r in rows)} of {len(rows)} runs")
    if a.json:
        Path(a.json).write_text(json.dumps({"steps": a.steps, "runs": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
