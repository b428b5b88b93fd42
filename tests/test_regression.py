"""Behaviour regression: the same short fixed-seed CPU runs as before the trainer redesign give
the same parameters (up to float rounding).

``tests/fixtures/regression/*.pt`` were recorded by the pre-redesign trainers and loops (commit
7396fc4, ``tests/fixtures/record_regression.py`` there): the image and SDF trainers, the
conversion loop and the loop of ``benchmarks/paper_claims.py``. Every run here goes through the
one :class:`~inr_gon.training.Trainer`. The paper-claims loop drew batches with replacement
(``torch.randint``); the trainer's default is a seeded permutation, so those runs install the
old draw as the sampler to prove that the step itself is unchanged.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from inr_gon.training import Trainer
from inr_gon.training.tasks import (
    AutoencoderConfig,
    ClassifierConfig,
    ConversionConfig,
    ImageConfig,
    SdfConfig,
    VariationalConfig,
)
from inr_gon.variants.modality import area_downsample

from conftest import tiny_dataset

FIXTURES = Path(__file__).parent / "fixtures" / "regression"
# the recorded runs predate the CPU image defaults w0_first 90, latent shifts and bf16: pinned to what they used
TINY = dict(
    hidden=16,
    layers=2,
    latent=4,
    device="cpu",
    seconds=0.0,
    checkpoint_every=10**6,
    w0_first=30.0,
    latent_shifts=False,
    amp="off",
)


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # the fixtures were recorded with one thread
    yield
    torch.set_num_threads(n)


# Equal up to float rounding: the fixtures were recorded on another CPU, whose kernels may sum in
# another order (parameters 1e-8 apart on a later machine after 30 steps); any change of the step
# itself (a loss, a schedule, a default) moves them by 1e-4 or more.
ATOL = 1e-6
# A convolution's bias right before a BatchNorm has an exactly zero gradient: only rounding noise
# reaches it, which Adam scales up to steps of ~lr, so it (and the running mean that follows it) is
# noise on any machine but the recording one; the function does not depend on it.
NOISE_ONLY = {
    "variational": {
        "decoder.main.0.bias",
        "decoder.main.1.running_mean",
        "decoder.main.3.bias",
        "decoder.main.4.running_mean",
    }
}


def assert_same(name: str, model: torch.nn.Module) -> None:
    want = torch.load(FIXTURES / f"{name}.pt", weights_only=True)["params"]
    got = model.state_dict()
    assert set(got) == set(want), name
    for k, v in want.items():
        if k in NOISE_ONLY.get(name, ()):
            continue
        assert torch.allclose(got[k], v, rtol=0, atol=ATOL), (
            f"{name}: {k} differs by {float((got[k].double() - v.double()).abs().max()):.3g}"
        )


def labels_of(images):
    m = images.flatten(1).mean(1)
    return (m > m.median()).long()


class ReplacementSampler:
    """The paper-claims loop's batches: ``torch.randint(0, n, (B,))`` from a seeded generator."""

    def __init__(self, n, batch, seed=0):
        self.n, self.batch, self.g = n, batch, torch.Generator().manual_seed(seed)

    def next(self):
        return torch.randint(0, self.n, (self.batch,), generator=self.g)


def test_image_task_is_unchanged():
    # the fixture's step is the paper's plain gradient (the Gauss-Newton step is checked against autograd in test_gon)
    cfg = ImageConfig(
        steps=30,
        batch_size=8,
        lr=1e-3,
        lr_schedule="cosine",
        outer_fraction=0.5,
        eval_every=10,
        eval_images=12,
        log_every=5,
        out=None,
        gauss_newton=0.0,
        **TINY,
    )
    t = Trainer(cfg, dataset=tiny_dataset(), quiet=True)
    m = t.fit()
    assert_same("image", t.model)
    ref = torch.load(FIXTURES / "image.pt", weights_only=True)
    assert t.history["loss"] == pytest.approx(ref["loss"], rel=1e-6) and m["test_psnr"] == pytest.approx(
        ref["test_psnr"], rel=1e-6
    )


@pytest.mark.parametrize("name,kw", [("sdf", dict(eikonal=0.1)), ("sdf_shared", dict(inner="shared"))])
def test_sdf_task_is_unchanged(name, kw):
    # the 0.1 defaults (one clamped L1 for both integrals, inner weight 0.3, constant lr)
    cfg = SdfConfig(
        num_shapes=6,
        num_unseen=1,
        pool=256,
        points=64,
        batch_size=2,
        steps=30,
        log_every=5,
        lr=2e-4,
        outer_loss="clamped_l1",
        inner_loss="clamped_l1",
        inner_weight=0.3,
        lr_schedule="constant",
        eval_every=10,
        fresh_shapes=0.0,
        **TINY,
        **kw,
    )
    t = Trainer(cfg, quiet=True)
    t.fit()
    assert_same(name, t.model)
    assert t.history["loss"] == pytest.approx(torch.load(FIXTURES / f"{name}.pt", weights_only=True)["loss"], rel=1e-6)


def test_conversion_task_is_unchanged():
    ds = tiny_dataset()
    cfg = ConversionConfig(
        steps=30,
        batch_size=8,
        lr=1e-3,
        inner_weight=4 / 64,
        outer_fraction=0.5,
        log_every=5,
        lr_schedule="constant",
        eval_every=10,
        **TINY,
    )
    t = Trainer(cfg, sources=area_downsample(ds.train_images, 2), targets=ds.train_images, quiet=True)
    t.fit()
    assert_same("conversion", t.model)
    # the old loop divided the loss by the pixel count in double precision, the trainer in float32
    assert t.history["loss"] == pytest.approx(
        torch.load(FIXTURES / "conversion.pt", weights_only=True)["loss"], rel=1e-6
    )


@pytest.mark.parametrize(
    "name,cfg",
    [
        ("classifier_classifier", ClassifierConfig(mode="classifier", steps=30)),
        ("classifier_joint", ClassifierConfig(mode="joint", steps=30)),
        ("autoencoder", AutoencoderConfig(kind="ae", steps=30)),
        ("vae", AutoencoderConfig(kind="vae", steps=30)),
        ("variational", VariationalConfig(steps=20, latent=8, base_channels=8)),
    ],
)
def test_paper_claims_tasks_are_unchanged(name, cfg):
    import dataclasses

    cfg = dataclasses.replace(
        cfg,
        batch_size=8,
        lr=1e-3,
        lr_schedule="constant",
        eval_every=10,
        **{
            k: v
            for k, v in TINY.items()
            if not (name == "variational" and (k == "latent" or k in VariationalConfig.SIREN_FIELDS))
        },
    )  # conv decoder
    ds = tiny_dataset(size=28 if name == "variational" else 12)
    ds = dataclasses.replace(ds, train_labels=labels_of(ds.train_images), test_labels=labels_of(ds.test_images))
    t = Trainer(cfg, dataset=ds, quiet=True)
    t.sampler = ReplacementSampler(ds.train_images.shape[0], 8)
    t.fit()
    assert_same(name, t.model)
