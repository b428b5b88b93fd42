"""benchmarks/sdf_split.py end to end at a tiny size: a mesh tree, prepared, two models trained on
the train split, the whole test split evaluated, the JSON written."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import sdf_split  # noqa: E402


def test_sdf_split_runs_end_to_end(tmp_path):
    out = tmp_path / "bench"
    argv = ["--out", str(out), "--procedural", "6", "--meshes", "", "--samples", "3000", "--seconds", "3",
            "--refine", "0,2", "--ad-iterations", "2", "--mesh-resolution", "16", "--json", str(tmp_path / "r.json"),
            "--common", "--hidden 16 --layers 2 --latent 4 --pool 1024 --points 128 --batch-size 2 "
            "--mesh-resolution 12 --eval-shapes 1 --slerp-frames 2"]  # fmt: skip
    assert sdf_split.main(argv) == 0
    res = json.loads((tmp_path / "r.json").read_text())
    test_ids = [i for ids in res["test"]["tree"].values() for i in ids]
    assert set(res["methods"]) == {"gon_refine0", "gon_refine2", "autodecoder_2"}
    for method in res["methods"].values():
        assert sorted(r["id"] for r in method["per_shape"]) == sorted(test_ids)  # every shape of the split
        assert method["summary"]["shapes"] == len(test_ids) and "median" in method["summary"]["sign_iou"]
