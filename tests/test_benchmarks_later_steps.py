"""benchmarks/later_steps.py: every variant is timed against the one-step reference and written."""

import json

import pytest
from conftest import load_benchmark


def test_later_steps_benchmark_times_every_variant_against_one_step(tmp_path):
    bench = load_benchmark("later_steps")
    out = tmp_path / "l.json"
    assert bench.main(["--latent", "8", "--batch", "2", "--repeats", "1", "--device", "cpu", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [(r["steps"], r["later_fraction"]) for r in rows] == [(s, f or 1.0) for s, f in bench.VARIANTS]
    assert rows[0]["ratio"] == 1.0 and all(r["seconds"] > 0 for r in rows)
    with pytest.raises(SystemExit):
        bench.main(["--repeats", "0"])
