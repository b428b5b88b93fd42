"""Sample pools of DeepSDF files: read from the members' bytes, streamed or held in memory with the same batches."""

import warnings

import numpy as np
import pytest
import torch

from inr_gon.data.errors import DataError
from inr_gon.data.sample_pools import SamplePools, _layout, npz_rows
from inr_gon.training.schedule import BatchSampler
from inr_gon.training.tasks.autodecoder import AutoDecoderConfig
from inr_gon.training.tasks.sdf import SdfConfig
from inr_gon.training.trainer import Trainer

from conftest import write_deepsdf_folder

IDS = ["a", "b", "c", "d", "e", "f"]


@pytest.fixture
def folder(tmp_path):
    return write_deepsdf_folder(tmp_path / "data", IDS, nan_rows=3)


def files(root):
    return sorted((root / "SdfSamples" / "ShapeNetV2" / "02691156").glob("*.npz"))


def test_pools_are_finite_rows_of_the_file_and_the_same_every_read(folder):
    pools = SamplePools(files(folder), pool=200, seed=3)
    pts, sdf = pools.take([0, 2])
    assert pts.shape == (2, 200, 3) and sdf.shape == (2, 200) and pts.dtype == torch.float32
    with np.load(files(folder)[2]) as d:  # the naive reference: the file read whole
        rows = np.concatenate([d["pos"], d["neg"]])
    rows = {tuple(r) for r in rows[np.isfinite(rows).all(1)]}
    got = torch.cat([pts[1], sdf[1, :, None]], 1).numpy()
    assert all(tuple(r) in rows for r in got)  # every pool row is a finite row of its file
    assert torch.isfinite(sdf).all()
    again_pts, again_sdf = pools[2]
    assert torch.equal(again_pts, pts[1]) and torch.equal(again_sdf, sdf[1])
    other = SamplePools(files(folder), pool=200, seed=4)
    assert not torch.equal(other[2][0], pts[1])  # another seed, other rows
    assert not torch.equal(pools[0][0], pools[1][0][: len(pools[0][0])])


def test_compressed_files_give_the_same_pools_as_stored_ones(folder, tmp_path):
    """The memory-mapped read of stored members against the plain read of compressed ones."""
    f = files(folder)[1]
    with np.load(f) as d:
        pos, neg = d["pos"], d["neg"]
    packed = tmp_path / "packed.npz"
    np.savez_compressed(packed, pos=pos, neg=neg)
    (maps, counts), (arrays, counts2) = npz_rows(f), npz_rows(packed)
    assert counts == counts2 == [len(pos), len(neg)]
    assert np.array_equal(maps[0], pos) and np.array_equal(arrays[1], neg, equal_nan=True)
    stored, compressed = (_layout(str(p), p.stat().st_size, p.stat().st_mtime_ns, ("pos",)) for p in (f, packed))
    assert stored[0] is not None and compressed[0] is None  # read from its bytes, and read whole
    (scratch, _), (maps, _) = npz_rows(f, scratch=True), npz_rows(f)
    assert np.array_equal(scratch[1], maps[1], equal_nan=True)
    a = SamplePools([f], pool=500, seed=0)[0]
    b = SamplePools([packed], pool=500, seed=0)[0]
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_the_pool_file_holds_the_pools_and_is_reused(folder, tmp_path):
    pools = SamplePools(files(folder), pool=50, seed=1)
    ref = pools.take([4, 0, 4])
    path = pools.write_pool_file(tmp_path / "p" / "pools.f32")
    assert path.stat().st_size == pools.nbytes == 6 * 50 * 16
    got = pools.take([4, 0, 4])
    assert torch.equal(got[0], ref[0]) and torch.equal(got[1], ref[1])
    ahead = pools.prefetch([4, 0, 4]).result()
    assert torch.equal(ahead[0], ref[0])
    stamp = path.stat().st_mtime_ns
    again = SamplePools(files(folder), pool=50, seed=1)
    again.write_pool_file(path)
    assert path.stat().st_mtime_ns == stamp and again.pool_file == path  # reused
    other = SamplePools(files(folder), pool=50, seed=2)
    other.write_pool_file(path)  # another seed: written anew
    assert path.stat().st_mtime_ns != stamp and torch.equal(
        other.take([1])[0], SamplePools(files(folder), 50, 2)[1][0][None]
    )
    with open(path, "r+b") as fh:  # cut short behind the stamp's back
        fh.truncate(100)
    with pytest.raises(DataError, match="cut short"):
        other.take([5])
    assert SamplePools(files(folder), pool=50, seed=2).write_pool_file(path).stat().st_size == 6 * 50 * 16  # redone


def test_bad_files_are_named(folder, tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, pos=np.zeros((5, 3), np.float32), neg=np.zeros((5, 4), np.float32))
    with pytest.raises(DataError, match=r"bad\.npz.*\(N, 4\)"):
        SamplePools([bad], 8, 0)[0]
    np.savez(bad, pos=np.zeros((5, 4), np.float32))
    with pytest.raises(DataError, match="missing array 'neg'"):
        SamplePools([bad], 8, 0)[0]
    np.savez(bad, pos=np.full((5, 4), np.nan, np.float32), neg=np.zeros((0, 4), np.float32))
    with pytest.raises(DataError, match="NaN"):
        SamplePools([bad], 8, 0)[0]
    bad.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable"):
        SamplePools([bad], 8, 0)[0]


def test_peek_is_the_next_batch_across_epochs():
    s = BatchSampler(5, 2, seed=1)
    for _ in range(7):  # epochs of two batches (the fifth item dropped), a new permutation each
        nxt = s.peek()
        assert torch.equal(nxt, s.next())


def _trainer(cfg_cls, folder, out, stream, **kw):
    cfg = cfg_cls(
        deepsdf=str(folder),
        num_unseen=2,
        pool=64,
        points=32,
        batch_size=2,
        hidden=16,
        layers=2,
        latent=4,
        steps=4,
        seconds=0.0,
        eval_every=2,
        eval_shapes=2,
        mesh_resolution=8,
        slerp_frames=2,
        device="cpu",
        threads=1,
        stream=stream,
        out=str(out),
        **kw,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Trainer(cfg, quiet=True)


@pytest.mark.parametrize(
    "cfg_cls,kw",
    [(SdfConfig, {}), (SdfConfig, {"inner_sampling": "fixed"}), (AutoDecoderConfig, {"encode_iterations": 2})],
)
def test_streamed_and_in_memory_runs_take_the_same_steps(folder, tmp_path, cfg_cls, kw):
    runs = {s: _trainer(cfg_cls, folder, tmp_path / s, s, **kw) for s in ("on", "off")}
    assert runs["on"].task.shapes.stream is not None and runs["on"].task.points is None
    assert runs["off"].task.shapes.stream is None and runs["off"].task.points is not None
    assert "streamed" in runs["on"].task.shapes.storage and "in memory" in runs["off"].task.shapes.storage
    for _ in range(3):  # the same batches, prefetched or not
        a, b = runs["on"].next_batch(), runs["off"].next_batch()
        for x, y in zip(a, b):
            assert torch.equal(x, y)
    metrics = {}
    for s, t in runs.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            metrics[s] = t.fit()
    for p, q in zip(runs["on"].model.parameters(), runs["off"].model.parameters()):
        assert torch.equal(p, q)
    assert runs["on"].last_eval == runs["off"].last_eval and "unseen_sign_iou" in runs["on"].last_eval
    for k in ("unseen_iou", "train_iou", "unseen_chamfer", "train_chamfer"):
        assert metrics["on"][k] == metrics["off"][k], k


def test_auto_streams_above_the_threshold(folder, tmp_path, monkeypatch):
    from inr_gon.training.tasks import sdf_data

    cfg = SdfConfig(deepsdf=str(folder), pool=64, points=32, out=str(tmp_path / "run"))
    assert sdf_data.load_shapes(cfg).stream is None  # 6 x 64 points: held
    monkeypatch.setattr(sdf_data, "STREAM_ABOVE", 1000)
    shapes = sdf_data.load_shapes(cfg)
    assert shapes.stream is not None and shapes.points is None and "--stream off" in shapes.storage
    assert shapes.truth[0].shape == (20, 3) and shapes.normalization[1][1] == 2.0  # read when indexed
    assert SdfConfig(deepsdf="d").resolved(torch.device("cpu")).stream == "auto"
    with pytest.raises(ValueError, match="stream='on' reads --deepsdf"):
        SdfConfig(stream="on").resolved(torch.device("cpu"))
