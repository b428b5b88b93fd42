"""benchmarks/sdf_vs_autodecoder.py: both methods on a tiny procedural set, and the auto-decoder's
unseen shapes evaluated after several numbers of test-time steps."""

import json

import pytest

from conftest import load_benchmark

TINY = (
    "--num-shapes 4 --num-unseen 2 --eval-shapes 2 --pool 256 --points 64 --hidden 16 --latent 4 "
    "--batch-size 2 --mesh-resolution 12 --slerp-frames 2 --amp off"
)


def test_both_methods_and_the_encode_sweep(tmp_path, capsys):
    bench = load_benchmark("sdf_vs_autodecoder")
    out = tmp_path / "r.json"
    assert (
        bench.main(
            [
                "--seconds",
                "1",
                "--encode-iterations",
                "3",
                "--encode-sweep",
                "0,3",
                "--common",
                f"{TINY} --out {tmp_path / 'run'} --overwrite",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    res = json.loads(out.read_text())
    assert set(res["results"]) == {"gon", "autodecoder"} and res["encode_sweep"] == [0, 3]
    ad, gon = res["results"]["autodecoder"], res["results"]["gon"]
    assert "unseen_by_encode_iterations" not in gon
    sweep = ad["unseen_by_encode_iterations"]
    assert list(sweep) == ["0", "3"]
    # the sweep's entry at the benchmark's own step count is the main row's evaluation, recomputed
    assert sweep["3"]["iou"] == pytest.approx(ad["unseen_iou"]) and sweep["3"]["chamfer"] == pytest.approx(
        ad["unseen_chamfer"]
    )
    assert all(r["encode_seconds"] >= 0 and 0 <= r["iou"] <= 1 for r in sweep.values())
    assert "3 Adam steps per unseen shape" in capsys.readouterr().out


@pytest.mark.parametrize("bad", ["a,b", "-1", ","])
def test_a_bad_sweep_is_one_line_and_exit_2(bad, capsys):
    bench = load_benchmark("sdf_vs_autodecoder")
    with pytest.raises(SystemExit) as e:
        bench.main(["--encode-sweep", bad])
    assert e.value.code == 2 and "--encode-sweep" in capsys.readouterr().err
