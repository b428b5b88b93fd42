"""benchmarks/paper_claims.py's linear bound: a softmax on the raw pixels, trained by L-BFGS, is
perfect on linearly separable classes and at chance on labels that carry no signal."""

import types
import torch

from conftest import load_benchmark


def _dataset(images, labels, n_train):
    return types.SimpleNamespace(
        train_images=images[:n_train],
        train_labels=labels[:n_train],
        test_images=images[n_train:],
        test_labels=labels[n_train:],
    )


def test_linear_pixel_accuracy_separable_and_random_labels():
    bench = load_benchmark("paper_claims")
    g = torch.Generator().manual_seed(0)
    a = types.SimpleNamespace(device="cpu", linear_iterations=100)
    # each class lights its own pixel block: a linear softmax separates them exactly
    labels = torch.randint(0, 4, (800,), generator=g)
    images = 0.3 * torch.rand(800, 1, 8, 8, generator=g)
    for k in range(4):
        images[labels == k, 0, 2 * k : 2 * k + 2, :] += 0.7
    assert bench.linear_pixel_accuracy(_dataset(images, labels, 600), a) == 1.0
    # labels independent of the pixels: test accuracy near chance (1/4), far from the separable case
    noise = torch.randint(0, 4, (800,), generator=g)
    acc = bench.linear_pixel_accuracy(_dataset(torch.rand(800, 1, 8, 8, generator=g), noise, 600), a)
    assert 0.1 < acc < 0.45, acc
