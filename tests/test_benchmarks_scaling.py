"""benchmarks/scaling.py runs in --quick mode, writes its JSON and figure, and skips cells that
would not fit the memory limit."""

import json
import math

import torch

from conftest import load_benchmark


def test_scaling_benchmark_quick_and_memory_guard(tmp_path, capsys):
    bench = load_benchmark("scaling")
    threads = torch.get_num_threads()
    try:
        assert bench.main(["--quick", "--json", str(tmp_path / "s.json"), "--out", str(tmp_path / "figs")]) == 0
        res = json.loads((tmp_path / "s.json").read_text())
        forms = set(bench.STEPS + bench.INNERS)
        cells = {(c["formulation"], c["resolution"]): c for c in res["cells"]}
        assert set(cells) == {(f, s) for f in forms for s in (28, 64)}
        for c in cells.values():
            assert c["status"] == "ok", c
            assert math.isfinite(c["seconds"]) and c["seconds"] > 0
            assert c["estimated_gib"] > 0
        assert {s["formulation"] for s in res["slopes"]} == forms
        assert all(s["slope"] is not None and math.isfinite(s["slope"]) for s in res["slopes"])
        assert {(r["resolution"], r["channels"]) for r in res["ratios"]} == {(28, 1), (64, 1)}
        assert all(r["official_over_exact"] > 0 and r["inner_ratio"] > 0 for r in res["ratios"])
        assert res["info"]["torch"] == torch.__version__ and res["info"]["threads"] >= 1
        assert (tmp_path / "figs" / "scaling.png").stat().st_size > 0
        out = capsys.readouterr().out
        assert "official/this" in out and "slope" in out

        # a tiny memory limit: every cell is reported as skipped, none is run
        assert (
            bench.main(
                [
                    "--quick",
                    "--memory-limit-gib",
                    "0.001",
                    "--json",
                    str(tmp_path / "t.json"),
                    "--out",
                    str(tmp_path / "tiny"),
                ]
            )
            == 0
        )
        tiny = json.loads((tmp_path / "t.json").read_text())
        assert len(tiny["cells"]) == len(forms) * 2
        for c in tiny["cells"]:
            assert c["status"] == "skipped" and "seconds" not in c
            assert c["reason"].startswith("skipped: would need ~") and "> available 0.001 GiB" in c["reason"]
        assert (tmp_path / "tiny" / "scaling.png").exists()
    finally:
        torch.set_num_threads(threads)
