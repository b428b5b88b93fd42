"""benchmarks/latent_frontier.py: --quick writes every cell and the plot; reruns skip finished cells."""

import json

import pytest
from conftest import load_benchmark

METHODS = ("pca", "gon", "gon_gn", "gon_gn2", "gon_gn_enc", "autoencoder", "autodecoder")


def test_quick_frontier_writes_every_cell_and_the_plot_and_resumes(tmp_path, capsys):
    bench = load_benchmark("latent_frontier")
    out = tmp_path / "f.json"
    assert bench.main(["--quick", "--datasets", "mnist", "--ks", "4", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["task"] == "image" and set(res["cells"]) == {f"mnist/4/{m}" for m in METHODS}
    for key, c in res["cells"].items():
        assert c["k"] == 4 and c["dataset"] == "mnist" and key.endswith(c["method"])
        assert 0 < c["test_psnr"] < 100 and -1 <= c["test_ssim"] <= 1, key
        assert c["encode_seconds"] >= 0 and c["train_seconds"] >= 0, key
    gn = res["cells"]["mnist/4/gon_gn"]
    assert gn["lr"] > 0 and gn["decoder"].startswith("SIREN ")  # what the trainer resolved, recorded
    assert res["cells"]["mnist/4/gon_gn_enc"]["options"].startswith("--gauss-newton 0.03 --encode-steps 3")
    ad = res["cells"]["mnist/4/autodecoder"]
    assert set(ad["by_test_steps"]) == {"2", "5"} and ad["test_psnr"] == ad["by_test_steps"]["5"]["test_psnr"]
    assert ad["by_test_steps"]["5"]["encode_seconds"] >= ad["by_test_steps"]["2"]["encode_seconds"]
    assert (tmp_path / "frontier.png").stat().st_size > 10_000
    # a rerun skips finished cells; --cells with --redo runs only the matching ones again
    capsys.readouterr()
    assert bench.main(["--quick", "--datasets", "mnist", "--ks", "4", "--json", str(out)]) == 0
    assert capsys.readouterr().out.count("done before, skipped") == len(METHODS)
    before = res["cells"]
    assert (
        bench.main(
            [
                "--quick",
                "--datasets",
                "mnist",
                "--ks",
                "4",
                "--json",
                str(out),
                "--cells",
                "*/pca",
                "--redo",
                "--plot",
                str(tmp_path / "p.png"),
            ]
        )
        == 0
    )
    after = json.loads(out.read_text())["cells"]
    assert after["mnist/4/gon"] == before["mnist/4/gon"] and (tmp_path / "p.png").is_file()
    assert after["mnist/4/pca"]["test_psnr"] == before["mnist/4/pca"]["test_psnr"]  # deterministic


def test_quick_shape_frontier_writes_pca_gon_and_autodecoder_cells(tmp_path):
    bench = load_benchmark("latent_frontier")
    out = tmp_path / "s.json"
    assert bench.main(["--task", "sdf", "--quick", "--ks", "4", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["task"] == "sdf"
    sdf_methods = ("pca", "gon", "gon_gn", "gon_gn2", "gon_gn_enc", "autodecoder")
    assert set(res["cells"]) == {f"procedural/4/{m}" for m in sdf_methods}
    two = res["cells"]["procedural/4/gon_gn2"]["options"]
    assert two.startswith("--gauss-newton 1 --latent-steps 2 --later-fraction 0.5")
    assert res["cells"]["procedural/4/gon_gn"]["options"].startswith("--gauss-newton 1 ")
    for key, c in res["cells"].items():
        assert 0 <= c["train_grid_iou"] <= 1 and 0 <= c["unseen_grid_iou"] <= 1, key
    for m in sdf_methods[1:]:
        c = res["cells"][f"procedural/4/{m}"]
        assert c["unseen_encode_seconds"] >= 0 and c["steps"] >= 1 and "unseen_chamfer" in c
        # only the auto-decoder's unseen shapes are fitted by Adam steps, and the cell says how many
        assert ("encode_iterations" in c) == (m == "autodecoder"), m
    assert res["cells"]["procedural/4/autodecoder"]["encode_iterations"] >= 1
    # an image run may not write into a shape frontier
    with pytest.raises(SystemExit):
        bench.main(["--quick", "--ks", "4", "--json", str(out)])
    assert (tmp_path / "frontier_sdf.png").is_file() and not (tmp_path / "frontier.png").exists()
