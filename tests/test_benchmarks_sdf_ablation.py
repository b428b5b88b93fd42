"""benchmarks/sdf_ablation.py: two tiny side-by-side runs, their JSON and their evaluation curves."""

import json

from conftest import load_benchmark


def test_sdf_ablation_writes_results_and_the_evaluation_curve(tmp_path, capsys):
    bench = load_benchmark("sdf_ablation")
    common = (
        f"--out {tmp_path / 'run'} --overwrite --amp off --schedule-by steps --steps 20 --eval-every 10 "
        "--num-shapes 4 --num-unseen 2 --eval-shapes 2 --pool 256 --points 64 --hidden 16 --latent 4 "
        "--batch-size 2 --mesh-resolution 12 --slerp-frames 2"
    )
    assert (
        bench.main(
            [
                "--seconds",
                "0",
                "--common",
                common,
                "--json",
                str(tmp_path / "a.json"),
                "--variant",
                "base",
                "",
                "--variant",
                "w5",
                "--inner-weight 5",
            ]
        )
        == 0
    )
    res = json.loads((tmp_path / "a.json").read_text())
    assert res["variants"] == {"base": "", "w5": "--inner-weight 5"}
    assert set(res["results"]) == {"base", "w5"}
    for r in res["results"].values():
        assert r["steps"] == 20
        assert 0 <= r["train_iou"] <= 1 and 0 <= r["unseen_iou"] <= 1
        assert [c["step"] for c in r["curve"]] == [10, 20]
        assert all(0 <= c["train_sign_iou"] <= 1 and 0 <= c["unseen_sign_iou"] <= 1 for c in r["curve"])
    # the curve is the run's own log (the second run overwrote the first's folder)
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    last = [r for r in logged if r["kind"] == "eval"]
    assert [r["unseen_sign_iou"] for r in last] == [c["unseen_sign_iou"] for c in res["results"]["w5"]["curve"]]
    out = capsys.readouterr().out
    assert "base:" in out and "w5:" in out
