"""Modality conversion (inner loss on a source signal, outer loss on a target) and the
super-resolution example."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import inr_gon as ig
from inr_gon.training import fit_conversion
from inr_gon.variants.modality import area_downsample, conversion_loss, convert, encode_source, upsample

ROOT = Path(__file__).resolve().parents[1]


def naive_conversion(model, source, target, loss_fn, inner_scale):
    """The textbook formulation: z = -∇_{z0} scale·Σ ℓ(F(c_src ⊕ z0), s) by autograd with
    create_graph, then the batch mean of Σ ℓ(F(c_tgt ⊕ z), x)."""
    B = source.shape[0]
    cs, ct = ig.grid(tuple(source.shape[2:]), dtype=source.dtype), ig.grid(tuple(target.shape[2:]), dtype=target.dtype)
    z0 = torch.zeros(B, model.latent_dim, dtype=source.dtype, requires_grad=True)
    inner = inner_scale * loss_fn(model.forward_concat(cs, z0), ig.image_to_points(source)).sum()
    z = -torch.autograd.grad(inner, z0, create_graph=True)[0]
    outer = loss_fn(model.forward_concat(ct, z), ig.image_to_points(target)).sum(dim=(1, 2)).mean()
    return outer, z


@pytest.mark.parametrize("loss", ["mse", "bce"])
def test_conversion_step_equals_naive_autograd(loss):
    torch.manual_seed(0)
    model = ig.LatentSiren(2, 5, 2, 12, 3, w0=5.0, w0_first=5.0).double()
    target = torch.rand(3, 2, 8, 6, dtype=torch.float64)
    source = area_downsample(target, 2)
    loss_fn = ig.get_loss(loss)
    ref_loss, ref_z = naive_conversion(model, source, target, loss_fn, 0.3)
    ref_grads = torch.autograd.grad(ref_loss, list(model.parameters()))
    got_loss, got_z = conversion_loss(model, source, target, loss=loss, inner_scale=0.3)
    got_grads = torch.autograd.grad(got_loss, list(model.parameters()))
    torch.testing.assert_close(got_z, ref_z, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(got_loss, ref_loss, rtol=1e-10, atol=1e-12)
    for g, r in zip(got_grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-9, atol=1e-11)


def test_encode_source_and_convert_match_the_training_latent():
    torch.manual_seed(0)
    model = ig.LatentSiren(2, 4, 1, 16, 2).double()
    target = torch.rand(5, 1, 12, 12, dtype=torch.float64)
    source = area_downsample(target, 3)
    _, z = conversion_loss(model, source, target, inner_scale=0.25, create_graph=False)
    z2 = encode_source(model, source, inner_scale=0.25, batch_size=2)
    torch.testing.assert_close(z2, z, rtol=0, atol=1e-12)
    out = convert(model, source, 12, inner_scale=0.25, batch_size=2, chunk_size=50)
    torch.testing.assert_close(out, ig.render(model, z, 12), rtol=0, atol=1e-12)
    assert convert(model, source, (30, 20), inner_scale=0.25).shape == (5, 1, 30, 20)  # any resolution
    assert convert(model, source[:0], 7).shape == (0, 1, 7, 7)


def test_area_downsample_and_upsample_baselines():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    torch.testing.assert_close(area_downsample(x, 2), torch.tensor([[[[2.5, 4.5], [10.5, 12.5]]]]))
    assert area_downsample(x, 1) is x
    with pytest.raises(ValueError, match="multiple"):
        area_downsample(x, 3)
    with pytest.raises(ValueError, match="factor"):
        area_downsample(x, 0)
    lo = torch.tensor([[[[0.0, 1.0], [1.0, 0.0]]]])
    for mode in ("nearest", "bilinear", "bicubic"):
        up = upsample(lo, 4, mode=mode)
        assert up.shape == (1, 1, 4, 4) and up.min() >= 0 and up.max() <= 1  # bicubic overshoot clamped
    torch.testing.assert_close(upsample(lo, 4, mode="nearest")[0, 0, :2, :2], torch.zeros(2, 2))
    with pytest.raises(ValueError, match="mode"):
        upsample(lo, 4, mode="lanczos")


def test_conversion_rejects_mismatched_pairs_and_bad_options():
    model = ig.LatentSiren(2, 4, 1, 8, 1)
    with pytest.raises(ValueError, match="differ"):
        conversion_loss(model, torch.rand(2, 1, 4, 4), torch.rand(3, 1, 8, 8))
    with pytest.raises(ValueError, match="lr"):
        fit_conversion(model, torch.rand(2, 1, 4, 4), torch.rand(2, 1, 8, 8), steps=1, lr=-1.0)


def test_fit_conversion_learns_a_tiny_superresolution_task():
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 16), torch.linspace(-1, 1, 16), indexing="ij")
    c = torch.rand(32, 2, generator=g) - 0.5
    d = ((yy - c[:, 0, None, None]) ** 2 + (xx - c[:, 1, None, None]) ** 2).sqrt()
    hi = torch.sigmoid((0.4 - d) * 20)[:, None]
    lo = area_downsample(hi, 2)
    torch.manual_seed(0)
    model = ig.LatentSiren(2, 8, 1, 24, 2)
    before = float(((convert(model, lo, 16, inner_scale=0.25) - hi) ** 2).mean())
    hist = fit_conversion(
        model, lo, hi, steps=40, batch_size=16, lr=1e-3, inner_weight=0.25, log_every=20, outer_fraction=0.5
    )
    after = float(((convert(model, lo, 16, inner_scale=0.25) - hi) ** 2).mean())
    assert hist["steps"] == 40 and hist["step"] == [20, 40] and len(hist["loss"]) == 2
    assert after < 0.5 * before


def test_superres_example_writes_its_outputs(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "INR_GON_DATA"}
    env.update(PYTHONPATH=str(ROOT), INR_GON_OFFLINE="1")  # the embedded MNIST subset
    out = tmp_path / "sr"
    r = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "superres_mnist.py"),
            "--steps",
            "3",
            "--hidden",
            "8",
            "--layers",
            "1",
            "--latent",
            "4",
            "--batch-size",
            "8",
            "--max-test-images",
            "24",
            "--threads",
            "1",
            "--device",
            "cpu",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert (out / "superres_vs_bicubic.png").is_file()
    m = json.loads((out / "metrics.json").read_text())
    for k in ("psnr_gon", "psnr_bicubic", "psnr_bilinear", "psnr_nearest", "ssim_gon", "ssim_bicubic"):
        assert isinstance(m[k], float), k
    assert m["steps"] == 3 and m["num_test"] == 24 and m["input_size"] == [14, 14] and m["output_size"] == [28, 28]
    assert m["psnr_bicubic"] > m["psnr_nearest"]  # sanity of the baselines
