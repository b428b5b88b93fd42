"""Non-finite losses, parameters and data: stop naming the step (or skip and count), the last
good checkpoint stays, a NaN/Inf model is never saved, NaN/Inf data is refused up front."""

from __future__ import annotations

import pytest
import torch

from inr_gon.training import NonFiniteLossError, SdfConfig, Trainer
from inr_gon.training.checkpoint import load_checkpoint

from conftest import poison, sha, tiny_config, tiny_dataset


def test_nonfinite_loss_stops_at_once_and_keeps_last_good_checkpoint(tmp_path):
    t = Trainer(tiny_config(tmp_path, steps=12, checkpoint_every=2, eval_every=100), dataset=tiny_dataset(), quiet=True)
    t.prepare_run_dir(resume=False, overwrite=False)
    poison(t, 7)
    hashes = {}
    real_save = t.save

    def save():
        p = real_save()
        hashes[p.name] = sha(p)
        return p

    t.save = save
    with pytest.raises(NonFiniteLossError, match=r"at step 7; the last good checkpoint is .*ckpt_step0000006\.pt"):
        t.fit()
    assert t.step == 6  # stopped at once, no update from step 7
    names = sorted(p.name for p in tmp_path.glob("ckpt_step*.pt"))
    assert names == ["ckpt_step0000002.pt", "ckpt_step0000004.pt", "ckpt_step0000006.pt"]
    assert all(sha(tmp_path / n) == hashes[n] for n in names)  # untouched since written
    state = load_checkpoint(tmp_path / "ckpt_step0000006.pt")
    for name, v in t.model.state_dict().items():
        assert torch.equal(v, state["model"][name])
    # resuming continues from the last good checkpoint
    t2 = Trainer(tiny_config(tmp_path, steps=8, checkpoint_every=2, eval_every=100), dataset=tiny_dataset(), quiet=True)
    t2.prepare_run_dir(resume=True, overwrite=False)
    assert t2.step == 6
    t2.fit()
    assert t2.step == 8


def test_nonfinite_loss_skip_mode_skips_the_batch(tmp_path):
    t = Trainer(
        tiny_config(tmp_path, steps=10, checkpoint_every=2, eval_every=100, on_nonfinite="skip"),
        dataset=tiny_dataset(),
        quiet=True,
    )
    t.prepare_run_dir(resume=False, overwrite=False)
    poison(t, {3, 8})
    before = {}
    real = t.train_step

    def step(batch):
        if t.step + 1 == 3:
            before.update({k: v.clone() for k, v in t.model.state_dict().items()})
        if t.step + 1 == 4:  # the model entering step 4 is the one that entered step 3
            assert all(torch.equal(before[k], v) for k, v in t.model.state_dict().items())
        return real(batch)

    t.train_step = step
    metrics = t.fit()
    assert t.step == 10 and t.skipped == 2 and metrics["skipped_steps"] == 2
    assert all(bool(torch.isfinite(p).all()) for p in t.model.parameters())
    assert load_checkpoint(tmp_path / "ckpt_step0000010.pt")["skipped"] == 2


def test_nonfinite_model_is_never_saved(tmp_path):
    t = Trainer(
        tiny_config(tmp_path, steps=4, checkpoint_every=2, eval_every=100, on_nonfinite="skip"),
        dataset=tiny_dataset(),
        quiet=True,
    )
    t.prepare_run_dir(resume=False, overwrite=False)
    t.fit()
    good = {p.name: sha(p) for p in tmp_path.glob("ckpt_step*.pt")}
    with torch.no_grad():
        next(t.model.parameters())[0] = float("inf")
    t.step += 2
    with pytest.raises(NonFiniteLossError, match=r"step 6; not saved; the last good checkpoint is .*step0000004"):
        t.save()
    assert {p.name: sha(p) for p in tmp_path.glob("ckpt_step*.pt")} == good


@pytest.mark.parametrize("split,value", [("train", float("nan")), ("test", float("inf")), ("train", -float("inf"))])
def test_nonfinite_data_is_refused_before_anything_is_written(tmp_path, split, value):
    ds = tiny_dataset()
    getattr(ds, f"{split}_images")[3, 0, 5, 5] = value
    with pytest.raises(ValueError, match=f"{split} images contain NaN or Inf"):
        Trainer(tiny_config(tmp_path / "run"), dataset=ds, quiet=True)
    assert not (tmp_path / "run").exists()


# -- the SDF task (the same trainer and NonFiniteGuard) -----------------------------------------
def _sdf_trainer(tmp_path=None, **kw):
    base = dict(
        num_shapes=6,
        num_unseen=1,
        pool=256,
        points=64,
        batch_size=2,
        hidden=16,
        layers=2,
        latent=4,
        steps=6,
        checkpoint_every=2,
        log_every=100,
        device="cpu",
        out=str(tmp_path) if tmp_path else None,
        lr_schedule="constant",
        schedule_by="steps",
    )  # runs of different lengths compare alike
    base.update(kw)
    t = Trainer(SdfConfig(**base), quiet=True)
    t.prepare_run_dir(resume=False, overwrite=False)
    return t


def test_sdf_nonfinite_loss_stops_at_once_and_keeps_last_good_checkpoint(tmp_path):
    t = _sdf_trainer(tmp_path)
    assert not t.deferred  # the CPU default
    poison(t, 3)
    with pytest.raises(NonFiniteLossError, match=r"at step 3; the last good checkpoint is .*ckpt_step0000002\.pt"):
        t.fit()
    assert t.step == 2 and sorted(p.name for p in tmp_path.glob("ckpt_step*.pt")) == ["ckpt_step0000002.pt"]


def test_sdf_deferred_check_applies_no_update_from_the_bad_step():
    ref = _sdf_trainer(steps=2, nonfinite_check="deferred")  # the same (fused) Adam as the run below
    ref.fit()
    t = _sdf_trainer(nonfinite_check="deferred", checkpoint_every=100)
    assert t.deferred
    poison(t, 3)
    with pytest.raises(NonFiniteLossError, match="at step 3 "):
        t.fit()
    assert t.step == 6  # noticed at the end (no host sync per step) ...
    for a, b in zip(t.model.parameters(), ref.model.parameters()):
        assert torch.equal(a, b)  # ... but nothing was applied from step 3 on


@pytest.mark.parametrize("check", ["immediate", "deferred"])
def test_sdf_nonfinite_skip_mode_counts(tmp_path, check):
    t = _sdf_trainer(tmp_path, on_nonfinite="skip", nonfinite_check=check)
    poison(t, 2)
    info = t.fit()
    assert info["steps"] == 6 and info["skipped_steps"] == 1
    assert all(bool(torch.isfinite(p).all()) for p in t.model.parameters())
    assert torch.load(tmp_path / "ckpt_step0000006.pt", weights_only=True)["skipped"] == 1
