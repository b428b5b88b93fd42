"""Safe loading: a pickle that would run code is refused everywhere a file is loaded
(checkpoints, the SDF sample cache, DeepSDF files); control: the payload is real."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from inr_gon.training.checkpoint import CheckpointError, load_checkpoint

from conftest import Evil, write_evil


def test_crafted_pickles_would_run_code_when_unpickled_unsafely(tmp_path):
    """Control: the crafted payload is real (plain pickle runs it)."""
    marker = tmp_path / "CONTROL"
    pickle.loads(pickle.dumps(Evil(marker)))
    assert marker.exists()


def test_load_checkpoint_refuses_code(tmp_path):
    marker = tmp_path / "MARKER"
    for kind, f in write_evil(tmp_path / "files", marker).items():
        with pytest.raises(CheckpointError, match="refused to load unsafe content") as e:
            load_checkpoint(f)
        assert "\n" not in str(e.value) and f.name in str(e.value)
        assert not marker.exists(), kind


def test_sdf_cache_and_deepsdf_reader_refuse_pickles(tmp_path):
    import trimesh
    from inr_gon.data import read_deepsdf, sample_sdf_cached
    from inr_gon.data.errors import DataError

    marker = tmp_path / "MARKER"
    mesh_file = tmp_path / "ball.obj"
    trimesh.creation.icosphere(subdivisions=1).export(mesh_file)
    kw = dict(num_uniform=50, num_surface=50, seed=1)
    first = sample_sdf_cached(mesh_file, tmp_path / "cache", **kw)
    (entry,) = (tmp_path / "cache").glob("*.npz")
    # (a) the cache entry replaced by a raw pickle, (b) by an .npz holding a pickled object array
    for payload in ("raw", "object_array"):
        if payload == "raw":
            entry.write_bytes(pickle.dumps(Evil(marker)))
        else:
            np.savez(entry.with_suffix(""), points=np.array([Evil(marker)], dtype=object))
        with pytest.warns(UserWarning, match="unreadable cache entry"):
            again = sample_sdf_cached(mesh_file, tmp_path / "cache", **kw)
        assert torch.equal(again.points, first.points)  # recomputed
        assert not marker.exists(), payload
    # DeepSDF sample files
    for i, payload in enumerate(("raw", "object_array", "npy")):
        root = tmp_path / f"deepsdf{i}"
        f = root / "SdfSamples" / "ds" / "cls" / "shape.npz"
        f.parent.mkdir(parents=True)
        if payload == "raw":
            f.write_bytes(pickle.dumps(Evil(marker)))
        elif payload == "object_array":
            with open(f, "wb") as fh:
                np.savez(fh, pos=np.array([Evil(marker)], dtype=object), neg=np.zeros((1, 4)))
        else:
            with open(f, "wb") as fh:
                np.save(fh, np.zeros((3, 4)))  # an .npy named .npz
        with pytest.raises(DataError, match="shape.npz") as e:
            read_deepsdf(root)
        assert "\n" not in str(e.value)
        assert not marker.exists(), payload
