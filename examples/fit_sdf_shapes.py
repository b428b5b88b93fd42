"""Fit an implicit GON over signed distance fields (SDF shapes), end to end.

    python examples/fit_sdf_shapes.py                     # procedural shapes, offline
    python examples/fit_sdf_shapes.py --meshes DIR        # a folder of meshes (normalised, sampled, cached)
    python examples/fit_sdf_shapes.py --deepsdf DIR       # DeepSDF SdfSamples
    python examples/fit_sdf_shapes.py --help              # every option

Writes meshes (PLY) of training shapes and of unseen shapes encoded in one step (Gauss–Newton), a
slerp between two shapes (PLY + slice strip), SDF slices with the zero level set, metrics.json,
metrics.jsonl, config.json and a checkpoint into --out (default runs/sdf_<source>). Same as
``inr-gon train sdf``.
"""

import sys

from inr_gon.cli import train_main

if __name__ == "__main__":
    sys.exit(train_main(task="sdf"))
