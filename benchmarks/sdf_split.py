"""The standard shape experiment end to end: prepare a mesh tree, train on a split, evaluate the
whole test split — the GON (one step, then ``--refine`` Adam steps) beside the auto-decoder.

    python benchmarks/sdf_split.py --seconds 240 --json docs/figures/sdf_split.json

1. A ShapeNet-layout tree (``<class>/<id>/models/model_normalized.obj``) of ``--procedural``
   shapes of the procedural family (meshed at 96³) and, when present, the real meshes of
   ``--meshes`` (default ``../shared/datasets/meshes``);
2. ``inr-gon prepare`` into DeepSDF's layout (``--samples`` per shape), and DeepSDF split files:
   the last ``--test-fraction`` of each class is the test split;
3. the GON (``inr-gon train sdf``) and the auto-decoder (``inr-gon train autodecoder``), each for
   ``--seconds`` on the train split;
4. ``evaluate_split`` on the whole test split: the GON with ``--refine`` Adam steps on its latent
   (0: its one step), the auto-decoder with ``--ad-iterations`` Adam steps on a fresh code;
   mean and median Chamfer (DeepSDF's, original frame), F-score and the encoding seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inr_gon.cli import main as cli  # noqa: E402


def build_tree(root: Path, procedural: int, meshes: Path | None, seed: int) -> None:
    from inr_gon.geometry.mesh import extract_mesh
    from inr_gon.geometry.shapes import ProceduralShapes

    for i, shape in enumerate(ProceduralShapes(procedural, seed=seed)):
        folder = root / "procedural" / f"p{i:04d}" / "models"
        if (folder / "model_normalized.obj").is_file():
            continue
        folder.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            extract_mesh(shape, 96, (-1.0, 1.0), device="cpu").export(folder / "model_normalized.obj")
    if meshes is not None and meshes.is_dir():
        for f in sorted(meshes.iterdir()):
            if f.suffix.lower() in (".obj", ".ply", ".stl", ".off"):
                folder = root / "scans" / f.stem / "models"
                folder.mkdir(parents=True, exist_ok=True)
                target = folder / f"model_normalized{f.suffix.lower()}"
                if not target.exists():
                    target.symlink_to(f.resolve())


def splits(data: Path, dataset: str, test_fraction: float) -> tuple[dict, dict]:
    train, test = {dataset: {}}, {dataset: {}}
    for cls in sorted((data / "SdfSamples" / dataset).iterdir()):
        ids = sorted(f.stem for f in cls.glob("*.npz"))
        n_test = max(1, round(len(ids) * test_fraction))
        train[dataset][cls.name], test[dataset][cls.name] = ids[:-n_test], ids[-n_test:]
    return train, test


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/sdf_split", help="working folder (tree, data, runs)")
    p.add_argument("--procedural", type=int, default=64, help="procedural shapes in the tree")
    p.add_argument("--meshes", default="../shared/datasets/meshes", help="real meshes to add (if the folder exists)")
    p.add_argument("--samples", type=int, default=50_000, help="SDF samples per prepared shape")
    p.add_argument("--workers", type=int, default=2, help="processes of the preparation")
    p.add_argument("--test-fraction", type=float, default=0.25, help="the share of each class in the test split")
    p.add_argument("--seconds", type=float, default=240.0, help="training seconds of each model")
    p.add_argument("--refine", default="0,10,100", help="the GON's refinement steps to evaluate (comma-separated)")
    p.add_argument("--ad-iterations", default="10,100", help="the auto-decoder's encoding steps (comma-separated)")
    p.add_argument("--mesh-resolution", type=int, default=64, help="marching-cubes grid of the evaluation")
    p.add_argument("--common", default="", help="more inr-gon train options for both models")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="PATH", help="write the results here")
    p.add_argument("--reuse", action="store_true", help="evaluate the models already trained in --out")
    a = p.parse_args(argv)
    import shlex

    from inr_gon.data.prepare import prepare
    from inr_gon.training.run import load_run
    from inr_gon.training.split_eval import evaluate_split, summarize

    out = Path(a.out)
    t0 = time.perf_counter()
    build_tree(out / "tree", a.procedural, Path(a.meshes) if a.meshes else None, a.seed)
    rec = prepare(out / "tree", out / "data", dataset="tree", samples=a.samples, surface=30_000, workers=a.workers)
    print(f"prepared {rec['prepared']} (skipped {rec['skipped']}, failed {rec['failed']}) in {rec['seconds']:.0f} s")
    train, test = splits(out / "data", "tree", a.test_fraction)
    for name, split in (("train", train), ("test", test)):
        (out / f"{name}.json").write_text(json.dumps(split, indent=1))
    common = [
        "--deepsdf", str(out / "data"), "--split", str(out / "train.json"), "--test-split", str(out / "test.json"),
        "--seconds", f"{a.seconds:g}", "--steps", "10000000", "--eval-every", "10000000", "--quiet", "--overwrite",
        "--seed", str(a.seed), *shlex.split(a.common),
    ]  # fmt: skip
    results = {"prepare": rec, "train": train, "test": test, "seconds": a.seconds, "common": " ".join(common)}
    for task in ("sdf", "autodecoder"):
        if a.reuse and list((out / task).glob("ckpt_step*.pt")):
            continue
        extra = ["--encode-iterations", a.ad_iterations.split(",")[-1]] if task == "autodecoder" else []
        assert cli(["train", task, *common, *extra, "--out", str(out / task)]) == 0, f"training {task} failed"
    gon, ad = load_run(out / "sdf", device="cpu"), load_run(out / "autodecoder", device="cpu")
    rows = {}
    for r in (int(x) for x in a.refine.split(",")):
        rows[f"gon_refine{r}"] = evaluate_split(gon, out / "data", out / "test.json", refine=r,
                                                resolution=a.mesh_resolution)  # fmt: skip
    for n in (int(x) for x in a.ad_iterations.split(",")):
        ad.config.encode_iterations = n
        rows[f"autodecoder_{n}"] = evaluate_split(ad, out / "data", out / "test.json", resolution=a.mesh_resolution)
    results["methods"] = {k: {"summary": summarize(v), "per_shape": v} for k, v in rows.items()}
    results["total_seconds"] = round(time.perf_counter() - t0, 1)
    print(f"{'method':18s} {'Chamfer mean':>13s} {'median':>10s} {'F@0.01':>7s} {'encode s':>9s}")
    for k, v in results["methods"].items():
        s = v["summary"]
        ch, fs, es = s["chamfer"], s["fscore@0.01"], s["encode_seconds"]
        print(f"{k:18s} {ch['mean'] if ch else float('nan'):13.5f} {ch['median'] if ch else float('nan'):10.5f} "
              f"{fs['mean'] if fs else float('nan'):7.3f} {es['mean']:9.3f}")  # fmt: skip
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(results, indent=1, default=str) + "\n")
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
