"""``inr-gon prepare`` and split-based shape experiments: a ShapeNet-layout tree of small meshes
through prepare -> train (a few steps) -> whole-split evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh

from inr_gon.cli import main
from inr_gon.data.deepsdf import read_deepsdf
from inr_gon.data.errors import DataError
from inr_gon.data.prepare import find_meshes, prepare, shard_of

SHAPES = {
    ("02691156", "a1"): lambda: trimesh.creation.icosphere(subdivisions=2, radius=0.5),
    ("02691156", "b2"): lambda: trimesh.creation.box((1.0, 0.5, 0.3)),
    ("03001627", "c3"): lambda: trimesh.creation.capsule(height=0.6, radius=0.2, count=(8, 8)),
    ("03001627", "d4"): lambda: trimesh.creation.cylinder(radius=0.3, height=0.8),
}
SMALL = dict(samples=3000, surface=500, progress=False)


@pytest.fixture
def shapenet(tmp_path) -> Path:
    """``<synset>/<id>/models/model_normalized.obj``: every file has the same name."""
    root = tmp_path / "ShapeNetCore"
    for (c, i), make in SHAPES.items():
        folder = root / c / i / "models"
        folder.mkdir(parents=True)
        make().export(folder / "model_normalized.obj")
    return root


def split_file(path: Path, ids: dict, dataset: str = "meshes") -> Path:
    path.write_text(json.dumps({dataset: ids}))
    return path


def test_shapenet_layout_is_found_by_class_and_id(shapenet, tmp_path):
    entries = find_meshes(shapenet)
    assert [(e.class_id, e.shape_id) for e in entries] == sorted(SHAPES)
    flat = tmp_path / "flat"
    flat.mkdir()
    trimesh.creation.box((1, 1, 1)).export(flat / "cube.ply")
    assert [(e.class_id, e.shape_id) for e in find_meshes(flat)] == [("flat", "cube")]
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no mesh files"):
        find_meshes(tmp_path / "empty")


def test_prepared_samples_read_back_with_correct_signs_and_frames(shapenet, tmp_path):
    import igl

    out = tmp_path / "prepared"
    rec = prepare(shapenet, out, **SMALL)
    assert (rec["prepared"], rec["skipped"], rec["failed"]) == (4, 0, 0) and rec["meshes_per_minute"] > 0
    assert json.loads((out / "prepare.json").read_text())["parameters"]["samples"] == 3000
    records = read_deepsdf(out)
    assert sorted((r.class_id, r.id) for r in records) == sorted(SHAPES)
    for r in records:
        assert (
            r.pos.shape[0] + r.neg.shape[0] == 3000 and bool((r.pos[:, 3] > 0).all()) and bool((r.neg[:, 3] <= 0).all())
        )
        assert np.linalg.norm(r.surface_points(normalised=True), axis=1).max() <= 1.0
        # signs against generalised winding numbers of the normalised closed mesh
        mesh = SHAPES[(r.class_id, r.id)]()
        mesh.vertices = (mesh.vertices + r.offset) * r.scale
        rows = torch.cat([r.pos, r.neg]).double().numpy()
        inside = np.asarray(igl.fast_winding_number(mesh.vertices, mesh.faces.astype(np.int64), rows[:, :3])) > 0.5
        assert np.mean(inside == (rows[:, 3] <= 0)) >= 0.995


def test_prepare_resumes_skips_finished_shapes_and_redoes_a_truncated_one(shapenet, tmp_path):
    out = tmp_path / "prepared"
    prepare(shapenet, out, **SMALL)
    again = prepare(shapenet, out, **SMALL)
    assert (again["prepared"], again["skipped"]) == (0, 4)
    victim = out / "SdfSamples" / "meshes" / "03001627" / "c3.npz"
    victim.write_bytes(victim.read_bytes()[:100])  # an interrupted write
    third = prepare(shapenet, out, **SMALL)
    assert (third["prepared"], third["skipped"]) == (1, 3)
    assert len(read_deepsdf(out)) == 4
    with pytest.raises(DataError, match="prepared with other parameters \\(samples 3000 -> 4000\\)"):
        prepare(shapenet, out, **{**SMALL, "samples": 4000})


def test_shards_partition_the_meshes(shapenet, tmp_path):
    entries = find_meshes(shapenet)
    parts = [shard_of(entries, (i, 3)) for i in range(3)]
    key = lambda e: (e.class_id, e.shape_id)
    assert sorted(map(key, (e for p in parts for e in p))) == sorted(map(key, entries))
    assert sum(map(len, parts)) == len(entries)
    for i in range(2):
        prepare(shapenet, tmp_path / "out", shard=(i, 2), **SMALL)
    assert len(read_deepsdf(tmp_path / "out")) == 4


def test_a_failed_mesh_is_named_and_the_others_go_on(shapenet, tmp_path, capsys):
    bad = shapenet / "02691156" / "zz" / "models"
    bad.mkdir(parents=True)
    (bad / "model_normalized.obj").write_text("not a mesh\n")
    out = tmp_path / "prepared"
    argv = ["prepare", str(shapenet), str(out), "--samples", "2000", "--surface", "200", "--quiet"]
    assert main(argv) == 1
    failures = json.loads((out / "failures.json").read_text())
    assert [f["id"] for f in failures] == ["zz"] and "model_normalized.obj" in failures[0]["error"]
    assert len(read_deepsdf(out)) == 4 and "1 failed" in capsys.readouterr().out


def test_splits_name_present_shapes_or_fail_in_one_line(shapenet, tmp_path, capsys):
    missing = split_file(tmp_path / "s.json", {"02691156": ["a1", "nope"]})
    assert main(["prepare", str(shapenet), str(tmp_path / "o"), "--split", str(missing), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "02691156/nope" in err
    empty = split_file(tmp_path / "e.json", {"02691156": []})
    with pytest.raises(DataError, match="names no shapes"):
        prepare(shapenet, tmp_path / "o", split=empty, **SMALL)
    one = split_file(tmp_path / "one.json", {"03001627": ["d4"]})
    assert prepare(shapenet, tmp_path / "o", split=one, **SMALL)["prepared"] == 1


def test_prepare_train_on_a_split_and_evaluate_the_whole_test_split(shapenet, tmp_path, capsys):
    out = tmp_path / "prepared"
    prepare(shapenet, out, **SMALL)
    train = split_file(tmp_path / "train.json", {"02691156": ["a1", "b2"], "03001627": ["c3"]})
    test = split_file(tmp_path / "test.json", {"03001627": ["d4"], "02691156": ["a1"]})
    run = tmp_path / "run"
    argv = [
        "train",
        "sdf",
        "--deepsdf",
        str(out),
        "--split",
        str(train),
        "--test-split",
        str(test),
        "--steps",
        "2",
        "--pool",
        "512",
        "--points",
        "128",
        "--batch-size",
        "2",
        "--hidden",
        "16",
        "--layers",
        "2",
        "--latent",
        "4",
        "--mesh-resolution",
        "12",
        "--eval-shapes",
        "1",
        "--slerp-frames",
        "2",
        "--device",
        "cpu",
        "--quiet",
        "--out",
        str(run),
    ]
    assert main(argv) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["split"] == str(train) and config["test_split"] == str(test)
    capsys.readouterr()
    csv_path = tmp_path / "per_shape.csv"
    assert (
        main(
            [
                "eval",
                "--checkpoint",
                str(run),
                "--split",
                str(test),
                "--csv",
                str(csv_path),
                "--refine",
                "2",
                "--mesh-resolution",
                "16",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    res = json.loads(capsys.readouterr().out)
    lines = csv_path.read_text().splitlines()
    assert lines[0].startswith("class,id,chamfer") and sorted(x.split(",")[1] for x in lines[1:]) == ["a1", "d4"]
    assert res["shapes"] == 2 and set(res["sign_iou"]) == {"mean", "median", "n"}
    # a split naming an absent id is one clear error, not a silent drop
    bad = split_file(tmp_path / "bad.json", {"03001627": ["zz"]})
    assert main(["eval", "--checkpoint", str(run), "--split", str(bad), "--device", "cpu"]) == 2
    assert "zz" in capsys.readouterr().err


def test_a_full_disk_stops_prepare_with_one_line_and_leaves_nothing_half_written(shapenet, tmp_path, monkeypatch):
    import errno

    import inr_gon.data.prepare as prep

    out = tmp_path / "prepared"
    real, calls = np.savez, []

    def savez(path, **arrays):  # the third shape's samples hit a full disk halfway through
        calls.append(path)
        if "pos" in arrays and sum(1 for c in calls if "SdfSamples" in str(c)) == 3:
            Path(path).write_bytes(b"PK\x03\x04 half")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, **arrays)

    monkeypatch.setattr(prep.np, "savez", savez)
    with pytest.raises(DataError, match=r"c3\.npz: no space left on the device") as info:
        prepare(shapenet, out, **SMALL)
    assert len(str(info.value).splitlines()) == 1
    samples = sorted(p.relative_to(out) for p in (out / "SdfSamples").rglob("*") if p.is_file())
    assert [p.name for p in samples] == ["a1.npz", "b2.npz"]  # nothing under the third one's name, no temporary file
    monkeypatch.setattr(prep.np, "savez", real)
    rec = prepare(shapenet, out, **SMALL)  # space again: the rerun resumes
    assert (rec["prepared"], rec["skipped"], rec["failed"]) == (2, 2, 0)
