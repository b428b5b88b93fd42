"""Classifier GON: shapes, modes, gradient flow through z, and learning a small synthetic task."""

import pytest
import torch

import inr_gon as ig
from inr_gon.variants.classifier import ClassifierGON


def synthetic(n, g, size=12):
    """10 classes: a Gaussian blob at one of 10 positions (2 rows × 5 columns) plus noise."""
    labels = torch.randint(0, 10, (n,), generator=g)
    yy, xx = torch.meshgrid(torch.arange(float(size)), torch.arange(float(size)), indexing="ij")
    cy = 2 + 8 * (labels // 5).float()
    cx = 1 + 2.4 * (labels % 5).float()
    img = torch.exp(-((yy - cy[:, None, None]) ** 2 + (xx - cx[:, None, None]) ** 2) / 3)
    img = img + 0.1 * torch.rand(n, size, size, generator=g)
    return img[:, None].clamp(0, 1), labels


def test_shapes_and_parts():
    torch.manual_seed(0)
    m = ClassifierGON(ig.LatentSiren(2, 2, 1, 16, 2), 10)
    x = torch.rand(5, 1, 12, 12)
    y = torch.randint(0, 10, (5,))
    for mode in ("classifier", "joint"):
        loss, z, p = m.loss(x, y, mode=mode)
        assert loss.dim() == 0 and z.shape == (5, 2) and p["logits"].shape == (5, 10)
        assert 0.0 <= p["accuracy"] <= 1.0 and p["ce"].dim() == 0 and p["recon"].dim() == 0
    assert m.latent(x).shape == (5, 2) and m.logits(x).shape == (5, 10)
    pred = m.predict(x, batch_size=2)
    assert pred.shape == (5,) and pred.dtype == torch.long


def test_classifier_mode_trains_decoder_through_z_only_by_cross_entropy():
    torch.manual_seed(0)
    m = ClassifierGON(ig.LatentSiren(2, 4, 1, 16, 2), 3)
    x, y = torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 0])
    loss, _, p = m.loss(x, y, mode="classifier")
    torch.testing.assert_close(loss, p["ce"])
    loss.backward()
    # the decoder receives gradient only via the second-order path through z
    assert m.decoder.latent_weight.grad.abs().sum() > 0
    assert m.decoder.hidden[0].linear.weight.grad.abs().sum() > 0
    m.zero_grad()
    loss_j, _, pj = m.loss(x, y, mode="joint")
    # joint: the reconstruction per point (8x8 = 64 points) plus the cross-entropy
    torch.testing.assert_close(loss_j, pj["recon"] / 64 + pj["ce"])


@pytest.mark.parametrize("mode", ["classifier", "joint"])
def test_accuracy_rises_well_above_chance(mode):
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    x, y = synthetic(512, g)
    xt, yt = synthetic(256, g)
    m = ClassifierGON(ig.LatentSiren(2, 16, 1, 32, 2), 10, mode=mode)
    opt = torch.optim.Adam(m.parameters(), 1e-3)
    for _ in range(100):
        i = torch.randint(0, 512, (64,), generator=g)
        loss, _, _ = m.loss(x[i], y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert m.accuracy(xt, yt) > 0.4  # chance is 0.1


def test_bad_input_errors():
    with pytest.raises(ValueError, match="num_classes"):
        ClassifierGON(ig.LatentSiren(2, 2, 1, 8, 1), 1)
    with pytest.raises(ValueError, match="mode"):
        ClassifierGON(ig.LatentSiren(2, 2, 1, 8, 1), 3, mode="both")
    with pytest.raises(TypeError, match="latent_dim"):
        ClassifierGON(torch.nn.Linear(2, 2), 3)
    m = ClassifierGON(ig.LatentSiren(2, 2, 1, 8, 1), 3)
    with pytest.raises(TypeError, match="int64"):
        m.loss(torch.rand(2, 1, 4, 4), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="labels must have shape"):
        m.loss(torch.rand(2, 1, 4, 4), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="images must have shape"):
        m.loss(torch.rand(2, 4, 4), torch.tensor([0, 1]))
